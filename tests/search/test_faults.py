"""Faults: a trial's worker killed mid-run is retried from its checkpoint in the same MLflow
run (tracked through `--mlflow-server`); interrupting the driver and resuming completes the
search with no duplicate MLflow runs.

The tests wait on events (a checkpoint written, a pid file, the driver's exit), not on a clock:
a wait ends when its file appears or when the driver exits; the limits on a driver's run, guards
against a hang, grow with the machine's load (tests.scaled).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests import scaled
from tests.doubles import tiny_space, trials_checkpointed, write_code_running_pickle
from tests.search import driver


def _resume(command: list[str], folder: Path) -> subprocess.CompletedProcess:
    """The same search command with --resume, run to its end in ``folder``."""
    return subprocess.run(
        [*command, "--resume"],
        cwd=folder,
        env=driver.environment(),
        capture_output=True,
        text=True,
        timeout=scaled(400),
    )


def _wait_for(condition, process: subprocess.Popen):
    """Poll ``condition`` until it holds; fail (with the driver's output) if the driver exits."""
    while not (found := condition()):
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    return found


@pytest.mark.slow
def test_interrupted_search_resumes_without_duplicate_runs(tmp_path):
    space = tiny_space(tmp_path / "tiny.yaml", trials=3, steps=60, ifp=False, asha=False)
    command = driver.command("--space", str(space), "--storage", str(tmp_path / "runs"))
    first = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=driver.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: trials_checkpointed(tmp_path / "runs" / "tiny") >= 1, first)
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=scaled(240))
    assert first.returncode == 130, err[-2000:]
    assert "--resume" in err and "trial" in out

    # A file Ray unpickles, swapped after the search sealed its folder: refused, runs nothing.
    searcher_state = next((tmp_path / "runs" / "tiny").glob("searcher-state-*.pkl"))
    original = searcher_state.read_bytes()
    write_code_running_pickle(searcher_state, tmp_path / "ran")
    refused = _resume(command, tmp_path)
    assert refused.returncode == 2 and "changed since" in refused.stderr, refused.stderr[-2000:]
    assert not (tmp_path / "ran").exists()
    searcher_state.write_bytes(original)

    again = _resume(command, tmp_path)
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


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_after_every_trial_started_is_an_interrupt_with_a_resume_command(tmp_path, signum):
    space = tiny_space(tmp_path / "tiny.yaml", trials=2, steps=400, ifp=False, asha=True)
    command = driver.command("--space", str(space), "--storage", str(tmp_path / "runs"))
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=driver.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:  # the event: both trials (the whole budget) have started and reported
        _wait_for(lambda: trials_checkpointed(tmp_path / "runs" / "tiny") == 2, process)
    finally:
        if process.poll() is None:
            process.send_signal(signum)
    out, err = process.communicate(timeout=scaled(240))
    assert process.returncode == 130, err[-2000:]
    assert "resume with: deft-tune search" in err and "--resume" in err, err[-2000:]
    assert "SIGTERM received" not in err, err[-2000:]

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("deft.role") == "search")
    assert parent.info.status == "KILLED" and parent.data.tags["deft.interrupted"] == "true"
    ends = {
        (r.info.status, r.data.tags.get("deft.stop_reason"))
        for r in runs
        if r.data.tags.get("deft.role") == "trial"
    }
    assert ("KILLED", "interrupted") in ends, ends
    assert ends <= {("KILLED", "interrupted"), ("FINISHED", "completed")}, ends


