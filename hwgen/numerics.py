"""Number formats and the integer arithmetic every part of hwgen agrees on.

A :class:`QFormat` ``Q(W, F)`` holds integers ``q`` of ``W`` bits (two's complement when
signed) and stands for ``q * 2**-F``. ``F`` may be negative or larger than ``W``: dynamic
fixed point needs both. :func:`quantize` maps real values to integers of a format;
:func:`requantize` maps integers of one fractional length to another format with the same
rounding and overflow rules, and is the exact specification of the hardware's
post-processing shift.

Rounding modes when fractional bits are dropped:

``nearest_even``
    Round to nearest, ties to even (IEEE default, ``torch.round``).
``nearest_up``
    Add half a step, then floor: the cheapest in hardware.
``floor``
    Plain arithmetic shift right.
``stochastic``
    Add a random value below one step, then floor. The random values are not drawn from a
    generator but are a pure function of where the value is, :func:`stochastic_random`
    ``r = rand(seed, layer, index, slot)`` (32 bits), which the golden model computes for a
    whole tensor with numpy and the hardware's post-processing unit for each value it
    drains, in any order. :func:`requantize` by ``s`` bits adds ``v = r mod 2**s`` (for
    ``s > 32``: ``r * 2**(s-32)``), so the step's fraction ``v / 2**s`` is uniform below one
    step; :func:`quantize` of real values adds ``r / 2**32`` (the same as a requantization by
    32 bits or more). The caller passes ``r`` as ``random=``; :func:`stochastic_positions`
    says which ``index`` and ``slot`` each value of a layer's output has.

Overflow modes: ``saturate`` clamps to the format's range, ``wrap`` keeps the low ``W`` bits.

Every function takes numpy arrays or torch tensors and answers in kind, with the same
values for both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import FormatError

__all__ = [
    "HW_OVERFLOW_MODES",
    "HW_ROUNDING_MODES",
    "OVERFLOW_MODES",
    "ROUNDING_MODES",
    "BinaryFormat",
    "CodebookFormat",
    "Pow2Format",
    "QFormat",
    "accumulator_width",
    "apply_overflow",
    "check_overflow",
    "check_rounding",
    "dequantize",
    "dot_range",
    "dot_width",
    "format_from_json",
    "layer_random",
    "product_width",
    "quantize",
    "requantize",
    "sqnr_db",
    "stochastic_positions",
    "stochastic_random",
    "sum_width",
]

#: Every rounding mode the arithmetic defines (the one list; see the module docstring).
ROUNDING_MODES = ("nearest_even", "nearest_up", "floor", "stochastic")
#: Every overflow mode.
OVERFLOW_MODES = ("saturate", "wrap")
#: The rounding modes a layer's requantization may use in hardware (and so in the IR).
HW_ROUNDING_MODES = ("nearest_even", "nearest_up", "floor", "stochastic")
#: The overflow modes the hardware implements.
HW_OVERFLOW_MODES = ("saturate", "wrap")


def _check_int(value, what, minimum=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise FormatError(f"{what} must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise FormatError(f"{what} must be at least {minimum}, not {value!r}")
    return int(value)


def check_rounding(rounding):
    """Return ``rounding`` if it names a rounding mode, else raise :class:`FormatError`."""
    if rounding not in ROUNDING_MODES:
        raise FormatError(
            f"Rounding mode must be one of {', '.join(ROUNDING_MODES)}, not {rounding!r}")
    return rounding


def check_overflow(mode):
    """Return ``mode`` if it names an overflow mode, else raise :class:`FormatError`."""
    if mode not in OVERFLOW_MODES:
        raise FormatError(f"Overflow mode must be one of {', '.join(OVERFLOW_MODES)}, not {mode!r}")
    return mode


@dataclass(frozen=True)
class QFormat:
    """Fixed-point format ``Q(width, frac)``: integer ``q`` stands for ``q * 2**-frac``.

    Parameters
    ----------
    width : int
        Number of bits, at least 1 (at most 64).
    frac : int
        Fractional length; any integer, negative or larger than ``width``.
    signed : bool
        Two's complement when true, else ``[0, 2**width - 1]``.
    """

    width: int
    frac: int
    signed: bool = True

    def __post_init__(self):
        _check_int(self.width, "Format width", minimum=1)
        if self.width > 64:
            raise FormatError(f"Format width must be at most 64, not {self.width!r}")
        _check_int(self.frac, "Format fractional length")
        if not isinstance(self.signed, bool):
            raise FormatError(f"Format signedness must be a bool, not {self.signed!r}")

    kind = "fixed"

    @property
    def min_int(self):
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self):
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def step(self):
        return 2.0 ** -self.frac

    @property
    def min_value(self):
        return self.min_int * self.step

    @property
    def max_value(self):
        return self.max_int * self.step

    @property
    def integer_bits(self):
        """Bits left of the binary point (excluding the sign bit): ``W - F - signed``."""
        return self.width - self.frac - int(self.signed)

    def __str__(self):
        return f"{'Q' if self.signed else 'UQ'}({self.width},{self.frac})"

    def to_json(self):
        return {"kind": "fixed", "width": self.width, "frac": self.frac, "signed": self.signed}


@dataclass(frozen=True)
class Pow2Format:
    """Power-of-two format: values ``{0} ∪ {±2**e : e_min <= e <= e_max}``.

    Stored in hardware as a zero flag, a sign and an exponent. As integers (what
    :func:`quantize` returns) the values are ``0`` and ``±2**(e - e_min)`` at
    ``frac = -e_min``, so the arithmetic of a shift PE is the arithmetic of a MAC.
    """

    e_min: int
    e_max: int

    kind = "pow2"
    signed = True

    def __post_init__(self):
        _check_int(self.e_min, "Power-of-two minimum exponent")
        _check_int(self.e_max, "Power-of-two maximum exponent")
        if self.e_max < self.e_min:
            raise FormatError(f"Power-of-two maximum exponent must be at least the minimum "
                              f"{self.e_min!r}, not {self.e_max!r}")
        if self.e_max - self.e_min > 62:
            raise FormatError(f"Power-of-two exponent span must be at most 62, not "
                              f"{self.e_max - self.e_min!r}")

    @property
    def frac(self):
        return -self.e_min

    @property
    def width(self):
        """Width of the integer the value occupies once expanded (sign included)."""
        return self.e_max - self.e_min + 2

    @property
    def exponent_bits(self):
        return max(1, math.ceil(math.log2(self.e_max - self.e_min + 1)))

    @property
    def stored_bits(self):
        """Bits per weight in memory: zero flag, sign, exponent."""
        return 2 + self.exponent_bits

    @property
    def min_int(self):
        return -(1 << (self.e_max - self.e_min))

    @property
    def max_int(self):
        return 1 << (self.e_max - self.e_min)

    def __str__(self):
        return f"Pow2({self.e_min},{self.e_max})"

    def to_json(self):
        return {"kind": "pow2", "e_min": self.e_min, "e_max": self.e_max}


@dataclass(frozen=True)
class BinaryFormat:
    """Binary format: ``±1`` stored as one bit (1 stands for +1); integers at ``frac = 0``."""

    kind = "binary"
    signed = True
    width = 2
    frac = 0
    stored_bits = 1
    min_int = -1
    max_int = 1

    def __str__(self):
        return "Binary"

    def to_json(self):
        return {"kind": "binary"}


@dataclass(frozen=True)
class CodebookFormat:
    """Code-book format: each weight is one of ``2**bits`` centroids (a table per layer, or
    per output channel with ``per_channel``), the centroids fixed point ``Q(width, frac)``.

    Stored in hardware as a ``bits``-bit index into the table; as integers (what the IR
    holds) the weights are the centroids' ``Q(width, frac)`` integers, so a code-book
    layer's arithmetic is a fixed-point MAC's. :func:`quantize` with this format rounds to
    the centroids' format (:attr:`value_format`); which centroids exist is the quantizer's
    (:mod:`hwgen.quant.codebook`).
    """

    bits: int
    width: int
    frac: int
    per_channel: bool = False

    kind = "codebook"
    signed = True

    def __post_init__(self):
        _check_int(self.bits, "Code-book index bits", minimum=1)
        if self.bits > 8:
            raise FormatError(f"Code-book index bits must be at most 8, not {self.bits!r}")
        _check_int(self.width, "Code-book centroid width", minimum=2)
        if self.width > 32:
            raise FormatError(f"Code-book centroid width must be at most 32, not "
                              f"{self.width!r}")
        _check_int(self.frac, "Code-book centroid fractional length")
        if not isinstance(self.per_channel, bool):
            raise FormatError(f"Code-book per_channel must be a bool, not "
                              f"{self.per_channel!r}")

    @property
    def value_format(self):
        """The centroids' format, ``Q(width, frac)``."""
        return QFormat(self.width, self.frac)

    @property
    def entries(self):
        """Entries of one table: ``2**bits``."""
        return 1 << self.bits

    @property
    def stored_bits(self):
        """Bits per weight in memory: the index."""
        return self.bits

    @property
    def min_int(self):
        return self.value_format.min_int

    @property
    def max_int(self):
        return self.value_format.max_int

    def __str__(self):
        return f"CB{self.bits}{'/ch' if self.per_channel else ''}[Q({self.width},{self.frac})]"

    def to_json(self):
        return {"kind": "codebook", "bits": self.bits, "width": self.width, "frac": self.frac,
                "per_channel": self.per_channel}


