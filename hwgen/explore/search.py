"""``hwgen search``: the cheapest per-layer quantization of a model that meets an accuracy
target.

The search space
----------------
A *candidate* gives every Conv2d/Linear layer (its :class:`LayerChoice`):

- its weights, one of :data:`WEIGHT_OPTIONS`: fixed point of 16 down to 2 bits, power of
  two of 5, 4 or 3 bits (:mod:`hwgen.quant.pow2`), code-books of 6- or 4-bit indices into
  8-bit centroids (:mod:`hwgen.quant.codebook`, linear k-means), ternary and binary with
  per-channel scales (``bwn``, :mod:`hwgen.quant.binary`);
- per-output-channel weight formats or one per layer (fixed point and powers of two;
  a code-book table per channel or per layer);
- its output width (:data:`ACT_WIDTHS`), which is the next layer's input width;
- where its fractional lengths come from: ``sqnr``, the calibration every scheme uses
  (:func:`hwgen.quant.fixed.calibrate_frac`), or ``l2``, :func:`hwgen.explore.analyze`'s
  choice that keeps the layer's output closest to float (for its fixed-point weights and
  for its input, i.e. the previous layer's output or the network input; widths up to 8
  bits, where the two differ);

and the input width. Each candidate is a JSON spec (:func:`candidate_spec`) quantized by
:func:`hwgen.flow.load_quantized`, exactly as ``hwgen compile --scheme SPEC.json`` does, and
compiled with :func:`hwgen.compiler.compile_graph`; its accuracy is the golden model's on the
test split. Quantization is post-training on the model's own weights: binary activations
(the XNOR engine) and QAT are left out, since they need retraining to be usable, and the
binary and ternary weight kinds are tried as they come out of post-training quantization.

Costs
-----
Every candidate gets every figure (:data:`COLUMNS`): ``weight_bytes`` (the compiled
design's weight memories: words × ``cols`` fields × field bits, the weight banks of split
layers' engines included; per-layer widths share their engine's field; a code-book
engine's tables added), ``model_weight_bytes`` (each layer at its own format, as ``hwgen
quantize`` and ``hwgen compare`` count), ``act_bytes`` (activation buffer traffic per
inference, :func:`hwgen.explore.energy.activation_bytes`), ``cycles`` (the compiler's
cycle model), ``luts``, ``ffs``, ``dsps``, ``brams`` and ``fits`` (the instant
:func:`hwgen.estimate.analytic.analytic_estimate` on the device; None off iCE40, where it is
not calibrated) and ``energy_nj``
(:mod:`hwgen.explore.energy`). The user's cost (:data:`COSTS`) picks the figure to
minimise. Candidates are ranked by: meeting the target, then fitting the device, then the
cost, then the model's weight bytes and activation widths (so that among equal costs the
smaller model wins).

The algorithms
--------------
1. ``uniform``: every weight option on every layer (fixed point of width ``W`` with
   ``W``-bit activations, the other kinds with 8-bit ones): the single-kind baselines.
2. ``greedy`` (the baseline): from the most accurate uniform candidate (fixed16, as a
   rule), layer by layer in network order, walk
   the layer's weights, then its output width, down their ladders while the target holds
   and the rank improves; then the input width; repeat until nothing moves.
3. ``sensitivity``: from the same start, layers in order of increasing sensitivity
   (:func:`hwgen.explore.sensitivity`: the output's mean L2 error when the layer alone is
   quantized), every option of each of the layer's choices at once, keeping the best.
4. ``local``: from the best so far, every change of one choice and every pair of
   one-step changes of two; the best improvement, until none.
5. ``evolution``: a small (μ + λ) evolutionary search seeded with the best candidates:
   uniform crossover of layers, mutation of one or two choices.

Evaluations run on an :class:`~hwgen.explore.executor.Executor` (``jobs`` local processes
or a Dask cluster), a batch at a time, within a budget of evaluations; identical specs are
evaluated once. With the same arguments and ``seed`` the result is the same wherever the
evaluations run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import ArgumentError, HwgenError, UnreachableTargetError, check_int

__all__ = ["ACT_WIDTHS", "COLUMNS", "COSTS", "SCHEME_NAME", "WEIGHT_OPTIONS", "Candidate",
           "LayerChoice", "Point", "SearchResult", "candidate_spec", "check_cost",
           "check_target", "design_metrics", "is_search_dir", "search", "write_search"]

#: The name of the schemes the search writes (not a built-in name, so that the model's
#: own float weights are quantized, never a shipped QAT checkpoint).
SCHEME_NAME = "search"

#: Weight options, from the most bits to the fewest.
WEIGHT_OPTIONS = ("fixed16", "fixed12", "fixed10", "fixed8", "fixed7", "fixed6", "codebook-6",
                  "fixed5", "pow2-5", "fixed4", "codebook-4", "pow2-4", "fixed3", "pow2-3",
                  "fixed2", "ternary", "bwn")
#: Output (activation) and input widths, widest first.
ACT_WIDTHS = (16, 12, 10, 8, 7, 6, 5, 4, 3, 2)
#: Where fractional lengths come from.
FRACS = ("sqnr", "l2")
#: Widths analysed for ``l2`` fractional lengths.
L2_WIDTHS = tuple(range(2, 9))

#: The user's cost -> the figure it minimises.
COSTS = {"weight-bytes": "weight_bytes", "act-bytes": "act_bytes", "cycles": "cycles",
         "luts": "luts", "bram": "brams", "energy": "energy_nj"}
#: The figures of every candidate, in table order.
COLUMNS = ("accuracy", "weight_bytes", "model_weight_bytes", "act_bytes", "cycles", "luts",
           "ffs", "dsps", "brams", "fits", "energy_nj", "engines")

#: Default evaluation budget and evolutionary search size.
DEFAULT_BUDGET = 1000
POPULATION, OFFSPRING = 8, 12
#: Steps down a ladder the greedy search evaluates at once (the same on any executor, so
#: that the evaluations, and the result, do not depend on where they run).
LOOKAHEAD = 2


def check_target(target):
    """``target`` as a float if it is in (0, 1], else :class:`ArgumentError`."""
    ok = isinstance(target, (int, float)) and not isinstance(target, bool) \
        and math.isfinite(target) and 0 < target <= 1
    if not ok:
        raise ArgumentError(f"Target accuracy must be a number in (0, 1], not {target!r}")
    return float(target)


def check_cost(cost):
    """``cost`` if it names one of :data:`COSTS`, else :class:`ArgumentError`."""
    if cost not in COSTS:
        raise ArgumentError(f"Cost must be one of {', '.join(COSTS)}, not {cost!r}")
    return cost


# --- candidates -------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerChoice:
    """One layer of a candidate: weights (one of :data:`WEIGHT_OPTIONS`), output width,
    per-channel weight formats, and fractional lengths (``sqnr`` or ``l2``)."""

    weights: str = "fixed8"
    act_width: int = 8
    per_channel: bool = False
    frac: str = "sqnr"

    def label(self):
        w = self.weights + ("/ch" if self.per_channel and _has_channels(self.weights) else "")
        return f"{w} a{self.act_width}" + (" l2" if self.frac == "l2" else "")


def _has_channels(option):
    return option.startswith(("fixed", "pow2", "codebook"))


@dataclass(frozen=True)
class Candidate:
    """A point of the search space: the input width and one :class:`LayerChoice` per
    Conv2d/Linear layer, in network order."""

    input_width: int
    layers: tuple

    def label(self, names):
        return f"in{self.input_width} | " + " | ".join(
            f"{n} {c.label()}" for n, c in zip(names, self.layers))

    def to_json(self):
        return {"input_width": self.input_width, "layers": [asdict(c) for c in self.layers]}


def uniform(option, n_layers):
    """Every layer with ``option`` weights: fixed point of width ``W`` with ``W``-bit
    activations and input, the other kinds with 8-bit ones."""
    width = int(option[5:]) if option.startswith("fixed") else 8
    return Candidate(width, (LayerChoice(option, width),) * n_layers)


def _weight_entry(option, per_channel):
    if option.startswith("fixed"):
        return {"kind": "fixed", "weight_width": int(option[5:]), "per_channel": per_channel}
    if option.startswith("pow2-"):
        return {"kind": "pow2", "bits": int(option[5:]), "per_channel": per_channel}
    if option.startswith("codebook-"):
        return {"kind": "codebook", "bits": int(option[9:]), "per_channel": per_channel}
    if option == "ternary":
        return {"kind": "ternary"}
    return {"kind": "binary"}


def candidate_spec(candidate, names, l2_fracs=None):
    """The JSON spec (a dict) of ``candidate`` for the layers ``names``; ``l2_fracs`` is
    ``{layer: {"weights": {W: F}, "inputs": {W: F}}}`` from :func:`hwgen.explore.analyze`
    for the ``l2`` choices (without it they fall back to ``sqnr``)."""
    layers = {}
    for name, choice in zip(names, candidate.layers):
        entry = _weight_entry(choice.weights, choice.per_channel)
        entry["out_width"] = choice.act_width
        if choice.frac == "l2" and l2_fracs and entry["kind"] == "fixed" \
                and not choice.per_channel:
            f = l2_fracs[name]["weights"].get(entry["weight_width"])
            if f is not None:
                entry["weight_frac"] = f
        layers[name] = entry
    inp = {"width": candidate.input_width, "frac": "auto"}
    for i, (name, choice) in enumerate(zip(names, candidate.layers)):
        if choice.frac != "l2" or not l2_fracs:
            continue
        width = candidate.input_width if i == 0 else candidate.layers[i - 1].act_width
        f = l2_fracs[name]["inputs"].get(width)
        if f is None:
            continue
        if i == 0:
            inp["frac"] = f
        else:
            layers[names[i - 1]]["frac"] = f
    return {"name": SCHEME_NAME, "input": inp, "layers": layers}


# --- one evaluation (runs in a worker) ----------------------------------------------------

@dataclass(frozen=True)
class _Task:
    model: str
    data: str | None
    spec: str
    array: str
    target: str


def design_metrics(design, qmodel, target):
    """Every figure of :data:`COLUMNS` but the accuracy, for a compiled ``design`` of
    ``qmodel`` on the device ``target`` (LUTs, FFs, DSPs, BRAMs None off iCE40)."""
    from ..quant.modules import _QuantDense
    from .energy import activation_bytes, network_energy
    cols = design.config.cols
    out = {
        "weight_bytes": sum(math.ceil(((len(e.weight_image) + sum(map(len, e.banks)))
                                       * cols * e.weight_width
                                       + len(e.tables) * cols * (1 << e.weight_width)
                                       * e.value_width) / 8)
                            for e in design.engines),
        "model_weight_bytes": sum(layer.weight_bytes for layer in qmodel.module.layers
                                  if isinstance(layer, _QuantDense)),
        "act_bytes": activation_bytes(design),
        "cycles": design.cycles,
        "energy_nj": network_energy(design).total_pj / 1000,
        "engines": "+".join(design.engine_kinds),
    }
    from ..estimate.devices import device
    if device(target).family == "ice40":
        from ..estimate.analytic import analytic_estimate
        est = analytic_estimate(design, target)
        out.update(luts=est.luts, ffs=est.ffs, dsps=est.dsps, brams=est.brams, fits=est.fits)
    else:
        out.update(luts=None, ffs=None, dsps=None, brams=None, fits=None)
    return out


def evaluate(task):
    """``(accuracy, metrics, error)`` of one spec: quantized and compiled as ``hwgen
    compile --scheme`` would; a spec hwgen refuses gives ``(None, None, message)``."""
    import multiprocessing

    import torch

    from ..compiler import AcceleratorConfig, compile_graph
    from ..flow import load_quantized
    from ..quant import scheme_from_json
    if multiprocessing.parent_process() is not None:
        torch.set_num_threads(1)        # one evaluation per core
    try:
        scheme = scheme_from_json(json.loads(task.spec), "Search spec")
        qmodel = load_quantized(task.model, scheme, data=task.data)
        design = compile_graph(qmodel.graph, AcceleratorConfig.parse_array(task.array))
        return qmodel.quantized_accuracy(), design_metrics(design, qmodel, task.target), None
    except HwgenError as e:
        return None, None, " ".join(str(e).split())


# --- the record of a search ---------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One evaluated candidate: where it was first met (``phase``), its accuracy and
    figures (None for a candidate hwgen refused, with the ``error``), and its scheme as
    the JSON text ``hwgen compile --scheme`` takes (``spec``)."""

    candidate: Candidate
    label: str
    phase: str
    accuracy: float | None
    metrics: dict | None
    error: str | None = None
    spec: str | None = None

    def to_json(self):
        return {"label": self.label, "phase": self.phase, "accuracy": self.accuracy,
                **(self.metrics or dict.fromkeys(COLUMNS[1:])), "error": self.error,
                "candidate": self.candidate.to_json()}


