"""The quantized model, its report, and the entry points that make one from a torch module."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import frontend, ir
from ..errors import ArgumentError, CheckpointError, ShapeError, UnsupportedLayerError
from ..numerics import QFormat, dequantize, sqnr_db
from ..numerics import quantize as quantize_values
from .modules import QuantNetwork, _QuantDense
from .network import build_network
from .scheme import Scheme, load_scheme

__all__ = ["LayerRow", "QuantReport", "QuantizedModel", "check_hardware_stages", "quantize",
           "quantize_model"]

#: How many calibration inputs a model without a test set measures its SQNR on.
SQNR_INPUTS = 1000


def _kind(layer):
    if isinstance(layer, ir.Conv2d):
        kh, kw = layer.kernel
        k = f"Conv2d {kh}x{kw}"
        sy, sx = ir.stride_pair(layer.stride)
        if (sy, sx) != (1, 1):
            k += f"/s{sy}" if sy == sx else f"/s{sy}x{sx}"
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
    #: ``(saturated, wrapped)`` values on the SQNR inputs (:func:`hwgen.golden.
    #: overflow_counts`), or None for a layer that does not requantize.
    overflow: tuple | None = None

    def to_json(self):
        return {"name": self.name, "kind": self.kind, "out_shape": list(self.out_shape),
                "in_fmt": self.in_fmt, "weight_fmt": self.weight_fmt, "out_fmt": self.out_fmt,
                "sqnr_db": None if math.isinf(self.sqnr_db) else round(self.sqnr_db, 3),
                "weight_bytes": self.weight_bytes, "bias_bytes": self.bias_bytes,
                "overflow": None if self.overflow is None else
                {"saturated": self.overflow[0], "wrapped": self.overflow[1]}}

    @property
    def overflow_text(self):
        """``-`` (no requantization), ``0``, ``12 sat`` or ``40 wrap``."""
        if self.overflow is None:
            return "-"
        sat, wrap = self.overflow
        parts = [f"{sat} sat"] * bool(sat) + [f"{wrap} wrap"] * bool(wrap)
        return ", ".join(parts) or "0"


@dataclass(frozen=True)
class QuantReport:
    """What ``hwgen quantize`` prints: the layer table and the two test accuracies.

    A model without a data set has ``dataset``, ``float_accuracy`` and
    ``quantized_accuracy`` None; its SQNR is measured on ``test_images`` calibration
    inputs.
    """

    model: str
    scheme: str
    dataset: str | None
    input_fmt: str
    layers: tuple
    float_accuracy: float | None
    quantized_accuracy: float | None
    test_images: int

    def to_json(self):
        return {"model": self.model, "scheme": self.scheme, "dataset": self.dataset,
                "input_fmt": self.input_fmt, "layers": [r.to_json() for r in self.layers],
                "float_accuracy": self.float_accuracy,
                "quantized_accuracy": self.quantized_accuracy,
                "test_images": self.test_images}

    def format_table(self):
        """The report as aligned text lines."""
        head = ("layer", "kind", "in", "weights", "out", "SQNR dB", "overflow", "weight B",
                "bias B")
        rows = [head]
        for r in self.layers:
            rows.append((r.name, r.kind, r.in_fmt, r.weight_fmt, r.out_fmt,
                         "inf" if math.isinf(r.sqnr_db) else f"{r.sqnr_db:.1f}",
                         r.overflow_text, str(r.weight_bytes), str(r.bias_bytes)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        right = {5, 6, 7, 8}
        lines = [f"model {self.model}, scheme {self.scheme}, input {self.input_fmt}"]
        for row in rows:
            lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        total_w = sum(r.weight_bytes for r in self.layers)
        total_b = sum(r.bias_bytes for r in self.layers)
        lines.append(f"parameters: {total_w} weight bytes + {total_b} bias bytes")
        over = [r for r in self.layers if r.overflow is not None and any(r.overflow)]
        if over:
            lines.append("overflow: " + "; ".join(f"{r.name} {r.overflow_text}" for r in over)
                         + f" of the values on {self.test_images} images (widen the format or "
                           f"lower frac)")
        if self.dataset is None:
            lines.append(f"no test set: SQNR measured on {self.test_images} calibration "
                         f"inputs")
        else:
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
        Model name (``digits-cnn`` for ``builtin:digits-cnn``, else the checkpoint's stem,
        or what :func:`quantize` was given).
    arch : str or None
        Architecture name (None for a module given to :func:`quantize`).
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
    dataset : hwgen.data.Dataset or None
        The data set it was calibrated on and is tested on, if any.
    calibration : numpy.ndarray or None
        The float inputs it was calibrated on (the data set's training images, or what
        :func:`quantize` was given).
    """

    name: str
    arch: str | None
    scheme: Scheme
    graph: ir.Graph
    module: QuantNetwork
    float_module: nn.Module
    stages: tuple
    dataset: object = None
    calibration: np.ndarray | None = None

    def quantize_input(self, x_float):
        """The integers the hardware receives for float inputs: ``quantize(x, input_fmt)``
        (``nearest_even``, ``saturate``), int64 numpy."""
        x = x_float.detach().cpu().numpy() if isinstance(x_float, torch.Tensor) else x_float
        return np.asarray(quantize_values(np.asarray(x, dtype=np.float64),
                                          self.graph.input_fmt), dtype=np.int64)

    def run_golden(self, x_float):
        """Integer outputs of the golden model for float inputs."""
        from .. import golden
        return golden.run(self.graph, self.quantize_input(x_float))

    def predict_int(self, x_float, batch=4096):
        """The hardware's exact output words for float inputs: the golden model's int64
        outputs ``(N, *graph.output_shape)`` (integers of ``graph.output_fmt``)."""
        x = np.asarray(x_float.detach().cpu().numpy() if isinstance(x_float, torch.Tensor)
                       else x_float)
        outs = [self.run_golden(x[i:i + batch]) for i in range(0, len(x), batch)]
        if not outs:
            return np.zeros((0,) + tuple(self.graph.output_shape), dtype=np.int64)
        return np.concatenate(outs)

    def predict(self, x_float, batch=4096):
        """The hardware's answers for float inputs, as numbers: :meth:`predict_int`
        dequantized, float64 ``(N, *graph.output_shape)``. Each value is exactly the output
        word times ``2**-F`` of ``graph.output_fmt`` (float64 holds it without rounding), so
        ``predict(x) == predict_int(x) * 2.0**-F`` compares bit-exactly."""
        return dequantize(self.predict_int(x_float, batch), self.graph.output_fmt)

    def classify(self, x_float, batch=4096):
        """Class predictions of the golden model (argmax of the integer outputs)."""
        out = self.predict_int(x_float, batch)
        return np.argmax(out.reshape(len(out), -1), axis=1)

    def _test_set(self, x, y):
        if x is not None and y is not None:
            return x, y
        if self.dataset is None:
            raise ArgumentError(f"Model {self.name!r} has no data set; give test images and "
                                f"labels")
        return self.dataset.x_test, self.dataset.y_test

    def float_accuracy(self, x=None, y=None):
        """Accuracy of the float model on ``x``, ``y`` (default: the data set's test set)."""
        x, y = self._test_set(x, y)
        with torch.no_grad():
            logits = self.float_module(torch.tensor(np.array(x)))
        return float(np.mean(logits.argmax(1).numpy() == np.asarray(y)))

    def quantized_accuracy(self, x=None, y=None):
        """Accuracy of the golden model, the hardware's accuracy, on ``x``, ``y`` (default:
        the data set's test set)."""
        x, y = self._test_set(x, y)
        return float(np.mean(self.classify(x) == np.asarray(y)))

    def accuracy(self, x=None, y=None):
        """The hardware's accuracy: :meth:`quantized_accuracy` (the golden model's argmax
        against the labels ``y``)."""
        return self.quantized_accuracy(x, y)

    def _sqnr_inputs(self):
        if self.dataset is not None:
            return self.dataset.x_test
        if self.calibration is not None:
            return self.calibration[:SQNR_INPUTS]
        raise ArgumentError(f"Model {self.name!r} has neither a data set nor calibration "
                            f"data; give inputs to measure the SQNR on")

    def layer_table(self, x_float=None):
        """Per layer: name, kind, formats, SQNR (dB) of the dequantized integer output
        against the float model's output of the same layer, overflow counts and parameter
        bytes. SQNR is
        measured on ``x_float`` (default: the test images, else the first
        :data:`SQNR_INPUTS` calibration inputs)."""
        from .. import golden
        x = self._sqnr_inputs() if x_float is None else x_float
        ref = frontend.float_forward(self.stages, x, collect=True)
        counts = {}
        outs = golden.run_layers(self.graph, self.quantize_input(x), counts)
        rows = []
        for layer, module, r, q in zip(self.graph.layers, self.module.layers, ref, outs):
            fmt = getattr(layer, "out_fmt", None) or layer.fmt
            is_dense = isinstance(module, _QuantDense)
            rows.append(LayerRow(
                name=layer.name, kind=_kind(layer), out_shape=tuple(layer.out_shape),
                in_fmt=str(getattr(layer, "in_fmt", None) or layer.fmt),
                weight_fmt=module.weight_fmt_str if is_dense else "-",
                out_fmt=str(fmt), sqnr_db=sqnr_db(r.numpy(), dequantize(q, fmt)),
                weight_bytes=module.weight_bytes if is_dense else 0,
                bias_bytes=module.bias_bytes if is_dense else 0,
                overflow=counts.get(layer.name)))
        return tuple(rows)

    def report(self):
        """The :class:`QuantReport` ``hwgen quantize`` prints (without accuracies when the
        model has no data set)."""
        if self.dataset is None:
            x = self._sqnr_inputs()
            return QuantReport(self.name, self.scheme.name, None, str(self.graph.input_fmt),
                               self.layer_table(x), None, None, len(x))
        return QuantReport(self.name, self.scheme.name, self.dataset.name,
                           str(self.graph.input_fmt), self.layer_table(),
                           self.float_accuracy(), self.quantized_accuracy(),
                           len(self.dataset.x_test))


