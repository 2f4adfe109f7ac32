import os
import re
import stat

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
    with pytest.raises(HwgenError, match=(
            r"^Output folder '.*' exists and is not an hwgen design \(it holds 'notes.txt'\); "
            r"choose another folder, or pass --force to add the design's files to it \(other "
            r"files are left alone\)$")):
        emit.write_design(design, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_force_adds_a_design_beside_other_files(tmp_path, design):
    (tmp_path / "notes.txt").write_text("mine")
    emit.write_design(design, tmp_path, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert emit.read_design(tmp_path).dumps() == design.dumps()


def test_replacing_a_design_keeps_the_users_files(tmp_path, design):
    out = emit.write_design(design, tmp_path / "d")
    (out / "notes.txt").write_text("mine")
    (out / "mywork").mkdir()
    (out / "mywork" / "a.v").write_text("module a; endmodule\n")
    (out / emit.REPORT_FILE).write_text("{}")           # results of the earlier design
    emit.write_design(design, out)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "mywork" / "a.v").read_text() == "module a; endmodule\n"
    assert not (out / emit.REPORT_FILE).exists()        # no longer true of the new design
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no staging left


def test_replacing_a_design_drops_its_board_builds(tmp_path, design):
    """A bitstream of the earlier design would put the wrong design on a board; a folder of
    the user's that happens to have a build's name is kept."""
    out = emit.write_design(design, tmp_path / "d")
    (out / "board_icebreaker").mkdir()
    (out / "board_icebreaker" / "board.json").write_text("{}")
    (out / "board_icebreaker" / "top.bin").write_bytes(b"old")
    (out / "board_ulx3s-85f").mkdir()
    (out / "board_ulx3s-85f" / "mine.txt").write_text("mine")
    emit.write_design(design, out)
    assert not (out / "board_icebreaker").exists()
    assert (out / "board_ulx3s-85f" / "mine.txt").read_text() == "mine"


def test_new_folders_get_the_users_umask(tmp_path, design):
    old = os.umask(0o022)
    try:
        out = emit.write_design(design, tmp_path / "a" / "d")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "manifest.json").stat().st_mode) == 0o644


def test_failed_replacement_keeps_the_earlier_design(tmp_path, design, monkeypatch):
    out = emit.write_design(design, tmp_path / "d")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(_design):
        raise RuntimeError("disk full")
    monkeypatch.setattr(templates, "render", broken)
    with pytest.raises(RuntimeError):
        emit.write_design(design, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("where, message", [
    ("", r"^Output folder must be a path, not ''$"),
    ("/proc/hwgen-x", r"^Output folder '/proc/hwgen-x' cannot be created in '/proc': .+$"),
    ("FILE/sub", (r"^Output folder '.*FILE/sub' cannot be created: '.*FILE' is a file, not a "
                 r"folder$")),
    ("FILE", r"^Output folder '.*FILE' is a file, not a folder$"),
])
def test_unwritable_places_are_refused(tmp_path, design, where, message):
    (tmp_path / "FILE").write_text("")
    target = where if where in ("", "/proc/hwgen-x") else str(tmp_path / where)
    with pytest.raises(HwgenError, match=message):
        emit.write_design(design, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]


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


def test_weights_file_holds_the_weight_banks(tmp_path):
    """A design with split layers (the MLP on 4×4: both layers split) lists, after its
    engine's weight memory, banks 1–3, each its own section of words."""
    from hwgen.flow import load_quantized
    qmodel = load_quantized("builtin:mlp", "fixed8")
    sections = {}
    for split in (True, False):
        design = compile_graph(qmodel.graph, AcceleratorConfig(4, 4, split_fc=split))
        out = emit.write_design(design, tmp_path / f"split{split}")
        heads, words = [], []
        for line in (out / "weights.hex").read_text().splitlines():
            if line.startswith("//"):
                heads.append(line)
                words.append([])
            else:
                assert re.fullmatch(r"[0-9a-f]{8}", line)        # 4 weights of 8 bits
                words[-1].append(int(line, 16))
        sections[split] = heads, words, design.engines[0]
    heads, words, engine = sections[False]
    assert heads == ["// engine 0: PE kind fixed, 608 words of 4 x 8 bits"]
    assert words == [[w & 0xffffffff for w in engine.weight_image]]
    heads, words, engine = sections[True]
    assert heads == ["// engine 0: PE kind fixed, 152 words of 4 x 8 bits",
                     "// engine 0 bank 1: PE kind fixed, 152 words of 4 x 8 bits",
                     "// engine 0 bank 2: PE kind fixed, 152 words of 4 x 8 bits",
                     "// engine 0 bank 3: PE kind fixed, 152 words of 4 x 8 bits"]
    images = [engine.weight_image, *engine.banks]
    assert words == [[w & 0xffffffff for w in image] for image in images]
    assert len({tuple(image) for image in images}) == 4      # four different slices
