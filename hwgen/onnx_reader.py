"""Read a float ONNX model (as ``torch.onnx.export`` writes it) into a user architecture.

The file is untrusted input: it is parsed as protobuf (no code runs), external tensor data
is loaded only from files inside the model's folder (every ``location`` is resolved and
checked first), every op must be of the default domain (``""`` / ``ai.onnx``), and model-local
functions are refused. The chain of nodes becomes an architecture dict and a state dict
(:mod:`hwgen.models.userarch`), which :func:`hwgen.quantize` lowers like any module.

Needs ``onnx>=1.21`` (``pip install hwgen[onnx]``).
"""

from __future__ import annotations

import os

import numpy as np

from .errors import CheckpointError, UnsupportedLayerError

__all__ = ["OPS", "read_onnx"]

#: The ONNX ops hwgen reads.
OPS = ("Conv", "Gemm", "MatMul", "Add", "Relu", "Clip", "MaxPool", "AveragePool", "Flatten",
       "Reshape", "BatchNormalization", "Dropout", "Identity", "Constant")
_DOMAINS = ("", "ai.onnx")


def _inside(folder, location):
    real = os.path.realpath(os.path.join(folder, location))
    return not os.path.isabs(location) and real.startswith(folder + os.sep)


def _load(path):
    try:
        import onnx
        from onnx import external_data_helper, numpy_helper
    except ImportError:
        raise CheckpointError(f"Reading ONNX model {path!r} needs the onnx package; install "
                              f"it with `pip install hwgen[onnx]`") from None
    if not os.path.isfile(path):
        raise CheckpointError(f"ONNX model {path!r} does not exist")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 -- protobuf raises many kinds on damaged input
        raise CheckpointError(f"ONNX model {path!r} is corrupt and cannot be loaded "
                              f"({type(e).__name__})") from None
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    for t in external_data_helper._get_all_tensors(model):
        if external_data_helper.uses_external_data(t):
            info = {e.key: e.value for e in t.external_data}
            location = info.get("location", "")
            if not location or not _inside(folder, location):
                raise CheckpointError(f"ONNX model {path!r} tensor {t.name!r} keeps its data "
                                      f"in {location!r}, outside the model's folder")
    for opset in model.opset_import:
        if opset.domain not in _DOMAINS:
            raise UnsupportedLayerError(f"ONNX model {path!r} imports op domain "
                                        f"{opset.domain!r}; hwgen reads only the default "
                                        f"domain")
    if len(model.functions):
        raise UnsupportedLayerError(f"ONNX model {path!r} defines functions "
                                    f"({model.functions[0].name!r}); hwgen reads only "
                                    f"default-domain ops")
    try:
        external_data_helper.load_external_data_for_model(model, folder)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"ONNX model {path!r} external data cannot be read "
                              f"({e})") from None
    return model, numpy_helper