def _identifier(name):
    s = "".join(c if c.isalnum() else "_" for c in name)
    return s if s and not s[0].isdigit() else "m_" + s


def _check_input_shape(input_shape):
    ok = isinstance(input_shape, (tuple, list)) and len(input_shape) > 0 and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
        for d in input_shape)
    if not ok:
        raise ArgumentError(f"Input shape must be a tuple of positive integers, not "
                            f"{input_shape!r}")
    return tuple(int(d) for d in input_shape)


def _check_calibration(calibration, shape):
    if calibration is None:
        return None
    if isinstance(calibration, torch.Tensor):
        calibration = calibration.detach().cpu().numpy()
    try:
        x = np.asarray(calibration)
    except (ValueError, TypeError):
        x = None
    if x is None or x.dtype.kind not in "fiu":
        raise ArgumentError(f"Calibration data must be an array of numbers, not "
                            f"{type(calibration).__name__!r}")
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape or len(x) == 0:
        raise ShapeError(f"Calibration data must have shape (N, {', '.join(map(str, shape))}) "
                         f"with N >= 1, not {tuple(x.shape)!r}")
    bad = int(np.count_nonzero(~np.isfinite(x))) if x.dtype.kind == "f" else 0
    if bad:
        raise ArgumentError(f"Calibration data holds {bad} non-finite "
                            f"value{'s' if bad != 1 else ''}")
    return x


