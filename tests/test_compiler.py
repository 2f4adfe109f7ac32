import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import ir, timing
from hwgen.compiler import AcceleratorConfig, CompiledDesign, compile_graph, walk_deltas
from hwgen.compiler.pack import pack_kinds
from hwgen.contract import CONTRACT_VERSION, LayerDescriptor, descriptor_fields
from hwgen.errors import ArgumentError, DoesNotFitError, FormatError, UnsupportedLayerError
from hwgen.golden.blocks import pixel_walker
from hwgen.numerics import (
    HW_OVERFLOW_MODES,
    HW_ROUNDING_MODES,
    BinaryFormat,
    CodebookFormat,
    Pow2Format,
    QFormat,
)

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
    with pytest.raises(ArgumentError, match=r"^Array rows must be a positive integer, not 0$"):
        AcceleratorConfig(rows=0)
    with pytest.raises(ArgumentError,
                       match=r"^Array shape must be written ROWSxCOLS like '4x4', not '4by4'$"):
        AcceleratorConfig.parse_array("4by4")
    # (other tests may register more kinds: the message lists them all)
    with pytest.raises(ArgumentError, match=r"^PE kind must be one of ('\w+', )*'fixed'(, '\w+')*, not "
                                            r"'analog'$"):
        AcceleratorConfig(pe_kind="analog")
    with pytest.raises(ArgumentError, match=r"^Act width must be a positive integer, not 0$"):
        AcceleratorConfig(act_width=0)
    with pytest.raises(ArgumentError, match=r"^PE stages must be an integer of at least 0, "
                                            r"not -1$"):
        AcceleratorConfig(pe_stages=-1)
    assert AcceleratorConfig.parse_array("3X5") == AcceleratorConfig(rows=3, cols=5)
    assert "fixed" in pack_kinds()


def test_does_not_fit_messages():
    g = graph(conv())
    with pytest.raises(DoesNotFitError, match=r"^Activations need 8 bits but the config stores "
                                              r"6; raise act_width$"):
        compile_graph(g, AcceleratorConfig(act_width=6))
    # every weight -128: 2·3·3 = 18 products of 128·128 reach 294912 < 2**19, 20 bits
    full = ir.Conv2d("c", (2, 6, 5), np.full((5, 2, 3, 3), -128), None, F8, [F8] * 5, F8)
    with pytest.raises(DoesNotFitError, match=r"^Dot products need a 20-bit accumulator but the "
                                              r"config has 12; raise acc_width$"):
        compile_graph(graph(full), AcceleratorConfig(acc_width=12))
    with pytest.raises(DoesNotFitError, match=r"^Activations need 120 words of buffer \(two "
                                              r"regions of 60\) but the config has 100; raise "
                                              r"buffer_depth$"):
        compile_graph(g, AcceleratorConfig(buffer_depth=100))


def test_stochastic_layers_carry_their_mask():
    from hwgen.numerics import stochastic_random
    design = compile_graph(graph(conv(rounding="stochastic", seed=6, layer_number=3)),
                           AcceleratorConfig())
    assert design.roundings == ("stochastic",)
    # the hash of the seed word alone: rand(6, 3, 0, 0)
    assert design.layers[0].desc.rand_mask == int(stochastic_random(6, 3, 0, 0))
    plain = compile_graph(graph(conv()), AcceleratorConfig())
    assert plain.layers[0].desc.rand_mask == 0
    assert design.post_latency == plain.post_latency + 1
    assert design.layers[0].cycles.total == plain.layers[0].cycles.total + 1
    with pytest.raises(FormatError, match=r"^Descriptor field 'rand_mask' is a 32-bit word, "
                                          r"not 4294967296$"):
        LayerDescriptor(**{**plain.layers[0].desc.to_json(), "rand_mask": 1 << 32})


def test_unsupported_layers():
    pool = ir.MaxPool2d("pool", (5, 4, 3), F8, 2)
    with pytest.raises(UnsupportedLayerError, match=r"^Layer 'pool' \(MaxPool2d\) has no "
                                                    r"hardware mapping"):
        compile_graph(graph(conv(), pool), AcceleratorConfig())



def pow2_conv(name="p", fmt=None, in_fmt=F8, out_fmt=F8, **kwargs):
    c = conv()
    rng = np.random.default_rng(0)
    fmt = fmt or Pow2Format(-3, 0)
    codes = rng.integers(0, fmt.e_max - fmt.e_min + 1, size=c.weight.shape)
    weight = np.where(rng.random(c.weight.shape) < 0.2, 0,
                      rng.choice([-1, 1], size=c.weight.shape) << codes)
    return ir.Conv2d(name, c.in_shape, weight, None, in_fmt, [fmt] * 5, out_fmt, **kwargs)


def kinds_and_widths(design):
    return tuple((e.kind, e.weight_width) for e in design.engines)


