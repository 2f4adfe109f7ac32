# amaranth: UnusedElaboratable=no
"""PEMac and the PE interface against hwgen.golden.blocks.pe_mac."""

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module, signed
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import timing
from hwgen.errors import ArgumentError, FormatError
from hwgen.golden.blocks import pe_mac, wrap_signed
from hwgen.rtl.layouts import PEKind
from hwgen.rtl.pe import PE
from hwgen.rtl.pe_mac import PEMac

# --- construction -------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    ((0, 8, 24), r"^Activation width must be a positive integer, not 0$"),
    ((8, -1, 24), r"^Weight width must be a positive integer, not -1$"),
    ((8, 8, "24"), r"^Accumulator width must be a positive integer, not '24'$"),
    ((True, 8, 24), r"^Activation width must be a positive integer, not True$"),
    ((8, 8, 15), r"^Accumulator width must be at least the product width 16, not 15$"),
])
def test_construction_errors(args, message):
    with pytest.raises(FormatError, match=message):
        PEMac(*args)


def test_product_stages_errors():
    with pytest.raises(ArgumentError, match=r"^PE product stages must be an integer of at "
                                            r"least 0, not -1$"):
        PEMac(8, 8, 16, product_stages=-1)


def test_abstract_pe_needs_product():
    class NoProduct(PE):
        a_shape = w_shape = acc_shape = signed(4)

    with pytest.raises(TypeError, match=r"^NoProduct must implement PE.product\(\)$"):
        NoProduct()


def test_signature_and_timing():
    pe = PEMac(8, 4, 20)
    assert pe.kind is PEKind.FIXED
    assert pe.latency == 1 == timing.pe_latency(0)
    assert PEMac(8, 4, 20, product_stages=2).latency == 3 == timing.pe_latency(2)
    assert (pe.a_width, pe.w_width, pe.acc_width) == (8, 4, 20)
    assert pe.a_i.shape() == signed(8) and pe.a_o.shape() == signed(8)
    assert pe.w_i.shape() == signed(4) and pe.w_o.shape() == signed(4)
    assert pe.result.shape() == signed(20)
    assert set(pe.signature.members) == {"a_i", "w_i", "ctl_i", "a_o", "w_o", "ctl_o", "result"}


# --- behaviour ----------------------------------------------------------------------------

def simulate_pe(run_sim, pe, a_seq, w_seq, ctl_seq):
    """Drive one step per cycle; return result and the pass-through ports of each cycle
    after the step (the values the golden model's ``results[t]`` describes)."""
    out = {"result": [], "a_o": [], "w_o": [], "ctl_o": []}

    async def testbench(ctx):
        for a, w, (valid, last) in zip(a_seq, w_seq, ctl_seq):
            ctx.set(pe.a_i, int(a))
            ctx.set(pe.w_i, int(w))
            ctx.set(pe.ctl_i, {"valid": int(valid), "last": int(last)})
            await ctx.tick()
            out["result"].append(ctx.get(pe.result))
            out["a_o"].append(ctx.get(pe.a_o))
            out["w_o"].append(ctx.get(pe.w_o))
            ctl = ctx.get(pe.ctl_o)
            out["ctl_o"].append((ctl.valid, ctl.last))

    run_sim(pe, testbench)
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def check_pe(run_sim, a_width, w_width, acc_width, a_seq, w_seq, ctl_seq, stages=0):
    pe = PEMac(a_width, w_width, acc_width, product_stages=stages)
    got = simulate_pe(run_sim, pe, a_seq, w_seq, ctl_seq)
    np.testing.assert_array_equal(got["result"],
                                  pe_mac(a_seq, w_seq, ctl_seq, acc_width, stages))
    np.testing.assert_array_equal(got["a_o"], a_seq)
    np.testing.assert_array_equal(got["w_o"], w_seq)
    np.testing.assert_array_equal(got["ctl_o"], np.asarray(ctl_seq).reshape(-1, 2))


def test_dot_products_by_hand(run_sim):
    # Two dot products back to back, an invalid step in the middle of the second (with
    # garbage operands that must not count), then a window of one.
    a = [3, -4, 5, 100, 7, -8, -128]
    w = [2, 6, -1, 99, 1, 1, -128]
    ctl = [(1, 0), (1, 0), (1, 1), (0, 1), (1, 0), (1, 1), (1, 1)]
    expected = [0, 0, 6 - 24 - 5, -23, -23, 7 - 8, 16384]
    np.testing.assert_array_equal(pe_mac(a, w, ctl, 24), expected)
    check_pe(run_sim, 8, 8, 24, a, w, ctl)


