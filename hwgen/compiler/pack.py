"""Memory images per PE kind: how a PE kind's weights are stored in the weight memory.

The compiler never imports gateware, so each PE kind's storage format is registered here,
keyed by the kind's name (the ``kind`` of its gateware class, e.g. ``"fixed"`` for
:class:`hwgen.rtl.pe_mac.PEMac`)::

    @packs("fixed")
    def pack_fixed(block, weight_width):
        ...

A packer takes one channel tile's weights ``block`` (int64, shape ``(cols, K)``, zero
rows past the layer's channels) and the stored weight width, and returns the ``K`` weight
memory words of the tile (a packer that packs several reduction steps into one word
states how many words it returns as its attribute ``steps(K, weight_width)``) (see :mod:`hwgen.contract`: column ``c`` in bits
``[c·weight_width, (c+1)·weight_width)``). The registered names are the PE kinds an
:class:`~hwgen.compiler.AcceleratorConfig` accepts.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, DoesNotFitError, FormatError

__all__ = ["codebook_indices", "pack_codebook", "pack_fields", "pack_kinds", "pack_shift",
           "pack_xnor", "packer", "packs", "weight_words"]

_PACKERS = {}


def packs(kind):
    """Decorator: register ``function(block, weight_width) -> [word, ...]`` as the weight
    packer of PE kind ``kind`` (a string); a kind is registered once."""
    if not isinstance(kind, str) or not kind:
        raise ArgumentError(f"PE kind must be a non-empty string, not {kind!r}")

    def register(function):
        if kind in _PACKERS and _PACKERS[kind] is not function:
            raise ArgumentError(f"PE kind {kind!r} already has a weight packer")
        _PACKERS[kind] = function
        return function
    return register


def pack_kinds():
    """Names of the PE kinds that have a weight packer, sorted."""
    return tuple(sorted(_PACKERS))


def packer(kind):
    """The weight packer of PE kind ``kind``; :class:`ArgumentError` for an unknown one."""
    try:
        return _PACKERS[kind]
    except (KeyError, TypeError):
        kinds = ", ".join(repr(k) for k in pack_kinds())
        raise ArgumentError(f"PE kind must be one of {kinds}, not {kind!r}") from None


def pack_fields(fields, width):
    """One word of ``fields`` (ints, field ``c`` in bits ``[c·width, (c+1)·width)``,
    each wrapped to ``width`` bits)."""
    mask = (1 << width) - 1
    word = 0
    for c, value in enumerate(fields):
        word |= (int(value) & mask) << (c * width)
    return word


def weight_words(kind, block, weight_width):
    """The weight memory words of one channel tile for PE kind ``kind`` (see the module
    docstring)."""
    block = np.asarray(block, dtype=np.int64)
    function = packer(kind)
    words = function(block, weight_width)
    steps = getattr(function, "steps", lambda k, width: k)(block.shape[1], weight_width)
    if len(words) != steps:
        raise DoesNotFitError(f"PE kind {kind!r} packed {len(words)!r} words for a tile of "
                              f"{steps} steps")
    return [int(word) for word in words]


@packs("fixed")
def pack_fixed(block, weight_width):
    """Fixed-point MAC (:class:`hwgen.rtl.pe_mac.PEMac`): two's complement weights."""
    return [pack_fields(block[:, k], weight_width) for k in range(block.shape[1])]


def _code_of(value):
    """``(zero, sign, code)`` of an IR integer that is 0 or ±2**code; None otherwise."""
    if value == 0:
        return 1, 0, 0
    mag = abs(value)
    if mag & (mag - 1):
        return None
    return 0, int(value < 0), mag.bit_length() - 1


