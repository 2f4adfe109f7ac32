"""System tests of multiplier-free designs: the emitted Verilog on Verilator, power-of-two
weights on the shift PE, binary (±1) weights with per-channel scales and threshold
outputs, and a network on all three PE kinds (packed binary tensors on the XNOR engine); every output word against the golden model, every layer's cycles against the
prediction. The networks are built directly as IR (no quantizer, no training)."""

import numpy as np
import pytest

from hwgen import golden, ir, timing
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.emit import write_design
from hwgen.numerics import BinaryFormat, Pow2Format, QFormat
from hwgen.sim.check import simulate_design


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sim_build_mf")


def pow2_weights(rng, shape, fmts):
    """IR integers of per-output-channel power-of-two formats: 0 and ±2**(e − e_min)."""
    w = np.zeros(shape, dtype=np.int64)
    for c, fmt in enumerate(fmts):
        codes = rng.integers(0, fmt.e_max - fmt.e_min + 1, size=shape[1:])
        codes[..., 0] = fmt.e_max - fmt.e_min          # the largest exponent occurs
        signs = rng.choice([-1, 1], size=shape[1:])
        w[c] = np.where(rng.random(shape[1:]) < 0.15, 0, signs << codes)
    return w


def pow2_graph(rng):
    fin, f1, f2 = QFormat(8, 5), QFormat(8, 4), QFormat(7, 3)
    fmts1 = [Pow2Format(-5 + c % 3, -1) for c in range(5)]     # per-channel ranges
    conv1 = ir.Conv2d("conv1", (2, 7, 6), pow2_weights(rng, (5, 2, 3, 3), fmts1),
                      rng.integers(-400, 400, size=5), fin, fmts1, f1, relu=True, pool=2,
                      padding=1, rounding="nearest_even")
    fmts2 = [Pow2Format(-3, 0)] * 3
    conv2 = ir.Conv2d("conv2", conv1.out_shape, pow2_weights(rng, (3, 5, 2, 2), fmts2), None,
                      f1, fmts2, f2, stride=1, rounding="floor", overflow="wrap")
    flat = ir.Flatten("flat", conv2.out_shape, f2)
    fmts3 = [Pow2Format(-6, 0)] * 4
    fc = ir.Linear("fc", flat.out_shape, pow2_weights(rng, (4, flat.out_shape[0]), fmts3),
                   rng.integers(-99, 99, size=4), f2, fmts3, QFormat(8, 2),
                   rounding="nearest_up")
    return ir.Graph("pow2", (2, 7, 6), fin, [conv1, conv2, flat, fc])


def binary_graph(rng):
    """BWN: ±1 weights with a per-channel α as a fixed-point multiplier (one negative), a
    layer with binary outputs by thresholds (with flips and ties), then a power-of-two
    linear layer on the binary activations."""
    fin, f1, b = QFormat(8, 5), QFormat(6, 2), BinaryFormat()
    w1 = rng.choice([-1, 1], size=(4, 2, 3, 3))
    scale1 = np.array([45, -17, 127, 1])
    conv1 = ir.Conv2d("bconv1", (2, 7, 6), w1, rng.integers(-3000, 3000, size=4), fin,
                      [b] * 4, f1, relu=True, padding=1, scale=scale1, scale_frac=7)
    w2 = rng.choice([-1, 1], size=(5, 4, 3, 3))
    # Thresholds at and around the dot products that occur, one far beyond any dot.
    thresholds = np.array([0, 7, -12, 10**6, -3])
    conv2 = ir.Conv2d("bconv2", conv1.out_shape, w2, None, f1, [b] * 5, b, pool=2,
                      threshold=thresholds, flip=np.array([0, 1, 0, 1, 1]))
    flat = ir.Flatten("flat", conv2.out_shape, b)
    fmts = [Pow2Format(-2, 0)] * 3
    fc = ir.Linear("fc", flat.out_shape, pow2_weights(rng, (3, flat.out_shape[0]), fmts),
                   rng.integers(-50, 50, size=3), b, fmts, QFormat(8, 3),
                   scale=np.array([3, -5, 9]), scale_frac=2)
    return ir.Graph("bwn", (2, 7, 6), fin, [conv1, conv2, flat, fc])


