"""Verilator's runtime objects, compiled once and shared by every build.

Each Verilator build compiles, beside the design, Verilator's own runtime (``verilated.cpp``,
``verilated_vpi.cpp``, ``verilated_timing.cpp``, ``verilated_threads.cpp``,
``verilated_dpi.cpp``): sources that do not depend on the design, yet take most of a small
design's C++ build. Verilator's makefiles run every compile behind ``$(OBJCACHE)`` (meant for
``ccache``, which pip cannot install); :func:`wrapper` gives them a small one of hwgen's own,
which serves those runtime objects from :data:`~hwgen.sim.cache.RUNTIME` in the build cache
and passes every other compile through untouched.

An object is keyed by the whole compile command (but the output's name), the compiler
(its path, size and mtime), the source's text and the Verilator version of the include
folders, so a change of any of them compiles anew. Objects are written whole, under a
temporary name, then renamed: builds running at once share the folder safely.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from pathlib import Path

__all__ = ["wrapper"]

# The wrapper runs once per C++ compile, in a fresh interpreter: it imports nothing of hwgen
# (whose imports take longer than a cache hit) and is written out beside the objects.
_SCRIPT = r'''
import hashlib, os, shutil, subprocess, sys

def main(here, argv):
    source = argv[-1] if argv else ""
    name = os.path.basename(source)
    if not (os.path.isabs(source) and name.startswith("verilated") and name.endswith(".cpp")
            and "-c" in argv and "-o" in argv[:-1]):
        os.execvp(argv[0], argv)
    out = argv.index("-o") + 1
    digest = hashlib.sha256()
    for arg in argv[:out] + ["<out>"] + argv[out + 1:]:
        digest.update(arg.encode() + b"\0")
    compiler = shutil.which(argv[0])
    if compiler:
        stat = os.stat(compiler)
        digest.update(f"{os.path.realpath(compiler)} {stat.st_size} {stat.st_mtime_ns}".encode())
    with open(source, "rb") as f:
        digest.update(f.read())
    for arg in argv:
        config = os.path.join(arg[2:], "verilated_config.h") if arg.startswith("-I") else ""
        if config and os.path.isfile(config):
            with open(config, "rb") as f:
                digest.update(f.read())
    cached = os.path.join(here, f"{name[:-4]}-{digest.hexdigest()[:24]}.o")
    if os.path.isfile(cached):
        shutil.copyfile(cached, argv[out])
        print(f"hwgen: {argv[out]} from the runtime cache {cached}")
        return 0
    code = subprocess.call(argv)
    if code == 0:
        partial = f"{cached}.{os.getpid()}.partial"
        try:
            shutil.copyfile(argv[out], partial)
            os.replace(partial, cached)
        except OSError:
            pass        # a cache that cannot be written only costs the next build time
    return code

sys.exit(main(sys.argv[1], sys.argv[2:]))
'''


def wrapper(folder: Path) -> Path | None:
    """The compile wrapper for ``$(OBJCACHE)``, written into ``folder`` (created) if it is
    not there yet; ``None`` where make could not run it (a path with white space) or the
    folder cannot be written (builds then compile the runtime each time, as without it)."""
    python = sys.executable
    if not python or any(ch.isspace() for ch in str(folder) + python):
        return None
    # -S: no site import; the script needs only the standard library
    text = (f"#!/bin/sh\nexec {shlex.quote(python)} -S -c {shlex.quote(_SCRIPT)} "
            f"{shlex.quote(str(folder))} \"$@\"\n")
    name = f"objcache-{hashlib.sha256(text.encode()).hexdigest()[:12]}.sh"
    path = Path(folder) / name
    if not path.is_file():
        # not hwgen.files.atomic_write: that gives the file the umask's mode, and make must
        # never find the script before it is executable
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{name}.{os.getpid()}.partial")
            partial.write_text(text)
            partial.chmod(0o755)
            partial.replace(path)
        except OSError:
            return None
    return path