def format_from_json(obj):
    """Inverse of ``fmt.to_json()``."""
    try:
        kind = obj["kind"]
        if kind == "fixed":
            return QFormat(obj["width"], obj["frac"], obj["signed"])
        if kind == "pow2":
            return Pow2Format(obj["e_min"], obj["e_max"])
        if kind == "binary":
            return BinaryFormat()
        if kind == "codebook":
            return CodebookFormat(obj["bits"], obj["width"], obj["frac"], obj["per_channel"])
    except (KeyError, TypeError) as e:
        raise FormatError(f"Format description {obj!r} is incomplete") from e
    raise FormatError(f"Format kind must be fixed, pow2, binary or codebook, not {kind!r}")


# --- array helpers: numpy and torch with one set of semantics ---------------------------

def _is_torch(x):
    return type(x).__module__.startswith("torch")


def _to_numpy(x):
    if _is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _like(result, x):
    """Return numpy ``result`` as the kind of ``x`` (torch tensor or numpy array)."""
    if _is_torch(x):
        import torch
        return torch.from_numpy(np.ascontiguousarray(result)).to(x.device)
    return result


# --- stochastic rounding's random values ------------------------------------------------

#: Bits of a stochastic rounding random value ``r``.
RANDOM_BITS = 32
_MASK32 = (1 << RANDOM_BITS) - 1
#: Odd constant (2**32 / golden ratio) that spreads layer numbers over the seed word.
LAYER_MIX = 0x9E3779B9
#: Bit of the seed word where the pooling-window slot enters.
SLOT_SHIFT = 24


