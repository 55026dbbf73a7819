"""Read-only queries of finished (or running) searches in MLflow, as plain records.

`deft-tune inspect` and `deft-tune export` work on what this returns (deft_tune/results/ turns
the records into tables, Parquet, plots and configs), so nothing outside deft_tune/search/ has
to import MLflow. The layout read here is :mod:`deft_tune.search.tracking.layout`.

Reading changes nothing. MLflow opening a sqlite URI creates the file (and its folders) when it
is missing, creates or migrates its tables when they are not all there, and adds its default
experiment when that is missing; so a sqlite store is first opened here with Python's sqlite3 in
read-only mode (``file:...?mode=ro``), checked (``PRAGMA quick_check``, MLflow's tables, the
default experiment) and handed to MLflow only when MLflow will find nothing to write.
"""

from __future__ import annotations

import functools
import os
import socket
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

import yaml

from deft_tune import report_keys as keys
from deft_tune.errors import TrackingError
from deft_tune.search.tracking.layout import (
    RUN_CONFIG_ARTIFACT,
    SPACE_ARTIFACT,
    STOP_TAG,
    TRIAL_TAG,
    parent_filter,
    trial_runs,
)
from deft_tune.training.aggregate import objective_key

# An unreachable server should fail in seconds, not after MLflow's minutes of retries; and
# artifact downloads must not draw progress bars over the command's own output.
_CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


@dataclass(frozen=True)
class TrialRecord:
    run_id: str
    trial_id: str
    status: str
    stop_reason: str
    params: dict[str, str]
    metrics: dict[str, float]  # the last value of every metric
    start_time: float  # seconds since the epoch
    end_time: float | None
    steps: int  # the last step the trial logged


@dataclass(frozen=True)
class SearchRecord:
    experiment: str
    experiment_id: str
    parent_run_id: str
    status: str
    start_time: float
    space: dict[str, Any]  # the search space YAML as the search ran it
    versions: str  # package versions the parent run recorded
    trials: tuple[TrialRecord, ...] = field(default=())
    # The parent run's params: the search as it ran (budget.*, stopping.* after the command
    # line's overrides), where ``space`` is the file as written.
    params: dict[str, str] = field(default_factory=dict)
    end_time: float | None = None  # seconds since the epoch; None while it runs

    @property
    def objective(self) -> str:
        """The key the search ranked on: its metric, with the aggregate over replicas."""
        objective = self.space.get("objective") or {}
        metric = str(objective.get("metric", "metrics/mig"))
        return objective_key(metric, str(objective.get("aggregate", "mean")))

    @property
    def mode(self) -> str:
        return str((self.space.get("objective") or {}).get("mode", "max"))


@contextmanager
def _mlflow(uri: str) -> Iterator[Any]:
    """An MlflowClient on ``uri`` whose failures become one TrackingError naming the URI; a
    sqlite store is checked read-only first (:func:`check_sqlite_store`)."""
    check_sqlite_store(uri)
    saved = {key: os.environ.get(key) for key in _CLIENT_ENV}
    os.environ.update(_CLIENT_ENV)
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield MlflowClient(tracking_uri=uri)
        except MlflowException as exc:
            first = str(exc.message).splitlines()[0] if exc.message else type(exc).__name__
            raise TrackingError(f"MLflow at {uri!r} failed: {first}") from None
        except SQLAlchemyError as exc:  # a store damaged where quick_check does not look
            first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise TrackingError(f"the MLflow store {uri!r} cannot be read: {first}") from None
        except OSError as exc:  # connection refused, DNS, ...
            raise TrackingError(f"cannot reach MLflow at {uri!r}: {exc}") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- a sqlite store, checked without writing to it ---------------------------------------------

_CORE_TABLES = frozenset(("experiments", "runs", "metrics", "params", "tags", "alembic_version"))


def sqlite_store_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (relative to the working folder unless absolute)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri.removeprefix("sqlite:///").split("?", 1)[0]))


