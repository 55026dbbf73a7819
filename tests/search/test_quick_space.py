"""The README's main job: `deft-tune search --space search_spaces/quick.yaml` on the embedded
defaults (a local Ray started for the run, MLflow in ./mlflow.db) completes with a best trial."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from tests import REPO, scaled

QUICK = REPO / "search_spaces" / "quick.yaml"


def _command() -> list[str]:
    script = shutil.which("deft-tune")
    return (
        [script]
        if script
        else [sys.executable, "-c", "import sys; from deft_tune.cli import main; sys.exit(main())"]
    )


@pytest.fixture(scope="module")
def quick_search(tmp_path_factory):
    """One run of the shipped quick.yaml, as a user starts it, in a fresh working directory."""
    folder = tmp_path_factory.mktemp("quick")
    done = subprocess.run(
        [*_command(), "search", "--space", str(QUICK)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=scaled(900),
    )
    return SimpleNamespace(folder=folder, done=done)


@pytest.mark.slow
def test_quick_space_completes_with_a_best_trial(quick_search):
    done = quick_search.done
    assert done.returncode == 0, done.stderr[-3000:]
    line = r"^best trial (\S+): metrics/mig = (\d\.\d{4}) \((?:standard|fast) setting\)$"
    best = re.search(line, done.stdout, re.M)
    assert best, done.stdout[-3000:]
    assert 0.0 <= float(best.group(2)) <= 1.0
    assert "deft-tune export quick --out best.yaml" in done.stdout
    assert (quick_search.folder / "runs" / "quick" / "deft_search.json").is_file()


@pytest.mark.slow
def test_quick_space_has_one_terminated_child_run_per_trial(quick_search):
    from mlflow import MlflowClient

    assert quick_search.done.returncode == 0, quick_search.done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{quick_search.folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("quick").experiment_id])
    parents = [r for r in runs if r.data.tags.get("deft.role") == "search"]
    children = [r for r in runs if r.data.tags.get("deft.role") == "trial"]
    trials = yaml.safe_load(QUICK.read_text())["budget"]["num_trials"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len({r.data.tags["deft.trial_id"] for r in children}) == len(children) == trials
    best_id = parents[0].data.tags["deft.best_trial_id"]
    assert f"best trial {best_id}:" in quick_search.done.stdout
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.info.status in ("FINISHED", "KILLED"), run.data.tags
        assert (run.info.status == "FINISHED") == (run.data.tags["deft.stop_reason"] == "completed")
