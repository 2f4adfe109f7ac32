"""The ternary quantizer kind: weights {−α, 0, +α} per output channel (TWN).

Ternary weight networks (Li & Liu, 2016) keep a zero between BinaryConnect's two values:
per output channel ``c`` the threshold is ``Δ[c] = 0.7·mean|W[c]|``, a weight becomes
``t = sign(w)`` where ``|w| > Δ[c]`` and 0 elsewhere, and the scale is ``α[c] = mean|w|``
over the weights above the threshold. As integers the weights are ``{−1, 0, +1}``, the
power-of-two format with one exponent (:class:`~hwgen.numerics.Pow2Format` ``(0, 0)``), so
they run on the shift PE with a 2-bit weight field (zero flag and sign, no shifter) — a
ternary layer costs the hardware of a binary-weight one. α is an integer multiplier
``m[c] = rint(α[c]·2**scale_frac)`` applied like the binary kind's (:mod:`hwgen.quant.binary`:
``acc = dot·m + bias`` at ``scale_frac`` extra fractional bits); the fake-quant weights are
``t·m·2**-scale_frac``, so torch and the golden model agree bit for bit.

Training uses the straight-through gradient where ``|w| <= 1`` and clips the float shadow
weights to [−1, 1] after each step, as the binary kind does. Layer keys: those of the
binary kind but ``stochastic`` (``scale``, ``scale_frac`` and the output keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import FormatError, check_int
from ..numerics import Pow2Format
from .binary import MAX_SCALE_FRAC, BinaryKind, BinarySpec
from .kinds import register_kind
from .outputs import OUTPUT_KEYS, check_bool, check_keys, parse_output_keys

__all__ = ["DELTA", "TernaryKind", "TernarySpec", "ternarize", "ternary_parts"]

#: The threshold factor: Δ[c] = DELTA·mean|W[c]| (TWN's approximation of the optimum).
DELTA = 0.7
#: The integer format of a ternary weight: {−1, 0, +1}.
TERNARY_FORMAT = Pow2Format(0, 0)


@dataclass(frozen=True)
class TernarySpec(BinarySpec):
    """How to quantize one Conv2d/Linear layer with ternary weights (keys: module
    docstring)."""

    kind = "ternary"
    KEYS = ("scale", "scale_frac") + OUTPUT_KEYS

    @classmethod
    def from_json(cls, obj, where, base=None):
        """Parse one layer entry of a JSON spec on top of ``base``."""
        check_keys(obj, where, cls.KEYS)
        kw = parse_output_keys(obj, where)
        if "scale" in obj:
            kw["scale"] = check_bool(obj["scale"], f"{where}: scale")
        if "scale_frac" in obj:
            kw["scale_frac"] = check_int(obj["scale_frac"], f"{where}: scale_frac", 1,
                                         MAX_SCALE_FRAC, error=FormatError)
        return replace(base or cls(), **kw)

    def to_json(self):
        obj = super().to_json()
        del obj["stochastic"]
        return obj


def ternary_parts(weight, scale_frac=None):
    """``(t, m)``: the ternary integers ``t`` (int64 numpy, shape of ``weight``) and, with
    ``scale_frac``, the per-channel multipliers ``m = rint(α·2**scale_frac)`` (else None)."""
    w = weight.detach().cpu().numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
    w = w.astype(np.float64)
    flat = np.abs(w.reshape(len(w), -1))
    delta = DELTA * flat.mean(axis=1)
    above = flat > delta[:, None]
    t = (np.sign(w) * above.reshape(w.shape)).astype(np.int64)
    if scale_frac is None:
        return t, None
    count = above.sum(axis=1)
    alpha = np.where(count > 0, (flat * above).sum(axis=1) / np.maximum(count, 1), 0.0)
    return t, np.rint(np.ldexp(alpha, scale_frac)).astype(np.int64)


class _Ternarize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, values):
        ctx.save_for_backward(w.abs() <= 1)
        return values

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def ternarize(weight, scale_frac=None):
    """``t·α`` per output channel with α the quantized scale (``m·2**-scale_frac``), or
    plain ``t`` when ``scale_frac`` is None; straight-through gradient where ``|w| <= 1``."""
    t, m = ternary_parts(weight, scale_frac)
    values = t.astype(np.float64)
    if m is not None:
        values = values * np.ldexp(m.astype(np.float64), -scale_frac).reshape(
            (-1,) + (1,) * (weight.dim() - 1))
    return _Ternarize.apply(weight, torch.tensor(values, dtype=weight.dtype))


@register_kind("ternary")
class TernaryKind(BinaryKind):
    """Ternary weights: ``Pow2Format(0, 0)`` (the integers −1, 0, +1) for every channel,
    plus a per-channel scale."""

    spec_type = TernarySpec

    def weight_formats(self, layer_name, weight, spec):
        return (TERNARY_FORMAT,) * weight.shape[0]

    def layer_weights(self, layer):
        return ternarize(layer.weight, self._scale_frac(layer))

    def layer_scale(self, layer):
        sf = self._scale_frac(layer)
        return None if sf is None else (ternary_parts(layer.weight, sf)[1], sf)

    def fake_quant(self, weight, w_fmts):
        return ternarize(weight)

    def int_weights(self, weight, w_fmts):
        return ternary_parts(weight)[0]

    def weight_bytes(self, count_per_channel, w_fmts):
        return math.ceil(count_per_channel * len(w_fmts) * 2 / 8)

    def describe(self, w_fmts):
        return "Ternary"
