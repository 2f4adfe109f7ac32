"""Users' architectures as plain data, so that checkpoints and ONNX files need no Python class.

An architecture is a dict (JSON-able: strings, numbers, lists)::

    {"input_shape": [1, 8, 8],
     "layers": [{"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 5,
                 "kernel_size": [5, 5], "stride": [2, 2], "padding": [2, 2], "bias": true},
                {"type": "ReLU", "name": "relu1"}, ...]}

:func:`build` makes a ``torch.nn.Sequential`` of the allow-listed layer types in
:data:`LAYERS` (named children, so the IR names are the layer names); nothing is imported or
called by name from the data. :func:`from_stages` writes any model the front end traces (a
custom ``forward`` included) as such a dict and a state dict, with BatchNorm already folded.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np

from ..errors import CheckpointError

__all__ = ["LAYERS", "build", "check", "from_stages"]

_INT = "int"
_PAIR = "pair"
_FLOAT = "float"
_BOOL = "bool"

#: Layer type -> {argument: kind}; every argument is required.
LAYERS = {
    "Conv2d": {"in_channels": _INT, "out_channels": _INT, "kernel_size": _PAIR,
               "stride": _PAIR, "padding": _PAIR, "bias": _BOOL},
    "Linear": {"in_features": _INT, "out_features": _INT, "bias": _BOOL},
    "BatchNorm1d": {"num_features": _INT, "eps": _FLOAT},
    "BatchNorm2d": {"num_features": _INT, "eps": _FLOAT},
    "ReLU": {},
    "Hardtanh": {"min_val": _FLOAT, "max_val": _FLOAT},
    "MaxPool2d": {"kernel_size": _INT},
    "AvgPool2d": {"kernel_size": _INT},
    "Flatten": {},
    "Identity": {},
}

_WHAT = {_INT: "an integer", _PAIR: "a pair of integers", _FLOAT: "a finite number",
         _BOOL: "a boolean"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _value(v, kind, where):
    if kind == _INT and isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1 << 20:
        return v
    if kind == _PAIR and isinstance(v, (list, tuple)) and len(v) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 1 << 20 for x in v):
        return tuple(v)
    if kind == _FLOAT and isinstance(v, (int, float)) and not isinstance(v, bool) \
            and np.isfinite(v):
        return float(v)
    if kind == _BOOL and isinstance(v, bool):
        return v
    raise CheckpointError(f"{where} must be {_WHAT[kind]}, not {v!r}")


def check(arch, where):
    """Validate an architecture dict; returns ``(input_shape, [(type, name, kwargs)])``.
    Raises :class:`CheckpointError` naming ``where`` and the offending entry."""
    if not isinstance(arch, dict) or set(arch) != {"input_shape", "layers"}:
        raise CheckpointError(f"{where} architecture must be a dict of 'input_shape' and "
                              f"'layers', not {type(arch).__name__!r}")
    shape = arch["input_shape"]
    if not isinstance(shape, (list, tuple)) or len(shape) not in (1, 3) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 1 << 16 for d in shape):
        raise CheckpointError(f"{where} input_shape must be (C, H, W) or (N,) of positive "
                              f"integers, not {shape!r}")
    layers = arch["layers"]
    if not isinstance(layers, (list, tuple)) or not 0 < len(layers) <= 256:
        raise CheckpointError(f"{where} layers must be a list of 1 to 256 layers")
    out, names = [], set()
    for i, entry in enumerate(layers):
        if not isinstance(entry, dict):
            raise CheckpointError(f"{where} layer {i} must be a dict, not {entry!r}")
        kind, name = entry.get("type"), entry.get("name")
        if kind not in LAYERS:
            raise CheckpointError(f"{where} layer {i} has type {kind!r}; the types are "
                                  f"{', '.join(LAYERS)}")
        if not isinstance(name, str) or not _NAME.match(name) or name in names:
            raise CheckpointError(f"{where} layer {i} has name {name!r}; names are unique "
                                  f"identifiers")
        names.add(name)
        args = LAYERS[kind]
        extra = set(entry) - set(args) - {"type", "name"}
        if extra or set(args) - set(entry):
            raise CheckpointError(f"{where} layer {name!r} ({kind}) must have exactly the "
                                  f"arguments {', '.join(args) or 'none'}")
        out.append((kind, name, {k: _value(entry[k], t, f"{where} layer {name!r} {k}")
                                 for k, t in args.items()}))
    return tuple(shape), out


def build(arch, where="Architecture"):
    """``(module, input_shape)``: the ``nn.Sequential`` an architecture dict describes."""
    from torch import nn
    shape, layers = check(arch, where)
    mods = OrderedDict()
    for kind, name, kw in layers:
        mods[name] = getattr(nn, kind)(**kw)
    return nn.Sequential(mods), shape


def from_stages(stages, input_shape):
    """An architecture dict and a float state dict equivalent to the front end's ``stages``
    (BatchNorm folded): what a checkpoint of a user's model stores."""
    import torch

    from .. import frontend
    from ..ir import stride_pair
    layers, state = [], {}

    def add(entry, **tensors):
        layers.append(entry)
        for key, value in tensors.items():
            if value is not None:
                state[f"{entry['name']}.{key}"] = torch.tensor(np.array(value),
                                                               dtype=torch.float32)

    def act(s):
        if s.clamp is not None:
            add({"type": "Hardtanh", "name": f"{s.name}_clamp", "min_val": s.clamp[0],
                 "max_val": s.clamp[1]})
            if s.relu and s.clamp[0] < 0:
                raise CheckpointError(f"Stage {s.name!r} has a ReLU and a negative clamp")
        elif s.relu:
            add({"type": "ReLU", "name": f"{s.name}_relu"})

    for s in stages:
        if isinstance(s, frontend.ConvStage):
            cout, cin, kh, kw = s.weight.shape
            add({"type": "Conv2d", "name": s.name, "in_channels": int(cin),
                 "out_channels": int(cout), "kernel_size": [int(kh), int(kw)],
                 "stride": list(stride_pair(s.stride)), "padding": [s.padding, s.padding],
                 "bias": s.bias is not None}, weight=s.weight, bias=s.bias)
            act(s)
            if s.pool > 1:
                add({"type": "MaxPool2d", "name": f"{s.name}_pool", "kernel_size": s.pool})
        elif isinstance(s, frontend.LinearStage):
            cout, cin = s.weight.shape
            add({"type": "Linear", "name": s.name, "in_features": int(cin),
                 "out_features": int(cout), "bias": s.bias is not None},
                weight=s.weight, bias=s.bias)
            act(s)
        elif isinstance(s, frontend.MaxPoolStage):
            add({"type": "MaxPool2d", "name": s.name, "kernel_size": s.pool})
        elif isinstance(s, frontend.AvgPoolStage):
            add({"type": "AvgPool2d", "name": s.name, "kernel_size": s.pool})
        elif isinstance(s, frontend.FlattenStage):
            add({"type": "Flatten", "name": s.name})
    return {"input_shape": list(input_shape), "layers": layers}, state
