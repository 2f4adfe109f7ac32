"""Fitting the iCEBreaker: ``hwgen compile --fit ice40-up5k --place N``, then ``hwgen build``.

The digits CNN in ``fixed8`` (by default) is fitted to the UP5K: every array shape is
estimated analytically, the N fastest that fit with 20 % of the logic cells spare are placed
with nextpnr, and the one with the most inferences per second at its placed Fmax is
compiled and built for the iCEBreaker, placed with ``--seeds`` nextpnr seeds. Prints the
shapes placed (estimated against placed logic cells, Fmax, inferences/s) and the board
build against issue 9's targets: at least 20 % of the UP5K's 5,280 logic cells spare and at
least 42 MHz.

Run: ``python benchmarks/fit_device.py [--scheme fixed8] [--place 3] [--seeds 3]`` (about a
minute per shape placed and per seed on a 2-core machine).
"""

import argparse
import tempfile
import time
from pathlib import Path

from hwgen.boards.build import build_board
from hwgen.estimate.devices import device
from hwgen.estimate.fit import read_fit
from hwgen.flow import compile_model

SPARE, FMAX = 0.2, 42.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:digits-cnn")
    parser.add_argument("--scheme", default="fixed8")
    parser.add_argument("--place", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    dev = device("ice40-up5k")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "d"
        started = time.perf_counter()
        design, _ = compile_model(args.model, args.scheme, None, out, vectors=1,
                                  fit=dev.name, spare=SPARE, place=args.place,
                                  progress=lambda m: print(f"  {m}", flush=True))
        fit_seconds = time.perf_counter() - started
        choice = read_fit(out)
        print(choice.table(faster=0))
        print(choice.summary())
        placed = [c for c in choice.candidates if c.placed_lcs is not None]
        errors = [abs(c.lcs - c.placed_lcs) / c.placed_lcs for c in placed]
        print(f"analytic LCs against placed (core and pin harness): mean error "
              f"{100 * sum(errors) / len(errors):.1f} %, largest {100 * max(errors):.1f} %; "
              f"fitting took {fit_seconds:.0f} s")
        build = build_board(out, "icebreaker", seeds=args.seeds,
                            progress=lambda m: print(f"  {m}", flush=True))
        spare = 1 - build.lcs / build.lcs_available
        print(f"iCEBreaker build of {choice.chosen.array}: {build.lcs:,} of "
              f"{build.lcs_available:,} LCs ({100 * spare:.1f} % spare, target >= "
              f"{100 * SPARE:.0f} %: {'met' if spare >= SPARE else 'MISSED'}), "
              f"{build.resources['dsps']} DSPs, {build.resources['brams']} BRAMs, Fmax "
              f"{build.fmax_mhz:.1f} MHz (best of {build.seeds} seeds; target >= {FMAX:g}: "
              f"{'met' if build.fmax_mhz >= FMAX else 'MISSED'}); {design.cycles:,} cycles: "
              f"{build.fmax_mhz * 1e6 / design.cycles:,.0f} inferences/s at the placed Fmax, "
              f"{build.clock_mhz * 1e6 / design.cycles:,.0f} at the board's "
              f"{build.clock_mhz:g} MHz ({build.seconds:.0f} s)")


if __name__ == "__main__":
    main()