def test_pe_kind_follows_the_weight_formats():
    assert compile_graph(graph(conv()), AcceleratorConfig()).engine_kinds == ("fixed",)
    design = compile_graph(graph(pow2_conv()), AcceleratorConfig())
    # zero flag, sign and a 2-bit code (e - e_min in 0..3); products grow by 3 bits
    assert kinds_and_widths(design) == (("shift", 4),)
    # every weight 2**3, the largest: 18 products of 8-bit activations reach 18·8·128 = 18432
    # < 2**15, 16 bits (bit growth: 8 + 5 + 5 = 18)
    top = pow2_conv()
    top = ir.Conv2d("p", top.in_shape, np.full(top.weight.shape, 8), None, F8,
                    [Pow2Format(-3, 0)] * 5, F8)
    assert compile_graph(graph(top), AcceleratorConfig()).acc_width == 16
    binary = pow2_conv(fmt=Pow2Format(0, 0))
    binary = ir.Conv2d("b", binary.in_shape, np.where(binary.weight < 0, -1, 1), None, F8,
                       [BinaryFormat()] * 5, F8)
    design = compile_graph(graph(binary), AcceleratorConfig())
    assert kinds_and_widths(design) == (("shift", 2),)
    # forcing the MAC runs power-of-two weights as integers
    design = compile_graph(graph(pow2_conv()), AcceleratorConfig(pe_kind="fixed"))
    assert kinds_and_widths(design) == (("fixed", 5),)


def test_mixed_kinds_get_one_engine_each():
    design = compile_graph(graph(pow2_conv(), conv(cin=5, h=4, w=3, k=1)), AcceleratorConfig())
    assert kinds_and_widths(design) == (("shift", 4), ("fixed", 8))
    assert [(layer.pe_kind, layer.desc.engine, layer.desc.w_base) for layer in design.layers] \
        == [("shift", 0, 0), ("fixed", 1, 0)]


def test_pe_kind_refusals():
    with pytest.raises(UnsupportedLayerError, match=r"^PE kind 'xnor' runs binary weights on "
                                                    r"binary activations only, and layers 'p' "
                                                    r"are not binary on both sides"):
        compile_graph(graph(pow2_conv()), AcceleratorConfig(pe_kind="xnor"))
    with pytest.raises(FormatError, match=r"^Layer 'c': weight -?\d+ is not 0 or ± a power of "
                                          r"two, which the 'shift' PE kind needs$"):
        compile_graph(graph(conv()), AcceleratorConfig(pe_kind="shift"))


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
    expected = []
    for py in range(ph):
        for px in range(pw):
            for dy in range(pool):
                for dx in range(pool):
                    iy, ix = (py * pool + dy) * stride - pad, (px * pool + dx) * stride - pad
                    expected.append((iy, ix, iy * w + ix))
    assert pixel_walker(start, deltas, pool, pw, len(expected)) == expected


def test_weight_image_holds_every_weight():
    layer = conv(cout=7)
    design = compile_graph(graph(layer), AcceleratorConfig(rows=2, cols=3))
    (engine,) = design.engines
    ww, cols, k = engine.weight_width, 3, layer.reduction
    words = np.array(engine.weight_image, dtype=object)
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
    # the bias field holds rounding to nearest's half step, 2**(4 − 1) for a 4-bit shift
    biases = [b for b, *_ in design.param_image[:7]]
    np.testing.assert_array_equal(biases, layer.bias + 8)
    shifts = {s for _, s, *_ in design.param_image[:7]}
    assert shifts == {F8.frac + F8.frac - F8.frac}


def test_tiles():
    layer = conv(cout=5, h=6, w=5, padding=1, pool=2)      # 6x5 output, pooled 3x2
    design = compile_graph(graph(layer), AcceleratorConfig(rows=4, cols=4))
    prog = design.layers[0]
    assert prog.desc.npix == 6 * 4                        # pooled windows' pixels only
    assert prog.tiles == 6 * 2                            # ceil(24/4) pixel x ceil(5/4) channel
    assert prog.desc.period == 18                         # max(K = 18, rows·cols = 16)
    assert design.macs == layer.macs == 18 * 5 * 24


