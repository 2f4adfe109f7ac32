"""The golden model of a whole network: an exact integer executor of the IR.

This is the specification of every bit the accelerator produces. Each IR node is run with
the arithmetic of :mod:`hwgen.ir`'s docstring::

    acc = sum(a * w) * scale + bias    # zero padding; exact integers
    out = requantize(acc, acc_frac, out_fmt, rounding, overflow)   # or thresholds
    out = relu(out); out = maxpool(out, pool)   # floor mode

Narrow accumulators (intrinsic quantization)
    A layer with ``acc_width`` computes ``dot`` with :func:`narrow_dot`, the one
    specification of the order the hardware's PEs follow: the accumulator starts at 0 and
    each product, in the reduction order ``k = (ci·KH + ky)·KW + kx`` (``ci`` for a Linear
    layer), is added and then bounded to ``acc_width`` bits by ``acc_overflow``. Such layers
    always take the reference path.

Two executors compute the same integers:

The reference (:func:`run_layer`, and :func:`run_layers` with ``fast=False``)
    int64 numpy: im2col, one matrix product, :func:`hwgen.numerics.requantize`. The product
    is computed in int64, or in float64 through BLAS when every partial sum is provably
    below 2**53 in magnitude.
The fast path (the default of :func:`run_layers` and :func:`run`)
    torch on the CPU, on floating-point tensors that hold integers (times powers of two).
    A convolution or matrix product is exact in floating point when every product and every
    partial sum is a number the format represents: then no addition ever rounds, in any
    summation order, with or without fused multiply-adds.

    *Fused* (saturating layers with ``nearest_even``, ``nearest_up`` or ``floor``): the
    scale's multiplier ``m`` and the shift ``s = acc_frac - out_frac`` are folded into the
    weights, ``w·m·2**-s``, and the bias into the convolution's bias, ``(bias + h)·2**-s``,
    where ``h = 2**(s-1)`` for ``nearest_up`` (the half step; 0 otherwise and where
    ``s <= 0``). Every partial sum is then an integer of magnitude at most
    ``B = K · max|a| · max|w·m| + max|bias + h|`` times ``2**-s`` (``max|a|`` from the
    format of the tensor that produced the inputs), which float32 holds exactly when
    ``B < 2**24`` and float64 when ``B < 2**53`` (scaling by a power of two is exact).
    The sum is ``acc·2**-s`` (+ 1/2); ``floor``, ``round`` (ties to even) and the clamp to
    the output format (and 0 for the ReLU) are exact on it, and the clamp bounds are exact
    when the width is at most 24 (53) bits. Those steps are non-decreasing, so max-pooling
    comes first, on the sums.

    *Thresholds* (binary outputs) compare the sums ``K · max|a| · max|w| < 2**24`` (2**53)
    with the integer thresholds; *wrap-around* and *stochastic* layers (and every layer
    when overflow counts are asked for) take the reference's requantization on the exact
    sums, converted to int64. Anything larger runs on the reference path.

    float32 is used only when torch computes float32 convolutions and matrix products in
    IEEE arithmetic (no TF32 or bfloat16; checked on every call). Convolutions are direct or
    im2col + GEMM (oneDNN's ``convolution_direct``, torch's own im2col for float64): sums of
    products, never Winograd or FFT (NNPACK, which has those, is switched off while the fast
    path runs). :func:`fast_path` says which path a layer takes.
"""

from __future__ import annotations

import numpy as np

from .. import ir
from ..errors import FormatError, ShapeError, UnsupportedLayerError
from ..numerics import QFormat, apply_overflow, requantize

__all__ = ["accumulator_overflows", "im2col", "narrow_dot", "overflow_counts", "run",
           "run_layer", "run_layers"]

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


