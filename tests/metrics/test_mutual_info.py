import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from deft_tune.metrics.mutual_info import (
    discretize,
    entropies,
    mutual_info_matrix,
    normalized_top2,
)
from tests.doubles import EDGE_BINS_FLOAT32, EDGE_BINS_FLOAT64, EDGE_CODES, EDGE_FACTOR


def test_discretize_matches_histogram_edges():
    # 0..9 in 5 bins: edges 0, 1.8, 3.6, 5.4, 7.2, 9 -> digitize on the first five edges.
    codes = np.arange(10.0)[:, None]
    assert discretize(codes, bins=5)[:, 0].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_float32_codes_are_binned_in_float32_as_disentanglement_lib_does():
    assert discretize(EDGE_CODES, bins=10)[:, 0].tolist() == EDGE_BINS_FLOAT32
    assert discretize(EDGE_CODES.astype(np.float64), bins=10)[:, 0].tolist() == EDGE_BINS_FLOAT64


def test_mutual_info_of_float32_codes_uses_float32_bins():
    factors = EDGE_FACTOR[:, None]
    assert mutual_info_matrix(EDGE_CODES, factors, bins=10)[0, 0] == pytest.approx(np.log(2))
    wide = mutual_info_matrix(EDGE_CODES.astype(np.float64), factors, bins=10)[0, 0]
    assert wide == pytest.approx(0.6 * np.log(2))


def test_constant_code_falls_in_one_bin():
    assert np.unique(discretize(np.ones((30, 1)), bins=20)).size == 1


def test_mutual_info_of_a_copied_balanced_binary_factor_is_log2():
    factors = np.array([[0], [1]] * 20)
    mi = mutual_info_matrix(factors.astype(float), factors, bins=2)
    assert mi.shape == (1, 1)
    assert mi[0, 0] == pytest.approx(np.log(2))


def test_mutual_info_hand_made_joint_table():
    # Joint counts of (factor, code bin): [[2, 1], [0, 1]] over 4 samples.
    # H(f) = H(1/4, 3/4)... f: 3 zeros, 1 one; code: 2 in bin low, 2 in bin high.
    # H(f) = -(3/4 ln 3/4 + 1/4 ln 1/4); H(c) = ln 2; H(f, c) = -(2/4 ln 2/4 + 2 * 1/4 ln 1/4)
    factors = np.array([[0], [0], [0], [1]])
    codes = np.array([[0.0], [0.0], [1.0], [1.0]])
    h_f = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    h_fc = -(0.5 * np.log(0.5) + 2 * 0.25 * np.log(0.25))
    expected = h_f + np.log(2) - h_fc
    assert mutual_info_matrix(codes, factors, bins=2)[0, 0] == pytest.approx(expected)


def test_mutual_info_matrix_agrees_with_sklearn_on_discretised_codes():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 5, size=(500, 3))
    codes = np.column_stack(
        [
            factors[:, 0] + rng.normal(0, 0.5, 500),
            rng.normal(size=500),
            factors[:, 2] * 2.0,
            np.zeros(500),
        ]
    )
    discrete = discretize(codes, bins=20)
    expected = np.array([[mutual_info_score(f, c) for c in discrete.T] for f in factors.T])
    np.testing.assert_allclose(mutual_info_matrix(codes, factors), expected, atol=1e-12)


def test_entropies_hand_values():
    labels = np.array([[0, 0], [1, 0], [2, 0], [3, 1]])
    h = entropies(labels)
    assert h[0] == pytest.approx(np.log(4))
    assert h[1] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))


def test_normalized_top2_exact():
    mi = np.array([[0.2, 0.6, 0.4], [0.0, 0.0, 0.5]])
    h = np.array([0.8, 1.0])
    nmi1, nmi2 = normalized_top2(mi, h)
    np.testing.assert_allclose(nmi1, [0.75, 0.5])  # 0.6/0.8, 0.5/1
    np.testing.assert_allclose(nmi2, [0.5, 0.0])  # 0.4/0.8, 0/1


def test_normalized_top2_single_code_has_zero_second():
    nmi1, nmi2 = normalized_top2(np.array([[0.3]]), np.array([0.6]))
    assert nmi1.tolist() == [0.5] and nmi2.tolist() == [0.0]


@pytest.mark.parametrize(
    "codes, factors, bins, match",
    [
        (np.zeros((10, 2)), np.zeros((9, 1), dtype=int), 2, "same number of samples"),
        (np.array([[np.nan], [1.0], [2.0]]), np.array([[0], [1], [0]]), 2, "NaN"),
        (np.zeros((5, 2)), np.zeros((5, 1), dtype=int), 20, "fewer than bins"),
        (np.zeros((5, 2)), np.zeros((5, 1)), 2, "integer"),
        (np.zeros(5), np.zeros((5, 1), dtype=int), 2, r"codes must have shape"),
    ],
)
def test_bad_input_names_the_argument(codes, factors, bins, match):
    with pytest.raises(ValueError, match=match):
        mutual_info_matrix(codes, factors, bins=bins)


def test_normalized_top2_refuses_zero_entropy():
    with pytest.raises(ValueError, match=r"factor_entropies\[1\]"):
        normalized_top2(np.ones((2, 2)), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="factor_entropies must have shape"):
        normalized_top2(np.ones((2, 2)), np.array([1.0]))