@pytest.mark.slow
def test_a_second_search_of_the_same_name_is_refused_while_the_first_runs(tmp_path):
    space = tiny_space(tmp_path / "tiny.yaml", trials=1, steps=20, ifp=False, asha=False)
    command = driver.command("--space", str(space), "--storage", str(tmp_path / "runs"))
    run = dict(cwd=tmp_path, env=driver.environment(), capture_output=True, text=True)
    first = subprocess.Popen(
        command, cwd=tmp_path, env=driver.environment(), stdout=subprocess.PIPE, text=True
    )
    try:  # the event: the first search has opened its parent run
        _wait_for(lambda: (tmp_path / "runs" / "tiny" / "deft_search.json").is_file(), first)
        for twin in (command, [*command, "--resume"]):
            second = subprocess.run(twin, timeout=scaled(120), **run)
            assert second.returncode == 2, second.stderr[-2000:]
            assert "is running already" in second.stderr and str(first.pid) in second.stderr
    finally:
        first.communicate(timeout=scaled(300))
    assert first.returncode == 0

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert sum(r.data.tags.get("deft.role") == "search" for r in runs) == 1
    # The lock went with the first search: the same command is now told it already ran.
    again = subprocess.run(command, timeout=scaled(120), **run)
    assert again.returncode == 2 and "already ran to its end" in again.stderr, again.stderr[-2000:]


