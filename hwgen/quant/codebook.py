"""The code-book quantizer kind: each weight is one of ``2**bits`` shared centroids.

A layer (or, with ``per_channel``, each output channel) gets a table of ``2**bits``
centroids found by k-means (Lloyd's algorithm, deterministic) on its float weights; every
weight is replaced by its cluster's centroid, and the centroids are rounded to the fixed
point format ``Q(weight_width, F)``. The hardware stores a ``bits``-bit index per weight and
looks the weight up in the table (:class:`hwgen.rtl.weight_lookup.WeightLookup`), so the IR
holds the centroids' ``Q(W, F)`` integers and a code-book layer computes exactly as a
fixed-point one (:class:`~hwgen.numerics.CodebookFormat`).

Initialisation (``init``)
    ``"linear"``: ``2**bits`` centroids evenly spaced between the smallest and the largest
    weight. ``"gaussian"``: the centroids at the quantiles ``(j + ½)/2**bits`` of the normal
    distribution fitted to the weights (mean, standard deviation), so that they are dense
    where the weights are. These are the two initialisations the issue attributes to
    LPDNN's QEngine code-book quantization (LPDNN: the Bonseyes project's inference
    engine); its source was not consulted. Han, Mao & Dally ("Deep Compression", ICLR 2016,
    section 3.2) compare random, density-based and linear initialisation and find linear
    the best after fine-tuning, because it keeps the few large weights.
Lloyd's iterations
    Assign each weight to the nearest centroid (the lower index on a tie), move each
    centroid to the mean of its weights (an empty cluster keeps its centroid), until no
    assignment changes (at most :data:`ITERATIONS`). Weights with at most ``2**bits``
    distinct values are their own centroids (so re-quantizing quantized weights changes
    nothing). ``weight_frac="auto"`` calibrates ``F`` (:func:`hwgen.quant.calibrate_frac`)
    on the clustered weights.
Training (QAT)
    The assignments are fixed by the k-means of the first training forward; a centroid is
    the mean of its members' float shadow weights and its gradient the sum of its members'
    gradients (Deep Compression's centroid fine-tuning): every member gets that sum, and
    after each optimizer step the shadow weights are set to their centroid
    (:meth:`CodebookKind.clip_`), so they move together. Rounding the centroids to
    ``Q(W, F)`` passes the gradient straight through (0 for a centroid outside the
    format's range).

Layer keys (all optional): ``bits`` (index bits, 1 to 8; 4), ``weight_width`` (centroid
bits, 2 to 16; 8), ``weight_frac`` (an integer, ``"auto"`` or a list with one integer per
output channel), ``per_channel`` (false: one table per layer), ``init`` (``"linear"`` or
``"gaussian"``; linear) and the output keys of :mod:`hwgen.quant.outputs`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import torch

from ..errors import FormatError, check_int
from ..numerics import CodebookFormat, QFormat, quantize
from .fixed import calibrate_frac, check_frac
from .kinds import QuantKind, register_kind
from .outputs import (
    OUTPUT_KEYS,
    check_bool,
    check_choice,
    check_keys,
    output_format,
    output_keys_to_json,
    parse_output_keys,
)

__all__ = ["INITS", "CodebookKind", "CodebookSpec", "codebook_parts", "initial_centroids",
           "kmeans"]

#: The initialisations of k-means.
INITS = ("linear", "gaussian")
#: Most Lloyd iterations.
ITERATIONS = 100
MAX_BITS, MAX_WIDTH = 8, 16


@dataclass(frozen=True)
class CodebookSpec:
    """How to quantize one Conv2d/Linear layer with code-book weights (keys: module
    docstring)."""

    bits: int = 4
    weight_width: int = 8
    weight_frac: object = "auto"
    per_channel: bool = False
    init: str = "linear"
    out_width: int = 8
    frac: object = "auto"
    binary_out: bool = False
    rounding: str = "nearest_even"
    overflow: str = "saturate"
    bias_width: int = 32
    acc_width: int | None = None
    acc_overflow: str = "saturate"

    kind = "codebook"
    KEYS = ("bits", "weight_width", "weight_frac", "per_channel", "init") + OUTPUT_KEYS

    @classmethod
    def from_json(cls, obj, where, base=None):
        """Parse one layer entry of a JSON spec on top of ``base``."""
        check_keys(obj, where, cls.KEYS)
        kw = parse_output_keys(obj, where)
        if "bits" in obj:
            kw["bits"] = check_int(obj["bits"], f"{where}: bits", 1, MAX_BITS,
                                   error=FormatError)
        if "weight_width" in obj:
            kw["weight_width"] = check_int(obj["weight_width"], f"{where}: weight_width", 2,
                                           MAX_WIDTH, error=FormatError)
        if "weight_frac" in obj:
            wf = obj["weight_frac"]
            kw["weight_frac"] = tuple(check_int(f, f"{where}: weight_frac entry",
                                                error=FormatError) for f in wf) \
                if isinstance(wf, list) else check_frac(wf, f"{where}: weight_frac")
        if "per_channel" in obj:
            kw["per_channel"] = check_bool(obj["per_channel"], f"{where}: per_channel")
        if "init" in obj:
            kw["init"] = check_choice(obj["init"], f"{where}: init", INITS)
        return replace(base or cls(), **kw)

    def to_json(self):
        wf = list(self.weight_frac) if isinstance(self.weight_frac, tuple) else self.weight_frac
        return {"bits": self.bits, "weight_width": self.weight_width, "weight_frac": wf,
                "per_channel": self.per_channel, "init": self.init,
                **output_keys_to_json(self)}


# --- k-means ----------------------------------------------------------------------------

def initial_centroids(x, k, init="linear"):
    """The ``k`` initial centroids of the values ``x`` (float64 numpy, ascending): evenly
    spaced from ``min(x)`` to ``max(x)`` (``"linear"``), or the quantiles ``(j + ½)/k`` of
    the normal distribution with ``x``'s mean and standard deviation (``"gaussian"``)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    check_choice(init, "Code-book init", INITS)
    if init == "linear":
        return np.linspace(x.min(), x.max(), k)
    mu, sd = float(x.mean()), float(x.std())
    if sd == 0:
        return np.full(k, mu)
    normal = NormalDist(mu, sd)
    return np.array([normal.inv_cdf((j + 0.5) / k) for j in range(k)])


