# amaranth: UnusedElaboratable=no
"""Drain against hwgen.golden.blocks.drain, cycle-exact."""

import pytest

from hwgen import timing
from hwgen.errors import FormatError
from hwgen.golden.blocks import drain as golden_drain
from hwgen.rtl.drain import Drain


def test_construction_errors():
    with pytest.raises(FormatError, match=r"^Drain rows must be a positive integer, not 0$"):
        Drain(0, 2, 8, 8, pe_latency=1)
    with pytest.raises(FormatError, match=r"^PE latency must be a positive integer, not 0$"):
        Drain(2, 2, 8, 8, pe_latency=0)


def test_timing_is_the_timing_modules():
    assert Drain(3, 4, 8, 8, pe_latency=1).delay == 7 == timing.drain_delay(3, 4, 1)
    assert Drain(3, 4, 8, 8, pe_latency=3).delay == 9 == timing.drain_delay(3, 4, 3)
    assert Drain(3, 4, 8, 8, pe_latency=1).latency == timing.drain_latency() == 1


@pytest.mark.parametrize("rows, cols, pe_latency", [(1, 1, 1), (2, 3, 1), (3, 2, 1),
                                                    (2, 3, 3)])
def test_jobs_back_to_back(run_sim, rows, cols, pe_latency):
    """Two jobs ``rows·cols`` cycles apart (the closest the sequencer sends them): slot
    ``(r, c)`` of a job sent at cycle ``t`` is read at ``t + delay + 1 + r·cols + c``."""
    dut = Drain(rows, cols, 16, 10, pe_latency=pe_latency)
    cfg = {"win": 4, "out_base": 100, "param_base": 40}
    jobs = [
        {"co_base": 0, "cols_valid": cols, "rows_valid": rows, "q0": 0, "m0": 3},
        {"co_base": cols, "cols_valid": 1, "rows_valid": rows - 1 or 1, "q0": 2, "m0": 1},
    ]
    period = rows * cols

    def result(cycle, r, c):
        """The array's results change every cycle, so each value names when it was read."""
        return cycle * 100 + r * 10 + c

    async def testbench(ctx):
        for name, value in cfg.items():
            ctx.set(getattr(dut, name), value)
        seen = []
        for cycle in range(2 * period + dut.delay + 4):
            tile = cycle // period
            for r in range(rows):
                for c in range(cols):
                    ctx.set(dut.results.e0[r][c], result(cycle, r, c))
            if cycle % period == 0 and tile < len(jobs):
                ctx.set(dut.job, {"valid": 1, **jobs[tile]})
            else:
                ctx.set(dut.job.valid, 0)
            slot = cycle - dut.delay - 1
            if 0 <= slot < 2 * period:
                seen.append((ctx.get(dut.param_addr), slot))
            await ctx.tick()
            if 1 <= slot + 1 <= 2 * period:
                o = dut.o
                seen[-1] += ({"valid": ctx.get(o.valid), "col": ctx.get(o.col),
                              "pool_first": ctx.get(o.pool_first),
                              "pool_last": ctx.get(o.pool_last), "tag": ctx.get(o.tag),
                              "acc": ctx.get(o.acc)},)
            assert ctx.get(dut.busy) == (cycle < 2 * period + dut.delay)
        assert len(seen) == 2 * period
        for n, job in enumerate(jobs):
            want_slots = golden_drain(job, rows, cols, **cfg)
            assert len(want_slots) == period
            for i, want in enumerate(want_slots):
                param_addr, slot, got = seen[n * period + i]
                assert param_addr == want.pop("param_addr")
                acc = got.pop("acc")
                assert got == want, (n, i)
                r, c = divmod(i, cols)
                assert acc == result(n * period + dut.delay + 1 + i, r, c)

    run_sim(dut, testbench)