def check_sqlite_store(uri: str) -> None:
    """TrackingError unless ``uri`` is a sqlite MLflow store that MLflow can read without
    writing; other URIs pass. Opens the file read-only: its bytes never change here."""
    path = sqlite_store_path(uri)
    if path is None:
        return
    if str(path) in ("", ":memory:"):
        raise TrackingError(f"{uri!r} is an in-memory store: it holds no search")
    if not path.exists():
        raise TrackingError(
            f"no MLflow store at {path} ({uri}): run `deft-tune search` there first, or pass "
            "--tracking-uri with the store or server the search wrote to"
        )
    if not path.is_file():
        raise TrackingError(f"{uri!r}: {path} is a folder, not an MLflow store (a sqlite file)")
    missing = _mlflow_tables() - _sqlite_tables(path, uri)
    if missing & _CORE_TABLES:
        raise TrackingError(f"{uri!r}: {path} is a sqlite file but not an MLflow store")
    if missing:
        raise TrackingError(
            f"{uri!r}: {path} lacks MLflow tables ({', '.join(sorted(missing)[:3])}, ...): it was "
            "written by another MLflow version; back it up and run `mlflow db upgrade` on it"
        )


def check_server_reachable(uri: str, timeout: float = 5.0) -> None:
    """TrackingError unless an http(s) tracking URI accepts a connection within ``timeout``
    seconds (MLflow itself retries for minutes); other URIs pass."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        raise TrackingError(
            f"tracking URI {uri}: nothing answers at {parsed.hostname}:{port} "
            f"({exc.strerror or exc}); start the MLflow server or fix --tracking-uri"
        ) from None


def check_sqlite_store_to_write(uri: str) -> None:
    """TrackingError unless a search may write to ``uri``: a sqlite file that is new, empty or
    an MLflow store (MLflow would add its ~40 tables to any other sqlite file); others pass."""
    path = sqlite_store_path(uri)
    if path is None or not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    if not path.is_file():
        raise TrackingError(f"{uri!r}: {path} is a folder, not an MLflow store (a sqlite file)")
    if _CORE_TABLES - _sqlite_tables(path, uri):
        raise TrackingError(
            f"{uri!r}: {path} is a sqlite file but not an MLflow store, and the search would "
            "add MLflow's tables to it; pass --tracking-uri sqlite:///NEW_FILE.db"
        )


def _sqlite_tables(path: Path, uri: str) -> set[str]:
    """Table names of a sqlite file opened read-only, after its quick integrity check."""
    try:
        with closing(sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            names = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            default = (
                "experiments" in {n for (n,) in names}
                and db.execute("SELECT 1 FROM experiments WHERE experiment_id = 0").fetchone()
            )
    except sqlite3.DatabaseError as exc:
        raise TrackingError(f"{uri!r}: {path} is not an MLflow store ({exc})") from None
    if verdict != "ok":
        raise TrackingError(f"{uri!r}: {path} is damaged (sqlite quick_check: {verdict})")
    tables = {name for (name,) in names}
    if "experiments" in tables and not default:  # MLflow would add it
        raise TrackingError(f"{uri!r}: {path} lacks MLflow's default experiment")
    return tables


@functools.cache
def _mlflow_tables() -> frozenset[str]:
    """Every table MLflow's own schema defines (the ones it would create if missing)."""
    try:
        import mlflow.store.db.utils  # noqa: F401 - registers every ORM table with Base
        from mlflow.store.db.base_sql_model import Base
    except ImportError:  # another MLflow layout: the tables every version has
        return _CORE_TABLES
    return frozenset(Base.metadata.tables) | _CORE_TABLES


def _parent_runs(client: Any, experiment_id: str) -> list[Any]:
    return client.search_runs(
        [experiment_id], parent_filter(), order_by=["attributes.start_time DESC"], max_results=1000
    )


def _read_artifact(client: Any, run_id: str, path: str) -> str | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception:  # noqa: BLE001 - a missing artifact is an answer, not an error
            return None
        return Path(local).read_text()


def _last_step(client: Any, run: Any) -> int:
    history = client.get_metric_history(run.info.run_id, keys.LOSS)
    return max((m.step for m in history), default=0)


def _trial(client: Any, run: Any) -> TrialRecord:
    tags = run.data.tags
    return TrialRecord(
        run_id=run.info.run_id,
        trial_id=tags.get(TRIAL_TAG, run.info.run_name or run.info.run_id),
        status=run.info.status,
        stop_reason=tags.get(STOP_TAG, "running" if run.info.status == "RUNNING" else "unknown"),
        params=dict(run.data.params),
        metrics={k: float(v) for k, v in run.data.metrics.items()},
        start_time=(run.info.start_time or 0) / 1000,
        end_time=run.info.end_time / 1000 if run.info.end_time else None,
        steps=_last_step(client, run),
    )


