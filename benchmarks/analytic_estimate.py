"""Calibrate and check :mod:`hwgen.estimate.analytic` against real iCE40 syntheses.

1. Single PEs of each kind over a grid of widths, synthesized alone with the target's
   Yosys script (``synth_ice40 -dsp``): fits the ``pe_<kind>`` rows of the table.
2. The calibration designs (:data:`DESIGNS`), compiled and synthesized with
   ``hwgen estimate DIR --target ice40-up5k --synth-only --blocks`` (through hwgen's own
   cached functions): fits the ``engine`` row (what an engine costs beyond its PEs), the
   control blocks' rows (``drain``, ``post``, ``seq``, ``act``, ``top``) on their
   per-block counts, and ``FLAT`` on the flat synthesis.

Prints the fitted table (paste it over ``COEFFICIENTS`` and ``FLAT`` in
``hwgen/estimate/analytic.py`` after an RTL change), then every design's core LUTs,
flip-flops, DSPs and block RAMs, synthesized against estimated (with the table in the
package, so a second run after pasting shows the new figures), and the LUT and flip-flop
errors' mean, 90th percentile and largest.

Synthesis results are cached (``~/.cache/hwgen/estimate``): the first run synthesizes
every design (about a minute each), later runs take seconds.

Run: ``python benchmarks/analytic_estimate.py [--fit-only]``
"""

import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from hwgen.compiler import AcceleratorConfig
from hwgen.estimate import analytic, block_breakdown, component_cells, estimate, map_cells
from hwgen.estimate.devices import device
from hwgen.flow import compile_model

TARGET = "ice40-up5k"

#: (folder name, model, scheme: a built-in name or a JSON spec, array)
DESIGNS = [
    ("fixed8", "builtin:digits-cnn", "fixed8", "4x4"),
    ("fixed4", "builtin:digits-cnn", "fixed4", "4x4"),
    ("pow2-4", "builtin:digits-cnn", "pow2-4", "4x4"),
    ("bwn", "builtin:digits-cnn", "bwn", "4x4"),
    ("ternary", "builtin:digits-cnn", "ternary", "4x4"),
    ("binary", "builtin:digits-cnn", "binary", "4x4"),
    ("fixed8_2x2", "builtin:digits-cnn", "fixed8", "2x2"),
    ("pow2-4_2x2", "builtin:digits-cnn", "pow2-4", "2x2"),
    ("fixed8_8x8", "builtin:digits-cnn", "fixed8", "8x8"),
    ("pow2-4_8x8", "builtin:digits-cnn", "pow2-4", "8x8"),
    ("mixed", "builtin:digits-cnn",
     {"name": "mixed", "default": {"width": 8}, "layers": {"conv2": {"kind": "pow2",
                                                                    "bits": 4}}}, "4x4"),
    ("fixed6", "builtin:digits-cnn",
     {"name": "fixed6x", "input": {"width": 6}, "default": {"width": 6}}, "4x4"),
    ("w8a4", "builtin:digits-cnn",
     {"name": "w8a4", "input": {"width": 4},
      "default": {"weight_width": 8, "out_width": 4}}, "4x4"),
    ("w3a8_3x5", "builtin:digits-cnn",
     {"name": "w3a8", "default": {"weight_width": 3, "out_width": 8},
      "layers": {"conv1": {"kind": "ternary"}}}, "3x5"),
    ("mlp_fixed8", "builtin:mlp", "fixed8", "4x4"),
    ("mlp_pow2-4_2x2", "builtin:mlp", "pow2-4", "2x2"),
    ("chain5_4x4", "ir:chain5", None, "4x4"),
]


def chain5():
    """A five-layer integer network built as IR (four convolutions, one of them pooling,
    and a linear layer; random weights): a layer program longer than the built-in
    models'."""
    from hwgen import ir
    from hwgen.numerics import QFormat
    rng = np.random.default_rng(5)
    fmt = QFormat(8, 4)
    shape, layers = (1, 10, 10), []
    for n, (cout, k, pad, pool) in enumerate([(8, 3, 1, 1), (8, 3, 1, 2), (12, 3, 1, 1),
                                              (6, 1, 0, 1)]):
        w = rng.integers(-128, 128, size=(cout, shape[0], k, k))
        layer = ir.Conv2d(f"conv{n}", shape, w, rng.integers(-999, 999, size=cout), fmt,
                          [fmt] * cout, fmt, relu=True, padding=pad, pool=pool)
        layers.append(layer)
        shape = layer.out_shape
    flat = ir.Flatten("flatten", shape, fmt)
    w = rng.integers(-128, 128, size=(10, flat.out_shape[0]))
    layers += [flat, ir.Linear("fc", flat.out_shape, w, rng.integers(-99, 99, size=10), fmt,
                               [fmt] * 10, fmt)]
    return ir.Graph("chain5", (1, 10, 10), fmt, layers)

