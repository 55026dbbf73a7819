"""The runner end to end (real local Ray, real `mlflow server`), its CLI and its pure parts."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from deft_tune.config import RunConfig
from deft_tune.errors import ConfigError
from deft_tune.search.options import (
    SearchOptions,
    SearchOutcome,
    check_local_device,
    prepare_space,
    resume_command,
    smoke_budget,
    space_as_run,
)
from deft_tune.search.runner import main_search, run_search, summary_lines
from deft_tune.search.space import space_from_dict
from tests import scaled
from tests.doubles import UnreadableData, tiny_space

# --- refused before Ray starts -----------------------------------------------------------

_BAD_SPACES = {
    "unknown_key": "name: bad\ndata: {name: dsprites_full}\nbudgte: {num_trials: 2}\n",
    "betas_up": "name: bad\ndata: {name: dsprites_full}\nparams: {betas: [1, 4, 20]}\n",
    "zero_stages": "name: bad\ndata: {name: dsprites_full}\nparams: {num_stages: 0}\n",
    "not_yaml": "name: [unclosed\n  data: {\n",
    "cuda_no_gpu": "name: bad\ndata: {name: dsprites_full}\nbase: {training: {device: cuda}}\n",
    "too_big": "name: bad\ndata: {name: dsprites_full}\nbase: {training: {batch_size: 1.0e+9}}\n",
}


_BAD_FLAGS = {"storage_file": ["--storage", "a_file"]}  # with a valid space


def test_malformed_spaces_exit_2_with_one_line_before_ray_is_imported(tmp_path):
    for key, text in _BAD_SPACES.items():
        (tmp_path / f"{key}.yaml").write_text(text)
    for key in _BAD_FLAGS:
        tiny_space(tmp_path / f"{key}.yaml")
    (tmp_path / "a_file").write_text("x")
    runs = {key: ["search", "--space", f"{key}.yaml"] for key in _BAD_SPACES}
    runs.update({key: ["search", "--space", f"{key}.yaml", *f] for key, f in _BAD_FLAGS.items()})
    script = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from deft_tune.cli import main
        out = {{}}
        for key, argv in {runs!r}.items():
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc = main(argv)
            out[key] = [rc, err.getvalue()]
        out["ray_imported"] = "ray" in sys.modules
        print(json.dumps(out))
    """)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    elapsed = time.monotonic() - start
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result.pop("ray_imported") is False
    for key, (rc, err) in result.items():
        assert rc == 2, (key, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("deft-tune: error: "), (key, err)
    assert "budgte" in result["unknown_key"][1]
    assert "decrease" in result["betas_up"][1]
    assert "num_stages" in result["zero_stages"][1]
    assert "YAML" in result["not_yaml"][1]
    assert "gpus_per_trial == 0" in result["cuda_no_gpu"][1]
    assert "a_file is a file, not a folder" in result["storage_file"][1]
    assert "largest trial" in result["too_big"][1] and "batch_size" in result["too_big"][1]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()
    assert elapsed < scaled(60)  # imports only; no Ray, no tracking store


def test_cli_flags_refused_with_one_line(tmp_path, capsys):
    from deft_tune.cli import main

    space = tiny_space(tmp_path / "tiny.yaml")
    assert main(["search", "--space", str(space), "--cpus-per-trial", "0"]) == 2
    assert "--cpus-per-trial == 0" in capsys.readouterr().err
    for flag, value in (("--cpus-per-trial", "nan"), ("--gpus-per-trial", "inf")):
        assert main(["search", "--space", str(space), flag, value]) == 2
        assert f"{flag} == {value}, must be a finite number" in capsys.readouterr().err
    assert (
        main(["search", "--space", str(space), "--resume", "--storage", str(tmp_path / "none")])
        == 2
    )
    assert "nothing to resume" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["search", "--space", str(space), "--mlflow-server", "--tracking-uri", "x"])
    assert stop.value.code == 2


def test_prepare_space_overrides_and_smoke_budget(tmp_path):
    space = tiny_space(tmp_path / "tiny.yaml", trials=5, steps=400, interval=100)
    options = SearchOptions(
        space=str(space),
        name="other",
        cpus_per_trial=2,
        gpus_per_trial=0.25,
        ifp_stopper=False,
        asha=False,
        smoke_test=True,
    )
    got = prepare_space(options)
    assert got.name == "other"
    assert (got.budget.cpus_per_trial, got.budget.gpus_per_trial) == (2.0, 0.25)
    assert not got.stopping.ifp.enabled and not got.stopping.asha.enabled
    assert (got.budget.steps_per_trial, got.budget.eval_interval, got.budget.num_trials) == (
        40,
        20,
        2,
    )
    assert got.params["anneal_steps"].value == 40  # derived from the smoke budget, not 400
    assert smoke_budget(got.budget) == {
        "steps_per_trial": 40,
        "eval_interval": 20,
        "num_trials": 2,
    }  # already small: the same values
    with pytest.raises(ConfigError, match="--name"):
        prepare_space(SearchOptions(space=str(space), name="a b"))


