"""Information freezing: the annealing test, online freezing/diffusion signals, schedule advice.

- :class:`InformationTracker`: the training loop's eval hook behind the ``info/*`` report keys.
- :func:`find_freezing_point`: the IFP of one KL-versus-beta curve.
- :func:`annealing_test` / :func:`annealing_test_unsupervised`: the annealing test itself
  (:class:`AnnealingConfig` holds its settings).
- :func:`suggest_schedule`: DEFT stage betas between separated IFP clusters.
- ``deft_tune.freezing.report`` (not imported here: it loads matplotlib): Parquet and plots.
"""

from deft_tune.freezing.annealing import (
    AnnealingResult,
    AnnealingRun,
    LatentFreezing,
    annealing_runs,
    annealing_test,
    annealing_test_unsupervised,
    run_annealing,
    run_local,
)
from deft_tune.freezing.detect import (
    FreezingPoint,
    default_window,
    find_freezing_point,
    running_median,
)
from deft_tune.freezing.loop import AnnealingConfig, Curve, anneal
from deft_tune.freezing.signals import FreezingEvent, InformationTracker, stage_gains
from deft_tune.freezing.suggest import Suggestion, suggest_schedule, summarize

__all__ = [
    "AnnealingConfig",
    "AnnealingResult",
    "AnnealingRun",
    "Curve",
    "FreezingEvent",
    "FreezingPoint",
    "InformationTracker",
    "LatentFreezing",
    "Suggestion",
    "anneal",
    "annealing_runs",
    "annealing_test",
    "annealing_test_unsupervised",
    "default_window",
    "find_freezing_point",
    "run_annealing",
    "run_local",
    "running_median",
    "suggest_schedule",
    "stage_gains",
    "summarize",
]
