"""Images per second at batch 1 and batch N (``hwgen compile --batch N``), at the placed Fmax.

For each model (fixed8, by default the digits CNN and the MLP on a 4×4 array): compiles
batch 1 and batch N, simulates both on Verilator (bit-exact, measured cycles == predicted),
places both with nextpnr on the target and prints cycles per start and per image, the
fully connected layers' utilization, LUTs, block RAMs, the placed Fmax and images/s at it.
A batch stores N images' activations, so the activation buffer grows N-fold; the table
shows what that costs.

    python benchmarks/batch.py [--batch 4] [--array 4x4] [--target ecp5-85k]

About two to five minutes per design placed on a 2-core machine.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from hwgen.estimate import estimate
from hwgen.flow import compile_model
from hwgen.report import format_table
from hwgen.sim.check import simulate_design

MODELS = ("builtin:digits-cnn", "builtin:mlp")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4, help="images per start (4)")
    parser.add_argument("--array", default="4x4", help="array shape (4x4)")
    parser.add_argument("--target", default="ecp5-85k", help="placed target (ecp5-85k)")
    parser.add_argument("--samples", type=int, default=8, help="images simulated (8)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hwgen-batch-"))
    rows = []
    for model in MODELS:
        per_image = {}
        for batch in (1, args.batch):
            out = work / f"{model.split(':')[-1]}-b{batch}"
            print(f"{model} batch {batch}: compiling, simulating, placing on {args.target} ...",
                  file=sys.stderr, flush=True)
            design, _ = compile_model(model, "fixed8", args.array, out, vectors=args.samples,
                                      batch=batch)
            report = simulate_design(out, samples=args.samples, build_dir=work / "sim")
            if not (report.bit_exact and report.cycles_match):
                sys.exit(f"{model} batch {batch}: bit-exact {report.bit_exact}, cycles match "
                         f"{report.cycles_match}")
            est = estimate(out, args.target)
            fc = [design.layer_ideal(layer) / layer.cycles.total for layer in design.layers
                  if layer.kind == "linear"]
            per_image[batch] = design.cycles / batch
            images = est.fmax_mhz * 1e6 / per_image[batch] if est.fmax_mhz else float("nan")
            rows.append((model, batch, design.cycles, round(per_image[batch], 1),
                         f"{100 * min(fc):.1f}-{100 * max(fc):.1f}",
                         round(100 * design.ideal_cycles / design.cycles, 1),
                         est.resources["luts"], est.resources["brams"],
                         f"{est.fmax_mhz:.1f}" if est.fmax_mhz else "-", f"{images:,.0f}",
                         round(per_image[1] / per_image[batch], 2)))
    print(f"\nfixed8 on {args.array}, {args.target} (placed inside the pin harness), "
          f"{args.samples} images simulated bit-exact per design, measured cycles == predicted")
    print(format_table(["model", "batch", "cycles/start", "cycles/image", "fc util %",
                        "util %", "LUTs", "BRAMs", "Fmax MHz", "images/s",
                        "speed-up (cycles)"], rows))


if __name__ == "__main__":
    main()
