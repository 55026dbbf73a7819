import json

import pytest
import torch
import yaml

from deft_tune import data as data_registry
from deft_tune.cli import main
from tests.doubles import write_code_running_checkpoint

CONFIG = {
    "data": {"name": "squares"},
    "model": {"groups": 2, "latents_per_group": 2, "encoder_width": 4, "decoder_width": 4},
    "schedule": {"stages": [{"beta": 4, "steps": 4}, {"beta": 1, "lr_scale": 0.1}]},
    "training": {"steps": 8, "batch_size": 8, "checkpoint_interval": 4},
    "evaluation": {"interval": 4, "probe_size": 48, "metrics": ["mig"]},
}


@pytest.fixture(autouse=True)
def squares_registered(monkeypatch):
    # The CLI resolves data sets by name: register the small test double (tests/doubles.py).
    monkeypatch.setitem(data_registry._REGISTRY, "squares", "tests.doubles:Squares")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_config(tmp_path, config=CONFIG, name="run.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_writes_every_artifact(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["train", "--config", str(write_config(tmp_path)), "--out", str(out), "--no-progress"]
    )
    assert code == 0
    names = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    assert {
        "config.yaml",
        "model.pt",
        "metrics.json",
        "history.jsonl",
        "traversals.png",
        "kl_per_group.png",
        "checkpoints/last.pt",
    } <= names
    assert not [n for n in names if n.endswith(".tmp") or "/." in n or n.startswith(".")]
    results = json.loads((out / "metrics.json").read_text())
    assert results["final"]["step"] == 8
    assert 0 <= results["metrics"]["mig"] <= 1
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [row["step"] for row in history] == [4, 8]
    assert "metrics/mig" in capsys.readouterr().out


def test_existing_run_needs_resume_and_the_same_config(tmp_path, capsys):
    config = write_config(tmp_path)
    out = str(tmp_path / "out")
    assert main(["train", "--config", str(config), "--out", out, "--no-progress"]) == 0
    assert main(["train", "--config", str(config), "--out", out, "--no-progress"]) == 2
    assert "already holds a run: pass --resume" in capsys.readouterr().err
    changed = write_config(
        tmp_path, {**CONFIG, "training": {**CONFIG["training"], "lr": 0.01}}, "changed.yaml"
    )
    assert main(["train", "--config", str(changed), "--out", out, "--resume", "--no-progress"]) == 2
    assert "the config differs" in capsys.readouterr().err
    assert main(["train", "--config", str(config), "--out", out, "--resume", "--no-progress"]) == 0


