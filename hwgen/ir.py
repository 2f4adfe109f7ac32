"""The model IR: one typed, immutable node per layer, every tensor with a numeric format.

A :class:`Graph` is a chain of layers (CNNs and MLPs): the input tensor, in
``input_fmt``, flows through ``layers`` in order. Activations are laid out ``(C, H, W)``
(or ``(N,)`` after :class:`Flatten`), so flattening a ``(C, H, W)`` tensor is free: index
``c*H*W + y*W + x``.

The arithmetic of a :class:`Conv2d` or :class:`Linear` node (the same in torch, golden
and RTL)::

    dot[c]  = sum(a * w[c])                    # integers, zero padding
    acc[c]  = dot[c] * scale[c] + bias[c]      # at acc_frac[c] = in_fmt.frac + w_fmts[c].frac
                                               #   (+ scale_frac when there is a scale)
    out[c]  = requantize(acc[c], acc_frac[c], out_fmt, rounding, overflow)
                                               #   stochastic: random = layer_random(seed,
                                               #   layer_number, pre_pool_shape, pool)
    out     = relu(out)                        # if relu
    out     = maxpool(out, pool, stride=pool)  # if pool > 1 (floor mode)

Weights may be fixed point (:class:`~hwgen.numerics.QFormat`), powers of two
(:class:`~hwgen.numerics.Pow2Format`: integers 0 and ±2**(e - e_min)) or binary
(:class:`~hwgen.numerics.BinaryFormat`: ±1); activations fixed point or binary (±1; padding
is 0, contributing nothing, which the XNOR hardware gets by masking the padded bits). The
per-channel ``scale`` (an integer multiplier ``m[c]`` at ``scale_frac`` fractional bits,
e.g. a binary layer's α = mean|W| as ``m[c]·2**-scale_frac``) is optional.

A node whose ``out_fmt`` is binary has no bias, scale or ReLU: batch-norm, α and bias are
folded into an integer threshold per channel, and::

    out[c]  = +1 if (dot[c] <= threshold[c] if flip[c] else dot[c] >= threshold[c]) else -1

(``flip`` where the folded scale is negative).

A node with ``acc_width`` (intrinsic quantization) computes ``dot`` in an ``acc_width``-bit
accumulator with ``acc_overflow`` (``"saturate"`` or ``"wrap"``) applied after every
addition, in the order :func:`hwgen.golden.network.narrow_dot` documents; without it
(``None``, extrinsic quantization) the sum is exact.

Integer arrays are stored read-only, so nodes are immutable; nodes compare by identity.
Passes are pure functions ``Graph -> Graph`` that build new nodes with
:func:`dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import FormatError, ShapeError, UnsupportedLayerError
from .numerics import HW_OVERFLOW_MODES, BinaryFormat, QFormat, layer_random

__all__ = ["MAX_ACC_WIDTH", "AvgPool2d", "Conv2d", "Flatten", "Graph", "Linear", "MaxPool2d",
           "check_accumulator", "conv_shape", "frozen_int", "pooled_shape", "stride_pair"]


def frozen_int(a):
    """A read-only int64 copy of ``a``."""
    a = np.array(a, dtype=np.int64)
    a.setflags(write=False)
    return a


def _pooled(n, pool):
    return n // pool if pool > 1 else n


def stride_pair(stride):
    """``(SY, SX)`` of a stride given as one integer (square) or a pair."""
    if isinstance(stride, (tuple, list)):
        sy, sx = stride
        return int(sy), int(sx)
    return int(stride), int(stride)


def conv_shape(in_shape, weight_shape, stride, padding):
    """``(Cout, Ho, Wo)`` of a convolution of a ``(Cin, H, W)`` input by ``(Cout, Cin, KH, KW)``
    weights with a stride (an integer, or ``(SY, SX)``) and square zero padding."""
    _, h, w = in_shape
    cout, _, kh, kw = weight_shape
    sy, sx = stride_pair(stride)
    return (cout, (h + 2 * padding - kh) // sy + 1, (w + 2 * padding - kw) // sx + 1)


def pooled_shape(in_shape, pool):
    """Shape of a ``(C, H, W)`` tensor after a ``pool × pool`` pool of stride ``pool``
    (floor mode)."""
    c, h, w = in_shape
    return (c, _pooled(h, pool), _pooled(w, pool))


#: Widest narrow accumulator a layer may ask for (the golden model computes in int64).
MAX_ACC_WIDTH = 62


def check_accumulator(name, in_fmt, acc_width, acc_overflow):
    """Refuse a narrow accumulator the hardware cannot give layer ``name``: ``acc_width``
    must be None or an integer in ``[2, MAX_ACC_WIDTH]``, ``acc_overflow`` ``"saturate"`` or
    ``"wrap"``, and the layer must not read binary activations (XNOR layers reduce a packed
    word of positions per step, so there is no per-product addition to bound)."""
    if acc_overflow not in HW_OVERFLOW_MODES:
        raise FormatError(f"Layer {name!r} acc_overflow must be one of "
                          f"{', '.join(HW_OVERFLOW_MODES)}, not {acc_overflow!r}")
    if acc_width is None:
        return
    if isinstance(acc_width, bool) or not isinstance(acc_width, (int, np.integer)) \
            or not 2 <= acc_width <= MAX_ACC_WIDTH:
        raise FormatError(f"Layer {name!r} acc_width must be an integer in "
                          f"[2, {MAX_ACC_WIDTH}], not {acc_width!r}")
    if isinstance(in_fmt, BinaryFormat):
        raise UnsupportedLayerError(f"Layer {name!r} reads binary activations (an XNOR "
                                    f"layer) and cannot have a narrow accumulator; remove "
                                    f"its acc_width")


@dataclass(frozen=True, eq=False)
class _Dense:
    name: str
    in_shape: tuple
    weight: np.ndarray
    bias: np.ndarray | None
    in_fmt: QFormat
    w_fmts: tuple
    out_fmt: QFormat
    relu: bool = False
    pool: int = 1
    rounding: str = "nearest_even"
    overflow: str = "saturate"
    scale: np.ndarray | None = None
    scale_frac: int = 0
    threshold: np.ndarray | None = None
    flip: np.ndarray | None = None
    acc_width: int | None = None
    acc_overflow: str = "saturate"
    #: Stochastic rounding's seed and the layer's number (its place in the graph): the
    #: random values are :func:`hwgen.numerics.layer_random` of them (see :meth:`random`).
    seed: int = 0
    layer_number: int = 0

    def __post_init__(self):
        object.__setattr__(self, "weight", frozen_int(self.weight))
        check_accumulator(self.name, self.in_fmt, self.acc_width, self.acc_overflow)
        for name in ("seed", "layer_number"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise FormatError(f"Layer {self.name!r} {name} must be a non-negative integer, "
                                  f"not {value!r}")
        for name in ("scale", "threshold", "flip"):
            value = getattr(self, name)
            if value is not None:
                value = frozen_int(value)
                if value.shape != (self.out_channels,):
                    raise ShapeError(f"Layer {self.name!r} {name} shape must be "
                                     f"{(self.out_channels,)!r}, not {value.shape!r}")
                object.__setattr__(self, name, value)
        if isinstance(self.scale_frac, bool) or not isinstance(self.scale_frac, int) \
                or self.scale_frac < 0:
            raise FormatError(f"Layer {self.name!r} scale_frac must be a non-negative integer, "
                              f"not {self.scale_frac!r}")
        if self.binary_out:
            if self.threshold is None:
                raise FormatError(f"Layer {self.name!r} has binary outputs and needs a "
                                  f"threshold per channel")
            if self.bias is not None or self.scale is not None or self.relu:
                raise FormatError(f"Layer {self.name!r} has binary outputs: fold its bias, "
                                  f"scale and ReLU into the thresholds")
            if self.flip is None:
                object.__setattr__(self, "flip", frozen_int(np.zeros(self.out_channels)))
        elif self.threshold is not None or self.flip is not None:
            raise FormatError(f"Layer {self.name!r} has thresholds but {self.out_fmt} outputs; "
                              f"thresholds make binary outputs")
        if self.bias is not None:
            object.__setattr__(self, "bias", frozen_int(self.bias))
            if self.bias.shape != (self.out_channels,):
                raise ShapeError(f"Layer {self.name!r} bias shape must be "
                                 f"{(self.out_channels,)!r}, not {self.bias.shape!r}")
        object.__setattr__(self, "w_fmts", tuple(self.w_fmts))
        if len(self.w_fmts) != self.out_channels:
            raise ShapeError(f"Layer {self.name!r} needs one weight format per output channel "
                             f"({self.out_channels}), not {len(self.w_fmts)!r}")

    @property
    def out_channels(self):
        return self.weight.shape[0]

    @property
    def binary_out(self):
        """The outputs are binary (±1), decided by thresholds."""
        return isinstance(self.out_fmt, BinaryFormat)

    @property
    def acc_frac(self):
        """Fractional length of the accumulator (after the scale), per output channel."""
        extra = self.scale_frac if self.scale is not None else 0
        return np.array([self.in_fmt.frac + f.frac + extra for f in self.w_fmts],
                        dtype=np.int64)

    def random(self):
        """Stochastic rounding's random values for the layer's pre-pool outputs
        (:func:`hwgen.numerics.layer_random`, shape :attr:`pre_pool_shape`, channel first), or
        None when the layer rounds otherwise."""
        if self.rounding != "stochastic" or self.binary_out:
            return None
        return layer_random(self.seed, self.layer_number, self.pre_pool_shape, self.pool)

    @property
    def reduction(self):
        """K: the number of products summed for one output value."""
        return int(np.prod(self.weight.shape[1:]))

    @property
    def macs(self):
        """Multiply-accumulates of one inference, pooled-away outputs excluded."""
        return self.reduction * int(np.prod(self.pre_pool_shape_used))


@dataclass(frozen=True, eq=False)
class Conv2d(_Dense):
    """2-D convolution, stride and square zero padding, with fused requantize/ReLU/max-pool.

    ``weight`` is ``(Cout, Cin, KH, KW)``; ``in_shape`` is ``(Cin, H, W)``; ``stride`` is an
    integer (square) or ``(SY, SX)``.
    """

    stride: int = 1
    padding: int = 0

    def __post_init__(self):
        super().__post_init__()
        if self.weight.ndim != 4 or len(self.in_shape) != 3 \
                or self.weight.shape[1] != self.in_shape[0]:
            raise ShapeError(f"Layer {self.name!r} weight shape {self.weight.shape!r} does not "
                             f"match input shape {self.in_shape!r}")

    @property
    def kernel(self):
        return self.weight.shape[2], self.weight.shape[3]

    @property
    def pre_pool_shape(self):
        return conv_shape(self.in_shape, self.weight.shape, self.stride, self.padding)

    @property
    def pre_pool_shape_used(self):
        """The convolution outputs that reach the output (floor-mode pooling drops the rest)."""
        c, h, w = self.pre_pool_shape
        p = self.pool
        return (c, h // p * p, w // p * p)

    @property
    def out_shape(self):
        return pooled_shape(self.pre_pool_shape, self.pool)


@dataclass(frozen=True, eq=False)
class Linear(_Dense):
    """Fully connected layer; ``weight`` is ``(Cout, Cin)``, ``in_shape`` is ``(Cin,)``."""

    def __post_init__(self):
        super().__post_init__()
        if self.weight.ndim != 2 or tuple(self.in_shape) != (self.weight.shape[1],):
            raise ShapeError(f"Layer {self.name!r} weight shape {self.weight.shape!r} does not "
                             f"match input shape {self.in_shape!r}")
        if self.pool != 1:
            raise ShapeError(f"Layer {self.name!r} is linear and cannot pool, not {self.pool!r}")

    @property
    def pre_pool_shape(self):
        return (self.out_channels,)

    pre_pool_shape_used = pre_pool_shape

    @property
    def out_shape(self):
        return (self.out_channels,)


@dataclass(frozen=True, eq=False)
class MaxPool2d:
    """Stand-alone max-pool (kernel = stride, floor mode) on integers; format unchanged."""

    name: str
    in_shape: tuple
    fmt: QFormat
    pool: int

    @property
    def out_shape(self):
        return pooled_shape(self.in_shape, self.pool)


@dataclass(frozen=True, eq=False)
class AvgPool2d:
    """Average pool (kernel = stride, area a power of two): window sum, then requantize from
    ``fmt.frac + log2(pool**2)`` to ``out_fmt`` with ``rounding``/``overflow``."""

    name: str
    in_shape: tuple
    fmt: QFormat
    out_fmt: QFormat
    pool: int
    rounding: str = "nearest_even"
    overflow: str = "saturate"

    def __post_init__(self):
        if self.rounding == "stochastic":
            raise FormatError(f"Average pool {self.name!r} cannot round stochastically; give "
                              f"it another rounding")

    @property
    def out_shape(self):
        return pooled_shape(self.in_shape, self.pool)


@dataclass(frozen=True, eq=False)
class Flatten:
    """``(C, H, W) -> (C*H*W,)``: free, the memory layout does not change."""

    name: str
    in_shape: tuple
    fmt: QFormat

    @property
    def out_shape(self):
        return (int(np.prod(self.in_shape)),)


@dataclass(frozen=True, eq=False)
class Graph:
    """A quantized network: ``input_shape`` in ``input_fmt``, then ``layers`` in order."""

    name: str
    input_shape: tuple
    input_fmt: QFormat
    layers: tuple = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        shape = self.input_shape
        for layer in self.layers:
            if tuple(layer.in_shape) != shape:
                raise ShapeError(f"Layer {layer.name!r} expects input shape "
                                 f"{tuple(layer.in_shape)!r}, not {shape!r}")
            shape = tuple(layer.out_shape)

    @property
    def output_shape(self):
        return tuple(self.layers[-1].out_shape) if self.layers else self.input_shape

    @property
    def output_fmt(self):
        fmt = self.input_fmt
        for layer in self.layers:
            fmt = getattr(layer, "out_fmt", None) or layer.fmt
        return fmt

    @property
    def macs(self):
        return sum(layer.macs for layer in self.layers if isinstance(layer, _Dense))
