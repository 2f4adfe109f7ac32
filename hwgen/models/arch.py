"""The network architectures hwgen ships, by name.

Each is a plain ``torch.nn.Sequential`` with named children, so the torch.fx node names
(and hence the IR layer names and error messages) are ``conv1``, ``fc`` and so on.
"""

from __future__ import annotations

from collections import OrderedDict

from ..errors import CheckpointError

__all__ = ["ARCHITECTURES", "build", "default_dataset"]


def digits_cnn():
    """Two 3×3 conv blocks and a classifier for the 8×8 digits: 1×8×8 → 8×4×4 → 32×2×2 → 10.

    Keep these sizes: the accelerator's utilization figures are planned around them.
    """
    from torch import nn

    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 8, 3, padding=1)),
        ("bn1", nn.BatchNorm2d(8)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(8, 32, 3, padding=1)),
        ("bn2", nn.BatchNorm2d(32)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(128, 10)),
    ]))


def lenet5():
    """LeNet-5 with ReLU and max-pooling for 28×28 inputs (MNIST, or digits resized)."""
    from torch import nn

    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 6, 5, padding=2)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(6, 16, 5)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(400, 120)),
        ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(120, 84)),
        ("relu4", nn.ReLU()),
        ("fc3", nn.Linear(84, 10)),
    ]))


def mlp():
    """A two-layer perceptron for the 8×8 digits: 64 → 32 → 10."""
    from torch import nn

    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(64, 32)),
        ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(32, 10)),
    ]))


#: name -> (constructor, input shape, data set it is trained on by default)
ARCHITECTURES = {
    "digits-cnn": (digits_cnn, (1, 8, 8), "digits"),
    "lenet5": (lenet5, (1, 28, 28), "digits28"),
    "mlp": (mlp, (1, 8, 8), "digits"),
}


def _entry(name):
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise CheckpointError(f"Architecture must be one of {', '.join(ARCHITECTURES)}, "
                              f"not {name!r}") from None


def build(name):
    """A freshly initialised float model of architecture ``name`` (uses torch's RNG)."""
    return _entry(name)[0]()


def input_shape(name):
    """The input shape ``(C, H, W)`` of architecture ``name``."""
    return _entry(name)[1]


def default_dataset(name):
    """The name of the data set architecture ``name`` is trained on unless told otherwise."""
    return _entry(name)[2]
