import numpy as np
import pytest

from deft_tune.metrics._sampling import sample_train_test
from deft_tune.metrics.sap import compute_sap, sap, sap_from_scores, score_matrix
from tests.doubles import constant_codes, duplicated_codes, identity_codes, permuted_codes

SMALL = {"num_train": 1000, "num_test": 500}


def test_sap_from_hand_made_scores():
    scores = np.array([[0.9, 0.2], [0.5, 0.3], [0.1, 0.8]])
    # factor 0: 0.9 - 0.5; factor 1: 0.8 - 0.3.
    assert sap_from_scores(scores) == pytest.approx((0.4 + 0.5) / 2)


def test_binary_factor_is_read_perfectly_from_its_code():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 2, size=(400, 2))
    codes = np.column_stack([factors[:, 0] * 2.0 - 1.0, rng.normal(size=400)])
    scores = score_matrix(codes[:300], factors[:300], codes[300:], factors[300:])
    assert scores[0, 0] == 1.0  # a threshold on code 0 separates the classes exactly
    assert scores[1, 0] < 0.7  # noise predicts about half


def test_constant_codes_score_zero(oracle_data):
    assert compute_sap(constant_codes, oracle_data, seed=0, **SMALL)["sap"] == 0.0


def test_duplicate_removes_exactly_its_factor_gap(oracle_data):
    # Same seed, same samples: the duplicated code has the same accuracies as its copy, so
    # factor a's gap becomes 0 and SAP loses exactly gap_a / 3.
    rng = np.random.default_rng(0)
    (c, f), (ct, ft) = sample_train_test(oracle_data, identity_codes, 1000, 500, rng)
    scores = score_matrix(c, f, ct, ft)
    ordered = np.sort(scores, axis=0)
    gap_a = ordered[-1, 0] - ordered[-2, 0]
    ident = compute_sap(identity_codes, oracle_data, seed=0, **SMALL)["sap"]
    dup = compute_sap(duplicated_codes, oracle_data, seed=0, **SMALL)["sap"]
    assert ident == pytest.approx(sap_from_scores(scores))
    assert gap_a > 0.2
    assert dup == pytest.approx(ident - gap_a / 3)


def test_permuting_codes_changes_nothing(oracle_data):
    a = compute_sap(identity_codes, oracle_data, seed=2, **SMALL)
    assert a == compute_sap(permuted_codes, oracle_data, seed=2, **SMALL)


def test_bad_input():
    f = np.array([[0, 1], [1, 0]] * 10)
    with pytest.raises(ValueError, match="at least 2"):
        sap(np.zeros((20, 1)), f, np.zeros((20, 1)), f)
    with pytest.raises(ValueError, match="codes_test and factors_test"):
        sap(np.zeros((20, 2)), f, np.zeros((19, 2)), f)
