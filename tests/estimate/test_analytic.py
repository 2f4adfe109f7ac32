"""hwgen.estimate.analytic: Yosys' mapping rules, the ranking of designs that the search
relies on, and the estimate against recorded syntheses."""

import re

import numpy as np
import pytest

from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.errors import ArgumentError
from hwgen.estimate.analytic import analytic_estimate, bram_blocks, dsp_blocks
from hwgen.estimate.devices import device
from hwgen.flow import load_quantized
from hwgen.quant import scheme_from_json

# --- construction and errors first --------------------------------------------------------


def test_other_families_are_refused():
    with pytest.raises(ArgumentError, match=r"^Analytic estimates are calibrated for iCE40 "
                                            r"targets \(ice40-up5k, ice40-hx8k\), not "
                                            r"'ecp5-25k'$"):
        analytic_estimate(None, "ecp5-25k")


# --- Yosys' rules ---------------------------------------------------------------------------

def test_dsp_rule_of_synth_ice40():
    up5k, hx8k = device("ice40-up5k"), device("ice40-hx8k")
    assert dsp_blocks(8, 8, up5k) == 1          # 16-bit product: a DSP
    assert dsp_blocks(8, 3, up5k) == 1          # 11 bits: still
    assert dsp_blocks(8, 2, up5k) == 0          # 10 bits: LUTs
    assert dsp_blocks(5, 5, up5k) == 0
    assert dsp_blocks(18, 16, up5k) == 2        # split over two 16x16 blocks
    assert dsp_blocks(8, 8, hx8k) == 0          # no DSPs on the HX8K


def test_bram_rule_of_memory_libmap():
    assert bram_blocks(256, 8) == 1             # a 256x16 block, half used
    assert bram_blocks(978, 32) == 8            # 1024x4, eight side by side
    assert bram_blocks(553, 64) == 12           # three 256x16 deep, four wide
    # ROMs cheaper as logic (1/16 per bit against 64 per block) stay in LUTs
    assert bram_blocks(18, 30, rom=True) == 0
    assert bram_blocks(72, 32, rom=True) == 2
    assert bram_blocks(36, 43, rom=True) == 0   # the digits CNN's parameter ROM


# --- ranking --------------------------------------------------------------------------------

SPECS = {
    "w4a8": {"default": {"weight_width": 4, "out_width": 8}},
    "mixed": {"default": {"width": 8}, "layers": {"conv2": {"kind": "pow2", "bits": 4}}},
    "cb4ch": {"default": {"kind": "codebook", "bits": 4, "per_channel": True}},
}


@pytest.fixture(scope="module")
def graphs():
    """The digits CNN: fixed8, fixed4, pow2-4 and binary (the shipped checkpoints), 4-bit
    weights on 8-bit activations, fixed8 with conv2 in pow2-4 (two engines) and the
    code-books."""
    out = {}
    for name in ("fixed8", "fixed4", "pow2-4", "binary", "w4a8", "mixed", "codebook-4",
                 "cb4ch"):
        scheme = scheme_from_json({"name": name, **SPECS[name]}) if name in SPECS else name
        out[name] = load_quantized("builtin:digits-cnn", scheme).graph
    return out


@pytest.fixture(scope="module")
def designs(graphs):
    """:func:`graphs` on a 4x4 array."""
    return {name: compile_graph(graph, AcceleratorConfig(4, 4))
            for name, graph in graphs.items()}


