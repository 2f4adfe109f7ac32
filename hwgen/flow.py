"""The main flows, as functions the CLI and the tests share: load a checkpoint and quantize
it, compile a model into a design folder, and the demo (compile + simulate the built-in
model)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .compiler import AcceleratorConfig, check_size, compile_graph
from .emit import check_design_dir, write_design
from .errors import ArgumentError, check_int

__all__ = ["DEFAULT_VECTORS", "FloatModel", "compile_model", "load_float", "load_float_model",
           "load_quantized", "test_vectors"]

#: How many test images a design folder carries for `hwgen simulate`.
DEFAULT_VECTORS = 100


def _model_name(model_spec):
    spec = str(model_spec)
    if spec.startswith("builtin:"):
        return spec[len("builtin:"):]
    return os.path.splitext(os.path.basename(spec))[0]


def _refuse_pt2(spec):
    from .errors import CheckpointError
    raise CheckpointError(
        f"Model {spec!r} is a torch.export archive, which hwgen does not load because "
        f"torch.export.load can unpickle code from it; export ONNX instead with "
        f"torch.onnx.export(model, (x,), 'model.onnx', dynamo=False)")


def load_float_model(model_spec):
    """``(module, input_shape, checkpoint or None, name)`` of a model file, without running
    code from it: an hwgen checkpoint (``.pt``, ``builtin:NAME``) read with
    ``torch.load(weights_only=True)``, or an ONNX file (``.onnx``, read by
    :mod:`hwgen.onnx_reader`; a QONNX file's layers hold its quantized weights);
    ``.pt2`` archives are refused."""
    return _load_model(model_spec)[:4]


def _load_model(model_spec):
    """:func:`load_float_model` and a QONNX file's quantizers (None for other files)."""
    from .models import load_checkpoint
    from .models.checkpoint import load_state
    spec = os.fspath(model_spec) if isinstance(model_spec, os.PathLike) else model_spec
    ext = os.path.splitext(spec)[1].lower() if isinstance(spec, str) else ""
    if ext == ".pt2":
        _refuse_pt2(spec)
    if ext == ".onnx":
        from .models import userarch
        from .onnx_reader import read_onnx_model
        m = read_onnx_model(spec)
        module, shape = userarch.build(m.arch, f"ONNX model {spec!r}")
        load_state(module, m.state, f"ONNX model {spec!r} weights do not fit its graph")
        return module.eval(), shape, None, _model_name(spec), m.quantizers
    ckpt = load_checkpoint(spec)
    return ckpt.build_model(), ckpt.input_shape, ckpt, _model_name(spec), None


def load_quantized(model_spec, scheme=None, progress=False, data=None):
    """Load a model file and its data and quantize it: the entry point the CLI uses.

    Everything that can be checked cheaply is checked before calibrating: the model file
    (finite weights of the right shapes), the scheme, and that the data's inputs have the
    model's input shape.

    Parameters
    ----------
    model_spec : str
        ``builtin:NAME`` (``builtin:digits-cnn``, ``builtin:mlp``), an hwgen checkpoint
        (of a built-in architecture or a user's, see :func:`hwgen.models.save_model`) or an
        ONNX file (``.onnx``). ``.pt2`` archives are refused (see the README).
    scheme : str or hwgen.quant.Scheme or None
        ``fixed16``, ``fixed8``, ``fixed4``, ``pow2-4``, ``bwn``, ``ternary``, ``binary`` or
        a JSON spec path (see :mod:`hwgen.quant`); None (the default) is ``fixed8``, and for
        a QONNX file its own quantizers (which a scheme may not override). When the
        checkpoint was QAT fine-tuned for a scheme of the same name, its trained weights and
        formats are used instead of calibrating; ``builtin:NAME`` with ``pow2-4``, ``bwn``,
        ``ternary`` or ``binary`` loads the shipped QAT
        checkpoint for that scheme (:data:`hwgen.models.checkpoint.BUILTIN_QAT`).
    progress : bool
        Print what is happening to stderr.
    data : str, optional
        A ``.npz`` file (:func:`hwgen.data.load_npz`): calibration inputs and a test set;
        or a folder of the four MNIST IDX files (:func:`hwgen.data.mnist`).
        Default: the data set the checkpoint names (the digits for the built-in models).

    Returns
    -------
    hwgen.quant.QuantizedModel
    """
    import sys

    from .quant import Scheme, load_scheme, quantize, scheme_from_json

    def say(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    from .models.checkpoint import resolve_for_scheme

    scheme_name = "fixed8" if scheme is None else \
        scheme.name if isinstance(scheme, Scheme) else os.fspath(scheme)
    float_module, shape, ckpt, _, quantizers = _load_model(
        resolve_for_scheme(model_spec, scheme_name))
    shape = tuple(shape)
    name = _model_name(model_spec)
    qat_state = None
    if quantizers is not None:
        if scheme is not None:
            raise ArgumentError(f"Model {os.fspath(model_spec)!r} is a QONNX file whose "
                                f"quantizers fix every format; leave out the scheme "
                                f"{scheme_name!r}")
        from . import frontend
        from .quant.imported import scheme_for
        say("using the formats of the file's QONNX quantizers")
        scheme = scheme_for(frontend.trace(float_module, shape), quantizers, "qonnx")
    elif ckpt is not None and ckpt.scheme is not None and ckpt.formats is not None \
            and ckpt.scheme == scheme_name:
        say(f"using the QAT formats and weights the checkpoint holds for {scheme_name!r}")
        scheme = scheme_from_json(ckpt.formats, f"Checkpoint {ckpt.path!r} formats")
        qat_state = ckpt.qat_state_dict
    else:
        scheme = load_scheme(scheme_name if scheme is None else scheme)
    x_calib, dataset = _model_data(model_spec, ckpt, shape, data)
    if qat_state is None and quantizers is None:
        say(f"calibrating {scheme.name} on {len(x_calib)} inputs")
    return quantize(float_module, shape, x_calib, scheme, name, dataset=dataset,
                    qat_state=qat_state, arch=None if ckpt is None else ckpt.arch_name)


def _model_data(model_spec, ckpt, shape, data):
    """``(x_calib, dataset)`` of a model: from ``data`` (an ``.npz`` file or an MNIST
    folder), else from the
    data set the checkpoint ``ckpt`` names."""
    from .data import DataError, load_dataset, load_npz
    from .errors import CheckpointError
    if data is not None and os.path.isdir(data):
        dataset = load_dataset(f"mnist:{os.fspath(data)}")
        if tuple(dataset.input_shape) != shape:
            raise DataError(f"MNIST folder {os.fspath(data)!r} holds images of shape "
                            f"{tuple(dataset.input_shape)!r}, but model "
                            f"{_model_name(model_spec)!r} takes {shape!r}")
        return dataset.x_train, dataset
    if data is not None:
        return load_npz(data, shape)
    if ckpt is not None and ckpt.dataset is not None:
        dataset = load_dataset(ckpt.dataset)
        if tuple(dataset.input_shape) != shape:
            raise CheckpointError(f"Checkpoint {ckpt.path!r} names data set "
                                  f"{dataset.name!r} of input shape "
                                  f"{tuple(dataset.input_shape)!r}, but architecture "
                                  f"{ckpt.arch_name!r} takes {shape!r}")
        return dataset.x_train, dataset
    raise DataError(f"Model {os.fspath(model_spec)!r} names no data set; give its "
                    f"calibration and test data with --data FILE.npz (arrays x_train or "
                    f"x_calib, x_test, y_test)")


@dataclass(frozen=True, eq=False)
class FloatModel:
    """A float model file with its data, before quantization.

    Members
    -------
    name : str
    module : torch.nn.Module
        In eval mode.
    input_shape : tuple
    stages : tuple
        The front end's float stages (:func:`hwgen.frontend.trace`; BatchNorm folded).
    x_calib : numpy.ndarray
        Calibration inputs (the data set's training images, or the ``.npz`` file's).
    dataset : hwgen.data.Dataset or None
        The test set, if any.
    """

    name: str
    module: object
    input_shape: tuple
    stages: tuple
    x_calib: np.ndarray
    dataset: object = None


def load_float(model_spec, data=None):
    """Load a model file (as :func:`load_quantized` takes it) and its data, and trace it,
    without quantizing: a :class:`FloatModel`."""
    from .frontend import trace
    from .models.checkpoint import check_finite
    module, shape, ckpt, name = load_float_model(model_spec)
    shape = tuple(shape)
    x_calib, dataset = _model_data(model_spec, ckpt, shape, data)
    check_finite(module.state_dict(), f"Model {name!r}", ArgumentError)
    module = module.eval()
    return FloatModel(name, module, shape, trace(module, shape), np.asarray(x_calib), dataset)


def test_vectors(qmodel, count=DEFAULT_VECTORS):
    """``(inputs, expected, labels, overflow)``: the first ``count`` test images of
    ``qmodel``'s data set as the integers the hardware receives, the golden model's
    outputs, the labels, and per image the values each requantizing layer saturated or
    wrapped (``{layer: (N, 2) array}``, :func:`hwgen.golden.overflow_counts`)."""
    from . import golden
    data = qmodel.dataset
    if data is None:  # calibration inputs only: unlabelled vectors
        x_float = qmodel.calibration[:count]
        labels = np.full(len(x_float), -1, dtype=np.int64)
    else:
        x_float, labels = data.x_test[:count], np.asarray(data.y_test[:count], dtype=np.int64)
    count = len(x_float)
    x = qmodel.quantize_input(x_float)
    expected = golden.run(qmodel.graph, x)
    per_image = [golden.overflow_counts(qmodel.graph, x[i:i + 1]) for i in range(count)]
    overflow = {name: np.array([counts[name] for counts in per_image], dtype=np.int64)
                for name in (per_image[0] if per_image else {})}
    return x.reshape(count, -1), expected.reshape(count, -1), labels, overflow


def compile_model(model_spec, scheme, array, out_dir, *, vectors=DEFAULT_VECTORS,
                  progress=None, force=False, allow_large=False, data=None, fit=None,
                  spare=None, place=0, **config):
    """Quantize ``model_spec`` with ``scheme``, compile it for an ``array`` ("4x4") and write
    the design folder ``out_dir``. Returns ``(design, qmodel)``.

    With ``fit`` (an iCE40 target name) and ``array`` ``None``, the array is the fastest
    shape whose design fits that device with ``spare`` of its logic cells free
    (:func:`hwgen.estimate.fit.fit_array`, placing the ``place`` fastest with nextpnr);
    the choice is written to ``fit.json`` and is ``design.config``'s shape.

    Every argument is checked before the long work starts (the output folder, the array
    and its size limits, the scheme). ``force`` lets hwgen add a design to a folder that
    holds other files; ``allow_large`` lifts :data:`hwgen.compiler.SIZE_LIMITS`.
    ``progress(message)`` hears what is happening once everything that can be checked
    before elaboration (the long part) was checked, the model's fit included.
    """
    vectors = check_int(vectors, "Test vectors", minimum=1)
    out = check_design_dir(out_dir, force=force)
    if fit is not None:
        from .estimate.analytic import _check_target
        from .estimate.fit import DEFAULT_SPARE, check_spare
        if array is not None:
            raise ArgumentError(f"Give an array shape ({array!r}) or a device to fit "
                                f"({fit!r}), not both")
        _check_target(fit)
        spare = check_spare(DEFAULT_SPARE if spare is None else spare)
        place = check_int(place, "The number of shapes to place", minimum=0)
        array = "1x1"       # checks the other options now; the shape is chosen below
    cfg = AcceleratorConfig.parse_array("4x4" if array is None else array, **config)
    check_size(cfg, allow_large=allow_large)
    from .quant import load_scheme  # torch: imported once the cheap checks passed
    if scheme is not None:
        load_scheme(scheme)
    qmodel = load_quantized(model_spec, scheme, data=data)
    choice = None
    if fit is not None:
        from .estimate.fit import fit_array
        choice = fit_array(qmodel.graph, fit, spare=spare, config=config, place=place,
                           progress=progress)
        cfg = AcceleratorConfig.parse_array(choice.chosen.array, **config)
    design = compile_graph(qmodel.graph, cfg, allow_large=allow_large)
    if progress is not None:
        progress(f"generating the {cfg.rows}x{cfg.cols} accelerator for {model_spec} "
                 f"({qmodel.scheme.name}) into {out}/")
    write_design(design, out, vectors=test_vectors(qmodel, vectors), force=force, fit=choice)
    return design, qmodel
