"""hwgen.frontend: torch.fx tracing, BatchNorm folding, ReLU/pool fusion, refusals."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwgen import models
from hwgen.errors import ShapeError, UnsupportedLayerError
from hwgen.frontend import (
    AvgPoolStage,
    ConvStage,
    FlattenStage,
    LinearStage,
    MaxPoolStage,
    float_forward,
    handles,
    trace,
)

CHAIN = ("hwgen lowers chains of Conv2d, Linear, ReLU, ReLU6, Hardtanh, MaxPool2d, Flatten "
         r"\(or x\.view\(x\.size\(0\), -1\)\), BatchNorm, Dropout and Identity")


def seq(*layers):
    return nn.Sequential(OrderedDict(layers))


class Add(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return torch.add(y, y)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


class Skip(nn.Module):
    """A branch without any arithmetic op: the second conv reads the input again."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 1, 3, padding=1)
        self.b = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        self.a(x)
        return self.b(x)


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(144, 3)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = torch.flatten(x, 1)
        return self.fc(x).relu()


# --- refusals, messages first -----------------------------------------------------------

def test_refuses_torch_add_naming_the_node():
    with pytest.raises(UnsupportedLayerError,
                       match=rf"^Node 'add' \(torch\.add\) is not supported; {CHAIN}$"):
        trace(Add(), (1, 8, 8))


def test_refuses_operator_add():
    with pytest.raises(UnsupportedLayerError,
                       match=rf"^Node 'add' \(operator\.add\) is not supported; {CHAIN}$"):
        trace(Residual(), (2, 8, 8))


def test_refuses_unsupported_module():
    model = seq(("conv", nn.Conv2d(1, 2, 3)), ("act", nn.GELU()))
    with pytest.raises(UnsupportedLayerError,
                       match=rf"^Node 'act' \(GELU\) is not supported; {CHAIN}$"):
        trace(model, (1, 8, 8))


def test_refuses_branch():
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Node 'b' \(Conv2d\) does not take the previous node 'a' as its "
                             rf"only input; {CHAIN}$"):
        trace(Skip(), (1, 8, 8))


@pytest.mark.parametrize("layer,message", [
    (nn.Conv2d(1, 2, 3, groups=1, dilation=2),
     r"Node 'bad' \(Conv2d\) has dilation=\(2, 2\); hwgen supports only \(1, 1\)"),
    (nn.Conv2d(2, 2, 3, groups=2),
     r"Node 'bad' \(Conv2d\) has groups=2; hwgen supports only 1"),
    (nn.Conv2d(1, 2, 3, padding=(1, 0)),
     r"Node 'bad' \(Conv2d\) must have a square padding, not \(1, 0\)"),
    (nn.MaxPool2d(3, stride=2),
     (r"Node 'bad' \(MaxPool2d\) has stride 2 and kernel 3; hwgen supports max-pooling with "
      r"stride equal to the kernel")),
    (nn.AvgPool2d(3),
     (r"Node 'bad' \(AvgPool2d\) has kernel 3; hwgen needs a kernel area that is a power of "
      r"two")),
    (nn.MaxPool2d(2, ceil_mode=True),
     r"Node 'bad' \(MaxPool2d\) has ceil_mode=True; hwgen pools in floor mode"),
])
def test_refuses_unsupported_parameters(layer, message):
    cin = layer.in_channels if isinstance(layer, nn.Conv2d) else 2
    with pytest.raises(UnsupportedLayerError, match=rf"^{message}$"):
        trace(seq(("bad", layer)), (cin, 8, 8))


def test_refuses_relu_without_layer():
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Node 'relu' \(ReLU\) must follow a Conv2d or Linear layer; "
                             r"hwgen fuses ReLU into the layer before it$"):
        trace(seq(("relu", nn.ReLU()), ("conv", nn.Conv2d(1, 1, 3))), (1, 8, 8))


def test_refuses_batchnorm_after_relu():
    model = seq(("conv", nn.Conv2d(1, 2, 3)), ("relu", nn.ReLU()), ("bn", nn.BatchNorm2d(2)))
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Node 'bn' \(BatchNorm2d\) must directly follow a Conv2d layer "
                             r"to be folded into it$"):
        trace(model, (1, 8, 8))


def test_refuses_untraceable_model():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(UnsupportedLayerError,
                       match=r"^Model 'Branchy' cannot be traced by torch\.fx \(.*\)$"):
        trace(Branchy(), (4,))


def test_linear_needs_flat_input():
    with pytest.raises(ShapeError, match=r"^Layer 'fc' expects a flat input of 8 features, not "
                                         r"shape \(1, 8, 8\); flatten it first$"):
        trace(seq(("fc", nn.Linear(8, 2))), (1, 8, 8))


