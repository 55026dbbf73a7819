"""One search per folder: a second `deft-tune search` of the same name and storage is refused.

The lock is an advisory ``flock`` on a file in the user's deft-tune state folder named after
the search folder (nothing is written in the search folder, which may not exist yet, or be
s3://); the kernel releases it however the holder exits, SIGKILL included. It covers searches
of one user on one machine; two machines sharing a storage are not locked against each other.
Without ``fcntl`` (Windows) nothing is locked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deft_tune.errors import ConfigError

__all__ = ["search_lock"]


def _lock_file(experiment_path: str) -> Path:
    import platformdirs

    digest = hashlib.sha256(experiment_path.encode()).hexdigest()[:32]
    return Path(platformdirs.user_state_dir("deft-tune")) / "locks" / f"{digest}.lock"


@contextmanager
def search_lock(experiment_path: str, name: str) -> Iterator[None]:
    """Hold the search folder's lock for the block; ConfigError if another search holds it."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = _lock_file(experiment_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"search {name!r} is running already ({holder}, in {experiment_path}): wait for "
                "it to end (or stop it with Ctrl-C), or pick another --name"
            ) from None
        handle.truncate(0)
        handle.write(f"process {os.getpid()}")
        handle.flush()
        yield