@dataclass(frozen=True)
class SearchResult:
    """What ``hwgen search`` prints and writes (see :func:`write_search`).

    ``points`` are in evaluation order; ``chosen``, ``greedy``, ``fixed8``, ``fixed4`` and
    ``best_single`` index them (``best_single``: the best uniform candidate); ``spec`` is the
    chosen candidate's scheme with every format resolved, as ``spec.json`` holds it.
    """

    model: str
    cost: str
    target: float
    relative: float | None
    float_accuracy: float
    array: str
    device: str
    layers: tuple
    sensitivity_order: tuple
    points: tuple
    chosen: int
    greedy: int
    fixed8: int
    fixed4: int
    best_single: int
    phase_best: dict
    spec: dict
    seconds: float
    budget: int

    @property
    def cost_column(self):
        return COSTS[self.cost]

    def rows(self):
        """The comparison: ``(name, point)`` for the search's choice, greedy, fixed8,
        fixed4 and the best single-kind candidate."""
        best = self.points[self.best_single]
        return [("search", self.points[self.chosen]), ("greedy", self.points[self.greedy]),
                ("fixed8", self.points[self.fixed8]), ("fixed4", self.points[self.fixed4]),
                (f"single-kind {best.candidate.layers[0].weights}", best)]

    def format_table(self):
        """The comparison table and the chosen configuration."""
        from ..report import format_table
        head = ["config", "accuracy %", "meets", "weight B", "LUTs (est)", "fits",
                "cycles", "energy nJ"]
        col = self.cost_column
        extra = col not in ("weight_bytes", "luts", "cycles", "energy_nj")
        if extra:
            head.append(self.cost)
        rows = []
        for name, p in self.rows():
            m = p.metrics
            row = [name, f"{100 * p.accuracy:.2f}", "yes" if self._meets(p) else "no",
                   m["weight_bytes"], _num(m["luts"]), _cell(m["fits"]) or "-",
                   m["cycles"], f"{m['energy_nj']:.2f}"]
            if extra:
                row.append(_num(m[col]))
            rows.append(row)
        rel = (f" ({self.relative:g} of float {100 * self.float_accuracy:.2f}%)"
               if self.relative is not None else "")
        chosen = self.points[self.chosen]
        title = (f"model {self.model}, array {self.array}, device {self.device}: cost "
                 f"{self.cost}, target accuracy {100 * self.target:.2f}%{rel}; "
                 f"{len(self.points)} configurations in {self.seconds:.0f} s")
        return "\n".join([
            title,
            format_table(head, rows, align=["<"] + [">"] * (len(head) - 1)),
            f"chosen ({chosen.phase}): {chosen.label}"])

    def _meets(self, point):
        return _feasible(point, self.target)

    def to_json(self):
        return {"model": self.model, "cost": self.cost, "target": self.target,
                "relative": self.relative, "float_accuracy": self.float_accuracy,
                "array": self.array, "device": self.device, "layers": list(self.layers),
                "sensitivity_order": list(self.sensitivity_order),
                "seconds": round(self.seconds, 1), "budget": self.budget,
                "chosen": self.chosen, "greedy": self.greedy, "fixed8": self.fixed8,
                "fixed4": self.fixed4, "best_single": self.best_single,
                "phase_best": self.phase_best,
                "comparison": {name: {**p.to_json(), "spec": json.loads(p.spec)}
                               for name, p in self.rows()},
                "spec": self.spec, "points": [p.to_json() for p in self.points]}


