"""One trial's restore: a trial checkpoint is read as data (weights_only), never run as code."""

from __future__ import annotations

import json

import pytest
import torch

from deft_tune.config import RunConfig
from deft_tune.errors import DataError
from deft_tune.search import trainable
from deft_tune.train import Trainer
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
