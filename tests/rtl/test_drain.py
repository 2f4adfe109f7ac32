# amaranth: UnusedElaboratable=no
"""Drain against hwgen.golden.blocks.drain, cycle-exact."""

import pytest

from hwgen import timing
from hwgen.errors import FormatError, ShapeError
from hwgen.golden.blocks import drain as golden_drain
from hwgen.rtl.drain import Drain


def test_construction_errors():
    with pytest.raises(FormatError, match=r"^Drain rows must be a positive integer, not 0$"):
        Drain(0, 2, 8, 8, pe_latency=1)
    with pytest.raises(FormatError, match=r"^PE latency must be a positive integer, not 0$"):
        Drain(2, 2, 8, 8, pe_latency=0)


def test_timing_is_the_timing_modules():
    # memory read 1 + feed 2 + last PE (2 + 3 + pe_latency), less the read cycle
    assert Drain(3, 4, 8, 8, pe_latency=1).delay == 8 == timing.drain_delay(3, 4, 1)
    assert Drain(3, 4, 8, 8, pe_latency=3).delay == 10 == timing.drain_delay(3, 4, 3)
    assert Drain(3, 4, 8, 8, pe_latency=1).latency == timing.drain_latency() == 1


@pytest.mark.parametrize("rows, cols, pe_latency", [(1, 1, 1), (2, 3, 1), (3, 2, 1),
                                                    (2, 3, 3)])