def narrow_dot(a, w, acc_width, overflow):
    """Dot products of the rows of ``a`` ``(M, K)`` with the rows of ``w`` ``(C, K)`` in an
    ``acc_width``-bit accumulator: ``(dot (M, C), overflows)``.

    The order (the hardware PE's, :class:`hwgen.rtl.pe.PE`, exactly)::

        acc = 0
        for k in range(K):                      # the reduction order of a, w's columns
            acc = bound(acc + a[:, k] * w[:, k])
        dot = acc

    where ``bound`` is ``overflow`` (``"saturate"``: clamp to ``[-2**(W-1), 2**(W-1) - 1]``,
    ``"wrap"``: keep the low ``W`` bits, two's complement) at ``W = acc_width`` bits, at the
    product's fractional length ``F_a + F_w``. For a layer, column ``k`` of its im2col
    matrix (:func:`im2col`) is step ``k`` of the sequencer: ``k = (ci·KH + ky)·KW + kx``,
    input channel outermost, kernel column innermost (``ci`` alone for a Linear layer);
    a zero-padding position is the addition of a product 0. The scale, the bias
    (``acc = dot·scale + bias``) and the requantization then follow in the
    post-processing unit exactly as for an exact ``dot``: the bias is never added in the
    narrow accumulator. ``overflows`` counts the additions whose result ``bound`` changed.
    """
    a = np.asarray(a, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[1]:
        raise ShapeError(f"Narrow dot products need (M, K) and (C, K) matrices, not "
                         f"{a.shape!r} and {w.shape!r}")
    fmt = QFormat(acc_width, 0)
    acc = np.zeros((a.shape[0], w.shape[0]), dtype=np.int64)
    overflows = 0
    for k in range(a.shape[1]):
        exact = acc + a[:, k, None] * w[None, :, k]
        acc = apply_overflow(exact, fmt, overflow)
        overflows += int(np.count_nonzero(acc != exact))
    return acc, overflows


def _dot(layer, a, w, acc_counts):
    """``a @ w.T`` of a dense layer: exact, or :func:`narrow_dot` with its accumulator."""
    if layer.acc_width is None:
        return _exact_matmul(a, w.T, _bias_bound(layer))
    dot, n = narrow_dot(a, w, layer.acc_width, layer.acc_overflow)
    if acc_counts is not None:
        acc_counts[layer.name] = acc_counts.get(layer.name, 0) + n
    return dot


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


def _count_overflows(layer, acc, frac, out, counts, random=None):
    """Record in ``counts[layer.name]`` how many of ``out`` the overflow mode changed:
    ``(saturated, wrapped)``. A value counts when it differs from the same requantization
    into an unbounded format, after the ReLU (a negative value saturated and then zeroed by
    the ReLU changed nothing)."""
    wide = requantize(acc, frac, QFormat(64, layer.out_fmt.frac), layer.rounding, "saturate",
                      random)
    if getattr(layer, "relu", False):
        wide = np.maximum(wide, 0)
        out = np.maximum(out, 0)
    n = int(np.count_nonzero(wide != out))
    sat, wrap = counts.get(layer.name, (0, 0))
    counts[layer.name] = (sat + n, wrap) if layer.overflow == "saturate" else (sat, wrap + n)


def _random_channel_last(layer):
    """The layer's stochastic rounding random values ``(H, W, C)`` or ``(C,)``, or None."""
    r = layer.random()
    return r if r is None or r.ndim == 1 else r.transpose(1, 2, 0)


def _post(layer, dot, counts=None):
    """Threshold (binary outputs), or scale, bias, requantize and ReLU (channel axis last;
    a convolution's ``dot`` is ``(N, H, W, C)``, a linear layer's ``(N, C)``)."""
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
    random = _random_channel_last(layer)
    out = requantize(acc, layer.acc_frac, layer.out_fmt, layer.rounding, layer.overflow,
                     random)
    if counts is not None:
        _count_overflows(layer, acc, layer.acc_frac, out, counts, random)
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


def _conv2d(layer, x, counts=None, acc_counts=None):
    cols = im2col(x, layer.kernel, layer.stride, layer.padding)
    n, ho, wo, k = cols.shape
    w = layer.weight.reshape(layer.out_channels, k)
    dot = _dot(layer, cols.reshape(-1, k), w, acc_counts)
    out = _post(layer, dot.reshape(n, ho, wo, -1), counts).transpose(0, 3, 1, 2)
    if layer.pool > 1:
        out = _maxpool(out, layer.pool)
    return np.ascontiguousarray(out)


def _linear(layer, x, counts=None, acc_counts=None):
    return _post(layer, _dot(layer, x, layer.weight, acc_counts), counts)


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


def run_layer(layer, x, counts=None, acc_counts=None):
    """Run one IR node on a batch of integer activations ``(N, *layer.in_shape)``; a dict
    ``counts`` collects overflow counts (see :func:`overflow_counts`), ``acc_counts`` those
    of narrow accumulators (see :func:`accumulator_overflows`)."""
    if isinstance(layer, ir.Conv2d):
        return _conv2d(layer, x, counts, acc_counts)
    if isinstance(layer, ir.Linear):
        return _linear(layer, x, counts, acc_counts)
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


def run_layers(graph, x_int, counts=None, *, fast=True):
    """Every layer's integer output for a batch of integer inputs.

    Parameters
    ----------
    graph : hwgen.ir.Graph
    x_int : array of int
        ``(N, *graph.input_shape)`` integers of ``graph.input_fmt``.
    counts : dict, optional
        Filled with ``{layer name: (saturated, wrapped)}`` for every layer that requantizes
        (see :func:`overflow_counts`); None (the default) costs nothing.
    fast : bool
        Use the fast path (see the module docstring; the same integers, bit for bit);
        ``False`` runs the int64 reference, :func:`run_layer` after :func:`run_layer`.

    Returns
    -------
    list of numpy.ndarray
        One int64 array ``(N, *layer.out_shape)`` per layer of ``graph.layers``.
    """
    x = _check_input(graph, x_int)
    if fast:
        return _run_fast(graph, x, counts, keep=True)
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


def accumulator_overflows(graph, x_int):
    """Per layer with a narrow accumulator (``acc_width``), how many additions its
    ``acc_overflow`` mode changed on the inputs ``x_int`` (:func:`narrow_dot`), counted
    over every output position the layer computes (pooled-away ones included): ``{name:
    count}``."""
    x = _check_input(graph, x_int)
    counts = {layer.name: 0 for layer in graph.layers if getattr(layer, "acc_width", None)}
    for layer in graph.layers:
        x = run_layer(layer, x, acc_counts=counts)
    return counts


def run(graph, x_int, *, fast=True):
    """The network's integer output ``(N, *graph.output_shape)`` (int64) for integer inputs
    ``(N, *graph.input_shape)``; see :func:`run_layers`."""
    if not graph.layers:
        return _check_input(graph, x_int)
    if not fast:
        return run_layers(graph, x_int, fast=False)[-1]
    return _run_fast(graph, _check_input(graph, x_int), None, keep=False)[-1]


# --- the fast path (see the module docstring) ---------------------------------------------

#: Integers up to this magnitude are exact in float32 / float64 (significand bits).
_EXACT_BITS = {"float32": 24, "float64": 53}
#: Largest |shift| folded into float32 / float64 weights (far from under- and overflow).
_MAX_SHIFT = {"float32": 60, "float64": 900}


def _fmt_bound(fmt):
    """The largest magnitude of an integer of ``fmt``."""
    return max(-int(fmt.min_int), int(fmt.max_int))


def _float32_is_ieee():
    """Whether torch computes float32 convolutions and matrix products in IEEE float32
    (not TF32 or bfloat16), so that exact integer sums stay exact."""
    import torch
    if torch.get_float32_matmul_precision() != "highest":
        return False
    mkldnn = torch.backends.mkldnn
    settings = [getattr(torch.backends, "fp32_precision", "none"),
                getattr(mkldnn, "fp32_precision", "none")]
    for name in ("conv", "matmul"):
        settings.append(getattr(getattr(mkldnn, name, None), "fp32_precision", "none"))
    return all(s in ("none", "ieee") for s in settings)


def _dtypes(ieee32=None):
    if ieee32 is None:
        ieee32 = _float32_is_ieee()
    return ("float32", "float64") if ieee32 else ("float64",)


def _shifts(layer):
    return layer.acc_frac - layer.out_fmt.frac


def _fused_terms(layer):
    """Per output channel ``(w·m, bias + half)``: the integer weights times the scale's
    multiplier, and the bias plus the half step that ``nearest_up`` adds (channels that
    shift right only), both in units of ``2**-shift``; or None when the post-processing
    cannot be folded into the sums (binary outputs, wrap-around, other roundings, formats
    wider than float64 holds)."""
    fmt = layer.out_fmt
    if layer.binary_out or layer.overflow != "saturate" or not isinstance(fmt, QFormat) \
            or layer.rounding not in ("nearest_even", "nearest_up", "floor"):
        return None
    w = layer.weight.reshape(layer.out_channels, -1).astype(object)
    if layer.scale is not None:
        w = w * layer.scale.astype(object)[:, None]
    shift = _shifts(layer)
    extra = np.zeros(layer.out_channels, dtype=object)
    if layer.bias is not None:
        extra += layer.bias.astype(object)
    if layer.rounding == "nearest_up":
        extra += np.array([1 << (int(s) - 1) if s > 0 else 0 for s in shift], dtype=object)
    return w, extra


def fast_path(layer, in_bound, ieee32=None):
    """How the fast path runs the Conv2d or Linear ``layer`` on inputs of magnitude at most
    ``in_bound``: ``(dtype, post)``.

    ``dtype`` (``"float32"``, ``"float64"`` or ``"int64"``) is what the sums are computed
    in; ``post`` is ``"fused"`` (scale, bias, shift and the ``nearest_up`` half step folded
    into the weights and biases, then max-pool, rounding and saturation in ``dtype``),
    ``"threshold"`` (binary outputs compared in ``dtype``) or ``"int64"`` (the reference's
    requantization on the exact sums). ``("int64", "int64")`` is the reference path.

    Every partial sum is an integer (in units of ``2**-shift`` when fused) of magnitude at
    most ``K · in_bound · max|w·m| + max|bias + half|``, and ``dtype`` holds all of those
    exactly; saturation bounds (``out_fmt``'s range) too. ``ieee32`` (default: asked
    from torch) says whether float32 may be used.
    """
    if layer.acc_width is not None:
        return "int64", "int64"
    k, in_bound = layer.reduction, int(in_bound)
    terms = _fused_terms(layer)
    dtypes = _dtypes(ieee32)
    if terms is not None:
        w, extra = terms
        shift = _shifts(layer)
        bound = max((k * in_bound * int(max(abs(v) for v in row)) if row.size else 0)
                    + abs(int(e)) for row, e in zip(w, extra))
        for dt in dtypes:
            limit = 1 << _EXACT_BITS[dt]
            if bound < limit and in_bound < limit and layer.out_fmt.width <= _EXACT_BITS[dt] \
                    and int(np.abs(shift).max()) <= _MAX_SHIFT[dt]:
                return dt, "fused"
    bound = k * in_bound * int(np.abs(layer.weight).max(initial=0))
    for dt in dtypes:
        limit = 1 << _EXACT_BITS[dt]
        if bound < limit and in_bound < limit:
            return dt, "threshold" if layer.binary_out else "int64"
    return "int64", "int64"


class _Plan:
    """A dense layer's constants as torch tensors, made once per layer and input bound."""

    def __init__(self, layer, in_bound, ieee32):
        import torch
        self.layer = layer
        self.dtype, self.post = fast_path(layer, in_bound, ieee32)
        self._plain = None
        if self.dtype == "int64":
            return
        self.torch_dtype = getattr(torch, self.dtype)
        self.shape = (1, -1) + (1,) * (2 if isinstance(layer, ir.Conv2d) else 0)
        if self.post == "threshold":
            self.threshold = self._channel(layer.threshold)
            self.flip = torch.from_numpy(layer.flip.astype(bool)).reshape(self.shape)
        elif self.post == "fused":
            w, extra = _fused_terms(layer)
            step = np.ldexp(1.0, -_shifts(layer))
            # Exact: integers below 2**53 (checked), scaled by powers of two.
            w = np.array(w, dtype=np.float64) * step[:, None]
            self.weight = torch.from_numpy(w.reshape(layer.weight.shape)).to(self.torch_dtype)
            self.bias = None
            if any(extra):
                self.bias = torch.from_numpy(np.array(extra, dtype=np.float64) * step) \
                    .to(self.torch_dtype)
            lo = int(layer.out_fmt.min_int)
            self.lo = max(lo, 0) if layer.relu else lo
            self.hi = int(layer.out_fmt.max_int)

    def _channel(self, v):
        import torch
        return torch.from_numpy(np.asarray(v, dtype=np.float64)).reshape(self.shape) \
            .to(self.torch_dtype)

    @property
    def plain_weight(self):
        """The integer weights in ``dtype``, for the sums alone."""
        import torch
        if self._plain is None:
            self._plain = torch.from_numpy(self.layer.weight.astype(np.float64)) \
                .to(self.torch_dtype)
        return self._plain


_PLANS = {}


def _plan(layer, in_bound, ieee32):
    key = (id(layer), int(in_bound), ieee32)
    plan = _PLANS.get(key)
    if plan is None or plan.layer is not layer:
        if len(_PLANS) > 256:
            _PLANS.clear()
        plan = _PLANS[key] = _Plan(layer, in_bound, ieee32)
    return plan


def _to_int(x):
    """An int64 numpy array of the integers ``x`` (a float tensor or int64 array) holds."""
    if isinstance(x, np.ndarray):
        return x
    import torch
    return x.to(torch.int64).numpy()


def _to_float(x, dtype):
    """``x`` as a torch tensor of ``dtype``; its values fit exactly (the caller's bound)."""
    import torch
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x).to(dtype)
    return x.to(dtype)


