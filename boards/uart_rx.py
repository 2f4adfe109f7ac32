"""A UART receiver: 8 data bits, no parity, one stop bit, a fixed clock divisor."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from hwgen.errors import ArgumentError, check_int

__all__ = ["MIN_DIVISOR", "UARTRx"]

#: The smallest clock divisor the UART blocks take (samples need a middle to aim at).
MIN_DIVISOR = 4


class UARTRx(wiring.Component):
    """Receive 8N1 bytes on ``rx`` at ``divisor`` clock cycles per bit.

    The pin goes through a two-flip-flop synchronizer; a falling edge starts a byte, which
    is sampled in the middle of each bit (``divisor // 2`` cycles after the edge, then every
    ``divisor`` cycles). A start bit that is high again in its middle is a glitch and is
    ignored; a stop bit that is low (a framing error, or a break) drops the byte and waits
    for the line to go high.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least :data:`MIN_DIVISOR` (``round(f_clk / baud)``).

    Members
    -------
    rx : In(1)
        The serial line (idle high); asynchronous.
    o : Out(stream.Signature(8))
        Each byte received; ``valid`` stays high until it is taken. A byte not taken before
        the next one ends is overwritten.

    Latency: ``o.valid`` rises ``latency`` cycles after the falling edge of the start bit
    reaches ``rx``.
    """

    def __init__(self, divisor):
        self._divisor = check_int(divisor, "UART divisor", minimum=MIN_DIVISOR,
                                  error=ArgumentError)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8))})

    @property
    def divisor(self):
        return self._divisor

    @property
    def latency(self):
        """``2 + 1 + divisor // 2 + 9 · divisor``: the synchronizer, the edge, the middle of
        the start bit and nine bits to the middle of the stop bit."""
        return 3 + self._divisor // 2 + 9 * self._divisor

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(d))
        bits = Signal(range(9))
        shreg = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.next = "IDLE"         # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), shreg.eq(Cat(shreg[1:], rx)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m