def test_ranking(graphs, designs):
    up5k = {name: analytic_estimate(d, "ice40-up5k") for name, d in designs.items()}
    hx8k = {name: analytic_estimate(d, "ice40-hx8k") for name, d in designs.items()}
    # multipliers in LUTs (HX8K): shift PEs cost less than multipliers
    assert hx8k["pow2-4"].luts < hx8k["fixed8"].luts
    # on the UP5K the 16 multipliers go to DSPs, more than its 8: only pow2-4 fits
    assert (up5k["fixed8"].dsps, up5k["fixed8"].fits) == (16, False)
    assert (up5k["pow2-4"].dsps, up5k["pow2-4"].fits) == (0, True)
    # 4-bit weights cost less than 8-bit ones, on either device, and half the weight ROM
    for est in (up5k, hx8k):
        assert est["w4a8"].luts < est["fixed8"].luts
        assert est["w4a8"].ffs < est["fixed8"].ffs
    assert up5k["w4a8"].blocks["engine_fixed"]["brams"] == 4
    assert up5k["fixed8"].blocks["engine_fixed"]["brams"] == 8
    # an extra engine kind costs its whole array
    mixed = up5k["mixed"].blocks
    assert set(mixed) >= {"engine_fixed", "engine_shift"}
    assert up5k["mixed"].luts > max(up5k["fixed8"].luts, up5k["pow2-4"].luts)
    assert mixed["engine_shift"]["luts"] == pytest.approx(
        up5k["pow2-4"].blocks["engine_shift"]["luts"], rel=0.1)
    # the XNOR engine does 8 binary MACs per PE and cycle for less than a shift PE's one
    binary = up5k["binary"].blocks
    assert binary["engine_xnor"]["luts"] / 8 < up5k["pow2-4"].blocks["engine_shift"]["luts"] / 4
    # code-books: 4-bit indices halve fixed8's weight memory; a layer's 16 entries per
    # column are a ROM in logic, per-channel tables (9 rows of 16) a block RAM per column,
    # so that engine's logic is fixed8's at one accumulator width (each design's own is
    # sized from its weights: 20 bits for these code-books, 19 for fixed8)
    cb, cbch = up5k["codebook-4"].blocks, up5k["cb4ch"].blocks
    assert cb["engine_codebook"]["brams"] == 4 and cbch["engine_codebook"]["brams"] == 8
    assert cb["engine_codebook"]["luts"] > up5k["fixed8"].blocks["engine_fixed"]["luts"]
    same = {name: analytic_estimate(compile_graph(graphs[name], AcceleratorConfig(
        4, 4, acc_width=24)), "ice40-up5k").blocks for name in ("fixed8", "cb4ch")}
    assert same["fixed8"]["engine_fixed"]["luts"] == pytest.approx(
        same["cb4ch"]["engine_codebook"]["luts"], abs=1)


# Recorded with YoWASP Yosys 0.70.0.0.post1259 (the core's figures: `resources` minus the
# pin harness the report lists):
#   hwgen compile builtin:digits-cnn --scheme SCHEME --array 4x4 --out D
#   hwgen estimate D --target ice40-up5k --synth-only
# (accumulators sized from the weights: 19, 16, 12, 19 and 20 bits; the sequencer's pixel
# records in a block RAM; the trimmed sequencer: banks without multiplexers, counters as
# wide as the program needs; the drain's gate registers; the engine's second feed register;
# the PEs' accumulators returning to 0 through their flip-flops' reset; the activation
# buffer without read/write collision logic; the bias holding rounding's half step)
RECORDED = {
    "fixed8": {"luts": 1195 - 26, "ffs": 2342 - 96, "dsps": 16, "brams": 13},
    "pow2-4": {"luts": 1441 - 26, "ffs": 2007 - 96, "dsps": 0, "brams": 9},
    "fixed4": {"luts": 1547 - 24, "ffs": 1605 - 88, "dsps": 0, "brams": 9},
    "codebook-4": {"luts": 1395 - 26, "ffs": 2346 - 96, "dsps": 16, "brams": 9},
    # --scheme a JSON spec {"default": {"kind": "codebook", "bits": 4, "per_channel": true}}
    "cb4ch": {"luts": 1267 - 26, "ffs": 2375 - 96, "dsps": 16, "brams": 13},
}
#: The stated tolerance on LUTs and flip-flops; DSPs and block RAMs are exact.
TOLERANCE = 0.08


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_against_recorded_synthesis(designs, name):
    est = analytic_estimate(designs[name], "ice40-up5k")
    want = RECORDED[name]
    assert (est.dsps, est.brams) == (want["dsps"], want["brams"])
    assert est.luts == pytest.approx(want["luts"], rel=TOLERANCE)
    assert est.ffs == pytest.approx(want["ffs"], rel=TOLERANCE)
    assert est.fits == (want["dsps"] <= 8)


