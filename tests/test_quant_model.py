"""hwgen.quantize on layers of users' small models (hwgen/quant/model.py): clamps folded into
saturation, layers the accelerator cannot run refused before calibrating."""

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import hwgen
from hwgen import golden
from hwgen.errors import UnsupportedLayerError
from hwgen.numerics import dequantize, quantize


def seq(*layers):
    return nn.Sequential(OrderedDict(layers))


X = torch.rand(200, 1, 8, 8) * 2


@pytest.mark.parametrize("layers, message", [
    ((("conv", nn.Conv2d(1, 2, 3)), ("avg", nn.AvgPool2d(2))),
     (r"Layer 'avg' \(AvgPool2d\) cannot run on the accelerator, which has no average pooling; "
     r"downsample with a strided Conv2d, or with a MaxPool2d directly after a Conv2d, "
     r"instead")),
    ((("conv", nn.Conv2d(1, 2, 3, padding=1)), ("p1", nn.MaxPool2d(2)),
      ("p2", nn.MaxPool2d(2))),
     (r"Layer 'p2' \(MaxPool2d\) cannot run on the accelerator, which max-pools only inside "
     r"the Conv2d directly before the pool, and it follows 'conv', a Conv2d that pools "
     r"already")),
    ((("pool", nn.MaxPool2d(2)), ("conv", nn.Conv2d(1, 2, 3))),
     (r"Layer 'pool' \(MaxPool2d\) cannot run on the accelerator, which max-pools only inside "
     r"the Conv2d directly before the pool, and it follows the input")),
])
def test_refuses_pools_the_accelerator_has_not(layers, message):
    with pytest.raises(UnsupportedLayerError, match=rf"^{message}$"):
        hwgen.quantize(seq(*layers), (1, 8, 8), X)
    # The golden model alone runs them.
    q = hwgen.quantize(seq(*layers), (1, 8, 8), X, hardware=False)
    assert len(q.graph.layers) == 2


def test_fixed_format_outside_the_clamp_is_refused(tmp_path):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"default": {"width": 8, "frac": 4}}))
    model = seq(("conv", nn.Conv2d(1, 2, 3)), ("r6", nn.ReLU6()))
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Layer 'conv' clamps its outputs to \[0\.0, 6\.0\] "
                             r"\(ReLU6/Hardtanh\), which hwgen folds into saturation, but its "
                             r"output format Q\S+ saturates at \[-8\.0, 7\.9375\]; give it a "
                             r"frac that saturates within the clamp, or use ReLU$"):
        hwgen.quantize(model, (1, 8, 8), X, scheme=str(spec))


def clamp_reference(layer, x_int, lo, hi):
    """q(clamp(acc·2**-F_acc, lo, hi)): the float clamp first, then one quantization."""
    acc = x_int.reshape(len(x_int), -1) @ layer.weight.reshape(layer.out_channels, -1).T
    if layer.bias is not None:
        acc = acc + layer.bias
    value = acc.astype(np.float64) * 2.0 ** -layer.acc_frac
    return quantize(np.clip(value, lo, hi), layer.out_fmt, layer.rounding, layer.overflow)


@pytest.mark.parametrize("act, lo, hi", [(nn.ReLU6(), 0.0, 6.0), (nn.Hardtanh(-1.0, 1.0), -1, 1),
                                         (nn.Hardtanh(-3.0, 0.25), -3.0, 0.25)])
def test_clamp_folds_into_saturation_exactly(act, lo, hi):
    torch.manual_seed(0)
    fc = nn.Linear(16, 12)
    with torch.no_grad():
        fc.weight *= 8
    x = torch.rand(300, 16) * 4 - 2
    q = hwgen.quantize(seq(("fc", fc), ("act", act)), (16,), x)
    (layer,) = q.graph.layers
    fmt = layer.out_fmt
    assert fmt.max_value <= hi and (layer.relu or fmt.min_value >= lo)
    xi = q.quantize_input(x)
    out = golden.run(q.graph, xi)
    np.testing.assert_array_equal(out, clamp_reference(layer, xi, lo, hi))
    with torch.no_grad():
        np.testing.assert_array_equal(q.module(x.double()).numpy(), dequantize(out, fmt))
    assert (out == fmt.max_int).any()  # the clamp binds
