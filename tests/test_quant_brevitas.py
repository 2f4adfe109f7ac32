"""Brevitas models (hwgen/quant/brevitas.py): ``hwgen.quantize`` takes the formats of the
Brevitas quantizers and its golden model equals Brevitas' own quantized forward exactly;
the same model exported to QONNX loads through hwgen's reader with the same answers."""

import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch

import hwgen
from hwgen.data import digits
from hwgen.errors import ArgumentError, UnsupportedLayerError

qnn = pytest.importorskip("brevitas.nn", reason="needs Brevitas (pip install hwgen[brevitas])")
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFixedPoint,
    Int8WeightPerTensorFloat,
    Int32Bias,
    Uint8ActPerTensorFixedPoint,
)
from brevitas.quant.fixed_point import Int8WeightPerChannelFixedPoint


class Int4WeightPerTensorFixedPoint(Int8WeightPerTensorFixedPoint):
    bit_width = 4


class Int4WeightPerChannelFixedPoint(Int8WeightPerChannelFixedPoint):
    bit_width = 4


class Int4ActPerTensorFixedPoint(Int8ActPerTensorFixedPoint):
    bit_width = 4


class Uint4ActPerTensorFixedPoint(Uint8ActPerTensorFixedPoint):
    bit_width = 4


def brevitas_cnn(fc_weight_quant=Int8WeightPerTensorFixedPoint, bn=False, bits=8):
    """Input quantizer, a strided conv with per-tensor weights and an unsigned ReLU, a conv
    with per-channel weights, a signed ReLU, max-pool, a classifier without output
    quantizer (its output is Brevitas' exact float sum); 8-bit or (``bits=4``) 4-bit
    weights and activations after the input."""
    torch.manual_seed(0)
    four = bits == 4
    w_tensor = Int4WeightPerTensorFixedPoint if four else Int8WeightPerTensorFixedPoint
    w_channel = Int4WeightPerChannelFixedPoint if four else Int8WeightPerChannelFixedPoint
    unsigned = Uint4ActPerTensorFixedPoint if four else Uint8ActPerTensorFixedPoint
    signed_act = Int4ActPerTensorFixedPoint if four else Int8ActPerTensorFixedPoint
    act = {"act_quant": Int8ActPerTensorFixedPoint, "return_quant_tensor": True}
    layers = [
        ("inp", qnn.QuantIdentity(**act)),
        ("conv1", qnn.QuantConv2d(1, 4, 3, stride=2, padding=1, bias_quant=Int32Bias,
                                  weight_quant=w_tensor, return_quant_tensor=True)),
        ("relu1", qnn.QuantReLU(act_quant=unsigned, return_quant_tensor=True)),
        ("conv2", qnn.QuantConv2d(4, 6, 3, bias_quant=Int32Bias, weight_quant=w_channel,
                                  return_quant_tensor=True)),
        ("relu2", qnn.QuantReLU(act_quant=signed_act, return_quant_tensor=True)),
        ("pool", torch.nn.MaxPool2d(2)),
        ("flat", torch.nn.Flatten()),
        ("fc", qnn.QuantLinear(6, 10, bias_quant=Int32Bias, weight_quant=fc_weight_quant)),
    ]
    if bn:
        layers.insert(2, ("bn", torch.nn.BatchNorm2d(4)))
    return torch.nn.Sequential(OrderedDict(layers))


def train(model, steps=20):
    """A brief QAT run: Brevitas collects its activation ranges and the weights move."""
    ds = digits()
    x, y = torch.tensor(ds.x_train[:256]), torch.tensor(ds.y_train[:256])
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained():
    model = train(brevitas_cnn())
    x = digits().x_test
    with torch.no_grad():
        out = model(torch.tensor(x)).double().numpy()
    return model, x, out


def frac(scale):
    """F of a power-of-two scale 2**-F, from Brevitas' own numbers."""
    f = -np.log2(scale.detach().double().numpy().reshape(-1))
    assert np.all(f == np.round(f)), scale
    return [int(v) for v in f]


