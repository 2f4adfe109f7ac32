"""Writing files without losing any: atomic replacement, output checks made before long work,
and new files and folders with the user's umask.

Every file hwgen writes goes through :func:`atomic_write` (a temporary file in the same
folder, renamed over the target), so an interrupted run leaves either the old file or the new
one. Output locations are checked with :func:`check_output_file` / :func:`check_output_dir`
before any long work starts, so a typo fails in a second, not after training or elaboration.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ArgumentError, HwgenError

__all__ = ["atomic_write", "check_output_dir", "check_output_file", "default_mode",
           "make_dirs", "private_dir", "remove_dirs", "write_files"]


def default_mode(directory=False):
    """The mode a new file (``0o666``) or folder (``0o777``) gets under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _check_creatable(path: Path, what: str) -> None:
    """Raise unless a file or folder can be created at the missing ``path``: its nearest
    existing ancestor must be a folder in which hwgen can create something (tried, then
    removed, which also catches read-only and virtual file systems like /proc)."""
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise ArgumentError(f"{what} {str(path)!r} cannot be created: {str(ancestor)!r} is "
                            f"a file, not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".hwgen-probe-", dir=ancestor)
        os.rmdir(probe)
    except OSError as e:
        raise ArgumentError(f"{what} {str(path)!r} cannot be created in {str(ancestor)!r}: "
                            f"{e.strerror or e}") from None


def check_output_file(path, error=ArgumentError):
    """Raise ``error`` unless a file can be written at ``path``: it is not a folder, and its
    folder exists and is writable (checked before long work, so that it fails fast);
    returns the folder."""
    path = os.fspath(path)
    if not path:
        raise error("Output file must be a path, not ''")
    if os.path.isdir(path):
        raise error(f"Output {path!r} is a folder, not a file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        above = _nearest_existing(Path(folder))
        if above.exists() and not above.is_dir():
            raise error(f"Output {path!r} is under {str(above)!r}, which is a file, not a "
                        f"folder")
        raise error(f"Folder {folder!r} for output {path!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise error(f"Folder {folder!r} for output {path!r} is not writable")
    return folder


def check_output_dir(path, is_ours, force=False, what="Output folder", kind="an hwgen design",
                     files="the design's files"):
    """Raise :class:`~hwgen.errors.ArgumentError` unless hwgen may write its files into the
    folder ``path``: a missing folder that can be created, an empty one, one that
    ``is_ours(path)`` recognises (an earlier output: ``kind``, "an hwgen design"), or any
    folder with ``force``. Files already there that are not hwgen's are never touched either
    way. Returns a ``Path``."""
    if not os.fspath(path):
        raise ArgumentError(f"{what} must be a path, not ''")
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ArgumentError(f"{what} {str(path)!r} is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ArgumentError(f"{what} {str(path)!r} is not writable")
        entries = sorted(p.name for p in path.iterdir())
        if entries and not is_ours(path) and not force:
            raise ArgumentError(
                f"{what} {str(path)!r} exists and is not {kind} (it holds "
                f"{entries[0]!r}); choose another folder, or pass --force to add {files} "
                f"to it (other files are left alone)")
        return path
    _check_creatable(path, what)
    return path


def make_dirs(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents with the user's umask; returns the folders
    created, outermost first, so a failed run can remove exactly those."""
    missing = []
    probe = Path(path)
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        os.mkdir(folder)        # mode 0o777 & ~umask
    return list(reversed(missing))


def private_dir(parent: Path, prefix: str) -> Path:
    """A new staging folder in ``parent`` (same file system as the target, so renames are
    atomic) with the mode a folder made by the user would have."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(tmp, default_mode(directory=True))
    return tmp


def atomic_write(path, write):
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then rename it to
    ``path``; on any failure the temporary file is removed and ``path`` is untouched. The
    file gets the user's umask (mkstemp alone would make it private)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise HwgenError(f"Cannot write {str(path)!r}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(out_dir, files) -> list[Path]:
    """Write ``files`` (``{name: bytes}``, all made before this is called) into the folder
    ``out_dir``, created if missing, each file atomically; returns the paths."""
    out = Path(out_dir)
    if not out.exists():
        make_dirs(out)
    paths = []
    for name, data in files.items():
        atomic_write(out / name, lambda f, d=data: f.write(d))
        paths.append(out / name)
    return paths


def remove_dirs(folders) -> None:
    """Remove folders :func:`make_dirs` created (innermost first), if still empty."""
    for folder in reversed(list(folders)):
        try:
            os.rmdir(folder)
        except OSError:
            break
