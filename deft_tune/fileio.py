"""Atomic file writes and output-path checks: the one helper every writer of the package uses.

A reader never sees a half-written file and a failure leaves none behind: the content goes to a
temporary file with a unique name beside the target (so concurrent writers of the same path do
not collide), is flushed to disk when ``durable`` (checkpoints, caches, models), and is renamed
over the target. The file gets the permissions a plain ``open`` would give it (0666 minus the
umask), not the 0600 of a temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from deft_tune.errors import ConfigError

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
]


def _read_umask() -> int:
    # Read once at import: setting the umask to read it is not thread-safe.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(
    path: str | os.PathLike, write: Callable[[str], object], *, durable: bool = False
) -> Path:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = False) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), durable=durable)


def atomic_write_text(path: str | os.PathLike, text: str, *, durable: bool = False) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text), durable=durable)


def _fsync(path: str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- checks before any work: a run must not fail at its end because of its output path ---------


def check_output_file(
    path: str | os.PathLike, what: str, *, fix: str = "give a file path", writable: bool = True
) -> Path:
    """A file ``path`` can be written: not a folder, no file where a parent folder must be, and
    (``writable``) the nearest existing folder writable. ``what`` names the flag or field in
    the error ("--out", "data.options.cache_dir"); ``fix`` says what to do when ``path`` is a
    folder.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder: {fix}")
    _check_parents(path.parent, what, path, writable)
    return path


def check_output_dir(
    path: str | os.PathLike, what: str, *, fix: str = "give a folder", writable: bool = True
) -> Path:
    """A folder ``path`` can be made or written in: not a file, no file among its parents, and
    (``writable``) it or, before it exists, its nearest existing parent writable. A folder that
    is only read when it exists (a shared data cache) passes ``writable=False``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file: {fix}")
    _check_parents(path, what, path, writable)
    return path


def _check_parents(folder: Path, what: str, path: Path, writable: bool = True) -> None:
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{what} {path}: {parent} is a file, not a folder")
            if writable and not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{what} {path}: cannot write in {parent} (permission denied)")
            return
