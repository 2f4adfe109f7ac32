"""Reports are data: frozen dataclasses with ``to_json()``; the CLI prints them, tests
compare them, benchmarks and plots read them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

__all__ = ["LayerUtilization", "SimReport", "format_table", "overhead_note", "utilization_rows"]


def figure_png(fig, dpi=100):
    """The matplotlib figure ``fig`` as PNG bytes; the figure is closed."""
    import io

    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def format_table(headers, rows, align=None):
    """A plain-text table: ``headers`` and ``rows`` of cells (numbers right-aligned)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if align is None:
        align = ["<" if isinstance(v, str) else ">" for v in (rows[0] if rows else headers)]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value):
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


@dataclass(frozen=True)
class LayerUtilization:
    """How well one layer uses the array.

    Attributes
    ----------
    name : str
        The layer.
    macs : int
        Multiply-accumulates.
    k : int
        Reduction length ``K``.
    ideal : float
        ``MACs / PEs``: cycles of a perfectly used array.
    predicted : int
        The cycle model's cycles.
    measured : int
        The hardware's cycles (``predicted`` when not measured).
    utilization : float
        ``100 · ideal / measured`` (percent).
    overhead : str
        The largest source of lost cycles (:func:`overhead_note`).
    """

    name: str
    macs: int
    k: int
    ideal: float
    predicted: int
    measured: int
    utilization: float
    overhead: str

    def to_json(self):
        return asdict(self)


def utilization_rows(design, measured=None):
    """One :class:`LayerUtilization` per layer of ``design``; ``measured`` maps layer names
    to cycles."""
    rows = []
    for layer in design.layers:
        ideal = design.layer_ideal(layer)
        predicted = layer.cycles.total
        got = measured.get(layer.name, predicted) if measured else predicted
        rows.append(LayerUtilization(
            name=layer.name, macs=layer.macs, k=layer.desc.k_len, ideal=ideal,
            predicted=predicted, measured=got, utilization=100.0 * ideal / got,
            overhead=overhead_note(design, layer)))
    return rows


def _period_note(desc):
    """Why tiles wait longer than their ``K`` steps (:func:`hwgen.timing.tile_period`)."""
    if desc.split:
        return "period (K' < cols, rows + 2)"
    if desc.drain_pool:
        return "drain (K < pool windows·cols)"
    return "drain (K < rows·cols)"


def overhead_note(design, layer):
    """The largest source of lost cycles in ``layer``, as a short phrase."""
    rows, cols = design.config.rows, design.config.cols
    c = layer.cycles
    npix = layer.desc.npix
    cout = layer.desc.cout
    idle_pes = layer.tiles * layer.desc.k_len - design.layer_ideal(layer)
    costs = {
        _period_note(layer.desc): c.drain_bound,
        "fill/drain + setup": c.fill_drain + c.setup,
        "edge tiles (pixels/channels not multiples of the array)": idle_pes,
    }
    if npix < rows:
        costs = {f"idle rows ({npix} pixel(s) < {rows} rows)": idle_pes, **costs}
        costs.pop("edge tiles (pixels/channels not multiples of the array)")
    elif cout < cols:
        costs = {f"idle columns ({cout} channels < {cols} cols)": idle_pes, **costs}
        costs.pop("edge tiles (pixels/channels not multiples of the array)")
    name, value = max(costs.items(), key=lambda kv: kv[1])
    return f"{name}: {round(value)} cycles" if value > 0 else "-"


@dataclass(frozen=True)
class SimReport:
    """What ``hwgen simulate`` found: bit-exactness, cycles, utilization, accuracy."""

    design: str
    array: str
    simulator: str
    samples: int
    bit_exact: bool
    mismatches: int
    mismatched_samples: tuple
    cycles_measured: dict
    cycles_predicted: dict
    cycles_match: bool
    ideal_cycles: dict
    utilization: dict
    accuracy: float
    golden_accuracy: float
    sim_cycles_per_second: float
    sim_seconds: float
    build_seconds: float
    verilog: str
    waves: str | None = None
    #: ``{layer: {"saturated": n, "wrapped": n}}`` over the simulated samples (golden model,
    #: which the hardware matches word for word when ``bit_exact``).
    overflow: dict = field(default_factory=dict)
    #: Images one start takes; the cycle counts are per start.
    batch: int = 1

    def to_json(self):
        return {
            "design": self.design, "array": self.array, "simulator": self.simulator,
            "samples": self.samples, "bit_exact": self.bit_exact,
            "mismatches": self.mismatches, "mismatched_samples": list(self.mismatched_samples),
            "cycles_measured": self.cycles_measured, "cycles_predicted": self.cycles_predicted,
            "cycles_match": self.cycles_match, "ideal_cycles": self.ideal_cycles,
            "utilization": self.utilization, "accuracy": self.accuracy,
            "golden_accuracy": self.golden_accuracy,
            "sim_cycles_per_second": self.sim_cycles_per_second,
            "sim_seconds": self.sim_seconds, "build_seconds": self.build_seconds,
            "verilog": self.verilog, "waves": self.waves, "overflow": self.overflow,
            "batch": self.batch,
        }

    def dumps(self):
        return json.dumps(self.to_json(), indent=1)

    def overflow_text(self):
        """The layers whose outputs saturated or wrapped on the simulated samples."""
        hits = [f"{name} {n[kind]} {kind}" for name, n in self.overflow.items()
                for kind in ("saturated", "wrapped") if n[kind]]
        if hits:
            return f"{', '.join(hits)} values in {self.samples} samples"
        return "none" if self.overflow else "not recorded with the test vectors"

    def summary(self):
        """Human-readable lines for the CLI."""
        per = self.cycles_measured["per_layer"]
        table = format_table(
            ["layer", "measured", "predicted", "ideal", "utilization %"],
            [(name, per[name], self.cycles_predicted["per_layer"][name],
              round(self.ideal_cycles["per_layer"][name], 1),
              100.0 * self.utilization["per_layer"][name]) for name in per]
            + [("total", self.cycles_measured["total"], self.cycles_predicted["total"],
                round(self.ideal_cycles["total"], 1), 100.0 * self.utilization["total"])])
        lines = [
            (f"design {self.design} on a {self.array} array, {self.samples} samples "
            f"({self.simulator})"),
            f"bit-exact: {'yes' if self.bit_exact else 'NO'} ({self.mismatches} mismatched words)",
            (f"cycles: measured {self.cycles_measured['total']}, predicted "
            f"{self.cycles_predicted['total']}, ideal {self.ideal_cycles['total']:.1f} "
            f"({'equal' if self.cycles_match else 'DIFFERENT'})"),
            table,
        ]
        if self.batch > 1:
            lines.append(f"per image: {self.cycles_measured['total'] / self.batch:,.1f} cycles "
                         f"(a start runs a batch of {self.batch} images)")
        lines += [
            f"accuracy: {100 * self.accuracy:.1f} % (golden model {100 * self.golden_accuracy:.1f} %)",
            f"overflow: {self.overflow_text()}",
            (f"simulation: {self.sim_cycles_per_second:,.0f} cycles/s, {self.sim_seconds:.1f} s "
            f"(build {self.build_seconds:.1f} s)"),
            f"verilog: {self.verilog}",
        ]
        if self.waves:
            lines.append(f"waves: {self.waves}")
        return "\n".join(lines)
