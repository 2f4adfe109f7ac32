"""The FPGA targets hwgen estimates for: their resources and how the open tools map to them.

Each :class:`Device` names the Yosys synthesis script, the nextpnr binary and arguments when
the family has an open place-and-route (iCE40, ECP5), and the capacities a design is
checked against. Capacities are the vendors' datasheet figures for the named part and
package.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArgumentError

__all__ = ["DEVICES", "Device", "device"]


@dataclass(frozen=True)
class Device:
    """One FPGA part as a target.

    Parameters
    ----------
    name : str
        The target name users type (``"ice40-up5k"``).
    family : str
        ``"ice40"``, ``"ecp5"``, ``"xilinx7"`` or ``"gowin"``: selects the cell mapping.
    part : str
        The vendor's part and package, for reports.
    synth : str
        The Yosys synthesis command (without ``-top``).
    pnr : str or None
        The nextpnr tool name for :func:`hwgen._toolchain.find_tool`, or ``None`` where
        only synthesis runs (then no Fmax and no placed utilization).
    pnr_args : tuple of str
        Device and package arguments of nextpnr.
    luts, ffs, dsps, brams : int
        Capacities: logic cells or LUTs (LUT4 equivalents on iCE40/ECP5/Gowin, LUT6 on
        Xilinx), flip-flops, multiplier blocks, block RAMs.
    bram_bits : int
        Bits of one block RAM.
    ios : int
        User I/O pins of the package.
    """

    name: str
    family: str
    part: str
    synth: str
    pnr: str | None
    pnr_args: tuple
    luts: int
    ffs: int
    dsps: int
    brams: int
    bram_bits: int
    ios: int

    @property
    def placed(self):
        """Whether an open place-and-route exists for the family."""
        return self.pnr is not None


DEVICES = {d.name: d for d in (
    Device("ice40-up5k", "ice40", "iCE40UP5K-SG48", "synth_ice40 -dsp", "nextpnr-ice40",
           ("--up5k", "--package", "sg48"), luts=5280, ffs=5280, dsps=8, brams=30,
           bram_bits=4096, ios=39),
    Device("ice40-hx8k", "ice40", "iCE40HX8K-CT256", "synth_ice40", "nextpnr-ice40",
           ("--hx8k", "--package", "ct256"), luts=7680, ffs=7680, dsps=0, brams=32,
           bram_bits=4096, ios=206),
    Device("ecp5-25k", "ecp5", "LFE5U-25F-CABGA256", "synth_ecp5", "nextpnr-ecp5",
           ("--25k", "--package", "CABGA256"), luts=24288, ffs=24288, dsps=28, brams=56,
           bram_bits=18432, ios=197),
    Device("ecp5-85k", "ecp5", "LFE5U-85F-CABGA381", "synth_ecp5", "nextpnr-ecp5",
           ("--85k", "--package", "CABGA381"), luts=83640, ffs=83640, dsps=156, brams=208,
           bram_bits=18432, ios=205),
    Device("xc7a35t", "xilinx7", "XC7A35T (synthesis only)", "synth_xilinx -family xc7",
           None, (), luts=20800, ffs=41600, dsps=90, brams=100, bram_bits=18432, ios=210),
    Device("gowin", "gowin", "GW1NR-9 (synthesis only)", "synth_gowin", None, (),
           luts=8640, ffs=6480, dsps=20, brams=26, bram_bits=18432, ios=71),
)}


def device(name):
    """The :class:`Device` called ``name``; :class:`~hwgen.errors.ArgumentError` naming the
    targets for any other name."""
    try:
        return DEVICES[name]
    except (KeyError, TypeError):
        raise ArgumentError(f"Target must be one of {', '.join(DEVICES)}, not {name!r}") \
            from None
