"""Quantizers made by other tools (QONNX files, Brevitas modules) as hwgen formats.

QONNX's ``Quant`` and Brevitas' integer quantizers compute
``y = clamp(round(x / scale + zero_point), lo, hi) - zero_point) * scale``. hwgen's fixed
point ``Q(W, F)`` is that quantizer when ``scale = 2**-F`` and ``zero_point = 0``, with
``round`` half to even (``ROUND``; ``nearest_even``) or ``floor`` (``FLOOR``), and
``[lo, hi]`` the two's complement range of ``W`` bits. The other ranges map onto it too:

- unsigned ``W`` bits (``[0, 2**W - 1]``) is ``Q(W + 1, F)`` when a ReLU comes before it
  (both give the same values on non-negative inputs, and the ReLU makes them so);
- a narrow signed range (``[-(2**(W-1) - 1), 2**(W-1) - 1]``) is ``Q(W, F)`` after a ReLU;
- a weight quantizer's values are given to hwgen already quantized, so its rounding and
  narrow range change nothing, and an unsigned one is ``Q(W + 1, F)``.

``BipolarQuant`` (and Brevitas' 1-bit signed weights) is ``sign(x)·scale`` with
``sign(0) = +1``: binary weights with a per-channel scale, which hwgen's binary kind
(:mod:`hwgen.quant.binary`) stores as ``α = mean|W[c]|`` (exact: every ``|W[c]|`` equals the
power-of-two scale).

Anything else (a scale that is not a power of two, a non-zero zero point, another rounding
mode, two different quantizers in a row) is refused with
:class:`~hwgen.errors.UnsupportedLayerError` naming the node or module.

A layer whose output no quantizer follows (typically the last) gets the exact accumulator
as its output format: ``Q(W, F_in + F_w)`` with ``W`` the bits its largest sum needs, so
the golden model returns the same numbers as the tool's float output.

:func:`scheme_for` turns the quantizers of a chain, in execution order, into a
:class:`~hwgen.quant.Scheme` with every format fixed (nothing is calibrated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import frontend
from ..errors import UnsupportedLayerError
from ..numerics import QFormat
from .binary import BinarySpec
from .fixed import MAX_WIDTH, MIN_WIDTH, FixedSpec
from .scheme import Scheme

__all__ = ["ROUNDING", "Bipolar", "IntQuant", "bipolar", "int_quant", "scheme_for"]

#: QONNX / Brevitas rounding mode -> hwgen rounding mode.
ROUNDING = {"ROUND": "nearest_even", "FLOOR": "floor"}

#: hwgen's bias width for imported layers (integer biases at the accumulator's fraction).
BIAS_WIDTH = 32

#: The largest power-of-two exponent hwgen takes from a scale (beyond, formats make no sense).
MAX_EXPONENT = 64


@dataclass(frozen=True)
class IntQuant:
    """An integer quantizer with power-of-two scales: ``fracs`` holds ``F`` per scale value
    (one for a per-tensor scale, one per output channel otherwise), ``where`` names it."""

    where: str
    bits: int
    signed: bool
    narrow: bool
    rounding: str
    fracs: tuple

    @property
    def width(self):
        """hwgen's signed width: ``bits``, one more for an unsigned quantizer."""
        return self.bits + (not self.signed)

    def same(self, other):
        """Quantizes the same way (whatever the node's name)."""
        return isinstance(other, IntQuant) and (self.bits, self.signed, self.narrow,
                                                self.rounding, self.fracs) == \
            (other.bits, other.signed, other.narrow, other.rounding, other.fracs)

    def describe(self):
        sign = "signed" if self.signed else "unsigned"
        narrow = " narrow" if self.narrow else ""
        return f"{self.bits}-bit {sign}{narrow} scale 2**-{self.fracs[0]}"


@dataclass(frozen=True)
class Bipolar:
    """A bipolar (±scale) quantizer with power-of-two scales ``2**-fracs[c]``."""

    where: str
    fracs: tuple

    def same(self, other):
        return isinstance(other, Bipolar) and self.fracs == other.fracs

    def describe(self):
        return f"bipolar scale 2**-{self.fracs[0]}"


def _fracs(where, scale):
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    if s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise UnsupportedLayerError(f"Quantizer {where!r} has scale {_show(scale)}; hwgen "
                                    f"needs positive power-of-two scales")
    mant, exp = np.frexp(s)
    if np.any(mant != 0.5):
        bad = float(s[mant != 0.5][0])
        raise UnsupportedLayerError(
            f"Quantizer {where!r} has scale {bad!r}, not a power of two; hwgen's fixed point "
            f"needs power-of-two scales (Brevitas: the *FixedPoint quantizers)")
    fracs = tuple(int(1 - e) for e in exp)
    if any(abs(f) > MAX_EXPONENT for f in fracs):
        raise UnsupportedLayerError(f"Quantizer {where!r} has scale {_show(scale)}, beyond "
                                    f"2**±{MAX_EXPONENT}")
    return fracs


