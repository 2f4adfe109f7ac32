"""Plan a quantized IR graph onto a systolic accelerator: widths, tiling, the layer
descriptors and the predicted cycles.

The accelerator (see :mod:`hwgen.rtl.top`) runs one *layer program entry* per Conv2d or
Linear node; Flatten is free (activations are stored ``C, H, W`` in order). A Linear layer
is a 1×1 convolution of a ``Cin × 1 × 1`` image.

Tiling
------
The output of a layer is a matrix ``pixels × channels`` (pixels in *pool-window order*: the
``pool × pool`` pixels of one max-pool window are consecutive, so the post-processing unit
pools a stream). The array computes a tile of ``rows`` pixels × ``cols`` channels in ``K``
steps (``K = Cin·KH·KW``), one product per PE per step. Tiles run channel-tile-major,
pixel-tile-minor, so every pixel tile of one channel tile reuses the same weights. Tiles
issue every ``P = max(K, rows·cols)`` cycles (one more on one-column arrays, see
:func:`hwgen.timing.tile_period`): the results of a tile are drained through the
one post-processing unit at one value per cycle, so a tile must not finish before the
previous one has drained (split and pooled layers, below, drain a tile in fewer
reads). Edge tiles (pixels or channels past the layer's size) compute
zeros that are never written.

Batches
-------
With ``config.batch = B`` one start takes ``B`` images, stored one after the other (image
``n``'s tensor at ``n·size`` in its region). A convolution has one program entry per image
(``conv1[n]``: the same weights and parameters, that image's input and output). A Linear
layer is one entry whose output pixels are the ``B`` images, so each of its weights is
used ``B`` times: it reads an image-major input (the network's input or a convolution's
output, image ``n``'s ``S`` words at ``n·S``) as a ``1 × B × S`` image under a ``1 × S``
kernel, and another Linear layer's output as a ``C × B × 1`` image under a ``1 × 1``
kernel. The reduction order, and so the weight words, are those of batch 1. A Linear
layer's output is stored ``C × B`` (channel-major; ``plane = B``), so a batched network
ending in a Linear layer returns its output words channel-major
(:meth:`~hwgen.compiler.manifest.CompiledDesign.from_batches` reorders them per image).

Split layers
------------
At batch 1 a Linear layer has one output pixel, so an ordinary tile keeps one row of the
array busy. With ``config.split_fc`` a Linear layer on a fixed-point or shift engine whose
accumulator is exact may instead be *split*: row ``r`` computes the slice ``[r·K', (r+1)·K')``
of the reduction (``K' = ceil(K / rows)``), reading its activations like a ``1 × K'``
kernel at stride ``K'`` over the input seen as a ``1 × K`` image (rows past ``K`` read
padding) and its weights from weight bank ``r``; the drain adds each column's rows
(:func:`hwgen.timing.drain_sum_latency`) and post-processes ``cols`` sums per tile
(:func:`hwgen.timing.tile_period` with ``split``). The sums are exact, so the outputs are
those of the unsplit layer. A layer is split only when the cycle model says it is
faster; split layers come first in the weight memory, and banks ``1 …`` hold only them.

Pooling in the drain
--------------------
With ``config.drain_pool``: the drain reads one result per cycle, so a convolution with a
short reduction waits for it (``P = rows·cols > K``). When a convolution max-pools windows
of ``win = pool²`` pixels (a power of two, at most ``cols``, dividing ``rows``), a tile's
rows hold whole windows, and the drain may instead read the ``win`` rows of a window in
one column at once and pass their maximum on (:func:`hwgen.timing.tile_period` with ``pooled``: ``P =
max(K, (rows / win)·cols)``). That is the pooled output because post-processing (bias,
positive scale, shift with nearest or floor rounding, saturation, ReLU) never decreases
with the sum: the maximum of the requantized values is the requantized maximum. Layers
with wrap-around, stochastic rounding, a negative scale or thresholds are not pooled so.
Every design has at most one such window size; a layer is pooled so only when the cycle
model says it is faster.

Cycle model
-----------
:func:`hwgen.timing.layer_cycles`, composed from the blocks' latencies in
:mod:`hwgen.timing` (the same functions the blocks' ``latency`` properties return).
``ideal = MACs / (rows·cols)``; ``utilization = ideal / cycles``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import ir, timing
from ..contract import SHIFT_BITS, LayerDescriptor, param_bias, param_word_fields
from ..errors import (
    ArgumentError,
    DoesNotFitError,
    FormatError,
    UnsupportedLayerError,
    check_int,
    check_positive,
)
from ..numerics import (
    HW_ROUNDING_MODES,
    BinaryFormat,
    CodebookFormat,
    Pow2Format,
    QFormat,
    accumulator_width,
    dot_range,
    dot_width,
    product_width,
    stochastic_random,
    sum_width,
)
from . import pack
from .limits import check_size, memory_bits

__all__ = ["MAX_PROGRAM", "AcceleratorConfig", "compile_graph", "layer_kinds", "layer_pe_kind",
           "walk_deltas"]

#: Layer program entries the accelerator runs (its ``layer_sel`` port is 8 bits wide).
MAX_PROGRAM = 256


@dataclass(frozen=True)
class AcceleratorConfig:
    """What the user asks of the accelerator; ``None`` widths are sized from the model.

    Parameters
    ----------
    rows, cols : int
        Systolic array shape: ``rows`` output pixels × ``cols`` output channels per tile.
    pe_kind : str or None
        ``None`` (default): each layer runs on the engine of the PE kind its formats call
        for (:func:`layer_pe_kind`; one engine, an array of that kind with its own weight
        memory, per kind the network uses). A kind's name forces every layer onto that
        kind (one with a weight packer in :mod:`hwgen.compiler.pack`: ``"fixed"``,
        fixed-point multiply-accumulate PEs, runs every weight format as integers;
        ``"shift"``: power-of-two weights, no multiplier; ``"xnor"``: binary weights on
        binary activations).
    xnor_width : int
        ``P``, binary positions an XNOR PE takes per step (8, 16, 32, 64; any positive
        integer): the channels of one packed activation word. The activation buffer's
        words are ``max(act_width, P)`` bits wide in designs with an XNOR engine.
    act_width : int or None
        Bits of a stored activation (signed). At least the widest activation format.
    weight_width : int or None
        Bits of a stored weight (signed). At least the widest weight format.
    acc_width : int or None
        Accumulator bits. At least what the dot products need: what each layer's weights
        let them reach on the activations its engine can be given (any stored word for the
        first layer, the producer's output format, without negatives after a ReLU, for the
        others), at most their bit growth.
    buffer_depth : int or None
        Words of each activation buffer copy (two ping-pong regions).
    pe_stages : int
        Pipeline registers on each PE's product (default 1: the product is registered
        before the accumulator's adder, as a DSP block's output register would; 0 adds it
        in the cycle it is formed); a PE's latency is :func:`hwgen.timing.pe_latency` of it.
    batch : int
        Images one start takes (default 1). Each convolution runs once per image; a Linear
        layer runs the whole batch as one layer whose pixels are the images, so each of its
        weights is used ``batch`` times (see "Batches" in the module docstring).
    split_fc : bool
        Run Linear layers at batch 1 with the array's rows as slices of the reduction
        (see "Split layers" in the module docstring) where that takes fewer cycles: the
        engine gets a weight bank per row and the drain an adder tree.
    drain_pool : bool
        Let the drain take a max-pooled convolution's windows at once (see "Pooling in the
        drain" in the module docstring) where that takes fewer cycles: the drain reads
        columns and gets a tree of maxima.
    """

    rows: int = 4
    cols: int = 4
    pe_kind: str | None = None
    act_width: int | None = None
    weight_width: int | None = None
    acc_width: int | None = None
    buffer_depth: int | None = None
    pe_stages: int = 1
    xnor_width: int = 8
    batch: int = 1
    split_fc: bool = False
    drain_pool: bool = False

    def __post_init__(self):
        check_positive(self.rows, "Array rows", ArgumentError)
        check_positive(self.cols, "Array columns", ArgumentError)
        if self.pe_kind is not None:
            pack.packer(self.pe_kind)
        for name in ("act_width", "weight_width", "acc_width", "buffer_depth"):
            if getattr(self, name) is not None:
                check_positive(getattr(self, name), name.replace("_", " ").capitalize(),
                               ArgumentError)
        check_int(self.pe_stages, "PE stages", minimum=0)
        check_positive(self.xnor_width, "XNOR width", ArgumentError)
        check_positive(self.batch, "Batch", ArgumentError)
        for name in ("split_fc", "drain_pool"):
            if not isinstance(getattr(self, name), bool):
                raise ArgumentError(f"{name} must be True or False, not "
                                    f"{getattr(self, name)!r}")

    @classmethod
    def parse_array(cls, text, **kwargs):
        """``"4x4"`` → ``AcceleratorConfig(rows=4, cols=4, **kwargs)``."""
        try:
            rows, cols = (int(part) for part in str(text).lower().split("x"))
        except ValueError:
            raise ArgumentError(
                f"Array shape must be written ROWSxCOLS like '4x4', not {text!r}") from None
        return cls(rows=rows, cols=cols, **kwargs)

    @property
    def pes(self):
        return self.rows * self.cols


# --- lowering ---------------------------------------------------------------------------

def _chain(graph):
    """The hardware layers of ``graph`` (Conv2d/Linear), Flatten folded away."""
    out = []
    for layer in graph.layers:
        if isinstance(layer, ir.Flatten):
            continue
        if isinstance(layer, (ir.Conv2d, ir.Linear)):
            out.append(layer)
            continue
        raise UnsupportedLayerError(
            f"Layer {layer.name!r} ({type(layer).__name__}) has no hardware mapping; the "
            f"accelerator has no average pooling and max-pools only inside the Conv2d "
            f"directly before the pool")
    if not out:
        raise UnsupportedLayerError(f"Model {graph.name!r} has no Conv2d or Linear layer")
    return out


def _check_formats(graph, layers):
    if not isinstance(graph.input_fmt, QFormat):
        raise UnsupportedLayerError(
            f"The input format {graph.input_fmt} must be fixed-point for this accelerator")
    for layer in layers:
        for fmt in layer.w_fmts:
            if not isinstance(fmt, (QFormat, Pow2Format, BinaryFormat, CodebookFormat)):
                raise UnsupportedLayerError(
                    f"Layer {layer.name!r} has {fmt} weights, which no PE kind takes")
        if not isinstance(layer.out_fmt, (QFormat, BinaryFormat)):
            raise UnsupportedLayerError(
                f"Layer {layer.name!r} output format {layer.out_fmt} is neither fixed-point "
                f"nor binary")
        if layer.rounding not in HW_ROUNDING_MODES:
            raise UnsupportedLayerError(
                f"Layer {layer.name!r} uses rounding {layer.rounding!r}; the hardware rounds "
                f"with {', '.join(HW_ROUNDING_MODES)}")


def layer_pe_kind(layer):
    """The PE kind a layer's formats call for: ``"codebook"`` for code-book weights,
    ``"fixed"`` when any weight is fixed point, ``"xnor"`` for binary weights on binary
    activations, else ``"shift"`` (power-of-two or binary weights on fixed-point
    activations)."""
    kinds = {fmt.kind for fmt in layer.w_fmts}
    if "codebook" in kinds:
        return "codebook"
    if "fixed" in kinds:
        return "fixed"
    if kinds == {"binary"} and isinstance(layer.in_fmt, BinaryFormat):
        return "xnor"
    return "shift"


def layer_kinds(layers, forced=None):
    """The PE kind of each layer: :func:`layer_pe_kind`, or ``forced`` for every layer
    (``"fixed"`` runs every format as integers; ``"xnor"`` only binary layers on binary
    activations, refused otherwise)."""
    if forced is None:
        return [layer_pe_kind(layer) for layer in layers]
    if forced == "xnor":
        bad = [layer.name for layer in layers if layer_pe_kind(layer) != "xnor"]
        if bad:
            raise UnsupportedLayerError(
                f"PE kind 'xnor' runs binary weights on binary activations only, and layers "
                f"{', '.join(repr(n) for n in bad)} are not binary on both sides; use "
                f"--pe-kind auto (pe_kind=None), one engine per kind")
    if forced == "codebook":
        bad = [layer.name for layer in layers if layer_pe_kind(layer) != "codebook"]
        if bad:
            raise UnsupportedLayerError(
                f"PE kind 'codebook' runs code-book weights only, and layers "
                f"{', '.join(repr(n) for n in bad)} have none; use --pe-kind auto "
                f"(pe_kind=None), one engine per kind")
    return [forced] * len(layers)


def _shift_code_bits(layers):
    """Exponent code bits of the shift PE's weight field for ``layers``: enough for the
    largest ``e_max − e_min`` of a power-of-two format (0 for binary weights), and for the
    largest weight of a fixed-point format."""
    span = 0
    for layer in layers:
        for c, fmt in enumerate(layer.w_fmts):
            if isinstance(fmt, Pow2Format):
                span = max(span, fmt.e_max - fmt.e_min)
            elif isinstance(fmt, QFormat):
                span = max(span, int(np.abs(layer.weight[c]).max(initial=0)).bit_length() - 1)
    return span.bit_length()


def _thresholds(layer, a_range):
    """``−threshold`` per channel, clamped to ``±(largest |dot| + 1)`` on activations in
    ``a_range`` (where every compare is decided the same way), so that it fits the bias
    field."""
    lo, hi = dot_range(layer.weight, *a_range)
    bound = max([0] + [-v for v in lo] + hi) + 1
    return -np.clip(layer.threshold, -bound, bound)


def _stored_width(fmt):
    return fmt.width + (0 if fmt.signed else 1)


def _geometry(layer, packed_in=None, p=1):
    """(Cin, H, W, KH, KW, stride, pad, pool) of a layer seen as a convolution.

    With ``packed_in``, the shape of the packed binary tensor the layer reads (its
    producer's output), the channels are the packed words' groups ``ceil(Cin / p)``, and a
    Linear layer is a convolution whose kernel covers the producer's whole image."""
    if isinstance(layer, ir.Linear):
        if packed_in is None:
            return layer.in_shape[0], 1, 1, 1, 1, 1, 0, 1
        c, h, w = (tuple(packed_in) + (1, 1))[:3]
        return _groups(c, p), h, w, h, w, 1, 0, 1
    cin, h, w = layer.in_shape
    kh, kw = layer.kernel
    if packed_in is not None:
        cin = _groups(cin, p)
    return cin, h, w, kh, kw, layer.stride, layer.padding, layer.pool


def _groups(channels, p):
    return -(-channels // p)


def _tensor_words(shape, packed, p):
    """Activation buffer words of a tensor: one per value, or for a packed binary tensor
    one per ``p`` channels of a pixel."""
    shape = tuple(int(n) for n in shape)
    if not packed:
        return int(np.prod(shape))
    return _groups(shape[0], p) * int(np.prod(shape[1:]))


def _xnor_block(layer, in_shape, p):
    """The layer's ±1 weights ``(cout, G·KH·KW·p)`` in the XNOR engine's reduction order
    (channel group, ky, kx, channel in the group), channels past ``Cin`` as +1 (masked)."""
    cout = layer.out_channels
    if isinstance(layer, ir.Linear):
        c, h, w = (tuple(in_shape) + (1, 1))[:3]
        weight = layer.weight.reshape(cout, c, h, w)
    else:
        weight = layer.weight
    _, cin, kh, kw = weight.shape
    groups = _groups(cin, p)
    full = np.ones((cout, groups * p, kh, kw), dtype=np.int64)
    full[:, :cin] = weight
    return (full.reshape(cout, groups, p, kh, kw).transpose(0, 1, 3, 4, 2)
            .reshape(cout, groups * kh * kw * p))


def _codebook_block(layer, index_bits):
    """``(indices, tables)`` of a code-book layer: its weights as ``(cout, K)`` table
    indices and each channel's table (:func:`hwgen.compiler.pack.codebook_indices`),
    ``2**index_bits`` entries."""
    fmt = layer.w_fmts[0]
    try:
        return pack.codebook_indices(layer.weight.reshape(layer.out_channels, layer.reduction),
                                     fmt.per_channel, 1 << index_bits)
    except FormatError as e:
        text = str(e)
        raise FormatError(f"Layer {layer.name!r}: {text[:1].lower()}{text[1:]}") from None


def walk_deltas(h, w, stride, pad, pool, pw):
    """Start values and per-level steps of the pixel walk (the sequencer's records).

    The walker visits output pixels in pool-window order, keeping for each the input
    coordinates of its receptive field's corner ``(iy0, ix0)`` and the address offset
    ``base = iy0*W + ix0``. Level 0 steps ``dx`` inside a window, level 1 ``dy``, level 2
    the window column ``px``, level 3 the window row ``py``; each level adds its deltas.
    ``stride`` is an integer or ``(SY, SX)``.
    :func:`hwgen.golden.blocks.pixel_walker` walks them.
    """
    sy, sx = ir.stride_pair(stride)
    start = (-pad, -pad, -pad * w - pad)
    d0 = (0, sx, sx)
    d1 = (sy, -(pool - 1) * sx, sy * w - (pool - 1) * sx)
    d2 = (-(pool - 1) * sy, sx, sx - (pool - 1) * sy * w)
    d3 = (sy, -(pw * pool - 1) * sx, sy * w - (pw * pool - 1) * sx)
    return start, (d0, d1, d2, d3)


def _factor_width(kind, weight_width, int_w):
    """Width of the weight factor of a product on an engine of ``kind``: a fixed-point PE's
    multiplier takes the stored weight, the others the widest weight as an integer."""
    return weight_width if kind == "fixed" else int_w


def _layer_acc_bits(layer, kind, act_width, weight_width, int_w, p, a_range):
    """Accumulator bits a layer needs on its engine: what its weights let its dot products
    and their partial sums reach on the activations ``a_range`` the engine can be given
    (:func:`hwgen.numerics.dot_width`), at least a product's bits, at most the bit growth of
    its longest dot (XNOR layers: the bit growth of ±1 products)."""
    if kind == "xnor":
        return max(sum_width(2, layer.reduction), (p + 1).bit_length() + 1)
    factor = _factor_width(kind, weight_width, int_w)
    return min(accumulator_width(act_width, factor, layer.reduction),
               max(product_width(act_width, factor), dot_width(layer.weight, *a_range)))


def _split_steps(config, layer, kind, packed_in, narrow, k, n_ct, pe_lat, post_lat):
    """A row's slice ``K' = ceil(K / rows)`` of the reduction if ``layer`` runs split
    (see "Split layers" in the module docstring), else 0: a Linear layer at batch 1 with
    ``config.split_fc``, on a fixed-point or shift engine, reading an unpacked tensor with
    an exact accumulator, when the cycle model makes it faster."""
    rows, cols = config.rows, config.cols
    if not (config.split_fc and config.batch == 1 and rows > 1
            and isinstance(layer, ir.Linear) and kind in ("fixed", "shift")
            and not packed_in and not narrow):
        return 0
    part = -(-k // rows)
    whole = timing.layer_cycles(k, n_ct, rows, cols, pe_lat, post_lat).total
    cut = timing.layer_cycles(part, n_ct, rows, cols, pe_lat, post_lat, split=True).total
    return part if cut < whole else 0


def _drain_pool_win(config, layer, geometry, k, pe_lat, post_lat, n_ct):
    """The pool window ``win`` if the drain may take ``layer``'s max-pool windows (see
    "Pooling in the drain" in the module docstring), else 0: a pooled convolution whose
    window of ``win = pool²`` pixels is a power of two, at most ``cols`` and dividing
    ``rows``, whose post-processing never decreases with the sum (no wrap-around, no
    stochastic rounding, no negative scale, no threshold), when the cycle model makes it
    faster."""
    rows, cols = config.rows, config.cols
    pool = geometry[7]
    win = pool * pool
    if not (config.drain_pool and isinstance(layer, ir.Conv2d) and pool > 1
            and win & (win - 1) == 0
            and win <= cols and rows % win == 0 and layer.overflow == "saturate"
            and layer.rounding != "stochastic" and not layer.binary_out
            and (layer.scale is None or (np.asarray(layer.scale) >= 0).all())):
        return 0
    _, ho, wo = layer.pre_pool_shape
    tiles = math.ceil((ho // pool) * (wo // pool) * win / rows) * n_ct
    whole = timing.layer_cycles(k, tiles, rows, cols, pe_lat, post_lat).total
    cut = timing.layer_cycles(k, tiles, rows, cols, pe_lat, post_lat, pooled=win).total
    return win if cut < whole else 0


def _narrow(layer, growth_bits):
    """Whether ``layer``'s narrow accumulator can overflow: it asks for fewer bits than its
    dot products need (:func:`_layer_acc_bits`; a wider one is exact, like none)."""
    return layer.acc_width is not None and layer.acc_width < growth_bits


def _acc_modes(layers, kinds, growth, engine_acc):
    """Per engine kind its accumulator bounds ``((width, overflow), ...)``, and per layer
    the index of its bound (the descriptor's ``acc_mode``).

    A layer whose narrow accumulator can overflow needs its own ``(acc_width,
    acc_overflow)``; any other layer shares the first bound at least as wide as its bit
    growth (nothing overflows there), else the engine's full width with wrap-around (free).
    So an engine whose layers all ask for one narrow accumulator has one bound and no
    ``acc_mode`` select."""
    modes = {kind: [] for kind in engine_acc}
    for layer, kind, bits in zip(layers, kinds, growth):
        mode = (layer.acc_width, layer.acc_overflow)
        if _narrow(layer, bits) and mode not in modes[kind]:
            modes[kind].append(mode)
    index = []
    for layer, kind, bits in zip(layers, kinds, growth):
        if _narrow(layer, bits):
            index.append(modes[kind].index((layer.acc_width, layer.acc_overflow)))
            continue
        full = (engine_acc[kind], "wrap")
        if full not in modes[kind] and not any(w >= bits for w, _ in modes[kind]):
            modes[kind].append(full)
        index.append(modes[kind].index(full) if full in modes[kind] else
                     next(n for n, (w, _) in enumerate(modes[kind]) if w >= bits))
    for kind, kind_modes in modes.items():
        if not kind_modes:
            kind_modes.append((engine_acc[kind], "wrap"))
    return {kind: tuple(m) for kind, m in modes.items()}, index


def compile_graph(graph, config, *, allow_large=False):
    """Lower ``graph`` onto ``config``; return a :class:`CompiledDesign`.

    Raises :class:`DoesNotFitError` with what does not fit and what to change, and for a
    design beyond :data:`~hwgen.compiler.limits.SIZE_LIMITS` unless ``allow_large``.
    """
    from .manifest import CompiledDesign, EngineImage, LayerProgram
    check_size(config, allow_large=allow_large)
    layers = _chain(graph)
    _check_formats(graph, layers)
    entries = sum(config.batch if isinstance(layer, ir.Conv2d) else 1 for layer in layers)
    if entries > MAX_PROGRAM:
        raise DoesNotFitError(
            f"A batch of {config.batch} makes {entries} layer program entries (one per "
            f"convolution and image, one per Linear layer), more than the accelerator's "
            f"{MAX_PROGRAM}; use a smaller --batch")
    kinds = layer_kinds(layers, config.pe_kind)
    engines = list(dict.fromkeys(kinds))
    rows, cols = config.rows, config.cols
    p = config.xnor_width
    # a binary tensor is stored packed when an XNOR layer reads it
    packed_in = [kind == "xnor" for kind in kinds]
    pack_out = packed_in[1:] + [False]

    # widths: `int_w` is the widest weight as an integer (bit growth), a weight field the
    # PE kind's (the shift PE's: its exponent code)
    need_act = max([_stored_width(graph.input_fmt)] + [_stored_width(l.out_fmt) for l in layers])
    act_width = config.act_width or need_act
    if act_width < need_act:
        raise DoesNotFitError(f"Activations need {need_act} bits but the config stores "
                              f"{act_width!r}; raise act_width")
    word_width = max(act_width, p) if "xnor" in engines else act_width
    weight_widths, int_widths = {}, {}
    for kind in engines:
        mine = [l for l, k in zip(layers, kinds) if k == kind]
        int_widths[kind] = max(f.width for l in mine for f in l.w_fmts)
        if kind == "codebook":
            need_w = max(f.bits for l in mine for f in l.w_fmts)
        else:
            need_w = {"shift": 2 + _shift_code_bits(mine), "xnor": p}.get(kind,
                                                                         int_widths[kind])
        # an XNOR field is P positions, a code-book field an index: neither is a weight width
        width = need_w if kind in ("xnor", "codebook") else (config.weight_width or need_w)
        if width < need_w:
            raise DoesNotFitError(f"Weights need {need_w} bits but the config stores "
                                  f"{width!r}; raise weight_width")
        weight_widths[kind] = width
    scaled = [layer for layer in layers if layer.scale is not None]
    scale_width = max((int(np.abs(layer.scale).max(initial=1)).bit_length() + 1
                       for layer in scaled), default=0)
    # the activations a layer's engine can be given: the first layer's any stored word (the
    # host may send any), the others' their producer's output format (post-processing
    # saturates or wraps into it, then its ReLU drops the negatives; padding is 0)
    top = 1 << (act_width - 1)
    a_ranges = [(-top, top - 1)] + [(0 if l.relu else l.out_fmt.min_int, l.out_fmt.max_int)
                                    for l in layers[:-1]]
    engine_acc = dict.fromkeys(engines, 0)
    need_acc = 0
    growth = []
    for layer, kind, a_range in zip(layers, kinds, a_ranges):
        bits = _layer_acc_bits(layer, kind, act_width, weight_widths[kind], int_widths[kind], p,
                               a_range)
        growth.append(bits)
        if _narrow(layer, bits):
            # the narrow bound, in an accumulator that holds every product exactly
            bits = max(layer.acc_width, product_width(
                act_width, _factor_width(kind, weight_widths[kind], int_widths[kind])))
        engine_acc[kind] = max(engine_acc[kind], bits)
        bias = _thresholds(layer, a_range) if layer.binary_out else layer.bias
        if bias is not None and bias.size:
            # the bias field is acc_width + scale_width bits wide
            bits = max(bits, int(np.abs(bias).max()).bit_length() + 2 - scale_width)
        need_acc = max(need_acc, bits)
    acc_width = config.acc_width or need_acc
    if acc_width < need_acc:
        raise DoesNotFitError(f"Dot products need a {need_acc}-bit accumulator but the config "
                              f"has {acc_width!r}; raise acc_width")
    if config.acc_width:
        engine_acc = dict.fromkeys(engines, acc_width)
    acc_modes, layer_modes = _acc_modes(layers, kinds, growth, engine_acc)

    # activation memory: two ping-pong regions of the largest tensor
    sizes = [int(np.prod(graph.input_shape))] + [
        _tensor_words(l.out_shape, packed, p) for l, packed in zip(layers, pack_out)]
    region = config.batch * max(sizes)
    depth_needed = 2 * region
    buffer_depth = config.buffer_depth or depth_needed
    if buffer_depth < depth_needed:
        raise DoesNotFitError(f"Activations need {depth_needed} words of buffer (two regions of "
                              f"{region}) but the config has {buffer_depth!r}; raise "
                              f"buffer_depth")

    in_shapes = [tuple(graph.input_shape)] + [tuple(l.out_shape) for l in layers[:-1]]
    geometry = [_geometry(layer, shape if packed else None, p)
                for layer, shape, packed in zip(layers, in_shapes, packed_in)]
    n_ct_all = [math.ceil(layer.out_channels / cols) for layer in layers]
    steps_all = [g[0] * g[3] * g[4] for g in geometry]
    pe_lat = timing.pe_latency(config.pe_stages)
    roundings = tuple(sorted({layer.rounding for layer in layers}))
    post_lat = timing.post_process_latency(scale_width > 0, "stochastic" in roundings)
    # split layers: a row's slice of the reduction (0: not split), and the weight words
    # each takes in every bank
    split = [_split_steps(config, layer, kind, packed, _narrow(layer, bits), k, n_ct, pe_lat,
                          post_lat)
             for layer, kind, packed, bits, k, n_ct in zip(layers, kinds, packed_in, growth,
                                                           steps_all, n_ct_all)]
    # pooled layers: the drain takes the max-pool windows (one window size per design)
    pool_win = 0
    pooled = []
    for index, layer in enumerate(layers):
        win = _drain_pool_win(config, layer, geometry[index], steps_all[index], pe_lat,
                              post_lat, n_ct_all[index])
        if win and pool_win in (0, win):
            pool_win = win
        pooled.append(bool(win) and win == pool_win)
    words = [n_ct * (rows * s_k if s_k else k)
             for n_ct, k, s_k in zip(n_ct_all, steps_all, split)]
    check_size(config, memory_bits(
        config, word_width, buffer_depth,
        [(weight_widths[kind], sum(n for n, lk in zip(words, kinds) if lk == kind))
         for kind in engines],
        sum(n * cols for n in n_ct_all),
        sum(width for _, width, _ in param_word_fields(
            acc_width, scale_width, max(1, (buffer_depth - 1).bit_length()),
            max(1, (p - 1).bit_length())))), allow_large=allow_large)

    images = {kind: [] for kind in engines}
    # weight banks 1 … rows − 1 of the engines that run split layers
    banks = {kind: [[] for _ in range(rows - 1)] for kind in engines}
    # code-book engines: table rows (per column, the table) and the address each starts at
    table_rows, table_bounds = [], []
    param_image, programs = [], {}
    batch = config.batch
    # split layers first, so that the banks hold only them (at the weight memory's
    # addresses); the program stays in layer order
    order = sorted(range(len(layers)), key=lambda i: not split[i])
    for index in order:
        layer, kind = layers[index], kinds[index]
        cin, h, w, kh, kw, stride, pad, pool = geometry[index]
        cout = layer.out_channels
        k = split[index] or steps_all[index]
        n_ct = n_ct_all[index]
        in_region, out_region = (index % 2) * region, ((index + 1) % 2) * region
        # passes: (name, input and output address offsets, the image the walker walks
        # (cin, h, w, kh, kw, stride, pad, pool), pool windows per column and per row)
        if split[index]:
            # row r: the input as a 1 × K image under a 1 × K' kernel at stride K'
            walk = (1, 1, steps_all[index], 1, k, (1, k), 0, 1)
            passes = [(layer.name, 0, 0, walk, 1, rows)]
        elif isinstance(layer, ir.Linear):
            walk = (cin, h, w, kh, kw, stride, pad, pool)
            if batch > 1 and index > 0 and isinstance(layers[index - 1], ir.Linear):
                walk = (cin, batch, 1, 1, 1, 1, 0, 1)       # C × B × 1, channel-major
            elif batch > 1:
                assert sizes[index] == k
                walk = (1, batch, k, 1, k, 1, 0, 1)         # 1 × B × S, image-major
            passes = [(layer.name, 0, 0, walk, batch, 1)]
        else:
            _, ho, wo = layer.pre_pool_shape
            passes = [(f"{layer.name}[{n}]" if batch > 1 else layer.name,
                       n * sizes[index], n * sizes[index + 1], geometry[index],
                       ho // pool, wo // pool) for n in range(batch)]
        if passes[0][4] < 1 or passes[0][5] < 1:
            raise DoesNotFitError(f"Layer {layer.name!r} produces no output pixels")
        plane = 1 if split[index] else passes[0][4] * passes[0][5]
        if layer.binary_out:
            shifts = np.zeros(cout, dtype=np.int64)
        else:
            shifts = layer.acc_frac - layer.out_fmt.frac
        lo, hi = -(1 << (SHIFT_BITS - 1)), (1 << (SHIFT_BITS - 1)) - 1
        if shifts.min() < lo or shifts.max() > hi:
            raise DoesNotFitError(f"Layer {layer.name!r} needs a requantization shift of "
                                  f"{int(shifts.max())!r}, outside [{lo}, {hi}]")
        image = images[kind]
        if kind == "xnor":
            real_cin = in_shapes[index][0]
            tail_from, tail_bits = (cin - 1) * kh * kw, real_cin - (cin - 1) * p
        else:
            tail_from, tail_bits = k, 0
        w_base, param_base = len(image), len(param_image)
        for name, in_off, out_off, walk, ph, pwin in passes:
            wcin, wh, ww, wkh, wkw, wstride, wpad, wpool = walk
            npix = ph * pwin * wpool * wpool
            n_pt = math.ceil(npix / rows)
            tiles = n_pt * n_ct
            start, deltas = walk_deltas(wh, ww, wstride, wpad, wpool, pwin)
            win = wpool * wpool
            steps = {f"d{level}_{axis}": int(value) for level, delta in enumerate(deltas)
                     for axis, value in zip(("iy", "ix", "base"), delta)}
            drain_pool = pool_win if pooled[index] else 0
            desc = LayerDescriptor(
                k_len=k, period=timing.tile_period(k, rows, cols, bool(split[index]),
                                                   drain_pool),
                kw=wkw, kh=wkh, cin=wcin,
                d_ky=ww - (wkw - 1), d_ci=wh * ww - (wkh - 1) * ww - (wkw - 1),
                in_h=wh, in_w=ww, in_base=in_region + in_off,
                pool=wpool, pw=pwin, ph=ph, walk_len=n_pt * rows, npix=npix,
                start_iy=start[0], start_ix=start[1], start_base=start[2], **steps,
                n_pt=n_pt, n_ct=n_ct, cout=cout, w_base=w_base,
                rows_div=rows // win, rows_mod=rows % win,
                param_base=param_base, out_base=out_region + out_off, plane=plane, win=win,
                out_width=layer.out_fmt.width, out_signed=int(layer.out_fmt.signed),
                relu=int(layer.relu), pool_en=int(wpool > 1),
                rounding=layer.rounding, overflow=layer.overflow,
                binary_out=int(layer.binary_out), pack_out=int(pack_out[index]),
                engine=engines.index(kind), tail_from=tail_from, tail_bits=tail_bits,
                acc_mode=layer_modes[index], split=int(bool(split[index])),
                drain_pool=int(pooled[index]),
                rand_mask=int(stochastic_random(layer.seed, layer.layer_number, 0, 0))
                if layer.rounding == "stochastic" and not layer.binary_out else 0,
            )
            programs.setdefault(index, []).append(LayerProgram(
                name=name, kind="conv" if isinstance(layer, ir.Conv2d) else "linear",
                in_shape=tuple(layer.in_shape), out_shape=tuple(layer.out_shape),
                in_fmt=layer.in_fmt, out_fmt=layer.out_fmt,
                w_width=max(f.width for f in layer.w_fmts),
                macs=layer.macs * (batch if isinstance(layer, ir.Linear) else 1),
                tiles=tiles, desc=desc,
                cycles=timing.layer_cycles(k, tiles, rows, cols, pe_lat, post_lat,
                                           bool(split[index]), drain_pool),
                pe_kind=kind))
        # weights: one word per (channel tile, step) holding `cols` weights (hwgen.contract)
        if kind == "xnor":
            wmat = _xnor_block(layer, in_shapes[index], p)
        elif kind == "codebook":
            wmat, tables = _codebook_block(layer, weight_widths[kind])
        else:
            wmat = layer.weight.reshape(cout, layer.reduction)
        for ct in range(n_ct):
            if kind == "codebook" and (ct == 0 or layer.w_fmts[0].per_channel):
                table_bounds.append(len(image))
                table_rows.append(tuple(
                    tuple(int(v) for v in tables[ch]) if ch < cout
                    else (0,) * (1 << weight_widths[kind])
                    for ch in range(ct * cols, (ct + 1) * cols)))
            chans = wmat[ct * cols:(ct + 1) * cols]
            # bank b (0: the weight memory) holds slice b of the reduction of a split layer
            # (an unsplit layer's block is its whole row of the weight matrix: for an XNOR
            # layer that is P positions a step)
            width = k if split[index] else wmat.shape[1]
            for b, bank in enumerate([image] + banks[kind] if split[index] else [image]):
                block = np.zeros((cols, width), dtype=np.int64)
                part = chans[:, b * width:(b + 1) * width]
                block[:len(chans), :part.shape[1]] = part
                try:
                    bank.extend(pack.weight_words(kind, block, weight_widths[kind]))
                except (FormatError, DoesNotFitError) as e:
                    text = str(e)
                    raise type(e)(f"Layer {layer.name!r}: {text[:1].lower()}{text[1:]}") \
                        from None
        if layer.binary_out:
            bias = _thresholds(layer, a_ranges[index])
        else:
            bias = layer.bias if layer.bias is not None else np.zeros(cout, dtype=np.int64)
        scale = layer.scale if layer.scale is not None else np.ones(cout, dtype=np.int64)
        flip = layer.flip if layer.flip is not None else np.zeros(cout, dtype=np.int64)
        for ch in range(n_ct * cols):
            if ch >= cout:
                param_image.append((0, 0, 1, 0, 0, 0))
                continue
            field = param_bias(bias[ch], shifts[ch], layer.rounding, acc_width + scale_width)
            if pack_out[index]:
                param_image.append((field, int(shifts[ch]), int(scale[ch]),
                                    int(flip[ch]), (ch // p) * plane, ch % p))
            else:
                param_image.append((field, int(shifts[ch]), int(scale[ch]),
                                    int(flip[ch]), ch * plane, 0))

    n_layers = len(layers)
    return CompiledDesign(
        name=graph.name, config=config, act_width=act_width, word_width=word_width,
        acc_width=acc_width, buffer_depth=buffer_depth,
        input_shape=tuple(graph.input_shape), input_fmt=graph.input_fmt,
        output_shape=tuple(layers[-1].out_shape), output_fmt=layers[-1].out_fmt,
        input_base=0, output_base=(n_layers % 2) * region,
        layers=tuple(entry for index in range(len(layers)) for entry in programs[index]),
        engines=tuple(EngineImage(kind, weight_widths[kind], engine_acc[kind],
                                  tuple(images[kind]), acc_modes[kind],
                                  *((int_widths[kind], tuple(table_rows), tuple(table_bounds))
                                    if kind == "codebook" else ()),
                                  banks=tuple(tuple(bank) for bank in banks[kind])
                                  if any(split[i] for i in range(len(layers))
                                         if kinds[i] == kind) else ())
                      for kind in engines),
        param_image=tuple(param_image),
        roundings=roundings,
        overflows=tuple(sorted({l.overflow for l in layers})),
        scale_width=scale_width,
        thresholds=any(layer.binary_out for layer in layers),
    )
