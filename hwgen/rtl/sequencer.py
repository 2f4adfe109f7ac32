"""The sequencer: the phase machine that runs the layer program, its feed counters and the
table of the pixels' records."""

from contextlib import contextmanager

from amaranth.hdl import Module, Mux, ResetSignal, Shape, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .. import timing
from ..errors import ShapeError, check_positive
from ..golden.blocks import pixel_walker
from .layouts import (
    buffer_write_layout,
    descriptor_const,
    descriptor_layout,
    drain_job_layout,
    engine_step_layout,
)

__all__ = ["RECORD_BRAM_BITS", "Sequencer", "pixel_records", "record_layout",
           "record_table", "records_in_block_ram"]


def record_layout(addr_width, k_max):
    """Layout of a row's record of its output pixel: the first buffer address of its
    receptive field ``addr`` (``unsigned(addr_width)``), the window of kernel offsets
    inside the image ``ylo <= ky < yhi`` and ``xlo <= kx < xhi`` (each clamped to
    ``0 … k_max``), and ``valid`` (a real pixel, not one filling a last, partial tile)."""
    kb = Shape.cast(range(k_max + 1)).width
    return data.StructLayout({"addr": unsigned(addr_width), "ylo": kb, "yhi": kb,
                              "xlo": kb, "xhi": kb, "valid": 1})


def pixel_records(desc, addr_width, k_max):
    """The records (:func:`record_layout`, as dicts) of the ``desc.walk_len`` pixels a
    layer walks, in walk order: the pixel walker's corners
    (:func:`hwgen.golden.blocks.pixel_walker`) as buffer addresses modulo
    ``2**addr_width`` and clamped kernel windows."""
    def clamp(value):
        return min(max(value, 0), k_max)

    deltas = [tuple(getattr(desc, f"d{level}_{axis}") for axis in ("iy", "ix", "base"))
              for level in range(4)]
    corners = pixel_walker((desc.start_iy, desc.start_ix, desc.start_base), deltas,
                           desc.pool, desc.pw, desc.walk_len)
    return [{"addr": (desc.in_base + base) % (1 << addr_width),
             "ylo": clamp(-iy), "yhi": clamp(desc.in_h - iy),
             "xlo": clamp(-ix), "xhi": clamp(desc.in_w - ix), "valid": int(n < desc.npix)}
            for n, (iy, ix, base) in enumerate(corners)]


def record_table(program, addr_width):
    """The sequencer's table of pixel records for the layer program ``program`` (a
    sequence of :class:`hwgen.contract.LayerDescriptor`): ``(k_max, table, bases)``, the
    largest kernel side (the records' clamp), the records (:func:`pixel_records`) of every
    entry, and the table index each entry's walk starts at (entries that walk the same
    records share them)."""
    k_max = max(max(entry.kh, entry.kw) for entry in program)
    table, bases, seen = [], [], {}
    for entry in program:
        records = pixel_records(entry, addr_width, k_max)
        key = tuple(tuple(record.values()) for record in records)
        if key not in seen:
            seen[key] = len(table)
            table.extend(records)
        bases.append(seen[key])
    return k_max, table, bases


#: Bits from which the record table is a block RAM (Yosys' ``rom_style = "block"``);
#: a smaller one is logic, a few LUTs (``"logic"``): so that the choice does not depend on
#: the synthesis tool's cost model and the analytic estimate knows it.
RECORD_BRAM_BITS = 1024


def records_in_block_ram(depth, width):
    """Whether the sequencer keeps a ``depth × width``-bit record table in block RAM."""
    return depth * width >= RECORD_BRAM_BITS


def _tail(count, tiles, size, what):
    """The ``count`` items of a layer's ``tiles`` tiles of ``size``: how many the last tile
    holds (the others hold ``size``)."""
    if tiles < 1 or not (tiles - 1) * size < count <= tiles * size:
        raise ShapeError(f"A layer of {count!r} {what}s must take {-(-count // size)!r} tiles "
                         f"of {size!r}, not {tiles!r}")
    return count - (tiles - 1) * size


