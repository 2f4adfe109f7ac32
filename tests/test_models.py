"""hwgen.models: architectures, checkpoint I/O, the shipped checkpoints, training."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from hwgen import models
from hwgen.data import digits
from hwgen.errors import CheckpointError
from hwgen.train import accuracy, train, train_float


def state_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())


# --- errors first ---------------------------------------------------------------------

def test_missing_checkpoint(tmp_path):
    p = str(tmp_path / "none.pt")
    with pytest.raises(CheckpointError, match=rf"^Checkpoint '{p}' does not exist$"):
        models.load_checkpoint(p)


def test_corrupt_checkpoint(tmp_path):
    p = tmp_path / "bad.pt"
    p.write_bytes(os.urandom(300))
    with pytest.raises(CheckpointError,
                       match=rf"^Checkpoint '{p}' is corrupt and cannot be loaded$"):
        models.load_checkpoint(str(p))


def test_truncated_checkpoint(tmp_path):
    good = Path(models.resolve("builtin:mlp")).read_bytes()
    p = tmp_path / "cut.pt"
    p.write_bytes(good[:len(good) // 2])
    with pytest.raises(CheckpointError,
                       match=rf"^Checkpoint '{p}' is corrupt and cannot be loaded$"):
        models.load_checkpoint(str(p))


def test_not_an_hwgen_checkpoint(tmp_path):
    p = tmp_path / "other.pt"
    torch.save({"model": {"w": torch.zeros(3)}}, p)
    with pytest.raises(CheckpointError, match=rf"^File '{p}' is not an hwgen checkpoint$"):
        models.load_checkpoint(str(p))


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_with_code_is_refused(tmp_path, capsys):
    p = tmp_path / "evil.pt"
    torch.save({"format": "hwgen-checkpoint", "evil": Evil()}, p)
    with pytest.raises(CheckpointError,
                       match=rf"^Checkpoint '{p}' is not plain data and cannot be loaded$"):
        models.load_checkpoint(str(p))
    assert "must never run" not in capsys.readouterr().out


def test_plain_pickle_is_refused(tmp_path):
    p = tmp_path / "pickle.pt"
    p.write_bytes(pickle.dumps({"format": "hwgen-checkpoint"}))
    with pytest.raises(CheckpointError, match=rf"^Checkpoint '{p}' is "):
        models.load_checkpoint(str(p))


def test_other_version(tmp_path):
    p = tmp_path / "v2.pt"
    torch.save({"format": "hwgen-checkpoint", "version": 2}, p)
    with pytest.raises(CheckpointError, match=rf"^Checkpoint '{p}' has version 2; this hwgen "
                                              rf"reads version 1$"):
        models.load_checkpoint(str(p))


def test_unknown_architecture_in_file(tmp_path):
    p = tmp_path / "arch.pt"
    torch.save({"format": "hwgen-checkpoint", "version": 1, "arch": "resnet50",
                "state_dict": {}}, p)
    with pytest.raises(CheckpointError,
                       match=rf"^Checkpoint '{p}' has unknown architecture 'resnet50'$"):
        models.load_checkpoint(str(p))


def mlp_checkpoint(path, edit=None, dataset="digits"):
    """Write an untrained mlp checkpoint to ``path``; ``edit(state)`` may change its weights."""
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in models.build("mlp").state_dict().items()}
    if edit is not None:
        edit(state)
    models.save_checkpoint(path, "mlp", state, dataset=dataset)
    return str(path)


def test_state_dict_errors_name_the_tensors(tmp_path):
    def edit(state):
        del state["fc2.bias"]
        state["fc3.weight"] = torch.zeros(3)
        state["fc1.weight"] = torch.zeros(32, 65)
    p = mlp_checkpoint(tmp_path / "m.pt", edit)
    with pytest.raises(CheckpointError, match=rf"^Checkpoint '{p}' does not hold weights of "
                                              rf"architecture 'mlp' \(missing 'fc2\.bias'; "
                                              rf"unexpected 'fc3\.weight'; 'fc1\.weight' has "
                                              rf"shape \(32, 65\), not \(32, 64\)\)$"):
        models.load_checkpoint(p).build_model()


def test_long_state_dict_errors_stay_one_line(tmp_path):
    p = tmp_path / "swap.pt"
    models.save_checkpoint(p, "mlp", models.build("mlp"), dataset="digits")
    raw = torch.load(p, weights_only=True)
    raw["arch"] = "digits-cnn"
    torch.save(raw, p)
    with pytest.raises(CheckpointError, match=rf"^Checkpoint '{p}' does not hold weights of "
                                              rf"architecture 'digits-cnn' \(missing "
                                              rf"'bn1\.bias', 'bn1\.num_batches_tracked', "
                                              rf"'bn1\.running_mean', 'bn1\.running_var' and "
                                              rf"12 more; unexpected 'fc1\.bias', "
                                              rf"'fc1\.weight', 'fc2\.bias', 'fc2\.weight'\)$"):
        models.load_checkpoint(str(p)).build_model()


@pytest.mark.parametrize("value,count,noun", [(float("inf"), 1, "value"),
                                              (float("nan"), 3, "values")])
def test_non_finite_weights_are_refused(tmp_path, value, count, noun):
    def edit(state):
        state["fc1.weight"].view(-1)[:count] = value
    p = mlp_checkpoint(tmp_path / "bad.pt", edit)
    with pytest.raises(CheckpointError, match=rf"^Checkpoint '{p}' tensor 'fc1\.weight' holds "
                                              rf"{count} non-finite {noun}$"):
        models.load_checkpoint(p)


def test_non_finite_qat_weights_are_refused(tmp_path):
    p = tmp_path / "qat.pt"
    model = models.build("mlp")
    qat = {"layers.1.weight": torch.full((2, 2), float("nan"))}
    models.save_checkpoint(p, "mlp", model, dataset="digits", scheme="fixed8",
                           formats={}, qat_state_dict=qat)
    with pytest.raises(CheckpointError, match=rf"^Checkpoint '{p}' qat_state_dict tensor "
                                              rf"'layers\.1\.weight' holds 4 non-finite "
                                              rf"values$"):
        models.load_checkpoint(str(p))


def test_data_set_of_another_shape_is_refused_before_calibrating(tmp_path, monkeypatch):
    from hwgen import flow, quant
    p = mlp_checkpoint(tmp_path / "d12.pt", dataset="digits12")

    def never(*args, **kwargs):
        raise AssertionError("calibrated a model whose data set does not fit")
    monkeypatch.setattr(quant.network, "calibrate_frac", never)
    with pytest.raises(CheckpointError, match=rf"^Checkpoint '{p}' names data set 'digits12' "
                                              rf"of input shape \(1, 12, 12\), but "
                                              rf"architecture 'mlp' takes \(1, 8, 8\)$"):
        flow.load_quantized(p, "fixed8")


def test_output_that_is_a_folder(tmp_path):
    with pytest.raises(CheckpointError, match=rf"^Output '{tmp_path}' is a folder, not a file$"):
        models.check_output(tmp_path)


def test_output_under_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    for p in (f / "m.pt", f / "deeper" / "m.pt"):
        with pytest.raises(CheckpointError, match=rf"^Output '{p}' is under '{f}', which is a "
                                                  rf"file, not a folder$"):
            models.check_output(p)


def test_output_in_an_unwritable_folder(tmp_path, monkeypatch):
    # Root may write anywhere, so the refusal is exercised through os.access.
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if os.fspath(path) ==
                        str(tmp_path) else real(path, mode))
    p = tmp_path / "m.pt"
    with pytest.raises(CheckpointError, match=rf"^Folder '{tmp_path}' for output '{p}' is not "
                                              rf"writable$"):
        models.save_checkpoint(p, "mlp", models.build("mlp"), dataset="digits")
    assert list(tmp_path.iterdir()) == []


def test_unknown_builtin():
    with pytest.raises(CheckpointError, match=r"^Built-in model must be one of "
                                              r"builtin:digits-cnn, builtin:mlp, not "
                                              r"'builtin:vgg'$"):
        models.load_checkpoint("builtin:vgg")


def test_unknown_architecture():
    with pytest.raises(CheckpointError, match=r"^Architecture must be one of digits-cnn, lenet5, "
                                              r"mlp, not 'vgg'$"):
        models.build("vgg")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.pt"

    def fail(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        models.atomic_write(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder(tmp_path):
    p = tmp_path / "no" / "x.pt"
    with pytest.raises(CheckpointError, match=rf"^Folder '{p.parent}' for output '{p}' does not "
                                              rf"exist$"):
        models.save_checkpoint(p, "mlp", models.build("mlp"), dataset="digits")


# --- behaviour ------------------------------------------------------------------------

def test_architectures():
    for name, (_, shape, _) in models.ARCHITECTURES.items():
        m = models.build(name).eval()
        assert m(torch.zeros((2,) + shape)).shape == (2, 10)
    cnn = models.build("digits-cnn")
    # Exactly the sizes the hardware figures are planned around.
    assert [tuple(p.shape) for n, p in cnn.named_parameters() if "bn" not in n] == [
        (8, 1, 3, 3), (8,), (32, 8, 3, 3), (32,), (10, 128), (10,)]
    assert [tuple(p.shape) for p in models.build("mlp").parameters()] == [
        (32, 64), (32,), (10, 32), (10,)]
    lenet = models.build("lenet5")
    assert [tuple(p.shape) for n, p in lenet.named_parameters() if n.endswith("weight")] == [
        (6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84)]


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(3)
    model = models.build("digits-cnn")
    model.bn1.running_mean.fill_(0.25)
    p = tmp_path / "rt.pt"
    models.save_checkpoint(p, "digits-cnn", model, dataset="digits",
                           metrics={"float_test_accuracy": 0.5})
    ck = models.load_checkpoint(str(p))
    assert (ck.arch, ck.dataset, ck.scheme, ck.path) == ("digits-cnn", "digits", None, str(p))
    assert ck.metrics == {"float_test_accuracy": 0.5}
    state_equal(ck.state_dict, model.state_dict())
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        np.testing.assert_array_equal(ck.build_model()(x).numpy(), model.eval()(x).numpy())
    raw = torch.load(p, weights_only=True)
    assert (raw["format"], raw["version"]) == ("hwgen-checkpoint", 1)


def test_builtin_checkpoints():
    ds = digits()
    for name in ("digits-cnn", "mlp"):
        path = models.resolve(f"builtin:{name}")
        assert os.path.getsize(path) < 64 * 1024
        ck = models.load_checkpoint(f"builtin:{name}")
        assert ck.arch == name and ck.dataset == "digits"
        acc = accuracy(ck.build_model(), ds.x_test, ds.y_test)
        assert acc >= 0.95
        assert acc == pytest.approx(ck.metrics["float_test_accuracy"])


def test_training_is_deterministic():
    ds = digits()
    a = train_float("mlp", ds, epochs=2, seed=5)
    b = train_float("mlp", ds, epochs=2, seed=5)
    c = train_float("mlp", ds, epochs=2, seed=6)
    state_equal(a.state_dict(), b.state_dict())
    assert not torch.equal(a.fc1.weight, c.fc1.weight)


def test_train_writes_a_qat_checkpoint(tmp_path):
    p = tmp_path / "qat.pt"
    metrics = train("mlp", str(p), epochs=3, qat="fixed4", qat_epochs=1, seed=1)
    ck = models.load_checkpoint(str(p))
    assert ck.scheme == "fixed4" and ck.formats["name"] == "fixed4"
    assert ck.qat_state_dict is not None and ck.metrics["qat_scheme"] == "fixed4"
    assert metrics["quantized_test_accuracy"] > 0.5
    from hwgen.flow import load_quantized
    qm = load_quantized(str(p), "fixed4")
    assert qm.quantized_accuracy() == pytest.approx(metrics["quantized_test_accuracy"])
    np.testing.assert_array_equal(
        qm.module.layers[1].weight.detach().numpy(),
        ck.qat_state_dict["layers.1.weight"].double().numpy())
