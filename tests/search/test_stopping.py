"""The IFP stopper on synthetic trials (sequences of report dicts), and the ASHA factory.

The synthetic trial: 4,000 steps, four stages of 1,000, a report every 250 steps. As in the
training loop, a report describes the last step trained: the report at step s is in stage
min((s - 1) // 1000, 3), and the report at a stage's last step shows progress 1.0. The default
thresholds: diffusion above 0.5 for 2 reports past the first quarter of the stage; collapse
below 0.1 nats for 2 reports past the first quarter of the budget.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from deft_tune.report_keys import COMPLETED
from deft_tune.search import space_from_dict
from deft_tune.search.callbacks import stop_reason
from deft_tune.search.space import IFPStopping
from deft_tune.search.stopping import IFPStopper, make_scheduler, make_stopper
from deft_tune.search.tracking.layout import STOP_REASONS, STOP_TAG

STEPS, STAGE, INTERVAL = 4000, 1000, 250


def _position(step):
    stage = min((step - 1) // STAGE, 3)
    return stage, (step - stage * STAGE) / STAGE


def _report(step, diffusion=0.1, gain=1.0, captured=True, kl=5.0, stage=None, progress=None):
    if stage is None:
        stage, progress = _position(step)
    return {
        "step": step,
        "train/stage": stage,
        "train/stage_progress": progress,
        "info/diffusion": diffusion,
        "info/active_gain": gain * (1 - diffusion),
        "info/frozen_gain": gain * diffusion,
        "info/active_captured": float(captured),
        "kl/total": kl,
    }


def _trial(**rules):
    """Reports of a whole trial; each rule maps (stage, progress) or step to a value."""
    out = []
    for step in range(INTERVAL, STEPS + 1, INTERVAL):
        stage, progress = _position(step)
        values = {key: rule(step, stage, progress) for key, rule in rules.items()}
        out.append(_report(step, **values))
    return out


def _run(stopper, trial_id, reports):
    """Feed reports until the stopper says stop; the step it stopped at, or None."""
    for result in reports:
        if stopper(trial_id, result):
            return result["step"]
    return None


def _stopper(**overrides) -> IFPStopper:
    """A stopper with the diffusion rule on at 0.5 (its default is off), to test the rule."""
    return IFPStopper(IFPStopping(**{"diffusion_threshold": 0.5, **overrides}), STEPS)


def test_good_trial_runs_to_the_end():
    stopper = _stopper()
    good = _trial(captured=lambda step, stage, progress: progress >= 0.5 or stage == 0)
    assert _run(stopper, "good", good) is None
    assert stopper.reason("good") is None and stopper.reasons == {}
    assert stopper.stop_all() is False


def test_diffusing_trial_stops_with_its_reason():
    stopper = _stopper()
    diffusing = _trial(diffusion=lambda step, stage, progress: 0.8 if stage == 1 else 0.1)
    # Stage 1 reports: 1250 (progress 0.25: the first above), 1500 (the second: stop).
    assert _run(stopper, "bad", diffusing) == 1500
    assert stopper.reason("bad") == "diffusion"
    assert stopper("bad", _report(1750)) is True  # a stopped trial stays stopped


def test_the_shipped_default_never_stops_for_diffusion():
    stopper = IFPStopper(IFPStopping(), steps_per_trial=STEPS)
    diffusing = _trial(diffusion=lambda step, stage, progress: 1.0 if stage == 1 else 0.1)
    assert _run(stopper, "scaled", diffusing) is None


def test_diffusion_in_the_grace_period_or_on_tiny_gains_does_not_count():
    early = _trial(diffusion=lambda step, stage, progress: 0.9 if progress < 0.25 else 0.1)
    assert _run(_stopper(), "early", early) is None
    tiny = _trial(gain=lambda step, stage, progress: 0.01, diffusion=lambda *_: 0.9)
    assert _run(_stopper(), "tiny", tiny) is None
    wobbly = _trial(diffusion=lambda step, stage, progress: 0.9 if step % 500 else 0.1)
    assert _run(_stopper(), "wobbly", wobbly) is None  # never two reports in a row
    late = _stopper(grace_steps=400)  # stage 1 began at 1000: 1250 is within 400 steps
    stage1 = _trial(diffusion=lambda step, stage, progress: 0.8 if stage == 1 else 0.1)
    assert _run(late, "late", stage1) == 1750


def test_stage_that_captured_nothing_stops_at_the_next_stage():
    stopper = _stopper()
    empty_first = _trial(captured=lambda step, stage, progress: stage > 0)
    assert _run(stopper, "empty", empty_first) == 1000  # stage 0's last report (progress 1)
    assert stopper.reason("empty") == "no_capture"
    # Reports that skip the end of a stage: judged at the first report of the next one.
    stopper = _stopper()
    skipping = [_report(500, captured=False), _report(1500, captured=True)]
    assert _run(stopper, "skip", skipping) == 1500 and stopper.reason("skip") == "no_capture"
    # ... unless the group filled up after the last report of its stage: it holds 0.5 nats.
    stopper = _stopper()
    filled = [_report(500, captured=False), {**_report(1500), "kl/group0": 0.5}]
    assert _run(stopper, "filled", filled) is None
    hollow = [_report(500, captured=False), {**_report(1500), "kl/group0": 0.05}]
    assert _run(stopper, "hollow", hollow) == 1500  # below the tracker's 0.1 nats


def test_an_empty_stage_after_one_that_captured_runs_on():
    # The example config's runs: stages 0 and 1 capture, stage 2's beta sits below no freezing
    # point and its group stays empty; the last stage captures again and the run ends well.
    middle_empty = _trial(captured=lambda step, stage, progress: stage != 2)
    assert _run(_stopper(), "middle", middle_empty) is None
    # Progress 1 without capture is no reason either once an earlier group holds something.
    reports = [_report(500, stage=0, progress=1.0), _report(750, stage=1, progress=0.5,
               captured=False), _report(1000, stage=1, progress=1.0, captured=False)]  # fmt: skip
    assert _run(_stopper(), "late", reports) is None
    # Nothing held after two stages: stopped when the second ends, not before.
    two_empty = _trial(captured=lambda step, stage, progress: stage >= 2)
    stopper = _stopper()
    assert _run(stopper, "both", two_empty) == 1000 and stopper.reason("both") == "no_capture"


def test_stage_progress_reaching_one_without_capture_stops():
    stopper = _stopper()
    reports = [
        _report(250, stage=0, progress=0.5, captured=False),
        _report(500, stage=0, progress=1.0, captured=False),
    ]
    assert _run(stopper, "t", reports) == 500 and stopper.reason("t") == "no_capture"


def test_capture_threshold_judges_the_active_gain():
    stopper = _stopper(capture_threshold=0.5)
    # active gain = gain * (1 - diffusion) = 0.45 < 0.5 in stage 0, although the tracker says 1
    weak = _trial(gain=lambda step, stage, progress: 0.5 if stage == 0 else 2.0)
    assert _run(stopper, "weak", weak) == 1000 and stopper.reason("weak") == "no_capture"
    assert _run(_stopper(capture_threshold=0.4), "ok", weak) is None


def test_collapsed_trial_stops_after_its_grace():
    stopper = _stopper()
    collapsed = _trial(kl=lambda *_: 0.01)
    # Grace: a quarter of 4,000 steps; reports at 1000 and 1250 are the two below 0.1 nats.
    assert _run(stopper, "flat", collapsed) == 1250
    assert stopper.reason("flat") == "collapse"


def test_switched_off_rules_do_not_stop():
    empty_first = _trial(captured=lambda step, stage, progress: stage > 0)
    assert _run(_stopper(no_capture=False), "a", empty_first) is None
    diffusing = _trial(diffusion=lambda *_: 0.8)
    assert _run(_stopper(diffusion_threshold=1.0), "b", diffusing) is None
    assert _run(_stopper(collapse_kl=0.0), "c", _trial(kl=lambda *_: 0.01)) is None


def test_the_last_report_is_never_judged():
    stopper = _stopper()
    reports = [_report(3750, captured=False), _report(4000, captured=False)]
    assert _run(stopper, "last", reports) is None and stopper.reason("last") is None


def test_a_retried_trial_starts_counting_afresh():
    stopper = _stopper()
    high = dict(diffusion=0.8)
    assert not stopper("t", _report(1000))
    assert not stopper("t", _report(1250, **high))  # one report above the threshold
    # The worker died; the trial resumes from its step-1000 checkpoint and reports 1250 again.
    assert not stopper("t", _report(1250, **high))  # a fresh count: one, not two
    assert stopper("t", _report(1500, **high))
    assert stopper.reason("t") == "diffusion"


def test_missing_signals_and_a_nan_diffusion_are_ignored():
    stopper = _stopper()
    bare = [{"step": s, "training_iteration": s // INTERVAL} for s in range(250, 4001, 250)]
    assert _run(stopper, "bare", bare) is None
    nan = [_report(s, diffusion=float("nan")) for s in range(250, 4001, 250)]
    assert _run(stopper, "nan", nan) is None


@pytest.mark.parametrize("kl", [float("nan"), float("inf")])
def test_a_nan_or_infinite_kl_counts_as_collapsed(kl):
    stopper = _stopper()
    # As test_collapsed_trial_stops_after_its_grace: the grace, then two reports in a row.
    assert _run(stopper, "nan", _trial(kl=lambda *_: kl)) == 1250
    assert stopper.reason("nan") == "collapse"
    assert _run(_stopper(collapse_kl=0.0), "off", _trial(kl=lambda *_: kl)) is None


def _space(steps=1000, interval=100, **stopping):
    budget = {"steps_per_trial": steps, "eval_interval": interval}
    return space_from_dict({"data": "dsprites_full", "stopping": stopping, "budget": budget})


def test_factories_follow_the_space():
    space = _space(asha={"grace_period": 3, "reduction_factor": 2})
    stopper = make_stopper(space)
    assert isinstance(stopper, IFPStopper) and stopper.steps_per_trial == 1000
    scheduler = make_scheduler(space)
    assert scheduler.metric == "metrics/mig" and scheduler._mode == "max"
    # Rungs up to the last report but one (900): grace 3 reports = 300 steps, then x2.
    assert scheduler._time_attr == "step" and scheduler._max_t == 900
    assert scheduler._reduction_factor == 2 and not scheduler._stop_last_trials
    assert [milestone for milestone, _ in scheduler._brackets[0]._rungs] == [600, 300]
    off = _space(ifp={"enabled": False}, asha={"enabled": False})
    assert make_stopper(off) is None and make_scheduler(off) is None
    single = _space(steps=100, interval=100)
    assert make_scheduler(single) is None  # one report per trial: nothing to cut


class _Trial:
    def __init__(self, trial_id):
        self.trial_id = trial_id


def test_asha_never_stops_a_trial_at_its_last_step():
    # quick.yaml's shape: 400 steps, a report every 100, grace 2 reports, halving.
    space = _space(steps=400, asha={"grace_period": 2, "reduction_factor": 2})
    scheduler = make_scheduler(space)
    assert [milestone for milestone, _ in scheduler._brackets[0]._rungs] == [200]
    good, bad = _Trial("good"), _Trial("bad")
    for trial in (good, bad):
        scheduler.on_trial_add(None, trial)
    actions = {}
    for step in (100, 200, 300, 400, 400):  # the last report is the trainable's final one
        for trial, mig in ((good, 0.3), (bad, 0.1)):
            if actions.get(trial.trial_id) != "STOP":
                result = {"step": step, "metrics/mig": mig}
                actions[trial.trial_id] = scheduler.on_trial_result(None, trial, result)
    assert actions == {"good": "CONTINUE", "bad": "STOP"}  # bad cut at the 200-step rung


def test_the_package_exports_the_stopper_lazily():
    import deft_tune.search as search

    assert search.make_stopper is make_stopper and search.IFPStopper is IFPStopper
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        search.nope  # noqa: B018


def test_steps_per_trial_must_be_positive():
    with pytest.raises(ValueError, match="steps_per_trial == 0"):
        IFPStopper(IFPStopping(), steps_per_trial=0)


@pytest.mark.slow
def test_stopper_inside_a_real_tune_run(ray_session, tmp_path):
    from ray import tune

    def trainable(config):  # local, so that Ray pickles it by value (tests/ is no package)
        for result in config["reports"]:
            tune.report(result)

    good = _trial(captured=lambda step, stage, progress: True)
    bad = _trial(diffusion=lambda step, stage, progress: 0.8 if stage == 1 else 0.1)
    stopper = _stopper()
    tuner = tune.Tuner(
        trainable,
        param_space={"reports": tune.grid_search([good, bad])},
        run_config=tune.RunConfig(stop=stopper, storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    steps = sorted(r.metrics["step"] for r in results)
    assert steps == [1500, 4000]
    stopped = [r for r in results if r.metrics["step"] == 1500][0]
    assert stopper.reason(stopped.metrics["trial_id"]) == "diffusion"
    assert len(stopper.reasons) == 1
    # The reason rides in the trial's own last result, where the callbacks read it: it
    # survives a restore, which gives Tune and the callbacks two copies of the stopper.
    assert stopped.metrics[STOP_TAG] == "diffusion"
    assert [STOP_TAG in r.metrics for r in results].count(True) == 1


def _replicated(*per_replica: list[dict]) -> list[dict]:
    """Reports of a trial whose replicas report ``per_replica[r]`` (replica{r}/ keys)."""
    out = []
    for reports in zip(*per_replica):
        merged = {"step": reports[0]["step"], "train/replicas": float(len(reports))}
        for r, report in enumerate(reports):
            merged.update({f"replica{r}/{k}": v for k, v in report.items() if k != "step"})
        out.append(merged)
    return out


def test_a_replicated_trial_stops_only_when_most_replicas_meet_the_rule():
    empty = [_report(250, stage=0, progress=0.5, captured=False),
             _report(500, stage=0, progress=1.0, captured=False)]  # fmt: skip
    full = [_report(250, stage=0, progress=0.5), _report(500, stage=0, progress=1.0)]
    stopper = _stopper()
    assert _run(stopper, "one", _replicated(empty, full, full)) is None  # one unlucky seed
    two = _replicated(empty, empty, full)
    assert _run(stopper, "two", two) == 500 and stopper.reason("two") == "no_capture"
    assert _run(_stopper(), "half", _replicated(empty, full)) is None  # 1 of 2 is no majority


def test_nan_replicas_vote_collapsed_in_the_majority():
    nan, healthy = _trial(kl=lambda *_: float("nan")), _trial()
    stopper = _stopper()
    assert _run(stopper, "two", _replicated(nan, nan, healthy)) == 1250
    assert stopper.reason("two") == "collapse"
    assert _run(_stopper(), "one", _replicated(nan, healthy, healthy)) is None
    collapsed = _trial(kl=lambda *_: 0.01)  # a NaN seed and a collapsed one agree
    assert _run(_stopper(), "mixed", _replicated(nan, collapsed, healthy)) == 1250


def test_majority_needs_more_than_half_for_one_reason():
    from deft_tune.search.stopping import majority

    assert majority(["no_capture", "no_capture", None]) == "no_capture"
    assert majority(["no_capture", "diffusion", None]) is None
    assert majority([None]) is None and majority(["collapse"]) == "collapse"


class _Spy(dict):
    """A report that remembers every key the stopper looked up."""

    seen: set[str] = set()

    def get(self, key, default=None):
        _Spy.seen.add(key)
        return super().get(key, default)


def _scenarios() -> list[list[dict]]:
    diffusing = _trial(diffusion=lambda step, stage, progress: 0.8 if stage == 1 else 0.1)
    empty = _trial(captured=lambda step, stage, progress: stage != 1)
    collapsed = _trial(kl=lambda step, stage, progress: 0.01)
    noise = [{**r, "train/loss": 1.0, "metrics/mig": 0.2} for r in empty]
    filled = [_report(500, captured=False), {**_report(1500), "kl/group0": 0.5}]  # skips an end
    return [diffusing, empty, collapsed, noise, filled]


def test_reads_names_every_key_the_stopper_looks_up():
    from deft_tune.search.stopping import reads

    _Spy.seen = set()
    for i, reports in enumerate(_scenarios()):
        _run(_stopper(), f"t{i}", [_Spy(r) for r in reports])
    assert {"train/stage", "info/diffusion", "kl/total", "kl/group0"} <= _Spy.seen
    assert all(reads(key) for key in _Spy.seen), sorted(k for k in _Spy.seen if not reads(k))
    assert reads("replica2/info/active_captured") and reads("replica0/kl/group3")
    assert not reads("metrics/mig") and not reads("replica0/kl/latent1")


def test_reports_cut_to_the_read_keys_give_the_same_decisions():
    # What a replay loads from MLflow (deft_tune.search.replay): only the keys reads() names.
    from deft_tune.search.stopping import reads

    cases = [*_scenarios(), *[_replicated(s, s, _scenarios()[0]) for s in _scenarios()]]
    for i, reports in enumerate(cases):
        cut = [{k: v for k, v in r.items() if reads(k)} for r in reports]
        full, lean = _stopper(), _stopper()
        assert _run(full, "t", reports) == _run(lean, "t", cut), i
        assert full.reason("t") == lean.reason("t")


def test_stop_reasons_come_from_the_trials_last_result_and_are_documented():
    def trial(**last):
        return SimpleNamespace(trial_id="t", last_result=last)

    cases = {
        ("KILLED", "no_capture"): (trial(**{STOP_TAG: "no_capture"}), False),
        ("FINISHED", "completed"): (trial(**{COMPLETED: 1.0}), True),
        ("KILLED", "asha"): (trial(step=10), True),
        ("KILLED", "interrupted"): (trial(step=10), False),  # no rule claims it: Tune ended it
    }
    for expected, (ended, asha) in cases.items():
        assert stop_reason(ended, asha) == expected
        assert expected[1] in STOP_REASONS