def _show(a):
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    return repr(float(a[0])) if a.size == 1 else f"{a.tolist()!r}"


def int_quant(where, scale, zero_point, bits, signed, narrow, rounding_mode):
    """An :class:`IntQuant` from a QONNX ``Quant`` node's (or a Brevitas quantizer's)
    parameters, or :class:`UnsupportedLayerError` naming ``where`` and what hwgen does not
    take. A 1-bit signed quantizer becomes a :class:`Bipolar` one."""
    zp = np.asarray(zero_point, dtype=np.float64).reshape(-1)
    if zp.size == 0 or np.any(zp != 0):
        raise UnsupportedLayerError(f"Quantizer {where!r} has zero point {_show(zero_point)}; "
                                    f"hwgen needs 0 (symmetric quantization)")
    b = np.asarray(bits, dtype=np.float64).reshape(-1)
    if b.size != 1 or not np.isfinite(b[0]) or b[0] != round(b[0]) or not 1 <= b[0] <= 32:
        raise UnsupportedLayerError(f"Quantizer {where!r} has bit width {_show(bits)}; hwgen "
                                    f"takes one integer bit width from 1 to 32")
    bits = int(b[0])
    if isinstance(rounding_mode, bytes):
        rounding_mode = rounding_mode.decode("ascii", "replace")
    rounding_mode = str(rounding_mode).upper()
    if rounding_mode not in ROUNDING:
        raise UnsupportedLayerError(f"Quantizer {where!r} rounds with {rounding_mode!r}; "
                                    f"hwgen takes {', '.join(ROUNDING)}")
    fracs = _fracs(where, scale)
    if bits == 1 and signed:
        return Bipolar(where, fracs)
    if bits + (not signed) < MIN_WIDTH or bits + (not signed) > MAX_WIDTH:
        raise UnsupportedLayerError(f"Quantizer {where!r} has {bits} bits; hwgen's fixed point "
                                    f"takes {MIN_WIDTH} to {MAX_WIDTH}")
    return IntQuant(where, bits, bool(signed), bool(narrow), ROUNDING[rounding_mode], fracs)


def bipolar(where, scale):
    """A :class:`Bipolar` quantizer from a QONNX ``BipolarQuant`` node's scale."""
    return Bipolar(where, _fracs(where, scale))


def channel_fracs(q, cout, where):
    """``q``'s fractional lengths per output channel of a layer with ``cout`` channels."""
    if len(q.fracs) == 1:
        return q.fracs * cout
    if len(q.fracs) != cout:
        raise UnsupportedLayerError(f"Quantizer {q.where!r} of {where!r} has {len(q.fracs)} "
                                    f"scales for {cout} output channels")
    return q.fracs


# --- chains ---------------------------------------------------------------------------------

def _one(quantizers, what):
    """The quantizer of a segment of the chain: none, or equal ones (idempotent)."""
    if not quantizers:
        return None
    first = quantizers[0]
    for q in quantizers[1:]:
        if not first.same(q):
            raise UnsupportedLayerError(
                f"Quantizers {first.where!r} ({first.describe()}) and {q.where!r} "
                f"({q.describe()}) both quantize {what}; hwgen takes one format per tensor")
    return first


def _segments(events):
    """``(input quantizers, {layer: (weight quantizer, output quantizers)}, order)``."""
    inputs, layers, order = [], {}, []
    current = inputs
    for ev in events:
        if ev[0] == "act":
            current.append(ev[1])
        elif ev[0] == "dense":
            _, name, wq = ev
            current = []
            layers[name] = (wq, current)
            order.append(name)
    return inputs, layers, order


def _exact_output(stage, in_fmt, w_ints, acc_fracs, bias):
    """``Q(W, F)`` holding every sum of ``stage`` exactly: ``F`` the largest accumulator
    fraction, ``W`` the bits of the largest sum (the bias rounded to the accumulator as hwgen
    stores it)."""
    out_frac = max(acc_fracs)
    a_max = max(-in_fmt.min_int, in_fmt.max_int)
    bound = 0
    for c, (w, f) in enumerate(zip(w_ints, acc_fracs)):
        b = 0 if bias is None else abs(int(np.rint(math.ldexp(float(bias[c]), f))))
        bound = max(bound, (int(np.abs(w).sum()) * a_max + b) << (out_frac - f))
    width = max(MIN_WIDTH, bound.bit_length() + 1)
    if width > MAX_WIDTH:
        raise UnsupportedLayerError(
            f"Layer {stage.name!r} has no output quantizer and its exact sums need {width} "
            f"bits, more than hwgen's {MAX_WIDTH}; quantize its output")
    return QFormat(width, out_frac)


