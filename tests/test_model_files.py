"""Model files for the CLI (hwgen/flow.py load_float_model, hwgen/onnx_reader.py,
hwgen/models/userarch.py) and ``--data FILE.npz`` (hwgen/data.py load_npz): accepted kinds
lower like the module they came from; hostile files are refused with one line and run
nothing."""

import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from hwgen import golden, models
from hwgen.cli import main
from hwgen.data import digits
from hwgen.flow import load_quantized

onnx = pytest.importorskip("onnx")


def export(model, path):
    """``torch.onnx.export`` as users call it; the legacy exporter (the dynamo one needs
    onnxscript) warns that it is deprecated."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False)


def user_cnn():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 5, 5, stride=2, padding=2)), ("bn", nn.BatchNorm2d(5)),
        ("relu1", nn.ReLU6()), ("conv2", nn.Conv2d(5, 7, 3)), ("relu2", nn.ReLU()),
        ("pool", nn.MaxPool2d(2)), ("flat", nn.Flatten()), ("fc", nn.Linear(7, 10))])).eval()


@pytest.fixture
def data(tmp_path):
    ds = digits()
    path = tmp_path / "d.npz"
    np.savez(path, x_train=ds.x_train[:400], x_test=ds.x_test[:50], y_test=ds.y_test[:50])
    return path


def one_error(capsys, argv, message):
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("hwgen: error: "), err
    import re
    assert re.fullmatch(message, err[len("hwgen: error: "):-1]), err


# --- accepted kinds -------------------------------------------------------------------

def test_user_checkpoint_needs_no_class(tmp_path, data, capsys):
    model = user_cnn()
    models.save_model(tmp_path / "mine.pt", model, (1, 8, 8))
    q = load_quantized(tmp_path / "mine.pt", "fixed8", data=data)
    ds = digits()
    import hwgen
    ref = hwgen.quantize(model, (1, 8, 8), ds.x_train[:400])
    np.testing.assert_array_equal(q.predict_int(ds.x_test), ref.predict_int(ds.x_test))
    assert q.dataset.name == f"npz:{data}" and len(q.dataset.x_test) == 50
    assert main(["quantize", str(tmp_path / "mine.pt"), "--data", str(data)]) == 0
    assert "test accuracy on npz:" in capsys.readouterr().out
    # the model from a file and an .npz through the CLI, simulated on Verilator
    design = tmp_path / "design"
    assert main(["compile", str(tmp_path / "mine.pt"), "--data", str(data), "--array", "2x3",
                 "--vectors", "3", "--out", str(design)]) == 0
    assert main(["simulate", str(design), "--samples", "3"]) == 0
    import json
    report = json.loads((design / "sim_report.json").read_text())
    assert report["bit_exact"] and report["cycles_match"] and report["samples"] == 3
    capsys.readouterr()
    one_error(capsys, ["quantize", str(tmp_path / "mine.pt")],
              r"Model '.*mine.pt' names no data set; give its calibration and test data with "
              r"--data FILE.npz \(arrays x_train or x_calib, x_test, y_test\)")


def mnist_folder(path, n_train=40, n_test=12):
    """The four MNIST IDX files (random 28x28 images) in ``path``."""
    import struct

    def idx(array):
        array = np.asarray(array, dtype=np.uint8)
        return bytes([0, 0, 0x08, array.ndim]) + b"".join(
            struct.pack(">I", d) for d in array.shape) + array.tobytes()

    rng = np.random.default_rng(2)
    path.mkdir()
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        (path / f"{prefix}-images-idx3-ubyte").write_bytes(idx(rng.integers(0, 256, (n, 28, 28))))
        (path / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(rng.integers(0, 10, n)))
    return path


def test_mnist_folder_as_data(tmp_path, capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    models.save_model(tmp_path / "m.pt", model, (1, 28, 28))
    folder = mnist_folder(tmp_path / "mnist")
    q = load_quantized(tmp_path / "m.pt", "fixed8", data=folder)
    assert q.dataset.name == f"mnist:{folder}" and len(q.dataset.x_test) == 12
    assert main(["quantize", str(tmp_path / "m.pt"), "--data", str(folder)]) == 0
    assert f"test accuracy on mnist:{folder}" in capsys.readouterr().out
    one_error(capsys, ["quantize", "builtin:mlp", "--data", str(folder)],
              rf"MNIST folder '{folder}' holds images of shape \(1, 28, 28\), but model "
              rf"'mlp' takes \(1, 8, 8\)")


def test_onnx_file(tmp_path, data):
    model = user_cnn()
    path = tmp_path / "m.onnx"
    export(model, path)
    q = load_quantized(path, "fixed8", data=data)
    x = torch.tensor(digits().x_test)
    with torch.no_grad():
        np.testing.assert_allclose(q.float_module(x).numpy(), model(x).numpy(), atol=1e-5)
    assert [type(n).__name__ for n in q.graph.layers] == ["Conv2d", "Conv2d", "Flatten",
                                                          "Linear"]
    g = golden.run(q.graph, q.quantize_input(x.numpy()))
    assert q.accuracy() == np.mean(g[:50].argmax(1) == digits().y_test[:50])


def test_compile_an_onnx_file(tmp_path, data):
    path = tmp_path / "m.onnx"
    export(user_cnn(), path)
    assert main(["compile", str(path), "--data", str(data), "--out", str(tmp_path / "d"),
                 "--vectors", "3"]) == 0
    assert (tmp_path / "d" / "hwgen_top.v").is_file()


# --- hostile files --------------------------------------------------------------------

class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_runs_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "hwgen-checkpoint", "x": Evil(str(marker))}, path)
    one_error(capsys, ["quantize", str(path)],
              rf"Checkpoint '{path}' is not plain data and cannot be loaded")
    assert not marker.exists()


def test_pt2_is_refused_unread(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt2"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps(Evil(str(marker))))
    one_error(capsys, ["compile", str(path), "--out", str(tmp_path / "d")],
              rf"Model '{path}' is a torch.export archive, which hwgen does not load because "
              r"torch.export.load can unpickle code from it; export ONNX instead with "
              r"torch.onnx.export\(model, \(x,\), 'model.onnx', dynamo=False\)")
    assert not marker.exists() and not (tmp_path / "d").exists()


def onnx_model(node, initializers=(), opset_domain=""):
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([node], "g", [x], [y], list(initializers))
    opsets = [helper.make_opsetid("", 17)]
    if opset_domain:
        opsets.append(helper.make_opsetid(opset_domain, 1))
    return helper.make_model(graph, opset_imports=opsets)


def test_onnx_custom_domain_is_refused(tmp_path, capsys):
    from onnx import helper
    path = tmp_path / "custom.onnx"
    onnx.save(onnx_model(helper.make_node("Evil", ["x"], ["y"], domain="com.evil",
                                          name="bad"), opset_domain="com.evil"), str(path))
    one_error(capsys, ["quantize", str(path), "--data", "unused.npz"],
              rf"ONNX model '{path}' imports op domain 'com.evil'; hwgen reads only the "
              r"default domain and QONNX's \(qonnx\.custom_op\.general, onnx\.brevitas\)")


def test_onnx_external_data_outside_the_folder_is_refused(tmp_path, capsys):
    from onnx import TensorProto, helper
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 4], np.zeros(12, np.float32))
    w.data_location = TensorProto.EXTERNAL
    del w.float_data[:]
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    path = tmp_path / "ext.onnx"
    model = onnx_model(helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc"), [w])
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    one_error(capsys, ["quantize", str(path), "--data", "unused.npz"],
              rf"ONNX model '{path}' tensor 'w' keeps its data in '../../etc/passwd', outside "
              r"the model's folder")


def test_onnx_unknown_op_is_refused(tmp_path, capsys):
    from onnx import helper
    path = tmp_path / "tanh.onnx"
    onnx.save(onnx_model(helper.make_node("Tanh", ["x"], ["y"], name="t")), str(path))
    one_error(capsys, ["quantize", str(path)],
              r"ONNX node 't' \(Tanh\) is not supported; hwgen reads Conv, Gemm, MatMul, Add, "
              r"Relu, Clip, MaxPool, AveragePool, Flatten, Reshape, BatchNormalization, "
              r"Dropout, Identity, Constant")


# --- data files -----------------------------------------------------------------------

@pytest.mark.parametrize("arrays, message", [
    ({"x_test": np.zeros((2, 1, 8, 8))},
     (r"Data file '\S+' has no array 'x_train' or 'x_calib' \(calibration inputs of shape "
     r"\(N, 1, 8, 8\)\)")),
    ({"x_calib": np.zeros((2, 64))},
     (r"Data file '\S+' array 'x_calib' must have shape \(N, 1, 8, 8\) with N >= 1, not "
     r"\(2, 64\)")),
    ({"x_train": np.zeros((2, 1, 8, 8)), "x_test": np.zeros((2, 1, 8, 8))},
     r"Data file '\S+' has no array 'y_test'; a test set needs both 'x_test' and 'y_test'"),
    ({"x_train": np.zeros((2, 1, 8, 8)), "x_test": np.zeros((2, 1, 8, 8)),
      "y_test": np.zeros(2)},
     (r"Data file '\S+' array 'y_test' must hold integer labels of shape \(N,\), not \(2,\) of "
     r"dtype 'float64'")),
    ({"x_train": np.array([object()] * 2)},
     r"Data file '\S+' cannot be read \(.*\)"),
])
def test_bad_data_files(tmp_path, capsys, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    one_error(capsys, ["quantize", "builtin:mlp", "--data", str(path)], message)


def test_data_file_replaces_the_digits(tmp_path, capsys):
    ds = digits()
    path = tmp_path / "calib.npz"
    np.savez(path, x_calib=ds.x_train[:100])
    q = load_quantized("builtin:mlp", "fixed8", data=path)
    assert q.dataset is None and q.calibration.shape == (100, 1, 8, 8)
    assert main(["quantize", "builtin:mlp", "--data", str(path)]) == 0
    assert "no test set: SQNR measured on 100 calibration inputs" in capsys.readouterr().out
    assert os.path.exists(path)
