"""Wall time and peak memory of `hwgen compile` for the array sizes hwgen accepts.

Each size runs `hwgen compile builtin:digits-cnn --scheme fixed8 --array RxC` in a fresh
process (so imports, quantization, elaboration and Verilog generation all count, as a user
sees them) and reads that process's peak resident memory from the kernel. Also times the
refusal of an array beyond the size limit, which must take about as long as starting Python.

    python benchmarks/compile_time.py [--sizes 4x4 8x8 16x16 32x32]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hwgen.report import format_table

# Run in a child: the child's own getrusage is its peak, unaffected by earlier runs.
CHILD = """
import resource, sys
from hwgen.cli import main
status = main(sys.argv[1:])
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"PEAK_KIB {peak_kib}", file=sys.stderr)
sys.exit(status)
"""


def compile_once(array, out):
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "compile", "builtin:digits-cnn", "--scheme", "fixed8",
         "--array", array, "--out", str(out)],
        capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_KIB ")]
    if proc.returncode not in (0, 1) or not peak:
        raise SystemExit(f"hwgen compile --array {array} failed:\n{proc.stderr}")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hwgen: error:")]
    return seconds, int(peak[0].split()[1]) / 1024, proc.returncode, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["4x4", "8x8", "16x16", "32x32"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, array in enumerate(args.sizes + ["33x32", "1000x1000"]):
            seconds, peak_mb, status, errors = compile_once(array, Path(tmp) / f"d{n}")
            verilog = Path(tmp) / f"d{n}" / "hwgen_top.v"
            size = f"{verilog.stat().st_size / 1e6:.1f}" if verilog.is_file() else "-"
            outcome = "compiled" if status == 0 else "refused"
            rows.append((array, outcome, f"{seconds:.1f}", f"{peak_mb:.0f}", size))
            print(f"{array}: {outcome} in {seconds:.1f} s, peak {peak_mb:.0f} MB"
                  + (f" ({errors[0]})" if errors else ""), file=sys.stderr)
    print(format_table(["array", "outcome", "wall s", "peak MB", "Verilog MB"], rows))
    base = float(rows[0][2])
    for array, outcome, seconds, *_ in rows[1:]:
        print(f"{array} / {rows[0][0]}: {float(seconds) / base:.1f}x the wall time ({outcome})")


if __name__ == "__main__":
    main()