class _OneHot:
    """A phase machine with one flip-flop per state, the first one initially set.

    Amaranth's ``m.FSM()`` encodes its states in binary, so every transition decodes the
    state register again; here a state's block reads one bit and a transition clears one
    and sets another, which keeps the phase machine's next-state logic a few LUTs deep.
    Use ``with fsm.state(NAME):`` as ``m.State`` and ``fsm.go(NAME)`` as ``m.next``.
    """

    def __init__(self, m, names):
        self._m = m
        self.bits = {name: Signal(name=f"in_{name.lower()}", init=(n == 0))
                     for n, name in enumerate(names)}
        self._current = None

    @contextmanager
    def state(self, name):
        self._current = name
        with self._m.If(self.bits[name]):
            yield
        self._current = None

    def go(self, name):
        self._m.d.sync += [self.bits[self._current].eq(0), self.bits[name].eq(1)]


class Sequencer(wiring.Component):
    """Run a constant layer program: load the input, run every layer, unload the output.

    Phases of one inference (``start`` → ``done``)::

        LOAD    accept the input tensor on ``i`` (one word per transfer) into region 0
        per layer (counted in ``cycles`` and ``layer_cycles``):
          SETUP  1 cycle: load the layer's descriptor, reset the counters and the walk
          WALK   rows + 2 cycles: the first tile's records are read from the table (in
                 two stages: hwgen.timing.record_latency)
          RUN    tiles × P cycles: issue K steps per tile (P = hwgen.timing.tile_period)
          FLUSH  until the drain and the post-processing pipeline are idle
        UNLOAD  offer the output tensor on ``o``; then ``done``

    Issuing (RUN, tile cycle ``j``, reduction step ``k = j < K``): every array row reads its
    own activation buffer copy at ``in_base + base[r] + koff(k)``, where ``base[r]`` is the
    row's pixel corner from its record (:func:`pixel_records`: the compiler's pixel walk,
    precomputed into a table the sequencer reads one tile ahead) and ``koff`` walks
    ``(ci, ky, kx)``; ``step`` tells the engine the
    weight address and which rows read a real element (inside the image, a real pixel).
    When the last step of a tile is issued, the tile's ``job`` goes to the drain. The cycle
    model is :func:`hwgen.timing.layer_cycles`.

    Parameters
    ----------
    descriptors : sequence of hwgen.contract.LayerDescriptor
        The layer program.
    rows, cols : int
        The array's shape.
    act_shape : shape-like
        Shape of a stored activation (and of the ``i``/``o`` payloads).
    addr_width, coord_width, count_width : int
        Bits of an activation address, of the signed coordinates and of the counts.
    n_in, n_out, input_base, output_base : int
        Words and first address of the input and output tensors.
    tail_latency : int
        Cycles from the drain's last read to the output's write (drain and
        post-processing latencies): how long FLUSH waits after the drain is idle.
    predicted_cycles : sequence of int, optional
        The cycle model's count of each layer (:func:`hwgen.timing.layer_cycles`), to size
        the cycle counters: twice the prediction fits, so a run that matches it, or takes up
        to twice as long, is counted exactly; a longer one reads as the counter's largest
        value (the counters saturate, never wrap to a plausible count). Default: 32-bit
        counters.

    Members
    -------
    start : In(1)
        Begin an inference (while idle).
    busy, done : Out(1)
        Running; finished (until the next start).
    i, o : stream of ``act_shape``
        The input and output tensors.
    cycles : Out(32)
        Compute cycles of the last inference.
    layer_sel : In(8), layer_cycles : Out(32)
        Cycles of layer ``layer_sel`` of the last inference.
    rd_addr : Out(ArrayLayout(unsigned(addr_width), rows))
        Activation buffer read addresses (row 0 also unloads).
    unload_data : In(act_shape)
        Activation buffer row 0's data.
    load : Out(buffer_write_layout(addr_width, act_shape))
        Writes of the input tensor.
    step : Out(engine_step_layout(rows, count_width))
        The step issued to the engine.
    job : Out(drain_job_layout(count_width))
        The tile to drain.
    desc : Out(descriptor_layout(coord_width, count_width))
        The running layer's descriptor.
    drain_busy : In(1)
        The drain holds a job.
    """

    def __init__(self, descriptors, *, rows, cols, act_shape, addr_width, coord_width,
                 count_width, n_in, n_out, input_base, output_base, tail_latency,
                 predicted_cycles=None):
        self._descriptors = tuple(descriptors)
        if not self._descriptors:
            raise ShapeError("Layer program must hold at least one layer")
        self._rows = check_positive(rows, "Sequencer rows", ShapeError)
        self._cols = check_positive(cols, "Sequencer columns", ShapeError)
        self._aw = check_positive(addr_width, "Address width")
        self._sw = check_positive(coord_width, "Coordinate width")
        self._cw = check_positive(count_width, "Count width")
        self._n_in = check_positive(n_in, "Input words")
        self._n_out = check_positive(n_out, "Output words")
        self._input_base, self._output_base = input_base, output_base
        self._tail_latency = tail_latency
        if predicted_cycles is None:
            self._layer_bits = (32,) * len(self._descriptors)
            self._total_bits = 32
        else:
            predicted_cycles = tuple(predicted_cycles)
            if len(predicted_cycles) != len(self._descriptors):
                raise ShapeError(f"Predicted cycles must give one count per layer, not "
                                 f"{predicted_cycles!r}")
            self._layer_bits = tuple(min(32, (2 * check_positive(n, "Predicted cycles", ShapeError))
                                         .bit_length()) for n in predicted_cycles)
            self._total_bits = min(32, (2 * sum(predicted_cycles)).bit_length())
        self._desc_layout = descriptor_layout(coord_width, count_width)
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "i": In(stream.Signature(act_shape)),
            "o": Out(stream.Signature(act_shape)),
            "cycles": Out(32),
            "layer_sel": In(8),
            "layer_cycles": Out(32),
            "rd_addr": Out(data.ArrayLayout(unsigned(addr_width), rows)),
            "unload_data": In(act_shape),
            "load": Out(buffer_write_layout(addr_width, act_shape)),
            "step": Out(engine_step_layout(rows, count_width)),
            "job": Out(drain_job_layout(count_width)),
            "desc": Out(self._desc_layout),
            "drain_busy": In(1),
        })

    def elaborate(self, platform):
        rows, cols = self._rows, self._cols
        aw, cw = self._aw, self._cw
        program = self._descriptors
        n_layers = len(program)
        m = Module()

        desc = self.desc
        layer = Signal(range(n_layers + 1))

        # The pixels' records, one per walked pixel of every layer, precomputed into a
        # table (a ROM, in block RAM): a layer walks its part of the table from ``rec_base``,
        # ``walk_len`` records, then starts over, a tile ahead of the array. A row's record
        # holds the first buffer address of its pixel's receptive field and the window of
        # kernel offsets inside the image, lo <= ky < hi and lo <= kx < hi, clamped to
        # 0..K (K the program's largest kernel side); each row then tests ``inside`` with
        # four compares of a few bits and forms its address with one adder. Program
        # entries that walk the same records share them.
        k_max, table, rec_bases = record_table(program, aw)
        rec_layout = record_layout(aw, k_max)
        rom = m.submodules.records = Memory(
            shape=rec_layout, depth=len(table), init=table,
            attrs={"rom_style": "block" if records_in_block_ram(len(table), rec_layout.size)
                   else "logic"})
        rec_rd = rom.read_port()
        # Whether the walk steps this cycle: a register set a cycle ahead by the phase
        # machine (WALK's first rows cycles, RUN's tile cycles j < rows), so that no state
        # decode or compare lies in front of the record address's enable.
        walk_step = Signal()
        m.d.sync += walk_step.eq(0)
        # The record address and its terminal count (``rec_last``: the layer's last record),
        # registered like the feed counters' flags below, with the bounds loaded at SETUP.
        rec_addr = Signal(range(max(2, len(table))))
        rec_start, rec_at = Signal.like(rec_addr), Signal(rec_addr.shape().width + 1)
        rec_last, rec_one = Signal(), Signal()
        m.d.comb += rec_rd.addr.eq(rec_addr)
        with m.If(walk_step):
            with m.If(rec_last):
                m.d.sync += [rec_addr.eq(rec_start), rec_last.eq(rec_one)]
            with m.Else():
                m.d.sync += [rec_addr.eq(rec_addr + 1), rec_last.eq(rec_addr == rec_at)]

        # The record reaches the banks in two registered stages
        # (timing.record_latency() = 2): the table's read, then ``rec_reg``; ``fresh``
        # follows a step through them, so ``rec_fresh`` says that ``rec_reg`` holds the
        # pixel the walk stepped past two cycles earlier.
        rec_reg = Signal(rec_layout)
        m.d.sync += rec_reg.eq(rec_rd.data)
        stages = timing.record_latency()        # the two registers: the read, rec_reg
        fresh = [Signal(name=f"fresh_{n}") for n in range(stages)]
        rec_fresh = fresh[-1]
        m.d.sync += [a.eq(b) for a, b in zip(fresh, [walk_step] + fresh[:-1])]
        # The banks: ``nxt`` shifts in the first rows - 1 records of a tile, and ``cur`` (the
        # records the running tile reads) loads them with the last one, ``rec_reg``, in the
        # cycle that one arrives. The walk is timed so that this is always a fixed cycle
        # (WALK's last, RUN's tile end): every bank register then has one source, and needs
        # no multiplexer.
        cur = [Signal(rec_layout, name=f"cur_{r}") for r in range(rows)]
        nxt = [Signal(rec_layout, name=f"nxt_{r}") for r in range(rows - 1)]
        with m.If(rec_fresh):
            m.d.sync += [s.eq(v) for s, v in zip(nxt, nxt[1:] + [rec_reg])]
        load_cur = Signal()
        with m.If(load_cur):
            m.d.sync += [s.eq(v) for s, v in zip(cur, nxt + [rec_reg])]

        # Counters that clear to 0 (at a phase's start, at a tile's end, ...) do so through
        # their flip-flops' synchronous reset: they are reset_less, and ``clear(counter)``
        # or the domain's reset signal sets that reset, over every other assignment (see
        # the end of elaborate). So a clear costs one term of the reset, not a multiplexer
        # per bit. (A ResetInserter's reset would not reach them, but the phase machine
        # clears each before it is used.)
        clears = {}

        def counter(shape, name):
            signal = Signal(shape, name=name, reset_less=True)
            clears[name] = (signal, Signal(name=f"clear_{name}"))
            return signal

        def clear(*counters):
            m.d.comb += [clears[c.name][1].eq(1) for c in counters]

        # feed counters, each as wide as the program's largest value of it needs (the
        # descriptor's counts are count_width wide for the largest count of any kind)
        def largest(name):
            return max(1, max(getattr(entry, name) for entry in program))

        j = counter(range(largest("period")), "j")      # cycle within the tile
        kx, ky = counter(range(k_max), "kx"), counter(range(k_max), "ky")
        koff = counter(aw, "koff")      # an address offset: wraps as the addresses do
        pt, ct = counter(range(largest("n_pt")), "pt"), counter(range(largest("n_ct")), "ct")
        w_ct_base = Signal(cw)
        # A tile's real pixels and channels: all rows and cols but in a layer's last pixel
        # and channel tiles, which hold its remainders, loaded at SETUP.
        rows_tail = Signal(range(rows + 1))
        cols_tail = Signal(range(cols + 1))
        # the parameter address of the tile's first channel: the layer's param_base at
        # SETUP, then cols more per channel tile (so the drain adds only the column)
        co_addr = Signal(range(max(e.param_base + e.cout for e in program) + cols),
                         name="co_addr")
        # pool window q0 (the tile's first pixel pt·rows // win, at most npix - 1) and
        # place in it m0 (< win)
        q0, m0 = counter(range(largest("npix")), "q0"), counter(range(largest("win")), "m0")
        feed = Signal()                 # a reduction step is issued this cycle
        push = Signal()                 # the last step of a tile is issued this cycle

        # Terminal counts, registered: each flag tells the counters' *current* value's
        # relation to the descriptor and is computed one cycle ahead from the next value,
        # so that no compare lies between a counter and the enables it drives.
        #   is_feed   j < K             is_last  j + 1 == K
        #   is_tail   j >= tail_from    is_end   j + 1 == P
        #   (walk_step  P - rows - 2 <= j <= P - 3)
        #   kx_last   kx + 1 == kw      ky_last  ky + 1 == kh
        #   pt_last   pt + 1 == n_pt    ct_last  ct + 1 == n_ct   (through pre, below)
        is_feed, is_last = Signal(), Signal()
        is_tail, is_end = Signal(), Signal()
        kx_last, ky_last, pt_last, ct_last = Signal(), Signal(), Signal(), Signal()

        # What the next tile boundary loads into the tile counters' flags and the drain's
        # pool-window position, computed every cycle from the current values: those change
        # only at tile boundaries (and SETUP), at least timing.tile_period() >= 3 cycles
        # apart, so these are current by the next boundary, and no adder or compare lies
        # between is_end and the registers.
        # The flags' bounds, loaded at SETUP from the program's constants: a counter's
        # next value reaches its bound when the counter equals ``at_*`` (the bound minus 2,
        # or minus 1 for is_tail; a bound out of the counter's reach gives a value one bit
        # wider than the counter, which it never takes), and ``one_*`` tells the flag of a
        # counter's first value. So the flags need one equality compare each, and no adder.
        counters = {"last": j, "end": j, "tail": j, "walk": j, "stop": j, "kx": kx, "ky": ky,
                    "pt": pt, "ct": ct}
        at = {name: Signal(len(counter) + 1, name=f"at_{name}")
              for name, counter in counters.items()}
        one = {name: Signal(name=f"one_{name}")
               for name in ("last", "end", "tail", "kx", "ky", "walk", "pt")}

        pre = {"pt_last": Signal(name="pre_pt_last"), "ct_last": Signal(name="pre_ct_last"),
               "q0": Signal.like(q0, name="pre_q0"), "m0": Signal.like(m0, name="pre_m0")}
        carry = m0 + desc.rows_mod >= desc.win
        m.d.sync += [
            pre["pt_last"].eq(pt == at["pt"]), pre["ct_last"].eq(ct == at["ct"]),
            pre["q0"].eq(q0 + desc.rows_div + carry),
            pre["m0"].eq(Mux(carry, m0 + desc.rows_mod - desc.win, m0 + desc.rows_mod)),
        ]

        def j_flags(restart):
            """Set the j flags for ``j = 0`` (``restart``) or ``j + 1``."""
            with m.If(restart):
                m.d.sync += [is_feed.eq(1), is_last.eq(one["last"]),
                             is_tail.eq(one["tail"]), is_end.eq(one["end"])]
            with m.Else():
                m.d.sync += [is_feed.eq(is_feed & ~is_last),
                             is_last.eq(j == at["last"]),
                             is_tail.eq(is_tail | (j == at["tail"])),
                             is_end.eq(j == at["end"])]

        # --- the tile's job for the drain ------------------------------------------------
        # The step, the buffer reads and the job leave through registers
        # (timing.issue_latency() = 1), so that no path runs from the counters through the
        # address adders into the memories.
        job = self.job
        m.d.sync += [
            job.valid.eq(push), job.co_addr.eq(co_addr),
            job.cols_valid.eq(Mux(ct_last, cols_tail, cols)),
            job.rows_valid.eq(Mux(pt_last, rows_tail, rows)),
            job.q0.eq(q0), job.m0.eq(m0),
        ]
        # Idle once nothing is waiting, being read, or in post-processing up to the write:
        # the drain was not busy in the last tail_latency + 1 cycles. Registered (so that no
        # path runs from the drain through the phase machine): computed a cycle ahead, with
        # the job pushed in that cycle standing for the drain's busy in the next one (the
        # drain is busy the cycle after a push, and stays idle while nothing is pushed).
        track = [Signal(name=f"track_{n}") for n in range(self._tail_latency - 1)]
        if track:
            m.d.sync += track[0].eq(self.drain_busy)
        for n in range(1, len(track)):
            m.d.sync += track[n].eq(track[n - 1])
        idle = Signal()
        any_busy = push | job.valid | self.drain_busy
        for t in track:
            any_busy = any_busy | t
        m.d.sync += idle.eq(~any_busy)

        # --- the step issued to the engine and the buffer reads ------------------------------
        step = self.step
        for r, rec in enumerate(cur):
            m.d.sync += step.inside[r].eq(rec.valid & (ky >= rec.ylo) & (ky < rec.yhi)
                                          & (kx >= rec.xlo) & (kx < rec.xhi))
        m.d.sync += [step.valid.eq(feed), step.last.eq(is_last),
                     step.tail.eq(is_tail), step.w_addr.eq(w_ct_base + j)]

        unload_addr = Signal(aw)
        in_unload = Signal()
        for r in range(rows):
            feed_addr = Signal(aw, name=f"feed_addr_{r}")
            m.d.sync += feed_addr.eq(cur[r].addr + koff)
            if r == 0:
                m.d.comb += self.rd_addr[r].eq(Mux(in_unload, unload_addr, feed_addr))
            else:
                m.d.comb += self.rd_addr[r].eq(feed_addr)

        # --- counters and status ---------------------------------------------------------
        count_en = Signal()
        # sized from the predicted counts (see predicted_cycles), and saturating: a run
        # longer than they hold reads as their largest value
        total = counter(self._total_bits, "total")
        layer_count = counter(max(self._layer_bits), "layer_count")
        layer_regs = [Signal(len(layer_count), name=f"layer_cycles_{n}")
                      for n in range(n_layers)]
        with m.If(count_en & ~total.all()):
            m.d.sync += total.eq(total + 1)
        with m.If(count_en & ~layer_count.all()):
            m.d.sync += layer_count.eq(layer_count + 1)
        m.d.comb += self.cycles.eq(total)
        with m.Switch(self.layer_sel):
            for n in range(n_layers):
                with m.Case(n):
                    m.d.comb += self.layer_cycles.eq(layer_regs[n])

        done = Signal()
        m.d.comb += self.done.eq(done)
        load_idx = counter(range(max(self._n_in, 2)), "load_idx")
        out_idx = counter(range(max(self._n_out, 2)), "out_idx")
        walk_count = counter(range(rows + stages + 1), "walk_count")

        # The load's address and data, the unload's address and the output's payload
        # matter only while load.en, in_unload and o.valid say so: they are not gated.
        m.d.comb += [self.load.addr.eq(self._input_base + load_idx),
                     self.load.data.eq(self.i.payload),
                     unload_addr.eq(self._output_base + out_idx),
                     self.o.payload.eq(self.unload_data)]

        # --- the phase machine --------------------------------------------------------------
        fsm = _OneHot(m, ("IDLE", "LOAD", "SETUP", "WALK", "RUN", "FLUSH", "UNLOAD_READ",
                          "UNLOAD_SEND"))
        with fsm.state("IDLE"):
            with m.If(self.start):
                m.d.sync += done.eq(0)
                clear(load_idx, total, layer_count)
                fsm.go("LOAD")
        with fsm.state("LOAD"):
            m.d.comb += [self.busy.eq(1), self.i.ready.eq(1),
                         self.load.en.eq(self.i.valid)]
            with m.If(self.i.valid):
                m.d.sync += load_idx.eq(load_idx + 1)
                with m.If(load_idx == self._n_in - 1):
                    m.d.sync += layer.eq(0)
                    fsm.go("SETUP")
        with fsm.state("SETUP"):
            m.d.comb += [self.busy.eq(1), count_en.eq(1)]
            clear(j, kx, ky, koff, pt, ct, q0, m0, walk_count)
            # The program is constant: each layer's descriptor is a case of the layer
            # index, loaded straight into registers (a clocked ROM).
            with m.Switch(layer):
                for index, entry in enumerate(program):
                    with m.Case(index):
                        m.d.sync += [
                            desc.eq(descriptor_const(self._desc_layout, entry)),
                            w_ct_base.eq(entry.w_base), co_addr.eq(entry.param_base),
                            rows_tail.eq(_tail(entry.npix, entry.n_pt, rows, "pixel")),
                            cols_tail.eq(_tail(entry.cout, entry.n_ct, cols, "channel")),
                            is_feed.eq(1), is_last.eq(entry.k_len == 1),
                            is_tail.eq(entry.tail_from == 0),
                            is_end.eq(entry.period == 1), kx_last.eq(entry.kw == 1),
                            ky_last.eq(entry.kh == 1), pt_last.eq(entry.n_pt == 1),
                            ct_last.eq(entry.n_ct == 1),
                            rec_addr.eq(rec_bases[index]), rec_start.eq(rec_bases[index]),
                            rec_at.eq((rec_bases[index] + entry.walk_len - 2)
                                      % (1 << len(rec_at))),
                            rec_last.eq(entry.walk_len == 1),
                            rec_one.eq(entry.walk_len == 1),
                        ]
                        # the walk steps at tile cycles P - rows - 2 … P - 3, so that its
                        # last record arrives at the tile's end
                        bounds = {"last": entry.k_len, "end": entry.period,
                                  "tail": entry.tail_from + 1, "kx": entry.kw, "ky": entry.kh,
                                  "walk": entry.period - rows - 1, "stop": entry.period - 1,
                                  "pt": entry.n_pt, "ct": entry.n_ct}
                        for name, bound in bounds.items():
                            reach = 1 << len(counters[name])
                            m.d.sync += at[name].eq(bound - 2 if 0 <= bound - 2 < reach
                                                    else 2 * reach - 1)
                        m.d.sync += [one[name].eq(bounds[name] == 1) for name in one]
            m.d.sync += walk_step.eq(1)
            fsm.go("WALK")
        with fsm.state("WALK"):
            # rows walk steps; their records enter the bank two cycles later each
            m.d.comb += [self.busy.eq(1), count_en.eq(1)]
            m.d.sync += walk_count.eq(walk_count + 1)
            with m.If(walk_count == rows + stages - 1):
                m.d.comb += load_cur.eq(1)
                m.d.sync += walk_step.eq(one["walk"])   # RUN's tile cycle 0
                fsm.go("RUN")
            with m.Else():
                m.d.sync += walk_step.eq(walk_count + 1 < rows)
        with fsm.state("RUN"):
            m.d.comb += [self.busy.eq(1), count_en.eq(1), feed.eq(is_feed),
                         push.eq(is_last)]
            # the next tile's records: walk steps at P - rows - 2 <= j <= P - 3, the last
            # record arrives at j = P - 1 (P >= rows + 2); the last tile walks too, unread
            # reduction counters (ci, ky, kx) as an address offset, whose step (1, d_ky or
            # d_ci) is chosen before one adder
            with m.If(is_feed):
                with m.If(is_last):
                    clear(kx, ky, koff)
                    m.d.sync += [kx_last.eq(one["kx"]), ky_last.eq(one["ky"])]
                with m.Else():
                    m.d.sync += koff.eq(koff + Mux(~kx_last, 1,
                                                   Mux(~ky_last, desc.d_ky, desc.d_ci)))
                    with m.If(~kx_last):
                        m.d.sync += [kx.eq(kx + 1), kx_last.eq(kx == at["kx"])]
                    with m.Elif(~ky_last):
                        clear(kx)
                        m.d.sync += [ky.eq(ky + 1),
                                     kx_last.eq(one["kx"]), ky_last.eq(ky == at["ky"])]
                    with m.Else():
                        clear(kx, ky)
                        m.d.sync += [kx_last.eq(one["kx"]), ky_last.eq(one["ky"])]
            # tile boundary
            j_flags(is_end)
            m.d.sync += walk_step.eq(Mux(is_end, one["walk"],
                                         (j == at["walk"]) | (walk_step & (j != at["stop"]))))
            with m.If(is_end):
                m.d.comb += load_cur.eq(1)
                clear(j)
                with m.If(~pt_last):
                    m.d.sync += [
                        pt.eq(pt + 1),
                        q0.eq(pre["q0"]), m0.eq(pre["m0"]), pt_last.eq(pre["pt_last"]),
                    ]
                with m.Else():
                    clear(pt, q0, m0)
                    m.d.sync += [
                        ct.eq(ct + 1), co_addr.eq(co_addr + cols),
                        w_ct_base.eq(w_ct_base + desc.k_len),
                        pt_last.eq(one["pt"]), ct_last.eq(pre["ct_last"]),
                    ]
                    with m.If(ct_last):
                        fsm.go("FLUSH")
            with m.Else():
                m.d.sync += j.eq(j + 1)
        with fsm.state("FLUSH"):
            m.d.comb += [self.busy.eq(1), count_en.eq(1)]
            with m.If(idle):
                clear(layer_count)
                with m.Switch(layer):
                    for n in range(n_layers):
                        with m.Case(n):
                            m.d.sync += layer_regs[n].eq(
                                Mux(layer_count.all(), layer_count, layer_count + 1))
                m.d.sync += layer.eq(layer + 1)
                with m.If(layer == n_layers - 1):
                    clear(out_idx)
                    fsm.go("UNLOAD_READ")
                with m.Else():
                    fsm.go("SETUP")
        with fsm.state("UNLOAD_READ"):
            m.d.comb += [self.busy.eq(1), in_unload.eq(1)]
            fsm.go("UNLOAD_SEND")
        with fsm.state("UNLOAD_SEND"):
            m.d.comb += [self.busy.eq(1), in_unload.eq(1), self.o.valid.eq(1)]
            with m.If(self.o.ready):
                m.d.sync += out_idx.eq(out_idx + 1)
                with m.If(out_idx == self._n_out - 1):
                    m.d.sync += done.eq(1)
                    fsm.go("IDLE")
                with m.Else():
                    fsm.go("UNLOAD_READ")
        for signal, when in clears.values():
            with m.If(when | ResetSignal()):
                m.d.sync += signal.eq(0)
        return m
