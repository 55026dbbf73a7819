"""One trial's restore: a trial checkpoint is read as data (weights_only), never run as code."""

from __future__ import annotations

import json

import pytest
import torch

from deft_tune.config import RunConfig
from deft_tune.errors import DataError
from deft_tune.search import trainable
from deft_tune.training import Trainer
from tests.doubles import Squares, write_code_running_checkpoint

CONFIG = {
    "model": {"groups": 2, "latents_per_group": 1, "encoder_width": 4, "decoder_width": 4},
    "schedule": {"stages": [{"beta": 4, "steps": 2}, {"beta": 1, "lr_scale": 0.1}]},
    "training": {"steps": 4, "batch_size": 8},
    "evaluation": {"interval": 2, "probe_size": 48},
}


@pytest.fixture
def trial_checkpoint(tmp_path, monkeypatch):
    """A trial checkpoint folder that tune.get_checkpoint() hands the trainable."""
    from ray import tune

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    trainer = Trainer(RunConfig.from_dict(CONFIG), data=Squares())
    trainer.run(until=2)
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    trainable.save_trial_checkpoint(folder, trainer, "run-id", {"step": 2.0}, [])
    checkpoint = tune.Checkpoint.from_directory(str(folder))
    monkeypatch.setattr(trainable.tune, "get_checkpoint", lambda: checkpoint)
    yield folder, trainer
    torch.set_num_threads(threads)


def test_a_trial_resumes_from_its_checkpoint(trial_checkpoint):
    restored, state = trainable._restore(Squares())
    assert restored.step == 2 and state["mlflow_run_id"] == "run-id"


def test_a_crafted_trial_checkpoint_runs_no_code(trial_checkpoint, tmp_path):
    folder, trainer = trial_checkpoint
    marker = tmp_path / "marker"
    write_code_running_checkpoint(folder / trainable.TRAINER_FILE, marker, trainer.state_dict())
    with pytest.raises(DataError, match="not a deft-tune training checkpoint"):
        trainable._restore(Squares())
    assert not marker.exists(), "restoring the trial ran the checkpoint's code"


def test_a_damaged_trial_state_file_is_named(trial_checkpoint):
    folder, _ = trial_checkpoint
    (folder / trainable.STATE_FILE).write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="not a trial state file"):
        trainable._restore(Squares())


@pytest.mark.parametrize("aggregate", ["mean", "min"])
def test_the_objective_is_nan_when_a_replica_has_no_finite_value(aggregate):
    """Also an objective that is a signal, whose plain mean in the report skips the NaN."""
    import math

    from deft_tune.search import space_from_dict
    from deft_tune.training.aggregate import combine

    objective = {"metric": "info/active_gain", "mode": "max", "aggregate": aggregate}
    space = space_from_dict({"data": "dsprites_full", "objective": objective,
                             "budget": {"steps_per_trial": 400, "eval_interval": 100}})  # fmt: skip
    replicas = [{"info/active_gain": 2.0}, {"info/active_gain": math.nan}]
    report = {"train/replicas": 2.0, **combine(replicas)}
    assert report["info/active_gain"] == 2.0  # the signal's mean
    trainable._add_objective(report, space)
    assert math.isnan(report[space.objective.key])
    healthy = {"train/replicas": 2.0, **combine([replicas[0], {"info/active_gain": 1.0}])}
    trainable._add_objective(healthy, space)
    assert healthy[space.objective.key] == (1.5 if aggregate == "mean" else 1.0)


def test_the_plot_history_keeps_each_replicas_kl_per_group():
    from deft_tune.training.aggregate import combine, replica_reports

    reports = [
        {"step": 10.0, "train/stage": 0.0, "train/replicas": 2.0, "kl/group0": kl, "loss": 1.0}
        for kl in (8.47, 0.2)
    ]
    entry = trainable._history_entry(combine(reports))
    assert set(entry) == {
        "step", "train/stage", "train/replicas", "kl/group0",
        "replica0/kl/group0", "replica1/kl/group0",
    }  # fmt: skip
    assert [r["kl/group0"] for r in replica_reports(entry)] == [8.47, 0.2]
