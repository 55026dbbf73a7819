"""Interrupting the driver and resuming: the search completes with no duplicate MLflow runs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _search_support import tiny_space

DRIVER = Path(__file__).with_name("_driver.py")


@pytest.mark.slow
def test_interrupted_search_resumes_without_duplicate_runs(tmp_path):
    space = tiny_space(tmp_path / "tiny.yaml", trials=3, steps=60, ifp=False, asha=False)
    command = [sys.executable, str(DRIVER), "--space", str(space), "--storage",
               str(tmp_path / "runs")]
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "runs").glob("tiny/*/checkpoint_000000")):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=240)
    assert first.returncode == 130, err[-2000:]
    assert "--resume" in err and "trial" in out

    again = subprocess.run([*command, "--resume"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "best trial" in again.stdout

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("deft.role") == "search"]
    children = [r for r in runs if r.data.tags.get("deft.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    trial_ids = [r.data.tags["deft.trial_id"] for r in children]
    assert len(trial_ids) == len(set(trial_ids)) == 3
    for run in children:
        assert run.info.status == "FINISHED", run.data.tags
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert sorted(steps) == list(range(10, 61, 10))  # continued, nothing logged twice
