"""Memory contents out of the simulated Verilog, so that designs that differ only in them
(new weights, biases, shifts: a retrained model on the same accelerator) share one
simulator build.

Amaranth writes a memory's initial contents into the Verilog, one assignment per word::

    reg [31:0] weights [607:0];
    initial begin
      weights[0] = 32'd0;
      ...
    end

:func:`split_memories` replaces each such block with a ``$readmemh`` of the file the
plusarg ``+hwgen_mem<N>=PATH`` names and returns the contents; the simulator is built from
the stripped text (the build cache's key is its hash) and :func:`write_memories` writes
the contents for each run. A file whose memories do not follow this form keeps its
contents in the text (no reuse, still correct).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .batch import write_hex

__all__ = ["MemoryImage", "memory_plusargs", "split_memories", "write_memories"]

_BLOCK_RE = re.compile(
    r"^(?P<indent>[ \t]*)reg \[(?P<msb>\d+):0\] (?P<name>[A-Za-z_][A-Za-z0-9_$]*) "
    r"\[(?P<last>\d+):0\];\n[ \t]*initial begin\n(?P<body>(?:[ \t]*(?P=name)\[\d+\] = "
    r"[^;\n]+;\n)*)[ \t]*end\n", re.MULTILINE)
_WORD_RE = re.compile(r"^[ \t]*[A-Za-z_][A-Za-z0-9_$]*\[(\d+)\] = (\d+)'(s?)([hdbo])"
                      r"([0-9a-fA-F_]+);$")
_BASES = {"h": 16, "d": 10, "b": 2, "o": 8}


@dataclass(frozen=True)
class MemoryImage:
    """One memory's contents: ``width`` bits per word, ``words`` from address 0."""

    width: int
    words: tuple


def _parse(body, width, depth):
    words = [0] * depth
    seen = 0
    for line in body.splitlines():
        match = _WORD_RE.match(line)
        if match is None:
            return None
        address, _, _, base, digits = match.groups()
        if int(address) >= depth:
            return None
        words[int(address)] = int(digits.replace("_", ""), _BASES[base]) & ((1 << width) - 1)
        seen += 1
    return tuple(words) if seen == depth else None


def split_memories(text):
    """``(stripped text, images)``: ``text`` with every memory's initial block replaced by a
    ``$readmemh`` from ``+hwgen_mem<N>``, and the :class:`MemoryImage` of memory ``N``.
    A block that does not list every word as a constant stays as it is."""
    images = []

    def replace(match):
        width, depth = int(match["msb"]) + 1, int(match["last"]) + 1
        words = _parse(match["body"], width, depth)
        if words is None:
            return match.group(0)
        n = len(images)
        images.append(MemoryImage(width, words))
        indent, name = match["indent"], match["name"]
        return (f"{indent}reg [{width - 1}:0] {name} [{depth - 1}:0];\n"
                f"{indent}reg [8*4096-1:0] hwgen_mem{n}_path;\n"
                f"{indent}initial begin\n"
                f"{indent}  if ($value$plusargs(\"hwgen_mem{n}=%s\", hwgen_mem{n}_path))\n"
                f"{indent}    $readmemh(hwgen_mem{n}_path, {name});\n"
                f"{indent}end\n")

    return _BLOCK_RE.sub(replace, text), tuple(images)


def write_memories(images, folder, tag):
    """Write each image as ``folder/mem<N>-<tag>.hex``; returns the paths."""
    paths = []
    for n, image in enumerate(images):
        path = folder / f"mem{n}-{tag}.hex"
        write_hex(path, image.words, image.width)
        paths.append(path)
    return paths


def memory_plusargs(paths):
    """The plusargs that name the files of :func:`write_memories` to the simulation."""
    return [f"+hwgen_mem{n}={path}" for n, path in enumerate(paths)]
