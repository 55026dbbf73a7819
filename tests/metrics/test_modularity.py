import numpy as np
import pytest

from deft_tune.metrics.modularity import (
    compute_modularity,
    explicitness_per_factor,
    modularity,
    modularity_explicitness,
    modularity_from_mi,
)
from tests.doubles import EDGE_CODES, EDGE_FACTOR, constant_codes, duplicated_codes, identity_codes

SMALL = {"num_train": 1000, "num_test": 500}


def test_modularity_from_hand_made_mi():
    # Rows are factors, columns codes.
    mi = np.array([[0.4, 0.1, 0.0], [0.0, 0.1, 0.0], [0.0, 0.2, 0.0]])
    # code 0: squares (0.16, 0, 0): delta 0 -> 1.
    # code 1: squares (0.01, 0.01, 0.04): delta = (0.06 - 0.04) / (0.04 * 2) = 0.25 -> 0.75.
    # code 2: no information -> 0 by convention.
    assert modularity_from_mi(mi) == pytest.approx((1 + 0.75 + 0) / 3)


def test_float32_codes_are_binned_in_float32():
    # Factor 0 is EDGE_FACTOR (tests/doubles.py): MI ln 2 with float32 bins, 0.6 ln 2 with
    # float64 bins.
    # Factor 1 is 1 exactly on the codes 0.0, which both binnings keep apart: MI = H(0.3).
    factors = np.column_stack([EDGE_FACTOR, [1] * 3 + [0] * 7])
    h3 = -(0.3 * np.log(0.3) + 0.7 * np.log(0.7))  # 0.611, between 0.6 ln 2 and ln 2
    # One code, k = 2: modularity = 1 - (smaller MI / larger MI)^2.
    narrow = 1 - (h3 / np.log(2)) ** 2
    wide = 1 - (0.6 * np.log(2) / h3) ** 2
    assert modularity(EDGE_CODES, factors, bins=10) == pytest.approx(narrow)
    assert modularity(EDGE_CODES.astype(np.float64), factors, bins=10) == pytest.approx(wide)
    both = modularity_explicitness(EDGE_CODES, factors, EDGE_CODES, factors, bins=10)
    assert both["modularity"] == pytest.approx(narrow)


def test_explicitness_perfect_and_chance():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=600)
    x = np.column_stack([y + rng.normal(0, 0.05, 600), rng.normal(size=600)])
    train, test = explicitness_per_factor(x[:400], y[:400], x[400:], y[400:])
    assert train == pytest.approx(1.0) and test == pytest.approx(1.0)
    noise = rng.normal(size=(600, 2))
    train, test = explicitness_per_factor(noise[:400], y[:400], noise[400:], y[400:])
    assert abs(test - 0.5) < 0.1


def test_oracle_codes(oracle_data):
    ident = compute_modularity(identity_codes, oracle_data, seed=0, **SMALL)
    assert ident["modularity"] > 0.99
    assert ident["modularity/explicitness_test"] > 0.95
    const = compute_modularity(constant_codes, oracle_data, seed=0, **SMALL)
    assert const["modularity"] == 0.0
    assert const["modularity/explicitness_test"] == pytest.approx(0.5)
    # A copy of a code informs about one factor just as well: modularity stays high.
    dup = compute_modularity(duplicated_codes, oracle_data, seed=0, **SMALL)
    assert dup["modularity"] > 0.99


def test_bad_input():
    with pytest.raises(ValueError, match="k >= 2"):
        modularity_from_mi(np.ones((1, 3)))
    f = np.array([[0, 1], [1, 0]] * 20)
    with pytest.raises(ValueError, match="NaN"):
        modularity(np.full((40, 2), np.inf), f)
