"""The post-processing unit: bias, requantize, overflow, ReLU and max-pool."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..errors import FormatError, check_positive
from ..numerics import OVERFLOW_MODES, RANDOM_BITS, ROUNDING_MODES, SLOT_SHIFT
from .layouts import (
    Overflow,
    Rounding,
    post_process_config_layout,
    post_process_input_layout,
    post_process_output_layout,
)

__all__ = ["PostProcess"]


def _hash(word):
    """``rev(xs(xs(xs(word))))`` of :func:`hwgen.numerics.stochastic_random` on a 32-bit
    value: XOR gates only."""
    x = word
    for _ in range(3):
        x = (x ^ (x << 13))[:RANDOM_BITS]
        x = x ^ (x >> 17)
        x = (x ^ (x << 5))[:RANDOM_BITS]
    return Cat(*(x[RANDOM_BITS - 1 - j] for j in range(RANDOM_BITS)))


def _check_modes(modes, enum, all_names, what):
    if isinstance(modes, str) or not isinstance(modes, (tuple, list)) or not modes:
        raise FormatError(f"{what}s must be a non-empty tuple of mode names, not {modes!r}")
    members = []
    for name in modes:
        if name not in all_names:
            raise FormatError(f"{what} must be one of {', '.join(all_names)}, not {name!r}")
        if name.upper() not in enum.__members__:
            raise FormatError(f"{what} {name!r} has no hardware implementation")
        member = enum[name.upper()]
        if member not in members:
            members.append(member)
    return tuple(members)


class PostProcess(wiring.Component):
    """Post-processing unit: one accumulator in, one stored activation out, every cycle.

    For each valid input, with ``W``, signedness, rounding and overflow from ``cfg``:

    1. ``x = acc + bias``, exact (one bit wider than the accumulator); ``i.bias`` holds
       :func:`hwgen.contract.param_bias` of the bias, which adds rounding to nearest's
       half step, so the unit does not add it;
    2. ``y = requantize(x, from_frac=shift, to_fmt=QFormat(W, 0, signed), rounding,
       overflow)`` as :func:`hwgen.numerics.requantize` defines it: ``shift > 0`` shifts right
       with rounding, ``shift < 0`` shifts left exactly, then ``saturate`` clamps to the
       format's range and ``wrap`` keeps the low ``W`` bits (two's complement when signed);
       every shift the ``shift`` field can hold gives the exact result;
    3. ``v = max(0, y)`` when ``cfg.relu``;
    4. when ``cfg.pool`` is 0, ``v`` is emitted. When it is 1, a running maximum is kept per
       column, ``m[col] = v if pool_first else max(m[col], v)``, and ``m[col]`` is emitted
       only with ``pool_last`` (``pool_first`` and ``pool_last`` may both be set: a window
       of one).

    Invalid inputs change nothing. ``cfg`` is sampled together with each valid input and
    travels with it through the pipeline, so it may change between any two inputs (the
    sequencer keeps it constant during a layer). The golden model is
    :func:`hwgen.golden.blocks.post_process` followed by
    :func:`hwgen.golden.blocks.max_pool_stream`.

    ``o.value`` is the ``W``-bit result sign-extended (signed formats) or zero-extended
    (unsigned formats) to ``out_width`` bits; an unsigned format with ``W = out_width``
    fills all bits, so its values read correctly only as unsigned. A rounding or overflow
    mode selected in ``cfg`` but not generated behaves as the first generated one (given
    that mode's bias, which holds rounding to nearest's half step); ``W`` must be in
    ``1..out_width``.

    Pipeline (``latency = 4``, 5 with ``scale_width`` or stochastic rounding): with scales,
    stage 0 multiplies ``acc`` by the per-channel ``scale`` (``acc·scale`` replaces ``acc``
    below; the bias is at the scaled accumulator's binary point); with stochastic rounding
    it also hashes the item's position into its random value ``r`` (XOR gates:
    :func:`hwgen.numerics.stochastic_random` of ``index`` and ``slot`` is the hash of
    ``index ^ (slot << 24)`` XOR ``cfg.mask``); stage 1 adds the bias (with rounding to
    nearest's ``2**(s-1)`` in it) and stochastic rounding's low ``s`` bits of ``r``, and
    decodes the shift; stage 2 shifts (and settles ties to even); stage 3
    applies overflow and ReLU, or the threshold; stage 4 updates the pooling register and
    drives ``o``.

    Thresholds (when generated, for ``cfg.binary``): the bias holds ``−threshold`` and the
    shift is 0, so stage 3 sees ``x = acc − threshold`` and emits ``+1`` when ``x >= 0``
    (``x <= 0`` when ``i.flip``), else ``−1``; overflow and ReLU are skipped, pooling
    applies (a max of ±1 values).

    Parameters
    ----------
    acc_width : int
        Width of the accumulator (positive); the bias is 3 bits wider (with scales:
        ``scale_width`` more), :func:`hwgen.contract.param_bias`.
    out_width : int
        Storage width ``S`` of activations (all activations are stored signed, ``S`` bits).
    cols : int
        Number of columns (pooling registers), positive.
    tag_shape : shape-like
        Shape of the ``tag`` field passed through with each value (e.g. a write address).
    roundings : tuple of str
        Rounding modes generated: any of ``"nearest_even"``, ``"nearest_up"``, ``"floor"``,
        ``"stochastic"``.
    overflows : tuple of str
        Overflow modes generated: any of ``"saturate"``, ``"wrap"``.
    shift_width : int
        Width of the signed ``shift`` field, at least 2 (default 7: shifts -64..63).
    scale_width : int
        Width of the signed per-channel multiplier ``i.scale``; 0 (default): no multiplier.
    thresholds : bool
        Generate the threshold compare of binary outputs (``cfg.binary``).
    shifts : (int, int) or None
        ``(lowest, highest)`` shift the design's parameter words hold: the shifters are
        built for that range only (no left shifter when ``lowest >= 0``); other shifts give
        undefined results. ``None`` (default): every shift the field can hold.
    formats : sequence of (int, bool) or None
        The ``(width, signed)`` output formats the design uses: with just one, the format's
        bounds are constants and ``cfg.width``/``cfg.signed`` are ignored. ``None``
        (default): any format ``cfg`` names.
    position_width : int
        Width of ``i.index`` with stochastic rounding (16); ignored without.

    Members
    -------
    i : In(post_process_input_layout(acc_width, cols, tag_shape, shift_width, scale_width,
    position_width))
        ``valid``, ``acc``, ``bias``, (``scale``), ``flip``, ``shift``, ``col``,
        ``pool_first``, ``pool_last``, ``tag``, (``index``, ``slot``: the item's position
        for stochastic rounding, :func:`hwgen.numerics.stochastic_positions`).
    cfg : In(post_process_config_layout(out_width, stochastic))
        ``rounding``, ``overflow``, ``width``, ``signed``, ``relu``, ``pool``, ``binary``,
        (``mask``: the layer's random mask, ``stochastic_random(seed, layer, 0, 0)``).
    o : Out(post_process_output_layout(out_width, tag_shape))
        ``valid``, ``value`` (``signed(out_width)``), ``tag`` (of the input emitted).

    Attributes
    ----------
    latency : int
        Cycles from ``i.valid`` to the corresponding ``o.valid``: 4, 5 with a multiplier (an
        input presented in cycle ``t`` is emitted in cycle ``t + latency``). The unit
        accepts one input per cycle.
    """

    def __init__(self, acc_width, out_width, cols, tag_shape,
                 roundings=("nearest_even", "nearest_up", "floor"),
                 overflows=("saturate", "wrap"), shift_width=7, scale_width=0,
                 thresholds=False, shifts=None, formats=None, position_width=16):
        self._acc_width = check_positive(acc_width, "Accumulator width")
        self._out_width = check_positive(out_width, "Output width")
        self._cols = cols
        self._tag_shape = tag_shape
        self._shift_width = shift_width
        self._scale_width = scale_width
        self._thresholds = bool(thresholds)
        self._roundings = _check_modes(roundings, Rounding, ROUNDING_MODES, "Rounding mode")
        self._position_width = check_positive(position_width, "Position width") \
            if self.stochastic else 0
        i_layout = post_process_input_layout(acc_width, cols, tag_shape, shift_width,
                                             scale_width, self._position_width)
        self._overflows = _check_modes(overflows, Overflow, OVERFLOW_MODES, "Overflow mode")
        full = (-(1 << (shift_width - 1)), (1 << (shift_width - 1)) - 1)
        self._shifts = full if shifts is None else (int(shifts[0]), int(shifts[1]))
        if not full[0] <= self._shifts[0] <= self._shifts[1] <= full[1]:
            raise FormatError(f"Shift range must lie within {full!r}, not {shifts!r}")
        self._formats = None if formats is None else tuple(
            sorted({(int(w), bool(sg)) for w, sg in formats}))
        if self._formats is not None and not all(1 <= w <= out_width
                                                 for w, _ in self._formats):
            raise FormatError(f"Output formats must be 1 to {out_width} bits wide, not "
                              f"{formats!r}")
        super().__init__({
            "i": In(i_layout),
            "cfg": In(post_process_config_layout(out_width, self.stochastic)),
            "o": Out(post_process_output_layout(out_width, tag_shape)),
        })

    @property
    def acc_width(self):
        return self._acc_width

    @property
    def out_width(self):
        return self._out_width

    @property
    def cols(self):
        return self._cols

    @property
    def tag_shape(self):
        return self._tag_shape

    @property
    def shift_width(self):
        return self._shift_width

    @property
    def roundings(self):
        """Rounding modes generated, as :class:`~hwgen.rtl.layouts.Rounding` members."""
        return self._roundings

    @property
    def overflows(self):
        """Overflow modes generated, as :class:`~hwgen.rtl.layouts.Overflow` members."""
        return self._overflows

    @property
    def shifts(self):
        """``(lowest, highest)`` shift the shifters are built for."""
        return self._shifts

    @property
    def formats(self):
        """The ``(width, signed)`` output formats built for, or ``None`` for any."""
        return self._formats

    @property
    def scale_width(self):
        return self._scale_width

    @property
    def stochastic(self):
        """Stochastic rounding is generated (the inputs ``index`` and ``slot`` and
        ``cfg.mask`` exist)."""
        return Rounding.STOCHASTIC in self._roundings

    @property
    def position_width(self):
        """Width of ``i.index`` (0 without stochastic rounding)."""
        return self._position_width

    @property
    def thresholds(self):
        return self._thresholds

    @property
    def latency(self):
        """Cycles from ``i.valid`` to the corresponding ``o.valid``:
        :func:`hwgen.timing.post_process_latency` of ``scale_width > 0`` and
        :attr:`stochastic` = 4, or 5 with the multiplier or stochastic rounding."""
        return timing.post_process_latency(self._scale_width > 0, self.stochastic)

    def elaborate(self, platform):
        m = Module()
        A, S = self._acc_width + self._scale_width, self._out_width
        i, cfg, o = self.i, self.cfg, self.o
        cfg_layout = post_process_config_layout(S, self.stochastic)

        def stage(n, valid_from):
            """Registers that carry one item's side fields from one stage to the next."""
            st = {
                "valid": Signal(name=f"s{n}_valid"),
                "cfg": Signal(cfg_layout, name=f"s{n}_cfg"),
                "pool_first": Signal(name=f"s{n}_pool_first"),
                "pool_last": Signal(name=f"s{n}_pool_last"),
                "flip": Signal(name=f"s{n}_flip"),
                "tag": Signal(self._tag_shape, name=f"s{n}_tag"),
            }
            if self._cols > 1:
                # One column needs no column number (and a zero-width register would only
                # add `[-1:0]` declarations to the Verilog).
                st["col"] = Signal(range(self._cols), name=f"s{n}_col")
            m.d.sync += st["valid"].eq(valid_from["valid"])
            # Side fields only load with a valid item, so a bubble leaves them untouched.
            with m.If(valid_from["valid"]):
                m.d.sync += [st[k].eq(valid_from[k]) for k in st if k != "valid"]
            return st

        s0 = {"valid": i.valid, "cfg": cfg, "col": i.col, "pool_first": i.pool_first,
              "pool_last": i.pool_last, "tag": i.tag, "flip": i.flip}
        acc_in, bias_in, shift = i.acc, i.bias, i.shift
        lowest, highest = self._shifts
        stochastic = self.stochastic
        # Stochastic rounding's shifts are not clamped: its result depends on every bit of
        # the shift (see below).
        r_max = max(1, highest) if stochastic else max(1, min(A + 2, highest))
        n_rand = min(r_max, RANDOM_BITS)

        # --- stage 0 (designs with scales or stochastic rounding): the multiplier,
        # registered in and out, and the random value of the item's position ------------
        # The multiplier's operands come from registers (the drain's output, the parameter
        # memory's read port) and its product goes to a register: the shape a DSP block
        # absorbs.
        if self._scale_width or stochastic:
            s0 = stage(0, s0)
            acc_in = Signal(signed(A), name="s0_scaled" if self._scale_width else "s0_acc")
            bias_in = Signal(signed(A + 3), name="s0_bias")
            shift = Signal(signed(self._shift_width), name="s0_shift")
            with m.If(i.valid):
                m.d.sync += [acc_in.eq(i.acc * i.scale if self._scale_width else i.acc),
                             bias_in.eq(i.bias), shift.eq(i.shift)]
        if stochastic:
            # numerics.stochastic_random is linear over GF(2): the hash of the position
            # XOR the layer's mask (the hash of its seed word). Only the n_rand low bits
            # that a shift of up to r_max reads are built.
            rand = Signal(n_rand, name="s0_rand")
            word = Signal(RANDOM_BITS, name="s0_word")
            m.d.comb += word.eq(i.index ^ (i.slot << SLOT_SHIFT))
            with m.If(i.valid):
                m.d.sync += rand.eq(_hash(word)[:n_rand] ^ cfg.mask[:n_rand])

        # --- stage 1: bias, rounding constant, shift decode -------------------------------
        # Rounding to nearest is folded into the bias: with half = 2**(r-1), nearest_up is
        # (x + half) >> r, and nearest_even is the same with the lowest bit cleared on a tie
        # (then x + half has r zero bits at the bottom); i.bias holds bias + half
        # (hwgen.contract.param_bias), so one adder takes both. Stage 2 is thus a shifter
        # with no adder behind it.
        # Stochastic rounding adds v = r mod 2**s (r << (s - 32) beyond 32 bits) in the
        # same adder, a third operand, and stage 2 floors.
        s1 = stage(1, s0)
        # Right shifts of A + 1 or more all give the same result (0 when rounding to
        # nearest, the sign for floor), so the right amount is clamped to A + 2, which also
        # keeps x + half within A + 3 bits. Left shifts of S or more all saturate (or wrap
        # to 0) in a format of at most S bits, so the left amount is clamped to S.
        # Only the shifts the design holds are built (self._shifts).
        l_max = min(S, max(0, -lowest))
        xw = max(A + 3, r_max + 2) if stochastic else A + 3
        qw = xw + l_max
        x = Signal(signed(xw), name="s1_x")
        right = Signal(range(r_max + 1), name="s1_right")
        left = Signal(range(max(2, l_max + 1)), name="s1_left")   # unused when l_max = 0
        is_left = Signal(name="s1_is_left")
        below = Signal(r_max, name="s1_below")        # below[j] = (j < right)
        nearest_even = Signal(name="s1_nearest_even")
        even_in = Signal()
        random = Signal()
        r_in = Signal(range(r_max + 1))
        m.d.comb += r_in.eq(Mux(shift > r_max, r_max, Mux(shift > 0, shift, 0)))
        low = Const(0)
        if stochastic:
            low = Cat(*(random & rand[j] & (r_in > j) for j in range(n_rand)))
            if r_max > RANDOM_BITS:
                wide = Signal(r_max)
                m.d.comb += wide.eq(Mux(r_in > RANDOM_BITS, rand << (r_in - RANDOM_BITS).as_unsigned(),
                                        low))
                low = Mux(random, wide, 0)

        def rounding(mode):
            m.d.comb += [even_in.eq(mode == Rounding.NEAREST_EVEN),
                         random.eq(mode == Rounding.STOCHASTIC)]
        self._select(m, s0["cfg"].rounding, self._roundings, rounding)

        neg_shift = -shift
        with m.If(s0["valid"]):
            m.d.sync += [
                x.eq(acc_in + bias_in + low if stochastic else acc_in + bias_in),
                right.eq(r_in),
                left.eq(Mux(shift < 0, Mux(neg_shift > l_max, l_max, neg_shift), 0)),
                is_left.eq(shift < 0 if l_max else 0),
                nearest_even.eq(even_in),
                below.eq(Cat(*(r_in > j for j in range(r_max)))),
            ]

        # --- stage 2: shift, tie correction ---------------------------------------------
        s2 = stage(2, s1)
        q = Signal(signed(qw), name="s2_q")
        t = Signal(signed(xw), name="s2_t")
        m.d.comb += t.eq(x >> right)
        # below[0] is 1 exactly when right > 0; a tie leaves no bit set below `right`.
        tie = nearest_even & below[0] & ~(x & below).any()
        with m.If(s1["valid"]):
            rounded = Cat(t[0] & ~tie, t[1:]).as_signed()
            m.d.sync += q.eq(Mux(is_left, x << left, rounded) if l_max else rounded)

        # The format's bounds depend on cfg only; they are decoded in stage 2 so that
        # stage 3 holds just the comparisons and the muxes.
        c1 = s1["cfg"]
        if self._formats is not None and len(self._formats) == 1:
            # one format: its bounds are constants
            (width, is_signed), = self._formats
            pow2 = Const(1 << width, S + 1)
            hi = Const((1 << (width - 1)) - 1 if is_signed else (1 << width) - 1, signed(S + 2))
            lo = Const(-(1 << (width - 1)) if is_signed else 0, signed(S + 2))
            out_signed = Const(int(is_signed))
        else:
            pow2 = Signal(unsigned(S + 1), name="s2_pow2")       # 2**W
            hi = Signal(signed(S + 2), name="s2_hi")
            lo = Signal(signed(S + 2), name="s2_lo")
            pow2_in = Signal(unsigned(S + 1))
            m.d.comb += pow2_in.eq(Const(1, S + 1) << c1.width)
            with m.If(s1["valid"]):
                m.d.sync += [
                    pow2.eq(pow2_in),
                    hi.eq(Mux(c1.signed, (pow2_in >> 1) - 1, pow2_in - 1)),
                    lo.eq(Mux(c1.signed, -(pow2_in >> 1), 0)),
                ]
            out_signed = s2["cfg"].signed

        # --- stage 3: overflow and ReLU -------------------------------------------------
        s3 = stage(3, s2)
        c2 = s2["cfg"]
        half = pow2 >> 1                                     # 2**(W-1)
        y = Signal(signed(S + 1), name="s3_y")
        low = Signal(unsigned(S), name="s3_low")
        m.d.comb += low.eq(q & (pow2 - 1))

        def overflow(mode):
            if mode == Overflow.SATURATE:
                m.d.comb += y.eq(Mux(q > hi, hi, Mux(q < lo, lo, q)))
            else:
                m.d.comb += y.eq(Mux(out_signed & (low & half).any(), low - pow2, low))
        self._select(m, c2.overflow, self._overflows, overflow)
        v = Signal(signed(S + 1), name="s3_v")
        with m.If(s2["valid"]):
            if self._thresholds:
                # The bias holds −threshold and the shift is 0, so q = dot − threshold.
                hit = Mux(s2["flip"], q <= 0, q >= 0)
                with m.If(c2.binary):
                    m.d.sync += v.eq(Mux(hit, 1, -1))
                with m.Else():
                    m.d.sync += v.eq(Mux(c2.relu & (y < 0), 0, y))
            else:
                m.d.sync += v.eq(Mux(c2.relu & (y < 0), 0, y))

        # --- stage 4: max-pool and output -----------------------------------------------
        # The pooling registers keep one bit more than the output so that unsigned formats
        # with W = out_width compare correctly.
        # The running maximum of the item's column is read a stage early, into ``current``
        # (so that no column multiplexer lies in front of the compare); when the item now
        # in stage 4 writes that same column, its result is forwarded.
        pool = Array(Signal(signed(S + 1), name=f"pool_{k}") for k in range(self._cols))
        col = s3.get("col", 0)
        current = Signal(signed(S + 1), name="s4_current")
        new = Signal(signed(S + 1), name="s4_new")
        m.d.comb += new.eq(Mux(s3["pool_first"] | (v > current), v, current))
        c3 = s3["cfg"]
        writes = s3["valid"] & c3.pool
        if self._cols > 1:
            with m.If(s2["valid"]):
                m.d.sync += current.eq(Mux(writes & (col == s2["col"]), new, pool[s2["col"]]))
        else:
            with m.If(s2["valid"]):
                m.d.sync += current.eq(Mux(writes, new, pool[0]))
        m.d.sync += o.valid.eq(0)
        with m.If(s3["valid"]):
            with m.If(c3.pool):
                if self._cols == 1:
                    m.d.sync += pool[0].eq(new)
                else:
                    for k in range(self._cols):
                        with m.If(col == k):
                            m.d.sync += pool[k].eq(new)
                with m.If(s3["pool_last"]):
                    m.d.sync += [o.valid.eq(1), o.value.eq(new), o.tag.eq(s3["tag"])]
            with m.Else():
                m.d.sync += [o.valid.eq(1), o.value.eq(v), o.tag.eq(s3["tag"])]

        return m

    @staticmethod
    def _select(m, selector, generated, emit):
        """Emit the logic of each generated mode; modes not generated fall back to the
        first generated one."""
        if len(generated) == 1:
            emit(generated[0])
            return
        with m.Switch(selector):
            for mode in generated[1:]:
                with m.Case(mode):
                    emit(mode)
            with m.Default():
                emit(generated[0])
