"""The compiler's narrow accumulators (hwgen/compiler/plan.py): the engine's accumulator is
the widest need, one bound per distinct narrow (width, overflow), exact layers share a
bound wide enough for their dot products, and the manifest keeps the bounds."""

import dataclasses

import numpy as np

from hwgen import ir
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.compiler.manifest import CompiledDesign
from hwgen.numerics import QFormat

Q8 = QFormat(8, 0)


def chain(*accs):
    """Linear layers 16 → 8 → 8 → 4 of 8-bit integers, every weight −128, with the given
    (acc_width, acc_overflow) or None each. On 8-bit activations their dot products reach
    16·128·128 = 2**18 (20 bits), then 8·128·128 = 2**17 (19 bits)."""
    sizes = [16, 8, 8, 4]
    layers = []
    for n, acc in enumerate(accs):
        w = np.full((sizes[n + 1], sizes[n]), -128)
        kw = {} if acc is None else {"acc_width": acc[0], "acc_overflow": acc[1]}
        layers.append(ir.Linear(f"fc{n}", (sizes[n],), w, None, Q8, [Q8] * sizes[n + 1], Q8,
                                **kw))
    return ir.Graph("g", (16,), Q8, layers)


def modes(design):
    (engine,) = design.engines
    return engine.acc_width, engine.acc_modes, [layer.desc.acc_mode for layer in design.layers]


def test_exact_design_has_one_free_bound():
    assert modes(compile_graph(chain(None, None, None), AcceleratorConfig(2, 2))) == \
        (20, ((20, "wrap"),), [0, 0, 0])


def test_one_narrow_bound_for_every_layer():
    # every layer 12-bit saturating: the engine is 16 bits (the product), one bound, no select
    d = compile_graph(chain(*[(12, "saturate")] * 3), AcceleratorConfig(2, 2))
    assert modes(d) == (16, ((12, "saturate"),), [0, 0, 0])


def test_exact_layers_share_a_wide_enough_bound():
    # fc1 asks for 19 bits, what its dot products need: it cannot overflow and needs no
    # bound of its own; it and the exact fc2 share the engine's free 19-bit wrap-around
    d = compile_graph(chain((18, "wrap"), (19, "saturate"), None), AcceleratorConfig(2, 2))
    assert modes(d) == (19, ((18, "wrap"), (19, "wrap")), [0, 1, 1])
    # an exact layer runs in a narrow bound wide enough for it
    d = compile_graph(chain((19, "saturate"), None, None), AcceleratorConfig(2, 2))
    assert modes(d) == (19, ((19, "saturate"),), [0, 0, 0])
    # a layer asking for what its dot products need is exact too
    d = compile_graph(chain((20, "saturate"), None, None), AcceleratorConfig(2, 2))
    assert modes(d) == (20, ((20, "wrap"),), [0, 0, 0])


def test_manifest_keeps_the_bounds():
    d = compile_graph(chain((12, "saturate"), None, (10, "wrap")), AcceleratorConfig(2, 2))
    assert modes(d) == (19, ((12, "saturate"), (10, "wrap"), (19, "wrap")), [0, 2, 1])
    back = CompiledDesign.from_json(d.to_json())
    assert modes(back) == modes(d)


def test_narrow_widths_below_the_product_widen_only_the_engine():
    g = chain((6, "saturate"), None, None)
    g = ir.Graph("g", g.input_shape, g.input_fmt,
                 [dataclasses.replace(g.layers[0])] + list(g.layers[1:]))
    width, bounds, index = modes(compile_graph(g, AcceleratorConfig(2, 2)))
    assert bounds[index[0]] == (6, "saturate") and width == 19
