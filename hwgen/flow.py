"""The main flows, as functions the CLI and the tests share: compile a model into a design
folder, and the demo (compile + simulate the built-in model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .compiler import AcceleratorConfig, compile_graph
from .emit import write_design

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
                  progress=None, **config):
    """Quantize ``model_spec`` with ``scheme``, compile it for an ``array`` ("4x4") and write
    the design folder ``out_dir``. Returns ``(design, qmodel)``.

    ``progress(message)`` hears what is happening once the arguments have been checked.
    """
    from .quant import load_quantized, load_scheme
    cfg = AcceleratorConfig.parse_array(array, **config)
    load_scheme(scheme)
    if progress is not None:
        progress(f"quantizing {model_spec} ({scheme}) and generating a {array} accelerator")
    qmodel = load_quantized(model_spec, scheme)
    design = compile_graph(qmodel.graph, cfg)
    write_design(design, Path(out_dir), vectors=test_vectors(qmodel, vectors))
    return design, qmodel
