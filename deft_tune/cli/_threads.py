"""``--threads``: torch's CPU thread count for one command.

Several deft-tune processes on one machine (retraining seeds side by side, a search beside an
evaluation) each start one torch thread per core by default; their spinning OpenMP threads then
fight over the cores. Giving each process its share keeps them from slowing each other.
"""

from __future__ import annotations

import argparse

import torch

from deft_tune.validation import check_scalar


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)"
    )


def apply_threads(threads: int | None) -> None:
    if threads is None:
        return
    torch.set_num_threads(check_scalar(threads, "--threads", int, min_val=1))
