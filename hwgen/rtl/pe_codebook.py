"""The code-book engine's processing element: a fixed-point MAC fed looked-up weights."""

from .layouts import PEKind
from .pe_mac import PEMac

__all__ = ["PECodebook"]


class PECodebook(PEMac):
    """The MAC PE of a code-book engine: its weights are the entries the engine's
    :class:`~hwgen.rtl.weight_lookup.WeightLookup` reads for the stored indices, so
    ``w_width`` is a table entry's width (the weight memory holds the indices).
    Arithmetic, ports and timing are :class:`~hwgen.rtl.pe_mac.PEMac`'s."""

    kind = PEKind.CODEBOOK
