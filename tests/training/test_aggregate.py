import math

import pytest

from deft_tune.training.aggregate import (
    AGGREGATES,
    aggregate,
    combine,
    combine_scores,
    replica_key,
    replica_reports,
    signal_mean,
    split_replica_key,
)

NAN, INF = math.nan, math.inf


def test_the_aggregates_of_two_replicas_are_exact():
    std = math.sqrt(0.125)  # (0.25 - 0.5)**2 + (0.75 - 0.5)**2 over n - 1 = 1
    values = [0.75, 0.25]
    assert {how: aggregate(values, how) for how in (*AGGREGATES, "std")} == {
        "mean": 0.5, "std": std, "min": 0.25, "median": 0.5, "mean_minus_std": 0.5 - std,
    }  # fmt: skip
    assert aggregate([0.75], "std") == 0.0 and aggregate([0.75], "mean_minus_std") == 0.75


@pytest.mark.parametrize("bad", [NAN, INF, -INF, None])
@pytest.mark.parametrize("how", [*AGGREGATES, "std"])
def test_a_score_with_a_replica_not_finite_aggregates_to_nan(bad, how):
    # Skipping it would rank the schedule on its healthy seeds: min 0.25 would look fine.
    assert math.isnan(aggregate([0.75, bad, 0.25], how))
    assert math.isnan(aggregate([], how))


def test_a_signal_mean_skips_the_replicas_without_a_finite_value():
    assert signal_mean([0.75, NAN, 0.25]) == 0.5
    assert math.isnan(signal_mean([NAN, INF]))


def test_combine_gives_scores_the_nan_rule_and_signals_the_mean_of_the_finite():
    reports = [
        {"step": 8.0, "metrics/mig": 0.75, "info/last_freezing_beta": 4.0, "train/recon": 1.0},
        {"step": 8.0, "metrics/mig": NAN, "info/last_freezing_beta": NAN, "train/recon": 3.0},
    ]
    out = combine(reports)
    assert out["replica0/metrics/mig"] == 0.75 and math.isnan(out["replica1/metrics/mig"])
    for key in ("metrics/mig", "metrics/mig_min", "metrics/mig_mean_minus_std",
                "metrics/mig_median", "metrics/mig_std"):  # fmt: skip
        assert math.isnan(out[key]), key
    assert out["info/last_freezing_beta"] == 4.0  # one seed has had no freezing event yet
    assert out["train/recon"] == 2.0 and "train/recon_min" not in out
    # A key in statistics_of (the search's objective when it is not a score) is a score.
    objective = combine([{**reports[0], "info/x": 1.0}, {**reports[1], "info/x": NAN}],
                        statistics_of=["info/x"])  # fmt: skip
    assert math.isnan(objective["info/x"]) and math.isnan(objective["info/x_min"])
    assert out["step"] == 8.0


def test_a_key_one_replica_lacks_counts_as_not_finite_for_a_score():
    out = combine([{"metrics/sap": 0.5, "kl/total": 2.0}, {"kl/total": 4.0}])
    assert math.isnan(out["replica1/metrics/sap"]) and math.isnan(out["metrics/sap"])
    assert out["kl/total"] == 3.0


def test_combine_scores_of_replicas_with_a_nan():
    out = combine_scores([{"mig": 0.5}, {"mig": NAN}])
    assert out["replica0/mig"] == 0.5 and math.isnan(out["mig"]) and math.isnan(out["mig_min"])
    one = combine_scores([{"mig": NAN}])  # one replica: its value as it is
    assert list(one) == ["mig"] and math.isnan(one["mig"])


def test_replica_reports_undo_combine():
    reports = [
        {"step": 10.0, "train/replicas": 2.0, "kl/group0": 8.47, "metrics/mig": 0.1},
        {"step": 10.0, "train/replicas": 2.0, "kl/group0": 0.2, "metrics/mig": 0.3},
    ]
    assert replica_reports(combine(reports)) == reports
    one = {"step": 10.0, "kl/group0": 1.0}
    assert replica_reports(one) == [one]


@pytest.mark.parametrize("key", ["metrics/mig", "info/gain/group1", "step", "final/mig"])
def test_a_replica_key_splits_back_into_its_replica_and_key(key):
    for replica in (0, 3, 12):
        assert split_replica_key(replica_key(replica, key)) == (replica, key)
    assert split_replica_key(key) == (None, key)
    assert split_replica_key("replicas/x") == (None, "replicas/x")
    assert split_replica_key("replica/x") == (None, "replica/x")
