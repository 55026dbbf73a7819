"""Writing a search to MLflow: one parent run per search, one nested child run per trial, in
the layout of :mod:`deft_tune.search.tracking.layout`.

Workers create and resume their child run (:class:`TrialRun`); the driver finalises it
(:meth:`SearchTracking.finish_trial`). Both only ever *find* a trial's run by its tags before
creating one, so a retried or resumed trial continues its run instead of making a second one.
Only the MLflow client API is used (no fluent ``mlflow.start_run``): a worker process may host
several trials one after the other, and global "active run" state would leak between them.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from deft_tune import report_keys as keys
from deft_tune.config import flatten
from deft_tune.errors import TrackingError
from deft_tune.search.tracking.layout import (
    PARENT_TAG,
    ROLE_SEARCH,
    ROLE_TAG,
    ROLE_TRIAL,
    STOP_TAG,
    TERMINAL_STATUSES,
    TRIAL_TAG,
    trial_runs,
)

log = logging.getLogger(__name__)

# MLflow's batch limits (REST API): 1000 metrics, 100 params per request.
_MAX_METRICS = 1000
_MAX_PARAMS = 100
_MAX_PARAM_LENGTH = 6000

T = TypeVar("T")


def run_params(config: Mapping[str, Any]) -> dict[str, str]:
    """A run config as MLflow params: dotted names (``schedule.stages.0.beta``), text values."""
    return {key: str(value)[:_MAX_PARAM_LENGTH] for key, value in flatten(config).items()}


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The plain numbers of a report (Tune adds strings, bools and bookkeeping keys)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step"
    }


def with_retry(
    call: Callable[..., T], *args: Any, attempts: int = 8, base_delay: float = 0.05, **kwargs: Any
) -> T:
    """``call(*args, **kwargs)``, retried when a shared sqlite store is locked by another trial.

    The embedded sqlite store serialises writers; with several trials reporting at once a
    write can fail with "database is locked". Backing off with jitter resolves it; for many
    concurrent trials or several nodes use an MLflow server (``--mlflow-server``) instead.
    """
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except MlflowException as exc:
            if "locked" not in str(exc).lower() or attempt == attempts - 1:
                raise
            time.sleep(base_delay * 2**attempt * (1 + random.random()))
    raise AssertionError("unreachable")


def _client(uri: str) -> MlflowClient:
    try:
        return MlflowClient(tracking_uri=uri)
    except MlflowException as exc:
        raise TrackingError(f"cannot open MLflow tracking URI {uri!r}: {exc}") from None


def find_trial_runs(
    client: MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str | None = None
) -> list[Any]:
    """Child runs of ``parent_run_id`` (of one trial when ``trial_id`` is given), oldest first."""
    search_runs = functools.partial(with_retry, client.search_runs)
    return trial_runs(search_runs, experiment_id, parent_run_id, trial_id)


def _log_metric_batch(client: MlflowClient, run_id: str, batch: Sequence[Metric]) -> None:
    for i in range(0, len(batch), _MAX_METRICS):
        with_retry(client.log_batch, run_id, metrics=list(batch[i : i + _MAX_METRICS]))


def _log_params(client: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    items = [Param(key, value) for key, value in params.items()]
    for i in range(0, len(items), _MAX_PARAMS):
        chunk = items[i : i + _MAX_PARAMS]
        with_retry(client.log_batch, run_id, params=chunk)


class SearchTracking:
    """The driver's side: the experiment, the parent run and the finalisation of trial runs."""

    def __init__(self, uri: str, experiment: str) -> None:
        self.uri = uri
        self.client = _client(uri)
        self.experiment_id = self._experiment(experiment)
        self.parent_run_id: str | None = None

    def _experiment(self, name: str) -> str:
        try:
            found = with_retry(lambda: self.client.get_experiment_by_name(name))
            if found is not None:
                return found.experiment_id
            return with_retry(lambda: self.client.create_experiment(name))
        except MlflowException as exc:
            raise TrackingError(
                f"MLflow at {self.uri!r} refused experiment {name!r}: {exc.message}"
            ) from None

    def start_parent(
        self,
        params: Mapping[str, Any],
        artifacts: Mapping[str, str],
        run_id: str | None = None,
        run_name: str | None = None,
    ) -> str:
        """Create the parent run (or mark ``run_id`` running again when resuming)."""
        if run_id is not None:
            with_retry(lambda: self.client.update_run(run_id, status="RUNNING"))
            self.parent_run_id = run_id
            return run_id
        run = with_retry(
            lambda: self.client.create_run(
                self.experiment_id, tags={ROLE_TAG: ROLE_SEARCH}, run_name=run_name
            )
        )
        parent = self.parent_run_id = run.info.run_id
        _log_params(self.client, parent, run_params(params))
        for name, text in artifacts.items():
            with_retry(self.client.log_text, parent, text, name)
        return parent

    @property
    def parent(self) -> str:
        """The parent run's id (once :meth:`start_parent` made or resumed it)."""
        if self.parent_run_id is None:
            raise RuntimeError("the search has no parent run yet: call start_parent first")
        return self.parent_run_id

    def log_summary(self, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
        """Search-level results (best objective, trial counts) on the parent run."""
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        tag_list = [RunTag(k, str(v)) for k, v in tags.items()]
        with_retry(self.client.log_batch, self.parent, metrics=batch, tags=tag_list)

    def trial_runs(self, trial_id: str | None = None) -> list[Any]:
        return find_trial_runs(self.client, self.experiment_id, self.parent, trial_id)

    def finish_trial(self, trial_id: str, status: str, stop_reason: str) -> bool:
        """Tag the trial's run with its stop reason and end it; False if it has no run yet.

        Idempotent: the worker may already have ended the run itself (a finished trial).
        """
        runs = self.trial_runs(trial_id)
        for run in runs:
            with_retry(self.client.set_tag, run.info.run_id, STOP_TAG, stop_reason)
            with_retry(self.client.set_terminated, run.info.run_id, status)
        return bool(runs)

    def end_open_trials(self, status: str = "KILLED", stop_reason: str = "interrupted") -> int:
        """End every child run still RUNNING (the driver stopped); returns how many."""
        count = 0
        for run in self.trial_runs():
            if run.info.status == "RUNNING":
                with_retry(self.client.set_tag, run.info.run_id, STOP_TAG, stop_reason)
                with_retry(self.client.set_terminated, run.info.run_id, status)
                count += 1
        return count

    def finish_parent(self, status: str = "FINISHED") -> None:
        if self.parent_run_id is not None:
            with_retry(self.client.set_terminated, self.parent_run_id, status)

    def discard_parent(self) -> None:
        """End the parent FAILED and delete it (MLflow's soft delete: `mlflow runs restore`
        brings it back): a search that never started a trial leaves no search to inspect."""
        if self.parent_run_id is not None:
            with_retry(self.client.set_terminated, self.parent_run_id, "FAILED")
            with_retry(self.client.delete_run, self.parent_run_id)


def log_finished_run(
    uri: str,
    experiment: str,
    *,
    tags: Mapping[str, str],
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    files: Sequence[str | os.PathLike] = (),
    run_name: str | None = None,
) -> str:
    """One finished run of its own (a replay's results): params, metrics at step 0, files as
    artifacts; the experiment is made when missing. Returns the run id."""
    tracking = SearchTracking(uri, experiment)
    client = tracking.client
    run = with_retry(
        lambda: client.create_run(tracking.experiment_id, tags=dict(tags), run_name=run_name)
    )
    run_id = run.info.run_id
    _log_params(client, run_id, run_params(params))
    now = int(time.time() * 1000)
    _log_metric_batch(client, run_id, [Metric(k, float(v), now, 0) for k, v in metrics.items()])
    for path in files:
        with_retry(client.log_artifact, run_id, str(path))
    with_retry(client.set_terminated, run_id, "FINISHED")
    return run_id


class TrialRun:
    """A worker's handle on its trial's child run: created once, continued on every retry."""

    def __init__(self, client: MlflowClient, run_id: str, resumed_step: int | None) -> None:
        self.client = client
        self.run_id = run_id
        # Steps up to here were logged by an earlier attempt: skipping them keeps the
        # metric history free of duplicates when a retry replays from an older checkpoint.
        self.resumed_step = resumed_step

    @classmethod
    def open(
        cls,
        uri: str,
        experiment_id: str,
        parent_run_id: str,
        trial_id: str,
        *,
        run_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        progress_key: str = keys.LOSS,
    ) -> TrialRun:
        """Continue ``run_id``, or the trial's existing run, or create the trial's run."""
        client = _client(uri)
        if run_id is None:
            existing = find_trial_runs(client, experiment_id, parent_run_id, trial_id)
            run_id = existing[0].info.run_id if existing else None
        if run_id is not None:
            with_retry(lambda: client.update_run(run_id, status="RUNNING"))
            history = with_retry(lambda: client.get_metric_history(run_id, progress_key))
            last = max((m.step for m in history), default=None)
            return cls(client, run_id, last)
        tags = {PARENT_TAG: parent_run_id, ROLE_TAG: ROLE_TRIAL, TRIAL_TAG: trial_id}
        run = with_retry(
            lambda: client.create_run(experiment_id, tags=tags, run_name=run_name or trial_id)
        )
        new = cls(client, run.info.run_id, None)
        if params:
            _log_params(client, new.run_id, run_params(params))
        return new

    def log_metrics(self, metrics: Mapping[str, Any], step: int, skip_logged: bool = True) -> bool:
        """Log the numbers of one report in one batch; False when the step was logged before.

        ``skip_logged=False`` logs keys that are not step reports (a trial's final scores).
        """
        if skip_logged and self.resumed_step is not None and step <= self.resumed_step:
            return False
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, int(step)) for k, v in numeric_metrics(metrics).items()]
        _log_metric_batch(self.client, self.run_id, batch)
        return True

    def log_text(self, text: str, artifact_file: str) -> None:
        with_retry(lambda: self.client.log_text(self.run_id, text, artifact_file))

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        with_retry(lambda: self.client.log_figure(self.run_id, figure, artifact_file))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        with_retry(lambda: self.client.log_batch(self.run_id, tags=batch))

    def end(self, status: str = "FINISHED") -> None:
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"status == {status!r}, must be one of {TERMINAL_STATUSES}")
        with_retry(lambda: self.client.set_terminated(self.run_id, status))