def test_multiplier_kind_names_the_fmax_class(designs):
    """An 8×8-bit product goes to a SB_MAC16 on the UP5K and to LUTs on the HX8K (no DSPs);
    a 4×4-bit one is too narrow for Yosys' DSP mapping; shift PEs multiply nothing."""
    from hwgen.estimate.analytic import FMAX_CLASSES, multiplier_kind
    assert multiplier_kind(designs["fixed8"], "ice40-up5k") == "dsp"
    assert multiplier_kind(designs["fixed8"], "ice40-hx8k") == "lut"
    assert multiplier_kind(designs["fixed4"], "ice40-up5k") == "lut"
    assert multiplier_kind(designs["pow2-4"], "ice40-up5k") == "none"
    est = analytic_estimate(designs["pow2-4"], "ice40-hx8k")
    assert est.fmax_class == FMAX_CLASSES[("ice40-hx8k", "none")]
    for lo, hi in FMAX_CLASSES.values():
        assert 10 < lo < hi < 200


def test_analytic_on_the_command_line(designs, tmp_path, capsys):
    from hwgen.cli import main
    from hwgen.emit import write_design
    out = tmp_path / "d"
    write_design(designs["fixed8"], out)
    before = sorted(p.name for p in out.iterdir())
    assert main(["estimate", str(out), "--target", "ice40-hx8k", "--analytic"]) == 0
    printed = capsys.readouterr().out
    est = analytic_estimate(designs["fixed8"], "ice40-hx8k")
    assert est.lut_multipliers == 16
    assert re.search(r"^lut_multipliers +16 +-$", printed, re.MULTILINE), printed
    assert printed.rstrip().splitlines()[-1].startswith("fits; Fmax class ")
    assert sorted(p.name for p in out.iterdir()) == before       # nothing written
    assert main(["estimate", str(out), "--analytic", "--blocks"]) == 1
    assert capsys.readouterr().err == ("hwgen: error: --analytic runs no tools: leave out "
                                       "--blocks and --synth-only\n")


# --- split fully connected layers (weight banks, the drain's adder tree) -------------------

@pytest.fixture(scope="module")
def mlp():
    """The MLP (fc1 64 → 32, fc2 32 → 10) in fixed8 on a 4×4 array, with split layers and
    without."""
    qmodel = load_quantized("builtin:mlp", "fixed8")
    return {split: compile_graph(qmodel.graph, AcceleratorConfig(4, 4, split_fc=split))
            for split in (True, False)}


def test_split_layers_weight_banks_are_counted_like_the_weight_memory(mlp):
    split, plain = mlp[True], mlp[False]
    # unsplit: 8 + 3 channel tiles of 64 and 32 steps, 608 words of 4 × 8 bits, no banks
    assert len(plain.engines[0].weight_image) == 608 and plain.engines[0].banks == ()
    # split: every row a slice of 16 and 8 steps: 8·16 + 3·8 = 152 words in each of the
    # weight memory and banks 1, 2, 3
    assert [layer.desc.split for layer in split.layers] == [1, 1]
    engine = split.engines[0]
    assert [len(engine.weight_image)] + [len(bank) for bank in engine.banks] == [152] * 4
    est_split = analytic_estimate(split, "ice40-up5k")
    est_plain = analytic_estimate(plain, "ice40-up5k")
    # 608 × 32 bits: three 256×16 blocks deep, two wide; 152 × 32 bits: one deep, two wide,
    # for each of the four memories
    assert est_plain.blocks["engine_fixed"]["brams"] == 6
    assert est_split.blocks["engine_fixed"]["brams"] == 4 * 2
    # plus the activation buffer's four copies of 128 × 8 bits, one block each
    assert (est_plain.brams, est_split.brams) == (6 + 4, 8 + 4)
    assert bram_blocks(152, 32, rom=True) == 2          # not cheaper as logic


