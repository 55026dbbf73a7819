"""``--threads``: torch's CPU thread count for one command.

Several deft-tune processes on one machine (retraining seeds side by side, a search beside an
evaluation) each start one torch thread per core by default; giving each process its share
keeps them from slowing each other. torch is imported only when a count is applied, so that
`--help` stays instant.
"""

from __future__ import annotations

import argparse

from deft_tune.config import MAX_THREADS
from deft_tune.validation import check_scalar

DEFAULT_HELP = "CPU threads for torch (default: one per available core)"


def add_threads_argument(parser: argparse.ArgumentParser, help: str = DEFAULT_HELP) -> None:
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=help)


def checked_threads(threads: int | None) -> int | None:
    """``--threads`` checked (an integer >= 1), or None when not given."""
    if threads is None:
        return None
    return check_scalar(threads, "--threads", int, min_val=1, max_val=MAX_THREADS)


def apply_threads(threads: int | None) -> None:
    checked = checked_threads(threads)
    if checked is not None:
        from deft_tune.threads import limit_threads

        limit_threads(checked)
