# amaranth: UnusedElaboratable=no
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import timing
from hwgen.compiler import walk_deltas
from hwgen.errors import FormatError
from hwgen.golden.blocks import pixel_walker
from hwgen.rtl.layouts import WALKER_COUNT_FIELDS, WALKER_SIGNED_FIELDS
from hwgen.rtl.pixel_walker import PixelWalker, walk_bounds


def test_construction_errors():
    with pytest.raises(FormatError,
                       match=r"^Walker coordinate width must be a positive integer, not 0$"):
        PixelWalker(0, 8)
    with pytest.raises(FormatError,
                       match=r"^Walker count width must be a positive integer, not 'x'$"):
        PixelWalker(8, "x")
    assert PixelWalker(8, 8).latency == timing.pixel_walker_latency() == 0


def walk_config(h, w, stride, pad, pool, pw, walk_len, npix):
    start, deltas = walk_deltas(h, w, stride, pad, pool, pw)
    cfg = {"start_iy": start[0], "start_ix": start[1], "start_base": start[2], "pool": pool,
           "pw": pw, "walk_len": walk_len, "npix": npix}
    for level, (diy, dix, dbase) in enumerate(deltas):
        cfg.update({f"d{level}_iy": diy, f"d{level}_ix": dix, f"d{level}_base": dbase})
    return cfg


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), k=st.integers(1, 3), stride=st.integers(1, 3),
       pad=st.integers(0, 2), pool=st.integers(1, 3), rows=st.integers(1, 5))
def test_walk_matches_the_golden_model(run_sim, h, w, k, stride, pad, pool, rows):
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    ph, pw = ho // pool, wo // pool
    if ph < 1 or pw < 1:
        return
    npix = ph * pw * pool * pool
    walk_len = -(-npix // rows) * rows        # whole tiles: the last one may be partial
    cfg = walk_config(h, w, stride, pad, pool, pw, walk_len, npix)
    start, deltas = walk_deltas(h, w, stride, pad, pool, pw)
    expected = pixel_walker(start, deltas, pool, pw, walk_len)
    assert len(expected) == walk_len
    dut = PixelWalker(12, 10)

    async def testbench(ctx):
        # the configuration arrives a cycle after the restart, its first pixel's terminal
        # flags with it
        ctx.set(dut.restart, 1)
        last, at = walk_bounds(walk_len, pool, pw, 10)
        ctx.set(dut.restart_last, last)
        ctx.set(dut.restart_at, at)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        for name in WALKER_SIGNED_FIELDS + WALKER_COUNT_FIELDS:
            ctx.set(dut.cfg[name], cfg[name])
        # twice round, with a pause: the walk starts over by itself after walk_len steps
        for lap in range(2):
            for n, (iy, ix, base) in enumerate(expected):
                assert (ctx.get(dut.iy), ctx.get(dut.ix), ctx.get(dut.base)) == (iy, ix, base)
                assert ctx.get(dut.valid) == (n < npix)
                ctx.set(dut.step, 1)
                await ctx.tick()
                ctx.set(dut.step, 0)
                if n == 0:
                    await ctx.tick()          # no step: the walker holds its pixel
        # restart in the middle of a walk
        ctx.set(dut.step, 1)
        await ctx.tick()
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        ctx.set(dut.step, 0)
        assert (ctx.get(dut.iy), ctx.get(dut.ix), ctx.get(dut.base)) == expected[0]

    run_sim(dut, testbench)
