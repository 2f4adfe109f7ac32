"""Speed of the golden model against torch, measured in the same run.

    python benchmarks/golden_speed.py [--model builtin:digits-cnn] [--scheme fixed8]

Prints images/s on the digits test split for the golden integer model (what accuracy
figures and simulation checks run on: its fast path, and its int64 reference), the torch
float model and the torch fake-quant model (float64), the ratios to torch float, and whether
the golden model reaches the target: at least as fast as torch float inference of the same
model (ratio >= 1). The models take turns, repeat after repeat, and each figure is the best
of its repeats, so that a busy machine disturbs all of them alike; the ratios, not the
absolute numbers, are what to compare.
"""

import argparse
import time

import numpy as np
import torch

from hwgen import golden
from hwgen.flow import load_quantized

#: The golden model should run at least this fast, relative to torch float inference.
TARGET = 1.0


def best_rates(fns, images, repeats):
    """``{name: images/s}``: the best of ``repeats`` timed runs of each function, taking
    turns so that a change in the machine's load hits every function alike."""
    for fn in fns.values():
        fn()  # warm-up: first-call allocations and lazy initialisation
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], _timed(fn))
    return {name: images / t for name, t in best.items()}


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:digits-cnn")
    ap.add_argument("--scheme", default="fixed8")
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()

    qm = load_quantized(args.model, args.scheme)
    x = qm.dataset.x_test
    n = len(x)
    xi = qm.quantize_input(x)
    xt = torch.tensor(x)
    x64 = torch.tensor(x, dtype=torch.float64)

    def run_golden():
        return golden.run(qm.graph, xi)

    def run_reference():
        return golden.run(qm.graph, xi, fast=False)

    def run_float():
        with torch.no_grad():
            return qm.float_module(xt)

    def run_fake_quant():
        with torch.no_grad():
            return qm.module(x64)

    # The figures are only worth comparing if the models agree.
    np.testing.assert_array_equal(run_fake_quant().numpy(),
                                  golden.run(qm.graph, xi) * 2.0 ** -qm.graph.output_fmt.frac)
    np.testing.assert_array_equal(run_golden(), run_reference())

    golden_name = "golden (exact integers, fast path)"
    rates = best_rates({
        golden_name: run_golden,
        "golden int64 reference (fast=False)": run_reference,
        "torch float32": run_float,
        "torch fake-quant float64": run_fake_quant,
    }, n, args.repeats)
    ref = rates["torch float32"]
    print(f"{qm.name} {qm.scheme.name}, {n} digits test images, batch {n}, "
          f"{torch.get_num_threads()} torch threads, best of {args.repeats}")
    width = max(map(len, rates))
    print(f"{'model':<{width}}  {'images/s':>10}  {'vs torch float':>14}")
    for name, rate in rates.items():
        print(f"{name:<{width}}  {rate:>10.0f}  {rate / ref:>13.2f}x")
    ratio = rates[golden_name] / ref
    print(f"golden / torch float = {rates[golden_name]:.0f} / {ref:.0f} images/s = "
          f"{ratio:.2f}x: target >= {TARGET:.1f}x {'met' if ratio >= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
