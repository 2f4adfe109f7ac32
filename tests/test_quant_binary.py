"""hwgen.quant.binary and hwgen.quant.outputs: binary weights with α, binary activations and
their integer thresholds; the pow2-4, bwn and binary schemes end to end."""

import functools
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import golden, ir, quant
from hwgen.errors import FormatError
from hwgen.flow import load_quantized
from hwgen.numerics import BinaryFormat, QFormat, dequantize
from hwgen.quant.binary import binarize, scale_multipliers
from hwgen.quant.outputs import binary_activation, fold_thresholds


@functools.cache
def quantized(model, scheme):
    return load_quantized(model, scheme)


# --- construction and error messages ----------------------------------------------------

@pytest.mark.parametrize("entry,message", [
    ({"kind": "binary", "scale_frac": 0},
     r"layer 'fc': scale_frac must be an integer from 1 to 24, not 0"),
    ({"kind": "binary", "scale": "alpha"}, r"layer 'fc': scale must be true or false, not 'alpha'"),
    ({"kind": "binary", "stochastic": 1}, r"layer 'fc': stochastic must be true or false, not 1"),
    ({"kind": "binary", "bits": 1},
     (r"layer 'fc' has unknown key 'bits'; keys are scale, scale_frac, stochastic, out_width, "
      r"frac, binary_out, rounding, overflow, bias_width, acc_width, acc_overflow")),
    ({"binary_out": "no"}, r"layer 'fc': binary_out must be true or false, not 'no'"),
])
def test_bad_binary_entries(tmp_path, entry, message):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"layers": {"fc": entry}}))
    with pytest.raises(FormatError, match=rf"^Scheme file '{p}' {message}$"):
        quant.load_scheme(str(p))


def test_first_and_last_entries_round_trip(tmp_path):
    p = tmp_path / "b.json"
    p.write_text(json.dumps({"default": {"kind": "binary", "binary_out": True},
                             "first": {"binary_out": True, "kind": "fixed"},
                             "last": {"kind": "fixed"}}))
    s = quant.load_scheme(str(p))
    assert s.first == quant.FixedSpec(binary_out=True) and s.last == quant.FixedSpec()
    assert quant.scheme_from_json(json.loads(json.dumps(s.to_json()))) == s
    names = ["conv1", "conv2", "fc"]
    assert [s.layer(n, names).kind for n in names] == ["fixed", "binary", "fixed"]
    assert s == quant.scheme_from_json({**quant.SCHEMES["binary"].to_json(), "name": "b"})


# --- binary weights ---------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=6, max_size=6),
       st.integers(4, 16))
def test_binarize_values_and_alpha(ws, scale_frac):
    w = torch.tensor(ws, dtype=torch.float64).reshape(2, 3)
    m = scale_multipliers(w, scale_frac)
    np.testing.assert_array_equal(
        m, np.rint(np.abs(np.array(ws)).reshape(2, 3).mean(axis=1) * 2.0 ** scale_frac))
    y = binarize(w, scale_frac).numpy()
    alpha = m * 2.0 ** -scale_frac
    # sign(0) = +1; every value is ±α of its channel, exactly.
    np.testing.assert_array_equal(y, np.where(w.numpy() >= 0, 1, -1) * alpha[:, None])
    assert set(quant.get_kind("binary").int_weights(w, None).ravel().tolist()) <= {-1, 1}


def test_binarize_gradient_and_stochastic_sign():
    w = torch.tensor([[0.5, -1.5, 0.0, 2.0]], requires_grad=True)
    binarize(w, 8).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[1, 0, 1, 0]])
    torch.manual_seed(0)
    w = torch.full((1, 40000), 0.5)
    p_plus = float((binarize(w, stochastic=True) > 0).double().mean())
    assert abs(p_plus - 0.75) < 0.01                 # hard_sigmoid(0.5) = 0.75
    assert torch.equal(binarize(torch.tensor([[-2.0, 2.0]]), stochastic=True),
                       torch.tensor([[-1.0, 1.0]]))  # clipped: certain


def test_clip_weights_keeps_binary_shadow_weights_in_range():
    qm = quantized("builtin:mlp", "bwn")
    net = quant.build_network(qm.stages, (1, 8, 8), qm.scheme, dtype=torch.float32)
    with torch.no_grad():
        net.layers[1].weight.mul_(10)
    net.clip_weights()
    assert float(net.layers[1].weight.detach().abs().max()) == 1.0


def test_binary_activation_straight_through():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0], requires_grad=True)
    y = binary_activation(x)
    np.testing.assert_array_equal(y.detach().numpy(), [-1, -1, 1, 1, 1])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 0])


# --- thresholds -------------------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.integers(-2 ** 15, 2 ** 15), st.integers(-5000, 5000), st.integers(0, 60),
       st.booleans())
def test_thresholds_reproduce_the_sign(m, b, bound, tie):
    if tie and m != 0:
        b = -m * (b % (2 * bound + 1) - bound)   # some dot in range hits dot·m + b = 0
    thr, flip = fold_thresholds([m], [b], bound)
    dot = np.arange(-bound, bound + 1)
    want = dot * m + b >= 0
    got = dot <= thr[0] if flip[0] else dot >= thr[0]
    np.testing.assert_array_equal(got, want)
    assert flip[0] == (m < 0) and -bound - 1 <= thr[0] <= bound + 1


