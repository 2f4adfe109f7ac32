# amaranth: UnusedElaboratable=no
"""PostProcess against hwgen.golden.blocks.post_process and max_pool_stream, cycle-exact."""

import itertools

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import timing
from hwgen.contract import param_bias
from hwgen.errors import FormatError, ShapeError
from hwgen.golden.blocks import max_pool_stream, post_process, wrap_signed
from hwgen.numerics import QFormat, stochastic_random
from hwgen.rtl.layouts import Overflow, Rounding
from hwgen.rtl.post_process import PostProcess

ROUNDINGS = ("nearest_even", "nearest_up", "floor")
OVERFLOWS = ("saturate", "wrap")


# --- construction -------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    ({"acc_width": 0}, FormatError, r"^Accumulator width must be a positive integer, not 0$"),
    ({"out_width": -3}, FormatError, r"^Output width must be a positive integer, not -3$"),
    ({"cols": 0}, ShapeError, r"^Number of columns must be a positive integer, not 0$"),
    ({"shift_width": 1}, FormatError, r"^Shift width must be an integer of at least 2, not 1$"),
    ({"tag_shape": "addr"}, FormatError,
     r"^Tag shape must be a shape-castable object, not 'addr'$"),
    ({"roundings": ()}, FormatError,
     r"^Rounding modes must be a non-empty tuple of mode names, not \(\)$"),
    ({"roundings": "floor"}, FormatError,
     r"^Rounding modes must be a non-empty tuple of mode names, not 'floor'$"),
    ({"roundings": ("floor", "up")}, FormatError,
     r"^Rounding mode must be one of nearest_even, nearest_up, floor, stochastic, not 'up'$"),
    ({"roundings": ("stochastic",), "position_width": 0}, FormatError,
     r"^Position width must be a positive integer, not 0$"),
    ({"overflows": ("clip",)}, FormatError,
     r"^Overflow mode must be one of saturate, wrap, not 'clip'$"),
])
def test_construction_errors(kwargs, error, message):
    args = {"acc_width": 16, "out_width": 8, "cols": 4, "tag_shape": 8, **kwargs}
    with pytest.raises(error, match=message):
        PostProcess(**args)


def test_mode_names():
    assert Rounding.from_name("nearest_even") is Rounding.NEAREST_EVEN
    assert Rounding.from_name("nearest_up") is Rounding.NEAREST_UP
    assert Rounding.from_name("floor") is Rounding.FLOOR
    assert Rounding.from_name("stochastic") is Rounding.STOCHASTIC
    assert Overflow.from_name("wrap") is Overflow.WRAP
    with pytest.raises(FormatError, match=r"^Rounding mode must be one of nearest_even, "
                                          r"nearest_up, floor, stochastic, not 'random'$"):
        Rounding.from_name("random")
    with pytest.raises(FormatError, match=r"^Overflow mode must be one of saturate, wrap, "
                                          r"not 3$"):
        Overflow.from_name(3)


def test_signature_and_timing():
    pp = PostProcess(20, 8, 4, unsigned(10), roundings=("floor", "floor", "nearest_up"),
                     overflows=("wrap",))
    assert pp.latency == 4 == timing.post_process_latency()
    assert pp.roundings == (Rounding.FLOOR, Rounding.NEAREST_UP)
    assert pp.overflows == (Overflow.WRAP,)
    assert pp.i.acc.shape() == signed(20) and pp.i.bias.shape() == signed(23)
    assert pp.i.shift.shape() == signed(7)
    assert pp.i.col.shape() == unsigned(2)
    assert pp.i.tag.shape() == unsigned(10)
    assert pp.cfg.rounding.shape() is Rounding and pp.cfg.overflow.shape() is Overflow
    assert pp.cfg.width.shape() == unsigned(4)
    assert pp.o.value.shape() == signed(8) and pp.o.tag.shape() == unsigned(10)
    assert list(pp.i.shape().members) == ["valid", "acc", "bias", "flip", "shift", "col",
                                          "pool_first", "pool_last", "tag"]
    assert list(pp.cfg.shape().members) == ["rounding", "overflow", "width", "signed",
                                            "relu", "pool", "binary"]
    assert list(pp.o.shape().members) == ["valid", "value", "tag"]


# --- behaviour ----------------------------------------------------------------------------

