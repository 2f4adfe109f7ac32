"""A UART transmitter: 8 data bits, no parity, one stop bit, a fixed clock divisor."""

from amaranth.hdl import C, Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.errors import ArgumentError, check_int

from .uart_rx import MIN_DIVISOR

__all__ = ["UARTTx"]


class UARTTx(wiring.Component):
    """Send each byte of ``i`` on ``tx`` as 8N1 at ``divisor`` clock cycles per bit.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least :data:`~hwgen.boards.uart_rx.MIN_DIVISOR`.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; ``ready`` is high while the transmitter is idle.
    tx : Out(1)
        The serial line, from a flip-flop (idle high).

    Latency: a byte taken in cycle ``t`` starts its start bit on ``tx`` in cycle ``t + 1``;
    the transmitter is ready again ``ii`` cycles after it took a byte.
    """

    def __init__(self, divisor):
        self._divisor = check_int(divisor, "UART divisor", minimum=MIN_DIVISOR,
                                  error=ArgumentError)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    @property
    def divisor(self):
        return self._divisor

    @property
    def ii(self):
        """``10 · divisor + 1``: start, eight data and stop bits, and the cycle that takes
        the next byte."""
        return 10 * self._divisor + 1

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        bits = Signal(range(10))
        shreg = Signal(10, init=0x3FF)
        m.d.comb += self.tx.eq(shreg[0])
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [shreg.eq(Cat(C(0, 1), self.i.payload, C(1, 1))),
                                 timer.eq(d - 1), bits.eq(0)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), shreg.eq(Cat(shreg[1:], C(1, 1))),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 9):
                        m.next = "IDLE"
        return m
