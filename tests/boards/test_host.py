"""hwgen.boards.host against scripted byte transports: a silent board, a board that stops
halfway, and a board that answers wrong words or cycle counts. (The simulated board behind a
pseudo-terminal is in tests/sim/test_board_uart.py.)"""

import pytest

from hwgen.boards import protocol
from hwgen.boards.host import BoardLink, run_board
from hwgen.emit import MANIFEST_FILE, read_design, read_vectors
from hwgen.errors import HwgenError
from hwgen.flow import compile_model


class Scripted:
    """A transport that answers each write with what ``answer(request)`` returns."""

    def __init__(self, answer):
        self.answer = answer
        self.pending = b""
        self.writes = []

    def write(self, data):
        self.writes.append(bytes(data))
        self.pending += self.answer(bytes(data))

    def read(self, n):
        out, self.pending = self.pending[:n], self.pending[n:]
        return out


@pytest.fixture(scope="module")
def design_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("host") / "mlp"
    compile_model("builtin:mlp", None, "2x2", out, vectors=3)
    return out


def _board(design_dir, *, word_error=None, cycle_error=0):
    """A scripted board that answers with the golden words and the predicted count."""
    design = read_design(design_dir)
    inputs, expected, _ = read_vectors(design_dir)
    identity = protocol.Identity(design.act_width, design.n_in, design.n_out,
                                 protocol.fingerprint((design_dir / MANIFEST_FILE).read_bytes()))
    replies = {protocol.encode_request(x, design.act_width): list(y)
               for x, y in zip(inputs, expected)}

    def answer(request):
        if request == bytes([protocol.CMD_IDENTIFY]):
            return identity.to_bytes()
        words = list(replies[request])
        if word_error is not None and request == protocol.encode_request(inputs[word_error],
                                                                         design.act_width):
            words[0] += 1
        return (protocol.encode_words(words, design.act_width)
                + (design.cycles + cycle_error).to_bytes(4, "little"))

    return Scripted(answer)


def test_silent_board(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    link = BoardLink(Scripted(lambda request: b""), 8, 10, "fake")
    with pytest.raises(HwgenError, match=r"^The board on 'fake' did not answer the identify "
                                         r"request at all; is the bitstream loaded and the baud "
                                         r"rate the one it was built for\?$"):
        link.identify()


def test_board_stopping_halfway():
    link = BoardLink(Scripted(lambda request: b"\x01\x02\x03"), 8, 10, "fake")
    with pytest.raises(HwgenError, match=r"^The board on 'fake' did not answer an inference "
                                         r"after 3 of 14 bytes; .*$"):
        link.infer([0] * 64)


def test_a_board_stuck_in_a_request_answers_the_second_identify(design_dir, monkeypatch):
    """The first '?' is taken as data by a board waiting for the rest of a request; after
    the board's timeout the second one is answered."""
    slept = []
    monkeypatch.setattr("time.sleep", slept.append)
    board = _board(design_dir)
    answer = board.answer
    board.answer = lambda request: b"" if len(board.writes) == 1 else answer(request)
    report = run_board(design_dir, "fake", samples=1, transport=board)
    assert report.bit_exact and slept == [0.5]


def test_answers_against_the_golden_model(design_dir):
    report = run_board(design_dir, "fake", samples=3, transport=_board(design_dir))
    assert report.bit_exact and report.cycles_match and report.mismatches == 0
    assert report.summary().splitlines()[0] == ("bit-exact: 3 of 3 images, every output word "
                                                "equals the golden model's")
    wrong = run_board(design_dir, "fake", samples=3, transport=_board(design_dir,
                                                                       word_error=1))
    assert not wrong.bit_exact and wrong.mismatches == 1 and wrong.mismatched_samples == (1,)
    assert wrong.summary().splitlines()[0] == ("NOT bit-exact: 1 output words differ from the "
                                               "golden model's, in images [1]")
    slow = run_board(design_dir, "fake", samples=2, transport=_board(design_dir,
                                                                      cycle_error=3))
    cycles = read_design(design_dir).cycles
    assert slow.bit_exact and not slow.cycles_match
    assert slow.summary().splitlines()[1].startswith(
        f"cycles per image: measured {cycles + 3}, predicted {cycles} (DIFFERENT)")
