"""hwgen.estimate.fit and ``hwgen compile --fit``: the fastest array that fits a device."""

import json

import pytest

from hwgen.cli import main
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.emit import read_design, write_design
from hwgen.errors import DoesNotFitError
from hwgen.estimate import estimate
from hwgen.estimate.devices import device
from hwgen.estimate.fit import fit_array, read_fit
from hwgen.flow import load_quantized

# --- errors first -----------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--fit", "ice40-up5k", "--array", "2x2"],
     "Give an array shape ('2x2') or a device to fit ('ice40-up5k'), not both"),
    (["--fit", "ecp5-25k"], ("Analytic estimates are calibrated for iCE40 targets "
                            "(ice40-up5k, ice40-hx8k), not 'ecp5-25k'")),
    (["--fit", "ice40-up5k", "--spare", "1"],
     "The spare fraction of logic cells must be at least 0 and below 1, like 0.2, not 1.0"),
    (["--spare", "0.3"], "--spare goes with --fit DEVICE"),
    (["--place", "2"], "--place goes with --fit DEVICE"),
    (["--fit", "ice40-up5k", "--place", "-1"],
     "The number of shapes to place must be an integer of at least 0, not -1"),
])
def test_bad_fit_options_are_refused_before_any_work(tmp_path, capsys, argv, message):
    out = tmp_path / "d"
    assert main(["compile", "builtin:mlp", "--out", str(out), *argv]) == 1
    assert capsys.readouterr().err == f"hwgen: error: {message}\n"
    assert not out.exists()


def test_nothing_fits_names_the_smallest_overflow():
    graph = load_quantized("builtin:digits-cnn", "fixed8").graph
    with pytest.raises(DoesNotFitError, match=r"^No array of at most 64 PEs fits digits_cnn on "
                                              r"ice40-up5k with 95 % of its logic cells spare; "
                                              r"the smallest, 1x1, needs [\d,]+ LCs > 264$"):
        fit_array(graph, "ice40-up5k", spare=0.95)


# --- what is chosen ---------------------------------------------------------------------------

def test_multipliers_follow_the_device():
    """An 8-bit product takes one SB_MAC16 on the UP5K, which has 8: a fixed8 array there has
    at most 8 PEs, while shift PEs use no DSP and may be more; the HX8K has no DSPs, so its
    fixed8 PEs build their multipliers from LUTs."""
    fixed8 = load_quantized("builtin:digits-cnn", "fixed8").graph
    pow2 = load_quantized("builtin:digits-cnn", "pow2-4").graph
    up5k = fit_array(fixed8, "ice40-up5k").chosen
    rows, cols = (int(v) for v in up5k.array.split("x"))
    assert rows * cols <= 8 and up5k.dsps == rows * cols and up5k.lut_multipliers == 0
    shift = fit_array(pow2, "ice40-up5k").chosen
    rows, cols = (int(v) for v in shift.array.split("x"))
    assert rows * cols > 8 and shift.dsps == 0 and shift.lut_multipliers == 0
    hx8k = fit_array(fixed8, "ice40-hx8k").chosen
    rows, cols = (int(v) for v in hx8k.array.split("x"))
    assert hx8k.dsps == 0 and hx8k.lut_multipliers == rows * cols


def test_the_choice_is_the_fastest_that_fits():
    graph = load_quantized("builtin:mlp", None).graph
    choice = fit_array(graph, "ice40-up5k", spare=0.3)
    budget = 0.7 * device("ice40-up5k").luts
    assert choice.chosen.lcs <= budget and choice.chosen.dsps <= 8
    # every faster shape was refused for a stated reason
    faster = [c for c in choice.candidates if c.cycles < choice.chosen.cycles]
    assert faster and all(c.problem for c in faster)
    # the cycles are those of the compiled design of that shape
    rows, cols = (int(v) for v in choice.chosen.array.split("x"))
    assert compile_graph(graph, AcceleratorConfig(rows=rows, cols=cols)).cycles \
        == choice.chosen.cycles
    # less room to spare never gives a slower design
    assert fit_array(graph, "ice40-up5k", spare=0.0).chosen.cycles <= choice.chosen.cycles


def test_compile_fit_writes_the_choice(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["compile", "builtin:mlp", "--fit", "ice40-up5k", "--spare", "0.25",
                 "--vectors", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    choice = read_fit(out)
    cfg = read_design(out).config
    assert choice.chosen.array == f"{cfg.rows}x{cfg.cols}" and choice.spare == 0.25
    assert f"chose {choice.chosen.array} for ice40-up5k: " in printed
    assert json.loads((out / "fit.json").read_text())["chosen"] == choice.chosen.array
    # a design compiled for a given array drops the earlier choice
    assert main(["compile", "builtin:mlp", "--array", "2x2", "--vectors", "2", "--force",
                 "--out", str(out)]) == 0
    assert read_fit(out) is None


def test_the_chosen_design_synthesizes_within_the_device(tmp_path, monkeypatch):
    """Yosys on the chosen design: its DSP blocks and block RAMs are what the choice counted
    (at most the UP5K's), and it fits (``benchmarks/fit_device.py`` places the chosen
    designs and prints their logic cells against the estimate)."""
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(tmp_path / "sim"))    # a fresh estimate cache
    graph = load_quantized("builtin:mlp", None).graph
    choice = fit_array(graph, "ice40-up5k")
    rows, cols = (int(v) for v in choice.chosen.array.split("x"))
    write_design(compile_graph(graph, AcceleratorConfig(rows=rows, cols=cols)), tmp_path / "d")
    result = estimate(tmp_path / "d", "ice40-up5k", place_and_route=False)
    assert result.resources["dsps"] == choice.chosen.dsps <= 8
    assert result.resources["brams"] == choice.chosen.brams <= 30
    assert result.fits and result.resources["luts"] < 0.8 * 5280


@pytest.mark.slow
def test_placing_chooses_by_inferences_per_second(tmp_path, monkeypatch):
    """With ``place``, the shapes placed carry nextpnr's logic cells and Fmax, and the choice
    is the placed shape with the most inferences per second."""
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(tmp_path / "sim"))    # a fresh estimate cache
    graph = load_quantized("builtin:mlp", None).graph
    messages = []
    choice = fit_array(graph, "ice40-up5k", place=2, progress=messages.append)
    placed = [c for c in choice.candidates if c.fmax_mhz is not None]
    assert len(placed) == 2 and choice.chosen in placed
    assert all(0 < c.placed_lcs <= 0.8 * 5280 and 10 < c.fmax_mhz < 300 for c in placed)
    assert choice.chosen.inferences_per_second == max(c.inferences_per_second for c in placed)
    assert any("placing" in m for m in messages)
    assert "Fmax MHz" in choice.table() and "inferences/s" in choice.summary()
    assert read_fit_roundtrip(choice) == choice


def read_fit_roundtrip(choice):
    from hwgen.estimate.fit import FitChoice
    return FitChoice.from_json(json.loads(json.dumps(choice.to_json())))