def test_thresholds_by_hand():
    # 3·dot - 4 >= 0 <=> dot >= 2;  -3·dot + 4 >= 0 <=> dot <= 1;  0·dot - 1: never
    thr, flip = fold_thresholds([3, -3, 0, 0], [-4, 4, -1, 0], 10)
    assert thr.tolist() == [2, 1, 11, -10] and flip.tolist() == [0, 1, 0, 0]


# --- the schemes ------------------------------------------------------------------------

def test_bwn_graph_has_scales():
    qm = quantized("builtin:digits-cnn", "bwn")
    for layer in (qm.graph.layers[0], qm.graph.layers[1], qm.graph.layers[3]):
        assert set(layer.w_fmts) == {BinaryFormat()} and layer.scale_frac == 14
        assert set(np.unique(layer.weight).tolist()) == {-1, 1}
        assert np.all(layer.scale > 0) and np.all(layer.scale < 2 ** 15)
        assert isinstance(layer.out_fmt, QFormat) and layer.out_fmt.width == 8
    assert [r.weight_bytes for r in qm.layer_table()] == [9 + 16, 288 + 64, 0, 160 + 20]


@pytest.mark.parametrize("model,expect", [
    ("builtin:digits-cnn", [("fixed", "fixed", "binary"), ("binary", "binary", "binary"),
                            ("binary", "fixed", "fixed")]),
    ("builtin:mlp", [("fixed", "fixed", "binary"), ("binary", "fixed", "fixed")]),
])
def test_binary_scheme_structure(model, expect):
    qm = quantized(model, "binary")
    dense = [n for n in qm.graph.layers if isinstance(n, ir.Conv2d | ir.Linear)]
    assert [(n.in_fmt.kind, n.w_fmts[0].kind, n.out_fmt.kind) for n in dense] == expect
    for n in dense[:-1]:
        assert n.threshold is not None and n.bias is None and not n.relu
    assert dense[-1].threshold is None


@pytest.mark.parametrize("scheme", ["pow2-4", "bwn", "binary"])
@pytest.mark.parametrize("model", ["builtin:digits-cnn", "builtin:mlp"])
def test_golden_equals_torch_on_whole_test_split(model, scheme):
    qm = quantized(model, scheme)
    x = qm.dataset.x_test
    assert len(x) == 450
    with torch.no_grad():
        fq = qm.module(torch.tensor(x, dtype=torch.float64)).numpy()
    g = golden.run(qm.graph, qm.quantize_input(x))
    np.testing.assert_array_equal(fq, dequantize(g, qm.graph.output_fmt))
    assert len(np.unique(g)) > 5
    # Every intermediate layer too (binary ones are ±1 exactly).
    outs = golden.run_layers(qm.graph, qm.quantize_input(x[:64]))
    with torch.no_grad():
        h = qm.module.input(torch.tensor(x[:64], dtype=torch.float64))
        for layer, o in zip(qm.module.layers, outs):
            h = layer(h)
            np.testing.assert_array_equal(h.numpy(), dequantize(o, layer.out_fmt))


def test_shipped_qat_checkpoints_meet_the_targets():
    fixed8 = quantized("builtin:digits-cnn", "fixed8").quantized_accuracy()
    assert quantized("builtin:digits-cnn", "pow2-4").quantized_accuracy() >= fixed8 - 0.01
    assert quantized("builtin:digits-cnn", "bwn").quantized_accuracy() >= fixed8 - 0.02
    assert quantized("builtin:digits-cnn", "binary").quantized_accuracy() >= 0.90
    for scheme in ("pow2-4", "bwn", "binary"):
        assert quantized("builtin:digits-cnn", scheme).module.layers[0].weight.shape == \
            (8, 1, 3, 3)


@pytest.mark.parametrize("scheme", ["pow2-4", "bwn", "binary"])
def test_qat_smoke_keeps_exactness(scheme):
    from hwgen.train import TrainConfig, qat_config, train_qat
    qm = quantized("builtin:mlp", "fixed8")   # the float model, not the shipped QAT one
    assert qat_config("mlp", scheme).qat_epochs > TrainConfig().qat_epochs
    net = train_qat(qm.float_module, "mlp", qm.dataset, scheme, epochs=1)
    before = quant.build_network(qm.stages, (1, 8, 8), net.resolved_scheme(),
                                 dtype=torch.float32)
    assert not torch.equal(net.layers[1].weight, before.layers[1].weight)
    if scheme != "pow2-4":
        binary = [m for m in net.layers if isinstance(m, quant.QuantLinear)
                  and m.kind.name == "binary"]
        assert binary == [] if scheme == "binary" else len(binary) == 2
        assert all(float(m.weight.detach().abs().max()) <= 1 for m in binary)
    tuned = quant.quantize_model(qm.float_module, "mlp", net.resolved_scheme(), qm.dataset,
                                 qat_state=net.state_dict())
    x = qm.dataset.x_test
    with torch.no_grad():
        fq = tuned.module(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(
        fq, dequantize(golden.run(tuned.graph, tuned.quantize_input(x)), tuned.graph.output_fmt))
    assert tuned.quantized_accuracy() > 0.5
