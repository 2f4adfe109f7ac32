"""Speed of the golden model against torch, measured in the same run.

    python benchmarks/golden_speed.py [--model builtin:digits-cnn] [--scheme fixed8]

Prints images/s on the digits test split for the golden integer model (what accuracy
figures and simulation checks run on), the torch float model and the torch fake-quant model
(float64), and the ratios. Each figure is the best of several repeats, so that a busy
machine disturbs it less; the ratios, not the absolute numbers, are what to compare.
"""

import argparse
import time

import numpy as np
import torch

from hwgen import golden
from hwgen.flow import load_quantized


def best_rate(fn, images, repeats):
    fn()  # warm-up: first-call allocations and lazy initialisation
    best = min(_timed(fn) for _ in range(repeats))
    return images / best


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:digits-cnn")
    ap.add_argument("--scheme", default="fixed8")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    qm = load_quantized(args.model, args.scheme)
    x = qm.dataset.x_test
    n = len(x)
    xi = qm.quantize_input(x)
    xt = torch.tensor(x)
    x64 = torch.tensor(x, dtype=torch.float64)

    def run_golden():
        return golden.run(qm.graph, xi)

    def run_float():
        with torch.no_grad():
            return qm.float_module(xt)

    def run_fake_quant():
        with torch.no_grad():
            return qm.module(x64)

    # The figures are only worth comparing if the models agree.
    np.testing.assert_array_equal(run_fake_quant().numpy(),
                                  golden.run(qm.graph, xi) * 2.0 ** -qm.graph.output_fmt.frac)

    rates = {
        "golden (exact integers, numpy)": best_rate(run_golden, n, args.repeats),
        "torch float32": best_rate(run_float, n, args.repeats),
        "torch fake-quant float64": best_rate(run_fake_quant, n, args.repeats),
    }
    ref = rates["torch float32"]
    print(f"{qm.name} {qm.scheme.name}, {n} digits test images, batch {n}, "
          f"{torch.get_num_threads()} torch threads, best of {args.repeats}")
    width = max(map(len, rates))
    print(f"{'model':<{width}}  {'images/s':>10}  {'vs torch float':>14}")
    for name, rate in rates.items():
        print(f"{name:<{width}}  {rate:>10.0f}  {rate / ref:>13.2f}x")


if __name__ == "__main__":
    main()
