"""The fixed-point multiply-accumulate processing element."""

from amaranth.hdl import signed

from ..errors import FormatError, check_positive
from .layouts import PEKind
from .pe import WidthsPE

__all__ = ["PEMac"]


class PEMac(WidthsPE):
    """Fixed-point MAC PE: signed activation × signed weight into a signed accumulator.

    Both operands are two's complement; their product is exact in ``a_width + w_width``
    bits and is added to an ``acc_width``-bit accumulator that wraps (the compiler sizes
    it with :func:`hwgen.numerics.dot_width` so that it never does). Ports and
    timing are those of :class:`~hwgen.rtl.pe.PE`; the golden model is
    :func:`hwgen.golden.blocks.pe_mac`.

    Parameters
    ----------
    a_width : int
        Activation width in bits (positive).
    w_width : int
        Weight width in bits (positive).
    acc_width : int
        Accumulator width in bits, at least ``a_width + w_width``.
    acc_modes : tuple of (int, str), optional
        The accumulator's bounds (narrow accumulators, see :class:`~hwgen.rtl.pe.PE`).
    product_stages : int
        Pipeline registers on the product (the PE's latency is ``1 + product_stages``,
        see :class:`~hwgen.rtl.pe.PE`).

    Attributes
    ----------
    kind : PEKind
        ``PEKind.FIXED``; weights are stored two's complement (``signed(w_width)``) and the
        padding activation is 0.
    """

    kind = PEKind.FIXED
    pad_value = 0

    def __init__(self, a_width, w_width, acc_width, *, product_stages=0, acc_modes=None):
        check_positive(a_width, "Activation width")
        check_positive(w_width, "Weight width")
        check_positive(acc_width, "Accumulator width")
        if acc_width < a_width + w_width:
            raise FormatError(f"Accumulator width must be at least the product width "
                              f"{a_width + w_width!r}, not {acc_width!r}")
        super().__init__(a_width, w_width, acc_width, product_stages=product_stages,
                         acc_modes=acc_modes)

    @classmethod
    def weight_shape(cls, w_width):
        """``signed(w_width)``: two's complement weights."""
        return signed(w_width)

    def product(self, m, a, w):
        """``a * w``, exact in ``a_width + w_width`` bits."""
        return a * w
