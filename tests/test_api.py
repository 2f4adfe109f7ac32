"""The Python API (hwgen/api.py): users' own models through quantize → compile → Verilator,
bit-exact against the golden model, cycles as predicted."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import hwgen
from hwgen.api import Cycles, Design
from hwgen.data import digits
from hwgen.errors import ArgumentError, ShapeError, SimulationMismatch
from hwgen.numerics import dequantize


def seq(*layers):
    return nn.Sequential(OrderedDict(layers))


def issue_cnn():
    """The model of the issue: a strided 5×5 conv, a 3×3 conv, max-pool, classifier."""
    return seq(("conv1", nn.Conv2d(1, 5, 5, stride=2, padding=2)), ("relu1", nn.ReLU()),
               ("conv2", nn.Conv2d(5, 7, 3)), ("relu2", nn.ReLU()),
               ("pool", nn.MaxPool2d(2)), ("flat", nn.Flatten()), ("fc", nn.Linear(7, 10)))


class BnMlp(nn.Module):
    """BatchNorm1d after a Linear, Dropout, a functional ReLU, x.view(x.size(0), -1)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 24)
        self.bn = nn.BatchNorm1d(24)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(24, 10)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        return self.fc2(self.drop(nn.functional.relu(self.bn(self.fc1(x)))))


def bn_mlp():
    return BnMlp()


def rect_cnn():
    """No biases, a 3×2 kernel with stride (2, 1), ReLU6, Identity and Dropout."""
    return seq(("conv", nn.Conv2d(1, 6, (3, 2), stride=(2, 1), padding=1, bias=False)),
               ("id", nn.Identity()), ("relu6", nn.ReLU6()), ("pool", nn.MaxPool2d(2)),
               ("drop", nn.Dropout2d(0.1)), ("flat", nn.Flatten()),
               ("fc", nn.Linear(6 * 2 * 4, 10, bias=False)))


def train(make, epochs=8, seed=0):
    """A brief float training on the digits of the model ``make()`` builds (enough to be far
    above chance); seeded before the model is built, so that its initial weights do not
    depend on which tests ran before."""
    torch.manual_seed(seed)
    model = make()
    ds = digits()
    x, y = torch.tensor(ds.x_train), torch.tensor(ds.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def issue_model():
    ds = digits()
    return hwgen.quantize(train(issue_cnn), input_shape=(1, 8, 8), calibration=ds.x_train,
                          scheme="fixed8", name="issue")


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sim_build")


# --- errors ---------------------------------------------------------------------------

def test_compile_needs_a_quantized_model():
    with pytest.raises(ArgumentError, match=r"^Model must be a QuantizedModel from "
                                            r"hwgen.quantize, not 'Sequential'$"):
        hwgen.compile(issue_cnn())


def test_compile_checks_the_array(issue_model):
    with pytest.raises(ArgumentError, match=r"^Array shape must be written ROWSxCOLS like "
                                            r"'4x4', not 'four'$"):
        hwgen.compile(issue_model, array="four")


def test_simulate_checks_the_inputs(issue_model):
    design = hwgen.compile(issue_model)
    with pytest.raises(ShapeError, match=r"^Inputs must have shape \(N, 1, 8, 8\) with "
                                         r"N >= 1, not \(3, 64\)$"):
        design.simulate(np.zeros((3, 64), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"^Labels must be 2 integers, not an array of shape "
                                         r"\(3,\) and dtype 'int64'$"):
        design.write("unused", np.zeros((2, 1, 8, 8)), np.zeros(3, dtype=np.int64))


# --- behaviour ------------------------------------------------------------------------

def test_predict_is_the_golden_model(issue_model):
    q = issue_model
    ds = digits()
    words = q.predict_int(ds.x_test)
    assert words.dtype == np.int64 and words.shape == (len(ds.x_test), 10)
    np.testing.assert_array_equal(q.predict(ds.x_test), dequantize(words, q.graph.output_fmt))
    with torch.no_grad():
        fq = q.module(torch.tensor(ds.x_test, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(q.predict(ds.x_test), fq)
    np.testing.assert_array_equal(q.classify(ds.x_test), words.argmax(1))
    assert q.accuracy(ds.x_test, ds.y_test) == np.mean(words.argmax(1) == ds.y_test)
    assert q.accuracy(ds.x_test, ds.y_test) > 0.8
    assert [r.name for r in q.report().layers] == ["conv1", "conv2", "flat", "fc"]


def test_cycles_are_the_compilers(issue_model):
    design = hwgen.compile(issue_model, array="2x3")
    assert isinstance(design, Design)
    assert list(design.cycles.per_layer) == ["conv1", "conv2", "fc"]
    assert design.cycles.total == design.compiled.cycles == sum(design.cycles.per_layer.values())
    assert design.cycles == Cycles(dict(design.cycles.per_layer), design.cycles.total)


def test_write(issue_model, tmp_path):
    from hwgen.emit import read_vectors
    design = hwgen.compile(issue_model)
    out = design.write(tmp_path / "d", vectors=5)
    assert (out / "hwgen_top.v").is_file()
    inputs, expected, labels = read_vectors(out)
    ds = digits()
    # No data set: the vectors are the first calibration inputs, unlabelled.
    np.testing.assert_array_equal(expected, issue_model.predict_int(ds.x_train[:5]))
    np.testing.assert_array_equal(labels, [-1] * 5)
    assert inputs.shape == (5, 64)
    design.write(out, ds.x_test, ds.y_test, vectors=3)
    inputs, expected, labels = read_vectors(out)
    np.testing.assert_array_equal(expected, issue_model.predict_int(ds.x_test[:3]))
    np.testing.assert_array_equal(labels, ds.y_test[:3])


@pytest.mark.parametrize("make, shape, array", [
    (issue_cnn, (1, 8, 8), "4x4"),
    (bn_mlp, (1, 8, 8), "3x5"),
    (rect_cnn, (1, 8, 8), "2x3"),
])
def test_user_models_on_verilator(make, shape, array, build_dir):
    ds = digits()
    model = train(make)
    q = hwgen.quantize(model, input_shape=shape, calibration=ds.x_train, scheme="fixed8",
                       name=make.__name__)
    assert q.accuracy(ds.x_test, ds.y_test) > 0.7
    design = hwgen.compile(q, array=array)
    x = ds.x_test[:6]
    run = design.simulate(x, ds.y_test[:6], build_dir=build_dir)
    np.testing.assert_array_equal(run.outputs, q.predict_int(x))
    assert run.cycles == design.cycles
    assert run.report.bit_exact and run.report.cycles_match


def test_simulate_raises_on_a_wrong_word(issue_model, build_dir, monkeypatch):
    design = hwgen.compile(issue_model, array="4x4")
    real = type(issue_model).predict_int

    def off_by_one(self, x, batch=4096):
        words = real(self, x, batch).copy()
        words[0, 3] += 1
        return words

    monkeypatch.setattr(type(issue_model), "predict_int", off_by_one)
    with pytest.raises(SimulationMismatch, match=r"^The hardware differs from the golden "
                                                 r"model in 1 words \(samples \[0\]\)$"):
        design.simulate(digits().x_test[:2], build_dir=build_dir)
