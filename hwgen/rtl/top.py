"""The accelerator top: the blocks of one compiled design, wired together.

::

    i ──► Sequencer ──load──► ActBuffer ──rd_data──► Engine (weights + array) ──result──┐
          │  ▲  rd_addr ─────►   ▲  store                ▲ step                         │
          │  └──── desc, job ────┼───────────────────────┘                              ▼
          │                      └──────────── PostProcess ◄── params ◄── Drain ◄────────┘
    o ◄───┘ (unload through ActBuffer row 0)

The :class:`~hwgen.rtl.sequencer.Sequencer` runs the layer program (phases, feed counters,
pixel walker), the :class:`~hwgen.rtl.act_buffer.ActBuffer` holds the activations (one
copy per array row), the :class:`~hwgen.rtl.engine.Engine` is the array of the design's PE
kind with its weight memory, the :class:`~hwgen.rtl.drain.Drain` reads a finished tile
into the :class:`~hwgen.rtl.post_process.PostProcess` unit, whose results go back to the
buffer. Every block's latency comes from :mod:`hwgen.timing`, as does the compiler's cycle
model (:func:`hwgen.timing.layer_cycles`).
"""

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..contract import COUNT, SHIFT_BITS, descriptor_fields
from .act_buffer import ActBuffer
from .drain import Drain
from .engine import Engine
from .layouts import PEKind, param_word_layout
from .post_process import PostProcess
from .sequencer import Sequencer

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """Generated accelerator for one compiled design (:class:`hwgen.compiler.CompiledDesign`;
    the gateware reads only its fields, the :mod:`hwgen.contract` descriptors and the
    memory images).

    Members
    -------
    start : In(1)
        One-cycle pulse while idle: begin an inference.
    busy, done : Out(1)
        ``busy`` from start until done; ``done`` high after the last output word was
        taken, until the next start.
    i : In(stream.Signature(signed(S)))
        The input tensor, ``design.n_in`` words in (C, H, W) order.
    o : Out(stream.Signature(signed(S)))
        The output tensor, ``design.n_out`` words.
    cycles : Out(32)
        Compute cycles of the last inference (all layers; I/O transfers excluded).
    layer_sel : In(8), layer_cycles : Out(32)
        Cycles of layer ``layer_sel`` of the last inference.
    """

    def __init__(self, design):
        self.design = design
        width = design.act_width
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "i": In(stream.Signature(signed(width))),
            "o": Out(stream.Signature(signed(width))),
            "cycles": Out(32),
            "layer_sel": In(8),
            "layer_cycles": Out(32),
        })

    def _widths(self, addr_width):
        """(coordinate, count) widths: signed address arithmetic, and unsigned counters
        that also hold running sums the descriptor only seeds (weight and parameter
        addresses up to the memories' depths, output offsets up to the buffer's)."""
        d = self.design
        umax = max(getattr(desc, name) for desc in d.descriptors
                   for name, kind in descriptor_fields() if kind == COUNT)
        largest = max(umax, d.config.rows * d.config.cols, len(d.weight_image),
                      len(d.param_image), d.buffer_depth)
        return addr_width + 3, largest.bit_length() + 1

    def elaborate(self, platform):
        d = self.design
        rows, cols = d.config.rows, d.config.cols
        act_shape = signed(d.act_width)
        m = Module()

        buf = m.submodules.act = ActBuffer(rows, d.buffer_depth, act_shape)
        coord_width, count_width = self._widths(buf.addr_width)
        engine = m.submodules.engine = Engine(
            rows, cols, PEKind.from_name(d.config.pe_kind), a_width=d.act_width,
            w_width=d.weight_width, acc_width=d.acc_width, weight_image=d.weight_image,
            count_width=count_width, product_stages=d.config.pe_stages)
        drain = m.submodules.drain = Drain(rows, cols, engine.acc_shape, count_width,
                                           pe_latency=engine.pe_latency)
        post = m.submodules.post = PostProcess(
            d.acc_width, d.act_width, cols, unsigned(buf.addr_width),
            roundings=d.roundings, overflows=d.overflows, shift_width=SHIFT_BITS,
            scale_width=d.scale_width, thresholds=d.thresholds)
        seq = m.submodules.seq = Sequencer(
            d.descriptors, rows=rows, cols=cols, act_shape=act_shape,
            addr_width=buf.addr_width, coord_width=coord_width, count_width=count_width,
            n_in=d.n_in, n_out=d.n_out, input_base=d.input_base, output_base=d.output_base,
            tail_latency=drain.latency + post.latency)
        words = []
        for bias, shift, scale, flip in d.param_image:
            word = {"bias": bias, "shift": shift, "flip": flip}
            if d.scale_width:
                word["scale"] = scale
            words.append(word)
        pmem = m.submodules.params = Memory(
            shape=param_word_layout(d.acc_width, d.scale_width), depth=len(d.param_image),
            init=words)
        p_rd = pmem.read_port()

        # host side
        wiring.connect(m, wiring.flipped(self.i), seq.i)
        wiring.connect(m, seq.o, wiring.flipped(self.o))
        m.d.comb += [seq.start.eq(self.start), self.busy.eq(seq.busy), self.done.eq(seq.done),
                     self.cycles.eq(seq.cycles), seq.layer_sel.eq(self.layer_sel),
                     self.layer_cycles.eq(seq.layer_cycles)]

        # sequencer → buffer → engine → drain → post-processing → buffer
        m.d.comb += [buf.load.eq(seq.load), buf.rd_addr.eq(seq.rd_addr),
                     seq.unload_data.eq(buf.rd_data[0]),
                     engine.step.eq(seq.step), engine.a.eq(buf.rd_data),
                     drain.job.eq(seq.job), drain.results.eq(engine.result),
                     seq.drain_busy.eq(drain.busy)]
        desc = seq.desc
        m.d.comb += [drain.win.eq(desc.win), drain.plane.eq(desc.plane),
                     drain.out_base.eq(desc.out_base), drain.param_base.eq(desc.param_base),
                     p_rd.addr.eq(drain.param_addr)]
        m.d.comb += [post.i[name].eq(drain.o[name])
                     for name in ("valid", "acc", "col", "pool_first", "pool_last", "tag")]
        m.d.comb += [
            post.i.bias.eq(p_rd.data.bias),
            post.i.shift.eq(p_rd.data.shift),
            post.i.flip.eq(p_rd.data.flip),
            post.cfg.binary.eq(desc.binary_out),
            post.cfg.rounding.eq(desc.rounding),
            post.cfg.overflow.eq(desc.overflow),
            post.cfg.width.eq(desc.out_width),
            post.cfg.signed.eq(desc.out_signed),
            post.cfg.relu.eq(desc.relu),
            post.cfg.pool.eq(desc.pool_en),
        ]
        if d.scale_width:
            m.d.comb += post.i.scale.eq(p_rd.data.scale)
        m.d.comb += [buf.store.en.eq(post.o.valid), buf.store.addr.eq(post.o.tag),
                     buf.store.data.eq(post.o.value)]
        return m
