"""Front end: trace a float PyTorch model with torch.fx into a chain of typed float stages.

:func:`trace` walks the fx graph node by node and asks a handler registry what each node
becomes. Handlers are registered with :func:`handles` for module types
(``@handles(nn.Conv2d)``), functions (``@handles(torch.flatten)``) or tensor method names
(``@handles("relu")``), and either return a new typed stage (:class:`ConvStage`,
:class:`LinearStage`, :class:`MaxPoolStage`, :class:`AvgPoolStage`, :class:`FlattenStage`)
or fold the node into the stage before it and return ``None``:

- BatchNorm2d/1d is folded into the Conv2d/Linear before it, in float64, before anything
  is quantized (``w' = w·γ/√(σ²+ε)``, ``b' = (b−μ)·γ/√(σ²+ε) + β``);
- ReLU and max-pooling are fused into the Conv2d (ReLU also into the Linear) before them;
  the order ReLU→pool or pool→ReLU does not matter, the two commute;
- ReLU6 and Hardtanh become a ReLU (lower bound 0) and a ``clamp`` of the layer before
  them, which the quantizer folds into the output format's saturation bounds;
- Flatten is ``nn.Flatten``, ``torch.flatten(x, 1)``, ``x.flatten(1)``,
  ``x.view(x.size(0), -1)`` / ``x.reshape(-1, N)`` (``x.shape[0]`` too);
- Dropout and Identity disappear;
- kernels may be rectangular, strides ``(SY, SX)`` too (padding stays square);
- a stand-alone max-pool and an average pool become stages of their own, which the golden
  model runs but the accelerator does not (:func:`hwgen.quantize` refuses them).

Everything else (another module, a function such as ``torch.add``, a branch) raises
:class:`~hwgen.errors.UnsupportedLayerError` naming the fx node. The stages are still float:
:mod:`hwgen.quant` gives them number formats and integer weights and makes the IR
(:mod:`hwgen.ir`) from them, one IR node per stage.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ShapeError, UnsupportedLayerError
from .ir import conv_shape, pooled_shape

__all__ = [
    "SUPPORTED",
    "AvgPoolStage",
    "ConvStage",
    "FlattenStage",
    "LinearStage",
    "MaxPoolStage",
    "float_forward",
    "handles",
    "trace",
]

SUPPORTED = ("Conv2d, Linear, ReLU, ReLU6, Hardtanh, MaxPool2d, Flatten (or "
             "x.view(x.size(0), -1)), BatchNorm, Dropout and Identity")


def _frozen_float(a):
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


class _FrozenWeights:
    """Stores ``weight`` and ``bias`` as read-only float64 arrays."""

    def __post_init__(self):
        object.__setattr__(self, "weight", _frozen_float(self.weight))
        if self.bias is not None:
            object.__setattr__(self, "bias", _frozen_float(self.bias))


@dataclass(frozen=True, eq=False)
class ConvStage(_FrozenWeights):
    """A float 2-D convolution with BatchNorm folded in and ReLU/clamp/max-pool fused.

    ``weight`` is float64 ``(Cout, Cin, KH, KW)``; ``bias`` float64 ``(Cout,)`` or None;
    ``stride`` an integer or ``(SY, SX)``. ``clamp`` is None or the float bounds
    ``(lo, hi)`` of a ReLU6/Hardtanh applied after the ReLU (the quantizer folds it into the
    output format's saturation bounds). ``sources`` names the torch modules folded into
    this stage.
    """

    name: str
    in_shape: tuple
    weight: np.ndarray
    bias: np.ndarray | None
    stride: int | tuple = 1
    padding: int = 0
    relu: bool = False
    pool: int = 1
    sources: tuple = ()
    clamp: tuple | None = None


    @property
    def out_shape(self):
        shape = conv_shape(self.in_shape, self.weight.shape, self.stride, self.padding)
        return pooled_shape(shape, self.pool)


@dataclass(frozen=True, eq=False)
class LinearStage(_FrozenWeights):
    """A float fully connected layer with BatchNorm1d folded in and ReLU/clamp fused (see
    :class:`ConvStage`)."""

    name: str
    in_shape: tuple
    weight: np.ndarray
    bias: np.ndarray | None
    relu: bool = False
    sources: tuple = ()
    clamp: tuple | None = None


    @property
    def out_shape(self):
        return (self.weight.shape[0],)


@dataclass(frozen=True, eq=False)
class _PoolStage:
    name: str
    in_shape: tuple
    pool: int
    sources: tuple = ()

    @property
    def out_shape(self):
        return pooled_shape(self.in_shape, self.pool)


@dataclass(frozen=True, eq=False)
class MaxPoolStage(_PoolStage):
    """A stand-alone max-pool (kernel = stride, floor mode)."""


@dataclass(frozen=True, eq=False)
class AvgPoolStage(_PoolStage):
    """An average pool (kernel = stride, kernel area a power of two)."""


@dataclass(frozen=True, eq=False)
class FlattenStage:
    """``(C, H, W) -> (C·H·W,)``."""

    name: str
    in_shape: tuple
    sources: tuple = ()

    @property
    def out_shape(self):
        return (int(np.prod(self.in_shape)),)


# --- handler registry -----------------------------------------------------------------

_HANDLERS = {}


def handles(*targets):
    """Register the decorated function as the handler of ``targets``.

    A target is a module class (matched along the module's MRO), a function (matched by
    identity) or a string (a tensor method name). The handler is called as
    ``handler(builder, node, target_object)`` and returns a new stage, or ``None`` when it
    folded the node into ``builder.last`` (or dropped it).
    """
    def register(fn):
        for target in targets:
            _HANDLERS[target] = fn
        return fn
    return register


def _describe(node, target):
    if node.op == "call_module":
        return type(target).__name__
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "call_function":
        fn = node.target
        name = getattr(fn, "__name__", repr(fn))
        for prefix, space in (("torch", torch), ("torch.nn.functional", F),
                              ("operator", operator)):
            if getattr(space, name, None) is fn:
                return f"{prefix}.{name}"
        return f"{getattr(fn, '__module__', None) or '?'}.{name}"
    return node.op


class _Builder:
    """The state a handler sees: the stages so far and the current activation shape."""

    def __init__(self, module, input_shape):
        self.module = module
        self.stages = []
        self.input_shape = tuple(input_shape)
        self.batch_nodes = set()

    @property
    def last(self):
        return self.stages[-1] if self.stages else None

    @property
    def shape(self):
        return self.last.out_shape if self.stages else self.input_shape

    def replace_last(self, stage):
        self.stages[-1] = stage

    def unsupported(self, node, target, why=None):
        what = _describe(node, target)
        if why is None:
            return UnsupportedLayerError(f"Node {node.name!r} ({what}) is not supported; hwgen "
                                         f"lowers chains of {SUPPORTED}")
        return UnsupportedLayerError(f"Node {node.name!r} ({what}) {why}")


def _pair(value, what, node, b, target):
    if isinstance(value, int):
        return value
    value = tuple(value)
    if len(set(value)) != 1:
        raise b.unsupported(node, target, f"must have a square {what}, not {value!r}")
    return value[0]


def _np(t):
    return None if t is None else t.detach().cpu().to(torch.float64).numpy()


@handles(nn.Conv2d)
def _conv2d(b, node, mod):
    if type(mod) is not nn.Conv2d:
        raise b.unsupported(node, mod)
    if mod.groups != 1:
        raise b.unsupported(node, mod, f"has groups={mod.groups!r}; hwgen supports only 1")
    if tuple(mod.dilation) != (1, 1):
        raise b.unsupported(node, mod, f"has dilation={tuple(mod.dilation)!r}; hwgen supports "
                                       f"only (1, 1)")
    if isinstance(mod.padding, str):
        raise b.unsupported(node, mod, f"has padding={mod.padding!r}; give the padding as "
                                       f"an integer")
    if mod.padding_mode != "zeros":
        raise b.unsupported(node, mod, f"has padding_mode={mod.padding_mode!r}; hwgen "
                                       f"supports only 'zeros'")
    sy, sx = (int(s) for s in mod.stride)
    stride = sy if sy == sx else (sy, sx)
    padding = _pair(mod.padding, "padding", node, b, mod)
    shape = b.shape
    if len(shape) != 3 or shape[0] != mod.in_channels:
        raise ShapeError(f"Layer {node.name!r} expects {mod.in_channels} input channels, not "
                         f"input shape {shape!r}")
    return ConvStage(node.name, shape, _np(mod.weight), _np(mod.bias), stride=stride,
                     padding=padding, sources=(node.target,))


@handles(nn.Linear)
def _linear(b, node, mod):
    if type(mod) is not nn.Linear:
        raise b.unsupported(node, mod)
    shape = b.shape
    if tuple(shape) != (mod.in_features,):
        raise ShapeError(f"Layer {node.name!r} expects a flat input of {mod.in_features} "
                         f"features, not shape {shape!r}; flatten it first")
    return LinearStage(node.name, shape, _np(mod.weight), _np(mod.bias),
                       sources=(node.target,))


@handles(nn.ReLU, F.relu, torch.relu, "relu", "relu_")
def _relu(b, node, target):
    last = b.last
    if not isinstance(last, (ConvStage, LinearStage)):
        raise b.unsupported(node, target, "must follow a Conv2d or Linear layer; hwgen fuses "
                                          "ReLU into the layer before it")
    b.replace_last(replace(last, relu=True, sources=last.sources + (_source(node),)))


def _clamp_bounds(node, target):
    if isinstance(target, nn.Hardtanh):
        return float(target.min_val), float(target.max_val)
    if target is F.relu6:
        return 0.0, 6.0
    args = list(node.args[1:]) + [None, None]
    lo = node.kwargs.get("min_val", -1.0 if args[0] is None else args[0])
    hi = node.kwargs.get("max_val", 1.0 if args[1] is None else args[1])
    return lo, hi


@handles(nn.Hardtanh, F.relu6, F.hardtanh)
def _hardtanh(b, node, target):
    """ReLU6 and Hardtanh: a ReLU (for a lower bound 0) and a clamp to ``[lo, hi]`` that the
    quantizer folds into the output format's saturation bounds."""
    last = b.last
    if not isinstance(last, (ConvStage, LinearStage)):
        raise b.unsupported(node, target, "must follow a Conv2d or Linear layer; hwgen folds "
                                          "the clamp into the layer before it")
    lo, hi = _clamp_bounds(node, target)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
        raise b.unsupported(node, target, "has bounds that are not constants")
    lo, hi = float(lo), float(hi)
    if last.relu:
        lo = max(lo, 0.0)
    if last.clamp is not None:
        lo, hi = max(lo, last.clamp[0]), min(hi, last.clamp[1])
    if not (lo <= 0.0 < hi):
        raise b.unsupported(node, target, f"clamps to [{lo!r}, {hi!r}]; hwgen folds a clamp "
                                          f"into the output format's saturation, which needs "
                                          f"a lower bound of at most 0 and an upper bound "
                                          f"above 0")
    b.replace_last(replace(last, relu=last.relu or lo == 0.0, clamp=(lo, hi),
                           sources=last.sources + (_source(node),)))


def _source(node):
    return node.target if node.op == "call_module" else node.name


def _pool_size(b, node, mod, kind):
    kernel = _pair(mod.kernel_size, "kernel", node, b, mod)
    stride = kernel if mod.stride is None or mod.stride == () else \
        _pair(mod.stride, "stride", node, b, mod)
    if stride != kernel:
        raise b.unsupported(node, mod, f"has stride {stride!r} and kernel {kernel!r}; hwgen "
                                       f"supports {kind} with stride equal to the kernel")
    if _pair(mod.padding, "padding", node, b, mod) != 0:
        raise b.unsupported(node, mod, f"has padding={mod.padding!r}; hwgen supports only 0")
    if mod.ceil_mode:
        raise b.unsupported(node, mod, "has ceil_mode=True; hwgen pools in floor mode")
    if len(b.shape) != 3:
        raise ShapeError(f"Layer {node.name!r} expects a (C, H, W) input, not shape "
                         f"{b.shape!r}")
    return kernel


@handles(nn.MaxPool2d)
def _maxpool(b, node, mod):
    if _pair(mod.dilation, "dilation", node, b, mod) != 1:
        raise b.unsupported(node, mod, f"has dilation={mod.dilation!r}; hwgen supports only 1")
    if mod.return_indices:
        raise b.unsupported(node, mod, "has return_indices=True")
    pool = _pool_size(b, node, mod, "max-pooling")
    last = b.last
    if isinstance(last, ConvStage) and last.pool == 1:
        b.replace_last(replace(last, pool=pool, sources=last.sources + (node.target,)))
        return None
    return MaxPoolStage(node.name, b.shape, pool, sources=(node.target,))


@handles(nn.AvgPool2d)
def _avgpool(b, node, mod):
    pool = _pool_size(b, node, mod, "average pooling")
    if mod.divisor_override is not None:
        raise b.unsupported(node, mod, f"has divisor_override={mod.divisor_override!r}")
    if pool & (pool - 1):
        raise b.unsupported(node, mod, f"has kernel {pool!r}; hwgen needs a kernel area that "
                                       f"is a power of two")
    return AvgPoolStage(node.name, b.shape, pool, sources=(node.target,))


def _flatten_dims(b, node, target, start, end):
    ndim = len(b.shape) + 1
    if start < 0:
        start += ndim
    if end < 0:
        end += ndim
    if (start, end) != (1, ndim - 1):
        raise b.unsupported(node, target, f"flattens dimensions {start}..{end}; hwgen "
                                          f"flattens everything but the batch dimension")
    if len(b.shape) == 1:
        return None
    return FlattenStage(node.name, b.shape, sources=(_source(node),))


@handles(nn.Flatten)
def _flatten_module(b, node, mod):
    return _flatten_dims(b, node, mod, mod.start_dim, mod.end_dim)


@handles(torch.flatten, "flatten")
def _flatten_call(b, node, fn):
    args = list(node.args[1:]) + [None, None]
    start = node.kwargs.get("start_dim", args[0] if args[0] is not None else 0)
    end = node.kwargs.get("end_dim", args[1] if args[1] is not None else -1)
    if not isinstance(start, int) or not isinstance(end, int):
        raise b.unsupported(node, fn, "has dimensions that are not constants")
    return _flatten_dims(b, node, fn, start, end)


@handles("view", "reshape", torch.reshape)
def _reshape(b, node, target):
    """``x.view(x.size(0), -1)``, ``x.reshape(-1, N)``, ``torch.reshape(x, (B, N))``: a
    flatten, when the result keeps the batch dimension and flattens the rest."""
    dims = node.args[1:] if node.op == "call_method" else node.args[1:2]
    if "shape" in node.kwargs:
        dims = (node.kwargs["shape"],)
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    n = int(np.prod(b.shape))
    flat = len(dims) == 2 and (
        (dims[0] in b.batch_nodes and dims[1] in (-1, n))
        or (dims[0] == -1 and dims[1] == n))
    if not flat:
        shown = tuple(d.name if isinstance(d, torch.fx.Node) else d for d in dims)
        raise b.unsupported(node, target, f"reshapes to {shown!r}; hwgen takes only a flatten "
                                          f"that keeps the batch dimension, such as "
                                          f"x.view(x.size(0), -1)")
    if len(b.shape) == 1:
        return None
    return FlattenStage(node.name, b.shape, sources=(_source(node),))


def _batch_size_node(node, current, shape_nodes):
    """True for ``x.size(0)`` and ``x.shape[0]`` of the current activation ``x``."""
    if node.op == "call_method" and node.target == "size":
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        return node.args[0] is current and dim == 0
    if node.op == "call_function" and node.target is operator.getitem:
        return node.args[0] in shape_nodes and node.args[1] == 0
    return False


def _fold(weight, bias, bn):
    mean = _np(bn.running_mean)
    var = _np(bn.running_var)
    gamma = _np(bn.weight) if bn.weight is not None else np.ones_like(mean)
    beta = _np(bn.bias) if bn.bias is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.eps)
    b0 = bias if bias is not None else np.zeros_like(mean)
    w = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    return w, (b0 - mean) * scale + beta


