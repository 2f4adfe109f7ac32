"""System tests: the emitted Verilog of whole networks in cocotb on Verilator, every output
word against the golden model, every layer's cycles against the cycle model."""

import dataclasses

import numpy as np
import pytest

from hwgen import golden, ir
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.emit import write_design
from hwgen.flow import compile_model
from hwgen.sim.check import simulate_design


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sim_build")


def run_model(check, tmp_path, build_dir, model, scheme, array, samples, **config):
    design, qmodel = compile_model(model, scheme, array, tmp_path / "design", vectors=samples,
                                   **config)
    report = simulate_design(tmp_path / "design", samples=samples, build_dir=build_dir)
    check(report, design)
    # the overflow the report prints: the golden model's on the same images, as one batch
    from hwgen.emit import read_vectors
    inputs = read_vectors(tmp_path / "design")[0].reshape((-1,) + qmodel.graph.input_shape)
    want = golden.overflow_counts(qmodel.graph, inputs[:samples])
    assert report.overflow == {name: {"saturated": int(s), "wrapped": int(w)}
                               for name, (s, w) in want.items()}
    return design, report


def run_graph(check, tmp_path, build_dir, rng, graph, design, samples=4, simulator=None):
    """Simulate ``design`` (compiled from ``graph``) on ``samples`` random inputs and check
    every output word against the golden model and every cycle count."""
    fmt = graph.input_fmt
    x = rng.integers(fmt.min_int, fmt.max_int + 1, size=(samples,) + graph.input_shape)
    expected = golden.run(graph, x).reshape(samples, -1)
    write_design(design, tmp_path / "d",
                 vectors=(x.reshape(samples, -1), expected, np.zeros(samples)))
    kw = {"simulator": simulator} if simulator else {}
    report = simulate_design(tmp_path / "d", samples=samples, build_dir=build_dir, **kw)
    check(report, design)
    return report


def test_digits_cnn_fixed8_4x4(check, tmp_path, build_dir):
    design, report = run_model(check, tmp_path, build_dir, "builtin:digits-cnn", "fixed8", "4x4", 20)
    assert report.accuracy == report.golden_accuracy
    assert report.accuracy >= 0.8
    # The hardware's own words are kept beside the report, readable without hwgen.
    from hwgen.emit import read_vectors
    _, expected, _ = read_vectors(tmp_path / "design")
    with np.load(tmp_path / "design" / "sim_outputs.npz", allow_pickle=False) as kept:
        np.testing.assert_array_equal(kept["outputs"], expected[:20])
        assert kept["outputs"].dtype == np.int64
        assert kept["layer_names"].tolist() == [layer.name for layer in design.layers]
        assert kept["layer_cycles"].tolist() == [
            [layer.cycles.total for layer in design.layers]] * 20


def test_changed_expected_word_is_caught(tmp_path, build_dir):
    compile_model("builtin:mlp", "fixed4", "3x5", tmp_path / "d", vectors=3)
    from hwgen.emit import read_vectors
    _, expected, _ = read_vectors(tmp_path / "d")
    changed = expected.copy()
    changed[1, 4] += 1
    report = simulate_design(tmp_path / "d", samples=3, build_dir=build_dir, expected=changed)
    assert not report.bit_exact
    assert report.mismatches == 1
    assert report.mismatched_samples == (1,)
    assert report.cycles_match


