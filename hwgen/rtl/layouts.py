"""Layouts and mode enumerations shared by the accelerator's blocks.

The processing elements, the systolic array, the post-processing unit and the sequencer
meet at these definitions, so a field added here reaches every block at once.
"""

from amaranth.hdl import Shape, ShapeCastable, signed, unsigned
from amaranth.lib import data, enum
from amaranth.utils import bits_for

from ..contract import COUNT, MODE, SIGNED, WORD, WORD_BITS, descriptor_fields, param_word_fields
from ..errors import ArgumentError, FormatError, ShapeError, check_positive

__all__ = [
    "Overflow",
    "PECtl",
    "PEKind",
    "Rounding",
    "buffer_write_layout",
    "descriptor_const",
    "descriptor_layout",
    "drain_job_layout",
    "drain_output_layout",
    "engine_step_layout",
    "param_word_layout",
    "post_process_config_layout",
    "post_process_input_layout",
    "post_process_output_layout",
]


#: Control that travels with the activations through the array, one per step.
#:
#: ``valid``
#:     The step carries data; when 0 a PE changes nothing but its pass-through registers.
#: ``last``
#:     Last step of a dot product: the PE loads the finished sum into ``result`` and its
#:     accumulator returns to 0, so the next step starts the next dot product.
PECtl = data.StructLayout({"valid": 1, "last": 1})


class Rounding(enum.Enum, shape=2):
    """Rounding applied when the post-processing shift drops fractional bits.

    The names match :data:`hwgen.numerics.ROUNDING_MODES`.
    """

    NEAREST_EVEN = 0
    NEAREST_UP = 1
    FLOOR = 2
    STOCHASTIC = 3

    @classmethod
    def from_name(cls, name):
        """The member for numerics' rounding name (``"nearest_even"``, ``"nearest_up"``,
        ``"floor"``, ``"stochastic"``); raises :class:`~hwgen.errors.FormatError` for any
        other name."""
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
    """Kind of processing element an array is built from; the value is the kind's name in
    :attr:`hwgen.compiler.AcceleratorConfig.pe_kind`.
    A PE class names its kind in ``kind`` (:func:`hwgen.rtl.pe.pe_class` finds it)."""

    FIXED = "fixed"
    SHIFT = "shift"
    XNOR = "xnor"
    CODEBOOK = "codebook"

    @classmethod
    def from_name(cls, name):
        """The member whose value is ``name`` (``"fixed"``); ``name`` itself when it is
        another string, so that a PE kind defined outside this package is named by its
        string; :class:`~hwgen.errors.ArgumentError` for anything else."""
        if isinstance(name, cls):
            return name
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"PE kind must be a PEKind or a non-empty string, not "
                                f"{name!r}")
        try:
            return cls(name)
        except ValueError:
            return name


def _from_name(cls, name, what):
    if isinstance(name, cls):
        return name
    names = [member.name.lower() for member in cls]
    if not isinstance(name, str) or name not in names:
        raise FormatError(f"{what} must be one of {', '.join(names)}, not {name!r}")
    return cls[name.upper()]