def _num(value):
    return "-" if value is None else value


def _feasible(point, target):
    return point is not None and point.accuracy is not None \
        and point.accuracy >= target - 1e-12


# --- the search ---------------------------------------------------------------------------

class _Evaluator:
    """Evaluates candidates in batches on an executor, each distinct spec once, within a
    budget; keeps every :class:`Point` in evaluation order."""

    def __init__(self, ctx, executor, budget, bar):
        self.ctx, self.executor, self.budget, self.bar = ctx, executor, budget, bar
        self.by_spec = {}
        self.points = []

    @property
    def remaining(self):
        return self.budget - len(self.points)

    def spec(self, candidate):
        return json.dumps(candidate_spec(candidate, self.ctx["names"], self.ctx["l2"]),
                          sort_keys=True)

    def run(self, candidates, phase):
        """The :class:`Point` of each candidate (None where the budget ran out)."""
        specs = [self.spec(c) for c in candidates]
        todo = []
        for c, s in zip(candidates, specs):
            if s not in self.by_spec and s not in (t[1] for t in todo):
                todo.append((c, s))
        todo = todo[:max(0, self.remaining)]
        tasks = [_Task(self.ctx["model"], self.ctx["data"], s, self.ctx["array"],
                       self.ctx["device"]) for _, s in todo]
        results = [None] * len(tasks)
        for n, result in self.executor.map(evaluate, tasks):
            results[n] = result
            self.bar.update()
        for (c, s), (acc, metrics, error) in zip(todo, results):
            self.by_spec[s] = len(self.points)
            self.points.append(Point(c, c.label(self.ctx["names"]), phase, acc, metrics,
                                     error, s))
        return [self.point(s) for s in specs]

    def point(self, spec):
        n = self.by_spec.get(spec)
        return None if n is None else self.points[n]