def _xorshift32(x):
    """One xorshift32 round (Marsaglia's 13, 17, 5) of uint64 words below 2**32."""
    m = np.uint64(_MASK32)
    x = x ^ ((x << np.uint64(13)) & m)
    x = x ^ (x >> np.uint64(17))
    return x ^ ((x << np.uint64(5)) & m)


def stochastic_random(seed, layer, index, slot=0):
    """The random value of stochastic rounding at one place: ``rand(seed, layer, index,
    slot)``, a 32-bit integer.

    With ``w = (seed ^ ((layer + 1) · 0x9E3779B9) ^ index ^ (slot << 24)) mod 2**32`` (``^``:
    bitwise exclusive or of the non-negative integers; the product is taken mod
    ``2**32``), ``r = rev(xs(xs(xs(w))))`` where ``xs`` is one xorshift32 round on 32-bit
    words and ``rev`` reverses the order of the 32 bits (bit ``j`` goes to bit ``31 - j``)::

        xs:  x ^= (x << 13) mod 2**32;  x ^= x >> 17;  x ^= (x << 5) mod 2**32

    The reversal brings the best-mixed (top) bits of the xorshift to the bottom, where
    rounding by a few bits reads them.

    ``seed`` is the scheme's seed, ``layer`` the layer's place in the IR graph, ``index`` and
    ``slot`` the value's place in the layer's output (:func:`stochastic_positions`).

    ``xs`` and ``rev`` are linear over GF(2), so ``r = rev(xs(xs(xs(index ^ (slot << 24)))))
    ^ mask`` with
    ``mask = stochastic_random(seed, layer, 0, 0)``: the hardware hashes the position and
    XORs in the layer's mask, which the compiler computes.

    Parameters
    ----------
    seed, layer : int
        Non-negative integers (only their values mod ``2**32`` count).
    index, slot : int or array_like of int
        Non-negative, broadcast against each other.

    Returns
    -------
    numpy.ndarray of int64 in ``[0, 2**32)``
    """
    seed = _check_int(seed, "Stochastic rounding seed", minimum=0)
    layer = _check_int(layer, "Stochastic rounding layer number", minimum=0)
    index = np.asarray(index, dtype=np.int64)
    slot = np.asarray(slot, dtype=np.int64)
    if (index < 0).any() or (slot < 0).any():
        raise FormatError("Stochastic rounding positions must not be negative")
    # layer + 1: the hash maps 0 to 0, which should not be the first value of every tensor
    key = (seed ^ ((layer + 1) * LAYER_MIX)) & _MASK32
    w = (np.uint64(key) ^ (index.astype(np.uint64) & np.uint64(_MASK32))
         ^ ((slot.astype(np.uint64) << np.uint64(SLOT_SHIFT)) & np.uint64(_MASK32)))
    h = _xorshift32(_xorshift32(_xorshift32(w)))
    r = np.zeros_like(h)
    for j in range(RANDOM_BITS):
        r |= ((h >> np.uint64(j)) & np.uint64(1)) << np.uint64(RANDOM_BITS - 1 - j)
    return r.astype(np.int64)


