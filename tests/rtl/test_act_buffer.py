# amaranth: UnusedElaboratable=no
"""ActBuffer: broadcast writes through one register, store over load, one registered read
per row."""

import pytest
from amaranth.hdl import signed, unsigned

from hwgen import timing
from hwgen.errors import ShapeError
from hwgen.rtl.act_buffer import ActBuffer


def test_construction_errors():
    with pytest.raises(ShapeError, match=r"^Buffer rows must be a positive integer, not 0$"):
        ActBuffer(0, 8, signed(8))
    assert ActBuffer(2, 9, signed(8)).addr_width == 4


def test_broadcast_writes_and_reads(run_sim):
    dut = ActBuffer(3, 8, signed(6))

    async def testbench(ctx):
        # load writes 5 words; in the last cycle a store to another address wins
        for addr in range(5):
            ctx.set(dut.load, {"en": 1, "addr": addr, "data": addr - 2})
            if addr == 4:
                ctx.set(dut.store, {"en": 1, "addr": 6, "data": -32})
            await ctx.tick()
        ctx.set(dut.load.en, 0)
        ctx.set(dut.store.en, 0)
        await ctx.tick()            # the last write leaves the write register
        # every copy holds every word; each row reads its own address, one cycle later
        for shift in range(3):
            addrs = [(r + shift) % 8 for r in range(3)]
            for r, addr in enumerate(addrs):
                ctx.set(dut.rd_addr[r], addr)
            await ctx.tick()
            want = {0: -2, 1: -1, 2: 0, 3: 1, 4: None, 6: -32}
            for r, addr in enumerate(addrs):
                if want.get(addr) is not None:
                    assert ctx.get(dut.rd_data[r]) == want[addr], (shift, r, addr)
        ctx.set(dut.rd_addr[0], 4)
        await ctx.tick()
        assert ctx.get(dut.rd_data[0]) == 0      # the load lost to the store: never written

    run_sim(dut, testbench)


def test_masked_store_and_whole_word_load(run_sim):
    dut = ActBuffer(2, 4, unsigned(8), bit_writes=True)
    assert dut.write_latency == timing.buffer_write_latency() == 1

    async def testbench(ctx):
        ctx.set(dut.load, {"en": 1, "addr": 1, "data": 0b1010_0101})
        await ctx.tick()
        ctx.set(dut.load.en, 0)
        ctx.set(dut.store, {"en": 1, "addr": 1, "data": 0xFF, "mask": 0b0000_0010})
        await ctx.tick()
        ctx.set(dut.store, {"en": 1, "addr": 1, "data": 0x00, "mask": 0b1000_0000})
        await ctx.tick()
        ctx.set(dut.store.en, 0)
        await ctx.tick()
        for r in range(2):
            ctx.set(dut.rd_addr[r], 1)
        await ctx.tick()
        assert [ctx.get(dut.rd_data[r]) for r in range(2)] == [0b0010_0111] * 2

    run_sim(dut, testbench)