def _nearest(x, c):
    return np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)


def kmeans(x, k, init="linear", iterations=ITERATIONS):
    """``(centroids, assign)``: ``k`` centroids (float64) of the values ``x`` by Lloyd's
    algorithm from :func:`initial_centroids`, and each value's centroid index (int64, the
    shape of ``x``). Values with at most ``k`` distinct values get them as centroids,
    ascending (the rest of the ``k`` entries repeat the last one)."""
    x = np.asarray(x, dtype=np.float64)
    shape, x = x.shape, x.ravel()
    if x.size == 0:
        return np.zeros(k), np.zeros(shape, dtype=np.int64)
    values = np.unique(x)
    if len(values) <= k:
        c = np.concatenate([values, np.full(k - len(values), values[-1])])
        return c, np.searchsorted(values, x).astype(np.int64).reshape(shape)
    c = initial_centroids(x, k, init)
    assign = None
    for _ in range(iterations):
        new = _nearest(x, c)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        counts = np.bincount(assign, minlength=k)
        sums = np.bincount(assign, weights=x, minlength=k)
        c = np.where(counts > 0, sums / np.maximum(counts, 1), c)
    return c, assign.astype(np.int64).reshape(shape)


def codebook_parts(weight, bits, init="linear", per_channel=False):
    """``(centroids, assign)`` of a layer's float ``weight`` (axis 0: output channels):
    float64 centroids ``(tables, 2**bits)`` (one table, or one per channel) and the int64
    index of each weight's centroid in its table (``weight``'s shape)."""
    w = weight.detach().cpu().numpy() if isinstance(weight, torch.Tensor) else weight
    w = np.asarray(w, dtype=np.float64)
    k = 1 << bits
    if not per_channel:
        c, a = kmeans(w, k, init)
        return c[None, :], a
    parts = [kmeans(w[ch], k, init) for ch in range(len(w))]
    return np.stack([c for c, _ in parts]), np.stack([a for _, a in parts])


def _table_of(w_fmts):
    """Per output channel, the index of its table (0 for a per-layer table)."""
    return np.arange(len(w_fmts)) if w_fmts[0].per_channel else np.zeros(len(w_fmts), int)


def _table_values(centroids, w_fmts):
    """Per table, the centroids rounded to the table's ``Q(W, F)``: (integers, in-range
    mask), int64 and bool ``(tables, k)``."""
    fmts = w_fmts if w_fmts[0].per_channel else w_fmts[:1]
    vfmts = [f.value_format for f in fmts]
    q = np.stack([quantize(c, f) for c, f in zip(centroids, vfmts)])
    lo = np.array([[f.min_value] for f in vfmts])
    hi = np.array([[f.max_value] for f in vfmts])
    return q, (centroids >= lo) & (centroids <= hi)


class _Codebook(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, cluster, values, mask):
        ctx.save_for_backward(cluster, mask)
        ctx.n = len(values)
        return values[cluster]

    @staticmethod
    def backward(ctx, grad):
        cluster, mask = ctx.saved_tensors
        sums = torch.zeros(ctx.n, dtype=grad.dtype).index_add_(0, cluster.ravel(),
                                                                grad.ravel())
        return (sums * mask)[cluster], None, None, None


# --- the kind ---------------------------------------------------------------------------

