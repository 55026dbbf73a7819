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


# float32 codes on which float32 and float64 binning disagree (10 samples, bins=10, edges at
# min 0 + i * (max 1 - 0) / 10). float32(0.7) = 0.699999988079071. The float32 edge 7 is
# float32(7 * float32(0.1)) = float32(0.70000001043) = 0.699999988079071 as well, so the code
# sits on it and opens bin 8; the float64 edge 7 is 7 * 0.1 = 0.7000000000000001, above the
# code, which stays in bin 7 with float32(0.65) = 0.6499999762 (in [0.6, 0.7) either way).
EDGE_CODES = np.array([0.0] * 3 + [0.65] * 2 + [0.7] * 2 + [1.0] * 3, dtype=np.float32)[:, None]
EDGE_BINS_FLOAT32 = [1, 1, 1, 7, 7, 8, 8, 10, 10, 10]
EDGE_BINS_FLOAT64 = [1, 1, 1, 7, 7, 7, 7, 10, 10, 10]
# A factor that the float32 bins separate exactly (0.65 -> 0, 0.7 -> 1) and the float64 bins
# mix in bin 7: MI = ln 2 with float32 bins, ln 2 - 0.4 ln 2 = 0.6 ln 2 with float64 bins.
EDGE_FACTOR = np.array([0] * 5 + [1] * 5)
