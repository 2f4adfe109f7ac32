"""hwgen.explore's costs of split fully connected layers: a split layer's step reads a
weight word from every bank, and the banks are weight memory."""

import pytest

from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.explore.energy import network_energy
from hwgen.explore.search import design_metrics
from hwgen.flow import load_quantized


@pytest.fixture(scope="module")
def mlp():
    """The MLP (fc1 64 → 32, fc2 32 → 10) in fixed8 on a 4×4 array, with split layers and
    without, and its quantized model."""
    qmodel = load_quantized("builtin:mlp", "fixed8")
    return qmodel, {split: compile_graph(qmodel.graph, AcceleratorConfig(4, 4, split_fc=split))
                    for split in (True, False)}


def test_a_split_layer_reads_a_word_per_bank_and_step(mlp):
    _, designs = mlp
    split, plain = designs[True], designs[False]
    # (tiles, steps per tile, split): 32 and 10 outputs are 8 and 3 tiles of 4 columns; on
    # 4 rows the split layers' reductions of 64 and 32 are slices of 16 and 8
    assert [(la.tiles, la.desc.k_len, la.desc.split) for la in split.layers] == [
        (8, 16, 1), (3, 8, 1)]
    assert [(la.tiles, la.desc.k_len, la.desc.split) for la in plain.layers] == [
        (8, 64, 0), (3, 32, 0)]
    # a word is 4 weights of 8 bits, 32 bits: 5 pJ. Split: 4 banks × 8 tiles × 16 steps =
    # 512 words (fc1) and 4 × 3 × 8 = 96 (fc2); unsplit one word per step, 8 × 64 = 512
    # and 3 × 32 = 96: every weight is read once either way
    assert network_energy(split).weight_read_pj == pytest.approx((512 + 96) * 5.0)
    assert network_energy(plain).weight_read_pj == pytest.approx((512 + 96) * 5.0)
    # the MACs are the same
    assert network_energy(split).compute_pj == pytest.approx(network_energy(plain).compute_pj)


def test_weight_bytes_count_the_banks(mlp):
    qmodel, designs = mlp
    split = design_metrics(designs[True], qmodel, "ice40-up5k")
    plain = design_metrics(designs[False], qmodel, "ice40-up5k")
    # 608 words of 32 bits, in one weight memory or in four memories of 152 words
    assert plain["weight_bytes"] == 608 * 4
    assert split["weight_bytes"] == 4 * 152 * 4
    # the analytic estimate counts the banks' block RAMs: two per memory of 152 × 32 bits
    # (and one per activation buffer copy)
    assert (plain["brams"], split["brams"]) == (6 + 4, 4 * 2 + 4)
