"""The golden model of a whole network: an exact int64 numpy executor of the IR.

This is the specification of every bit the accelerator produces. Each IR node is run with
the arithmetic of :mod:`hwgen.ir`'s docstring::

    acc = sum(a * w) * scale + bias    # zero padding; exact integers
    out = requantize(acc, acc_frac, out_fmt, rounding, overflow)   # or thresholds
    out = relu(out); out = maxpool(out, pool)   # floor mode

Convolutions are im2col followed by one matrix product. The product is computed in int64
(exact), or in float64 through BLAS when every partial sum is provably below 2**53 in
magnitude, where float64 is exact too (each product and each running sum is an integer
that float64 represents, so no rounding ever happens, in any summation order).
"""

from __future__ import annotations

import numpy as np

from .. import ir
from ..errors import FormatError, ShapeError, UnsupportedLayerError
from ..numerics import QFormat, requantize

__all__ = ["im2col", "overflow_counts", "run", "run_layer", "run_layers"]

_FLOAT_EXACT = 2 ** 53


def _exact_matmul(a, b, extra=0):
    """``a @ b`` for int64 matrices, exact; ``extra`` bounds what is added afterwards."""
    amax = int(np.abs(a).max(initial=0))
    bmax = int(np.abs(b).max(initial=0))
    bound = a.shape[-1] * amax * bmax + extra
    if bound < _FLOAT_EXACT:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    if bound >= 2 ** 63:
        raise FormatError(f"Dot products of {a.shape[-1]} terms of magnitude up to "
                          f"{amax!r} × {bmax!r} can overflow a 64-bit accumulator")
    return a @ b


def im2col(x, kernel, stride=1, padding=0):
    """Patches of ``x`` ``(N, C, H, W)`` as rows ``(N, Ho, Wo, C*KH*KW)`` in the order of a
    weight ``(Cout, C, KH, KW)`` reshaped to ``(Cout, C*KH*KW)``; zero padding; ``stride``
    is an integer or ``(SY, SX)``."""
    kh, kw = kernel
    sy, sx = ir.stride_pair(stride)
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    win = win[:, :, ::sy, ::sx]              # (N, C, Ho, Wo, KH, KW)
    n, c, ho, wo = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n, ho, wo, c * kh * kw)


def _count_overflows(layer, acc, frac, out, counts):
    """Record in ``counts[layer.name]`` how many of ``out`` the overflow mode changed:
    ``(saturated, wrapped)``. A value counts when it differs from the same requantization
    into an unbounded format, after the ReLU (a negative value saturated and then zeroed by
    the ReLU changed nothing)."""
    wide = requantize(acc, frac, QFormat(64, layer.out_fmt.frac), layer.rounding, "saturate")
    if getattr(layer, "relu", False):
        wide = np.maximum(wide, 0)
        out = np.maximum(out, 0)
    n = int(np.count_nonzero(wide != out))
    sat, wrap = counts.get(layer.name, (0, 0))
    counts[layer.name] = (sat + n, wrap) if layer.overflow == "saturate" else (sat, wrap + n)


def _post(layer, dot, counts=None):
    """Threshold (binary outputs), or scale, bias, requantize and ReLU (channel axis last)."""
    if layer.binary_out:
        hit = np.where(layer.flip.astype(bool), dot <= layer.threshold, dot >= layer.threshold)
        return np.where(hit, 1, -1).astype(np.int64)
    acc = dot
    if layer.scale is not None:
        bound = int(np.abs(dot).max(initial=0)) * int(np.abs(layer.scale).max(initial=0))
        if bound + _bias_bound(layer) >= 2 ** 63:
            raise FormatError(f"Layer {layer.name!r} scaled sums reach {bound!r} and can "
                              f"overflow a 64-bit accumulator")
        acc = acc * layer.scale
    if layer.bias is not None:
        acc = acc + layer.bias
    out = requantize(acc, layer.acc_frac, layer.out_fmt, layer.rounding, layer.overflow)
    if counts is not None:
        _count_overflows(layer, acc, layer.acc_frac, out, counts)
    if layer.relu:
        out = np.maximum(out, 0)
    return out


def _maxpool(x, pool):
    n, c, h, w = x.shape
    ho, wo = h // pool, w // pool
    x = x[:, :, :ho * pool, :wo * pool].reshape(n, c, ho, pool, wo, pool)
    return x.max(axis=(3, 5))


def _bias_bound(layer):
    return 0 if layer.bias is None else int(np.abs(layer.bias).max(initial=0))