def _max_pool(x, pool):
    """``pool × pool`` max-pool of stride ``pool`` (floor mode) of a tensor ``(N, C, H, W)``:
    elementwise maxima of strided views, several times faster than ``F.max_pool2d`` on
    the CPU for small windows."""
    import torch
    n, c, h, w = x.shape
    ho, wo = h // pool, w // pool
    y = x[:, :, :ho * pool, :wo * pool].reshape(n, c, ho, pool, wo, pool)
    m = y[:, :, :, 0]
    for i in range(1, pool):
        m = torch.maximum(m, y[:, :, :, i])
    out = m[..., 0]
    for i in range(1, pool):
        out = torch.maximum(out, m[..., i])
    return out


def _sums(layer, x, weight, bias=None):
    import torch.nn.functional as F
    if isinstance(layer, ir.Conv2d):
        return F.conv2d(x, weight, bias, stride=ir.stride_pair(layer.stride),
                        padding=layer.padding)
    return F.linear(x, weight, bias)


def _fast_dense(layer, x, in_bound, counts, ieee32):
    import torch
    plan = _plan(layer, in_bound, ieee32)
    if plan.dtype == "int64":
        return run_layer(layer, _to_int(x), counts)
    xf = _to_float(x, plan.torch_dtype)
    pool = layer.pool > 1
    if plan.post == "fused" and counts is None:
        y = _sums(layer, xf, plan.weight, plan.bias)
        if pool:    # what follows is non-decreasing, so max-pooling may come first
            y = _max_pool(y, layer.pool)
        if layer.rounding == "floor":
            y = y.floor_()
        elif layer.rounding == "nearest_even":
            y = y.round_()
        else:   # nearest_up: the half step is in the bias
            y = y.floor_()
        return y.clamp_(plan.lo, plan.hi)
    dot = _sums(layer, xf, plan.plain_weight)
    if plan.post == "threshold":
        hit = torch.where(plan.flip, dot <= plan.threshold, dot >= plan.threshold)
        y = torch.where(hit, 1.0, -1.0).to(plan.torch_dtype)
        return _max_pool(y, layer.pool) if pool else y
    # The reference's requantization (and overflow counts) on the exact sums.
    d = _to_int(dot)
    if isinstance(layer, ir.Conv2d):
        out = _post(layer, d.transpose(0, 2, 3, 1), counts).transpose(0, 3, 1, 2)
        if pool:
            out = _maxpool(out, layer.pool)
        return np.ascontiguousarray(out)
    return _post(layer, d, counts)


