"""MLflow tracking: parent/child layout, resumed runs, batching, finalisation, the server."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from deft_tune.search.tracking import writer as tracking
from deft_tune.search.tracking.layout import (
    ROLE_TAG,
    STOP_TAG,
    TRIAL_TAG,
    default_tracking_uri,
    trial_filter,
    trial_runs,
)
from deft_tune.search.tracking.writer import (
    SearchTracking,
    TrialRun,
    numeric_metrics,
    run_params,
    with_retry,
)


class _Page(list):
    """A page of MLflow's search_runs: runs and the token of the next page ("" on the last)."""

    def __init__(self, runs, token):
        super().__init__(runs)
        self.token = token


def test_trial_runs_follows_every_page_token_with_the_trial_filter():
    pages = {None: _Page(["a", "b"], "p2"), "p2": _Page(["c"], "p3"), "p3": _Page([], "")}
    calls = []

    def search_runs(experiment_ids, query, *, max_results, order_by, page_token):
        calls.append((experiment_ids, query, order_by, page_token))
        return pages[page_token]

    assert trial_runs(search_runs, "7", "parent", "t1") == ["a", "b", "c"]
    query = trial_filter("parent", "t1")
    assert calls == [(["7"], query, ["attributes.start_time ASC"], token)
                     for token in (None, "p2", "p3")]  # fmt: skip


def test_run_params_dotted_keys_through_dicts_and_lists_of_dicts():
    raw = {
        "model": {"groups": 2},
        "schedule": {"stages": [{"beta": 4.0}, {"beta": 1.0}]},
        "evaluation": {"metrics": ["mig", "sap"]},
    }
    assert run_params(raw) == {
        "model.groups": "2",
        "schedule.stages.0.beta": "4.0",
        "schedule.stages.1.beta": "1.0",
        "evaluation.metrics": "['mig', 'sap']",
    }


def test_numeric_metrics_keeps_numbers_only():
    report = {"step": 10, "train/loss": 1, "done": True, "trial_id": "x", "info/x": 0.5}
    assert numeric_metrics(report) == {"train/loss": 1.0, "info/x": 0.5}


def test_with_retry_retries_locked_store_and_reraises_other_errors(monkeypatch):
    monkeypatch.setattr(tracking.time, "sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise MlflowException("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert with_retry(flaky) == "ok" and len(calls) == 3

    def broken():
        calls.append(1)
        raise MlflowException("RESOURCE_DOES_NOT_EXIST")

    calls.clear()
    with pytest.raises(MlflowException, match="RESOURCE"):
        with_retry(broken)
    assert len(calls) == 1

    def always_locked():
        raise MlflowException("database is locked")

    with pytest.raises(MlflowException, match="locked"):
        with_retry(always_locked, attempts=4)


def _exercise_layout(uri: str) -> None:
    """The whole life of a search's runs against one tracking URI."""
    search = SearchTracking(uri, "layout")
    parent = search.start_parent(
        {"seed": 3, "space": {"name": "quick"}}, {"search_space.yaml": "name: quick\n"}
    )
    first = TrialRun.open(uri, search.experiment_id, parent, "t1", params={"model": {"groups": 2}})
    first.log_text("model: {groups: 2}\n", "run_config.yaml")
    assert first.log_metrics({"train/loss": 3.0, "step": 10, "note": "x"}, step=10)
    assert first.log_metrics({"train/loss": 2.0}, step=20)

    # A retry of t1 (no run id at hand, e.g. it died before its first checkpoint) finds the
    # same run, and the steps it replays are not logged twice.
    again = TrialRun.open(uri, search.experiment_id, parent, "t1")
    assert again.run_id == first.run_id and again.resumed_step == 20
    assert not again.log_metrics({"train/loss": 9.0}, step=20)
    assert again.log_metrics({"train/loss": 1.0}, step=30)
    history = search.client.get_metric_history(first.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(10, 3.0), (20, 2.0), (30, 1.0)]

    second = TrialRun.open(uri, search.experiment_id, parent, "t2", params={"x": 1})
    second.end("FINISHED")
    assert search.finish_trial("t2", "FINISHED", "completed")
    assert search.finish_trial("t2", "FINISHED", "completed")  # idempotent
    assert not search.finish_trial("never-started", "KILLED", "asha")
    assert search.end_open_trials() == 1  # t1 was still running
    search.finish_parent()

    runs = {r.data.tags[TRIAL_TAG]: r for r in search.trial_runs()}
    assert set(runs) == {"t1", "t2"}
    assert runs["t1"].info.status == "KILLED" and runs["t1"].data.tags[STOP_TAG] == "interrupted"
    assert runs["t2"].info.status == "FINISHED" and runs["t2"].data.tags[STOP_TAG] == "completed"
    assert runs["t1"].data.params == {"model.groups": "2"}
    assert all(r.data.tags[ROLE_TAG] == "trial" for r in runs.values())
    parent_run = search.client.get_run(parent)
    assert parent_run.info.status == "FINISHED" and parent_run.data.tags[ROLE_TAG] == "search"
    assert parent_run.data.params == {"seed": "3", "space.name": "quick"}
    text = search.client.download_artifacts(first.run_id, "run_config.yaml")
    assert open(text).read() == "model: {groups: 2}\n"

    # Resuming the search marks the same parent running again: no second parent run.
    resumed = SearchTracking(uri, "layout")
    assert resumed.experiment_id == search.experiment_id
    assert resumed.start_parent({}, {}, run_id=parent) == parent
    assert resumed.client.get_run(parent).info.status == "RUNNING"
    resumed.finish_parent("KILLED")
    assert resumed.client.get_run(parent).info.status == "KILLED"


def test_layout_on_embedded_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = default_tracking_uri()
    assert uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    _exercise_layout(uri)


@pytest.mark.slow
def test_layout_through_mlflow_server_on_loopback(mlflow_server):
    assert mlflow_server.uri.startswith("http://127.0.0.1:")
    _exercise_layout(mlflow_server.uri)