# Cycles counted by hand, phase by phase (cycle numbers from the layer's SETUP = cycle 0):
#
# (a) 1×1 array, K = 3, one tile, PE latency 1: SETUP c0, WALK c1–c3 (the walker steps at
#     c1, its record is made in two registered stages and enters the row bank at c3), RUN
#     issues steps at c4, c5, c6, which leave the sequencer's output registers a cycle
#     later (c5–c7). The last step's data leaves the memories at c8, the engine's two feed
#     registers at c9 and c10, and the PE has its sum at c11. The drain's job, out at c7
#     with the last step, waits 3 cycles (c8–c10) and the drain reads the one slot at c11
#     (busy c8–c11); the parameter word and the sum enter post-processing at c12 and leave
#     at c16 (4 stages), when they are written. The FLUSH idle tracker follows the drain's
#     busy for 1 + 4 cycles (c12–c16), so FLUSH sees idle at c17: 18 cycles.
# (b) as (a) with two product pipeline registers (PE latency 3): the sum is final 2 cycles
#     later, the drain waits 2 cycles more: 20.
# (c) 2×2 array, K = 1, one tile: SETUP c0, WALK c1–c4, the only step issued at c5 (RUN
#     lasts P = max(1, 4) = 4 cycles, c5–c8) and out at c6. PE (1, 1) has its sum at c6 + 1
#     (memory) + 2 (feed) + 1 + 1 (skew) + 1 (PE) = c12. The job waits 5 cycles (c7–c11),
#     the drain reads 4 slots at c12–c15, the last one leaves post-processing at c20 and
#     FLUSH sees idle at c21: 22 cycles.
# (d) 1×1 array, K = 2, three tiles: the next tile's one record is stepped at tile cycle 0
#     and in the bank at cycle 2, so a tile lasts P = 3 cycles (not K = 2): steps issued at
#     c4, c5, c7, c8, c10, c11. As in (a) the last slot is read 5 cycles after its issue
#     (c16), written at c21, idle seen at c22: 23.
# (e) 3×1 array, K = 2, two tiles: the next tile's three records are stepped at tile
#     cycles 0–2 and in the bank at 2–4, so a tile lasts P = 5 cycles (not rows·cols = 3).
#     SETUP c0, WALK c1–c5, steps issued at c6, c7 and c11, c12, the last one out at c13.
#     PE (2, 0) has the last sum at c13 + 1 + 2 + 2 (skew) + 1 = c19; the job waits 5
#     cycles (c14–c18), the drain reads 3 slots at c19–c21, the last leaves
#     post-processing at c26, idle seen at c27: 28.
HAND_COUNTED = [
    # rows, cols, K, tiles, PE latency, cycles
    (1, 1, 3, 1, 1, 18),
    (1, 1, 3, 1, 3, 20),
    (2, 2, 1, 1, 1, 22),
    (1, 1, 2, 3, 1, 23),
    (3, 1, 2, 2, 1, 28),
]


@pytest.mark.parametrize("rows, cols, k, tiles, pe_lat, cycles", HAND_COUNTED)
def test_cycle_model_against_hand_count(rows, cols, k, tiles, pe_lat, cycles):
    got = timing.layer_cycles(k, tiles, rows, cols, pe_lat)
    assert got.total == cycles
    assert got.setup + got.compute + got.drain_bound + got.fill_drain == cycles
    assert got.compute == tiles * k


def test_compiler_predicts_the_hand_count():
    # (a) and (b) above as a Linear layer of 3 inputs and 1 output on a 1×1 array.
    fc = ir.Linear("fc", (3,), np.ones((1, 3), dtype=np.int64), None, F8, [F8], F8)
    for stages, cycles in ((0, 18), (2, 20)):
        design = compile_graph(graph(fc), AcceleratorConfig(rows=1, cols=1, pe_stages=stages))
        assert [layer.cycles.total for layer in design.layers] == [cycles]
        assert design.pe_latency == 1 + stages


def test_descriptor_is_typed():
    names = [name for name, _ in descriptor_fields()]
    assert names[:2] == ["k_len", "period"]
    assert names[-11:] == ["rounding", "overflow", "binary_out", "pack_out", "engine",
                           "tail_from", "tail_bits", "acc_mode", "split", "drain_pool",
                           "rand_mask"]
    desc = compile_graph(graph(conv()), AcceleratorConfig()).layers[0].desc
    with pytest.raises(FormatError, match=r"^Descriptor field 'npix' is a count and must not "
                                          r"be negative, not -1$"):
        LayerDescriptor(**{**desc.to_json(), "npix": -1})
    with pytest.raises(FormatError, match=r"^Descriptor field 'd_ky' must be an integer, not "
                                          r"1.5$"):
        LayerDescriptor(**{**desc.to_json(), "d_ky": 1.5})
    assert LayerDescriptor.from_json(desc.to_json()) == desc
    with pytest.raises(FormatError, match=r"^Layer descriptor must have the fields "):
        LayerDescriptor.from_json({"k_len": 1})


def test_manifest_refuses_another_contract_version():
    obj = compile_graph(graph(conv()), AcceleratorConfig()).to_json()
    assert obj["contract_version"] == CONTRACT_VERSION
    obj["contract_version"] = CONTRACT_VERSION - 1
    with pytest.raises(FormatError, match=rf"^Manifest has contract version "
                                          rf"{CONTRACT_VERSION - 1} but this hwgen reads "
                                          rf"version {CONTRACT_VERSION}; compile the model "
                                          rf"again$"):
        CompiledDesign.from_json(obj)


