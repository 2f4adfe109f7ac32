"""A pin harness: the generated core inside a top with four pins, for place-and-route.

The accelerator has about a hundred ports (streams, counters, layer select), more than an
iCE40 UP5K's 39 pins. Placing it as it is would fail or, with ports left unconnected, let
the tools delete logic. The harness keeps every bit alive with four pins: ``clk``, ``rst``,
``sin`` (a shift register fills all of the core's inputs, one bit per cycle) and ``sout``
(all of the core's outputs, registered, XOR-folded and registered again).

Its cost is what :func:`harness_cost` states: one flip-flop per input bit and per output
bit and one for the fold, plus the LUTs of the XOR tree (about one LUT4 per three output
bits). Reports list it, so the core's own figures can be read off.
"""

import re

from amaranth.hdl import Cat, ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import ToolError

__all__ = ["HARNESS_TOP", "PinHarness", "harness_cost", "verilog_ports"]

HARNESS_TOP = "hwgen_harness"

_PORT_RE = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
                      r"(?:\[(\d+):(\d+)\]\s*)?(\w+)\s*;", re.MULTILINE)


def verilog_ports(verilog_text, top):
    """``[(direction, name, width), ...]`` of module ``top`` in ``verilog_text``."""
    start = re.search(rf"^\s*module\s+{re.escape(top)}\s*\(", verilog_text, re.MULTILINE)
    if start is None:
        raise ToolError(f"The Verilog has no module {top!r}")
    end = verilog_text.find("endmodule", start.end())
    body = verilog_text[start.end():end]
    ports = []
    for direction, msb, lsb, name in _PORT_RE.findall(body):
        width = abs(int(msb) - int(lsb)) + 1 if msb else 1
        ports.append((direction, name, width))
    return ports


def harness_cost(ports):
    """``(flip-flops, LUT4s)`` the harness adds around a core with ``ports``."""
    ins = sum(w for d, n, w in ports if d == "input" and n not in ("clk", "rst"))
    outs = sum(w for d, n, w in ports if d == "output")
    return ins + outs + 1, -(-outs // 3)


class PinHarness(wiring.Component):
    """The core ``top`` (a Verilog module with ``ports``, clocked by ``clk`` and reset by
    ``rst``) behind a serial input and a folded, registered output.

    Members
    -------
    sin : In(1)
        Shifted into the chain that drives every input of the core.
    sout : Out(1)
        The XOR of every output bit of the core, registered twice.
    """

    sin: In(1)
    sout: Out(1)

    def __init__(self, ports, top):
        self._ports = list(ports)
        self._top = top
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        inputs = [(n, w) for d, n, w in self._ports if d == "input" and n not in ("clk", "rst")]
        outputs = [(n, w) for d, n, w in self._ports if d == "output"]
        total = max(1, sum(w for _, w in inputs))
        chain = Signal(total)
        m.d.sync += chain.eq(Cat(self.sin, chain[:-1]) if total > 1 else self.sin)
        kwargs = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        at = 0
        for name, width in inputs:
            kwargs[f"i_{name}"] = chain[at:at + width]
            at += width
        held = []
        for name, width in outputs:
            wire = Signal(width, name=f"core_{name}")
            reg = Signal(width, name=f"held_{name}")
            kwargs[f"o_{name}"] = wire
            m.d.sync += reg.eq(wire)
            held.append(reg)
        m.submodules.core = Instance(self._top, **kwargs)
        folded = Signal()
        m.d.sync += folded.eq(Cat(*held).xor() if held else 0)
        m.d.comb += self.sout.eq(folded)
        return m
