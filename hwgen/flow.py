"""The main flows, as functions the CLI and the tests share: load a checkpoint and quantize
it, compile a model into a design folder, and the demo (compile + simulate the built-in
model)."""

from __future__ import annotations

import os

import numpy as np

from .compiler import AcceleratorConfig, check_size, compile_graph
from .emit import check_design_dir, write_design
from .errors import check_int

__all__ = ["DEFAULT_VECTORS", "compile_model", "load_quantized", "test_vectors"]

#: How many test images a design folder carries for `hwgen simulate`.
DEFAULT_VECTORS = 100


def _model_name(model_spec):
    spec = str(model_spec)
    if spec.startswith("builtin:"):
        return spec[len("builtin:"):]
    return os.path.splitext(os.path.basename(spec))[0]


def load_quantized(model_spec, scheme, progress=False):
    """Load a checkpoint and its data set and quantize it: the entry point the CLI uses.

    Everything that can be checked cheaply is checked before calibrating: the checkpoint
    (finite weights of the right shapes), the scheme, and that the data set's images have
    the architecture's input shape.

    Parameters
    ----------
    model_spec : str
        A checkpoint path or ``builtin:NAME`` (``builtin:digits-cnn``, ``builtin:mlp``).
    scheme : str or hwgen.quant.Scheme
        ``fixed16``, ``fixed8``, ``fixed4``, ``pow2-4``, ``bwn``, ``binary`` or a JSON spec
        path (see :mod:`hwgen.quant`). When the checkpoint was QAT fine-tuned for a scheme
        of the same name, its trained weights and formats are used instead of calibrating;
        ``builtin:NAME`` with ``pow2-4``, ``bwn`` or ``binary`` loads the shipped QAT
        checkpoint for that scheme (:data:`hwgen.models.checkpoint.BUILTIN_QAT`).
    progress : bool
        Print what is happening to stderr.

    Returns
    -------
    hwgen.quant.QuantizedModel
    """
    import sys

    from .data import load_dataset
    from .errors import CheckpointError
    from .models import input_shape, load_checkpoint
    from .quant import Scheme, load_scheme, quantize, scheme_from_json

    def say(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    from .models.checkpoint import resolve_for_scheme

    scheme_name = scheme.name if isinstance(scheme, Scheme) else os.fspath(scheme)
    ckpt = load_checkpoint(resolve_for_scheme(model_spec, scheme_name))
    name = _model_name(model_spec)
    say(f"loading {ckpt.arch} from {ckpt.path}")
    qat_state = None
    if ckpt.scheme is not None and ckpt.formats is not None and ckpt.scheme == scheme_name:
        say(f"using the QAT formats and weights the checkpoint holds for {scheme_name!r}")
        scheme = scheme_from_json(ckpt.formats, f"Checkpoint {ckpt.path!r} formats")
        qat_state = ckpt.qat_state_dict
    else:
        scheme = load_scheme(scheme)
    float_module = ckpt.build_model()
    dataset = load_dataset(ckpt.dataset)
    shape = tuple(input_shape(ckpt.arch))
    if tuple(dataset.input_shape) != shape:
        raise CheckpointError(f"Checkpoint {ckpt.path!r} names data set {dataset.name!r} of "
                              f"input shape {tuple(dataset.input_shape)!r}, but architecture "
                              f"{ckpt.arch!r} takes {shape!r}")
    if qat_state is None:
        say(f"calibrating {scheme.name} on {len(dataset.x_train)} {dataset.name} images")
    return quantize(float_module, shape, dataset.x_train, scheme, name, dataset=dataset,
                    qat_state=qat_state, arch=ckpt.arch)


def test_vectors(qmodel, count=DEFAULT_VECTORS):
    """``(inputs, expected, labels)``: the first ``count`` test images of ``qmodel``'s data
    set as the integers the hardware receives, the golden model's outputs, the labels."""
    from . import golden
    data = qmodel.dataset
    count = min(count, len(data.x_test))
    x = qmodel.quantize_input(data.x_test[:count])
    expected = golden.run(qmodel.graph, x)
    return (x.reshape(count, -1), expected.reshape(count, -1),
            np.asarray(data.y_test[:count], dtype=np.int64))


def compile_model(model_spec, scheme, array, out_dir, *, vectors=DEFAULT_VECTORS,
                  progress=None, force=False, allow_large=False, **config):
    """Quantize ``model_spec`` with ``scheme``, compile it for an ``array`` ("4x4") and write
    the design folder ``out_dir``. Returns ``(design, qmodel)``.

    Every argument is checked before the long work starts (the output folder, the array
    and its size limits, the scheme). ``force`` lets hwgen add a design to a folder that
    holds other files; ``allow_large`` lifts :data:`hwgen.compiler.SIZE_LIMITS`.
    ``progress(message)`` hears what is happening once everything that can be checked
    before elaboration (the long part) was checked, the model's fit included.
    """
    vectors = check_int(vectors, "Test vectors", minimum=1)
    out = check_design_dir(out_dir, force=force)
    cfg = AcceleratorConfig.parse_array(array, **config)
    check_size(cfg, allow_large=allow_large)
    from .quant import load_scheme  # torch: imported once the cheap checks passed
    load_scheme(scheme)
    qmodel = load_quantized(model_spec, scheme)
    design = compile_graph(qmodel.graph, cfg, allow_large=allow_large)
    if progress is not None:
        progress(f"generating the {cfg.rows}x{cfg.cols} accelerator for {model_spec} "
                 f"({scheme}) into {out}/")
    write_design(design, out, vectors=test_vectors(qmodel, vectors), force=force)
    return design, qmodel