def post_process_input_layout(acc_width, cols, tag_shape, shift_width=7, scale_width=0,
                              position_width=0):
    """Layout of :class:`~hwgen.rtl.post_process.PostProcess`'s input ``i``.

    Fields: ``valid`` (1), ``acc`` (``signed(acc_width)``), ``bias``
    (``signed(acc_width + scale_width + 3)``: the bias, already at the scaled accumulator's
    binary point, plus rounding to nearest's half step, :func:`hwgen.contract.param_bias`),
    ``scale`` (``signed(scale_width)``, only when ``scale_width > 0``),
    ``flip`` (1: threshold compare ``<= 0`` instead of ``>= 0``), ``shift`` (``signed(shift_width)``: positive shifts
    right with rounding, negative shifts left exactly), ``col`` (``range(cols)``, selects the
    pooling register), ``pool_first`` (1), ``pool_last`` (1), ``tag`` (``tag_shape``,
    passed through untouched) and, when ``position_width > 0`` (stochastic rounding), the
    value's position :func:`hwgen.numerics.stochastic_positions`: ``index``
    (``unsigned(position_width)``) and ``slot`` (``unsigned(8)``: only its low 8 bits enter
    the random value).
    """
    check_positive(acc_width, "Accumulator width")
    check_positive(cols, "Number of columns", ShapeError)
    if isinstance(shift_width, bool) or not isinstance(shift_width, int) or shift_width < 2:
        raise FormatError(f"Shift width must be an integer of at least 2, not {shift_width!r}")
    if isinstance(scale_width, bool) or not isinstance(scale_width, int) or scale_width < 0:
        raise FormatError(f"Scale width must be a non-negative integer, not {scale_width!r}")
    if isinstance(position_width, bool) or not isinstance(position_width, int) \
            or position_width < 0:
        raise FormatError(f"Position width must be a non-negative integer, not "
                          f"{position_width!r}")
    scale = {"scale": signed(scale_width)} if scale_width else {}
    position = {"index": unsigned(position_width), "slot": unsigned(8)} if position_width \
        else {}
    return data.StructLayout({
        "valid": 1,
        "acc": signed(acc_width),
        "bias": signed(acc_width + scale_width + 3),
        **scale,
        "flip": 1,
        "shift": signed(shift_width),
        # At least one bit: a zero-width field becomes `wire [-1:0]` in Verilog (ASCRANGE).
        "col": range(max(cols, 2)),
        "pool_first": 1,
        "pool_last": 1,
        "tag": _check_shape(tag_shape),
        **position,
    })