class _Search:
    def __init__(self, ev, names, cost, target, rng):
        self.ev, self.names, self.col, self.target = ev, names, COSTS[cost], target
        self.rng = rng

    # ranking: lower is better; infeasible (or unevaluated) last
    def key(self, point):
        if not _feasible(point, self.target):
            return (1, 0, 0, 0, 0)
        m = point.metrics
        cost = m[self.col]
        return (0, int(m["fits"] is False), math.inf if cost is None else cost,
                m["model_weight_bytes"],
                point.candidate.input_width + sum(c.act_width for c in point.candidate.layers))

    def best(self, points):
        points = [p for p in points if _feasible(p, self.target)]
        return min(points, key=self.key) if points else None

    # the genes: ("input",), ("w", i), ("a", i), ("pc", i), ("frac", i)
    def genes(self, i=None):
        layers = range(len(self.names)) if i is None else [i]
        out = [(g, j) for j in layers for g in ("w", "a", "pc", "frac")]
        return out + ([("input",)] if i is None else [])

    @staticmethod
    def options(gene):
        return {"w": WEIGHT_OPTIONS, "a": ACT_WIDTHS, "pc": (False, True), "frac": FRACS,
                "input": ACT_WIDTHS}[gene[0]]

    @staticmethod
    def get(c, gene):
        if gene[0] == "input":
            return c.input_width
        attr = {"w": "weights", "a": "act_width", "pc": "per_channel", "frac": "frac"}[gene[0]]
        return getattr(c.layers[gene[1]], attr)

    @staticmethod
    def set(c, gene, value):
        if gene[0] == "input":
            return replace(c, input_width=value)
        attr = {"w": "weights", "a": "act_width", "pc": "per_channel", "frac": "frac"}[gene[0]]
        layers = list(c.layers)
        layers[gene[1]] = replace(layers[gene[1]], **{attr: value})
        return replace(c, layers=tuple(layers))

    def step(self, c, gene, delta):
        """``c`` with ``gene`` moved ``delta`` places along its ladder (None off its end)."""
        opts = self.options(gene)
        n = opts.index(self.get(c, gene)) + delta
        return self.set(c, gene, opts[n]) if 0 <= n < len(opts) else None

    def better(self, point, than):
        return _feasible(point, self.target) and self.key(point) < self.key(than)

    def greedy(self, start, order, phase="greedy"):
        """Walk each gene of each layer in ``order`` down its ladder while the rank
        improves (:data:`LOOKAHEAD` steps evaluated at once)."""
        cur = self.ev.run([start], phase)[0]
        moved = True
        while moved and self.ev.remaining > 0:
            moved = False
            for gene in [g for i in order for g in (("w", i), ("a", i))] + [("input",)]:
                while self.ev.remaining > 0:
                    steps, c = [], cur.candidate
                    for _ in range(LOOKAHEAD):
                        c = self.step(c, gene, +1)
                        if c is None:
                            break
                        steps.append(c)
                    if not steps:
                        break
                    advanced = False
                    for p in self.ev.run(steps, phase):
                        if p is None or not self.better(p, cur):
                            break
                        cur, advanced, moved = p, True, True
                    if not advanced or cur.candidate != steps[-1]:
                        break
        return cur

    def scan(self, start, order, phase="sensitivity", passes=2):
        """Layer by layer in ``order``, every option of each of its genes at once; keep
        the best."""
        cur = self.ev.run([start], phase)[0]
        for _ in range(passes):
            before = cur
            for gene in [g for i in order for g in self.genes(i)] + [("input",)]:
                cands = [self.set(cur.candidate, gene, v) for v in self.options(gene)]
                best = self.best(self.ev.run(cands, phase) + [cur])
                if best is not None and self.better(best, cur):
                    cur = best
            if cur is before or self.ev.remaining <= 0:
                break
        return cur

    def local(self, start, phase="local"):
        """Best-improvement local search over single changes and pairs of one-step
        changes."""
        cur = start
        while self.ev.remaining > 0:
            c = cur.candidate
            cands = [self.set(c, g, v) for g in self.genes() for v in self.options(g)
                     if v != self.get(c, g)]
            ladder = [g for g in self.genes() if g[0] in ("w", "a", "input")]
            for n, g1 in enumerate(ladder):
                for g2 in ladder[n + 1:]:
                    for d1, d2 in ((1, 1), (1, -1), (-1, 1)):
                        a = self.step(c, g1, d1)
                        b = a and self.step(a, g2, d2)
                        if b is not None:
                            cands.append(b)
            best = self.best(self.ev.run(cands, phase))
            if best is None or not self.better(best, cur):
                break
            cur = best
        return cur

    def mutate(self, c):
        for _ in range(1 + int(self.rng.random() < 0.5)):
            genes = self.genes()
            gene = genes[self.rng.integers(len(genes))]
            if gene[0] in ("pc", "frac"):
                opts = self.options(gene)
                c = self.set(c, gene, opts[1 - opts.index(self.get(c, gene))])
            else:
                delta = int(self.rng.choice([-2, -1, 1, 2]))
                c = self.step(c, gene, delta) or c
        return c

    def evolve(self, seeds, phase="evolution", generations=8):
        """(μ + λ): parents by binary tournament on the rank, uniform crossover of the
        layers (and the input width), then one or two mutations."""
        population = sorted({id(p): p for p in seeds if p is not None}.values(),
                            key=self.key)[:POPULATION]
        for _ in range(generations):
            if self.ev.remaining <= 0 or len(population) < 2:
                break
            children = []
            for _ in range(OFFSPRING):
                a, b = (min(self.rng.choice(len(population), 2, replace=False),
                            key=lambda n: self.key(population[n])) for _ in range(2))
                pa, pb = population[a].candidate, population[b].candidate
                layers = tuple(x if self.rng.random() < 0.5 else y
                               for x, y in zip(pa.layers, pb.layers))
                width = pa.input_width if self.rng.random() < 0.5 else pb.input_width
                children.append(self.mutate(Candidate(width, layers)))
            points = [p for p in self.ev.run(children, phase) if p is not None]
            pool = {id(p): p for p in population + points}
            population = sorted(pool.values(), key=self.key)[:POPULATION]
        return self.best(population)


