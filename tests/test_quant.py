"""hwgen.quant: schemes, calibration, fake-quant modules, the quantized model."""

import functools
import json
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import hwgen
from hwgen import golden, ir, quant
from hwgen.data import digits
from hwgen.errors import ArgumentError, FormatError, HwgenError, ShapeError
from hwgen.flow import load_quantized
from hwgen.numerics import QFormat, dequantize, quantize, sqnr_db
from hwgen.quant import kinds


@functools.cache
def quantized(model, scheme):
    return load_quantized(model, scheme)


def write_json(tmp_path, obj, name="spec.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return str(p)


# --- schemes: construction and error messages -------------------------------------------

def test_unknown_scheme():
    with pytest.raises(FormatError, match=r"^Scheme must be one of fixed16, fixed8, fixed4, pow2-4, "
                                          r"bwn, ternary, binary, codebook-4, codebook-6 or a JSON file, not "
                                          r"'fixed3'$"):
        quant.load_scheme("fixed3")


def test_missing_scheme_file(tmp_path):
    p = str(tmp_path / "nope.json")
    with pytest.raises(FormatError, match=rf"^Scheme file '{p}' does not exist$"):
        quant.load_scheme(p)


def test_scheme_file_not_json(tmp_path):
    p = write_json(tmp_path, "{width: 8")
    with pytest.raises(FormatError, match=rf"^Scheme file '{p}' is not valid JSON \(.*\)$"):
        quant.load_scheme(p)


@pytest.mark.parametrize("spec,message", [
    ({"layers": {"fc": {"widht": 8}}},
     (r"layer 'fc' has unknown key 'widht'; keys are width, weight_width, out_width, frac, "
      r"weight_frac, per_channel, rounding, overflow, bias_width, binary_out, acc_width, "
      r"acc_overflow")),
    ({"default": {"width": 0}}, r"default: width must be an integer from 2 to 32, not 0"),
    # A signed 1-bit integer is {-1, 0}: refused (binary weights are the binary kind).
    ({"default": {"width": 1}}, r"default: width must be an integer from 2 to 32, not 1"),
    ({"default": {"width": True}}, r"default: width must be an integer from 2 to 32, not True"),
    ({"default": {"width": 1.5}}, r"default: width must be an integer from 2 to 32, not 1\.5"),
    ({"layers": {"fc": {"weight_width": 33}}},
     r"layer 'fc': weight_width must be an integer from 2 to 32, not 33"),
    ({"default": {"bias_width": 49}},
     r"default: bias_width must be an integer from 2 to 48, not 49"),
    ({"input": {"width": 1}}, r"input: width must be an integer from 2 to 32, not 1"),
    ({"layers": {"fc": {"weight_frac": [3, "x"]}}},
     r"layer 'fc': weight_frac entry must be an integer, not 'x'"),
    ({"layers": {"fc": {"kind": "pow3"}}}, r"layer 'fc': kind must be one of fixed, binary, codebook, pow2, ternary, not 'pow3'"),
    ({"layers": {"fc": 8}}, r"layer 'fc' must be a JSON object, not 8"),
    ({"default": {"frac": "big"}}, r"default: frac must be an integer or 'auto', not 'big'"),
    ({"layers": {"fc": {"rounding": "random"}}},
     (r"layer 'fc': rounding must be one of nearest_even, nearest_up, floor, stochastic, not "
     r"'random'")),
    ({"seed": -1}, r"seed must be a non-negative integer, not -1"),
    ({"default": {"overflow": "clip"}},
     r"default: overflow must be one of saturate, wrap, not 'clip'"),
    ({"input": {"width": 8, "signed": False}},
     r"input has unknown key 'signed'; keys are width, frac"),
    ({"precision": 8}, (r"has unknown key 'precision'; keys are name, input, default, first, last, layers, "
                    r"seed")),
])
def test_bad_spec_file(tmp_path, spec, message):
    p = write_json(tmp_path, spec)
    with pytest.raises(FormatError, match=rf"^Scheme file '{p}'( |: ){message}$"):
        quant.load_scheme(p)


def test_spec_names_unknown_layer(tmp_path):
    p = write_json(tmp_path, {"layers": {"conv9": {"width": 4}}}, "odd.json")
    with pytest.raises(FormatError, match=r"^Scheme 'odd' names layer 'conv9', which the model "
                                          r"does not have; its layers are conv1, conv2, "
                                          r"flatten, fc$"):
        load_quantized("builtin:digits-cnn", p)


def test_weight_frac_list_length_checked(tmp_path):
    p = write_json(tmp_path, {"layers": {"fc": {"weight_frac": [5, 6]}}})
    with pytest.raises(FormatError, match=r"^Layer 'fc' has 10 output channels, not the 2 "
                                          r"weight_frac entries of its spec$"):
        load_quantized("builtin:digits-cnn", p)


def test_builtin_schemes():
    s = quant.load_scheme("fixed4")
    assert (s.input_width, s.default.weight_width, s.default.out_width) == (4, 4, 4)
    assert (s.default.rounding, s.default.overflow, s.default.bias_width) == \
        ("nearest_even", "saturate", 32)


def test_scheme_json_round_trip():
    s = quantized("builtin:digits-cnn", "fixed8").scheme
    assert quant.scheme_from_json(json.loads(json.dumps(s.to_json()))) == s


# --- calibration ----------------------------------------------------------------------

def test_calibrate_exact_value():
    # 0.5 needs IL = -1, so F0 = 8 -- but Q(8,8) tops out at 127/256; F = 7 is exact.
    assert quant.calibrate_frac(np.array([0.5, -0.25]), 8) == 7


@pytest.mark.parametrize("scale,width", [(1.0, 8), (3.0, 8), (0.01, 4), (100.0, 16)])
def test_calibrate_maximises_sqnr(scale, width):
    x = np.random.default_rng(0).standard_normal(4000) * scale
    f = quant.calibrate_frac(x, width)
    il = math.ceil(math.log2(np.abs(x).max()))
    f0 = width - il - 1
    assert f0 - 1 <= f <= f0 + 3

    def s(ff):
        fmt = QFormat(width, ff)
        return sqnr_db(x, dequantize(quantize(x, fmt), fmt))
    assert all(s(f) >= s(g) for g in range(f0 - 1, f0 + 4))


def test_calibrate_clips_a_rare_outlier():
    x = np.append(np.random.default_rng(1).uniform(-1, 1, 100_000), 10.0)
    # IL = 4 gives F0 = 3; clipping the one outlier to 7.94 halves the step for the rest:
    # noise 1e5/(12*256) + 2.06**2 = 37 against 1e5/(12*64) = 130 at F0.
    assert quant.calibrate_frac(x, 8) == 4


def test_calibrate_zeros():
    assert quant.calibrate_frac(np.zeros(10), 8) == 6  # F0 - 1 already represents zeros


# --- fake quantization ------------------------------------------------------------------

def test_fake_quant_values_and_straight_through_gradient():
    fmt = QFormat(4, 2)  # range [-2, 1.75]
    x = torch.tensor([0.3, -0.9, 1.9, -3.0, 1.0], requires_grad=True)
    y = quant.fake_quant(x, fmt)
    np.testing.assert_array_equal(y.detach().numpy(), [0.25, -1.0, 1.75, -2.0, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 1, 0, 0, 1])


def test_fake_quant_wrap_passes_every_gradient():
    x = torch.tensor([0.3, 5.0], requires_grad=True)
    quant.fake_quant(x, QFormat(4, 2), overflow="wrap").sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 1])


