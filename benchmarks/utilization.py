"""Array utilization of the digits CNN and LeNet-5 on 4×4 and 8×8 arrays, measured, at
batch 1 (with and without ``--split-fc --drain-pool``) and at a batch of ``rows`` images
(``--batch``).

For every layer: MACs, reduction length K, ideal cycles (MACs / PEs), predicted and
measured cycles (Verilator, the accelerator's own cycle counter), utilization, and the
overhead that costs the most cycles. A batched convolution runs once per image; its
entries are summed into one row, whose "largest overhead" is one image's.

Targets (issue "Throughput near the physical limit"), on both arrays: every convolution
with K >= 25 >= 90 %; convolutions with K < rows·cols >= 70 %; fully connected layers at
batch 1 >= 50 %; end to end >= 85 %, measured on the ``--split-fc --drain-pool`` designs
(fully connected layers on every row, the drain taking pool windows at once). A target
that is missed gets its measured reason and the hardware it would take. What the two
levers cost is measured too: each batch-1 design with and without them synthesized with
Yosys for the ECP5-85F (LUT4-eq, FFs, block RAMs; ``--no-cost`` skips it).

    python benchmarks/utilization.py [--samples N] [--no-cost] [--plot utilization.png]

LeNet-5 is trained for a few epochs on the digits resized to 28×28 (its cycles do not
depend on its weights; the simulation still checks every output word).
"""

import argparse
import math
import sys
import tempfile
from pathlib import Path

from hwgen.estimate import estimate
from hwgen.flow import compile_model
from hwgen.report import format_table, utilization_rows
from hwgen.sim.check import simulate_design
from hwgen.train import train

ARRAYS = ("4x4", "8x8")


def measure(model, array, work, samples, batch, split):
    out = work / f"{Path(model).stem.replace(':', '_')}-{array}-b{batch}{'-split' * split}"
    design, _ = compile_model(model, "fixed8", array, out, vectors=samples, batch=batch,
                              split_fc=split, drain_pool=split)
    report = simulate_design(out, samples=samples, build_dir=work / "sim_build")
    if not report.bit_exact or not report.cycles_match:
        sys.exit(f"{model} on {array}, batch {batch}, split {split}: bit-exact "
                 f"{report.bit_exact}, cycles match {report.cycles_match}")
    return design, report, out


def layer_rows(design, measured):
    """Utilization rows with a batch's convolution entries (``conv1[n]``) summed."""
    merged = {}
    for layer, row in zip(design.layers, utilization_rows(design, measured)):
        name = design.graph_layer(layer)
        if name not in merged:
            merged[name] = {"kind": layer.kind, "row": row, "macs": 0, "ideal": 0.0,
                            "predicted": 0, "measured": 0}
        m = merged[name]
        m["macs"] += row.macs
        m["ideal"] += row.ideal
        m["predicted"] += row.predicted
        m["measured"] += row.measured
    return [(name, m["kind"], m["row"].k, m["macs"], m["ideal"], m["predicted"],
             m["measured"], 100 * m["ideal"] / m["measured"], m["row"].overhead)
            for name, m in merged.items()]


