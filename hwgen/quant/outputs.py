"""What every quantizer kind shares: a layer's output keys, binary activations and the
integer thresholds that replace scale, bias and sign for binary outputs.

Output keys (every kind accepts them): ``out_width`` (8), ``frac`` (an integer or
``"auto"``), ``binary_out`` (false: the layer's outputs are ±1, decided per channel by an
integer threshold on the dot product; the sign replaces the layer's ReLU), ``rounding``,
``overflow`` and ``bias_width`` (32). Binary outputs ignore ``out_width``, ``frac``,
``rounding`` and ``overflow``.

Accumulator keys (:data:`ACC_KEYS`, among the output keys): ``acc_width`` (null: the
accumulator is sized for the dot products and never overflows, only the output is quantized,
*extrinsic* quantization; an integer: the dot product is accumulated in that many bits at
the product's fractional length, *intrinsic* quantization) and ``acc_overflow``
(``saturate`` or ``wrap``; ``saturate``), applied after every addition in the order
:func:`hwgen.golden.network.narrow_dot` documents.

Binary activations
    ``out = +1 if acc >= 0 else -1`` (sign with sign(0) = +1), where ``acc = dot·α + b`` is
    the layer's real pre-activation. In training the gradient is the straight-through
    estimator with hardtanh clipping (1 where ``|acc| <= 1``, else 0). For export (and in
    the eval forward) the comparison is done on integers: with the scale ``m`` (α's integer
    multiplier, 1 without a scale) and the integer bias ``b`` at the accumulator's
    fractional length, ``dot·m + b >= 0`` is :func:`fold_thresholds`' rule.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import FormatError, check_int
from ..numerics import HW_OVERFLOW_MODES, HW_ROUNDING_MODES, BinaryFormat, QFormat
from .fixed import MAX_BIAS_WIDTH, calibrate_frac, check_frac, check_width

__all__ = ["ACC_KEYS", "OUTPUT_KEYS", "binary_activation", "fold_thresholds", "output_format",
           "parse_output_keys", "threshold_bits"]

#: The keys every kind's layer entry accepts for the layer's output.
OUTPUT_KEYS = ("out_width", "frac", "binary_out", "rounding", "overflow", "bias_width")
#: The accumulator keys (narrow accumulators, see the module docstring).
ACC_KEYS = ("acc_width", "acc_overflow")
OUTPUT_KEYS += ACC_KEYS


def check_bool(value, what):
    """``value`` if it is a bool, else :class:`FormatError`."""
    if not isinstance(value, bool):
        raise FormatError(f"{what} must be true or false, not {value!r}")
    return value


def check_choice(value, what, choices):
    """``value`` if it is one of ``choices``, else :class:`FormatError`."""
    if not isinstance(value, str) or value not in choices:
        raise FormatError(f"{what} must be one of {', '.join(choices)}, not {value!r}")
    return value


def check_keys(obj, where, keys):
    """Raise :class:`FormatError` for a key of ``obj`` not in ``keys``."""
    if not isinstance(obj, dict):
        raise FormatError(f"{where} must be a JSON object, not {obj!r}")
    for key in obj:
        if key not in keys:
            raise FormatError(f"{where} has unknown key {key!r}; keys are {', '.join(keys)}")


def parse_output_keys(obj, where):
    """The output keys of the layer entry ``obj`` as dataclass keyword arguments."""
    kw = {}
    if "out_width" in obj:
        kw["out_width"] = check_width(obj["out_width"], f"{where}: out_width")
    if "frac" in obj:
        kw["frac"] = check_frac(obj["frac"], f"{where}: frac")
    if "binary_out" in obj:
        kw["binary_out"] = check_bool(obj["binary_out"], f"{where}: binary_out")
    if "rounding" in obj:
        kw["rounding"] = check_choice(obj["rounding"], f"{where}: rounding", HW_ROUNDING_MODES)
    if "overflow" in obj:
        kw["overflow"] = check_choice(obj["overflow"], f"{where}: overflow", HW_OVERFLOW_MODES)
    if "bias_width" in obj:
        kw["bias_width"] = check_width(obj["bias_width"], f"{where}: bias_width",
                                       MAX_BIAS_WIDTH)
    kw.update(parse_acc_keys(obj, where))
    return kw


def parse_acc_keys(obj, where):
    """The accumulator keys of the layer entry ``obj`` as dataclass keyword arguments."""
    from ..ir import MAX_ACC_WIDTH
    kw = {}
    if "acc_width" in obj and obj["acc_width"] is not None:
        kw["acc_width"] = check_int(obj["acc_width"], f"{where}: acc_width", 2, MAX_ACC_WIDTH,
                                    error=FormatError)
    elif "acc_width" in obj:
        kw["acc_width"] = None
    if "acc_overflow" in obj:
        kw["acc_overflow"] = check_choice(obj["acc_overflow"], f"{where}: acc_overflow",
                                          HW_OVERFLOW_MODES)
    return kw


def output_keys_to_json(spec):
    return {"out_width": spec.out_width, "frac": spec.frac, "binary_out": spec.binary_out,
            "rounding": spec.rounding, "overflow": spec.overflow,
            "bias_width": spec.bias_width, **acc_keys_to_json(spec)}


def acc_keys_to_json(spec):
    return {"acc_width": spec.acc_width, "acc_overflow": spec.acc_overflow}


def output_format(activations, spec):
    """The output format of a layer with ``spec``: binary, or ``Q(out_width, frac)`` with an
    ``"auto"`` frac calibrated on ``activations()``."""
    if spec.binary_out:
        return BinaryFormat()
    frac = spec.frac
    if frac == "auto":
        frac = calibrate_frac(activations(), spec.out_width, spec.rounding, spec.overflow)
    return QFormat(spec.out_width, frac)


# --- binary activations -----------------------------------------------------------------

class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x.abs() <= 1)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask


def binary_activation(x):
    """``+1 where x >= 0 else -1`` with the hardtanh straight-through gradient."""
    return _SignSTE.apply(x)


def fold_thresholds(scale, bias, bound):
    """Integer thresholds equivalent to ``sign(dot·scale + bias)`` (sign(0) = +1).

    For every integer ``dot`` with ``|dot| <= bound``, ``dot·scale[c] + bias[c] >= 0`` holds
    exactly when ``dot <= threshold[c]`` (``flip[c]``, for a negative scale) or
    ``dot >= threshold[c]`` (otherwise). Thresholds are clamped to ``[-bound - 1,
    bound + 1]``, so they need :func:`threshold_bits` bits; a zero scale gives a constant
    output (``dot >= -bound``: always +1, ``dot >= bound + 1``: always -1).

    Parameters
    ----------
    scale, bias : array of int
        Per channel: the scale's integer multiplier (1 without a scale) and the integer
        bias at the accumulator's fractional length.
    bound : int
        The largest ``|dot|`` the layer can produce.

    Returns
    -------
    (threshold, flip) : tuple of int64 numpy arrays
    """
    m = np.asarray(scale, dtype=np.int64)
    b = np.broadcast_to(np.asarray(bias, dtype=np.int64), m.shape)
    bound = check_int(bound, "Threshold bound", minimum=0)
    safe = np.where(m == 0, 1, m)
    # m > 0: dot >= -b/m  <=>  dot >= ceil(-b/m) = -(b // m)
    # m < 0: dot <= -b/m  <=>  dot <= floor(-b/m) = (-b) // m
    thr = np.where(m > 0, -(b // safe), (-b) // safe)
    thr = np.where(m == 0, np.where(b >= 0, -bound, bound + 1), thr)
    flip = (m < 0).astype(np.int64)
    return np.clip(thr, -bound - 1, bound + 1).astype(np.int64), flip


def threshold_bits(bound):
    """Bits of a signed threshold in ``[-bound - 1, bound + 1]``."""
    return int(bound + 1).bit_length() + 1
