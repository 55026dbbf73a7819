"""The search: Ray Tune trials of DEFT schedules sampled by Optuna, tracked in MLflow.

The only package of deft_tune that imports ray, optuna or mlflow. Its rooms:

- :mod:`.space`: the search-space YAML language (pure Python: no Ray, no Optuna);
- :mod:`.tracking`: the MLflow layout, its writer and reader, a local ``mlflow server``;
- :mod:`.cluster`: cluster files, shared resources, Ray jobs, remote annealing runs;
- the search itself: :mod:`.options` (what was asked, what came of it, the state file),
  :mod:`.runner` (the order of work, no Ray), :mod:`.tuner` (Ray and the Tuner),
  :mod:`.trainable` (one trial), :mod:`.stopping` (IFP stopper, ASHA) and :mod:`.callbacks`
  (MLflow finalisation, the live table);
- :mod:`.replay`: `deft-tune replay`, the stopping rules judged on a recorded unstopped search.

Importing this package stays light (no Ray): the space functions below load and validate a
space before any cluster is touched; the stopper and scheduler (which need Ray) are imported on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from deft_tune.search.space import (
    SearchSpace,
    define_by_run,
    load_space,
    points_to_evaluate,
    run_config_from_params,
    space_from_dict,
)

__all__ = [
    "IFPStopper",
    "SearchSpace",
    "define_by_run",
    "load_space",
    "make_scheduler",
    "make_stopper",
    "points_to_evaluate",
    "run_config_from_params",
    "space_from_dict",
]

_LAZY = {name: "deft_tune.search.stopping" for name in ("IFPStopper", "make_scheduler",
                                                        "make_stopper")}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
