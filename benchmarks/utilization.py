"""Array utilization of the digits CNN and LeNet-5 on 4×4 and 8×8 arrays, measured.

For every layer: MACs, reduction length K, ideal cycles (MACs / PEs), predicted and
measured cycles (Verilator, the accelerator's own cycle counter), utilization, and the
overhead that costs the most cycles. Also the Verilator simulation speed.

Targets (issue "Systolic accelerator generator"): >= 90 % on every convolution with
K >= 25 on a 4×4 array, >= 80 % end to end; where a layer falls short, its row says why.

    python benchmarks/utilization.py [--samples N] [--plot utilization.png]

LeNet-5 is trained for a few epochs on the digits resized to 28×28 (its cycles do not
depend on its weights; the simulation still checks every output word).
"""

import argparse
import sys
import tempfile
from pathlib import Path

from hwgen.flow import compile_model
from hwgen.report import format_table, utilization_rows
from hwgen.sim.check import simulate_design
from hwgen.train import train

ARRAYS = ("4x4", "8x8")


def measure(model, array, work, samples):
    out = work / f"{Path(model).stem.replace(':', '_')}-{array}"
    design, _ = compile_model(model, "fixed8", array, out, vectors=samples)
    report = simulate_design(out, samples=samples, build_dir=work / "sim_build")
    if not report.bit_exact or not report.cycles_match:
        sys.exit(f"{model} on {array}: bit-exact {report.bit_exact}, "
                 f"cycles match {report.cycles_match}")
    return design, report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--plot", metavar="PNG", help="write a bar chart of the utilizations")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hwgen-util-"))
    print("training LeNet-5 on digits resized to 28x28 ...", file=sys.stderr, flush=True)
    lenet = work / "lenet5.pt"
    train("lenet5", lenet, epochs=3, dataset="digits28", seed=0, progress=False)
    models = {"digits-cnn": "builtin:digits-cnn", "lenet5": str(lenet)}
    plot_rows = []
    verdicts = []
    speeds = []
    for name, spec in models.items():
        for array in ARRAYS:
            print(f"simulating {name} on {array} ...", file=sys.stderr, flush=True)
            design, report = measure(spec, array, work, args.samples)
            measured = report.cycles_measured["per_layer"]
            rows = utilization_rows(design, measured)
            total_ideal = design.ideal_cycles
            total = report.cycles_measured["total"]
            print(f"\n{name} on {array} (fixed8, {args.samples} images, bit-exact, measured "
                  f"cycles == predicted)")
            print(format_table(
                ["layer", "MACs", "K", "ideal", "predicted", "measured", "util %",
                 "largest overhead"],
                [(u.name, u.macs, u.k, round(u.ideal, 1), u.predicted, u.measured,
                  u.utilization, u.overhead) for u in rows]
                + [("total", design.macs, "", round(total_ideal, 1), design.cycles, total,
                         100 * total_ideal / total, "")]))
            speeds.append(report.sim_cycles_per_second)
            for row in rows:
                plot_rows.append((f"{name} {array}", row.name, row.utilization))
            if array == "4x4":
                for layer, row in zip(design.layers, rows):
                    if layer.kind == "conv" and layer.desc.k_len >= 25:
                        verdicts.append((f"{name} {layer.name} (K={row.k})", ">= 90 %",
                                         row.utilization, row.utilization >= 90, row.overhead))
                util = 100 * total_ideal / total
                verdicts.append((f"{name} end to end", ">= 80 %", util, util >= 80,
                                 _worst(rows)))
    print("\ntargets on the 4x4 array")
    print(format_table(["what", "target", "measured %", "met", "largest overhead"],
                       [(w, t, m, "yes" if ok else "NO", why) for w, t, m, ok, why in verdicts]))
    print("\nfully connected layers at batch 1 reuse no weight: the weight memory delivers "
          "`cols` weights per cycle, so at most 1/rows of the PEs can work on them.")
    print(f"\nVerilator simulation speed: {min(speeds):,.0f} to {max(speeds):,.0f} cycles/s "
          f"(whole runs including the cocotb stream transfers)")
    if args.plot:
        _plot(plot_rows, args.plot)


def _worst(rows):
    """The layer that loses the most cycles and why."""
    row = max(rows, key=lambda r: r.measured - r.ideal)
    return f"{row.name}: {row.overhead}"


def _plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{cfg}\n{layer}" for cfg, layer, _ in rows]
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.7), 4))
    ax.bar(range(len(rows)), [u for _, _, u in rows])
    ax.axhline(90, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(rows)), labels, rotation=90, fontsize=7)
    ax.set_ylabel("utilization (%)")
    ax.set_title("hwgen: measured array utilization per layer")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