_STAGE_KINDS = {"ConvStage": "Conv2d", "LinearStage": "Linear", "MaxPoolStage": "MaxPool2d",
                "AvgPoolStage": "AvgPool2d", "FlattenStage": "Flatten"}


def check_hardware_stages(stages):
    """Raise :class:`UnsupportedLayerError` for a float stage the accelerator cannot run: an
    average pool, or a max-pool that is not fused into the Conv2d directly before it."""
    for i, s in enumerate(stages):
        if isinstance(s, frontend.AvgPoolStage):
            raise UnsupportedLayerError(
                f"Layer {s.name!r} (AvgPool2d) cannot run on the accelerator, which has no "
                f"average pooling; downsample with a strided Conv2d, or with a MaxPool2d "
                f"directly after a Conv2d, instead")
        if isinstance(s, frontend.MaxPoolStage):
            prev = stages[i - 1] if i else None
            if prev is None:
                after = "the input"
            elif isinstance(prev, frontend.ConvStage):
                after = f"{prev.name!r}, a Conv2d that pools already"
            else:
                after = f"{prev.name!r} ({_STAGE_KINDS.get(type(prev).__name__, '?')})"
            raise UnsupportedLayerError(
                f"Layer {s.name!r} (MaxPool2d) cannot run on the accelerator, which max-pools "
                f"only inside the Conv2d directly before the pool, and it follows {after}")


