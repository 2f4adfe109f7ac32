"""The typed contract between the compiler and the gateware.

Both sides import this module (plain Python: no Amaranth, no torch); neither imports the
other. The compiler fills one :class:`LayerDescriptor` per layer program entry, the
gateware derives its descriptor register layout from :func:`descriptor_fields`
(:func:`hwgen.rtl.layouts.descriptor_layout`), and the manifest carries both with
:data:`CONTRACT_VERSION`.

Memory words
------------
Weight memory
    One memory per engine (PE kind); in it one word per (channel tile, reduction step
    ``k``), at ``w_base + tile·K + k``: the ``cols`` weights of that step, column ``c`` in bits ``[c·B, (c+1)·B)``; what a weight
    field holds (``B`` bits) is the PE kind's (``hwgen.compiler.pack`` writes it,
    the PE kind's ``weight_word_layout`` reads it). An engine that runs ``split`` layers
    has ``rows − 1`` more weight banks, words of the same layout: in a split layer, array
    row ``r`` computes the slice ``[r·K, (r+1)·K)`` of the reduction, and its weights are
    bank ``r``'s word at the same address (bank 0 is the weight memory); the banks hold
    only the split layers, which come first in the weight memory. A code-book engine's fields are
    ``B``-bit table indices; its table rows and the address each starts at travel with its
    image (``hwgen.compiler.EngineImage``), and ``hwgen.rtl.weight_lookup`` reads them.
Parameter memory
    One word per output channel slot (``param_base + channel``), fields
    :func:`param_word_fields`: the bias at the (scaled) accumulator's binary point plus
    rounding to nearest's half step (:func:`param_bias`, so that the post-processing unit
    adds the bias and the half step as one value), the signed requantization shift
    (:data:`SHIFT_BITS`), the per-channel multiplier ``scale`` (only in designs with
    scales; 1 for a layer without) and ``flip``. For a layer with
    binary outputs the bias holds ``−threshold``, the shift is 0 and ``flip`` selects
    ``dot <= threshold`` instead of ``dot >= threshold``. ``offset`` and ``bit`` place the
    channel's outputs: output pixel ``q`` of the channel goes to ``out_base + offset + q``,
    into bit ``bit`` of that word when the layer's outputs are packed (``pack_out``). The
    compiler's ``param_image`` holds ``(bias, shift, scale, flip, offset, bit)`` per slot.
Packed binary tensors
    A binary tensor read by an XNOR layer is stored packed: channel ``c`` of pixel
    ``(y, x)`` is bit ``c mod P`` of word ``(c div P)·H·W + y·W + x`` (1 ↔ +1), so that
    one word holds ``P`` channels of a pixel and the XNOR layer reduces over ``(channel
    group, ky, kx)``, one word per step. Every other tensor is one value per word.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .errors import FormatError

__all__ = [
    "CONTRACT_VERSION",
    "COUNT",
    "MODE",
    "SHIFT_BITS",
    "SIGNED",
    "WORD",
    "WORD_BITS",
    "LayerDescriptor",
    "descriptor_fields",
    "param_bias",
    "param_word_fields",
]

#: Version of the layer descriptor and memory words; a manifest of another version is
#: refused. Version 2: typed descriptor (version 1 was an untyped dict). Version 3:
#: ``binary_out`` descriptor field; ``scale`` and ``flip`` in the parameter word. Version 4:
#: several engines (``engine``, ``tail_from``, ``tail_bits``, ``pack_out``); the output
#: address of a channel (``offset``, ``bit``) in the parameter word, not in the descriptor.
#: Version 5: ``acc_mode`` (narrow accumulators: the engine's accumulator bound).
#: Version 6: ``rounding`` may be ``stochastic``; ``rand_mask`` (a :data:`WORD` field).
#: Version 7: ``split`` (fully connected layers on weight banks, one per array row);
#: ``drain_pool`` (max-pool windows taken by the drain). Version 8: the parameter word's
#: ``bias`` holds rounding to nearest's half step too (:func:`param_bias`), 3 bits wider.
CONTRACT_VERSION = 8

#: Width of the per-channel requantization shift (signed) in the parameter memory.
SHIFT_BITS = 8

#: Kinds of descriptor fields: unsigned counts, signed coordinates and address offsets,
#: mode names (``rounding``: :data:`hwgen.numerics.HW_ROUNDING_MODES`, ``overflow``:
#: :data:`hwgen.numerics.HW_OVERFLOW_MODES`) and constant words of :data:`WORD_BITS` bits
#: (not counters: they do not widen the sequencer's counts).
COUNT, SIGNED, MODE, WORD = "unsigned", "signed", "mode", "word"
#: Width of a :data:`WORD` field.
WORD_BITS = 32


def _count(doc):
    return field(metadata={"kind": COUNT, "doc": doc})


def _signed(doc):
    return field(metadata={"kind": SIGNED, "doc": doc})


def _mode(doc):
    return field(metadata={"kind": MODE, "doc": doc})


def _word(doc):
    return field(default=0, metadata={"kind": WORD, "doc": doc})


@dataclass(frozen=True)
class LayerDescriptor:
    """One layer program entry: what the sequencer, the drain and the post-processing unit
    need to run a Conv2d or Linear layer (a Linear layer is a 1×1 convolution of a
    ``cin × 1 × 1`` image). Fields are in the order of the hardware register.
    """

    # reduction loop: k = (ci, ky, kx) as an address offset
    k_len: int = _count("reduction length K = cin·kh·kw")
    period: int = _count("cycles between tile issues, hwgen.timing.tile_period")
    kw: int = _count("kernel width")
    kh: int = _count("kernel height")
    cin: int = _count("input channels")
    d_ky: int = _signed("address step to the next kernel row: W − (kw − 1)")
    d_ci: int = _signed("address step to the next input channel")
    in_h: int = _signed("input height (padding test)")
    in_w: int = _signed("input width (padding test)")
    in_base: int = _signed("activation address of the input region")
    # pixel walker: (dx, dy) inside a pool window, (px, py) over windows
    pool: int = _count("max-pool side (1: no pooling)")
    pw: int = _count("pool windows per output row")
    ph: int = _count("pool windows per output column")
    walk_len: int = _count("pixels walked before the walker starts over: n_pt·rows")
    npix: int = _count("real output pixels (pre-pool, whole windows only)")
    start_iy: int = _signed("first pixel's receptive-field corner, row")
    start_ix: int = _signed("first pixel's receptive-field corner, column")
    start_base: int = _signed("first pixel's corner address offset")
    d0_iy: int = _signed("walker level 0 (dx) step: row")
    d0_ix: int = _signed("walker level 0 (dx) step: column")
    d0_base: int = _signed("walker level 0 (dx) step: address")
    d1_iy: int = _signed("walker level 1 (dy) step: row")
    d1_ix: int = _signed("walker level 1 (dy) step: column")
    d1_base: int = _signed("walker level 1 (dy) step: address")
    d2_iy: int = _signed("walker level 2 (window column) step: row")
    d2_ix: int = _signed("walker level 2 (window column) step: column")
    d2_base: int = _signed("walker level 2 (window column) step: address")
    d3_iy: int = _signed("walker level 3 (window row) step: row")
    d3_ix: int = _signed("walker level 3 (window row) step: column")
    d3_base: int = _signed("walker level 3 (window row) step: address")
    # tiles
    n_pt: int = _count("pixel tiles")
    n_ct: int = _count("channel tiles")
    cout: int = _count("output channels")
    w_base: int = _count("weight memory address of the layer's first word")
    rows_div: int = _count("rows // win: pool windows a pixel tile advances")
    rows_mod: int = _count("rows % win")
    # drain and post-processing
    param_base: int = _count("parameter memory address of the layer's first channel")
    out_base: int = _count("activation address of the output region")
    plane: int = _count("output pixels per channel (after pooling)")
    win: int = _count("pool window size, pool²")
    out_width: int = _count("output format width")
    out_signed: int = _count("1: output format is two's complement")
    relu: int = _count("1: ReLU after requantization")
    pool_en: int = _count("1: max-pool enabled (pool > 1)")
    rounding: str = _mode("rounding mode name")
    overflow: str = _mode("overflow mode name")
    binary_out: int = field(default=0, metadata={
        "kind": COUNT, "doc": "1: binary outputs, +1/−1 by a threshold compare per channel"})
    pack_out: int = field(default=0, metadata={
        "kind": COUNT, "doc": "1: binary outputs stored packed, one bit per channel (for an "
                              "XNOR consumer)"})
    # engines
    engine: int = field(default=0, metadata={
        "kind": COUNT, "doc": "index of the engine (PE kind) that runs the layer"})
    tail_from: int = field(default=0, metadata={
        "kind": COUNT, "doc": "XNOR layers: first reduction step of the last channel group"})
    tail_bits: int = field(default=0, metadata={
        "kind": COUNT, "doc": "XNOR layers: real channels of the last channel group (1..P)"})
    acc_mode: int = field(default=0, metadata={
        "kind": COUNT, "doc": "index of the layer's accumulator bound in its engine's "
                              "acc_modes (narrow accumulators)"})
    split: int = field(default=0, metadata={
        "kind": COUNT, "doc": "1: a fully connected layer whose array rows are slices of "
                              "the reduction: row r reads weight bank r, the drain sums "
                              "each column's rows"})
    drain_pool: int = field(default=0, metadata={
        "kind": COUNT, "doc": "1: the drain takes each column's max-pool windows (rows_div "
                              "of win rows) at once, their maxima go to post-processing"})
    # stochastic rounding
    rand_mask: int = _word("stochastic rounding: the layer's random mask, "
                           "hwgen.numerics.stochastic_random(seed, layer_number, 0, 0); the "
                           "post-processing unit XORs it into the hash of each value's "
                           "position")

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["kind"] == MODE:
                if not isinstance(value, str):
                    raise FormatError(f"Descriptor field {f.name!r} must be a mode name, "
                                      f"not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int):
                raise FormatError(f"Descriptor field {f.name!r} must be an integer, not "
                                  f"{value!r}")
            elif f.metadata["kind"] == COUNT and value < 0:
                raise FormatError(f"Descriptor field {f.name!r} is a count and must not be "
                                  f"negative, not {value!r}")
            elif f.metadata["kind"] == WORD and not 0 <= value < 1 << WORD_BITS:
                raise FormatError(f"Descriptor field {f.name!r} is a {WORD_BITS}-bit word, "
                                  f"not {value!r}")

    def to_json(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, obj):
        names = [f.name for f in fields(cls)]
        if not isinstance(obj, dict) or sorted(obj) != sorted(names):
            raise FormatError(f"Layer descriptor must have the fields {', '.join(names)}")
        return cls(**obj)


def descriptor_fields():
    """``((name, kind), ...)`` of :class:`LayerDescriptor` in register order; ``kind`` is
    :data:`COUNT`, :data:`SIGNED`, :data:`MODE` or :data:`WORD`."""
    return tuple((f.name, f.metadata["kind"]) for f in fields(LayerDescriptor))


def param_word_fields(acc_width, scale_width=0, offset_width=1, bit_width=1):
    """``((name, width, signed), ...)`` of a parameter memory word: ``bias``
    (``acc_width + scale_width + 3`` bits, signed: :func:`param_bias` of a bias as wide as
    the scaled accumulator), ``shift``
    (:data:`SHIFT_BITS`, signed), ``scale`` (``scale_width`` bits, signed; only when
    ``scale_width > 0``), ``flip`` (1 bit), ``offset`` (``offset_width`` bits: the
    channel's first output address after the region's base) and ``bit`` (``bit_width``
    bits: the channel's bit in a packed word; 0 in a layer whose outputs are not
    packed)."""
    fields = [("bias", acc_width + scale_width + 3, True), ("shift", SHIFT_BITS, True)]
    if scale_width:
        fields.append(("scale", scale_width, True))
    fields += [("flip", 1, False), ("offset", offset_width, False), ("bit", bit_width, False)]
    return tuple(fields)


def param_bias(bias, shift, rounding, acc_width):
    """The parameter word's ``bias`` field: ``bias`` plus the half step that rounding to
    nearest adds before it shifts right.

    That is ``bias + 2**(s − 1)`` with ``s = min(shift, acc_width + 2)`` when ``rounding``
    is ``nearest_even`` or ``nearest_up`` and ``s > 0``, else ``bias``. Right shifts of
    ``acc_width + 1`` or more all give the same result, and the post-processing unit
    clamps them to ``acc_width + 2``; so the field of a bias that fits ``acc_width`` bits
    (signed) fits ``acc_width + 3``.

    Parameters
    ----------
    bias, shift : int
        The channel's bias at the accumulator's binary point and its requantization shift.
    rounding : str
        The layer's rounding mode.
    acc_width : int
        Width of the (scaled) accumulator.
    """
    s = min(int(shift), int(acc_width) + 2)
    if rounding in ("nearest_even", "nearest_up") and s > 0:
        return int(bias) + (1 << (s - 1))
    return int(bias)
