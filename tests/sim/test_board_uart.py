"""The board top's bridge on Verilator, driven through its UART pins with the bytes of
hwgen.boards.protocol: every output word against the golden model, the cycle count against
the compiler's prediction; then ``hwgen run-board`` itself against the simulated board,
through a pseudo-terminal."""

import json
import re
import shutil
import threading
import time

import numpy as np
import pytest

from hwgen import golden, ir
from hwgen.boards import protocol
from hwgen.boards.top import BRIDGE_TOP, bridge_verilog
from hwgen.cli import main
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.emit import MANIFEST_FILE, TOPLEVEL, read_vectors, write_design
from hwgen.flow import compile_model
from hwgen.numerics import QFormat
from hwgen.sim.runner import run_cocotb
from hwgen.sim.testbench_uart import CASE_ENV

DIVISOR = 4
TIMEOUT = 50 * 10 * DIVISOR     # fifty byte times without a byte
SAMPLES = 3


def _wide_design(folder):
    """A 12-bit design (two bytes a word, not byte-aligned; saturating at both ends) written
    with its golden outputs as test vectors."""
    fmt, wfmt = QFormat(12, 6), QFormat(8, 4)
    rng = np.random.default_rng(3)
    conv = ir.Conv2d("conv", (1, 4, 4), rng.integers(-9, 9, (2, 1, 3, 3)), np.zeros(2), fmt,
                     [wfmt] * 2, fmt, padding=1)
    flat = ir.Flatten("flat", conv.out_shape, fmt)
    fc = ir.Linear("fc", flat.out_shape, rng.integers(-9, 9, (3, 32)), None, fmt, [wfmt] * 3,
                   fmt)
    graph = ir.Graph("wide", (1, 4, 4), fmt, [conv, flat, fc])
    design = compile_graph(graph, AcceleratorConfig(rows=1, cols=2))
    x = rng.integers(fmt.min_int, fmt.max_int + 1, size=(SAMPLES,) + graph.input_shape)
    expected = golden.run(graph, x).reshape(SAMPLES, -1)
    assert {fmt.min_int, fmt.max_int} <= set(expected.ravel().tolist())
    write_design(design, folder, vectors=(x.reshape(SAMPLES, -1), expected,
                                          np.zeros(SAMPLES, dtype=np.int64)))
    return design


@pytest.fixture(scope="module")
def board_sim(tmp_path_factory):
    """``board_sim(name)``: a design folder and its bridge's Verilog, made once per module:
    ``"mlp"``, the MLP on a 2x2 array (8-bit words), or ``"wide"``, a small 12-bit design."""
    made = {}

    def get(name):
        if name not in made:
            root = tmp_path_factory.mktemp(name)
            if name == "mlp":
                design, _ = compile_model("builtin:mlp", None, "2x2", root / "design",
                                          vectors=SAMPLES)
                assert design.act_width == 8
            else:
                design = _wide_design(root / "design")
                assert design.act_width == 12
            bridge = root / f"{BRIDGE_TOP}.v"
            bridge.write_text(bridge_verilog(root / "design", divisor=DIVISOR,
                                             timeout=TIMEOUT))
            made[name] = design, root, [bridge, root / "design" / f"{TOPLEVEL}.v"]
        return made[name]

    return get


def _case(design, folder):
    inputs, expected, _ = read_vectors(folder)
    identity = protocol.Identity(design.act_width, design.n_in, design.n_out,
                                 protocol.fingerprint((folder / MANIFEST_FILE).read_bytes()))
    return {"mode": "check", "divisor": DIVISOR, "timeout": TIMEOUT,
            "act_width": design.act_width, "n_out": design.n_out,
            "identity": identity.to_bytes().hex(), "inputs": inputs[:SAMPLES].tolist(),
            "expected": expected[:SAMPLES].tolist(), "cycles": design.cycles}


@pytest.mark.parametrize("name", ["mlp", "wide"])
def test_board_top_over_uart_is_bit_exact(board_sim, name):
    design, root, sources = board_sim(name)
    case = _case(design, root / "design")
    assert len(case["inputs"]) == SAMPLES and case["cycles"] > 0
    build = root / "build"
    assert run_cocotb(sources, BRIDGE_TOP, "hwgen.sim.testbench_uart", build,
                      extra_env={CASE_ENV: json.dumps(case)}) == (1, 0)
    # the check can fail: one golden word changed, then the predicted cycle count
    case["expected"][1][-1] += 1
    assert run_cocotb(sources, BRIDGE_TOP, "hwgen.sim.testbench_uart", build,
                      extra_env={CASE_ENV: json.dumps(case)}, build=False) == (1, 1)
    case["expected"][1][-1] -= 1
    case["cycles"] += 1
    assert run_cocotb(sources, BRIDGE_TOP, "hwgen.sim.testbench_uart", build,
                      extra_env={CASE_ENV: json.dumps(case)}, build=False) == (1, 1)


def test_run_board_against_the_simulated_board(board_sim, tmp_path, capsys):
    """``hwgen run-board --port`` (pyserial) on a pseudo-terminal whose other end is the
    simulated board's UART."""
    design, root, sources = board_sim("mlp")
    build = root / "build"
    if not (build / "results.xml").exists():     # run alone: build it here
        assert run_cocotb(sources, BRIDGE_TOP, "hwgen.sim.testbench_uart", build,
                          extra_env={CASE_ENV: json.dumps(_case(design, root / "design"))}) \
            == (1, 0)
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