def test_fake_quant_per_channel():
    w = torch.randn(3, 2, 2, dtype=torch.float64)
    fmts = (QFormat(6, 2), QFormat(6, 4), QFormat(6, 5))
    y = quant.fake_quant(w, fmts)
    for c, f in enumerate(fmts):
        np.testing.assert_array_equal(y[c].numpy(), dequantize(quantize(w[c].numpy(), f), f))


# --- the quantized model --------------------------------------------------------------

def test_quantized_model_fields():
    qm = quantized("builtin:digits-cnn", "fixed8")
    assert qm.name == "digits-cnn" and qm.arch == "digits-cnn" and qm.scheme.name == "fixed8"
    assert isinstance(qm.graph, ir.Graph)
    assert qm.graph.input_shape == (1, 8, 8) and qm.graph.output_shape == (10,)
    assert not qm.module.training and not qm.float_module.training
    assert qm.dataset.name == "digits"
    conv1, conv2, _, fc = qm.graph.layers
    assert (conv1.relu, conv1.pool, conv2.pool, fc.relu) == (True, 2, 2, False)
    for a, b in zip(qm.graph.layers, qm.graph.layers[1:]):
        assert (getattr(a, "out_fmt", None) or a.fmt) == (getattr(b, "in_fmt", None) or b.fmt)
    assert qm.graph.input_fmt == conv1.in_fmt
    for layer in (conv1, conv2, fc):
        assert all(f.width == 8 and f.signed for f in layer.w_fmts)
        assert layer.weight.min() >= -128 and layer.weight.max() <= 127
        assert np.abs(layer.bias).max() < 2 ** 31
        assert (layer.rounding, layer.overflow) == ("nearest_even", "saturate")


