"""The rules a replay drives: built from the bank's space by the live factories, and deciding
exactly as they do inside a real Tune run.

The equivalence test runs the bank's recorded reports through Tune itself (a trainable that
reports them, one trial at a time in the bank's order, the live stopper and ASHA scheduler) and
through the replay's :class:`Judge` (the same order, one at a time): every trial must end the
same way at the same step. One at a time, because with several trials at once the order in which
Tune sees their results depends on the machine's timing, while a replay orders them by the
recorded costs.
"""

from __future__ import annotations

import pytest

from deft_tune.search.replay.rules import make_judge, rule_space
from deft_tune.search.replay.simulate import replay


def test_rules_switch_the_live_stoppers_on_and_off(bank):
    assert bank.space.stopping.ifp.enabled is False  # the bank recorded with both off
    for rule, ifp, asha in [("none", False, False), ("ifp", True, False),
                            ("asha", False, True), ("ifp+asha", True, True)]:  # fmt: skip
        judge = make_judge(bank.space, rule)
        assert (judge.stopper is not None, judge.scheduler is not None) == (ifp, asha), rule
    scheduler = make_judge(bank.space, "asha").scheduler
    # The bank's ASHA settings (grace 1 report, halving) in steps, as make_scheduler sets them.
    assert scheduler._max_t == 300 and scheduler._reduction_factor == 2
    assert [m for m, _ in scheduler._brackets[0]._rungs] == [200, 100]
    assert rule_space(bank.space, "ifp").stopping.ifp.diffusion_threshold == 1.0


def _tune_outcomes(bank, rule, storage):
    """How each bank trial ends inside a real Tune run: {index: (end, step)}."""
    from ray import tune

    from deft_tune.search.stopping import make_scheduler, make_stopper

    space = rule_space(bank.space, rule)
    sequences = [[dict(r.result) for r in t.reports] + [dict(t.final.result)] for t in bank.trials]

    def trainable(config):  # local: Ray pickles it by value, reports and all
        for result in sequences[config["trial"]]:
            tune.report(result)

    stopper = make_stopper(space)
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(list(range(len(bank.trials))))},
        tune_config=tune.TuneConfig(scheduler=make_scheduler(space), max_concurrent_trials=1),
        run_config=tune.RunConfig(stop=stopper, storage_path=str(storage), verbose=0),
    )
    outcomes = {}
    for result in tuner.fit():
        metrics = result.metrics
        reason = stopper.reason(metrics["trial_id"]) if stopper else None
        completed = metrics.get("trial/completed") == 1.0
        end = reason or ("completed" if completed else "asha")
        outcomes[result.config["trial"]] = (end, int(metrics["step"]))
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["asha", "ifp+asha"])
def test_the_judge_decides_as_a_real_tune_run(bank, ray_session, tmp_path, rule):
    order = list(range(len(bank.trials)))
    run = replay(bank, make_judge(bank.space, rule), order, concurrency=1)
    index = {trial.trial_id: i for i, trial in enumerate(bank.trials)}
    replayed = {index[o.trial_id]: (o.end, o.step) for o in run.outcomes}
    live = _tune_outcomes(bank, rule, tmp_path)
    assert live == replayed
    assert sum(end == "asha" for end, _ in live.values()) >= 2  # ASHA did cut trials