def test_the_lock_is_released_however_its_holder_exits(tmp_path):
    from deft_tune.errors import ConfigError
    from deft_tune.search.lock import search_lock

    hold = (
        "import sys, time; from deft_tune.search.lock import search_lock\n"
        "with search_lock(sys.argv[1], 'x'):\n    print('held', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(tmp_path)],
        env=driver.environment(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match="running already"):
            with search_lock(str(tmp_path), "x"):
                pass
    finally:
        holder.kill()  # SIGKILL: no cleanup code runs
        holder.wait()
    with search_lock(str(tmp_path), "x"):
        pass


# --- a trial's worker killed mid-run ------------------------------------------------------


@pytest.fixture(scope="module")
def killed_search(tmp_path_factory):
    """2 trials of 60 steps (a report and checkpoint every 10) tracked through
    `--mlflow-server`; the first trial's worker is SIGKILLed after its second checkpoint."""
    folder = tmp_path_factory.mktemp("killed")
    space = tiny_space(
        folder / "killed.yaml", trials=2, steps=60, ifp=False, asha=False, name="killed"
    )
    process = subprocess.Popen(
        driver.command("--space", str(space), "--storage", str(folder / "runs"), "--mlflow-server"),
        cwd=folder,
        env=driver.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = folder / "runs" / "killed"
    try:
        # A second checkpoint or later (Tune keeps the last two, so not checkpoint_000001 alone)
        checkpoint = _wait_for(lambda: _later_checkpoints(runs), process)[0]
        trial_dir = checkpoint.parent
        # The trainable writes its process id into its trial folder when it starts.
        pid_file = trial_dir / "worker.pid"
        pid = int(_wait_for(lambda: pid_file.is_file() and pid_file.read_text(), process))
    except BaseException:
        process.kill()
        raise
    os.kill(pid, signal.SIGKILL)
    out, err = process.communicate(timeout=scaled(300))
    return SimpleNamespace(
        folder=folder,
        trial_dir=trial_dir,
        killed_pid=pid,
        returncode=process.returncode,
        out=out,
        err=err,
    )


def _later_checkpoints(search_folder: Path) -> list[Path]:
    return sorted(c for c in search_folder.glob("*/checkpoint_*") if c.name != "checkpoint_000000")


def _reports(trial_dir: Path) -> list[dict]:
    lines = (trial_dir / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.slow
def test_killed_worker_retries_from_its_checkpoint_in_the_same_run(killed_search):
    assert killed_search.returncode == 0, killed_search.err[-3000:]
    assert "retrying from checkpoint" in killed_search.out
    reports = _reports(killed_search.trial_dir)
    before = [r["step"] for r in reports if r["pid"] == killed_search.killed_pid]
    after = [r["step"] for r in reports if r["pid"] != killed_search.killed_pid]
    assert before and after, "the trial was not retried in a new worker"
    # The retry went on from a checkpoint the killed worker wrote, not from step 0.
    assert after[0] - 10 in before and after[0] > 10, (before, after)
    assert after[-1] == 60

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{killed_search.folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("killed")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get("deft.role") == "trial"]
    trial_ids = sorted(r.data.tags["deft.trial_id"] for r in children)
    assert len(trial_ids) == len(set(trial_ids)) == 2
    assert reports[0]["trial_id"] in trial_ids
    for run in children:
        assert run.info.status == "FINISHED", run.data.tags
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert sorted(steps) == list(range(10, 61, 10))  # no duplicate, no gap


@pytest.mark.slow
def test_mlflow_server_flag_tracks_into_the_working_directory_and_stops(killed_search):
    assert killed_search.returncode == 0, killed_search.err[-3000:]
    found = re.search(r"tracking: http://127\.0\.0\.1:(\d+)", killed_search.out)
    assert found, killed_search.out[-2000:]
    with socket.socket() as sock:  # the server went away with the search
        assert sock.connect_ex(("127.0.0.1", int(found.group(1)))) != 0
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{killed_search.folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("killed")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3  # the parent and one child per trial, in the cwd's store
    for run in runs:
        assert run.info.status == "FINISHED"
        # Artifacts went through the server into ./mlartifacts, not a worker-local folder.
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    children = [r for r in runs if r.data.tags.get("deft.role") == "trial"]
    stored = {
        p.relative_to(killed_search.folder / "mlartifacts").parts[1]
        for p in (killed_search.folder / "mlartifacts").rglob("run_config.yaml")
    }
    assert {r.info.run_id for r in children} <= stored


# --- stop reasons across an interruption --------------------------------------------------


def _no_capture_space(path: Path) -> Path:
    """3 trials, one at a time, that the IFP stopper always stops for no_capture at step 20
    (the first stage ends between the reports at 10 and 20; no gain reaches 1000 nats)."""
    raw = yaml.safe_load(tiny_space(path, trials=3, steps=60, concurrent=1, asha=False).read_text())
    raw["stopping"]["ifp"]["capture_threshold"] = 1000
    raw["params"].update(num_stages=2, stage_frac={"low": 0.2, "high": 0.3})
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_stop_reasons_survive_an_interrupted_and_resumed_search(tmp_path):
    space = _no_capture_space(tmp_path / "tiny.yaml")
    command = driver.command("--space", str(space), "--storage", str(tmp_path / "runs"))
    with open(tmp_path / "first.out", "w") as out:
        first = subprocess.Popen(
            command, cwd=tmp_path, env=driver.environment(), stdout=out, stderr=subprocess.PIPE
        )
        _wait_for(lambda: "stopped (" in (tmp_path / "first.out").read_text(), first)
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=scaled(240))
    assert first.returncode == 130
    again = _resume(command, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    printed = (tmp_path / "first.out").read_text() + again.stdout
    assert "stopped (stopped)" not in printed and "stopped (no_capture)" in again.stdout

    from mlflow import MlflowClient

    from deft_tune.search.tracking.layout import STOP_REASONS

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    children = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("deft.role") == "trial"
    ]
    reasons = {r.data.tags["deft.trial_id"]: r.data.tags["deft.stop_reason"] for r in children}
    assert len(reasons) == 3 and set(reasons.values()) <= set(STOP_REASONS), reasons
    # Stopped before the interruption, and started after it: no_capture. The trial the
    # interruption caught resumes from its checkpoint and is stopped again or runs to its end.
    assert list(reasons.values()).count("no_capture") >= 2, reasons
    assert set(reasons.values()) <= {"no_capture", "completed"}, reasons


@pytest.mark.slow
def test_ray_and_tune_chatter_stays_off_the_live_table(killed_search):
    # The driver prints the live table; Tune's banner and TensorBoard hint, the token notice
    # and the trials' per-report checkpoint lines stay away (deft_tune/search/quiet.py).
    both = killed_search.out + killed_search.err
    for chatter in (
        "TensorBoard",
        "View detailed results",
        "Token authentication is enabled",
        "Checkpoint successfully created",
        "Wrote the latest version",
        "A new study created",
    ):
        assert chatter not in both, chatter
    assert "trial" in killed_search.out and "retrying from checkpoint" in killed_search.out