def test_hardware_modes_are_one_list():
    from hwgen.rtl.layouts import Overflow, Rounding
    assert tuple(m.name.lower() for m in Rounding) == HW_ROUNDING_MODES
    assert tuple(m.name.lower() for m in Overflow) == HW_OVERFLOW_MODES


def test_manifest_round_trip():
    design = compile_graph(graph(conv(), ir.Flatten("f", (5, 4, 3), F8),
                                 ir.Linear("fc", (60,), np.ones((3, 60)), None, F8, [F8] * 3,
                                           F8)),
                           AcceleratorConfig(rows=3, cols=2))
    text = design.dumps()
    again = CompiledDesign.from_json(json.loads(text))
    assert again.dumps() == text
    assert [layer.kind for layer in again.layers] == ["conv", "linear"]
    assert again.layers[0].desc == design.layers[0].desc
    assert again.layers[1].cycles == design.layers[1].cycles
    assert again.config == design.config


def binary_conv(name, cin, cout, h, w, k, pad, in_fmt, out_fmt=None, pool=1, seed=0):
    rng = np.random.default_rng(seed)
    weight = rng.choice([-1, 1], size=(cout, cin, k, k))
    return ir.Conv2d(name, (cin, h, w), weight, None, in_fmt, [BinaryFormat()] * cout,
                     out_fmt or BinaryFormat(), padding=pad, pool=pool,
                     threshold=rng.integers(-3, 4, size=cout))


