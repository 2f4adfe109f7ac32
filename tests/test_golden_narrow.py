"""Narrow accumulators (intrinsic quantization) in the IR and the golden model
(hwgen/golden/network.py narrow_dot), against a pure-Python loop written from the documented
order: acc = 0; for ci, ky, kx (kx innermost): acc = bound(acc + a·w)."""

import dataclasses

import numpy as np
import pytest

from hwgen import golden, ir
from hwgen.errors import FormatError, UnsupportedLayerError
from hwgen.golden.network import narrow_dot
from hwgen.numerics import BinaryFormat, QFormat, requantize

Q8 = QFormat(8, 0)


def bound(v, width, mode):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if mode == "saturate":
        return min(max(v, lo), hi)
    return (v - lo) % (1 << width) + lo


def reference_conv(x, weight, stride, pad, width, mode):
    """Plain ints: per image, output channel and pixel, ci outermost then ky then kx, zero
    padding as products of 0. Returns (dots (N, Cout, Ho, Wo), overflows)."""
    n_img, cin, h, w = x.shape
    cout, _, kh, kw = weight.shape
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    out = np.zeros((n_img, cout, ho, wo), dtype=np.int64)
    overflows = 0
    for n in range(n_img):
        for co in range(cout):
            for oy in range(ho):
                for ox in range(wo):
                    acc = 0
                    for ci in range(cin):
                        for ky in range(kh):
                            for kx in range(kw):
                                iy, ix = oy * stride + ky - pad, ox * stride + kx - pad
                                a = int(x[n, ci, iy, ix]) if 0 <= iy < h and 0 <= ix < w else 0
                                exact = acc + a * int(weight[co, ci, ky, kx])
                                acc = bound(exact, width, mode)
                                overflows += acc != exact
                    out[n, co, oy, ox] = acc
    return out, overflows


# --- the IR's checks ----------------------------------------------------------------------

def linear(**kw):
    return ir.Linear("fc", (3,), np.ones((2, 3)), None, Q8, [Q8] * 2, Q8, **kw)


@pytest.mark.parametrize("kw, error, message", [
    ({"acc_width": 1}, FormatError,
     r"^Layer 'fc' acc_width must be an integer in \[2, 62\], not 1$"),
    ({"acc_width": 63}, FormatError,
     r"^Layer 'fc' acc_width must be an integer in \[2, 62\], not 63$"),
    ({"acc_width": 12.0}, FormatError,
     r"^Layer 'fc' acc_width must be an integer in \[2, 62\], not 12\.0$"),
    ({"acc_width": 12, "acc_overflow": "truncate"}, FormatError,
     r"^Layer 'fc' acc_overflow must be one of saturate, wrap, not 'truncate'$"),
])
def test_ir_refuses_bad_accumulators(kw, error, message):
    with pytest.raises(error, match=message):
        linear(**kw)


def test_ir_refuses_narrow_xnor_layers():
    b = BinaryFormat()
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Layer 'x' reads binary activations \(an XNOR layer\) and "
                             r"cannot have a narrow accumulator; remove its acc_width$"):
        ir.Linear("x", (8,), np.ones((2, 8)), None, b, [b] * 2, b,
                  threshold=np.zeros(2), acc_width=6)


# --- behaviour ----------------------------------------------------------------------------

def test_hand_computed_case():
    # 100 + 100 - 100 in 8 bits: saturating 100, 127, 27; wrapping 100, -56, 100.
    a = np.array([[1, 1, 1]])
    w = np.array([[100, 100, -100]])
    assert narrow_dot(a, w, 8, "saturate") == (np.array([[27]]), 1)
    assert narrow_dot(a, w, 8, "wrap") == (np.array([[100]]), 2)
    # the order matters: -100 first never overflows
    assert narrow_dot(a[:, ::-1], w[:, ::-1], 8, "saturate") == (np.array([[100]]), 0)


@pytest.mark.parametrize("mode", ["saturate", "wrap"])
@pytest.mark.parametrize("stride, pad", [(1, 1), (2, 0)])
def test_conv_matches_the_documented_order(mode, stride, pad):
    rng = np.random.default_rng(3)
    weight = rng.integers(-128, 128, size=(3, 2, 3, 3))
    x = rng.integers(-128, 128, size=(2, 2, 5, 6))
    bias = rng.integers(-1000, 1000, size=3)
    width = 15
    layer = ir.Conv2d("c", (2, 5, 6), weight, bias, Q8, [Q8] * 3, QFormat(8, -6),
                      stride=stride, padding=pad, rounding="floor", acc_width=width,
                      acc_overflow=mode)
    graph = ir.Graph("g", (2, 5, 6), Q8, [layer])
    dots, overflows = reference_conv(x, weight, stride, pad, width, mode)
    assert overflows > 0
    exact, _ = reference_conv(x, weight, stride, pad, 64, "saturate")
    assert (dots != exact).any()
    # the bias joins after the narrow sum, in the post-processing
    want = requantize(dots + bias[None, :, None, None], 0, QFormat(8, -6), "floor")
    np.testing.assert_array_equal(golden.run(graph, x), want)
    np.testing.assert_array_equal(golden.run(graph, x, fast=False), want)
    assert golden.accumulator_overflows(graph, x) == {"c": overflows}


@pytest.mark.parametrize("mode", ["saturate", "wrap"])
def test_linear_chain_and_fast_path(mode):
    rng = np.random.default_rng(5)
    w1 = rng.integers(-128, 128, size=(6, 20))
    w2 = rng.integers(-128, 128, size=(4, 6))
    l1 = ir.Linear("fc1", (20,), w1, None, Q8, [Q8] * 6, Q8, relu=True, acc_width=12,
                   acc_overflow=mode)
    l2 = ir.Linear("fc2", (6,), w2, None, Q8, [Q8] * 4, QFormat(16, 0), acc_width=10,
                   acc_overflow=mode)
    graph = ir.Graph("g", (20,), Q8, [l1, l2])
    x = rng.integers(-128, 128, size=(7, 20))
    h = np.zeros((7, 6), dtype=np.int64)
    n1 = n2 = 0
    for i in range(7):
        for c in range(6):
            acc = 0
            for k in range(20):
                exact = acc + int(x[i, k]) * int(w1[c, k])
                acc = bound(exact, 12, mode)
                n1 += acc != exact
            h[i, c] = max(min(max(acc, -128), 127), 0)
    out = np.zeros((7, 4), dtype=np.int64)
    for i in range(7):
        for c in range(4):
            acc = 0
            for k in range(6):
                exact = acc + int(h[i, k]) * int(w2[c, k])
                acc = bound(exact, 10, mode)
                n2 += acc != exact
            out[i, c] = acc
    assert n1 > 0 and n2 > 0
    np.testing.assert_array_equal(golden.run(graph, x), out)
    np.testing.assert_array_equal(golden.run_layers(graph, x)[0], h)
    assert golden.accumulator_overflows(graph, x) == {"fc1": n1, "fc2": n2}
    # A width bit growth never reaches is today's exact layer.
    wide = ir.Graph("g", (20,), Q8, [dataclasses.replace(l, acc_width=40) for l in (l1, l2)])
    plain = ir.Graph("g", (20,), Q8, [dataclasses.replace(l, acc_width=None) for l in (l1, l2)])
    np.testing.assert_array_equal(golden.run(wide, x), golden.run(plain, x))
