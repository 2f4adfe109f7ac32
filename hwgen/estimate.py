"""Synthesis estimates: cell counts of a piece of Verilog from a Yosys run."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from ._toolchain import find_tool
from .errors import ArgumentError, HwgenError

__all__ = ["cell_counts", "component_cells"]

_CELL = re.compile(r"^\s+(\d+)\s+(\S+)\s*$")


def cell_counts(verilog_text, top, script="synth"):
    """``{cell type: count}`` of ``top`` in ``verilog_text`` after the Yosys command
    ``f"{script} -top {top}"`` (e.g. ``"synth"``, ``"synth_ice40"``).

    Yosys (the YoWASP build) sees only its working folder, so the Verilog is written to a
    temporary one. Raises :class:`~hwgen.errors.HwgenError` with Yosys's message when the
    run fails.
    """
    if not isinstance(top, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise ArgumentError(f"Top module must be a Verilog identifier, not {top!r}")
    with tempfile.TemporaryDirectory(prefix="hwgen-yosys-") as folder:
        Path(folder, "design.v").write_text(verilog_text)
        run = subprocess.run(
            [find_tool("yosys"), "-q", "-p",
             f"read_verilog design.v; {script} -top {top}; tee -q -o stat.txt stat"],
            check=False, capture_output=True, text=True, cwd=folder)
        stat = Path(folder, "stat.txt")
        if run.returncode or not stat.is_file():
            raise HwgenError(f"Yosys failed on {top!r}: {run.stderr.strip()[-500:]!r}")
        text = stat.read_text()
    counts = {}
    for line in text.splitlines():
        match = _CELL.match(line)
        if match and not match.group(2).endswith(("wires", "bits", "ports", "cells")):
            counts[match.group(2)] = counts.get(match.group(2), 0) + int(match.group(1))
    return counts


def component_cells(component, script="synth", top="top"):
    """:func:`cell_counts` of an Amaranth component converted to Verilog as ``top``."""
    from amaranth.back import verilog
    return cell_counts(verilog.convert(component, name=top), top, script)