@packs("shift")
def pack_shift(block, weight_width):
    """Shift PE (:class:`hwgen.rtl.pe_shift.PEShift`): each IR integer ``0`` or ``±2**c``
    becomes the field ``code | sign << E | zero << (E + 1)`` with ``E = weight_width − 2``
    (a zero weight is stored as the zero flag alone). Raises :class:`FormatError` for a value
    that is not 0 or ± a power of two and :class:`DoesNotFitError` for a code beyond ``E``
    bits."""
    code_bits = weight_width - 2
    if code_bits < 0:
        raise DoesNotFitError(f"Shift PE weights need at least 2 bits, not {weight_width!r}")
    table = {}
    for value in np.unique(block):
        value = int(value)
        fields = _code_of(value)
        if fields is None:
            raise FormatError(f"Weight {value!r} is not 0 or ± a power of two, which the "
                              f"'shift' PE kind needs")
        zero, sign, code = fields
        if code >= (1 << code_bits):
            raise DoesNotFitError(f"Weight {value!r} needs an exponent code of {code!r}, more "
                                  f"than {code_bits!r} bits hold")
        table[value] = code | sign << code_bits | zero << (code_bits + 1)
    return [pack_fields([table[int(v)] for v in block[:, k]], weight_width)
            for k in range(block.shape[1])]


@packs("xnor")
def pack_xnor(block, weight_width):
    """XNOR PE (:class:`hwgen.rtl.pe_xnor.PEXnor`) with ``P = weight_width`` positions per
    step: word ``j`` holds, per column, the bits of reduction steps ``j·P .. j·P + P − 1``
    (bit ``i`` of the field: step ``j·P + i``; 1 ↔ +1). Positions past ``K`` are 0; the
    activation mask of the last word keeps them out of the sum. Zero rows (channels past
    the layer's) are stored as 0 bits too. Raises :class:`FormatError` for a weight that is
    not ±1."""
    p = weight_width
    cols, k = block.shape
    real = np.any(block != 0, axis=1)
    bad = block[real][(block[real] != 1) & (block[real] != -1)]
    if bad.size:
        raise FormatError(f"Weight {int(bad[0])!r} is not ±1, which the 'xnor' PE kind needs")
    bits = np.zeros((cols, pack_xnor.steps(k, p) * p), dtype=np.int64)
    bits[:, :k] = block > 0
    words = []
    for j in range(bits.shape[1] // p):
        fields = [int(sum(int(b) << i for i, b in enumerate(bits[c, j * p:(j + 1) * p])))
                  for c in range(cols)]
        words.append(pack_fields(fields, p))
    return words


pack_xnor.steps = lambda k, weight_width: -(-k // weight_width)


@packs("codebook")
def pack_codebook(block, weight_width):
    """Code-book engine (MAC PEs behind a :class:`hwgen.rtl.weight_lookup.WeightLookup`):
    ``block`` holds table indices (:func:`codebook_indices`), stored unsigned in
    ``weight_width`` (the index bits). Raises :class:`DoesNotFitError` for an index beyond
    them."""
    if block.size and (block.min() < 0 or block.max() >= 1 << weight_width):
        raise DoesNotFitError(f"Code-book index {int(block.max())!r} does not fit "
                              f"{weight_width!r} bits")
    return [pack_fields(block[:, k], weight_width) for k in range(block.shape[1])]


def codebook_indices(weights, per_channel, entries):
    """``(indices, tables)`` of a code-book layer's integer ``weights`` (``(cout, K)``):
    the table of the layer (or, with ``per_channel``, of each channel) is its distinct
    values, ascending, padded with zeros to ``entries``; ``tables`` is int64 ``(cout,
    entries)`` (one row per channel, equal rows for a per-layer table) and ``indices``
    each weight's entry. Raises :class:`FormatError` for more distinct values than
    ``entries``."""
    weights = np.asarray(weights, dtype=np.int64)
    groups = [weights[c] for c in range(len(weights))] if per_channel else [weights]
    tables, indices = [], []
    for group in groups:
        values = np.unique(group)
        if len(values) > entries:
            raise FormatError(f"Weights take {len(values)!r} distinct values, more than the "
                              f"{entries} entries of a code-book table")
        tables.append(np.concatenate([values, np.zeros(entries - len(values), np.int64)]))
        indices.append(np.searchsorted(values, group))
    if per_channel:
        return np.stack(indices).astype(np.int64), np.stack(tables)
    return indices[0].astype(np.int64), np.repeat(tables[0][None, :], len(weights), axis=0)
