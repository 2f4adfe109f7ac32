"""The processing element interface every PE kind implements."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import PECtl

__all__ = ["PE"]


class PE(wiring.Component):
    """Abstract output-stationary processing element.

    The base class fixes the ports and the accumulate/pass-through behaviour so that the
    systolic array is built from any PE kind (fixed-point MAC, power-of-two shift,
    XNOR/popcount) without change. A subclass sets up whatever it needs, then calls
    ``super().__init__()``; it provides the three shapes as attributes or properties and
    implements :meth:`product`.

    Behaviour at every clock edge, with ``p = product(a_i, w_i)``::

        a_o, w_o, ctl_o <= a_i, w_i, ctl_i
        if ctl_i.valid:
            acc <= (0 if ctl_i.first else acc) + p
            if ctl_i.last:
                result <= (0 if ctl_i.first else acc) + p

    When ``ctl_i.valid`` is 0 only the pass-through registers change. The accumulator is
    ``acc_shape`` wide and wraps; the compiler sizes it so that it never overflows.

    Members
    -------
    a_i : In(a_shape)
        Activation of this step, from the left neighbour.
    w_i : In(w_shape)
        Weight of this step, from the upper neighbour.
    ctl_i : In(PECtl)
        Control of this step, travelling with the activation.
    a_o : Out(a_shape)
        ``a_i`` delayed by one cycle, to the right neighbour.
    w_o : Out(w_shape)
        ``w_i`` delayed by one cycle, to the lower neighbour.
    ctl_o : Out(PECtl)
        ``ctl_i`` delayed by one cycle, to the right neighbour.
    result : Out(acc_shape)
        The dot product finished by the most recent ``last`` step; held until the next one.

    Attributes
    ----------
    a_shape, w_shape, acc_shape : shape-like
        Shapes of the activation, weight and accumulator (defined by the subclass).
    latency : int
        Cycles from the ``last`` step at the PE's inputs to its sum at ``result``: 1.
    """

    a_shape = None
    w_shape = None
    acc_shape = None

    def __init__(self):
        if type(self).product is PE.product:
            raise TypeError(f"{type(self).__name__} must implement PE.product()")
        super().__init__({
            "a_i": In(self.a_shape),
            "w_i": In(self.w_shape),
            "ctl_i": In(PECtl),
            "a_o": Out(self.a_shape),
            "w_o": Out(self.w_shape),
            "ctl_o": Out(PECtl),
            "result": Out(self.acc_shape),
        })

    @property
    def latency(self):
        """Cycles from the ``last`` step at the inputs to the sum at ``result``: 1."""
        return 1

    def product(self, m, a, w):
        """Return the product term of activation ``a`` and weight ``w``.

        Parameters
        ----------
        m : Module
            The PE's module, for a subclass that needs intermediate signals (combinational
            only: the product is added in the same cycle).
        a : Value
            ``a_i``, of ``a_shape``.
        w : Value
            ``w_i``, of ``w_shape``.

        Returns
        -------
        Value
            The term added to the accumulator; truncated (wrapped) to ``acc_shape``.
        """
        raise NotImplementedError  # pragma: no cover

    def elaborate(self, platform):
        m = Module()

        m.d.sync += [
            self.a_o.eq(self.a_i),
            self.w_o.eq(self.w_i),
            self.ctl_o.eq(self.ctl_i),
        ]

        acc = Signal(self.acc_shape)
        term = Signal(self.acc_shape)
        m.d.comb += term.eq(self.product(m, self.a_i, self.w_i))
        # One adder serves both the accumulator and the result: selecting 0 for the first
        # step restarts the dot product without a separate clear cycle.
        total = Signal(self.acc_shape)
        with m.If(self.ctl_i.first):
            m.d.comb += total.eq(term)
        with m.Else():
            m.d.comb += total.eq(acc + term)

        with m.If(self.ctl_i.valid):
            m.d.sync += acc.eq(total)
            with m.If(self.ctl_i.last):
                m.d.sync += self.result.eq(total)

        return m
