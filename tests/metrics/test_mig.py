import numpy as np
import pytest

from deft_tune.metrics.mig import compute_mig, mig, mig_from_mi
from tests.doubles import (
    EDGE_CODES,
    EDGE_FACTOR,
    constant_codes,
    duplicated_codes,
    identity_codes,
    permuted_codes,
)


def test_mig_from_hand_made_mi_matrix():
    mi = np.array([[0.6, 0.2, 0.1], [0.3, 0.3, 0.0]])
    entropies = np.array([1.2, 0.6])
    # factor 0: (0.6 - 0.2) / 1.2 = 1/3; factor 1: (0.3 - 0.3) / 0.6 = 0.
    assert mig_from_mi(mi, entropies) == pytest.approx((1 / 3 + 0) / 2)


def test_float32_codes_are_binned_in_float32():
    # One code, one factor: MIG = MI / H(factor), H = ln 2 (see tests/doubles.py for the bins).
    factors = EDGE_FACTOR[:, None]
    assert mig(EDGE_CODES, factors, bins=10)["mig"] == pytest.approx(1.0)
    assert mig(EDGE_CODES.astype(np.float64), factors, bins=10)["mig"] == pytest.approx(0.6)


def test_identity_scores_near_one(oracle_data):
    # Each factor lands in its own bins (<= 6 values, 20 bins), so MI(f, code f) = H(f); the
    # other codes are independent of f, leaving only the small plug-in bias of the estimate.
    score = compute_mig(identity_codes, oracle_data, seed=0, num_train=5000)["mig"]
    assert 0.99 < score <= 1.0


def test_constant_codes_score_zero(oracle_data):
    assert compute_mig(constant_codes, oracle_data, seed=0, num_train=2000)["mig"] == 0.0


def test_duplicated_code_removes_its_factor_gap(oracle_data):
    # Factor a is copied into two codes: its gap is exactly 0; b and c keep theirs (~1).
    score = compute_mig(duplicated_codes, oracle_data, seed=0, num_train=5000)["mig"]
    assert score == pytest.approx(2 / 3, abs=0.01)


def test_permuting_codes_changes_nothing(oracle_data):
    a = compute_mig(identity_codes, oracle_data, seed=3, num_train=2000)
    b = compute_mig(permuted_codes, oracle_data, seed=3, num_train=2000)
    assert a == b


def test_bad_input():
    factors = np.array([[0, 1], [1, 0]] * 20)
    with pytest.raises(ValueError, match="same number of samples"):
        mig(np.zeros((39, 2)), factors)
    with pytest.raises(ValueError, match="NaN"):
        mig(np.full((40, 2), np.nan), factors)
    with pytest.raises(ValueError, match=r"factors\[:, 1\] takes 1 distinct"):
        mig(np.zeros((40, 2)), np.column_stack([factors[:, 0], np.zeros(40, dtype=int)]))
    with pytest.raises(ValueError, match="fewer than bins"):
        mig(np.zeros((10, 2)), factors[:10])
