"""``hwgen build``: a design folder's accelerator behind a UART, as a bitstream for a board.

:func:`build_board` elaborates the :class:`~hwgen.boards.top.BoardTop` for the board's
amaranth-boards platform (with the folder's ``hwgen_top.v`` as the accelerator), lets
Amaranth write its build plan (the Yosys script, the pin constraints, the tool commands),
and runs the plan's three commands itself, each tool found by
:func:`hwgen._toolchain.find_tool` (``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``, ...; else the
YoWASP tools from PyPI), so that it can stop between them:

1. before any tool: a ``hwgen estimate`` of the folder for the board's FPGA that found the
   core alone too big refuses the build at once, and so does (on iCE40) the analytic
   estimate's exact count of DSP blocks and block RAMs;
2. after Yosys: synthesized LUTs, flip-flops, DSPs or block RAMs beyond the part's
   capacities (the checks of :func:`hwgen.estimate.overflows`) refuse it before nextpnr;
3. nextpnr: logic cells beyond the part's refuse it, and so does an Fmax below the board's
   clock (:class:`~hwgen.errors.TimingError`);
4. the packer writes the bitstream.

Only a build that passed all of them is written, as the folder
``DIR/board_<board>/`` (the bitstream ``top.bin`` or ``top.bit``, ``board.json``, the Yosys
and nextpnr logs and nextpnr's report), replacing an earlier build of the same board whole;
a refused or failed build writes nothing into the design folder. A refusal for size names
``hwgen compile --fit`` (:mod:`hwgen.estimate.fit`), which picks the array that fits.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hwgen._toolchain import find_tool
from hwgen.emit import MANIFEST_FILE, TOPLEVEL
from hwgen.errors import ArgumentError, DoesNotFitError, HwgenError, TimingError, ToolError
from hwgen.files import check_output_dir, private_dir

from . import DEFAULT_BAUD, SUMMARY_FILE, TIMEOUT_SECONDS, board, protocol, uart_divisor

__all__ = ["SUMMARY_FILE", "BoardBuild", "board_dir", "build_board"]

_NAME = "top"
#: Logs and reports kept beside the bitstream.
_KEPT = (f"{_NAME}.rpt", f"{_NAME}.tim", f"{_NAME}.report.json")


def board_dir(design_dir, name):
    """The folder of ``name``'s build in ``design_dir``."""
    return Path(design_dir) / f"board_{name}"


@dataclass(frozen=True)
class BoardBuild:
    """A finished board build (``to_json`` is ``board.json``).

    ``resources`` are the synthesized counts (:func:`hwgen.estimate.map_cells`); ``lcs`` and
    ``lcs_available`` the logic cells as placed; ``fmax_mhz`` nextpnr's Fmax of the board
    clock, ``clock_mhz`` that clock; ``divisor`` the UART's clock cycles per bit.
    """

    design: str
    board: str
    title: str
    part: str
    clock_mhz: float
    baud: int
    divisor: int
    lcs: int
    lcs_available: int
    fmax_mhz: float
    resources: dict
    fingerprint: str
    bitstream: str
    seconds: float
    seeds: int = 1
    seed: int | None = None

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, obj):
        return cls(**obj)

    def summary(self):
        """One line: board, clock, logic cells, Fmax, where the bitstream is."""
        return (f"{self.title} ({self.part}): {self.design} at {self.clock_mhz:g} MHz, UART "
                f"{self.baud:,} baud; {self.lcs:,} of {self.lcs_available:,} logic cells "
                f"({100 * self.lcs / self.lcs_available:.1f} %), {self.resources['dsps']} "
                f"DSPs, {self.resources['brams']} block RAMs; Fmax {self.fmax_mhz:.1f} MHz "
                + (f"(seed {self.seed}, the best of {self.seeds}) " if self.seeds > 1 else "")
                + f"(clock {self.clock_mhz:g} MHz); wrote {self.bitstream} "
                f"({self.seconds:.0f} s)")