def _light_trial(client: Any, run: Any) -> TrialRecord:
    """A trial without params or step count: enough for counts and the best objective."""
    del client
    tags = run.data.tags
    return TrialRecord(
        run.info.run_id,
        tags.get(TRIAL_TAG, ""),
        run.info.status,
        tags.get(STOP_TAG, "unknown"),
        {},
        {k: float(v) for k, v in run.data.metrics.items()},
        (run.info.start_time or 0) / 1000,
        run.info.end_time / 1000 if run.info.end_time else None,
        0,
    )


def _search(client: Any, experiment: Any, parent: Any, full: bool) -> SearchRecord:
    space_text = _read_artifact(client, parent.info.run_id, SPACE_ARTIFACT)
    make = _trial if full else _light_trial
    return SearchRecord(
        experiment=experiment.name,
        experiment_id=experiment.experiment_id,
        parent_run_id=parent.info.run_id,
        status=parent.info.status,
        start_time=(parent.info.start_time or 0) / 1000,
        space=yaml.safe_load(space_text) if space_text else {},
        versions=", ".join(
            f"{k}={v}" for k, v in sorted(parent.data.params.items()) if "version" in k
        ),
        trials=tuple(
            make(client, run)
            for run in trial_runs(client.search_runs, experiment.experiment_id, parent.info.run_id)
        ),
        params=dict(parent.data.params),
        end_time=parent.info.end_time / 1000 if parent.info.end_time else None,
    )


def list_searches(uri: str) -> list[SearchRecord]:
    """Every search in the store, newest first, with light trial records (no histories)."""
    with _mlflow(uri) as client:
        found = []
        for experiment in client.search_experiments():
            for parent in _parent_runs(client, experiment.experiment_id):
                found.append(_search(client, experiment, parent, full=False))
        return sorted(found, key=lambda s: s.start_time, reverse=True)


def load_search(uri: str, name: str) -> SearchRecord:
    """The newest search of experiment ``name`` with full trial records."""
    with _mlflow(uri) as client:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            known = sorted(
                e.name for e in client.search_experiments() if _parent_runs(client, e.experiment_id)
            )
            raise TrackingError(
                f"no search named {name!r} in {uri}; known: "
                f"{', '.join(known) or 'none (run deft-tune search first)'}"
            )
        parents = _parent_runs(client, experiment.experiment_id)
        if not parents:
            raise TrackingError(f"experiment {name!r} in {uri} holds no deft-tune search")
        return _search(client, experiment, parents[0], full=True)


def metric_histories(uri: str, run_id: str, keys: list[str]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) pairs of each metric in ``keys`` that the run logged, sorted by step."""
    with _mlflow(uri) as client:
        histories = {}
        for key in keys:
            points = client.get_metric_history(run_id, key)
            if points:
                histories[key] = sorted((int(m.step), float(m.value)) for m in points)
        return histories


TimedPoint = tuple[int, float, float]  # (step, value, seconds since the epoch it was logged)


def timed_histories(
    uri: str, wanted: dict[str, list[str]]
) -> dict[str, dict[str, list[TimedPoint]]]:
    """For each run id of ``wanted``, the history of each of its keys as (step, value,
    timestamp in seconds), sorted by step; keys the run never logged are left out. One client
    for all runs: a replay reads a few dozen keys of every trial of a search."""
    with _mlflow(uri) as client:
        found: dict[str, dict[str, list[TimedPoint]]] = {}
        for run_id, names in wanted.items():
            runs = found[run_id] = {}
            for key in names:
                points = client.get_metric_history(run_id, key)
                if points:
                    runs[key] = sorted(
                        (int(m.step), float(m.value), m.timestamp / 1000) for m in points
                    )
        return found


def metric_keys(uri: str, run_id: str) -> list[str]:
    with _mlflow(uri) as client:
        return sorted(client.get_run(run_id).data.metrics)


def run_config_text(uri: str, run_id: str) -> str:
    """The trial's run config YAML exactly as the trial logged it."""
    with _mlflow(uri) as client:
        text = _read_artifact(client, run_id, RUN_CONFIG_ARTIFACT)
    if text is None:
        raise TrackingError(f"run {run_id} in {uri} has no {RUN_CONFIG_ARTIFACT} artifact")
    return text