@register_kind("codebook")
class CodebookKind(QuantKind):
    """Code-book weights: one :class:`~hwgen.numerics.CodebookFormat` per output channel
    (equal for a per-layer table)."""

    spec_type = CodebookSpec

    def weight_formats(self, layer_name, weight, spec):
        cout = weight.shape[0]
        wf = spec.weight_frac

        def fmt(frac):
            return CodebookFormat(spec.bits, spec.weight_width, int(frac), spec.per_channel)

        if isinstance(wf, tuple):
            if len(wf) != cout:
                raise FormatError(f"Layer {layer_name!r} has {cout} output channels, not the "
                                  f"{len(wf)!r} weight_frac entries of its spec")
            if not spec.per_channel and len(set(wf)) > 1:
                raise FormatError(f"Layer {layer_name!r} has one code-book table, so its "
                                  f"weight_frac entries must be equal, not {list(wf)!r}")
            return tuple(fmt(f) for f in wf)
        if wf != "auto":
            return (fmt(wf),) * cout
        c, a = codebook_parts(weight, spec.bits, spec.init, spec.per_channel)
        if spec.per_channel:
            return tuple(fmt(calibrate_frac(c[ch][a[ch]], spec.weight_width))
                         for ch in range(cout))
        return (fmt(calibrate_frac(c[0][a], spec.weight_width)),) * cout

    def output_format(self, activations, spec):
        return output_format(activations, spec)

    def bias_formats(self, in_fmt, w_fmts, bias_width):
        return tuple(QFormat(bias_width, in_fmt.frac + f.frac) for f in w_fmts)

    def resolved_spec(self, layer):
        spec = layer.spec if layer.spec is not None else self.spec_type()
        f0 = layer.w_fmts[0]
        wf = tuple(f.frac for f in layer.w_fmts)
        out = layer.out_fmt
        return replace(spec, bits=f0.bits, weight_width=f0.width, per_channel=f0.per_channel,
                       weight_frac=wf if f0.per_channel else wf[0], out_width=out.width,
                       frac=out.frac, binary_out=layer.binary_out, rounding=layer.rounding,
                       overflow=layer.overflow, bias_width=layer.bias_width,
                       acc_width=layer.acc_width, acc_overflow=layer.acc_overflow)

    # --- values -------------------------------------------------------------------------

    def _spec(self, layer):
        return layer.spec if layer.spec is not None else self.spec_type()

    def _clusters(self, layer):
        """``(cluster, tables)``: each weight's cluster (``table·2**bits + index``, int64
        numpy, the weight's shape) and the number of tables. Training fixes the clusters
        of its first forward; otherwise k-means runs on the current weights."""
        cached = getattr(layer, "_codebook_clusters", None)
        if layer.training and cached is not None:
            return cached
        f0 = layer.w_fmts[0]
        c, a = codebook_parts(layer.weight, f0.bits, self._spec(layer).init, f0.per_channel)
        table = _table_of(layer.w_fmts).reshape((-1,) + (1,) * (a.ndim - 1))
        result = (table * f0.entries + a, len(c))
        if layer.training:
            layer._codebook_clusters = result
        return result

    def _means(self, layer, cluster, tables):
        k = layer.w_fmts[0].entries
        w = layer.weight.detach().cpu().numpy().astype(np.float64).ravel()
        flat = cluster.ravel()
        counts = np.bincount(flat, minlength=tables * k)
        sums = np.bincount(flat, weights=w, minlength=tables * k)
        return (sums / np.maximum(counts, 1)).reshape(tables, k)

    def _values(self, layer):
        """``(cluster, q, mask)``: clusters, the centroids' integers and their in-range
        mask, ``(tables, 2**bits)``."""
        cluster, tables = self._clusters(layer)
        q, mask = _table_values(self._means(layer, cluster, tables), layer.w_fmts)
        return cluster, q, mask

    def layer_weights(self, layer):
        cluster, q, mask = self._values(layer)
        fmts = layer.w_fmts if layer.w_fmts[0].per_channel else layer.w_fmts[:1]
        scale = np.array([[2.0 ** -f.frac] for f in fmts])
        dtype = layer.weight.dtype
        return _Codebook.apply(layer.weight, torch.tensor(cluster),
                               torch.tensor((q * scale).ravel(), dtype=dtype),
                               torch.tensor(mask.ravel(), dtype=dtype))

    def layer_int_weights(self, layer):
        cluster, q, _ = self._values(layer)
        return q.ravel()[cluster]

    def clip_(self, layer):
        cached = getattr(layer, "_codebook_clusters", None)
        if cached is None:
            return
        cluster, tables = cached
        means = self._means(layer, cluster, tables).ravel()
        layer.weight.data.copy_(torch.tensor(means[cluster], dtype=layer.weight.dtype))

    def fake_quant(self, weight, w_fmts):
        raise NotImplementedError("Code-book weights are quantized per layer "
                                  "(CodebookKind.layer_weights)")

    def int_weights(self, weight, w_fmts):
        raise NotImplementedError("Code-book weights are quantized per layer "
                                  "(CodebookKind.layer_int_weights)")

    def weight_bytes(self, count_per_channel, w_fmts):
        f0 = w_fmts[0]
        tables = len(w_fmts) if f0.per_channel else 1
        return math.ceil((count_per_channel * len(w_fmts) * f0.bits
                          + tables * f0.entries * f0.width) / 8)

    def describe(self, w_fmts):
        fmts = tuple(w_fmts)
        if len(set(fmts)) == 1:
            return str(fmts[0])
        fr = [f.frac for f in fmts]
        f0 = fmts[0]
        return f"CB{f0.bits}/ch[Q({f0.width},{min(fr)}..{max(fr)})]"
