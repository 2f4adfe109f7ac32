"""``hwgen analyze``: per layer, what its weights and activations look like and which
fractional length each candidate width wants.

For every Conv2d/Linear layer, its weights and its activations (what it multiplies: its
input, see :mod:`hwgen.explore.layers`) separately, on a calibration batch:

- min, max, mean, standard deviation, ``IL = ceil(log2 max|x|)`` and a histogram;
- per width ``W``: the fractional length ``F`` with the best SQNR of the tensor itself
  (:func:`hwgen.quant.fixed.calibrate_frac`, the choice hwgen's schemes make), and the
  ``F`` that minimises the L2 distance of the *layer's output* (ReLU and pooling included)
  to the float output when only that tensor is quantized to ``Q(W, F)``, searched over
  ``F0 - 2 … F0 + W + 2`` with ``F0 = W - 1 - IL`` (the smallest ``F`` on ties): up to
  saturating every value but the smallest, since saturating a few large values can pay.

The two choices differ where a few large values matter less to the output than the many
small ones (or more).

With an accumulator width ``N`` (``hwgen analyze --acc-width N``),
:func:`accumulator_report` compares, on the test split, the quantized model's accuracy with
output-only quantization (extrinsic: exact accumulators, never overflowing) against the same
model with every Conv2d/Linear layer accumulating in ``N`` bits (intrinsic), saturating and
wrapping after every addition (:func:`hwgen.golden.network.narrow_dot`); the golden model
computes both, so these are the hardware's accuracies.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..report import format_table
from .layers import (
    DEFAULT_CALIB,
    DEFAULT_WIDTHS,
    best_frac,
    check_calib,
    dense_indices,
    integer_length,
    layer_inputs,
    parse_widths,
    quantized,
    relative_l2,
    run_from,
    with_weight,
)

__all__ = ["HIST_BINS", "AccumulatorReport", "Analysis", "FracChoice", "LayerAnalysis",
           "TensorStats", "accumulator_report", "analyze", "tensor_stats", "write_analysis"]

#: Bins of each histogram.
HIST_BINS = 64


def _num(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


@dataclass(frozen=True)
class TensorStats:
    """Statistics of one tensor; ``hist`` is ``(counts, edges)`` (``HIST_BINS`` bins)."""

    count: int
    min: float
    max: float
    mean: float
    std: float
    il: int | None
    hist: tuple

    def to_json(self):
        return {"count": self.count, "min": self.min, "max": self.max, "mean": self.mean,
                "std": self.std, "il": self.il,
                "hist": {"counts": list(self.hist[0]), "edges": list(self.hist[1])}}


def tensor_stats(x):
    """The :class:`TensorStats` of ``x`` (any array)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    counts, edges = np.histogram(x, bins=HIST_BINS)
    return TensorStats(count=int(x.size), min=float(x.min()), max=float(x.max()),
                       mean=float(x.mean()), std=float(x.std()), il=integer_length(x),
                       hist=(tuple(int(c) for c in counts), tuple(float(e) for e in edges)))


@dataclass(frozen=True)
class FracChoice:
    """For one width: the SQNR-best ``F`` (and that SQNR in dB, None for inf) and the
    output-L2-best ``F`` (and that relative L2 distance of the layer's output)."""

    width: int
    frac_sqnr: int
    sqnr_db: float | None
    frac_l2: int
    l2: float

    def to_json(self):
        return {"width": self.width, "frac_sqnr": self.frac_sqnr,
                "sqnr_db": _num(self.sqnr_db), "frac_l2": self.frac_l2, "l2": self.l2}


@dataclass(frozen=True)
class LayerAnalysis:
    """One layer: statistics and per-width choices for its weights and activations."""

    name: str
    kind: str
    weights: TensorStats
    activations: TensorStats
    weight_fracs: tuple
    activation_fracs: tuple

    def to_json(self):
        return {"name": self.name, "kind": self.kind, "weights": self.weights.to_json(),
                "activations": self.activations.to_json(),
                "weight_fracs": [c.to_json() for c in self.weight_fracs],
                "activation_fracs": [c.to_json() for c in self.activation_fracs]}


