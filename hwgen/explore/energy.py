"""A first-order energy estimate per inference from per-operation energies.

An **estimate**, from the 45 nm figures in M. Horowitz, "Computing's energy problem (and
what we can do about it)", ISSCC 2014: 8-bit add 0.03 pJ, 16-bit add 0.05, 32-bit add 0.1,
8-bit multiply 0.2, 32-bit multiply 3.1, 32-bit SRAM read (8 KB) 5 pJ, 32-bit DRAM read
640 pJ (16/32-bit float add 0.4/0.9, multiply 1.1/3.7 — not used: hwgen's arithmetic is
integer). Other widths are scaled: an adder's energy grows linearly with its width
(interpolating 8, 16 and 32 bits, extrapolating the 16–32 slope), a multiplier's with the
product of its operand widths (0.2 pJ × w₁·w₂ / 64, which gives 3.2 pJ at 32×32 against
the table's 3.1), SRAM reads with the bits read (5 pJ / 32 bits).

Multiplier-free PEs are far cheaper, and the estimate says so: a power-of-two weight turns
the multiply into a shift, counted as one adder of the product's width (a barrel shifter
is a few levels of multiplexers, about what a ripple adder of that width costs); an
XNOR/popcount binary MAC is counted as one one-bit add (an XNOR gate plus its share of the
popcount tree), 1/8 of an 8-bit add. A code-book engine reads its indices from the weight
memory and multiplies the looked-up weights; each lookup (a small ROM in logic, a tree of
multiplexers) is counted as one adder of the entry's width.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ADD_PJ", "MUL8_PJ", "SRAM_PJ_PER_BIT", "EnergyEstimate", "activation_bytes",
           "activation_words", "add_pj", "mac_pj", "mul_pj", "network_energy"]

#: Adder energy (pJ) by width, Horowitz 2014.
ADD_PJ = {8: 0.03, 16: 0.05, 32: 0.1}
#: An 8-bit × 8-bit multiply (pJ).
MUL8_PJ = 0.2
#: A 32-bit read of an 8 KB SRAM is 5 pJ.
SRAM_PJ_PER_BIT = 5.0 / 32


def add_pj(width):
    """Energy of one ``width``-bit addition (pJ), piecewise linear through the table."""
    if width <= 8:
        return ADD_PJ[8] * width / 8
    if width <= 16:
        return ADD_PJ[8] + (ADD_PJ[16] - ADD_PJ[8]) * (width - 8) / 8
    return ADD_PJ[16] + (ADD_PJ[32] - ADD_PJ[16]) * (width - 16) / 16


def mul_pj(a_width, w_width):
    """Energy of one ``a_width × w_width`` multiply (pJ): quadratic in the widths."""
    return MUL8_PJ * a_width * w_width / 64


def mac_pj(kind, a_width, w_width, acc_width):
    """Energy of one multiply-accumulate of PE kind ``kind`` (``"fixed"``, ``"shift"``,
    ``"xnor"``; ``"codebook"`` is ``"fixed"``'s; pJ)."""
    if kind == "xnor":
        return add_pj(1)
    if kind == "shift":
        return add_pj(a_width + w_width) + add_pj(acc_width)
    return mul_pj(a_width, w_width) + add_pj(acc_width)


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy of one inference in pJ, by where it goes."""

    compute_pj: float
    weight_read_pj: float
    activation_pj: float

    @property
    def total_pj(self):
        return self.compute_pj + self.weight_read_pj + self.activation_pj

    def to_json(self):
        return {"compute_pj": self.compute_pj, "weight_read_pj": self.weight_read_pj,
                "activation_pj": self.activation_pj, "total_pj": self.total_pj}


def network_energy(design, kind=None):
    """:class:`EnergyEstimate` of one inference of a compiled design: every MAC of every
    layer at the design's widths, every weight memory word read (once per step of every
    tile; a split layer's step reads a word from each of the ``rows`` weight banks, the
    weight memory being bank 0), every activation read by every array row and every output
    written. A batched design's start is shared by its ``batch`` images (a Linear layer
    reads each weight word once for all of them)."""
    cfg = design.config
    engines = {engine.kind: engine for engine in design.engines}
    compute = weights = activations = 0.0
    for layer in design.layers:
        engine = engines[layer.pe_kind]
        # a code-book engine multiplies the looked-up weights (value_width bits)
        w_width = engine.value_width or engine.weight_width
        compute += layer.macs * mac_pj(kind or layer.pe_kind, design.act_width, w_width,
                                       engine.acc_width)
        steps = layer.tiles * layer.desc.k_len
        # a split layer's step reads the same address in every bank (one per array row)
        words = steps * (cfg.rows if layer.desc.split else 1)
        weights += words * cfg.cols * engine.weight_width * SRAM_PJ_PER_BIT
        if engine.tables:
            weights += steps * cfg.cols * add_pj(engine.value_width)
        activations += activation_words(design, layer) * design.word_width * SRAM_PJ_PER_BIT
    batch = design.batch
    return EnergyEstimate(compute / batch, weights / batch, activations / batch)


def activation_words(design, layer):
    """Activation buffer words one layer program entry of a compiled design moves per start:
    every reduction step of every tile reads one word per array row, and every output
    value is written once (a batched Linear entry's for every image of the batch)."""
    outputs = design.batch if layer.kind == "linear" else 1
    for n in layer.out_shape:
        outputs *= n
    return layer.tiles * layer.desc.k_len * design.config.rows + outputs


def activation_bytes(design):
    """Bytes of activation traffic per inference: :func:`activation_words` of every layer
    at the buffer's word width, over the batch, rounded up to a whole byte."""
    bits = sum(activation_words(design, layer) for layer in design.layers) * design.word_width
    return -(-bits // (8 * design.batch))
