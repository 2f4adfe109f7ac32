"""The processing element interface every PE kind implements, and the registry of kinds."""

import importlib
import pkgutil

from amaranth.hdl import Module, Mux, ResetSignal, Shape, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..errors import ArgumentError, FormatError, check_int
from .layouts import PECtl, PEKind

__all__ = ["PE", "WidthsPE", "check_acc_modes", "pe_class", "pe_kinds"]

_KINDS = {}


def _kind_name(kind):
    return kind.value if isinstance(kind, PEKind) else kind


class PE(wiring.Component):
    """Abstract output-stationary processing element.

    The base class fixes the ports and the accumulate/pass-through behaviour so that the
    systolic array is built from any PE kind (fixed-point MAC, power-of-two shift,
    XNOR/popcount) without change. A subclass sets up whatever it needs, then calls
    ``super().__init__(product_stages=...)``; it provides the three shapes as attributes or
    properties and implements :meth:`product`.

    A PE kind is described in one place, its class: ``kind`` (a :class:`PEKind` or, for a
    kind defined outside this package, its name), :meth:`weight_shape` (what a weight
    memory field holds, so the weight memory word is :meth:`weight_word_layout`),
    ``pad_value`` (the neutral activation fed for padding and for rows past the last
    pixel) and :meth:`create` (the PE for the design's widths). Defining the class
    registers the kind (:func:`pe_class`); a module ``hwgen/rtl/pe_*.py`` is found without
    being imported anywhere.

    Behaviour at every clock edge, with ``p = product(a_i, w_i)`` registered
    ``product_stages`` times together with ``ctl_i`` (``p'`` and ``ctl'`` below)::

        a_o, w_o, ctl_o <= a_i, w_i, ctl_i
        if ctl'.valid:
            acc <= 0 if ctl'.last else acc + p'
            if ctl'.last:
                result <= acc + p'

    The accumulator is 0 at the start and after the domain's reset, and returns to 0 with
    each ``last`` step, so every tile starts from 0 with no control bit marking its first step:
    the return is the flip-flops' synchronous reset, shared with the domain's, which costs
    no LUT, where selecting 0 at a tile's first step cost one LUT per accumulator bit (on
    ECP5 18 of a fixed8 PE's 40 LUT4-eq, on the multiplier-to-accumulator path).

    When the control is not valid only the pass-through registers change. The accumulator
    is ``acc_shape`` wide and wraps; the compiler sizes it so that it never overflows,
    unless a layer asks for a narrow accumulator: then ``acc_modes`` lists the bounds the
    PE can apply, ``(width, overflow)`` each, and the ``acc_mode`` port (present with two
    modes or more; the layer descriptor's ``acc_mode``) selects one. The mode bounds every
    sum ``acc + p'`` before it is stored (in ``acc`` and ``result``), as
    :func:`hwgen.golden.network.narrow_dot` specifies: ``"wrap"`` keeps the low ``width``
    bits (sign-extended; free at the full width), ``"saturate"`` clamps the exact sum (one
    bit wider than ``acc_shape``) to ``width`` signed bits: a test that the bits from
    ``width − 1`` up are all equal and a multiplexer, in the same cycle (the latency does
    not change).

    Parameters
    ----------
    product_stages : int
        Pipeline registers between the product and the accumulator (0 or more).
    acc_modes : tuple of (int, str), optional
        The accumulator's bounds ``(width, "wrap" | "saturate")``, ``2 <= width <=
        acc_shape.width``; default ``((acc_shape.width, "wrap"),)``.

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
    acc_mode : In(range(len(acc_modes)))
        Index of the accumulator bound in ``acc_modes`` (only with two modes or more).
    """

    kind = None
    pad_value = 0
    a_shape = None
    w_shape = None
    acc_shape = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is not None:
            name = _kind_name(PEKind.from_name(kind))
            old = _KINDS.get(name)
            if old is not None and (old.__module__, old.__qualname__) != (
                    cls.__module__, cls.__qualname__):
                raise ArgumentError(f"PE kind {name!r} is already defined by {old.__qualname__}")
            _KINDS[name] = cls

    def __init__(self, *, product_stages=0, acc_modes=None):
        if type(self).product is PE.product:
            raise TypeError(f"{type(self).__name__} must implement PE.product()")
        self._product_stages = check_int(product_stages, "PE product stages", minimum=0)
        self._acc_modes = check_acc_modes(acc_modes, Shape.cast(self.acc_shape).width)
        ports = {
            "a_i": In(self.a_shape),
            "w_i": In(self.w_shape),
            "ctl_i": In(PECtl),
            "a_o": Out(self.a_shape),
            "w_o": Out(self.w_shape),
            "ctl_o": Out(PECtl),
            "result": Out(self.acc_shape),
        }
        if len(self._acc_modes) > 1:
            ports["acc_mode"] = In(range(len(self._acc_modes)))
        super().__init__(ports)

    @classmethod
    def create(cls, *, a_width, w_width, acc_width, product_stages=0, acc_modes=None):
        """The PE of this kind for a design's activation, weight and accumulator widths."""
        return cls(a_width, w_width, acc_width, product_stages=product_stages,
                   acc_modes=acc_modes)

    @property
    def acc_modes(self):
        """The accumulator's bounds, ``((width, overflow), ...)``."""
        return self._acc_modes

    @classmethod
    def weight_shape(cls, w_width):
        """Shape of one weight field of the weight memory (and of ``w_i``)."""
        raise NotImplementedError(f"{cls.__name__} must implement PE.weight_shape()")

    @classmethod
    def weight_word_layout(cls, w_width, cols):
        """Layout of a weight memory word: ``cols`` weight fields (:mod:`hwgen.contract`)."""
        return data.ArrayLayout(cls.weight_shape(w_width), cols)

    @property
    def product_stages(self):
        return self._product_stages

    def feed(self, m, word, real, tail, tail_bits):
        """The activation the engine gives this kind's PEs for an activation buffer
        ``word``: by default its low ``a_shape`` bits where ``real`` (a real element, not
        padding or a row past the last pixel) and ``pad_value`` elsewhere. ``tail`` (the
        step reads an XNOR layer's last channel group) and ``tail_bits`` (its real
        channels) serve kinds that read packed words."""
        shape = Shape.cast(self.a_shape)
        value = word[:shape.width]
        return Mux(real, value.as_signed() if shape.signed else value, self.pad_value)

    @property
    def latency(self):
        """Cycles from the ``last`` step at the inputs to the sum at ``result``:
        :func:`hwgen.timing.pe_latency` = ``1 + product_stages``."""
        return timing.pe_latency(self._product_stages)

    def product(self, m, a, w):
        """Return the product term of activation ``a`` and weight ``w``.

        Parameters
        ----------
        m : Module
            The PE's module, for a subclass that needs intermediate signals (combinational:
            the base class adds the pipeline registers).
        a : Value
            ``a_i``, of ``a_shape``.
        w : Value
            ``w_i``, of ``w_shape``.

        Returns
        -------
        Value or (Value, Value)
            The term added to the accumulator, truncated (wrapped) to ``acc_shape``; or a
            pair ``(term, carry)`` whose one-bit ``carry`` is added too, as the carry-in of
            the accumulator's adder (a conditional negation ``(x ^ s) + s`` then costs no
            adder of its own).
        """
        raise NotImplementedError  # pragma: no cover

    def pipelined_product(self, m, a, w):
        """The product term ``product_stages`` cycles after ``a`` and ``w``.

        By default :meth:`product` is formed in one cycle and then registered
        ``product_stages`` times; a kind whose product is deep (an adder tree) overrides
        this to spread the same number of registers through it. Either way the control is
        delayed by ``product_stages`` registers, so the latency stays
        :func:`hwgen.timing.pe_latency` of it.
        """
        product = self.product(m, a, w)
        value, carry = product if isinstance(product, tuple) else (product, None)
        term = Signal(self.acc_shape)
        m.d.comb += term.eq(value)
        if carry is not None:
            term_carry = Signal()
            m.d.comb += term_carry.eq(carry)
        for n in range(self._product_stages):
            stage_term = Signal(self.acc_shape, name=f"product_{n}")
            m.d.sync += stage_term.eq(term)
            term = stage_term
            if carry is not None:
                stage_carry = Signal(name=f"product_carry_{n}")
                m.d.sync += stage_carry.eq(term_carry)
                term_carry = stage_carry
        return term if carry is None else (term, term_carry)

    def elaborate(self, platform):
        m = Module()

        m.d.sync += [
            self.a_o.eq(self.a_i),
            self.w_o.eq(self.w_i),
            self.ctl_o.eq(self.ctl_i),
        ]

        term = self.pipelined_product(m, self.a_i, self.w_i)
        term, carry = term if isinstance(term, tuple) else (term, None)
        ctl = self.ctl_i
        for n in range(self._product_stages):
            stage_ctl = Signal(PECtl, name=f"ctl_{n}")
            m.d.sync += stage_ctl.eq(ctl)
            ctl = stage_ctl

        # The accumulator's only reset is its return to 0 (the domain's reset or a last
        # step), one synchronous reset of its flip-flops, with no LUT in front of them.
        acc = Signal(self.acc_shape, reset_less=True)
        width = Shape.cast(self.acc_shape).width
        # A saturating bound needs the exact sum: one bit more than the accumulator.
        saturating = any(mode == "saturate" for _, mode in self._acc_modes)
        exact = Signal(signed(width + 1)) if saturating else Signal(self.acc_shape)
        # One adder serves both the accumulator and the result.
        if carry is None:
            m.d.comb += exact.eq(acc + term)
        else:
            # The carry-in joins the accumulator's adder (one carry chain, no second adder).
            m.d.comb += exact.eq(acc + term + carry)
        bounded = [_bound(m, exact, w, mode, n) for n, (w, mode) in enumerate(self._acc_modes)]
        total = Signal(self.acc_shape)
        if len(bounded) == 1:
            m.d.comb += total.eq(bounded[0])
        else:
            with m.Switch(self.acc_mode):
                for n, value in enumerate(bounded):
                    with m.Case(n):
                        m.d.comb += total.eq(value)

        with m.If(ctl.valid):
            m.d.sync += acc.eq(total)
            with m.If(ctl.last):
                m.d.sync += self.result.eq(total)
        with m.If(ResetSignal() | (ctl.valid & ctl.last)):
            m.d.sync += acc.eq(0)

        return m


