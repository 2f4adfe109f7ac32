"""hwgen.estimate: cell mapping (recorded cell counts), the pin harness, and the real Yosys
and nextpnr on a small design (no mocked tool output)."""

import json

import numpy as np
import pytest

from hwgen import ir
from hwgen.cli import main
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.emit import write_design
from hwgen.errors import ArgumentError
from hwgen.estimate import Estimate, block_breakdown, device, estimate, format_blocks, map_cells
from hwgen.estimate.harness import harness_cost, verilog_ports
from hwgen.numerics import QFormat

# --- construction and errors first ------------------------------------------------------


def test_unknown_target_names_the_targets():
    with pytest.raises(ArgumentError, match=r"^Target must be one of ice40-up5k, ice40-hx8k, "
                                            r"ecp5-25k, ecp5-85k, xc7a35t, gowin, not 'virtex'$"):
        device("virtex")


# --- cell mapping, from cell counts as Yosys reports them -------------------------------

def test_ice40_cells():
    cells = {"SB_LUT4": 100, "SB_CARRY": 30, "SB_DFF": 5, "SB_DFFESR": 20, "SB_MAC16": 2,
             "SB_RAM40_4K": 3, "$scopeinfo": 9}
    assert map_cells("ice40", cells) == {"luts": 100, "ffs": 25, "carry": 30, "dsps": 2,
                                         "brams": 3, "lutram": 0}


def test_ecp5_counts_a_carry_as_two_luts():
    cells = {"LUT4": 100, "CCU2C": 10, "TRELLIS_FF": 50, "MULT18X18D": 4, "DP16KD": 2,
             "PDPW16KD": 1, "TRELLIS_DPR16X4": 3}
    assert map_cells("ecp5", cells) == {"luts": 120, "ffs": 50, "carry": 10, "dsps": 4,
                                        "brams": 3, "lutram": 3}


def test_xilinx_counts_a_ramb36_as_two():
    cells = {"LUT2": 3, "LUT6": 4, "FDRE": 7, "CARRY4": 2, "DSP48E1": 1, "RAMB18E1": 1,
             "RAMB36E1": 2}
    assert map_cells("xilinx7", cells) == {"luts": 7, "ffs": 7, "carry": 2, "dsps": 1,
                                           "brams": 5, "lutram": 0}


# --- the harness --------------------------------------------------------------------------

VERILOG = """
module other(input a); endmodule
module core(clk, rst, x, y, z);
  input clk;
  input rst;
  input [7:0] x;
  output [3:0] y;
  output z;
endmodule
"""


def test_harness_reads_the_ports_of_the_named_module():
    assert verilog_ports(VERILOG, "core") == [
        ("input", "clk", 1), ("input", "rst", 1), ("input", "x", 8), ("output", "y", 4),
        ("output", "z", 1)]
    # 8 input bits in the chain, 5 output bits held, one fold register; 5 bits → 2 LUT4s
    assert harness_cost(verilog_ports(VERILOG, "core")) == (14, 2)


# --- the real tools -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_design(tmp_path_factory):
    """A 1x2 array running one small convolution and a linear layer."""
    fmt = QFormat(8, 4)
    rng = np.random.default_rng(3)
    conv = ir.Conv2d("conv", (1, 4, 4), rng.integers(-9, 9, (2, 1, 3, 3)), np.zeros(2), fmt,
                     [fmt] * 2, fmt, relu=True, padding=1)
    flat = ir.Flatten("flat", conv.out_shape, fmt)
    fc = ir.Linear("fc", flat.out_shape, rng.integers(-9, 9, (3, 32)), None, fmt, [fmt] * 3,
                   fmt)
    graph = ir.Graph("small", (1, 4, 4), fmt, [conv, flat, fc])
    out = tmp_path_factory.mktemp("est") / "d"
    write_design(compile_graph(graph, AcceleratorConfig(rows=1, cols=2)), out)
    return out


