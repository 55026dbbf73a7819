"""MLflow tracking of a search: one parent run per search, one nested child run per trial.

Layout (what `deft-tune inspect/export` read):

- experiment name = search name;
- the parent run is tagged ``deft.role=search``; it holds the search space, seeds and package
  versions as params and the space YAML as artifact ``search_space.yaml``;
- each trial has exactly one child run, tagged ``mlflow.parentRunId``, ``deft.role=trial``,
  ``deft.trial_id`` and, once it ends, ``deft.stop_reason``; its params are the run config
  flattened (``schedule.stages.0.beta``) and its run config is artifact ``run_config.yaml``.

Workers create and resume their child run (:class:`TrialRun`); the driver finalises it
(:meth:`SearchTracking.finish_trial`). Both only ever *find* a trial's run by its tags before
creating one, so a retried or resumed trial continues its run instead of making a second one.
Only the MLflow client API is used (no fluent ``mlflow.start_run``): a worker process may host
several trials one after the other, and global "active run" state would leak between them.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from deft_tune.errors import TrackingError

log = logging.getLogger(__name__)

ROLE_TAG = "deft.role"
TRIAL_TAG = "deft.trial_id"
STOP_TAG = "deft.stop_reason"
PARENT_TAG = "mlflow.parentRunId"
RUN_CONFIG_ARTIFACT = "run_config.yaml"
SPACE_ARTIFACT = "search_space.yaml"
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")

# MLflow's batch limits (REST API): 1000 metrics, 100 params per request.
_MAX_METRICS = 1000
_MAX_PARAMS = 100
_MAX_PARAM_LENGTH = 6000

T = TypeVar("T")


def default_tracking_uri(directory: str | os.PathLike | None = None) -> str:
    """The embedded store: ``sqlite:///<abs dir>/mlflow.db``; absolute because trials chdir."""
    base = Path(directory or os.getcwd()).resolve()
    return f"sqlite:///{base / 'mlflow.db'}"


def flatten_params(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts and lists as dotted keys: ``{"a": [{"b": 1}]}`` -> ``{"a.0.b": "1"}``."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value):
            flat.update(flatten_params({str(i): v for i, v in enumerate(value)}, f"{name}."))
        else:
            flat[name] = str(value)[:_MAX_PARAM_LENGTH]
    return flat


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The plain numbers of a report (Tune adds strings, bools and bookkeeping keys)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step"
    }


def with_retry(call: Callable[[], T], attempts: int = 8, base_delay: float = 0.05) -> T:
    """Run ``call``, retrying when a shared sqlite store is locked by another trial process.

    The embedded sqlite store serialises writers; with several trials reporting at once a
    write can fail with "database is locked". Backing off with jitter resolves it; for many
    concurrent trials or several nodes use an MLflow server (``--mlflow-server``) instead.
    """
    for attempt in range(attempts):
        try:
            return call()
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