def test_jobs_back_to_back(run_sim, rows, cols, pe_latency):
    """Two jobs ``rows·cols`` cycles apart (the closest the sequencer sends them): slot
    ``(r, c)`` of a job sent at cycle ``t`` is read at ``t + delay + 1 + r·cols + c``; its
    value is the array's result one cycle earlier (the gate register), except on a single
    PE, read directly."""
    dut = Drain(rows, cols, 16, 10, pe_latency=pe_latency)
    cfg = {"win": 4, "out_base": 100}
    jobs = [
        {"co_addr": 40, "cols_valid": cols, "rows_valid": rows, "q0": 0, "m0": 3},
        {"co_addr": 40 + cols, "cols_valid": 1, "rows_valid": rows - 1 or 1, "q0": 2, "m0": 1},
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
                sampled = n * period + dut.delay + 1 + i - (1 if period > 1 else 0)
                assert acc == result(sampled, r, c)

    run_sim(dut, testbench)


def test_split_timing_is_the_timing_modules():
    dut = Drain(4, 3, 8, 8, pe_latency=2, split=True)
    # memory read 1 + feed 2 + last row (3 + pe_latency 2), less the read cycle
    assert dut.delay_split == 7 == timing.drain_delay(4, 3, 2, split=True)
    assert dut.sum_latency == 3 == timing.drain_sum_latency(4)
    assert timing.drain_sum_latency(5) == 4 and timing.drain_sum_latency(1) == 0


def column_result(cycle, r, c):
    """What the array holds in PE (r, c) in ``cycle`` (each value names when it was read)."""
    return (cycle * 37 + r * 11 + c * 5) % 301 - 150


def drain_columns(run_sim, dut, modes, cfg, jobs, period, delay, groups):
    """Send ``jobs`` ``period`` cycles apart to a drain in a column mode (``modes``: its mode
    inputs' values); the array holds :func:`column_result`. Return, per read cycle ``n·period
    + delay + 1 + g·cols + c`` (job ``n``, group ``g``, column ``c``), ``[param_addr`` when
    the value leaves, ``o`` one cycle later``]``; ``o.valid`` must be low between, and the
    drain busy until its last value leaves."""
    rows, cols, lag = len(dut.results.e0), len(dut.results.e0[0]), dut.sum_latency
    reads = {n * period + delay + 1 + g * cols + c
             for n in range(len(jobs)) for g in range(groups) for c in range(cols)}
    got = {}

    async def testbench(ctx):
        for name, value in {**modes, **cfg}.items():
            ctx.set(getattr(dut, name), value)
        for cycle in range(max(reads) + lag + 3):
            for r in range(rows):
                for c in range(cols):
                    ctx.set(dut.results.e0[r][c], column_result(cycle, r, c))
            n = cycle // period
            ctx.set(dut.job, {"valid": int(cycle % period == 0 and n < len(jobs)),
                              **jobs[min(n, len(jobs) - 1)]})
            read = cycle - lag
            if read in reads:
                got[read] = [ctx.get(dut.param_addr)]
            await ctx.tick()
            if read in reads:
                o = dut.o
                got[read].append({"valid": ctx.get(o.valid), "col": ctx.get(o.col),
                                  "pool_first": ctx.get(o.pool_first),
                                  "pool_last": ctx.get(o.pool_last), "tag": ctx.get(o.tag),
                                  "acc": ctx.get(o.acc)})
            elif cycle > delay:
                assert not ctx.get(dut.o.valid), cycle
            assert ctx.get(dut.busy) == (cycle <= max(reads) + lag - 1), cycle

    run_sim(dut, testbench)
    return got


@pytest.mark.parametrize("rows, cols, pe_latency", [(2, 3, 1), (4, 4, 1), (3, 2, 3),
                                                    (5, 1, 1)])
def test_split_jobs_back_to_back(run_sim, rows, cols, pe_latency):
    """Split jobs ``tile_period(split=True)`` cycles apart: column ``c`` of every row is
    read at ``t + delay_split + 1 + c``, and the sum of the rows' values read then leaves
    ``sum_latency`` cycles later (``param_addr``), at ``o`` one cycle after that."""
    dut = Drain(rows, cols, 16, 10, pe_latency=pe_latency, split=True)
    cfg = {"win": 1, "out_base": 100}
    jobs = [
        {"co_addr": 40, "cols_valid": cols, "rows_valid": rows, "q0": 0, "m0": 0},
        {"co_addr": 40 + cols, "cols_valid": 1, "rows_valid": rows, "q0": 0, "m0": 0},
    ]
    period = timing.tile_period(1, rows, cols, split=True)
    got = drain_columns(run_sim, dut, {"split": 1}, cfg, jobs, period, dut.delay_split, 1)
    for n, job in enumerate(jobs):
        want_slots = golden_drain(job, rows, cols, **cfg, split=True)
        assert len(want_slots) == cols
        for c, want in enumerate(want_slots):
            read = n * period + dut.delay_split + 1 + c
            param_addr, slot = got[read]
            assert param_addr == want.pop("param_addr")
            assert slot.pop("acc") == sum(column_result(read, r, c) for r in range(rows))
            assert slot == want, (n, c)


@pytest.mark.parametrize("rows, cols", [(2, 3), (3, 2)])
def test_a_split_drain_drains_ordinary_layers_as_before(run_sim, rows, cols):
    """With ``split`` low, a drain built for split layers reads slot by slot like one
    without (the same slots, cycle for cycle; the one without samples each a cycle
    earlier, through its gate registers, and the results here change every cycle)."""
    outs = []
    for split in (False, True):
        dut = Drain(rows, cols, 16, 10, pe_latency=1, split=split)
        seen = []

        async def testbench(ctx, dut=dut, seen=seen):
            ctx.set(dut.win, 4)
            ctx.set(dut.out_base, 7)
            for cycle in range(3 * rows * cols + dut.delay + 4):
                for r in range(rows):
                    for c in range(cols):
                        ctx.set(dut.results.e0[r][c], cycle * 3 + r * 7 + c)
                ctx.set(dut.job, {"valid": int(cycle % (rows * cols) == 0 and cycle < 20),
                                  "co_addr": cycle, "cols_valid": cols, "rows_valid": rows,
                                  "q0": 1, "m0": 2})
                seen.append((ctx.get(dut.param_addr), ctx.get(dut.busy)))
                await ctx.tick()
                seen.append(tuple(ctx.get(getattr(dut.o, f)) for f in
                                  ("valid", "acc", "col", "pool_first", "pool_last", "tag")))

        run_sim(dut, testbench)
        outs.append(seen)
    gated, direct = outs
    assert len(gated) == len(direct)
    for one, other in zip(gated, direct):
        if len(one) == 6:
            # everything but the result is the same; a valid result one cycle older is 3
            # smaller
            assert one[0] == other[0] and one[2:] == other[2:]
            if one[0]:
                assert one[1] == other[1] - 3
        else:
            assert one == other
    assert any(o[0] == 1 for o in gated if len(o) == 6)


@pytest.mark.parametrize("rows, cols, win, pe_latency, split", [
    (4, 4, 4, 1, False), (8, 4, 4, 2, False), (4, 2, 2, 1, True), (6, 3, 2, 1, False)])
def test_pooled_jobs_back_to_back(run_sim, rows, cols, win, pe_latency, split):
    """Pooled jobs ``tile_period(pooled=win)`` cycles apart: rows ``[g·win, (g+1)·win)`` of
    column ``c`` are read at ``t + delay_pool + 1 + g·cols + c``, and their maximum leaves
    ``sum_latency`` cycles later; the second job's last window is past ``rows_valid``."""
    dut = Drain(rows, cols, 16, 10, pe_latency=pe_latency, split=split, pool_win=win)
    groups = rows // win
    cfg = {"win": win, "out_base": 100}
    jobs = [
        {"co_addr": 40, "cols_valid": cols, "rows_valid": rows, "q0": 3, "m0": 0},
        {"co_addr": 40 + cols, "cols_valid": cols - 1 or 1, "rows_valid": rows - win, "q0": 5,
         "m0": 0},
    ]
    period = timing.tile_period(1, rows, cols, pooled=win)
    modes = {"drain_pool": 1, "group_last": groups - 1, **({"split": 0} if split else {})}
    got = drain_columns(run_sim, dut, modes, cfg, jobs, period, dut.delay_pool, groups)
    for n, job in enumerate(jobs):
        want_slots = golden_drain(job, rows, cols, **cfg, pooled=True)
        assert len(want_slots) == groups * cols
        for i, want in enumerate(want_slots):
            g, c = divmod(i, cols)
            read = n * period + dut.delay_pool + 1 + g * cols + c
            param_addr, slot = got[read]
            assert param_addr == want.pop("param_addr")
            acc = slot.pop("acc")
            assert slot == want, (n, g, c)
            if want["valid"]:
                assert acc == max(column_result(read, r, c)
                                  for r in range(g * win, (g + 1) * win)), (n, g, c)


def test_pool_window_errors():
    with pytest.raises(ShapeError, match=r"^A drain of 4x2 cannot take pool windows of 4 "
                                         r"pixels \(a power of two from 2, dividing the rows, "
                                         r"at most the columns\)$"):
        Drain(4, 2, 8, 8, pe_latency=1, pool_win=4)
    with pytest.raises(ShapeError, match=r"^A drain of 6x4 cannot take pool windows of 4 "):
        Drain(6, 4, 8, 8, pe_latency=1, pool_win=4)
    with pytest.raises(ShapeError, match=r"^A drain of 9x9 cannot take pool windows of 9 "):
        Drain(9, 9, 8, 8, pe_latency=1, pool_win=9)
