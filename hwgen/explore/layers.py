"""What ``hwgen analyze`` and ``hwgen sensitivity`` share: the widths to try, the float
stages that carry weights, what each of them multiplies, and one layer quantized at a time.

A layer's *activations* are what it multiplies: its input (the network's input for the
first layer, else the previous stage's output), the tensor whose format the hardware's
multipliers see beside the weights.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import torch

from .. import frontend
from ..errors import ArgumentError, check_int
from ..numerics import QFormat, dequantize, quantize, sqnr_db
from ..quant.fixed import MAX_WIDTH, MIN_WIDTH, calibrate_frac

__all__ = ["DEFAULT_CALIB", "DEFAULT_WIDTHS", "check_calib", "dense_indices",
           "integer_length", "layer_inputs", "parse_widths", "quantized", "relative_l2",
           "run_from", "with_weight"]

#: Widths tried by default: 4 to 16 bits.
DEFAULT_WIDTHS = tuple(range(4, 17))
#: Calibration images by default.
DEFAULT_CALIB = 50


def parse_widths(text):
    """Widths from ``"4..16"`` (a range, both ends included), ``"4,8,16"`` or ``"8"``;
    sorted, without repeats."""
    if not isinstance(text, str):
        if isinstance(text, (tuple, list)):
            values = list(text)
        else:
            raise ArgumentError(f"Widths must be written like '4..16' or '4,8,16', not "
                                f"{text!r}")
    else:
        m = re.fullmatch(r"\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*", text)
        if m:
            lo, hi = int(m[1]), int(m[2])
            if hi < lo:
                raise ArgumentError(f"Width range {text!r} is empty: {hi} is below {lo}")
            values = list(range(lo, hi + 1))
        elif re.fullmatch(r"\s*-?\d+\s*(,\s*-?\d+\s*)*", text):
            values = [int(v) for v in text.split(",")]
        else:
            raise ArgumentError(f"Widths must be written like '4..16' or '4,8,16', not "
                                f"{text!r}")
    for v in values:
        check_int(v, "Width", MIN_WIDTH, MAX_WIDTH)
    return tuple(sorted(set(values)))


def check_calib(calib, available=None):
    """The number of calibration images, checked (and against the ``available`` ones)."""
    calib = check_int(calib, "Calibration images", minimum=1)
    if available is not None and calib > available:
        raise ArgumentError(f"Calibration images must be at most {available} (the model's "
                            f"calibration inputs), not {calib!r}")
    return calib


def dense_indices(stages):
    """Indices of the stages that carry weights (Conv2d and Linear)."""
    return [i for i, s in enumerate(stages)
            if isinstance(s, (frontend.ConvStage, frontend.LinearStage))]


def layer_inputs(stages, x):
    """Per stage, its float64 input for the batch ``x`` (``x`` itself for the first)."""
    x = torch.tensor(np.array(x, dtype=np.float64))
    outs = frontend.float_forward(stages, x, collect=True)
    return [x] + list(outs[:-1])


def run_from(stages, i, h, replace=None, quantize_input=None):
    """Run ``stages[i:]`` on ``h`` (the input of stage ``i``), with stage ``i`` replaced by
    ``replace`` and its input passed through ``quantize_input`` when given."""
    if quantize_input is not None:
        h = quantize_input(h)
    rest = ((replace or stages[i]),) + tuple(stages[i + 1:])
    return frontend.float_forward(rest, h)


def with_weight(stage, weight):
    """``stage`` with other weights."""
    return dataclasses.replace(stage, weight=np.asarray(weight, dtype=np.float64))


def quantized(x, width, frac):
    """``x`` rounded to ``Q(width, frac)`` (signed, ``nearest_even``, ``saturate``), in
    ``x``'s kind (numpy or torch) and as float64."""
    fmt = QFormat(width, frac)
    return dequantize(quantize(x, fmt), fmt)


def integer_length(x):
    """``IL = ceil(log2 max|x|)``, or None when ``x`` is all zeros."""
    m = float(np.max(np.abs(np.asarray(x, dtype=np.float64)), initial=0.0))
    return math.ceil(math.log2(m)) if m > 0 else None


def relative_l2(y, ref):
    """``||y - ref|| / ||ref||`` (the L2 distance relative to the reference's norm; the
    plain distance when the reference is zero)."""
    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    d = float(np.linalg.norm(y - ref))
    n = float(np.linalg.norm(ref))
    return d / n if n > 0 else d


def best_frac(x, width):
    """``(frac, sqnr_db)``: the SQNR-best fractional length of
    :func:`hwgen.quant.fixed.calibrate_frac` (the one hwgen's schemes choose) and its
    SQNR."""
    frac = calibrate_frac(x, width)
    return frac, sqnr_db(x, quantized(np.asarray(x, dtype=np.float64), width, frac))