def _conv2d(layer, x, counts=None):
    cols = im2col(x, layer.kernel, layer.stride, layer.padding)
    n, ho, wo, k = cols.shape
    w = layer.weight.reshape(layer.out_channels, k)
    dot = _exact_matmul(cols.reshape(-1, k), w.T, _bias_bound(layer))
    out = _post(layer, dot, counts).reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)
    if layer.pool > 1:
        out = _maxpool(out, layer.pool)
    return np.ascontiguousarray(out)


def _linear(layer, x, counts=None):
    return _post(layer, _exact_matmul(x, layer.weight.T, _bias_bound(layer)), counts)


def _avgpool(layer, x, counts=None):
    n, c, h, w = x.shape
    p = layer.pool
    ho, wo = h // p, w // p
    s = x[:, :, :ho * p, :wo * p].reshape(n, c, ho, p, wo, p).sum(axis=(3, 5))
    shift = (p * p).bit_length() - 1
    out = requantize(s, layer.fmt.frac + shift, layer.out_fmt, layer.rounding, layer.overflow)
    if counts is not None:
        _count_overflows(layer, s, layer.fmt.frac + shift, out, counts)
    return out


def run_layer(layer, x, counts=None):
    """Run one IR node on a batch of integer activations ``(N, *layer.in_shape)``; a dict
    ``counts`` collects overflow counts (see :func:`overflow_counts`)."""
    if isinstance(layer, ir.Conv2d):
        return _conv2d(layer, x, counts)
    if isinstance(layer, ir.Linear):
        return _linear(layer, x, counts)
    if isinstance(layer, ir.MaxPool2d):
        return _maxpool(x, layer.pool)
    if isinstance(layer, ir.AvgPool2d):
        return _avgpool(layer, x, counts)
    if isinstance(layer, ir.Flatten):
        return x.reshape(len(x), -1)
    raise UnsupportedLayerError(f"The golden model cannot run layer {layer!r}")


def _check_input(graph, x_int):
    x = np.asarray(x_int)
    if x.dtype.kind not in "iu":
        raise FormatError(f"Golden model inputs must be integers, not an array of dtype "
                          f"{str(x.dtype)!r}")
    x = x.astype(np.int64)
    if x.shape[1:] != tuple(graph.input_shape):
        raise ShapeError(f"Graph {graph.name!r} takes inputs of shape "
                         f"(N, {', '.join(map(str, graph.input_shape))}), not {x.shape!r}")
    fmt = graph.input_fmt
    if x.size and (x.min() < fmt.min_int or x.max() > fmt.max_int):
        bad = x.min() if x.min() < fmt.min_int else x.max()
        raise FormatError(f"Input value {int(bad)!r} is outside the range of the input format "
                          f"{fmt}")
    return x


def run_layers(graph, x_int, counts=None):
    """Every layer's integer output for a batch of integer inputs.

    Parameters
    ----------
    graph : hwgen.ir.Graph
    x_int : array of int
        ``(N, *graph.input_shape)`` integers of ``graph.input_fmt``.
    counts : dict, optional
        Filled with ``{layer name: (saturated, wrapped)}`` for every layer that requantizes
        (see :func:`overflow_counts`); None (the default) costs nothing.

    Returns
    -------
    list of numpy.ndarray
        One int64 array ``(N, *layer.out_shape)`` per layer of ``graph.layers``.
    """
    x = _check_input(graph, x_int)
    outs = []
    for layer in graph.layers:
        x = run_layer(layer, x, counts)
        outs.append(x)
    return outs


def overflow_counts(graph, x_int):
    """Per layer that requantizes (Conv2d/Linear without binary outputs, AvgPool2d), how
    many values its overflow mode changed on the inputs ``x_int``: ``{name: (saturated,
    wrapped)}``. Values are counted before max-pooling, after the ReLU (a negative value
    saturated and then zeroed changed nothing); only the layer's own mode counts, so one
    of the two is always 0.

    A layer that wraps silently can ruin a network that shows nothing but a low SQNR;
    ``hwgen quantize`` prints these counts.
    """
    counts = {}
    run_layers(graph, x_int, counts)
    return counts


def run(graph, x_int):
    """The network's integer output ``(N, *graph.output_shape)`` (int64) for integer inputs
    ``(N, *graph.input_shape)``; see :func:`run_layers`."""
    outs = run_layers(graph, x_int)
    return outs[-1] if outs else _check_input(graph, x_int)
