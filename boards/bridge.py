"""The accelerator behind a UART: the part of a board top that does not depend on the board."""

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.errors import ArgumentError, check_int

from . import protocol
from .uart_rx import UARTRx
from .uart_tx import UARTTx

__all__ = ["UARTBridge", "core_ports"]


def core_ports(signature, path=("core",)):
    """``(Instance keyword arguments, interface)`` for a Verilog module whose ports are the
    members of the component ``signature``, named as ``amaranth.back.verilog.convert``
    names them (``i__payload`` for member ``i.payload``). The interface holds the signals
    with the members' names, so the module is used like the component itself."""
    iface = signature.create(path=path)
    kwargs = {}
    for member_path, member, value in signature.flatten(iface):
        name = "__".join(str(part) for part in member_path)
        kwargs[("i_" if member.flow == In else "o_") + name] = value
    return kwargs, iface


class UARTBridge(wiring.Component):
    """The generated accelerator (its Verilog module) behind a UART that speaks
    :mod:`hwgen.boards.protocol`.

    The bridge waits for a command byte. On ``'I'`` it starts the accelerator, assembles the
    input words from the bytes that follow and streams them into it, then sends every output
    word as it comes out and, last, the ``cycles`` count. On ``'?'`` it sends the identity
    bytes. A request whose bytes stop for ``timeout`` cycles is abandoned: the accelerator
    is held in reset for a cycle (from a register, so that no path runs from the bridge's
    timeout compare into every register of the accelerator) and the bridge waits for a
    command again.

    Parameters
    ----------
    signature : wiring.Signature
        The accelerator's signature (:class:`hwgen.rtl.top.Accelerator`), whose Verilog
        module ``core`` is instantiated with clock ``clk`` and reset ``rst``.
    act_width : int
        Bits of a word; words travel as ``protocol.word_bytes(act_width)`` bytes.
    n_in, n_out : int
        Words of the input and output tensors.
    identity : bytes
        The reply to ``'?'`` (:meth:`hwgen.boards.protocol.Identity.to_bytes`).
    divisor : int
        Clock cycles per UART bit (``round(f_clk / baud)``), at least 4.
    timeout : int
        Clock cycles without a byte after which a request is abandoned.
    core : str
        The accelerator's Verilog module name.

    Members
    -------
    rx : In(1)
        UART receive line (from the host), asynchronous.
    tx : Out(1)
        UART transmit line (to the host).
    led_busy : Out(1)
        A request is being received, computed or answered.
    led_done : Out(1)
        The last inference was answered (until the next one starts).
    """

    def __init__(self, signature, *, act_width, n_in, n_out, identity, divisor, timeout,
                 core="hwgen_top"):
        self._core_signature = signature
        self._act_width = check_int(act_width, "Word width", minimum=1)
        self._n_in = check_int(n_in, "Input words", minimum=1)
        self._n_out = check_int(n_out, "Output words", minimum=1)
        self._identity = bytes(identity)
        if not self._identity:
            raise ArgumentError("Identity must be at least one byte, not b''")
        self._divisor = divisor         # checked by the UART blocks
        self._timeout = check_int(timeout, "Request timeout", minimum=1)
        self._core = core
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "led_busy": Out(1),
                          "led_done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        size = protocol.word_bytes(self._act_width)
        m.submodules.uart_rx = rx = UARTRx(self._divisor)
        m.submodules.uart_tx = tx = UARTTx(self._divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        abort = Signal()        # the accelerator's reset, registered
        m.d.sync += abort.eq(0)
        kwargs, core = core_ports(self._core_signature)
        m.submodules.core = Instance(self._core, i_clk=ClockSignal(),
                                     i_rst=ResetSignal(allow_reset_less=True) | abort, **kwargs)

        # one register shifts words in from the line and out to it, least significant
        # byte first; it also holds the 32-bit cycle count
        shreg = Signal(8 * max(size, protocol.CYCLE_BYTES))
        nbytes = Signal(range(max(size, protocol.CYCLE_BYTES, len(self._identity)) + 1))
        words = Signal(range(max(self._n_in, self._n_out) + 1))
        last = Signal()         # the cycle count is being sent
        idle_for = Signal(range(self._timeout + 1))
        done = Signal()
        identity = Array(Const(b, 8) for b in self._identity)
        m.d.comb += [core.layer_sel.eq(0), self.led_done.eq(done)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += rx.o.ready.eq(1)
                with m.If(rx.o.valid & (rx.o.payload == protocol.CMD_INFER)):
                    m.d.comb += core.start.eq(1)
                    m.d.sync += [done.eq(0), words.eq(0), nbytes.eq(0), idle_for.eq(0),
                                 last.eq(0)]
                    m.next = "RECEIVE"
                with m.If(rx.o.valid & (rx.o.payload == protocol.CMD_IDENTIFY)):
                    m.d.sync += nbytes.eq(0)
                    m.next = "IDENTIFY"
            with m.State("RECEIVE"):
                m.d.comb += [self.led_busy.eq(1), rx.o.ready.eq(1)]
                m.d.sync += idle_for.eq(idle_for + 1)
                with m.If(rx.o.valid):
                    m.d.sync += [shreg[:8 * size].eq(Cat(shreg[8:8 * size], rx.o.payload)),
                                 nbytes.eq(nbytes + 1), idle_for.eq(0)]
                    with m.If(nbytes == size - 1):
                        m.next = "PUSH"
                with m.Elif(idle_for == self._timeout - 1):
                    # the accelerator's reset is synchronous: one cycle returns it to idle
                    m.d.sync += abort.eq(1)
                    m.next = "ABORT"
            with m.State("ABORT"):
                m.next = "IDLE"             # while the accelerator is in reset
            with m.State("PUSH"):
                m.d.comb += [self.led_busy.eq(1), core.i.valid.eq(1),
                             core.i.payload.eq(shreg[:self._act_width])]
                with m.If(core.i.ready):
                    m.d.sync += [words.eq(words + 1), nbytes.eq(0)]
                    with m.If(words == self._n_in - 1):
                        m.d.sync += words.eq(0)
                        m.next = "OUTPUT"
                    with m.Else():
                        m.next = "RECEIVE"
            with m.State("OUTPUT"):
                m.d.comb += [self.led_busy.eq(1), core.o.ready.eq(1)]
                with m.If(core.o.valid):
                    # sign-extended to whole bytes
                    m.d.sync += [shreg.eq(core.o.payload.as_signed()), nbytes.eq(size),
                                 words.eq(words + 1)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.led_busy.eq(1), tx.i.valid.eq(1), tx.i.payload.eq(shreg[:8])]
                with m.If(tx.i.ready):
                    m.d.sync += [shreg.eq(shreg >> 8), nbytes.eq(nbytes - 1)]
                    with m.If(nbytes == 1):
                        with m.If(last):
                            m.d.sync += done.eq(1)
                            m.next = "IDLE"
                        with m.Elif(words == self._n_out):
                            m.next = "CYCLES"
                        with m.Else():
                            m.next = "OUTPUT"
            with m.State("CYCLES"):
                # the count holds still once the last output word has left the accelerator
                m.d.comb += self.led_busy.eq(1)
                m.d.sync += [shreg.eq(core.cycles), nbytes.eq(protocol.CYCLE_BYTES),
                             last.eq(1)]
                m.next = "SEND"
            with m.State("IDENTIFY"):
                m.d.comb += [self.led_busy.eq(1), tx.i.valid.eq(1),
                             tx.i.payload.eq(identity[nbytes])]
                with m.If(tx.i.ready):
                    m.d.sync += nbytes.eq(nbytes + 1)
                    with m.If(nbytes == len(self._identity) - 1):
                        m.next = "IDLE"
        return m
