"""The golden model's fast path (torch, floating point) against a slow reference written
here from the IR's definition: Python integers and fractions, no numpy integer arithmetic,
no float. Cases cover every path the fast path picks (float32 and float64 sums with the
post-processing folded in, thresholds, the int64 requantization, the int64 fallback) and
sums at the edge of what float32 holds exactly."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from hwgen import golden, ir
from hwgen.golden.network import fast_path
from hwgen.numerics import BinaryFormat, QFormat


def _round(v, rounding):
    if rounding == "floor":
        return math.floor(v)
    if rounding == "nearest_up":
        return math.floor(v + Fraction(1, 2))
    return round(v)  # Fraction.__round__: ties to even


def _requantize(acc, acc_frac, fmt, rounding, overflow):
    q = _round(Fraction(acc) * Fraction(2) ** (fmt.frac - acc_frac), rounding)
    lo, hi = fmt.min_int, fmt.max_int
    if overflow == "saturate":
        return min(max(q, lo), hi)
    return (q - lo) % (hi - lo + 1) + lo


def _dense(layer, x):
    """One Conv2d/Linear node on an object array of Python ints, from ir.py's docstring."""
    n = len(x)
    if isinstance(layer, ir.Conv2d):
        cout, cin, kh, kw = layer.weight.shape
        sy, sx = ir.stride_pair(layer.stride)
        p = layer.padding
        _, ho, wo = layer.pre_pool_shape
        xp = np.zeros((n, cin, x.shape[2] + 2 * p, x.shape[3] + 2 * p), dtype=object)
        xp[:, :, p:p + x.shape[2], p:p + x.shape[3]] = x
        dot = np.zeros((n, cout, ho, wo), dtype=object)
        for c in range(cout):
            for ky in range(kh):
                for kx in range(kw):
                    win = xp[:, :, ky:ky + sy * (ho - 1) + 1:sy, kx:kx + sx * (wo - 1) + 1:sx]
                    w = np.array([int(v) for v in layer.weight[c, :, ky, kx]], dtype=object)
                    dot[:, c] += (win * w[None, :, None, None]).sum(axis=1)
    else:
        dot = np.zeros((n, layer.out_channels), dtype=object)
        for c in range(layer.out_channels):
            for i in range(layer.weight.shape[1]):
                dot[:, c] += x[:, i] * int(layer.weight[c, i])
    out = np.empty_like(dot)
    for idx in np.ndindex(dot.shape):
        c = idx[1]
        d = dot[idx]
        if layer.binary_out:
            t = int(layer.threshold[c])
            hit = d <= t if layer.flip[c] else d >= t
            out[idx] = 1 if hit else -1
            continue
        acc = d * (1 if layer.scale is None else int(layer.scale[c]))
        acc += 0 if layer.bias is None else int(layer.bias[c])
        q = _requantize(acc, int(layer.acc_frac[c]), layer.out_fmt, layer.rounding,
                        layer.overflow)
        out[idx] = max(q, 0) if layer.relu else q
    return _pool(out, layer.pool) if isinstance(layer, ir.Conv2d) else out


