"""Finished searches read back: tables, filters, the one ranking, refinement and figures.

Works on the plain records of :mod:`deft_tune.search.tracking.reader` (any objects with the
same fields do), so tests feed it records directly and nothing here talks to MLflow.

Public face:

- :mod:`.report`: :func:`ranked` (which trial is best, everywhere: inspect, export, the
  search's summary and parent run, replay) with :func:`objective_value` and
  :func:`best_report`; the ``--where`` filters (:func:`parse_where`); trial tables
  (:func:`trials_table`, :func:`trial_row`, :func:`search_row`), Parquet
  (:func:`write_parquet`) and the seeds-robust export choice (:func:`choose_trial`);
- :mod:`.refine`: :func:`refine_space`, a narrowed search space around the top trials;
- :mod:`.report_plots` (not imported here: it loads matplotlib): inspect's figures.

What it may import: the shared vocabulary at the top of the package (config, schedules,
report_keys, errors, fileio, plots, ...) and :mod:`deft_tune.training.aggregate` (the replica
keys and statistics a search's records carry); never ray, optuna or mlflow, nor anything of
cli/. Inside a function, when called, it may reach the search's reader
(:mod:`deft_tune.search.tracking.reader`, for metric histories) and its space language
(:mod:`deft_tune.search.space`, for parameter domains) (tests/test_import_walls.py).
"""

from deft_tune.results.refine import observed_values, refine_space
from deft_tune.results.report import (
    best_report,
    choose_trial,
    completed,
    earlier_mode,
    finished,
    objective_setting,
    objective_spread,
    objective_value,
    param_float,
    parse_where,
    ranked,
    resolve_metric,
    schedule_key,
    search_row,
    seeds_robust,
    stage_count,
    stage_starts,
    stage_values,
    trial_row,
    trials_table,
    write_parquet,
)

__all__ = [
    "best_report",
    "choose_trial",
    "completed",
    "earlier_mode",
    "finished",
    "objective_setting",
    "objective_spread",
    "objective_value",
    "observed_values",
    "param_float",
    "parse_where",
    "ranked",
    "refine_space",
    "resolve_metric",
    "schedule_key",
    "search_row",
    "seeds_robust",
    "stage_count",
    "stage_starts",
    "stage_values",
    "trial_row",
    "trials_table",
    "write_parquet",
]
