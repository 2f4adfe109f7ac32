"""The generated accelerator against a bare array of the same PEs: LUTs, FFs and Fmax.

For each array shape, the digits CNN in ``fixed8`` is compiled with the default
configuration and placed on the target; beside it, a bare :class:`SystolicArray` of the
same MAC PEs (same widths and pipeline, no control, no memories) is placed by the same
tools in the same run. Both sit in hwgen's pin harness (its cost is subtracted). Prints
one table and the ratios against the targets of issue 9 (ECP5-85F: generated ÷ bare LUT4
≤ 2.0 at 4×4 and ≤ 1.4 at 8×8, Fmax ≥ 90 MHz).

``outside`` is generated − bare: the LUT4-eq of everything that is not the PE array
(sequencer, drain, post-processing, memories' glue, top). The ratio divides it by the
array's own cost, so a cheaper PE raises the ratio with the same control logic: the
targets were set when a fixed8 PE cost about 48 LUT4-eq (the issue's bare array: 768 at
4×4); it costs 22 since its accumulator returns to 0 through its flip-flops' reset.

LUT4-eq is what the issue measures: LUT4s plus two per carry cell (an ECP5 CCU2C holds two
LUT4s), which is how :func:`hwgen.estimate.map_cells` already counts ``luts``; on iCE40
the carry cells sit beside the LUTs, so it is the LUT4 count.

Run: ``python benchmarks/lean.py [--target ecp5-85k] [--arrays 4x4 8x8]``
(place-and-route of an 8×8 design takes several minutes on a 2-core machine).
"""

import argparse
import warnings

from amaranth.back import verilog

from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.emit import TOPLEVEL
from hwgen.emit import verilog as design_verilog
from hwgen.estimate import estimate_verilog
from hwgen.estimate.devices import device
from hwgen.flow import load_quantized
from hwgen.report import format_table
from hwgen.rtl.pe import pe_class
from hwgen.rtl.systolic_array import SystolicArray

TARGETS = {"4x4": (2.0, 90.0), "8x8": (1.4, 90.0)}


def lut4_eq(est):
    """LUT4-eq (``luts``: two per ECP5 carry cell already), the pin harness's share taken
    off."""
    return est.resources["luts"] - est.harness["luts"]


def bare_verilog(engine, rows, cols, act_width, stages):
    pe_cls = pe_class(engine.kind)
    array = SystolicArray(rows, cols, lambda: pe_cls.create(
        a_width=act_width, w_width=engine.weight_width, acc_width=engine.acc_width,
        product_stages=stages))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return verilog.convert(array, name="bare", emit_src=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="ecp5-85k")
    parser.add_argument("--arrays", nargs="+", default=["4x4", "8x8"])
    parser.add_argument("--pe-stages", type=int, default=None,
                        help="PE product stages (default: the compiler's)")
    args = parser.parse_args()
    dev = device(args.target)
    qmodel = load_quantized("builtin:digits-cnn", "fixed8")
    rows_out = []
    verdicts = []
    for shape in args.arrays:
        extra = {} if args.pe_stages is None else {"pe_stages": args.pe_stages}
        design = compile_graph(qmodel.graph, AcceleratorConfig.parse_array(shape, **extra))
        cfg = design.config
        engine = design.engines[0]
        print(f"{shape}: placing the generated design and the bare array on {dev.name} ...",
              flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = design_verilog(design)
        gen = estimate_verilog(text, TOPLEVEL, dev, design=f"generated {shape}")
        bare = estimate_verilog(
            bare_verilog(engine, cfg.rows, cfg.cols, design.act_width, cfg.pe_stages),
            "bare", dev, design=f"bare {shape}")
        g, b = lut4_eq(gen), lut4_eq(bare)
        gf = gen.resources["ffs"] - gen.harness["ffs"]
        bf = bare.resources["ffs"] - bare.harness["ffs"]
        ratio = g / b
        rows_out.append((shape, g, b, f"{ratio:.2f}", g - b, gf, bf, gen.resources["dsps"],
                         bare.resources["dsps"], gen.resources["brams"],
                         f"{gen.fmax_mhz or 0:.1f}", f"{bare.fmax_mhz or 0:.1f}"))
        lut_target, fmax_target = TARGETS.get(shape, (None, 90.0))
        if lut_target is not None:
            verdicts.append(f"{shape}: LUT4 ratio {ratio:.2f} (target ≤ {lut_target}: "
                            f"{'met' if ratio <= lut_target else 'missed'}); Fmax "
                            f"{gen.fmax_mhz or 0:.1f} MHz (target ≥ {fmax_target:.0f}: "
                            f"{'met' if (gen.fmax_mhz or 0) >= fmax_target else 'missed'})")
    print()
    print(format_table(("array", "LUT4-eq gen", "bare", "ratio", "outside", "FF gen", "bare",
                        "DSP gen", "bare", "BRAM gen", "Fmax gen", "bare"), rows_out))
    print()
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
