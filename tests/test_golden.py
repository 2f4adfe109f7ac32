"""hwgen.golden.network: the integer executor, and its bit-exact agreement with torch."""

import dataclasses
import functools
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from hwgen import golden, ir, quant
from hwgen.errors import FormatError, ShapeError
from hwgen.flow import load_quantized
from hwgen.frontend import trace
from hwgen.golden.network import _exact_matmul
from hwgen.numerics import QFormat, dequantize, quantize, requantize, stochastic_random


@functools.cache
def quantized(model, scheme):
    return load_quantized(model, scheme)


def torch_vs_golden(qm, x):
    """The fake-quant model in float64 and the dequantized golden outputs, for float ``x``."""
    with torch.no_grad():
        fq = qm.module(torch.tensor(np.array(x), dtype=torch.float64)).numpy()
    g = golden.run(qm.graph, qm.quantize_input(x))
    return fq, dequantize(g, qm.graph.output_fmt), g


# --- error messages -------------------------------------------------------------------

def test_input_shape_checked():
    qm = quantized("builtin:mlp", "fixed8")
    with pytest.raises(ShapeError, match=r"^Graph 'mlp' takes inputs of shape \(N, 1, 8, 8\), "
                                         r"not \(3, 64\)$"):
        golden.run(qm.graph, np.zeros((3, 64), dtype=np.int64))


def test_input_must_be_integers():
    qm = quantized("builtin:mlp", "fixed8")
    with pytest.raises(FormatError, match=r"^Golden model inputs must be integers, not an "
                                          r"array of dtype 'float64'$"):
        golden.run(qm.graph, np.zeros((1, 1, 8, 8)))


def test_input_range_checked():
    qm = quantized("builtin:mlp", "fixed8")
    x = np.zeros((1, 1, 8, 8), dtype=np.int64)
    x[0, 0, 3, 3] = 128
    with pytest.raises(FormatError, match=r"^Input value 128 is outside the range of the input "
                                          r"format Q\(8,6\)$"):
        golden.run(qm.graph, x)


def test_accumulator_overflow_refused():
    a = np.full((1, 4), 2 ** 31, dtype=np.int64)
    with pytest.raises(FormatError, match=r"^Dot products of 4 terms of magnitude up to "
                                          r"2147483648 × 2147483648 can overflow a 64-bit "
                                          r"accumulator$"):
        _exact_matmul(a, a.T)


# --- the central test: golden == torch fake-quant, bit for bit ------------------------

@pytest.mark.parametrize("model,scheme", [
    ("builtin:digits-cnn", "fixed8"), ("builtin:digits-cnn", "fixed4"),
    ("builtin:mlp", "fixed8"), ("builtin:mlp", "fixed4"), ("builtin:digits-cnn", "fixed16"),
    ("builtin:digits-cnn", "pow2-4"), ("builtin:digits-cnn", "bwn"),
    ("builtin:digits-cnn", "binary"), ("builtin:mlp", "pow2-4"), ("builtin:mlp", "bwn"),
    ("builtin:mlp", "binary"),
])
def test_golden_equals_torch_on_whole_test_split(model, scheme):
    qm = quantized(model, scheme)
    x = qm.dataset.x_test
    assert len(x) == 450
    fq, g, ints = torch_vs_golden(qm, x)
    np.testing.assert_array_equal(fq, g)
    # Not vacuous: the outputs are spread over many integer values.
    assert len(np.unique(ints)) > 5


def test_every_layer_agrees():
    qm = quantized("builtin:digits-cnn", "fixed8")
    x = torch.tensor(qm.dataset.x_test[:64], dtype=torch.float64)
    outs = golden.run_layers(qm.graph, qm.quantize_input(x))
    assert [o.shape[1:] for o in outs] == [layer.out_shape for layer in qm.graph.layers]
    with torch.no_grad():
        h = qm.module.input(x)
        for layer, o in zip(qm.module.layers, outs):
            h = layer(h)
            np.testing.assert_array_equal(h.numpy(), dequantize(o, layer.out_fmt))


