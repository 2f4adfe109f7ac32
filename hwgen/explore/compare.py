"""``hwgen compare``: a sweep over schemes × array shapes × targets (× batches), one row
each.

A row holds what people compare designs by: accuracy (the golden model's, i.e. the
hardware's, on the model's test split), weight bytes, cycles per inference, LUT, FF, DSP,
BRAM and Fmax from :func:`hwgen.estimate.estimate_verilog`, latency in µs and inferences
per second at that Fmax, and the first-order energy per inference of
:mod:`hwgen.explore.energy`. With a batch of ``N`` images per start (``--batches``), the
cycles and the energy are per image, the latency is the whole start's and the inferences
per second count the ``N`` images. Results go out as CSV, JSON and Markdown, plus PNG plots
(accuracy vs LUTs, latency vs LUTs) with the Pareto front marked.

Configurations run in parallel: on the local cores (a process pool, ``jobs``), or on a
Dask cluster when ``executor`` names its scheduler (``tcp://host:8786``; ``pip install
hwgen[dask]``). Each configuration is a pure function of its inputs
(:func:`evaluate`), so where it runs does not change the row.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ArgumentError

__all__ = ["COLUMNS", "CompareRow", "Config", "configs", "evaluate", "pareto_front",
           "run_sweep", "write_results"]


@dataclass(frozen=True)
class Config:
    """One point of the sweep."""

    model: str
    scheme: str
    array: str
    target: str
    place: bool = True
    batch: int = 1


@dataclass(frozen=True)
class CompareRow:
    """The measured figures of one :class:`Config` (see the module docstring)."""

    model: str
    scheme: str
    array: str
    target: str
    batch: int
    accuracy: float | None
    weight_bytes: int
    cycles: int
    luts: int
    ffs: int
    dsps: int
    brams: int
    fmax_mhz: float | None
    latency_us: float | None
    inferences_per_s: float | None
    energy_nj: float
    fits: bool
    placed: bool

    def to_json(self):
        return asdict(self)


#: The columns of the table, in order.
COLUMNS = tuple(CompareRow.__dataclass_fields__)


def configs(model, schemes, arrays, targets, place=True, batches=(1,)):
    """Every :class:`Config` of the sweep, schemes outermost, batches innermost."""
    if not schemes or not arrays or not targets or not batches:
        raise ArgumentError("A sweep needs at least one scheme, one array, one target and "
                            "one batch")
    return [Config(model, s, a, t, place, b) for s in schemes for a in arrays
            for t in targets for b in batches]


def evaluate(config):
    """Quantize, compile, synthesize (and place) one configuration; its :class:`CompareRow`.

    Runs in a worker process: everything it needs is in ``config``.
    """
    from ..compiler import AcceleratorConfig, compile_graph
    from ..emit import TOPLEVEL, verilog
    from ..estimate import estimate_verilog
    from ..flow import load_quantized
    from .energy import network_energy

    qmodel = load_quantized(config.model, config.scheme)
    report = qmodel.report()
    design = compile_graph(qmodel.graph, AcceleratorConfig.parse_array(config.array,
                                                                        batch=config.batch))
    est = estimate_verilog(verilog(design), TOPLEVEL, config.target, design=design.name,
                           place_and_route=config.place)
    res = est.resources
    fmax = est.fmax_mhz
    # a start runs the batch: its latency is the whole start's, its throughput the batch's
    latency = design.cycles / fmax if fmax else None
    return CompareRow(
        model=config.model, scheme=config.scheme, array=config.array, target=config.target,
        batch=config.batch, accuracy=report.quantized_accuracy,
        weight_bytes=sum(r.weight_bytes for r in report.layers),
        cycles=round(design.cycles / design.batch),
        luts=res["luts"], ffs=res["ffs"], dsps=res["dsps"], brams=res["brams"],
        fmax_mhz=fmax, latency_us=latency,
        inferences_per_s=design.batch * 1e6 / latency if latency else None,
        energy_nj=network_energy(design).total_pj / 1000, fits=est.fits, placed=est.placed)


def run_sweep(sweep, jobs=1, executor=None, progress=True):
    """Evaluate every config of ``sweep``: serially (``jobs=1``), on ``jobs`` local
    processes, or on the Dask cluster at ``executor`` (:class:`~hwgen.explore.executor.
    Executor`). Rows come back in sweep order."""
    from .executor import Executor, progress_bar

    rows = [None] * len(sweep)
    with progress_bar(len(sweep), "configurations", "cfg", progress) as bar, \
            Executor(jobs, executor) as ex:
        for n, row in ex.map(evaluate, sweep):
            rows[n] = row
            bar.update()
    return rows


def pareto_front(points):
    """Indices of the points ``(cost, value)`` not dominated by another: no other point
    has a cost as low or lower and a value as high or higher, one of them strictly."""
    front = []
    for i, (c, v) in enumerate(points):
        dominated = any((c2 <= c and v2 >= v) and (c2 < c or v2 > v)
                        for j, (c2, v2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(rows):
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(getattr(row, c)) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def _plot(rows, value, label, out, higher_is_better):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(r.luts, getattr(r, value)) for r in rows if getattr(r, value) is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    if points:
        signed = [(c, v if higher_is_better else -v) for c, v in points]
        front = sorted((points[i] for i in pareto_front(signed)), key=lambda p: p[0])
        ax.scatter([p[0] for p in points], [p[1] for p in points], label="configurations")
        ax.plot([p[0] for p in front], [p[1] for p in front], "r-o", label="Pareto front")
        for r in rows:
            if getattr(r, value) is not None:
                ax.annotate(f"{r.scheme} {r.array}", (r.luts, getattr(r, value)), fontsize=7)
        ax.legend()
    else:
        ax.text(0.5, 0.5, f"no {label}: nothing was placed and routed", ha="center",
                transform=ax.transAxes)
    ax.set_xlabel("LUTs")
    ax.set_ylabel(label)
    fig.tight_layout()
    from ..report import figure_png
    out.write(figure_png(fig, dpi=120))


def write_results(rows, out_dir):
    """Write ``compare.csv``, ``compare.json``, ``compare.md`` and the plots
    ``accuracy_vs_luts.png``, ``latency_vs_luts.png`` into ``out_dir``; returns the
    paths."""
    from ..files import atomic_write, make_dirs
    out = Path(out_dir)
    if not out.exists():
        make_dirs(out)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(getattr(row, c)) for c in COLUMNS])
    files = {
        "compare.csv": text.getvalue(),
        "compare.json": json.dumps([r.to_json() for r in rows], indent=1),
        "compare.md": markdown(rows),
    }
    paths = []
    for name, content in files.items():
        atomic_write(out / name, lambda f, c=content: f.write(c.encode()))
        paths.append(out / name)
    for value, label, name, higher in (
            ("accuracy", "accuracy", "accuracy_vs_luts.png", True),
            ("latency_us", "latency (µs)", "latency_vs_luts.png", False)):
        atomic_write(out / name, lambda f, v=value, lab=label, h=higher: _plot(rows, v, lab, f, h))
        paths.append(out / name)
    return paths
