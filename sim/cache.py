"""The simulator build cache: where builds are kept, how large it may grow, what is evicted.

A Verilator build of a 4×4 design is 130–150 MB as Verilator leaves it, almost all of it
object files and a precompiled header that only the build needs. :func:`prune` deletes
those once the simulator binary is linked, and :func:`evict` keeps the whole cache under a
size cap by removing the builds used least recently. A build is "used" when it is built or
simulated; the mtime of its stamp file records that.

Beside the builds, the folder :data:`RUNTIME` keeps Verilator's runtime objects, which every
build shares (:mod:`hwgen.sim.objcache`); ``--clear`` removes it too.

The cap is ``$HWGEN_CACHE_MAX_MB`` megabytes (default :data:`DEFAULT_MAX_MB`); ``hwgen cache``
shows the cache and ``hwgen cache --clear`` empties it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from hwgen.errors import ArgumentError, HwgenError

__all__ = [
    "CACHE_MAX_ENV",
    "DEFAULT_MAX_MB",
    "RUNTIME",
    "STAMP",
    "CacheInfo",
    "clear",
    "default_build_dir",
    "evict",
    "info",
    "locked",
    "max_bytes",
    "prune",
    "touch",
]

#: The file a finished build carries; its mtime is the build's last use.
STAMP = "hwgen_build.json"
#: Environment variable with the cache's size cap in megabytes.
CACHE_MAX_ENV = "HWGEN_CACHE_MAX_MB"
#: The default cap: room for dozens of pruned builds.
DEFAULT_MAX_MB = 1024
#: The folder of the cache that keeps the Verilator runtime's objects (a few MB).
RUNTIME = "verilator-runtime"

# What a build needs only while it is being made: objects, archives, dependency files,
# precompiled headers and the generated C++ (Verilator's obj_dir), Icarus' command files.
_BUILD_ONLY_SUFFIXES = (".o", ".a", ".d", ".gch", ".cpp", ".h", ".mk", ".dat")


def default_build_dir() -> Path:
    """Where simulator builds are kept between runs: ``$HWGEN_BUILD_DIR``, else
    ``$XDG_CACHE_HOME/hwgen/sim_build`` (``~/.cache/hwgen/sim_build``)."""
    if os.environ.get("HWGEN_BUILD_DIR"):
        return Path(os.environ["HWGEN_BUILD_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "hwgen" / "sim_build"


def max_bytes() -> int:
    """The cache's size cap in bytes, from ``$HWGEN_CACHE_MAX_MB``."""
    text = os.environ.get(CACHE_MAX_ENV)
    if not text:
        return DEFAULT_MAX_MB << 20
    try:
        megabytes = int(text)
    except ValueError:
        megabytes = -1
    if megabytes < 0:
        raise ArgumentError(f"{CACHE_MAX_ENV} must be a whole number of megabytes, "
                            f"not {text!r}")
    return megabytes << 20


@contextlib.contextmanager
def locked(root: Path, name: str, *, wait: bool = True):
    """Hold the lock of build ``name`` in ``root``; yields whether it was taken (always
    ``True`` when ``wait``). Two processes building the same design must not write into one
    folder at once, and eviction must not delete a build another process is using."""
    with open(root / f"{name}.lock", "w") as lock:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(lock, flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def touch(build: Path) -> None:
    """Record that ``build`` was used now."""
    stamp = build / STAMP
    if stamp.is_file():
        os.utime(stamp)


def prune(build: Path, keep: tuple[str, ...]) -> None:
    """Delete what only the making of ``build`` needed, keeping the files named ``keep``
    (the simulator binary) and the build's logs and stamp."""
    for path in build.rglob("*"):
        if path.is_file() and path.name not in keep and path.suffix in _BUILD_ONLY_SUFFIXES:
            path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    total = 0
    for entry in path.rglob("*"):
        with contextlib.suppress(OSError):
            if entry.is_file() and not entry.is_symlink():
                total += entry.stat().st_size
    return total


def _builds(root: Path) -> list[tuple[float, Path]]:
    """``(last use, folder)`` of every build in ``root``, oldest first; folders without a
    stamp (interrupted builds) count as oldest."""
    if not root.is_dir():
        return []
    builds = []
    for entry in root.iterdir():
        if entry.is_dir() and entry.name != RUNTIME:
            stamp = entry / STAMP
            used = stamp.stat().st_mtime if stamp.is_file() else 0.0
            builds.append((used, entry))
    return sorted(builds, key=lambda item: (item[0], item[1].name))


def _remove(root: Path, build: Path) -> bool:
    """Remove ``build`` unless another process holds its lock; whether it was removed."""
    with locked(root, build.name, wait=False) as taken:
        if not taken:
            return False
        shutil.rmtree(build, ignore_errors=True)
    (root / f"{build.name}.lock").unlink(missing_ok=True)
    return True


def evict(root: Path, keep: Path | None = None, limit: int | None = None) -> list[Path]:
    """Remove the least recently used builds of ``root`` until it holds at most ``limit``
    bytes (default :func:`max_bytes`); ``keep`` and builds in use are never removed.
    Returns the removed folders."""
    limit = max_bytes() if limit is None else limit
    builds = _builds(root)
    sizes = {path: _size(path) for _, path in builds}
    total = sum(sizes.values())
    removed = []
    for _, path in builds:
        if total <= limit:
            break
        if keep is not None and path.resolve() == Path(keep).resolve():
            continue
        if _remove(root, path):
            total -= sizes[path]
            removed.append(path)
    return removed


@dataclass(frozen=True)
class CacheInfo:
    """What the cache holds: its folder, builds, bytes and cap."""

    root: Path
    builds: int
    bytes: int
    limit: int

    def summary(self) -> str:
        return (f"{self.root}: {self.builds} simulator builds, {self.bytes / 2**20:.1f} MB "
                f"(cap {self.limit / 2**20:.0f} MB, set by {CACHE_MAX_ENV})")


def info(root: Path | None = None) -> CacheInfo:
    """The state of the cache in ``root`` (default :func:`default_build_dir`)."""
    root = default_build_dir() if root is None else Path(root)
    builds = _builds(root)
    return CacheInfo(root, len(builds), sum(_size(path) for _, path in builds), max_bytes())


def clear(root: Path | None = None) -> int:
    """Remove every build in ``root`` that no process is using; returns how many were
    removed. Refuses a folder that does not look like a build cache."""
    root = default_build_dir() if root is None else Path(root)
    if not root.exists():
        return 0
    builds = _builds(root)
    strangers = [path for _, path in builds if not (path / STAMP).is_file()
                 and not (root / f"{path.name}.lock").exists()]
    if strangers:
        raise HwgenError(f"Build cache {str(root)!r} holds {str(strangers[0].name)!r}, which "
                         f"is not a simulator build; not clearing it")
    shutil.rmtree(root / RUNTIME, ignore_errors=True)
    return sum(_remove(root, path) for _, path in builds)