#: Single PEs: (kind, a, w or P, acc).
PE_GRID = ([("fixed", a, w, acc) for a, w, acc in [
    (8, 8, 24), (8, 4, 20), (8, 3, 18), (8, 2, 17), (4, 4, 16), (6, 6, 20), (4, 8, 18),
    (8, 8, 16), (5, 5, 14), (3, 3, 12), (16, 8, 32), (6, 4, 18), (4, 2, 12)]]
    + [("shift", a, w, acc) for a, w, acc in [
        (8, 4, 21), (8, 2, 18), (8, 5, 24), (4, 4, 16), (8, 3, 19), (6, 4, 20), (16, 4, 28),
        (4, 2, 12), (6, 5, 22)]]
    + [("xnor", 8, p, acc) for p, acc in [(8, 9), (16, 10), (32, 12), (64, 14), (8, 16)]])
#: Fixed-point PEs whose multipliers would go to DSPs, synthesized without them (as on the
#: HX8K, which has none): the LUT multiplier's cost at larger widths.
PE_GRID_LUT_MUL = [("fixed", a, w, acc) for a, w, acc in [(8, 8, 24), (8, 4, 20), (6, 6, 20)]]


def pe_features(kind, a, w, acc, dev, dsp=True):
    if kind == "xnor":
        return {"const": 1, "acc": acc, "p": w}
    pe = {"const": 1, "acc": acc, "a": a, "w": w}
    if kind == "fixed":
        pe["lut_mul"] = 0 if dsp and analytic.dsp_blocks(a, w, dev) else a * w
    else:
        pe["shifter"] = a * (w - 2)
    return pe


def pe_cells(kind, a, w, acc, script):
    from hwgen.rtl.pe_mac import PEMac
    from hwgen.rtl.pe_shift import PEShift
    from hwgen.rtl.pe_xnor import PEXnor
    # with the designs' product pipeline: without its register, Yosys merges a MAC PE's
    # multiplier and accumulator adder (into the DSP block, or a worse LUT mapping)
    stages = AcceleratorConfig.pe_stages
    pe = {"fixed": lambda: PEMac(a, w, acc, product_stages=stages),
          "shift": lambda: PEShift(a, w, acc, product_stages=stages),
          "xnor": lambda: PEXnor(w, acc, product_stages=stages)}[kind]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return map_cells("ice40", component_cells(pe, script))


def fit(rows, names):
    """Non-negative least squares of ``rows`` (``(features, value)``) on ``names``."""
    x = np.array([[f.get(n, 0) for n in names] for f, _ in rows], dtype=float)
    y = np.array([v for _, v in rows], dtype=float)
    coef, _ = nnls(x, y)
    return {n: round(float(c), 3) for n, c in zip(names, coef)}


