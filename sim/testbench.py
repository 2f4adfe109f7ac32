"""The cocotb test that runs a batch of samples through an hwgen accelerator.

:func:`hwgen.sim.runner.run` starts it inside the simulator; it is not meant to be run by hand.
The top level is the batch driver of :mod:`hwgen.sim.batch` around the design: the driver
streams the samples (read from a hex file) through the design, records what comes out and
checks the port protocol, all inside the simulator, so Python wakes only at the start and
the end of the batch and the simulator runs at its own speed (the driver's clock is a delay
loop in Verilog, not a cocotb coroutine). This test resets, raises ``go``, waits for
``finished``
and writes a results JSON file named by the ``HWGEN_RESULTS`` environment variable::

    {"sim_seconds": float, "clock_cycles": int, "error": str | null}

after reading a stimulus JSON file named by ``HWGEN_STIMULUS``::

    {"samples": int, "n_in": int, "n_out": int, "max_cycles": int}

The words and cycle counts themselves are in the driver's hex files, which the runner reads
and compares with the golden model.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.triggers import RisingEdge, SimTimeoutError, with_timeout

__all__ = ["CLOCK_PERIOD_NS", "RESULTS_ENV", "STIMULUS_ENV"]

STIMULUS_ENV = "HWGEN_STIMULUS"
RESULTS_ENV = "HWGEN_RESULTS"
CLOCK_PERIOD_NS = 10
RESET_CYCLES = 2


def _read_json(path):
    # Plain blocking reads: the simulator is paused while Python runs, so nothing waits.
    with open(path) as f:
        return json.load(f)


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f)


def _error_text(dut, stimulus):
    from hwgen.sim.batch import ERRORS

    code = dut.error.value.to_unsigned()
    sample = dut.error_sample.value.to_unsigned()
    accepted, received = dut.accepted.value.to_unsigned(), dut.received.value.to_unsigned()
    n_in, n_out = stimulus["n_in"], stimulus["n_out"]
    if code == 2:
        return (f"sample {sample}: done did not rise within max_cycles={stimulus['max_cycles']} "
                f"clock cycles of start ({accepted} of {n_in} input words accepted, "
                f"{received} of {n_out} output words received)")
    if code == 3:
        return (f"sample {sample}: done rose after {accepted} of {n_in} input words and "
                f"{received} of {n_out} output words")
    return f"sample {sample}: {ERRORS.get(code, f'driver error {code}')}"


@cocotb.test()
async def run_stimulus(dut):
    """Reset the driver and the DUT, run the batch and write the results file."""
    stimulus = _read_json(os.environ[STIMULUS_ENV])
    results = {"sim_seconds": 0.0, "clock_cycles": 0, "error": None}
    started = time.perf_counter()
    try:
        dut.rst.value = 1
        dut.go.value = 0
        for _ in range(RESET_CYCLES):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        dut.go.value = 1
        # Every sample may take max_cycles; the driver's own limit fires first.
        limit = (stimulus["max_cycles"] + 64) * (stimulus["samples"] + 1)
        try:
            await with_timeout(RisingEdge(dut.finished), limit * CLOCK_PERIOD_NS, "ns")
        except SimTimeoutError:
            results["error"] = f"the batch did not finish within {limit} clock cycles"
        else:
            if dut.error.value.to_unsigned():
                results["error"] = _error_text(dut, stimulus)
            results["clock_cycles"] = dut.clock_cycles.value.to_unsigned()
    except Exception as error:
        # Anything else (a missing port, a bad value) is recorded too, so that the runner can
        # name it, and then fails the test with its traceback in the log.
        results["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        results["sim_seconds"] = time.perf_counter() - started
        _write_json(os.environ[RESULTS_ENV], results)
    if results["error"] is not None:
        raise AssertionError(results["error"])
