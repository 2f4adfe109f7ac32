"""cocotb test of a board top's bridge (:class:`hwgen.boards.bridge.UARTBridge` with the
design's ``hwgen_top``) through its UART pins.

Started by :func:`hwgen.sim.runner.run_cocotb` on the bridge's Verilog
(:func:`hwgen.boards.top.bridge_verilog`) and the design's; the case comes as JSON in the
environment variable ``HWGEN_UART_CASE``. Every byte goes through
:mod:`hwgen.boards.protocol`, the module ``hwgen run-board`` uses, bit by bit on ``rx`` and
``tx`` at ``divisor`` clock cycles per bit. Two modes:

``"check"``: ``{"mode": "check", "divisor": int, "timeout": int, "act_width": int,
"n_out": int, "identity": hex string, "inputs": [[int, ...], ...], "expected": [[int, ...],
...], "cycles": int}``. Bytes that are not commands are sent while idle (ignored); the
identity is asked for and compared; a request is cut off after a few bytes and left for
longer than ``timeout`` cycles (the bridge must abandon it); then every input is sent and
every output word and the cycle count of the reply compared with ``expected`` and
``cycles``; the LEDs are checked along the way.

``"serve"``: ``{"mode": "serve", "divisor": int, "port_file": path, "stop_file": path,
"max_seconds": float}``. The simulated board is put behind a pseudo-terminal, whose name is
written to ``port_file``: bytes a host (``hwgen run-board --port``) writes there go onto
``rx``, bytes from ``tx`` come back to it, until ``stop_file`` exists.
"""

import json
import os
import time
import tty

import cocotb
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout

from hwgen.boards import protocol

CASE_ENV = "HWGEN_UART_CASE"
CLOCK_NS = 10


class UART:
    """The host's end of the line: drives ``rx``, watches ``tx``."""

    def __init__(self, dut, divisor):
        self.dut = dut
        self.divisor = divisor
        self.received = Queue()
        self.sink = None        # called with every byte received, if set

    async def send(self, data):
        """Send ``data`` byte after byte, 8N1."""
        for byte in data:
            for bit in [0] + [(byte >> n) & 1 for n in range(8)] + [1]:
                self.dut.rx.value = bit
                await ClockCycles(self.dut.clk, self.divisor)

    async def monitor(self):
        """Receive bytes from ``tx`` for ever, sampling each bit in its middle."""
        clk, tx = self.dut.clk, self.dut.tx
        while True:
            await FallingEdge(tx)
            await ClockCycles(clk, self.divisor // 2)
            assert tx.value == 0, "a start bit shorter than half a bit on tx"
            byte = 0
            for n in range(8):
                await ClockCycles(clk, self.divisor)
                byte |= int(tx.value) << n
            await ClockCycles(clk, self.divisor)
            assert tx.value == 1, f"no stop bit after byte {byte:#04x} on tx"
            if self.sink is not None:
                self.sink(byte)
            else:
                self.received.put_nowait(byte)

    async def receive(self, count, within_cycles):
        """``count`` bytes; each must come within ``within_cycles`` clock cycles."""
        out = bytearray()
        for _ in range(count):
            out.append(await with_timeout(self.received.get(), within_cycles * CLOCK_NS, "ns"))
        return bytes(out)


def _publish(path, text):
    """Write ``text`` to ``path`` whole (through a renamed temporary file): the host polls
    for it. Plain blocking I/O: the simulator waits while Python runs."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)


async def _check(dut, case):
    uart = UART(dut, case["divisor"])
    cocotb.start_soon(uart.monitor())
    width, n_out = case["act_width"], case["n_out"]
    byte_cycles = 10 * case["divisor"]
    # the reply may only wait for the computation
    within = case["cycles"] + 8 * byte_cycles

    await uart.send(b"\x00\xffx")                  # not commands: ignored
    await ClockCycles(dut.clk, 4 * byte_cycles)
    assert uart.received.empty(), "the board answered bytes that are not commands"
    assert not dut.led_busy.value and not dut.led_done.value

    await uart.send(bytes([protocol.CMD_IDENTIFY]))
    identity = await uart.receive(protocol.IDENTITY_BYTES, 4 * byte_cycles)
    assert identity.hex() == case["identity"], f"identity {identity.hex()}"
    protocol.decode_identity(identity)

    # a request cut short is abandoned after `timeout` cycles without a byte
    await uart.send(protocol.encode_request(case["inputs"][0], width)[:4])
    assert dut.led_busy.value
    await ClockCycles(dut.clk, case["timeout"] + 4)
    assert not dut.led_busy.value, "the bridge did not abandon a request cut short"

    for n, (words, expected) in enumerate(zip(case["inputs"], case["expected"])):
        await uart.send(protocol.encode_request(words, width))
        data = await uart.receive(protocol.reply_length(n_out, width), within)
        reply = protocol.decode_reply(data, n_out, width)
        assert list(reply.words) == expected, (
            f"image {n}: outputs {list(reply.words)} != golden {expected}")
        assert reply.cycles == case["cycles"], (
            f"image {n}: {reply.cycles} cycles measured, {case['cycles']} predicted")
        await ClockCycles(dut.clk, 2)
        assert dut.led_done.value and not dut.led_busy.value


async def _serve(dut, case):
    uart = UART(dut, case["divisor"])
    master, slave = os.openpty()
    tty.setraw(slave)       # no echo, no line editing: bytes as they are
    os.set_blocking(master, False)
    uart.sink = lambda byte: os.write(master, bytes([byte]))
    cocotb.start_soon(uart.monitor())
    _publish(case["port_file"], os.ttyname(slave))
    started = time.monotonic()
    try:
        while not os.path.exists(case["stop_file"]):
            assert time.monotonic() - started < case["max_seconds"], "the host never finished"
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                data = b""
            if data:
                await uart.send(data)
            else:
                await ClockCycles(dut.clk, 20 * case["divisor"])
    finally:
        os.close(master)
        os.close(slave)


@cocotb.test()
async def board_over_uart(dut):
    case = json.loads(os.environ[CASE_ENV])
    await _reset(dut)
    if case["mode"] == "check":
        await _check(dut, case)
    else:
        await _serve(dut, case)
