"""The accelerator top in amaranth.sim on tiny networks: every output word against the golden
model, the cycle counters against the cycle model. (Whole networks run on Verilator in
tests/sim.)"""

import dataclasses

import numpy as np
import pytest

from hwgen import golden
from hwgen.compiler import AcceleratorConfig, compile_graph


@pytest.mark.parametrize("array, shapes", [
    ("2x3", [("conv", 4, 3, 1, 1, 2, True), ("linear", 5)]),
    ("1x1", [("conv", 2, 2, 2, 0, 1, False), ("linear", 3)]),
    ("3x1", [("conv", 3, 1, 1, 0, 1, True)]),
    # four channel tiles: running weight addresses outgrow every descriptor field
    ("3x2", [("linear", 7)]),
])
def test_top_against_golden(random_graph, run_top, array, shapes):
    rng = np.random.default_rng(3)
    graph = random_graph(rng, shapes)
    design = compile_graph(graph, AcceleratorConfig.parse_array(array))
    x = rng.integers(-128, 128, size=(2,) + graph.input_shape)
    outputs, cycles, layers = run_top(design, x.reshape(2, -1))
    np.testing.assert_array_equal(outputs, golden.run(graph, x).reshape(2, -1))
    predicted = [layer.cycles.total for layer in design.layers]
    np.testing.assert_array_equal(layers, [predicted, predicted])
    np.testing.assert_array_equal(cycles, [design.cycles] * 2)


@pytest.mark.parametrize("seed", range(16))
def test_top_on_random_chains(random_chain, run_top, seed):
    """Random kernels, strides, padding, pools, channel counts, formats, modes and arrays."""
    rng = np.random.default_rng(100 + seed)
    graph, config = random_chain(rng)
    design = compile_graph(graph, config)
    fmt = graph.input_fmt
    x = rng.integers(fmt.min_int, fmt.max_int + 1, size=(1,) + graph.input_shape)
    outputs, cycles, layers = run_top(design, x.reshape(1, -1))
    np.testing.assert_array_equal(outputs, golden.run(graph, x).reshape(1, -1))
    np.testing.assert_array_equal(layers[0], [layer.cycles.total for layer in design.layers])
    assert cycles[0] == design.cycles


def test_cycle_counters_saturate_instead_of_wrapping(random_graph, run_top):
    """The counters are sized from the predicted cycles; a run longer than they hold reads
    as their largest value, never as a smaller, plausible count."""
    rng = np.random.default_rng(5)
    graph = random_graph(rng, [("conv", 3, 1, 1, 0, 1, True)])
    design = compile_graph(graph, AcceleratorConfig.parse_array("3x1"))
    # predict 1 cycle for the layer: 2-bit counters (twice the prediction fits), largest 3
    (layer,) = design.layers
    small = dataclasses.replace(design, layers=[
        dataclasses.replace(layer, cycles=dataclasses.replace(layer.cycles, total=1))])
    real = layer.cycles.total
    assert real > 3 and real % 4 != 3          # a wrapped count would not read 3
    x = rng.integers(-128, 128, size=(1,) + graph.input_shape)
    outputs, cycles, layers = run_top(small, x.reshape(1, -1))
    np.testing.assert_array_equal(outputs, golden.run(graph, x).reshape(1, -1))
    assert (cycles[0], layers[0][0]) == (3, 3)
