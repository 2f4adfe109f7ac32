# amaranth: UnusedElaboratable=no
"""WeightLookup against hwgen.golden.blocks.weight_lookup."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal

from hwgen.errors import ShapeError
from hwgen.golden.blocks import weight_lookup
from hwgen.rtl.weight_lookup import WeightLookup

# --- construction -------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"tables": [], "bounds": []},
     r"^Lookup needs one bound per table row and at least one row, not 0 bounds for 0 rows$"),
    ({"tables": [[[0, 1, 2, 3]] * 2] * 2, "bounds": [0, 0]},
     r"^Lookup bounds must start at 0 and ascend, not \[0, 0\]$"),
    ({"tables": [[[0, 1, 2]] * 2], "bounds": [0]},
     r"^Each lookup table row must hold 2 tables of 4 entries$"),
    ({"tables": [[[0, 1, 2, 8]] * 2], "bounds": [0]},
     r"^Lookup entry 8 does not fit 4 signed bits$"),
])
def test_construction_errors(kwargs, message):
    with pytest.raises(ShapeError, match=message):
        WeightLookup(2, index_width=2, value_width=4, addr_width=6, **kwargs)


def test_timing():
    lookup = WeightLookup(2, index_width=1, value_width=4, addr_width=3,
                          tables=[[[1, -2], [3, 7]]], bounds=[0])
    assert lookup.latency == 0 and lookup.rows == 1


# --- behaviour ----------------------------------------------------------------------------

@pytest.mark.parametrize("rows", [1, 3])
def test_reads_against_the_golden_lookup(run_sim, rows):
    """A memory read's address in one cycle, its index word the next: every column's
    weight comes from the table of the address's row (entries at both ends of the range)."""
    rng = np.random.default_rng(rows)
    cols, bits, width = 3, 3, 6
    tables = rng.integers(-32, 32, size=(rows, cols, 1 << bits))
    tables[0, 0, 0], tables[-1, -1, -1] = -32, 31
    bounds = [0, 5, 9][:rows]
    addrs = np.concatenate([np.arange(14), rng.integers(0, 14, size=20)])
    indices = rng.integers(0, 1 << bits, size=(len(addrs), cols))
    want = weight_lookup(addrs, indices, tables, bounds)
    dut = WeightLookup(cols, index_width=bits, value_width=width, addr_width=4,
                       tables=tables.tolist(), bounds=bounds)
    got = []
    top = Module()      # a clock domain even for one row (which registers nothing)
    top.submodules.dut = dut
    tick = Signal()
    top.d.sync += tick.eq(~tick)

    async def testbench(ctx):
        # as behind a memory: the next read's address with this read's data
        ctx.set(dut.addr, int(addrs[0]))
        await ctx.tick()
        for t, idx in enumerate(indices):
            for c in range(cols):
                ctx.set(dut.index[c], int(idx[c]))
            if t + 1 < len(addrs):
                ctx.set(dut.addr, int(addrs[t + 1]))
            got.append([ctx.get(dut.value[c]) for c in range(cols)])
            await ctx.tick()

    run_sim(top, testbench)
    np.testing.assert_array_equal(np.array(got), want)
    # the golden lookup by hand, for one read per row
    assert weight_lookup([bounds[-1]], [[1, 2, 3]], tables, bounds).tolist() == [
        [tables[-1, 0, 1], tables[-1, 1, 2], tables[-1, 2, 3]]]
