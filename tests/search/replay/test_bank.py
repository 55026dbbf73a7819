"""A curve bank read back from MLflow: the reports the rules read, their recorded costs, the
final objective, the replicas; and the banks that cannot be replayed, refused in one line."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from deft_tune.errors import ConfigError
from deft_tune.search.replay.bank import bank_from_records, load_bank
from tests.search.replay.conftest import FINAL, SPECS, STEPS, bank_space


def test_every_trial_reads_back_as_its_reports_and_final(bank):
    assert [t.trial_id for t in bank.trials] == ["t0", "t1", "t2", "t3"]
    assert bank.objective == "metrics/mig" and bank.mode == "max"
    assert bank.space.budget.steps_per_trial == STEPS and bank.budget["eval_interval"] == 100
    for trial in bank.trials:
        spec = SPECS[trial.trial_id]
        assert [r.step for r in trial.reports] == [100, 200, 300, 400]
        assert [r.result["metrics/mig"] for r in trial.reports] == pytest.approx(spec.fast)
        assert trial.final_objective == pytest.approx(FINAL[trial.trial_id])
        assert trial.replica_finals == pytest.approx(spec.finals)
        assert trial.final.step == STEPS and trial.final.result["trial/completed"] == 1.0
        assert trial.final.result["metrics/mig"] == pytest.approx(FINAL[trial.trial_id])
    assert bank.best == pytest.approx(FINAL["t0"])


def test_a_report_holds_what_the_stopper_reads_and_the_objective_only(bank):
    result = bank.trials[0].reports[1].result
    assert result["step"] == 200 and result["train/replicas"] == 3.0
    assert result["replica0/info/active_captured"] == 0.0
    assert result["replica2/info/active_captured"] == 1.0
    assert result["replica1/kl/group0"] == 0.0 and result["replica1/train/stage_progress"] == 1.0
    assert "replica0/kl/latent0" not in result and "train/loss" not in result


def test_costs_are_the_recorded_time_between_reports(bank, bank_store):
    from mlflow import MlflowClient

    client = MlflowClient(bank_store.uri)
    trial = bank.trials[2]
    run = client.get_run(trial.run_id)
    stamps = [m.timestamp / 1000 for m in client.get_metric_history(trial.run_id, "train/loss")]
    final = client.get_metric_history(trial.run_id, "final/mig")[0].timestamp / 1000
    costs = [r.cost_s for r in trial.reports]
    assert costs[0] == pytest.approx(max(0.0, stamps[0] - run.info.start_time / 1000))
    assert costs[1:] == pytest.approx([b - a for a, b in zip(stamps, stamps[1:])])
    assert trial.final.cost_s == pytest.approx(final - stamps[-1])


def test_a_bank_with_a_stopped_trial_is_refused_naming_it(bank_store):
    with pytest.raises(ConfigError) as caught:
        load_bank(bank_store.uri, "stopped-bank")
    message = str(caught.value)
    assert "1 trial: t1 (asha) did not run to the end" in message
    assert "--no-ifp-stopper --no-asha" in message and "\n" not in message


def test_a_bank_with_a_missing_history_is_refused_naming_the_trial(bank_store):
    with pytest.raises(ConfigError, match=r"1 trial: holey \(no final/mig\) lack"):
        load_bank(bank_store.uri, "holey-bank")


def test_an_unknown_experiment_is_one_tracking_error(bank_store):
    from deft_tune.errors import TrackingError

    with pytest.raises(TrackingError, match="no search named 'nope'"):
        load_bank(bank_store.uri, "nope")


def _record(trial_id, stop_reason="completed", final=0.3, start=1000.0):
    metrics = {"metrics/mig": 0.2, "train/replicas": 1.0}
    if final is not None:
        metrics["final/mig"] = final
    return SimpleNamespace(
        trial_id=trial_id, run_id=f"run-{trial_id}", status="FINISHED", stop_reason=stop_reason,
        params={}, metrics=metrics, start_time=start,
    )  # fmt: skip


def _history(times, final_time, steps=(100, 200, 300, 400)):
    return {
        "train/loss": [(s, 1.0, t) for s, t in zip(steps, times)],
        "metrics/mig": [(s, 0.2, t) for s, t in zip(steps, times)],
        "final/mig": [(steps[-1], 0.3, final_time)],
    }


def _search(trials, params=None):
    return SimpleNamespace(
        experiment="hand", parent_run_id="p", space=bank_space("hand"), trials=tuple(trials),
        params=params or {},
    )  # fmt: skip


def test_costs_from_hand_made_timestamps_exactly():
    bank = bank_from_records(
        _search([_record("a", start=1000.0)]),
        {"run-a": _history([1012.0, 1022.0, 1032.5, 1040.0], 1043.0)},
        "uri",
    )
    trial = bank.trials[0]
    assert [r.cost_s for r in trial.reports] == [12.0, 10.0, 10.5, 7.5]
    assert trial.final.cost_s == 3.0 and trial.final_objective == 0.3
    assert trial.replica_finals == (0.3,)  # one replica: its plain final score


def test_the_budget_is_the_one_the_search_ran():
    # A search run with --smoke-test: the parent run's params hold the budget it ran.
    steps = (20, 40)
    record = _record("a")
    history = _history([1001.0, 1002.0], 1003.0, steps=steps)
    params = {"budget.steps_per_trial": "40", "budget.eval_interval": "20"}
    bank = bank_from_records(_search([record], params), {"run-a": history}, "uri")
    assert bank.space.budget.steps_per_trial == 40 and bank.budget == {
        "steps_per_trial": 40, "eval_interval": 20}  # fmt: skip
    with pytest.raises(ConfigError, match=r"a \(its reports end at step 40, not at 400\)"):
        bank_from_records(_search([record]), {"run-a": history}, "uri")


def test_missing_histories_are_named_per_trial():
    good = _history([1001.0, 1002.0, 1003.0, 1004.0], 1005.0)
    gap = {**good, "metrics/mig": good["metrics/mig"][:2]}
    records = [_record("a"), _record("b"), _record("c", final=None)]
    histories = {"run-a": {}, "run-b": gap, "run-c": good}
    with pytest.raises(ConfigError) as caught:
        bank_from_records(_search(records), histories, "uri")
    assert str(caught.value) == (
        "search 'hand' cannot be replayed: 3 trials: a (no train/loss history), "
        "b (no metrics/mig at step 300), c (no final/mig) lack the report histories a replay "
        "needs"
    )
