"""The fake-quant torch modules: one per IR node, computing in floating point exactly what
the golden model (:mod:`hwgen.golden`) computes in integers.

Each value is an integer ``q`` of a format times ``2**-F``, and every rounding goes through
:func:`hwgen.numerics.quantize`, the same function the golden model's
:func:`~hwgen.numerics.requantize` is specified against. Weights are quantized by their
layer's quantizer kind (:mod:`hwgen.quant.kinds`); activations, outputs and biases are fixed
point. Evaluated in **float64** the fake-quant model is bit-exact: every product of a
``W_a``-bit activation and a ``W_w``-bit weight is an integer of ``W_a + W_w`` bits (times a
power of two), a sum of ``K`` of them plus a 32-bit bias stays below ``2**53`` for every
scheme here (fixed16 with K = 400: ``2**30 · 400 + 2**31 < 2**40``), so float64 represents
every partial sum exactly, in any summation order. float32 (24-bit mantissa) is exact for
fixed4 but not for fixed8 or fixed16 sums; use it for training only.

Binary weights carry a per-channel scale α (:mod:`hwgen.quant.binary`): the fake-quant
weights are ``±m·2**-scale_frac`` with the same integer multiplier ``m`` the IR holds, so
``conv(x, ±α) + b`` is exactly ``(dot·m + bias)·2**-acc_frac``. A layer with binary outputs
(:mod:`hwgen.quant.outputs`) takes the sign of that sum in training (straight-through
gradient) and, in eval mode, compares the integer dot product with the layer's integer
thresholds, exactly as the golden model does.

A layer with a narrow accumulator (``acc_width``, intrinsic quantization) computes its
integer dot product in a loop over the reduction, in the order and with the overflow mode
:func:`hwgen.golden.network.narrow_dot` specifies (int64 tensors: exact; slow), then adds
the scale and bias and requantizes as usual. Its gradient is the exact sum's
(straight-through).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import ir
from ..errors import FormatError, ShapeError
from ..numerics import (
    BinaryFormat,
    check_overflow,
    check_rounding,
    layer_random,
    quantize,
    requantize,
)
from .fixed import fake_quant
from .kinds import DEFAULT_KIND, get_kind
from .outputs import binary_activation, fold_thresholds, threshold_bits

__all__ = [
    "QuantAvgPool2d",
    "QuantConv2d",
    "QuantFlatten",
    "QuantInput",
    "QuantLinear",
    "QuantMaxPool2d",
    "QuantNetwork",
]


class QuantInput(nn.Module):
    """Quantizes the network input to ``fmt`` (``nearest_even``, ``saturate``), exactly as
    :meth:`hwgen.quant.QuantizedModel.quantize_input` does for the hardware."""

    def __init__(self, fmt):
        super().__init__()
        self.fmt = fmt

    def forward(self, x):
        return fake_quant(x, self.fmt)

    def extra_repr(self):
        return str(self.fmt)


class _QuantDense(nn.Module):
    def __init__(self, name, in_shape, weight, bias, in_fmt, w_fmts, out_fmt, relu=False,
                 rounding="nearest_even", overflow="saturate", bias_width=32,
                 dtype=torch.float64, kind=DEFAULT_KIND, spec=None, acc_width=None,
                 acc_overflow="saturate", seed=0, layer_number=0):
        super().__init__()
        ir.check_accumulator(name, in_fmt, acc_width, acc_overflow)
        self.acc_width = acc_width
        self.acc_overflow = acc_overflow
        self.name = name
        self.in_shape = tuple(in_shape)
        self.weight = nn.Parameter(torch.tensor(np.array(weight), dtype=dtype))
        self.bias = None if bias is None else \
            nn.Parameter(torch.tensor(np.array(bias), dtype=dtype))
        self.in_fmt = in_fmt
        self.w_fmts = tuple(w_fmts)
        if len(self.w_fmts) != self.weight.shape[0]:
            raise ShapeError(f"Layer {name!r} needs {self.weight.shape[0]} weight formats, not "
                             f"{len(self.w_fmts)!r}")
        self.out_fmt = out_fmt
        # The sign of a binary output replaces the ReLU (sign(relu(x)) would be +1).
        self.relu = relu and not isinstance(out_fmt, BinaryFormat)
        self.rounding = check_rounding(rounding)
        self.overflow = check_overflow(overflow)
        #: Stochastic rounding's seed and the layer's place in the network (see
        #: :meth:`hwgen.ir.Conv2d.random`).
        self.seed = seed
        self.layer_number = layer_number
        self.bias_width = bias_width
        self.kind = get_kind(kind)
        #: The layer's spec (of ``kind``), for kinds whose values depend on more than the
        #: formats (a binary layer's scale).
        self.spec = spec

    @property
    def binary_out(self):
        """The outputs are ±1, decided by integer thresholds."""
        return isinstance(self.out_fmt, BinaryFormat)

    @property
    def bias_fmts(self):
        """Per channel: ``bias_width`` bits at the accumulator's fractional length."""
        return self.kind.layer_bias_formats(self)

    def int_weight(self):
        return self.kind.layer_int_weights(self)

    def int_scale(self):
        """``(m, scale_frac)`` of the layer's scale, or None."""
        return self.kind.layer_scale(self)

    def _dot_bound(self, w_int):
        in_max = max(-self.in_fmt.min_int, self.in_fmt.max_int)
        return int(np.prod(self.weight.shape[1:])) * in_max * int(np.abs(w_int).max(initial=0))

    def thresholds(self):
        """``(threshold, flip)`` per channel (int64 numpy) of a layer with binary outputs:
        ``sign(dot·m + bias)`` folded into integers (:func:`~hwgen.quant.outputs.
        fold_thresholds`)."""
        w_int = self.int_weight()
        sc = self.int_scale()
        m = np.ones(self.weight.shape[0], np.int64) if sc is None else sc[0]
        b = self.int_bias()
        return fold_thresholds(m, np.zeros_like(m) if b is None else b,
                               self._dot_bound(w_int))

    def int_bias(self):
        if self.bias is None:
            return None
        b = self.bias.detach()
        return np.concatenate([quantize(b[c:c + 1], f).numpy()
                               for c, f in enumerate(self.bias_fmts)])

    def _acc(self, x):
        w = self.kind.layer_weights(self)
        b = None if self.bias is None else fake_quant(self.bias, self.bias_fmts)
        acc = self._linear_op(x, w, b)
        if self.acc_width is None:
            return acc
        # The narrow accumulator's value, with the exact sum's gradient.
        dot = self._narrow_dot(x)
        sc = self.int_scale()
        w_frac = torch.tensor([f.frac for f in self.w_fmts], dtype=x.dtype)
        step = 2.0 ** -(self.in_fmt.frac + w_frac + (0 if sc is None else sc[1]))
        if sc is not None:
            step = step * torch.tensor(sc[0], dtype=x.dtype)
        shape = (1, -1) + (1,) * (dot.dim() - 2)
        narrow = dot * step.reshape(shape)
        if b is not None:
            narrow = narrow + b.detach().reshape(shape)
        return acc + (narrow - acc).detach()

    def _narrow_dot(self, x):
        """The integer dot products of the narrow accumulator (``x``'s dtype): the loop of
        :func:`hwgen.golden.network.narrow_dot`, in int64 torch."""
        xi = torch.round(x.detach() * 2.0 ** self.in_fmt.frac).to(torch.int64)
        w = torch.from_numpy(self.int_weight()).reshape(self.weight.shape[0], -1)
        if isinstance(self, QuantConv2d):
            sy, sx = ir.stride_pair(self.stride)
            cols = F.unfold(xi.to(torch.float64), self.weight.shape[2:],
                            padding=self.padding, stride=(sy, sx)).to(torch.int64)
        else:
            cols = xi[:, :, None]                              # (N, K, 1)
        lo, hi = -(1 << (self.acc_width - 1)), (1 << (self.acc_width - 1)) - 1
        acc = torch.zeros((cols.shape[0], w.shape[0], cols.shape[2]), dtype=torch.int64)
        for k in range(cols.shape[1]):
            acc = acc + w[None, :, k, None] * cols[:, None, k, :]
            if self.acc_overflow == "saturate":
                acc = acc.clamp(lo, hi)
            else:
                acc = torch.remainder(acc - lo, 1 << self.acc_width) + lo
        if isinstance(self, QuantConv2d):
            ho, wo = ir.conv_shape(self.in_shape, tuple(self.weight.shape), self.stride,
                                   self.padding)[1:]
            return acc.reshape(len(acc), -1, ho, wo).to(x.dtype)
        return acc[:, :, 0].to(x.dtype)

    def _requantize(self, acc):
        """The output values of the accumulator values ``acc``; stochastic rounding
        requantizes the exact integers (float64 holds ``acc·2**acc_frac`` exactly) with the
        golden model's random values, with a straight-through gradient."""
        if self.rounding != "stochastic":
            return fake_quant(acc, self.out_fmt, self.rounding, self.overflow)
        sc = self.int_scale()
        frac = np.array([self.in_fmt.frac + f.frac + (0 if sc is None else sc[1])
                         for f in self.w_fmts], dtype=np.int64)
        frac = frac.reshape((-1,) + (1,) * (acc.dim() - 2))
        a = torch.round(acc.detach() * torch.from_numpy(np.ldexp(1.0, frac)).to(acc.dtype))
        r = layer_random(self.seed, self.layer_number, acc.shape[1:], getattr(self, "pool", 1))
        q = requantize(a.to(torch.int64), frac, self.out_fmt, "stochastic", self.overflow, r)
        y = q.to(acc.dtype) * 2.0 ** -self.out_fmt.frac
        return acc + (y - acc).detach()

    def _dense(self, x):
        """The layer's output before pooling."""
        if not self.binary_out:
            y = self._requantize(self._acc(x))
            return F.relu(y) if self.relu else y
        if self.training:
            return binary_activation(self._acc(x))
        # The integer comparison of the hardware: x·2**F_in and the weights' integers are
        # integers, and so is every partial sum of their dot product (exact in float64).
        if self.acc_width is not None:
            dot = self._narrow_dot(x)
        else:
            w_int = torch.tensor(self.int_weight(), dtype=x.dtype)
            dot = self._linear_op(x * 2.0 ** self.in_fmt.frac, w_int, None)
        thr, flip = self.thresholds()
        shape = (1, -1) + (1,) * (dot.dim() - 2)
        thr = torch.tensor(thr, dtype=x.dtype).reshape(shape)
        flip = torch.tensor(flip.astype(bool)).reshape(shape)
        hit = torch.where(flip, dot <= thr, dot >= thr)
        return torch.where(hit, 1.0, -1.0).to(x.dtype)

    def _ir_extras(self):
        """The IR node's scale/threshold keywords (and its bias, which thresholds absorb)."""
        if self.binary_out:
            thr, flip = self.thresholds()
            extra = {"bias": None, "threshold": thr, "flip": flip, "relu": False}
            if self.acc_width is not None:
                extra.update(acc_width=self.acc_width, acc_overflow=self.acc_overflow)
            return extra
        sc = self.int_scale()
        extra = {"bias": self.int_bias(), "relu": self.relu}
        if self.acc_width is not None:
            extra.update(acc_width=self.acc_width, acc_overflow=self.acc_overflow)
        if sc is not None:
            extra.update(scale=sc[0], scale_frac=sc[1])
        return extra

    @property
    def weight_bytes(self):
        """Bytes of the weights, scale multipliers included."""
        return self.kind.weight_bytes(int(np.prod(self.weight.shape[1:])), self.w_fmts) + \
            self.kind.scale_bytes(self)

    @property
    def bias_bytes(self):
        """Bytes of the biases, or of the thresholds and flip bits of binary outputs."""
        if self.binary_out:
            bits = threshold_bits(self._dot_bound(self.int_weight())) + 1
            return math.ceil(self.weight.shape[0] * bits / 8)
        return 0 if self.bias is None else math.ceil(sum(f.width for f in self.bias_fmts) / 8)

    @property
    def weight_fmt_str(self):
        """The weight formats in a few characters (the kind's description)."""
        return self.kind.describe(self.w_fmts)

    def extra_repr(self):
        return (f"{self.name!r}, in={self.in_fmt}, w={self.weight_fmt_str}, "
                f"out={self.out_fmt}, relu={self.relu}, {self.rounding}, {self.overflow}")


