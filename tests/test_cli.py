"""hwgen.cli: the train and quantize subcommands, errors and exit statuses."""

import json
import shutil
import subprocess
import sys

import pytest

from hwgen import models
from hwgen.cli import build_parser, main

# --- errors first ---------------------------------------------------------------------


def test_bad_model_path_gives_one_line(tmp_path, capsys):
    p = str(tmp_path / "missing.pt")
    assert main(["quantize", p, "--scheme", "fixed8"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"hwgen: error: Checkpoint '{p}' does not exist\n"


def test_corrupt_model_gives_one_line(tmp_path, capsys):
    p = tmp_path / "bad.pt"
    p.write_bytes(b"\x80\x02garbage")
    assert main(["quantize", str(p)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hwgen: error: Checkpoint ")


def test_bad_scheme(capsys):
    assert main(["quantize", "builtin:mlp", "--scheme", "fixed5"]) == 1
    assert capsys.readouterr().err == ("hwgen: error: Scheme must be one of fixed16, fixed8, "
                                       "fixed4, pow2-4, bwn, ternary, binary, codebook-4, "
                                       "codebook-6 or a JSON file, not "
                                       "'fixed5'\n")


def test_nan_weights_give_one_line(tmp_path, capsys):
    import torch
    model = models.build("mlp")
    with torch.no_grad():
        model.fc2.bias[:2] = float("nan")
    p = tmp_path / "nan.pt"
    models.save_checkpoint(p, "mlp", model, dataset="digits")
    assert main(["quantize", str(p)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"hwgen: error: Checkpoint '{p}' tensor 'fc2.bias' holds 2 non-finite values\n"


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "resnet", "--out", "x.pt"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
    assert "usage: hwgen" in capsys.readouterr().err


def test_train_failure_leaves_no_file(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", "mlp", "--out", str(out), "--epochs", "0", "-q"]) == 1
    assert capsys.readouterr().err == "hwgen: error: Epochs must be a positive integer, not 0\n"
    assert list(tmp_path.iterdir()) == []


def test_train_into_missing_folder(tmp_path, capsys):
    out = tmp_path / "nope" / "m.pt"
    assert main(["train", "mlp", "--out", str(out), "--epochs", "1", "-q"]) == 1
    assert capsys.readouterr().err == (f"hwgen: error: Folder '{out.parent}' for output "
                                       f"'{out}' does not exist\n")


# --- behaviour ------------------------------------------------------------------------

def test_parser_has_one_function_per_subcommand():
    parser = build_parser()
    args = parser.parse_args(["quantize", "builtin:mlp"])
    assert args.func.__name__ == "cmd_quantize" and args.scheme is None     # fixed8
    args = parser.parse_args(["train", "mlp", "--out", "x.pt"])
    assert args.func.__name__ == "cmd_train" and args.seed == 0


def test_quantize_prints_the_table(capsys):
    assert main(["quantize", "builtin:digits-cnn", "--scheme", "fixed8"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("model digits-cnn, scheme fixed8, input Q(8,")
    assert lines[1].split()[:5] == ["layer", "kind", "in", "weights", "out"]
    assert [line.split()[0] for line in lines[2:6]] == ["conv1", "conv2", "flatten", "fc"]
    assert lines[2].split()[1] == "Conv2d" and "Q(8," in lines[2]
    assert lines[-1].startswith("test accuracy on digits (450 images): float ")
    assert "quantized " in lines[-1]
    assert err == ""


def test_quantize_json(capsys):
    assert main(["quantize", "builtin:mlp", "--scheme", "fixed4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scheme"] == "fixed4" and report["test_images"] == 450
    assert [r["name"] for r in report["layers"]] == ["flatten", "fc1", "fc2"]
    assert 0.5 < report["quantized_accuracy"] <= report["float_accuracy"] + 0.05


def test_train_then_quantize(tmp_path, capsys):
    out = tmp_path / "mlp.pt"
    assert main(["train", "mlp", "--out", str(out), "--epochs", "3", "--seed", "2", "-q"]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith(f"wrote {out}: float test accuracy ")
    assert models.load_checkpoint(str(out)).metrics["seed"] == 2
    assert main(["quantize", str(out)]) == 0
    assert capsys.readouterr().out.startswith("model mlp, scheme fixed8")


def test_installed_command():
    exe = shutil.which("hwgen")
    assert exe is not None, "the hwgen console script is not installed"
    r = subprocess.run([exe, "quantize", "builtin:mlp", "--scheme", "fixed8"],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert "fc1" in r.stdout and "test accuracy" in r.stdout
    r = subprocess.run([exe, "quantize", "/nonexistent/model.pt"], capture_output=True,
                       text=True, timeout=300, check=False)
    assert r.returncode == 1
    assert r.stderr == "hwgen: error: Checkpoint '/nonexistent/model.pt' does not exist\n"


def test_module_entry_point(tmp_path):
    # Run outside the source tree: `python -m` puts the working directory first on sys.path,
    # and the tree's hwgen/ lacks the packages the wheel maps in from sim/ and boards/.
    r = subprocess.run([sys.executable, "-m", "hwgen.cli", "--version"], capture_output=True,
                       text=True, timeout=300, check=False, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("hwgen ")


# --- compile, simulate, demo -------------------------------------------------------------

def test_compile_bad_array_writes_nothing(tmp_path, capsys):
    out = tmp_path / "design"
    assert main(["compile", "builtin:mlp", "--array", "4by4", "--out", str(out)]) == 1
    assert capsys.readouterr().err == ("hwgen: error: Array shape must be written ROWSxCOLS "
                                       "like '4x4', not '4by4'\n")
    assert list(tmp_path.iterdir()) == []


def test_simulate_a_folder_that_is_not_a_design(tmp_path, capsys):
    assert main(["simulate", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (f"hwgen: error: Folder '{tmp_path}' is not an hwgen "
                                       f"design (it has no manifest.json); write one with "
                                       f"`hwgen compile`\n")


def test_compile_prints_predicted_cycles(tmp_path, capsys):
    assert main(["compile", "builtin:mlp", "--scheme", "fixed4", "--array", "3x5",
                 "--out", str(tmp_path / "d"), "--vectors", "4"]) == 0
    out = capsys.readouterr().out
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert f"predicted cycles: {manifest['cycles']['predicted_total']} " in out
    assert manifest["config"]["rows"] == 3 and manifest["config"]["cols"] == 5
    assert [layer["name"] for layer in manifest["layers"]] == ["fc1", "fc2"]
    assert main(["simulate", str(tmp_path / "d"), "--samples", "5"]) == 1
    assert capsys.readouterr().err.endswith("holds 4 test vectors, not 5\n")


@pytest.mark.slow
def test_demo(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(tmp_path / "builds"))
    assert main(["demo", "--samples", "3"]) == 0
    out = capsys.readouterr().out
    assert "bit-exact: yes (0 mismatched words)" in out
    report = json.loads((tmp_path / "hwgen-demo" / "sim_report.json").read_text())
    assert report["bit_exact"] and report["mismatches"] == 0 and report["samples"] == 3
    assert report["cycles_measured"] == report["cycles_predicted"]
    assert f"cycles: measured {report['cycles_measured']['total']}, predicted " in out


def test_demo_bad_scheme_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--scheme", "fixed5"]) == 1
    assert capsys.readouterr().err == ("hwgen: error: Scheme must be one of fixed16, fixed8, "
                                       "fixed4, pow2-4, bwn, ternary, binary, codebook-4, "
                                       "codebook-6 or a JSON file, not "
                                       "'fixed5'\n")
    assert list(tmp_path.iterdir()) == []