def test_xnor_layers_read_packed_words():
    """A binary tensor an XNOR layer reads is stored one bit per channel: the XNOR layer's
    weight word of step (group g, ky, kx) holds, per column, channel g·P + i in bit i; the
    producer's parameter words place channel c at bit c mod P of word (c div P)·plane."""
    first = binary_conv("a", 1, 10, 5, 5, 3, 1, F8)
    first = ir.Conv2d("a", first.in_shape, rng_fixed(first.weight.shape), None, F8,
                      [F8] * 10, BinaryFormat(), padding=1, threshold=np.arange(10) - 5)
    second = binary_conv("b", 10, 3, 5, 5, 3, 1, BinaryFormat())
    p = 8
    design = compile_graph(graph(first, second), AcceleratorConfig(rows=2, cols=2, xnor_width=p))
    assert design.engine_kinds == ("fixed", "xnor")
    a, b = design.layers
    assert (a.desc.pack_out, b.desc.pack_out) == (1, 0)
    # 10 channels of 5x5 pixels in two groups: 2·5·5 words, two regions
    assert design.buffer_depth == 2 * max(1 * 5 * 5, 2 * 5 * 5, 3 * 5 * 5)
    for ch in range(10):
        _, _, _, _, offset, bit = design.param_image[a.desc.param_base + ch]
        assert (offset, bit) == ((ch // 8) * 25, ch % 8)
    steps = 2 * 3 * 3
    assert (b.desc.k_len, b.desc.tail_from, b.desc.tail_bits) == (steps, 9, 2)
    words = design.engines[1].weight_image
    assert len(words) == 2 * steps      # two channel tiles of 2 columns for 3 channels
    for co in range(3):
        ct, c = divmod(co, 2)
        for g in range(2):
            for ky in range(3):
                for kx in range(3):
                    word = words[ct * steps + (g * 3 + ky) * 3 + kx] >> (c * p)
                    for i in range(p):
                        ci = g * p + i
                        if ci < 10:
                            assert (word >> i) & 1 == (second.weight[co, ci, ky, kx] > 0)


def rng_fixed(shape, seed=1):
    return np.random.default_rng(seed).integers(-100, 100, size=shape)


# --- accumulator widths ------------------------------------------------------------------

def linear(name, weight, in_fmt, out_fmt, **kw):
    weight = np.asarray(weight)
    w_fmts = [BinaryFormat() if out_fmt == in_fmt == BinaryFormat() else F8] * len(weight)
    return ir.Linear(name, (weight.shape[1],), weight, None, in_fmt, w_fmts, out_fmt, **kw)


def test_acc_width_from_the_weights():
    # the first layer reads any stored word: 2·127·127 + 2·128·128 = 65026 and
    # −4·127·128 = −65024 need 17 bits (bit growth: 8 + 8 + 3 = 19)
    first = linear("a", [[127, 127, -128, -128]], F8, F8)
    assert compile_graph(graph(first), AcceleratorConfig()).acc_width == 17
    # a later layer reads its producer's output format: UQ(4, 4) is [0, 15], so 64 weights
    # of 127 reach 64·127·15 = 121920, 18 bits (on any stored word 64·127·128 = 1040384,
    # 21 bits; on Q(4, 4)'s [-8, 7] 64·127·8 = 65024, 17 bits; bit growth: 8 + 8 + 7 = 23)
    u4 = QFormat(4, 4, signed=False)
    ones = linear("a", np.ones((64, 4), dtype=np.int64), F8, u4)
    second = linear("b", np.full((2, 64), 127), u4, F8)
    assert compile_graph(graph(ones, second), AcceleratorConfig()).acc_width == 18
    # after a ReLU the producer's negatives are gone: 64 weights of −128 on Q(8, 4)'s
    # [-128, 127] reach 64·128·128 = 2**20, 22 bits, on [0, 127] only −64·128·127, 21 bits
    minus = linear("b", np.full((2, 64), -128), F8, F8)
    for relu, bits in [(False, 22), (True, 21)]:
        ones = linear("a", np.ones((64, 4), dtype=np.int64), F8, F8, relu=relu)
        assert compile_graph(graph(ones, minus), AcceleratorConfig()).acc_width == bits
    # never narrower than a product: three weights of 1 reach 384 (10 bits), but 8-bit
    # activations times 8-bit weights are 16 bits
    assert compile_graph(graph(linear("a", [[1, 1, 1]], F8, F8)),
                         AcceleratorConfig()).acc_width == 16
    # the user's width wins
    assert compile_graph(graph(first), AcceleratorConfig(acc_width=30)).acc_width == 30


def test_thresholds_clamp_to_the_dot_range():
    """A threshold past every dot product is clamped to ±(largest |dot| + 1) in the bias
    field: weights 2 and 1 on 8-bit words reach 3·128 = 384; ±1 weights on ±1 activations
    reach the number of positions, 16."""
    first = linear("a", np.tile([[2, 1]], (16, 1)), F8, BinaryFormat(),
                   threshold=[10 ** 6, -10 ** 6] * 8)
    xnor = linear("b", np.tile([1, -1], (2, 8)), BinaryFormat(), BinaryFormat(),
                  threshold=[10 ** 6, -10 ** 6])
    design = compile_graph(graph(first, xnor), AcceleratorConfig(rows=2, cols=2))
    a, b = design.layers
    assert [design.param_image[a.desc.param_base + ch][0] for ch in range(2)] == [-385, 385]
    assert [design.param_image[b.desc.param_base + ch][0] for ch in range(2)] == [-17, 17]


# --- code-book layers --------------------------------------------------------------------

def codebook_conv(name="cb", per_channel=False, cout=5, bits=2, values=(-100, -1, 7, 120)):
    rng = np.random.default_rng(1)
    weight = rng.choice(values, size=(cout, 2, 3, 3))
    fmts = [CodebookFormat(bits, 8, 6, per_channel)] * cout
    return ir.Conv2d(name, (2, 6, 5), weight, None, F8, fmts, F8)


def test_codebook_layers_store_indices_and_tables():
    layer = codebook_conv()
    design = compile_graph(graph(layer), AcceleratorConfig(rows=2, cols=2))
    engine = design.engines[0]
    assert (engine.kind, engine.weight_width, engine.value_width) == ("codebook", 2, 8)
    # one row: the layer's table, ascending, for both columns
    assert engine.tables == (((-100, -1, 7, 120),) * 2,) and engine.table_bounds == (0,)
    # word (tile, k): column c's index in bits [2c, 2c + 2)
    index = {-100: 0, -1: 1, 7: 2, 120: 3}
    w = layer.weight.reshape(5, 18)
    for tile in range(3):
        for k in range(18):
            word = engine.weight_image[tile * 18 + k]
            for c in range(2):
                ch = tile * 2 + c
                want = index[int(w[ch, k])] if ch < 5 else 0
                assert (word >> (2 * c)) & 3 == want
    # the same weights in fixed point: words of 2 × 8 bits instead of 2 × 2
    fixed = compile_graph(graph(ir.Conv2d("f", (2, 6, 5), layer.weight, None, F8, [F8] * 5,
                                          F8)), AcceleratorConfig(rows=2, cols=2))
    assert fixed.engines[0].weight_width == 8
    assert len(fixed.engines[0].weight_image) == len(engine.weight_image)
    assert design.cycles == fixed.cycles
    again = CompiledDesign.from_json(json.loads(design.dumps())).engines[0]
    assert again == engine


def test_per_channel_tables_one_row_per_channel_tile():
    rng = np.random.default_rng(2)
    weight = np.stack([rng.choice(rng.choice(np.arange(-128, 128), 4, replace=False),
                                  size=(2, 3, 3)) for _ in range(3)])
    fmts = [CodebookFormat(2, 8, 6, True)] * 3
    layer = ir.Conv2d("cb", (2, 6, 5), weight, None, F8, fmts, F8)
    engine = compile_graph(graph(layer), AcceleratorConfig(rows=2, cols=2)).engines[0]
    assert engine.table_bounds == (0, 18)
    for ch in range(3):
        table = engine.tables[ch // 2][ch % 2]
        assert set(np.unique(weight[ch])) <= set(table)
    assert engine.tables[1][1] == (0, 0, 0, 0)      # the edge tile's missing channel


def test_codebook_refusals():
    layer = codebook_conv(values=tuple(range(5)))
    with pytest.raises(FormatError, match=r"^Layer 'cb': weights take 5 distinct values, "
                                          r"more than the 4 entries of a code-book table$"):
        compile_graph(graph(layer), AcceleratorConfig(rows=2, cols=2))
    with pytest.raises(UnsupportedLayerError, match=r"^PE kind 'codebook' runs code-book "
                                                    r"weights only, and layers 'c' have none"):
        compile_graph(graph(conv()), AcceleratorConfig(rows=2, cols=2, pe_kind="codebook"))
    # on the fixed engine a code-book layer runs its integers on multipliers
    design = compile_graph(graph(codebook_conv()), AcceleratorConfig(pe_kind="fixed"))
    assert design.engine_kinds == ("fixed",) and design.engines[0].weight_width == 8


# --- batches ---------------------------------------------------------------------------

def _walk(desc, count):
    """The buffer address of the first element of each output pixel's receptive field."""
    start = (desc.start_iy, desc.start_ix, desc.start_base)
    deltas = [tuple(getattr(desc, f"d{level}_{axis}") for axis in ("iy", "ix", "base"))
              for level in range(4)]
    return [desc.in_base + base for _, _, base in pixel_walker(start, deltas, desc.pool,
                                                                 desc.pw, count)]


def test_batches_in_the_layer_program():
    rng = np.random.default_rng(1)
    # conv: 2×6×5 in (60 words), 5×4×3 out (60 words); fc1 60 → 7; fc2 7 → 3
    fc1 = ir.Linear("fc1", (60,), rng.integers(-9, 9, size=(7, 60)), None, F8, [F8] * 7, F8)
    fc2 = ir.Linear("fc2", (7,), rng.integers(-9, 9, size=(3, 7)), None, F8, [F8] * 3, F8)
    g = ir.Graph("g", (2, 6, 5), F8, (conv(), ir.Flatten("flat", (5, 4, 3), F8), fc1, fc2))
    design = compile_graph(g, AcceleratorConfig(rows=2, cols=4, batch=3))
    assert [layer.name for layer in design.layers] == ["c[0]", "c[1]", "c[2]", "fc1", "fc2"]
    assert (design.n_in, design.n_out) == (180, 9)
    # one convolution entry per image, two regions of three images' 60 words
    assert [layer.desc.in_base for layer in design.layers[:3]] == [0, 60, 120]
    assert [layer.desc.out_base for layer in design.layers[:3]] == [180, 240, 300]
    c0, c1, _, d1, d2 = (layer.desc for layer in design.layers)
    assert {(d.w_base, d.param_base) for d in (c0, c1)} == {(0, 0)}
    # fc1's pixels are the images (image-major at 180 + 60·n), fc2's too (channel-major:
    # channel c of image n at 0 + 3·c + n, so its pixels start at 0, 1, 2 and step by 3)
    assert _walk(d1, 3) == [180, 240, 300]
    assert (d1.k_len, d1.npix, d1.plane) == (60, 3, 3)
    assert _walk(d2, 3) == [0, 1, 2]
    assert (d2.k_len, d2.d_ci, d2.npix) == (7, 3, 3)
    # each weight word of a Linear layer serves the batch: batch 1's tiles, 3 × the MACs
    single = compile_graph(g, AcceleratorConfig(rows=2, cols=4))
    assert design.layers[3].tiles == 2 * 2 == 2 * single.layers[1].tiles
    assert design.layers[3].macs == 3 * 60 * 7
    assert design.engines[0].weight_image == single.engines[0].weight_image
    assert design.param_image[:8] == single.param_image[:8]


def test_batch_outputs_per_image():
    # a batch of 2 ending in a Linear layer of 3 outputs gives them channel-major
    design = compile_graph(graph(ir.Linear("fc", (4,), np.ones((3, 4), dtype=np.int64), None,
                                           F8, [F8] * 3, F8)),
                           AcceleratorConfig(rows=2, cols=2, batch=2))
    assert design.channel_major_out
    starts = design.to_batches(np.arange(12).reshape(3, 4))
    assert starts.tolist() == [list(range(8)), [8, 9, 10, 11, 0, 1, 2, 3]]
    words = [[0, 10, 1, 11, 2, 12], [20, 0, 21, 1, 22, 2]]
    assert design.from_batches(words, 3).tolist() == [[0, 1, 2], [10, 11, 12], [20, 21, 22]]
    # convolution outputs stay image after image
    design = compile_graph(graph(conv(cout=1)), AcceleratorConfig(rows=2, cols=2, batch=2))
    assert not design.channel_major_out
    assert design.from_batches(np.arange(24).reshape(1, 24), 2).tolist() == [
        list(range(12)), list(range(12, 24))]


def test_batch_refusals():
    with pytest.raises(ArgumentError, match=r"^Batch must be a positive integer, not 0$"):
        AcceleratorConfig(batch=0)
    with pytest.raises(DoesNotFitError, match=r"^A batch of 129 makes 258 layer program "
                                              r"entries .* more than the accelerator's 256; "
                                              r"use a smaller --batch$"):
        compile_graph(graph(conv(), conv("d", cin=5, h=4, w=3, k=1)),
                      AcceleratorConfig(rows=1, cols=1, batch=129))


def test_batch_entries_name_their_layer():
    c = conv(name="blocks[1]")
    design = compile_graph(graph(c), AcceleratorConfig(rows=2, cols=2, batch=2))
    assert [layer.name for layer in design.layers] == ["blocks[1][0]", "blocks[1][1]"]
    assert {design.graph_layer(layer) for layer in design.layers} == {"blocks[1]"}


def _fields(word, cols, bits=8):
    """The signed ``bits``-bit weight fields of a weight memory word, column 0 first."""
    out = []
    for c in range(cols):
        v = (word >> (c * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


def test_split_layers_in_the_layer_program():
    rng = np.random.default_rng(2)
    # conv: 2×6×5 in, 5×4×3 out (60 words); fc1 60 → 7; fc2 7 → 3; 2 rows, 4 columns
    w1, w2 = rng.integers(-9, 9, size=(7, 60)), rng.integers(-9, 9, size=(3, 7))
    fc1 = ir.Linear("fc1", (60,), w1, None, F8, [F8] * 7, F8)
    fc2 = ir.Linear("fc2", (7,), w2, None, F8, [F8] * 3, F8)
    g = ir.Graph("g", (2, 6, 5), F8, (conv(), ir.Flatten("flat", (5, 4, 3), F8), fc1, fc2))
    design = compile_graph(g, AcceleratorConfig(rows=2, cols=4, split_fc=True))
    c, d1, d2 = (layer.desc for layer in design.layers)
    assert (c.split, d1.split, d2.split) == (0, 1, 1)
    # row r reads slice r: fc1's 60 inputs (at 60, the conv's output region) as 2 × 30,
    # fc2's 7 (at 0) as 4 + 3 and a padded step
    assert (d1.k_len, d1.kw, d1.in_w, d1.npix, d1.n_pt, d1.n_ct, d1.plane) == (
        30, 30, 60, 2, 1, 2, 1)
    assert _walk(d1, 2) == [60, 90]
    assert (d2.k_len, d2.in_w, d2.n_ct) == (4, 7, 1) and _walk(d2, 2) == [0, 4]
    # split layers first in the weight memory: fc1 (2 tiles × 30 words), fc2 (4), the conv
    assert (d1.w_base, d2.w_base, c.w_base) == (0, 60, 64)
    engine = design.engines[0]
    assert len(engine.banks) == 1 and len(engine.banks[0]) == 64
    bank0, bank1 = engine.weight_image, engine.banks[0]
    assert _fields(bank0[5], 4) == w1[0:4, 5].tolist()
    assert _fields(bank1[5], 4) == w1[0:4, 35].tolist()
    assert _fields(bank1[30 + 29], 4) == w1[4:7, 59].tolist() + [0]
    assert _fields(bank1[60 + 2], 4) == w2[:, 6].tolist() + [0]
    assert _fields(bank1[60 + 3], 4) == [0, 0, 0, 0]            # past K = 7
    # counted by hand from the phases: SETUP 1 + WALK 2 + 2 records, the last tile's
    # K' steps, its issue 1, the drain's delay rows + 1 (the second feed register) + PE
    # latency (2: the registered product and the sum) = 5, 4 column sums,
    # the sum's 2 stages, the parameter read 1, post-processing 4, FLUSH 1
    assert design.layers[2].cycles.total == 5 + 4 + 1 + 5 + 4 + 2 + 1 + 4 + 1
    assert design.layers[1].cycles.total == 5 + 30 + 30 + 1 + 5 + 4 + 2 + 1 + 4 + 1
    assert design.layers[1].cycles.period == 30
    # the unsplit design: the same conv, the weight memory in layer order, no banks
    plain = compile_graph(g, AcceleratorConfig(rows=2, cols=4))
    assert plain.engines[0].banks == () and plain.layers[0].desc.w_base == 0
    assert plain.layers[0].cycles == design.layers[0].cycles
    assert plain.layers[1].cycles.total > design.layers[1].cycles.total


def test_split_only_where_it_helps_and_applies():
    fc = ir.Linear("fc", (3,), np.ones((2, 3), dtype=np.int64), None, F8, [F8] * 2, F8)
    # K = 3 on 2 rows and 1 column: the period is 4 (the records) either way, so the
    # split's 2 slices save one step and its sum costs two cycles
    design = compile_graph(graph(fc), AcceleratorConfig(rows=2, cols=1, split_fc=True))
    assert design.layers[0].desc.split == 0 and design.engines[0].banks == ()
    big = ir.Linear("fc", (40,), np.ones((2, 40), dtype=np.int64), None, F8, [F8] * 2, F8)
    for config in (AcceleratorConfig(rows=2, cols=2, split_fc=True, batch=2),
                   AcceleratorConfig(rows=1, cols=2, split_fc=True),
                   AcceleratorConfig(rows=2, cols=2)):
        assert compile_graph(graph(big), config).layers[0].desc.split == 0
    assert compile_graph(graph(big), AcceleratorConfig(rows=2, cols=2, split_fc=True)) \
        .layers[0].desc.split == 1
    with pytest.raises(ArgumentError, match=r"^split_fc must be True or False, not 1$"):
        AcceleratorConfig(split_fc=1)


def test_pooled_layers_in_the_layer_program():
    # 1×1 kernel on 1×6×6, pooled 2×2: 36 pixels in 9 tiles of one window on 4 rows
    layer = conv(cin=1, cout=3, h=6, w=6, k=1, pool=2)
    design = compile_graph(graph(layer), AcceleratorConfig(rows=4, cols=4, drain_pool=True))
    desc = design.layers[0].desc
    assert (desc.drain_pool, desc.win, desc.rows_div, desc.period) == (1, 4, 1, 6)
    # by hand: SETUP 1 + WALK 4 + 2 records; 8 more tiles of 6 cycles and the last one's
    # step; issue 1; the drain's delay win + 1 (the second feed register) + PE latency =
    # 4 + 1 + 2; 4 columns' maxima; the tree's 3 stages; the parameter read 1;
    # post-processing 4; FLUSH 1
    assert design.layers[0].cycles.total == 7 + 8 * 6 + 1 + 1 + 7 + 4 + 3 + 1 + 4 + 1
    plain = compile_graph(graph(layer), AcceleratorConfig(rows=4, cols=4))
    assert plain.layers[0].desc.drain_pool == 0 and plain.layers[0].desc.period == 16
    # not where the maximum of the sums is not the maximum of the outputs, nor where the
    # windows do not fit the columns or the rows
    for kw in ({"overflow": "wrap"}, {"rounding": "stochastic"},
               {"scale": np.array([1, -1, 2])}):
        other = conv(cin=1, cout=3, h=6, w=6, k=1, pool=2, **kw)
        got = compile_graph(graph(other), AcceleratorConfig(rows=4, cols=4, drain_pool=True))
        assert got.layers[0].desc.drain_pool == 0, kw
    for rows, cols in ((4, 2), (6, 4)):
        got = compile_graph(graph(layer), AcceleratorConfig(rows=rows, cols=cols,
                                                            drain_pool=True))
        assert got.layers[0].desc.drain_pool == 0, (rows, cols)
    assert compile_graph(graph(layer), AcceleratorConfig(rows=8, cols=4, drain_pool=True)) \
        .layers[0].desc.drain_pool == 1


def test_overhead_notes_name_what_sets_the_period():
    from hwgen.report import overhead_note
    # K = 1 on 4×4: the drain sets every period (16 slots, 4 window maxima, 4 sums)
    layer = conv(cin=1, cout=3, h=6, w=6, k=1, pool=2)
    plain = compile_graph(graph(layer), AcceleratorConfig(rows=4, cols=4))
    pooled = compile_graph(graph(layer), AcceleratorConfig(rows=4, cols=4, drain_pool=True))
    assert overhead_note(plain, plain.layers[0]).startswith("drain (K < rows·cols): ")
    # 9 tiles wait 16 − 1 and 6 − 1 cycles (the pooled period is the records' rows + 2)
    assert overhead_note(plain, plain.layers[0]) == "drain (K < rows·cols): 135 cycles"
    assert overhead_note(pooled, pooled.layers[0]) == "drain (K < pool windows·cols): 45 cycles"
    fc = ir.Linear("fc", (3,), np.ones((64, 3), dtype=np.int64), None, F8, [F8] * 64, F8)
    split = compile_graph(graph(fc), AcceleratorConfig(rows=2, cols=8, split_fc=True))
    assert split.layers[0].desc.split == 1
    # 8 tiles of K' = 2 steps in periods of 8 column sums
    assert overhead_note(split, split.layers[0]) == "period (K' < cols, rows + 2): 48 cycles"