class QuantConv2d(_QuantDense):
    """Fake-quant Conv2d with fused requantization, ReLU and max-pool (see
    :class:`hwgen.ir.Conv2d` for the arithmetic it reproduces).

    Parameters
    ----------
    name : str
        The IR layer name.
    in_shape : tuple
        ``(Cin, H, W)``.
    weight, bias : array
        Float weights ``(Cout, Cin, KH, KW)`` and bias ``(Cout,)`` (or None); they become
        trainable parameters of ``dtype``.
    in_fmt, out_fmt : QFormat
        Formats of the layer's input and output activations.
    w_fmts : sequence
        One weight format of ``kind`` per output channel (all equal for per-tensor
        quantization).
    stride, padding, relu, pool, rounding, overflow
        As in :class:`hwgen.ir.Conv2d`.
    bias_width : int
        Bits of the bias, stored at the accumulator's fractional length.
    kind : str
        The weights' quantizer kind (:mod:`hwgen.quant.kinds`).
    """

    def __init__(self, name, in_shape, weight, bias, in_fmt, w_fmts, out_fmt, *, stride=1,
                 padding=0, relu=False, pool=1, rounding="nearest_even", overflow="saturate",
                 bias_width=32, dtype=torch.float64, kind=DEFAULT_KIND, spec=None,
                 acc_width=None, acc_overflow="saturate", seed=0, layer_number=0):
        super().__init__(name, in_shape, weight, bias, in_fmt, w_fmts, out_fmt, relu,
                         rounding, overflow, bias_width, dtype, kind, spec, acc_width,
                         acc_overflow, seed, layer_number)
        self.stride = stride
        self.padding = padding
        self.pool = pool

    def _linear_op(self, x, w, b):
        return F.conv2d(x, w, b, stride=self.stride, padding=self.padding)

    def forward(self, x):
        y = self._dense(x)
        return F.max_pool2d(y, self.pool) if self.pool > 1 else y

    def to_ir(self):
        extra = self._ir_extras()
        return ir.Conv2d(self.name, self.in_shape, self.int_weight(), extra.pop("bias"),
                         self.in_fmt, self.w_fmts, self.out_fmt, pool=self.pool,
                         rounding=self.rounding, overflow=self.overflow, stride=self.stride,
                         padding=self.padding, seed=self.seed,
                         layer_number=self.layer_number, **extra)


