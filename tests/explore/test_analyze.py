"""hwgen.explore.analyze (and the shared hwgen.explore.layers): statistics, fractional
lengths by width, files, and the ``hwgen analyze`` command."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from hwgen.cli import main
from hwgen.errors import ArgumentError
from hwgen.explore.analyze import analyze, tensor_stats, write_analysis
from hwgen.explore.layers import parse_widths
from hwgen.flow import FloatModel
from hwgen.frontend import trace

# --- construction and error messages ----------------------------------------------------


@pytest.mark.parametrize("text, widths", [("4..16", tuple(range(4, 17))), ("8", (8,)),
                                          ("8,4,6,4", (4, 6, 8)), (" 2 .. 3 ", (2, 3)),
                                          ([16, 8], (8, 16))])
def test_widths(text, widths):
    assert parse_widths(text) == widths


@pytest.mark.parametrize("text, message", [
    ("4-16", r"^Widths must be written like '4\.\.16' or '4,8,16', not '4-16'$"),
    ("", r"^Widths must be written like '4\.\.16' or '4,8,16', not ''$"),
    ("9..8", r"^Width range '9\.\.8' is empty: 8 is below 9$"),
    ("0..4", r"^Width must be an integer from 2 to 32, not 0$"),
    ("8,33", r"^Width must be an integer from 2 to 32, not 33$"),
    (8.0, r"^Widths must be written like '4\.\.16' or '4,8,16', not 8\.0$"),
])
def test_bad_widths(text, message):
    with pytest.raises(ArgumentError, match=message):
        parse_widths(text)


def test_calibration_count_checked():
    fm = _model(np.ones((2, 3)))
    with pytest.raises(ArgumentError, match=r"^Calibration images must be at most 40 \(the "
                                            r"model's calibration inputs\), not 41$"):
        analyze(fm, "8", calib=41)


# --- behaviour ------------------------------------------------------------------------------

def test_tensor_stats_by_hand():
    st = tensor_stats([[-3.0, 1.0], [2.0, 0.0]])
    # mean 0; variance (9 + 1 + 4 + 0) / 4 = 3.5; max|x| = 3 -> IL = ceil(log2 3) = 2
    assert (st.count, st.min, st.max, st.mean, st.il) == (4, -3.0, 2.0, 0.0, 2)
    assert st.std == pytest.approx(math.sqrt(3.5))
    assert sum(st.hist[0]) == 4 and st.hist[1][0] == -3.0 and st.hist[1][-1] == 2.0
    assert tensor_stats(np.zeros(5)).il is None
    assert tensor_stats([0.5, -0.25]).il == -1


def _model(weight, bias=None, relu=False, n=40, seed=0):
    """A FloatModel of one Linear layer on inputs uniform in [0, 1)."""
    weight = np.asarray(weight, dtype=np.float32)
    layers = [nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)]
    with torch.no_grad():
        layers[0].weight.copy_(torch.tensor(weight))
        if bias is not None:
            layers[0].bias.copy_(torch.tensor(bias, dtype=torch.float32))
    if relu:
        layers.append(nn.ReLU())
    module = nn.Sequential(*layers).eval()
    shape = (weight.shape[1],)
    x = np.random.default_rng(seed).random((n,) + shape).astype(np.float32)
    return FloatModel("one", module, shape, trace(module, shape), x, None)


def _q(x, width, frac):
    """Round to nearest (ties to even), saturate: written here, not hwgen's."""
    lo, hi = -2 ** (width - 1), 2 ** (width - 1) - 1
    return np.clip(np.round(np.asarray(x, np.float64) * 2.0 ** frac), lo, hi) / 2.0 ** frac


def _out(x, w, relu):
    y = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
    return np.maximum(y, 0) if relu else y


def _rel(y, ref):
    return np.linalg.norm(y - ref) / np.linalg.norm(ref)


def _sqnr(x, xq):
    return 10 * math.log10(np.sum(x * x) / np.sum((x - xq) ** 2))