def _l2_fracs(analysis):
    return {la.name: {"weights": {c.width: c.frac_l2 for c in la.weight_fracs},
                      "inputs": {c.width: c.frac_l2 for c in la.activation_fracs}}
            for la in analysis.layers}


def search(model, target, cost="weight-bytes", *, relative=False, array="4x4",
           device="ice40-up5k", data=None, jobs=1, executor=None, budget=DEFAULT_BUDGET,
           seed=0, progress=False, say=None):
    """Search the per-layer quantization of ``model`` that meets ``target`` at the lowest
    ``cost``; returns a :class:`SearchResult` (see the module docstring).

    Parameters
    ----------
    model : str
        As :func:`hwgen.flow.load_quantized` takes it; it needs a labelled test set.
    target : float
        The accuracy to reach, in (0, 1]: absolute, or with ``relative`` a fraction of the
        float model's test accuracy.
    cost : str
        One of :data:`COSTS`.
    array, device : str
        The array shape and the device the analytic estimates and the fit are for.
    jobs, executor : int, str
        Local processes, or a Dask scheduler's address
        (:class:`~hwgen.explore.executor.Executor`).
    budget : int
        At most this many distinct specs are evaluated.
    seed : int
        Of the evolutionary search.
    progress : bool
        A progress bar on stderr.
    say : callable, optional
        Hears what is happening.

    Raises
    ------
    ArgumentError
        For a bad argument, before anything is loaded.
    UnreachableTargetError
        When no configuration meets the target.
    """
    from ..compiler import AcceleratorConfig, check_size
    from ..estimate.devices import device as get_device
    target = check_target(target)
    check_cost(cost)
    check_size(AcceleratorConfig.parse_array(array))
    dev = get_device(device)
    if COSTS[cost] in ("luts", "brams"):
        from ..estimate.analytic import _check_target
        _check_target(dev)
    budget = check_int(budget, "Budget", minimum=20)
    seed = check_int(seed, "Seed", minimum=0)
    from .executor import Executor, progress_bar
    ex = Executor(jobs, executor)          # checks jobs and the address's type

    def tell(message):
        if say is not None:
            say(message)

    started = time.monotonic()
    import torch

    from ..flow import load_float
    from .analyze import analyze
    from .layers import dense_indices
    from .sensitivity import sensitivity
    fmodel = load_float(model, data=data)
    if fmodel.dataset is None:
        raise ArgumentError(f"Model {model!r} has no labelled test set; a search measures "
                            f"accuracy on one (give --data with x_test and y_test)")
    names = tuple(fmodel.stages[i].name for i in dense_indices(fmodel.stages))
    ds = fmodel.dataset
    with torch.no_grad():
        logits = fmodel.module(torch.tensor(np.array(ds.x_test)))
    float_acc = float(np.mean(logits.argmax(1).numpy() == np.asarray(ds.y_test)))
    goal = target * float_acc if relative else target
    tell(f"float accuracy {100 * float_acc:.2f}%; target {100 * goal:.2f}%; analysing the "
         f"layers")
    sens = sensitivity(fmodel, L2_WIDTHS, "both")
    l2 = sens.grid("l2").mean(axis=1)
    order = tuple(int(i) for i in np.argsort(l2, kind="stable"))
    l2_fracs = _l2_fracs(analyze(fmodel, L2_WIDTHS))
    ctx = {"model": model, "data": data, "array": array, "device": dev.name, "names": names,
           "l2": l2_fracs}
    rng = np.random.default_rng(seed)
    with progress_bar(budget, "configurations", "cfg", progress) as bar, ex:
        ev = _Evaluator(ctx, ex, budget, bar)
        s = _Search(ev, names, cost, goal, rng)
        uniforms = ev.run([uniform(o, len(names)) for o in WEIGHT_OPTIONS], "uniform")
        if all(p.accuracy is None for p in uniforms):
            raise HwgenError(uniforms[0].error)     # the model itself is refused
        if not any(_feasible(p, goal) for p in uniforms):
            top = max((p for p in uniforms if p.accuracy is not None),
                      key=lambda p: p.accuracy, default=None)
            reach = (f"; the most accurate, uniform {top.candidate.layers[0].weights}, "
                     f"reaches {100 * top.accuracy:.2f}%" if top else "")
            raise UnreachableTargetError(
                f"No configuration reaches the target accuracy {100 * goal:.2f}%"
                f"{reach}")
        # the most accurate uniform candidate (the widest on ties): where reductions start
        top = max((p for p in uniforms if p.accuracy is not None),
                  key=lambda p: p.accuracy).candidate
        tell("greedy per-layer reduction")
        greedy = s.greedy(top, range(len(names)))
        tell("layers in order of sensitivity: " + ", ".join(names[i] for i in order))
        scanned = s.scan(top, order)
        best_uniform = s.best(uniforms)
        tell("local search")
        local = s.local(s.best([greedy, scanned, best_uniform]))
        tell("evolutionary search")
        seeds = sorted((p for p in ev.points if _feasible(p, goal)), key=s.key)[:POPULATION]
        evolved = s.evolve(seeds)
        bar.total = len(ev.points)
        bar.refresh()
    points = ev.points
    chosen = s.best(points)
    index = {id(p): n for n, p in enumerate(points)}
    phase_best = {}
    for phase in ("uniform", "greedy", "sensitivity", "local", "evolution"):
        found = {"greedy": greedy, "sensitivity": scanned, "local": local,
                 "evolution": evolved, "uniform": best_uniform}[phase]
        if found is not None:
            phase_best[phase] = index[id(found)]
    spec = _resolved_spec(model, data, ctx, chosen)
    return SearchResult(
        model=fmodel.name, cost=cost, target=goal, relative=target if relative else None,
        float_accuracy=float_acc, array=array, device=dev.name, layers=names,
        sensitivity_order=tuple(names[i] for i in order), points=tuple(points),
        chosen=index[id(chosen)], greedy=index[id(greedy)],
        fixed8=index[id(uniforms[WEIGHT_OPTIONS.index("fixed8")])],
        fixed4=index[id(uniforms[WEIGHT_OPTIONS.index("fixed4")])],
        best_single=index[id(best_uniform)], phase_best=phase_best, spec=spec,
        seconds=time.monotonic() - started, budget=budget)