def bubble(rng, pp):
    """An invalid cycle with garbage in every other field (it must change nothing)."""
    a_lo = -(1 << (pp.acc_width - 1))
    return {
        "valid": 0, "acc": int(rng.integers(a_lo, -a_lo)), "bias": int(rng.integers(a_lo, -a_lo)),
        "shift": 1, "col": int(rng.integers(pp.cols)), "pool_first": int(rng.integers(2)),
        "pool_last": 1, "tag": 0,
        "cfg": {"rounding": "floor", "overflow": "wrap", "width": 1, "signed": 1, "relu": 1,
                "pool": int(rng.integers(2))},
    }


def expected_outputs(pp, items):
    """Golden ``(value, tag)`` per item index that produces an output, from the golden
    functions: post_process per item, then max_pool_stream over the pooled items."""
    values = {}
    for n, item in enumerate(items):
        if item["valid"]:
            cfg = item["cfg"]
            fmt = QFormat(cfg["width"], 0, bool(cfg["signed"]))
            values[n] = int(post_process(
                item["acc"], item["bias"], item["shift"], fmt, cfg["rounding"],
                cfg["overflow"], bool(cfg["relu"]), scale=item.get("scale"),
                binary=bool(cfg.get("binary", 0)), flip=item.get("flip", 0),
                random=item.get("random")))
    out = {n: values[n] for n, item in enumerate(items)
           if item["valid"] and not item["cfg"]["pool"]}
    pooled = [n for n, item in enumerate(items) if item["valid"] and item["cfg"]["pool"]]
    if pooled:
        emitted, maxima = max_pool_stream([values[n] for n in pooled],
                                          [items[n]["col"] for n in pooled],
                                          [items[n]["pool_first"] for n in pooled],
                                          [items[n]["pool_last"] for n in pooled], pp.cols)
        out.update(zip(np.asarray(pooled)[emitted].tolist(), maxima.tolist()))
    # o.value holds the result in out_width bits: an unsigned format as wide as the storage
    # reads back as its bit pattern (identity for every other format).
    return {n: (int(wrap_signed(v, pp.out_width)), items[n]["tag"]) for n, v in out.items()}


def simulate(run_sim, pp, items):
    """One item per cycle, its bias given as the parameter word holds it
    (:func:`hwgen.contract.param_bias`, for the item's ``word_rounding``, by default its
    ``cfg`` rounding); return (o.valid, o.value, o.tag) of every cycle."""
    drain = pp.latency + 2
    seen = []

    async def testbench(ctx):
        for item in items + [None] * drain:
            o = ctx.get(pp.o)
            seen.append((o.valid, o.value, o.tag))
            if item is None:
                ctx.set(pp.i.valid, 0)
            else:
                fields = {k: v for k, v in item.items()
                          if k not in ("cfg", "random", "word_rounding")}
                fields["bias"] = param_bias(item["bias"], item["shift"],
                                            item.get("word_rounding", item["cfg"]["rounding"]),
                                            pp.acc_width + pp.scale_width)
                cfg = dict(item["cfg"])
                cfg["rounding"] = Rounding.from_name(cfg["rounding"])
                cfg["overflow"] = Overflow.from_name(cfg["overflow"])
                ctx.set(pp.i, fields)
                ctx.set(pp.cfg, cfg)
            await ctx.tick()

    run_sim(pp, testbench)
    return seen


def check(run_sim, pp, items, golden_items=None):
    """Simulate ``items`` and compare every cycle's output with the golden model of
    ``golden_items`` (default: the same items); return the number of outputs."""
    expected = expected_outputs(pp, items if golden_items is None else golden_items)
    seen = simulate(run_sim, pp, items)
    want = [(0, None, None)] * len(seen)
    for n, (value, tag) in expected.items():
        want[n + pp.latency] = (1, value, tag)
    got_valid = [s[0] for s in seen]
    np.testing.assert_array_equal(got_valid, [w[0] for w in want], err_msg="o.valid")
    cycles = [t for t, w in enumerate(want) if w[0]]
    np.testing.assert_array_equal([seen[t][1] for t in cycles], [want[t][1] for t in cycles],
                                  err_msg="o.value")
    np.testing.assert_array_equal([seen[t][2] for t in cycles], [want[t][2] for t in cycles],
                                  err_msg="o.tag")
    return len(cycles)


