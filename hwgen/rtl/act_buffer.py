"""The activation buffer: one memory copy per array row, every write to all copies."""

from amaranth.hdl import Module, Mux, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .. import timing
from ..errors import ShapeError, check_positive
from .layouts import buffer_write_layout

__all__ = ["ActBuffer"]


class ActBuffer(wiring.Component):
    """Activation memory replicated ``rows`` times, so that every array row reads its own
    element each cycle; writes are broadcast, so the copies always hold the same data.

    Two writers share the copies: ``load`` (the input tensor) and ``store`` (the
    post-processing results); ``store`` wins if both write in one cycle (the sequencer
    never lets them). Row 0's read port also serves the output tensor's unload. With
    ``bit_writes``, ``store`` changes only the bits its ``mask`` selects (a packed binary
    tensor is written one channel bit at a time); ``load`` writes whole words.

    Parameters
    ----------
    rows : int
        Copies (array rows), positive.
    depth : int
        Elements per copy, positive.
    shape : shape-like
        Shape of one element.
    bit_writes : bool
        ``store`` has a per-bit ``mask``.

    Members
    -------
    load, store : In(buffer_write_layout(addr_width, shape))
        ``en``, ``addr``, ``data`` of a write to every copy.
    rd_addr : In(ArrayLayout(unsigned(addr_width), rows))
        Read address of each copy.
    rd_data : Out(ArrayLayout(shape, rows))
        The element at each copy's ``rd_addr`` of the previous cycle.

    Attributes
    ----------
    addr_width : int
        ``ceil_log2(depth)``.
    latency : int
        Cycles from ``rd_addr`` to ``rd_data``.
    """

    def __init__(self, rows, depth, shape, *, bit_writes=False):
        self._rows = check_positive(rows, "Buffer rows", ShapeError)
        self._depth = check_positive(depth, "Buffer depth", ShapeError)
        self._shape = shape
        self._bit_writes = bool(bit_writes)
        self._addr_width = max(1, ceil_log2(depth))
        super().__init__({
            "load": In(buffer_write_layout(self._addr_width, shape)),
            "store": In(buffer_write_layout(self._addr_width, shape, self._bit_writes)),
            "rd_addr": In(data.ArrayLayout(unsigned(self._addr_width), rows)),
            "rd_data": Out(data.ArrayLayout(shape, rows)),
        })

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def latency(self):
        """:func:`hwgen.timing.memory_read_latency` = 1 (registered read ports)."""
        return timing.memory_read_latency()

    def elaborate(self, platform):
        m = Module()
        for r in range(self._rows):
            mem = m.submodules[f"copy_{r}"] = Memory(shape=self._shape, depth=self._depth,
                                                      init=[])
            rd = mem.read_port()
            wr = mem.write_port(granularity=1 if self._bit_writes else None)
            all_bits = (1 << len(wr.en)) - 1
            m.d.comb += [rd.addr.eq(self.rd_addr[r]), self.rd_data[r].eq(rd.data)]
            with m.If(self.store.en):
                m.d.comb += [wr.en.eq(self.store.mask if self._bit_writes else all_bits),
                             wr.addr.eq(self.store.addr), wr.data.eq(self.store.data)]
            with m.Else():
                m.d.comb += [wr.en.eq(Mux(self.load.en, all_bits, 0)),
                             wr.addr.eq(self.load.addr), wr.data.eq(self.load.data)]
        return m
