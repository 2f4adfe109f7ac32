"""``hwgen search`` on the digits CNN: the cheapest configuration within 1 % of float
accuracy, against uniform fixed8, fixed4 and the best single-kind scheme, and the greedy
baseline against the full search.

For each cost (weight bytes, estimated LUTs on the device, energy) one search on a 4×4
array: prints its comparison table (accuracy, weight bytes, estimated LUTs, whether it fits
the device, cycles, energy), then one line per cost with the search's and greedy's cost
relative to fixed8, the configurations evaluated and the wall time.

With ``--synthesize``, every configuration of each comparison (the search's choice,
greedy, fixed8, fixed4, the best single-kind scheme) is compiled and synthesized with
Yosys for the device (``hwgen estimate DIR --target DEVICE --synth-only``, cached), and a
table sets the synthesized LUTs, flip-flops and DSPs beside the analytic estimate. On the
iCE40 HX8K (no DSP blocks) every multiplier is built from LUTs, so LUTs compare whole
designs; on the UP5K fixed-point multipliers go to its eight DSP blocks where they fit.

Run: ``python benchmarks/search.py [--jobs N] [--costs weight-bytes luts energy]
[--device ice40-hx8k] [--synthesize]``
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from hwgen.estimate import estimate
from hwgen.explore.search import search
from hwgen.flow import compile_model
from hwgen.quant import scheme_from_json
from hwgen.report import format_table

MODEL = "builtin:digits-cnn"


def synthesize(result, work):
    """Rows of (config, accuracy %, LUTs est, LUTs synth, FFs synth, DSPs synth) for the
    comparison of ``result``, each design compiled into ``work``."""
    rows = []
    for name, point in result.rows():
        out = Path(work) / name.replace(" ", "_")
        compile_model(MODEL, scheme_from_json(json.loads(point.spec)), result.array, out,
                      vectors=1)
        est = estimate(out, result.device, place_and_route=False)
        r = est.resources
        rows.append([name, f"{100 * point.accuracy:.2f}", point.metrics["luts"], r["luts"],
                     r["ffs"], r["dsps"]])
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--costs", nargs="+", default=["weight-bytes", "luts", "energy"])
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--device", default="ice40-up5k")
    parser.add_argument("--synthesize", action="store_true")
    args = parser.parse_args()
    summary = []
    for cost in args.costs:
        start = time.monotonic()
        result = search(MODEL, 0.99, cost, relative=True, array="4x4",
                        device=args.device, jobs=args.jobs, budget=args.budget)
        wall = time.monotonic() - start
        print(result.format_table())
        print()
        if args.synthesize:
            with tempfile.TemporaryDirectory() as work:
                rows = synthesize(result, work)
            print(f"synthesized for {result.device} (Yosys, hwgen estimate --synth-only):")
            print(format_table(["config", "accuracy %", "LUTs est", "LUTs", "FFs", "DSPs"],
                               rows, align=["<"] + [">"] * 5))
            print(f"search's choice / fixed8, synthesized LUTs: {rows[0][3] / rows[2][3]:.3f}")
            print()
        col = result.cost_column
        base = result.points[result.fixed8].metrics[col]
        chosen, greedy = result.points[result.chosen], result.points[result.greedy]
        summary.append((cost, chosen, greedy, base, col, len(result.points), wall))
    print(f"{'cost':13} {'search/fixed8':>13} {'fits':>5} {'greedy/fixed8':>13} {'fits':>5} "
          f"{'configs':>8} {'wall s':>7}")
    for cost, chosen, greedy, base, col, n, wall in summary:
        print(f"{cost:13} {chosen.metrics[col] / base:13.3f} "
              f"{'yes' if chosen.metrics['fits'] else 'no':>5} "
              f"{greedy.metrics[col] / base:13.3f} "
              f"{'yes' if greedy.metrics['fits'] else 'no':>5} {n:8d} {wall:7.0f}")


if __name__ == "__main__":
    main()