def shift_range(pp):
    """Shifts the unit is built for that the golden model answers correctly for (see
    test_shifts_beyond_int64)."""
    return max(pp.shifts[0], -61), min(pp.shifts[1], 63)


def interesting_shifts(pp):
    a, s = pp.acc_width, pp.out_width
    lowest, highest = shift_range(pp)
    shifts = {lowest, -s - 1, -s, -s + 1, -2, -1, 0, 1, 2, 3, a - 1, a, a + 1, a + 2, highest}
    return sorted(x for x in shifts if lowest <= x <= highest)


def random_item(rng, pp, cfg):
    a_lo, a_hi = -(1 << (pp.acc_width - 1)), (1 << (pp.acc_width - 1)) - 1
    lowest, highest = shift_range(pp)
    extremes = [a_lo, a_hi, 0, -1, min(1, a_hi)]
    pick = rng.integers(4)
    if pick == 0:
        acc, bias = int(rng.choice(extremes)), int(rng.choice(extremes))
    else:
        acc, bias = int(rng.integers(a_lo, a_hi + 1)), int(rng.integers(a_lo, a_hi + 1))
    shifts = interesting_shifts(pp)
    shift = int(rng.choice(shifts)) if rng.integers(2) else int(rng.integers(lowest, highest + 1))
    if pick == 1 and 1 <= shift:
        # An exact tie (odd multiple of half a step), within the accumulator's range, to
        # tell the three roundings apart.
        half = 1 << min(shift - 1, pp.acc_width - 1)
        acc, bias = int(rng.integers(-4, 4)) * 2 * half + half, 0
        acc = min(max(acc, a_lo), a_hi)
    return {"valid": 1, "acc": acc, "bias": bias, "shift": shift,
            "col": int(rng.integers(pp.cols)), "pool_first": 1, "pool_last": 1,
            "tag": int(rng.integers(256)), "cfg": cfg}


def test_every_mode(run_sim):
    # Every rounding × overflow × signedness × relu, with the output width and the
    # configuration changing from item to item (cfg travels with its item), and bubbles.
    pp = PostProcess(12, 6, 3, 8)
    rng = np.random.default_rng(7)
    items = []
    combos = list(itertools.product(ROUNDINGS, OVERFLOWS, (0, 1), (0, 1)))
    for _ in range(10):
        for rounding, overflow, sign, relu in combos:
            width = int(rng.choice([1, 2, 3, 5, 6]))
            cfg = {"rounding": rounding, "overflow": overflow, "width": width, "signed": sign,
                   "relu": relu, "pool": 0}
            items.append(random_item(rng, pp, cfg))
            if rng.integers(6) == 0:
                items.append(bubble(rng, pp))
    assert check(run_sim, pp, items) == len(combos) * 10


def test_by_hand(run_sim):
    # Values worked out on paper, so that the golden model is checked too.
    pp = PostProcess(10, 8, 1, 4)
    cases = [
        # acc, bias, shift, rounding, overflow, width, signed, relu -> value
        (5, 0, 1, "nearest_even", "saturate", 8, 1, 0, 2),      # 2.5 -> 2
        (7, 0, 1, "nearest_even", "saturate", 8, 1, 0, 4),      # 3.5 -> 4
        (5, 0, 1, "nearest_up", "saturate", 8, 1, 0, 3),        # 2.5 -> 3
        (-5, 0, 1, "nearest_up", "saturate", 8, 1, 0, -2),      # -2.5 -> -2
        (-5, 0, 1, "floor", "saturate", 8, 1, 0, -3),           # -2.5 -> -3
        (-5, 0, 1, "nearest_even", "saturate", 8, 1, 0, -2),    # -2.5 -> -2
        (511, 511, 0, "floor", "saturate", 8, 1, 0, 127),       # 1022 saturates
        (-512, -512, 0, "floor", "saturate", 8, 1, 0, -128),    # -1024 saturates
        (200, 0, 0, "floor", "wrap", 8, 1, 0, -56),             # 200 - 256
        (200, 0, 0, "floor", "wrap", 4, 0, 0, 8),               # 200 mod 16
        (-3, 0, -2, "floor", "saturate", 8, 1, 0, -12),         # exact left shift
        (100, 0, -2, "floor", "saturate", 8, 0, 0, 255),        # 400 saturates unsigned
        (-100, 0, 0, "floor", "saturate", 8, 0, 0, 0),          # negative saturates to 0
        (-100, 0, 0, "floor", "wrap", 8, 1, 1, 0),              # ReLU
        (300, -1, 1, "nearest_up", "saturate", 5, 1, 1, 15),    # 149.5 -> 150 -> 15
    ]
    items = []
    for acc, bias, shift, rounding, overflow, width, sign, relu, _ in cases:
        cfg = {"rounding": rounding, "overflow": overflow, "width": width, "signed": sign,
               "relu": relu, "pool": 0}
        items.append({"valid": 1, "acc": acc, "bias": bias, "shift": shift, "col": 0,
                      "pool_first": 0, "pool_last": 0, "tag": len(items), "cfg": cfg})
    expected = expected_outputs(pp, items)
    # 255 in UQ(8, 0) reads back from the 8-bit signed port as its bit pattern, -1.
    assert [expected[n][0] for n in range(len(cases))] == [
        int(wrap_signed(case[-1], 8)) for case in cases]
    assert check(run_sim, pp, items) == len(cases)