@pytest.mark.parametrize("model, scheme, array, batch, samples", [
    # Linear after Linear (channel-major), the last start filled up with a copy
    ("builtin:mlp", "fixed8", "3x5", 3, 7),
    # a convolution per image, packed binary tensors, an XNOR Linear over a batch
    ("builtin:digits-cnn", "binary", "4x4", 2, 4),
])
def test_batches(check, tmp_path, build_dir, model, scheme, array, batch, samples):
    """``--batch``: every image's output words and every entry's cycles."""
    design, report = run_model(check, tmp_path, build_dir, model, scheme, array, samples,
                               batch=batch)
    assert report.batch == batch and report.samples == samples
    with np.load(tmp_path / "design" / "sim_outputs.npz", allow_pickle=False) as kept:
        assert kept["outputs"].shape == (samples, design.image_out)
        assert len(kept["cycles"]) == -(-samples // batch)
    # Linear layers take the batch at once: a Linear entry's MACs are the batch's
    single = compile_model(model, scheme, array, tmp_path / "single", vectors=1)[0]
    fc = [layer for layer in design.layers if layer.kind == "linear"]
    assert [layer.macs for layer in fc] == [
        batch * layer.macs for layer in single.layers if layer.kind == "linear"]
    assert report.cycles_measured["total"] / batch < single.cycles


@pytest.mark.parametrize("model, scheme, array", [
    # Linear after Linear; 3 rows (an odd adder tree), K = 64 leaves row 2 two short
    ("builtin:mlp", "fixed8", "3x5"),
    # shift PEs, a Linear layer after a convolution, 10 channels on 4 columns
    # with --drain-pool: shift PEs, both convolutions pooled in the drain, a Linear layer
    # after them, 10 channels on 4 columns
    ("builtin:digits-cnn", "pow2-4", "4x4"),
])
def test_split_fc_and_drain_pool(check, tmp_path, build_dir, model, scheme, array):
    """``--split-fc --drain-pool``: the Linear layers run on the rows' weight banks, the
    convolutions' pool windows go through the drain at once; every output word and every
    layer's cycles, each layer in fewer cycles than without."""
    design, report = run_model(check, tmp_path, build_dir, model, scheme, array, 6,
                               split_fc=True, drain_pool=True)
    assert [layer.desc.split for layer in design.layers] == [
        int(layer.kind == "linear") for layer in design.layers]
    assert [layer.desc.drain_pool for layer in design.layers] == [
        int(layer.kind == "conv") for layer in design.layers]
    single = compile_model(model, scheme, array, tmp_path / "plain", vectors=1)[0]
    assert {(layer.desc.split, layer.desc.drain_pool) for layer in single.layers} == {(0, 0)}
    for got, was in zip(design.layers, single.layers):
        assert report.cycles_measured["per_layer"][got.name] < was.cycles.total


@pytest.mark.parametrize("simulator", [
    "verilator", pytest.param("icarus", marks=pytest.mark.requires("iverilog"))])
def test_random_layers_split(check, tmp_path, build_dir, random_graph, simulator):
    """Split Linear layers after a pooled convolution and after each other, with the
    random graphs' rounding and overflow modes, on 3 rows and 2 columns."""
    rng = np.random.default_rng(11)
    graph = random_graph(rng, [("conv", 5, 3, 1, 1, 2, True), ("linear", 9), ("linear", 7)])
    design = compile_graph(graph, AcceleratorConfig.parse_array("3x2", split_fc=True))
    assert [layer.desc.split for layer in design.layers] == [0, 1, 1]
    run_graph(check, tmp_path, build_dir, rng, graph, design, simulator=simulator)


def test_random_layers_drain_pool(check, tmp_path, build_dir, random_graph):
    """Pool windows taken by the drain on 8 rows (two windows a column), rounding to
    nearest even and down, a wrapping layer between (not pooled so), a split Linear."""
    rng = np.random.default_rng(5)
    graph = random_graph(rng, [("conv", 5, 3, 1, 1, 2, True), ("conv", 4, 1, 1, 0, 1, False),
                               ("conv", 6, 3, 1, 1, 2, True), ("linear", 7)])
    design = compile_graph(graph, AcceleratorConfig.parse_array("8x4", drain_pool=True,
                                                                split_fc=True))
    assert [layer.desc.drain_pool for layer in design.layers] == [1, 0, 1, 0]
    assert [layer.desc.split for layer in design.layers] == [0, 0, 0, 1]
    run_graph(check, tmp_path, build_dir, rng, graph, design)


#: The engines (PE kinds) each scheme's digits CNN runs on: conv1, conv2 and fc.
ENGINES = {"fixed8": ("fixed",), "fixed4": ("fixed",), "pow2-4": ("shift",),
           "bwn": ("shift",), "ternary": ("shift",), "binary": ("fixed", "xnor")}


@pytest.mark.slow
@pytest.mark.parametrize("model, scheme, array", [
    # every scheme on a square and a non-square array (fixed8 4x4: the test above)
    ("builtin:digits-cnn", "fixed8", "1x1"), ("builtin:digits-cnn", "fixed4", "3x5"),
    ("builtin:digits-cnn", "pow2-4", "4x4"), ("builtin:digits-cnn", "pow2-4", "3x5"),
    ("builtin:digits-cnn", "bwn", "4x4"), ("builtin:digits-cnn", "bwn", "3x5"),
    ("builtin:digits-cnn", "ternary", "3x5"),
    ("builtin:digits-cnn", "binary", "4x4"), ("builtin:digits-cnn", "binary", "3x5"),
    ("builtin:mlp", "fixed8", "3x5"), ("builtin:mlp", "fixed4", "1x1"),
    ("builtin:mlp", "binary", "4x4"),
])
def test_models(check, tmp_path, build_dir, model, scheme, array):
    """The shipped models, fixed point and the multiplier-free schemes of the shipped QAT
    checkpoints, every output word and every layer's cycles."""
    samples = 3 if array == "1x1" else 6
    design, report = run_model(check, tmp_path, build_dir, model, scheme, array, samples)
    assert report.accuracy == report.golden_accuracy
    if model == "builtin:digits-cnn":
        assert design.engine_kinds == ENGINES[scheme]


@pytest.mark.parametrize("array, simulator", [
    ("2x3", "verilator"), ("3x2", "verilator"), ("4x4", "verilator"),
    # Icarus evaluates `always @*` only on a change: it caught logic that Verilator did not.
    pytest.param("3x2", "icarus", marks=pytest.mark.requires("iverilog")),
])
def test_random_layers(check, tmp_path, build_dir, random_graph, array, simulator):
    """Strides, padding, pooling, odd sizes, every rounding and overflow mode."""
    rng = np.random.default_rng(7)
    graph = random_graph(rng, [("conv", 5, 3, 1, 1, 2, True), ("conv", 3, 2, 2, 0, 1, False),
                               ("conv", 6, 1, 1, 1, 1, True), ("linear", 7)])
    design = compile_graph(graph, AcceleratorConfig.parse_array(array))
    run_graph(check, tmp_path, build_dir, rng, graph, design, simulator=simulator)


@pytest.mark.parametrize("pe_stages", [0, 1, 2])
def test_pipelined_pes(check, tmp_path, build_dir, random_chain, pe_stages):
    """PEs of latency 1, 2 and 3: the prediction and the hardware move together."""
    rng = np.random.default_rng(11)
    graph, config = random_chain(rng, max_cycles=3000)
    config = AcceleratorConfig(rows=config.rows, cols=config.cols, pe_stages=pe_stages)
    design = compile_graph(graph, config)
    assert design.pe_latency == 1 + pe_stages
    run_graph(check, tmp_path, build_dir, rng, graph, design, samples=3)
    base = compile_graph(graph, AcceleratorConfig(rows=config.rows, cols=config.cols,
                                                  pe_stages=0))
    # Each layer's drain waits pe_stages cycles longer for its last tile, nothing else.
    assert [a.cycles.total - b.cycles.total for a, b in zip(design.layers, base.layers)] == \
        [pe_stages] * len(design.layers)



def test_new_memory_contents_reuse_the_build(check, tmp_path, random_graph):
    """A design that differs only in its memories' contents (weights, biases) is simulated
    on the first one's build, with its own contents."""
    rng = np.random.default_rng(3)
    graph = random_graph(rng, [("conv", 5, 3, 1, 1, 2, True), ("linear", 7)])
    # the same layers with the output channels in reverse: other weight and parameter words
    flipped = dataclasses.replace(graph, layers=[
        layer if isinstance(layer, ir.Flatten) else
        dataclasses.replace(layer, weight=layer.weight[::-1], bias=layer.bias[::-1])
        for layer in graph.layers])
    x = rng.integers(-128, 128, size=(3,) + graph.input_shape)
    builds = []
    for n, g in enumerate((graph, flipped)):
        design = compile_graph(g, AcceleratorConfig(rows=2, cols=3))
        expected = golden.run(g, x).reshape(3, -1)
        write_design(design, tmp_path / f"d{n}", vectors=(x.reshape(3, -1), expected,
                                                          np.zeros(3)))
        report = simulate_design(tmp_path / f"d{n}", samples=3, build_dir=tmp_path / "build")
        check(report, design)
        builds.append(report.build_seconds)
    assert builds[0] > 0 and builds[1] == 0
    assert len([p for p in (tmp_path / "build").glob("hwgen_top-*") if p.is_dir()]) == 1
    assert not np.array_equal(golden.run(graph, x), golden.run(flipped, x))