def check_acc_modes(acc_modes, acc_width):
    """``acc_modes`` as a tuple of ``(width, overflow)`` pairs (default ``((acc_width,
    "wrap"),)``), each width in ``[2, acc_width]`` and overflow ``"wrap"`` or
    ``"saturate"``; else :class:`~hwgen.errors.FormatError`."""
    if acc_modes is None:
        return ((acc_width, "wrap"),)
    modes = tuple(tuple(mode) for mode in acc_modes) \
        if isinstance(acc_modes, (tuple, list)) else None
    if not modes or any(len(mode) != 2 for mode in modes):
        raise FormatError(f"PE accumulator modes must be a non-empty sequence of "
                          f"(width, overflow) pairs, not {acc_modes!r}")
    for w, mode in modes:
        check_int(w, "PE accumulator mode width", minimum=2)
        if w > acc_width:
            raise FormatError(f"PE accumulator mode width must be at most the accumulator "
                              f"width {acc_width!r}, not {w!r}")
        if mode not in ("wrap", "saturate"):
            raise FormatError(f"PE accumulator mode overflow must be 'wrap' or 'saturate', "
                              f"not {mode!r}")
    return modes


def _bound(m, exact, width, mode, n):
    """``exact`` (a signed sum) bounded to ``width`` signed bits by ``mode``."""
    low = exact[:width].as_signed()
    if mode == "wrap":
        return low
    # The sum fits when every bit from width − 1 up is a copy of the sign.
    top = exact[width - 1:]
    fits = Signal(name=f"acc_fits_{n}")
    m.d.comb += fits.eq((top == 0) | (top == (1 << len(top)) - 1))
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return Mux(fits, low, Mux(exact[-1], lo, hi))