def test_shifts_beyond_int64(run_sim):
    # hwgen.numerics.requantize leaves int64 for left shifts of 62 or more (it pre-clamps a
    # positive value to 0, so it answers 0, not the maximum, under saturate) and for right
    # shifts of 64 or more (half a step overflows to 0, so rounding to nearest acts as
    # floor); the hardware is checked against hand-computed values there instead.
    pp = PostProcess(8, 8, 1, 4, shift_width=8)
    cases = [
        # acc, shift, rounding, overflow, signed -> value
        (5, -64, "floor", "saturate", 1, 127), (-5, -64, "floor", "saturate", 1, -128),
        (0, -128, "floor", "saturate", 1, 0), (5, -62, "floor", "saturate", 0, 255),
        (-5, -63, "floor", "wrap", 1, 0), (5, -61, "floor", "saturate", 1, 127),
        (-1, 64, "nearest_even", "saturate", 1, 0), (-1, 127, "nearest_up", "saturate", 1, 0),
        (-128, 100, "floor", "saturate", 1, -1), (127, 65, "nearest_up", "wrap", 1, 0),
        (127, 127, "floor", "saturate", 1, 0), (-128, 9, "nearest_even", "saturate", 1, 0),
    ]
    items = [{"valid": 1, "acc": acc, "bias": 0, "shift": shift, "col": 0, "pool_first": 0,
              "pool_last": 0, "tag": n,
              "cfg": {"rounding": rounding, "overflow": overflow, "width": 8, "signed": sign,
                      "relu": 0, "pool": 0}}
             for n, (acc, shift, rounding, overflow, sign, _) in enumerate(cases)]
    seen = simulate(run_sim, pp, items)
    got = [seen[n + pp.latency][1] for n in range(len(cases))]
    assert got == [int(wrap_signed(case[-1], 8)) for case in cases]


def pool_items(rng, pp, windows, cfg):
    """Interleave, in random order across columns, windows of the given sizes per column."""
    queues = {c: [] for c in range(pp.cols)}
    for c in range(pp.cols):
        for size in windows:
            for k in range(size):
                item = random_item(rng, pp, cfg)
                item.update(col=c, pool_first=int(k == 0), pool_last=int(k == size - 1))
                queues[c].append(item)
    items = []
    while any(queues.values()):
        c = int(rng.choice([c for c, q in queues.items() if q]))
        items.append(queues[c].pop(0))
        if rng.integers(5) == 0:
            items.append(bubble(rng, pp))
    for n, item in enumerate(items):
        item["tag"] = n % 256
    return items


@pytest.mark.parametrize("sign, relu", [(1, 0), (1, 1), (0, 0)])
def test_max_pool(run_sim, sign, relu):
    pp = PostProcess(12, 6, 3, 8)
    rng = np.random.default_rng(11 + 2 * sign + relu)
    cfg = {"rounding": "nearest_even", "overflow": "saturate", "width": 6, "signed": sign,
           "relu": relu, "pool": 1}
    items = pool_items(rng, pp, windows=[4, 1, 4, 1, 1, 4], cfg=cfg)
    assert check(run_sim, pp, items) == 3 * 6


