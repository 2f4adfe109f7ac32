"""Network architectures, checkpoints and the pre-trained models hwgen ships.

``builtin:digits-cnn`` and ``builtin:mlp`` name checkpoints in this package, trained on the
scikit-learn digits by ``hwgen train`` (see :mod:`hwgen.train`).
"""

import importlib

# Names are loaded on first use, so that asking for the architectures' names (the CLI does
# to build its help) does not import torch.
_WHERE = {
    **dict.fromkeys(("ARCHITECTURES", "build", "default_dataset", "input_shape"), "arch"),
    **dict.fromkeys(("BUILTINS", "FORMAT", "VERSION", "Checkpoint", "atomic_write",
                     "check_output", "load_checkpoint", "resolve", "save_checkpoint",
                     "save_model"),
                    "checkpoint"),
}


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
    "save_model",
]


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