def test_split_layers_logic_terms(mlp):
    from hwgen.estimate.analytic import block_features
    plain_features, _ = block_features(mlp[False])
    split_features, _ = block_features(mlp[True])
    # a design without split layers has none of their features (its estimate is as before)
    assert set(plain_features["engine_fixed"]) == {"const", "feed"}
    assert set(plain_features["drain"]) == {"const", "mux", "line"}
    # count: 152 (the longest memory) is 8 bits, plus one: 9
    # engine: rows 1–3 × 4 columns × 8-bit weights of 2:1 multiplexers; per bank a 9-bit
    # address, a 4-weight read register and a 0+1+2+3-weight skew triangle of 8 bits
    assert split_features["engine_fixed"] == {"const": 1, "feed": 32, "bank_mux": 96,
                                              "bank_regs": 3 * (9 + 80)}
    # drain, with the design's A-bit accumulators (sized from the weights; bit growth would
    # give 23): three A-bit adders; registers: 4 + 2 + 1 sums of A bits and, over the
    # three cycles of the sum, live, valid, 2-bit column, pool flags, 9-bit parameter
    # address and tag (24 bits); the output's choice: A + 3·9 bits; its selections of
    # 16 results gated by one-hot bits (no gate registers: ``mux`` is 0)
    a = mlp[True].acc_width
    assert a < 23
    assert split_features["drain"] == {"const": 1, "mux": 0, "column_select": 16 * a,
                                       "line": 8 * 9, "sum_add": 3 * a,
                                       "sum_regs": 7 * a + 3 * 24, "split_select": a + 2 * 9}
    split = analytic_estimate(mlp[True], "ice40-up5k").blocks
    plain = analytic_estimate(mlp[False], "ice40-up5k").blocks
    # one LUT per multiplexer bit, one flip-flop per register bit (same PEs, same feed)
    assert split["engine_fixed"]["luts"] - plain["engine_fixed"]["luts"] == 96
    assert split["engine_fixed"]["ffs"] - plain["engine_fixed"]["ffs"] == 267


# Recorded with YoWASP Yosys 0.70.0.0.post1259 (the core: harness taken off):
#   hwgen compile builtin:mlp --scheme fixed8 --array 4x4 --out D --split-fc
#   hwgen estimate D --target ice40-up5k --synth-only
# (20-bit accumulators, sized from the weights; the trimmed sequencer; the engine's second
# feed register; the accumulators' reset; the buffer without collision logic, the bias
# holding rounding's half step). Without --split-fc
# the same MLP synthesized 1229 - 26 LUTs, 1767 - 96 FFs, 10 BRAMs (before the drain's gate
# registers).
RECORDED_SPLIT = {"luts": 1325 - 26, "ffs": 2379 - 96, "dsps": 16, "brams": 12}
#: The split terms are first-order (:data:`hwgen.estimate.analytic.SPLIT_COEFFICIENTS`),
#: not fitted, so this design is held to the analytic estimate's 90th-percentile target
#: (15 %) rather than :data:`TOLERANCE`: per block the estimate is within 1 % of the
#: synthesis (1,690 against 1,680 LUTs), but flattening this design's split drain saves
#: more than the fitted ``FLAT`` factor says (+4.9 % LUTs with the accumulators' reset,
#: +4.7 % before it, +6.2 % before the engine's second feed register, +10.2 % before the
#: drain's gates).
#: Its flip-flops are held to the same 15 %: ``FLAT`` for flip-flops is fitted on designs
#: whose drains hold gate registers, which flat synthesis cannot share, and this drain has
#: none (+5.5 % with the accumulators' reset, +2.4 % before it, +10.9 % after the gates
#: came).
SPLIT_TOLERANCE = 0.15


def test_split_design_against_recorded_synthesis(mlp):
    est = analytic_estimate(mlp[True], "ice40-up5k")
    want = RECORDED_SPLIT
    assert (est.dsps, est.brams) == (want["dsps"], want["brams"])
    assert est.luts == pytest.approx(want["luts"], rel=SPLIT_TOLERANCE)
    assert est.ffs == pytest.approx(want["ffs"], rel=SPLIT_TOLERANCE)


def test_pooled_layers_logic_terms():
    from hwgen import ir
    from hwgen.estimate.analytic import block_features
    from hwgen.numerics import QFormat
    f8 = QFormat(8, 4)
    weight = np.ones((3, 1, 1, 1), dtype=np.int64)
    layer = ir.Conv2d("c", (1, 6, 6), weight, None, f8, [f8] * 3, f8, pool=2)
    graph = ir.Graph("g", (1, 6, 6), f8, (layer,))
    pooled = compile_graph(graph, AcceleratorConfig(rows=8, cols=4, drain_pool=True))
    assert pooled.layers[0].desc.drain_pool == 1
    acc = pooled.engines[0].acc_width
    features, _ = block_features(pooled)
    # 8 rows, windows of 4: levels 1 and 2 take maxima over 4 + 2 nodes (a compare and a
    # choice each), then one of the column's 2 windows is picked
    assert features["drain"]["pool_max"] == 2 * acc * 6 + acc * 2
    plain, _ = block_features(compile_graph(graph, AcceleratorConfig(rows=8, cols=4)))
    assert "pool_max" not in plain["drain"]
