"""``hwgen compare``'s wall time for its default sweep, serial against parallel.

The sweep is what ``hwgen compare builtin:digits-cnn --out DIR`` runs: fixed16, fixed8 and
fixed4 on 2×2 and 4×4 arrays for the iCE40 UP5K, each configuration quantized, compiled,
synthesized with Yosys and placed with nextpnr. It runs three times in one process:

1. serially (``--jobs 1``),
2. on ``--jobs`` local processes,
3. on a local Dask cluster of ``--jobs`` worker processes (``--executor``, the path a
   remote cluster takes; needs ``pip install 'hwgen[dask]'``).

Each run starts with an empty estimate cache (``HWGEN_BUILD_DIR`` in a fresh folder), so
every run synthesizes and places everything; the runs must give the same rows. Prints each
run's wall time and its speed-up over serial. On a machine with N cores the ceiling is about
``min(N, 6)``; the YoWASP tools are single-threaded.

Run: ``python benchmarks/compare_speed.py [--jobs 2] [--synth-only]``
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from hwgen.explore.compare import configs, run_sweep


def timed(sweep, work, name, **kw):
    """Wall time and rows of one run of ``sweep`` with a fresh estimate cache."""
    os.environ["HWGEN_BUILD_DIR"] = str(Path(work) / name / "sim")
    start = time.monotonic()
    rows = run_sweep(sweep, progress=False, **kw)
    return time.monotonic() - start, rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--synth-only", action="store_true")
    args = parser.parse_args()
    sweep = configs("builtin:digits-cnn", ["fixed16", "fixed8", "fixed4"], ["2x2", "4x4"],
                    ["ice40-up5k"], place=not args.synth_only)
    print(f"sweep: {len(sweep)} configurations (digits CNN, fixed16/fixed8/fixed4 x 2x2/4x4, "
          f"ice40-up5k, {'synthesis only' if args.synth_only else 'synthesis and placement'})"
          f"; {os.cpu_count()} cores")
    results = []
    with tempfile.TemporaryDirectory() as work:
        results.append(("serial", *timed(sweep, work, "serial")))
        results.append((f"{args.jobs} local processes",
                        *timed(sweep, work, "local", jobs=args.jobs)))
        try:
            from dask.distributed import LocalCluster
        except ImportError:
            print("Dask is not installed (pip install 'hwgen[dask]'): no cluster run")
        else:
            os.environ["HWGEN_BUILD_DIR"] = str(Path(work) / "dask" / "sim")
            with LocalCluster(n_workers=args.jobs, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster:
                results.append((f"Dask cluster, {args.jobs} workers",
                                *timed(sweep, work, "dask", executor=cluster.scheduler_address)))
    serial_time, serial_rows = results[0][1], results[0][2]
    print(f"{'run':28} {'wall s':>7} {'speed-up':>8} {'same rows':>9}")
    for name, wall, rows in results:
        print(f"{name:28} {wall:7.0f} {serial_time / wall:8.2f} "
              f"{'yes' if rows == serial_rows else 'NO':>9}")


if __name__ == "__main__":
    main()