def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    bad = write_config(tmp_path, {**CONFIG, "training": {"steps": 0}})
    out = tmp_path / "out"
    assert main(["train", "--config", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training.steps == 0, must lie in [1, 1e+09]" in err
    assert not out.exists()


def test_resume_without_checkpoint_is_refused(tmp_path, capsys):
    code = main(
        [
            "train",
            "--config",
            str(write_config(tmp_path)),
            "--out",
            str(tmp_path / "none"),
            "--resume",
        ]
    )
    assert code == 2
    assert "does not exist: drop --resume" in capsys.readouterr().err


# --- resume reads checkpoints as data, and refuses what is not one ------------------------


def _trained_run(tmp_path):
    config = write_config(tmp_path)
    out = tmp_path / "out"
    assert main(["train", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    return config, out


def _resume(config, out):
    return main(["train", "--config", str(config), "--out", str(out), "--resume", "--no-progress"])


def test_resume_from_a_crafted_checkpoint_runs_no_code(tmp_path, capsys):
    config, out = _trained_run(tmp_path)
    checkpoint = out / "checkpoints" / "last.pt"
    state = torch.load(checkpoint, weights_only=True)
    marker = tmp_path / "marker"
    write_code_running_checkpoint(checkpoint, marker, state)
    capsys.readouterr()
    assert _resume(config, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(checkpoint) in err, err
    assert not marker.exists(), "resuming ran the checkpoint's code"


@pytest.mark.parametrize("content", ["random", "zeros", "list", "model"])
def test_resume_refuses_what_is_not_a_checkpoint_in_one_line(tmp_path, capsys, content):
    config, out = _trained_run(tmp_path)
    checkpoint = out / "checkpoints" / "last.pt"
    if content == "random":
        checkpoint.write_bytes(bytes(range(256)) * 8)
    elif content == "zeros":
        checkpoint.write_bytes(bytes(2048))
    elif content == "list":
        torch.save([1, 2, 3], checkpoint)
    else:
        checkpoint.write_bytes((out / "model.pt").read_bytes())
    capsys.readouterr()
    assert _resume(config, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(checkpoint) in err and "checkpoint" in err, err


def test_resume_refuses_a_damaged_history_naming_the_line(tmp_path, capsys):
    config, out = _trained_run(tmp_path)
    history = out / "history.jsonl"
    lines = history.read_text().splitlines()
    history.write_text(lines[0] + "\n{not json\n")
    capsys.readouterr()
    assert _resume(config, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{history} line 2 is not a report" in err, err


# --- everything the run will need is checked before it trains ------------------------------


def _blocked_outputs(tmp_path):
    (tmp_path / "a_file").write_text("x")
    taken = tmp_path / "taken"
    (taken / "model.pt").mkdir(parents=True)
    return {
        "a file as --out": (tmp_path / "a_file", "is a file: give a folder"),
        "--out under a file": (tmp_path / "a_file" / "out", "is a file, not a folder"),
        "a folder where model.pt goes": (taken, "model.pt is a folder: remove it"),
    }


def test_output_paths_in_the_way_are_refused_before_training(tmp_path, capsys):
    config = write_config(tmp_path)
    for what, (out, message) in _blocked_outputs(tmp_path).items():
        assert main(["train", "--config", str(config), "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (what, err)
    assert not (tmp_path / "taken" / "checkpoints").exists()  # nothing trained


def test_unknown_metric_names_are_refused_before_training(tmp_path, capsys):
    config = write_config(
        tmp_path, {**CONFIG, "evaluation": {**CONFIG["evaluation"], "metrics": ["migg"]}}
    )
    out = tmp_path / "out"
    assert main(["train", "--config", str(config), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "evaluation.metrics[0] == 'migg'" in err and "did you mean 'mig'" in err
    assert not out.exists()


def test_a_run_too_large_for_the_machine_is_one_line_naming_the_estimate(tmp_path, capsys):
    huge = {**CONFIG, "training": {**CONFIG["training"], "batch_size": 10**9}}
    out = tmp_path / "out"
    assert main(["train", "--config", str(write_config(tmp_path, huge)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this run needs about" in err
    assert "lower training.batch_size" in err and not out.exists()


def test_the_config_threads_apply_and_threads_overrides_them_on_record(tmp_path, capsys):
    # The thread count is part of the run: the config's applies, --threads replaces it, and
    # the run's config.yaml says which one ran (so that it trains to the same numbers again).
    two = write_config(tmp_path, {**CONFIG, "training": {**CONFIG["training"], "threads": 2}})
    out = tmp_path / "out"
    assert main(["train", "--config", str(two), "--out", str(out), "--no-progress"]) == 0
    assert torch.get_num_threads() == 2
    assert yaml.safe_load((out / "config.yaml").read_text())["training"]["threads"] == 2
    other = tmp_path / "other"
    argv = ["train", "--config", str(two), "--out", str(other), "--no-progress"]
    assert main([*argv, "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1
    assert yaml.safe_load((other / "config.yaml").read_text())["training"]["threads"] == 1
    # Resuming takes the count the run trained with, and says so when it is not given.
    assert main([*argv, "--resume"]) == 2
    assert "trained with training.threads 1, not 2; resume with --threads 1" in (
        capsys.readouterr().err
    )
    assert main([*argv, "--resume", "--threads", "1"]) == 0
    assert main([*argv, "--threads", "0"]) == 2
    assert "--threads == 0, must lie in [1, 1024]" in capsys.readouterr().err


def test_the_progress_bar_moves_every_step_not_only_at_reports(tmp_path, monkeypatch):
    import tqdm

    moves: list[int] = []
    real = tqdm.tqdm.update

    def update(self, n=1):
        moves.append(n)
        return real(self, n)

    monkeypatch.setattr(tqdm.tqdm, "update", update)
    config = write_config(tmp_path)  # 8 steps, a report every 4
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    assert moves == [1] * 8


def _pages(path) -> int:
    return -(-path.stat().st_size // 4096)


def test_a_full_disk_is_one_line_naming_the_file_and_the_last_checkpoint_stays(
    tmp_path, capsys, small_disk
):
    from deft_tune.training import read_checkpoint

    config = write_config(tmp_path)
    measured = tmp_path / "measured"  # the same run on a roomy disk: what each file takes
    assert main(["train", "--config", str(config), "--out", str(measured), "--no-progress"]) == 0
    checkpoint = _pages(measured / "checkpoints" / "last.pt")
    small = _pages(measured / "config.yaml") + 2 * _pages(measured / "history.jsonl")
    # Room for the step-4 checkpoint and half another: the one at step 8 cannot be written.
    out = small_disk(4096 * (small + checkpoint + checkpoint // 2))
    capsys.readouterr()
    assert main(["train", "--config", str(config), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"cannot write last.pt in {out / 'checkpoints'}: no space left on its device" in err
    assert "the previous last.pt is intact" in err
    assert read_checkpoint(out / "checkpoints" / "last.pt")["step"] == 4
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_the_progress_bar_keeps_log_lines_whole_and_shows_the_stage_of_every_step(tmp_path):
    import os
    import subprocess
    import sys

    from tests import REPO, scaled

    argv = ["train", "--config", str(write_config(tmp_path)), "--out", str(tmp_path / "o")]
    script = (
        "import sys\n"
        "from deft_tune import data\n"
        "data._REGISTRY['squares'] = 'tests.doubles:Squares'\n"
        "from deft_tune.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    at = done.stderr.index("INFO deft_tune.training.replica: step 4: stage 1, parameter groups")
    assert done.stderr[at - 1] in "\r\n", repr(done.stderr[at - 80 : at + 20])  # not after a bar
    assert "stage=1" in done.stderr.rsplit("\r", 1)[-1]  # the bar's last drawing


def test_the_bar_shows_the_stage_of_the_step_not_of_the_last_report(tmp_path):
    from deft_tune.cli.train import _Reporter
    from deft_tune.config import load_config
    from deft_tune.training import Trainer

    trainer = Trainer(load_config(write_config(tmp_path)))  # stage 1 begins at step 4
    reporter = _Reporter(trainer, tmp_path, [], progress=True)
    try:
        reporter.step(3)
        assert "stage=0" in reporter.bar.postfix
        reporter.step(5)  # no report since step 0: the schedule says stage 1
        assert "stage=1" in reporter.bar.postfix
    finally:
        reporter.close()


def test_a_replicated_runs_kl_figure_draws_each_replica_beside_the_mean(tmp_path, monkeypatch):
    from deft_tune import plots

    figures = {}
    save = plots.save_figure

    def keep(figure, path):
        figures[path.name] = figure
        return save(figure, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    config = {**CONFIG, "training": {**CONFIG["training"], "replicas": 2}}
    out = tmp_path / "out"
    assert main(["train", "--config", str(write_config(tmp_path, config)), "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    ax = figures["kl_per_group.png"].axes[0]
    assert "mean over 2 replicas" in ax.get_title()
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    curves = [line for line in ax.get_lines() if line.get_linestyle() == "-"]  # no stage lines
    thin = [line for line in curves if line.get_linewidth() < 1 and len(line.get_xdata())]
    groups = CONFIG["model"]["groups"]
    assert len(thin) == 2 * groups
    expected = {tuple(row[f"replica{r}/kl/group{g}"] for row in history)
                for r in range(2) for g in range(groups)}  # fmt: skip
    assert {tuple(line.get_ydata()) for line in thin} == expected
    assert (out / "kl_per_group.png").read_bytes()[:4] == b"\x89PNG"
