"""The Python API: quantize a model, compile it, write it, simulate it.

In the spirit of hls4ml's ``convert`` / ``compile`` / ``predict``::

    q = hwgen.quantize(module, input_shape=(1, 8, 8), calibration=x_train, scheme="fixed8")
    print(q.report().format_table())
    q.predict(x)            # the hardware's exact answers, dequantized (float64)
    q.predict_int(x)        # the same as the integers the hardware writes (int64)
    q.accuracy(x, y)        # the hardware's accuracy

    design = hwgen.compile(q, array="4x4")
    design.cycles           # predicted cycles: .per_layer {name: cycles} and .total
    design.write("out/")    # Verilog, manifest, memory images, test vectors
    run = design.simulate(x[:10])   # the Verilog on Verilator
    run.outputs             # the hardware's output words (== q.predict_int(x[:10]))
    run.cycles              # measured cycles (== design.cycles)

:meth:`Design.simulate` raises :class:`~hwgen.errors.SimulationMismatch` when a word or a
cycle count differs from the golden model or the cycle model.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ArgumentError, ShapeError, SimulationMismatch, check_int

__all__ = ["Cycles", "Design", "SimResult", "compile"]


@dataclass(frozen=True, eq=False)
class Cycles:
    """Cycle counts of one inference: ``per_layer`` maps each hardware layer's name to its
    cycles (in program order), ``total`` is their sum as the cycle counter reports it."""

    per_layer: dict
    total: int

    def __post_init__(self):
        object.__setattr__(self, "per_layer", {str(k): int(v)
                                               for k, v in dict(self.per_layer).items()})
        object.__setattr__(self, "total", int(self.total))

    def __eq__(self, other):
        if not isinstance(other, Cycles):
            return NotImplemented
        return (list(self.per_layer.items()), self.total) == \
            (list(other.per_layer.items()), other.total)

    __hash__ = None

    def to_json(self):
        return {"per_layer": dict(self.per_layer), "total": self.total}


@dataclass(frozen=True, eq=False)
class SimResult:
    """What :meth:`Design.simulate` measured.

    Members
    -------
    outputs : numpy.ndarray
        The hardware's output words, int64 ``(N, *output_shape)``.
    expected : numpy.ndarray
        The golden model's words for the same inputs (equal to ``outputs``).
    cycles : Cycles
        Measured cycles per layer and in total (equal to :attr:`Design.cycles`).
    report : hwgen.report.SimReport
        The full simulation report (``hwgen simulate``'s).
    """

    outputs: np.ndarray
    expected: np.ndarray
    cycles: Cycles
    report: object


def _check_inputs(x, shape, what="Inputs"):
    import torch
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except (TypeError, ValueError):
        a = None
    if a is None or a.dtype.kind not in "fiu":
        raise ArgumentError(f"{what} must be an array of numbers, not {type(x).__name__!r}")
    if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != tuple(shape) or len(a) == 0:
        raise ShapeError(f"{what} must have shape (N, {', '.join(map(str, shape))}) with "
                         f"N >= 1, not {tuple(a.shape)!r}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ArgumentError(f"{what} hold {int((~np.isfinite(a)).sum())} non-finite values")
    return a


def _check_labels(y, n):
    if y is None:
        return np.full(n, -1, dtype=np.int64)
    a = np.asarray(y)
    if a.dtype.kind not in "iu" or a.shape != (n,):
        raise ShapeError(f"Labels must be {n} integers, not an array of shape "
                         f"{tuple(a.shape)!r} and dtype {str(a.dtype)!r}")
    return a.astype(np.int64)


@dataclass(frozen=True, eq=False)
class Design:
    """A quantized model compiled for an accelerator configuration.

    Members
    -------
    model : hwgen.quant.QuantizedModel
        The model it runs (its golden model is the specification).
    compiled : hwgen.compiler.CompiledDesign
        The layer program, memory images and predicted cycles (the manifest).
    """

    model: object
    compiled: object
    _verilog: dict = field(default_factory=dict, repr=False)

    @property
    def config(self):
        """The resolved :class:`~hwgen.compiler.AcceleratorConfig`."""
        return self.compiled.config

    @property
    def cycles(self):
        """Predicted :class:`Cycles` of one inference, per layer and in total."""
        return Cycles({layer.name: layer.cycles.total for layer in self.compiled.layers},
                      self.compiled.cycles)

    def _vectors(self, x, y, count):
        q = self.model
        if x is None:
            if q.dataset is not None:
                x, y = q.dataset.x_test, q.dataset.y_test
            elif q.calibration is not None:
                x, y = q.calibration, None
            else:
                raise ArgumentError(f"Model {q.name!r} has neither a data set nor calibration "
                                    f"data; give inputs for the test vectors")
        x = _check_inputs(x, q.graph.input_shape)
        labels = _check_labels(y, len(x))
        count = min(check_int(count, "Test vectors", minimum=1), len(x))
        x, labels = x[:count], labels[:count]
        expected = q.predict_int(x)
        return (q.quantize_input(x).reshape(count, -1), expected.reshape(count, -1), labels)

    def write(self, out_dir, x=None, y=None, *, vectors=100, force=False):
        """Write the design folder ``out_dir`` (what ``hwgen compile`` writes): Verilog,
        manifest, memory images, templates and ``vectors`` test vectors made from the float
        inputs ``x`` and labels ``y`` (default: the model's test set, else its calibration
        inputs, unlabelled). Returns the folder as a ``Path``.

        An earlier design there is replaced; a folder with other files is refused unless
        ``force`` (see :func:`hwgen.emit.write_design`).
        """
        from .emit import check_design_dir, write_design
        out = check_design_dir(out_dir, force=force)
        return write_design(self.compiled, out, vectors=self._vectors(x, y, vectors),
                            force=force)

    def simulate(self, x, y=None, *, simulator="verilator", build_dir=None, waves=None,
                 out_dir=None):
        """Run the float inputs ``x`` ``(N, *input_shape)`` through the emitted Verilog.

        Every output word is compared with the golden model and every layer's cycle count
        with :attr:`cycles`. The design is written to a temporary folder (or to
        ``out_dir``, kept, with ``sim_report.json`` and any waveform), compiled by the
        simulator (cached by Verilog text in ``build_dir``) and run once per input.

        Returns
        -------
        SimResult

        Raises
        ------
        SimulationMismatch
            When a word differs from :meth:`QuantizedModel.predict_int` or a measured cycle
            count from the prediction.
        """
        from .sim.check import simulate_design
        from .sim.runner import check_simulator, check_waves
        check_simulator(simulator)
        waves = check_waves(waves, simulator)
        x = _check_inputs(x, self.model.graph.input_shape)
        temp = None
        if out_dir is None:
            temp = Path(tempfile.mkdtemp(prefix="hwgen-sim-"))
            out_dir = temp / "design"
        try:
            folder = self.write(out_dir, x, y, vectors=len(x), force=True)
            report = simulate_design(folder, samples=len(x), simulator=simulator, waves=waves,
                                     build_dir=build_dir)
            with np.load(folder / "sim_outputs.npz", allow_pickle=False) as f:
                words = np.array(f["outputs"], dtype=np.int64)
        finally:
            if temp is not None:
                shutil.rmtree(temp, ignore_errors=True)
        shape = (len(x),) + tuple(self.model.graph.output_shape)
        expected = self.model.predict_int(x).reshape(shape)
        outputs = words.reshape(shape)
        measured = Cycles(report.cycles_measured["per_layer"], report.cycles_measured["total"])
        if not report.bit_exact or not np.array_equal(outputs, expected):
            raise SimulationMismatch(
                f"The hardware differs from the golden model in {report.mismatches} words "
                f"(samples {list(report.mismatched_samples)})")
        if not report.cycles_match or measured != self.cycles:
            raise SimulationMismatch(
                f"Measured cycles {measured.per_layer!r} differ from predicted "
                f"{self.cycles.per_layer!r}")
        return SimResult(outputs=outputs, expected=expected, cycles=measured, report=report)


def compile(qmodel, array="4x4", *, allow_large=False, **config):
    """Compile a quantized model for a systolic array.

    Parameters
    ----------
    qmodel : hwgen.quant.QuantizedModel
        From :func:`hwgen.quantize`.
    array : str or AcceleratorConfig
        ``"ROWSxCOLS"`` (``"4x4"``) or a full :class:`~hwgen.compiler.AcceleratorConfig`.
    allow_large : bool
        Lift :data:`hwgen.compiler.SIZE_LIMITS`.
    **config
        Further :class:`~hwgen.compiler.AcceleratorConfig` fields (``acc_width``,
        ``pe_stages`` …) when ``array`` is a string.

    Returns
    -------
    Design

    Raises
    ------
    ArgumentError
        For a bad argument.
    UnsupportedLayerError, DoesNotFitError
        When the model cannot run on, or does not fit, the configuration.
    """
    from .compiler import AcceleratorConfig, check_size, compile_graph
    from .quant import QuantizedModel
    if not isinstance(qmodel, QuantizedModel):
        raise ArgumentError(f"Model must be a QuantizedModel from hwgen.quantize, not "
                            f"{type(qmodel).__name__!r}")
    if isinstance(array, AcceleratorConfig):
        if config:
            raise ArgumentError(f"Config fields {sorted(config)!r} cannot be given with an "
                                f"AcceleratorConfig")
        cfg = array
    else:
        cfg = AcceleratorConfig.parse_array(array, **config)
    check_size(cfg, allow_large=allow_large)
    return Design(model=qmodel, compiled=compile_graph(qmodel.graph, cfg,
                                                        allow_large=allow_large))