def _saturates_within(fmt, lo, hi, relu):
    return fmt.max_value <= hi and (relu or fmt.min_value >= lo)


def _clamp_overrides(stages, net, scheme):
    """Per clamped layer (ReLU6, Hardtanh) whose calibrated output format saturates outside
    the clamp: a scheme entry with the smallest larger ``frac`` that saturates inside it, so
    that saturation does the clamp exactly (``q(clamp(x)) == saturate(q(x))`` when the
    format's range lies within the clamp). Raises when the format is fixed by the scheme."""
    overrides = []
    for s, layer in zip(stages, net.layers):
        if getattr(s, "clamp", None) is None:
            continue
        lo, hi = s.clamp
        fmt, spec = layer.out_fmt, scheme.layer(s.name)
        where = f"Layer {s.name!r} clamps its outputs to [{lo!r}, {hi!r}] (ReLU6/Hardtanh)"
        if layer.overflow != "saturate":
            raise UnsupportedLayerError(f"{where}, which hwgen folds into saturation, but its "
                                        f"overflow mode is {layer.overflow!r}; use 'saturate'")
        if _saturates_within(fmt, lo, hi, s.relu):
            continue
        if getattr(spec, "kind", None) != "fixed" or getattr(spec, "frac", None) != "auto":
            raise UnsupportedLayerError(
                f"{where}, which hwgen folds into saturation, but its output format {fmt} "
                f"saturates at [{fmt.min_value!r}, {fmt.max_value!r}]; give it a frac that "
                f"saturates within the clamp, or use ReLU")
        frac = fmt.frac
        while not _saturates_within(QFormat(fmt.width, frac, fmt.signed), lo, hi, s.relu):
            frac += 1
        overrides.append((s.name, dataclasses.replace(spec, frac=frac)))
    return tuple(overrides)


