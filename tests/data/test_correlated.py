"""Correlated dSprites: the factor distribution at both ends exactly, a middle strength
statistically, sampling_weights against hand-computed probabilities; a few renders only."""

from __future__ import annotations

import numpy as np
import pytest

from deft_tune.data import get_dataset
from deft_tune.data.correlated import CorrelatedDSprites, pair_joint, sample_tied, tie_map
from deft_tune.data.dsprites import DSprites, render_masks
from deft_tune.errors import ConfigError

N_OTHERS = 3 * 6 * 32  # shape x scale x pos_y: the factors outside the default pair


def make(correlation=0.0, pair=("pos_x", "orientation"), tmp=None) -> CorrelatedDSprites:
    return CorrelatedDSprites(correlation=correlation, pair=pair, cache_dir=tmp)


def test_tie_map_by_hand():
    assert tie_map(4, 8).tolist() == [0, 2, 4, 6]
    assert tie_map(3, 2).tolist() == [0, 0, 1]
    m = tie_map(32, 40)
    assert (m[0], m[16], m[31]) == (0, 20, 38)  # 31 * 40 // 32 = 38: never wraps to 39 ~ 0
    assert (np.diff(m) >= 0).all()


def test_pair_joint_by_hand():
    joint = pair_joint(2, 4, 0.5)
    # P(a) = 1/2; on the map (a=0 -> 0, a=1 -> 2): 0.5 + 0.5/4, elsewhere 0.5/4
    expected = np.array([[0.625, 0.125, 0.125, 0.125], [0.125, 0.125, 0.625, 0.125]]) / 2
    np.testing.assert_allclose(joint, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(pair_joint(3, 5, 0.3).sum(), 1.0, rtol=1e-15)


def test_correlation_zero_is_exactly_independent():
    data = make(0.0)
    weights = data.sampling_weights()
    assert weights.shape == (737_280,)
    assert np.ptp(weights) == 0.0 and weights[0] == pytest.approx(1 / 737_280, rel=1e-14)
    # the draws of b never look at a: same rng, same b whatever a was
    a1, a2 = np.zeros(1000, np.int64), np.full(1000, 31)
    b1 = sample_tied(a1, 32, 40, 0.0, np.random.default_rng(7))
    b2 = sample_tied(a2, 32, 40, 0.0, np.random.default_rng(7))
    np.testing.assert_array_equal(b1, b2)
    assert set(b1.tolist()) == set(range(40))


def test_correlation_one_is_deterministic():
    data = make(1.0)
    factors = data.sample_factors(5000, np.random.default_rng(0))
    np.testing.assert_array_equal(factors[:, 2], tie_map(32, 40)[factors[:, 3]])
    assert len(np.unique(factors[:, 3])) == 32  # pos_x itself stays uniform
    weights = data.sampling_weights().reshape(3, 6, 40, 32, 32)
    on_map = np.zeros((40, 32), bool)
    on_map[tie_map(32, 40), np.arange(32)] = True
    assert (weights[:, :, ~on_map, :] == 0).all()
    np.testing.assert_allclose(weights[:, :, on_map, :], 1 / (32 * N_OTHERS), rtol=1e-13)


def test_middle_strength_statistically():
    rho, n = 0.4, 200_000
    data = make(rho)
    factors = data.sample_factors(n, np.random.default_rng(123))
    on = factors[:, 2] == tie_map(32, 40)[factors[:, 3]]
    p = rho + (1 - rho) / 40  # on the map by the tie, or by the uniform draw landing there
    assert abs(on.mean() - p) < 4 * np.sqrt(p * (1 - p) / n)
    off = factors[~on, 2]  # off the map, b is uniform over the 39 other values
    counts = np.bincount(off, minlength=40)
    assert counts.max() / counts[counts > 0].min() < 1.3
    for j in (0, 1, 4):  # the untied factors stay uniform
        freq = np.bincount(factors[:, j]) / n
        np.testing.assert_allclose(freq, 1 / data.factor_sizes[j], atol=0.01)


def test_sampling_weights_match_the_hand_computed_joint():
    data = make(0.25, pair=("orientation", "scale"))  # a before b in grid order, not default
    weights = data.sampling_weights()
    assert weights.sum() == pytest.approx(1.0, rel=1e-12)
    grid = weights.reshape(3, 6, 40, 32, 32)
    others = 3 * 32 * 32
    # orientation 20 -> scale 20 * 6 // 40 = 3: on the map 0.25 + 0.75/6, off it 0.75/6
    assert grid[1, 3, 20, 5, 7] == pytest.approx((0.25 + 0.75 / 6) / 40 / others, rel=1e-12)
    assert grid[2, 0, 20, 0, 31] == pytest.approx((0.75 / 6) / 40 / others, rel=1e-12)
    idx = data.factors_to_index(np.array([[1, 3, 20, 5, 7]]))[0]
    assert weights[idx] == grid[1, 3, 20, 5, 7]


def test_weights_and_samples_agree_on_the_pair_marginal():
    data = make(0.7, pair=("pos_y", "shape"))
    grid = data.sampling_weights().reshape(3, 6, 40, 32, 32)
    np.testing.assert_allclose(grid.sum(axis=(1, 2, 3)).T, data.joint(), rtol=1e-12)
    factors = data.sample_factors(100_000, np.random.default_rng(5))
    empirical = np.zeros((32, 3))
    np.add.at(empirical, (factors[:, 4], factors[:, 0]), 1 / len(factors))
    np.testing.assert_allclose(empirical, data.joint(), atol=0.004)


def test_renders_correlated_samples_as_dsprites_images():
    data = make(1.0)
    factors = data.sample_factors(4, np.random.default_rng(1))
    masks = render_masks(factors)
    assert masks.shape[0] == 4 and masks.reshape(4, -1).any(axis=1).all()
    assert isinstance(data, DSprites)


def test_registry_and_shared_cache(tmp_path):
    data = get_dataset("correlated_dsprites", correlation=0.5, cache_dir=tmp_path)
    assert isinstance(data, CorrelatedDSprites) and data.name == "correlated_dsprites"
    assert data.pair == ("pos_x", "orientation") and data.correlation == 0.5
    assert data.cache_path == DSprites(cache_dir=tmp_path).cache_path
    assert "orientation tied to pos_x with correlation 0.5" in data.description


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"correlation": 1.5}, r"correlation == 1.5, must be a number in \[0, 1\]"),
        ({"correlation": -0.1}, "correlation == -0.1"),
        ({"correlation": float("nan")}, "correlation == nan"),
        ({"correlation": "0.5"}, "correlation == '0.5'"),
        ({"correlation": True}, "correlation == True"),
        ({"pair": ("pos_x", "colour")}, "unknown factor 'colour'; choose from shape, scale"),
        ({"pair": ("pos_x", "pos_x")}, "two different factor names"),
        ({"pair": "pos_x"}, "two different factor names"),
        ({"pair": ("shape", "scale", "pos_x")}, "two different factor names"),
    ],
)
def test_rejects_bad_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CorrelatedDSprites(**kwargs)
