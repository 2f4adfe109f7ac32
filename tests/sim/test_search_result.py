"""System test of ``hwgen search``'s result: the spec it writes, compiled through the normal
path, runs bit-exact on Verilator, with the cycles the cycle model predicts."""

import pytest

from hwgen.explore.search import search, write_search
from hwgen.flow import compile_model
from hwgen.sim.check import simulate_design


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sim_build_search")


def test_search_result_simulates_bit_exact(check, tmp_path, build_dir):
    result = search("builtin:mlp", 0.98, "luts", relative=True, array="2x2", budget=24)
    write_search(result, tmp_path / "search")
    chosen = result.points[result.chosen]
    design, qmodel = compile_model("builtin:mlp", tmp_path / "search" / "spec.json", "2x2",
                                   tmp_path / "design", vectors=4)
    assert qmodel.quantized_accuracy() == chosen.accuracy
    assert design.cycles == chosen.metrics["cycles"]
    report = simulate_design(tmp_path / "design", samples=4, build_dir=build_dir)
    check(report, design)
    assert report.accuracy == report.golden_accuracy
