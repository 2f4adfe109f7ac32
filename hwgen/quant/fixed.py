"""The fixed-point quantizer kind: ``Q(W, F)`` weights with calibrated fractional lengths.

Layer keys (all optional): ``width`` (weights and outputs; 8), ``weight_width`` and
``out_width`` (override one of the two), ``frac`` (output fractional length, an integer or
``"auto"``), ``weight_frac`` (an integer, ``"auto"``, or a list with one integer per output
channel), ``per_channel`` (per-output-channel weight formats; false), ``rounding``
(``nearest_even``, ``nearest_up``, ``floor`` or ``stochastic``: the layer's requantization;
``nearest_even``; stochastic rounding's seed is the scheme's ``seed``), ``overflow``
(``saturate`` or ``wrap``; ``saturate``), ``bias_width`` (32), ``acc_width`` and
``acc_overflow`` (narrow accumulators, :mod:`hwgen.quant.outputs`).
Widths are at least 2: a signed 1-bit integer holds only -1 and 0 (binary weights
are a kind of their own).

``"auto"`` fractional lengths are calibrated (dynamic fixed point, :func:`calibrate_frac`).

Backward passes use the straight-through estimator: the gradient of ``quantize`` is 1
inside the format's range and (for ``saturate``) 0 where the value was clamped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import FormatError, ShapeError, check_int
from ..numerics import (
    HW_OVERFLOW_MODES,
    HW_ROUNDING_MODES,
    QFormat,
    dequantize,
    quantize,
    sqnr_db,
    stochastic_random,
)
from .kinds import QuantKind, register_kind

__all__ = ["MAX_WIDTH", "MIN_WIDTH", "FixedKind", "FixedSpec", "calibrate_frac", "fake_quant"]

#: Narrowest weight/activation width a fixed-point spec accepts (see the module docstring).
MIN_WIDTH = 2
#: Widest weight/activation width a fixed-point spec accepts.
MAX_WIDTH = 32
#: Widest bias.
MAX_BIAS_WIDTH = 48


# --- the spec --------------------------------------------------------------------------

def check_width(value, what, maximum=MAX_WIDTH):
    """``value`` if it is a width a fixed-point spec accepts, else :class:`FormatError`."""
    return check_int(value, what, MIN_WIDTH, maximum, error=FormatError)


def check_frac(value, what):
    """``value`` if it is an integer or ``"auto"``, else :class:`FormatError`."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(f"{what} must be an integer or 'auto', not {value!r}")
    return value


def _choice(value, what, choices):
    if not isinstance(value, str) or value not in choices:
        raise FormatError(f"{what} must be one of {', '.join(choices)}, not {value!r}")
    return value


