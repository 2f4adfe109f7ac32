"""hwgen checkpoints: ``torch.save`` files that hold only plain data.

A checkpoint is a dict::

    {"format": "hwgen-checkpoint", "version": 1,
     "arch": "digits-cnn",              # a name of hwgen.models.ARCHITECTURES, or a user's
                                        # architecture as plain data (hwgen.models.userarch)
     "dataset": "digits",               # the name hwgen.data.load_dataset accepts
     "state_dict": {...},               # of the float architecture (tensors only)
     "scheme": None | "fixed8" | {...}, # set when QAT fine-tuned: the scheme trained for
     "formats": None | {...},           # the QAT formats: a resolved JSON scheme
     "qat_state_dict": None | {...},    # the QAT-trained hwgen.quant.QuantNetwork weights
     "metrics": {"float_test_accuracy": 0.98, ...}}

It is read with ``torch.load(path, weights_only=True)``, so loading never runs code from
the file. Writes go to a temporary file in the same folder that is then renamed, so a
failure never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from importlib import resources

import torch

from .. import files
from ..errors import CheckpointError
from ..files import check_output_file
from . import arch as _arch
from . import userarch

__all__ = [
    "BUILTINS",
    "BUILTIN_QAT",
    "FORMAT",
    "VERSION",
    "Checkpoint",
    "atomic_write",
    "check_finite",
    "check_output",
    "load_checkpoint",
    "load_state",
    "resolve",
    "resolve_for_scheme",
    "save_checkpoint",
    "save_model",
    "state_mismatch",
]

FORMAT = "hwgen-checkpoint"
VERSION = 1
#: builtin:NAME -> file shipped in this package
BUILTINS = {"digits-cnn": "digits_cnn.pt", "mlp": "mlp.pt"}
#: (builtin NAME, scheme) -> the QAT fine-tuned checkpoint ``builtin:NAME`` stands for
#: when quantized with that built-in scheme (made by ``hwgen train NAME --qat SCHEME``).
BUILTIN_QAT = {(name, scheme): f"{stem}_{scheme}.pt"
               for name, stem in (("digits-cnn", "digits_cnn"), ("mlp", "mlp"))
               for scheme in ("pow2-4", "bwn", "ternary", "binary")}


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint (see the module docstring for the fields)."""

    arch: str
    state_dict: dict
    dataset: str
    path: str
    scheme: object = None
    formats: object = None
    qat_state_dict: dict | None = None
    metrics: dict = field(default_factory=dict)

    @property
    def arch_name(self):
        """The architecture's name, or ``"user"`` for an architecture given as data."""
        return self.arch if isinstance(self.arch, str) else "user"

    @property
    def input_shape(self):
        """One input's shape."""
        if isinstance(self.arch, str):
            return tuple(_arch.input_shape(self.arch))
        return tuple(self.arch["input_shape"])

    def build_model(self):
        """The float model with the checkpoint's weights, in eval mode."""
        if isinstance(self.arch, str):
            model = _arch.build(self.arch)
        else:
            model, _ = userarch.build(self.arch, f"Checkpoint {self.path!r}")
        load_state(model, self.state_dict, f"Checkpoint {self.path!r} does not hold weights "
                                           f"of architecture {self.arch_name!r}")
        return model.eval()


