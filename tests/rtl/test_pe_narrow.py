# amaranth: UnusedElaboratable=no
"""Narrow accumulators in the PE (hwgen/rtl/pe.py acc_modes) against
hwgen.golden.blocks.pe_mac / pe_shift with saturation and wrap-around."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen.errors import FormatError
from hwgen.golden.blocks import pe_mac, pe_shift
from hwgen.rtl.pe_mac import PEMac
from hwgen.rtl.pe_shift import PEShift

# --- construction -------------------------------------------------------------------------

@pytest.mark.parametrize("modes, message", [
    ((), (r"^PE accumulator modes must be a non-empty sequence of \(width, overflow\) "
          r"pairs, not \(\)$")),
    (((20, "saturate"),), (r"^PE accumulator mode width must be at most the accumulator "
                           r"width 18, not 20$")),
    (((12, "clip"),), (r"^PE accumulator mode overflow must be 'wrap' or 'saturate', not "
                       r"'clip'$")),
])
def test_mode_errors(modes, message):
    with pytest.raises(FormatError, match=message):
        PEMac(8, 8, 18, acc_modes=modes)


def test_select_port_only_with_two_modes():
    assert "acc_mode" not in PEMac(8, 8, 18, acc_modes=((12, "saturate"),)).signature.members
    pe = PEMac(8, 8, 18, acc_modes=((12, "saturate"), (18, "wrap"), (10, "wrap")))
    assert pe.acc_mode.shape().width == 2
    assert pe.acc_modes == ((12, "saturate"), (18, "wrap"), (10, "wrap"))


# --- behaviour ----------------------------------------------------------------------------

def simulate(run_sim, pe, a_seq, w_seq, ctl_seq, mode=None):
    results = []

    async def testbench(ctx):
        if mode is not None:
            ctx.set(pe.acc_mode, mode)
        for a, w, (valid, last) in zip(a_seq, w_seq, ctl_seq):
            ctx.set(pe.a_i, a)
            ctx.set(pe.w_i, w)
            ctx.set(pe.ctl_i, {"valid": valid, "last": last})
            await ctx.tick()
            results.append(ctx.get(pe.result))

    run_sim(pe, testbench)
    return np.asarray(results, dtype=np.int64)


def test_saturation_by_hand(run_sim):
    # 127·127 = 16129 three times in 16 bits: 16129, 32258, 32767 (clamped), then −128·127
    # = −16256 gives 16511 (exact: 32131). A new window: −16256, −32385, −48641 clamped to
    # −32768, then +16129 gives −16639 (exact: −32512).
    a = [127, 127, 127, -128, -128, 127, -128, 127]
    w = [127, 127, 127, 127, 127, -127, 127, 127]
    ctl = [(1, 0), (1, 0), (1, 0), (1, 1), (1, 0), (1, 0), (1, 0), (1, 1)]
    want = [0, 0, 0, 16511, 16511, 16511, 16511, -16639]
    np.testing.assert_array_equal(pe_mac(a, w, ctl, 16, overflow="saturate"), want)
    pe = PEMac(8, 8, 20, acc_modes=((16, "saturate"),))
    np.testing.assert_array_equal(simulate(run_sim, pe, a, w, ctl), want)


@st.composite
def streams(draw):
    a_width = draw(st.integers(2, 8))
    w_width = draw(st.integers(2, 8))
    phys = a_width + w_width + draw(st.integers(0, 4))
    modes = tuple((draw(st.integers(2, phys)), draw(st.sampled_from(["saturate", "wrap"])))
                  for _ in range(draw(st.integers(1, 3))))
    n = draw(st.integers(1, 30))

    def operand(width):
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        return st.one_of(st.sampled_from([lo, hi]), st.integers(lo, hi))

    a = draw(st.lists(operand(a_width), min_size=n, max_size=n))
    w = draw(st.lists(operand(w_width), min_size=n, max_size=n))
    ctl = draw(st.lists(st.tuples(st.sampled_from([1, 1, 1, 0]), st.integers(0, 1)),
                        min_size=n, max_size=n))
    return a_width, w_width, phys, modes, draw(st.integers(0, len(modes) - 1)), a, w, ctl


@settings(max_examples=30, deadline=None)
@given(streams(), st.integers(0, 2))
def test_mac_random_streams(run_sim, s, stages):
    a_width, w_width, phys, modes, mode, a, w, ctl = s
    pe = PEMac(a_width, w_width, phys, product_stages=stages, acc_modes=modes)
    width, overflow = modes[mode]
    np.testing.assert_array_equal(
        simulate(run_sim, pe, a, w, ctl, mode if len(modes) > 1 else None),
        pe_mac(a, w, ctl, width, stages, overflow))


@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_shift_pe(run_sim, overflow):
    # ±(a << code) with the carry-in negation, into a 9-bit bound of an 14-bit accumulator.
    rng = np.random.default_rng(1)
    n = 40
    a = rng.integers(-128, 128, n)
    zero, sign, code = rng.integers(0, 2, n) * (rng.random(n) < 0.2), rng.integers(0, 2, n), \
        rng.integers(0, 4, n)
    ctl = [(1, int(t % 8 == 7)) for t in range(n)]
    want = pe_shift(a, zero, sign, code, ctl, 9, 0, overflow)
    pe = PEShift(8, 4, 14, acc_modes=((14, "wrap"), (9, overflow)))
    words = [{"code": int(c), "sign": int(s), "zero": int(z)} for c, s, z in zip(code, sign, zero)]
    np.testing.assert_array_equal(simulate(run_sim, pe, list(map(int, a)), words, ctl, 1), want)
    # and the results really were bounded somewhere (not the exact sums)
    assert (want != pe_shift(a, zero, sign, code, ctl, 30, 0, overflow)).any()
