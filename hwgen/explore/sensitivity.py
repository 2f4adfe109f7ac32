"""``hwgen sensitivity``: how much each layer suffers when it alone is quantized.

For every Conv2d/Linear layer and every width ``W``, that layer's weights, its activations
(its input, see :mod:`hwgen.explore.layers`) or both are rounded to ``Q(W, F)`` (signed,
``nearest_even``, ``saturate``; ``F`` the SQNR-best fractional length of
:func:`hwgen.quant.fixed.calibrate_frac`, the one hwgen's schemes choose, on the weights or
on the calibration batch's activations), while every other layer stays float. Each
configuration reports the accuracy on the test set and the L2 distance of the network's
output to the float output, relative to the float output's norm.

The layers whose accuracy falls first as ``W`` shrinks are the ones to give more bits.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ArgumentError
from ..report import format_table
from .layers import (
    DEFAULT_CALIB,
    DEFAULT_WIDTHS,
    best_frac,
    check_calib,
    dense_indices,
    layer_inputs,
    parse_widths,
    quantized,
    relative_l2,
    run_from,
    with_weight,
)

__all__ = ["WHAT", "Sensitivity", "SensitivityRow", "is_sensitivity_dir", "sensitivity",
           "write_sensitivity"]

#: What may be quantized.
WHAT = ("weights", "activations", "both")


@dataclass(frozen=True)
class SensitivityRow:
    """One layer at one width: the formats used (None for a tensor left float), the test
    accuracy (None without a test set) and the relative L2 distance of the output."""

    layer: str
    width: int
    weight_frac: int | None
    activation_frac: int | None
    accuracy: float | None
    l2: float

    def to_json(self):
        return {"layer": self.layer, "width": self.width, "weight_frac": self.weight_frac,
                "activation_frac": self.activation_frac, "accuracy": self.accuracy,
                "l2": self.l2}


@dataclass(frozen=True)
class Sensitivity:
    """What ``hwgen sensitivity`` prints and writes (``sensitivity.json``)."""

    model: str
    what: str
    widths: tuple
    layers: tuple
    calib_images: int
    test_images: int
    dataset: str | None
    float_accuracy: float | None
    rows: tuple

    def to_json(self):
        return {"model": self.model, "what": self.what, "widths": list(self.widths),
                "layers": list(self.layers), "calib_images": self.calib_images,
                "test_images": self.test_images, "dataset": self.dataset,
                "float_accuracy": self.float_accuracy,
                "rows": [r.to_json() for r in self.rows]}

    def grid(self, metric):
        """``metric`` (``"accuracy"`` or ``"l2"``) as an array ``(layers, widths)``."""
        index = {(r.layer, r.width): r for r in self.rows}
        return np.array([[_nan(getattr(index[(name, w)], metric)) for w in self.widths]
                         for name in self.layers], dtype=np.float64)

    def format_table(self):
        """Per layer and width: accuracy (%) and relative L2, one table each."""
        if self.dataset is None:
            head = (f"model {self.model}, {self.what} quantized one layer at a time; no test "
                    f"set: L2 on {self.test_images} calibration inputs")
        else:
            head = (f"model {self.model}, {self.what} quantized one layer at a time; "
                    f"{self.dataset} test set ({self.test_images} images), float accuracy "
                    f"{100 * self.float_accuracy:.2f}%")
        lines = [head]
        tables = [("l2", "relative L2 distance of the output to float", "{:.3g}")]
        if self.dataset is not None:
            tables.insert(0, ("accuracy", "accuracy %", "{:.1f}"))
        for metric, title, fmt in tables:
            grid = self.grid(metric) * (100 if metric == "accuracy" else 1)
            rows = [[name] + [fmt.format(v) for v in grid[i]]
                    for i, name in enumerate(self.layers)]
            lines += ["", title,
                      format_table(["layer"] + [f"W={w}" for w in self.widths], rows,
                                   align=["<"] + [">"] * len(self.widths))]
        return "\n".join(lines)


def _nan(v):
    return math.nan if v is None else v


def _progress_bar(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, desc="layer x width", unit="run", file=sys.stderr,
                disable=not enabled)


def sensitivity(fmodel, widths=DEFAULT_WIDTHS, what="both", calib=DEFAULT_CALIB,
                progress=False):
    """Quantize each Conv2d/Linear layer of ``fmodel`` (a :class:`hwgen.flow.FloatModel`)
    alone at each width; returns a :class:`Sensitivity`.

    Parameters
    ----------
    widths : str or sequence of int
        See :func:`hwgen.explore.layers.parse_widths`.
    what : str
        ``weights``, ``activations`` or ``both``.
    calib : int
        Calibration inputs the activation formats are chosen on.
    progress : bool
        A progress bar on stderr.
    """
    if what not in WHAT:
        raise ArgumentError(f"What to quantize must be one of {', '.join(WHAT)}, not "
                            f"{what!r}")
    widths = parse_widths(widths)
    calib = check_calib(calib, len(fmodel.x_calib))
    stages = fmodel.stages
    ds = fmodel.dataset
    if ds is not None:
        x_eval, y_eval = ds.x_test, np.asarray(ds.y_test)
    else:
        x_eval, y_eval = fmodel.x_calib, None
    calib_in = layer_inputs(stages, fmodel.x_calib[:calib])
    eval_in = layer_inputs(stages, x_eval)
    ref = run_from(stages, 0, eval_in[0]).numpy()

    def accuracy(out):
        if y_eval is None:
            return None
        return float(np.mean(out.reshape(len(out), -1).argmax(1) == y_eval))

    dense = dense_indices(stages)
    rows = []
    bar = _progress_bar(len(dense) * len(widths), progress)
    try:
        for i in dense:
            s = stages[i]
            for w in widths:
                wf = af = None
                stage = s
                if what in ("weights", "both"):
                    wf, _ = best_frac(s.weight, w)
                    stage = with_weight(s, quantized(s.weight, w, wf))
                qin = None
                if what in ("activations", "both"):
                    af, _ = best_frac(calib_in[i].numpy(), w)
                    qin = (lambda h, w=w, af=af: quantized(h, w, af))
                out = run_from(stages, i, eval_in[i], replace=stage,
                               quantize_input=qin).numpy()
                rows.append(SensitivityRow(s.name, w, wf, af, accuracy(out),
                                           relative_l2(out, ref)))
                bar.update()
    finally:
        bar.close()
    return Sensitivity(fmodel.name, what, widths, tuple(stages[i].name for i in dense), calib,
                       len(x_eval), None if ds is None else ds.name, accuracy(ref),
                       tuple(rows))


def _heatmap_png(result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("l2", "log10 relative L2 of the output", "viridis")]
    if result.dataset is not None:
        panels.insert(0, ("accuracy", "accuracy %", "RdYlGn"))
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(0.5 * len(result.widths) * len(panels) + 2.5,
                                      0.45 * len(result.layers) + 1.8))
    for ax, (metric, title, cmap) in zip(axes[0], panels):
        grid = result.grid(metric)
        if metric == "accuracy":
            grid = 100 * grid
        else:
            grid = np.log10(np.maximum(grid, 1e-12))
        im = ax.imshow(grid, cmap=cmap, aspect="auto")
        ax.set_xticks(range(len(result.widths)), [str(w) for w in result.widths])
        ax.set_yticks(range(len(result.layers)), list(result.layers))
        ax.set_xlabel("width W (bits)")
        ax.set_title(f"{title} ({result.what})", fontsize=9)
        for (r, c), v in np.ndenumerate(grid):
            ax.text(c, r, f"{v:.1f}",
                    ha="center", va="center", fontsize=6)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    from ..report import figure_png
    return figure_png(fig)


def is_sensitivity_dir(path):
    """Whether ``path`` holds an earlier ``hwgen sensitivity`` output."""
    return (Path(path) / "sensitivity.json").is_file()


def write_sensitivity(result, out_dir):
    """Write ``sensitivity.json`` and the heat map ``sensitivity.png`` into ``out_dir``
    (rendered before the first file is written; each file atomically). Returns the
    paths."""
    from ..files import write_files
    files = {"sensitivity.json": json.dumps(result.to_json(), indent=1).encode(),
             "sensitivity.png": _heatmap_png(result)}
    return write_files(out_dir, files)
