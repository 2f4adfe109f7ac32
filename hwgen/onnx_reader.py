"""Read an ONNX model (float, as ``torch.onnx.export`` writes it, or QONNX, as Brevitas'
``export_qonnx`` writes it) into a user architecture.

The file is untrusted input: it is parsed as protobuf (no code runs), external tensor data
is loaded only from files inside the model's folder (every ``location`` is resolved and
checked first), every op must be of the default domain (``""`` / ``ai.onnx``) or, for
QONNX's ``Quant`` and ``BipolarQuant``, of a QONNX domain (:data:`QONNX_DOMAINS`), and
model-local functions are refused. A domain is compared as a string and never imported (the
``qonnx`` package imports a node's domain as a Python module to find the op's code, so
hwgen never uses it). The chain of nodes becomes an architecture dict and a state dict
(:mod:`hwgen.models.userarch`), which :func:`hwgen.quantize` lowers like any module.

QONNX: a ``Quant``/``BipolarQuant`` node on a constant (weights, biases) is applied when
the file is read, so the layer gets the quantized values; one on the chain (activations)
becomes an activation quantizer. Both are mapped to hwgen's formats by
:mod:`hwgen.quant.imported` (power-of-two scales, zero point 0), which refuses what it
cannot reproduce exactly, naming the node.

Needs ``onnx>=1.21`` (``pip install hwgen[onnx]``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import CheckpointError, UnsupportedLayerError

__all__ = ["OPS", "QONNX_DOMAINS", "QONNX_OPS", "OnnxModel", "read_onnx", "read_onnx_model"]

#: The ONNX ops hwgen reads.
OPS = ("Conv", "Gemm", "MatMul", "Add", "Relu", "Clip", "MaxPool", "AveragePool", "Flatten",
       "Reshape", "BatchNormalization", "Dropout", "Identity", "Constant")
_DOMAINS = ("", "ai.onnx")
#: The op domains of QONNX's quantizers (names compared as data, never imported).
QONNX_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas")
#: The QONNX ops hwgen reads.
QONNX_OPS = ("Quant", "BipolarQuant")


@dataclass(frozen=True)
class OnnxModel:
    """What :func:`read_onnx_model` reads: the float architecture and weights (quantized
    weights already applied), and for a QONNX file its quantizers in execution order (the
    events of :func:`hwgen.quant.imported.scheme_for`), else None."""

    arch: dict
    state: dict
    quantizers: tuple | None = None


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
        if opset.domain not in _DOMAINS + QONNX_DOMAINS:
            raise UnsupportedLayerError(f"ONNX model {path!r} imports op domain "
                                        f"{opset.domain!r}; hwgen reads only the default "
                                        f"domain and QONNX's ({', '.join(QONNX_DOMAINS)})")
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


def _quantizer(node, a, const):
    """The :mod:`hwgen.quant.imported` quantizer of a QONNX node and its scale array."""
    from .quant.imported import bipolar, int_quant
    where = node.name or node.output[0]
    scale = const(node, 1)
    if scale is None:
        raise UnsupportedLayerError(f"ONNX node {node.name!r} ({node.op_type}) has no scale")
    if node.op_type == "BipolarQuant":
        return bipolar(where, scale), np.asarray(scale, dtype=np.float64)
    q = int_quant(where, scale, const(node, 2), const(node, 3), bool(a.get("signed", 1)),
                  bool(a.get("narrow", 0)), a.get("rounding_mode", "ROUND"))
    return q, np.asarray(scale, dtype=np.float64)


def _apply(node, q, scale, x):
    """``x`` quantized by ``q`` (QONNX semantics) and its fractional lengths, element by
    element."""
    from .quant.imported import Bipolar
    x = np.asarray(x, dtype=np.float64)
    try:
        s = np.broadcast_to(scale, x.shape)
    except ValueError:
        raise UnsupportedLayerError(f"ONNX node {node.name!r} ({node.op_type}) has a scale of "
                                    f"shape {scale.shape!r} for a tensor of shape "
                                    f"{x.shape!r}") from None
    fr = 1 - np.frexp(s)[1]
    if isinstance(q, Bipolar):
        return np.where(x >= 0, 1.0, -1.0) * s, fr
    lo = -(1 << (q.bits - 1)) + q.narrow if q.signed else 0
    hi = (1 << (q.bits - 1)) - 1 if q.signed else (1 << q.bits) - 1 - q.narrow
    r = np.ldexp(x, fr)
    r = np.floor(r) if q.rounding == "floor" else np.rint(r)
    return np.ldexp(np.clip(r, lo, hi), -fr), fr


def _per_channel(node, q, fr, transpose):
    """``q`` with one fractional length per output channel (axis 0 of the layer's weights,
    after ``transpose``)."""
    import dataclasses
    fr = fr.T if transpose else fr
    fr2 = np.asarray(fr).reshape(len(fr), -1)
    if fr2.size and not (fr2 == fr2[:, :1]).all():
        raise UnsupportedLayerError(f"ONNX node {node.name!r} ({node.op_type}) weights have "
                                    f"scales that vary within an output channel; hwgen takes "
                                    f"one scale per tensor or per output channel")
    fracs = tuple(int(f) for f in fr2[:, 0])
    return dataclasses.replace(q, fracs=fracs[:1] if len(set(fracs)) == 1 else fracs)


def read_onnx(path):
    """``(arch, state_dict)`` of the ONNX model at ``path`` (see :func:`read_onnx_model`,
    which also returns a QONNX file's quantizers)."""
    m = read_onnx_model(path)
    return m.arch, m.state


def read_onnx_model(path):
    """The :class:`OnnxModel` at ``path``; see the module docstring.

    Raises
    ------
    CheckpointError
        A missing or damaged file, external data outside the model's folder.
    UnsupportedLayerError
        Another domain, an op hwgen does not read (naming the node and listing
        :data:`OPS`), a branch, a QONNX quantizer hwgen cannot reproduce (naming the node).
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
    is_qonnx = any(n.domain in QONNX_DOMAINS for n in g.node)
    # QONNX: name -> (quantizer, fractional lengths) of a quantized constant, and the
    # quantizers in execution order.
    qconsts, events = {}, []

    def weight_quant(node, transpose):
        if node.input[1] not in qconsts:
            if is_qonnx:
                raise UnsupportedLayerError(f"ONNX node {node.name!r} ({node.op_type}) has "
                                            f"float weights; hwgen reads QONNX models whose "
                                            f"every layer's weights are quantized")
            return None
        q, fr = qconsts[node.input[1]]
        return _per_channel(node, q, fr, transpose)

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
        if node.domain in QONNX_DOMAINS:
            if op not in QONNX_OPS:
                raise UnsupportedLayerError(f"ONNX node {node.name!r} ({op}) of domain "
                                            f"{node.domain!r} is not supported; hwgen reads "
                                            f"QONNX's {', '.join(QONNX_OPS)}")
            if not node.input or len(node.output) != 1:
                raise UnsupportedLayerError(f"ONNX node {node.name!r} ({op}) has no input")
            q, scale = _quantizer(node, a, const)
            if node.input[0] in consts:
                value, fr = _apply(node, q, scale, consts[node.input[0]])
                consts[node.output[0]] = value
                qconsts[node.output[0]] = (q, fr)
                continue
            if node.input[0] != current:
                raise UnsupportedLayerError(f"ONNX node {node.name!r} ({op}) quantizes "
                                            f"{node.input[0]!r}, neither a constant nor the "
                                            f"previous node's output {current!r}; hwgen "
                                            f"lowers chains")
            events.append(("act", q))
            current, pending_matmul = node.output[0], None
            continue
        if node.domain not in _DOMAINS:
            raise UnsupportedLayerError(f"ONNX node {node.name!r} ({op}) is of domain "
                                        f"{node.domain!r}; hwgen reads only the default domain "
                                        f"and QONNX's ({', '.join(QONNX_DOMAINS)})")
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
            wq = weight_quant(node, False)
            add({"type": "Conv2d", "name": name, "in_channels": int(w.shape[1]),
                 "out_channels": int(w.shape[0]), "kernel_size": [int(w.shape[2]),
                                                                  int(w.shape[3])],
                 "stride": stride, "padding": [pads[0], pads[0]], "bias": b is not None},
                weight=w, bias=b)
            events.append(("dense", layers[-1]["name"], wq))
            from .ir import conv_shape
            cur_shape = conv_shape(cur_shape, w.shape, tuple(stride), pads[0])
        elif op in ("Gemm", "MatMul"):
            w = const(node, 1)
            if op == "Gemm":
                if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
                    raise UnsupportedLayerError(f"ONNX node {node.name!r} (Gemm) has alpha, "
                                                f"beta or transA, which hwgen does not lower")
                wq = weight_quant(node, not a.get("transB", 0))
                w = w if a.get("transB", 0) else w.T
                b = const(node, 2)
            else:
                wq = weight_quant(node, True)
                w, b = w.T, None
            add({"type": "Linear", "name": name, "in_features": int(w.shape[1]),
                 "out_features": int(w.shape[0]), "bias": b is not None}, weight=w, bias=b)
            events.append(("dense", layers[-1]["name"], wq))
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
            if is_qonnx:
                raise UnsupportedLayerError(
                    f"ONNX node {node.name!r} (BatchNormalization) is in a QONNX model; "
                    f"folding it would change the quantized weights, so merge it into the "
                    f"layer before quantizing")
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
    return OnnxModel({"input_shape": list(shape), "layers": layers}, state,
                     tuple(events) if is_qonnx else None)
