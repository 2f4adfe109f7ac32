"""hwgen.cli over a table of bad arguments, as a new user types them.

Every case must end with exactly one line ``hwgen: error: …`` on stderr (or argparse's usage
message for a malformed command line), no traceback, the documented exit status, nothing on
stdout, and not one file created, changed or deleted — neither in the working folder nor in a
user's folder beside it. Errors must come before the long work (elaboration), which the
``no_elaboration`` fixture turns into a test failure.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from hwgen import emit
from hwgen._toolchain import has_optional_tool
from hwgen.cli import main


def _tree(root):
    """``{relative path: (mode, bytes or None)}`` of everything below ``root``."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            data = None
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read()
            out[os.path.relpath(path, root)] = (st.st_mode, data)
    return out


@pytest.fixture(scope="module")
def design_dir(tmp_path_factory):
    """A real design folder (the MLP on a 2x2 array), compiled once."""
    out = tmp_path_factory.mktemp("design") / "d"
    assert main(["compile", "builtin:mlp", "--array", "2x2", "--vectors", "3",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch, design_dir):
    """A working folder holding a user's files, a plain file, a design without its Verilog
    and a copy of a real design."""
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "mywork").mkdir()
    (tmp_path / "mywork" / "a.txt").write_text("mine")
    (tmp_path / "FILE").write_text("")
    _checkpoints(tmp_path)
    (tmp_path / "w1.json").write_text('{"default": {"width": 1}}')
    shutil.copytree(design_dir, tmp_path / "design")
    shutil.copytree(design_dir, tmp_path / "noverilog")
    (tmp_path / "noverilog" / f"{emit.TOPLEVEL}.v").unlink()
    shutil.copytree(design_dir, tmp_path / "userboard")     # a user's folder where a build goes
    (tmp_path / "userboard" / "board_icebreaker").mkdir()
    (tmp_path / "userboard" / "board_icebreaker" / "a.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _checkpoints(folder):
    """MLP checkpoints a user might have: one with an inf weight, one with NaN weights, one
    that names a data set of another image size, and a plain one."""
    import torch

    from hwgen import models
    model = models.build("mlp")
    models.save_checkpoint(folder / "good.pt", "mlp", model, dataset="digits")
    models.save_checkpoint(folder / "d12.pt", "mlp", model, dataset="digits12")
    with torch.no_grad():
        first = next(model.parameters())
        first.view(-1)[0] = float("inf")
        models.save_checkpoint(folder / "inf.pt", "mlp", model, dataset="digits")
        first.view(-1)[:2] = float("nan")
        models.save_checkpoint(folder / "nan.pt", "mlp", model, dataset="digits")


@pytest.fixture
def no_elaboration(monkeypatch):
    def elaborate(*args, **kwargs):
        raise AssertionError("the command started generating Verilog before refusing")
    monkeypatch.setattr(emit, "verilog", elaborate)


LIMIT = (r"A 1000x1000 array of 1,000,000 PEs is more than hwgen builds \(at most 1,024 PEs, "
         r"e\.g\. 32x32\); pass --allow-large \(allow_large=True\) to build it anyway")
COMPILE = ["compile", "builtin:digits-cnn"]
SEARCH = ["search", "builtin:mlp", "-q", "--out", "D"]

CASES = [
    # compile: array shapes and sizes
    (COMPILE + ["--array", "1000x1000", "--out", "D"], LIMIT),
    (COMPILE + ["--array", "-1x2", "--out", "D"],
     r"Array rows must be a positive integer, not -1"),
    (COMPILE + ["--array", "0x4", "--out", "D"], r"Array rows must be a positive integer, not 0"),
    (COMPILE + ["--array", "4", "--out", "D"],
     r"Array shape must be written ROWSxCOLS like '4x4', not '4'"),
    (COMPILE + ["--acc-width", "0", "--out", "D"],
     r"Acc width must be a positive integer, not 0"),
    (COMPILE + ["--acc-width", "200", "--out", "D"],
     (r"A 200-bit accumulator is more than hwgen builds \(at most 64 bits\); pass --allow-large "
     r"\(allow_large=True\) to build it anyway")),
    (COMPILE + ["--acc-width", "4", "--out", "D"],
     r"Dot products need a \d+-bit accumulator but the config has 4; raise acc_width"),
    (COMPILE + ["--xnor-width", "0", "--out", "D"],
     r"XNOR width must be a positive integer, not 0"),
    (COMPILE + ["--xnor-width", "65", "--out", "D"],
     (r"An XNOR width of 65 binary positions is more than hwgen builds \(at most 64\); pass "
      r"--allow-large \(allow_large=True\) to build it anyway")),
    (COMPILE + ["--pe-kind", "xnor", "--out", "D"],
     (r"PE kind 'xnor' runs binary weights on binary activations only, and layers 'conv1', "
      r"'conv2', 'fc' are not binary on both sides; use --pe-kind auto \(pe_kind=None\), "
      r"one engine per kind")),
    # compile: test vectors
    (COMPILE + ["--vectors", "0", "--out", "D"],
     r"Test vectors must be an integer of at least 1, not 0"),
    (COMPILE + ["--vectors", "-1", "--out", "D"],
     r"Test vectors must be an integer of at least 1, not -1"),
    # compile: output folders
    (COMPILE + ["--out", ""], r"Output folder must be a path, not ''"),
    (COMPILE + ["--out", "."],
     (r"Output folder '\.' exists and is not an hwgen design \(it holds 'FILE'\); choose "
     r"another folder, or pass --force to add the design's files to it \(other files are "
     r"left alone\)")),
    (COMPILE + ["--out", "mywork"], (r"Output folder 'mywork' exists and is not an hwgen design "
                                    r"\(it holds 'a.txt'\); .*")),
    (COMPILE + ["--out", "FILE"], r"Output folder 'FILE' is a file, not a folder"),
    (COMPILE + ["--out", "FILE/sub"],
     r"Output folder 'FILE/sub' cannot be created: 'FILE' is a file, not a folder"),
    (COMPILE + ["--out", "/proc/x"], r"Output folder '/proc/x' cannot be created in '/proc': .+"),
    (COMPILE + ["--out", "/sys/x"], r"Output folder '/sys/x' cannot be created in '/sys': .+"),
    # compile and quantize: models and schemes
    (COMPILE + ["--scheme", "fixed5", "--out", "D"],
     r"Scheme must be one of fixed16, fixed8, fixed4, pow2-4, bwn, ternary, binary, codebook-4, codebook-6 or a JSON file, not 'fixed5'"),
    (["compile", "missing.pt", "--out", "D"], r"Checkpoint 'missing.pt' does not exist"),
    (["quantize", "missing.pt"], r"Checkpoint 'missing.pt' does not exist"),
    (["quantize", "builtin:nope"], r"Built-in model must be one of .*, not 'builtin:nope'"),
    # model files and data files
    (["quantize", "model.pt2"],
     (r"Model 'model.pt2' is a torch.export archive, which hwgen does not load because "
      r"torch.export.load can unpickle code from it; export ONNX instead with "
      r"torch.onnx.export\(model, \(x,\), 'model.onnx', dynamo=False\)")),
    (["compile", "model.pt2", "--out", "D"], r"Model 'model.pt2' is a torch.export archive, .*"),
    (["quantize", "missing.onnx"], r"ONNX model 'missing.onnx' does not exist"),
    (["quantize", "good.pt", "--data", "missing.npz"], r"Data file 'missing.npz' does not exist"),
    (["compile", "good.pt", "--data", "mywork", "--out", "D"],
     r"IDX file 'mywork/train-images-idx3-ubyte' does not exist"),     # a folder: MNIST
    (["quantize", "good.pt", "--data", "FILE"], r"Data file 'FILE' is not a NumPy \.npz file .*"),
    # simulate
    (["simulate", "nothere"], (r"Design folder 'nothere' does not exist; write one with "
                              r"`hwgen compile MODEL --out nothere`")),
    (["simulate", "mywork"], (r"Folder 'mywork' is not an hwgen design \(it has no "
                             r"manifest\.json\); write one with `hwgen compile`")),
    (["simulate", "FILE"], r"Design folder 'FILE' does not exist; .*"),
    (["simulate", "noverilog"], (r"Design folder 'noverilog' has no hwgen_top\.v; run "
                                r"`hwgen compile` again")),
    (["simulate", "design", "--samples", "0"], r"Samples must be an integer of at least 1, not 0"),
    (["simulate", "design", "--samples", "4"],
     r"Design folder 'design' holds 3 test vectors, not 4"),
    # estimate
    (["estimate", "nothere"], (r"Design folder 'nothere' does not exist; write one with "
                              r"`hwgen compile MODEL --out nothere`")),
    (["estimate", "noverilog"], (r"Design folder 'noverilog' has no hwgen_top\.v; run "
                                r"`hwgen compile` again")),
    # build: checked before elaboration
    (["build", "nothere", "--board", "icebreaker"],
     (r"Design folder 'nothere' does not exist; write one with `hwgen compile MODEL --out "
      r"nothere`")),
    (["build", "mywork", "--board", "icebreaker"],
     (r"Folder 'mywork' is not an hwgen design \(it has no manifest\.json\); write one with "
      r"`hwgen compile`")),
    (["build", "noverilog", "--board", "icebreaker"],
     r"Design folder 'noverilog' has no hwgen_top\.v; run `hwgen compile` again"),
    (["build", "design", "--board", "de10"],
     r"Board must be one of icebreaker, ulx3s-85f, not 'de10'"),
    (["build", "design", "--board", "icebreaker", "--baud", "0"],
     r"Baud rate must be an integer of at least 1, not 0"),
    (["build", "design", "--board", "icebreaker", "--baud", "5000000"],
     (r"Baud rate 5000000 is too fast for a 12 MHz clock \(at most 3,000,000: 4 clock cycles "
      r"per bit\)")),
    (["build", "design", "--board", "ulx3s-85f", "--baud", "2000000"],
     (r"Baud rate 2000000 cannot be made from a 25 MHz clock: 12 cycles per bit give "
      r"2,083,333 baud, more than 2 % off")),
    (["build", "userboard", "--board", "icebreaker"],
     (r"Board folder 'userboard/board_icebreaker' exists and is not an hwgen board build \(it "
      r"holds 'a\.txt'\); move it away to build for the iCEBreaker")),
    # run-board: checked before the port is opened, then the port
    (["run-board", "nothere", "--port", "/dev/ttyUSB1"],
     r"Design folder 'nothere' does not exist; .*"),
    (["run-board", "mywork", "--port", "/dev/ttyUSB1"],
     r"Folder 'mywork' is not an hwgen design \(it has no manifest\.json\); .*"),
    (["run-board", "design", "--port", "/dev/ttyUSB1", "--samples", "0"],
     r"Samples must be an integer of at least 1, not 0"),
    (["run-board", "design", "--port", "/dev/ttyUSB1", "--samples", "4"],
     r"Design folder 'design' holds 3 test vectors, not 4"),
    (["run-board", "design", "--port", "/dev/ttyUSB1", "--timeout", "0"],
     r"Timeout must be a positive number of seconds, not 0\.0"),
    (["run-board", "design", "--port", "/dev/ttyUSB1", "--baud", "0"],
     r"Baud rate must be an integer of at least 1, not 0"),
    (["run-board", "design", "--port", "/dev/hwgen-no-such-port", "--samples", "3"],
     r"Cannot open serial port '/dev/hwgen-no-such-port': No such file or directory"),
    (["run-board", "design", "--port", "FILE", "-n", "3"], r"Cannot open serial port 'FILE': it is not a serial port"),
    # demo: checked before its compile
    (["demo", "--samples", "0"], r"Samples must be an integer of at least 1, not 0"),
    (["demo", "--array", "1000x1000"], LIMIT),
    # checkpoints a user might have
    (["quantize", "inf.pt"], r"Checkpoint 'inf.pt' tensor '\S+' holds 1 non-finite value"),
    (["quantize", "nan.pt"], r"Checkpoint 'nan.pt' tensor '\S+' holds 2 non-finite values"),
    (["compile", "nan.pt", "--out", "D"],
     r"Checkpoint 'nan.pt' tensor '\S+' holds 2 non-finite values"),
    (["quantize", "d12.pt"], (r"Checkpoint 'd12.pt' names data set 'digits12' of input shape "
                             r"\(1, 12, 12\), but architecture 'mlp' takes \(1, 8, 8\)")),
    (["quantize", "good.pt", "--scheme", "bad.json"], r"Scheme file 'bad.json' does not exist"),
    (["compile", "good.pt", "--scheme", "w1.json", "--out", "D"],
     r"Scheme file 'w1.json' default: width must be an integer from 2 to 32, not 1"),
    # train: checked before training
    (["train", "mlp", "--out", "m.pt", "--epochs", "0", "-q"],
     r"Epochs must be a positive integer, not 0"),
    (["train", "mlp", "--out", "m.pt", "--qat", "fixed0", "-q"],
     r"Scheme must be one of fixed16, fixed8, fixed4, pow2-4, bwn, ternary, binary, codebook-4, codebook-6 or a JSON file, not 'fixed0'"),
    (["train", "mlp", "--out", "m.pt", "--qat", "fixed8", "--qat-epochs", "0", "-q"],
     r"QAT epochs must be a positive integer, not 0"),
    (["train", "mlp", "--out", "mywork", "-q"], r"Output 'mywork' is a folder, not a file"),
    (["train", "mlp", "--out", "FILE/m.pt", "-q"],
     r"Output 'FILE/m.pt' is under '.*FILE', which is a file, not a folder"),
    (["train", "mlp", "--out", "", "-q"], r"Output file must be a path, not ''"),
    # analyze and sensitivity: checked before the model is loaded (but the calibration
    # count against the model's inputs)
    (["analyze", "builtin:mlp", "--out", "D", "--widths", "1..4"],
     r"Width must be an integer from 2 to 32, not 1"),
    (["analyze", "builtin:mlp", "--out", "D", "--widths", "four"],
     r"Widths must be written like '4\.\.16' or '4,8,16', not 'four'"),
    (["analyze", "builtin:mlp", "--out", "D", "--widths", "8..4"],
     r"Width range '8\.\.4' is empty: 4 is below 8"),
    (["analyze", "builtin:mlp", "--out", "D", "--calib", "0"],
     r"Calibration images must be an integer of at least 1, not 0"),
    (["analyze", "builtin:mlp", "--out", "D", "--calib", "100000"],
     r"Calibration images must be at most 1347 \(the model's calibration inputs\), not 100000"),
    (["analyze", "builtin:mlp", "--out", "mywork"],
     (r"Output folder 'mywork' exists and is not an hwgen analysis \(it holds 'a.txt'\); "
      r"choose another folder, or pass --force to add the analysis's files to it \(other "
      r"files are left alone\)")),
    (["analyze", "builtin:mlp", "--out", "FILE"], r"Output folder 'FILE' is a file, not a folder"),
    (["analyze", "missing.pt", "--out", "D"], r"Checkpoint 'missing.pt' does not exist"),
    (["analyze", "nan.pt", "--out", "D"],
     r"Checkpoint 'nan.pt' tensor '\S+' holds 2 non-finite values"),
    (["sensitivity", "builtin:mlp", "--out", "D", "--widths", "4,40", "-q"],
     r"Width must be an integer from 2 to 32, not 40"),
    (["sensitivity", "builtin:mlp", "--out", "D", "--calib", "-1", "-q"],
     r"Calibration images must be an integer of at least 1, not -1"),
    (["sensitivity", "builtin:mlp", "--out", "FILE/sub", "-q"],
     r"Output folder 'FILE/sub' cannot be created: 'FILE' is a file, not a folder"),
    (["sensitivity", "builtin:mlp", "--out", "design", "-q"],
     (r"Output folder 'design' exists and is not an hwgen sensitivity analysis \(it holds "
      r"'hwgen_axis.v'\); .*")),
    (["sensitivity", "good.pt", "--data", "missing.npz", "--out", "D", "-q"],
     r"Data file 'missing.npz' does not exist"),
    # search: checked before the model is loaded, but the unreachable target
    (SEARCH + ["--target-accuracy", "1.5"],
     r"Target accuracy must be a number in \(0, 1\], not 1\.5"),
    (SEARCH + ["--target-accuracy", "0"],
     r"Target accuracy must be a number in \(0, 1\], not 0\.0"),
    (SEARCH + ["-t", "0.9", "--cost", "area"],
     r"Cost must be one of weight-bytes, act-bytes, cycles, luts, bram, energy, not 'area'"),
    (SEARCH + ["-t", "0.9", "--cost", "luts", "--device", "ecp5-25k"],
     (r"Analytic estimates are calibrated for iCE40 targets \(ice40-up5k, ice40-hx8k\), not "
      r"'ecp5-25k'")),
    (SEARCH + ["-t", "0.9", "--budget", "5"], r"Budget must be an integer of at least 20, not 5"),
    (SEARCH + ["-t", "0.9", "--jobs", "0"], r"Jobs must be an integer of at least 1, not 0"),
    (SEARCH + ["-t", "0.9", "--array", "1000x1000"], LIMIT),
    (["search", "builtin:mlp", "-q", "-t", "0.9", "--out", "mywork"],
     (r"Output folder 'mywork' exists and is not an hwgen search \(it holds 'a\.txt'\); "
      r"choose another folder, or pass --force to add the search's files to it \(other "
      r"files are left alone\)")),
    (SEARCH + ["-t", "0.9", "--data", "missing.npz"], r"Data file 'missing.npz' does not exist"),
    (SEARCH + ["-t", "1", "--budget", "20"],
     (r"No configuration reaches the target accuracy 100\.00%; the most accurate, uniform "
      r"(fixed|codebook-)\d+, reaches \d+\.\d\d%")),
]
if not has_optional_tool("iverilog"):
    CASES.append((["simulate", "design", "--sim", "icarus"],
                  (r"Icarus Verilog \(iverilog\) was not found; install it with `apt-get "
                  r"install iverilog` or set IVERILOG")))
if not has_optional_tool("lz4"):
    CASES.append((["simulate", "design", "--waves", "fst"],
                  (r"Verilator's FST waves need the lz4 headers, which are not installed; "
                  r"install them with `apt-get install liblz4-dev` or record VCD waves instead")))


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_argument_gives_one_line_and_touches_nothing(workdir, no_elaboration, capsys, argv,
                                                         message):
    before = _tree(workdir)
    status = main(argv)
    out, err = capsys.readouterr()
    assert (status, out) == (1, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("hwgen: error: ")
    assert re.fullmatch(message, err[len("hwgen: error: "):-1]), err
    assert _tree(workdir) == before


USAGE = [
    ["compile", "builtin:mlp"],                          # --out missing
    ["simulate", "design", "--sim", "modelsim"],
    ["simulate", "design", "--waves", "lxt"],
    ["simulate", "design", "--samples", "many"],
    ["train", "resnet", "--out", "x.pt"],
    ["estimate", "design", "--target", "virtex"],
    ["build", "design"],                                 # --board missing
    ["build", "design", "--board", "icebreaker", "--baud", "fast"],
    ["run-board", "design"],                             # --port missing
    ["run-board", "design", "--port", "X", "--timeout", "soon"],
    ["analyze", "builtin:mlp"],                          # --out missing
    ["analyze", "builtin:mlp", "--out", "D", "--calib", "many"],
    ["sensitivity", "builtin:mlp", "--out", "D", "--what", "gradients"],
    ["search", "builtin:mlp", "--out", "D"],            # --target-accuracy missing
    ["search", "builtin:mlp", "--out", "D", "-t", "high"],
    ["search", "builtin:mlp", "--out", "D", "-t", "0.9", "--device", "virtex"],
    ["frobnicate"],
]


@pytest.mark.parametrize("argv", USAGE, ids=[" ".join(a) for a in USAGE])
def test_malformed_command_lines_exit_2_with_usage(workdir, capsys, argv):
    before = _tree(workdir)
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    assert e.value.code == 2 and out == ""
    assert err.startswith("usage: hwgen") and "Traceback" not in err
    assert _tree(workdir) == before


def test_ctrl_c_gives_one_line_and_leaves_nothing(tmp_path):
    """Ctrl-C while ``compile`` is busy: status 130, one line, no half-written folder."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwgen.cli", "compile", "builtin:digits-cnn", "--out", "D"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # Interrupt once the command has said it started working (after its imports).
    line = proc.stderr.readline()
    assert line.startswith("hwgen: generating"), line
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("compile finished before the interrupt arrived")
    assert proc.returncode == 130
    assert err == "hwgen: error: interrupted\n"
    assert list(tmp_path.iterdir()) == []
