"""The private local Ray's processes end with the search, however the search ends.

Ray 2.60 stops its GCS and raylet when the driver dies, but its DashboardAgent and
RuntimeEnvAgent see the raylet die, log "Raylet is dead! Exiting", and stay (listening) when
the driver was killed with SIGKILL. So a watcher process holds the read end of a pipe whose
only write end is this process's: it reads end-of-file when this process closes it (after
``ray.shutdown``) or the kernel does (any death). While it waits it notes every process the
raylet has started, by pid and start time (an orphan's parent becomes init, so the family must
be known before the raylet dies; the environment in /proc/PID/environ is no witness: Ray's
process titles overwrite it); the search goes on only once it has noted those already running
(the agents). At end-of-file it kills those still running, a pid reused by an unrelated
process excepted. Linux only (it reads /proc); elsewhere nothing is watched.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["raylet_children", "reap_on_exit"]

_WATCHERS: list[subprocess.Popen] = []  # kept: a dropped Popen of a live process warns

_WATCHER = r"""
import os, select, signal, sys, time

raylet = int(sys.argv[1])

def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), fields[19]  # parent, start time (clock ticks since boot)

def note_children(family):
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent, started = stat(entry)
            except (OSError, IndexError):
                continue
            if parent == raylet:
                family[int(entry)] = started

family = {}
try:
    family[raylet] = stat(raylet)[1]
except (OSError, IndexError):
    sys.exit()  # gone before it was watched: nothing of it is known
note_children(family)  # the agents: Ray starts them before ray.init returns
sys.stdout.write("watching\n")
sys.stdout.close()
while not select.select([sys.stdin], [], [], 0.5)[0]:
    note_children(family)  # workers, and whatever starts later
while sys.stdin.buffer.read1(65536):  # drained to end-of-file: the driver is gone or done
    pass
note_children(family)
time.sleep(1.0)  # a clean shutdown stops them itself
for pid, started in family.items():
    try:
        if stat(pid)[1] == started:
            os.kill(pid, signal.SIGKILL)
    except (OSError, IndexError):
        pass
"""


def raylet_children() -> list[int]:
    """This process's children named raylet: the Rays it started (Linux; [] elsewhere)."""
    if not Path("/proc/self/stat").exists():
        return []
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        if name.endswith("(raylet") and int(rest.split()[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


def _wait_until_watching(watcher: subprocess.Popen) -> None:
    """Return once the watcher knows the raylet's processes (a driver killed the next moment
    must still be reaped), or after a minute on a machine too busy to start it."""
    assert watcher.stdout is not None
    with watcher.stdout:
        if select.select([watcher.stdout], [], [], 60.0)[0]:
            watcher.stdout.readline()


@contextmanager
def reap_on_exit(raylets: list[int]) -> Iterator[None]:
    """Within this block (the private Ray's life), a watcher ends the processes of ``raylets``
    at exit. Name only the raylet this search started (:func:`raylet_children` after
    ``ray.init`` less those before): another Ray of this process, a test session's say, would
    be killed with it."""
    held = []
    for raylet in raylets:
        read, write = os.pipe()  # not inheritable: only this process holds ``write``
        watcher = subprocess.Popen(
            [sys.executable, "-c", _WATCHER, str(raylet)],
            stdin=read,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C on the terminal does not stop it first
        )
        os.close(read)
        _WATCHERS.append(watcher)
        held.append(write)
        _wait_until_watching(watcher)
    try:
        yield
    finally:
        for write in held:
            os.close(write)
