"""Training: float training, then optional quantization-aware fine-tuning (QAT).

Both are seeded and single-process, so the same seed, data and thread count give the same
checkpoint. QAT folds BatchNorm first (:mod:`hwgen.frontend`), calibrates the scheme's
formats on the float model, then fine-tunes the folded weights through the fake-quant
modules of :mod:`hwgen.quant` (straight-through gradients) with the formats held fixed.
The shipped ``builtin:`` checkpoints were made with::

    hwgen train digits-cnn --out hwgen/models/digits_cnn.pt
    hwgen train mlp --out hwgen/models/mlp.pt

and the QAT checkpoints that ``builtin:NAME --scheme SCHEME`` uses
(:data:`hwgen.models.checkpoint.BUILTIN_QAT`) with, for each SCHEME of pow2-4, bwn, ternary and
binary::

    hwgen train digits-cnn --qat SCHEME --out hwgen/models/digits_cnn_SCHEME.pt
    hwgen train mlp --qat SCHEME --out hwgen/models/mlp_SCHEME.pt
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from . import frontend, quant
from .data import load_dataset
from .errors import ArgumentError, ShapeError, check_positive
from .models import arch as _arch
from .models import check_output, save_checkpoint

__all__ = ["DEFAULTS", "SCHEME_QAT", "TrainConfig", "accuracy", "qat_config", "train",
           "train_float", "train_qat"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one architecture's float training and QAT fine-tuning."""

    epochs: int = 40
    lr: float = 5e-3
    batch_size: int = 32
    weight_decay: float = 1e-4
    qat_epochs: int = 10
    qat_lr: float = 5e-4


DEFAULTS = {
    "digits-cnn": TrainConfig(epochs=20, batch_size=64, lr=1e-2, qat_lr=5e-3),
    "mlp": TrainConfig(epochs=60),
    "lenet5": TrainConfig(epochs=10, batch_size=64, lr=5e-3),
}

#: QAT epochs and learning rate per built-in scheme, overriding the architecture's: binary
#: weights and activations need longer and faster fine-tuning than fixed point (measured on
#: the digits: see ``benchmarks/schemes.py``).
SCHEME_QAT = {
    "pow2-4": (20, 2e-3),
    "bwn": (30, 1e-2),
    "ternary": (30, 1e-2),
    "binary": (60, 1e-2),
}


def qat_config(arch, scheme_name):
    """The :class:`TrainConfig` of ``arch`` with the QAT epochs and learning rate of scheme
    ``scheme_name`` (:data:`SCHEME_QAT`) where it has its own."""
    cfg = DEFAULTS.get(arch, TrainConfig())
    if scheme_name in SCHEME_QAT:
        epochs, lr = SCHEME_QAT[scheme_name]
        cfg = replace(cfg, qat_epochs=epochs, qat_lr=lr)
    return cfg


def accuracy(model, x, y, batch=1024):
    """Fraction of ``x`` that ``model`` (any torch module returning logits) classifies as
    ``y``."""
    was = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.tensor(np.array(x[i:i + batch]))
            correct += int((model(xb).argmax(1).numpy() == y[i:i + batch]).sum())
    model.train(was)
    return correct / max(len(x), 1)


def _loop(model, params, dataset, epochs, lr, cfg, seed, progress, desc):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    x = torch.tensor(np.array(dataset.x_train))
    y = torch.tensor(np.array(dataset.y_train))
    threads = torch.get_num_threads()
    # One thread: these tensors are too small to gain from more, and a fixed reduction
    # order makes the result the same on every machine.
    torch.set_num_threads(1)
    try:
        return _epochs(model, opt, sched, x, y, epochs, cfg, gen, progress, desc)
    finally:
        torch.set_num_threads(threads)


def _epochs(model, opt, sched, x, y, epochs, cfg, gen, progress, desc):
    from tqdm import tqdm
    bar = tqdm(range(epochs), desc=desc, file=sys.stderr, disable=not progress, leave=False)
    for _ in bar:
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx].to(_dtype(model))), y[idx])
            loss.backward()
            opt.step()
            clip = getattr(model, "clip_weights", None)
            if clip is not None:
                clip()  # binary shadow weights stay in [-1, 1]
            total += float(loss.detach()) * len(idx)
        sched.step()
        bar.set_postfix(loss=f"{total / len(x):.4f}")
    bar.close()
    model.eval()
    return model


def _dtype(model):
    p = next(model.parameters(), None)
    return p.dtype if p is not None else torch.float32


