"""LUT4 cost of one PE of each kind on iCE40, at 8-bit activations.

Each PE is synthesized alone (with its accumulator, pass-through registers and result
register) by Yosys ``synth_ice40`` (no DSP blocks: multipliers become LUTs), with the
compiler's default product pipeline (``AcceleratorConfig.pe_stages``, one register). The
accumulators are sized by bit growth for a dot product of K = 576 (a 3×3×64 convolution).
(Without the product register Yosys merges a MAC PE's multiplier and accumulator adder
into one ``$macc``, which maps onto 304 LUT4 where the two apart take 205; with DSP blocks
the same merge puts the adder into the SB_MAC16.)
Prints one table and the ratios against the targets:

- shift PE ≤ 0.40 × the LUT-multiplier MAC PE: the shift PE of the ``pow2-4`` scheme (4-bit
  weights: zero flag, sign, 2-bit exponent code) against the MAC PE of ``fixed8`` (8-bit
  weights); the 5-bit one (shifts up to 7) is printed too;
- XNOR PE ≤ 2.5 LUT4 per binary multiply-accumulate at P = 64.

The 2-bit shift PE (zero flag and sign, no shifter) is what binary (``bwn``) and ternary
weights run on.

Run: ``python benchmarks/pe_cost.py``
"""

import warnings

from hwgen.compiler import AcceleratorConfig
from hwgen.estimate import component_cells
from hwgen.numerics import accumulator_width
from hwgen.rtl.pe_mac import PEMac
from hwgen.rtl.pe_shift import PEShift
from hwgen.rtl.pe_xnor import PEXnor

K = 576
A = 8
STAGES = AcceleratorConfig.pe_stages


def luts(pe):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return component_cells(pe, "synth_ice40").get("SB_LUT4", 0)


def main():
    rows = []
    mac = {}
    for w in (8, 4):
        n = luts(PEMac(A, w, accumulator_width(A, w, K), product_stages=STAGES))
        mac[w] = n
        rows.append((f"fixed MAC, {w}-bit weights", n, 1, None))
    for code_bits in (3, 2, 0):
        span = (1 << code_bits) - 1
        n = luts(PEShift(A, 2 + code_bits, accumulator_width(A, span + 2, K),
                       product_stages=STAGES))
        what = (f"shift, {2 + code_bits}-bit pow2 (shifts 0..{span})" if code_bits
                else "shift, 2-bit (binary, ternary weights)")
        rows.append((what, n, 1, n / mac[8]))
    for p in (8, 16, 32, 64):
        n = luts(PEXnor(p, accumulator_width(1, 2, K), product_stages=STAGES))
        rows.append((f"xnor, P = {p}", n, p, None))
    print(f"{'PE (8-bit activations, K = 576)':42} {'LUT4':>6} {'MACs/cyc':>9} "
          f"{'LUT4/MAC':>9} {'vs MAC8':>8}")
    for what, n, macs, ratio in rows:
        r = f"{ratio:8.2f}" if ratio is not None else f"{'':8}"
        print(f"{what:42} {n:6d} {macs:9d} {n / macs:9.2f} {r}")
    shift4, shift5 = rows[3][1] / mac[8], rows[2][1] / mac[8]
    xnor = rows[-1][1] / 64
    print(f"\nshift (pow2-4's 4-bit weights) / MAC8 = {shift4:.2f} (target <= 0.40: "
          f"{'met' if shift4 <= 0.40 else 'missed'}); with 5-bit weights {shift5:.2f}")
    print(f"xnor P=64: {xnor:.2f} LUT4 per binary MAC (target <= 2.5: "
          f"{'met' if xnor <= 2.5 else 'missed'})")


if __name__ == "__main__":
    main()
