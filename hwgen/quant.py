"""Quantization: fake-quant torch modules, calibration, schemes and the quantized model.

The fake-quant modules compute, in floating point, exactly what the golden model
(:mod:`hwgen.golden`) computes in integers. Each value is an integer ``q`` of a
:class:`~hwgen.numerics.QFormat` times ``2**-F``, and every rounding goes through
:func:`hwgen.numerics.quantize`, the same function the golden model's
:func:`~hwgen.numerics.requantize` is specified against. Evaluated in **float64** the
fake-quant model is bit-exact: every product of a ``W_a``-bit activation and a ``W_w``-bit
weight is an integer of ``W_a + W_w`` bits (times a power of two), a sum of ``K`` of them
plus a 32-bit bias stays below ``2**53`` for every scheme here (fixed16 with K = 400:
``2**30 · 400 + 2**31 < 2**40``), so float64 represents every partial sum exactly, in any
summation order. float32 (24-bit mantissa) is exact for fixed4 but not for fixed8 or
fixed16 sums; use it for training only.

Backward passes use the straight-through estimator: the gradient of ``quantize`` is 1
inside the format's range and (for ``saturate``) 0 where the value was clamped.

Schemes
-------
``fixed16``, ``fixed8``, ``fixed4``
    Weights and activations of that width, all signed; fractional lengths per layer (per
    tensor) by calibration; biases at the accumulator's fractional length
    ``F_a + F_w[c]`` in a 32-bit range; rounding ``nearest_even``, overflow ``saturate``.
A path to a JSON file
    A per-layer spec::

        {
          "name": "mixed",
          "input": {"width": 8, "frac": "auto"},
          "default": {"width": 8},
          "layers": {
            "conv1": {"width": 8, "weight_width": 4, "per_channel": true},
            "fc":    {"width": 16, "frac": 10, "rounding": "nearest_up"}
          }
        }

    ``name`` is optional (default: the file's stem); ``default`` applies to every layer and
    ``layers`` overrides it per layer, by IR layer name (the torch.fx node names that
    ``hwgen quantize`` prints); both are optional.

    Layer keys (all optional): ``width`` (weights and outputs; 8), ``weight_width`` and
    ``out_width`` (override one of the two), ``frac`` (output fractional length, an integer
    or ``"auto"``), ``weight_frac`` (an integer, ``"auto"``, or a list with one integer per
    output channel), ``per_channel`` (per-output-channel weight formats; false),
    ``rounding`` (``nearest_even``, ``nearest_up`` or ``floor``: the layer's requantization;
    ``nearest_even``), ``overflow`` (``saturate`` or ``wrap``; ``saturate``) and
    ``bias_width`` (32). ``input`` takes ``width`` (default: the default layer's
    ``out_width``) and ``frac``. Average pools use the
    ``rounding``/``overflow`` of their entry and keep their input's format; max-pools and
    flattens pass formats through.

``"auto"`` fractional lengths are calibrated (dynamic fixed point): the integer length
``IL = ceil(log2 max|x|)`` gives ``F0 = W - IL - 1``; ``F`` in ``F0-1 … F0+3`` maximising the
SQNR of the quantized tensor wins (a larger ``F`` clips outliers for finer steps).
Activations are calibrated on the float model's activations over the training images.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import frontend, ir
from .errors import FormatError, HwgenError, ShapeError
from .numerics import QFormat, check_overflow, check_rounding, dequantize, quantize, sqnr_db

__all__ = [
    "SCHEMES",
    "LayerRow",
    "LayerSpec",
    "QuantAvgPool2d",
    "QuantConv2d",
    "QuantFlatten",
    "QuantInput",
    "QuantLinear",
    "QuantMaxPool2d",
    "QuantNetwork",
    "QuantReport",
    "QuantizedModel",
    "Scheme",
    "build_network",
    "calibrate_frac",
    "fake_quant",
    "load_quantized",
    "load_scheme",
    "scheme_from_json",
]

#: Rounding modes a layer's requantization may use (stochastic needs a seed the IR lacks).
LAYER_ROUNDINGS = ("nearest_even", "nearest_up", "floor")


# --- schemes ---------------------------------------------------------------------------

def _int(value, what, where, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int) or \
            (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = ""
        if minimum is not None and maximum is not None:
            bounds = f" from {minimum} to {maximum}"
        elif minimum is not None:
            bounds = f" of at least {minimum}"
        raise FormatError(f"{where}: {what} must be an integer{bounds}, not {value!r}")
    return value


def _frac(value, what, where):
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(f"{where}: {what} must be an integer or 'auto', not {value!r}")
    return value


@dataclass(frozen=True)
class LayerSpec:
    """How to quantize one Conv2d/Linear layer (see the module docstring for the keys)."""

    weight_width: int = 8
    out_width: int = 8
    weight_frac: object = "auto"
    frac: object = "auto"
    per_channel: bool = False
    rounding: str = "nearest_even"
    overflow: str = "saturate"
    bias_width: int = 32

    KEYS = ("width", "weight_width", "out_width", "frac", "weight_frac", "per_channel",
            "rounding", "overflow", "bias_width")

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
            w = _int(obj["width"], "width", where, 1, 32)
            kw["weight_width"] = kw["out_width"] = w
        for key in ("weight_width", "out_width"):
            if key in obj:
                kw[key] = _int(obj[key], key, where, 1, 32)
        if "bias_width" in obj:
            kw["bias_width"] = _int(obj["bias_width"], "bias_width", where, 1, 48)
        if "frac" in obj:
            kw["frac"] = _frac(obj["frac"], "frac", where)
        if "weight_frac" in obj:
            wf = obj["weight_frac"]
            if isinstance(wf, list):
                kw["weight_frac"] = tuple(_int(f, "weight_frac entry", where) for f in wf)
            else:
                kw["weight_frac"] = _frac(wf, "weight_frac", where)
        if "per_channel" in obj:
            if not isinstance(obj["per_channel"], bool):
                raise FormatError(f"{where}: per_channel must be true or false, not "
                                  f"{obj['per_channel']!r}")
            kw["per_channel"] = obj["per_channel"]
        if "rounding" in obj:
            r = obj["rounding"]
            if r not in LAYER_ROUNDINGS:
                raise FormatError(f"{where}: rounding must be one of "
                                  f"{', '.join(LAYER_ROUNDINGS)}, not {r!r}")
            kw["rounding"] = r
        if "overflow" in obj:
            try:
                kw["overflow"] = check_overflow(obj["overflow"])
            except FormatError as e:
                raise FormatError(f"{where}: {e}") from None
        return replace(base, **kw)

    def to_json(self):
        wf = list(self.weight_frac) if isinstance(self.weight_frac, tuple) else self.weight_frac
        return {"weight_width": self.weight_width, "out_width": self.out_width,
                "weight_frac": wf, "frac": self.frac, "per_channel": self.per_channel,
                "rounding": self.rounding, "overflow": self.overflow,
                "bias_width": self.bias_width}


@dataclass(frozen=True)
class Scheme:
    """A quantization scheme: the input format and a :class:`LayerSpec` per layer.

    ``layers`` is a tuple of ``(layer name, LayerSpec)`` overriding ``default``.
    """

    name: str
    input_width: int = 8
    input_frac: object = "auto"
    default: LayerSpec = field(default_factory=LayerSpec)
    layers: tuple = ()

    def layer(self, name):
        return dict(self.layers).get(name, self.default)

    def to_json(self):
        return {"name": self.name,
                "input": {"width": self.input_width, "frac": self.input_frac},
                "default": self.default.to_json(),
                "layers": {n: s.to_json() for n, s in self.layers}}


def _fixed(width):
    return Scheme(f"fixed{width}", width, "auto", LayerSpec(width, width))


#: The built-in schemes by name.
SCHEMES = {s.name: s for s in (_fixed(16), _fixed(8), _fixed(4))}


def scheme_from_json(obj, where="Scheme"):
    """Parse a JSON spec (already decoded) into a :class:`Scheme`."""
    if not isinstance(obj, dict):
        raise FormatError(f"{where} must be a JSON object, not {type(obj).__name__!r}")
    for key in obj:
        if key not in ("name", "input", "default", "layers"):
            raise FormatError(f"{where} has unknown key {key!r}; keys are name, input, "
                              f"default, layers")
    name = obj.get("name", "custom")
    if not isinstance(name, str) or not name:
        raise FormatError(f"{where}: name must be a non-empty string, not {name!r}")
    default = LayerSpec.from_json(obj.get("default", {}), f"{where} default")
    inp = obj.get("input", {})
    if not isinstance(inp, dict):
        raise FormatError(f"{where} input must be a JSON object, not {inp!r}")
    for key in inp:
        if key not in ("width", "frac"):
            raise FormatError(f"{where} input has unknown key {key!r}; keys are width, frac")
    in_width = _int(inp.get("width", default.out_width), "width", f"{where} input", 1, 32)
    in_frac = _frac(inp.get("frac", "auto"), "frac", f"{where} input")
    layers = obj.get("layers", {})
    if not isinstance(layers, dict):
        raise FormatError(f"{where} layers must be a JSON object, not {layers!r}")
    specs = tuple((n, LayerSpec.from_json(v, f"{where} layer {n!r}", default))
                  for n, v in layers.items())
    return Scheme(name, in_width, in_frac, default, specs)


def load_scheme(scheme):
    """A :class:`Scheme` from a built-in name (``fixed8`` …), a JSON file path, or a
    :class:`Scheme` (returned as is)."""
    if isinstance(scheme, Scheme):
        return scheme
    if not isinstance(scheme, (str, os.PathLike)):
        raise FormatError(f"Scheme must be one of {', '.join(SCHEMES)} or a JSON file, not "
                          f"{scheme!r}")
    scheme = os.fspath(scheme)
    if scheme in SCHEMES:
        return SCHEMES[scheme]
    if not (scheme.endswith(".json") or os.sep in scheme or os.path.exists(scheme)):
        raise FormatError(f"Scheme must be one of {', '.join(SCHEMES)} or a JSON file, not "
                          f"{scheme!r}")
    try:
        with open(scheme, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise FormatError(f"Scheme file {scheme!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"Scheme file {scheme!r} cannot be read ({e})") from None
    except json.JSONDecodeError as e:
        raise FormatError(f"Scheme file {scheme!r} is not valid JSON ({e.msg} at line "
                          f"{e.lineno})") from None
    if isinstance(obj, dict) and "name" not in obj:
        obj = {**obj, "name": os.path.splitext(os.path.basename(scheme))[0]}
    return scheme_from_json(obj, f"Scheme file {scheme!r}")


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
    ``F`` with the highest SQNR wins (the smallest on ties).
    """
    x = _sample(x)
    m = float(np.max(np.abs(x), initial=0.0))
    il = math.ceil(math.log2(m)) if m > 0 else 0
    f0 = width - il - int(signed)
    best, best_sqnr = f0, -math.inf
    for f in range(f0 - 1, f0 + 4):
        fmt = QFormat(width, f, signed)
        s = sqnr_db(x, dequantize(quantize(x, fmt, rounding, overflow), fmt))
        if s > best_sqnr:
            best, best_sqnr = f, s
    return best


