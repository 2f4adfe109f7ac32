# amaranth: UnusedElaboratable=no
"""A PE kind added from outside hwgen/rtl: a test-only "negate-weight MAC" whose product is
``-(a·w)``, with a compiler packer that stores ``-w``. Nothing under hwgen/rtl or the top
knows about it, yet the accelerator built with it is bit-exact and on time."""

import numpy as np
import pytest
from amaranth.hdl import Fragment, signed

from hwgen import golden, ir
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.compiler.pack import pack_fields, pack_kinds, packs
from hwgen.errors import ArgumentError, DoesNotFitError
from hwgen.numerics import QFormat
from hwgen.rtl.engine import Engine
from hwgen.rtl.pe import pe_class, pe_kinds
from hwgen.rtl.pe_mac import PEMac

KIND = "neg_mac_test"


class PENegMac(PEMac):
    """MAC of the negated stored weight: the weight memory holds ``-w``."""

    kind = KIND

    @classmethod
    def weight_shape(cls, w_width):
        return signed(w_width)

    def product(self, m, a, w):
        return -(a * w)


@packs(KIND)
def pack_negated(block, weight_width):
    lo, hi = -(1 << (weight_width - 1)), (1 << (weight_width - 1)) - 1
    negated = -block
    if negated.min(initial=0) < lo or negated.max(initial=0) > hi:
        raise DoesNotFitError(f"Negated weights need more than {weight_width} bits")
    return [pack_fields(negated[:, k], weight_width) for k in range(block.shape[1])]


def test_registered_on_both_sides():
    assert KIND in pack_kinds()
    assert KIND in pe_kinds()
    assert pe_class(KIND) is PENegMac
    assert pe_class("fixed") is PEMac
    with pytest.raises(ArgumentError, match=r"^PE kind must be one of .*'fixed'.*, not "
                                            r"'analog'$"):
        pe_class("analog")
    with pytest.raises(ArgumentError, match=r"^PE kind 'neg_mac_test' is already defined by "
                                            r"PENegMac$"):
        type("Other", (PEMac,), {"kind": KIND})


def network(rng):
    """A convolution (padding, pooling) and a linear layer whose weights avoid the most
    negative value, so that their negation fits the same width."""
    f8, w6 = QFormat(8, 4), QFormat(6, 4)
    conv_w = rng.integers(-31, 32, size=(3, 2, 3, 3))
    conv = ir.Conv2d("conv", (2, 6, 5), conv_w, rng.integers(-99, 99, size=3), f8, [w6] * 3,
                     f8, relu=True, pool=2, padding=1)
    flat = ir.Flatten("flat", conv.out_shape, f8)
    fc = ir.Linear("fc", flat.out_shape, rng.integers(-31, 32, size=(4, flat.out_shape[0])),
                   rng.integers(-99, 99, size=4), f8, [w6] * 4, f8, rounding="floor")
    return ir.Graph("neg", (2, 6, 5), f8, [conv, flat, fc])


def test_engine_uses_the_kinds_layout():
    engine = Engine(2, 3, KIND, a_width=8, w_width=6, acc_width=20, weight_image=[0],
                    count_width=8)
    assert engine.pe_class is PENegMac
    assert engine.weight_word_layout.size == 3 * 6
    # memory read + two feed registers + skew of PE (1, 2) + PE latency
    assert engine.latency == 1 + 2 + (1 + 2) + 1
    Fragment.get(engine, None)      # it elaborates (and its PEs are then used)


def test_plugin_kind_bit_exact_and_on_time(run_top):
    rng = np.random.default_rng(5)
    graph = network(rng)
    config = AcceleratorConfig(rows=2, cols=3, pe_kind=KIND)
    design = compile_graph(graph, config)
    plain = compile_graph(graph, AcceleratorConfig(rows=2, cols=3))
    # The weight memory really holds the negated weights (else the test proves nothing).
    assert design.engines[0].weight_image != plain.engines[0].weight_image
    x = rng.integers(-128, 128, size=(1,) + graph.input_shape)
    outputs, cycles, layers = run_top(design, x.reshape(1, -1))
    np.testing.assert_array_equal(outputs, golden.run(graph, x).reshape(1, -1))
    np.testing.assert_array_equal(layers[0], [layer.cycles.total for layer in design.layers])
    assert cycles[0] == design.cycles == plain.cycles
