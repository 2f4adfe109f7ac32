"""Whole-network simulation speed on Verilator: the batch driver against the old testbench.

    python benchmarks/sim_speed.py [--samples N] [--array 4x4]

Compiles the digits CNN (fixed8) for the array, then in one run and on fresh build folders:

- **batch driver** (what ``hwgen simulate`` uses, :mod:`hwgen.sim.batch`): every sample
  streamed through the design inside the simulator; Python starts the batch and compares
  the words and cycles afterwards;
- **Python testbench** (``benchmarks/stream_testbench.py``, hwgen's testbench before the
  batch driver): cocotb drives every input word and takes every output word, with a
  Python clock, on cocotb's default build (every signal public).

For each: the Verilator build time and the simulated clock cycles per second (the
testbench's own count of cycles over the wall time of the run, reset and I/O included).
Both check the outputs against the golden model. Target: >= 1,000,000 cycles/s on 4x4.
A run of 100 images lasts a fraction of a second, so other jobs on the machine move one
run's rate a lot: the batch driver runs ``--repeats`` times on its build (the first run
also builds), and the verdict takes the median rate; every run's rate is printed.

A third row simulates the same network with other weights and biases (its output channels
in reverse order: a retrained model on the same accelerator) on the batch driver's build
folder: the memories' contents are loaded at run time (:mod:`hwgen.sim.memories`), so it
reuses the first build.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hwgen import golden, ir
from hwgen.compiler import compile_graph
from hwgen.emit import read_vectors, write_design
from hwgen.flow import compile_model
from hwgen.sim import runner
from hwgen.sim.check import simulate_design

TARGET = 1_000_000


def batch_driver(design_dir, samples, build_dir):
    report = simulate_design(design_dir, samples=samples, build_dir=build_dir)
    if not (report.bit_exact and report.cycles_match):
        sys.exit("the batch driver's run is not bit-exact")
    return report.build_seconds, report.sim_cycles_per_second


def python_testbench(design_dir, design, samples, build_dir):
    inputs, expected, _ = read_vectors(design_dir)
    stimulus = build_dir / "stimulus.json"
    results = build_dir / "results.json"
    build_dir.mkdir(parents=True, exist_ok=True)
    stimulus.write_text(json.dumps({
        "n_in": design.n_in, "n_out": design.n_out, "n_layers": len(design.layers),
        "max_cycles": 4 * design.cycles + 1000, "inputs": inputs[:samples].tolist()}))
    here = str(Path(__file__).resolve().parent)
    env = {"HWGEN_STIMULUS": str(stimulus), "HWGEN_RESULTS": str(results),
           "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    runner.run_cocotb([design_dir / "hwgen_top.v"], "hwgen_top", "stream_testbench",
                      build_dir, extra_env=env)
    wall = time.perf_counter() - started
    got = json.loads(results.read_text())
    if got["error"] or not np.array_equal(np.array(got["outputs"]), expected[:samples]):
        sys.exit(f"the Python testbench's run failed: {got['error']}")
    return wall - got["sim_seconds"], got["clock_cycles"] / got["sim_seconds"]


def other_weights(design_dir, design, graph, out):
    """``graph`` with every layer's output channels in reverse, compiled for ``design``'s
    config into ``out`` with the golden outputs of ``design_dir``'s test images."""
    flipped = dataclasses.replace(graph, layers=[
        layer if isinstance(layer, ir.Flatten) else
        dataclasses.replace(layer, weight=layer.weight[::-1], bias=layer.bias[::-1])
        for layer in graph.layers])
    inputs, _, labels = read_vectors(design_dir)
    expected = golden.run(flipped, inputs.reshape((-1,) + graph.input_shape))
    write_design(compile_graph(flipped, design.config), out,
                 vectors=(inputs, expected.reshape(len(inputs), -1), labels))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100, help="test images (100)")
    ap.add_argument("--array", default="4x4", help="array shape (4x4)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="batch driver runs on its build (5); the verdict takes the median")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        design, qmodel = compile_model("builtin:digits-cnn", "fixed8", args.array,
                                       work / "d", vectors=args.samples)
        print(f"digits CNN fixed8 on {args.array}: {design.cycles} cycles per image, "
              f"{args.samples} images", flush=True)
        other_weights(work / "d", design, qmodel.graph, work / "d2")
        runs = [batch_driver(work / "d", args.samples, work / "b1")
                for _ in range(max(1, args.repeats))]
        rates = sorted(rate for _, rate in runs)
        median = rates[len(rates) // 2]
        rows = [("batch driver", runs[0][0], median),
                ("  other weights", *batch_driver(work / "d2", args.samples, work / "b1")),
                ("Python testbench", *python_testbench(work / "d", design, args.samples,
                                                      work / "b2"))]
    print(f"{'testbench':18} {'build s':>8} {'cycles/s':>12}")
    for name, build, rate in rows:
        print(f"{name:18} {build:8.1f} {rate:12,.0f}")
    print(f"batch driver, {len(runs)} runs on one build: "
          + ", ".join(f"{rate:,.0f}" for _, rate in runs) + " cycles/s (median above)")
    speedup = median / rows[2][2]
    print(f"batch / Python: {speedup:.1f}x; target >= {TARGET:,} cycles/s (median): "
          f"{'met' if median >= TARGET else 'missed'}")


if __name__ == "__main__":
    main()
