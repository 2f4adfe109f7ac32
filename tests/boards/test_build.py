"""hwgen build with the real Yosys, nextpnr and packers (YoWASP from PyPI; no mocked tool
output): a bitstream for the iCEBreaker (and, slow, the ULX3S), and a design too big for the
UP5K refused with nothing written."""

import json
import os
import re
import tempfile
import time

import pytest

from hwgen.boards import protocol
from hwgen.boards.build import BoardBuild, _nextpnr_overflow, _seeded
from hwgen.cli import main
from hwgen.emit import MANIFEST_FILE
from hwgen.flow import compile_model


def _tree(root):
    return {os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root)
            for n in dirs + files}


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A fresh estimate cache and a private temporary folder (where the tools run)."""
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(tmp_path / "cache" / "sim"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path


# nextpnr-ice40's utilisation report as its log has it (the 4x4 pow2-4 digits CNN's build);
# the last line is one a design too big for the part would print before placement fails
UTILISATION = """Info: Device utilisation:
Info: \t         ICESTORM_LC:    4958/   5280    93%
Info: \t        ICESTORM_RAM:       8/     30    26%
Info: \t               SB_IO:       5/     39    12%
Info: \t               SB_GB:       8/      8   100%
"""


def test_nextpnr_utilisation_overflow_is_read_from_its_log():
    assert _nextpnr_overflow(UTILISATION) is None
    over = UTILISATION.replace("4958/   5280    93%", "5617/   5280   106%")
    assert _nextpnr_overflow(over) == ("ICESTORM_LC", 5617, 5280)


def test_each_seed_writes_its_own_outputs():
    pnr = ["nextpnr-ice40", "--quiet", "--report", "top.report.json", "--log", "top.tim",
           "--json", "top.json", "--pcf", "top.pcf", "--asc", "top.asc"]
    assert _seeded(pnr, 3) == [
        "nextpnr-ice40", "--quiet", "--report", "top.s3.report.json", "--log", "top.s3.tim",
        "--json", "top.json", "--pcf", "top.pcf", "--asc", "top.s3.asc", "--seed", "3"]


def test_seeds_are_checked_before_any_tool(fresh, capsys):
    design_dir = fresh / "mlp"
    compile_model("builtin:mlp", None, "2x2", design_dir, vectors=3)
    capsys.readouterr()
    assert main(["build", str(design_dir), "--board", "icebreaker", "--seeds", "0"]) == 1
    assert capsys.readouterr().err == ("hwgen: error: Placement seeds must be an integer "
                                       "from 1 to 100, not 0\n")
    assert not (design_dir / "board_icebreaker").exists()


def test_the_fastest_of_several_seeds_is_kept(fresh, capsys):
    design_dir = fresh / "mlp"
    compile_model("builtin:mlp", "fixed4", "1x2", design_dir, vectors=3)
    capsys.readouterr()
    assert main(["build", str(design_dir), "--board", "icebreaker", "--seeds", "2"]) == 0
    err = capsys.readouterr().err
    seen = [float(f) for f in re.findall(r"seed \d of 2: ([\d.]+) MHz", err)]
    record = BoardBuild.from_json(json.loads(
        (design_dir / "board_icebreaker" / "board.json").read_text()))
    assert len(seen) == 2 and record.seeds == 2 and record.seed in (1, 2)
    assert record.fmax_mhz == pytest.approx(max(seen), abs=0.05)
    assert seen[record.seed - 1] == max(seen)
    # the kept report is the chosen seed's, under the plan's name
    report = json.loads((design_dir / "board_icebreaker" / "top.report.json").read_text())
    assert min(c["achieved"] for c in report["fmax"].values()) == \
        pytest.approx(record.fmax_mhz, abs=0.05)


def test_icebreaker_bitstream(fresh, capsys):
    design_dir = fresh / "mlp"
    compile_model("builtin:mlp", None, "2x2", design_dir, vectors=3)
    capsys.readouterr()
    assert main(["build", str(design_dir), "--board", "icebreaker"]) == 0
    out = capsys.readouterr().out
    folder = design_dir / "board_icebreaker"
    assert re.fullmatch(
        r"iCEBreaker \(iCE40UP5K-SG48\): mlp at 12 MHz, UART 115,200 baud; [\d,]+ of 5,280 "
        r"logic cells \(\d+\.\d %\), 4 DSPs, \d+ block RAMs; Fmax \d+\.\d MHz \(clock 12 "
        rf"MHz\); wrote {re.escape(str(folder))}/top\.bin \(\d+ s\)\n", out), out
    assert {p.name for p in folder.iterdir()} == {"top.bin", "board.json", "top.rpt",
                                                  "top.tim", "top.report.json"}
    assert b"\x7e\xaa\x99\x7e" in (folder / "top.bin").read_bytes()[:64]   # iCE40 preamble
    record = BoardBuild.from_json(json.loads((folder / "board.json").read_text()))
    assert record.fmax_mhz > record.clock_mhz == 12.0
    assert 0 < record.lcs < record.lcs_available == 5280
    assert record.divisor == 104 and record.resources["dsps"] == 4
    assert record.fingerprint == (
        f"{protocol.fingerprint((design_dir / MANIFEST_FILE).read_bytes()):08x}")
    assert list((fresh / "tmp").iterdir()) == []        # the tools' folder is gone
    # a new design in the folder drops the build of the old one
    compile_model("builtin:mlp", "fixed4", "2x2", design_dir, vectors=3)
    assert not folder.exists()


@pytest.fixture(scope="module")
def too_big(tmp_path_factory):
    """The MLP on a 4x4 array: 16 multipliers, and the UP5K has 8 DSPs."""
    design_dir = tmp_path_factory.mktemp("big") / "mlp44"
    compile_model("builtin:mlp", None, "4x4", design_dir, vectors=3)
    return design_dir


FIT_HINT = ("; `hwgen compile MODEL --fit ice40-up5k` chooses the fastest array that fits "
            "it\n")


def test_too_big_is_refused_before_any_tool(too_big, fresh, capsys):
    """The analytic estimate counts DSP blocks exactly: no tool runs for a design that
    needs more than the board's FPGA has, and the refusal names ``--fit``."""
    before = _tree(too_big)
    capsys.readouterr()
    started = time.perf_counter()
    assert main(["build", str(too_big), "--board", "icebreaker"]) == 1
    assert time.perf_counter() - started < 5
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines(keepends=True)[-1] == (
        "hwgen: error: Design 'mlp' does not fit the iCEBreaker's iCE40UP5K-SG48: 16 DSPs "
        "needed, 8 available (analytic estimate); nothing was written" + FIT_HINT)
    assert _tree(too_big) == before
    assert list((fresh / "tmp").iterdir()) == []


