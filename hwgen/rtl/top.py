"""The accelerator top: the blocks of one compiled design, wired together.

::

    i ──► Sequencer ──load──► ActBuffer ──rd_data──► Engine (weights + array) ──result──┐
          │  ▲  rd_addr ─────►   ▲  store                ▲ step                         │
          │  └──── desc, job ────┼───────────────────────┘                              ▼
          │                      └──────────── PostProcess ◄── params ◄── Drain ◄────────┘
    o ◄───┘ (unload through ActBuffer row 0)

The :class:`~hwgen.rtl.sequencer.Sequencer` runs the layer program (phases, feed counters,
pixel records), the :class:`~hwgen.rtl.act_buffer.ActBuffer` holds the activations (one
copy per array row; packed binary tensors one bit per channel), an
:class:`~hwgen.rtl.engine.Engine` per PE kind the network uses is an array of that kind with
its weight memory (all engines read the same buffer; the running layer's engine steps), the :class:`~hwgen.rtl.drain.Drain` reads a finished tile
into the :class:`~hwgen.rtl.post_process.PostProcess` unit, whose results go back to the
buffer. Every block's latency comes from :mod:`hwgen.timing`, as does the compiler's cycle
model (:func:`hwgen.timing.layer_cycles`).
"""

from amaranth.hdl import Module, Mux, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..contract import COUNT, SHIFT_BITS, descriptor_fields, param_word_fields
from .act_buffer import ActBuffer
from .drain import Drain
from .engine import Engine
from .layouts import PEKind, param_word_layout
from .post_process import PostProcess
from .sequencer import Sequencer

__all__ = ["Accelerator", "accelerator_signature"]


