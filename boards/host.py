"""The host's side of a board: test images over a serial port, answers held against the
golden model (``hwgen run-board``).

:class:`BoardLink` speaks :mod:`hwgen.boards.protocol` over any byte transport with
``write(bytes)`` and ``read(n)`` (``read`` returning what arrived before its timeout, as
pyserial's ``Serial`` does); :func:`run_board` opens the port with pyserial, checks that the
board holds the design folder's design, sends the folder's test vectors and compares every
output word with the golden model's and the cycle count with the compiler's prediction.
"""

from __future__ import annotations

import errno
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hwgen.emit import MANIFEST_FILE, read_design, read_vectors
from hwgen.errors import ArgumentError, HwgenError, check_int

from . import DEFAULT_BAUD, TIMEOUT_SECONDS, protocol

__all__ = ["DEFAULT_TIMEOUT", "BoardLink", "BoardRun", "open_port", "run_board"]

#: Seconds the host waits for a byte from the board before it gives up.
DEFAULT_TIMEOUT = 2.0


class BoardLink:
    """The host's end of :mod:`hwgen.boards.protocol` over ``transport``.

    Parameters
    ----------
    transport
        An open byte stream: ``write(bytes)``, ``read(n)`` (what arrived before its
        timeout) and optionally ``flush()`` and ``reset_input_buffer()`` (pyserial's).
    act_width, n_out : int
        The design's word width and output words.
    where : str
        The port's name, for messages.
    """

    def __init__(self, transport, act_width, n_out, where):
        self._io = transport
        self._width = act_width
        self._n_out = n_out
        self._where = where

    def _send(self, data):
        self._io.write(data)
        if hasattr(self._io, "flush"):
            self._io.flush()

    def _read(self, count, what):
        """``count`` bytes; :class:`HwgenError` when the board stops sending."""
        out = bytearray()
        while len(out) < count:
            chunk = self._io.read(count - len(out))
            if not chunk:
                got = f"after {len(out)} of {count} bytes" if out else "at all"
                raise HwgenError(f"The board on {self._where!r} did not answer {what} {got}; "
                                 f"is the bitstream loaded and the baud rate the one it was "
                                 f"built for?")
            out += chunk
        return bytes(out)

    def identify(self):
        """The board's :class:`~hwgen.boards.protocol.Identity`. A board still waiting for
        the rest of an earlier request abandons it after its timeout (a quarter of a
        second), so one silent try is followed by a second once that has passed."""
        for attempt in range(2):
            if hasattr(self._io, "reset_input_buffer"):
                self._io.reset_input_buffer()
            self._send(bytes([protocol.CMD_IDENTIFY]))
            try:
                return protocol.decode_identity(
                    self._read(protocol.IDENTITY_BYTES, "the identify request"))
            except HwgenError:
                if attempt:
                    raise
                time.sleep(2 * TIMEOUT_SECONDS)
        raise AssertionError("unreachable")

    def infer(self, words):
        """Run one input tensor; the board's :class:`~hwgen.boards.protocol.Reply`."""
        self._send(protocol.encode_request(words, self._width))
        data = self._read(protocol.reply_length(self._n_out, self._width), "an inference")
        return protocol.decode_reply(data, self._n_out, self._width)


