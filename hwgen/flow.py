"""The main flows, as functions the CLI and the tests share: compile a model into a design
folder, and the demo (compile + simulate the built-in model)."""

from __future__ import annotations

import numpy as np

from .compiler import AcceleratorConfig, check_size, compile_graph
from .emit import check_design_dir, write_design
from .errors import check_int

__all__ = ["DEFAULT_VECTORS", "compile_model", "test_vectors"]

#: How many test images a design folder carries for `hwgen simulate`.
DEFAULT_VECTORS = 100


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
    from .quant import load_quantized, load_scheme
    vectors = check_int(vectors, "Test vectors", minimum=1)
    out = check_design_dir(out_dir, force=force)
    cfg = AcceleratorConfig.parse_array(array, **config)
    check_size(cfg, allow_large=allow_large)
    load_scheme(scheme)
    qmodel = load_quantized(model_spec, scheme)
    design = compile_graph(qmodel.graph, cfg, allow_large=allow_large)
    if progress is not None:
        progress(f"generating the {cfg.rows}x{cfg.cols} accelerator for {model_spec} "
                 f"({scheme}) into {out}/")
    write_design(design, out, vectors=test_vectors(qmodel, vectors), force=force)
    return design, qmodel
