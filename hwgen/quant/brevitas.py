"""Brevitas models: a quantized ``torch.nn.Module`` built from Brevitas layers, read as a float
module with the quantized weights and the chain of its quantizers.

:func:`hwgen.quantize` calls :func:`convert` for a module that holds Brevitas layers
(``pip install hwgen[brevitas]``). The module is traced with ``torch.fx`` with every Brevitas
layer kept whole; each becomes the plain torch layer hwgen's front end lowers:

- ``QuantConv2d`` / ``QuantLinear``: ``nn.Conv2d`` / ``nn.Linear`` holding the quantized
  weights and the quantized bias (``bias_quant``; a float bias is rounded to the
  accumulator, 32 bits at ``F_in + F_w``, as every hwgen bias is), with the layer's
  ``input_quant`` before it and ``output_quant`` after it;
- ``QuantReLU`` / ``QuantIdentity``: ``nn.ReLU`` / ``nn.Identity`` and their ``act_quant``.

The quantizers (read from one evaluation of the module on a sample input, so they are the
ones its forward uses) become hwgen formats as :mod:`hwgen.quant.imported` says: power-of-two
scales and zero point 0 (``Int8WeightPerTensorFixedPoint``, ``Int8ActPerTensorFixedPoint``,
``Uint8ActPerTensorFixedPoint`` after a ReLU, per-channel weight scales, 1-bit weights), or a
refusal naming the layer. Other Brevitas layers and BatchNorm (which Brevitas applies after
the quantized weights, so hwgen's folding would change them) are refused.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UnsupportedLayerError
from .imported import int_quant

__all__ = ["convert", "is_brevitas"]

SUPPORTED = "QuantConv2d, QuantLinear, QuantReLU and QuantIdentity"


def _is_brevitas_type(m):
    return type(m).__module__.split(".")[0] == "brevitas"


def is_brevitas(module):
    """True when ``module`` holds a Brevitas layer (checked by class, without importing
    Brevitas)."""
    return any(_is_brevitas_type(m) for m in module.modules())


class _Tracer(torch.fx.Tracer):
    """Keeps every Brevitas module whole (a leaf of the graph)."""

    def is_leaf_module(self, m, qualname):
        return _is_brevitas_type(m) or super().is_leaf_module(m, qualname)


def _enabled(proxy):
    return proxy is not None and bool(getattr(proxy, "is_quant_enabled", False))


def _rounding(proxy):
    mode = getattr(proxy, "rounding_mode", None)
    return "ROUND" if mode is None else str(mode).rsplit(".", 1)[-1].upper()


def _quantizer(where, proxy, qt):
    """The :mod:`hwgen.quant.imported` quantizer of a Brevitas quant proxy whose output, a
    QuantTensor, is ``qt``."""
    signed = getattr(qt, "signed", None)
    if signed is None:
        signed = bool(proxy.is_signed)
    return int_quant(where, qt.scale.detach().cpu().numpy(),
                     qt.zero_point.detach().cpu().numpy(), qt.bit_width.detach().cpu().numpy(),
                     bool(signed), bool(getattr(proxy, "is_narrow_range", False)),
                     _rounding(proxy))


def _sample(input_shape, calibration):
    if calibration is not None:
        return torch.tensor(calibration[:2], dtype=torch.float32)
    return torch.zeros((1,) + tuple(input_shape))


def _record(module, layers, x):
    """Run ``module`` once on ``x``; returns what each quant proxy of ``layers`` produced
    ({proxy: QuantTensor})."""
    from brevitas.quant_tensor import QuantTensor
    seen, hooks = {}, []

    def hook(proxy, inputs, output):
        if isinstance(output, QuantTensor):
            seen[proxy] = output

    for m in layers:
        for attr in ("input_quant", "output_quant", "act_quant", "bias_quant"):
            proxy = getattr(m, attr, None)
            if isinstance(proxy, nn.Module):
                hooks.append(proxy.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(x)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedLayerError(f"Brevitas model {type(module).__name__!r} cannot run on "
                                    f"one input ({first})") from None
    finally:
        for h in hooks:
            h.remove()
    return seen


def _act(where, proxy, seen, events):
    if _enabled(proxy):
        if proxy not in seen:
            raise UnsupportedLayerError(f"Quantizer {where!r} did not run in the model's "
                                        f"forward; hwgen reads quantizers that do")
        events.append(("act", _quantizer(where, proxy, seen[proxy])))


def _dense(name, m, seen, events):
    """The float twin of a QuantConv2d/QuantLinear and its events."""
    from brevitas.nn import QuantConv2d
    from brevitas.quant_tensor import QuantTensor
    _act(f"{name}.input_quant", m.input_quant, seen, events)
    with torch.no_grad():
        qw = m.quant_weight()
    if not isinstance(qw, QuantTensor):
        raise UnsupportedLayerError(f"Layer {name!r} ({type(m).__name__}) has float weights "
                                    f"(weight_quant=None); hwgen reads Brevitas layers with "
                                    f"quantized weights")
    wq = _quantizer(f"{name}.weight_quant", m.weight_quant, qw)
    bias = None
    if m.bias is not None:
        qb = seen.get(m.bias_quant)
        bias = (qb.value if qb is not None else m.bias).detach().float()
    if isinstance(m, QuantConv2d):
        twin = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                         padding=m.padding, dilation=m.dilation, groups=m.groups,
                         bias=m.bias is not None, padding_mode=m.padding_mode)
    else:
        twin = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    with torch.no_grad():
        twin.weight.copy_(qw.value.detach())
        if bias is not None:
            twin.bias.copy_(bias.reshape(-1))
    events.append(("dense", name, wq))
    _act(f"{name}.output_quant", m.output_quant, seen, events)
    return twin


def convert(module, input_shape, calibration=None):
    """``(float_module, events)`` of a Brevitas ``module``: a ``torch.fx.GraphModule`` with
    every Brevitas layer replaced by its float twin holding the quantized weights, and the
    quantizers in execution order (for :func:`hwgen.quant.imported.scheme_for`).

    Raises
    ------
    UnsupportedLayerError
        For a Brevitas layer other than those the module docstring lists, BatchNorm, float
        weights, or a quantizer hwgen cannot reproduce (naming it).
    """
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
    module = module.eval()
    try:
        graph = _Tracer().trace(module)
    except Exception as e:  # noqa: BLE001 -- fx raises anything the user's forward raises
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedLayerError(f"Model {type(module).__name__!r} cannot be traced by "
                                    f"torch.fx ({first})") from None
    for n in graph.nodes:
        if n.op == "get_attr":
            raise UnsupportedLayerError(f"Node {n.name!r} reads the attribute {n.target!r}; "
                                        f"hwgen lowers chains of layers")
    calls = [n for n in graph.nodes if n.op == "call_module"]
    mods = {n.target: module.get_submodule(n.target) for n in calls}
    for n in calls:
        m = mods[n.target]
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise UnsupportedLayerError(
                f"Node {n.name!r} ({type(m).__name__}) is in a Brevitas model; hwgen would fold "
                f"it into the quantized weights, which changes them, so merge it into the "
                f"layer before quantization-aware training")
        if _is_brevitas_type(m) and not isinstance(m, (QuantConv2d, QuantLinear, QuantReLU,
                                                       QuantIdentity)):
            raise UnsupportedLayerError(f"Node {n.name!r} ({type(m).__name__}) is a Brevitas "
                                        f"layer hwgen does not read; hwgen reads {SUPPORTED}")
    seen = _record(module, [m for m in mods.values() if _is_brevitas_type(m)],
                   _sample(input_shape, calibration))
    events, root = [], dict(mods)
    for n in calls:
        m = mods[n.target]
        if isinstance(m, (QuantConv2d, QuantLinear)):
            root[n.target] = _dense(n.target, m, seen, events)
        elif isinstance(m, (QuantReLU, QuantIdentity)):
            _act(f"{n.target}.input_quant", m.input_quant, seen, events)
            _act(f"{n.target}.act_quant", m.act_quant, seen, events)
            root[n.target] = nn.ReLU() if isinstance(m, QuantReLU) else nn.Identity()
    return torch.fx.GraphModule(root, graph, class_name=type(module).__name__).eval(), events
