"""Shared helpers of the block tests: run an async testbench against a component."""

import warnings

import pytest
from amaranth.sim import Simulator

# When a hypothesis test fails, hypothesis' pytest plugin imports libcst to print a patch;
# libcst pulls in mypy_extensions.TypedDict, whose DeprecationWarning becomes an error under
# `filterwarnings = error` and turns the failure report into a pytest INTERNALERROR. Import
# it once here, with that warning silenced, so that failures are reported normally.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:
        pass


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