def test_quantize_input_is_numerics_quantize():
    qm = quantized("builtin:digits-cnn", "fixed4")
    x = qm.dataset.x_test[:10]
    xi = qm.quantize_input(x)
    assert xi.dtype == np.int64
    np.testing.assert_array_equal(xi, quantize(x, qm.graph.input_fmt))
    np.testing.assert_array_equal(qm.quantize_input(torch.tensor(x)), xi)


def test_layer_table():
    qm = quantized("builtin:digits-cnn", "fixed8")
    rows = qm.layer_table()
    assert [r.name for r in rows] == ["conv1", "conv2", "flatten", "fc"]
    assert [r.kind for r in rows] == ["Conv2d 3x3+ReLU+MaxPool2", "Conv2d 3x3+ReLU+MaxPool2",
                                      "Flatten", "Linear"]
    assert [r.weight_bytes for r in rows] == [72, 2304, 0, 1280]
    assert [r.bias_bytes for r in rows] == [32, 128, 0, 40]
    assert all(20 < r.sqnr_db < 60 for r in rows)
    assert rows[2].sqnr_db == rows[1].sqnr_db  # flatten moves nothing
    assert json.loads(json.dumps([r.to_json() for r in rows]))[0]["name"] == "conv1"


def test_accuracy_of_shipped_models():
    for model, floor8 in (("builtin:digits-cnn", 0.97), ("builtin:mlp", 0.95)):
        qm = quantized(model, "fixed8")
        assert qm.float_accuracy() >= 0.95
        assert qm.quantized_accuracy() >= floor8
    assert quantized("builtin:digits-cnn", "fixed4").quantized_accuracy() >= 0.9


def test_quantized_accuracy_is_the_golden_models():
    qm = quantized("builtin:mlp", "fixed4")
    pred = np.argmax(golden.run(qm.graph, qm.quantize_input(qm.dataset.x_test)), axis=1)
    assert qm.quantized_accuracy() == np.mean(pred == qm.dataset.y_test)


def test_report_table_text():
    report = quantized("builtin:mlp", "fixed8").report()
    text = report.format_table()
    assert text.splitlines()[1].split() == ["layer", "kind", "in", "weights", "out", "SQNR",
                                            "dB", "overflow", "weight", "B", "bias", "B"]
    assert "fc1" in text and "Linear+ReLU" in text
    assert report.to_json()["scheme"] == "fixed8"