@dataclass(frozen=True)
class FixedSpec:
    """How to quantize one Conv2d/Linear layer in fixed point (keys: module docstring)."""

    weight_width: int = 8
    out_width: int = 8
    weight_frac: object = "auto"
    frac: object = "auto"
    per_channel: bool = False
    rounding: str = "nearest_even"
    overflow: str = "saturate"
    bias_width: int = 32
    binary_out: bool = False
    acc_width: int | None = None
    acc_overflow: str = "saturate"

    kind = "fixed"
    KEYS = ("width", "weight_width", "out_width", "frac", "weight_frac", "per_channel",
            "rounding", "overflow", "bias_width", "binary_out", "acc_width", "acc_overflow")

    @classmethod
    def from_json(cls, obj, where, base=None):
        """Parse one layer entry of a JSON spec on top of ``base``."""
        base = base or cls()
        if not isinstance(obj, dict):
            raise FormatError(f"{where} must be a JSON object, not {obj!r}")
        for key in obj:
            if key not in cls.KEYS:
                raise FormatError(f"{where} has unknown key {key!r}; keys are "
                                  f"{', '.join(cls.KEYS)}")
        kw = {}
        if "width" in obj:
            kw["weight_width"] = kw["out_width"] = check_width(obj["width"], f"{where}: width")
        for key in ("weight_width", "out_width"):
            if key in obj:
                kw[key] = check_width(obj[key], f"{where}: {key}")
        if "bias_width" in obj:
            kw["bias_width"] = check_width(obj["bias_width"], f"{where}: bias_width",
                                           MAX_BIAS_WIDTH)
        if "frac" in obj:
            kw["frac"] = check_frac(obj["frac"], f"{where}: frac")
        if "weight_frac" in obj:
            wf = obj["weight_frac"]
            if isinstance(wf, list):
                kw["weight_frac"] = tuple(check_int(f, f"{where}: weight_frac entry",
                                                    error=FormatError) for f in wf)
            else:
                kw["weight_frac"] = check_frac(wf, f"{where}: weight_frac")
        if "per_channel" in obj:
            if not isinstance(obj["per_channel"], bool):
                raise FormatError(f"{where}: per_channel must be true or false, not "
                                  f"{obj['per_channel']!r}")
            kw["per_channel"] = obj["per_channel"]
        if "rounding" in obj:
            kw["rounding"] = _choice(obj["rounding"], f"{where}: rounding", HW_ROUNDING_MODES)
        if "overflow" in obj:
            kw["overflow"] = _choice(obj["overflow"], f"{where}: overflow", HW_OVERFLOW_MODES)
        if "binary_out" in obj:
            if not isinstance(obj["binary_out"], bool):
                raise FormatError(f"{where}: binary_out must be true or false, not "
                                  f"{obj['binary_out']!r}")
            kw["binary_out"] = obj["binary_out"]
        from .outputs import parse_acc_keys
        kw.update(parse_acc_keys(obj, where))
        return replace(base, **kw)

    def to_json(self):
        wf = list(self.weight_frac) if isinstance(self.weight_frac, tuple) else self.weight_frac
        return {"weight_width": self.weight_width, "out_width": self.out_width,
                "weight_frac": wf, "frac": self.frac, "per_channel": self.per_channel,
                "rounding": self.rounding, "overflow": self.overflow,
                "bias_width": self.bias_width, "binary_out": self.binary_out,
                "acc_width": self.acc_width, "acc_overflow": self.acc_overflow}


# --- calibration -----------------------------------------------------------------------