def test_conv_channels_checked():
    with pytest.raises(ShapeError, match=r"^Layer 'conv' expects 3 input channels, not input "
                                         r"shape \(1, 8, 8\)$"):
        trace(seq(("conv", nn.Conv2d(3, 2, 3))), (1, 8, 8))


# --- behaviour ------------------------------------------------------------------------

def test_digits_cnn_stages():
    stages = trace(models.build("digits-cnn").eval(), (1, 8, 8))
    assert [type(s) for s in stages] == [ConvStage, ConvStage, FlattenStage, LinearStage]
    c1, c2, fl, fc = stages
    assert (c1.relu, c1.pool, c1.padding, c1.out_shape) == (True, 2, 1, (8, 4, 4))
    assert (c2.relu, c2.pool, c2.out_shape) == (True, 2, (32, 2, 2))
    assert c1.sources == ("conv1", "bn1", "relu1", "pool1")
    assert fl.out_shape == (128,) and fc.out_shape == (10,) and not fc.relu


def test_pool_then_relu_fuses_the_same():
    a = seq(("conv", nn.Conv2d(1, 2, 3)), ("relu", nn.ReLU()), ("pool", nn.MaxPool2d(2)))
    b = seq(("conv", nn.Conv2d(1, 2, 3)), ("pool", nn.MaxPool2d(2)), ("relu", nn.ReLU()))
    b.load_state_dict(a.state_dict())
    sa, sb = trace(a, (1, 8, 8)), trace(b, (1, 8, 8))
    assert len(sa) == len(sb) == 1
    assert (sa[0].relu, sa[0].pool) == (sb[0].relu, sb[0].pool) == (True, 2)


def test_second_pool_stands_alone():
    model = seq(("conv", nn.Conv2d(1, 2, 3, padding=1)), ("p1", nn.MaxPool2d(2)),
                ("p2", nn.MaxPool2d(2)), ("avg", nn.AvgPool2d(2)))
    stages = trace(model, (1, 16, 16))
    assert [type(s) for s in stages] == [ConvStage, MaxPoolStage, AvgPoolStage]
    assert stages[-1].out_shape == (2, 2, 2)


def test_dropout_and_identity_vanish():
    model = seq(("flat", nn.Flatten()), ("drop", nn.Dropout(0.5)), ("fc", nn.Linear(16, 4)),
                ("id", nn.Identity()), ("relu", nn.ReLU()), ("d2", nn.Dropout()))
    stages = trace(model, (1, 4, 4))
    assert [type(s) for s in stages] == [FlattenStage, LinearStage]
    assert stages[1].relu


def test_functional_forms():
    stages = trace(Functional(), (1, 8, 8))
    assert [type(s) for s in stages] == [ConvStage, FlattenStage, LinearStage]
    assert stages[0].relu and stages[2].relu


def test_flat_input_needs_no_flatten():
    stages = trace(seq(("flat", nn.Flatten()), ("fc", nn.Linear(6, 2))), (6,))
    assert [type(s) for s in stages] == [LinearStage]


def randomize_batchnorm(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) * 3 + 0.1)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return model.eval()


def test_batchnorm_folding_preserves_the_function():
    torch.manual_seed(0)
    model = randomize_batchnorm(models.build("digits-cnn"))
    x = torch.rand(64, 1, 8, 8, dtype=torch.float64)
    stages = trace(model, (1, 8, 8))
    assert all("bn" not in s.name for s in stages)
    with torch.no_grad():
        ref = model.double()(x)
    # Float arithmetic in a different order: close, not equal.
    np.testing.assert_allclose(float_forward(stages, x).numpy(), ref.numpy(), rtol=1e-10,
                               atol=1e-12)


