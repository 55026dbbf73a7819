"""A real search recorded as the bank's recipe says (`--no-ifp-stopper --no-asha`), read back and
replayed: the trainable's own MLflow layout, not a hand-made one, is what the bank reads."""

from __future__ import annotations

import pytest
import yaml

from deft_tune.config import RunConfig
from deft_tune.search.replay.bank import load_bank
from deft_tune.search.replay.bankfile import read_banks, write_bank
from deft_tune.search.replay.command import replay_bank
from deft_tune.search.replay.options import ReplayOptions
from tests.doubles import SmallGridDSprites, tiny_space


@pytest.mark.slow
def test_a_real_unstopped_search_is_a_bank(tmp_path, ray_session):
    from mlflow import MlflowClient

    from deft_tune.search.options import SearchOptions
    from deft_tune.search.runner import run_search

    space = tiny_space(tmp_path / "bank.yaml", trials=3, steps=40, interval=10, name="tinybank",
                       replicas=2)  # fmt: skip
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = SearchOptions(space=str(space), storage=str(tmp_path / "runs"), tracking_uri=uri,
                            ifp_stopper=False, asha=False)  # fmt: skip
    run_search(options, data_factory=SmallGridDSprites(str(tmp_path / "cache")), out=print)

    bank = load_bank(uri, "tinybank")
    client = MlflowClient(uri)
    assert len(bank.trials) == 3
    for trial in bank.trials:
        assert [r.step for r in trial.reports] == [10, 20, 30, 40]
        logged = client.get_run(trial.run_id).data.metrics
        assert trial.final_objective == logged["final/mig"]
        assert trial.replica_finals == (logged["replica0/final/mig"], logged["replica1/final/mig"])
        first = trial.reports[0].result
        assert first["train/replicas"] == 2.0 and "replica1/info/active_captured" in first
        assert "replica0/kl/group0" in first and "metrics/mig" in first
        assert all(r.cost_s >= 0 for r in trial.reports) and trial.final.cost_s > 0
    # The parent run records the space as the search ran it (the command line switched both
    # stoppers off): their settings are kept, and each replayed rule switches its own on.
    assert not bank.space.stopping.ifp.enabled and bank.space.budget.steps_per_trial == 40
    # Its file holds the same trials, run configs included: a bank alone can retrain its best.
    again = read_banks([write_bank(bank, tmp_path / "tinybank.parquet")])
    assert again.trials == bank.trials
    config = RunConfig.from_dict(yaml.safe_load(again.trials[0].run_config))
    assert config.training.replicas == 2 and config.training.steps == 40
    result = replay_bank(bank, ReplayOptions("tinybank", replays=5, concurrency=2))
    assert {r.trial_steps for r in result.runs["none"]} == {120}
    assert all(r.trial_steps <= 120 for runs in result.runs.values() for r in runs)