@handles(nn.BatchNorm2d, nn.BatchNorm1d)
def _batchnorm(b, node, mod):
    last = b.last
    want = ConvStage if isinstance(mod, nn.BatchNorm2d) else LinearStage
    if not isinstance(last, want) or last.relu or last.clamp is not None \
            or getattr(last, "pool", 1) != 1:
        raise b.unsupported(node, mod, f"must directly follow a "
                                       f"{'Conv2d' if want is ConvStage else 'Linear'} layer "
                                       f"to be folded into it")
    if mod.running_mean is None or mod.running_var is None:
        raise b.unsupported(node, mod, "has no running statistics to fold "
                                       "(track_running_stats=False)")
    if mod.num_features != last.weight.shape[0]:
        raise ShapeError(f"Layer {node.name!r} has {mod.num_features} features, not the "
                         f"{last.weight.shape[0]} channels of {last.name!r}")
    w, bias = _fold(last.weight, last.bias, mod)
    b.replace_last(replace(last, weight=w, bias=bias, sources=last.sources + (node.target,)))


@handles(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity,
         F.dropout)
def _drop(b, node, target):
    return None


def _lookup(node, target):
    if node.op == "call_module":
        for cls in type(target).__mro__:
            if cls in _HANDLERS:
                return _HANDLERS[cls]
        return None
    if node.op == "call_method":
        return _HANDLERS.get(node.target)
    try:
        return _HANDLERS.get(node.target)
    except TypeError:  # unhashable callables
        return None


