"""Ctrl-C and SIGTERM stop a search the same way: Tune's graceful stop, and the search says so.

Tune catches SIGINT itself and stops quietly: a search interrupted after its last trial had
started looked finished. And `ray.init` installs a SIGTERM handler that exits at once (a stack
dump, exit 1). So while a search runs (after Ray started), :func:`graceful_stop` owns both
signals (Tune's own SIGINT handler is turned off with its ``TUNE_DISABLE_SIGINT_HANDLER``):
the first one records the request and calls the stop Tune installs for SIGUSR1 during ``fit``
(its state saved, ``fit`` returns); outside ``fit``, or at a second signal, it raises
KeyboardInterrupt. Either way the runner marks the search interrupted and exits 130.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from deft_tune.fileio import space_low

__all__ = ["StopRequest", "graceful_stop", "stop_when_full"]

_TUNE_SWITCH = "TUNE_DISABLE_SIGINT_HANDLER"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Whether a stop was asked for; ``fitting`` is set around ``Tuner.fit``."""

    def __init__(self) -> None:
        self.requested = False
        self.fitting = False
        self.full_storage: str | None = None  # set by stop_when_full before it stops the search

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        first = not self.requested
        self.requested = True
        tune_stop = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
        if first and self.fitting and callable(tune_stop):
            tune_stop(signum, frame)
            return
        raise KeyboardInterrupt


@contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """SIGINT and SIGTERM handled as above within the block (main thread only)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {number: signal.getsignal(number) for number in _SIGNALS}
    old_switch = os.environ.get(_TUNE_SWITCH)
    os.environ[_TUNE_SWITCH] = "1"
    for number in _SIGNALS:
        signal.signal(number, stop)
    try:
        yield stop
    finally:
        for number, handler in old.items():
            signal.signal(number, handler)
        if old_switch is None:
            os.environ.pop(_TUNE_SWITCH, None)
        else:
            os.environ[_TUNE_SWITCH] = old_switch


@contextmanager
def stop_when_full(folder: str | None, stop: StopRequest, every_s: float = 1.0) -> Iterator[None]:
    """Stop the search as an interrupt does (SIGTERM to this process) when the local storage
    ``folder`` has no room left: every trial would fail writing its checkpoint there, retry and
    fail again, and Tune's own state would be cut short. None (a remote storage), or a search
    off the main thread (no handler of ours would take the SIGTERM): no watch."""
    if folder is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    ended = threading.Event()

    def watch() -> None:
        while not ended.wait(every_s):
            if space_low(folder):
                stop.full_storage = folder
                os.kill(os.getpid(), signal.SIGTERM)
                return

    watcher = threading.Thread(target=watch, name="deft-storage-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        ended.set()
        watcher.join()