def _resolved_spec(model, data, ctx, point):
    """The chosen candidate's scheme with every calibrated format fixed: quantized once
    more here, and checked to give the accuracy the search measured."""
    from ..flow import load_quantized
    from ..quant import scheme_from_json
    spec = candidate_spec(point.candidate, ctx["names"], ctx["l2"])
    qmodel = load_quantized(model, scheme_from_json(spec, "Search spec"), data=data)
    accuracy = qmodel.quantized_accuracy()
    if accuracy != point.accuracy:
        raise HwgenError(f"The chosen configuration's accuracy {accuracy!r} differs from the "
                         f"{point.accuracy!r} measured in the search")
    return qmodel.scheme.to_json()


# --- output -------------------------------------------------------------------------------

def is_search_dir(path):
    """Whether ``path`` holds an earlier ``hwgen search`` output."""
    from pathlib import Path
    return (Path(path) / "search.json").is_file()


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table_rows(result):
    head = ["n", "phase", "configuration", *COLUMNS, "pareto", "note"]
    front = set(_front(result))
    marks = {}
    for name, n in (("fixed8", result.fixed8), ("fixed4", result.fixed4),
                    ("single-kind", result.best_single), ("greedy", result.greedy),
                    ("chosen", result.chosen)):
        marks.setdefault(n, []).append(name)
    rows = []
    for n, p in enumerate(result.points):
        m = p.metrics or {}
        rows.append([n, p.phase, p.label,
                     *([p.accuracy] + [m.get(c) for c in COLUMNS[1:]]),
                     n in front, " ".join(marks.get(n, [])) or (p.error or "")])
    return head, rows


