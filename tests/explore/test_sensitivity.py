"""hwgen.explore.sensitivity: one layer quantized at a time, and ``hwgen sensitivity``."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from hwgen.cli import main
from hwgen.data import Dataset
from hwgen.errors import ArgumentError
from hwgen.explore.sensitivity import sensitivity, write_sensitivity
from hwgen.flow import FloatModel
from hwgen.frontend import trace


def _two_layers(seed=0):
    """fc1 (4 -> 6, ReLU) then fc2 (6 -> 3), labelled by the float model itself (so its
    accuracy is 100 %), with one test label flipped."""
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    rng = np.random.default_rng(seed)
    x_train = rng.random((30, 4)).astype(np.float32)
    x_test = rng.random((60, 4)).astype(np.float32)
    with torch.no_grad():
        y_test = module(torch.tensor(x_test)).argmax(1).numpy()
    y_test[0] = (y_test[0] + 1) % 3
    ds = Dataset(x_train, np.zeros(30, np.int64), x_test, y_test, "toy")
    return FloatModel("toy", module, (4,), trace(module, (4,)), x_train, ds), module


def test_what_checked():
    fm, _ = _two_layers()
    with pytest.raises(ArgumentError, match=r"^What to quantize must be one of weights, "
                                            r"activations, both, not 'bias'$"):
        sensitivity(fm, "8", what="bias")


def _q(x, width, frac):
    lo, hi = -2 ** (width - 1), 2 ** (width - 1) - 1
    return np.clip(np.round(np.asarray(x, np.float64) * 2.0 ** frac), lo, hi) / 2.0 ** frac


def test_rows_against_a_direct_computation():
    """Each row's accuracy and L2, recomputed here from the formats the row reports."""
    fm, module = _two_layers()
    res = sensitivity(fm, "3,6", what="both", calib=20)
    assert res.layers == ("_0", "_2") and res.widths == (3, 6)   # torch.fx node names
    assert res.float_accuracy == pytest.approx(59 / 60)
    p = {k: v.detach().double().numpy() for k, v in module.state_dict().items()}
    x = fm.dataset.x_test.astype(np.float64)

    def net(w0=p["0.weight"], w2=p["2.weight"], q0=None, q2=None):
        h = x if q0 is None else q0(x)
        h = np.maximum(h @ w0.T + p["0.bias"], 0)
        h = h if q2 is None else q2(h)
        return h @ w2.T + p["2.bias"]

    ref = net()
    assert len(res.rows) == 4
    for r in res.rows:
        assert r.weight_frac is not None and r.activation_frac is not None
        qa = (lambda h, r=r: _q(h, r.width, r.activation_frac))
        if r.layer == "_0":
            out = net(w0=_q(p["0.weight"], r.width, r.weight_frac), q0=qa)
        else:
            out = net(w2=_q(p["2.weight"], r.width, r.weight_frac), q2=qa)
        assert r.l2 == pytest.approx(np.linalg.norm(out - ref) / np.linalg.norm(ref),
                                     rel=1e-9)
        assert r.accuracy == np.mean(out.argmax(1) == fm.dataset.y_test)
    by = {(r.layer, r.width): r for r in res.rows}
    assert by[("_0", 6)].l2 < by[("_0", 3)].l2 and by[("_2", 6)].l2 < by[("_2", 3)].l2


@pytest.mark.parametrize("what", ["weights", "activations"])
def test_one_tensor_at_a_time(what):
    fm, _ = _two_layers()
    res = sensitivity(fm, "2,12", what=what, calib=20)
    for r in res.rows:
        assert (r.weight_frac is None) == (what == "activations")
        assert (r.activation_frac is None) == (what == "weights")
        assert r.l2 > 0
        if r.width == 12:
            assert r.l2 < 1e-2 and r.accuracy == res.float_accuracy
    grid = res.grid("l2")
    assert grid.shape == (2, 2) and (grid[:, 0] > grid[:, 1]).all()


def test_without_a_test_set_l2_only(tmp_path):
    fm, _ = _two_layers()
    fm = FloatModel(fm.name, fm.module, fm.input_shape, fm.stages, fm.x_calib, None)
    res = sensitivity(fm, "4", what="weights", calib=5)
    assert res.float_accuracy is None and res.test_images == 30
    assert all(r.accuracy is None for r in res.rows)
    assert "no test set" in res.format_table()
    names = sorted(p.name for p in write_sensitivity(res, tmp_path))
    assert names == ["sensitivity.json", "sensitivity.png"]


def test_cli_sensitivity(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sensitivity", "builtin:mlp", "--out", str(out), "--widths", "3,8",
                 "--what", "weights", "--calib", "10"]) == 0
    cap = capsys.readouterr()
    assert "layer x width" in cap.err and "4/4" in cap.err   # the progress bar, on stderr
    lines = cap.out.splitlines()
    assert lines[0].startswith("model mlp, weights quantized one layer at a time; digits "
                               "test set (450 images), float accuracy ")
    assert lines[-1] == f"wrote {out}/ (sensitivity.json, sensitivity.png)"
    data = json.loads((out / "sensitivity.json").read_text())
    assert data["layers"] == ["fc1", "fc2"] and data["widths"] == [3, 8]
    rows = {(r["layer"], r["width"]): r for r in data["rows"]}
    assert set(rows) == {("fc1", 3), ("fc1", 8), ("fc2", 3), ("fc2", 8)}
    for layer in ("fc1", "fc2"):
        assert rows[(layer, 3)]["l2"] > rows[(layer, 8)]["l2"]
        assert rows[(layer, 8)]["accuracy"] >= data["float_accuracy"] - 0.02
        row = next(line for line in lines if line.split()[:1] == [layer])
        assert f"{100 * rows[(layer, 3)]['accuracy']:.1f}" in row
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["sensitivity", "builtin:mlp", "--out", str(out), "--widths", "8", "-q",
                 "--json"]) == 0
    cap = capsys.readouterr()
    assert cap.err == "" and json.loads(cap.out)["what"] == "both"