@dataclass(frozen=True)
class Analysis:
    """What ``hwgen analyze`` prints and writes (``analysis.json``)."""

    model: str
    calib_images: int
    widths: tuple
    layers: tuple

    def to_json(self):
        return {"model": self.model, "calib_images": self.calib_images,
                "widths": list(self.widths), "layers": [la.to_json() for la in self.layers]}

    def format_table(self):
        """The statistics table, then the fractional lengths by width."""
        rows = []
        for la in self.layers:
            for what, st in (("weights", la.weights), ("activations", la.activations)):
                rows.append((la.name, what, f"{st.min:.4g}", f"{st.max:.4g}",
                             f"{st.mean:.4g}", f"{st.std:.4g}",
                             "-" if st.il is None else str(st.il)))
        lines = [(f"model {self.model}, {self.calib_images} calibration images; activations "
                  f"are each layer's input"),
                 format_table(["layer", "tensor", "min", "max", "mean", "std", "IL"], rows,
                              align=["<", "<", ">", ">", ">", ">", ">"]),
                 "",
                 "fractional length F by width W: best SQNR / least L2 of the layer's output"]
        head = ["W"]
        for la in self.layers:
            head += [f"{la.name} weights", f"{la.name} act"]
        frows = []
        for i, w in enumerate(self.widths):
            row = [str(w)]
            for la in self.layers:
                for c in (la.weight_fracs[i], la.activation_fracs[i]):
                    row.append(f"{c.frac_sqnr}/{c.frac_l2}")
            frows.append(row)
        lines.append(format_table(head, frows, align=[">"] * len(head)))
        return "\n".join(lines)


def _kind(stage):
    return "Linear" if not hasattr(stage, "padding") else "Conv2d"


def _choices(x, widths, output_of, ref):
    """Per width, the :class:`FracChoice` for the tensor ``x``; ``output_of(xq)`` is the
    layer's output with ``x`` replaced by ``xq``."""
    il = integer_length(x)
    out = []
    for w in widths:
        frac_s, sqnr = best_frac(x, w)
        f0 = w - 1 - (il or 0)
        best = None
        for f in range(f0 - 2, f0 + w + 3):
            dist = relative_l2(output_of(quantized(x, w, f)), ref)
            if best is None or dist < best[1]:
                best = (f, dist)
        out.append(FracChoice(w, frac_s, None if math.isinf(sqnr) else sqnr, *best))
    return tuple(out)


def analyze(fmodel, widths=DEFAULT_WIDTHS, calib=DEFAULT_CALIB, progress=None):
    """Analyze every Conv2d/Linear layer of ``fmodel`` (a :class:`hwgen.flow.FloatModel`)
    on its first ``calib`` calibration inputs; returns an :class:`Analysis`.

    ``progress(message)`` hears which layer is being analyzed.
    """
    widths = parse_widths(widths)
    calib = check_calib(calib, len(fmodel.x_calib))
    stages = fmodel.stages
    inputs = layer_inputs(stages, fmodel.x_calib[:calib])
    layers = []
    for i in dense_indices(stages):
        s = stages[i]
        if progress is not None:
            progress(f"analyzing {s.name}")
        a = inputs[i]
        ref = run_from((s,), 0, a).numpy()
        w_choices = _choices(s.weight, widths,
                             lambda wq, s=s, a=a: run_from((with_weight(s, wq),), 0, a).numpy(),
                             ref)
        a_np = a.numpy()
        a_choices = _choices(a_np, widths,
                             lambda aq, s=s: run_from((s,), 0, aq).numpy(), ref)
        layers.append(LayerAnalysis(s.name, _kind(s), tensor_stats(s.weight),
                                    tensor_stats(a_np), w_choices, a_choices))
    return Analysis(fmodel.name, calib, widths, tuple(layers))


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _hist_png(la):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, (what, st) in zip(axes, (("weights", la.weights), ("activations (input)",
                                                               la.activations))):
        counts, edges = st.hist
        ax.stairs(counts, edges, fill=True)
        ax.set_yscale("symlog")
        ax.set_title(f"{la.name} {what}: IL {st.il}, std {st.std:.3g}", fontsize=9)
        ax.set_xlabel("value")
    axes[0].set_ylabel("count")
    fig.tight_layout()
    from ..report import figure_png
    return figure_png(fig)