def run(check, tmp_path, build_dir, graph, array, rng, samples=4, kinds=("shift",),
        **config):
    design = compile_graph(graph, AcceleratorConfig.parse_array(array, **config))
    assert design.engine_kinds == kinds
    x = rng.integers(graph.input_fmt.min_int, graph.input_fmt.max_int + 1,
                     size=(samples,) + graph.input_shape)
    x[0] = graph.input_fmt.max_int          # extremes: all largest, all smallest
    x[1] = graph.input_fmt.min_int
    expected = golden.run(graph, x).reshape(samples, -1)
    write_design(design, tmp_path / "d", vectors=(x.reshape(samples, -1), expected,
                                                  np.zeros(samples)))
    report = simulate_design(tmp_path / "d", samples=samples, build_dir=build_dir)
    check(report, design)
    return design


@pytest.mark.parametrize("array", ["3x2", "4x4"])
def test_pow2_weights_on_the_shift_pe(check, tmp_path, build_dir, array):
    rng = np.random.default_rng(21)
    design = run(check, tmp_path, build_dir, pow2_graph(rng), array, rng)
    # zero flag, sign and a 3-bit exponent code (spans up to 6); no multiplier stage
    assert design.engines[0].weight_width == 5 and design.scale_width == 0
    assert design.post_latency == timing.post_process_latency(False)


@pytest.mark.parametrize("array", ["2x3", "4x4"])
def test_binary_weights_scales_and_thresholds(check, tmp_path, build_dir, array):
    rng = np.random.default_rng(22)
    graph = binary_graph(rng)
    design = run(check, tmp_path, build_dir, graph, array, rng)
    assert design.scale_width == 8 and design.thresholds      # 127 needs 7 bits + sign
    assert design.post_latency == timing.post_process_latency(True) == 5
    # The thresholds decide some outputs each way (else the test would prove little).
    outs = golden.run_layers(graph, rng.integers(-128, 128, size=(4,) + graph.input_shape))[1]
    assert set(np.unique(outs)) == {-1, 1}


def mixed_graph(rng):
    """One network on all three PE kinds: a fixed-point conv with binary outputs, an XNOR
    conv (10 input channels: a partial last channel group for P = 8, padding, pooling) and
    an XNOR linear layer on its flattened packed output, then power-of-two weights on the
    binary activations (shift)."""
    fin, b = QFormat(8, 5), BinaryFormat()
    f8 = [QFormat(8, 6)] * 10
    conv1 = ir.Conv2d("conv1", (2, 6, 5), rng.integers(-128, 128, size=(10, 2, 3, 3)), None,
                      fin, f8, b, padding=1, threshold=rng.integers(-2000, 2000, size=10),
                      flip=rng.integers(0, 2, size=10))
    conv2 = ir.Conv2d("xconv2", conv1.out_shape, rng.choice([-1, 1], size=(9, 10, 3, 3)),
                      None, b, [b] * 9, b, padding=1, pool=2,
                      threshold=np.array([0, 5, -7, 90, -90, 2, -1, 3, 10**6]),
                      flip=np.array([0, 1, 0, 0, 1, 1, 0, 1, 0]))
    flat = ir.Flatten("flat", conv2.out_shape, b)
    fc1 = ir.Linear("xfc1", flat.out_shape, rng.choice([-1, 1], size=(11, flat.out_shape[0])),
                    None, b, [b] * 11, b, threshold=rng.integers(-6, 7, size=11))
    fmts = [Pow2Format(-3, 0)] * 4
    fc2 = ir.Linear("fc2", fc1.out_shape, pow2_weights(rng, (4, 11), fmts),
                    rng.integers(-50, 50, size=4), b, fmts, QFormat(8, 3))
    return ir.Graph("mixed", (2, 6, 5), fin, [conv1, conv2, flat, fc1, fc2])


@pytest.mark.parametrize("array, p", [("3x2", 8), ("4x4", 16)])
def test_all_three_pe_kinds_in_one_accelerator(check, tmp_path, build_dir, array, p):
    rng = np.random.default_rng(23)
    graph = mixed_graph(rng)
    design = run(check, tmp_path, build_dir, graph, array, rng,
                 kinds=("fixed", "xnor", "shift"), xnor_width=p)
    assert [layer.pe_kind for layer in design.layers] == ["fixed", "xnor", "xnor", "shift"]
    assert design.word_width == max(8, p)
    # the XNOR layers read packed words: K is channel groups · kernel
    assert [layer.desc.k_len for layer in design.layers[1:3]] == [-(-10 // p) * 9,
                                                                   -(-9 // p) * 3 * 2]
    # the binary layers decide outputs both ways (else the test would prove little)
    for outs in golden.run_layers(graph, rng.integers(-128, 128, size=(4, 2, 6, 5)))[:4]:
        assert set(np.unique(outs)) == {-1, 1}
