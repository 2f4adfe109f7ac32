"""Layouts and mode enumerations shared by the accelerator's blocks.

The processing elements, the systolic array, the post-processing unit and the sequencer
meet at these definitions, so a field added here reaches every block at once.
"""

from amaranth.hdl import Shape, ShapeCastable, signed, unsigned
from amaranth.lib import data, enum
from amaranth.utils import bits_for

from ..errors import FormatError, ShapeError, check_positive

__all__ = [
    "WALKER_COUNT_FIELDS",
    "WALKER_SIGNED_FIELDS",
    "Overflow",
    "PECtl",
    "PEKind",
    "Rounding",
    "check_positive",
    "drain_job_layout",
    "drain_output_layout",
    "post_process_config_layout",
    "post_process_input_layout",
    "post_process_output_layout",
    "walker_config_layout",
]


#: Control that travels with the activations through the array, one per step.
#:
#: ``valid``
#:     The step carries data; when 0 a PE changes nothing but its pass-through registers.
#: ``first``
#:     First step of a dot product: the PE starts from 0 instead of its accumulator.
#: ``last``
#:     Last step of a dot product: the PE also loads the finished sum into ``result``.
PECtl = data.StructLayout({"valid": 1, "first": 1, "last": 1})


class Rounding(enum.Enum, shape=2):
    """Rounding applied when the post-processing shift drops fractional bits.

    The names match :data:`hwgen.numerics.ROUNDING_MODES`; ``stochastic`` has no hardware
    implementation yet.
    """

    NEAREST_EVEN = 0
    NEAREST_UP = 1
    FLOOR = 2

    @classmethod
    def from_name(cls, name):
        """The member for numerics' rounding name (``"nearest_even"``, ``"nearest_up"``,
        ``"floor"``); raises :class:`~hwgen.errors.FormatError` for any other name."""
        return _from_name(cls, name, "Rounding mode")


class Overflow(enum.Enum, shape=1):
    """Overflow applied after the post-processing shift; names match
    :data:`hwgen.numerics.OVERFLOW_MODES`."""

    SATURATE = 0
    WRAP = 1

    @classmethod
    def from_name(cls, name):
        """The member for numerics' overflow name (``"saturate"`` or ``"wrap"``); raises
        :class:`~hwgen.errors.FormatError` for any other name."""
        return _from_name(cls, name, "Overflow mode")


class PEKind(enum.Enum):
    """Kind of processing element an array is built from (only ``FIXED`` is implemented)."""

    FIXED = "fixed"
    SHIFT = "shift"
    XNOR = "xnor"


def _from_name(cls, name, what):
    if isinstance(name, cls):
        return name
    names = [member.name.lower() for member in cls]
    if not isinstance(name, str) or name not in names:
        raise FormatError(f"{what} must be one of {', '.join(names)}, not {name!r}")
    return cls[name.upper()]


def post_process_input_layout(acc_width, cols, tag_shape, shift_width=7):
    """Layout of :class:`~hwgen.rtl.post_process.PostProcess`'s input ``i``.

    Fields: ``valid`` (1), ``acc`` and ``bias`` (``signed(acc_width)``, the bias already at
    the accumulator's binary point), ``shift`` (``signed(shift_width)``: positive shifts
    right with rounding, negative shifts left exactly), ``col`` (``range(cols)``, selects the
    pooling register), ``pool_first`` (1), ``pool_last`` (1) and ``tag`` (``tag_shape``,
    passed through untouched).
    """
    check_positive(acc_width, "Accumulator width")
    check_positive(cols, "Number of columns", ShapeError)
    if isinstance(shift_width, bool) or not isinstance(shift_width, int) or shift_width < 2:
        raise FormatError(f"Shift width must be an integer of at least 2, not {shift_width!r}")
    return data.StructLayout({
        "valid": 1,
        "acc": signed(acc_width),
        "bias": signed(acc_width),
        "shift": signed(shift_width),
        # At least one bit: a zero-width field becomes `wire [-1:0]` in Verilog (ASCRANGE).
        "col": range(max(cols, 2)),
        "pool_first": 1,
        "pool_last": 1,
        "tag": _check_shape(tag_shape),
    })