def test_batchnorm1d_folds_into_linear():
    model = seq(("fc1", nn.Linear(5, 4)), ("bn", nn.BatchNorm1d(4)), ("relu", nn.ReLU()),
                ("fc2", nn.Linear(4, 2)))
    randomize_batchnorm(model, seed=3)
    stages = trace(model, (5,))
    assert [type(s) for s in stages] == [LinearStage, LinearStage]
    x = torch.randn(16, 5, dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_allclose(float_forward(stages, x).numpy(), model.double()(x).numpy(),
                                   rtol=1e-10, atol=1e-12)


def test_folding_changes_the_weights():
    """Guard against a fold that silently does nothing."""
    model = randomize_batchnorm(models.build("digits-cnn"))
    stages = trace(model, (1, 8, 8))
    assert not np.allclose(stages[0].weight, model.conv1.weight.detach().double().numpy())


def test_trace_leaves_training_mode_alone():
    model = models.build("mlp").train()
    trace(model, (1, 8, 8))
    assert model.training


def test_custom_handler_registry():
    model = seq(("flat", nn.Flatten()), ("t", nn.Tanhshrink()), ("fc", nn.Linear(4, 2)))
    with pytest.raises(UnsupportedLayerError, match=r"^Node 't' \(Tanhshrink\) is not "
                                                    r"supported"):
        trace(model, (1, 2, 2))

    @handles(nn.Tanhshrink)
    def _drop(builder, node, mod):
        return None

    try:
        assert [type(s) for s in trace(model, (1, 2, 2))] == [FlattenStage, LinearStage]
    finally:
        from hwgen import frontend
        del frontend._HANDLERS[nn.Tanhshrink]


def test_user_modules_are_traced_through():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    model = seq(("block", Block()), ("pool", nn.MaxPool2d(2)))
    (stage,) = trace(model, (1, 8, 8))
    assert (stage.name, stage.relu, stage.pool) == ("block_conv", True, 2)


# --- layers of users' small models ------------------------------------------------------

class ViewNet(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 6 * 6, 3)
        self.how = how

    def forward(self, x):
        x = self.conv(x)
        if self.how == "view":
            x = x.view(x.size(0), -1)
        elif self.how == "shape":
            x = x.reshape(x.shape[0], -1)
        elif self.how == "torch":
            x = torch.reshape(x, (-1, 72))
        elif self.how == "bad":
            x = x.view(x.size(0), 2, -1)
        return self.fc(x)


@pytest.mark.parametrize("how", ["view", "shape", "torch"])
def test_view_and_reshape_flatten(how):
    stages = trace(ViewNet(how), (1, 8, 8))
    assert [type(s) for s in stages] == [ConvStage, FlattenStage, LinearStage]
    assert stages[1].out_shape == (72,)


def test_refuses_a_reshape_that_is_not_a_flatten():
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Node 'view' \(Tensor.view\) reshapes to \('size', 2, -1\); "
                             r"hwgen takes only a flatten that keeps the batch dimension, "
                             r"such as x\.view\(x\.size\(0\), -1\)$"):
        trace(ViewNet("bad"), (1, 8, 8))


def test_relu6_and_hardtanh_become_clamps():
    stages = trace(seq(("conv", nn.Conv2d(1, 2, 3)), ("r6", nn.ReLU6()),
                       ("pool", nn.MaxPool2d(2))), (1, 8, 8))
    assert (stages[0].relu, stages[0].clamp, stages[0].pool) == (True, (0.0, 6.0), 2)
    assert stages[0].sources == ("conv", "r6", "pool")
    (fc,) = trace(seq(("fc", nn.Linear(4, 3)), ("ht", nn.Hardtanh(-1.5, 2.0))), (4,))
    assert (fc.relu, fc.clamp) == (False, (-1.5, 2.0))
    (fc,) = trace(seq(("fc", nn.Linear(4, 3)), ("r", nn.ReLU()), ("ht", nn.Hardtanh())), (4,))
    assert (fc.relu, fc.clamp) == (True, (0.0, 1.0))


@pytest.mark.parametrize("layers, message", [
    ((("ht", nn.Hardtanh(0.5, 2.0)),),
     (r"Node 'ht' \(Hardtanh\) clamps to \[0\.5, 2\.0\]; hwgen folds a clamp into the output "
     r"format's saturation, which needs a lower bound of at most 0 and an upper bound above "
     r"0")),
    ((("r6", nn.ReLU6()), ("fc", nn.Linear(4, 3))),
     (r"Node 'r6' \(ReLU6\) must follow a Conv2d or Linear layer; hwgen folds the clamp into "
     r"the layer before it")),
    ((("r6", nn.ReLU6()), ("bn", nn.BatchNorm1d(3))),
     r"Node 'bn' \(BatchNorm1d\) must directly follow a Linear layer to be folded into it"),
])
def test_refuses_clamps_it_cannot_fold(layers, message):
    if layers[0][0] != "r6" or layers[-1][0] == "bn":
        layers = (("fc0", nn.Linear(4, 4)),) + layers
    if layers[-1][0] == "bn":
        layers = layers[:1] + (("fc1", nn.Linear(4, 3)),) + layers[1:]
    with pytest.raises(UnsupportedLayerError, match=rf"^{message}$"):
        trace(seq(*layers), (4,))


def test_rectangular_kernel_and_stride():
    (conv,) = trace(seq(("conv", nn.Conv2d(1, 2, (3, 2), stride=(2, 1), padding=1))),
                    (1, 8, 8))
    assert (conv.stride, conv.weight.shape, conv.out_shape) == ((2, 1), (2, 1, 3, 2), (2, 4, 9))