class QuantLinear(_QuantDense):
    """Fake-quant Linear with fused requantization and ReLU (parameters as
    :class:`QuantConv2d`, without stride, padding and pool)."""

    def __init__(self, name, in_shape, weight, bias, in_fmt, w_fmts, out_fmt, *, relu=False,
                 rounding="nearest_even", overflow="saturate", bias_width=32,
                 dtype=torch.float64, kind=DEFAULT_KIND, spec=None, acc_width=None,
                 acc_overflow="saturate", seed=0, layer_number=0):
        super().__init__(name, in_shape, weight, bias, in_fmt, w_fmts, out_fmt, relu,
                         rounding, overflow, bias_width, dtype, kind, spec, acc_width,
                         acc_overflow, seed, layer_number)

    def _linear_op(self, x, w, b):
        return F.linear(x, w, b)

    def forward(self, x):
        return self._dense(x)

    def to_ir(self):
        extra = self._ir_extras()
        return ir.Linear(self.name, self.in_shape, self.int_weight(), extra.pop("bias"),
                         self.in_fmt, self.w_fmts, self.out_fmt, rounding=self.rounding,
                         overflow=self.overflow, seed=self.seed,
                         layer_number=self.layer_number, **extra)


class QuantMaxPool2d(nn.Module):
    """Stand-alone max-pool; the format passes through."""

    def __init__(self, name, in_shape, fmt, pool):
        super().__init__()
        self.name, self.in_shape, self.fmt, self.out_fmt, self.pool = \
            name, tuple(in_shape), fmt, fmt, pool

    def forward(self, x):
        return F.max_pool2d(x, self.pool)

    def to_ir(self):
        return ir.MaxPool2d(self.name, self.in_shape, self.fmt, self.pool)