class WidthsPE(PE):
    """A PE of a signed activation of ``a_width`` bits, a weight field of ``w_width`` bits
    (laid out by the subclass's :meth:`weight_shape`) and a signed accumulator of
    ``acc_width`` bits: the widths and shapes that the fixed-point and shift PEs share. A
    subclass checks its widths, then calls ``super().__init__(a_width, w_width, acc_width,
    product_stages=...)``."""

    def __init__(self, a_width, w_width, acc_width, *, product_stages=0, acc_modes=None):
        self._a_width, self._w_width, self._acc_width = a_width, w_width, acc_width
        super().__init__(product_stages=product_stages, acc_modes=acc_modes)

    @property
    def a_width(self):
        return self._a_width

    @property
    def w_width(self):
        return self._w_width

    @property
    def acc_width(self):
        return self._acc_width

    @property
    def a_shape(self):
        return signed(self._a_width)

    @property
    def w_shape(self):
        return self.weight_shape(self._w_width)

    @property
    def acc_shape(self):
        return signed(self._acc_width)


def _discover():
    """Import every ``pe_*`` module of this package, so that their kinds register."""
    for info in pkgutil.iter_modules(_package_path()):
        if info.name.startswith("pe_"):
            importlib.import_module(f"{__package__}.{info.name}")


def _package_path():
    return importlib.import_module(__package__).__path__


def pe_kinds():
    """Names of the registered PE kinds (after importing every ``hwgen/rtl/pe_*.py``)."""
    _discover()
    return tuple(sorted(_KINDS))


def pe_class(kind):
    """The PE class of ``kind`` (a :class:`PEKind` or a kind's name); raises
    :class:`~hwgen.errors.ArgumentError` for a kind no PE class defines."""
    name = _kind_name(PEKind.from_name(kind))
    if name not in _KINDS:
        _discover()
    if name not in _KINDS:
        kinds = ", ".join(repr(k) for k in sorted(_KINDS))
        raise ArgumentError(f"PE kind must be one of {kinds}, not {name!r}")
    return _KINDS[name]