def post_process_config_layout(out_width):
    """Layout of :class:`~hwgen.rtl.post_process.PostProcess`'s configuration ``cfg``.

    Fields: ``rounding`` (:class:`Rounding`), ``overflow`` (:class:`Overflow`), ``width``
    (the output format's width ``W``, ``1 <= W <= out_width``), ``signed`` (1: two's
    complement format), ``relu`` (1) and ``pool`` (1: running max-pool enabled).
    """
    check_positive(out_width, "Output width")
    return data.StructLayout({
        "rounding": Rounding,
        "overflow": Overflow,
        "width": unsigned(bits_for(out_width)),
        "signed": 1,
        "relu": 1,
        "pool": 1,
    })


def post_process_output_layout(out_width, tag_shape):
    """Layout of :class:`~hwgen.rtl.post_process.PostProcess`'s output ``o``: ``valid`` (1),
    ``value`` (``signed(out_width)``) and ``tag`` (``tag_shape``)."""
    check_positive(out_width, "Output width")
    return data.StructLayout({
        "valid": 1,
        "value": signed(out_width),
        "tag": _check_shape(tag_shape),
    })


def _check_shape(shape):
    if isinstance(shape, ShapeCastable):
        return shape
    try:
        Shape.cast(shape)
    except TypeError as e:
        raise FormatError(f"Tag shape must be a shape-castable object, not {shape!r}") from e
    return shape


#: Fields of :func:`walker_config_layout` that are signed coordinates or address offsets.
WALKER_SIGNED_FIELDS = tuple(
    ["start_iy", "start_ix", "start_base"]
    + [f"d{level}_{axis}" for level in range(4) for axis in ("iy", "ix", "base")])
#: Fields of :func:`walker_config_layout` that are unsigned counts.
WALKER_COUNT_FIELDS = ("pool", "pw", "walk_len", "npix")


def walker_config_layout(coord_width, count_width):
    """Layout of :class:`~hwgen.rtl.pixel_walker.PixelWalker`'s ``cfg``: the start corner
    ``(start_iy, start_ix, start_base)`` and the steps ``d{level}_{iy,ix,base}`` of the four
    loop levels (``signed(coord_width)``), the pool side ``pool``, windows per output row
    ``pw``, the pixels walked before starting over ``walk_len`` and the real pixels ``npix``
    (``unsigned(count_width)``)."""
    check_positive(coord_width, "Walker coordinate width")
    check_positive(count_width, "Walker count width")
    fields = {name: signed(coord_width) for name in WALKER_SIGNED_FIELDS}
    fields.update({name: unsigned(count_width) for name in WALKER_COUNT_FIELDS})
    return data.StructLayout(fields)


def drain_job_layout(count_width):
    """Layout of :class:`~hwgen.rtl.drain.Drain`'s ``job``: ``valid``; the tile's first
    channel ``co_base`` and its real channels ``cols_valid``; its output offset ``ch_off``
    (``co_base · plane``); its real pixels ``rows_valid``; its first pixel's pool window
    ``q0`` and place in the window ``m0`` (all ``unsigned(count_width)``)."""
    check_positive(count_width, "Drain count width")
    fields = {"valid": 1}
    fields.update({name: unsigned(count_width)
                   for name in ("co_base", "cols_valid", "ch_off", "rows_valid", "q0", "m0")})
    return data.StructLayout(fields)


def drain_output_layout(acc_shape, cols, count_width):
    """Layout of :class:`~hwgen.rtl.drain.Drain`'s ``o``: ``valid``, the sum ``acc``, its
    column ``col``, ``pool_first``/``pool_last`` and the output address ``tag`` — the
    fields :class:`~hwgen.rtl.post_process.PostProcess` takes besides bias and shift."""
    return data.StructLayout({
        "valid": 1, "acc": _check_shape(acc_shape), "col": range(max(cols, 2)),
        "pool_first": 1, "pool_last": 1, "tag": unsigned(count_width)})
