"""The private local Ray's processes end with the search, however the search ends.

Ray 2.60 stops its GCS and raylet when the driver dies, but its DashboardAgent and
RuntimeEnvAgent see the raylet die, log "Raylet is dead! Exiting", and stay (listening) when
the driver was killed with SIGKILL. So a watcher process holds the read end of a pipe whose
only write end is this process's: it reads end-of-file when this process closes it (after
``ray.shutdown``) or the kernel does (any death), and then kills every process that still
carries this raylet's ``RAY_RAYLET_PID`` in its environment (Ray sets it in everything the
raylet starts). Linux only (it reads /proc); elsewhere nothing is watched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["reap_on_exit"]

_WATCHERS: list[subprocess.Popen] = []  # kept: a dropped Popen of a live process warns

_WATCHER = r"""
import os, signal, sys, time
sys.stdin.buffer.read()  # end-of-file: the driver is gone or has shut Ray down
time.sleep(1.0)  # a clean shutdown stops them itself
mark = b"RAY_RAYLET_PID=" + sys.argv[1].encode()
for entry in os.listdir("/proc"):
    try:
        with open(f"/proc/{entry}/environ", "rb") as environ:
            if mark in environ.read().split(b"\0"):
                os.kill(int(entry), signal.SIGKILL)
    except (OSError, ValueError):
        pass
"""


def _raylets() -> list[int]:
    """This process's children named raylet (the private Ray it just started)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        if name.endswith("(raylet") and int(rest.split()[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


@contextmanager
def reap_on_exit() -> Iterator[None]:
    """Within this block (the private Ray's life), a watcher ends its processes at exit."""
    raylets = _raylets() if Path("/proc/self/environ").exists() else []
    held = []
    for raylet in raylets:
        read, write = os.pipe()  # not inheritable: only this process holds ``write``
        watcher = subprocess.Popen(
            [sys.executable, "-c", _WATCHER, str(raylet)],
            stdin=read,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C on the terminal does not stop it first
        )
        os.close(read)
        _WATCHERS.append(watcher)
        held.append(write)
    try:
        yield
    finally:
        for write in held:
            os.close(write)
