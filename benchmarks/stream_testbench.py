"""The cocotb testbench hwgen used before the batch driver, kept as the baseline of
``benchmarks/sim_speed.py``: Python drives every input word and takes every output word of
the ``i``/``o`` streams (waking at each transfer) and its clock is a Python coroutine.

Stimulus (``HWGEN_STIMULUS``, JSON): ``n_in``, ``n_out``, ``n_layers``, ``max_cycles``,
``inputs``; results (``HWGEN_RESULTS``, JSON): ``outputs``, ``cycles``, ``layer_cycles``,
``sim_seconds``, ``clock_cycles``, ``error``.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, SimTimeoutError, with_timeout

__all__ = ["CLOCK_PERIOD_NS", "RESULTS_ENV", "STIMULUS_ENV", "collect_outputs", "drive_inputs"]

STIMULUS_ENV = "HWGEN_STIMULUS"
RESULTS_ENV = "HWGEN_RESULTS"
CLOCK_PERIOD_NS = 10
RESET_CYCLES = 2


class _SampleError(Exception):
    """The DUT broke the protocol or timed out on one sample (reported, then failed)."""


async def drive_inputs(dut, words, progress):
    """Offer ``words`` on the ``i`` stream, one per transfer, then drop ``valid``.

    ``ready`` is sampled in the ReadOnly phase of the cycle before the edge, so a word counts as
    transferred exactly when the DUT sees ``valid & ready`` on a rising edge. While ``ready`` is
    low the driver sleeps on its rising edge instead of polling every cycle.

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    words : list of int
        The sample, CHW order.
    progress : dict
        ``progress["accepted"]`` counts the words the DUT took (for timeout messages).
    """
    for word in words:
        dut.i__payload.value = word
        dut.i__valid.value = 1
        await ReadOnly()
        while not dut.i__ready.value:
            await RisingEdge(dut.i__ready)
            await ReadOnly()
        await RisingEdge(dut.clk)
        progress["accepted"] += 1
    dut.i__valid.value = 0


async def collect_outputs(dut, n_out, progress):
    """Take ``n_out`` words from the ``o`` stream, whose ``ready`` the testbench holds high.

    While the DUT computes, ``o__valid`` is low and the monitor sleeps on its rising edge, so
    the simulator runs the computation without waking Python every cycle.

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    n_out : int
        Words to collect.
    progress : dict
        ``progress["received"]`` counts the words taken so far.

    Returns
    -------
    list of int
        The words, as signed integers.
    """
    words = []
    while len(words) < n_out:
        await ReadOnly()
        while not dut.o__valid.value:
            await RisingEdge(dut.o__valid)
            await ReadOnly()
        # valid and ready are both high in this cycle, so the word moves on the next edge.
        words.append(dut.o__payload.value.to_signed())
        await RisingEdge(dut.clk)
        progress["received"] += 1
    return words


async def _reset(dut):
    dut.rst.value = 1
    dut.start.value = 0
    dut.i__valid.value = 0
    dut.i__payload.value = 0
    dut.o__ready.value = 1
    dut.layer_sel.value = 0
    for _ in range(RESET_CYCLES):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def _run_sample(dut, index, words, n_out, n_layers, max_cycles):
    # Start is raised right after an edge, so the DUT samples it on the next one.
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    progress = {"accepted": 0, "received": 0}
    # The driver starts only after start was taken: the contract accepts inputs after start.
    driver = cocotb.start_soon(drive_inputs(dut, words, progress))
    monitor = cocotb.start_soon(collect_outputs(dut, n_out, progress))
    await ReadOnly()
    if not dut.busy.value:
        driver.cancel()
        monitor.cancel()
        raise _SampleError(f"sample {index}: busy did not rise after start")
    try:
        # One trigger for the whole inference: no Python runs per cycle while the DUT computes.
        await with_timeout(RisingEdge(dut.done), max_cycles * CLOCK_PERIOD_NS, "ns")
    except SimTimeoutError:
        driver.cancel()
        monitor.cancel()
        raise _SampleError(
            f"sample {index}: done did not rise within max_cycles={max_cycles} clock cycles "
            f"of start ({progress['accepted']} of {len(words)} input words accepted, "
            f"{progress['received']} of {n_out} output words received)") from None
    # Let the driver and monitor finish their work of this same edge before judging them.
    await ReadOnly()
    if not driver.done() or not monitor.done():
        driver.cancel()
        monitor.cancel()
        raise _SampleError(
            f"sample {index}: done rose after {progress['accepted']} of {len(words)} input "
            f"words and {progress['received']} of {n_out} output words")
    if dut.busy.value:
        raise _SampleError(f"sample {index}: busy was still high when done rose")
    outputs = monitor.result()
    cycles = dut.cycles.value.to_unsigned()
    layer_cycles = []
    for layer in range(n_layers):
        # layer_cycles is a combinational read of layer_sel: set it between edges, read it
        # once the simulator has settled.
        await FallingEdge(dut.clk)
        dut.layer_sel.value = layer
        await ReadOnly()
        layer_cycles.append(dut.layer_cycles.value.to_unsigned())
    await RisingEdge(dut.clk)
    return outputs, cycles, layer_cycles


def _read_json(path):
    # Plain blocking reads: the simulator is paused while Python runs, so nothing waits.
    with open(path) as f:
        return json.load(f)


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f)


@cocotb.test()
async def run_stimulus(dut):
    """Reset the DUT, run every sample of the stimulus file and write the results file."""
    stimulus = _read_json(os.environ[STIMULUS_ENV])
    n_out = int(stimulus["n_out"])
    n_layers = int(stimulus["n_layers"])
    max_cycles = int(stimulus["max_cycles"])
    results = {"outputs": [], "cycles": [], "layer_cycles": [], "sim_seconds": 0.0,
               "clock_cycles": 0, "error": None}
    started = time.perf_counter()
    try:
        Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
        await _reset(dut)
        for index, words in enumerate(stimulus["inputs"]):
            outputs, cycles, layer_cycles = await _run_sample(
                dut, index, words, n_out, n_layers, max_cycles)
            results["outputs"].append(outputs)
            results["cycles"].append(cycles)
            results["layer_cycles"].append(layer_cycles)
    except _SampleError as error:
        results["error"] = str(error)
    except Exception as error:
        # Anything else (a missing port, a bad value) is recorded too, so that the runner can
        # name it, and then fails the test with its traceback in the log.
        results["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        results["sim_seconds"] = time.perf_counter() - started
        results["clock_cycles"] = round(get_sim_time("ns") / CLOCK_PERIOD_NS)
        _write_json(os.environ[RESULTS_ENV], results)
    if results["error"] is not None:
        raise AssertionError(results["error"])
