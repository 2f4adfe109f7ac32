"""The power-of-two (shift) processing element: no multiplier."""

from amaranth.hdl import Mux, Signal, signed, unsigned
from amaranth.lib import data

from ..errors import FormatError, check_positive
from .layouts import PEKind
from .pe import WidthsPE

__all__ = ["PEShift"]


class PEShift(WidthsPE):
    """Shift PE: a signed activation shifted left by the weight's exponent code, negated by
    its sign, or 0, into a signed accumulator.

    A weight field (``w_width`` bits, LSB first) is::

        code  [0, E)     exponent code  c = e − e_min  (E = w_width − 2 bits; absent if 0)
        sign  [E]        1: negative
        zero  [E + 1]    1: the weight is 0 (sign and code ignored)

    so the weight stands for the IR integer ``0`` or ``±2**c`` (a
    :class:`~hwgen.numerics.Pow2Format` weight at frac ``−e_min``; a
    :class:`~hwgen.numerics.BinaryFormat` weight is ``±2**0``, ``E`` may then be 0). The
    product ``a·w`` is ``a << c``, negated when ``sign``, zeroed when ``zero``: a shifter and
    a conditional negation, no multiplier. The term is truncated (wrapped) to
    ``acc_width`` bits, like every PE's; the compiler sizes the accumulator for the
    layers' dot products of the IR integers (:func:`hwgen.numerics.dot_width`), so the
    wrapped term is exact. Ports and timing are those of :class:`~hwgen.rtl.pe.PE`; the golden
    model is :func:`hwgen.golden.blocks.pe_shift`; :func:`hwgen.compiler.pack.pack_shift`
    writes the fields.

    Parameters
    ----------
    a_width : int
        Activation width in bits (positive).
    w_width : int
        Stored weight width: 2 + exponent code bits (at least 2).
    acc_width : int
        Accumulator width, at least ``a_width + 1`` (so that ``−a`` is exact).
    acc_modes : tuple of (int, str), optional
        The accumulator's bounds (narrow accumulators, see :class:`~hwgen.rtl.pe.PE`).
    product_stages : int
        Pipeline registers on the product (latency ``1 + product_stages``).

    Attributes
    ----------
    kind : PEKind
        ``PEKind.SHIFT``; the padding activation is 0.
    """

    kind = PEKind.SHIFT
    pad_value = 0

    def __init__(self, a_width, w_width, acc_width, *, product_stages=0, acc_modes=None):
        check_positive(a_width, "Activation width")
        check_positive(w_width, "Weight width")
        if w_width < 2:
            raise FormatError(f"Shift PE weight width must be at least 2 (zero flag and "
                              f"sign), not {w_width!r}")
        check_positive(acc_width, "Accumulator width")
        if acc_width < a_width + 1:
            raise FormatError(f"Accumulator width must be at least the activation width + 1 "
                              f"{a_width + 1!r}, not {acc_width!r}")
        super().__init__(a_width, w_width, acc_width, product_stages=product_stages,
                         acc_modes=acc_modes)

    @classmethod
    def code_bits(cls, w_width):
        """Exponent code bits ``E`` of a ``w_width``-bit weight field: ``w_width − 2``."""
        return w_width - 2

    @classmethod
    def weight_shape(cls, w_width):
        """``StructLayout({"code": unsigned(E), "sign": 1, "zero": 1})`` (no ``code`` when
        ``E = 0``)."""
        if isinstance(w_width, bool) or not isinstance(w_width, int) or w_width < 2:
            raise FormatError(f"Shift PE weight width must be an integer of at least 2, not "
                              f"{w_width!r}")
        fields = {}
        if w_width > 2:
            fields["code"] = unsigned(w_width - 2)
        fields.update({"sign": 1, "zero": 1})
        return data.StructLayout(fields)

    def product(self, m, a, w):
        """``0`` if ``zero`` else ``±(a << code)``, as ``(x ^ s, s)``: the one's complement
        and the carry-in that completes the negation in the accumulator's adder."""
        # Zeroing the activation (not the product) gates 8 bits instead of the accumulator's
        # width; a zero weight then gives (0 ^ s) + s = 0 whatever its sign bit holds.
        gated = Mux(w.zero, 0, a)
        width = min(self._acc_width, self._a_width + (1 << (self._w_width - 2)) - 1)
        shifted = Signal(signed(width))
        m.d.comb += shifted.eq(gated << w.code if self._w_width > 2 else gated)
        flipped = Signal(self.acc_shape)
        m.d.comb += flipped.eq(shifted ^ w.sign.replicate(width).as_signed())
        return flipped, w.sign
