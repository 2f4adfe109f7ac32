"""What a design costs on an FPGA: synthesis and place-and-route with the open tools.

:func:`estimate` synthesizes a design folder's Verilog with Yosys for a target
(:data:`~hwgen.estimate.devices.DEVICES`), places and routes it with nextpnr where the
family has an open flow (iCE40, ECP5; Xilinx 7 and Gowin are synthesis only, and labelled
so), and returns an :class:`Estimate`: LUTs, flip-flops, carry cells, DSPs and multipliers
built from LUTs, block RAMs and their bits, utilization, Fmax, and whether it fits (and if
not, which resource overflows by how much). The core is placed inside a four-pin harness
(:mod:`hwgen.estimate.harness`) whose cost is reported beside it.

Results are cached in ``~/.cache/hwgen/estimate`` (or ``$HWGEN_BUILD_DIR/../estimate``)
keyed by the Verilog, the target and the tool versions.

=============  ==============================================================
``devices``    the targets and their capacities
``harness``    the pin harness around the core
``tools``      running Yosys and nextpnr and reading their reports
``analytic``   an instant estimate from the compiled design (no synthesis)
``fit``        the fastest array shape that fits a device (``hwgen compile --fit``)
=============  ==============================================================
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import HwgenError
from .devices import DEVICES, Device, device
from .tools import (
    block_cells,
    cell_counts,
    component_cells,
    place,
    placed_figures,
    synthesize,
    tool_versions,
)

__all__ = ["DEVICES", "RESOURCE_NAMES", "Device", "Estimate", "block_breakdown", "cell_counts",
           "component_cells", "describe_overflows", "design_verilog", "device", "estimate",
           "estimate_verilog", "format_blocks", "map_cells", "overflows"]

_SCHEMA = "hwgen-estimate-2"


def _count(cells, *prefixes, exact=()):
    return sum(n for name, n in cells.items()
               if name in exact or any(name.startswith(p) for p in prefixes))


def map_cells(family, cells):
    """Resources from Yosys' mapped cell counts of ``family``: ``luts`` (LUT4 equivalents on
    iCE40, ECP5 and Gowin, counting an ECP5 CCU2C carry as two; LUT1–6 on Xilinx), ``ffs``,
    ``carry`` (carry cells), ``dsps``, ``brams`` (in blocks of the device's size) and
    ``lutram`` (distributed-RAM cells)."""
    if family == "ice40":
        return {"luts": _count(cells, exact=("SB_LUT4",)),
                "ffs": _count(cells, "SB_DFF"),
                "carry": _count(cells, exact=("SB_CARRY",)),
                "dsps": _count(cells, exact=("SB_MAC16",)),
                "brams": _count(cells, exact=("SB_RAM40_4K",)),
                "lutram": _count(cells, exact=("SB_SPRAM256KA",))}
    if family == "ecp5":
        carry = _count(cells, exact=("CCU2C",))
        return {"luts": _count(cells, exact=("LUT4",)) + 2 * carry,
                "ffs": _count(cells, exact=("TRELLIS_FF",)),
                "carry": carry,
                "dsps": _count(cells, exact=("MULT18X18D",)),
                "brams": _count(cells, exact=("DP16KD", "PDPW16KD")),
                "lutram": _count(cells, exact=("TRELLIS_DPR16X4",))}
    if family == "xilinx7":
        return {"luts": _count(cells, exact=tuple(f"LUT{n}" for n in range(1, 7))),
                "ffs": _count(cells, exact=("FDRE", "FDSE", "FDCE", "FDPE")),
                "carry": _count(cells, exact=("CARRY4",)),
                "dsps": _count(cells, exact=("DSP48E1",)),
                "brams": _count(cells, exact=("RAMB18E1",)) + 2 * _count(cells, exact=(
                    "RAMB36E1",)),
                "lutram": _count(cells, "RAM32", "RAM64", "RAM128", "RAM256")}
    if family == "gowin":
        return {"luts": _count(cells, "LUT") + _count(cells, exact=("ALU",)),
                "ffs": _count(cells, "DFF"),
                "carry": _count(cells, exact=("ALU",)),
                "dsps": _count(cells, "MULT"),
                "brams": _count(cells, exact=("SP", "SPX9", "SDP", "SDPB", "SDPX9B", "DP",
                                              "DPB", "DPX9B", "pROM", "pROMX9")),
                "lutram": _count(cells, "RAM16")}
    raise HwgenError(f"Family must be one of ice40, ecp5, xilinx7, gowin, not {family!r}")


@dataclass(frozen=True)
class Estimate:
    """What a design costs on one target (``to_json`` is ``estimate_<target>.json``).

    ``resources`` are the synthesized counts (see :func:`map_cells`) plus ``multipliers``
    (``$mul`` cells before mapping), ``lut_multipliers`` (those not in DSPs) and, once
    placed, ``lcs`` (logic cells as placed: iCE40 ``ICESTORM_LC``, ECP5 ``TRELLIS_COMB``);
    ``harness`` what the pin harness adds (already included in ``resources``);
    ``utilization`` the fraction of each device capacity used; ``placed`` whether
    nextpnr ran; ``fmax_mhz`` its Fmax (``None`` when not placed); ``fits`` and
    ``overflows`` (resource → how many more than the device has).
    """

    design: str
    target: str
    part: str
    resources: dict
    harness: dict
    utilization: dict
    placed: bool
    fmax_mhz: float | None
    fits: bool
    overflows: dict
    tools: dict = field(default_factory=dict)
    problem: str | None = None

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, obj):
        return cls(**obj)

    def summary(self):
        """A table of the resources and a verdict line."""
        from ..report import format_table
        names = ("lcs", "luts", "ffs", "carry", "dsps", "lut_multipliers", "brams", "lutram")
        rows = [(name, self.resources.get(name, 0),
                 f"{100 * self.utilization[name]:.1f}" if name in self.utilization else "-")
                for name in names if name in self.resources]
        head = (f"design {self.design} on {self.target} ({self.part}), "
                f"{'placed and routed' if self.placed else 'synthesis only, not placed'}")
        fmax = f"Fmax {self.fmax_mhz:.1f} MHz" if self.fmax_mhz is not None else "Fmax: n/a"
        if self.fits:
            verdict = f"fits; {fmax}"
        else:
            over = [f"{k} by {v:,}" for k, v in self.overflows.items()]
            if self.problem:
                over.append(self.problem)
            verdict = f"does not fit: {'; '.join(over)}"
        harness = (f"(includes the pin harness: {self.harness['ffs']} FFs, ~"
                   f"{self.harness['luts']} LUTs)")
        return "\n".join([head, format_table(["resource", "used", "util %"], rows), harness,
                          verdict])


def _cache_dir():
    if os.environ.get("HWGEN_BUILD_DIR"):
        return Path(os.environ["HWGEN_BUILD_DIR"]).parent / "estimate"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "hwgen" / "estimate"


def _capacity(dev, name):
    return {"luts": dev.luts, "ffs": dev.ffs, "dsps": dev.dsps, "brams": dev.brams}.get(name)


#: What the resources of :func:`map_cells` are called in messages.
RESOURCE_NAMES = {"luts": "LUTs", "ffs": "flip-flops", "dsps": "DSPs", "brams": "block RAMs",
                  "lcs": "logic cells"}


def overflows(dev, resources):
    """``{resource: how many more than the device has}`` for the synthesized ``resources``
    (:func:`map_cells`) on :class:`Device` ``dev``: LUTs, flip-flops, DSPs and block RAMs,
    those of them that ``resources`` counts, each against the device's capacity; empty when
    they fit."""
    return {name: resources[name] - cap for name in ("luts", "ffs", "dsps", "brams")
            if name in resources and (cap := _capacity(dev, name)) is not None
            and resources[name] > cap}


def describe_overflows(over, resources):
    """The resources of ``over`` (:func:`overflows`) in words: "16 DSPs needed, 8
    available"."""
    return "; ".join(f"{resources[name]:,} {RESOURCE_NAMES.get(name, name)} needed, "
                     f"{resources[name] - extra:,} available" for name, extra in over.items())


def estimate_verilog(verilog_text, top, target, *, design="design", place_and_route=True,
                     progress=None, use_cache=True, log_dir=None):
    """:class:`Estimate` of the Verilog module ``top`` in ``verilog_text`` on ``target``.
    With ``log_dir``, the tools' logs (Yosys, nextpnr with its critical-path report) and
    nextpnr's JSON report are copied there when the tools run (not on a cache hit)."""
    from amaranth.back import verilog as amaranth_verilog

    from .harness import HARNESS_TOP, PinHarness, harness_cost, verilog_ports
    dev = device(target) if isinstance(target, str) else target
    versions = tool_versions()
    key = hashlib.sha256("\0".join(
        [_SCHEMA, dev.name, top, json.dumps(versions, sort_keys=True), str(place_and_route),
         verilog_text]).encode()).hexdigest()[:20]
    cached = _cache_dir() / f"{key}.json"
    if use_cache and cached.is_file():
        return Estimate.from_json({**json.loads(cached.read_text()), "design": design})
    ports = verilog_ports(verilog_text, top)
    harness_ffs, harness_luts = harness_cost(ports)
    harness = amaranth_verilog.convert(PinHarness(ports, top), name=HARNESS_TOP,
                                       emit_src=False)
    with tempfile.TemporaryDirectory(prefix="hwgen-estimate-") as tmp:
        Path(tmp, "core.v").write_text(verilog_text)
        Path(tmp, "harness.v").write_text(harness)
        if progress is not None:
            progress(f"synthesizing {design} for {dev.name} with Yosys")
        pre, post = synthesize(tmp, ["core.v", "harness.v"], HARNESS_TOP, dev.synth)
        report, problem = None, None
        if dev.placed and place_and_route:
            if progress is not None:
                progress(f"placing and routing on {dev.part} with {dev.pnr}")
            try:
                report = place(tmp, dev.pnr, dev.pnr_args)
            except HwgenError as e:
                problem = str(e).split("; see ")[0]     # the log goes with the temporary folder
        if log_dir is not None:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            for name in ("yosys.log", "nextpnr.log", "report.json"):
                if Path(tmp, name).is_file():
                    shutil.copyfile(Path(tmp, name), Path(log_dir, name))
    resources = map_cells(dev.family, post)
    resources["multipliers"] = pre.get("$mul", 0)
    resources["lut_multipliers"] = max(0, resources["multipliers"] - resources["dsps"])
    resources["bram_bits"] = resources["brams"] * dev.bram_bits
    utilization = {name: resources[name] / cap for name in ("luts", "ffs", "dsps", "brams")
                   if (cap := _capacity(dev, name))}
    fmax = None
    if report is not None:
        fmax, lcs, available = placed_figures(report)
        if lcs is not None:
            resources["lcs"] = lcs
            utilization["lcs"] = lcs / available
    over = overflows(dev, resources)
    result = Estimate(design=design, target=dev.name, part=dev.part, resources=resources,
                      harness={"ffs": harness_ffs, "luts": harness_luts},
                      utilization=utilization, placed=report is not None, fmax_mhz=fmax,
                      fits=not over and (report is not None or not dev.placed
                                         or not place_and_route),
                      overflows=over, tools=versions, problem=problem)
    if problem is None:     # a tool failure may be the machine's, not the design's: no cache
        cached.parent.mkdir(parents=True, exist_ok=True)
        from ..files import atomic_write
        atomic_write(cached, lambda f: f.write(json.dumps(result.to_json()).encode()))
    return result


def design_verilog(design_dir):
    """``(design, path of its Verilog)`` of a design folder, or an error that says what is
    missing."""
    from ..emit import TOPLEVEL, read_design
    design = read_design(design_dir)
    verilog = Path(design_dir) / f"{TOPLEVEL}.v"
    if not verilog.is_file():
        raise HwgenError(f"Design folder {str(design_dir)!r} has no {verilog.name}; run "
                         f"`hwgen compile` again")
    return design, verilog


def estimate(design_dir, target, *, place_and_route=True, progress=None):
    """Estimate the design folder ``design_dir`` on ``target`` and write
    ``design_dir/estimate_<target>.json`` (and, when the tools run, their logs into
    ``design_dir/estimate_<target>/``: nextpnr.log holds the critical path); returns the
    :class:`Estimate`."""
    from ..files import atomic_write
    dev = device(target)
    design, verilog = design_verilog(design_dir)
    from ..emit import TOPLEVEL
    result = estimate_verilog(verilog.read_text(), TOPLEVEL, dev, design=design.name,
                              place_and_route=place_and_route, progress=progress,
                              log_dir=Path(design_dir) / f"estimate_{dev.name}")
    atomic_write(Path(design_dir) / f"estimate_{dev.name}.json",
                 lambda f: f.write(json.dumps(result.to_json(), indent=1).encode()))
    return result


def block_breakdown(design_dir, target, *, progress=None):
    """Where the logic of the design folder ``design_dir`` goes on ``target``:
    ``{block: resources}`` (:func:`map_cells`) for each block of the accelerator top
    (engines, activation buffer, sequencer, drain, post-processing, parameter memory) and
    its own glue, from one Yosys run that keeps the hierarchy (:func:`tools.block_cells`;
    no harness, no place-and-route). Cached like :func:`estimate`; also written to
    ``design_dir/blocks_<target>.json``."""
    from ..files import atomic_write
    dev = device(target)
    design, verilog = design_verilog(design_dir)
    text = verilog.read_text()
    key = hashlib.sha256("\0".join(
        [_SCHEMA, "blocks-purged", dev.name, json.dumps(tool_versions(), sort_keys=True),
         text]).encode()).hexdigest()[:20]
    cached = _cache_dir() / f"{key}.json"
    if cached.is_file():
        blocks = json.loads(cached.read_text())
    else:
        if progress is not None:
            progress(f"synthesizing {design.name} block by block for {dev.name} with Yosys")
        with tempfile.TemporaryDirectory(prefix="hwgen-blocks-") as tmp:
            Path(tmp, "core.v").write_text(text)
            from ..emit import TOPLEVEL
            cells = block_cells(tmp, ["core.v"], TOPLEVEL, dev.synth)
        blocks = {name: map_cells(dev.family, c) for name, c in cells.items()}
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cached, lambda f: f.write(json.dumps(blocks).encode()))
    atomic_write(Path(design_dir) / f"blocks_{dev.name}.json",
                 lambda f: f.write(json.dumps(blocks, indent=1).encode()))
    return blocks


def format_blocks(blocks):
    """A table of :func:`block_breakdown`: one row per block, the largest first, and the
    total."""
    from ..report import format_table
    names = ("luts", "ffs", "carry", "dsps", "brams", "lutram")
    order = sorted(blocks, key=lambda b: -blocks[b]["luts"])
    rows = [(b, *(blocks[b][n] for n in names)) for b in order]
    rows.append(("total", *(sum(blocks[b][n] for b in blocks) for n in names)))
    return format_table(("block",) + names, rows)
