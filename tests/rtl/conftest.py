"""Shared helpers of the block tests: run an async testbench against a component."""

import numpy as np
import pytest
from amaranth.sim import Simulator


def _run(dut, testbench, *, vcd=None):
    """Simulate ``dut`` with a 1 MHz ``sync`` clock until ``testbench(ctx)`` returns.

    Pass ``vcd="name.vcd"`` while debugging to get a waveform.
    """
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    if vcd is None:
        sim.run()
    else:
        with sim.write_vcd(vcd):
            sim.run()


@pytest.fixture(scope="session")
def run_sim():
    """The simulation runner (session-scoped so hypothesis tests may use it)."""
    return _run


def _simulate_top(design, samples):
    """Stream each sample in, collect the outputs; return (outputs, cycles, layer cycles)."""
    from hwgen.rtl.top import Accelerator
    dut = Accelerator(design)
    outputs, cycles, layers = [], [], []

    async def testbench(ctx):
        for words in samples:
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            assert ctx.get(dut.busy) and not ctx.get(dut.done)
            for word in words:
                ctx.set(dut.i.payload, int(word))
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            got = []
            ctx.set(dut.o.ready, 1)
            while len(got) < design.n_out:
                _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                if valid:
                    got.append(payload)
            await ctx.tick()
            assert ctx.get(dut.done) and not ctx.get(dut.busy)
            outputs.append(got)
            cycles.append(ctx.get(dut.cycles))
            per_layer = []
            for n in range(len(design.layers)):
                ctx.set(dut.layer_sel, n)
                per_layer.append(ctx.get(dut.layer_cycles))
            layers.append(per_layer)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(outputs), np.array(cycles), np.array(layers)


@pytest.fixture(scope="session")
def run_top():
    """Run a compiled design's accelerator in amaranth.sim on ``samples`` (rows of input
    words); return ``(outputs, cycles, layer cycles)``."""
    return _simulate_top
