# amaranth: UnusedElaboratable=no
"""PEXnor against hwgen.golden.blocks.pe_xnor (and that against ±1 dot products with zero
padding); its packer; no multiplier in its netlist."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import timing
from hwgen.compiler.pack import pack_xnor, weight_words
from hwgen.errors import FormatError
from hwgen.golden.blocks import pe_xnor
from hwgen.rtl.layouts import PEKind
from hwgen.rtl.pe import pe_class
from hwgen.rtl.pe_xnor import PEXnor


def test_construction_and_timing():
    with pytest.raises(FormatError, match=r"^Accumulator width must be at least 5 for 8 "
                                          r"binary products, not 4$"):
        PEXnor(8, 4)
    pe = PEXnor(64, 16, product_stages=3)
    assert pe_class("xnor") is PEXnor and pe.kind is PEKind.XNOR
    assert pe.latency == 4 == timing.pe_latency(3)
    assert [name for name, _ in pe.a_i.shape()] == ["bits", "mask", "count"]
    assert pe.w_i.shape().width == 64


def test_no_multiplier_in_the_netlist():
    from hwgen.estimate import component_cells
    cells = component_cells(PEXnor(64, 16, product_stages=2), "prep")
    assert not {"$mul", "$macc"} & set(cells), cells


def test_packer_and_mask_tail():
    rng = np.random.default_rng(1)
    block = rng.choice([-1, 1], size=(3, 21))
    block[2] = 0                                   # a channel past the layer's
    words = weight_words("xnor", block, 8)
    assert len(words) == 3 == pack_xnor.steps(21, 8)
    for j, word in enumerate(words):
        for c in range(3):
            field = (word >> (8 * c)) & 0xFF
            want = [int(block[c, k] > 0) if k < 21 else 0 for k in range(8 * j, 8 * j + 8)]
            assert [(field >> i) & 1 for i in range(8)] == want
    with pytest.raises(FormatError, match=r"^Weight 2 is not ±1, which the 'xnor' PE kind "
                                          r"needs$"):
        pack_xnor(np.array([[1, 2]]), 8)


def simulate(run_sim, pe, a_seq, mask_seq, w_seq, ctl_seq):
    results = []

    async def testbench(ctx):
        for a, v, w, (valid, last) in zip(a_seq, mask_seq, w_seq, ctl_seq):
            a, v, w = int(a), int(v), int(w)
            ctx.set(pe.a_i, {"bits": a, "mask": v, "count": v.bit_count()})
            ctx.set(pe.w_i, w)
            ctx.set(pe.ctl_i, {"valid": int(valid), "last": int(last)})
            await ctx.tick()
            results.append(ctx.get(pe.result))

    run_sim(pe, testbench)
    return np.asarray(results, dtype=np.int64)


@st.composite
def streams(draw):
    p = draw(st.sampled_from([8, 16, 5]))
    full = (1 << p) - 1
    n = draw(st.integers(1, 16))
    word = st.one_of(st.sampled_from([0, full]), st.integers(0, full))
    a = draw(st.lists(word, min_size=n, max_size=n))
    mask = draw(st.lists(st.one_of(st.just(full), word), min_size=n, max_size=n))
    w = draw(st.lists(word, min_size=n, max_size=n))
    ctl = draw(st.lists(st.tuples(st.sampled_from([1, 1, 0]), st.integers(0, 1)),
                        min_size=n, max_size=n))
    acc = draw(st.integers(p.bit_length() + 1, 10))     # narrow ones wrap
    return p, acc, a, mask, w, ctl


@settings(max_examples=15, deadline=None)
@given(streams(), st.integers(0, 3))
def test_random_streams(run_sim, s, stages):
    p, acc, a, mask, w, ctl = s
    pe = PEXnor(p, acc, product_stages=stages)
    np.testing.assert_array_equal(simulate(run_sim, pe, a, mask, w, ctl),
                                  pe_xnor(a, mask, w, ctl, p, acc, stages))


def test_dot_product_with_padding_and_tail(run_sim):
    # A ±1 dot product of K = 21 with two padded positions, in words of P = 8: the last
    # word's mask drops the 3 positions past K; padding contributes 0 as in the golden
    # model. All-ones and all-minus-ones activations first.
    rng = np.random.default_rng(4)
    k, p = 21, 8
    w = rng.choice([-1, 1], size=k)
    for act in (np.ones(k, int), -np.ones(k, int), rng.choice([-1, 1], size=k)):
        act = act.copy()
        act[[3, 17]] = 0                          # padding
        want = int(np.sum(act * w))
        (wbits,) = np.array(pack_xnor(w[None, :], p)).reshape(1, -1)
        steps = pack_xnor.steps(k, p)
        a_words, masks = [], []
        for j in range(steps):
            seg = act[j * p:(j + 1) * p]
            a_words.append(sum(int(x > 0) << i for i, x in enumerate(seg)))
            masks.append(sum(int(x != 0) << i for i, x in enumerate(seg)))
        ctl = [(1, j == steps - 1) for j in range(steps)] + [(0, 0)] * 2
        a_words += [0, 0]
        masks += [0, 0]
        ws = list(wbits) + [0, 0]
        golden = pe_xnor(a_words, masks, ws, ctl, p, 8, 2)
        assert golden[-1] == want
        np.testing.assert_array_equal(
            simulate(run_sim, PEXnor(p, 8, product_stages=2), a_words, masks, ws, ctl), golden)