def test_ice40_estimate_from_the_tools(small_design, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(tmp_path / "sim"))    # a fresh estimate cache
    assert main(["estimate", str(small_design), "--target", "ice40-up5k"]) == 0
    out = capsys.readouterr().out
    result = Estimate.from_json(json.loads(
        (small_design / "estimate_ice40-up5k.json").read_text()))
    assert out.splitlines()[0].endswith("placed and routed")
    assert result.placed and result.fits and result.problem is None
    assert 10 < result.fmax_mhz < 300
    # 1x2 array: two fixed-point products, in the UP5K's DSPs
    assert result.resources["multipliers"] == 2 and result.resources["dsps"] == 2
    assert result.resources["lut_multipliers"] == 0
    assert 0 < result.resources["lcs"] < 5280
    assert result.resources["brams"] >= 1       # activation buffer, weights, parameters
    assert result.resources["ffs"] > result.harness["ffs"]
    # A second run is answered from the cache, identical.
    again = estimate(small_design, "ice40-up5k")
    assert again == result


def test_synthesis_only_target_is_labelled(small_design, tmp_path, monkeypatch):
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(tmp_path / "sim"))    # a fresh estimate cache
    result = estimate(small_design, "gowin")
    assert not result.placed and result.fmax_mhz is None and result.fits
    assert "synthesis only, not placed" in result.summary().splitlines()[0]
    assert result.resources["luts"] > 0


def test_block_breakdown(small_design, tmp_path, monkeypatch):
    """Where the logic goes: one block per submodule of the top, the multipliers in the
    engine, the activation buffer in block RAM."""
    # a fresh estimate cache, but YoWASP's compiled tools where they are (XDG_CACHE_HOME)
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(tmp_path / "sim"))
    blocks = block_breakdown(small_design, "ice40-up5k")
    assert set(blocks) == {"act", "drain", "engine_fixed", "post", "seq", "(top)"}
    assert {name: b["dsps"] for name, b in blocks.items() if b["dsps"]} == {"engine_fixed": 2}
    assert blocks["act"]["brams"] >= 1
    assert all(blocks[name]["luts"] > 0 for name in ("drain", "post", "seq"))
    assert json.loads((small_design / "blocks_ice40-up5k.json").read_text()) == blocks
    total = sum(b["luts"] for b in blocks.values())
    assert format_blocks(blocks).splitlines()[-1].split()[:2] == ["total", str(total)]


def test_ecp5_block_breakdown_of_a_block_ram_buffer(tmp_path, monkeypatch):
    """On ECP5 the activation buffer's two block RAM copies carry no read/write collision
    logic (Yosys' ``no_rw_check``): its LUTs are its one shared write register's input
    multiplexer, about one per address and data bit (with collision logic, some 23 more per
    copy); and the block, whose outputs come straight from the block RAMs, synthesizes."""
    fmt = QFormat(8, 4)
    rng = np.random.default_rng(5)
    conv = ir.Conv2d("conv", (1, 16, 16), rng.integers(-9, 9, (2, 1, 3, 3)), np.zeros(2),
                     fmt, [fmt] * 2, fmt, relu=True, padding=1)
    graph = ir.Graph("buffered", (1, 16, 16), fmt, [conv])
    design = compile_graph(graph, AcceleratorConfig(rows=2, cols=2))
    out = tmp_path / "d"
    write_design(design, out)
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(tmp_path / "sim"))    # a fresh estimate cache
    blocks = block_breakdown(out, "ecp5-25k")
    act = blocks["act"]
    assert act["brams"] == 2 and act["lutram"] == 0
    addr_bits = (design.buffer_depth - 1).bit_length()
    assert act["luts"] <= addr_bits + design.word_width + 2, act


@pytest.mark.slow
def test_ecp5_estimate_from_the_tools(small_design, tmp_path, monkeypatch):
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(tmp_path / "sim"))    # a fresh estimate cache
    result = estimate(small_design, "ecp5-25k")
    assert result.placed and result.fits and 10 < result.fmax_mhz < 400
    assert result.resources["dsps"] == 2 and result.resources["lcs"] > 0