def _run_fast(graph, x, counts, keep):
    """The fast path of :func:`run_layers` on checked int64 inputs ``x``; ``keep`` returns
    every layer's output (else only the last is converted to int64)."""
    import torch
    bound = _fmt_bound(graph.input_fmt)
    ieee32 = _float32_is_ieee()
    outs = []
    h = x
    # NNPACK (which torch may pick for float32 convolutions) uses Winograd and FFT
    # algorithms, whose sums are not exact: switched off while the fast path runs.
    with torch.no_grad(), torch.backends.nnpack.flags(enabled=False):
        for layer in graph.layers:
            if isinstance(layer, ir.Conv2d | ir.Linear):
                h = _fast_dense(layer, h, bound, counts, ieee32)
            elif isinstance(layer, ir.MaxPool2d) and not isinstance(h, np.ndarray):
                h = _max_pool(h, layer.pool)
            elif isinstance(layer, ir.Flatten):
                h = h.reshape(len(h), -1)
            else:
                h = run_layer(layer, _to_int(h), counts)
            # Every layer's outputs lie in its output format (binary: ±1); pools and
            # flattens keep their inputs' values.
            fmt = getattr(layer, "out_fmt", None)
            bound = bound if fmt is None else _fmt_bound(fmt)
            outs.append(h)
    if keep:
        return [_to_int(o) for o in outs]
    return [_to_int(outs[-1])]
