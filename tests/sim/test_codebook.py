"""System tests of code-book designs: the emitted Verilog on Verilator, b-bit indices in
the weight memory looked up in per-layer or per-channel tables in front of MAC PEs; every
output word against the golden model, every layer's cycles against the prediction."""

import numpy as np
import pytest

from hwgen import golden, ir
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.emit import write_design
from hwgen.flow import compile_model
from hwgen.numerics import CodebookFormat, QFormat
from hwgen.sim.check import simulate_design


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sim_build_cb")


def test_digits_cnn_codebook4_2x2(check, tmp_path, build_dir):
    design, _ = compile_model("builtin:digits-cnn", "codebook-4", "2x2",
                                   tmp_path / "design", vectors=3)
    assert design.engine_kinds == ("codebook",)
    engine = design.engines[0]
    # 4-bit indices, 2 per word; one 16-entry table of 8-bit centroids per layer
    assert (engine.weight_width, engine.value_width, len(engine.tables)) == (4, 8, 3)
    report = simulate_design(tmp_path / "design", samples=3, build_dir=build_dir)
    check(report, design)
    assert report.accuracy == report.golden_accuracy


def codebook_weights(rng, shape, tables):
    """Weights drawn from ``tables`` (one per output channel), every entry used once at
    least where there is room."""
    w = np.zeros(shape, dtype=np.int64)
    for c in range(shape[0]):
        t = np.asarray(tables[c])
        idx = rng.integers(0, len(t), size=int(np.prod(shape[1:])))
        n = min(len(t), idx.size)
        idx[:n] = np.arange(n)
        w[c] = t[rng.permutation(idx)].reshape(shape[1:])
    return w


def mixed_graph(rng):
    """A per-channel code-book conv (3-bit indices, one table per channel, extremes of
    Q(8, 6) in the tables), a fixed-point conv, and a per-layer code-book linear layer with
    2-bit indices: two engines, code-book tables of both widths in one engine."""
    fin, f1, f2 = QFormat(8, 5), QFormat(8, 4), QFormat(8, 3)
    tables1 = [rng.choice(np.arange(-128, 128), size=8, replace=False) for _ in range(5)]
    tables1[0][:2] = (-128, 127)
    fmts1 = [CodebookFormat(3, 8, 6, per_channel=True)] * 5
    conv1 = ir.Conv2d("conv1", (2, 6, 5), codebook_weights(rng, (5, 2, 3, 3), tables1),
                      rng.integers(-900, 900, size=5), fin, fmts1, f1, relu=True, padding=1,
                      pool=2)
    conv2 = ir.Conv2d("conv2", conv1.out_shape, rng.integers(-128, 128, size=(3, 5, 2, 2)),
                      None, f1, [QFormat(8, 7)] * 3, f2)
    flat = ir.Flatten("flat", conv2.out_shape, f2)
    table3 = [-77, -3, 5, 90]
    fmts3 = [CodebookFormat(2, 8, 7)] * 4
    fc = ir.Linear("fc", flat.out_shape,
                   codebook_weights(rng, (4, flat.out_shape[0]), [table3] * 4),
                   rng.integers(-99, 99, size=4), f2, fmts3, QFormat(8, 2))
    return ir.Graph("cbmix", (2, 6, 5), fin, [conv1, conv2, flat, fc])


def test_per_channel_and_per_layer_tables_beside_a_fixed_engine(check, tmp_path, build_dir):
    rng = np.random.default_rng(31)
    graph = mixed_graph(rng)
    design = compile_graph(graph, AcceleratorConfig.parse_array("3x2"))
    assert design.engine_kinds == ("codebook", "fixed")
    engine = design.engines[0]
    # conv1: 3 channel tiles of 2 columns, a table row each; fc: one row; 3-bit indices
    assert engine.weight_width == 3 and len(engine.tables) == 4
    assert engine.table_bounds == (0, 18, 36, 54)
    samples = 4
    x = rng.integers(-128, 128, size=(samples,) + graph.input_shape)
    x[0], x[1] = 127, -128
    expected = golden.run(graph, x).reshape(samples, -1)
    write_design(design, tmp_path / "d", vectors=(x.reshape(samples, -1), expected,
                                                  np.zeros(samples)))
    report = simulate_design(tmp_path / "d", samples=samples, build_dir=build_dir)
    check(report, design)
