"""The activation buffer: one memory copy per array row, every write to all copies."""

from amaranth.hdl import Module, Signal, unsigned
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
    tensor is written one channel bit at a time); ``load`` writes whole words. A write
    passes one register, shared by the copies, before it reaches them
    (:attr:`write_latency`).

    A read of an address in the cycle the copies write it returns undefined data: the
    copies carry Yosys' ``no_rw_check``, so synthesis adds no logic to order a read and a
    write of one address (without it, an address compare, a data register and a
    multiplexer per copy: about 23 LUT4 of an 8-bit copy on ECP5). The accelerator never
    uses a read of what it writes in the same cycle: a layer's real reads lie in one of the
    buffer's two regions and its writes in the other (:mod:`hwgen.compiler.plan`); reads
    outside the region (padding, rows past the last pixel) and the reads during the
    input's load are masked or unused; the next layer and the unload start once the last
    write is done (:func:`hwgen.timing.buffer_write_latency`). Simulation cannot tell:
    Amaranth's and Verilator's models return the old word on a collision.

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
    write_latency : int
        Cycles from ``load`` or ``store`` to the copies holding the word.
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

    @property
    def write_latency(self):
        """:func:`hwgen.timing.buffer_write_latency` = 1 (the write register)."""
        return timing.buffer_write_latency()

    def elaborate(self, platform):
        m = Module()
        assert self.write_latency == 1
        wr = Signal(buffer_write_layout(self._addr_width, self._shape, self._bit_writes),
                    name="wr")
        with m.If(self.store.en):
            m.d.sync += wr.eq(self.store)
        with m.Else():
            m.d.sync += [wr.en.eq(self.load.en), wr.addr.eq(self.load.addr),
                         wr.data.eq(self.load.data)]
            if self._bit_writes:
                m.d.sync += wr.mask.eq(-1)      # a load writes whole words
        for r in range(self._rows):
            mem = m.submodules[f"copy_{r}"] = Memory(shape=self._shape, depth=self._depth,
                                                      init=[], attrs={"no_rw_check": 1})
            rd = mem.read_port()
            port = mem.write_port(granularity=1 if self._bit_writes else None)
            m.d.comb += [rd.addr.eq(self.rd_addr[r]), self.rd_data[r].eq(rd.data),
                         port.addr.eq(wr.addr), port.data.eq(wr.data),
                         port.en.eq(wr.mask & wr.en.replicate(len(port.en))
                                    if self._bit_writes else wr.en)]
        return m
