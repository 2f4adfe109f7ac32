"""The power-of-two quantizer kind: weights in ``{0} ∪ {±2**e : e_min <= e <= e_max}``.

A weight is stored in ``bits`` bits: a zero flag, a sign and a ``bits - 2``-bit exponent
offset ``e - e_min`` (so ``2**(bits - 2)`` exponents, ``e_min = e_max - 2**(bits - 2) + 1``;
4 bits give 4 exponents), exactly :attr:`hwgen.numerics.Pow2Format.stored_bits`. In the IR
the weights are the integers ``0, ±2**(e - e_min)`` at ``frac = -e_min``, so a shift PE's
golden arithmetic is a MAC's.

Rounding is nearest in the log domain: ``e = rint(log2|w|)`` clamped to the range; values
below half the smallest magnitude (``|w| < 2**(e_min - 1)``) go to 0
(:func:`hwgen.numerics.quantize` is the one definition).

Layer keys (all optional): ``bits`` (3 to 7; 4), ``e_max`` (an integer, ``"auto"``, or a
list with one integer per output channel; ``"auto"`` picks, per layer or per channel, the
``e_max`` near ``log2 max|W|`` with the best SQNR), ``per_channel`` (false) and the output
keys of :mod:`hwgen.quant.outputs`.

Training uses the straight-through estimator of :func:`hwgen.quant.fake_quant`: the
gradient is 1 inside ``[-2**e_max, 2**e_max]`` and 0 outside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import FormatError, check_int
from ..numerics import Pow2Format, dequantize, quantize, sqnr_db
from .kinds import QuantKind, register_kind
from .outputs import (
    OUTPUT_KEYS,
    check_bool,
    check_keys,
    output_format,
    output_keys_to_json,
    parse_output_keys,
)

__all__ = ["Pow2Kind", "Pow2Spec", "calibrate_e_max", "pow2_format"]

#: Narrowest and widest power-of-two code (zero flag + sign + at least one exponent bit).
MIN_BITS, MAX_BITS = 3, 7


def _check_e_max(value, what):
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(f"{what} must be an integer or 'auto', not {value!r}")
    return value


@dataclass(frozen=True)
class Pow2Spec:
    """How to quantize one Conv2d/Linear layer with power-of-two weights (keys: module
    docstring)."""

    bits: int = 4
    e_max: object = "auto"
    per_channel: bool = False
    out_width: int = 8
    frac: object = "auto"
    binary_out: bool = False
    rounding: str = "nearest_even"
    overflow: str = "saturate"
    bias_width: int = 32
    acc_width: int | None = None
    acc_overflow: str = "saturate"

    kind = "pow2"
    KEYS = ("bits", "e_max", "per_channel") + OUTPUT_KEYS

    @classmethod
    def from_json(cls, obj, where, base=None):
        """Parse one layer entry of a JSON spec on top of ``base``."""
        check_keys(obj, where, cls.KEYS)
        kw = parse_output_keys(obj, where)
        if "bits" in obj:
            kw["bits"] = check_int(obj["bits"], f"{where}: bits", MIN_BITS, MAX_BITS,
                                   error=FormatError)
        if "e_max" in obj:
            e = obj["e_max"]
            kw["e_max"] = tuple(_check_e_max_entry(v, where) for v in e) \
                if isinstance(e, list) else _check_e_max(e, f"{where}: e_max")
        if "per_channel" in obj:
            kw["per_channel"] = check_bool(obj["per_channel"], f"{where}: per_channel")
        return replace(base or cls(), **kw)

    def to_json(self):
        e = list(self.e_max) if isinstance(self.e_max, tuple) else self.e_max
        return {"bits": self.bits, "e_max": e, "per_channel": self.per_channel,
                **output_keys_to_json(self)}


def _check_e_max_entry(value, where):
    return check_int(value, f"{where}: e_max entry", error=FormatError)


def pow2_format(e_max, bits):
    """The :class:`~hwgen.numerics.Pow2Format` of ``bits``-bit codes topping out at
    ``2**e_max``."""
    return Pow2Format(e_max - (1 << (bits - 2)) + 1, e_max)


def calibrate_e_max(w, bits):
    """The ``e_max`` for ``bits``-bit power-of-two codes that represents ``w`` best: of
    ``E0 - 2 … E0 + 1`` with ``E0 = rint(log2 max|w|)``, the highest SQNR (the largest on
    ties, which keeps the large weights)."""
    w = np.asarray(w, dtype=np.float64).ravel()
    m = float(np.max(np.abs(w), initial=0.0))
    e0 = int(np.rint(math.log2(m))) if m > 0 else 0
    best, best_sqnr = e0, -math.inf
    for e in range(e0 + 1, e0 - 3, -1):
        fmt = pow2_format(e, bits)
        s = sqnr_db(w, dequantize(quantize(w, fmt), fmt))
        if s > best_sqnr:
            best, best_sqnr = e, s
    return best


@register_kind("pow2")
class Pow2Kind(QuantKind):
    """Power-of-two weights: one :class:`~hwgen.numerics.Pow2Format` per output channel."""

    spec_type = Pow2Spec

    def weight_formats(self, layer_name, weight, spec):
        cout = weight.shape[0]
        e = spec.e_max
        if isinstance(e, tuple):
            if len(e) != cout:
                raise FormatError(f"Layer {layer_name!r} has {cout} output channels, not the "
                                  f"{len(e)!r} e_max entries of its spec")
            return tuple(pow2_format(v, spec.bits) for v in e)
        if e != "auto":
            return (pow2_format(e, spec.bits),) * cout
        if spec.per_channel:
            return tuple(pow2_format(calibrate_e_max(weight[c], spec.bits), spec.bits)
                         for c in range(cout))
        return (pow2_format(calibrate_e_max(weight, spec.bits), spec.bits),) * cout

    def output_format(self, activations, spec):
        return output_format(activations, spec)

    def bias_formats(self, in_fmt, w_fmts, bias_width):
        from ..numerics import QFormat
        return tuple(QFormat(bias_width, in_fmt.frac + f.frac) for f in w_fmts)

    def resolved_spec(self, layer):
        e = tuple(f.e_max for f in layer.w_fmts)
        bits = layer.w_fmts[0].stored_bits
        out = layer.out_fmt
        return self.spec_type(bits=bits, e_max=e, per_channel=len(set(e)) > 1,
                              out_width=out.width, frac=out.frac, binary_out=layer.binary_out,
                              rounding=layer.rounding, overflow=layer.overflow,
                              bias_width=layer.bias_width, acc_width=layer.acc_width,
                              acc_overflow=layer.acc_overflow)

    def weight_bytes(self, count_per_channel, w_fmts):
        return math.ceil(sum(count_per_channel * f.stored_bits for f in w_fmts) / 8)

    def describe(self, w_fmts):
        fmts = tuple(w_fmts)
        if len(set(fmts)) == 1:
            return str(fmts[0])
        e = [f.e_max for f in fmts]
        return f"Pow2/{fmts[0].stored_bits}b(e_max {min(e)}..{max(e)})/ch"
