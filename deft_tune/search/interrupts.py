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

__all__ = ["StopRequest", "graceful_stop"]

_TUNE_SWITCH = "TUNE_DISABLE_SIGINT_HANDLER"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Whether a stop was asked for; ``fitting`` is set around ``Tuner.fit``."""

    def __init__(self) -> None:
        self.requested = False
        self.fitting = False

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