def _pool(x, pool):
    if pool == 1:
        return x
    n, c, h, w = x.shape
    out = np.empty((n, c, h // pool, w // pool), dtype=object)
    for i in range(h // pool):
        for j in range(w // pool):
            block = x[:, :, i * pool:(i + 1) * pool, j * pool:(j + 1) * pool]
            out[:, :, i, j] = block.reshape(n, c, -1).max(axis=2)
    return out


def reference(graph, x):
    h = np.array(x.tolist(), dtype=object)
    for layer in graph.layers:
        if isinstance(layer, ir.Conv2d | ir.Linear):
            h = _dense(layer, h)
        elif isinstance(layer, ir.MaxPool2d):
            h = _pool(h, layer.pool)
        else:
            h = h.reshape(len(h), -1)
    return h


# --- the cases --------------------------------------------------------------------------

def _ints(rng, fmt, shape):
    v = rng.integers(fmt.min_int, fmt.max_int, size=shape, endpoint=True)
    v.flat[:2] = [fmt.min_int, fmt.max_int]    # the extremes, always
    return v


def _conv(rng, name, in_shape, in_fmt, cout, wfmts, out_fmt, k=3, bias=100, **kw):
    weight = np.stack([_ints(rng, f, (in_shape[0], k, k)) for f in wfmts])
    bias = rng.integers(-bias, bias, size=cout)
    return ir.Conv2d(name, in_shape, weight, bias, in_fmt, wfmts, out_fmt, **kw)


def case_small(rng):
    """float32 sums: per-channel weight formats (shifts of both signs), nearest_up, ReLU,
    pooling, stride; then a flatten, a linear layer and a stand-alone max-pool before it."""
    a = QFormat(6, 3)
    wf = [QFormat(3, 0), QFormat(5, 1), QFormat(5, 2), QFormat(6, 5)]   # shifts -1, 0, 1, 4
    c1 = _conv(rng, "c1", (2, 9, 8), a, 4, wf, QFormat(10, 4), relu=True, pool=2, padding=1,
               rounding="nearest_up")
    c2 = _conv(rng, "c2", c1.out_shape, c1.out_fmt, 3, [QFormat(4, 1)] * 3, QFormat(8, -2),
               k=2, stride=(1, 2), rounding="floor")
    mp = ir.MaxPool2d("mp", c2.out_shape, c2.out_fmt, 2)
    fl = ir.Flatten("fl", mp.out_shape, c2.out_fmt)
    fc = ir.Linear("fc", fl.out_shape, _ints(rng, QFormat(6, 3), (5, fl.out_shape[0])),
                   rng.integers(-99, 99, 5), c2.out_fmt, [QFormat(6, 3)] * 5, QFormat(8, -5))
    return ir.Graph("small", (2, 9, 8), a, (c1, c2, mp, fl, fc))


def case_wide(rng):
    """float64 sums (16-bit operands), a positive scale, floor rounding."""
    a = QFormat(16, 10)
    c = _conv(rng, "c", (3, 6, 6), a, 3, [QFormat(16, 12)] * 3, QFormat(16, 4), pool=2,
              padding=1, rounding="floor", scale=[3, 0, 7], scale_frac=2, relu=True)
    return ir.Graph("wide", (3, 6, 6), a, (c,))


def case_negative_scale(rng):
    """A negative scale reverses the order: the pool must come after the requantization."""
    a = QFormat(8, 4)
    c = _conv(rng, "c", (2, 6, 6), a, 3, [QFormat(6, 3)] * 3, QFormat(8, -1), pool=2,
              scale=[-5, 2, -1], scale_frac=1, rounding="nearest_even", bias=5000)
    return ir.Graph("negscale", (2, 6, 6), a, (c,))


def case_wrap(rng):
    """Wrap-around overflow: float32 sums, the int64 requantization."""
    a = QFormat(8, 4)
    c = _conv(rng, "c", (2, 5, 5), a, 3, [QFormat(8, 6)] * 3, QFormat(4, 0), pool=2,
              padding=1, overflow="wrap", relu=True)
    return ir.Graph("wrap", (2, 5, 5), a, (c,))


def case_huge(rng):
    """Sums beyond 2**53 (30-bit weights, 28-bit activations): the int64 fallback; outputs
    too wide for float64 (60 bits)."""
    a = QFormat(28, 0)
    weight = _ints(rng, QFormat(30, 0), (4, 12))
    fc = ir.Linear("fc", (12,), weight, None, a, [QFormat(30, 0)] * 4, QFormat(60, -2),
                   rounding="nearest_even")
    return ir.Graph("huge", (12,), a, (fc,))


def case_binary(rng):
    """Binary activations and weights with thresholds (some flipped), then a fixed-point
    linear layer on ±1 inputs."""
    b = BinaryFormat()
    w = rng.choice([-1, 1], size=(4, 3, 3, 3))
    c = ir.Conv2d("c", (3, 6, 6), w, None, b, [b] * 4, b, pool=2, padding=1,
                  threshold=[-3, 0, 2, 5], flip=[0, 1, 0, 1])
    fl = ir.Flatten("fl", c.out_shape, b)
    fc = ir.Linear("fc", fl.out_shape, _ints(rng, QFormat(8, 5), (3, fl.out_shape[0])),
                   [7, -7, 0], b, [QFormat(8, 5)] * 3, QFormat(8, 1), rounding="nearest_up")
    return ir.Graph("binary", (3, 6, 6), b, (c, fl, fc))


CASES = {f.__name__[5:]: f for f in (case_small, case_wide, case_negative_scale, case_wrap,
                                      case_huge, case_binary)}


@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_equals_the_reference(name):
    rng = np.random.default_rng(sorted(CASES).index(name))
    graph = CASES[name](rng)
    x = _ints(rng, graph.input_fmt, (5,) + graph.input_shape)
    want = reference(graph, x)
    fast = golden.run_layers(graph, x)
    for layer, got in zip(graph.layers, fast):
        assert got.dtype == np.int64
    got = golden.run(graph, x)
    np.testing.assert_array_equal(got, want.astype(np.int64))
    np.testing.assert_array_equal(fast[-1], got)
    np.testing.assert_array_equal(golden.run(graph, x, fast=False), got)
    assert len(np.unique(got)) > 2   # not vacuous


def _paths(graph):
    bound = max(-graph.input_fmt.min_int, graph.input_fmt.max_int)
    out = []
    for layer in graph.layers:
        if isinstance(layer, ir.Conv2d | ir.Linear):
            out.append(fast_path(layer, bound))
            bound = max(-layer.out_fmt.min_int, layer.out_fmt.max_int)
    return out


def test_the_cases_take_every_path():
    rng = np.random.default_rng(0)
    paths = {name: _paths(make(rng)) for name, make in CASES.items()}
    assert paths["small"] == [("float32", "fused")] * 3
    assert paths["wide"] == [("float64", "fused")]
    assert paths["negative_scale"] == [("float32", "fused")]
    assert paths["wrap"] == [("float32", "int64")]
    assert paths["huge"] == [("int64", "int64")]
    assert paths["binary"] == [("float32", "threshold"), ("float32", "fused")]


@pytest.mark.parametrize("weights", [[1023], [1025], [2049], [1024, 1], [4095, 4094]])
def test_sums_at_the_edge_of_float32(weights):
    """Inputs at the format's maximum (16383, odd) times odd weights: sums just below 2**24,
    which float32 holds, and odd sums above it, which it cannot hold. (Wrap-around keeps
    the sums apart from the post-processing; the 40-bit output never wraps here.)"""
    a = QFormat(15, 0)
    k = len(weights)
    layer = ir.Linear("fc", (k,), [weights], None, a, [QFormat(16, 0)], QFormat(40, 0),
                      overflow="wrap")
    graph = ir.Graph("edge", (k,), a, (layer,))
    x = np.full((1, k), a.max_int)
    total = sum(w * a.max_int for w in weights)
    assert total % 2 == 1 and 2 ** 23 < total < 2 ** 28
    assert fast_path(layer, a.max_int) == ("float32" if total < 2 ** 24 else "float64",
                                           "int64")
    assert golden.run(graph, x).tolist() == [[total]]


def test_float32_only_when_torch_computes_ieee_float32():
    rng = np.random.default_rng(1)
    graph = case_small(rng)
    x = _ints(rng, graph.input_fmt, (3,) + graph.input_shape)
    want = golden.run(graph, x)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")   # allows bfloat16 products
    try:
        assert _paths(graph) == [("float64", "fused")] * 3
        np.testing.assert_array_equal(golden.run(graph, x), want)
    finally:
        torch.set_float32_matmul_precision(before)
