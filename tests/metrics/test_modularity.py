import numpy as np
import pytest

from deft_tune.metrics.modularity import (
    compute_modularity,
    explicitness_per_factor,
    modularity,
    modularity_from_mi,
)
from tests.doubles import constant_codes, duplicated_codes, identity_codes

SMALL = {"num_train": 1000, "num_test": 500}


def test_modularity_from_hand_made_mi():
    # Rows are factors, columns codes.
    mi = np.array([[0.4, 0.1, 0.0], [0.0, 0.1, 0.0], [0.0, 0.2, 0.0]])
    # code 0: squares (0.16, 0, 0): delta 0 -> 1.
    # code 1: squares (0.01, 0.01, 0.04): delta = (0.06 - 0.04) / (0.04 * 2) = 0.25 -> 0.75.
    # code 2: no information -> 0 by convention.
    assert modularity_from_mi(mi) == pytest.approx((1 + 0.75 + 0) / 3)


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