def _sample(x, limit=1 << 20):
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size > limit:
        # A fixed stride keeps calibration deterministic.
        x = x[:: -(-x.size // limit)]
    return x


def calibrate_frac(x, width, rounding="nearest_even", overflow="saturate", signed=True):
    """The fractional length for ``width``-bit integers that represents ``x`` best.

    ``IL = ceil(log2 max|x|)`` gives ``F0 = width - IL - signed``; of ``F0-1 … F0+3`` the
    ``F`` with the highest SQNR wins (the smallest on ties). Stochastic rounding is measured
    with the random values of seed 0, layer 0 at the samples' flat positions.
    """
    x = _sample(x)
    random = stochastic_random(0, 0, np.arange(x.size)) if rounding == "stochastic" else None
    m = float(np.max(np.abs(x), initial=0.0))
    il = math.ceil(math.log2(m)) if m > 0 else 0
    f0 = width - il - int(signed)
    best, best_sqnr = f0, -math.inf
    for f in range(f0 - 1, f0 + 4):
        fmt = QFormat(width, f, signed)
        s = sqnr_db(x, dequantize(quantize(x, fmt, rounding, overflow, random), fmt))
        if s > best_sqnr:
            best, best_sqnr = f, s
    return best


# --- fake quantization with the straight-through estimator ------------------------------

def _fmt_list(fmts, n):
    if isinstance(fmts, (tuple, list)):
        if len(fmts) != n:
            raise ShapeError(f"Per-channel quantization needs {n} formats, not {len(fmts)!r}")
        return list(fmts)
    return None


class _FakeQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, fmts, rounding, overflow):
        xs = x.detach()
        per = _fmt_list(fmts, xs.shape[0] if xs.dim() else 0)
        if per is None:
            q = quantize(xs, fmts, rounding, overflow)
            scale = torch.tensor(2.0 ** -fmts.frac, dtype=x.dtype)
            lo = fmts.min_int * 2.0 ** -fmts.frac
            hi = fmts.max_int * 2.0 ** -fmts.frac
            y = q.to(x.dtype) * scale
        else:
            q = torch.cat([quantize(xs[c:c + 1], f, rounding, overflow) for c, f in enumerate(per)])
            shape = (-1,) + (1,) * (xs.dim() - 1)
            scale = torch.tensor([2.0 ** -f.frac for f in per], dtype=x.dtype).reshape(shape)
            lo = torch.tensor([f.min_int * 2.0 ** -f.frac for f in per],
                              dtype=x.dtype).reshape(shape)
            hi = torch.tensor([f.max_int * 2.0 ** -f.frac for f in per],
                              dtype=x.dtype).reshape(shape)
            y = q.to(x.dtype) * scale
        if overflow == "saturate":
            ctx.save_for_backward((xs >= lo) & (xs <= hi))
        else:
            ctx.save_for_backward(None)
        return y

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return (grad if mask is None else grad * mask), None, None, None


def fake_quant(x, fmt, rounding="nearest_even", overflow="saturate"):
    """``dequantize(quantize(x, fmt, …))`` in ``x``'s dtype, with a straight-through
    gradient. ``fmt`` is a :class:`~hwgen.numerics.QFormat`, or a sequence of them, one per
    index of axis 0 (per-output-channel weights)."""
    return _FakeQuant.apply(x, tuple(fmt) if isinstance(fmt, list) else fmt, rounding,
                            overflow)


# --- the kind --------------------------------------------------------------------------

@register_kind("fixed")
class FixedKind(QuantKind):
    """Fixed-point weights: one :class:`~hwgen.numerics.QFormat` per output channel."""

    spec_type = FixedSpec

    def weight_formats(self, layer_name, weight, spec):
        cout = weight.shape[0]
        w, wf = spec.weight_width, spec.weight_frac
        if isinstance(wf, tuple):
            if len(wf) != cout:
                raise FormatError(f"Layer {layer_name!r} has {cout} output channels, not the "
                                  f"{len(wf)!r} weight_frac entries of its spec")
            return tuple(QFormat(w, f) for f in wf)
        if wf != "auto":
            return (QFormat(w, wf),) * cout
        if spec.per_channel:
            return tuple(QFormat(w, calibrate_frac(weight[c], w)) for c in range(cout))
        return (QFormat(w, calibrate_frac(weight, w)),) * cout

    def output_format(self, activations, spec):
        from .outputs import output_format
        return output_format(activations, spec)

    def bias_formats(self, in_fmt, w_fmts, bias_width):
        return tuple(QFormat(bias_width, in_fmt.frac + f.frac) for f in w_fmts)

    def resolved_spec(self, layer):
        wf = tuple(f.frac for f in layer.w_fmts)
        return self.spec_type(weight_width=layer.w_fmts[0].width, out_width=layer.out_fmt.width,
                         weight_frac=wf, frac=layer.out_fmt.frac, per_channel=len(set(wf)) > 1,
                         rounding=layer.rounding, overflow=layer.overflow,
                         bias_width=layer.bias_width, binary_out=layer.binary_out,
                         acc_width=layer.acc_width, acc_overflow=layer.acc_overflow)

    def weight_bytes(self, count_per_channel, w_fmts):
        return math.ceil(sum(count_per_channel * f.width for f in w_fmts) / 8)

    def describe(self, w_fmts):
        fmts = tuple(w_fmts)
        if len(set(fmts)) == 1:
            return str(fmts[0])
        fr = [f.frac for f in fmts]
        widths = {f.width for f in fmts}
        w = widths.pop() if len(widths) == 1 else "*"
        return f"Q({w},{min(fr)}..{max(fr)})/ch"