def quantize(module, input_shape, calibration=None, scheme=None, name=None, *,
             dataset=None, qat_state=None, arch=None, hardware=True):
    """Quantize any float ``module`` that :func:`hwgen.frontend.trace` takes.

    Parameters
    ----------
    module : torch.nn.Module
        A chain of Conv2d, Linear, ReLU, MaxPool2d, AvgPool2d, Flatten, BatchNorm and
        Dropout (see :mod:`hwgen.frontend`); any mode (it is put into eval mode). Or a
        Brevitas model (:mod:`hwgen.quant.brevitas`): its own quantizers give the formats.
    input_shape : tuple of int
        The shape of one input, ``(C, H, W)`` or ``(N,)``, without the batch dimension.
    calibration : array or torch.Tensor, optional
        Float inputs ``(N, *input_shape)`` to calibrate ``"auto"`` formats on; needed
        unless the scheme fixes every activation format.
    scheme : str or Scheme, optional
        ``fixed16``, ``fixed8`` (the default), ``fixed4``, a JSON spec path or a
        :class:`~hwgen.quant.Scheme`; none for a Brevitas model.
    name : str, optional
        The model's name (default: the module's class name).
    dataset : hwgen.data.Dataset, optional
        Test images for :meth:`QuantizedModel.report` accuracies.
    qat_state : dict, optional
        A :class:`QuantNetwork` state dict of QAT-trained weights to use.
    arch : str, optional
        The architecture name recorded in the model.
    hardware : bool
        Refuse, before calibrating, layers the accelerator cannot run (average pools,
        max-pools not directly after a Conv2d); ``False`` keeps them for the golden model.

    A ReLU6 or Hardtanh clamp is folded into its layer's output saturation: a calibrated
    (``"auto"``) output format that saturates outside the clamp gets the smallest larger
    fractional length that saturates inside it; a fixed one is refused.

    Returns
    -------
    QuantizedModel

    Raises
    ------
    ArgumentError, ShapeError, FormatError
        For a bad argument: checked before anything is traced or calibrated.
    UnsupportedLayerError
        For a layer the hardware cannot run.
    """
    from ..models.checkpoint import check_finite, load_state
    if not isinstance(module, nn.Module):
        raise ArgumentError(f"Module must be a torch.nn.Module, not {module!r}")
    shape = _check_input_shape(input_shape)
    if name is None:
        name = type(module).__name__
    if not isinstance(name, str) or not name:
        raise ArgumentError(f"Model name must be a non-empty string, not {name!r}")
    from .brevitas import is_brevitas
    brevitas = is_brevitas(module)
    if brevitas and scheme is not None:
        raise ArgumentError(f"Model {name!r} is a Brevitas model whose quantizers fix every "
                            f"format; leave out the scheme {getattr(scheme, 'name', scheme)!r}")
    scheme = load_scheme("fixed8" if scheme is None else scheme) if not brevitas else None
    x_calib = _check_calibration(calibration, shape)
    check_finite(module.state_dict(), f"Model {name!r}", ArgumentError)
    float_module = module.eval()
    if brevitas:
        from .brevitas import convert
        from .imported import scheme_for
        float_module, events = convert(module, shape, x_calib)
    stages = frontend.trace(float_module, shape)
    if hardware:
        check_hardware_stages(stages)
    if brevitas:
        scheme = scheme_for(stages, events, "brevitas")
    net = build_network(stages, shape, scheme, x_calib, name=_identifier(name))
    overrides = _clamp_overrides(stages, net, scheme)
    if overrides:
        scheme = dataclasses.replace(scheme, layers=tuple(scheme.layers) + overrides)
        net = build_network(stages, shape, scheme, x_calib, name=_identifier(name))
    if qat_state is not None:
        check_finite(qat_state, f"QAT weights of model {name!r}", CheckpointError)
        load_state(net, {k: v.to(torch.float64) if isinstance(v, torch.Tensor) else v
                         for k, v in qat_state.items()},
                   f"QAT weights do not fit model {name!r}")
    net = net.eval()
    return QuantizedModel(name=name, arch=arch, scheme=net.resolved_scheme(),
                          graph=net.to_graph(), module=net, float_module=float_module,
                          stages=stages, dataset=dataset, calibration=x_calib)


def quantize_model(float_module, arch, scheme, dataset, name=None, qat_state=None):
    """Quantize a float model of the built-in architecture ``arch`` with ``scheme``
    (calibrated on ``dataset``'s training images); ``qat_state`` loads QAT-trained
    weights. :func:`quantize` takes any module."""
    from ..models import input_shape
    return quantize(float_module, input_shape(arch), dataset.x_train, scheme, name or arch,
                    dataset=dataset, qat_state=qat_state, arch=arch)