def train_float(arch, dataset, *, epochs=None, seed=0, progress=False, config=None):
    """A float model of architecture ``arch`` trained on ``dataset`` (seeded)."""
    cfg = config or DEFAULTS.get(arch, TrainConfig())
    epochs = check_positive(epochs if epochs is not None else cfg.epochs, "Epochs",
                            ArgumentError)
    torch.manual_seed(seed)
    model = _arch.build(arch)
    if tuple(dataset.input_shape) != tuple(_arch.input_shape(arch)):
        raise ShapeError(f"Architecture {arch!r} takes inputs of shape "
                         f"{_arch.input_shape(arch)!r}, not the {dataset.name!r} images of "
                         f"shape {dataset.input_shape!r}")
    return _loop(model, model.parameters(), dataset, epochs, cfg.lr, cfg, seed, progress,
                 f"train {arch}")


def train_qat(float_model, arch, dataset, scheme, *, epochs=None, seed=0, progress=False,
              config=None):
    """Fine-tune ``float_model`` through the fake-quant modules of ``scheme``.

    Returns the :class:`hwgen.quant.QuantNetwork` (float32 parameters, eval mode); its
    ``resolved_scheme()`` and ``state_dict()`` are what a QAT checkpoint stores. Binary
    layers' shadow weights are clipped to [-1, 1] after every step.
    """
    cfg = config or qat_config(arch, quant.load_scheme(scheme).name)
    epochs = check_positive(epochs if epochs is not None else cfg.qat_epochs, "QAT epochs",
                            ArgumentError)
    torch.manual_seed(seed)
    shape = _arch.input_shape(arch)
    stages = frontend.trace(float_model.eval(), shape)
    net = quant.build_network(stages, shape, scheme, dataset.x_train, name=arch,
                              dtype=torch.float32)
    return _loop(net, net.parameters(), dataset, epochs, cfg.qat_lr, cfg, seed + 1, progress,
                 f"QAT {net.scheme.name}")


def train(arch, out, *, epochs=None, qat=None, qat_epochs=None, seed=0, dataset=None,
          progress=False):
    """Train ``arch`` (and QAT fine-tune it to scheme ``qat``), write the checkpoint to
    ``out`` atomically, and return its metrics.

    Parameters
    ----------
    arch : str
        A name of :data:`hwgen.models.ARCHITECTURES`.
    out : str
        Checkpoint path.
    epochs, qat_epochs : int, optional
        Defaults per architecture (:data:`DEFAULTS`).
    qat : str, optional
        A scheme name or JSON spec path to fine-tune for.
    seed : int
    dataset : str, optional
        A :func:`hwgen.data.load_dataset` name; default: the architecture's.
    """
    import time

    # Every argument is checked before any training, so that a typo fails at once.
    shape = _arch.input_shape(arch)
    if epochs is not None:
        check_positive(epochs, "Epochs", ArgumentError)
    if qat_epochs is not None:
        check_positive(qat_epochs, "QAT epochs", ArgumentError)
        if qat is None:
            raise ArgumentError(f"QAT epochs {qat_epochs!r} need a QAT scheme to fine-tune "
                                f"for")
    if qat is not None:
        qat_scheme = quant.load_scheme(qat)
        qat_scheme.check_layers(s.name for s in frontend.trace(_arch.build(arch).eval(), shape))
    check_output(out)
    dataset_name = dataset or _arch.default_dataset(arch)
    ds = load_dataset(dataset_name)
    if tuple(ds.input_shape) != tuple(shape):
        raise ShapeError(f"Architecture {arch!r} takes inputs of shape {shape!r}, not the "
                         f"{ds.name!r} images of shape {ds.input_shape!r}")
    t0 = time.perf_counter()
    model = train_float(arch, ds, epochs=epochs, seed=seed, progress=progress)
    metrics = {"float_test_accuracy": accuracy(model, ds.x_test, ds.y_test),
               "seed": seed, "epochs": epochs or DEFAULTS.get(arch, TrainConfig()).epochs}
    scheme = formats = qat_state = None
    if qat is not None:
        net = train_qat(model, arch, ds, qat, epochs=qat_epochs, seed=seed, progress=progress)
        resolved = net.resolved_scheme()
        scheme, formats, qat_state = resolved.name, resolved.to_json(), net.state_dict()
        qm = quant.quantize_model(model, arch, resolved, ds, qat_state=qat_state)
        metrics["qat_scheme"] = scheme
        metrics["quantized_test_accuracy"] = qm.quantized_accuracy()
    save_checkpoint(out, arch, model, dataset=dataset_name, metrics=metrics, scheme=scheme,
                    formats=formats, qat_state_dict=qat_state)
    # Timing is reported, not stored, so that the same seed gives the same file.
    return {**metrics, "train_seconds": round(time.perf_counter() - t0, 1)}
