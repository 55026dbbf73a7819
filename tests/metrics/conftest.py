"""Oracle data for the metric tests: a grid whose observations are its own factors."""

from __future__ import annotations

import numpy as np
import pytest

from deft_tune.data.base import GridData


class FactorsAsObservations(GridData):
    """Observation of factors f is f itself as a float (n, k, 1, 1) array.

    Every representation is then a known function of the factors, so the expected score of an
    identity, constant, duplicated or permuted representation follows from the definitions.
    """

    name = "factors_as_observations"
    factor_names = ("a", "b", "c")
    factor_sizes = (4, 5, 6)
    observation_shape = (3, 1, 1)

    def sample_observations_from_factors(self, factors, rng):
        factors = self.check_factors(factors)
        return factors.astype(np.float32)[:, :, None, None]


def identity_codes(observations: np.ndarray) -> np.ndarray:
    return observations[:, :, 0, 0]


def constant_codes(observations: np.ndarray) -> np.ndarray:
    return np.zeros((observations.shape[0], 3), dtype=np.float32)


def duplicated_codes(observations: np.ndarray) -> np.ndarray:
    """Factor a twice (codes 0 and 1), then b and c."""
    f = observations[:, :, 0, 0]
    return np.concatenate([f[:, :1], f], axis=1)


def permuted_codes(observations: np.ndarray) -> np.ndarray:
    return observations[:, [2, 0, 1], 0, 0]


def noisy_identity_codes(observations: np.ndarray) -> np.ndarray:
    """Identity plus a little noise derived from the input, so it stays deterministic."""
    f = observations[:, :, 0, 0].astype(np.float64)
    jitter = np.sin(np.arange(f.size).reshape(f.shape) * 12.9898) * 0.05
    return f + jitter


@pytest.fixture
def oracle_data() -> FactorsAsObservations:
    return FactorsAsObservations()