def test_outliers_the_output_ignores_make_the_two_choices_differ():
    """Row 0 has large weights whose outputs the ReLU always zeroes (inputs are >= 0):
    the tensor's SQNR wants room for them, the layer's output wants the small weights of
    row 1 resolved."""
    w = np.array([[-6.0, -5.0, -7.0, -6.5], [0.11, -0.23, 0.17, 0.05]], np.float32)
    fm = _model(w, relu=True)
    w = w.astype(np.float64)
    la = analyze(fm, "4,6", calib=30).layers[0]
    x = fm.x_calib[:30].astype(np.float64)
    ref = _out(x, w, True)
    for choice in la.weight_fracs:
        wd = choice.width
        # SQNR: the best over a wide range of F, computed here
        sq = {f: _sqnr(w, _q(w, wd, f)) for f in range(-4, 12)}
        assert choice.frac_sqnr == max(sq, key=lambda f: (sq[f], -f))
        assert choice.sqnr_db == pytest.approx(sq[choice.frac_sqnr])
        # L2: the distance reported is the distance at that F, and a local minimum
        dist = {f: _rel(_out(x, _q(w, wd, f), True), ref) for f in range(-4, 12)}
        assert choice.l2 == pytest.approx(dist[choice.frac_l2], rel=1e-12)
        assert dist[choice.frac_l2] <= min(dist[choice.frac_l2 - 1], dist[choice.frac_l2 + 1])
        assert choice.frac_l2 >= choice.frac_sqnr + 2
    st = la.weights
    assert (st.min, st.max, st.il) == (-7.0, pytest.approx(0.17), 3)


def test_activation_choices_against_a_direct_computation():
    w = np.array([[0.5, -0.25, 1.0], [-1.5, 0.75, 0.125]])
    fm = _model(w, bias=[0.1, -0.2])
    res = analyze(fm, "3,5,8", calib=25)
    la = res.layers[0]
    x = fm.x_calib[:25].astype(np.float64)
    b = np.array([0.1, -0.2], np.float32).astype(np.float64)
    ref = _out(x, w, False) + b
    assert la.activations.count == x.size and la.activations.max == pytest.approx(x.max())
    for choice in la.activation_fracs:
        dist = {f: _rel(_out(_q(x, choice.width, f), w, False) + b, ref)
                for f in range(-3, 14)}
        assert choice.l2 == pytest.approx(dist[choice.frac_l2], rel=1e-9)
        assert dist[choice.frac_l2] <= min(dist[choice.frac_l2 - 1], dist[choice.frac_l2 + 1])
    # more bits, less error
    l2 = [c.l2 for c in la.activation_fracs]
    assert l2 == sorted(l2, reverse=True) and l2[-1] < l2[0] / 10
    assert res.widths == (3, 5, 8) and res.calib_images == 25


def test_write_analysis_and_json(tmp_path):
    fm = _model(np.array([[1.0, -2.0]]))
    res = analyze(fm, "4,8", calib=10)
    paths = write_analysis(res, tmp_path / "new" / "dir")
    names = sorted(p.name for p in paths)
    assert names[0] == "analysis.json" and len(names) == 2 and names[1].startswith("hist_")
    data = json.loads((tmp_path / "new" / "dir" / "analysis.json").read_text())
    assert data == json.loads(json.dumps(res.to_json()))
    assert [c["width"] for c in data["layers"][0]["weight_fracs"]] == [4, 8]
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "new" / "dir").iterdir() if p.name.startswith(".")]


def test_cli_analyze(tmp_path, capsys):
    out = tmp_path / "an"
    argv = ["analyze", "builtin:digits-cnn", "--out", str(out), "--widths", "4,8",
            "--calib", "8"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == ("model digits-cnn, 8 calibration images; activations are each "
                        "layer's input")
    for layer in ("conv1", "conv2", "fc"):
        assert any(line.split()[:2] == [layer, "weights"] for line in lines)
        assert (out / f"hist_{layer}.png").is_file()
    assert any(line.split()[:1] == ["8"] for line in lines)
    data = json.loads((out / "analysis.json").read_text())
    assert [la["name"] for la in data["layers"]] == ["conv1", "conv2", "fc"]
    # An earlier analysis may be overwritten; JSON on stdout
    assert main(argv + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calib_images"] == 8