def test_seed_and_trial_count_come_from_the_command_line_into_the_space_as_run(tmp_path):
    path = tiny_space(tmp_path / "tiny.yaml", trials=5, steps=400, interval=100)
    options = SearchOptions(space=str(path), name="part3", seed=3, num_trials=2)
    space = prepare_space(options)
    assert (space.budget.seed, space.budget.num_trials) == (3, 2)
    recorded = yaml.safe_load(space_as_run(options, space))
    assert (recorded["budget"]["seed"], recorded["budget"]["num_trials"]) == (3, 2)
    assert resume_command(options, "part3").endswith("--seed 3 --num-trials 2 --resume")
    for bad in ({"seed": -1}, {"seed": 1.5}, {"num_trials": 0}):
        with pytest.raises(ConfigError, match="--seed|--num-trials"):
            prepare_space(SearchOptions(space=str(path), **bad))


def test_the_space_is_recorded_as_run_with_its_overrides(tmp_path):
    path = tiny_space(tmp_path / "tiny.yaml", trials=5, steps=400, interval=100)
    options = SearchOptions(space=str(path), name="other", smoke_test=True, asha=False)
    space = prepare_space(options)
    recorded = yaml.safe_load(space_as_run(options, space))
    assert recorded["name"] == "other" and recorded["budget"]["steps_per_trial"] == 40
    assert recorded["stopping"]["asha"]["enabled"] is False
    assert recorded["params"] == yaml.safe_load(path.read_text())["params"]
    again = space_from_dict(recorded)
    assert again.budget == space.budget and again.params == space.params


def test_overrides_keep_what_the_file_sets(tmp_path):
    path = tmp_path / "annealed.yaml"
    path.write_text(
        "name: a\nmethod: annealed_vae\ndata: {name: dsprites_full}\n"
        "budget: {steps_per_trial: 400, eval_interval: 100}\n"
        "params: {capacity_max: {low: 5, high: 20}}\n"
    )
    plain = prepare_space(SearchOptions(space=str(path)))
    smoke = prepare_space(SearchOptions(space=str(path), smoke_test=True, cpus_per_trial=3))
    assert plain.params["capacity_steps"].value == 200
    assert smoke.params["capacity_steps"].value == 20
    assert smoke.budget.cpus_per_trial == 3.0 and smoke.budget.eval_interval == 20
    assert smoke.params["capacity_max"] == plain.params["capacity_max"]


def test_resume_command_repeats_the_flags_that_locate_the_search():
    options = SearchOptions(space="s.yaml", storage="s3://b/runs", tracking_uri="http://h:5000")
    assert resume_command(options, "n") == (
        "deft-tune search --space s.yaml --name n --storage s3://b/runs "
        "--tracking-uri http://h:5000 --resume"
    )


def _outcome(**fields):
    base = {
        "name": "q",
        "experiment_path": "/r/q",
        "tracking_uri": "sqlite:///m.db",
        "parent_run_id": "p",
        "interrupted": False,
        "trials": 4,
        "completed": 0,
        "best_trial_id": None,
        "best_value": None,
        "resume_command": "x",
    }
    return SearchOutcome(**{**base, **fields})


def test_summary_names_best_trial_and_next_commands():
    outcome = _outcome(completed=2, best_trial_id="abc", best_value=0.25, best_setting="standard")
    lines = summary_lines(outcome, "metrics/mig")
    assert "best trial abc: metrics/mig = 0.2500 (standard setting)" in lines
    assert "inspect it:  deft-tune inspect q --tracking-uri sqlite:///m.db" in lines
    assert "export it:   deft-tune export q --tracking-uri sqlite:///m.db --out best.yaml" in lines
    assert not any("no trial ran to the end" in line for line in lines)
    assert not any("trials ran at a time" in line for line in lines)  # one at a time
    lines = summary_lines(
        _outcome(completed=2, best_trial_id="a", best_value=0.2, concurrent=2), "m"
    )
    assert "the same seed may give another search" in " ".join(lines)


def test_printed_commands_name_the_store_only_when_it_is_not_the_default_here(
    tmp_path, monkeypatch
):
    from deft_tune.search.tracking.layout import default_tracking_uri

    monkeypatch.chdir(tmp_path)
    here = default_tracking_uri()
    lines = summary_lines(_outcome(tracking_uri=here, best_trial_id="a", best_value=0.1), "m")
    assert "inspect it:  deft-tune inspect q" in lines


