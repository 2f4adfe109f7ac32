"""The generated accelerator against bare arrays: LUTs, FFs and Fmax.

For each array shape, the digits CNN in ``fixed8`` is compiled with the default
configuration and placed on the target. Beside it, the same tools in the same run place
two arrays without control or memories:

- the **reference** array, :func:`reference_verilog`: the hand-written array issue 9 measured
  its targets against ("bare array of the same MAC PEs, no control (hand-written, same
  tools)": 768 LUT4-eq and 656 FF at 4×4, 3,072 LUT4-eq at 8×8 on ECP5-85F). A textbook
  output-stationary PE, operands passed east and south, an accumulator that takes the
  product on the first step of a tile, built at the design's widths (8-bit operands and,
  for the digits CNN, a 19-bit accumulator); with the issue's 24-bit accumulator it gives
  783 LUT4-eq and 656 FF (41 per PE, as in the issue) at 4×4 and 3,114 LUT4-eq at 8×8;
- the **same-PE** array: hwgen's :class:`SystolicArray` of the design's own PEs (same widths
  and product register).

All sit in hwgen's pin harness (its cost is subtracted). Prints one table and the ratios
against the targets of issue 9 (ECP5-85F: generated ÷ bare LUT4-eq ≤ 2.0 at 4×4 and ≤ 1.4
at 8×8, Fmax ≥ 90 MHz), measured as the issue measured them, against the reference array.

``outside`` is generated − same-PE array: the LUT4-eq of everything that is not the PE
array (sequencer, drain, post-processing, memories' glue, top). The same-PE ratio divides it
by the array's own cost, so a cheaper PE raises that ratio with the same control logic:
hwgen's fixed8 PE costs 22 LUT4-eq on ECP5 since its accumulator returns to 0 through its
flip-flops' reset, the reference PE about 40 at 19 bits (its multiplexer choosing the
product or the sum is one LUT per accumulator bit).

LUT4-eq is what the issue measures: LUT4s plus two per carry cell (an ECP5 CCU2C holds two
LUT4s), which is how :func:`hwgen.estimate.map_cells` already counts ``luts``; on iCE40
the carry cells sit beside the LUTs, so it is the LUT4 count.

Run: ``python benchmarks/lean.py [--target ecp5-85k] [--arrays 4x4 8x8]``
(place-and-route of the 8×8 designs takes several minutes each on a 2-core machine).
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


def ffs(est):
    """Flip-flops, the pin harness's share taken off."""
    return est.resources["ffs"] - est.harness["ffs"]


def bare_verilog(engine, rows, cols, act_width, stages):
    pe_cls = pe_class(engine.kind)
    array = SystolicArray(rows, cols, lambda: pe_cls.create(
        a_width=act_width, w_width=engine.weight_width, acc_width=engine.acc_width,
        product_stages=stages))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return verilog.convert(array, name="bare", emit_src=False)


