"""Shared helpers of the block tests: run an async testbench against a component."""

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
