"""``hwgen search`` on the digits CNN: the cheapest configuration within 1 % of float
accuracy, against uniform fixed8, fixed4 and the best single-kind scheme, and the greedy
baseline against the full search.

For each cost (weight bytes, estimated LUTs on the iCE40 UP5K, energy) one search on a 4×4
array: prints its comparison table (accuracy, weight bytes, estimated LUTs, whether it fits
the UP5K, cycles, energy), then one line per cost with the search's and greedy's cost
relative to fixed8, the configurations evaluated and the wall time.

Run: ``python benchmarks/search.py [--jobs N] [--costs weight-bytes luts energy]``
"""

import argparse
import time

from hwgen.explore.search import search


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--costs", nargs="+", default=["weight-bytes", "luts", "energy"])
    parser.add_argument("--budget", type=int, default=1000)
    args = parser.parse_args()
    summary = []
    for cost in args.costs:
        start = time.monotonic()
        result = search("builtin:digits-cnn", 0.99, cost, relative=True, array="4x4",
                        device="ice40-up5k", jobs=args.jobs, budget=args.budget)
        wall = time.monotonic() - start
        print(result.format_table())
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
