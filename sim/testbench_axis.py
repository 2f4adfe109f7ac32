"""cocotb test of the AXI4-Stream wrapper (``rtl_templates/hwgen_axis.v``) around a core.

Started by :func:`hwgen.sim.runner.run_cocotb`; the case comes as JSON in the environment
variable ``HWGEN_AXIS_CASE``: ``{"inputs": [[int, ...], ...], "expected": [[int, ...], ...],
"seed": int}``. Each sample is sent as one packet with random gaps in ``tvalid``; the
results are taken with random back-pressure on ``tready``; every word and the ``tlast`` of
every packet are checked.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

CASE_ENV = "HWGEN_AXIS_CASE"


async def send(dut, words, rng):
    """One packet on s_axis, holding each beat until it is taken."""
    for n, word in enumerate(words):
        while rng.random() < 0.3:
            dut.s_axis_tvalid.value = 0
            await RisingEdge(dut.aclk)
        dut.s_axis_tdata.value = word & ((1 << len(dut.s_axis_tdata)) - 1)
        dut.s_axis_tlast.value = int(n == len(words) - 1)
        dut.s_axis_tvalid.value = 1
        await ReadOnly()
        while not dut.s_axis_tready.value:
            await RisingEdge(dut.aclk)
            await ReadOnly()
        await RisingEdge(dut.aclk)
    dut.s_axis_tvalid.value = 0


async def receive(dut, count, rng):
    """``count`` beats from m_axis: their signed values and tlast flags."""
    words, lasts = [], []
    while len(words) < count:
        ready = int(rng.random() < 0.7)
        dut.m_axis_tready.value = ready
        await ReadOnly()
        if ready and dut.m_axis_tvalid.value:
            words.append(dut.m_axis_tdata.value.to_signed())
            lasts.append(int(dut.m_axis_tlast.value))
        await RisingEdge(dut.aclk)
    dut.m_axis_tready.value = 0
    return words, lasts


@cocotb.test()
async def packets_through_the_wrapper(dut):
    case = json.loads(os.environ[CASE_ENV])
    rng = random.Random(case["seed"])
    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    dut.aresetn.value = 0
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tlast.value = 0
    dut.s_axis_tdata.value = 0
    dut.m_axis_tready.value = 0
    await ClockCycles(dut.aclk, 3)
    dut.aresetn.value = 1
    for inputs, expected in zip(case["inputs"], case["expected"]):
        sender = cocotb.start_soon(send(dut, inputs, rng))
        words, lasts = await receive(dut, len(expected), rng)
        await sender
        assert words == expected, f"outputs {words} != expected {expected}"
        assert lasts == [0] * (len(expected) - 1) + [1], f"tlast pattern {lasts}"
        assert int(dut.cycles.value) > 0