def test_max_pool_back_to_back_one_column(run_sim):
    # Same column every cycle: the running maximum is read and written in one cycle.
    pp = PostProcess(12, 6, 1, 8)
    rng = np.random.default_rng(5)
    cfg = {"rounding": "floor", "overflow": "wrap", "width": 6, "signed": 1, "relu": 0,
           "pool": 1}
    items = pool_items(rng, pp, windows=[4, 4, 1, 4], cfg=cfg)
    items = [item for item in items if item["valid"]]
    assert check(run_sim, pp, items) == 4


def test_modes_not_generated_fall_back(run_sim):
    # Only nearest_up and wrap are generated: any other mode in cfg behaves as those (the
    # parameter words, whose bias holds the half step, are the generated mode's).
    pp = PostProcess(12, 6, 1, 8, roundings=("nearest_up",), overflows=("wrap",))
    rng = np.random.default_rng(3)
    items, as_generated = [], []
    for _ in range(4):
        for rounding, overflow in itertools.product(ROUNDINGS, OVERFLOWS):
            cfg = {"rounding": rounding, "overflow": overflow, "width": 4, "signed": 1,
                   "relu": 0, "pool": 0}
            items.append({**random_item(rng, pp, cfg), "word_rounding": "nearest_up"})
            as_generated.append({**items[-1], "cfg": {**cfg, "rounding": "nearest_up",
                                                      "overflow": "wrap"}})
    assert check(run_sim, pp, items, golden_items=as_generated) == len(items)


@st.composite
def unit_and_items(draw):
    acc_width = draw(st.integers(1, 20))
    out_width = draw(st.integers(1, 10))
    cols = draw(st.integers(1, 4))
    shift_width = draw(st.integers(2, 8))
    roundings = tuple(draw(st.permutations(ROUNDINGS))[:draw(st.integers(1, 3))])
    overflows = tuple(draw(st.permutations(OVERFLOWS))[:draw(st.integers(1, 2))])
    seed = draw(st.integers(0, 2 ** 32 - 1))
    pool = draw(st.integers(0, 1))
    return acc_width, out_width, cols, shift_width, roundings, overflows, seed, pool


@settings(max_examples=8, deadline=None)
@given(unit_and_items())
def test_hypothesis_sized(run_sim, params):
    acc_width, out_width, cols, shift_width, roundings, overflows, seed, pool = params
    pp = PostProcess(acc_width, out_width, cols, 8, roundings=roundings, overflows=overflows,
                     shift_width=shift_width)
    rng = np.random.default_rng(seed)

    def cfg():
        return {"rounding": str(rng.choice(roundings)), "overflow": str(rng.choice(overflows)),
                "width": int(rng.integers(1, out_width + 1)), "signed": int(rng.integers(2)),
                "relu": int(rng.integers(2)), "pool": pool}

    if pool:
        # A pooled layer keeps one configuration throughout.
        items = pool_items(rng, pp, windows=[1, 4, 2], cfg=cfg())
    else:
        items = [random_item(rng, pp, cfg()) for n in range(40)]
    check(run_sim, pp, items)


@settings(max_examples=6, deadline=None)
@given(unit_and_items(), st.integers(-8, 8), st.integers(0, 24), st.booleans())
def test_hypothesis_specialized(run_sim, params, lowest, span, is_signed):
    """A unit built for one output format and the shifts a design holds (no left shifter
    when they are all right shifts) equals the golden model on them."""
    acc_width, out_width, cols, _, roundings, overflows, seed, _ = params
    width = max(1, out_width - 1)
    pp = PostProcess(acc_width, out_width, cols, 8, roundings=roundings, overflows=overflows,
                     shifts=(lowest, lowest + span), formats=[(width, is_signed)])
    assert pp.shifts == (lowest, lowest + span) and pp.formats == ((width, is_signed),)
    rng = np.random.default_rng(seed)
    items = [random_item(rng, pp, {
        "rounding": str(rng.choice(roundings)), "overflow": str(rng.choice(overflows)),
        "width": width, "signed": int(is_signed), "relu": int(rng.integers(2)), "pool": 0})
        for n in range(40)]
    check(run_sim, pp, items)


