"""Replays of the synthetic bank (tests/search/replay/conftest.py) whose answers are worked out
by hand: which trials each rule stops, at which step, the trial-steps, the objective it would
return and its regret; and the simulated clock.

ASHA here: grace 1 report (100 steps), reduction factor 2, max_t = 400 - 100 = 300, so rungs at
100 and 200; a trial is cut at a rung when its fast MIG is below the median of the scores
recorded there before it. Trials run one at a time in the order t0, t1, t2, t3.
"""

from __future__ import annotations

import pytest

from deft_tune.search.replay.rules import make_judge
from deft_tune.search.replay.simulate import replay, replay_orders
from tests.search.replay.conftest import FINAL, with_costs

ORDER = [0, 1, 2, 3]


def _run(bank, rule, order=ORDER, concurrency=1):
    return replay(bank, make_judge(bank.space, rule), order, concurrency, rule)


def _ends(run):
    return {o.trial_id: (o.end, o.step) for o in run.outcomes}


def test_no_rule_runs_every_trial_to_its_end(bank):
    run = _run(bank, "none")
    assert _ends(run) == {t: ("completed", 400) for t in ("t0", "t1", "t2", "t3")}
    assert run.trial_steps == run.unstopped_steps == 1600 and run.savings == 0.0
    assert run.best == pytest.approx(FINAL["t0"]) and run.regret == pytest.approx(0.0)


def test_the_ifp_stopper_ends_the_no_capture_trial_at_its_stage_end(bank):
    run = _run(bank, "ifp")
    assert _ends(run) == {"t0": ("no_capture", 200), "t1": ("completed", 400),
                          "t2": ("completed", 400), "t3": ("completed", 400)}  # fmt: skip
    assert run.trial_steps == 1400 and run.savings == pytest.approx(0.125)
    # The best schedule was stopped: the search returns the best completed one instead.
    assert run.best == pytest.approx(FINAL["t1"])
    assert run.regret == pytest.approx(FINAL["t0"] - FINAL["t1"])


def test_asha_cuts_below_the_median_of_each_rung(bank):
    # t0 sets both rungs (0.30 at 100, 0.35 at 200) and runs on; t1 0.20 < 0.30 at 100; t2
    # passes 100 (0.25 is not below the median 0.25 of 0.30, 0.20) and is cut at 200
    # (0.20 < 0.35); t3 0.05 at 100.
    run = _run(bank, "asha")
    assert _ends(run) == {"t0": ("completed", 400), "t1": ("asha", 100),
                          "t2": ("asha", 200), "t3": ("asha", 100)}  # fmt: skip
    assert run.trial_steps == 800 and run.best == pytest.approx(FINAL["t0"])


def test_a_trial_the_stopper_ends_enters_ashas_rungs(bank):
    # As in Tune, the stopped t0's last result reaches ASHA (on_trial_complete): its 0.35 at
    # step 200 fills the 200 rung, which cuts t2 there. No trial completes, so the search
    # returns the best stopped trial by the last score it reported: t0's fast 0.35.
    run = _run(bank, "ifp+asha")
    assert _ends(run) == {"t0": ("no_capture", 200), "t1": ("asha", 100),
                          "t2": ("asha", 200), "t3": ("asha", 100)}  # fmt: skip
    assert run.trial_steps == 600 and run.stopped == 4
    assert run.best == pytest.approx(0.35)
    assert run.regret == pytest.approx(FINAL["t0"] - 0.35)


def test_the_anytime_curve_follows_the_trial_ends(bank):
    run = _run(bank, "ifp")
    # t0 ends at 200 trial-steps (stopped: best so far its fast 0.35), t1 completes at 600
    # (completed trials rank first: 0.40), t2 and t3 complete below it.
    assert [steps for steps, _ in run.curve] == [200, 600, 1000, 1400]
    assert [best for _, best in run.curve] == pytest.approx([0.35, *[FINAL["t1"]] * 3])


def test_simulated_time_advances_by_the_recorded_costs(bank):
    timed = with_costs(bank, [10.0, 10.0, 10.0, 10.0], 5.0)
    # One at a time: a completed trial costs 45 s, t0 stopped at its 2nd report 20 s.
    assert _run(timed, "none").wall_s == 4 * 45.0
    assert _run(timed, "ifp").wall_s == 20.0 + 3 * 45.0
    # Two at a time: t0 and t1 start at 0; t0 stops at 20 and t2 starts; t1 ends at 45 and t3
    # starts; t2 ends at 65, t3 at 90.
    run = _run(timed, "ifp", concurrency=2)
    assert run.wall_s == 90.0
    assert [o.trial_id for o in run.outcomes] == ["t0", "t1", "t2", "t3"]


def test_orders_are_seeded_permutations():
    orders = replay_orders(4, 50, seed=3, trials=None)
    assert orders == replay_orders(4, 50, seed=3, trials=None)
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert len({tuple(o) for o in orders}) > 1 and orders != replay_orders(4, 50, 4, None)
    assert all(len(o) == 2 for o in replay_orders(4, 5, seed=0, trials=2))