def post_process_config_layout(out_width, stochastic=False):
    """Layout of :class:`~hwgen.rtl.post_process.PostProcess`'s configuration ``cfg``.

    Fields: ``rounding`` (:class:`Rounding`), ``overflow`` (:class:`Overflow`), ``width``
    (the output format's width ``W``, ``1 <= W <= out_width``), ``signed`` (1: two's
    complement format), ``relu`` (1), ``pool`` (1: running max-pool enabled), ``binary``
    (1: the output is +1/−1 by a threshold compare, not a requantized value) and, with
    ``stochastic``, ``mask`` (``unsigned(32)``: the layer's random mask, the descriptor's
    ``rand_mask``).
    """
    check_positive(out_width, "Output width")
    return data.StructLayout({
        "rounding": Rounding,
        "overflow": Overflow,
        "width": unsigned(bits_for(out_width)),
        "signed": 1,
        "relu": 1,
        "pool": 1,
        "binary": 1,
        **({"mask": unsigned(WORD_BITS)} if stochastic else {}),
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


def drain_job_layout(count_width):
    """Layout of :class:`~hwgen.rtl.drain.Drain`'s ``job``: ``valid``; the parameter
    address of the tile's first channel ``co_addr`` (the layer's ``param_base`` plus the
    channel) and its real channels ``cols_valid``; its real pixels
    ``rows_valid``; its first pixel's pool window ``q0`` and place in the window ``m0``
    (all ``unsigned(count_width)``)."""
    check_positive(count_width, "Drain count width")
    fields = {"valid": 1}
    fields.update({name: unsigned(count_width)
                   for name in ("co_addr", "cols_valid", "rows_valid", "q0", "m0")})
    return data.StructLayout(fields)


def drain_output_layout(acc_shape, cols, count_width, positions=False):
    """Layout of :class:`~hwgen.rtl.drain.Drain`'s ``o``: ``valid``, the sum ``acc``, its
    column ``col``, ``pool_first``/``pool_last`` and the output address ``tag`` — the
    fields :class:`~hwgen.rtl.post_process.PostProcess` takes besides bias and shift —
    and, with ``positions``, the pooled pixel ``pixel`` (``tag`` before the region's base)
    and the place in the pooling window ``slot`` (both ``unsigned(count_width)``)."""
    extra = {"pixel": unsigned(count_width), "slot": unsigned(count_width)} if positions \
        else {}
    return data.StructLayout({
        "valid": 1, "acc": _check_shape(acc_shape), "col": range(max(cols, 2)),
        "pool_first": 1, "pool_last": 1, "tag": unsigned(count_width), **extra})


def descriptor_layout(coord_width, count_width):
    """Layout of the sequencer's descriptor register, derived from
    :func:`hwgen.contract.descriptor_fields`: signed fields are ``signed(coord_width)``,
    counts ``unsigned(count_width)``, words ``unsigned(32)``, ``rounding`` a
    :class:`Rounding` and ``overflow`` an :class:`Overflow`."""
    check_positive(coord_width, "Descriptor coordinate width")
    check_positive(count_width, "Descriptor count width")
    fields = {}
    for name, kind in descriptor_fields():
        if kind == SIGNED:
            fields[name] = signed(coord_width)
        elif kind == COUNT:
            fields[name] = unsigned(count_width)
        elif kind == WORD:
            fields[name] = unsigned(WORD_BITS)
        else:
            assert kind == MODE
            fields[name] = {"rounding": Rounding, "overflow": Overflow}[name]
    return data.StructLayout(fields)


def descriptor_const(layout, desc):
    """``desc`` (a :class:`hwgen.contract.LayerDescriptor`) as a constant of ``layout``
    (:func:`descriptor_layout`); mode names become :class:`Rounding`/:class:`Overflow`."""
    values = {}
    for name, kind in descriptor_fields():
        value = getattr(desc, name)
        if kind == MODE:
            value = {"rounding": Rounding, "overflow": Overflow}[name].from_name(value)
        values[name] = value
    return layout.const(values)


def param_word_layout(acc_width, scale_width=0, offset_width=1, bit_width=1):
    """Layout of a parameter memory word, from :func:`hwgen.contract.param_word_fields`:
    ``bias`` (``signed(acc_width + scale_width)``), ``shift``, ``scale`` (when
    ``scale_width > 0``), ``flip``, ``offset`` and ``bit``."""
    check_positive(acc_width, "Accumulator width")
    return data.StructLayout({
        name: signed(width) if is_signed else unsigned(width)
        for name, width, is_signed in param_word_fields(acc_width, scale_width, offset_width,
                                                        bit_width)})


def buffer_write_layout(addr_width, data_shape, bit_writes=False):
    """Layout of an :class:`~hwgen.rtl.act_buffer.ActBuffer` write: ``en`` (1), ``addr``
    (``unsigned(addr_width)``), ``data`` (``data_shape``) and, with ``bit_writes``,
    ``mask`` (one bit per data bit: which bits the write changes)."""
    check_positive(addr_width, "Buffer address width")
    fields = {"en": 1, "addr": unsigned(addr_width), "data": _check_shape(data_shape)}
    if bit_writes:
        fields["mask"] = unsigned(Shape.cast(data_shape).width)
    return data.StructLayout(fields)


def engine_step_layout(rows, count_width):
    """Layout of an :class:`~hwgen.rtl.engine.Engine`'s ``step``, issued together with the
    activation buffer reads: ``valid`` (a reduction step is issued), ``last``
    (of the dot product), ``w_addr`` (weight memory address, ``unsigned(count_width)``)
    and ``inside`` (per row: the activation read is a real one, not padding or a row past
    the last pixel) and ``tail`` (the step reads the last channel group of an XNOR layer,
    whose word may hold fewer than ``P`` channels)."""
    check_positive(rows, "Engine rows", ShapeError)
    check_positive(count_width, "Engine count width")
    return data.StructLayout({"valid": 1, "last": 1, "tail": 1,
                              "w_addr": unsigned(count_width),
                              "inside": data.ArrayLayout(1, rows)})
