"""A board top: the :class:`~hwgen.boards.bridge.UARTBridge` of a design folder on a board's
UART and LEDs, clocked by the board's clock."""

from pathlib import Path

from amaranth.hdl import Module
from amaranth.lib import io, wiring

from hwgen.emit import MANIFEST_FILE, TOPLEVEL, read_design

from . import protocol
from .bridge import UARTBridge

__all__ = ["BRIDGE_TOP", "BoardTop", "bridge_verilog", "make_bridge"]

#: The bridge's module name when it is converted alone (for simulation).
BRIDGE_TOP = "hwgen_board"


def make_bridge(design_dir, *, divisor, timeout):
    """The :class:`UARTBridge` around the design folder's accelerator (its ``hwgen_top.v``,
    which the caller adds to the build), answering ``'?'`` with the folder's identity."""
    from hwgen.rtl.top import accelerator_signature

    design_dir = Path(design_dir)
    design = read_design(design_dir)
    identity = protocol.Identity(
        design.act_width, design.n_in, design.n_out,
        protocol.fingerprint((design_dir / MANIFEST_FILE).read_bytes()))
    return UARTBridge(accelerator_signature(design.act_width), act_width=design.act_width,
                      n_in=design.n_in, n_out=design.n_out, identity=identity.to_bytes(),
                      divisor=divisor, timeout=timeout, core=TOPLEVEL)


def bridge_verilog(design_dir, *, divisor, timeout, name=BRIDGE_TOP):
    """Verilog of the design folder's bridge alone (module ``name``, ports ``clk``,
    ``rst``, ``rx``, ``tx``, ``led_busy``, ``led_done``); simulate it with the folder's
    ``hwgen_top.v``."""
    from amaranth.back import verilog
    return verilog.convert(make_bridge(design_dir, divisor=divisor, timeout=timeout),
                           name=name, emit_src=False)


class BoardTop(wiring.Component):
    """``bridge`` on the platform's first UART and two of its LEDs.

    The clock domain is the platform's default clock with its power-on reset
    (amaranth-boards' ``create_missing_domain``).

    Parameters
    ----------
    bridge : UARTBridge
        The accelerator behind its UART.
    leds : tuple
        The platform resources ``(name, number)`` of the busy and the done LED.
    """

    def __init__(self, bridge, leds):
        self._bridge = bridge
        self._leds = tuple(leds)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = self._bridge
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        busy, done = (io.Buffer("o", platform.request(name, number, dir="-"))
                      for name, number in self._leds)
        m.submodules.led_busy, m.submodules.led_done = busy, done
        m.d.comb += [bridge.rx.eq(rx.i), tx.o.eq(bridge.tx),
                     busy.o.eq(bridge.led_busy), done.o.eq(bridge.led_done)]
        return m
