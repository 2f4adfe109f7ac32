"""The output-stationary systolic array."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..errors import ShapeError, check_positive
from .layouts import PECtl
from .pe import PE

__all__ = ["SystolicArray"]


class SystolicArray(wiring.Component):
    """A ``rows × cols`` output-stationary systolic array of processing elements.

    PE ``(r, c)`` accumulates the dot product of row ``r``'s activation stream with column
    ``c``'s weight stream: for a tile ``A`` (``rows × K``) and ``W`` (``K × cols``) fed one
    step ``k`` per cycle, ``result[r][c]`` becomes ``(A @ W)[r, c]``
    (:func:`hwgen.golden.blocks.systolic_array`). Activations and their control move right
    one PE per cycle, weights move down one PE per cycle.

    Why output-stationary: the partial sums never move, so the accumulator width never
    crosses a PE boundary (only the narrow operands travel); each PE finishes a whole dot
    product, so any reduction length ``K`` is a single pass with no partial-sum memory; and
    the finished sums are drained from the PEs' result registers in place while the next
    tile already accumulates.

    The array skews its inputs itself: row ``r``'s activation and control pass ``r`` delay
    registers before PE ``(r, 0)`` and column ``c``'s weight passes ``c`` delay registers
    before PE ``(0, c)``. A step presented at the ports in cycle ``t`` is therefore processed
    by PE ``(r, c)`` in cycle ``t + r + c``, and the sum of a tile whose ``last`` step is
    presented in cycle ``T`` is visible at ``result[r][c]`` from cycle
    ``T + skew(r, c) + pe.latency = T + r + c + pe.latency`` on, held until the next tile's sum
    replaces it. Tiles may follow each other with no gap (the next tile's first step in the
    cycle after the ``last`` one).

    Parameters
    ----------
    rows : int
        Number of PE rows (activation streams), positive.
    cols : int
        Number of PE columns (weight streams), positive.
    pe_factory : callable
        Called once per PE with no arguments; returns a new :class:`~hwgen.rtl.pe.PE`
        (for example ``lambda: PEMac(8, 8, 24)``). Every PE must have the same shapes.
    banks : bool
        Rows ``1 … rows − 1`` may take their own weights (``w_rows``) instead of the
        weights from the row above, while ``split`` is high: a fully connected layer whose
        rows are slices of the reduction.

    Members
    -------
    a : In(ArrayLayout(a_shape, rows))
        Step ``k``'s activation for every row, unskewed (all rows in the same cycle).
    w : In(ArrayLayout(w_shape, cols))
        Step ``k``'s weight for every column, unskewed.
    ctl : In(PECtl)
        Step ``k``'s control, one for the whole array.
    result : Out(ArrayLayout(ArrayLayout(acc_shape, cols), rows))
        ``result[r][c]`` is PE ``(r, c)``'s result register.
    acc_mode : In(range(len(pe.acc_modes)))
        Every PE's accumulator bound (only when the PEs have the port; constant while a
        layer runs).
    w_rows : In(ArrayLayout(ArrayLayout(w_shape, cols), rows − 1))
        With ``banks``: row ``r``'s own weights (entry ``r − 1``), presented ``r`` cycles
        after the step's activations at ``a`` (as row ``r``'s activation reaches the
        row); each column's weight is skewed like ``w``.
    split : In(1)
        With ``banks``: rows ``1 …`` take ``w_rows`` (constant while a layer runs).

    Attributes
    ----------
    latency : int
        ``rows + cols − 2 + pe.latency``: cycles from a tile's ``last`` step to its last
        sum (PE ``(rows−1, cols−1)``), :func:`hwgen.timing.array_latency`.
    """

    def __init__(self, rows, cols, pe_factory, *, banks=False):
        self._rows = check_positive(rows, "Array rows", ShapeError)
        self._cols = check_positive(cols, "Array columns", ShapeError)
        if not callable(pe_factory):
            raise TypeError(f"PE factory must be callable, not {pe_factory!r}")
        # PEs are created here, not in elaborate(), so that their shapes are known to size
        # the ports and so that every elaboration sees the same PE objects.
        self._pes = [[self._make_pe(pe_factory, r, c) for c in range(cols)]
                     for r in range(rows)]
        pe0 = self._pes[0][0]
        self._a_shape, self._w_shape, self._acc_shape = pe0.a_shape, pe0.w_shape, pe0.acc_shape
        self._pe_latency = pe0.latency
        for r, row in enumerate(self._pes):
            for c, pe in enumerate(row):
                if (pe.signature != pe0.signature) or pe.latency != pe0.latency:
                    raise ShapeError(f"PE factory must return PEs of one signature and latency, "
                                     f"but PE ({r}, {c}) is {pe!r}")
        ports = {
            "a": In(data.ArrayLayout(self._a_shape, rows)),
            "w": In(data.ArrayLayout(self._w_shape, cols)),
            "ctl": In(PECtl),
            "result": Out(data.ArrayLayout(data.ArrayLayout(self._acc_shape, cols), rows)),
        }
        if "acc_mode" in pe0.signature.members:
            ports["acc_mode"] = In(pe0.signature.members["acc_mode"].shape)
        self._banks = bool(banks) and rows > 1
        if self._banks:
            ports["w_rows"] = In(data.ArrayLayout(data.ArrayLayout(self._w_shape, cols),
                                                  rows - 1))
            ports["split"] = In(1)
        super().__init__(ports)

    @staticmethod
    def _make_pe(pe_factory, r, c):
        pe = pe_factory()
        if not isinstance(pe, PE):
            raise TypeError(f"PE factory must return a PE, not {pe!r}")
        return pe

    @property
    def rows(self):
        return self._rows

    @property
    def cols(self):
        return self._cols

    @property
    def a_shape(self):
        return self._a_shape

    @property
    def w_shape(self):
        return self._w_shape

    @property
    def acc_shape(self):
        return self._acc_shape

    @property
    def pe_latency(self):
        """Latency of one PE (:attr:`hwgen.rtl.pe.PE.latency`)."""
        return self._pe_latency

    @property
    def latency(self):
        """Cycles from a tile's ``last`` step at the ports to its last sum, at
        ``result[rows−1][cols−1]``: :func:`hwgen.timing.array_latency` ``(rows − 1, cols − 1,
        pe.latency)`` = ``rows + cols − 2 + pe.latency``."""
        return timing.array_latency(self._rows - 1, self._cols - 1, self._pe_latency)

    def pe(self, r, c):
        """PE ``(r, c)``."""
        self.skew(r, c)
        return self._pes[r][c]

    def skew(self, r, c):
        """Cycles PE ``(r, c)`` lags PE ``(0, 0)``: ``r + c`` (its sum is at ``result[r][c]``
        ``skew(r, c) + pe.latency`` cycles after the ``last`` step)."""
        if not (isinstance(r, int) and 0 <= r < self._rows):
            raise ShapeError(f"Row must be in range({self._rows}), not {r!r}")
        if not (isinstance(c, int) and 0 <= c < self._cols):
            raise ShapeError(f"Column must be in range({self._cols}), not {c!r}")
        return timing.array_latency(r, c, 0)

    def elaborate(self, platform):
        m = Module()

        for r in range(self._rows):
            for c in range(self._cols):
                m.submodules[f"pe_{r}_{c}"] = self._pes[r][c]

        # Control is common to all rows, so one delay chain with a tap per row suffices.
        ctl_skew = [self.ctl]
        for k in range(1, self._rows):
            stage = Signal(PECtl, name=f"ctl_skew_{k}")
            m.d.sync += stage.eq(ctl_skew[-1])
            ctl_skew.append(stage)

        for r in range(self._rows):
            a = self.a[r]
            for k in range(1, r + 1):
                stage = Signal(self._a_shape, name=f"a_skew_{r}_{k}")
                m.d.sync += stage.eq(a)
                a = stage
            pe = self._pes[r][0]
            m.d.comb += [pe.a_i.eq(a), pe.ctl_i.eq(ctl_skew[r])]

        for c in range(self._cols):
            w = self.w[c]
            for k in range(1, c + 1):
                stage = Signal(self._w_shape, name=f"w_skew_{c}_{k}")
                m.d.sync += stage.eq(w)
                w = stage
            m.d.comb += self._pes[0][c].w_i.eq(w)

        for r in range(self._rows):
            for c in range(self._cols):
                pe = self._pes[r][c]
                if c + 1 < self._cols:
                    right = self._pes[r][c + 1]
                    m.d.comb += [right.a_i.eq(pe.a_o), right.ctl_i.eq(pe.ctl_o)]
                if r + 1 < self._rows and not self._banks:
                    m.d.comb += self._pes[r + 1][c].w_i.eq(pe.w_o)
                m.d.comb += self.result[r][c].eq(pe.result)
                if "acc_mode" in self.signature.members:
                    m.d.comb += pe.acc_mode.eq(self.acc_mode)

        if self._banks:
            # split layers: row r's own weights, skewed one register per column like w
            for r in range(1, self._rows):
                for c in range(self._cols):
                    w = self.w_rows[r - 1][c]
                    for k in range(1, c + 1):
                        stage = Signal(self._w_shape, name=f"w_row_skew_{r}_{c}_{k}")
                        m.d.sync += stage.eq(w)
                        w = stage
                    m.d.comb += self._pes[r][c].w_i.eq(
                        Mux(self.split, w, self._pes[r - 1][c].w_o))
        return m
