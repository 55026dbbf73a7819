"""The MLflow layout of a search, defined once: what the writer writes and the reader reads.

- experiment name = search name;
- the parent run (``deft.role=search``) holds the search space, seeds and package versions as
  params, the space YAML as artifact ``search_space.yaml`` and, at the end, the search's summary
  (metrics ``search/*``, tag ``deft.best_trial_id``);
- a replay of a search's stopping rules (`deft-tune replay`) is one run of its own in the
  experiment ``<search name>-replay`` (``deft.role=replay``, ``deft.bank_run_id`` = the parent
  run it replayed): params = the replay's options, metrics = its summary, artifacts = its
  tables and figure;
- each trial has exactly one child run (``mlflow.parentRunId``, ``deft.role=trial``,
  ``deft.trial_id`` and, once it ends, ``deft.stop_reason``: one of :data:`STOP_REASONS`); its
  params are the run config flattened (``schedule.stages.0.beta``) and its run config is
  artifact ``run_config.yaml``. The IFP stopper also writes its reason into the stopped trial's
  last Tune result under the same key, where the driver's callbacks read it.

This module imports nothing heavy: the CLI reads the default store's URI from it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "BANK_TAG",
    "BEST_TRIAL_TAG",
    "DEFAULT_STORE",
    "IFP_STOP_REASONS",
    "INTERRUPTED_TAG",
    "PARENT_TAG",
    "ROLE_REPLAY",
    "ROLE_SEARCH",
    "ROLE_TAG",
    "ROLE_TRIAL",
    "RUN_CONFIG_ARTIFACT",
    "SPACE_ARTIFACT",
    "STOP_REASONS",
    "STOP_TAG",
    "TERMINAL_STATUSES",
    "TRIAL_TAG",
    "default_tracking_uri",
    "parent_filter",
    "replay_experiment",
    "trial_filter",
    "trial_runs",
]

ROLE_TAG = "deft.role"
ROLE_SEARCH = "search"
ROLE_TRIAL = "trial"
ROLE_REPLAY = "replay"
BANK_TAG = "deft.bank_run_id"  # on a replay run: the parent run of the search it replayed
TRIAL_TAG = "deft.trial_id"
STOP_TAG = "deft.stop_reason"
BEST_TRIAL_TAG = "deft.best_trial_id"
INTERRUPTED_TAG = "deft.interrupted"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag

RUN_CONFIG_ARTIFACT = "run_config.yaml"
SPACE_ARTIFACT = "search_space.yaml"

TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")
# deft.stop_reason values: why a trial's run ended.
IFP_STOP_REASONS = ("diffusion", "no_capture", "collapse")  # the IFP stopper's rules
STOP_REASONS = (
    "completed",  # ran to its last step
    "asha",  # cut by the ASHA scheduler
    *IFP_STOP_REASONS,
    "error",  # failed after its retries
    "interrupted",  # the search stopped while it ran (Ctrl-C, SIGTERM), or Tune ended it unasked
)


# How every --help, message and document names the default store (default_tracking_uri below).
# deft_tune/cli/inspect.py holds the same text, so that `--help` imports no search code.
DEFAULT_STORE = "sqlite:///<this folder>/mlflow.db"


def default_tracking_uri(directory: str | os.PathLike | None = None) -> str:
    """The embedded store: ``sqlite:///<abs dir>/mlflow.db``; absolute because trials chdir."""
    base = Path(directory or os.getcwd()).resolve()
    return f"sqlite:///{base / 'mlflow.db'}"


def replay_experiment(search_name: str) -> str:
    """The experiment that holds the replays of search ``search_name``."""
    return f"{search_name}-replay"


def parent_filter() -> str:
    """MLflow search filter of the parent runs of searches."""
    return f"tags.`{ROLE_TAG}` = '{ROLE_SEARCH}'"


def trial_filter(parent_run_id: str, trial_id: str | None = None) -> str:
    """MLflow search filter of a search's trial runs (of one trial when ``trial_id`` is given)."""
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{ROLE_TAG}` = '{ROLE_TRIAL}'"
    return f"{query} and tags.`{TRIAL_TAG}` = '{trial_id}'" if trial_id else query


def trial_runs(
    search_runs: Callable[..., Any],
    experiment_id: str,
    parent_run_id: str,
    trial_id: str | None = None,
) -> list[Any]:
    """A search's trial runs (of one trial when ``trial_id`` is given), oldest first, every page
    of them. ``search_runs`` is ``MlflowClient.search_runs``, or the writer's retrying wrapper
    of it: this module stays free of MLflow."""
    runs: list[Any] = []
    token = None
    while True:
        page = search_runs(
            [experiment_id],
            trial_filter(parent_run_id, trial_id),
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs
