"""Network building: give the front end's float stages the formats of a scheme."""

from __future__ import annotations

import numpy as np
import torch

from .. import frontend
from ..errors import FormatError, UnsupportedLayerError
from ..numerics import QFormat
from .fixed import calibrate_frac
from .kinds import get_kind
from .modules import (
    QuantAvgPool2d,
    QuantConv2d,
    QuantFlatten,
    QuantLinear,
    QuantMaxPool2d,
    QuantNetwork,
)
from .scheme import load_scheme

__all__ = ["build_network"]


def build_network(stages, input_shape, scheme, x_calib=None, name="model",
                  dtype=torch.float64):
    """Give the float ``stages`` the formats of ``scheme`` and make a :class:`QuantNetwork`.

    Parameters
    ----------
    stages : tuple
        From :func:`hwgen.frontend.trace`.
    input_shape : tuple
        One input's shape.
    scheme : Scheme or str
        A built-in name, a JSON spec path or a :class:`~hwgen.quant.Scheme`.
    x_calib : array, optional
        Float inputs ``(N, *input_shape)`` to calibrate ``"auto"`` activation formats on;
        needed only when the scheme has some.
    name : str
        The network's (and the IR graph's) name.
    dtype : torch.dtype
        Of the parameters: float64 for bit-exact evaluation, float32 for training.

    Returns
    -------
    QuantNetwork
    """
    scheme = load_scheme(scheme)
    scheme.check_layers(s.name for s in stages)
    acts = None

    def activations():
        nonlocal acts
        if acts is None:
            if x_calib is None:
                raise FormatError(f"Scheme {scheme.name!r} has 'auto' activation formats "
                                  f"and needs calibration data")
            acts = [torch.tensor(np.array(x_calib), dtype=torch.float64).numpy()]
            acts += [a.numpy() for a in frontend.float_forward(stages, acts[0], collect=True)]
        return acts

    frac = scheme.input_frac
    if frac == "auto":
        frac = calibrate_frac(activations()[0], scheme.input_width)
    fmt = QFormat(scheme.input_width, frac)
    input_fmt = fmt
    layers = []
    dense = [s.name for s in stages if isinstance(s, (frontend.ConvStage, frontend.LinearStage))]

    def layer_activations(i, s):
        # After a binary output the float network's activations no longer describe the
        # quantized one's (±1 instead of ReLU outputs): calibrate on the float stage applied
        # to the quantized network's own activations.
        if not any(getattr(m, "binary_out", False) for m in layers):
            return activations()[i + 1]
        x = torch.tensor(activations()[0])
        with torch.no_grad():
            h = QuantNetwork(name, input_shape, input_fmt, layers).eval()(x)
        return frontend.float_forward((s,), h).numpy()

    for i, s in enumerate(stages):
        spec = scheme.layer(s.name, dense)
        if isinstance(s, (frontend.ConvStage, frontend.LinearStage)):
            kind = get_kind(spec.kind)
            w_fmts = kind.weight_formats(s.name, s.weight, spec)
            out_fmt = kind.output_format(lambda i=i, s=s: layer_activations(i, s), spec)
            common = {"relu": s.relu, "rounding": spec.rounding, "overflow": spec.overflow,
                      "bias_width": spec.bias_width, "dtype": dtype, "kind": kind.name,
                      "spec": spec, "acc_width": getattr(spec, "acc_width", None),
                      "acc_overflow": getattr(spec, "acc_overflow", "saturate"),
                      "seed": scheme.seed, "layer_number": i}
            if isinstance(s, frontend.ConvStage):
                layer = QuantConv2d(s.name, s.in_shape, s.weight, s.bias, fmt, w_fmts, out_fmt,
                                    stride=s.stride, padding=s.padding, pool=s.pool, **common)
            else:
                layer = QuantLinear(s.name, s.in_shape, s.weight, s.bias, fmt, w_fmts,
                                    out_fmt, **common)
        elif isinstance(s, frontend.MaxPoolStage):
            layer = QuantMaxPool2d(s.name, s.in_shape, fmt, s.pool)
        elif isinstance(s, frontend.AvgPoolStage):
            layer = QuantAvgPool2d(s.name, s.in_shape, fmt, fmt, s.pool, spec.rounding,
                                   spec.overflow)
        elif isinstance(s, frontend.FlattenStage):
            layer = QuantFlatten(s.name, s.in_shape, fmt)
        else:
            raise UnsupportedLayerError(f"Stage {s!r} is not a front-end stage")
        layers.append(layer)
        fmt = layer.out_fmt
    return QuantNetwork(name, input_shape, input_fmt, layers, scheme)
