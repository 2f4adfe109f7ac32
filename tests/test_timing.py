# amaranth: UnusedElaboratable=no
"""Every block's latency property is the timing module's value, for several shapes and PE
depths, so the cycle model (which composes the same functions) cannot drift from the
blocks."""

import pytest
from amaranth.hdl import Fragment, signed

from hwgen import timing
from hwgen.errors import ArgumentError
from hwgen.rtl.act_buffer import ActBuffer
from hwgen.rtl.drain import Drain
from hwgen.rtl.engine import Engine
from hwgen.rtl.pe_mac import PEMac
from hwgen.rtl.post_process import PostProcess
from hwgen.rtl.systolic_array import SystolicArray


@pytest.mark.parametrize("rows, cols, stages", [(1, 1, 0), (2, 3, 1), (4, 2, 2)])
def test_block_latencies_are_the_timing_modules(rows, cols, stages):
    pe = PEMac(8, 8, 20, product_stages=stages)
    pe_lat = timing.pe_latency(stages)
    assert pe.latency == pe_lat == 1 + stages
    array = SystolicArray(rows, cols, lambda: PEMac(8, 8, 20, product_stages=stages))
    assert array.latency == timing.array_latency(rows - 1, cols - 1, pe_lat)
    engine = Engine(rows, cols, "fixed", a_width=8, w_width=8, acc_width=20,
                    weight_image=[0], count_width=8, product_stages=stages)
    assert engine.pe_latency == pe_lat
    assert engine.latency == (timing.memory_read_latency() + timing.feed_latency()
                              + array.latency)
    Fragment.get(engine, None)      # elaborated, so its PEs count as used
    drain = Drain(rows, cols, signed(20), 8, pe_latency=pe_lat)
    assert drain.delay == timing.drain_delay(rows, cols, pe_lat)
    assert drain.latency == timing.drain_latency()
    assert PostProcess(20, 8, cols, 8).latency == timing.post_process_latency()
    assert ActBuffer(rows, 16, signed(8)).latency == timing.memory_read_latency()
    assert ActBuffer(rows, 16, signed(8)).write_latency == timing.buffer_write_latency()


def test_drain_delay_is_within_the_safe_window():
    # The read of slot (r, c) must follow its sum and precede the next tile's (P = rows·cols).
    for rows in range(1, 5):
        for cols in range(1, 5):
            for pe_lat in (1, 2, 4):
                delay = timing.drain_delay(rows, cols, pe_lat)
                period = rows * cols
                for r in range(rows):
                    for c in range(cols):
                        read = delay + 1 + r * cols + c
                        final = (timing.memory_read_latency() + timing.feed_latency() + r + c
                                 + pe_lat)
                        replaced = period + final
                        assert final <= read < replaced, (rows, cols, pe_lat, r, c)


def test_deeper_pe_costs_its_stages_once_per_layer():
    for stages in range(4):
        got = timing.layer_cycles(9, 5, 3, 2, timing.pe_latency(stages))
        assert got.total == timing.layer_cycles(9, 5, 3, 2, 1).total + stages


def test_errors():
    with pytest.raises(ArgumentError, match=r"^PE product stages must be an integer of at "
                                            r"least 0, not -1$"):
        timing.pe_latency(-1)
    with pytest.raises(ArgumentError, match=r"^Reduction length must be an integer of at "
                                            r"least 1, not 0$"):
        timing.layer_cycles(0, 1, 1, 1, 1)


def test_split_drain_delay_is_within_the_safe_window():
    # A split layer reads column c of every row at once: after the bottom row's sum, before
    # the next tile (the shortest split period) replaces the top row's.
    f = timing.memory_read_latency() + timing.feed_latency()
    for rows in range(2, 7):
        for cols in range(1, 5):
            for pe_lat in (1, 2, 4):
                delay = timing.drain_delay(rows, cols, pe_lat, split=True)
                period = timing.tile_period(1, rows, cols, split=True)
                for c in range(cols):
                    read = delay + 1 + c
                    assert all(f + r + c + pe_lat <= read for r in range(rows))
                    assert read < period + f + c + pe_lat, (rows, cols, pe_lat, c)
                # and it is the earliest such read
                assert f + rows - 1 + pe_lat == delay + 1


def test_pooled_drain_delay_is_within_the_safe_window():
    # A pooled layer reads rows [g·win, (g+1)·win) of column c at once: after the group's
    # bottom row's sum, before the next tile (the shortest pooled period) replaces its top.
    f = timing.memory_read_latency() + timing.feed_latency()
    for win in (2, 4, 8):
        for rows in (win, 2 * win, 3 * win):
            for cols in range(win, win + 3):
                for pe_lat in (1, 2, 4):
                    delay = timing.drain_delay(rows, cols, pe_lat, pooled=win)
                    period = timing.tile_period(1, rows, cols, pooled=win)
                    assert period >= rows // win * cols
                    for g in range(rows // win):
                        for c in range(cols):
                            read = delay + 1 + g * cols + c
                            assert all(f + r + c + pe_lat <= read
                                       for r in range(g * win, (g + 1) * win))
                            assert read < period + f + g * win + c + pe_lat
                    assert f + win - 1 + pe_lat == delay + 1       # the earliest
