"""hwgen.sim.objcache: Verilator's runtime objects are compiled once, then copied.

The wrapper runs the real C++ compiler (Verilator needs one, so it is here) on a small
source named like a runtime file.
"""

import subprocess

import pytest

from hwgen.sim import objcache

FROM_CACHE = "from the runtime cache"


@pytest.fixture
def source(tmp_path):
    include = tmp_path / "include"
    include.mkdir()
    path = include / "verilated_probe.cpp"
    path.write_text("int probe() { return 41; }\n")
    return path


def compile_in(folder, script, source, name="verilated_probe.o"):
    folder.mkdir(exist_ok=True)
    done = subprocess.run([script, "c++", "-O1", "-c", "-o", name, str(source)], cwd=folder,
                          capture_output=True, text=True, check=True)
    return done.stdout, (folder / name).read_bytes()


def test_a_runtime_object_is_compiled_once(tmp_path, source):
    script = objcache.wrapper(tmp_path / "objects")
    out, first = compile_in(tmp_path / "build1", script, source)
    assert FROM_CACHE not in out
    assert len(list((tmp_path / "objects").glob("verilated_probe-*.o"))) == 1
    out, second = compile_in(tmp_path / "build2", script, source)
    assert FROM_CACHE in out
    assert second == first


def test_a_changed_source_compiles_anew(tmp_path, source):
    script = objcache.wrapper(tmp_path / "objects")
    _, first = compile_in(tmp_path / "build1", script, source)
    source.write_text("int probe() { return 42; }\n")
    out, second = compile_in(tmp_path / "build2", script, source)
    assert FROM_CACHE not in out
    assert second != first
    assert len(list((tmp_path / "objects").glob("verilated_probe-*.o"))) == 2


def test_other_sources_are_compiled_every_time(tmp_path, source):
    design = source.with_name("Vtop__ALL.cpp")
    design.write_text(source.read_text())
    script = objcache.wrapper(tmp_path / "objects")
    for build in ("build1", "build2"):
        out, _ = compile_in(tmp_path / build, script, design, name="Vtop__ALL.o")
        assert FROM_CACHE not in out
    assert not list((tmp_path / "objects").glob("*.o"))


def test_a_failed_compile_fails_and_caches_nothing(tmp_path, source):
    source.write_text("int probe() { return }\n")
    script = objcache.wrapper(tmp_path / "objects")
    (tmp_path / "build").mkdir()
    done = subprocess.run([script, "c++", "-c", "-o", "verilated_probe.o", str(source)],
                          cwd=tmp_path / "build", capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "error" in done.stderr
    assert not list((tmp_path / "objects").glob("*.o"))


def test_a_folder_that_cannot_be_written_gives_no_wrapper(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert objcache.wrapper(blocker / "objects") is None