def open_port(port, baud, timeout):
    """The serial port ``port`` opened with pyserial (8N1, ``baud``, reads that give up
    after ``timeout`` seconds without a byte); :class:`HwgenError` if it cannot be."""
    import serial
    try:
        return serial.Serial(port, baudrate=baud, timeout=timeout, write_timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as e:
        # pyserial wraps the operating system's error (open) or termios' (configure)
        cause = e.__context__ if e.__context__ is not None else e
        code, text = (cause.args + (None, None))[:2] if len(cause.args) == 2 else (None, None)
        if code == errno.ENOTTY:
            reason = "it is not a serial port"
        elif isinstance(text, str):
            reason = text
        else:
            reason = str(e)
        raise HwgenError(f"Cannot open serial port {port!r}: {reason}") from None


@dataclass(frozen=True)
class BoardRun:
    """What a board answered for a design folder's test images.

    ``cycles_measured`` are the board's counts per image; ``cycles_predicted`` the
    compiler's (one figure: cycles do not depend on the data).
    """

    design: str
    port: str
    baud: int
    samples: int
    bit_exact: bool
    mismatches: int
    mismatched_samples: tuple
    cycles_measured: tuple
    cycles_predicted: int
    cycles_match: bool
    accuracy: float
    golden_accuracy: float
    seconds: float

    def to_json(self):
        return asdict(self)

    def dumps(self):
        return json.dumps(self.to_json(), indent=2)

    def summary(self):
        """Two lines: bit-exactness and cycles."""
        if self.bit_exact:
            exact = (f"bit-exact: {self.samples} of {self.samples} images, every output word "
                     f"equals the golden model's")
        else:
            exact = (f"NOT bit-exact: {self.mismatches} output words differ from the golden "
                     f"model's, in images {list(self.mismatched_samples)}")
        measured = sorted(set(self.cycles_measured))
        shown = measured[0] if len(measured) == 1 else f"{measured[0]} to {measured[-1]}"
        cycles = (f"cycles per image: measured {shown}, predicted {self.cycles_predicted} "
                  f"({'equal' if self.cycles_match else 'DIFFERENT'}); accuracy "
                  f"{100 * self.accuracy:.1f} % (golden model {100 * self.golden_accuracy:.1f} "
                  f"%); {self.design} on {self.port} at {self.baud} baud, {self.seconds:.1f} s")
        return f"{exact}\n{cycles}"


def run_board(design_dir, port, *, samples=20, baud=DEFAULT_BAUD, timeout=DEFAULT_TIMEOUT,
              progress=None, transport=None):
    """Send ``samples`` test vectors of ``design_dir`` to the board on ``port`` (in starts
    of ``design.batch`` images) and hold its answers against the golden model; returns a
    :class:`BoardRun` (its cycle counts are per start).

    ``transport`` replaces the serial port (an object like :class:`BoardLink` takes).
    Raises :class:`HwgenError` when the port cannot be opened, the board does not answer,
    or it holds another design.
    """
    from hwgen.sim.check import compare

    design_dir = Path(design_dir)
    samples = check_int(samples, "Samples", minimum=1)
    baud = check_int(baud, "Baud rate", minimum=1)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ArgumentError(f"Timeout must be a positive number of seconds, not {timeout!r}")
    design = read_design(design_dir)
    inputs, golden, labels = read_vectors(design_dir)
    if samples > len(inputs):
        raise HwgenError(f"Design folder {str(design_dir)!r} holds {len(inputs)} test vectors, "
                         f"not {samples!r}")
    want = protocol.Identity(design.act_width, design.n_in, design.n_out,
                             protocol.fingerprint((design_dir / MANIFEST_FILE).read_bytes()))
    opened = transport is None
    if opened:
        transport = open_port(port, baud, timeout)
    started = time.perf_counter()
    try:
        link = BoardLink(transport, design.act_width, design.n_out, port)
        got = link.identify()
        if got != want:
            raise HwgenError(
                f"The board on {port!r} holds another design ({got.describe()}), not the one "
                f"in {str(design_dir)!r} ({want.describe()}); build and load its bitstream "
                f"with `hwgen build {design_dir} --board BOARD`")
        if progress is not None:
            progress(f"sending {samples} test images to the board on {port}")
        replies = [link.infer(words) for words in design.to_batches(inputs[:samples])]
    finally:
        if opened:
            transport.close()
    seconds = time.perf_counter() - started
    outputs = design.from_batches([reply.words for reply in replies], samples)
    cycles = tuple(int(reply.cycles) for reply in replies)
    mismatches, bad = compare(golden[:samples], outputs)
    return BoardRun(
        design=design.name, port=str(port), baud=baud, samples=samples,
        bit_exact=mismatches == 0, mismatches=mismatches, mismatched_samples=bad[:20],
        cycles_measured=cycles, cycles_predicted=int(design.cycles),
        cycles_match=all(c == design.cycles for c in cycles),
        accuracy=float(np.mean(np.argmax(outputs, axis=1) == labels[:samples])),
        golden_accuracy=float(np.mean(np.argmax(golden[:samples], axis=1)
                                      == labels[:samples])),
        seconds=seconds)
