"""Network architectures, checkpoints and the pre-trained models hwgen ships.

``builtin:digits-cnn`` and ``builtin:mlp`` name checkpoints in this package, trained on the
scikit-learn digits by ``hwgen train`` (see :mod:`hwgen.train`).
"""

from .arch import ARCHITECTURES, build, default_dataset, input_shape
from .checkpoint import (
    BUILTINS,
    FORMAT,
    VERSION,
    Checkpoint,
    atomic_write,
    check_output,
    load_checkpoint,
    resolve,
    save_checkpoint,
)

__all__ = [
    "ARCHITECTURES",
    "BUILTINS",
    "FORMAT",
    "VERSION",
    "Checkpoint",
    "atomic_write",
    "build",
    "check_output",
    "default_dataset",
    "input_shape",
    "load_checkpoint",
    "resolve",
    "save_checkpoint",
]
