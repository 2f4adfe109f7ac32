"""hwgen.boards: the board registry and the UART divisor."""

import pytest

from hwgen.boards import BOARDS, board, uart_divisor
from hwgen.errors import ArgumentError


def test_unknown_board_names_the_boards():
    with pytest.raises(ArgumentError, match=r"^Board must be one of icebreaker, ulx3s-85f, "
                                            r"not 'de10'$"):
        board("de10")


@pytest.mark.parametrize("clock, baud, message", [
    (12e6, 0, r"Baud rate must be an integer of at least 1, not 0"),
    (12e6, 5_000_000, (r"Baud rate 5000000 is too fast for a 12 MHz clock \(at most "
                       r"3,000,000: 4 clock cycles per bit\)")),
    (12e6, 2_500_000, (r"Baud rate 2500000 cannot be made from a 12 MHz clock: 5 cycles per "
                       r"bit give 2,400,000 baud, more than 2 % off")),
])
def test_divisor_errors(clock, baud, message):
    with pytest.raises(ArgumentError, match=rf"^{message}$"):
        uart_divisor(clock, baud)


def test_divisors():
    assert uart_divisor(12e6, 115_200) == 104       # 115,385 baud, 0.16 % fast
    assert uart_divisor(25e6, 115_200) == 217
    assert uart_divisor(12e6, 3_000_000) == 4


@pytest.mark.parametrize("name", list(BOARDS))
def test_platform_and_device_agree(name):
    """The amaranth-boards platform is the part the estimate's device describes, and its
    UART and LEDs are there."""
    b = board(name)
    platform = b.make_platform()
    chip = platform.device.replace("-", "").upper()       # LFE5U-85F → LFE5U85F
    assert b.device.part.replace("-", "").upper().startswith(chip)
    assert platform.default_clk_frequency in (12e6, 25e6)
    assert platform.lookup("uart", 0) is not None
    for led in b.leds:
        assert platform.lookup(*led) is not None