def _refuse_from_estimate(design_dir, dev, where):
    """Refuse at once when ``hwgen estimate`` already found the core too big for ``dev``
    (a recompiled design drops its estimates, so one that is there is the design's)."""
    from hwgen.estimate import Estimate, describe_overflows, overflows
    path = Path(design_dir) / f"estimate_{dev.name}.json"
    if not path.is_file():
        return
    try:
        known = Estimate.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return      # an unreadable estimate decides nothing
    # the estimate's figures include its pin harness, which the board top does not have
    core = dict(known.resources, luts=known.resources["luts"] - known.harness["luts"],
                ffs=known.resources["ffs"] - known.harness["ffs"])
    over = overflows(dev, core)
    if over:
        raise DoesNotFitError(f"{where}: {describe_overflows(over, core)} (from "
                              f"{path.name}); nothing was written{_fit_hint(dev)}")


def _fit_hint(dev):
    if dev.family != "ice40":
        return ""
    return (f"; `hwgen compile MODEL --fit {dev.name}` chooses the fastest array that fits "
            f"it")


def _refuse_from_analytic(design, dev, where):
    """Refuse at once, before any tool, when the analytic estimate (which counts DSP blocks
    and block RAMs exactly on iCE40) needs more of them than ``dev`` has."""
    if dev.family != "ice40":
        return
    from hwgen.estimate import describe_overflows, overflows
    from hwgen.estimate.analytic import analytic_estimate
    est = analytic_estimate(design, dev)
    used = {"dsps": est.dsps, "brams": est.brams}
    over = overflows(dev, used)
    if over:
        raise DoesNotFitError(f"{where}: {describe_overflows(over, used)} (analytic "
                              f"estimate); nothing was written{_fit_hint(dev)}")


def _nextpnr_overflow(log):
    """``(cell, used, available)`` of the first cell type nextpnr's utilisation report
    (in its log) puts beyond the device, or ``None``."""
    import re
    for cell, used, available in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%",
                                            log, re.MULTILINE):
        if int(used) > int(available):
            return cell, int(used), int(available)
    return None


#: The clock target nextpnr places for (MHz): above what the parts reach, so that the
#: placement is timing-driven and the Fmax it reports is the design's, not merely enough
#: for the board's clock (with the board's 12 or 25 MHz, nextpnr stops improving early).
PLACE_MHZ = 100


def _place_for_speed(work):
    """Raise the board clock's constraint in the extracted pin file (iCE40 ``.pcf``
    ``set_frequency``, ECP5 ``.lpf`` ``FREQUENCY``) to :data:`PLACE_MHZ` for nextpnr; the
    bitstream still runs at the board's clock, which the Fmax check compares with."""
    import re
    for path in (work / f"{_NAME}.pcf", work / f"{_NAME}.lpf"):
        if path.is_file():
            text = path.read_text()
            text = re.sub(r"^(set_frequency\s+\S+\s+)\S+", rf"\g<1>{PLACE_MHZ}", text,
                          flags=re.MULTILINE)
            text = re.sub(r"^(FREQUENCY\s+(?:PORT|NET)\s+\S+\s+)\S+(\s+HZ)",
                          rf"\g<1>{PLACE_MHZ * 1_000_000}\g<2>", text, flags=re.MULTILINE)
            path.write_text(text)


def _run(command, workdir, log_name, what):
    from hwgen.estimate.tools import run_tool
    return run_tool([find_tool(command[0]), *command[1:]], workdir, log_name, what)


#: nextpnr's output arguments, which each placement seed writes under its own name.
_PNR_OUTPUTS = ("--asc", "--textcfg", "--report", "--log")


def _seeded(command, seed):
    """The nextpnr ``command`` with ``--seed seed`` and its outputs named ``top.s<seed>.*``."""
    out = list(command)
    for n, arg in enumerate(command[:-1]):
        if arg in _PNR_OUTPUTS:
            out[n + 1] = command[n + 1].replace(f"{_NAME}.", f"{_NAME}.s{seed}.", 1)
    return out + ["--seed", str(seed)]