def test_a_name_that_reads_as_a_flag_is_refused(tmp_path):
    space = tiny_space(tmp_path / "s.yaml")
    for name in ("--resume", "-x", ".hidden"):
        with pytest.raises(ConfigError, match="starting with a letter or digit"):
            prepare_space(SearchOptions(space=str(space), name=name))


def test_summary_says_when_the_best_trial_was_stopped_early():
    outcome = _outcome(completed=0, best_trial_id="abc", best_value=0.05)
    stopped = [
        line
        for line in summary_lines(outcome, "metrics/mig")
        if line.startswith("no trial ran to the end")
    ]
    assert len(stopped) == 1 and "deft-tune inspect q" in stopped[0]


def test_summary_of_a_search_whose_trials_all_failed_names_the_error():
    error = "deft_tune.errors.DataError: the data set is unreadable"
    failed = _outcome(errors=4, first_error=error, best_trial_id="abc", best_value=0.1)
    assert failed.failed
    lines = summary_lines(failed, "metrics/mig")
    assert any("4 of 4 trials failed" in line and error in line for line in lines)
    assert any("search 'q' failed" in line for line in lines)
    assert not any("export" in line or "best trial" in line for line in lines)
    some = _outcome(errors=1, first_error=error, completed=3, best_trial_id="abc", best_value=1)
    assert not some.failed
    assert any("1 of 4 trials failed" in line for line in summary_lines(some, "metrics/mig"))
    assert not _outcome(errors=4, interrupted=True).failed


def test_a_cuda_device_without_a_gpu_is_refused_before_ray(tmp_path, monkeypatch):
    import torch

    path = tiny_space(tmp_path / "tiny.yaml")
    raw = yaml.safe_load(path.read_text())
    raw["base"]["training"]["device"] = "cuda"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="budget.gpus_per_trial == 0: a trial would get no GPU"):
        prepare_space(SearchOptions(space=str(path)))
    space = prepare_space(SearchOptions(space=str(path), gpus_per_trial=1))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="this machine has no CUDA"):
        check_local_device(space)


