import math

import numpy as np
import pytest
import torch

from deft_tune.metrics.unsupervised import active_latents, kl_per_latent, tc_decomposition


def test_kl_per_latent_by_hand():
    mu = np.array([[1.0, 0.0], [-1.0, 0.0]])
    logvar = np.array([[0.0, math.log(2)], [0.0, math.log(2)]])
    # latent 0: 0.5 (1 + 1 - 0 - 1) = 0.5; latent 1: 0.5 (0 + 2 - ln 2 - 1).
    np.testing.assert_allclose(kl_per_latent(mu, logvar), [0.5, 0.5 * (1 - math.log(2))])


def test_kl_accepts_torch_tensors():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    np.testing.assert_allclose(kl_per_latent(mu, logvar), np.zeros(3))


def test_active_latents_uses_variance_of_the_mean():
    mu = np.column_stack([[0.0, 0.1, 0.0, 0.1], [0.0, 0.3, 0.0, 0.3], np.ones(4)])
    # variances (ddof 0): 0.0025, 0.0225, 0.
    assert active_latents(mu) == 1
    assert active_latents(mu, threshold=0.002) == 2


def _brute_force(z, mu, logvar, n_data):
    """The MWS formulas written out with loops, as in Chen et al. (2018), eq. S6."""
    n, d = z.shape

    def logq(i, j, k):
        var = math.exp(logvar[j, k])
        return -0.5 * (math.log(2 * math.pi * var) + (z[i, k] - mu[j, k]) ** 2 / var)

    mi = tc = dwkl = 0.0
    for i in range(n):
        log_qz = math.log(
            sum(math.exp(sum(logq(i, j, k) for k in range(d))) for j in range(n)) / (n * n_data)
        )
        log_qzk = [
            math.log(sum(math.exp(logq(i, j, k)) for j in range(n)) / (n * n_data))
            for k in range(d)
        ]
        log_cond = sum(logq(i, i, k) for k in range(d))
        log_p = sum(-0.5 * (math.log(2 * math.pi) + z[i, k] ** 2) for k in range(d))
        mi += (log_cond - log_qz) / n
        tc += (log_qz - sum(log_qzk)) / n
        dwkl += (sum(log_qzk) - log_p) / n
    return mi, tc, dwkl


def test_tc_decomposition_matches_the_written_out_estimator():
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(5, 3)), rng.normal(0, 0.5, size=(5, 3))
    z = mu + np.exp(0.5 * logvar) * rng.normal(size=(5, 3))
    got = tc_decomposition(z, mu, logvar, dataset_size=100)
    want = _brute_force(z, mu, logvar, 100)
    assert [got["mutual_info"], got["total_correlation"], got["dimensionwise_kl"]] == pytest.approx(
        want, rel=1e-10
    )


def test_single_sample_total_correlation_is_exact():
    # With a batch of one, log q(z) = log q(z|x) - log N and each marginal loses log N too:
    # TC = (d - 1) log N exactly, MI = log N.
    z = mu = np.array([[0.3, -1.0, 2.0]])
    got = tc_decomposition(z, mu, np.zeros((1, 3)), dataset_size=50)
    assert got["total_correlation"] == pytest.approx(2 * math.log(50))
    assert got["mutual_info"] == pytest.approx(math.log(50))


def test_bad_input():
    with pytest.raises(ValueError, match="mu and logvar"):
        kl_per_latent(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="dataset_size"):
        tc_decomposition(np.zeros((4, 2)), np.zeros((4, 2)), np.zeros((4, 2)), dataset_size=3)
    with pytest.raises(ValueError, match="NaN"):
        tc_decomposition(np.full((4, 2), np.nan), np.zeros((4, 2)), np.zeros((4, 2)), 10)
    with pytest.raises(ValueError, match="at least 2 samples"):
        active_latents(np.zeros((1, 2)))