def test_specialized_errors():
    with pytest.raises(FormatError, match=r"^Shift range must lie within \(-64, 63\), not "
                                          r"\(-70, 3\)$"):
        PostProcess(16, 8, 2, 8, shifts=(-70, 3))
    with pytest.raises(FormatError, match=r"^Output formats must be 1 to 8 bits wide, not "
                                          r"\[\(9, True\)\]$"):
        PostProcess(16, 8, 2, 8, formats=[(9, True)])


# --- per-channel scales and thresholds --------------------------------------------------------

def test_scale_and_threshold_signature():
    pp = PostProcess(10, 8, 2, 8, scale_width=6, thresholds=True)
    assert pp.latency == 5 == timing.post_process_latency(True)
    assert pp.i.bias.shape() == signed(19) and pp.i.scale.shape() == signed(6)
    with pytest.raises(FormatError, match=r"^Scale width must be a non-negative integer, "
                                          r"not -1$"):
        PostProcess(10, 8, 2, 8, scale_width=-1)


@pytest.mark.parametrize("scale_width", [0, 5])
def test_thresholds_ties_both_ways(run_sim, scale_width):
    # dot == threshold is a hit both without and with flip; one above / below each way.
    pp = PostProcess(8, 4, 2, 8, scale_width=scale_width, thresholds=True)
    cfg = {"rounding": "floor", "overflow": "saturate", "width": 2, "signed": 1, "relu": 0,
           "pool": 0, "binary": 1}
    items = []
    for flip in (0, 1):
        # The bias (−threshold) must fit its field: the compiler clamps thresholds so.
        for thr, dot in [(5, 5), (5, 6), (5, 4), (-127, -128), (127, -128), (0, 0),
                         (128, 127), (-127, -127), (127, 127)]:
            item = {"valid": 1, "acc": dot, "bias": -thr, "flip": flip, "shift": 0,
                    "col": 0, "pool_first": 1, "pool_last": 1, "tag": len(items), "cfg": cfg}
            if scale_width:
                item["scale"] = 1
            items.append(item)
    expected = expected_outputs(pp, items)
    # The IR's definition, written out: +1 if (dot <= thr if flip else dot >= thr).
    assert [v for v, _ in expected.values()] == [
        1 if (item["acc"] <= -item["bias"] if item["flip"] else item["acc"] >= -item["bias"])
        else -1 for item in items]
    assert [v for v, _ in expected.values()][:9] == [1, 1, -1, -1, -1, 1, -1, 1, 1]
    assert check(run_sim, pp, items) == len(items)


def test_scaled_requantize_random(run_sim):
    # Negative, zero and extreme multipliers; scaled and threshold items interleaved with
    # plain ones and bubbles; pooling over binary values.
    rng = np.random.default_rng(3)
    pp = PostProcess(10, 6, 3, 8, scale_width=7, thresholds=True)
    s_lo, s_hi = -64, 63
    items = []
    for n in range(120):
        if rng.random() < 0.15:
            items.append({**bubble(rng, pp), "scale": int(rng.integers(s_lo, s_hi + 1))})
            continue
        cfg = {"rounding": ["nearest_even", "nearest_up", "floor"][rng.integers(3)],
               "overflow": ["saturate", "wrap"][rng.integers(2)],
               "width": int(rng.integers(1, 7)), "signed": int(rng.integers(2)),
               "relu": int(rng.integers(2)), "pool": 0, "binary": int(rng.random() < 0.3)}
        item = random_item(rng, pp, cfg)
        item["scale"] = int(rng.choice([s_lo, s_hi, 0, -1, 1])) if rng.integers(3) == 0 \
            else int(rng.integers(s_lo, s_hi + 1))
        # The bias field is as wide as the scaled accumulator.
        b_lim = 1 << (pp.acc_width + pp.scale_width - 2)
        item["bias"] = int(rng.integers(-b_lim, b_lim))
        item["flip"] = int(rng.integers(2))
        if cfg["binary"]:
            item["shift"] = 0
        items.append(item)
    assert check(run_sim, pp, items) > 80


# --- stochastic rounding ------------------------------------------------------------------

