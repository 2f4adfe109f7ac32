# amaranth: UnusedElaboratable=no
"""PEShift against hwgen.golden.blocks.pe_shift; its packer; no multiplier in its netlist."""

import numpy as np
import pytest
from amaranth.hdl import signed
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import timing
from hwgen.compiler.pack import pack_shift
from hwgen.errors import DoesNotFitError, FormatError
from hwgen.golden.blocks import pe_mac, pe_shift
from hwgen.rtl.layouts import PEKind
from hwgen.rtl.pe import pe_class
from hwgen.rtl.pe_shift import PEShift

# --- construction -------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    ((0, 4, 24), r"^Activation width must be a positive integer, not 0$"),
    ((8, 1, 24), r"^Shift PE weight width must be at least 2 \(zero flag and sign\), not 1$"),
    ((8, 4, 8), r"^Accumulator width must be at least the activation width \+ 1 9, not 8$"),
])
def test_construction_errors(args, message):
    with pytest.raises(FormatError, match=message):
        PEShift(*args)


def test_signature_layout_and_timing():
    pe = PEShift(8, 5, 24, product_stages=1)
    assert pe_class("shift") is PEShift and pe.kind is PEKind.SHIFT
    assert pe.latency == 2 == timing.pe_latency(1)
    assert pe.a_i.shape() == signed(8) and pe.result.shape() == signed(24)
    layout = PEShift.weight_shape(5)
    assert [(name, f.offset, f.width) for name, f in layout] == [
        ("code", 0, 3), ("sign", 3, 1), ("zero", 4, 1)]
    assert [name for name, _ in PEShift.weight_shape(2)] == ["sign", "zero"]
    with pytest.raises(FormatError, match=r"^Shift PE weight width must be an integer of "
                                          r"at least 2, not 1$"):
        PEShift.weight_shape(1)


def test_no_multiplier_in_the_netlist():
    from hwgen.estimate import component_cells
    from hwgen.rtl.pe_mac import PEMac
    # The same question asked of the MAC finds its multiplier: the check can fail.
    assert component_cells(PEMac(8, 8, 24), "prep").get("$mul", 0) == 1
    for pe in (PEShift(8, 5, 24), PEShift(8, 2, 12), PEShift(6, 4, 16, product_stages=2)):
        cells = component_cells(pe, "prep")
        assert "$shl" in cells or pe.w_width == 2
        assert not {"$mul", "$macc"} & set(cells), cells


# --- packer ---------------------------------------------------------------------------------

def test_packer_fields():
    block = np.array([[0, 1, -1, 8], [-8, 4, 0, -2]])
    words = pack_shift(block, 5)
    field = {0: 0b10000, 1: 0b00000, -1: 0b01000, 8: 0b00011, -8: 0b01011, 4: 0b00010,
             -2: 0b01001}
    for k, word in enumerate(words):
        assert word == field[int(block[0, k])] | field[int(block[1, k])] << 5
    assert pack_shift(np.array([[1, -1, 0]]), 2) == [0b00, 0b01, 0b10]


def test_packer_refusals():
    with pytest.raises(FormatError, match=r"^Weight 3 is not 0 or ± a power of two, which "
                                          r"the 'shift' PE kind needs$"):
        pack_shift(np.array([[1, 3]]), 5)
    with pytest.raises(DoesNotFitError, match=r"^Weight -16 needs an exponent code of 4, "
                                              r"more than 2 bits hold$"):
        pack_shift(np.array([[-16]]), 4)


# --- behaviour ----------------------------------------------------------------------------

def simulate(run_sim, pe, a_seq, fields, ctl_seq):
    results = []

    async def testbench(ctx):
        for a, (zero, sign, code), (valid, last) in zip(a_seq, fields, ctl_seq):
            ctx.set(pe.a_i, int(a))
            w = {"sign": int(sign), "zero": int(zero)}
            if pe.w_width > 2:
                w["code"] = int(code)
            ctx.set(pe.w_i, w)
            ctx.set(pe.ctl_i, {"valid": int(valid), "last": int(last)})
            await ctx.tick()
            results.append(ctx.get(pe.result))

    run_sim(pe, testbench)
    return np.asarray(results, dtype=np.int64)


@st.composite
def shift_streams(draw):
    a_width = draw(st.integers(1, 10))
    code_bits = draw(st.integers(0, 3))
    max_code = (1 << code_bits) - 1 if code_bits else 0
    # A narrow accumulator now and then, so that wrapping is exercised too.
    acc_width = a_width + 1 + draw(st.integers(0, max_code + 6))
    n = draw(st.integers(1, 30))
    lo, hi = -(1 << (a_width - 1)), (1 << (a_width - 1)) - 1
    a_seq = draw(st.lists(st.one_of(st.sampled_from([lo, hi, 0]), st.integers(lo, hi)),
                          min_size=n, max_size=n))
    fields = draw(st.lists(st.tuples(st.sampled_from([0, 0, 0, 1]), st.integers(0, 1),
                                     st.sampled_from([0, max_code]) | st.integers(0, max_code)),
                           min_size=n, max_size=n))
    ctl = draw(st.lists(st.tuples(st.sampled_from([1, 1, 1, 0]), st.integers(0, 1)),
                        min_size=n, max_size=n))
    return a_width, code_bits + 2, acc_width, a_seq, fields, ctl


@settings(max_examples=25, deadline=None)
@given(shift_streams(), st.integers(0, 2))
def test_random_streams(run_sim, streams, stages):
    a_width, w_width, acc_width, a_seq, fields, ctl = streams
    pe = PEShift(a_width, w_width, acc_width, product_stages=stages)
    zero, sign, code = np.array(fields).T
    expected = pe_shift(a_seq, zero, sign, code, ctl, acc_width, stages)
    np.testing.assert_array_equal(simulate(run_sim, pe, a_seq, fields, ctl), expected)


def test_extremes_match_the_mac(run_sim):
    # Largest and smallest exponents, zero weights (with a set sign bit: still 0), most
    # negative activations: the shift PE computes what a MAC of the IR integers computes.
    a = [-128, 127, -128, 5, -1, 127, -128]
    fields = [(0, 0, 7), (0, 1, 7), (0, 1, 0), (1, 1, 7), (1, 0, 3), (0, 0, 0), (0, 1, 7)]
    ctl = [(1, 0)] * 6 + [(1, 1)]
    ints = [0 if z else (-1) ** s * 2 ** c for z, s, c in fields]
    expected = pe_mac(a, ints, ctl, 20)
    assert expected[-1] == -128 * 128 - 127 * 128 + 128 + 127 + 128 * 128
    zero, sign, code = np.array(fields).T
    np.testing.assert_array_equal(pe_shift(a, zero, sign, code, ctl, 20), expected)
    np.testing.assert_array_equal(simulate(run_sim, PEShift(8, 5, 20), a, fields, ctl),
                                  expected)