def test_golden_model_equals_the_brevitas_forward(trained):
    model, x, out = trained
    q = hwgen.quantize(model, (1, 8, 8), calibration=digits().x_train[:64])
    np.testing.assert_array_equal(q.predict(x), out)
    assert q.accuracy(x, digits().y_test) == np.mean(out.argmax(1) == digits().y_test)
    conv1, conv2, _, fc = q.graph.layers
    assert q.graph.input_fmt.frac == frac(model.inp.act_quant.scale())[0]
    assert [f.frac for f in conv1.w_fmts] == frac(model.conv1.quant_weight().scale) * 4
    assert [f.frac for f in conv2.w_fmts] == frac(model.conv2.quant_weight().scale)
    # Uint8 after a ReLU: 9 bits two's complement.
    assert (conv1.out_fmt.width, conv1.out_fmt.frac) == \
        (9, frac(model.relu1.act_quant.scale())[0])
    assert conv2.in_fmt == conv1.out_fmt
    # No quantizer after the classifier: its exact sums, at F_in + F_w.
    assert fc.out_fmt.frac == frac(model.relu2.act_quant.scale())[0] + \
        frac(model.fc.quant_weight().scale)[0]
    assert hwgen.compile(q, array="2x2").cycles.total > 0


def test_qonnx_export_gives_the_same_answers(trained, tmp_path):
    pytest.importorskip("onnxoptimizer", reason="Brevitas' QONNX export needs onnxoptimizer")
    model, x, out = trained
    path = tmp_path / "cnn.onnx"
    with warnings.catch_warnings():
        # Brevitas warns about optional kernels on import; the TorchScript exporter about
        # its deprecation.
        warnings.simplefilter("ignore")
        from brevitas.export import export_qonnx
        export_qonnx(model, torch.zeros(1, 1, 8, 8), str(path), dynamo=False)
    data = tmp_path / "d.npz"
    np.savez(data, x_calib=x[:10], x_test=x, y_test=digits().y_test)
    from hwgen.flow import load_quantized
    q = load_quantized(path, data=data)
    assert q.scheme.name == "qonnx"
    np.testing.assert_array_equal(q.predict(x), out)
    # the file through the CLI: compiled and simulated on Verilator, bit-exact
    from hwgen.cli import main
    assert main(["compile", str(path), "--data", str(data), "--array", "3x2", "--vectors",
                 "4", "--out", str(tmp_path / "design")]) == 0
    assert main(["simulate", str(tmp_path / "design"), "--samples", "4"]) == 0
    import json
    report = json.loads((tmp_path / "design" / "sim_report.json").read_text())
    assert report["bit_exact"] and report["cycles_match"]


def test_4_bit_quantizers_equal_the_brevitas_forward():
    model = train(brevitas_cnn(bits=4))
    x = digits().x_test
    with torch.no_grad():
        out = model(torch.tensor(x)).double().numpy()
    q = hwgen.quantize(model, (1, 8, 8), calibration=digits().x_train[:64])
    np.testing.assert_array_equal(q.predict(x), out)
    conv1, conv2, _, _ = q.graph.layers
    assert {f.width for f in conv1.w_fmts + conv2.w_fmts} == {4}
    assert (conv1.out_fmt.width, conv2.out_fmt.width) == (5, 4)    # Uint4 after a ReLU: 5


def test_brevitas_model_simulates_bit_exact(trained):
    model, x, _ = trained
    q = hwgen.quantize(model, (1, 8, 8), calibration=digits().x_train[:64])
    design = hwgen.compile(q, array="2x3")
    run = design.simulate(x[:5], digits().y_test[:5])
    np.testing.assert_array_equal(run.outputs, q.predict_int(x[:5]))
    assert run.report.bit_exact and run.report.cycles_match
    assert run.cycles == design.cycles


def test_a_scheme_cannot_override_brevitas():
    with pytest.raises(ArgumentError, match=r"^Model 'Sequential' is a Brevitas model whose "
                                            r"quantizers fix every format; leave out the "
                                            r"scheme 'fixed8'$"):
        hwgen.quantize(brevitas_cnn(), (1, 8, 8), scheme="fixed8")


def test_float_scales_and_batchnorm_are_refused():
    with pytest.raises(UnsupportedLayerError, match=r"^Quantizer 'fc\.weight_quant' has scale "
                                                    r"\S+, not a power of two; hwgen's fixed "
                                                    r"point needs power-of-two scales"):
        hwgen.quantize(brevitas_cnn(Int8WeightPerTensorFloat), (1, 8, 8))
    with pytest.raises(UnsupportedLayerError, match=r"^Node 'bn' \(BatchNorm2d\) is in a "
                                                    r"Brevitas model; hwgen would fold it"):
        hwgen.quantize(brevitas_cnn(bn=True), (1, 8, 8))
    model = brevitas_cnn()
    model.fc = torch.nn.Linear(6, 10)
    with pytest.raises(UnsupportedLayerError, match=r"^Layer 'fc' has float weights; hwgen "
                                                    r"reads models whose every layer's weights "
                                                    r"are quantized$"):
        hwgen.quantize(model, (1, 8, 8))
