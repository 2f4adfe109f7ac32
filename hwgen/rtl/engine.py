"""The engine: one systolic array of one PE kind, its weight memory and its feed."""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .. import timing
from ..errors import ShapeError, check_positive
from .layouts import PECtl, engine_step_layout
from .pe import pe_class
from .systolic_array import SystolicArray
from .weight_lookup import WeightLookup

__all__ = ["Engine"]


class Engine(wiring.Component):
    """A ``rows × cols`` systolic array of one PE kind with the weight memory that feeds it.

    In the cycle the sequencer issues the activation buffer reads of a reduction step, it
    presents ``step``: the engine reads the ``cols`` weights of the step from its weight
    memory at ``step.w_addr`` (one word, laid out by the PE kind's
    :meth:`~hwgen.rtl.pe.PE.weight_word_layout`), and one memory read later gives the array
    the step: row ``r`` gets what the PE kind's :meth:`~hwgen.rtl.pe.PE.feed` makes of the
    buffer word ``a[r]`` (the word where ``step.inside[r]`` was set and the kind's neutral
    ``pad_value`` elsewhere: zero padding, rows past the last pixel), with the step's
    ``valid``/``last`` as the array's control. A design has one engine per PE
    kind; ``step.valid`` reaches only the engine of the running layer.

    Parameters
    ----------
    rows, cols : int
        The array's shape.
    pe_kind : PEKind or str
        The PE kind (:func:`hwgen.rtl.pe.pe_class`).
    a_width, w_width, acc_width : int
        Widths of an activation, a stored weight and the accumulator.
    word_width : int
        Width of an activation buffer word (``a_width`` or more).
    weight_image : sequence of int
        The weight memory's words.
    count_width : int
        Bits of ``step.w_addr``.
    product_stages : int
        Pipeline registers on each PE's product.
    lookup : dict, optional
        For a code-book engine: ``index_width``, ``tables`` and ``bounds`` of a
        :class:`~hwgen.rtl.weight_lookup.WeightLookup`. The weight memory then holds
        ``cols`` indices of ``index_width`` bits a word, and the lookup turns them into the
        PEs' ``w_width``-bit weights in front of the first feed register (no extra cycle).
    acc_modes : tuple of (int, str), optional
        The PEs' accumulator bounds (:class:`~hwgen.rtl.pe.PE`).
    bank_images : sequence of sequence of int, optional
        ``rows − 1`` more weight memories (banks ``1 … rows − 1``, words like the weight
        memory's) for split layers: bank ``r`` is read at ``step.w_addr`` ``r`` cycles after
        the weight memory, so its word reaches row ``r`` with that row's activations
        (see :class:`~hwgen.rtl.systolic_array.SystolicArray`'s ``banks``). Not with
        ``lookup``.

    Members
    -------
    step : In(engine_step_layout(rows, count_width))
        The step issued this cycle.
    a : In(ArrayLayout(unsigned(word_width), rows))
        The activation buffers' words: step's activations, one memory read after ``step``.
    tail_bits : In(count_width)
        The running layer's real channels in its last channel group (XNOR kinds).
    result : Out(ArrayLayout(ArrayLayout(acc_shape, cols), rows))
        The array's result registers.
    acc_mode : In(range(len(acc_modes)))
        The running layer's accumulator bound (only with two modes or more).
    split : In(1)
        The running layer is split: rows ``1 …`` take their banks' weights (only with
        ``bank_images``).

    Attributes
    ----------
    pe_latency : int
        Latency of one PE.
    latency : int
        Cycles from a tile's last ``step`` to its last sum at ``result``.
    """

    def __init__(self, rows, cols, pe_kind, *, a_width, w_width, acc_width, weight_image,
                 count_width, product_stages=0, word_width=None, lookup=None,
                 acc_modes=None, bank_images=None):
        self._rows = check_positive(rows, "Engine rows", ShapeError)
        self._cols = check_positive(cols, "Engine columns", ShapeError)
        self._pe_cls = pe_class(pe_kind)
        self._w_width = w_width
        self._weight_image = tuple(int(word) for word in weight_image)
        self._count_width = check_positive(count_width, "Engine count width")
        self._bank_images = tuple(tuple(int(word) for word in image)
                                  for image in (bank_images or ()))
        if self._bank_images and (len(self._bank_images) != rows - 1 or lookup is not None):
            raise ShapeError(f"An engine of {rows} rows takes {rows - 1} weight banks and "
                             f"no lookup, not {len(self._bank_images)} banks"
                             f"{' and a lookup' if lookup is not None else ''}")
        self.array = SystolicArray(rows, cols, lambda: self._pe_cls.create(
            a_width=a_width, w_width=w_width, acc_width=acc_width,
            product_stages=product_stages, acc_modes=acc_modes),
            banks=bool(self._bank_images))
        self.lookup = None
        if lookup is not None:
            self.lookup = WeightLookup(cols, value_width=w_width, addr_width=count_width,
                                       **lookup)
            self._word_layout = data.Layout.cast(self.lookup.index.shape())
        else:
            self._word_layout = data.Layout.cast(self._pe_cls.weight_word_layout(w_width, cols))
        if self.lookup is None and \
                data.Layout.cast(self.array.w.shape()).size != self._word_layout.size:
            raise ShapeError(f"PE kind {pe_kind!r} has weight words of "
                             f"{self._word_layout.size} bits but its PEs take "
                             f"{data.Layout.cast(self.array.w.shape()).size}")
        self._word_width = check_positive(word_width or a_width, "Engine word width")
        ports = {
            "step": In(engine_step_layout(rows, count_width)),
            "a": In(data.ArrayLayout(unsigned(self._word_width), rows)),
            "tail_bits": In(count_width),
            "result": Out(self.array.result.shape()),
        }
        if "acc_mode" in self.array.signature.members:
            ports["acc_mode"] = In(self.array.signature.members["acc_mode"].shape)
        if self._bank_images:
            ports["split"] = In(1)
        super().__init__(ports)

    @property
    def pe_class(self):
        return self._pe_cls

    @property
    def weight_word_layout(self):
        return self._word_layout

    @property
    def acc_shape(self):
        return self.array.acc_shape

    @property
    def pe_latency(self):
        """Latency of one PE (:func:`hwgen.timing.pe_latency`)."""
        return self.array.pe_latency

    @property
    def latency(self):
        """:func:`hwgen.timing.memory_read_latency` + :func:`hwgen.timing.feed_latency` +
        the array's latency (:func:`hwgen.timing.array_latency` of its last PE) = ``rows +
        cols + 1 + pe_latency``."""
        return timing.memory_read_latency() + timing.feed_latency() + self.array.latency

    def elaborate(self, platform):
        m = Module()
        array = m.submodules.array = self.array
        depth = max(1, len(self._weight_image))
        wmem = m.submodules.weights = Memory(
            shape=unsigned(self._word_layout.size), depth=depth,
            init=list(self._weight_image) or [0])
        w_rd = wmem.read_port()
        m.d.comb += w_rd.addr.eq(self.step.w_addr)

        # The control and the padding mask wait as long as the memories take to read.
        step = self.step
        for n in range(timing.memory_read_latency()):
            stage = Signal(step.shape(), name=f"step_{n}")
            m.d.sync += stage.eq(step)
            step = stage
        # The feed: the padded activations, the weights and the control, registered
        # (timing.feed_latency) so that the memories' outputs reach only the first stage
        # and the last stage can sit beside the array.
        pe = array.pe(0, 0)
        for r in range(self._rows):
            a = pe.feed(m, self.a[r], step.valid & step.inside[r], step.tail, self.tail_bits)
            m.d.comb += array.a[r].eq(_feed(m, a, f"feed_a_{r}", array.a_shape))
        if self.lookup is not None:
            # the code-book tables sit between the memory and the first feed register
            lookup = m.submodules.lookup = self.lookup
            m.d.comb += [lookup.addr.eq(self.step.w_addr), lookup.index.eq(w_rd.data)]
            w_data = lookup.value
        else:
            w_data = w_rd.data
        ctl = Signal(PECtl)
        m.d.comb += [ctl.valid.eq(step.valid), ctl.last.eq(step.last)]
        m.d.comb += [array.ctl.eq(_feed(m, ctl, "feed_ctl", PECtl)),
                     array.w.eq(_feed(m, w_data, "feed_w", array.w.shape())),
                     self.result.eq(array.result)]
        if "acc_mode" in self.signature.members:
            m.d.comb += array.acc_mode.eq(self.acc_mode)
        if self._bank_images:
            # bank r reads the step's address r cycles late, so that its word reaches the
            # first feed register as row r's activation reaches its row's skew chain
            m.d.comb += array.split.eq(self.split)
            addr = self.step.w_addr
            for r, image in enumerate(self._bank_images, start=1):
                late = Signal.like(self.step.w_addr, name=f"bank_addr_{r}")
                m.d.sync += late.eq(addr)
                addr = late
                bank = Memory(shape=unsigned(self._word_layout.size),
                              depth=max(1, len(image)), init=list(image) or [0])
                m.submodules[f"weights_{r}"] = bank
                rd = bank.read_port()
                m.d.comb += rd.addr.eq(late)
                m.d.comb += array.w_rows[r - 1].eq(
                    _feed(m, rd.data, f"feed_w_row_{r}", array.w.shape()))
        return m


def _feed(m, value, name, shape):
    """``value`` through :func:`hwgen.timing.feed_latency` registers named ``name``,
    ``name_1``, …; returns the last."""
    for n in range(timing.feed_latency()):
        stage = Signal(shape, name=name if n == 0 else f"{name}_{n}")
        m.d.sync += stage.eq(value)
        value = stage
    return value