def test_stochastic_signature_and_timing():
    pp = PostProcess(12, 6, 2, 8, roundings=("floor", "stochastic"), position_width=10)
    assert pp.stochastic and pp.position_width == 10
    assert pp.latency == 5 == timing.post_process_latency(False, True)
    assert pp.i.index.shape() == unsigned(10) and pp.i.slot.shape() == unsigned(8)
    assert pp.cfg.mask.shape() == unsigned(32)
    # one stage for the multiplier and the hash together
    scaled = PostProcess(12, 6, 2, 8, roundings=("stochastic",), scale_width=4)
    assert scaled.latency == 5 == timing.post_process_latency(True, True)
    plain = PostProcess(12, 6, 2, 8)
    assert not plain.stochastic and plain.position_width == 0
    assert "index" not in plain.i.shape().members and "mask" not in plain.cfg.shape().members


def with_positions(rng, pp, items, seed, layer):
    """Give each valid item a position, and its random value from numerics (the golden
    model's), and every configuration the layer's mask."""
    mask = int(stochastic_random(seed, layer, 0, 0))
    for item in items:
        item["cfg"]["mask"] = mask
        index = int(rng.integers(1 << pp.position_width))
        slot = int(rng.integers(256))
        item.update(index=index, slot=slot)
        item["random"] = int(stochastic_random(seed, layer, index, slot))
    return items


@st.composite
def stochastic_unit_and_items(draw):
    acc_width = draw(st.integers(1, 20))
    out_width = draw(st.integers(1, 10))
    cols = draw(st.integers(1, 3))
    others = draw(st.permutations(ROUNDINGS))[:draw(st.integers(0, 3))]
    roundings = tuple(draw(st.permutations(("stochastic",) + tuple(others))))
    overflows = tuple(draw(st.permutations(OVERFLOWS))[:draw(st.integers(1, 2))])
    lowest = draw(st.integers(-12, 4))
    highest = draw(st.integers(max(lowest, 0), 40))
    position_width = draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    pool = draw(st.integers(0, 1))
    return (acc_width, out_width, cols, roundings, overflows, (lowest, highest),
            position_width, seed, pool)


@settings(max_examples=10, deadline=None)
@given(stochastic_unit_and_items())
def test_stochastic_against_golden(run_sim, params):
    """Stochastic rounding (with other modes in the same unit), shifts up to 40 bits (past
    the accumulator and past the 32 random bits), pooled or not, against
    golden.blocks.post_process with numerics' random values."""
    (acc_width, out_width, cols, roundings, overflows, shifts, position_width, seed,
     pool) = params
    pp = PostProcess(acc_width, out_width, cols, 8, roundings=roundings, overflows=overflows,
                     shifts=shifts, position_width=position_width)
    rng = np.random.default_rng(seed)
    layer = int(rng.integers(20))

    def cfg():
        return {"rounding": str(rng.choice(roundings)), "overflow": str(rng.choice(overflows)),
                "width": int(rng.integers(1, out_width + 1)), "signed": int(rng.integers(2)),
                "relu": int(rng.integers(2)), "pool": pool}

    if pool:
        items = pool_items(rng, pp, windows=[1, 4, 2], cfg={**cfg(), "rounding": "stochastic"})
        items = with_positions(rng, pp, [it for it in items if it["valid"]], seed, layer)
    else:
        items = with_positions(rng, pp, [random_item(rng, pp, cfg()) for n in range(40)],
                               seed, layer)
    assert check(run_sim, pp, items) > 0


def test_stochastic_rounds_by_position(run_sim):
    """One value at many positions: the outputs follow numerics' random values, so the mean
    of 7/8 requantized by 3 bits comes out near 7/8, not 1 (nearest) or 0 (floor)."""
    pp = PostProcess(8, 4, 1, 8, roundings=("stochastic",), overflows=("saturate",),
                     position_width=8)
    rng = np.random.default_rng(3)
    cfg = {"rounding": "stochastic", "overflow": "saturate", "width": 4, "signed": 1,
           "relu": 0, "pool": 0}
    items = [{"valid": 1, "acc": 7, "bias": 0, "shift": 3, "col": 0, "pool_first": 1,
              "pool_last": 1, "tag": n, "cfg": dict(cfg)} for n in range(64)]
    items = with_positions(rng, pp, items, seed=12, layer=1)
    seen = simulate(run_sim, pp, items)
    values = [v for valid, v, _ in seen if valid]
    assert len(values) == 64 and set(values) == {0, 1}
    want = [int(it["random"] % 8 >= 1) for it in items]
    assert values == want
    assert 0.7 < np.mean(values) < 0.97