@pytest.mark.slow
def test_a_search_whose_trials_all_fail_exits_1_naming_the_error(
    ray_session, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    space = tiny_space(tmp_path / "failing.yaml", trials=1, steps=20, name="failing")
    options = SearchOptions(space=str(space), storage=str(tmp_path / "runs"))
    assert main_search(options, data_factory=UnreadableData()) == 1
    captured = capsys.readouterr()
    assert "the first error: " in captured.err and UnreadableData.MESSAGE in captured.err
    assert "search 'failing' failed" in captured.err
    assert "export" not in captured.out + captured.err


@pytest.mark.slow
def test_a_trial_larger_than_the_local_ray_is_refused_before_anything_is_written(
    ray_session, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    space = tiny_space(tmp_path / "big.yaml", name="big")
    options = SearchOptions(space=str(space), storage=str(tmp_path / "runs"), cpus_per_trial=64)
    # This machine is asked first (options.check_local_resources), then the local Ray.
    with pytest.raises(ConfigError, match=r"--cpus-per-trial == 64 .* has \d+ CPUs"):
        run_search(options)
    assert not (tmp_path / "runs" / "big").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_a_search_that_fails_before_its_first_trial_leaves_nothing_that_blocks_a_rerun(
    ray_session, tmp_path, monkeypatch
):
    from mlflow import MlflowClient

    from deft_tune.search import tuner

    def no_tuner(*args, **kwargs):
        raise RuntimeError("the tuner could not be built")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tuner, "_tuner", no_tuner)
    space = tiny_space(tmp_path / "early.yaml", name="early")
    options = SearchOptions(space=str(space), storage=str(tmp_path / "runs"))
    for _ in range(2):  # the same command fails the same way, not with "already exists"
        with pytest.raises(RuntimeError, match="could not be built"):
            run_search(options)
        assert not (tmp_path / "runs" / "early").exists()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("early")
    assert client.search_runs([experiment.experiment_id]) == []  # no parent, RUNNING or not


# --- the session's recorded search (tests/conftest.py), read by the assertions below --------


@pytest.fixture
def finished_search(recorded_search):
    """4 tiny trials, 2 at a time, IFP stopper off (so trials run to the end unless ASHA cuts
    them), tracked in an embedded sqlite store."""
    return recorded_search


def _runs(uri: str, name: str):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    return client, client.search_runs([experiment.experiment_id], max_results=1000)


@pytest.mark.slow
def test_search_completes_with_a_best_trial(finished_search):
    outcome = finished_search.outcome
    assert not outcome.interrupted
    assert outcome.trials == 4 and outcome.completed >= 1
    assert outcome.best_trial_id is not None and 0.0 <= outcome.best_value <= 1.0


@pytest.mark.slow
def test_mlflow_has_one_terminated_child_run_per_trial_under_one_parent(finished_search):
    client, runs = _runs(finished_search.uri, "tinyx")
    parents = [r for r in runs if r.data.tags.get("deft.role") == "search"]
    children = [r for r in runs if r.data.tags.get("deft.role") == "trial"]
    assert len(parents) == 1 and len(runs) == 1 + finished_search.outcome.trials
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["search_seed"] == "0"
    assert parent.data.tags["deft.best_trial_id"] == finished_search.outcome.best_trial_id
    assert len({r.data.tags["deft.trial_id"] for r in children}) == len(children)
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status in ("FINISHED", "KILLED")
        reason = run.data.tags["deft.stop_reason"]
        assert reason == ("completed" if run.info.status == "FINISHED" else "asha")
        assert run.data.params["data.name"] == "dsprites_full"


@pytest.mark.slow
def test_completed_trial_logs_config_final_scores_and_plots(finished_search):
    client, runs = _runs(finished_search.uri, "tinyx")
    best_id = finished_search.outcome.best_trial_id
    best = next(r for r in runs if r.data.tags.get("deft.trial_id") == best_id)
    assert best.data.tags["deft.stop_reason"] == "completed"
    # Optuna and the summary saw the standard-setting score; it is also kept as final/mig.
    assert best.data.metrics["final/mig"] == pytest.approx(finished_search.outcome.best_value)
    steps = [m.step for m in client.get_metric_history(best.info.run_id, "train/loss")]
    assert steps == [10, 20, 30, 40]
    names = {a.path for a in client.list_artifacts(best.info.run_id)}
    assert {"run_config.yaml", "traversals.png", "information.png"} <= names
    config = yaml.safe_load(open(client.download_artifacts(best.info.run_id, "run_config.yaml")))
    run_config = RunConfig.from_dict(config)
    assert run_config.training.steps == 40 and run_config.objective.kind == "deft"
    assert str(run_config.training.seed) == best.data.params["training.seed"]


@pytest.mark.slow
def test_live_table_and_resume_state(finished_search):
    state = json.loads((finished_search.folder / "runs" / "tinyx" / "deft_search.json").read_text())
    assert state["tracking_uri"] == finished_search.uri
    assert state["parent_run_id"] == finished_search.outcome.parent_run_id
    assert any("4 trials, 2 at a time" in line for line in finished_search.lines)


@pytest.mark.slow
def test_the_commands_a_finished_search_prints_run_as_printed(
    finished_search, capsys, tmp_path, monkeypatch
):
    from deft_tune.cli import main

    monkeypatch.chdir(tmp_path)  # another folder than the search's: the store must be named
    options = SearchOptions(
        space=str(finished_search.space),
        storage=str(finished_search.folder / "runs"),
        tracking_uri=finished_search.uri,
    )
    with pytest.raises(ConfigError, match="already ran to its end") as caught:
        run_search(options)  # rerunning the same command: refused before anything starts
    commands = re.findall(r"`(deft-tune [^`]*)`", str(caught.value))
    summary = summary_lines(finished_search.outcome, "metrics/mig")
    commands += [line.split(":", 1)[1].strip() for line in summary if line.endswith("best.yaml")]
    commands += [line.split(":", 1)[1].strip() for line in summary if "inspect it" in line]
    assert len(commands) == 3, (caught.value, summary)
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
    assert "tinyx" in capsys.readouterr().out and (tmp_path / "best.yaml").is_file()


@pytest.mark.slow
def test_replicated_trials_log_every_replica_and_the_aggregates(finished_search):
    client, runs = _runs(finished_search.uri, "tinyx")
    best_id = finished_search.outcome.best_trial_id
    best = next(r for r in runs if r.data.tags.get("deft.trial_id") == best_id)
    metrics = best.data.metrics
    assert best.data.params["training.replicas"] == "2"
    for key in ("train/loss", "kl/total", "metrics/mig", "final/mig"):
        assert f"replica0/{key}" in metrics and f"replica1/{key}" in metrics, key
    # the plain key is the mean over the two seeds, with its spread beside it
    pair = (metrics["replica0/final/mig"], metrics["replica1/final/mig"])
    assert metrics["final/mig"] == pytest.approx(sum(pair) / 2)
    assert metrics["final/mig_min"] == min(pair) and "final/mig_std" in metrics
    assert metrics["train/replicas"] == 2
