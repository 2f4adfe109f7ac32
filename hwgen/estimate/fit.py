"""Choosing the array for a device: the fastest shape whose design fits with room to spare.

``hwgen compile MODEL --fit ice40-up5k`` compiles the model for every array shape up to
:data:`MAX_PES` PEs (compiling is instant: no Verilog is elaborated), estimates each design
analytically (:func:`hwgen.estimate.analytic.analytic_estimate`: logic cells, flip-flops,
DSPs, block RAMs) and keeps the one with the fewest cycles per inference among those that
fit the device with ``spare`` of its logic cells left over (the board top's UART bridge and
placement need room; nextpnr's timing also degrades on a nearly full part). Ties go to
the design with fewer logic cells.

The multipliers follow the device: a fixed-point or code-book PE's multiplier goes to a DSP
block where the device has them and the operands are wide enough for Yosys to map it there,
and is built from LUTs otherwise; shift and XNOR PEs use none. So on an iCE40 UP5K (8 DSP
blocks) an 8-bit fixed-point array has at most 8 PEs, while a pow2 array is bounded by its
logic cells. :class:`FitChoice` says what was chosen and why the faster shapes were not.

The analytic estimate knows cycles and resources but not the clock a shape places at, so
``--place N`` places the N fastest fitting shapes with nextpnr and takes the most
inferences per second; placement varies by several MHz from seed to seed, which
``hwgen build --seeds`` addresses for the build itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

from ..errors import ArgumentError, DoesNotFitError
from .analytic import analytic_estimate
from .devices import device

__all__ = ["DEFAULT_SPARE", "MAX_PES", "MAX_SIDE", "FitCandidate", "FitChoice", "check_spare",
           "fit_array", "read_fit", "shapes"]

#: The fraction of the device's logic cells left free by default.
DEFAULT_SPARE = 0.2
#: The shapes tried: ROWSxCOLS with both sides at most MAX_SIDE and at most MAX_PES PEs.
MAX_SIDE, MAX_PES = 16, 64


@dataclass(frozen=True)
class FitCandidate:
    """One array shape: its design's predicted ``cycles`` and analytic estimate, and
    ``problem``: why it is not taken ("" when it fits)."""

    array: str
    cycles: int
    lcs: int
    ffs: int
    dsps: int
    brams: int
    lut_multipliers: int
    problem: str
    #: With ``place``: nextpnr's logic cells (core and pin harness) and Fmax.
    placed_lcs: int | None = None
    fmax_mhz: float | None = None

    @property
    def inferences_per_second(self):
        """At the placed Fmax; ``None`` when not placed."""
        return None if self.fmax_mhz is None else self.fmax_mhz * 1e6 / self.cycles


@dataclass(frozen=True)
class FitChoice:
    """The chosen :class:`FitCandidate` (``chosen``), the device, the spare fraction, and
    every candidate tried (``candidates``, fastest first)."""

    chosen: FitCandidate
    target: str
    spare: float
    candidates: tuple

    def to_json(self):
        return {"chosen": self.chosen.array, "target": self.target, "spare": self.spare,
                "candidates": [asdict(c) for c in self.candidates]}

    @classmethod
    def from_json(cls, obj):
        candidates = tuple(FitCandidate(**c) for c in obj["candidates"])
        chosen = next(c for c in candidates if c.array == obj["chosen"])
        return cls(chosen, obj["target"], obj["spare"], candidates)

    def table(self, faster=5):
        """A table of the chosen shape, the ``faster`` next faster shapes refused and every
        shape placed."""
        from ..report import format_table
        dev = device(self.target)
        at = self.candidates.index(self.chosen)
        shown = [c for n, c in enumerate(self.candidates)
                 if at - faster <= n <= at or c.fmax_mhz is not None]
        placed = any(c.fmax_mhz is not None for c in shown)
        rows = []
        for c in shown:
            row = [c.array, c.cycles, c.lcs, f"{100 * c.lcs / dev.luts:.1f}", c.dsps,
                   c.lut_multipliers, c.brams]
            if placed:
                row += ["-" if c.placed_lcs is None else c.placed_lcs,
                        "-" if c.fmax_mhz is None else f"{c.fmax_mhz:.1f}",
                        "-" if c.fmax_mhz is None else f"{c.inferences_per_second:,.0f}"]
            rows.append(row + ["chosen" if c is self.chosen else c.problem or "fewer inf/s"])
        head = ["array", "cycles", "LCs (est.)", "LC %", "DSPs", "LUT mults", "BRAMs"]
        if placed:
            head += ["LCs (placed)", "Fmax MHz", "inf/s"]
        return format_table(head + ["verdict"], rows)

    def summary(self):
        """One line: what was chosen, its estimate, and the multipliers."""
        c, dev = self.chosen, device(self.target)
        mults = (f"{c.dsps} DSP blocks" if c.dsps else "no DSP blocks") + (
            f", {c.lut_multipliers} multipliers from LUTs" if c.lut_multipliers else "")
        placed = ("" if c.fmax_mhz is None else
                  f"placed: {c.placed_lcs:,} logic cells, {c.fmax_mhz:.1f} MHz, "
                  f"{c.inferences_per_second:,.0f} inferences/s; ")
        return (f"chose {c.array} for {dev.name}: {c.cycles:,} cycles per inference; {placed}"
                f"estimated {c.lcs:,} of {dev.luts:,} logic cells "
                f"({100 * c.lcs / dev.luts:.1f} %, at most {100 * (1 - self.spare):.0f} % "
                f"allowed), {mults}, {c.brams} of {dev.brams} block RAMs")


def _problem(est, dev, spare):
    budget = int(dev.luts * (1 - spare))
    problems = []
    if est.dsps > dev.dsps:
        problems.append(f"{est.dsps} DSPs > {dev.dsps}")
    if est.brams > dev.brams:
        problems.append(f"{est.brams} block RAMs > {dev.brams}")
    if est.lcs > budget:
        problems.append(f"{est.lcs:,} LCs > {budget:,}")
    if est.ffs > dev.ffs:
        problems.append(f"{est.ffs:,} FFs > {dev.ffs:,}")
    return "; ".join(problems)


def shapes(max_pes=MAX_PES, max_side=MAX_SIDE):
    """The ``(rows, cols)`` shapes :func:`fit_array` tries."""
    return [(r, c) for r in range(1, max_side + 1) for c in range(1, max_side + 1)
            if r * c <= max_pes]


def read_fit(design_dir):
    """The :class:`FitChoice` a design folder was compiled with (its ``fit.json``), or
    ``None`` when its array was given."""
    import json
    from pathlib import Path

    from ..emit import FIT_FILE
    path = Path(design_dir) / FIT_FILE
    return FitChoice.from_json(json.loads(path.read_text())) if path.is_file() else None


def check_spare(spare):
    """``spare`` as a float from 0 to below 1, or :class:`~hwgen.errors.ArgumentError`."""
    if not isinstance(spare, (int, float)) or isinstance(spare, bool) or not 0 <= spare < 1:
        raise ArgumentError(f"The spare fraction of logic cells must be at least 0 and "
                            f"below 1, like 0.2, not {spare!r}")
    return float(spare)


def fit_array(graph, target, *, spare=DEFAULT_SPARE, config=None, place=0, progress=None):
    """The :class:`FitChoice` for ``graph`` (an :class:`~hwgen.ir.Graph`) on ``target``
    (an iCE40 device name: the analytic estimate is calibrated there) leaving ``spare``
    (0 to 1) of its logic cells free. ``config`` holds the other
    :class:`~hwgen.compiler.AcceleratorConfig` fields.

    The choice is the shape with the fewest cycles among those the analytic estimate finds
    fitting. With ``place`` = N > 0, the N fastest of those are elaborated, synthesized and
    placed (:func:`hwgen.estimate.estimate_verilog`, about a minute each on a UP5K) and the
    choice is the one with the most inferences per second at nextpnr's Fmax among those
    whose placed logic cells also leave ``spare`` free: the clock a shape reaches is not
    in the analytic estimate.

    Raises :class:`~hwgen.errors.DoesNotFitError` naming the smallest design's overflow
    when no shape fits."""
    from ..compiler import AcceleratorConfig, compile_graph
    from .analytic import _check_target
    dev = _check_target(target)
    spare = check_spare(spare)
    from ..errors import check_int
    place = check_int(place, "The number of shapes to place", minimum=0)
    config = dict(config or {})
    candidates = []
    all_shapes = shapes()
    for n, (rows, cols) in enumerate(all_shapes):
        if progress is not None and n % 16 == 0:
            progress(f"fitting {graph.name} to {dev.name}: {n}/{len(all_shapes)} array shapes")
        design = compile_graph(graph, AcceleratorConfig(rows=rows, cols=cols, **config))
        est = analytic_estimate(design, dev)
        candidates.append(FitCandidate(f"{rows}x{cols}", design.cycles, est.lcs, est.ffs,
                                       est.dsps, est.brams, est.lut_multipliers,
                                       _problem(est, dev, spare)))
    candidates.sort(key=lambda c: (c.cycles, c.lcs))
    fitting = [c for c in candidates if not c.problem]
    if not fitting:
        smallest = min(candidates, key=lambda c: (c.lcs, c.cycles))
        raise DoesNotFitError(
            f"No array of at most {MAX_PES} PEs fits {graph.name} on {dev.name} with "
            f"{100 * spare:.0f} % of its logic cells spare; the smallest, {smallest.array}, "
            f"needs {smallest.problem}")
    if place:
        budget = int(dev.luts * (1 - spare))
        placed = {}
        for c in fitting[:place]:
            c = _place(graph, c, dev, config, progress)
            if not c.problem and c.placed_lcs > budget:
                c = dataclasses.replace(c, problem=f"placed {c.placed_lcs:,} LCs > {budget:,}")
            placed[c.array] = c
        candidates = [placed.get(c.array, c) for c in candidates]
        ok = [c for c in placed.values() if not c.problem]
        if not ok:
            smallest = min(placed.values(), key=lambda c: c.placed_lcs)
            raise DoesNotFitError(
                f"None of the {len(placed)} shapes placed fits {graph.name} on {dev.name} "
                f"with {100 * spare:.0f} % of its logic cells spare; the smallest, "
                f"{smallest.array}, took {smallest.placed_lcs:,} of {budget:,}")
        best = max(ok, key=lambda c: (c.inferences_per_second, -c.lcs))
        return FitChoice(best, dev.name, spare, tuple(candidates))
    return FitChoice(fitting[0], dev.name, spare, tuple(candidates))


def _place(graph, candidate, dev, config, progress):
    """``candidate`` with its placed logic cells and Fmax (a problem when nextpnr failed)."""
    from ..compiler import AcceleratorConfig, compile_graph
    from ..emit import TOPLEVEL, verilog
    from . import estimate_verilog
    rows, cols = (int(v) for v in candidate.array.split("x"))
    design = compile_graph(graph, AcceleratorConfig(rows=rows, cols=cols, **config))
    if progress is not None:
        progress(f"elaborating the {candidate.array} design to place it")
    est = estimate_verilog(verilog(design), TOPLEVEL, dev, design=f"{graph.name} "
                           f"{candidate.array}", progress=progress)
    lcs = est.resources.get("lcs", 0)
    problem = "" if est.placed and est.fmax_mhz is not None else (
        est.problem or "nextpnr gave no Fmax")
    return dataclasses.replace(candidate, placed_lcs=lcs, fmax_mhz=est.fmax_mhz,
                               problem=problem)
