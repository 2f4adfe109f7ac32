"""The binary quantizer kind: weights ±1 (one stored bit, 1 ↔ +1) with a per-channel scale.

Weights binarize by sign, with sign(0) = +1 (:func:`hwgen.numerics.quantize`). Each output
channel has the scale α[c] = mean|W[c]| (BWN / XNOR-Net), stored as an integer multiplier
``m[c] = rint(α[c]·2**scale_frac)`` (nearest even) that the IR applies as
``acc = dot·m + bias`` at ``scale_frac`` extra fractional bits. The fake-quant weights are
``±m[c]·2**-scale_frac``: exactly the quantized α, so torch and the golden model agree bit
for bit. With the default ``scale_frac`` of 14, α < 2 (always, once training clips the
shadow weights to [-1, 1]) needs a 16-bit signed multiplier.

Training
    Deterministic binarization by sign, or (``stochastic``) BinaryConnect's stochastic
    binarization, ``p(+1) = hard_sigmoid(w) = clip((w + 1)/2, 0, 1)``, drawn from torch's
    generator in training mode only (evaluation and export are always deterministic). The
    gradient is straight-through where ``|w| <= 1`` and 0 elsewhere; after every optimizer
    step the training loop clips the float shadow weights to [-1, 1]
    (:meth:`hwgen.quant.QuantNetwork.clip_weights`). α follows the shadow weights (it is
    recomputed each forward; its gradient is not propagated).

Layer keys (all optional): ``scale`` (true: per-channel α; false: plain ±1), ``scale_frac``
(1 to 24; 14), ``stochastic`` (false) and the output keys of :mod:`hwgen.quant.outputs`
(``binary_out`` for binary activations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import FormatError, check_int
from ..numerics import BinaryFormat, QFormat, quantize
from .kinds import QuantKind, register_kind
from .outputs import (
    OUTPUT_KEYS,
    check_bool,
    check_keys,
    output_format,
    output_keys_to_json,
    parse_output_keys,
)

__all__ = ["SCALE_BITS", "BinaryKind", "BinarySpec", "binarize", "scale_multipliers"]

#: Bits of a scale multiplier in memory (signed; α < 2 at scale_frac 14).
SCALE_BITS = 16
MAX_SCALE_FRAC = 24


@dataclass(frozen=True)
class BinarySpec:
    """How to quantize one Conv2d/Linear layer with binary weights (keys: module
    docstring)."""

    scale: bool = True
    scale_frac: int = 14
    stochastic: bool = False
    out_width: int = 8
    frac: object = "auto"
    binary_out: bool = False
    rounding: str = "nearest_even"
    overflow: str = "saturate"
    bias_width: int = 32
    acc_width: int | None = None
    acc_overflow: str = "saturate"

    kind = "binary"
    KEYS = ("scale", "scale_frac", "stochastic") + OUTPUT_KEYS

    @classmethod
    def from_json(cls, obj, where, base=None):
        """Parse one layer entry of a JSON spec on top of ``base``."""
        check_keys(obj, where, cls.KEYS)
        kw = parse_output_keys(obj, where)
        for key in ("scale", "stochastic"):
            if key in obj:
                kw[key] = check_bool(obj[key], f"{where}: {key}")
        if "scale_frac" in obj:
            kw["scale_frac"] = check_int(obj["scale_frac"], f"{where}: scale_frac", 1,
                                         MAX_SCALE_FRAC, error=FormatError)
        return replace(base or cls(), **kw)

    def to_json(self):
        return {"scale": self.scale, "scale_frac": self.scale_frac,
                "stochastic": self.stochastic, **output_keys_to_json(self)}


def scale_multipliers(weight, scale_frac):
    """Per output channel ``rint(mean|W[c]|·2**scale_frac)`` (int64 numpy, nearest even)."""
    w = weight.detach().cpu().numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
    w = np.abs(w.astype(np.float64)).reshape(len(w), -1)
    return np.rint(np.ldexp(w.mean(axis=1), scale_frac)).astype(np.int64)


class _Binarize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, alpha, stochastic):
        if stochastic:
            p = ((w + 1) / 2).clamp(0, 1)
            b = torch.where(torch.rand_like(w) < p, 1.0, -1.0)
        else:
            b = torch.where(w >= 0, 1.0, -1.0)
        ctx.save_for_backward(w.abs() <= 1)
        b = b.to(w.dtype)
        return b if alpha is None else b * alpha
    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None


def binarize(weight, scale_frac=None, stochastic=False):
    """``sign(w)·α`` per output channel (axis 0) with α the quantized mean|W[c]|
    (``m·2**-scale_frac``), or plain ``sign(w)`` when ``scale_frac`` is None; sign(0) = +1,
    or BinaryConnect's stochastic sign. Straight-through gradient where ``|w| <= 1``."""
    alpha = None
    if scale_frac is not None:
        m = scale_multipliers(weight, scale_frac)
        shape = (-1,) + (1,) * (weight.dim() - 1)
        alpha = torch.tensor(np.ldexp(m.astype(np.float64), -scale_frac),
                             dtype=weight.dtype).reshape(shape)
    return _Binarize.apply(weight, alpha, stochastic)


@register_kind("binary")
class BinaryKind(QuantKind):
    """Binary weights: :class:`~hwgen.numerics.BinaryFormat` for every channel, plus a
    per-channel scale."""

    spec_type = BinarySpec

    def weight_formats(self, layer_name, weight, spec):
        return (BinaryFormat(),) * weight.shape[0]

    def output_format(self, activations, spec):
        return output_format(activations, spec)

    def bias_formats(self, in_fmt, w_fmts, bias_width):
        return tuple(QFormat(bias_width, in_fmt.frac) for _ in w_fmts)

    def _scale_frac(self, layer):
        spec = layer.spec if layer.spec is not None else self.spec_type()
        return spec.scale_frac if spec.scale else None

    def layer_bias_formats(self, layer):
        extra = self._scale_frac(layer) or 0
        return tuple(QFormat(layer.bias_width, layer.in_fmt.frac + extra) for _ in layer.w_fmts)

    def layer_weights(self, layer):
        spec = layer.spec if layer.spec is not None else self.spec_type()
        return binarize(layer.weight, self._scale_frac(layer),
                        stochastic=spec.stochastic and layer.training)

    def layer_scale(self, layer):
        sf = self._scale_frac(layer)
        return None if sf is None else (scale_multipliers(layer.weight, sf), sf)

    def clip_(self, layer):
        layer.weight.data.clamp_(-1.0, 1.0)

    def scale_bytes(self, layer):
        return 0 if self._scale_frac(layer) is None or layer.binary_out else \
            math.ceil(len(layer.w_fmts) * SCALE_BITS / 8)

    def resolved_spec(self, layer):
        spec = layer.spec if layer.spec is not None else self.spec_type()
        out = layer.out_fmt
        return replace(spec, out_width=out.width, frac=out.frac, binary_out=layer.binary_out,
                       rounding=layer.rounding, overflow=layer.overflow,
                       bias_width=layer.bias_width, acc_width=layer.acc_width,
                       acc_overflow=layer.acc_overflow)

    def fake_quant(self, weight, w_fmts):
        return binarize(weight)

    def int_weights(self, weight, w_fmts):
        return quantize(weight.detach(), BinaryFormat()).numpy()

    def weight_bytes(self, count_per_channel, w_fmts):
        return math.ceil(count_per_channel * len(w_fmts) / 8)

    def describe(self, w_fmts):
        return "Binary"
