# amaranth: UnusedElaboratable=no
"""UARTRx and UARTTx in amaranth.sim: construction, a byte's timing, and loopback at several
divisors, with a glitch and a framing error on the line."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from hwgen.boards.uart_rx import UARTRx
from hwgen.boards.uart_tx import UARTTx
from hwgen.errors import ArgumentError


def test_construction_errors():
    with pytest.raises(ArgumentError, match=r"^UART divisor must be an integer of at least 4, "
                                            r"not 3$"):
        UARTRx(3)
    with pytest.raises(ArgumentError, match=r"^UART divisor must be an integer of at least 4, "
                                            r"not 2\.5$"):
        UARTTx(2.5)


def _simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


async def _line(ctx, pin, bits, divisor):
    """Drive ``bits`` onto ``pin``, ``divisor`` cycles each."""
    for bit in bits:
        ctx.set(pin, bit)
        await ctx.tick().repeat(divisor)


def _frame(byte, stop=1):
    return [0] + [(byte >> n) & 1 for n in range(8)] + [stop]


@pytest.mark.parametrize("divisor", [4, 5, 7, 104])
def test_transmitter_timing(divisor):
    """The byte goes out as start, eight data bits LSB first and stop, ``divisor`` cycles
    each, from the cycle after it is taken; the next byte is taken ``ii`` cycles later."""
    dut = UARTTx(divisor)

    async def testbench(ctx):
        assert ctx.get(dut.tx) == 1 and ctx.get(dut.i.ready)
        ctx.set(dut.i.payload, 0xA5)
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.payload, 0x3C)
        line = []
        taken = None
        for cycle in range(1, 2 * dut.ii + 2):
            line.append(ctx.get(dut.tx))
            if taken is None and ctx.get(dut.i.ready):
                taken = cycle
            await ctx.tick()
        assert taken == dut.ii
        expected = [b for b in _frame(0xA5) for _ in range(divisor)]
        assert line[:10 * divisor] == expected
        assert line[dut.ii:dut.ii + 10 * divisor] == [b for b in _frame(0x3C)
                                                      for _ in range(divisor)]

    _simulate(dut, testbench)


@pytest.mark.parametrize("divisor", [4, 5, 104])
def test_receiver_latency_glitch_and_framing_error(divisor):
    dut = UARTRx(divisor)

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(5)
        # a one-cycle low is not a start bit
        ctx.set(dut.rx, 0)
        await ctx.tick()
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(12 * divisor)
        # a frame whose stop bit is low is dropped; the line then idles
        await _line(ctx, dut.rx, _frame(0x77, stop=0) + [1] * 2, divisor)
        # a good byte: valid rises `latency` cycles after the start bit's edge
        ctx.set(dut.rx, 0)
        seen = []
        for cycle in range(dut.latency + 5):
            if cycle and cycle % divisor == 0 and cycle // divisor < 10:
                ctx.set(dut.rx, _frame(0xC3)[cycle // divisor])
            elif cycle // divisor >= 10:
                ctx.set(dut.rx, 1)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                seen.append((cycle + 1, ctx.get(dut.o.payload)))
        assert seen[0] == (dut.latency, 0xC3)
        assert len(seen) == 1       # taken at once (ready high)

    _simulate(dut, testbench)


@pytest.mark.parametrize("divisor", [4, 6, 13])
def test_loopback(divisor):
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [0x00, 0xFF, 0x01, 0x80] + random.Random(divisor).choices(range(256), k=12)

    async def testbench(ctx):
        got, queue = [], list(data)
        ctx.set(rx.o.ready, 1)
        for _ in range(len(data) * tx.ii + rx.latency + 2):
            if queue:
                ctx.set(tx.i.payload, queue[0])
                ctx.set(tx.i.valid, 1)
            if ctx.get(tx.i.ready) and queue:
                queue.pop(0)
            if ctx.get(rx.o.valid):
                got.append(ctx.get(rx.o.payload))
            await ctx.tick()
            ctx.set(tx.i.valid, 0)
        assert got == data

    _simulate(m, testbench)
