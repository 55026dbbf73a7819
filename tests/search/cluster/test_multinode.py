"""The search as a Ray job on a two-node cluster on 127.0.0.1, and a node lost while it runs.

Real parts throughout: `ray start` processes, an `mlflow server` on loopback, trial storage in a
temporary folder (every node of this machine sees it: shared storage), and `deft-tune launch
--address` submitting through Ray's job server. Trials can only run on the worker nodes (the head
has no CPUs); the test kills the worker node's whole process group while trials run on it and
starts a replacement node, as an autoscaler would.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests import REPO, scaled
from tests.doubles import trials_checkpointed
from tests.search.cluster.local_cluster import wait_for

ROOT = REPO
QUICK = ROOT / "search_spaces" / "quick.yaml"
STEPS, INTERVAL = 100, 50


def small_quick(folder: Path, name: str) -> Path:
    """quick.yaml with 2 trials of 100 steps, a report and a checkpoint every 50 steps."""
    space = yaml.safe_load(QUICK.read_text())
    space["name"] = name
    space["budget"].update(
        steps_per_trial=STEPS, eval_interval=INTERVAL, num_trials=2, max_concurrent=2
    )
    space["base"]["training"]["checkpoint_interval"] = INTERVAL
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def rendered_data():
    """Render dsprites_full once (a no-op when cached), as a user does before a search."""
    from deft_tune.data import get_dataset

    get_dataset("dsprites_full").build_cache()


def launch(cluster, project: Path, space: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "deft_tune",
        "launch",
        "--address",
        cluster.cluster.job_server,
        "--working-dir",
        str(project),
        "--space",
        str(space),
        *extra,
    ]


@pytest.mark.slow
def test_a_local_tracking_store_is_refused_on_two_nodes(two_nodes, tmp_path):
    project = tmp_path / "project"
    space = small_quick(project, "refused")
    done = two_nodes.run(
        launch(
            two_nodes,
            project,
            space,
            "--storage",
            str(tmp_path / "runs"),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        ),
        timeout=scaled(240),
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "job raysubmit_" in done.stdout and ": FAILED" in done.stdout
    refusal = [line for line in done.stdout.splitlines() if "deft-tune: error:" in line]
    assert len(refusal) == 1 and "is a file on one node" in refusal[0]
    assert "--tracking-uri http://HOST:5000" in refusal[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()

    # The job afterwards: --status, --logs, --stop (one process: Ray's import costs seconds).
    job_id = re.search(r"submitted job (raysubmit_\w+)", done.stdout).group(1)
    calls = "; ".join(
        f"print('=>', main(['launch', '--address', {two_nodes.cluster.job_server!r}, "
        f"'{flag}', {job_id!r}]))"
        for flag in ("--status", "--logs", "--stop")
    )
    asked = two_nodes.run(
        [sys.executable, "-c", f"from deft_tune.cli import main; {calls}"], timeout=scaled(120)
    )
    status, logs, stop = asked.stdout.split("=> 0\n")[:3]
    assert f"job {job_id}: FAILED" in status, asked.stdout + asked.stderr
    assert refusal[0] in logs and f"job {job_id}: FAILED" in logs
    assert f"job {job_id}: was not running" in stop


@pytest.mark.slow
def test_search_job_survives_a_lost_node(two_nodes, rendered_data, tmp_path):
    project, storage = tmp_path / "project", tmp_path / "shared-storage"
    space = small_quick(project, "lostnode")
    log = tmp_path / "launch.log"
    with log.open("w") as sink:
        job = subprocess.Popen(
            launch(
                two_nodes,
                project,
                space,
                "--storage",
                str(storage),
                "--tracking-uri",
                two_nodes.mlflow.uri,
                "--no-asha",
                "--no-ifp-stopper",
            ),
            env=two_nodes.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        started = time.monotonic()
        # Both trials run on w1 (the only node with CPUs); lose it once both have checkpointed.
        wait_for(
            lambda: job.poll() is not None or trials_checkpointed(storage / "lostnode") == 2,
            300,
            "a first checkpoint of both trials",
        )
        assert job.poll() is None, log.read_text()[-3000:]
        two_nodes.cluster.nodes[1].kill()
        killed_at = time.monotonic() - started
        two_nodes.cluster.add_node("w2", num_cpus=2)
        returncode = job.wait(timeout=scaled(480))
    finally:
        if job.poll() is None:
            job.kill()
    output = log.read_text()
    assert returncode == 0, output[-4000:]
    assert "submitted job raysubmit_" in output and ": SUCCEEDED" in output
    print(
        f"node lost {killed_at:.0f} s after submission; job done after "
        f"{time.monotonic() - started:.0f} s"
    )

    trial_dirs = [p for p in (storage / "lostnode").glob("train_trial_*") if p.is_dir()]
    assert len(trial_dirs) == 2
    # Tune leaves error.txt in a trial folder whose worker died, and restores the trial from
    # its last checkpoint on the node that is left.
    assert any((p / "error.txt").exists() for p in trial_dirs), output[-4000:]
    assert "retrying from checkpoint" in output and "from checkpoint: Checkpoint(" in output
    check_one_finished_run_per_trial(two_nodes.mlflow.uri, "lostnode", trials=2)


def check_one_finished_run_per_trial(uri: str, experiment: str, trials: int) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if r.data.tags.get("deft.role") == "search"]
    children = [r for r in runs if r.data.tags.get("deft.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    trial_ids = [r.data.tags["deft.trial_id"] for r in children]
    assert len(trial_ids) == len(set(trial_ids)) == trials
    for run in children:
        assert run.info.status == "FINISHED", run.data.tags
        assert "final/mig" in run.data.metrics  # ran to the end: the standard-setting score
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        # Continued from the checkpoint: every report once, none missing, none repeated.
        assert sorted(steps) == list(range(INTERVAL, STEPS + 1, INTERVAL)), steps