@st.composite
def pe_streams(draw):
    a_width = draw(st.integers(1, 12))
    w_width = draw(st.integers(1, 12))
    # A narrow accumulator now and then, so that wrapping is exercised too.
    acc_width = a_width + w_width + draw(st.integers(0, 5))
    n = draw(st.integers(1, 40))

    def operand(width):
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        return st.one_of(st.sampled_from([lo, hi, 0, -1 if width > 1 else 0]),
                         st.integers(lo, hi))

    a_seq = draw(st.lists(operand(a_width), min_size=n, max_size=n))
    w_seq = draw(st.lists(operand(w_width), min_size=n, max_size=n))
    # Mostly valid steps, dot products of random lengths, plus arbitrary control bits.
    ctl_seq = draw(st.lists(st.tuples(st.sampled_from([1, 1, 1, 0]), st.integers(0, 1)),
                            min_size=n, max_size=n))
    return a_width, w_width, acc_width, a_seq, w_seq, ctl_seq


@settings(max_examples=25, deadline=None)
@given(pe_streams(), st.integers(0, 3))
def test_random_streams(run_sim, streams, stages):
    check_pe(run_sim, *streams, stages=stages)


@pytest.mark.parametrize("stages", [1, 2])
def test_pipelined_product_by_hand(run_sim, stages):
    # The same sums as without a pipeline, each `stages` cycles later.
    a = [3, -4, 5, 0, 0, 0]
    w = [2, 6, -1, 0, 0, 0]
    ctl = [(1, 0), (1, 0), (1, 1), (0, 0), (0, 0), (0, 0)]
    expected = [0] * (2 + stages) + [6 - 24 - 5] * (4 - stages)
    np.testing.assert_array_equal(pe_mac(a, w, ctl, 24, stages), expected)
    check_pe(run_sim, 8, 8, 24, a, w, ctl, stages)


def test_the_domain_reset_clears_the_accumulator(run_sim):
    # Two steps of a tile, then the domain's reset in the middle of it: the next tile sums
    # from 0, not from the cut-off 3·5 + 7·2.
    pe = PEMac(8, 8, 24)
    m = Module()
    m.domains.sync = domain = ClockDomain()
    m.submodules.pe = pe
    steps = [(3, 5, 1, 0, 0), (7, 2, 1, 0, 0), (0, 0, 0, 0, 1), (4, 4, 1, 0, 0), (2, 3, 1, 1, 0)]

    async def testbench(ctx):
        for a, w, valid, last, rst in steps:
            ctx.set(pe.a_i, a)
            ctx.set(pe.w_i, w)
            ctx.set(pe.ctl_i, {"valid": valid, "last": last})
            ctx.set(domain.rst, rst)
            await ctx.tick()
        assert ctx.get(pe.result) == 4 * 4 + 2 * 3

    run_sim(m, testbench)


def test_no_lut_restarts_the_accumulator():
    # With the product registered (the compiler's default), ECP5 maps the multiplier to a
    # DSP and the accumulator's adder to carry cells; the accumulator's return to 0 is its
    # flip-flops' reset, so there is no LUT per accumulator bit (a multiplexer choosing 0
    # or the accumulator would take 19 here).
    from hwgen.estimate import component_cells
    cells = component_cells(PEMac(8, 8, 19, product_stages=1), "synth_ecp5")
    assert cells.get("MULT18X18D", 0) == 1
    assert cells.get("LUT4", 0) < 19 // 2


def test_extremes_accumulate_and_wrap(run_sim):
    # Most negative × most negative, K times, in an accumulator just wide enough for one
    # product: the hardware wraps exactly as the golden model does.
    a_width = w_width = 6
    k = 9
    a = [-32] * k
    w = [-32] * k
    ctl = [(1, i == k - 1) for i in range(k)]
    results = pe_mac(a, w, ctl, 12)
    assert results[-1] == wrap_signed(k * 1024, 12)
    check_pe(run_sim, a_width, w_width, 12, a, w, ctl)