def stochastic_positions(shape, pool=1):
    """``(index, slot)`` of every value of a layer's output before max-pooling.

    ``shape`` is ``(C,)`` (a Linear layer: ``index = c``, ``slot = 0``) or ``(C, H, W)``.
    With ``pool`` ``p`` (1: none), ``Hp, Wp = H // p, W // p`` windows, the value at
    ``(c, y, x)`` lies in window ``(y // p, x // p)`` of the pooled output, whose flat
    ``(C, Hp, Wp)`` index is ``index = c·Hp·Wp + (y // p)·Wp + x // p``, at ``slot = (y % p)·p
    + x % p`` in it (row-major; 0 without pooling, where ``index`` is the flat ``(C, H, W)``
    index). Values outside whole windows are pooled away; their positions are computed
    the same way. These are what the hardware has when it requantizes a value: its output
    word's address (after the region's base) and its place in the pooling window.

    Returns
    -------
    (index, slot) : numpy.ndarray of int64, each of ``shape``
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) == 1:
        return np.arange(shape[0], dtype=np.int64), np.zeros(shape, dtype=np.int64)
    if len(shape) != 3:
        raise FormatError(f"Stochastic rounding positions need a (C,) or (C, H, W) shape, "
                          f"not {shape!r}")
    c, h, w = shape
    p = _check_int(pool, "Pool size", minimum=1)
    hp, wp = max(h // p, 1), max(w // p, 1)
    ci, y, x = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    index = ci * hp * wp + (y // p) * wp + x // p
    slot = (y % p) * p + x % p
    return index.astype(np.int64), slot.astype(np.int64)


def layer_random(seed, layer, shape, pool=1):
    """:func:`stochastic_random` at every :func:`stochastic_positions` of ``shape``."""
    index, slot = stochastic_positions(shape, pool)
    return stochastic_random(seed, layer, index, slot)


def _check_random(random, rounding, shape):
    """The random values of a stochastic rounding, broadcast to ``shape``."""
    if rounding != "stochastic":
        return None
    if random is None:
        raise FormatError("Stochastic rounding needs its random values: pass random= "
                          "(see hwgen.numerics.stochastic_random)")
    r = _to_numpy(random).astype(np.int64)
    if r.size and (r.min() < 0 or r.max() > _MASK32):
        raise FormatError(f"Stochastic rounding random values must be 32-bit unsigned "
                          f"integers, not {int(r.min() if r.min() < 0 else r.max())!r}")
    try:
        return np.broadcast_to(r, shape)
    except ValueError:
        raise FormatError(f"Stochastic rounding random values of shape {r.shape!r} do not "
                          f"broadcast to the values' shape {tuple(shape)!r}") from None


def apply_overflow(q, fmt, mode="saturate"):
    """Apply the overflow ``mode`` of ``fmt`` to integer array ``q`` (int64 numpy)."""
    check_overflow(mode)
    q = np.asarray(q, dtype=np.int64)
    if mode == "saturate":
        return np.clip(q, fmt.min_int, fmt.max_int)
    if fmt.width >= 64:
        return q
    mod = np.int64(1) << np.int64(fmt.width)
    return ((q - fmt.min_int) & (mod - 1)) + fmt.min_int


def _round_float(y, rounding, random):
    if rounding == "nearest_even":
        return np.rint(y)
    if rounding == "nearest_up":
        return np.floor(y + 0.5)
    if rounding == "floor":
        return np.floor(y)
    # floor(y + r/2**32) without rounding the sum: y - floor(y) and 1 - r/2**32 are exact.
    fl = np.floor(y)
    with np.errstate(invalid="ignore"):
        up = (y - fl) >= 1.0 - np.ldexp(random.astype(np.float64), -RANDOM_BITS)
    return fl + up


def quantize(x, fmt, rounding="nearest_even", overflow="saturate", random=None):
    """Quantize real values ``x`` to integers of ``fmt``.

    Returns int64 integers (numpy array, or torch tensor for a torch input) ``q`` such that
    ``q * 2**-fmt.frac`` is ``x`` rounded with ``rounding`` and bounded with
    ``overflow``. Power-of-two formats round the exponent to nearest in the log domain
    and flush values below half of ``2**e_min`` to zero; binary formats take the sign
    (zero counts as +1). ``stochastic`` rounds ``x * 2**frac + random / 2**32`` down
    (``random``: 32-bit integers broadcastable against ``x``, see
    :func:`stochastic_random`).
    """
    check_rounding(rounding)
    check_overflow(overflow)
    xn = _to_numpy(x).astype(np.float64)
    if isinstance(fmt, BinaryFormat):
        return _like(np.where(xn >= 0, 1, -1).astype(np.int64), x)
    if isinstance(fmt, Pow2Format):
        mag = np.abs(xn)
        with np.errstate(divide="ignore"):
            e = np.rint(np.log2(np.where(mag > 0, mag, 1.0)))
        e = np.clip(e, fmt.e_min, fmt.e_max).astype(np.int64)
        q = np.where(mag >= 2.0 ** (fmt.e_min - 1), np.left_shift(1, e - fmt.e_min), 0)
        return _like((np.sign(xn).astype(np.int64) * q).astype(np.int64), x)
    if isinstance(fmt, CodebookFormat):
        fmt = fmt.value_format
    if not isinstance(fmt, QFormat):
        raise FormatError(f"Format must be a QFormat, Pow2Format, BinaryFormat or "
                          f"CodebookFormat, not {fmt!r}")
    y = np.ldexp(xn, fmt.frac)
    y = _round_float(y, rounding, _check_random(random, rounding, y.shape))
    # Clamp in float first so that the cast to int64 is defined for any input.
    y = np.clip(y, -2.0 ** 63, 2.0 ** 63 - 1024)
    return _like(apply_overflow(y.astype(np.int64), fmt, overflow), x)


def dequantize(q, fmt):
    """Real values of integers ``q`` in ``fmt``: ``q * 2**-fmt.frac`` (float64)."""
    qn = _to_numpy(q).astype(np.float64)
    return _like(np.ldexp(qn, -fmt.frac), q)


def requantize(acc, from_frac, to_fmt, rounding="nearest_even", overflow="saturate",
               random=None):
    """Integer ``acc`` at fractional length ``from_frac`` to integers of ``to_fmt``.

    This is the hardware's post-processing step: shift right by
    ``s = from_frac - to_fmt.frac`` with ``rounding`` (a left shift, exact, when ``s < 0``),
    then apply ``overflow``. ``from_frac`` may be an array broadcastable against
    ``acc`` (per-channel formats).

    ``stochastic`` needs ``random``, 32-bit integers ``r`` broadcastable against ``acc``
    (:func:`stochastic_random`): the result is ``floor((acc + v) / 2**s)`` with
    ``v = r mod 2**s`` (the low ``s`` bits of ``r``) for ``0 <= s <= 32`` and
    ``v = r * 2**(s - 32)`` for ``s > 32`` (so that ``v / 2**s`` is ``r``'s fraction,
    as in :func:`quantize`).
    """
    check_rounding(rounding)
    check_overflow(overflow)
    a = _to_numpy(acc).astype(np.int64)
    random = _check_random(random, rounding, a.shape)
    shift = np.broadcast_to(np.asarray(from_frac, dtype=np.int64) - to_fmt.frac, a.shape)
    # Beyond 63 bits every int64 shifts to the same answer: clamp, and treat >= 64 apart.
    right = np.minimum(np.maximum(shift, 0), 63)
    left = np.maximum(-shift, 0)
    if overflow == "saturate":
        # Pre-clamp so the exact left shift stays inside int64; the clamp keeps the sign
        # and a magnitude of 2**62 saturates every format of up to 62 bits.
        left = np.minimum(left, 62)
        bound = np.int64(1) << (62 - left)
        a_left = np.clip(a, -bound, bound) << left
    else:
        # int64 wraps modulo 2**64, so the low W <= 64 bits stay exact; 64 and more give 0.
        a_left = np.where(left >= 64, 0, a << np.minimum(left, 63))
    one = np.int64(1)
    half = np.where(right > 0, one << np.maximum(right - 1, 0), 0)
    floor_q = a >> right
    # The remainder below the kept bits; exact even where floor_q << right wraps.
    rem = a - (floor_q << right)
    if rounding == "floor":
        q = floor_q
    elif rounding == "nearest_up":
        q = floor_q + ((right > 0) & (rem >= half)).astype(np.int64)
    elif rounding == "nearest_even":
        up = (rem > half) | ((rem == half) & (half > 0) & ((floor_q & 1) == 1))
        q = floor_q + up.astype(np.int64)
    else:
        # v = r mod 2**s (s <= 32) or r << (s - 32): below 2**63; the carry out of the low
        # `right` bits in uint64, where rem + v < 2**64.
        r = random.astype(np.uint64)
        ru = right.astype(np.uint64)
        low = np.minimum(ru, np.uint64(RANDOM_BITS))
        v = np.where(ru <= RANDOM_BITS, r & ((np.uint64(1) << low) - np.uint64(1)),
                     r << (ru - low))
        q = floor_q + ((rem.astype(np.uint64) + v) >> ru).astype(np.int64)
    # Shifts of 64 bits and more: |a| / 2**shift <= 1/2, so only floor of a negative moves.
    huge = shift >= 64
    if huge.any():
        if rounding == "floor":
            q = np.where(huge, np.where(a < 0, -1, 0), q)
        elif rounding == "stochastic":
            # floor((a + r·2**(s-32)) / 2**s) in Python integers (a rare, exact path)
            exact = [(int(x) + (int(rv) << (int(sv) - RANDOM_BITS))) >> int(sv)
                     for x, rv, sv in zip(a[huge], random[huge], shift[huge])]
            q = q.copy()
            q[huge] = np.array(exact, dtype=np.int64)
        else:
            q = np.where(huge, 0, q)
    q = np.where(shift < 0, a_left, q)
    return _like(apply_overflow(q, to_fmt, overflow), acc)


# --- bit growth ---------------------------------------------------------------------------

def product_width(w1, w2):
    """Bits of the product of a ``w1``-bit and a ``w2``-bit number (at ``F1 + F2``)."""
    return w1 + w2


def sum_width(width, terms):
    """Bits of a sum of ``terms`` numbers of ``width`` bits: ``width + ceil(log2 terms)``."""
    _check_int(terms, "Number of terms", minimum=1)
    return width + (terms - 1).bit_length()


def accumulator_width(a_width, w_width, terms, bias=True):
    """Bits an accumulator needs so that a ``terms``-long dot product (plus a bias of the
    same width, when ``bias``) never overflows."""
    return sum_width(product_width(a_width, w_width), terms + int(bias))


def dot_range(weight, a_min, a_max):
    """Least and greatest value of each channel's dot product ``sum_k a[k]·weight[c, k]`` over
    activations in ``[a_min, a_max]`` or 0 (padding): ``(lo, hi)``, lists of ints.

    Every term's range holds 0, so the bounds also hold every partial sum of the dot
    product, in any order and over any subset of its terms (a slice of the reduction).

    Parameters
    ----------
    weight : array_like of int, shape (C, ...)
        Integer weights, output channel first.
    a_min, a_max : int
        The activations' range.
    """
    w = np.asarray(weight, dtype=np.int64)
    w = w.reshape(len(w), -1)
    a_min, a_max = min(int(a_min), 0), max(int(a_max), 0)
    pos = np.where(w > 0, w, 0).sum(axis=1)
    neg = np.where(w < 0, w, 0).sum(axis=1)
    # Python ints: wide activations times long reductions may pass 64 bits.
    lo = [int(p) * a_min + int(n) * a_max for p, n in zip(pos, neg)]
    hi = [int(p) * a_max + int(n) * a_min for p, n in zip(pos, neg)]
    return lo, hi


def dot_width(weight, a_min, a_max):
    """Signed bits that hold every value :func:`dot_range` allows, in the channel that needs
    the most (at least 1): the exact accumulator of those weights."""
    lo, hi = dot_range(weight, a_min, a_max)
    return max([1] + [(~v if v < 0 else v).bit_length() + 1 for v in lo + hi])


def sqnr_db(x, xq):
    """Signal-to-quantization-noise ratio of ``xq`` against ``x`` in dB (inf when equal)."""
    x = _to_numpy(x).astype(np.float64)
    e = x - _to_numpy(xq).astype(np.float64)
    noise = float(np.sum(e * e))
    signal = float(np.sum(x * x))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)