class QuantAvgPool2d(nn.Module):
    """Average pool: the window mean (exact: the area is a power of two) requantized to
    ``out_fmt``."""

    def __init__(self, name, in_shape, fmt, out_fmt, pool, rounding="nearest_even",
                 overflow="saturate"):
        super().__init__()
        self.name, self.in_shape, self.fmt, self.out_fmt, self.pool = \
            name, tuple(in_shape), fmt, out_fmt, pool
        self.rounding, self.overflow = check_rounding(rounding), check_overflow(overflow)
        if self.rounding == "stochastic":
            raise FormatError(f"Average pool {name!r} cannot round stochastically; give it "
                              f"another rounding")

    def forward(self, x):
        return fake_quant(F.avg_pool2d(x, self.pool), self.out_fmt, self.rounding,
                          self.overflow)

    def to_ir(self):
        return ir.AvgPool2d(self.name, self.in_shape, self.fmt, self.out_fmt, self.pool,
                            self.rounding, self.overflow)


class QuantFlatten(nn.Module):
    """``(C, H, W) -> (C·H·W,)``; the format passes through."""

    def __init__(self, name, in_shape, fmt):
        super().__init__()
        self.name, self.in_shape, self.fmt, self.out_fmt = name, tuple(in_shape), fmt, fmt

    def forward(self, x):
        return torch.flatten(x, 1)

    def to_ir(self):
        return ir.Flatten(self.name, self.in_shape, self.fmt)