def reference_verilog(rows, cols, a_width=8, w_width=8, acc_width=24):
    """The hand-written reference array (module ``reference``): ``rows × cols`` textbook
    output-stationary MAC PEs. Activations and a ``first`` flag enter on the west and pass
    east, weights enter on the north and pass south, one register per PE each; PE (r, c)
    accumulates ``acc <= first ? a·w : acc + a·w``. Every PE's accumulator and the east
    and south edges are outputs, so no register is optimized away."""
    a, w, acc = a_width, w_width, acc_width
    return f"""
module reference_pe (input clk, input signed [{a - 1}:0] a_in,
                     input signed [{w - 1}:0] w_in, input first_in,
                     output reg signed [{a - 1}:0] a_out, output reg signed [{w - 1}:0] w_out,
                     output reg first_out, output reg signed [{acc - 1}:0] acc);
  always @(posedge clk) begin
    a_out <= a_in;
    w_out <= w_in;
    first_out <= first_in;
    acc <= first_in ? a_in * w_in : acc + a_in * w_in;
  end
endmodule

module reference (clk, rst, a, first, w, result, a_east, first_east, w_south);
  input clk;
  input rst;
  input [{rows * a - 1}:0] a;
  input [{rows - 1}:0] first;
  input [{cols * w - 1}:0] w;
  output [{rows * cols * acc - 1}:0] result;
  output [{rows * a - 1}:0] a_east;
  output [{rows - 1}:0] first_east;
  output [{cols * w - 1}:0] w_south;
  wire [{a - 1}:0] ah [0:{rows - 1}][0:{cols}];
  wire fh [0:{rows - 1}][0:{cols}];
  wire [{w - 1}:0] wv [0:{rows}][0:{cols - 1}];
  genvar r, c;
  generate
    for (r = 0; r < {rows}; r = r + 1) begin : row
      assign ah[r][0] = a[r * {a} +: {a}];
      assign fh[r][0] = first[r];
      assign a_east[r * {a} +: {a}] = ah[r][{cols}];
      assign first_east[r] = fh[r][{cols}];
      for (c = 0; c < {cols}; c = c + 1) begin : col
        if (r == 0) assign wv[0][c] = w[c * {w} +: {w}];
        if (r == {rows - 1}) assign w_south[c * {w} +: {w}] = wv[{rows}][c];
        reference_pe pe (.clk(clk), .a_in(ah[r][c]), .w_in(wv[r][c]), .first_in(fh[r][c]),
                         .a_out(ah[r][c + 1]), .w_out(wv[r + 1][c]),
                         .first_out(fh[r][c + 1]),
                         .acc(result[(r * {cols} + c) * {acc} +: {acc}]));
      end
    end
  endgenerate
endmodule
"""


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
        print(f"{shape}: placing the generated design, the reference array and the same-PE "
              f"array on {dev.name} ...", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = design_verilog(design)
        gen = estimate_verilog(text, TOPLEVEL, dev, design=f"generated {shape}")
        bare = estimate_verilog(
            bare_verilog(engine, cfg.rows, cfg.cols, design.act_width, cfg.pe_stages),
            "bare", dev, design=f"bare {shape}")
        ref = estimate_verilog(
            reference_verilog(cfg.rows, cfg.cols, design.act_width, engine.weight_width,
                              engine.acc_width),
            "reference", dev, design=f"reference {shape}")
        g, b, r = lut4_eq(gen), lut4_eq(bare), lut4_eq(ref)
        ratio, same_ratio = g / r, g / b
        rows_out.append((shape, g, r, f"{ratio:.2f}", b, f"{same_ratio:.2f}", g - b,
                         ffs(gen), ffs(ref), ffs(bare), gen.resources["dsps"],
                         ref.resources["dsps"], gen.resources["brams"],
                         f"{gen.fmax_mhz or 0:.1f}", f"{ref.fmax_mhz or 0:.1f}",
                         f"{bare.fmax_mhz or 0:.1f}"))
        lut_target, fmax_target = TARGETS.get(shape, (None, 90.0))
        if lut_target is not None:
            verdicts.append(f"{shape}: LUT4-eq ratio to the reference array {ratio:.2f} "
                            f"(target ≤ {lut_target}: "
                            f"{'met' if ratio <= lut_target else 'missed'}; to the same-PE "
                            f"array {same_ratio:.2f}); Fmax "
                            f"{gen.fmax_mhz or 0:.1f} MHz (target ≥ {fmax_target:.0f}: "
                            f"{'met' if (gen.fmax_mhz or 0) >= fmax_target else 'missed'})")
    print()
    print(format_table(("array", "LUT4-eq gen", "reference", "ratio", "same-PE", "ratio",
                        "outside", "FF gen", "reference", "same-PE", "DSP gen", "reference",
                        "BRAM gen", "Fmax gen", "reference", "same-PE"), rows_out))
    print()
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
