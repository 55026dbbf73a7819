"""deft-tune's test suite; its folders mirror the package (tests/search/space/ tests
deft_tune/search/space/). Shared doubles live in tests/doubles.py."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the repository root


def scaled(seconds: float) -> float:
    """A time limit stretched by how loaded the machine is now (1-minute load per usable CPU).

    A limit on a subprocess guards against a hang, it does not test speed: on a shared machine
    the same work takes longer, so the limit grows with the load (never below ``seconds``).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return seconds * max(1.0, load / max(cpus, 1))
