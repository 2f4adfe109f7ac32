"""The board top's bridge on Verilator, driven through its UART pins with the bytes of
hwgen.boards.protocol: every output word against the golden model, the cycle count against
the compiler's prediction; then ``hwgen run-board`` itself against the simulated board,
through a pseudo-terminal."""

import json
import re
import shutil
import threading
import time

import pytest

from hwgen.boards import protocol
from hwgen.boards.top import BRIDGE_TOP, bridge_verilog
from hwgen.cli import main
from hwgen.emit import MANIFEST_FILE, TOPLEVEL, read_vectors
from hwgen.flow import compile_model
from hwgen.sim.runner import run_cocotb
from hwgen.sim.testbench_uart import CASE_ENV

DIVISOR = 4
TIMEOUT = 50 * 10 * DIVISOR     # fifty byte times without a byte
SAMPLES = 3


@pytest.fixture(scope="module")
def board_sim(tmp_path_factory):
    """The MLP on a 2x2 array and its bridge's Verilog, built for Verilator once."""
    root = tmp_path_factory.mktemp("board")
    design, _ = compile_model("builtin:mlp", None, "2x2", root / "design", vectors=SAMPLES)
    bridge = root / f"{BRIDGE_TOP}.v"
    bridge.write_text(bridge_verilog(root / "design", divisor=DIVISOR, timeout=TIMEOUT))
    sources = [bridge, root / "design" / f"{TOPLEVEL}.v"]
    return design, root, sources


def _case(design, folder):
    inputs, expected, _ = read_vectors(folder)
    identity = protocol.Identity(design.act_width, design.n_in, design.n_out,
                                 protocol.fingerprint((folder / MANIFEST_FILE).read_bytes()))
    return {"mode": "check", "divisor": DIVISOR, "timeout": TIMEOUT,
            "act_width": design.act_width, "n_out": design.n_out,
            "identity": identity.to_bytes().hex(), "inputs": inputs[:SAMPLES].tolist(),
            "expected": expected[:SAMPLES].tolist(), "cycles": design.cycles}


def test_board_top_over_uart_is_bit_exact(board_sim):
    design, root, sources = board_sim
    case = _case(design, root / "design")
    assert len(case["inputs"]) == SAMPLES and case["cycles"] > 0
    build = root / "build"
    assert run_cocotb(sources, BRIDGE_TOP, "hwgen.sim.testbench_uart", build,
                      extra_env={CASE_ENV: json.dumps(case)}) == (1, 0)
    # the check can fail: one golden word changed, then the predicted cycle count
    case["expected"][1][3] += 1
    assert run_cocotb(sources, BRIDGE_TOP, "hwgen.sim.testbench_uart", build,
                      extra_env={CASE_ENV: json.dumps(case)}, build=False) == (1, 1)
    case["expected"][1][3] -= 1
    case["cycles"] += 1
    assert run_cocotb(sources, BRIDGE_TOP, "hwgen.sim.testbench_uart", build,
                      extra_env={CASE_ENV: json.dumps(case)}, build=False) == (1, 1)


def test_run_board_against_the_simulated_board(board_sim, tmp_path, capsys):
    """``hwgen run-board --port`` (pyserial) on a pseudo-terminal whose other end is the
    simulated board's UART."""
    design, root, sources = board_sim
    build = root / "build"
    if not (build / "results.xml").exists():     # run alone: build it here
        run_cocotb(sources, BRIDGE_TOP, "hwgen.sim.testbench_uart", build,
                   extra_env={CASE_ENV: json.dumps(_case(design, root / "design"))})
    port_file, stop_file = tmp_path / "port", tmp_path / "stop"
    case = {"mode": "serve", "divisor": DIVISOR, "port_file": str(port_file),
            "stop_file": str(stop_file), "max_seconds": 50}
    outcome = {}

    def serve():
        try:
            outcome["results"] = run_cocotb(sources, BRIDGE_TOP, "hwgen.sim.testbench_uart",
                                            build, extra_env={CASE_ENV: json.dumps(case)},
                                            build=False)
        except BaseException as e:  # noqa: BLE001 (asserted in the test's thread)
            outcome["error"] = e

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert port_file.exists(), outcome
        port = port_file.read_text()
        # a folder whose manifest differs by a byte is another design to the board
        other = tmp_path / "other"
        shutil.copytree(root / "design", other)
        with open(other / MANIFEST_FILE, "a") as f:
            f.write("\n")
        refused = main(["run-board", str(other), "--port", port, "--samples", "1"])
        refusal = capsys.readouterr().err
        status = main(["run-board", str(root / "design"), "--port", port,
                       "--samples", str(SAMPLES)])
    finally:
        stop_file.touch()
        thread.join(60)
    assert "error" not in outcome, outcome
    assert outcome["results"] == (1, 0)
    out, err = capsys.readouterr()
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == (f"bit-exact: {SAMPLES} of {SAMPLES} images, every output word equals "
                        f"the golden model's")
    assert lines[1].startswith(f"cycles per image: measured {design.cycles}, predicted "
                               f"{design.cycles} (equal)")
    assert refused == 1
    assert re.fullmatch(
        rf"hwgen: error: The board on '{re.escape(port)}' holds another design \(64 input and "
        rf"10 output words of 8 bits, fingerprint [0-9a-f]{{8}}\), not the one in "
        rf"'{re.escape(str(other))}' \(64 input and 10 output words of 8 bits, fingerprint "
        rf"[0-9a-f]{{8}}\); build and load its bitstream with `hwgen build {re.escape(str(other))} "
        rf"--board BOARD`\n", refusal), refusal
