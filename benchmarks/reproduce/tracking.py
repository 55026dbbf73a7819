"""The reproduction's MLflow store: what the run steps write and what the report reads back.

The only module of the package that imports deft-tune's tracking code
(``deft_tune.search.tracking.writer`` writes, ``deft_tune.search.tracking.reader`` reads), so a
move of those modules changes this file alone.

Retrained models and annealing-test runs are written as a parent run (``deft.role=search``)
with one child run per model or annealing run (``deft.role=trial``), through the project's own
tracking classes, so ``deft-tune inspect`` lists them and they read back like any search. The
ledger (experiment ``repro-ledger``) holds one child run per pipeline step with its command and
measured wall time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deft_tune.search.tracking import reader as experiments
from deft_tune.search.tracking.layout import SPACE_ARTIFACT
from deft_tune.search.tracking.writer import SearchTracking, TrialRun

LEDGER = "repro-ledger"
KIND_TAG = "repro.kind"

# --- writing ----------------------------------------------------------------------------------


def start_group(
    uri: str, experiment: str, kind: str, description: Mapping[str, Any]
) -> SearchTracking:
    """A parent run for a group of runs; ``description`` is kept as its space artifact."""
    tracking = SearchTracking(uri, experiment)
    tracking.start_parent(
        {KIND_TAG: kind},
        {SPACE_ARTIFACT: yaml.safe_dump(dict(description), sort_keys=False)},
        run_name=experiment,
    )
    tracking.client.set_tag(tracking.parent, KIND_TAG, kind)
    return tracking


def add_run(
    group: SearchTracking,
    name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, Any],
    history: Sequence[Mapping[str, float]] = (),
) -> str:
    """One finished child run: params, step history, final metrics (step = last step)."""
    run = TrialRun.open(
        group.uri, group.experiment_id, group.parent, name, params=params, run_name=name
    )
    last = 0
    for row in history:
        last = int(row.get("step", 0))
        run.log_metrics(row, step=last, skip_logged=False)
    run.log_metrics(metrics, step=last, skip_logged=False)
    run.set_tags({"deft.stop_reason": "completed", **tags})
    run.end("FINISHED")
    return run.run_id


def record_retrain(
    group: SearchTracking, name: str, run_dir: Path, evaluation: Path, tags: Mapping[str, Any]
) -> str:
    """A `deft-tune train` folder and its `deft-tune evaluate` JSON as one child run."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    history = [
        json.loads(line)
        for line in (run_dir / "history.jsonl").read_text().splitlines()
        if line.strip()
    ]
    scores = json.loads(evaluation.read_text())
    metrics = {f"eval/{key}": value for key, value in scores["scores"].items() if value is not None}
    metrics["eval/seconds"] = scores["seconds"]
    clean = [{k: v for k, v in row.items() if v is not None} for row in history]
    setting = scores["settings"]["name"]
    params = {**config, "repro": {"metric_setting": setting, "model_dir": str(run_dir)}}
    run_id = add_run(group, name, params, metrics, {**tags, "repro.metric_setting": setting}, clean)
    group.client.log_text(run_id, (run_dir / "config.yaml").read_text(), "run_config.yaml")
    return run_id


def record_step(
    uri: str,
    ledger: SearchTracking | None,
    step: str,
    command: str,
    wall_s: float,
    description: Mapping[str, Any],
) -> SearchTracking:
    """One pipeline step's wall time in the ledger (opened on first use)."""
    if ledger is None:
        ledger = start_group(uri, LEDGER, "ledger", description)
    add_run(ledger, step, {"command": command}, {"wall_s": wall_s}, {})
    return ledger


def finish(group: SearchTracking | None) -> None:
    if group is not None:
        group.finish_parent("FINISHED")


# --- reading ----------------------------------------------------------------------------------


def finished_groups(uri: str) -> set[str]:
    """Experiment names whose newest parent run finished (steps that need not run again)."""
    return {
        s.experiment
        for s in experiments.list_searches(uri)
        if s.status == "FINISHED" and s.experiment != LEDGER
    }


@dataclass
class Store:
    """What the report needs from one tracking store, loaded once."""

    uri: str
    names: set[str]
    walls: dict[str, float]  # ledger step -> wall seconds (newest record of each step)
    span_s: float  # from the first step's start to the last step's end, over all invocations
    invocations: int  # run.py processes that recorded steps (ledger parent runs)
    budget: dict[str, Any]
    cache: dict[str, Any]
    verdicts: list[str] = field(default_factory=list)  # one line per claim checked

    def search(self, name: str) -> Any | None:
        """The group named ``name`` with its trials (a ``SearchRecord``), None if absent."""
        if name not in self.names:
            return None
        if name not in self.cache:
            self.cache[name] = experiments.load_search(self.uri, name)
        return self.cache[name]

    def histories(self, run_id: str, prefixes: tuple[str, ...]) -> dict[str, list]:
        """Every step of the run's metrics whose key starts with one of ``prefixes``."""
        keys = [k for k in experiments.metric_keys(self.uri, run_id) if k.startswith(prefixes)]
        return experiments.metric_histories(self.uri, run_id, keys)


def open_store(uri: str) -> Store:
    searches = experiments.list_searches(uri)  # newest first
    walls: dict[str, float] = {}
    budget: dict[str, Any] = {}
    ledgers = [record for record in searches if record.experiment == LEDGER]
    begins, ends = [], []
    for record in ledgers:
        budget = budget or record.space
        for trial in record.trials:
            seconds = trial.metrics.get("wall_s", math.nan)
            walls.setdefault(trial.trial_id, seconds)
            ends.append(trial.start_time)  # a step is recorded the moment it ends
            begins.append(trial.start_time - seconds)
    span = max(ends) - min(begins) if ends else math.nan
    names = {s.experiment for s in searches if s.experiment != LEDGER}
    return Store(uri, names, walls, span, len(ledgers), budget, {})


def store_budget(uri: str) -> str | None:
    """The budget name the store's newest run.py invocation recorded."""
    return open_store(uri).budget.get("budget")
