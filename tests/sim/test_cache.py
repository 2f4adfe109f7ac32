"""hwgen.sim.cache: pruned builds, least-recently-used eviction under a cap, clearing.

Builds here are folders with a stamp and files of known sizes; which one is oldest is set
with the stamps' mtimes, so the expected evictions follow from the numbers in each test.
"""

import os

import pytest

from hwgen.cli import main
from hwgen.errors import ArgumentError, HwgenError
from hwgen.sim import cache


def make_build(root, name, megabytes, used):
    build = root / name
    build.mkdir(parents=True)
    (build / "hwgen_top").write_bytes(b"\0" * (megabytes << 20))
    (build / cache.STAMP).write_text("{}")
    os.utime(build / cache.STAMP, (used, used))
    return build


def test_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(cache.CACHE_MAX_ENV, raising=False)
    assert cache.max_bytes() == cache.DEFAULT_MAX_MB << 20
    monkeypatch.setenv(cache.CACHE_MAX_ENV, "3")
    assert cache.max_bytes() == 3 << 20
    monkeypatch.setenv(cache.CACHE_MAX_ENV, "lots")
    with pytest.raises(ArgumentError, match=r"^HWGEN_CACHE_MAX_MB must be a whole number of "
                                            r"megabytes, not 'lots'$"):
        cache.max_bytes()


def test_least_recently_used_builds_go_first(tmp_path):
    a = make_build(tmp_path, "a", 2, used=1000)
    make_build(tmp_path, "b", 2, used=3000)
    c = make_build(tmp_path, "c", 2, used=2000)
    new = make_build(tmp_path, "new", 2, used=500)     # just built, but kept whatever its age
    # 8 MB held, cap 5 MB: without `new`, the oldest are a (1000) then c (2000).
    removed = cache.evict(tmp_path, keep=new, limit=5 << 20)
    assert removed == [a, c]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["b", "new"]


def test_a_build_in_use_is_not_evicted(tmp_path):
    a = make_build(tmp_path, "a", 2, used=1000)
    b = make_build(tmp_path, "b", 2, used=2000)
    with cache.locked(tmp_path, a.name):
        assert cache.evict(tmp_path, limit=1 << 20) == [b]
    assert a.is_dir()


def test_touch_makes_a_build_recent(tmp_path):
    a = make_build(tmp_path, "a", 1, used=1000)
    b = make_build(tmp_path, "b", 1, used=2000)
    cache.touch(a)
    assert cache.evict(tmp_path, limit=(1 << 20) + 100) == [b]     # 1 MB and a stamp fit


def test_prune_keeps_the_binary_and_the_logs(tmp_path):
    build = tmp_path / "b"
    build.mkdir()
    for name in ("hwgen_top", "build.log", cache.STAMP, "Vtop.o", "Vtop__ALL.a",
                 "Vtop__pch.h.gch", "Vtop.cpp", "Vtop.h", "Vtop.mk", "Vtop__ver.d"):
        (build / name).write_text("x")
    cache.prune(build, keep=("hwgen_top",))
    assert sorted(p.name for p in build.iterdir()) == sorted(
        ["hwgen_top", "build.log", cache.STAMP])


def test_cache_command_shows_and_clears(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(tmp_path))
    make_build(tmp_path, "a", 1, used=1000)
    make_build(tmp_path, "b", 2, used=2000)
    runtime = tmp_path / cache.RUNTIME           # shared objects, not a build
    runtime.mkdir()
    (runtime / "verilated-0123.o").write_bytes(b"\0" * 100)
    assert main(["cache"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path}: 2 simulator builds, 3.0 MB (cap ")
    assert main(["cache", "--clear"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"removed 2 simulator builds from {tmp_path}"
    assert list(tmp_path.iterdir()) == []


def test_clear_refuses_a_folder_that_is_not_a_cache(tmp_path, monkeypatch, capsys):
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("mine")
    with pytest.raises(HwgenError, match=r"^Build cache '.*' holds 'thesis', which is not a "
                                         r"simulator build; not clearing it$"):
        cache.clear(tmp_path)
    assert (tmp_path / "thesis" / "chapter1.tex").read_text() == "mine"
