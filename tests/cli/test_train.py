import json

import pytest
import torch
import yaml

from deft_tune import data as data_registry
from deft_tune.cli import main

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
    assert err.count("\n") == 1 and "training.steps == 0, must be >= 1" in err
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
    assert "--threads == 0, must be >= 1" in capsys.readouterr().err


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
