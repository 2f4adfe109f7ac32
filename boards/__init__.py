"""Board tops for amaranth-boards platforms: the accelerator behind a UART, built into a
bitstream (``hwgen build``) and checked on the board from the host (``hwgen run-board``).

=============  ==================================================================
``protocol``   the bytes on the UART, for the gateware, the host and the tests
``uart_rx``    :class:`~hwgen.boards.uart_rx.UARTRx`, 8N1 receiver
``uart_tx``    :class:`~hwgen.boards.uart_tx.UARTTx`, 8N1 transmitter
``bridge``     :class:`~hwgen.boards.bridge.UARTBridge`: the accelerator behind the UART
``top``        :class:`~hwgen.boards.top.BoardTop`: the bridge on a board's pins
``build``      :func:`~hwgen.boards.build.build_board`: Yosys, nextpnr and the packer
``host``       :func:`~hwgen.boards.host.run_board`: test images over a serial port
=============  ==================================================================

A board is one entry of :data:`BOARDS`: an amaranth-boards platform class, the
:mod:`hwgen.estimate` device whose capacities and synthesis options it shares, and the
LEDs that show busy and done. The design runs on the board's own clock (no PLL).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from hwgen.errors import ArgumentError, check_int

__all__ = ["BOARDS", "DEFAULT_BAUD", "MAX_BAUD_ERROR", "SUMMARY_FILE", "TIMEOUT_SECONDS", "Board",
           "board", "uart_divisor"]

#: The UART's baud rate unless ``--baud`` says otherwise.
DEFAULT_BAUD = 115_200
#: How far the baud rate a clock divisor gives may be from the one asked for.
MAX_BAUD_ERROR = 0.02
#: The record of a board build in its folder ``DIR/board_<board>/``.
SUMMARY_FILE = "board.json"
#: Seconds without a byte after which the board abandons a request.
TIMEOUT_SECONDS = 0.25


@dataclass(frozen=True)
class Board:
    """A board hwgen builds for.

    Parameters
    ----------
    name : str
        What users type (``"icebreaker"``).
    title : str
        The board's name in messages (``"iCEBreaker"``).
    platform : str
        The amaranth-boards platform class, ``"module:Class"``.
    target : str
        The :data:`hwgen.estimate.DEVICES` entry of its FPGA: capacities, part name,
        synthesis options.
    bitstream : str
        The bitstream's file suffix (``"bin"`` for iCE40, ``"bit"`` for ECP5).
    leds : tuple
        The platform resources ``(name, number)`` of the busy and the done LED.
    """

    name: str
    title: str
    platform: str
    target: str
    bitstream: str
    leds: tuple = (("led", 0), ("led", 1))

    def make_platform(self):
        """A new instance of the board's platform (each build needs its own)."""
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)()

    @property
    def device(self):
        """The :class:`hwgen.estimate.Device` of the board's FPGA."""
        from hwgen.estimate import device
        return device(self.target)


BOARDS = {b.name: b for b in (
    Board("icebreaker", "iCEBreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform",
          "ice40-up5k", "bin"),
    Board("ulx3s-85f", "ULX3S-85F", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5-85k",
          "bit"),
)}


def board(name):
    """The :class:`Board` called ``name``; :class:`~hwgen.errors.ArgumentError` naming the
    boards for any other name."""
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise ArgumentError(f"Board must be one of {', '.join(BOARDS)}, not {name!r}") \
            from None


def uart_divisor(clock_hz, baud):
    """Clock cycles per UART bit for ``baud`` on a ``clock_hz`` clock:
    ``round(clock_hz / baud)``, at least 4, and within :data:`MAX_BAUD_ERROR` of ``baud``;
    :class:`~hwgen.errors.ArgumentError` otherwise."""
    from .uart_rx import MIN_DIVISOR
    baud = check_int(baud, "Baud rate", minimum=1)
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ArgumentError(f"Baud rate {baud!r} is too fast for a {clock_hz / 1e6:g} MHz "
                            f"clock (at most {int(clock_hz // MIN_DIVISOR):,}: "
                            f"{MIN_DIVISOR} clock cycles per bit)")
    actual = clock_hz / divisor
    if abs(actual - baud) > MAX_BAUD_ERROR * baud:
        raise ArgumentError(f"Baud rate {baud!r} cannot be made from a {clock_hz / 1e6:g} MHz "
                            f"clock: {divisor} cycles per bit give {actual:,.0f} baud, more "
                            f"than {100 * MAX_BAUD_ERROR:g} % off")
    return divisor
