"""hwgen.train: every argument is checked before any training starts."""

import pytest

from hwgen import train as train_mod
from hwgen.cli import main
from hwgen.errors import ArgumentError, CheckpointError, FormatError, ShapeError


@pytest.fixture
def no_training(monkeypatch):
    """Training must not start: these tests are about arguments refused before it."""
    def never(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(train_mod, "_loop", never)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"epochs": 0}, ArgumentError, r"Epochs must be a positive integer, not 0"),
    ({"epochs": -3}, ArgumentError, r"Epochs must be a positive integer, not -3"),
    ({"epochs": 2.5}, ArgumentError, r"Epochs must be a positive integer, not 2\.5"),
    ({"qat": "fixed8", "qat_epochs": 0}, ArgumentError,
     r"QAT epochs must be a positive integer, not 0"),
    ({"qat": "fixed8", "qat_epochs": -1}, ArgumentError,
     r"QAT epochs must be a positive integer, not -1"),
    ({"qat_epochs": 3}, ArgumentError, r"QAT epochs 3 need a QAT scheme to fine-tune for"),
    ({"qat": "fixed0"}, FormatError,
     r"Scheme must be one of fixed16, fixed8, fixed4, pow2-4, bwn, ternary, binary, codebook-4, codebook-6 or a JSON file, not 'fixed0'"),
    ({"dataset": "digits12"}, ShapeError,
     (r"Architecture 'mlp' takes inputs of shape \(1, 8, 8\), not the 'digits12' images of "
      r"shape \(1, 12, 12\)")),
])
def test_bad_arguments_fail_before_training(tmp_path, no_training, kwargs, error, message):
    with pytest.raises(error, match=rf"^{message}$"):
        train_mod.train("mlp", str(tmp_path / "m.pt"), **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_qat_scheme_naming_a_missing_layer_fails_before_training(tmp_path, no_training):
    spec = tmp_path / "odd.json"
    spec.write_text('{"layers": {"conv1": {"width": 4}}}')
    with pytest.raises(FormatError, match=r"^Scheme 'odd' names layer 'conv1', which the model "
                                          r"does not have; its layers are flatten, fc1, fc2$"):
        train_mod.train("mlp", str(tmp_path / "m.pt"), qat=str(spec))


def test_output_folder_fails_before_training(tmp_path, no_training):
    with pytest.raises(CheckpointError, match=rf"^Output '{tmp_path}' is a folder, not a "
                                              rf"file$"):
        train_mod.train("mlp", str(tmp_path))


@pytest.mark.parametrize("argv,message", [
    (["--qat", "fixed0"], ("Scheme must be one of fixed16, fixed8, fixed4, pow2-4, bwn, ternary, binary, codebook-4, codebook-6 or a JSON file, "
                           "not 'fixed0'")),
    (["--qat", "fixed8", "--qat-epochs", "0"], "QAT epochs must be a positive integer, not 0"),
    (["--epochs", "-2"], "Epochs must be a positive integer, not -2"),
])
def test_cli_refuses_at_once(tmp_path, capsys, no_training, argv, message):
    out = tmp_path / "m.pt"
    assert main(["train", "mlp", "--out", str(out), "-q", *argv]) == 1
    assert capsys.readouterr().err == f"hwgen: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_cli_out_existing_folder(tmp_path, capsys, no_training):
    assert main(["train", "mlp", "--out", str(tmp_path), "-q"]) == 1
    assert capsys.readouterr().err == (f"hwgen: error: Output '{tmp_path}' is a folder, not a "
                                       f"file\n")
