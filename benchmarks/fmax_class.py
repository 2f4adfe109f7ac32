"""The analytic estimate's Fmax class against nextpnr: place a set of designs and compare.

The analytic estimate (``hwgen.estimate.analytic``) names an Fmax *class* for a design, the
band its kind of design places in on the device: which multiplier its critical MAC path
has (a DSP block, LUTs, or none for shift and XNOR PEs). This benchmark compiles the digits
CNN in several schemes and arrays, places each on the iCE40 UP5K and HX8K in hwgen's pin
harness (``hwgen estimate``, nextpnr's default seed), and prints the placed Fmax beside the
class; the classes in ``hwgen/estimate/analytic.py`` (:data:`FMAX_CLASSES`) are the range
of these measurements, widened by placement noise. Rerun it and paste the bands it prints
when the RTL changes.

Run: ``python benchmarks/fmax_class.py`` (about a minute per design on a 2-core machine;
results are cached in hwgen's estimate cache).
"""

import collections
import time

from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.emit import TOPLEVEL, verilog
from hwgen.estimate import estimate_verilog
from hwgen.estimate.analytic import analytic_estimate, multiplier_kind
from hwgen.flow import load_quantized
from hwgen.report import format_table

DESIGNS = [
    ("ice40-up5k", "fixed8", "2x4"), ("ice40-up5k", "fixed8", "1x8"),
    ("ice40-up5k", "fixed8", "4x2"), ("ice40-up5k", "fixed8", "2x2"),
    ("ice40-up5k", "fixed4", "2x2"), ("ice40-up5k", "fixed4", "3x3"),
    ("ice40-up5k", "pow2-4", "2x2"), ("ice40-up5k", "pow2-4", "2x4"),
    ("ice40-up5k", "pow2-4", "4x4"),
    ("ice40-hx8k", "fixed8", "2x2"), ("ice40-hx8k", "fixed8", "4x4"),
    ("ice40-hx8k", "fixed4", "4x4"), ("ice40-hx8k", "pow2-4", "4x4"),
]


def main():
    graphs = {}
    rows, measured = [], collections.defaultdict(list)
    for target, scheme, array in DESIGNS:
        if scheme not in graphs:
            graphs[scheme] = load_quantized("builtin:digits-cnn", scheme).graph
        design = compile_graph(graphs[scheme], AcceleratorConfig.parse_array(array))
        started = time.perf_counter()
        est = estimate_verilog(verilog(design), TOPLEVEL, target,
                               design=f"digits_cnn {scheme} {array}")
        seconds = time.perf_counter() - started
        a = analytic_estimate(design, target)
        kind = multiplier_kind(design, target)
        measured[(target, kind)].append(est.fmax_mhz)
        lo, hi = a.fmax_class
        inside = lo <= est.fmax_mhz <= hi
        rows.append((target, scheme, array, kind, f"{est.fmax_mhz:.1f}", f"{lo:g}-{hi:g}",
                     "yes" if inside else "NO", f"{seconds:.0f}"))
        print(f"  {target} {scheme} {array}: {est.fmax_mhz:.1f} MHz", flush=True)
    print(format_table(["target", "scheme", "array", "multiplier", "placed MHz", "class MHz",
                        "inside", "s"], rows))
    print("measured bands (min-max of the placed Fmax per device and multiplier kind):")
    for (target, kind), values in sorted(measured.items()):
        print(f"  ({target!r}, {kind!r}): {min(values):.1f}-{max(values):.1f} MHz "
              f"({len(values)} designs)")
    inside = sum(r[6] == "yes" for r in rows)
    print(f"{inside} of {len(rows)} placed designs inside their class")


if __name__ == "__main__":
    main()