def hardware_needed(overhead, rows, cols, k, period):
    """What the accelerator would need to remove ``overhead`` (a row's largest overhead) of
    a layer whose tiles issue every ``period`` cycles."""
    if overhead.startswith("drain"):
        lanes = math.ceil(period / k)
        return (f"drain and post-process up to {lanes} results per cycle (a post-processing "
                f"unit per column, a buffer write port each, so a banked activation "
                f"buffer) instead of 1; --drain-pool already takes a pool window per read")
    if overhead.startswith("idle rows"):
        return (f"a weight memory {rows}x wider ({rows * cols} weights per cycle) so that the "
                f"rows split K, and the drain adding the rows' partial sums; or --batch "
                f"{rows} (below)")
    if overhead.startswith("fill/drain"):
        return ("overlap a layer's fill and drain (about rows + cols + the pipeline) with the "
                "previous layer's last tiles and the next one's setup: a second activation "
                "buffer region per layer and per-layer drain jobs")
    if overhead.startswith(("edge", "idle columns")):
        return "tiles fitted to the layer (channel or pixel counts that divide the array)"
    return "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--plot", metavar="PNG", help="write a bar chart of the utilizations")
    parser.add_argument("--no-cost", action="store_true",
                        help="skip the Yosys runs that measure what --split-fc costs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hwgen-util-"))
    print("training LeNet-5 on digits resized to 28x28 ...", file=sys.stderr, flush=True)
    lenet = work / "lenet5.pt"
    train("lenet5", lenet, epochs=3, dataset="digits28", seed=0, progress=False)
    models = {"digits-cnn": "builtin:digits-cnn", "lenet5": str(lenet)}
    plot_rows = []
    verdicts = []
    batched = []
    speeds = []
    costs = []
    for name, spec in models.items():
        for array in ARRAYS:
            rows_n, cols_n = (int(v) for v in array.split("x"))
            single = {}
            for batch, split in ((1, False), (1, True), (rows_n, False)):
                what = f"batch {batch}{', --split-fc --drain-pool' if split else ''}"
                print(f"simulating {name} on {array}, {what} ...", file=sys.stderr, flush=True)
                design, report, out = measure(spec, array, work, args.samples, batch, split)
                measured = report.cycles_measured["per_layer"]
                rows = layer_rows(design, measured)
                total = report.cycles_measured["total"]
                util = 100 * design.ideal_cycles / total
                print(f"\n{name} on {array}, {what} (fixed8, {args.samples} images, "
                      f"bit-exact, measured cycles == predicted; cycles per start)")
                print(format_table(
                    ["layer", "MACs", "K", "ideal", "predicted", "measured", "util %",
                     "largest overhead"],
                    [(n, macs, k, round(ideal, 1), pred, got, u, why)
                     for n, _, k, macs, ideal, pred, got, u, why in rows]
                    + [("total", design.macs, "", round(design.ideal_cycles, 1),
                        design.cycles, total, util, "")]))
                speeds.append(report.sim_cycles_per_second)
                if batch > 1:
                    fc = [u for _, kind, *_, u, _ in rows if kind == "linear"]
                    batched.append((f"{name} {array}", batch, total / batch, util,
                                    f"{min(fc):.1f}-{max(fc):.1f}"))
                    continue
                fc = [u for _, kind, *_, u, _ in rows if kind == "linear"]
                single[split] = (total, util, fc, out)
                if not split:
                    continue
                single_total = total
                periods = {design.graph_layer(layer): layer.desc.period
                           for layer in design.layers}
                for n, kind, k, _, _, _, _, u, why in rows:
                    plot_rows.append((f"{name} {array}", n, u))
                    if kind == "conv" and k >= 25:
                        target = 90
                    elif kind == "conv" and k < rows_n * cols_n:
                        target = 70
                    elif kind == "linear":
                        target = 50
                    else:
                        continue
                    verdicts.append((f"{name} {array} {n} (K={k})", f">= {target} %", u,
                                     u >= target, why,
                                     hardware_needed(why, rows_n, cols_n, k, periods[n])))
                worst = max(rows, key=lambda r: r[6] - r[4])
                verdicts.append((f"{name} {array} end to end", ">= 85 %", util, util >= 85,
                                 f"{worst[0]}: {worst[8]}",
                                 hardware_needed(worst[8], rows_n, cols_n, worst[2],
                                                 periods[worst[0]])))
            batched[-1] = batched[-1] + (round(single_total / batched[-1][2], 2),)
            row = [f"{name} {array}"]
            for split in (False, True):
                total, util, fc, _ = single[split]
                row += [total, round(util, 1), f"{min(fc):.1f}-{max(fc):.1f}"]
            if not args.no_cost:
                for split in (False, True):
                    print(f"synthesizing {name} on {array}{' split' * split} (Yosys, "
                          f"ECP5-85F) ...", file=sys.stderr, flush=True)
                    res = estimate(single[split][3], "ecp5-85k", place_and_route=False)
                    row += [res.resources["luts"], res.resources["ffs"],
                            res.resources["brams"]]
            costs.append(row)
    print("\n--split-fc --drain-pool at batch 1 (\"+\"): cycles and utilization, and what "
          "they cost (Yosys, ECP5-85F, LUT4-eq)")
    head = ["model, array", "cycles", "util %", "fc util %", "cycles +", "util % +",
            "fc util % +"]
    if not args.no_cost:
        head += ["LUTs", "FFs", "BRAMs", "LUTs +", "FFs +", "BRAMs +"]
    print(format_table(head, costs))
    print("\ntargets (batch 1)")
    print(format_table(["what", "target", "measured %", "met", "largest overhead",
                        "hardware it would take"],
                       [(w, t, m, "yes" if ok else "NO", why, hw)
                        for w, t, m, ok, why, hw in verdicts]))
    met = sum(ok for _, _, _, ok, _, _ in verdicts)
    print(f"{met} of {len(verdicts)} targets met")
    print("\n--batch rows: fully connected layers use each weight `rows` times")
    print(format_table(["model, array", "batch", "cycles per image", "end to end util %",
                        "fc util %", "speed-up per image over batch 1 +"], batched))
    print(f"\nVerilator simulation speed: {min(speeds):,.0f} to {max(speeds):,.0f} cycles/s "
          f"(whole runs; build time excluded)")
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
