"""The code-book weight lookup at the edge of a systolic array."""

from itertools import pairwise

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..errors import ShapeError, check_positive

__all__ = ["WeightLookup"]


class WeightLookup(wiring.Component):
    """Turns a weight memory word of ``cols`` table indices into ``cols`` weights.

    A table *row* gives each column its table of ``2**index_width`` signed entries; row
    ``n`` serves the weight memory addresses from ``bounds[n]`` up to the next bound (a
    per-layer table is one row per layer, per-channel tables one row per channel tile). The
    row is chosen from ``addr`` in the cycle the weight memory is given that address and
    registered, so that it arrives with the memory's read data; the entries are constants,
    so each column's lookup is a small ROM of ``rows · 2**index_width`` words (logic, no
    block RAM), combinational from ``index`` to ``value``. The engine registers ``value``
    in its feed register, so the lookup adds no cycle. The golden model is
    :func:`hwgen.golden.blocks.weight_lookup`.

    Parameters
    ----------
    cols : int
        Columns (weights per memory word).
    index_width : int
        Bits of an index.
    value_width : int
        Bits of a weight (signed).
    tables : sequence
        Per row, per column, the ``2**index_width`` entries (integers that fit
        ``value_width`` signed bits).
    bounds : sequence of int
        Per row, its first address; ascending, the first 0.
    addr_width : int
        Bits of ``addr``.

    Members
    -------
    addr : In(addr_width)
        The weight memory address presented this cycle.
    index : In(ArrayLayout(unsigned(index_width), cols))
        The weight memory's read data (one cycle after ``addr``).
    value : Out(ArrayLayout(signed(value_width), cols))
        The weights of ``index`` in the tables of ``addr``'s row.

    Attributes
    ----------
    latency : int
        Cycles from ``index`` to ``value``: 0.
    """

    def __init__(self, cols, *, index_width, value_width, tables, bounds, addr_width):
        self._cols = check_positive(cols, "Lookup columns", ShapeError)
        self._index_width = check_positive(index_width, "Lookup index width")
        self._value_width = check_positive(value_width, "Lookup value width")
        self._addr_width = check_positive(addr_width, "Lookup address width")
        entries = 1 << index_width
        tables = tuple(tuple(tuple(int(v) for v in t) for t in row) for row in tables)
        bounds = tuple(int(b) for b in bounds)
        if not tables or len(bounds) != len(tables):
            raise ShapeError(f"Lookup needs one bound per table row and at least one row, not "
                             f"{len(bounds)!r} bounds for {len(tables)!r} rows")
        if bounds[0] != 0 or any(b >= c for b, c in pairwise(bounds)):
            raise ShapeError(f"Lookup bounds must start at 0 and ascend, not {list(bounds)!r}")
        lo, hi = -(1 << (value_width - 1)), (1 << (value_width - 1)) - 1
        for row in tables:
            if len(row) != cols or any(len(t) != entries for t in row):
                raise ShapeError(f"Each lookup table row must hold {cols} tables of "
                                 f"{entries} entries")
            for t in row:
                if min(t) < lo or max(t) > hi:
                    raise ShapeError(f"Lookup entry {min(t) if min(t) < lo else max(t)!r} "
                                     f"does not fit {value_width} signed bits")
        self._tables, self._bounds = tables, bounds
        super().__init__({
            "addr": In(addr_width),
            "index": In(data.ArrayLayout(unsigned(index_width), cols)),
            "value": Out(data.ArrayLayout(signed(value_width), cols)),
        })

    @property
    def latency(self):
        """Cycles from ``index`` to ``value``: 0 (the row select is registered with the
        memory's read)."""
        return 0

    @property
    def rows(self):
        """Table rows."""
        return len(self._tables)

    def elaborate(self, platform):
        m = Module()
        rows = len(self._tables)
        if rows > 1:
            row = Signal(range(rows), name="row")
            # the row of an address: how many later rows' bounds it has reached
            m.d.sync += row.eq(sum(self.addr >= b for b in self._bounds[1:]))
        for c in range(self._cols):
            value = self.value[c]
            select = self.index[c] if rows == 1 else \
                (row << self._index_width) | self.index[c]
            with m.Switch(select):
                for r in range(rows):
                    for i, v in enumerate(self._tables[r][c]):
                        with m.Case((r << self._index_width) | i):
                            m.d.comb += value.eq(v)
        return m