def trace(module, input_shape):
    """Trace ``module`` (float, any mode) into a tuple of float stages.

    Parameters
    ----------
    module : torch.nn.Module
        A chain of supported layers (see the module docstring).
    input_shape : tuple of int
        The shape of one input, ``(C, H, W)`` or ``(N,)``, without the batch dimension.

    Returns
    -------
    tuple
        Stages in order, one per IR node they will become.

    Raises
    ------
    UnsupportedLayerError
        For any operation, or any branch, the hardware cannot run.
    ShapeError
        When the layer sizes do not fit ``input_shape``.
    """
    import torch.fx

    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as e:  # noqa: BLE001 -- fx raises anything the user's forward raises
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedLayerError(f"Model {type(module).__name__!r} cannot be traced by "
                                    f"torch.fx ({first})") from None
    b = _Builder(module, input_shape)
    current = None
    shape_nodes = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if current is not None:
                raise UnsupportedLayerError(f"Node {node.name!r} is a second input; hwgen "
                                            f"lowers models with one input")
            current = node
            continue
        if node.op == "output":
            if node.args[0] is not current:
                raise UnsupportedLayerError(f"Node {node.name!r} returns {node.args[0]!r} "
                                            f"rather than the last layer's output "
                                            f"{current.name!r}; hwgen lowers chains of "
                                            f"{SUPPORTED}")
            continue
        if node.op == "call_function" and node.target is getattr and \
                node.args == (current, "shape"):
            shape_nodes.add(node)
            continue
        if _batch_size_node(node, current, shape_nodes):
            b.batch_nodes.add(node)
            continue
        target = gm.get_submodule(node.target) if node.op == "call_module" else node.target
        handler = _lookup(node, target)
        if handler is None:
            raise b.unsupported(node, target)
        inputs = [a for a in node.all_input_nodes if a not in b.batch_nodes]
        if inputs != [current] or node.args[:1] != (current,):
            raise b.unsupported(node, target, f"does not take the previous node "
                                              f"{current.name!r} as its only input; hwgen "
                                              f"lowers chains of {SUPPORTED}")
        stage = handler(b, node, target)
        if stage is not None:
            b.stages.append(stage)
        current = node
    stages = tuple(b.stages)
    _check_shapes(module, input_shape, stages)
    return stages


