"""The XNOR/popcount processing element: P binary multiply-accumulates per cycle."""

from collections import Counter

from amaranth.hdl import C, Cat, Mux, Signal, signed, unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

from ..errors import FormatError, check_positive
from .layouts import PEKind
from .pe import PE

__all__ = ["PEXnor"]


class PEXnor(PE):
    """XNOR/popcount PE: ``P`` binary products per step, summed by a pipelined adder tree.

    The activation field ``a_i`` (what an engine feeds, one word per row and step) is
    ``StructLayout({"bits": unsigned(P), "mask": unsigned(P), "count": ...})``: ``bits[i]``
    is the binary activation of position ``i`` of the step (1 ↔ +1, 0 ↔ −1), ``mask[i]``
    says the position is real and ``count = popcount(mask)`` (the same for every PE of a
    row, so the engine counts it once per row instead of every PE counting it). A masked position contributes 0, which is both the golden model's
    zero padding (a padded pixel) and the tail of a reduction whose length ``K`` is not a
    multiple of ``P`` (the last word's mask). The weight field ``w_i`` is ``unsigned(P)``,
    1 ↔ +1 (:func:`hwgen.compiler.pack.pack_xnor` writes it). The product term is::

        2·popcount(~(bits ^ w) & mask) − popcount(mask)

    (with ``popcount(mask)`` taken from ``count``): the dot product of the step's valid ±1
    positions, in ``[−P, P]``. The popcount is a carry-save tree of full adders and a
    final adder (:attr:`tree_levels` levels); the ``product_stages`` pipeline registers
    are spread evenly through it (then the latency is still
    :func:`hwgen.timing.pe_latency` ``(product_stages)``, as for every PE). The golden
    model is :func:`hwgen.golden.blocks.pe_xnor`.

    Parameters
    ----------
    p : int
        Binary positions per step (8, 16, 32, 64, or any positive integer).
    acc_width : int
        Accumulator width, at least ``ceil_log2(P + 1) + 1`` (one term).
    product_stages : int
        Pipeline registers in the popcount tree.

    Attributes
    ----------
    kind : PEKind
        ``PEKind.XNOR``; ``pad_value`` is all bits and mask 0 (a padded word counts 0).
    """

    kind = PEKind.XNOR
    pad_value = 0

    def __init__(self, p, acc_width, *, product_stages=0, acc_modes=None):
        self._p = check_positive(p, "XNOR PE width")
        check_positive(acc_width, "Accumulator width")
        need = ceil_log2(p + 1) + 1
        if acc_width < need:
            raise FormatError(f"Accumulator width must be at least {need!r} for {p!r} binary "
                              f"products, not {acc_width!r}")
        self._acc_width = acc_width
        super().__init__(product_stages=product_stages, acc_modes=acc_modes)

    @classmethod
    def create(cls, *, a_width, w_width, acc_width, product_stages=0, acc_modes=None):
        """The PE for a design whose stored weight word per column is ``w_width = P`` bits
        (``a_width``, the activation field's size ``2·P``, follows from it)."""
        return cls(w_width, acc_width, product_stages=product_stages, acc_modes=acc_modes)

    @classmethod
    def weight_shape(cls, w_width):
        """``unsigned(P)``: one bit per position, 1 ↔ +1."""
        return unsigned(check_positive(w_width, "XNOR PE width"))

    @classmethod
    def activation_layout(cls, p):
        """``StructLayout({"bits": unsigned(p), "mask": unsigned(p), "count":
        unsigned(ceil_log2(p + 1))})``; ``count`` must be ``popcount(mask)``."""
        return data.StructLayout({"bits": unsigned(p), "mask": unsigned(p),
                                  "count": unsigned(ceil_log2(p + 1))})

    @property
    def p(self):
        return self._p

    @property
    def acc_width(self):
        return self._acc_width

    @property
    def a_shape(self):
        return self.activation_layout(self._p)

    @property
    def w_shape(self):
        return self.weight_shape(self._p)

    @property
    def acc_shape(self):
        return signed(self._acc_width)

    def feed(self, m, word, real, tail, tail_bits):
        """The activation field for a packed buffer ``word``: its low ``P`` bits; every
        position real, or in the last channel group (``tail``) the first ``tail_bits``;
        none where not ``real`` (padding)."""
        p = self._p
        a = Signal(self.a_shape, name="feed")
        tail_mask = Cat(*(tail_bits > i for i in range(p)))
        m.d.comb += [a.bits.eq(word[:p]),
                     a.mask.eq(Mux(real, Mux(tail, tail_mask, (1 << p) - 1), 0)),
                     a.count.eq(Mux(real, Mux(tail, tail_bits, p), 0))]
        return a

    @property
    def tree_levels(self):
        """Levels of the popcount: the full-adder (3:2) reduction levels that bring every
        bit weight down to two bits, plus the final carry-propagate adder."""
        return _reduction_levels(self._p) + 1

    def product(self, m, a, w):
        """The term without pipeline registers (:meth:`pipelined_product` with 0 stages)."""
        return self._tree(m, a, w, Counter())

    def pipelined_product(self, m, a, w):
        """The term after ``product_stages`` registers: one after level
        ``(i + 1)·(L + 1) // (S + 1)`` for ``i < S`` (level 0: the XNOR/mask bits, level
        ``L = tree_levels``: the count), so the registers split the popcount evenly."""
        levels, stages = self.tree_levels, self.product_stages
        cuts = Counter(((i + 1) * (levels + 1)) // (stages + 1) for i in range(stages))
        return self._tree(m, a, w, cuts)

    def _tree(self, m, a, w, cuts):
        # The popcount is a carry-save tree of full adders written as logic (which the LUT
        # mapper packs freely), then one carry-propagate adder; the mask's count is the
        # same for every PE of a row and travels in the activation field.
        p = self._p
        hits = Signal(p, name="hits")
        m.d.comb += hits.eq(~(a.bits ^ w) & a.mask)
        columns = [[hits[i] for i in range(p)]]
        count_in = a.count
        levels = self.tree_levels
        for level in range(levels + 1):
            if 0 < level < levels:
                columns = _compress(m, columns, f"fa_l{level}")
            elif level == levels:
                rows = [Cat(*(col[n] if n < len(col) else C(0, 1) for col in columns))
                        for n in range(2)]
                columns = [[rows[0] + rows[1]]]
            for n in range(cuts[level]):
                columns = [_register(m, col, f"pop_l{level}_r{n}_w{k}")
                           for k, col in enumerate(columns)]
                count_in = _register(m, [count_in], f"count_l{level}_r{n}")[0]
        (count,), = columns
        term = Signal(self.acc_shape, name="xnor_term")
        m.d.comb += term.eq((count << 1) - count_in)
        return term


def _reduction_levels(p):
    """Full-adder levels that reduce ``p`` bits of one weight to at most two per weight."""
    heights, levels = [p], 0
    while max(heights) > 2:
        new = [0] * (len(heights) + 1)
        for k, h in enumerate(heights):
            new[k] += h // 3 + h % 3
            new[k + 1] += h // 3
        heights = new[:-1] if new[-1] == 0 else new
        levels += 1
    return levels


def _compress(m, columns, name):
    """One level of 3:2 compression: every three bits of a weight become a sum bit of that
    weight and a carry of the next; the one or two left over pass through."""
    out = [[] for _ in range(len(columns) + 1)]
    for k, col in enumerate(columns):
        full = len(col) // 3
        for j in range(full):
            x, y, z = col[3 * j:3 * j + 3]
            s = Signal(name=f"{name}_w{k}_s{j}")
            c = Signal(name=f"{name}_w{k}_c{j}")
            m.d.comb += [s.eq(x ^ y ^ z), c.eq((x & y) | (x & z) | (y & z))]
            out[k].append(s)
            out[k + 1].append(c)
        out[k].extend(col[3 * full:])
    return out if out[-1] else out[:-1]


def _register(m, values, name):
    regs = []
    for k, value in enumerate(values):
        reg = Signal(value.shape(), name=f"{name}_{k}")
        m.d.sync += reg.eq(value)
        regs.append(reg)
    return regs