class QuantNetwork(nn.Module):
    """A chain of fake-quant layers that mirrors an IR graph one module per node.

    ``forward`` takes float inputs (any float dtype; converted to the parameters' dtype),
    quantizes them to ``input_fmt`` and returns the dequantized output values. In float64
    it equals ``dequantize(golden.run(graph, quantize_input(x)), graph.output_fmt)``
    exactly.
    """

    def __init__(self, name, input_shape, input_fmt, layers, scheme=None):
        super().__init__()
        self.name = name
        self.input_shape = tuple(input_shape)
        self.input = QuantInput(input_fmt)
        self.layers = nn.ModuleList(layers)
        self.scheme = scheme

    @property
    def input_fmt(self):
        return self.input.fmt

    def forward(self, x):
        p = next(self.parameters(), None)
        dtype = p.dtype if p is not None else torch.float64
        x = x if isinstance(x, torch.Tensor) else torch.tensor(np.array(x))
        x = self.input(x.to(dtype))
        for layer in self.layers:
            x = layer(x)
        return x

    def clip_weights(self):
        """Clip every layer's float shadow weights as its kind asks (binary weights to
        [-1, 1]); the training loop calls this after each optimizer step."""
        with torch.no_grad():
            for layer in self.layers:
                if isinstance(layer, _QuantDense):
                    layer.kind.clip_(layer)

    def to_graph(self, name=None):
        """The IR graph with integer weights quantized from the current parameters."""
        return ir.Graph(name or self.name, self.input_shape, self.input_fmt,
                        tuple(layer.to_ir() for layer in self.layers))

    def resolved_scheme(self):
        """A :class:`~hwgen.quant.Scheme` with every fractional length fixed to this
        network's, so that :func:`~hwgen.quant.build_network` rebuilds the same formats
        without calibrating (QAT checkpoints store it)."""
        from .fixed import FixedSpec
        from .scheme import Scheme
        specs = []
        for layer in self.layers:
            if isinstance(layer, _QuantDense):
                specs.append((layer.name, layer.kind.resolved_spec(layer)))
            elif isinstance(layer, QuantAvgPool2d):
                specs.append((layer.name, FixedSpec(rounding=layer.rounding,
                                                    overflow=layer.overflow)))
        name = self.scheme.name if self.scheme is not None else "resolved"
        seed = self.scheme.seed if self.scheme is not None else 0
        return Scheme(name, self.input_fmt.width, self.input_fmt.frac, FixedSpec(),
                      tuple(specs), seed=seed)