def _adopt(work, pnr, command):
    """Rename the outputs of nextpnr run as ``command`` to their names in ``pnr``."""
    for arg in _PNR_OUTPUTS:
        if arg in pnr and (work / command[command.index(arg) + 1]).is_file():
            os.replace(work / command[command.index(arg) + 1], work / pnr[pnr.index(arg) + 1])


def _place_seeds(pnr, work, seeds, progress):
    """Run nextpnr once per seed 1..``seeds`` (``seeds`` = 1: nextpnr's own default seed)
    and leave the fastest placement's outputs under the plan's names; returns its report
    and its seed (``None`` for nextpnr's default)."""
    from hwgen.estimate.tools import placed_figures
    if seeds == 1:
        _run(pnr, work, "nextpnr.log", pnr[0])
        return json.loads((work / f"{_NAME}.report.json").read_text()), None
    best = None
    for seed in range(1, seeds + 1):
        command = _seeded(pnr, seed)
        try:
            _run(command, work, "nextpnr.log", pnr[0])
        except ToolError:
            _adopt(work, pnr, command)      # the failed run's log where the caller reads it
            raise
        report = json.loads((work / f"{_NAME}.s{seed}.report.json").read_text())
        fmax = placed_figures(report)[0] or 0.0
        if progress is not None:
            progress(f"seed {seed} of {seeds}: {fmax:.1f} MHz")
        if best is None or fmax > best[1]:
            best = (seed, fmax)
    _adopt(work, pnr, _seeded(pnr, best[0]))
    return json.loads((work / f"{_NAME}.report.json").read_text()), best[0]


