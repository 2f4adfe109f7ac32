"""Narrow accumulators in the schemes and the torch quantized model (hwgen/quant/modules.py):
the torch forward equals the golden model on layers that do overflow."""

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import hwgen
from hwgen import golden
from hwgen.errors import FormatError
from hwgen.numerics import quantize

X = torch.rand(40, 1, 8, 8) * 2


def model():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(1, 4, 3, padding=1, stride=(1, 2))), ("relu", nn.ReLU()),
        ("flat", nn.Flatten()), ("fc", nn.Linear(4 * 8 * 4, 5))]))


def scheme(tmp_path, entry):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"default": {"width": 8, **entry}}))
    return str(path)


@pytest.mark.parametrize("entry, message", [
    ({"acc_width": 1}, r"default: acc_width must be an integer from 2 to 62, not 1$"),
    ({"acc_width": "16"}, r"default: acc_width must be an integer from 2 to 62, not '16'$"),
    ({"acc_overflow": "clip"},
     r"default: acc_overflow must be one of saturate, wrap, not 'clip'$"),
])
def test_spec_errors(tmp_path, entry, message):
    with pytest.raises(FormatError, match=r"^Scheme file '.*s\.json' " + message):
        hwgen.quantize(model(), (1, 8, 8), X, scheme=scheme(tmp_path, entry))


@pytest.mark.parametrize("mode", ["saturate", "wrap"])
def test_torch_model_equals_golden(tmp_path, mode):
    q = hwgen.quantize(model(), (1, 8, 8), X,
                       scheme=scheme(tmp_path, {"acc_width": 12, "acc_overflow": mode}))
    dense = [layer for layer in q.graph.layers if hasattr(layer, "acc_width")]
    assert [(layer.acc_width, layer.acc_overflow) for layer in dense] == [(12, mode)] * 2
    xi = q.quantize_input(X)
    counts = golden.accumulator_overflows(q.graph, xi)
    assert counts["conv"] > 0 and counts["fc"] > 0
    want = golden.run(q.graph, xi)
    with torch.no_grad():
        got = quantize(q.module.eval()(X.double()), q.graph.output_fmt).numpy()
    np.testing.assert_array_equal(got, want)
    # the narrow accumulator changes the answers (else this test could not fail)
    plain = hwgen.quantize(model(), (1, 8, 8), X, scheme=scheme(tmp_path, {}))
    assert (plain.run_golden(X) != want).any()
    # the resolved scheme keeps the accumulator
    assert q.module.resolved_scheme().layer("fc", ["conv", "fc"]).acc_width == 12