def scheme_for(stages, events, name="imported"):
    """A :class:`~hwgen.quant.Scheme` that quantizes ``stages`` exactly as ``events`` say.

    Parameters
    ----------
    stages : tuple
        The front end's float stages of the model (:func:`hwgen.frontend.trace`); each
        Conv2d/Linear stage's first source is the layer ``events`` call it by, and its
        weights are already quantized (the quantizers' dequantized values).
    events : sequence
        In execution order: ``("act", quantizer)`` for an activation quantizer and
        ``("dense", layer name, weight quantizer)`` for a Conv2d/Linear layer.
    name : str
        The scheme's name.

    Raises
    ------
    UnsupportedLayerError
        For a chain hwgen's formats cannot reproduce exactly (see the module docstring).
    """
    inputs, layers, order = _segments(events)
    dense = [s for s in stages if isinstance(s, (frontend.ConvStage, frontend.LinearStage))]
    names = [s.sources[0] if s.sources else s.name for s in dense]
    for n in names:
        if n not in layers:
            raise UnsupportedLayerError(f"Layer {n!r} has float weights; hwgen reads models "
                                        f"whose every layer's weights are quantized")
    if names != order:
        raise UnsupportedLayerError(f"The quantized layers {order!r} do not match the model's "
                                    f"layers {names!r}")
    q_in = _one(inputs, "the input")
    if q_in is None:
        raise UnsupportedLayerError(
            "The model's input has no quantizer; hwgen needs a signed power-of-two input "
            "quantizer before the first layer (Brevitas: QuantIdentity(act_quant="
            "Int8ActPerTensorFixedPoint))")
    if not isinstance(q_in, IntQuant) or not q_in.signed or q_in.narrow \
            or q_in.rounding != "nearest_even" or len(q_in.fracs) != 1:
        raise UnsupportedLayerError(
            f"Input quantizer {q_in.where!r} ({q_in.describe()}, rounding "
            f"{getattr(q_in, 'rounding', '-')}) is not what hwgen's input takes: a signed, "
            f"full-range, per-tensor quantizer that rounds half to even")
    fmt = QFormat(q_in.bits, q_in.fracs[0])
    entries = []
    for s in stages:
        if not isinstance(s, (frontend.ConvStage, frontend.LinearStage)):
            continue
        layer = s.sources[0] if s.sources else s.name
        wq, outs = layers[layer]
        cout = s.weight.shape[0]
        w2 = np.asarray(s.weight, dtype=np.float64).reshape(cout, -1)
        if wq is None:
            raise UnsupportedLayerError(f"Layer {layer!r} has float weights; hwgen reads "
                                        f"models whose every layer's weights are quantized")
        if isinstance(wq, Bipolar):
            fr = channel_fracs(wq, cout, layer)
            scale_frac = max(14, *fr)
            w_ints = [np.full(w2.shape[1], 1 << (scale_frac - f), dtype=object) for f in fr]
            acc_fracs = [fmt.frac + scale_frac] * cout
            spec = {"kind": BinarySpec, "scale": True, "scale_frac": scale_frac}
        else:
            fr = channel_fracs(wq, cout, layer)
            w_ints = [np.rint(np.ldexp(w2[c], fr[c])).astype(np.int64) for c in range(cout)]
            acc_fracs = [fmt.frac + f for f in fr]
            spec = {"kind": FixedSpec, "weight_width": wq.width, "weight_frac": tuple(fr),
                    "per_channel": len(set(fr)) > 1}
        q_out = _one(outs, f"the output of {layer!r}")
        if q_out is None:
            out = _exact_output(s, fmt, w_ints, acc_fracs, s.bias)
            rounding = "nearest_even"
        elif isinstance(q_out, Bipolar):
            raise UnsupportedLayerError(f"Quantizer {q_out.where!r} binarizes the output of "
                                        f"{layer!r}; hwgen reads binary weights, not binary "
                                        f"activations, from other tools")
        else:
            if len(q_out.fracs) != 1:
                raise UnsupportedLayerError(f"Quantizer {q_out.where!r} has per-channel "
                                            f"scales; hwgen's activations take one scale")
            if (not q_out.signed or q_out.narrow) and not s.relu:
                raise UnsupportedLayerError(
                    f"Quantizer {q_out.where!r} ({q_out.describe()}) clamps below at "
                    f"{'0' if not q_out.signed else 'the narrow range'}, which hwgen's "
                    f"two's complement formats reproduce only after a ReLU, and layer "
                    f"{layer!r} has none")
            out = QFormat(q_out.width, q_out.fracs[0])
            rounding = q_out.rounding
        kind = spec.pop("kind")
        entries.append((s.name, kind(out_width=out.width, frac=out.frac, rounding=rounding,
                                     overflow="saturate", bias_width=BIAS_WIDTH, **spec)))
        fmt = out
    return Scheme(name, q_in.bits, q_in.fracs[0], FixedSpec(), tuple(entries))
