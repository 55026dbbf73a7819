"""The intervals docs/RESULTS.md judges its claims with: the bootstrap, Student's and Welch's t
against oracles, and the rule that a difference is called only where both exclude 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from benchmarks.reproduce import intervals
from benchmarks.reproduce.intervals import Claim, paired_claim, unpaired_claim

HIGH, LOW = [0.30, 0.32, 0.31, 0.29, 0.33], [0.10, 0.12, 0.11, 0.09, 0.13]


def test_bootstrap_intervals_separate_only_what_differs():
    interval = intervals.bootstrap_difference(HIGH, LOW)
    assert 0.17 < interval[0] <= 0.2 <= interval[1] < 0.23
    assert intervals.bootstrap_difference(HIGH, LOW) == interval  # seeded
    same = intervals.bootstrap_difference(HIGH, HIGH[::-1])
    assert same[0] < 0 < same[1]
    low, high = intervals.bootstrap_mean(LOW)
    assert 0.09 <= low < 0.11 < high <= 0.13
    assert intervals.bootstrap_mean(LOW) == (low, high)
    assert intervals.bootstrap_mean([-0.1, 0.1, -0.1, 0.1])[0] < 0


def test_student_t_interval_of_a_mean():
    # mean 2, sd 1, n 3: 2 -+ q / sqrt(3), q the 0.975 quantile of t with 2 degrees of freedom,
    # which has a closed form: (2p - 1) sqrt(2 / (4p(1 - p))).
    p = 0.975
    low, high = intervals.t_interval([1.0, 2.0, 3.0])
    half = (2 * p - 1) * math.sqrt(2 / (4 * p * (1 - p))) / math.sqrt(3)
    assert (low, high) == pytest.approx((2 - half, 2 + half), abs=1e-12)
    with pytest.raises(ValueError, match="at least 2 values"):
        intervals.t_interval([1.0])


def test_welch_interval_equals_scipys_unequal_variance_t_test():
    a, b = [1.0, 2.0, 3.0, 4.0, 5.5], [0.0, 1.0, 1.5, 2.0, 2.0, 0.7]
    oracle = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert intervals.welch_interval(a, b) == pytest.approx((oracle.low, oracle.high), abs=1e-12)
    assert intervals.welch_interval([1.0, 1.0], [0.5, 0.5]) == (0.5, 0.5)  # no spread at all


def test_a_difference_is_called_only_where_both_intervals_exclude_zero():
    assert unpaired_claim(HIGH, LOW).verdict() == "higher"
    assert unpaired_claim(LOW, HIGH).verdict() == "lower"
    assert unpaired_claim(HIGH, HIGH[::-1]).verdict() == "not separated (both intervals hold 0)"
    # Three seeds, all positive but spread: every resample's mean is positive, so the bootstrap
    # excludes 0 whatever the spread; Student's t does not.
    lucky = paired_claim([0.01, 0.02, 0.5])
    assert lucky.bootstrap[0] > 0 and lucky.t[0] < 0
    assert lucky.verdict() == "not separated (the t interval holds 0)"
    assert Claim(0.1, (-0.01, 0.2), (0.01, 0.2)).verdict() == (
        "not separated (the bootstrap interval holds 0)"
    )


def test_the_bootstrap_covers_less_than_95_percent_at_few_seeds_and_about_95_at_many():
    three, five = intervals.bootstrap_coverage(3), intervals.bootstrap_coverage(5)
    assert three < five < 0.90
    assert 0.90 < intervals.bootstrap_coverage(30, samples=500) < 0.98


def test_the_exact_mann_whitney_distribution_matches_scipys_exact_test():
    rng = np.random.default_rng(0)
    for m, n in [(3, 4), (5, 5), (8, 6), (8, 8)]:
        cdf = intervals.mann_whitney_cdf(m, n)
        assert len(cdf) == m * n + 1 and cdf[-1] == pytest.approx(1.0)
        for _ in range(5):
            x, y = rng.standard_normal(m), rng.standard_normal(n)
            u = int((x[:, None] > y[None, :]).sum())
            oracle = stats.mannwhitneyu(x, y, alternative="less", method="exact").pvalue
            assert cdf[u] == pytest.approx(oracle, abs=1e-12)  # P(U <= u)
    # the printed tables' two-sided 5% critical value for 8 and 8: reject at U <= 13
    cdf = intervals.mann_whitney_cdf(8, 8)
    assert cdf[13] <= 0.025 < cdf[14]


def test_the_shift_interval_takes_the_order_statistics_the_exact_distribution_names():
    y = np.arange(8.0)
    # differences 3.5 + (i - j): i - j = -7 .. 7 with 1, 2, .., 8, .., 1 pairs; U <= 13 is the
    # 2.5% tail, so the interval runs from the 14th smallest difference to the 14th largest
    assert intervals.shift_interval(y + 3.5, y) == (0.5, 6.5)
    assert intervals.shift_interval([1.0, 2.0], [0.0, 1.0]) == (-math.inf, math.inf)  # too few


def test_the_shift_interval_holds_the_true_shift_in_95_percent_of_samples():
    rng = np.random.default_rng(1)
    held = 0
    for _ in range(2_000):
        low, high = intervals.shift_interval(rng.standard_normal(8) + 1.0, rng.standard_normal(8))
        held += low <= 1.0 <= high
    # exact coverage 1 - 2 P(U <= 13) = 0.9501; 2,000 samples give it +-0.01
    assert 0.935 < held / 2_000 < 0.965


def test_the_bootstrap_of_a_median_difference_brackets_a_clear_shift():
    low, high = intervals.bootstrap_median_difference([10.0, 11.0, 12.0, 13.0], [1.0, 2.0, 3.0])
    assert 7.0 <= low < high <= 12.0
