import math

import numpy as np
import pytest

from deft_tune.metrics.dci import completeness, compute_dci, dci, disentanglement
from tests.doubles import (
    constant_codes,
    duplicated_codes,
    identity_codes,
    noisy_identity_codes,
    permuted_codes,
)

SMALL = {"num_train": 1000, "num_test": 500}


def _h2(*p):
    return -sum(x * math.log2(x) for x in p if x > 0)


def test_one_code_per_factor_is_perfect():
    r = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # a dead third code weighs nothing
    assert disentanglement(r) == pytest.approx(1.0, abs=1e-6)
    assert completeness(r) == pytest.approx(1.0, abs=1e-6)


def test_one_code_for_all_factors():
    r = np.array([[1.0, 1.0], [0.0, 0.0]])
    # Code 0 spreads evenly over 2 factors: 1 - H_2(1/2, 1/2) = 0; code 1 has no weight.
    assert disentanglement(r) == pytest.approx(0.0, abs=1e-6)
    # Each factor lives in code 0 only.
    assert completeness(r) == pytest.approx(1.0, abs=1e-6)


def test_hand_computed_mixed_matrix():
    r = np.array([[0.5, 0.25], [0.5, 0.75]])
    # Rows (codes): p = (2/3, 1/3) and (0.4, 0.6); weights 0.75/2 and 1.25/2.
    d = 0.375 * (1 - _h2(2 / 3, 1 / 3)) + 0.625 * (1 - _h2(0.4, 0.6))
    # Columns (factors): p = (1/2, 1/2) and (1/4, 3/4); weights 1/2 each.
    c = 0.5 * (1 - _h2(0.5, 0.5)) + 0.5 * (1 - _h2(0.25, 0.75))
    assert disentanglement(r) == pytest.approx(d, abs=1e-9)
    assert completeness(r) == pytest.approx(c, abs=1e-9)


def test_all_zero_importance_scores_zero():
    r = np.zeros((3, 2))
    assert disentanglement(r) == pytest.approx(0.0, abs=1e-9)
    assert completeness(r) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("classifier", ["gbt", "hist_gbt"])
def test_identity_near_one_constant_at_chance(oracle_data, classifier):
    ident = compute_dci(identity_codes, oracle_data, seed=0, classifier=classifier, **SMALL)
    assert ident["dci/disentanglement"] > 0.95 and ident["dci/completeness"] > 0.95
    assert ident["dci/informativeness_test"] == pytest.approx(1.0)
    const = compute_dci(constant_codes, oracle_data, seed=0, classifier=classifier, **SMALL)
    assert const["dci/disentanglement"] == pytest.approx(0.0, abs=1e-6)
    assert const["dci/completeness"] == pytest.approx(0.0, abs=1e-6)
    # Chance: the mean over factors of the largest class share, at most ~ 1/4.
    assert const["dci/informativeness_test"] < 0.3


def test_duplicated_code_lowers_completeness_only(oracle_data):
    # The copies of factor a share its importance: completeness drops, disentanglement stays.
    dup = compute_dci(duplicated_codes, oracle_data, seed=0, **SMALL)
    assert dup["dci/disentanglement"] > 0.95
    assert dup["dci/completeness"] < 0.9


def test_permutation_invariant(oracle_data):
    # Same samples, codes in another order: the same classifiers up to tie-breaking.
    a = compute_dci(identity_codes, oracle_data, seed=1, **SMALL)
    b = compute_dci(permuted_codes, oracle_data, seed=1, **SMALL)
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=0.02)


def test_noisy_identity_stays_high(oracle_data):
    scores = compute_dci(noisy_identity_codes, oracle_data, seed=1, **SMALL)
    assert scores["dci/disentanglement"] > 0.9 and scores["dci/completeness"] > 0.9


def test_bad_input():
    f = np.array([[0, 1], [1, 0]] * 10)
    with pytest.raises(ValueError, match="classifier"):
        dci(np.eye(20, 2), f, np.eye(20, 2), f, classifier="xgboost")
    with pytest.raises(ValueError, match="codes_test has 3 codes"):
        dci(np.eye(20, 2), f, np.eye(20, 3), f)
    with pytest.raises(ValueError, match="factors_train"):
        dci(np.eye(20, 2), np.zeros((20, 2), dtype=int), np.eye(20, 2), f)
    with pytest.raises(ValueError, match="importance"):
        disentanglement(np.array([[-1.0, 1.0]]))


def _reference_dci(codes_train, factors_train, codes_test, factors_test):
    """DCI as written out from its definition: one GradientBoostingClassifier per factor."""
    from sklearn.ensemble import GradientBoostingClassifier

    columns, train_acc, test_acc = [], [], []
    for j in range(factors_train.shape[1]):
        model = GradientBoostingClassifier(random_state=0).fit(codes_train, factors_train[:, j])
        columns.append(np.abs(model.feature_importances_))
        train_acc.append(np.mean(model.predict(codes_train) == factors_train[:, j]))
        test_acc.append(np.mean(model.predict(codes_test) == factors_test[:, j]))
    importance = np.stack(columns, axis=1)
    return {
        "dci/disentanglement": disentanglement(importance),
        "dci/completeness": completeness(importance),
        "dci/informativeness_train": float(np.mean(train_acc)),
        "dci/informativeness_test": float(np.mean(test_acc)),
    }


def test_shared_fits_equal_the_reference_exactly(oracle_data):
    from deft_tune.metrics.dci import start_dci

    rng = np.random.default_rng(0)
    factors = oracle_data.sample_factors(300, rng)
    codes = noisy_identity_codes(oracle_data.sample_observations_from_factors(factors, rng))
    mixed = codes @ rng.normal(size=(3, 4))
    problems = [(c[:200], factors[:200], c[200:], factors[200:]) for c in (codes, mixed)]
    expected = [_reference_dci(*p) for p in problems]
    assert dci(*problems[1]) == expected[1]
    # Both problems' six fits shared by this process and a worker, longest first.
    assert start_dci(problems, n_jobs=2).result() == expected
    fast = start_dci(problems, "hist_gbt", n_jobs=1).result()
    assert start_dci(problems, "hist_gbt", n_jobs=2).result() == fast
