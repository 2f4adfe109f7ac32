import re

import numpy as np
import pytest

from hwgen import emit, templates
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.errors import HwgenError
from hwgen.sim.runner import lint


@pytest.fixture
def design(random_graph):
    graph = random_graph(np.random.default_rng(1), [("conv", 3, 3, 1, 1, 2, True), ("linear", 4)])
    return compile_graph(graph, AcceleratorConfig(rows=2, cols=3))


def test_refuses_a_folder_that_is_not_a_design(tmp_path, design):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(HwgenError, match=r"^Output folder '.*' exists and is not an hwgen "
                                         r"design; choose another --out$"):
        emit.write_design(design, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_failure_leaves_no_half_written_folder(tmp_path, design, monkeypatch):
    def broken(_design):
        raise RuntimeError("disk full")
    monkeypatch.setattr(templates, "render", broken)
    with pytest.raises(RuntimeError):
        emit.write_design(design, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_design_folder_is_lint_clean(tmp_path, design):
    out = emit.write_design(design, tmp_path / "out")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["hwgen_axis.v", "hwgen_inst.v", "hwgen_top.v", "manifest.json",
                     "params.hex", "weights.hex"]
    assert emit.read_design(out).dumps() == design.dumps()
    assert lint(out / "hwgen_top.v") == []
    # The hand-written wrapper is held to the narrow waivers only.
    assert lint(out / "hwgen_axis.v", toplevel="hwgen_top_axis",
                extra_sources=[out / "hwgen_top.v"]) == []
    # Rewriting a design folder replaces it.
    emit.write_design(design, out)
    assert sorted(p.name for p in out.iterdir()) == names


def test_instantiation_template_names_every_port(design):
    ports = set(re.findall(r"\.(\w+)\s*\(", templates.render(design)["hwgen_inst.v"]))
    header = re.search(r"module hwgen_top\((.*?)\);", emit.verilog(design), re.DOTALL).group(1)
    assert ports == {name.strip() for name in header.split(",")}