def build(folder, model, scheme, array):
    out = folder / "design"
    if model == "ir:chain5":
        from hwgen import golden
        from hwgen.compiler import AcceleratorConfig, compile_graph
        from hwgen.emit import write_design
        graph = chain5()
        design = compile_graph(graph, AcceleratorConfig.parse_array(array))
        x = np.zeros((1,) + graph.input_shape, dtype=np.int64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_design(design, out, vectors=(x.reshape(1, -1),
                                               golden.run(graph, x).reshape(1, -1),
                                               np.zeros(1)))
        return design, out
    if isinstance(scheme, dict):
        path = folder / "scheme.json"
        path.write_text(json.dumps(scheme))
        scheme = str(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        design, _ = compile_model(model, scheme, array, out, vectors=1)
    return design, out


def main():
    fit_only = "--fit-only" in sys.argv
    dev = device(TARGET)
    coefficients = {}
    print(f"single PEs ({dev.synth})", file=sys.stderr)
    pe_rows = {"fixed": [], "shift": [], "xnor": []}
    for kind, a, w, acc in PE_GRID:
        cells = pe_cells(kind, a, w, acc, dev.synth)
        pe_rows[kind].append((pe_features(kind, a, w, acc, dev), cells))
    no_dsp = " ".join(part for part in dev.synth.split() if part != "-dsp")
    for kind, a, w, acc in PE_GRID_LUT_MUL:
        cells = pe_cells(kind, a, w, acc, no_dsp)
        pe_rows[kind].append((pe_features(kind, a, w, acc, dev, dsp=False), cells))
    for kind, rows in pe_rows.items():
        names = sorted({n for f, _ in rows for n in f})
        coefficients[f"pe_{kind}"] = {r: fit([(f, c[r]) for f, c in rows], names)
                                      for r in ("luts", "ffs")}

    measured = []
    with tempfile.TemporaryDirectory(prefix="hwgen-analytic-") as tmp:
        for name, model, scheme, array in DESIGNS:
            print(f"design {name}", file=sys.stderr)
            folder = Path(tmp, name)
            folder.mkdir()
            design, out = build(folder, model, scheme, array)
            flat = estimate(out, TARGET, place_and_route=False)
            blocks = block_breakdown(out, TARGET)
            measured.append((name, design, flat, blocks))

    # engines beyond their PEs, the control blocks, then the flat factor
    engine_rows = {"luts": [], "ffs": []}
    control_rows = {b: {"luts": [], "ffs": []} for b in analytic.CONTROL_BLOCKS}
    for name, design, flat, blocks in measured:
        features, _ = analytic.block_features(design, dev)
        for block, feats in features.items():
            if block.startswith("engine_"):
                pe = features[f"pe_{block[len('engine_'):]}"]
                for r in ("luts", "ffs"):
                    pes = pe["count"] * analytic._linear(
                        coefficients[f"pe_{block[len('engine_'):]}"][r], pe)
                    engine_rows[r].append((feats, blocks[block][r] - pes))
            elif block in control_rows:
                key = "(top)" if block == "top" else block
                for r in ("luts", "ffs"):
                    control_rows[block][r].append((feats, blocks[key][r]))
    coefficients["engine"] = {r: fit(engine_rows[r], ["const", "feed"]) for r in engine_rows}
    for block, rows in control_rows.items():
        names = sorted({n for f, _ in rows["luts"] for n in f})
        coefficients[block] = {r: fit(rows[r], names) for r in ("luts", "ffs")}
    flat_factor = {}
    for r in ("luts", "ffs"):
        control, rest = [], []
        for name, design, est, blocks in measured:
            features, _ = analytic.block_features(design, dev)
            ctl = sum(analytic._linear(coefficients[b][r], features[b])
                      for b in analytic.CONTROL_BLOCKS)
            eng = 0
            for block, feats in features.items():
                if block.startswith("engine_"):
                    kind = block[len("engine_"):]
                    pe = features[f"pe_{kind}"]
                    eng += pe["count"] * analytic._linear(coefficients[f"pe_{kind}"][r], pe) \
                        + analytic._linear(coefficients["engine"][r], feats)
            core = est.resources[r] - est.harness[r]
            control.append(ctl)
            rest.append(core - eng)
        flat_factor[r] = round(float(np.dot(control, rest) / np.dot(control, control)), 3)

    print("COEFFICIENTS = {")
    for block, res in coefficients.items():
        print(f"    {block!r}: {{" + ",\n        ".join(
            f"{r!r}: {json.dumps(c)}" for r, c in res.items()) + "},")
    print("}")
    print(f"FLAT = {json.dumps(flat_factor)}")
    if fit_only:
        return

    print(f"\ncore on {TARGET} (synthesized flat, harness taken off) vs "
          f"hwgen.estimate.analytic as installed")
    head = (f"{'design':16} {'LUT':>6} {'est':>6} {'err%':>6} {'FF':>6} {'est':>6} "
            f"{'DSP':>4} {'est':>4} {'BRAM':>4} {'est':>4}")
    print(head)
    errors = {"luts": [], "ffs": []}
    for name, design, est, _ in measured:
        a = analytic.analytic_estimate(design, TARGET)
        core = {r: est.resources[r] - est.harness.get(r, 0) for r in ("luts", "ffs")}
        err = 100 * (a.luts - core["luts"]) / core["luts"]
        errors["luts"].append(abs(err))
        errors["ffs"].append(abs(100 * (a.ffs - core["ffs"]) / core["ffs"]))
        print(f"{name:16} {core['luts']:6d} {a.luts:6d} {err:6.1f} {core['ffs']:6d} "
              f"{a.ffs:6d} {est.resources['dsps']:4d} {a.dsps:4d} {est.resources['brams']:4d} "
              f"{a.brams:4d}")
    for resource, values in errors.items():
        print(f"{resource}: mean absolute error {np.mean(values):.1f} %, 90th percentile "
              f"{np.percentile(values, 90):.1f} %, largest {max(values):.1f} %")
    print("(targets, issue 9: LUTs mean ≤ 10 %, 90th percentile ≤ 15 %)")


if __name__ == "__main__":
    main()