def build_board(design_dir, board_name, *, baud=DEFAULT_BAUD, seeds=1, progress=None):
    """Build ``design_dir`` for the board ``board_name`` (a key of
    :data:`hwgen.boards.BOARDS`) with a UART at ``baud``; returns the :class:`BoardBuild`
    and writes ``design_dir/board_<board>/``. With ``seeds`` = N > 1, nextpnr places N
    times (seeds 1 to N) and the fastest placement is kept (placement varies by several MHz
    from seed to seed on an iCE40).

    Raises
    ------
    ArgumentError
        For an unknown board, a baud rate the board's clock cannot make, or an output
        folder that cannot be written.
    HwgenError
        For a folder that is not a design or lacks its Verilog.
    DoesNotFitError, TimingError
        When the design does not fit the board's FPGA, or does not reach its clock.
    ToolError, ToolNotFoundError
        When a tool fails (its log is kept and named) or cannot be found.
    """
    from hwgen.errors import check_int
    from hwgen.estimate import describe_overflows, design_verilog, map_cells, overflows
    from hwgen.estimate.tools import placed_figures, read_stat

    from .top import BoardTop, make_bridge
    b = board(board_name)
    seeds = check_int(seeds, "Placement seeds", minimum=1, maximum=100)
    design_dir = Path(design_dir)
    design, verilog = design_verilog(design_dir)
    platform = b.make_platform()
    clock = float(platform.default_clk_frequency)
    divisor = uart_divisor(clock, baud)
    out = board_dir(design_dir, b.name)
    if out.is_dir() and any(out.iterdir()) and not (out / SUMMARY_FILE).is_file():
        raise ArgumentError(f"Board folder {str(out)!r} exists and is not an hwgen board "
                            f"build (it holds {min(p.name for p in out.iterdir())!r}); "
                            f"move it away to build for the {b.title}")
    check_output_dir(out, lambda p: True, what="Board folder")
    dev = b.device
    where = f"Design {design.name!r} does not fit the {b.title}'s {dev.part}"
    _refuse_from_estimate(design_dir, dev, where)
    _refuse_from_analytic(design, dev, where)
    for tool in (["yosys", dev.pnr] + (["icepack"] if dev.family == "ice40" else ["ecppack"])):
        find_tool(tool)

    started = time.perf_counter()
    if progress is not None:
        progress(f"elaborating the {b.title} top ({clock / 1e6:g} MHz clock, UART {baud} "
                 f"baud)")
    bridge = make_bridge(design_dir, divisor=divisor,
                         timeout=max(1, round(TIMEOUT_SECONDS * clock)))
    platform.add_file(f"{TOPLEVEL}.v", verilog.read_text())
    plan = platform.prepare(
        BoardTop(bridge, b.leds), _NAME,
        synth_opts=" ".join(dev.synth.split()[1:]),
        script_after_synth=f"tee -q -o {_NAME}.stat.json stat -json",
        nextpnr_opts=f"--report {_NAME}.report.json --timing-allow-fail")
    commands = json.loads(plan.files[f"build_{_NAME}.json"])["commands"]
    work = Path(tempfile.mkdtemp(prefix=f"hwgen-board-{b.name}-"))
    try:
        plan.extract(work)
        _place_for_speed(work)
        synth, pnr, pack = commands
        if progress is not None:
            progress(f"synthesizing for {dev.part} with Yosys")
        _run(synth, work, "yosys.log", "Yosys")
        resources = map_cells(dev.family, read_stat(work / f"{_NAME}.stat.json"))
        over = overflows(dev, resources)
        if over:
            raise DoesNotFitError(f"{where}: {describe_overflows(over, resources)} (after "
                                  f"synthesis); nothing was written{_fit_hint(dev)}")
        if progress is not None:
            progress(f"placing and routing with {dev.pnr}"
                     + (f", {seeds} seeds" if seeds > 1 else ""))
        try:
            report, seed = _place_seeds(pnr, work, seeds, progress)
        except ToolError:
            log = (work / f"{_NAME}.tim").read_text(errors="replace") \
                if (work / f"{_NAME}.tim").is_file() else ""
            full = _nextpnr_overflow(log)
            if full is None:
                raise
            cell, used, available = full
            raise DoesNotFitError(f"{where}: {used:,} {cell} cells needed, {available:,} "
                                  f"available (nextpnr); nothing was written"
                                  f"{_fit_hint(dev)}") from None
        fmax, lcs, available = placed_figures(report)
        if fmax is not None and fmax < clock / 1e6:
            raise TimingError(f"Design {design.name!r} reaches {fmax:.1f} MHz on the "
                              f"{b.title}'s {dev.part}, below its {clock / 1e6:g} MHz clock; "
                              f"nothing was written")
        if progress is not None:
            progress(f"packing the bitstream with {pack[0]}")
        _run(pack, work, "pack.log", pack[0])
        bitstream = out / f"{_NAME}.{b.bitstream}"
        result = BoardBuild(
            design=design.name, board=b.name, title=b.title, part=dev.part,
            clock_mhz=clock / 1e6, baud=baud, divisor=divisor, lcs=lcs,
            lcs_available=available, fmax_mhz=fmax, resources=resources,
            fingerprint=f"{protocol.fingerprint((design_dir / MANIFEST_FILE).read_bytes()):08x}",
            bitstream=str(bitstream), seconds=round(time.perf_counter() - started, 1),
            seeds=seeds, seed=seed)
        products = [f"{_NAME}.{b.bitstream}", *_KEPT]
        if b.bitstream == "bit":
            products.append(f"{_NAME}.svf")     # for JTAG programmers
        _install(out, work, products, result)
    except ToolError:
        raise       # the work folder stays: the message names its log
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return result


def _install(out, work, products, result):
    """Move ``products`` from ``work`` and ``board.json`` into a new folder, then put it in
    the place of ``out`` (an earlier build is removed only once the new one is there)."""
    stage = private_dir(out.parent, f".{out.name}.tmp-")
    try:
        for name in products:
            shutil.copyfile(work / name, stage / name)
        (stage / SUMMARY_FILE).write_text(json.dumps(result.to_json(), indent=1))
        if out.exists():
            old = private_dir(out.parent, f".{out.name}.old-")
            os.rename(out, old / out.name)
            os.rename(stage, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(stage, out)
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        raise HwgenError(f"Cannot write board folder {str(out)!r}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
