"""Code-book weights (linear and Gaussian k-means) against dynamic fixed point at 4 and 6
bits: accuracy and weight bytes per layer, in one run.

    python benchmarks/codebook.py [--qat EPOCHS] [--lookup]

The digits CNN (the shipped float checkpoint) on the digits test split, post-training: every
Conv2d/Linear layer's weights in

- ``dfp B``: dynamic fixed point, ``B``-bit weights with the per-layer fractional length
  of the best SQNR (:func:`hwgen.quant.calibrate_frac`, what every scheme uses);
- ``cb-lin B`` / ``cb-gauss B``: a code-book of ``2**B`` centroids per layer
  (:mod:`hwgen.quant.codebook`), k-means from a linear or a Gaussian initialisation,
  centroids stored Q(8, F), ``B``-bit indices;
- ``cb-lin B /ch``: the same with one table per output channel;

with 8-bit activations throughout (so only the weights differ), and fixed8 for reference.
Accuracy is the golden model's (the hardware's). Weight bytes are per layer: ``B`` bits
per weight, plus the tables (``2**B`` entries of 8 bits per layer or per channel) for the
code-books, as ``hwgen quantize`` counts them; the weight SQNR (per layer) compares the
hardware's weights with the float ones, which separates the methods where 450 test images
(0.22 points each) barely do. With ``--qat EPOCHS`` the linear code-books
are also fine-tuned (centroids only, assignments fixed) for that many epochs through
:func:`hwgen.train.train_qat`.

With ``--lookup``, the lookup's cost where it is and where it is not: the digits CNN in
codebook-4 and codebook-6 compiled for a 4×4 array, its
:class:`~hwgen.rtl.weight_lookup.WeightLookup` synthesized alone for iCE40 (Yosys
``synth_ice40 -dsp``) with one lookup per column (at the array's edge, as built) and with
one per PE (``rows·cols`` lookups, each PE turning the indices it passes on into its own
weight), in LUTs.
"""

import argparse
import time

import numpy as np

from hwgen import frontend, quant
from hwgen.flow import load_quantized
from hwgen.numerics import sqnr_db
from hwgen.quant import CodebookSpec, FixedSpec, Scheme
from hwgen.report import format_table

MODEL = "builtin:digits-cnn"


def schemes():
    """(label, scheme) of every configuration, in table order."""
    out = [("fixed8", Scheme("fixed8", 8, "auto", FixedSpec(8, 8)))]
    for bits in (6, 4):
        out += [
            (f"dfp {bits}", Scheme(f"dfp{bits}", 8, "auto", FixedSpec(bits, 8))),
            (f"cb-lin {bits}", Scheme(f"cb{bits}", 8, "auto", CodebookSpec(bits=bits))),
            (f"cb-gauss {bits}", Scheme(f"cbg{bits}", 8, "auto",
                                        CodebookSpec(bits=bits, init="gaussian"))),
            (f"cb-lin {bits} /ch", Scheme(f"cbch{bits}", 8, "auto",
                                          CodebookSpec(bits=bits, per_channel=True))),
        ]
    return out


def weight_sqnr(qm):
    """Per Conv2d/Linear layer, the SQNR (dB) of its hardware weights against the float
    model's (BatchNorm folded)."""
    floats = {s.name: s.weight for s in qm.stages
              if isinstance(s, (frontend.ConvStage, frontend.LinearStage))}
    out = []
    for layer in qm.graph.layers:
        if layer.name in floats:
            scale = np.array([2.0 ** -f.frac for f in layer.w_fmts]).reshape(
                (-1,) + (1,) * (layer.weight.ndim - 1))
            out.append(sqnr_db(np.asarray(floats[layer.name]), layer.weight * scale))
    return out


def qat(base, scheme, epochs):
    from hwgen.train import train_qat
    net = train_qat(base.float_module, base.arch, base.dataset, scheme, epochs=epochs)
    return quant.quantize_model(base.float_module, base.arch, net.resolved_scheme(),
                                base.dataset, qat_state=net.state_dict())


def lookup_luts(scheme, rows=4, cols=4):
    """(edge LUTs, per-PE LUTs, table bits per column) of ``scheme``'s lookup on a
    ``rows × cols`` array."""
    from hwgen.compiler import AcceleratorConfig, compile_graph
    from hwgen.estimate import component_cells, map_cells
    from hwgen.rtl.weight_lookup import WeightLookup
    engine = compile_graph(load_quantized(MODEL, scheme).graph,
                           AcceleratorConfig(rows=rows, cols=cols)).engines[0]
    luts = []
    for copies in (1, rows):
        lookup = WeightLookup(cols * copies, index_width=engine.weight_width,
                              value_width=engine.value_width,
                              tables=[row * copies for row in engine.tables],
                              bounds=engine.table_bounds, addr_width=12)
        luts.append(map_cells("ice40", component_cells(lookup, "synth_ice40 -dsp"))["luts"])
    bits = len(engine.tables) * (1 << engine.weight_width) * engine.value_width
    return luts[0], luts[1], bits


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qat", type=int, default=0, metavar="EPOCHS",
                    help="also fine-tune the linear code-books' centroids (0: no)")
    ap.add_argument("--lookup", action="store_true",
                    help="also synthesize the lookup at the array edge and at every PE")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows, names = [], None
    for label, scheme in schemes():
        runs = [(label, load_quantized(MODEL, scheme))]
        if args.qat and label.startswith("cb-lin"):
            runs.append((f"{label} QAT{args.qat}", qat(runs[0][1], scheme, args.qat)))
        for name, qm in runs:
            table = [r for r in qm.layer_table() if r.weight_fmt != "-"]
            names = [r.name for r in table]
            rows.append((name, f"{100 * qm.quantized_accuracy():.2f}",
                         *(str(r.weight_bytes) for r in table),
                         str(sum(r.weight_bytes for r in table)),
                         "/".join(f"{v:.1f}" for v in weight_sqnr(qm)),
                         " ".join(r.weight_fmt for r in table)))
    head = ("weights", "accuracy %", *(f"{n} B" for n in names), "total B",
            "weight SQNR dB", "formats")
    print(f"digits CNN, post-training, 8-bit activations; {len(rows)} configurations")
    print(format_table(head, rows))
    if args.lookup:
        rows = []
        for scheme in ("codebook-4", "codebook-6"):
            edge, per_pe, bits = lookup_luts(scheme)
            rows.append((scheme, str(bits), str(edge), str(per_pe), f"{per_pe / edge:.1f}"))
        print("\nthe lookup on a 4x4 array (iCE40 LUTs, synthesized alone)")
        print(format_table(("scheme", "table bits/column", "edge (4 lookups)",
                            "per PE (16 lookups)", "ratio"), rows))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
