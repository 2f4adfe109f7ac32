"""Accumulators sized from the weights, on Verilator: inputs that drive each layer's dot
products to the bounds their weights allow, so that an accumulator one bit narrower would
wrap, every output word bit-exact and every layer's cycles as predicted."""

import numpy as np
import pytest

from hwgen import golden, ir
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.emit import write_design
from hwgen.numerics import QFormat
from hwgen.sim.check import simulate_design

Q8 = QFormat(8, 0)
#: fc1's outputs: [0, 127], fc1's dot products shifted right by 4 and saturated
UQ7 = QFormat(7, -4, signed=False)
#: fc2's outputs: its dot products shifted right by 10, so ±130048 stay in range
OUT = QFormat(8, -10)


def hadamard_row():
    h = np.array([[1]])
    for _ in range(3):
        h = np.block([[h, h], [h, -h]])
    return h[1]                                     # [1, -1, 1, -1, 1, -1, 1, -1]


def network():
    """fc1 (8 → 18) reads any 8-bit word. Its channels 0 (all 127) and 1 (±127 in the signs
    of ``h``) reach 8·127·128 = 130048 and 4·127·127 + 4·127·128 = 129540; channel
    2 + 2j is 127·x[j] and 3 + 2j is −128·x[j], so that their UQ(7) outputs are 127 and 0 or
    0 and 127 with the sign of x[j]. fc2 (18 → 4) reads [0, 127]: its channels 0 and 1 pass
    fc1's channels 0 and 1 on (127 each, so a wrapped fc1 shows), channel 2 weighs the pairs
    127 and −128 (8·127·127 = 129032 up, 8·128·127 = 130048 down), channel 3 ±127 in the
    signs of ``h`` (±129032). Every one of these needs 18 bits (2**16 < |dot| < 2**17); bit
    growth would give fc1 8 + 8 + 4 = 20 bits and fc2 8 + 8 + 5 = 21."""
    h = hadamard_row()
    w1 = np.zeros((18, 8), dtype=np.int64)
    w1[0] = 127
    w1[1] = 127 * h
    for j in range(8):
        w1[2 + 2 * j, j], w1[3 + 2 * j, j] = 127, -128
    w2 = np.zeros((4, 18), dtype=np.int64)
    w2[0, 0] = w2[1, 1] = 127
    w2[2, 2::2], w2[2, 3::2] = 127, -128
    w2[3, 2::2], w2[3, 3::2] = 127 * h, -127 * h
    fc1 = ir.Linear("fc1", (8,), w1, None, Q8, [Q8] * 18, UQ7)
    fc2 = ir.Linear("fc2", (18,), w2, None, UQ7, [Q8] * 4, OUT)
    return ir.Graph("exact_acc", (8,), Q8, [fc1, fc2])


def adversarial():
    """Each weight sign's extreme word, and the opposite: x = 127 where a weight is
    positive and −128 where it is negative drives a dot product to its top."""
    h = hadamard_row()
    ones = np.ones(8, dtype=np.int64)
    return np.stack([127 * ones, -128 * ones, np.where(h > 0, 127, -128),
                     np.where(h > 0, -128, 127)])


def test_the_inputs_reach_the_bounds():
    """The golden dot products of the adversarial inputs are the hand-counted bounds, each
    beyond 17 bits, and the design's accumulator is 18 bits."""
    graph = network()
    fc1, fc2 = graph.layers
    x = adversarial()
    dot1 = x @ fc1.weight.T
    assert dot1[:2, 0].tolist() == [129032, -130048]
    assert dot1[2:, 1].tolist() == [129540, -129540]
    out1 = golden.run_layers(graph, x)[0]
    assert set(out1[:, 2:].ravel().tolist()) == {0, 127}
    dot2 = out1 @ fc2.weight.T
    assert dot2[:2, 2].tolist() == [129032, -130048]
    assert dot2[2:, 3].tolist() == [129032, -129032]
    for dots in (dot1[:, :2], dot2[:, 2:]):
        assert np.abs(dots).max() >= 1 << 16
    design = compile_graph(graph, AcceleratorConfig())
    assert design.acc_width == 18


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sim_build")


@pytest.mark.parametrize("split_fc", [False, True])
def test_dot_products_at_the_bound(check, tmp_path, build_dir, split_fc):
    graph = network()
    design = compile_graph(graph, AcceleratorConfig(rows=4, cols=4, split_fc=split_fc))
    assert design.acc_width == 18
    assert [bool(layer.desc.split) for layer in design.layers] == [split_fc] * 2
    rng = np.random.default_rng(3)
    x = np.concatenate([adversarial(), rng.integers(-128, 128, size=(2, 8))])
    expected = golden.run(graph, x).reshape(len(x), -1)
    write_design(design, tmp_path / "d", vectors=(x, expected, np.zeros(len(x))))
    report = simulate_design(tmp_path / "d", samples=len(x), build_dir=build_dir)
    check(report, design)
