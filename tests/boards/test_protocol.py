"""hwgen.boards.protocol: the bytes on the UART, both directions, and its errors."""

import pytest

from hwgen.boards import protocol
from hwgen.errors import FormatError, HwgenError, ShapeError


def test_errors():
    with pytest.raises(FormatError, match=r"^Word 128 \(number 1\) does not fit 8 signed bits$"):
        protocol.encode_words([0, 128], 8)
    with pytest.raises(FormatError, match=r"^Word -3 \(number 0\) does not fit 2 signed bits$"):
        protocol.encode_words([-3], 2)
    with pytest.raises(ShapeError, match=r"^3 bytes are not a whole number of 2-byte words$"):
        protocol.decode_words(b"abc", 12)
    with pytest.raises(HwgenError, match=r"^The board answered 5 bytes instead of 14 "
                                         r"\(10 words and the cycle count\)$"):
        protocol.decode_reply(b"12345", 10, 8)
    with pytest.raises(HwgenError, match=r"^The answer b'nope' is not an hwgen board's "
                                         r"identity$"):
        protocol.decode_identity(b"nope")


@pytest.mark.parametrize("width, size", [(1, 1), (4, 1), (8, 1), (9, 2), (16, 2), (17, 3),
                                         (32, 4)])
def test_words_round_trip_with_extremes(width, size):
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    words = sorted({low, high, 0, -1 if width > 1 else 0, low // 2, high // 2})
    data = protocol.encode_words(words, width)
    assert protocol.word_bytes(width) == size and len(data) == size * len(words)
    assert protocol.decode_words(data, width) == words


def test_request_and_reply_layout():
    # 12-bit words: two bytes each, little endian, two's complement
    assert protocol.encode_request([1, -2, 0x7FF], 12) == b"I\x01\x00\xfe\xff\xff\x07"
    reply = b"\x05\x00\xfb\xff" + (1216).to_bytes(4, "little")
    assert protocol.reply_length(2, 12) == len(reply) == 8
    assert protocol.decode_reply(reply, 2, 12) == protocol.Reply((5, -5), 1216)


def test_identity_round_trip():
    identity = protocol.Identity(8, 64, 10, protocol.fingerprint(b'{"name": "mlp"}'))
    data = identity.to_bytes()
    assert len(data) == protocol.IDENTITY_BYTES == 18 and data.startswith(b"hwgn\x01\x08")
    assert protocol.decode_identity(data) == identity
    assert identity.describe().startswith("64 input and 10 output words of 8 bits, "
                                          "fingerprint ")
