"""The accelerator top: memories, systolic array, post-processing and the sequencer that
runs the compiled layer program.

Phases of one inference (``start`` → ``done``)::

    LOAD    accept the input tensor on ``i`` (one word per transfer) into region 0
    per layer (counted in ``cycles`` and ``layer_cycles``):
      SETUP  1 cycle: load the layer's descriptor, reset the counters and the walker
      WALK   rows cycles: the pixel walker computes the first tile's receptive fields
      RUN    tiles × P cycles: feed K steps per tile (P = max(K, rows·cols))
      FLUSH  until the last tile is drained, post-processed and written
    UNLOAD  offer the output tensor on ``o``; then ``done``

Feeding (RUN, tile cycle ``j``, reduction step ``k = j < K``): every array row reads its
own copy of the activation buffer (the buffers are replicated ``rows`` times, every write
goes to all copies), at ``in_base + base[r] + koff(k)`` where ``base[r]`` is the row's
pixel corner from the :class:`~hwgen.rtl.pixel_walker.PixelWalker` (which runs one tile
ahead) and ``koff`` walks ``(ci, ky, kx)``; reads outside the input image (zero padding)
and rows past the last pixel give zero. The weight memory returns the
``cols`` weights of step ``k`` of the current channel tile in one word. Memory reads take
one cycle, so the array sees step ``k`` one cycle after it is issued.

Draining: when the last step of a tile is issued (cycle ``t``), the tile's job goes to the
:class:`~hwgen.rtl.drain.Drain`, which from cycle ``t + rows + cols`` on reads one PE result
per cycle (row-major) into the post-processing unit, whose output is written to the
layer's output region. The systolic timing (:meth:`SystolicArray.latency`) guarantees
every result is read after it is final and before the next tile replaces it, because tiles
issue ``P >= rows·cols`` cycles apart.
The compiler's cycle model (:func:`hwgen.compiler.layer_cycles`) predicts every phase.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..compiler import DESCRIPTOR_FIELDS, SHIFT_BITS
from .drain import Drain
from .layouts import WALKER_COUNT_FIELDS, WALKER_SIGNED_FIELDS, Overflow, Rounding
from .pe_mac import PEMac
from .pixel_walker import PixelWalker
from .post_process import PostProcess
from .systolic_array import SystolicArray

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """Generated accelerator for one :class:`~hwgen.compiler.CompiledDesign`.

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

    def _desc_layout(self):
        d = self.design
        self._aw = ceil_log2(d.buffer_depth)           # activation address bits
        self._sw = self._aw + 3                         # signed address arithmetic
        umax = max(int(v) for layer in d.layers for name, kind in DESCRIPTOR_FIELDS
                   if kind == "u" for v in [layer.desc[name]])
        # Counters also hold running sums the descriptor only seeds: weight and parameter
        # addresses (up to the memories' depths) and output offsets (up to the buffer's).
        largest = max(umax, d.config.rows * d.config.cols, len(d.weight_image),
                      len(d.param_image), d.buffer_depth)
        self._cw = largest.bit_length() + 1
        fields = {}
        for name, kind in DESCRIPTOR_FIELDS:
            if kind == "s":
                fields[name] = signed(self._sw)
            elif kind == "u":
                fields[name] = unsigned(self._cw)
        fields["rounding"] = Rounding
        fields["overflow"] = Overflow
        return data.StructLayout(fields)

    def _desc_const(self, layout, layer):
        values = {}
        for name, kind in DESCRIPTOR_FIELDS:
            value = layer.desc[name]
            if kind == "e":
                value = (Rounding if name == "rounding" else Overflow).from_name(value)
            values[name] = value
        return layout.const(values)

    def elaborate(self, platform):
        d = self.design
        rows, cols = d.config.rows, d.config.cols
        n_layers = len(d.layers)
        desc_layout = self._desc_layout()
        aw, sw, cw = self._aw, self._sw, self._cw
        m = Module()

        # --- datapath blocks ---------------------------------------------------------
        array = m.submodules.array = SystolicArray(
            rows, cols, lambda: PEMac(d.act_width, d.weight_width, d.acc_width))
        post = m.submodules.post = PostProcess(
            d.acc_width, d.act_width, cols, unsigned(aw),
            roundings=d.roundings, overflows=d.overflows, shift_width=SHIFT_BITS)

        act_rd, act_wr = [], []
        for r in range(rows):
            mem = m.submodules[f"act_{r}"] = Memory(
                shape=signed(d.act_width), depth=d.buffer_depth, init=[])
            act_rd.append(mem.read_port())
            act_wr.append(mem.write_port())
        wmem = m.submodules.weights = Memory(
            shape=unsigned(cols * d.weight_width), depth=len(d.weight_image),
            init=list(d.weight_image))
        w_rd = wmem.read_port()
        param_layout = data.StructLayout({"bias": signed(d.acc_width),
                                          "shift": signed(SHIFT_BITS)})
        pmem = m.submodules.params = Memory(
            shape=param_layout, depth=len(d.param_image),
            init=[{"bias": b, "shift": s} for b, s in d.param_image])
        p_rd = pmem.read_port()

        # write ports: broadcast to every copy
        wr_en = Signal()
        wr_addr = Signal(aw)
        wr_data = Signal(signed(d.act_width))
        for port in act_wr:
            m.d.comb += [port.en.eq(wr_en), port.addr.eq(wr_addr), port.data.eq(wr_data)]

        # --- sequencer state -----------------------------------------------------------
        desc = Signal(desc_layout)
        layer = Signal(range(n_layers + 1))

        # pixel walker: one pixel per step, a tile ahead of the array
        walker = m.submodules.walker = PixelWalker(sw, cw)
        m.d.comb += [walker.cfg[name].eq(desc[name])
                     for name in WALKER_SIGNED_FIELDS + WALKER_COUNT_FIELDS]
        walk_step = Signal()
        m.d.comb += walker.step.eq(walk_step)

        def bank(prefix):
            return (
                [Signal(signed(sw), name=f"{prefix}_iy_{r}") for r in range(rows)],
                [Signal(signed(sw), name=f"{prefix}_ix_{r}") for r in range(rows)],
                [Signal(signed(sw), name=f"{prefix}_base_{r}") for r in range(rows)],
                [Signal(name=f"{prefix}_valid_{r}") for r in range(rows)],
            )

        cur, nxt = bank("cur"), bank("nxt")
        walker_out = (walker.iy, walker.ix, walker.base, walker.valid)

        def shifted(b):
            """Bank ``b`` with the walker's pixel shifted in at the top."""
            return tuple(list(sig[1:]) + [new] for sig, new in zip(b, walker_out))

        # feed counters
        j = Signal(cw)                  # cycle within the tile
        kx, ky = Signal(cw), Signal(cw)
        koff = Signal(signed(sw))
        pt, ct = Signal(cw), Signal(cw)
        w_ct_base = Signal(cw)
        rows_left, cols_left = Signal(cw), Signal(cw)
        co_base, ch_off = Signal(cw), Signal(cw)
        q0, m0 = Signal(cw), Signal(cw)
        feed = Signal()                 # a reduction step is issued this cycle
        push = Signal()                 # the last step of a tile is issued this cycle

        # --- drain: the finished tile, one result per cycle, to post-processing ----------
        drain = m.submodules.drain = Drain(rows, cols, array.acc_shape, cw)
        job = drain.job
        m.d.comb += [
            job.valid.eq(push), job.co_base.eq(co_base),
            job.cols_valid.eq(Mux(cols_left < cols, cols_left, cols)),
            job.ch_off.eq(ch_off),
            job.rows_valid.eq(Mux(rows_left < rows, rows_left, rows)),
            job.q0.eq(q0), job.m0.eq(m0),
            drain.results.eq(array.result),
            drain.win.eq(desc.win), drain.plane.eq(desc.plane),
            drain.out_base.eq(desc.out_base), drain.param_base.eq(desc.param_base),
            p_rd.addr.eq(drain.param_addr),
        ]
        m.d.comb += [post.i[name].eq(drain.o[name])
                     for name in ("valid", "acc", "col", "pool_first", "pool_last", "tag")]
        m.d.comb += [
            post.i.bias.eq(p_rd.data.bias),
            post.i.shift.eq(p_rd.data.shift),
            post.cfg.rounding.eq(desc.rounding),
            post.cfg.overflow.eq(desc.overflow),
            post.cfg.width.eq(desc.out_width),
            post.cfg.signed.eq(desc.out_signed),
            post.cfg.relu.eq(desc.relu),
            post.cfg.pool.eq(desc.pool_en),
        ]
        # Idle once nothing is waiting, being read, or in post-processing up to the write.
        track = [Signal(name=f"track_{n}") for n in range(drain.latency + post.latency)]
        m.d.sync += track[0].eq(drain.busy)
        for n in range(1, len(track)):
            m.d.sync += track[n].eq(track[n - 1])
        idle = Signal()
        any_track = Const(0)
        for t in track:
            any_track = any_track | t
        m.d.comb += idle.eq(~drain.busy & ~any_track)

        # --- feed datapath ------------------------------------------------------------------
        mask = [Signal(name=f"mask_{r}") for r in range(rows)]
        ctl = Signal(array.ctl.shape())
        for r in range(rows):
            iy = cur[0][r] + ky
            ix = cur[1][r] + kx
            inside = cur[3][r] & (iy >= 0) & (iy < desc.in_h) & (ix >= 0) & (ix < desc.in_w)
            m.d.sync += mask[r].eq(feed & inside)
            m.d.comb += array.a[r].eq(Mux(mask[r], act_rd[r].data, 0))
        m.d.sync += [ctl.valid.eq(feed), ctl.first.eq(j == 0),
                     ctl.last.eq(j + 1 == desc.k_len)]
        m.d.comb += [array.ctl.eq(ctl), array.w.eq(w_rd.data),
                     w_rd.addr.eq(w_ct_base + j)]

        unload_addr = Signal(aw)
        in_unload = Signal()
        for r in range(rows):
            feed_addr = (desc.in_base + cur[2][r] + koff)[:aw]
            if r == 0:
                m.d.comb += act_rd[r].addr.eq(Mux(in_unload, unload_addr, feed_addr))
            else:
                m.d.comb += act_rd[r].addr.eq(feed_addr)

        # --- counters and status ---------------------------------------------------------
        count_en = Signal()
        total = Signal(32)
        layer_count = Signal(32)
        layer_regs = [Signal(32, name=f"layer_cycles_{n}") for n in range(n_layers)]
        with m.If(count_en):
            m.d.sync += [total.eq(total + 1), layer_count.eq(layer_count + 1)]
        m.d.comb += self.cycles.eq(total)
        with m.Switch(self.layer_sel):
            for n in range(n_layers):
                with m.Case(n):
                    m.d.comb += self.layer_cycles.eq(layer_regs[n])

        done = Signal()
        m.d.comb += self.done.eq(done)
        load_idx = Signal(range(max(d.n_in, 2)))
        out_idx = Signal(range(max(d.n_out, 2)))
        walk_count = Signal(range(rows + 1))

        # --- the phase machine --------------------------------------------------------------
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [done.eq(0), load_idx.eq(0), total.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += [self.busy.eq(1), self.i.ready.eq(1),
                             wr_en.eq(self.i.valid), wr_addr.eq(d.input_base + load_idx),
                             wr_data.eq(self.i.payload)]
                with m.If(self.i.valid):
                    m.d.sync += load_idx.eq(load_idx + 1)
                    with m.If(load_idx == d.n_in - 1):
                        m.d.sync += layer.eq(0)
                        m.next = "SETUP"
            with m.State("SETUP"):
                m.d.comb += [self.busy.eq(1), count_en.eq(1)]
                m.d.comb += walker.restart.eq(1)
                m.d.sync += [
                    j.eq(0), kx.eq(0), ky.eq(0), koff.eq(0), pt.eq(0), ct.eq(0),
                    co_base.eq(0), ch_off.eq(0), q0.eq(0), m0.eq(0), walk_count.eq(0),
                ]
                # The program is constant: each layer's descriptor is a case of the layer
                # index, loaded straight into registers (a clocked ROM).
                with m.Switch(layer):
                    for index, prog in enumerate(d.layers):
                        p = prog.desc
                        with m.Case(index):
                            m.d.sync += [
                                desc.eq(self._desc_const(desc_layout, prog)),
                                w_ct_base.eq(p["w_base"]), rows_left.eq(p["npix"]),
                                cols_left.eq(p["cout"]),
                            ]
                m.next = "WALK"
            with m.State("WALK"):
                m.d.comb += [self.busy.eq(1), count_en.eq(1), walk_step.eq(1)]
                new = shifted(cur)
                for sig, val in zip(cur, new):
                    m.d.sync += [s.eq(v) for s, v in zip(sig, val)]
                m.d.sync += walk_count.eq(walk_count + 1)
                with m.If(walk_count == rows - 1):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), count_en.eq(1),
                             feed.eq(j < desc.k_len), push.eq(j + 1 == desc.k_len),
                             walk_step.eq(j < rows)]
                nxt_new = shifted(nxt)
                with m.If(j < rows):
                    for sig, val in zip(nxt, nxt_new):
                        m.d.sync += [s.eq(v) for s, v in zip(sig, val)]
                # reduction counters (ci, ky, kx) as an address offset
                with m.If(feed):
                    with m.If(j + 1 == desc.k_len):
                        m.d.sync += [kx.eq(0), ky.eq(0), koff.eq(0)]
                    with m.Elif(kx + 1 < desc.kw):
                        m.d.sync += [kx.eq(kx + 1), koff.eq(koff + 1)]
                    with m.Elif(ky + 1 < desc.kh):
                        m.d.sync += [kx.eq(0), ky.eq(ky + 1), koff.eq(koff + desc.d_ky)]
                    with m.Else():
                        m.d.sync += [kx.eq(0), ky.eq(0), koff.eq(koff + desc.d_ci)]
                # tile boundary
                with m.If(j + 1 == desc.period):
                    m.d.sync += j.eq(0)
                    for sig, now, new_ in zip(cur, nxt, nxt_new):
                        m.d.sync += [s.eq(Mux(j < rows, b, a))
                                     for s, a, b in zip(sig, now, new_)]
                    with m.If(pt + 1 < desc.n_pt):
                        carry = m0 + desc.rows_mod >= desc.win
                        m.d.sync += [
                            pt.eq(pt + 1), rows_left.eq(rows_left - rows),
                            q0.eq(q0 + desc.rows_div + carry),
                            m0.eq(Mux(carry, m0 + desc.rows_mod - desc.win,
                                      m0 + desc.rows_mod)),
                        ]
                    with m.Else():
                        m.d.sync += [
                            pt.eq(0), rows_left.eq(desc.npix), q0.eq(0), m0.eq(0),
                            ct.eq(ct + 1), co_base.eq(co_base + cols),
                            cols_left.eq(cols_left - cols),
                            ch_off.eq(ch_off + desc.chan_tile_off),
                            w_ct_base.eq(w_ct_base + desc.k_len),
                        ]
                        with m.If(ct + 1 == desc.n_ct):
                            m.next = "FLUSH"
                with m.Else():
                    m.d.sync += j.eq(j + 1)
            with m.State("FLUSH"):
                m.d.comb += [self.busy.eq(1), count_en.eq(1)]
                with m.If(idle):
                    m.d.sync += layer_count.eq(0)
                    with m.Switch(layer):
                        for n in range(n_layers):
                            with m.Case(n):
                                m.d.sync += layer_regs[n].eq(layer_count + 1)
                    m.d.sync += layer.eq(layer + 1)
                    with m.If(layer == n_layers - 1):
                        m.d.sync += out_idx.eq(0)
                        m.next = "UNLOAD_READ"
                    with m.Else():
                        m.next = "SETUP"
            with m.State("UNLOAD_READ"):
                m.d.comb += [self.busy.eq(1), in_unload.eq(1),
                             unload_addr.eq(d.output_base + out_idx)]
                m.next = "UNLOAD_SEND"
            with m.State("UNLOAD_SEND"):
                m.d.comb += [self.busy.eq(1), in_unload.eq(1),
                             unload_addr.eq(d.output_base + out_idx),
                             self.o.valid.eq(1), self.o.payload.eq(act_rd[0].data)]
                with m.If(self.o.ready):
                    m.d.sync += out_idx.eq(out_idx + 1)
                    with m.If(out_idx == d.n_out - 1):
                        m.d.sync += done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "UNLOAD_READ"

        # post-processing results to the output region (all copies)
        with m.If(post.o.valid):
            m.d.comb += [wr_en.eq(1), wr_addr.eq(post.o.tag), wr_data.eq(post.o.value)]
        return m