def _attrs(node):
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def read_onnx(path):
    """``(arch, state_dict)`` of the float ONNX model at ``path``; see the module docstring.

    Raises
    ------
    CheckpointError
        A missing or damaged file, external data outside the model's folder.
    UnsupportedLayerError
        Another domain, an op hwgen does not read (naming the node and listing
        :data:`OPS`), a branch.
    """
    import torch
    path = os.fspath(path)
    model, numpy_helper = _load(path)
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        raise UnsupportedLayerError(f"ONNX model {path!r} has {len(inputs)} inputs and "
                                    f"{len(g.output)} outputs; hwgen lowers models with one "
                                    f"of each")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value for d in dims)[1:]
    if len(shape) not in (1, 3) or not all(d > 0 for d in shape):
        raise UnsupportedLayerError(f"ONNX model {path!r} input has shape "
                                    f"{tuple(d.dim_value or d.dim_param for d in dims)!r}; "
                                    f"hwgen needs (batch, C, H, W) or (batch, N)")
    layers, state = [], {}
    current, cur_shape = inputs[0].name, shape
    pending_matmul = None

    def name_of(node, i):
        base = "".join(c if c.isalnum() else "_" for c in (node.name or node.op_type))
        base = base.strip("_") or node.op_type
        return f"n{i}_{base}"[:64] if not base[0].isalpha() else base[:64]

    def add(entry, **tensors):
        names = {e["name"] for e in layers}
        while entry["name"] in names:
            entry["name"] += "_"
        layers.append(entry)
        for k, v in tensors.items():
            if v is not None:
                state[f"{entry['name']}.{k}"] = torch.tensor(np.array(v, dtype=np.float32))

    def const(node, i):
        if i >= len(node.input) or node.input[i] == "":
            return None
        if node.input[i] not in consts:
            raise UnsupportedLayerError(f"ONNX node {node.name!r} ({node.op_type}) input "
                                        f"{node.input[i]!r} is not a constant")
        return consts[node.input[i]]

    for i, node in enumerate(g.node):
        op, a = node.op_type, _attrs(node)
        if node.domain not in _DOMAINS:
            raise UnsupportedLayerError(f"ONNX node {node.name!r} ({op}) is of domain "
                                        f"{node.domain!r}; hwgen reads only the default domain")
        if op not in OPS:
            raise UnsupportedLayerError(f"ONNX node {node.name!r} ({op}) is not supported; "
                                        f"hwgen reads {', '.join(OPS)}")
        if op == "Constant":
            if "value" not in a:
                raise UnsupportedLayerError(f"ONNX node {node.name!r} (Constant) has no "
                                            f"tensor value")
            consts[node.output[0]] = numpy_helper.to_array(a["value"])
            continue
        if not node.input or node.input[0] != current or len(node.output) < 1:
            raise UnsupportedLayerError(f"ONNX node {node.name!r} ({op}) does not take the "
                                        f"previous node's output {current!r} as its first "
                                        f"input; hwgen lowers chains")
        name = name_of(node, i)
        if op == "Conv":
            w, b = const(node, 1), const(node, 2)
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])) \
                    or len(set(pads)) != 1 or a.get("auto_pad", b"NOTSET") not in (b"NOTSET",
                                                                                   "NOTSET"):
                raise UnsupportedLayerError(f"ONNX node {node.name!r} (Conv) has groups, "
                                            f"dilation, uneven padding or auto_pad, which "
                                            f"hwgen does not lower")
            stride = list(a.get("strides", [1, 1]))
            add({"type": "Conv2d", "name": name, "in_channels": int(w.shape[1]),
                 "out_channels": int(w.shape[0]), "kernel_size": [int(w.shape[2]),
                                                                  int(w.shape[3])],
                 "stride": stride, "padding": [pads[0], pads[0]], "bias": b is not None},
                weight=w, bias=b)
            from .ir import conv_shape
            cur_shape = conv_shape(cur_shape, w.shape, tuple(stride), pads[0])
        elif op in ("Gemm", "MatMul"):
            w = const(node, 1)
            if op == "Gemm":
                if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
                    raise UnsupportedLayerError(f"ONNX node {node.name!r} (Gemm) has alpha, "
                                                f"beta or transA, which hwgen does not lower")
                w = w if a.get("transB", 0) else w.T
                b = const(node, 2)
            else:
                w, b = w.T, None
            add({"type": "Linear", "name": name, "in_features": int(w.shape[1]),
                 "out_features": int(w.shape[0]), "bias": b is not None}, weight=w, bias=b)
            pending_matmul = layers[-1] if op == "MatMul" else None
            cur_shape = (int(w.shape[0]),)
        elif op == "Add":
            b = const(node, 1)
            if pending_matmul is None or pending_matmul["bias"]:
                raise UnsupportedLayerError(f"ONNX node {node.name!r} (Add) does not add a "
                                            f"bias to a MatMul; hwgen lowers chains")
            pending_matmul["bias"] = True
            state[f"{pending_matmul['name']}.bias"] = torch.tensor(
                np.array(b, dtype=np.float32).reshape(-1))
        elif op == "Relu":
            add({"type": "ReLU", "name": name})
        elif op == "Clip":
            lo, hi = const(node, 1), const(node, 2)
            lo = a.get("min", -np.inf) if lo is None else float(lo)
            hi = a.get("max", np.inf) if hi is None else float(hi)
            add({"type": "Hardtanh", "name": name, "min_val": float(lo), "max_val": float(hi)})
        elif op in ("MaxPool", "AveragePool"):
            k = list(a.get("kernel_shape", []))
            if len(set(k)) != 1 or list(a.get("strides", k)) != k \
                    or any(a.get("pads", [0])) or a.get("ceil_mode", 0):
                raise UnsupportedLayerError(f"ONNX node {node.name!r} ({op}) must have a "
                                            f"square kernel equal to its stride, no padding "
                                            f"and floor mode")
            add({"type": "MaxPool2d" if op == "MaxPool" else "AvgPool2d", "name": name,
                 "kernel_size": int(k[0])})
            c, h, w_ = cur_shape
            cur_shape = (c, h // k[0], w_ // k[0])
        elif op in ("Flatten", "Reshape"):
            n = int(np.prod(cur_shape))
            target = None if op == "Flatten" else const(node, 1)
            ok = a.get("axis", 1) == 1 if op == "Flatten" else \
                target is not None and list(target.reshape(-1))[-1] in (-1, n) \
                and len(target.reshape(-1)) == 2
            if not ok:
                raise UnsupportedLayerError(f"ONNX node {node.name!r} ({op}) is not a flatten "
                                            f"that keeps the batch dimension")
            add({"type": "Flatten", "name": name})
            cur_shape = (n,)
        elif op == "BatchNormalization":
            scale, bias, mean, var = (const(node, j) for j in (1, 2, 3, 4))
            kind = "BatchNorm2d" if len(cur_shape) == 3 else "BatchNorm1d"
            add({"type": kind, "name": name, "num_features": len(mean),
                 "eps": float(a.get("epsilon", 1e-5))}, weight=scale, bias=bias,
                running_mean=mean, running_var=var)
            state[f"{layers[-1]['name']}.num_batches_tracked"] = torch.tensor(0)
        elif op in ("Dropout", "Identity"):
            add({"type": "Identity", "name": name})
        if op not in ("Gemm", "MatMul"):
            pending_matmul = None if op != "Add" else pending_matmul
        current = node.output[0]
    if current != g.output[0].name:
        raise UnsupportedLayerError(f"ONNX model {path!r} output {g.output[0].name!r} is not "
                                    f"the last node's output {current!r}")
    return {"input_shape": list(shape), "layers": layers}, state