def test_json_spec_per_layer(tmp_path):
    p = write_json(tmp_path, {
        "input": {"width": 8, "frac": 7},
        "default": {"width": 8},
        "layers": {"conv1": {"weight_width": 4, "per_channel": True},
                   "conv2": {"width": 6, "rounding": "floor", "overflow": "wrap"},
                   "fc": {"width": 16, "frac": 10, "weight_frac": 9,
                          "rounding": "nearest_up"}}}, "mixed.json")
    qm = load_quantized("builtin:digits-cnn", p)
    assert qm.scheme.name == "mixed"
    conv1, conv2, _, fc = qm.graph.layers
    assert qm.graph.input_fmt == QFormat(8, 7)
    assert {f.width for f in conv1.w_fmts} == {4} and conv1.out_fmt.width == 8
    assert (conv2.out_fmt.width, conv2.rounding, conv2.overflow) == (6, "floor", "wrap")
    assert fc.out_fmt == QFormat(16, 10) and set(fc.w_fmts) == {QFormat(16, 9)}
    assert fc.rounding == "nearest_up"
    x = qm.dataset.x_test
    with torch.no_grad():
        fq = qm.module(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(
        fq, dequantize(golden.run(qm.graph, qm.quantize_input(x)), qm.graph.output_fmt))


def test_resolved_scheme_rebuilds_the_same_graph():
    qm = quantized("builtin:digits-cnn", "fixed8")
    net = quant.build_network(qm.stages, (1, 8, 8), qm.scheme)  # no calibration data needed
    g = net.to_graph()
    for a, b in zip(g.layers, qm.graph.layers):
        assert type(a) is type(b)
        if isinstance(a, ir.Conv2d | ir.Linear):
            assert (a.in_fmt, a.w_fmts, a.out_fmt) == (b.in_fmt, b.w_fmts, b.out_fmt)
            np.testing.assert_array_equal(a.weight, b.weight)
            np.testing.assert_array_equal(a.bias, b.bias)


def test_auto_formats_need_calibration_data():
    qm = quantized("builtin:mlp", "fixed8")
    with pytest.raises(FormatError, match=r"^Scheme 'fixed8' has 'auto' activation formats and "
                                          r"needs calibration data$"):
        quant.build_network(qm.stages, (1, 8, 8), "fixed8")


def test_qat_fine_tuning_moves_weights_and_keeps_exactness():
    from hwgen.train import train_qat
    qm = quantized("builtin:mlp", "fixed4")
    net = train_qat(qm.float_module, "mlp", qm.dataset, "fixed4", epochs=1)
    assert net.layers[1].weight.dtype == torch.float32
    assert not torch.equal(net.layers[1].weight.double(), qm.module.layers[1].weight)
    tuned = quant.quantize_model(qm.float_module, "mlp", net.resolved_scheme(), qm.dataset,
                                 qat_state=net.state_dict())
    x = qm.dataset.x_test
    with torch.no_grad():
        fq = tuned.module(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(
        fq, dequantize(golden.run(tuned.graph, tuned.quantize_input(x)), tuned.graph.output_fmt))


# --- quantizer kinds --------------------------------------------------------------------

def test_fixed_is_the_registered_default_kind():
    assert kinds.DEFAULT_KIND == "fixed" and isinstance(kinds.get_kind("fixed"), quant.FixedKind)
    assert quant.LayerSpec is quant.FixedSpec and quant.FixedSpec().kind == "fixed"
    with pytest.raises(FormatError, match=r"^Quantizer kind must be one of fixed, binary, codebook, pow2, ternary, not 'pow3'$"):
        kinds.get_kind("pow3")


def test_register_kind_refuses_a_second_registration_and_non_kinds():
    with pytest.raises(ArgumentError, match=r"^Quantizer kind 'fixed' is already registered$"):
        kinds.register_kind("fixed")(type("Again", (quant.FixedKind,), {}))
    with pytest.raises(ArgumentError, match=r"^Quantizer kind 'odd' must be a QuantKind "
                                            r"subclass, not <class 'int'>$"):
        kinds.register_kind("odd")(int)


@dataclass(frozen=True)
class CoarseSpec(quant.FixedSpec):
    kind = "coarse"


class CoarseKind(quant.FixedKind):
    """A test kind: fixed point with one fractional bit fewer than calibration picks."""

    spec_type = CoarseSpec
    calls = 0

    def weight_formats(self, layer_name, weight, spec):
        return tuple(QFormat(f.width, f.frac - 1)
                     for f in super().weight_formats(layer_name, weight, spec))

    def fake_quant(self, weight, w_fmts):
        type(self).calls += 1
        return super().fake_quant(weight, w_fmts)


@pytest.fixture
def coarse_kind():
    kinds.register_kind("coarse")(CoarseKind)
    yield kinds.KINDS["coarse"]
    del kinds.KINDS["coarse"]


def test_a_new_kind_is_one_class_and_a_registration(tmp_path, coarse_kind):
    p = write_json(tmp_path, {"layers": {"fc1": {"kind": "coarse", "width": 6}}}, "c.json")
    s = quant.load_scheme(p)
    assert s.layer("fc1") == CoarseSpec(6, 6) and s.layer("fc2") == quant.FixedSpec()
    assert s.to_json()["layers"]["fc1"]["kind"] == "coarse"
    assert "kind" not in s.to_json()["default"]
    assert quant.scheme_from_json(s.to_json()) == s
    qm = load_quantized("builtin:mlp", p)
    base = quantized("builtin:mlp", "fixed8")
    fc1 = qm.graph.layers[1]
    assert qm.module.layers[1].kind is coarse_kind and qm.scheme.layer("fc1").kind == "coarse"
    assert set(fc1.w_fmts) == {QFormat(6, quant.calibrate_frac(qm.stages[1].weight, 6) - 1)}
    assert qm.graph.layers[2].w_fmts == base.graph.layers[2].w_fmts
    x = qm.dataset.x_test
    CoarseKind.calls = 0
    with torch.no_grad():
        fq = qm.module(torch.tensor(x, dtype=torch.float64)).numpy()
    assert CoarseKind.calls == 1
    np.testing.assert_array_equal(
        fq, dequantize(golden.run(qm.graph, qm.quantize_input(x)), qm.graph.output_fmt))


# --- quantize(): any traceable module -----------------------------------------------------

def user_cnn():
    torch.manual_seed(7)
    return nn.Sequential(OrderedDict([
        ("stem", nn.Conv2d(1, 5, 5, stride=2, padding=2)),
        ("act1", nn.ReLU()),
        ("body", nn.Conv2d(5, 7, 3)),
        ("act2", nn.ReLU()),
        ("pool", nn.MaxPool2d(2)),
        ("flat", nn.Flatten()),
        ("head", nn.Linear(7, 10)),
    ]))


@pytest.mark.parametrize("scheme", ["fixed8", "fixed4", "fixed16"])
def test_quantize_a_user_module_is_bit_exact(scheme):
    ds = digits()
    module = user_cnn()
    q = hwgen.quantize(module, input_shape=(1, 8, 8), calibration=ds.x_train, scheme=scheme)
    assert hwgen.quantize is quant.quantize
    assert (q.name, q.arch, q.dataset, q.scheme.name) == ("Sequential", None, None, scheme)
    assert [type(n).__name__ for n in q.graph.layers] == ["Conv2d", "Conv2d", "Flatten",
                                                          "Linear"]
    stem, body, _, head = q.graph.layers
    assert (stem.stride, stem.padding, stem.relu, body.pool, head.relu) == (2, 2, True, 2, False)
    x = ds.x_test
    with torch.no_grad():
        fq = q.module(torch.tensor(x, dtype=torch.float64)).numpy()
    g = golden.run(q.graph, q.quantize_input(x))
    np.testing.assert_array_equal(fq, dequantize(g, q.graph.output_fmt))
    assert len(np.unique(g, axis=0)) > 10  # the output depends on the image
    np.testing.assert_array_equal(q.classify(x), np.argmax(g, axis=1))
    np.testing.assert_array_equal(q.predict_int(x), g)
    np.testing.assert_array_equal(q.predict(x), fq)


def test_quantize_a_user_module_reports_without_a_data_set():
    ds = digits()
    q = quant.quantize(user_cnn(), (1, 8, 8), torch.tensor(ds.x_train[:300]), "fixed8",
                       name="my net")
    assert q.graph.name == "my_net" and q.calibration.shape == (300, 1, 8, 8)
    report = q.report()
    assert (report.dataset, report.float_accuracy, report.quantized_accuracy) == (None,) * 3
    assert report.test_images == 300
    assert [r.name for r in report.layers] == ["stem", "body", "flat", "head"]
    assert all(15 < r.sqnr_db < 60 for r in report.layers)
    assert report.format_table().splitlines()[-1] == \
        "no test set: SQNR measured on 300 calibration inputs"
    assert json.loads(json.dumps(report.to_json()))["dataset"] is None
    # Accuracy needs labelled images; given some, it works without a data set.
    assert q.quantized_accuracy(ds.x_test, ds.y_test) == \
        np.mean(q.classify(ds.x_test) == ds.y_test)
    with pytest.raises(ArgumentError, match=r"^Model 'my net' has no data set; give test "
                                            r"images and labels$"):
        q.float_accuracy()


def test_quantize_matches_the_built_in_path():
    qm = quantized("builtin:digits-cnn", "fixed8")
    q = quant.quantize(qm.float_module, (1, 8, 8), qm.dataset.x_train, "fixed8",
                       name="digits-cnn", dataset=qm.dataset)
    assert q.scheme == qm.scheme
    for a, b in zip(q.graph.layers, qm.graph.layers):
        assert getattr(a, "w_fmts", None) == getattr(b, "w_fmts", None)
        if isinstance(a, ir.Conv2d | ir.Linear):
            np.testing.assert_array_equal(a.weight, b.weight)
    assert q.report() == qm.report()


@pytest.mark.parametrize("kwargs,error,message", [
    ({"module": "net"}, ArgumentError, r"Module must be a torch\.nn\.Module, not 'net'"),
    ({"input_shape": (1, 0, 8)}, ArgumentError,
     r"Input shape must be a tuple of positive integers, not \(1, 0, 8\)"),
    ({"input_shape": 64}, ArgumentError,
     r"Input shape must be a tuple of positive integers, not 64"),
    ({"calibration": np.zeros((5, 64), np.float32)}, ShapeError,
     r"Calibration data must have shape \(N, 1, 8, 8\) with N >= 1, not \(5, 64\)"),
    ({"calibration": np.zeros((0, 1, 8, 8))}, ShapeError,
     r"Calibration data must have shape \(N, 1, 8, 8\) with N >= 1, not \(0, 1, 8, 8\)"),
    ({"calibration": np.full((2, 1, 8, 8), np.nan)}, ArgumentError,
     r"Calibration data holds 128 non-finite values"),
    ({"calibration": [["a"]]}, ArgumentError,
     r"Calibration data must be an array of numbers, not 'list'"),
    ({"scheme": "fixed0"}, FormatError,
     r"Scheme must be one of fixed16, fixed8, fixed4, pow2-4, bwn, ternary, binary, codebook-4, codebook-6 or a JSON file, not 'fixed0'"),
    ({"name": ""}, ArgumentError, r"Model name must be a non-empty string, not ''"),
])
def test_quantize_refuses_bad_arguments(kwargs, error, message):
    args = {"module": user_cnn(), "input_shape": (1, 8, 8),
            "calibration": np.zeros((2, 1, 8, 8), np.float32), "scheme": "fixed8", **kwargs}
    with pytest.raises(error, match=rf"^{message}$"):
        quant.quantize(**args)


def test_quantize_refuses_non_finite_parameters():
    module = user_cnn()
    with torch.no_grad():
        module.body.weight[0, 0, :, 0] = float("nan")
        module.head.bias[3] = float("inf")
    with pytest.raises(ArgumentError, match=r"^Model 'Sequential' tensor 'body\.weight' holds "
                                            r"3 non-finite values$"):
        quant.quantize(module, (1, 8, 8), np.zeros((2, 1, 8, 8)))


def test_errors_are_hwgen_errors():
    for error in (ArgumentError, FormatError, ShapeError):
        assert issubclass(error, HwgenError)


def test_import_hwgen_stays_light_and_old_names_still_work():
    import subprocess
    import sys
    code = ("import sys, hwgen; print('torch' in sys.modules); hwgen.quantize; "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout == "False\nTrue\n"
    assert quant.load_quantized is load_quantized
    with pytest.raises(AttributeError, match=r"^module 'hwgen\.quant' has no attribute 'nope'$"):
        quant.nope  # noqa: B018
