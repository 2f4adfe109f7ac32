import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import ir
from hwgen.compiler import (
    AcceleratorConfig,
    CompiledDesign,
    compile_graph,
    layer_cycles,
    walk_deltas,
    walk_pixels,
)
from hwgen.errors import DoesNotFitError, UnsupportedLayerError
from hwgen.numerics import Pow2Format, QFormat

F8 = QFormat(8, 4)


def conv(name="c", cin=2, cout=5, h=6, w=5, k=3, **kw):
    rng = np.random.default_rng(0)
    weight = rng.integers(-128, 128, size=(cout, cin, k, k))
    return ir.Conv2d(name, (cin, h, w), weight, rng.integers(-99, 99, size=cout), F8,
                     [F8] * cout, F8, **kw)


def graph(*layers):
    return ir.Graph("g", layers[0].in_shape, layers[0].in_fmt, layers)


# --- construction and errors -----------------------------------------------------------

def test_config_errors():
    with pytest.raises(DoesNotFitError, match=r"^Array rows must be a positive integer, not 0$"):
        AcceleratorConfig(rows=0)
    with pytest.raises(DoesNotFitError,
                       match=r"^Array shape must be written ROWSxCOLS like '4x4', not '4by4'$"):
        AcceleratorConfig.parse_array("4by4")
    with pytest.raises(DoesNotFitError, match=r"^PE kind must be 'fixed', not 'analog'$"):
        AcceleratorConfig(pe_kind="analog")
    assert AcceleratorConfig.parse_array("3X5") == AcceleratorConfig(rows=3, cols=5)


def test_does_not_fit_messages():
    g = graph(conv())
    with pytest.raises(DoesNotFitError, match=r"^Activations need 8 bits but the config stores "
                                              r"6; raise act_width$"):
        compile_graph(g, AcceleratorConfig(act_width=6))
    with pytest.raises(DoesNotFitError, match=r"^Dot products need a 21-bit accumulator but the "
                                              r"config has 12; raise acc_width$"):
        compile_graph(g, AcceleratorConfig(acc_width=12))
    with pytest.raises(DoesNotFitError, match=r"^Activations need 120 words of buffer \(two "
                                              r"regions of 60\) but the config has 100; raise "
                                              r"buffer_depth$"):
        compile_graph(g, AcceleratorConfig(buffer_depth=100))


def test_unsupported_layers():
    with pytest.raises(UnsupportedLayerError, match=r"^Layer 'c' uses rounding 'stochastic'; "
                                                    r"the hardware rounds with nearest_even, "
                                                    r"nearest_up, floor$"):
        compile_graph(graph(conv(rounding="stochastic")), AcceleratorConfig())
    pool = ir.MaxPool2d("pool", (5, 4, 3), F8, 2)
    with pytest.raises(UnsupportedLayerError, match=r"^Layer 'pool' \(MaxPool2d\) has no "
                                                    r"hardware mapping"):
        compile_graph(graph(conv(), pool), AcceleratorConfig())
    p2 = conv()
    p2 = ir.Conv2d("p", p2.in_shape, np.sign(p2.weight), None, F8, [Pow2Format(-3, 0)] * 5, F8)
    with pytest.raises(UnsupportedLayerError, match=r"^Layer 'p' has Pow2\(-3,0\) weights"):
        compile_graph(graph(p2), AcceleratorConfig())


# --- behaviour ---------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), k=st.integers(1, 4), stride=st.integers(1, 3),
       pad=st.integers(0, 2), pool=st.integers(1, 3))
def test_walker_visits_pool_windows_in_order(h, w, k, stride, pad, pool):
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    ph, pw = ho // pool, wo // pool
    if ph < 1 or pw < 1:
        return
    start, deltas = walk_deltas(h, w, stride, pad, pool, pw)
    desc = {"start_iy": start[0], "start_ix": start[1], "start_base": start[2], "pool": pool,
            "pw": pw}
    for level, (diy, dix, dbase) in enumerate(deltas):
        desc.update({f"d{level}_iy": diy, f"d{level}_ix": dix, f"d{level}_base": dbase})
    expected = []
    for py in range(ph):
        for px in range(pw):
            for dy in range(pool):
                for dx in range(pool):
                    iy, ix = (py * pool + dy) * stride - pad, (px * pool + dx) * stride - pad
                    expected.append((iy, ix, iy * w + ix))
    assert walk_pixels(desc, len(expected)) == expected


def test_weight_image_holds_every_weight():
    layer = conv(cout=7)
    design = compile_graph(graph(layer), AcceleratorConfig(rows=2, cols=3))
    ww, cols, k = design.weight_width, 3, layer.reduction
    words = np.array(design.weight_image, dtype=object)
    assert len(words) == 3 * k       # ceil(7 / 3) channel tiles of K words
    got = np.zeros((9, k), dtype=np.int64)
    for ct in range(3):
        for kk in range(k):
            word = int(words[ct * k + kk])
            for c in range(cols):
                v = (word >> (c * ww)) & ((1 << ww) - 1)
                got[ct * cols + c, kk] = v - (1 << ww) if v >> (ww - 1) else v
    np.testing.assert_array_equal(got[:7], layer.weight.reshape(7, k))
    np.testing.assert_array_equal(got[7:], 0)
    biases = [b for b, _ in design.param_image[:7]]
    np.testing.assert_array_equal(biases, layer.bias)
    shifts = {s for _, s in design.param_image[:7]}
    assert shifts == {F8.frac + F8.frac - F8.frac}


def test_tiles_and_cycle_model():
    layer = conv(cout=5, h=6, w=5, padding=1, pool=2)      # 6x5 output, pooled 3x2
    design = compile_graph(graph(layer), AcceleratorConfig(rows=4, cols=4))
    prog = design.layers[0]
    assert prog.desc["npix"] == 6 * 4                     # pooled windows' pixels only
    assert prog.tiles == 6 * 2                            # ceil(24/4) pixel x ceil(5/4) channel
    assert prog.desc["period"] == max(18, 16)
    assert prog.cycles == layer_cycles(18, 12, 4, 4, design.post_latency)
    assert prog.cycles["total"] == 1 + 4 + 12 * 18 + 18 - 18 + 4 + 4 + 16 + 4 + 1
    assert design.macs == layer.macs == 18 * 5 * 24


def test_manifest_round_trip():
    design = compile_graph(graph(conv(), ir.Flatten("f", (5, 4, 3), F8),
                                 ir.Linear("fc", (60,), np.ones((3, 60)), None, F8, [F8] * 3,
                                           F8)),
                           AcceleratorConfig(rows=3, cols=2))
    text = design.dumps()
    again = CompiledDesign.from_json(json.loads(text))
    assert again.dumps() == text
    assert [layer.kind for layer in again.layers] == ["conv", "linear"]
