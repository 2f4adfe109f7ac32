"""The UART protocol between a host and an hwgen board top: bytes only, no I/O.

Both ends use this module: the gateware (:class:`~hwgen.boards.bridge.UARTBridge`) takes its
command codes, word sizes and identity bytes from here, ``hwgen run-board`` frames its
requests and parses the replies with it (through pyserial), and the cocotb test of the board
top drives the same bytes onto the simulated UART pins. The functions are sans-I/O: they
turn values into bytes and bytes into values, whatever carries them.

The line is 8 data bits, no parity, one stop bit (8N1), least significant bit first, at
the baud rate the bitstream was built for (``hwgen build --baud``, 115,200 by default).

Requests (host → board), each one command byte and its payload::

    'I' (0x49)  infer: the input tensor, n_in words (C, H, W order)
    '?' (0x3F)  identify: no payload

Replies (board → host)::

    to 'I':  n_out output words, then the cycle count: 4 bytes, unsigned, little endian
             (compute cycles of this inference, as the accelerator's ``cycles`` port counts)
    to '?':  IDENTITY_BYTES bytes: b"hwgn", the protocol version (1 byte), act_width
             (1 byte), n_in, n_out and the design's fingerprint (4 bytes each, little endian)

A word is ``act_width`` bits, signed, sent as ``word_bytes(act_width) = ceil(act_width / 8)``
bytes, two's complement, little endian; the board sign-extends output words to whole bytes
and reads only the low ``act_width`` bits of an input word. The fingerprint is the CRC-32 of
the design folder's ``manifest.json``, so the host can tell that the board holds the design
it is checking against.

Bytes the board receives while idle that are not a command are ignored. A request whose
bytes stop coming for longer than the board's timeout (about a quarter of a second on a
board) is abandoned: the accelerator is reset and the board waits for a command again, so
an interrupted host cannot leave it stuck halfway through an input tensor.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from hwgen.errors import FormatError, HwgenError, ShapeError

__all__ = ["CMD_IDENTIFY", "CMD_INFER", "CYCLE_BYTES", "IDENTITY_BYTES", "MAGIC", "VERSION",
           "Identity", "Reply", "decode_identity", "decode_reply", "decode_words",
           "encode_request", "encode_words", "fingerprint", "reply_length", "word_bytes"]

CMD_INFER = 0x49        # b"I"
CMD_IDENTIFY = 0x3F     # b"?"
MAGIC = b"hwgn"
VERSION = 1
CYCLE_BYTES = 4
IDENTITY_BYTES = len(MAGIC) + 2 + 3 * 4


def word_bytes(act_width: int) -> int:
    """Bytes one ``act_width``-bit word takes on the line."""
    return (act_width + 7) // 8


def fingerprint(manifest: bytes) -> int:
    """The design's fingerprint: CRC-32 of its ``manifest.json`` bytes."""
    return zlib.crc32(manifest) & 0xFFFF_FFFF


def encode_words(words, act_width: int) -> bytes:
    """``words`` (signed integers that fit ``act_width`` bits) as bytes on the line."""
    size = word_bytes(act_width)
    low, high = -(1 << (act_width - 1)), (1 << (act_width - 1)) - 1
    out = bytearray()
    for n, word in enumerate(words):
        word = int(word)
        if not low <= word <= high:
            raise FormatError(f"Word {word!r} (number {n}) does not fit {act_width} signed "
                              f"bits")
        out += word.to_bytes(size, "little", signed=True)
    return bytes(out)


def decode_words(data: bytes, act_width: int) -> list[int]:
    """The signed words in ``data`` (a whole number of words)."""
    size = word_bytes(act_width)
    if len(data) % size:
        raise ShapeError(f"{len(data)} bytes are not a whole number of {size}-byte words")
    return [int.from_bytes(data[at:at + size], "little", signed=True)
            for at in range(0, len(data), size)]


def encode_request(words, act_width: int) -> bytes:
    """An inference request: the command byte and the input words."""
    return bytes([CMD_INFER]) + encode_words(words, act_width)


def reply_length(n_out: int, act_width: int) -> int:
    """Bytes of the reply to an inference request."""
    return n_out * word_bytes(act_width) + CYCLE_BYTES


@dataclass(frozen=True)
class Reply:
    """What the board answered to an inference request."""

    words: tuple
    cycles: int


def decode_reply(data: bytes, n_out: int, act_width: int) -> Reply:
    """The :class:`Reply` in ``data``; :class:`~hwgen.errors.HwgenError` if it is short."""
    want = reply_length(n_out, act_width)
    if len(data) != want:
        raise HwgenError(f"The board answered {len(data)} bytes instead of {want} "
                         f"({n_out} words and the cycle count)")
    split = want - CYCLE_BYTES
    return Reply(tuple(decode_words(data[:split], act_width)),
                 int.from_bytes(data[split:], "little"))


@dataclass(frozen=True)
class Identity:
    """What a board top says it is: the protocol version, the word width, the tensor sizes
    and the design's :func:`fingerprint`."""

    act_width: int
    n_in: int
    n_out: int
    fingerprint: int
    version: int = VERSION

    def to_bytes(self) -> bytes:
        """The reply to an identify request."""
        return (MAGIC + bytes([self.version, self.act_width])
                + b"".join(v.to_bytes(4, "little")
                           for v in (self.n_in, self.n_out, self.fingerprint)))

    def describe(self) -> str:
        return (f"{self.n_in} input and {self.n_out} output words of {self.act_width} bits, "
                f"fingerprint {self.fingerprint:08x}")


def decode_identity(data: bytes) -> Identity:
    """The :class:`Identity` in ``data``; :class:`~hwgen.errors.HwgenError` if the bytes are
    not an hwgen board's answer."""
    if len(data) != IDENTITY_BYTES or not data.startswith(MAGIC):
        raise HwgenError(f"The answer {bytes(data[:IDENTITY_BYTES])!r} is not an hwgen "
                         f"board's identity")
    version, act_width = data[4], data[5]
    n_in, n_out, fp = (int.from_bytes(data[at:at + 4], "little") for at in (6, 10, 14))
    return Identity(act_width, n_in, n_out, fp, version)