def is_analysis_dir(path):
    """Whether ``path`` holds an earlier ``hwgen analyze`` output."""
    return (Path(path) / "analysis.json").is_file()


def write_analysis(analysis, out_dir, accumulator=None):
    """Write ``analysis.json``, one ``hist_<layer>.png`` per layer and, with an
    :class:`AccumulatorReport`, ``accumulator.json`` into ``out_dir`` (everything is
    rendered before the first file is written; each file atomically). Returns the paths."""
    import json

    from ..files import write_files
    files = {"analysis.json": json.dumps(analysis.to_json(), indent=1).encode()}
    if accumulator is not None:
        files["accumulator.json"] = json.dumps(accumulator.to_json(), indent=1).encode()
    for la in analysis.layers:
        files[f"hist_{_safe(la.name)}.png"] = _hist_png(la)
    return write_files(out_dir, files)


# --- intrinsic vs extrinsic quantization --------------------------------------------------

@dataclass(frozen=True)
class AccumulatorReport:
    """Test accuracy of one quantized model with exact accumulators and with ``acc_width``-bit
    ones. ``rows`` are ``(quantization, accuracy, overflows)``: ``"extrinsic"`` (outputs
    only), ``"intrinsic saturate"`` and ``"intrinsic wrap"``; ``overflows`` counts the
    additions the overflow mode changed, summed over the layers and the test images."""

    model: str
    scheme: str
    acc_width: int
    test_images: int
    rows: tuple

    def to_json(self):
        return {"model": self.model, "scheme": self.scheme, "acc_width": self.acc_width,
                "test_images": self.test_images,
                "rows": [{"quantization": q, "accuracy": a, "overflows": n}
                         for q, a, n in self.rows]}

    def format_table(self):
        rows = [(q, f"{100 * a:.2f} %", "-" if n is None else str(n)) for q, a, n in self.rows]
        head = (f"model {self.model}, scheme {self.scheme}: {self.acc_width}-bit accumulators, "
                f"{self.test_images} test images")
        return "\n".join([
            head,
            format_table(["quantization", "accuracy", "overflows"], rows,
                         align=["<", ">", ">"])])


def accumulator_report(qmodel, acc_width, x=None, y=None):
    """:class:`AccumulatorReport` of ``qmodel`` (a :class:`hwgen.quant.QuantizedModel`) with
    ``acc_width``-bit accumulators in every Conv2d/Linear layer that can have one (XNOR
    layers keep theirs), on ``x``, ``y`` (default: its data set's test split)."""
    from dataclasses import replace

    from .. import golden, ir
    from ..errors import check_int
    from ..numerics import BinaryFormat
    acc_width = check_int(acc_width, "Accumulator width", 2, ir.MAX_ACC_WIDTH)
    x, y = qmodel._test_set(x, y)
    xi = qmodel.quantize_input(x)
    y = np.asarray(y)
    graph = qmodel.graph

    def accuracy(g):
        out = golden.run(g, xi)
        return float(np.mean(np.argmax(out.reshape(len(out), -1), axis=1) == y))

    rows = [("extrinsic", accuracy(graph), None)]
    for mode in ("saturate", "wrap"):
        layers = tuple(
            replace(layer, acc_width=acc_width, acc_overflow=mode)
            if isinstance(layer, (ir.Conv2d, ir.Linear))
            and not isinstance(layer.in_fmt, BinaryFormat) else layer
            for layer in graph.layers)
        g = ir.Graph(graph.name, graph.input_shape, graph.input_fmt, layers)
        overflows = sum(golden.accumulator_overflows(g, xi).values())
        rows.append((f"intrinsic {mode}", accuracy(g), overflows))
    scheme = getattr(qmodel.scheme, "name", str(qmodel.scheme))
    return AccumulatorReport(qmodel.name, scheme, acc_width, len(xi), tuple(rows))
