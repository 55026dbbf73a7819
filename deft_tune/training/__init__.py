"""The training loop: one run of a config, its replicas, their batches, memory and aggregation.

Public face:

- :class:`Trainer`: trains one run (``training.replicas`` copies of its model side by side) and
  hands one flat dict of numbers to a ``report`` callback; checkpoints and resume;
  :func:`read_checkpoint` reads a checkpoint's state (the checkpoint format's owner);
- :class:`EvalContext` / :data:`EvalHook`: what an eval hook sees and returns;
- :func:`resolve_device`, :func:`resolve_run`, :func:`default_memory_format`: where a run's
  tensors live and in which layout;
- :func:`check_run_memory`: a run's memory, refused before anything is allocated;
- :mod:`.aggregate`: how replicas are reported (``replica{r}/<key>``, a score's statistics over
  replicas, the objective's key); :func:`combine`, :func:`replica_key`, :func:`objective_key`.

Modules: :mod:`.trainer` (construction, the schedule at a step, the loop and its reports),
:mod:`.replica` (one model: stage entry, the training step, its losses), :mod:`.evaluation`
(the probe batch's signals, eval hooks; both classes' evaluation), :mod:`.checkpoint` (the
checkpoint format, its reader; both classes' state), :mod:`.device` (device and layout),
:mod:`.batches`, :mod:`.memory`, :mod:`.aggregate`.

What it may import: the shared vocabulary at the top of the package (config, schedules,
report_keys, errors, fileio, threads, ...), :mod:`deft_tune.data`, :mod:`deft_tune.model` and
:mod:`deft_tune.freezing`; never ray, optuna or mlflow, and nothing of search/, results/ or
cli/ (tests/test_import_walls.py).

Importing this package stays light (no torch): :mod:`.aggregate` is plain Python and read by
the search and by results/; the loop's names load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deft_tune.training.aggregate import (
    AGGREGATES,
    STATISTICS,
    combine,
    combine_scores,
    objective_key,
    replica_key,
    replica_values,
    split_objective_key,
)

if TYPE_CHECKING:
    from deft_tune.training.checkpoint import read_checkpoint
    from deft_tune.training.device import default_memory_format, resolve_device, resolve_run
    from deft_tune.training.evaluation import EvalContext, EvalHook
    from deft_tune.training.memory import check_run_memory
    from deft_tune.training.replica import Replica
    from deft_tune.training.trainer import Trainer

__all__ = [
    "AGGREGATES",
    "STATISTICS",
    "EvalContext",
    "EvalHook",
    "Replica",
    "Trainer",
    "check_run_memory",
    "combine",
    "combine_scores",
    "default_memory_format",
    "objective_key",
    "read_checkpoint",
    "replica_key",
    "replica_values",
    "resolve_device",
    "resolve_run",
    "split_objective_key",
]

# name -> the module that defines it; imported on first use (they load torch).
_LAZY = {
    "Trainer": "deft_tune.training.trainer",
    "Replica": "deft_tune.training.replica",
    "EvalContext": "deft_tune.training.evaluation",
    "EvalHook": "deft_tune.training.evaluation",
    "read_checkpoint": "deft_tune.training.checkpoint",
    "default_memory_format": "deft_tune.training.device",
    "resolve_device": "deft_tune.training.device",
    "resolve_run": "deft_tune.training.device",
    "check_run_memory": "deft_tune.training.memory",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
