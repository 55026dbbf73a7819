import numpy as np
import pytest
import torch

from deft_tune.metrics._sampling import sample_codes
from deft_tune.metrics.beta_vae import compute_beta_vae
from deft_tune.metrics.factor_vae import compute_factor_vae
from tests.doubles import identity_codes


@pytest.mark.parametrize(
    "to_codes, dtype",
    [
        (lambda obs: identity_codes(obs), np.float32),  # the oracle's observations are float32
        (lambda obs: torch.from_numpy(identity_codes(obs)), np.float32),
        (lambda obs: identity_codes(obs).astype(np.float64), np.float64),
        (lambda obs: identity_codes(obs).astype(np.int32), np.float64),
        (lambda obs: identity_codes(obs).astype(np.float16), np.float64),
    ],
)
def test_float32_codes_reach_the_metrics_as_float32(oracle_data, to_codes, dtype):
    # MIG and Modularity bin what the encoder gave; only float32 is kept, the rest is float64.
    codes, factors = sample_codes(oracle_data, to_codes, 50, np.random.default_rng(0))
    assert codes.dtype == dtype
    np.testing.assert_array_equal(codes, factors)  # small integers: exact in every dtype


def _noisy32(observations):
    f = observations[:, :, 0, 0]
    return (f + np.sin(np.arange(f.size).reshape(f.shape)) * np.float32(0.3)).astype(np.float32)


@pytest.mark.parametrize(
    "compute, sizes",
    [
        (compute_beta_vae, {"batch_size": 8, "num_train": 60, "num_eval": 30}),
        (compute_factor_vae, {"batch_size": 8, "num_train": 60, "num_eval": 30}),
    ],
)
def test_scores_without_binning_ignore_the_codes_precision(oracle_data, compute, sizes):
    # BetaVAE features and FactorVAE variances are computed in float64 from either dtype.
    narrow = compute(_noisy32, oracle_data, seed=0, **sizes)
    wide = compute(lambda o: _noisy32(o).astype(np.float64), oracle_data, seed=0, **sizes)
    assert narrow == wide