def _check_shapes(module, input_shape, stages):
    """Run the module once on zeros so that shape errors surface here, with a clear
    message, and agree with the shapes the stages compute."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            p = next(module.parameters(), None)
            dtype = p.dtype if p is not None else torch.float32
            out = module(torch.zeros((1,) + tuple(input_shape), dtype=dtype))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ShapeError(f"Model {type(module).__name__!r} cannot run on input shape "
                         f"{tuple(input_shape)!r} ({first})") from None
    finally:
        module.train(was_training)
    expected = stages[-1].out_shape if stages else tuple(input_shape)
    if tuple(out.shape[1:]) != tuple(expected):
        raise ShapeError(f"Model {type(module).__name__!r} gives output shape "
                         f"{tuple(out.shape[1:])!r}, not {tuple(expected)!r}")


def _t(a, like):
    # A copy: the stage arrays are read-only and torch tensors must be writable.
    return None if a is None else torch.tensor(np.array(a), dtype=like.dtype, device=like.device)


def float_forward(stages, x, collect=False):
    """Run the float stages on a batch ``x`` (torch tensor or numpy array) in float64.

    The reference for calibration and for checking BatchNorm folding. Returns the output
    (a float64 tensor), or the list of every stage's output when ``collect``.
    """
    x = x if isinstance(x, torch.Tensor) else torch.tensor(np.array(x))
    x = x.to(torch.float64)
    outs = []
    with torch.no_grad():
        for s in stages:
            if isinstance(s, ConvStage):
                x = F.conv2d(x, _t(s.weight, x), _t(s.bias, x), stride=s.stride,
                             padding=s.padding)
                if s.relu:
                    x = F.relu(x)
                if s.clamp is not None:
                    x = torch.clamp(x, *s.clamp)
                if s.pool > 1:
                    x = F.max_pool2d(x, s.pool)
            elif isinstance(s, LinearStage):
                x = F.linear(x, _t(s.weight, x), _t(s.bias, x))
                if s.relu:
                    x = F.relu(x)
                if s.clamp is not None:
                    x = torch.clamp(x, *s.clamp)
            elif isinstance(s, MaxPoolStage):
                x = F.max_pool2d(x, s.pool)
            elif isinstance(s, AvgPoolStage):
                x = F.avg_pool2d(x, s.pool)
            elif isinstance(s, FlattenStage):
                x = torch.flatten(x, 1)
            else:
                raise UnsupportedLayerError(f"Stage {s!r} is not a front-end stage")
            outs.append(x)
    return outs if collect else x