def test_too_big_is_refused_at_once_after_an_estimate(too_big, fresh, capsys):
    """Once ``hwgen estimate`` has found the core too big, no tool runs."""
    assert main(["estimate", str(too_big), "--target", "ice40-up5k", "--synth-only"]) == 0
    before = _tree(too_big)
    capsys.readouterr()
    started = time.perf_counter()
    assert main(["build", str(too_big), "--board", "icebreaker"]) == 1
    assert time.perf_counter() - started < 5
    assert capsys.readouterr().err == (
        "hwgen: error: Design 'mlp' does not fit the iCEBreaker's iCE40UP5K-SG48: 16 DSPs "
        "needed, 8 available (from estimate_ice40-up5k.json); nothing was written" + FIT_HINT)
    assert _tree(too_big) == before


@pytest.mark.slow
def test_ulx3s_bitstream(fresh, capsys):
    """The ECP5 flow (the iCEBreaker test covers the rest; this one adds ~35 s)."""
    design_dir = fresh / "mlp"
    compile_model("builtin:mlp", None, "2x2", design_dir, vectors=3)
    capsys.readouterr()
    assert main(["build", str(design_dir), "--board", "ulx3s-85f", "--json"]) == 0
    record = BoardBuild.from_json(json.loads(capsys.readouterr().out))
    folder = design_dir / "board_ulx3s-85f"
    assert record.bitstream == str(folder / "top.bit")
    assert {p.name for p in folder.iterdir()} >= {"top.bit", "top.svf", "board.json"}
    assert record.fmax_mhz > record.clock_mhz == 25.0 and record.divisor == 217
    assert 0 < record.lcs < record.lcs_available == 83640
