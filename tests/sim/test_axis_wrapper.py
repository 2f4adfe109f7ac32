"""The AXI4-Stream wrapper of rtl_templates/ around a generated core, on Verilator."""

import json

import numpy as np

from hwgen import golden
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.emit import write_design
from hwgen.sim.runner import run_cocotb
from hwgen.sim.testbench_axis import CASE_ENV


def test_packets_through_the_wrapper(tmp_path, random_graph):
    rng = np.random.default_rng(5)
    graph = random_graph(rng, [("conv", 3, 3, 1, 1, 2, True), ("linear", 6)])
    design = compile_graph(graph, AcceleratorConfig(rows=2, cols=2))
    out = write_design(design, tmp_path / "d")
    x = rng.integers(-128, 128, size=(3,) + graph.input_shape)
    expected = golden.run(graph, x).reshape(3, -1)
    case = {"inputs": x.reshape(3, -1).tolist(), "expected": expected.tolist(), "seed": 1}
    sources = [out / "hwgen_top.v", out / "hwgen_axis.v"]
    build = tmp_path / "build"
    assert run_cocotb(sources, "hwgen_top_axis", "hwgen.sim.testbench_axis", build,
                      extra_env={CASE_ENV: json.dumps(case)}) == (1, 0)
    # the check can fail: one expected word changed
    case["expected"][2][1] += 1
    assert run_cocotb(sources, "hwgen_top_axis", "hwgen.sim.testbench_axis", build,
                      extra_env={CASE_ENV: json.dumps(case)}, build=False) == (1, 1)
