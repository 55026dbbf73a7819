"""Atomic file writes and output-path checks: the one helper every writer of the package uses.

A reader never sees a half-written file and a failure leaves none behind: the content goes to a
temporary file with a unique name beside the target (so concurrent writers of the same path do
not collide), is flushed to disk when ``durable`` (checkpoints, caches, models), and is renamed
over the target. The file gets the permissions a plain ``open`` would give it (0666 minus the
umask), not the 0600 of a temporary file. A write that fails because the device is full is one
:class:`DiskFullError` line naming the file and its folder; the target, if any, is left intact.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from deft_tune.errors import ConfigError, DiskFullError

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "disk_full",
    "space_low",
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _full_or(exc, path) from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        error = _full_or(exc, path)  # before the unlink: the temp file holds what it took
        Path(tmp).unlink(missing_ok=True)
        if error is exc:
            raise
        raise error from None
    if durable:
        _fsync_dir(path.parent)
    return path


# A write error without an errno (torch's zip writer says "unexpected pos") counts as a full
# disk when less than this is left on the device: a write that fails for want of space first
# takes what is left (measured: 0 bytes free after torch.save failed on a full tmpfs).
FULL_BELOW_BYTES = 64 << 10


def disk_full(error: BaseException, folder: str | os.PathLike) -> bool:
    """Whether ``error`` came from a full device: ENOSPC or EDQUOT anywhere in its chain, or
    any error while the device holding ``folder`` has less than FULL_BELOW_BYTES left."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return space_low(folder)


def space_low(folder: str | os.PathLike) -> bool:
    """Less than FULL_BELOW_BYTES left on the device that holds (or will hold) ``folder``."""
    return _free_bytes(Path(folder)) < FULL_BELOW_BYTES


def _free_bytes(folder: Path) -> float:
    for parent in (folder, *folder.parents):  # the folder may not exist yet
        try:
            info = os.statvfs(parent)
        except (OSError, AttributeError):  # missing, or no statvfs (Windows)
            continue
        return info.f_bavail * info.f_frsize
    return math.inf


def _full_or(error: BaseException, path: Path) -> BaseException:
    """A one-line DiskFullError naming the folder and the file, or ``error`` unchanged (an
    interrupt always)."""
    if not isinstance(error, Exception) or not disk_full(error, path.parent):
        return error
    kept = f"; the previous {path.name} is intact" if path.exists() else ""
    return DiskFullError(
        f"cannot write {path.name} in {path.parent}: no space left on its device{kept}; "
        "free some space there or write elsewhere"
    )


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
    path: str | os.PathLike,
    what: str,
    *,
    fix: str = "give a file path",
    writable: bool = True,
    replace: bool = True,
) -> Path:
    """A file ``path`` can be written: not a folder, no file where a parent folder must be, and
    (``writable``) the nearest existing folder writable. ``what`` names the flag or field in
    the error ("--out", "data.options.cache_dir"); ``fix`` says what to do when ``path`` is a
    folder. ``replace`` False: an existing file is refused too (a user's file, not one of the
    command's own outputs; the command's ``--force`` sets it).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder: {fix}")
    if not replace and path.exists():
        raise ConfigError(f"{what} {path} exists: pass --force to replace it")
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
