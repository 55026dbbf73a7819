"""The IFP detector on synthetic KL curves whose freezing point is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deft_tune.freezing import default_window, find_freezing_point, running_median

T = 1000
JUMP = 400


def annealed_betas(steps: int = T) -> np.ndarray:
    t = np.arange(steps)
    return 70.0 * np.exp(-15.0 * t / steps) + 1.0


def curve_with_jump(noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """KL near 0 (|noise| < threshold) before JUMP, rising from 0.5 nats after it."""
    rng = np.random.default_rng(seed)
    kl = rng.uniform(0.0, noise, size=T)
    kl[JUMP:] += 0.5 + np.linspace(0.0, 3.0, T - JUMP)
    return kl


def test_recovers_a_known_jump_exactly():
    betas = annealed_betas()
    point = find_freezing_point(betas, curve_with_jump(), threshold=0.1, window=5)
    assert point.found and point.index == JUMP
    assert point.beta == betas[JUMP]


def test_ignores_a_single_step_spike():
    betas = annealed_betas()
    kl = curve_with_jump()
    kl[100] = 8.0
    assert find_freezing_point(betas, kl, threshold=0.1, window=5).index == JUMP
    # Without smoothing the spike would have counted if it were long enough to hold.
    assert find_freezing_point(betas, kl, threshold=0.1, window=1, hold=1).index == 100


def test_ignores_an_excursion_that_falls_back():
    kl = curve_with_jump()
    kl[200:204] = 2.0  # four steps up, then back: a median of 5 is above at 200..203 only
    assert find_freezing_point(annealed_betas(), kl, window=5, hold=5).index == JUMP
    assert find_freezing_point(annealed_betas(), kl, window=5, hold=4).index == 200


def test_a_start_up_transient_that_collapses_is_not_a_freezing_point():
    kl = curve_with_jump()
    kl[:60] = np.linspace(2.0, 0.0, 60)  # a fresh encoder's KL, squeezed out by the high beta
    assert find_freezing_point(annealed_betas(), kl, window=5).index == JUMP


def test_never_freezing_gives_nan():
    point = find_freezing_point(annealed_betas(), np.full(T, 0.05), threshold=0.1)
    assert not point.found and point.index is None and math.isnan(point.beta)


def test_a_rise_at_the_very_end_counts_if_it_lasts_to_the_end():
    kl = np.zeros(50)
    kl[47:] = 1.0
    point = find_freezing_point(np.arange(50.0)[::-1], kl, window=3, hold=10)
    assert point.index == 47 and point.beta == 2.0


def test_running_median_hand_computed():
    np.testing.assert_array_equal(running_median(np.array([0, 0, 9, 0, 0.0]), 3), np.zeros(5))
    np.testing.assert_array_equal(running_median(np.arange(1, 6.0), 3), [1.5, 2, 3, 4, 4.5])
    np.testing.assert_array_equal(running_median(np.arange(1, 6.0), 1), np.arange(1, 6.0))


def test_default_window():
    assert default_window(8000) == 50
    assert default_window(100) == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kl": np.zeros(3)}, "same length"),
        ({"kl": np.array([0, np.nan, 0, 0])}, "finite"),
        ({"threshold": 0.0}, "threshold"),
        ({"window": 0}, "window"),
        ({"hold": -1}, "hold"),
    ],
)
def test_bad_input_names_the_argument(kwargs, message):
    args = {"betas": np.arange(4.0), "kl": np.zeros(4), **kwargs}
    with pytest.raises(ValueError, match=message):
        find_freezing_point(**args)