# --- fake quantization -----------------------------------------------------------------

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
    gradient. ``fmt`` is a format, or a sequence of formats, one per index of axis 0
    (per-output-channel weights)."""
    return _FakeQuant.apply(x, tuple(fmt) if isinstance(fmt, list) else fmt, rounding,
                            overflow)


def _weight_bytes(count_per_channel, fmts):
    return math.ceil(sum(count_per_channel * f.width for f in fmts) / 8)


def _fmts_str(fmts):
    fmts = tuple(fmts)
    if len(set(fmts)) == 1:
        return str(fmts[0])
    fr = [f.frac for f in fmts]
    widths = {f.width for f in fmts}
    w = widths.pop() if len(widths) == 1 else "*"
    return f"Q({w},{min(fr)}..{max(fr)})/ch"


class QuantInput(nn.Module):
    """Quantizes the network input to ``fmt`` (``nearest_even``, ``saturate``), exactly as
    :meth:`QuantizedModel.quantize_input` does for the hardware."""

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
                 dtype=torch.float64):
        super().__init__()
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
        self.relu = relu
        self.rounding = check_rounding(rounding)
        self.overflow = check_overflow(overflow)
        self.bias_width = bias_width

    @property
    def bias_fmts(self):
        """Per channel: ``bias_width`` bits at the accumulator's fractional length."""
        return tuple(QFormat(self.bias_width, self.in_fmt.frac + f.frac) for f in self.w_fmts)

    def int_weight(self):
        w = self.weight.detach()
        return np.concatenate([quantize(w[c:c + 1], f).numpy() for c, f in enumerate(self.w_fmts)])

    def int_bias(self):
        if self.bias is None:
            return None
        b = self.bias.detach()
        return np.concatenate([quantize(b[c:c + 1], f).numpy() for c, f in enumerate(self.bias_fmts)])

    def _acc(self, x):
        w = fake_quant(self.weight, self.w_fmts)
        b = None if self.bias is None else fake_quant(self.bias, self.bias_fmts)
        return self._linear_op(x, w, b)

    def _out(self, acc):
        y = fake_quant(acc, self.out_fmt, self.rounding, self.overflow)
        return F.relu(y) if self.relu else y

    @property
    def weight_bytes(self):
        return _weight_bytes(int(np.prod(self.weight.shape[1:])), self.w_fmts)

    @property
    def bias_bytes(self):
        return 0 if self.bias is None else _weight_bytes(1, self.bias_fmts)

    def extra_repr(self):
        return (f"{self.name!r}, in={self.in_fmt}, w={_fmts_str(self.w_fmts)}, "
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
    w_fmts : sequence of QFormat
        One weight format per output channel (all equal for per-tensor quantization).
    stride, padding, relu, pool, rounding, overflow
        As in :class:`hwgen.ir.Conv2d`.
    bias_width : int
        Bits of the bias, stored at the accumulator's fractional length.
    """

    def __init__(self, name, in_shape, weight, bias, in_fmt, w_fmts, out_fmt, *, stride=1,
                 padding=0, relu=False, pool=1, rounding="nearest_even", overflow="saturate",
                 bias_width=32, dtype=torch.float64):
        super().__init__(name, in_shape, weight, bias, in_fmt, w_fmts, out_fmt, relu,
                         rounding, overflow, bias_width, dtype)
        self.stride = stride
        self.padding = padding
        self.pool = pool

    def _linear_op(self, x, w, b):
        return F.conv2d(x, w, b, stride=self.stride, padding=self.padding)

    def forward(self, x):
        y = self._out(self._acc(x))
        return F.max_pool2d(y, self.pool) if self.pool > 1 else y

    def to_ir(self):
        return ir.Conv2d(self.name, self.in_shape, self.int_weight(), self.int_bias(),
                         self.in_fmt, self.w_fmts, self.out_fmt, relu=self.relu,
                         pool=self.pool, rounding=self.rounding, overflow=self.overflow,
                         stride=self.stride, padding=self.padding)


class QuantLinear(_QuantDense):
    """Fake-quant Linear with fused requantization and ReLU (parameters as
    :class:`QuantConv2d`, without stride, padding and pool)."""

    def __init__(self, name, in_shape, weight, bias, in_fmt, w_fmts, out_fmt, *, relu=False,
                 rounding="nearest_even", overflow="saturate", bias_width=32,
                 dtype=torch.float64):
        super().__init__(name, in_shape, weight, bias, in_fmt, w_fmts, out_fmt, relu,
                         rounding, overflow, bias_width, dtype)

    def _linear_op(self, x, w, b):
        return F.linear(x, w, b)

    def forward(self, x):
        return self._out(self._acc(x))

    def to_ir(self):
        return ir.Linear(self.name, self.in_shape, self.int_weight(), self.int_bias(),
                         self.in_fmt, self.w_fmts, self.out_fmt, relu=self.relu,
                         rounding=self.rounding, overflow=self.overflow)


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

    def to_graph(self, name=None):
        """The IR graph with integer weights quantized from the current parameters."""
        return ir.Graph(name or self.name, self.input_shape, self.input_fmt,
                        tuple(layer.to_ir() for layer in self.layers))

    def resolved_scheme(self):
        """A :class:`Scheme` with every fractional length fixed to this network's, so that
        :func:`build_network` rebuilds the same formats without calibrating (QAT
        checkpoints store it)."""
        specs = []
        for layer in self.layers:
            if isinstance(layer, _QuantDense):
                wf = tuple(f.frac for f in layer.w_fmts)
                specs.append((layer.name, LayerSpec(
                    weight_width=layer.w_fmts[0].width, out_width=layer.out_fmt.width,
                    weight_frac=wf, frac=layer.out_fmt.frac, per_channel=len(set(wf)) > 1,
                    rounding=layer.rounding, overflow=layer.overflow,
                    bias_width=layer.bias_width)))
            elif isinstance(layer, QuantAvgPool2d):
                specs.append((layer.name, LayerSpec(rounding=layer.rounding,
                                                    overflow=layer.overflow)))
        name = self.scheme.name if self.scheme is not None else "resolved"
        return Scheme(name, self.input_fmt.width, self.input_fmt.frac, LayerSpec(),
                      tuple(specs))


def _weight_fmts(stage, spec):
    cout = stage.weight.shape[0]
    w = spec.weight_width
    wf = spec.weight_frac
    if isinstance(wf, tuple):
        if len(wf) != cout:
            raise FormatError(f"Layer {stage.name!r} has {cout} output channels, not the "
                              f"{len(wf)!r} weight_frac entries of its spec")
        return tuple(QFormat(w, f) for f in wf)
    if wf != "auto":
        return (QFormat(w, wf),) * cout
    if spec.per_channel:
        return tuple(QFormat(w, calibrate_frac(stage.weight[c], w)) for c in range(cout))
    return (QFormat(w, calibrate_frac(stage.weight, w)),) * cout


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
        A built-in name, a JSON spec path or a :class:`Scheme`.
    x_calib : array, optional
        Float inputs ``(N, *input_shape)`` to calibrate ``"auto"`` activation formats on;
        needed only when the scheme has some.
    dtype : torch.dtype
        Of the parameters: float64 for bit-exact evaluation, float32 for training.
    """
    scheme = load_scheme(scheme)
    names = [s.name for s in stages]
    for layer_name, _ in scheme.layers:
        if layer_name not in names:
            raise FormatError(f"Scheme {scheme.name!r} names layer {layer_name!r}, which the "
                              f"model does not have; its layers are {', '.join(names)}")
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
    for i, s in enumerate(stages):
        spec = scheme.layer(s.name)
        if isinstance(s, (frontend.ConvStage, frontend.LinearStage)):
            w_fmts = _weight_fmts(s, spec)
            out_frac = spec.frac
            if out_frac == "auto":
                out_frac = calibrate_frac(activations()[i + 1], spec.out_width, spec.rounding,
                                          spec.overflow)
            out_fmt = QFormat(spec.out_width, out_frac)
            common = {"relu": s.relu, "rounding": spec.rounding, "overflow": spec.overflow,
                      "bias_width": spec.bias_width, "dtype": dtype}
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
            raise HwgenError(f"Stage {s!r} is not a front-end stage")
        layers.append(layer)
        fmt = layer.out_fmt
    return QuantNetwork(name, input_shape, input_fmt, layers, scheme)


# --- the quantized model ---------------------------------------------------------------

def _kind(layer):
    if isinstance(layer, ir.Conv2d):
        kh, kw = layer.kernel
        k = f"Conv2d {kh}x{kw}"
        if layer.stride != 1:
            k += f"/s{layer.stride}"
    elif isinstance(layer, ir.Linear):
        k = "Linear"
    elif isinstance(layer, ir.MaxPool2d):
        return f"MaxPool2d {layer.pool}"
    elif isinstance(layer, ir.AvgPool2d):
        return f"AvgPool2d {layer.pool}"
    else:
        return type(layer).__name__
    if layer.relu:
        k += "+ReLU"
    if getattr(layer, "pool", 1) > 1:
        k += f"+MaxPool{layer.pool}"
    return k


@dataclass(frozen=True)
class LayerRow:
    """One row of :meth:`QuantizedModel.layer_table`."""

    name: str
    kind: str
    out_shape: tuple
    in_fmt: str
    weight_fmt: str
    out_fmt: str
    sqnr_db: float
    weight_bytes: int
    bias_bytes: int

    def to_json(self):
        return {"name": self.name, "kind": self.kind, "out_shape": list(self.out_shape),
                "in_fmt": self.in_fmt, "weight_fmt": self.weight_fmt, "out_fmt": self.out_fmt,
                "sqnr_db": None if math.isinf(self.sqnr_db) else round(self.sqnr_db, 3),
                "weight_bytes": self.weight_bytes, "bias_bytes": self.bias_bytes}


@dataclass(frozen=True)
class QuantReport:
    """What ``hwgen quantize`` prints: the layer table and the two test accuracies."""

    model: str
    scheme: str
    dataset: str
    input_fmt: str
    layers: tuple
    float_accuracy: float
    quantized_accuracy: float
    test_images: int

    def to_json(self):
        return {"model": self.model, "scheme": self.scheme, "dataset": self.dataset,
                "input_fmt": self.input_fmt, "layers": [r.to_json() for r in self.layers],
                "float_accuracy": self.float_accuracy,
                "quantized_accuracy": self.quantized_accuracy,
                "test_images": self.test_images}

    def format_table(self):
        """The report as aligned text lines."""
        head = ("layer", "kind", "in", "weights", "out", "SQNR dB", "weight B", "bias B")
        rows = [head]
        for r in self.layers:
            rows.append((r.name, r.kind, r.in_fmt, r.weight_fmt, r.out_fmt,
                         "inf" if math.isinf(r.sqnr_db) else f"{r.sqnr_db:.1f}",
                         str(r.weight_bytes), str(r.bias_bytes)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        right = {5, 6, 7}
        lines = [f"model {self.model}, scheme {self.scheme}, input {self.input_fmt}"]
        for row in rows:
            lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        total_w = sum(r.weight_bytes for r in self.layers)
        total_b = sum(r.bias_bytes for r in self.layers)
        lines.append(f"parameters: {total_w} weight bytes + {total_b} bias bytes")
        lines.append(f"test accuracy on {self.dataset} ({self.test_images} images): "
                     f"float {100 * self.float_accuracy:.2f}%, "
                     f"quantized {100 * self.quantized_accuracy:.2f}%")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class QuantizedModel:
    """A trained model, quantized: the IR graph the hardware runs and its torch twins.

    Members
    -------
    name : str
        Model name (``digits-cnn`` for ``builtin:digits-cnn``, else the checkpoint's stem).
    arch : str
        Architecture name.
    scheme : Scheme
        The scheme with every fractional length resolved.
    graph : hwgen.ir.Graph
        The integer IR.
    module : QuantNetwork
        The fake-quant torch model (float64, eval mode): bit-exact with ``graph``.
    float_module : torch.nn.Module
        The float model (eval mode).
    stages : tuple
        The front end's float stages (BatchNorm folded), one per IR layer.
    dataset : hwgen.data.Dataset
    """

    name: str
    arch: str
    scheme: Scheme
    graph: ir.Graph
    module: QuantNetwork
    float_module: nn.Module
    stages: tuple
    dataset: object

    def quantize_input(self, x_float):
        """The integers the hardware receives for float inputs: ``quantize(x, input_fmt)``
        (``nearest_even``, ``saturate``), int64 numpy."""
        x = x_float.detach().cpu().numpy() if isinstance(x_float, torch.Tensor) else x_float
        return np.asarray(quantize(np.asarray(x, dtype=np.float64), self.graph.input_fmt),
                          dtype=np.int64)

    def run_golden(self, x_float):
        """Integer outputs of the golden model for float inputs."""
        from . import golden
        return golden.run(self.graph, self.quantize_input(x_float))

    def predict(self, x_float, batch=4096):
        """Class predictions of the golden model (argmax of the integer outputs)."""
        out = [np.argmax(self.run_golden(x_float[i:i + batch]).reshape(
            len(x_float[i:i + batch]), -1), axis=1) for i in range(0, len(x_float), batch)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def float_accuracy(self):
        with torch.no_grad():
            logits = self.float_module(torch.tensor(np.array(self.dataset.x_test)))
        return float(np.mean(logits.argmax(1).numpy() == self.dataset.y_test))

    def quantized_accuracy(self):
        """Test accuracy of the golden model: the hardware's accuracy."""
        return float(np.mean(self.predict(self.dataset.x_test) == self.dataset.y_test))

    def layer_table(self, x_float=None):
        """Per layer: name, kind, formats, SQNR (dB) of the dequantized integer output
        against the float model's output of the same layer, and parameter bytes. SQNR is
        measured on ``x_float`` (default: the test images)."""
        from . import golden
        x = self.dataset.x_test if x_float is None else x_float
        ref = frontend.float_forward(self.stages, x, collect=True)
        outs = golden.run_layers(self.graph, self.quantize_input(x))
        rows = []
        for layer, module, r, q in zip(self.graph.layers, self.module.layers, ref, outs):
            fmt = getattr(layer, "out_fmt", None) or layer.fmt
            is_dense = isinstance(module, _QuantDense)
            rows.append(LayerRow(
                name=layer.name, kind=_kind(layer), out_shape=tuple(layer.out_shape),
                in_fmt=str(getattr(layer, "in_fmt", None) or layer.fmt),
                weight_fmt=_fmts_str(layer.w_fmts) if is_dense else "-",
                out_fmt=str(fmt), sqnr_db=sqnr_db(r.numpy(), dequantize(q, fmt)),
                weight_bytes=module.weight_bytes if is_dense else 0,
                bias_bytes=module.bias_bytes if is_dense else 0))
        return tuple(rows)

    def report(self):
        """The :class:`QuantReport` ``hwgen quantize`` prints."""
        return QuantReport(self.name, self.scheme.name, self.dataset.name,
                           str(self.graph.input_fmt), self.layer_table(),
                           self.float_accuracy(), self.quantized_accuracy(),
                           len(self.dataset.x_test))


def _identifier(name):
    s = "".join(c if c.isalnum() else "_" for c in name)
    return s if s and not s[0].isdigit() else "m_" + s


def quantize_model(float_module, arch, scheme, dataset, name=None, qat_state=None):
    """Quantize a float model of a known architecture with ``scheme`` (calibrated on
    ``dataset``'s training images); ``qat_state`` loads QAT-trained weights."""
    from .models import input_shape
    shape = input_shape(arch)
    float_module = float_module.eval()
    stages = frontend.trace(float_module, shape)
    name = name or arch
    net = build_network(stages, shape, scheme, dataset.x_train, name=_identifier(name))
    if qat_state is not None:
        try:
            net.load_state_dict({k: v.to(torch.float64) for k, v in qat_state.items()})
        except (RuntimeError, KeyError) as e:
            first = str(e).strip().splitlines()[0]
            raise HwgenError(f"QAT weights do not fit model {name!r} ({first})") from None
    net = net.eval()
    resolved = net.resolved_scheme()
    return QuantizedModel(name=name, arch=arch, scheme=resolved, graph=net.to_graph(),
                          module=net, float_module=float_module, stages=stages,
                          dataset=dataset)


def load_quantized(model_spec, scheme, progress=False):
    """Load a checkpoint and quantize it: the entry point the rest of hwgen uses.

    Parameters
    ----------
    model_spec : str
        A checkpoint path or ``builtin:NAME`` (``builtin:digits-cnn``, ``builtin:mlp``).
    scheme : str
        ``fixed16``, ``fixed8``, ``fixed4`` or a JSON spec path (see the module docstring).
        When the checkpoint was QAT fine-tuned for a scheme of the same name, its trained
        weights and formats are used instead of calibrating.
    progress : bool
        Print what is happening to stderr.

    Returns
    -------
    QuantizedModel
    """
    import sys

    from .data import load_dataset
    from .models import load_checkpoint

    def say(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    ckpt = load_checkpoint(model_spec)
    spec = os.fspath(model_spec)
    name = spec[len("builtin:"):] if spec.startswith("builtin:") else \
        os.path.splitext(os.path.basename(spec))[0]
    say(f"loading {ckpt.arch} from {ckpt.path}")
    float_module = ckpt.build_model()
    dataset = load_dataset(ckpt.dataset)
    qat_state = None
    scheme_name = scheme.name if isinstance(scheme, Scheme) else os.fspath(scheme)
    if ckpt.scheme is not None and ckpt.formats is not None and ckpt.scheme == scheme_name:
        say(f"using the QAT formats and weights the checkpoint holds for {scheme_name!r}")
        scheme = scheme_from_json(ckpt.formats, f"Checkpoint {ckpt.path!r} formats")
        qat_state = ckpt.qat_state_dict
    else:
        scheme = load_scheme(scheme)
        say(f"calibrating {scheme.name} on {len(dataset.x_train)} {dataset.name} images")
    return quantize_model(float_module, ckpt.arch, scheme, dataset, name=name,
                          qat_state=qat_state)