def test_float32_is_not_the_reference():
    """Documented: the bit-exact reference is float64. At fixed16 float32 sums lose bits."""
    qm = quantized("builtin:digits-cnn", "fixed16")
    x = qm.dataset.x_test
    fq, g, _ = torch_vs_golden(qm, x)
    np.testing.assert_array_equal(fq, g)
    m32 = quant.build_network(qm.stages, (1, 8, 8), qm.scheme, dtype=torch.float32).eval()
    with torch.no_grad():
        acc32 = m32.layers[1]._acc(m32.layers[0](m32.input(torch.tensor(x)))).double()
        acc64 = qm.module.layers[1]._acc(qm.module.layers[0](qm.module.input(
            torch.tensor(x, dtype=torch.float64))))
    assert not torch.equal(acc32, acc64)


class Mixed(nn.Module):
    """Every IR node kind: strided conv without bias, average pool, stand-alone max-pool,
    flatten, linear without bias."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(2, 6, 3, stride=2, padding=1, bias=False)),
            ("relu", nn.ReLU()),
            ("avg", nn.AvgPool2d(2)),
            ("mp", nn.MaxPool2d(2)),
            ("flat", nn.Flatten()),
            ("fc", nn.Linear(6 * 2 * 2, 5, bias=False)),
        ]))

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("rounding,overflow", [("nearest_even", "saturate"),
                                               ("nearest_up", "wrap"), ("floor", "saturate")])
def test_every_node_kind_and_mode(rounding, overflow):
    torch.manual_seed(1)
    model = Mixed().eval()
    with torch.no_grad():  # channels of different magnitudes need different formats
        model.body.conv.weight *= torch.tensor([1.0, 2, 4, 8, 0.5, 0.25]).reshape(-1, 1, 1, 1)
    x = torch.rand(40, 2, 16, 16) * 4 - 1
    stages = trace(model, (2, 16, 16))
    kinds = [type(s).__name__ for s in stages]
    assert kinds == ["ConvStage", "AvgPoolStage", "MaxPoolStage", "FlattenStage", "LinearStage"]
    spec = {"name": "mixed", "input": {"width": 6},
            "default": {"width": 7, "rounding": rounding, "overflow": overflow},
            "layers": {"body_conv": {"per_channel": True, "weight_width": 5},
                       "body_avg": {"rounding": rounding}}}
    net = quant.build_network(stages, (2, 16, 16), quant.scheme_from_json(spec), x.numpy(),
                              name="mixed").eval()
    graph = net.to_graph()
    assert [type(n).__name__ for n in graph.layers] == ["Conv2d", "AvgPool2d", "MaxPool2d",
                                                        "Flatten", "Linear"]
    assert len(set(graph.layers[0].w_fmts)) > 1
    xi = quantize(x.double().numpy(), graph.input_fmt)
    with torch.no_grad():
        fq = net(x.double()).numpy()
    np.testing.assert_array_equal(fq, dequantize(golden.run(graph, xi), graph.output_fmt))


# --- the golden model against a naive, independent implementation --------------------

def naive_conv(layer, x):
    """Loops over every output: the ir.py docstring, literally."""
    n = x.shape[0]
    cout, cin, kh, kw = layer.weight.shape
    _, ho, wo = layer.pre_pool_shape
    p, s = layer.padding, layer.stride
    xp = np.zeros((n, cin, x.shape[2] + 2 * p, x.shape[3] + 2 * p), dtype=object)
    xp[:, :, p:p + x.shape[2], p:p + x.shape[3]] = x
    out = np.zeros((n, cout, ho, wo), dtype=np.int64)
    for b in range(n):
        for c in range(cout):
            for i in range(ho):
                for j in range(wo):
                    acc = int(np.sum(xp[b, :, i * s:i * s + kh, j * s:j * s + kw]
                                     * layer.weight[c].astype(object)))
                    acc += int(layer.bias[c])
                    v = int(requantize(np.array([acc]), layer.acc_frac[c], layer.out_fmt,
                                       layer.rounding, layer.overflow)[0])
                    out[b, c, i, j] = max(v, 0) if layer.relu else v
    q = layer.pool
    hp, wp = ho // q, wo // q
    pooled = np.zeros((n, cout, hp, wp), dtype=np.int64)
    for i in range(hp):
        for j in range(wp):
            pooled[:, :, i, j] = out[:, :, i * q:i * q + q, j * q:j * q + q].max(axis=(2, 3))
    return pooled


@pytest.mark.parametrize("stride,padding,pool,relu", [(1, 1, 2, True), (2, 0, 1, False),
                                                      (1, 2, 3, True)])
def test_conv_against_naive_loops(stride, padding, pool, relu):
    rng = np.random.default_rng(stride * 10 + padding + pool)
    w_fmts = tuple(QFormat(6, f) for f in rng.integers(2, 7, 4))
    layer = ir.Conv2d("c", (3, 7, 7), rng.integers(-32, 32, (4, 3, 3, 3)),
                      rng.integers(-3000, 3000, 4), QFormat(8, 5), w_fmts, QFormat(5, 2),
                      relu=relu, pool=pool, stride=stride, padding=padding,
                      rounding="nearest_up", overflow="saturate")
    x = rng.integers(-128, 128, (3, 3, 7, 7))
    graph = ir.Graph("g", (3, 7, 7), QFormat(8, 5), (layer,))
    np.testing.assert_array_equal(golden.run(graph, x), naive_conv(layer, x))


def naive_stochastic_conv(layer, x):
    """Loops over every output of a saturating stochastic conv: the value at (c, i, j) adds
    the low s bits of rand(seed, layer, c·Hp·Wp + (i//p)·Wp + j//p, (i%p)·p + j%p).
    ``rand`` is :func:`hwgen.numerics.stochastic_random`, which tests/test_numerics.py
    checks against its definition; these loops check where the golden model applies it."""
    n = x.shape[0]
    cout, cin, kh, kw = layer.weight.shape
    _, ho, wo = layer.pre_pool_shape
    q = layer.pool
    hp, wp = ho // q, wo // q
    out = np.zeros((n, cout, ho, wo), dtype=np.int64)
    fmt = layer.out_fmt
    for b in range(n):
        for c in range(cout):
            s = int(layer.acc_frac[c]) - fmt.frac
            for i in range(ho):
                for j in range(wo):
                    acc = sum(int(x[b, ci, i + di, j + dj]) * int(layer.weight[c, ci, di, dj])
                              for ci in range(cin) for di in range(kh) for dj in range(kw))
                    acc += int(layer.bias[c])
                    r = int(stochastic_random(layer.seed, layer.layer_number,
                                              c * hp * wp + (i // q) * wp + j // q,
                                              (i % q) * q + j % q))
                    v = (acc + r % 2 ** s) // 2 ** s
                    v = max(fmt.min_int, min(fmt.max_int, v))
                    out[b, c, i, j] = max(v, 0) if layer.relu else v
    pooled = np.zeros((n, cout, hp, wp), dtype=np.int64)
    for i in range(hp):
        for j in range(wp):
            pooled[:, :, i, j] = out[:, :, i * q:i * q + q, j * q:j * q + q].max(axis=(2, 3))
    return pooled


@pytest.mark.parametrize("pool,relu,seed", [(2, True, 0), (1, False, 77), (3, False, 5)])
def test_stochastic_conv_against_naive_loops(pool, relu, seed):
    rng = np.random.default_rng(pool + seed)
    w_fmts = tuple(QFormat(6, f) for f in rng.integers(2, 7, 3))
    layer = ir.Conv2d("c", (2, 8, 7), rng.integers(-32, 32, (3, 2, 3, 3)),
                      rng.integers(-3000, 3000, 3), QFormat(8, 5), w_fmts, QFormat(5, 2),
                      relu=relu, pool=pool, rounding="stochastic", seed=seed, layer_number=2)
    x = rng.integers(-128, 128, (2, 2, 8, 7))
    graph = ir.Graph("g", (2, 8, 7), QFormat(8, 5), (layer,))
    want = naive_stochastic_conv(layer, x)
    np.testing.assert_array_equal(golden.run(graph, x), want)
    np.testing.assert_array_equal(golden.run(graph, x, fast=False), want)


def test_stochastic_linear_by_hand():
    layer = ir.Linear("fc", (2,), np.array([[3, -1], [1, 1], [2, 2]]), np.array([0, 5, -7]),
                      QFormat(8, 0), [QFormat(4, 4)] * 3, QFormat(8, 0),
                      rounding="stochastic", seed=9, layer_number=4)
    x = np.array([[5, 7], [-3, 1]])
    want = [[(int(a) + int(stochastic_random(9, 4, c, 0)) % 16) // 16
             for c, a in enumerate(row)] for row in x @ layer.weight.T + layer.bias]
    graph = ir.Graph("g", (2,), QFormat(8, 0), (layer,))
    np.testing.assert_array_equal(golden.run(graph, x), want)


def test_stochastic_layer_fields_checked():
    with pytest.raises(FormatError, match=r"^Layer 'fc' seed must be a non-negative integer, "
                                          r"not -1$"):
        ir.Linear("fc", (2,), np.ones((1, 2)), None, QFormat(8, 0), [QFormat(4, 4)],
                  QFormat(8, 0), rounding="stochastic", seed=-1)
    with pytest.raises(FormatError, match=r"^Average pool 'p' cannot round stochastically; "
                                          r"give it another rounding$"):
        ir.AvgPool2d("p", (1, 4, 4), QFormat(8, 0), QFormat(8, 0), 2, "stochastic")


@pytest.mark.parametrize("model,width", [("builtin:digits-cnn", 4), ("builtin:mlp", 6)])
def test_stochastic_golden_equals_torch_on_whole_test_split(tmp_path, model, width):
    spec = tmp_path / "st.json"
    spec.write_text(f'{{"default": {{"width": {width}, "rounding": "stochastic"}}, '
                    f'"seed": 3}}')
    qm = load_quantized(model, str(spec))
    assert {getattr(layer, "seed", 3) for layer in qm.graph.layers} == {3}
    fq, g, ints = torch_vs_golden(qm, qm.dataset.x_test)
    np.testing.assert_array_equal(fq, g)
    assert len(np.unique(ints)) > 5
    # The seed matters: another one gives other outputs from the same formats and weights.
    spec.write_text(spec.read_text().replace('"seed": 3', '"seed": 4'))
    other = load_quantized(model, str(spec))
    assert [str(layer.out_fmt) for layer in other.graph.layers if hasattr(layer, "out_fmt")] \
        == [str(layer.out_fmt) for layer in qm.graph.layers if hasattr(layer, "out_fmt")]
    assert not np.array_equal(golden.run(other.graph, other.quantize_input(qm.dataset.x_test)),
                              ints)


def test_linear_by_hand():
    layer = ir.Linear("fc", (3,), [[1, 2, 3], [-4, 5, -6]], [10, -10], QFormat(8, 1),
                      (QFormat(8, 1), QFormat(8, 2)), QFormat(4, 0), relu=True)
    graph = ir.Graph("g", (3,), QFormat(8, 1), (layer,))
    x = np.array([[1, 2, 3], [5, -7, 0]])
    # acc0 = 1+4+9+10 = 24 at frac 2 -> 6; acc1 = -4+10-18-10 = -22 at frac 3 -> -2.75 -> -3
    # -> relu 0; second image: acc0 = 5-14+10 = 1 at frac 2 -> 0.25 -> 0;
    # acc1 = -20-35-10 = -65 at frac 3 -> -8.125 -> -8 -> 0
    np.testing.assert_array_equal(golden.run(graph, x), [[6, 0], [0, 0]])


def test_int64_and_float_paths_agree():
    rng = np.random.default_rng(0)
    small = rng.integers(-2 ** 20, 2 ** 20, (30, 50))
    big = rng.integers(-2 ** 28, 2 ** 28, (50, 7))  # 50 · 2**48: above 2**53, int64 path
    exact = (small.astype(object) @ big.astype(object)).astype(np.int64)
    np.testing.assert_array_equal(_exact_matmul(small, big), exact)
    np.testing.assert_array_equal(_exact_matmul(small >> 10, big >> 10),
                                  ((small >> 10).astype(object) @ (big >> 10).astype(object))
                                  .astype(np.int64))


def test_run_without_layers_returns_input():
    graph = ir.Graph("g", (4,), QFormat(8, 0), ())
    x = np.arange(8).reshape(2, 4)
    np.testing.assert_array_equal(golden.run(graph, x), x)


def test_golden_package_exports():
    for name in ("run", "run_layers", "pe_mac", "systolic_array", "post_process"):
        assert callable(getattr(golden, name))


# --- scales and thresholds (hand-computed cases) -----------------------------------------

def _one_linear(**kw):
    from hwgen.numerics import BinaryFormat
    weight = np.array([[1, -1, 1], [-1, -1, 1]])
    fmt_in = kw.pop("in_fmt", BinaryFormat())
    return ir.Graph("t", (3,), fmt_in, [ir.Linear(
        "fc", (3,), weight, kw.pop("bias", None), fmt_in, [BinaryFormat()] * 2,
        kw.pop("out_fmt"), **kw)])


def test_binary_thresholds_and_flip():
    from hwgen.numerics import BinaryFormat
    # x = (+1, -1, +1): dot = (1+1+1, -1+1+1) = (3, 1)
    graph = _one_linear(out_fmt=BinaryFormat(), threshold=[3, 1], flip=[False, True])
    # channel 0: 3 >= 3 -> +1; channel 1 (flipped): 1 <= 1 -> +1
    np.testing.assert_array_equal(golden.run(graph, np.array([[1, -1, 1]])), [[1, 1]])
    graph = _one_linear(out_fmt=BinaryFormat(), threshold=[4, 0], flip=[False, True])
    # 3 >= 4 is false -> -1; 1 <= 0 is false -> -1
    np.testing.assert_array_equal(golden.run(graph, np.array([[1, -1, 1]])), [[-1, -1]])


def test_scale_multiplies_before_bias_and_requantize():
    # x = (1, 1, 1) in Q(4, 0): dot = (1, -1); scale (3, 5) at 2 fractional bits, bias at 2:
    # acc = (1*3 + 2, -1*5 + 0) = (5, -5) / 4 = (1.25, -1.25) -> nearest_even Q(4, 0): (1, -1)
    graph = _one_linear(in_fmt=QFormat(4, 0), out_fmt=QFormat(4, 0), scale=[3, 5],
                        scale_frac=2, bias=[2, 0])
    assert graph.layers[0].acc_frac.tolist() == [2, 2]
    np.testing.assert_array_equal(golden.run(graph, np.array([[1, 1, 1]])), [[1, -1]])


@pytest.mark.parametrize("kw, message", [
    ({"out_fmt": "binary"}, r"^Layer 'fc' has binary outputs and needs a threshold per channel$"),
    ({"out_fmt": "binary", "threshold": [0, 0], "relu": True},
     r"^Layer 'fc' has binary outputs: fold its bias, scale and ReLU into the thresholds$"),
    ({"out_fmt": QFormat(4, 0), "threshold": [0, 0]},
     r"^Layer 'fc' has thresholds but Q\(4,0\) outputs; thresholds make binary outputs$"),
    ({"out_fmt": QFormat(4, 0), "scale": [1, 2, 3]},
     r"^Layer 'fc' scale shape must be \(2,\), not \(3,\)$"),
])
def test_threshold_and_scale_errors(kw, message):
    from hwgen.errors import HwgenError
    from hwgen.numerics import BinaryFormat
    if kw["out_fmt"] == "binary":
        kw["out_fmt"] = BinaryFormat()
    with pytest.raises(HwgenError, match=message):
        _one_linear(**kw)


# --- overflow counts --------------------------------------------------------------------

def test_overflow_counts_by_hand():
    # dot = (1+1+1, -1-1+1) = (3, -1); Q(2, 0) holds -2..1: 3 overflows, -1 does not.
    weight = np.array([[1, 1, 1], [-1, -1, 1]])
    for mode, expect, out in (("saturate", (1, 0), [1, -1]), ("wrap", (0, 1), [-1, -1])):
        graph = ir.Graph("t", (3,), QFormat(4, 0), [ir.Linear(
            "fc", (3,), weight, None, QFormat(4, 0), [QFormat(2, 0)] * 2, QFormat(2, 0),
            overflow=mode)])
        x = np.array([[1, 1, 1]])
        assert golden.overflow_counts(graph, x) == {"fc": expect}
        np.testing.assert_array_equal(golden.run(graph, x), [out])
    # Negative values saturated and then zeroed by the ReLU changed nothing.
    graph = ir.Graph("t", (3,), QFormat(4, 0), [ir.Linear(
        "fc", (3,), [[-3, -3, -3], [1, -1, 0]], None, QFormat(4, 0), [QFormat(3, 0)] * 2,
        QFormat(2, 0), relu=True)])
    assert golden.overflow_counts(graph, np.array([[1, 1, 1]])) == {"fc": (0, 0)}


def test_overflow_counts_match_an_unbounded_run(random_graph):
    rng = np.random.default_rng(3)
    graph = random_graph(rng, [("conv", 4, 3, 1, 1, 2, True), ("conv", 3, 3, 2, 0, 1, False),
                               ("fc", 5)])
    x = rng.integers(-128, 128, size=(20, 2, 9, 7))
    counts = golden.overflow_counts(graph, x)
    dense = [n for n in graph.layers if isinstance(n, ir.Conv2d | ir.Linear)]
    assert set(counts) == {n.name for n in dense}
    h = x
    for layer in graph.layers:
        if layer in dense:
            wide = dataclasses.replace(layer, out_fmt=QFormat(62, layer.out_fmt.frac), pool=1)
            ref = golden.run_layer(wide, h)
            got = golden.run_layer(dataclasses.replace(layer, pool=1), h)
            n = int(np.count_nonzero(ref != got))
            want = (n, 0) if layer.overflow == "saturate" else (0, n)
            assert counts[layer.name] == want
        h = golden.run_layer(layer, h)
    assert sum(sum(c) for c in counts.values()) > 0  # not vacuous


def test_quantize_prints_overflow(tmp_path, capsys):
    from hwgen.cli import main
    spec = tmp_path / "narrow.json"
    spec.write_text('{"layers": {"conv2": {"width": 6, "frac": 5, "overflow": "wrap"}}}')
    assert main(["quantize", "builtin:digits-cnn", "--scheme", str(spec)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("conv2"))
    wrapped = golden.overflow_counts(*_graph_and_input(str(spec)))["conv2"][1]
    assert wrapped > 1000 and f"{wrapped} wrap" in row
    assert f"overflow: conv2 {wrapped} wrap of the values on 450 images" in out
    assert "overflow" in out.splitlines()[1]


def _graph_and_input(scheme):
    qm = load_quantized("builtin:digits-cnn", scheme)
    return qm.graph, qm.quantize_input(qm.dataset.x_test)