def _trial_filter(parent_run_id: str, trial_id: str) -> str:
    return f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{TRIAL_TAG}` = '{trial_id}'"


def find_trial_runs(client: MlflowClient, experiment_id: str, parent_run_id: str,
                    trial_id: str | None = None) -> list[Any]:
    """Child runs of ``parent_run_id`` (of one trial when ``trial_id`` is given), oldest first."""
    query = (_trial_filter(parent_run_id, trial_id) if trial_id
             else f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{ROLE_TAG}` = 'trial'")
    runs: list[Any] = []
    token = None
    while True:
        page = with_retry(lambda token=token: client.search_runs(
            [experiment_id], query, max_results=1000, order_by=["attributes.start_time ASC"],
            page_token=token))
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _log_params(client: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    items = [Param(key, value) for key, value in params.items()]
    for i in range(0, len(items), _MAX_PARAMS):
        chunk = items[i:i + _MAX_PARAMS]
        with_retry(lambda chunk=chunk: client.log_batch(run_id, params=chunk))


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
            raise TrackingError(f"MLflow at {self.uri!r} refused experiment {name!r}: "
                                f"{exc.message}") from None

    def start_parent(self, params: Mapping[str, Any], artifacts: Mapping[str, str],
                     run_id: str | None = None, run_name: str | None = None) -> str:
        """Create the parent run (or mark ``run_id`` running again when resuming)."""
        if run_id is not None:
            with_retry(lambda: self.client.update_run(run_id, status="RUNNING"))
            self.parent_run_id = run_id
            return run_id
        run = with_retry(lambda: self.client.create_run(
            self.experiment_id, tags={ROLE_TAG: "search"}, run_name=run_name))
        self.parent_run_id = run.info.run_id
        _log_params(self.client, self.parent_run_id, flatten_params(params))
        for name, text in artifacts.items():
            with_retry(lambda name=name, text=text: self.client.log_text(
                self.parent_run_id, text, name))
        return self.parent_run_id

    def log_summary(self, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
        """Search-level results (best objective, trial counts) on the parent run."""
        assert self.parent_run_id is not None
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        tag_list = [RunTag(k, str(v)) for k, v in tags.items()]
        with_retry(lambda: self.client.log_batch(self.parent_run_id, metrics=batch,
                                                 tags=tag_list))

    def trial_runs(self, trial_id: str | None = None) -> list[Any]:
        assert self.parent_run_id is not None
        return find_trial_runs(self.client, self.experiment_id, self.parent_run_id, trial_id)

    def finish_trial(self, trial_id: str, status: str, stop_reason: str) -> bool:
        """Tag the trial's run with its stop reason and end it; False if it has no run yet.

        Idempotent: the worker may already have ended the run itself (a finished trial).
        """
        runs = self.trial_runs(trial_id)
        for run in runs:
            run_id = run.info.run_id
            with_retry(lambda run_id=run_id: self.client.set_tag(run_id, STOP_TAG, stop_reason))
            with_retry(lambda run_id=run_id: self.client.set_terminated(run_id, status))
        return bool(runs)

    def end_open_trials(self, status: str = "KILLED", stop_reason: str = "interrupted") -> int:
        """End every child run still RUNNING (the driver stopped); returns how many."""
        count = 0
        for run in self.trial_runs():
            if run.info.status == "RUNNING":
                run_id = run.info.run_id
                with_retry(lambda run_id=run_id: self.client.set_tag(run_id, STOP_TAG,
                                                                     stop_reason))
                with_retry(lambda run_id=run_id: self.client.set_terminated(run_id, status))
                count += 1
        return count

    def finish_parent(self, status: str = "FINISHED") -> None:
        if self.parent_run_id is not None:
            with_retry(lambda: self.client.set_terminated(self.parent_run_id, status))


class TrialRun:
    """A worker's handle on its trial's child run: created once, continued on every retry."""

    def __init__(self, client: MlflowClient, run_id: str, resumed_step: int | None) -> None:
        self.client = client
        self.run_id = run_id
        # Steps up to here were logged by an earlier attempt: skipping them keeps the
        # metric history free of duplicates when a retry replays from an older checkpoint.
        self.resumed_step = resumed_step

    @classmethod
    def open(cls, uri: str, experiment_id: str, parent_run_id: str, trial_id: str, *,
             run_id: str | None = None, params: Mapping[str, Any] | None = None,
             run_name: str | None = None, progress_key: str = "train/loss") -> TrialRun:
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
        tags = {PARENT_TAG: parent_run_id, ROLE_TAG: "trial", TRIAL_TAG: trial_id}
        run = with_retry(lambda: client.create_run(experiment_id, tags=tags,
                                                   run_name=run_name or trial_id))
        new = cls(client, run.info.run_id, None)
        if params:
            _log_params(client, new.run_id, flatten_params(params))
        return new

    def log_metrics(self, metrics: Mapping[str, Any], step: int,
                    skip_logged: bool = True) -> bool:
        """Log the numbers of one report in one batch; False when the step was logged before.

        ``skip_logged=False`` logs keys that are not step reports (a trial's final scores).
        """
        if skip_logged and self.resumed_step is not None and step <= self.resumed_step:
            return False
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, int(step)) for k, v in numeric_metrics(metrics).items()]
        for i in range(0, len(batch), _MAX_METRICS):
            chunk = batch[i:i + _MAX_METRICS]
            with_retry(lambda chunk=chunk: self.client.log_batch(self.run_id, metrics=chunk))
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


# --- a local `mlflow server` for multi-process use --------------------------------------------

def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on loopback as a child process; a context manager that stops it.

    The store is ``<directory>/mlflow.db`` with artifacts under ``<directory>/mlartifacts``, so
    the same folder works with or without the server. It runs in its own process group so that
    stopping it also stops the web workers it forks.
    """

    def __init__(self, directory: str | os.PathLike, port: int | None = None,
                 host: str = "127.0.0.1", startup_timeout: float = 90.0) -> None:
        self.directory = Path(directory).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.log_path = self.directory / "mlflow-server.log"

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MlflowServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "mlflow", "server", "--host", self.host,
            "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", default_tracking_uri(self.directory),
            "--artifacts-destination", str(self.directory / "mlartifacts"),
        ]
        # The server's job runner (GenAI scoring, trace archival) forks a dozen consumers and
        # slows start-up; a tracking store for trials does not need it.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.log_path, "ab") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env,
                                            start_new_session=True)
        self._wait_ready()
        log.info("mlflow server on %s (log: %s)", self.uri, self.log_path)
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise TrackingError(f"mlflow server exited with code {self.process.returncode}; "
                                    f"see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise TrackingError(f"mlflow server did not answer on {self.uri} within "
                            f"{self.startup_timeout:.0f} s; see {self.log_path}")

    def stop(self, timeout: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

