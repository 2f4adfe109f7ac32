# amaranth: UnusedElaboratable=no
import pytest

from hwgen.errors import FormatError
from hwgen.rtl.drain import Drain


def test_construction_errors():
    with pytest.raises(FormatError, match=r"^Drain rows must be a positive integer, not 0$"):
        Drain(0, 2, 8, 8)
    assert Drain(3, 4, 8, 8).delay == 6


def expected_slots(job, rows, cols, cfg):
    """The drain's output for ``job``, slot by slot (row-major): what it must produce."""
    out = []
    for r in range(rows):
        place = job["m0"] + r
        q, pos = job["q0"] + place // cfg["win"], place % cfg["win"]
        for c in range(cols):
            out.append({
                "valid": int(r < job["rows_valid"] and c < job["cols_valid"]),
                "col": c, "pool_first": int(pos == 0), "pool_last": int(pos == cfg["win"] - 1),
                "tag": cfg["out_base"] + job["ch_off"] + c * cfg["plane"] + q,
                "param_addr": cfg["param_base"] + job["co_base"] + c,
            })
    return out


@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 3), (3, 2)])
def test_jobs_back_to_back(run_sim, rows, cols):
    """Two jobs ``rows·cols`` cycles apart (the closest the sequencer sends them): slot
    ``(r, c)`` of a job sent at cycle ``t`` is read at ``t + delay + 1 + r·cols + c``."""
    dut = Drain(rows, cols, 16, 10)
    cfg = {"win": 4, "plane": 6, "out_base": 100, "param_base": 40}
    jobs = [
        {"co_base": 0, "cols_valid": cols, "ch_off": 0, "rows_valid": rows, "q0": 0, "m0": 3},
        {"co_base": cols, "cols_valid": 1, "ch_off": cols * 6, "rows_valid": rows - 1 or 1,
         "q0": 2, "m0": 1},
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
                    ctx.set(dut.results[r][c], result(cycle, r, c))
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
        for n, job in enumerate(jobs):
            for i, want in enumerate(expected_slots(job, rows, cols, cfg)):
                param_addr, slot, got = seen[n * period + i]
                assert param_addr == want.pop("param_addr")
                acc = got.pop("acc")
                assert got == want, (n, i)
                r, c = divmod(i, cols)
                assert acc == result(n * period + dut.delay + 1 + i, r, c)

    run_sim(dut, testbench)
