"""Stochastic against nearest rounding in hardware, on the digits CNN, in one run.

    python benchmarks/stochastic_rounding.py [--seeds N]

Every layer's activations and outputs (and the input) at 4 and 6 bits, with the weights at
8 bits (as fixed8) and at the same width as the activations; each layer requantizes with
``nearest_even`` or ``stochastic`` (the hardware's random values,
:func:`hwgen.numerics.stochastic_random`, seeded by the scheme's ``seed``: seeds 0..N-1,
mean, spread and range). Fractional lengths are calibrated on the float checkpoint (with
seed 0's random values for the stochastic rows), so the seeds change only the rounding.
Accuracy is the golden model's on the digits test split (450 images): the hardware's,
bit for bit (the system tests run the same arithmetic on Verilator). The last column is
the accuracy change against nearest rounding.
"""

import argparse
import statistics
import time

from hwgen.flow import load_quantized
from hwgen.quant import scheme_from_json
from hwgen.report import format_table


def accuracy(width, weight_width, rounding, seed=0):
    scheme = scheme_from_json({
        "name": f"a{width}w{weight_width}-{rounding}",
        "default": {"weight_width": weight_width, "out_width": width, "rounding": rounding},
        "seed": seed})
    return load_quantized("builtin:digits-cnn", scheme).quantized_accuracy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="stochastic seeds (5)")
    args = parser.parse_args()
    start = time.perf_counter()
    head = ("act bits", "weight bits", "rounding", "seeds", "accuracy %", "spread (sd)",
            "min..max", "vs nearest")
    rows = []
    for width in (4, 6):
        for weight_width in (8, width):
            near = accuracy(width, weight_width, "nearest_even")
            rows.append((str(width), str(weight_width), "nearest_even", "-",
                         f"{100 * near:.2f}", "-", "-", ""))
            accs = [accuracy(width, weight_width, "stochastic", seed)
                    for seed in range(args.seeds)]
            mean = statistics.mean(accs)
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            rows.append((str(width), str(weight_width), "stochastic", str(len(accs)),
                         f"{100 * mean:.2f}", f"{100 * sd:.2f}",
                         f"{100 * min(accs):.2f}..{100 * max(accs):.2f}",
                         f"{100 * (mean - near):+.2f}"))
    print(format_table(head, rows))
    print(f"digits CNN, digits test split (450 images); golden model = hardware; "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