def accelerator_signature(act_width):
    """The :class:`Accelerator`'s signature for ``act_width``-bit words: its ports, for
    wrappers that instantiate its Verilog module without elaborating it."""
    return wiring.Signature({
        "start": In(1),
        "busy": Out(1),
        "done": Out(1),
        "i": In(stream.Signature(signed(act_width))),
        "o": Out(stream.Signature(signed(act_width))),
        "cycles": Out(32),
        "layer_sel": In(8),
        "layer_cycles": Out(32),
    })


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
        super().__init__(accelerator_signature(design.act_width))

    def _widths(self, addr_width):
        """(coordinate, count) widths: signed address arithmetic, and unsigned counters
        that also hold running sums the descriptor only seeds (weight and parameter
        addresses up to the memories' depths, output offsets up to the buffer's)."""
        d = self.design
        umax = max(getattr(desc, name) for desc in d.descriptors
                   for name, kind in descriptor_fields() if kind == COUNT)
        largest = max([umax, d.config.rows * d.config.cols, len(d.param_image), d.buffer_depth]
                      + [len(engine.weight_image) for engine in d.engines])
        return addr_width + 3, largest.bit_length() + 1

    def elaborate(self, platform):
        d = self.design
        rows, cols = d.config.rows, d.config.cols
        act_shape = signed(d.act_width)
        packed = any(desc.pack_out for desc in d.descriptors)
        m = Module()

        buf = m.submodules.act = ActBuffer(rows, d.buffer_depth, unsigned(d.word_width),
                                           bit_writes=packed)
        coord_width, count_width = self._widths(buf.addr_width)
        engines = []
        for n, image in enumerate(d.engines):
            lookup = None
            if image.tables:
                lookup = {"index_width": image.weight_width, "tables": image.tables,
                          "bounds": image.table_bounds}
            engines.append(Engine(
                rows, cols, PEKind.from_name(image.kind), a_width=d.act_width,
                w_width=image.value_width if image.tables else image.weight_width,
                acc_width=image.acc_width,
                weight_image=image.weight_image, count_width=count_width,
                product_stages=d.config.pe_stages, word_width=d.word_width, lookup=lookup,
                acc_modes=image.acc_modes, bank_images=image.banks or None))
            m.submodules[f"engine_{image.kind}"] = engines[-1]
        stochastic = "stochastic" in d.roundings
        split = any(desc.split for desc in d.descriptors)
        pool_win = max((desc.win for desc in d.descriptors if desc.drain_pool), default=0)
        drain = m.submodules.drain = Drain(rows, cols, [e.acc_shape for e in engines],
                                           count_width, pe_latency=engines[0].pe_latency,
                                           positions=stochastic, split=split,
                                           pool_win=pool_win)
        tag_shape = data.StructLayout({"addr": unsigned(buf.addr_width),
                                       "bit": unsigned(d.bit_width)})
        # The post-processing unit is built for the shifts the parameter words hold and the
        # output formats the layers use (thresholded layers use neither).
        shifts = [word[1] for word in d.param_image] or [0]
        formats = {(desc.out_width, bool(desc.out_signed)) for desc in d.descriptors
                   if not desc.binary_out}
        post = m.submodules.post = PostProcess(
            d.acc_width, d.act_width, cols, tag_shape,
            roundings=d.roundings, overflows=d.overflows, shift_width=SHIFT_BITS,
            scale_width=d.scale_width, thresholds=d.thresholds,
            shifts=(min(shifts), max(shifts)), formats=formats or None,
            position_width=count_width)
        seq = m.submodules.seq = Sequencer(
            d.descriptors, rows=rows, cols=cols, act_shape=act_shape,
            addr_width=buf.addr_width, coord_width=coord_width, count_width=count_width,
            n_in=d.n_in, n_out=d.n_out, input_base=d.input_base, output_base=d.output_base,
            tail_latency=drain.latency + post.latency,
            predicted_cycles=[layer.cycles.total for layer in d.layers])
        names = [name for name, _, _ in param_word_fields(
            d.acc_width, d.scale_width, buf.addr_width, d.bit_width)]
        pmem = m.submodules.params = Memory(
            shape=param_word_layout(d.acc_width, d.scale_width, buf.addr_width, d.bit_width),
            depth=len(d.param_image),
            init=[{name: value for name, value in zip(
                      ("bias", "shift", "scale", "flip", "offset", "bit"), word)
                   if name in names} for word in d.param_image])
        p_rd = pmem.read_port()

        # host side
        wiring.connect(m, wiring.flipped(self.i), seq.i)
        wiring.connect(m, seq.o, wiring.flipped(self.o))
        m.d.comb += [seq.start.eq(self.start), self.busy.eq(seq.busy), self.done.eq(seq.done),
                     self.cycles.eq(seq.cycles), seq.layer_sel.eq(self.layer_sel),
                     self.layer_cycles.eq(seq.layer_cycles)]

        # sequencer → buffer → engines → drain → post-processing → buffer
        desc = seq.desc
        m.d.comb += [buf.load.en.eq(seq.load.en), buf.load.addr.eq(seq.load.addr),
                     buf.load.data.eq(seq.load.data), buf.rd_addr.eq(seq.rd_addr),
                     seq.unload_data.eq(buf.rd_data[0][:d.act_width]),
                     drain.job.eq(seq.job), seq.drain_busy.eq(drain.busy),
                     drain.engine.eq(desc.engine)]
        for n, engine in enumerate(engines):
            m.d.comb += [engine.step.eq(seq.step), engine.a.eq(buf.rd_data),
                         engine.tail_bits.eq(desc.tail_bits),
                         drain.results[f"e{n}"].eq(engine.result)]
            if "acc_mode" in engine.signature.members:
                m.d.comb += engine.acc_mode.eq(desc.acc_mode)
            if "split" in engine.signature.members:
                m.d.comb += engine.split.eq(desc.split)
            if len(engines) > 1:
                m.d.comb += engine.step.valid.eq(seq.step.valid & (desc.engine == n))
        if split:
            m.d.comb += drain.split.eq(desc.split)
        if pool_win:
            m.d.comb += [drain.drain_pool.eq(desc.drain_pool),
                         drain.group_last.eq(desc.rows_div - 1)]
        m.d.comb += [drain.win.eq(desc.win), drain.out_base.eq(desc.out_base),
                     p_rd.addr.eq(drain.param_addr)]
        m.d.comb += [post.i[name].eq(drain.o[name])
                     for name in ("valid", "acc", "col", "pool_first", "pool_last")]
        m.d.comb += [
            post.i.tag.addr.eq(drain.o.tag + p_rd.data.offset),
            post.i.tag.bit.eq(p_rd.data.bit),
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
        if stochastic:
            # the value's position: its channel's first output word plus the pooled pixel
            m.d.comb += [post.i.index.eq(drain.o.pixel + p_rd.data.offset),
                         post.i.slot.eq(drain.o.slot), post.cfg.mask.eq(desc.rand_mask)]
        m.d.comb += [buf.store.en.eq(post.o.valid), buf.store.addr.eq(post.o.tag.addr)]
        if packed:
            # a packed binary output: +1 sets, −1 clears the channel's bit of the word
            with m.If(desc.pack_out):
                m.d.comb += [buf.store.data.eq(Mux(post.o.value[-1], 0, -1)),
                             buf.store.mask.eq(1 << post.o.tag.bit)]
            with m.Else():
                m.d.comb += [buf.store.data.eq(post.o.value), buf.store.mask.eq(-1)]
        else:
            m.d.comb += buf.store.data.eq(post.o.value)
        return m