def _names(keys, limit=4):
    keys = sorted(keys)
    text = ", ".join(repr(k) for k in keys[:limit])
    return text + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def state_mismatch(module, state):
    """What keeps ``module.load_state_dict(state)`` from working, in a few words naming the
    tensors (missing, unexpected, of another shape), or None when nothing does."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a state dict"
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    parts = []
    if missing:
        parts.append(f"missing {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected {_names(unexpected)}")
    for k, v in own.items():
        got = state.get(k)
        if got is None:
            continue
        if not isinstance(got, torch.Tensor):
            parts.append(f"{k!r} is a {type(got).__name__}, not a tensor")
        elif tuple(got.shape) != tuple(v.shape):
            parts.append(f"{k!r} has shape {tuple(got.shape)!r}, not {tuple(v.shape)!r}")
    return "; ".join(parts) or None


def load_state(module, state, what, error=CheckpointError):
    """``module.load_state_dict(state)``, raising ``error`` with one line, ``"{what}
    (missing 'fc.bias'; 'fc.weight' has shape (10, 5), not (10, 7))"``, when it does not
    fit."""
    why = state_mismatch(module, state)
    if why is None:
        try:
            module.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError) as e:
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if why is not None:
        raise error(f"{what} ({why})")
    return module


def check_finite(state, what, error=CheckpointError):
    """Raise ``error`` naming the first floating-point tensor of the state dict ``state``
    that holds an inf or a NaN: "{what} tensor '0.weight' holds 3 non-finite values"."""
    for key, t in state.items():
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise error(f"{what} tensor {key!r} holds {bad} non-finite "
                            f"value{'s' if bad != 1 else ''}")
    return state


def resolve_for_scheme(spec, scheme_name):
    """The checkpoint ``spec`` stands for when quantized with the scheme ``scheme_name``:
    the shipped QAT checkpoint of :data:`BUILTIN_QAT` for ``builtin:NAME`` and a scheme
    that has one (and that is in the package), else ``spec``."""
    if isinstance(spec, str) and spec.startswith("builtin:"):
        fname = BUILTIN_QAT.get((spec[len("builtin:"):], scheme_name))
        if fname is not None:
            path = resources.files(__package__).joinpath(fname)
            if path.is_file():
                return str(path)
    return spec


def resolve(spec):
    """The file a model ``spec`` names: ``builtin:NAME`` or a path."""
    if not isinstance(spec, (str, os.PathLike)):
        raise CheckpointError(f"Model must be a checkpoint path or builtin:NAME, not {spec!r}")
    spec = os.fspath(spec)
    if spec.startswith("builtin:"):
        name = spec[len("builtin:"):]
        if name not in BUILTINS:
            raise CheckpointError(f"Built-in model must be one of "
                                  f"{', '.join('builtin:' + n for n in BUILTINS)}, not {spec!r}")
        return str(resources.files(__package__).joinpath(BUILTINS[name]))
    return spec


def check_output(path):
    """Raise :class:`CheckpointError` unless a checkpoint can be written at ``path`` (see
    :func:`hwgen.files.check_output_file`); returns its folder."""
    return check_output_file(path, CheckpointError)


def atomic_write(path, write):
    """Check ``path`` with :func:`check_output`, then write it with
    :func:`hwgen.files.atomic_write`."""
    check_output(path)
    files.atomic_write(path, write)


def _state(module_or_dict):
    if module_or_dict is None:
        return None
    d = module_or_dict if isinstance(module_or_dict, dict) else module_or_dict.state_dict()
    return {k: v.detach().cpu().clone() for k, v in d.items()}


def save_checkpoint(path, arch, model, *, dataset, metrics=None, scheme=None, formats=None,
                    qat_state_dict=None):
    """Write ``model``'s weights as an hwgen checkpoint of architecture ``arch`` to ``path``
    (atomically). ``scheme``, ``formats`` and ``qat_state_dict`` (a module or a state dict)
    record QAT fine-tuning."""
    if isinstance(arch, str):
        _arch.input_shape(arch)  # raises for an unknown architecture
    else:
        userarch.check(arch, "Architecture")
    obj = {"format": FORMAT, "version": VERSION, "arch": arch, "dataset": dataset,
           "state_dict": _state(model), "scheme": scheme, "formats": formats,
           "qat_state_dict": _state(qat_state_dict), "metrics": dict(metrics or {})}
    atomic_write(path, lambda f: torch.save(obj, f))


def save_model(path, module, input_shape, *, dataset=None, metrics=None):
    """Write any model the front end traces as an hwgen checkpoint that needs no Python class:
    its architecture as plain data (:func:`hwgen.models.userarch.from_stages`, BatchNorm
    folded) and its float weights. ``dataset`` optionally names the data set
    (:func:`hwgen.data.load_dataset`) that ``hwgen quantize`` uses without ``--data``."""
    from .. import frontend
    from ..quant.model import _check_input_shape
    shape = _check_input_shape(input_shape)
    stages = frontend.trace(module.eval(), shape)
    arch, state = userarch.from_stages(stages, shape)
    save_checkpoint(path, arch, state, dataset=dataset, metrics=metrics)


def _is_state(d):
    return isinstance(d, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                       for k, v in d.items())


def load_checkpoint(spec):
    """Load and validate the checkpoint ``spec`` names (``builtin:NAME`` or a path).

    Raises
    ------
    CheckpointError
        When the file is missing, corrupt, not an hwgen checkpoint, of another version, or
        of an unknown architecture; the message names the path.
    """
    path = resolve(spec)
    if not os.path.exists(path):
        raise CheckpointError(f"Checkpoint {path!r} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"Checkpoint {path!r} is a folder, not a file")
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            # torch warns about pickle protocols it did not write; the outcome is what counts.
            warnings.simplefilter("ignore")
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except PermissionError as e:
        raise CheckpointError(f"Checkpoint {path!r} cannot be read ({e.strerror})") from None
    except pickle.UnpicklingError as e:
        # weights_only=True refuses anything but tensors and plain containers: a pickled
        # class or function is "not plain data"; unknown opcodes mean a damaged file.
        kind = "not plain data" if "unsupported global" in str(e).lower() else "corrupt"
        raise CheckpointError(f"Checkpoint {path!r} is {kind} and cannot be loaded") from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError, KeyError, AttributeError,
            ImportError, IndexError, TypeError, OSError):
        raise CheckpointError(f"Checkpoint {path!r} is corrupt and cannot be loaded") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"File {path!r} is not an hwgen checkpoint")
    if obj.get("version") != VERSION:
        raise CheckpointError(f"Checkpoint {path!r} has version {obj.get('version')!r}; this "
                              f"hwgen reads version {VERSION}")
    arch = obj.get("arch")
    if isinstance(arch, dict):
        userarch.check(arch, f"Checkpoint {path!r}")
    elif arch not in _arch.ARCHITECTURES:
        raise CheckpointError(f"Checkpoint {path!r} has unknown architecture {arch!r}")
    state = obj.get("state_dict")
    if not _is_state(state):
        raise CheckpointError(f"Checkpoint {path!r} has no valid state_dict")
    check_finite(state, f"Checkpoint {path!r}")
    qat = obj.get("qat_state_dict")
    if qat is not None and not _is_state(qat):
        raise CheckpointError(f"Checkpoint {path!r} has an invalid qat_state_dict")
    if qat is not None:
        check_finite(qat, f"Checkpoint {path!r} qat_state_dict")
    dataset = obj.get("dataset")
    if isinstance(arch, str):
        dataset = dataset or _arch.default_dataset(arch)
    elif dataset is not None and not isinstance(dataset, str):
        raise CheckpointError(f"Checkpoint {path!r} has dataset {dataset!r}, not a name")
    return Checkpoint(arch=arch, state_dict=state, dataset=dataset, path=path,
                      scheme=obj.get("scheme"), formats=obj.get("formats"),
                      qat_state_dict=qat,
                      metrics=dict(obj.get("metrics") or {}))
