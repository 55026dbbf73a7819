"""Statistics over replays (IQM, bootstrap intervals, the anytime grid) and the bank's spread,
checked against their definitions on hand-made numbers."""

from __future__ import annotations

import math
import statistics
from types import SimpleNamespace

import numpy as np
import pytest

from deft_tune.search.replay.summary import (
    anytime,
    bootstrap_ci,
    describe,
    iqm,
    median,
    spread,
)


def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm(np.array([1.0, 2.0, 3.0, 4.0, 100.0, -50.0, 5.0, 6.0])) == 3.5  # 2..5
    assert iqm(np.array([7.0])) == 7.0 and iqm(np.array([1.0, 3.0])) == 2.0


def test_bootstrap_intervals_are_seeded_and_hold_the_statistic():
    values = list(np.random.default_rng(0).normal(size=40))
    low, high = bootstrap_ci(values, median, seed=5)
    assert (low, high) == bootstrap_ci(values, median, seed=5)
    assert low < median(values) < high
    assert bootstrap_ci([2.0] * 10, iqm, seed=1) == (2.0, 2.0)  # no spread, no width
    # The statistic works along the last axis: one value per resample, as computed one by one.
    rng = np.random.default_rng(5)
    picks = rng.integers(0, 40, size=(2000, 40))
    one_by_one = [iqm(np.asarray(values)[row]) for row in picks]
    assert bootstrap_ci(values, iqm, seed=5) == tuple(np.percentile(one_by_one, [2.5, 97.5]))


def test_describe_skips_missing_values():
    stat = describe([1.0, float("nan"), 3.0, None], seed=0)
    assert stat.median == 2.0 and stat.iqm == 2.0
    assert describe([float("nan")], seed=0) is None


def test_the_anytime_grid_holds_the_best_after_each_end():
    runs = [SimpleNamespace(curve=((200, 0.3), (600, 0.5))),
            SimpleNamespace(curve=((400, 0.1), (800, 0.2)))]  # fmt: skip
    median, low, high = anytime(runs, np.array([0.0, 200.0, 400.0, 600.0, 800.0]))
    assert math.isnan(median[0])  # nothing ended yet
    assert list(median[1:]) == [0.3, (0.3 + 0.1) / 2, (0.5 + 0.1) / 2, (0.5 + 0.2) / 2]
    assert low[4] == np.percentile([0.5, 0.2], 25) and high[4] == np.percentile([0.5, 0.2], 75)


def test_spread_separates_schedules_from_seeds(bank):
    found = spread(bank)
    groups = [t.replica_finals for t in bank.trials]
    means = [statistics.fmean(g) for g in groups]
    pooled = statistics.fmean(statistics.variance(g) for g in groups)
    assert (found.schedules, found.replicas) == (4, 3)
    assert found.between == pytest.approx(statistics.stdev(means))
    assert found.within == pytest.approx(math.sqrt(pooled))
    assert found.noise_of_mean == pytest.approx(math.sqrt(pooled / 3))
    assert found.f_ratio == pytest.approx(3 * statistics.variance(means) / pooled)
    assert found.separated  # 0.17 between the means, 0.038 noise on a mean of 3 seeds


def test_spread_needs_two_seeds_per_schedule(bank):
    import dataclasses

    single = [dataclasses.replace(t, replica_finals=t.replica_finals[:1]) for t in bank.trials]
    assert spread(dataclasses.replace(bank, trials=tuple(single))) is None


@pytest.mark.parametrize("f_ratio", [0.5, 2.5, 9.0])
def test_the_spread_p_value_is_the_anova_f_tail(f_ratio):
    from deft_tune.search.replay.summary import Spread

    # 3 schedules x 3 seeds: F(2, 6), whose tail has the closed form (1 + 2F/6)^-3
    found = Spread(3, 3, between=0.1, within=0.1, noise_of_mean=0.06, f_ratio=f_ratio)
    assert found.p_value == pytest.approx((1 + 2 * f_ratio / 6) ** -3, rel=1e-9)
    assert found.separated == (found.p_value < 0.05)