def _front(result):
    """Indices of the Pareto front of (cost, accuracy) over the evaluated points that fit
    the device (over all of them when none fits): the points the search ranks between."""
    from .compare import pareto_front
    col = result.cost_column
    usable = [n for n, p in enumerate(result.points)
              if p.accuracy is not None and p.metrics[col] is not None]
    fitting = [n for n in usable if result.points[n].metrics["fits"] is not False]
    usable = fitting or usable
    front = pareto_front([(result.points[n].metrics[col], result.points[n].accuracy)
                          for n in usable])
    return [usable[i] for i in front]


def markdown(result):
    """The explored configurations as a Markdown table, after the comparison."""
    head, rows = _table_rows(result)
    lines = ["```", result.format_table(), "```", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |"
              for row in rows]
    return "\n".join(lines) + "\n"


def _csv(result):
    head, rows = _table_rows(result)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(head)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return text.getvalue()


def _frontier_png(result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..report import figure_png
    col = result.cost_column
    pts = [(n, p) for n, p in enumerate(result.points)
           if p.accuracy is not None and p.metrics[col] is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for meets, fits, color, label in (
            (False, True, "0.7", "below the target"),
            (False, False, "0.7", "below the target, does not fit"),
            (True, True, "tab:blue", "meets the target"),
            (True, False, "tab:blue", "meets the target, does not fit")):
        group = [p for _, p in pts
                 if _feasible(p, result.target) == meets
                 and (p.metrics["fits"] is not False) == fits]
        if group:
            ax.scatter([p.metrics[col] for p in group], [100 * p.accuracy for p in group],
                       s=14, label=label, zorder=2, facecolors=color if fits else "none",
                       edgecolors=color)
    front = sorted((result.points[n] for n in _front(result)), key=lambda p: p.metrics[col])
    ax.step([p.metrics[col] for p in front], [100 * p.accuracy for p in front], "r-",
            where="post", label="Pareto front (of the designs that fit)", zorder=3)
    ax.axhline(100 * result.target, color="k", ls="--", lw=0.8, label="target")
    for name, n, marker, color in (("fixed8", result.fixed8, "s", "tab:green"),
                                   ("fixed4", result.fixed4, "v", "tab:green"),
                                   ("greedy", result.greedy, "D", "tab:orange"),
                                   ("chosen", result.chosen, "*", "tab:red")):
        p = result.points[n]
        if p.metrics[col] is None:
            continue
        ax.scatter([p.metrics[col]], [100 * p.accuracy], marker=marker, s=140 if
                   name == "chosen" else 70, color=color, edgecolor="k", zorder=4,
                   label=name)
    ax.set_xlabel(f"{result.cost} ({col})")
    ax.set_ylabel("test accuracy %")
    low = min((100 * p.accuracy for _, p in pts if _feasible(p, result.target)),
              default=100 * result.target)
    ax.set_ylim(max(0, min(low, 100 * result.target) - 5), 100.5)
    ax.set_title(f"{result.model} on {result.array}, {result.device}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return figure_png(fig, dpi=120)


#: The files :func:`write_search` writes.
FILES = ("spec.json", "search.json", "search.csv", "search.md", "frontier.png")


def write_search(result, out_dir):
    """Write :data:`FILES` into ``out_dir`` (everything rendered before the first file is
    written; each file atomically). Returns the paths."""
    from ..files import write_files
    files = {"spec.json": json.dumps(result.spec, indent=1).encode(),
             "search.json": json.dumps(result.to_json(), indent=1).encode(),
             "search.csv": _csv(result).encode(),
             "search.md": markdown(result).encode(),
             "frontier.png": _frontier_png(result)}
    return write_files(out_dir, files)
