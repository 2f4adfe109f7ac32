# amaranth: UnusedElaboratable=no
"""SystolicArray against hwgen.golden.blocks.systolic_array, cycle-exact."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import signed
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import timing
from hwgen.errors import FormatError, ShapeError
from hwgen.golden.blocks import systolic_array
from hwgen.rtl.pe_mac import PEMac
from hwgen.rtl.post_process import PostProcess
from hwgen.rtl.systolic_array import SystolicArray

# --- construction -------------------------------------------------------------------------

@pytest.mark.parametrize("rows, cols, message", [
    (0, 4, r"^Array rows must be a positive integer, not 0$"),
    (4, -2, r"^Array columns must be a positive integer, not -2$"),
    (2.0, 4, r"^Array rows must be a positive integer, not 2.0$"),
])
def test_construction_errors(rows, cols, message):
    with pytest.raises(ShapeError, match=message):
        SystolicArray(rows, cols, lambda: PEMac(8, 8, 20))


def test_factory_errors():
    with pytest.raises(TypeError, match=r"^PE factory must be callable, not 3$"):
        SystolicArray(2, 2, 3)
    with pytest.raises(TypeError, match=r"^PE factory must return a PE, not None$"):
        SystolicArray(2, 2, lambda: None)
    widths = iter([8, 8, 4, 8])
    with pytest.raises(ShapeError, match=r"^PE factory must return PEs of one signature and "
                                         r"latency, but PE \(1, 0\) is .*$"):
        SystolicArray(2, 2, lambda: PEMac(next(widths), 8, 20))
    with pytest.raises(FormatError, match=r"^Accumulator width must be at least the product "
                                          r"width 16, not 8$"):
        SystolicArray(2, 2, lambda: PEMac(8, 8, 8))


def test_signature_and_timing():
    array = SystolicArray(3, 5, lambda: PEMac(6, 4, 18))
    assert (array.rows, array.cols) == (3, 5)
    assert array.a_shape == signed(6) and array.w_shape == signed(4)
    assert array.acc_shape == signed(18)
    assert len(array.a) == 3 and len(array.w) == 5
    assert len(array.result) == 3 and len(array.result[0]) == 5
    assert array.result[2][4].shape() == signed(18)
    assert array.pe_latency == 1
    assert array.skew(0, 0) == 0
    assert array.skew(2, 4) == 6
    assert array.latency == 7 == timing.array_latency(2, 4, 1)
    assert SystolicArray(3, 5, lambda: PEMac(6, 4, 18, product_stages=2)).latency == 9
    with pytest.raises(ShapeError, match=r"^Row must be in range\(3\), not 3$"):
        array.skew(3, 0)
    with pytest.raises(ShapeError, match=r"^Column must be in range\(5\), not -1$"):
        array.skew(0, -1)


def test_verilog_hierarchy():
    # Every block converts, and the PE instances keep their loop names in the Verilog.
    text = verilog.convert(SystolicArray(2, 3, lambda: PEMac(4, 4, 10)), name="array")
    for r in range(2):
        for c in range(3):
            assert f"pe_{r}_{c}" in text
    assert "module" in verilog.convert(PEMac(3, 5, 9), name="pe")
    assert "module" in verilog.convert(PostProcess(12, 6, 3, 5), name="pp")


# --- behaviour ----------------------------------------------------------------------------

def simulate_tiles(run_sim, array, tiles, gaps, rng):
    """Stream ``tiles`` (a list of (A, W)) through ``array``, ``gaps[j]`` invalid steps with
    garbage operands before tile ``j``; return the cycle each tile's ``last`` step is
    presented in and ``result`` in every cycle (shape (cycles, rows, cols))."""
    rows, cols = array.rows, array.cols
    a_lo, a_hi = -(1 << (len(array.a[0]) - 1)), 1 << (len(array.a[0]) - 1)
    w_lo, w_hi = -(1 << (len(array.w[0]) - 1)), 1 << (len(array.w[0]) - 1)
    steps = []                                  # (a column, w row, valid, last)
    last_cycles = []
    for (A, W), gap in zip(tiles, gaps):
        for _ in range(gap):
            steps.append((rng.integers(a_lo, a_hi, rows), rng.integers(w_lo, w_hi, cols),
                          0, int(rng.integers(2))))
        k = A.shape[1]
        for i in range(k):
            steps.append((A[:, i], W[i, :], 1, int(i == k - 1)))
        last_cycles.append(len(steps) - 1)
    # Let the farthest PE finish, then a few idle cycles to see that results are held.
    drain = array.latency + 3
    for _ in range(drain):
        steps.append((np.zeros(rows, np.int64), np.zeros(cols, np.int64), 0, 0))

    seen = []

    async def testbench(ctx):
        for a, w, valid, last in steps:
            # result is registered: reading it before the edge gives this cycle's value.
            seen.append([[int(v) for v in row] for row in ctx.get(array.result)])
            ctx.set(array.a, [int(v) for v in a])
            ctx.set(array.w, [int(v) for v in w])
            ctx.set(array.ctl, {"valid": valid, "last": last})
            await ctx.tick()

    run_sim(array, testbench)
    return last_cycles, np.asarray(seen, dtype=np.int64)


def check_tiles(run_sim, rows, cols, a_width, w_width, ks, gaps, seed, extremes=False,
                stages=0):
    rng = np.random.default_rng(seed)
    k_max = max(ks)
    acc_width = a_width + w_width + max(1, k_max).bit_length()
    array = SystolicArray(rows, cols, lambda: PEMac(a_width, w_width, acc_width,
                                                    product_stages=stages))
    tiles = []
    for k in ks:
        a_lo, w_lo = -(1 << (a_width - 1)), -(1 << (w_width - 1))
        if extremes:
            A = np.full((rows, k), a_lo, np.int64)
            W = np.full((k, cols), w_lo, np.int64)
        else:
            A = rng.integers(a_lo, -a_lo, (rows, k))
            W = rng.integers(w_lo, -w_lo, (k, cols))
        tiles.append((A, W))
    last_cycles, seen = simulate_tiles(run_sim, array, tiles, gaps, rng)
    expected = [systolic_array(A, W) for A, W in tiles]
    n_cycles = len(seen)
    for r in range(rows):
        for c in range(cols):
            lat = array.skew(r, c) + array.pe_latency
            # Until the first tile's sum arrives the register holds its reset value.
            starts = [t + lat for t in last_cycles] + [n_cycles]
            np.testing.assert_array_equal(seen[:starts[0], r, c], 0,
                                          err_msg=f"PE ({r}, {c}) before the first tile")
            for j, want in enumerate(expected):
                np.testing.assert_array_equal(
                    seen[starts[j]:starts[j + 1], r, c], want[r, c],
                    err_msg=f"PE ({r}, {c}) tile {j}: from cycle {starts[j]} to "
                            f"{starts[j + 1]}")


def test_1x1(run_sim):
    check_tiles(run_sim, 1, 1, 8, 8, ks=[3, 1, 5], gaps=[0, 0, 2], seed=1)


def test_3x5_back_to_back(run_sim):
    # Tile 2's first step in the cycle right after tile 1's last, then a gap with garbage.
    check_tiles(run_sim, 3, 5, 8, 8, ks=[6, 4, 7], gaps=[1, 0, 3], seed=2)


def test_2x3_pipelined_pes(run_sim):
    # A deeper PE moves every result later by the same number of cycles.
    check_tiles(run_sim, 2, 3, 8, 8, ks=[4, 2, 3], gaps=[0, 0, 1], seed=5, stages=2)


def test_4x4_back_to_back(run_sim):
    check_tiles(run_sim, 4, 4, 8, 8, ks=[5, 5, 2], gaps=[0, 0, 0], seed=3)


def test_4x4_most_negative(run_sim):
    # Most negative × most negative in every PE: the largest sum the accumulator must hold.
    check_tiles(run_sim, 4, 4, 8, 8, ks=[8, 1], gaps=[0, 0], seed=4, extremes=True)


@settings(max_examples=6, deadline=None)
@given(rows=st.integers(1, 3), cols=st.integers(1, 3), a_width=st.integers(1, 9),
       w_width=st.integers(1, 9), ks=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       seed=st.integers(0, 2 ** 32 - 1))
def test_hypothesis_sized(run_sim, rows, cols, a_width, w_width, ks, seed):
    check_tiles(run_sim, rows, cols, a_width, w_width, ks=ks, gaps=[0] * len(ks), seed=seed)


# --- weight banks (split layers) --------------------------------------------------------

@pytest.mark.parametrize("rows, cols, stages", [(3, 4, 0), (2, 2, 1), (4, 3, 1)])
def test_split_rows_take_their_banks(run_sim, rows, cols, stages):
    """With ``split``, row r multiplies its activations with its own weights, presented at
    ``w_rows[r − 1]`` r cycles after the step's ``a``: PE (r, c) ends with row r's dot
    product; two tiles back to back."""
    rng = np.random.default_rng(rows * 10 + cols)
    array = SystolicArray(rows, cols, lambda: PEMac(8, 8, 24, product_stages=stages),
                          banks=True)
    ks = [5, 3]
    tiles = [(rng.integers(-128, 128, (rows, k)), rng.integers(-128, 128, (rows, k, cols)))
             for k in ks]
    steps = [(A[:, i], W[:, i, :], int(i == A.shape[1] - 1))
             for A, W in tiles for i in range(A.shape[1])]
    n = len(steps) + rows + array.latency + 2
    seen = []

    async def testbench(ctx):
        ctx.set(array.split, 1)
        for t in range(n):
            seen.append(np.asarray(ctx.get(array.result), dtype=np.int64))
            if t < len(steps):
                a, _, last = steps[t]
                ctx.set(array.a, [int(v) for v in a])
                ctx.set(array.w, [int(v) for v in steps[t][1][0]])
                ctx.set(array.ctl, {"valid": 1, "last": last})
            else:
                ctx.set(array.ctl, {"valid": 0, "last": 0})
            # row r's weights come r cycles after the step's activations
            for r in range(1, rows):
                if 0 <= t - r < len(steps):
                    ctx.set(array.w_rows[r - 1], [int(v) for v in steps[t - r][1][r]])
                else:
                    ctx.set(array.w_rows[r - 1], [int(v) for v in rng.integers(-128, 128, cols)])
            await ctx.tick()

    run_sim(array, testbench)
    last = np.cumsum(ks) - 1
    for j, (A, W) in enumerate(tiles):
        for r in range(rows):
            for c in range(cols):
                at = last[j] + array.skew(r, c) + array.pe_latency
                want = int(A[r] @ W[r, :, c])
                assert seen[at][r][c] == want, (j, r, c)
