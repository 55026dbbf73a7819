"""Label-free information scores of a Gaussian encoder, for a fixed probe batch.

- ``kl_per_latent``: mean over the batch of KL(q(z_i|x) || N(0, 1)) in nats.
- ``active_latents``: Burda et al. (2016)'s count of latents whose mean varies with the input,
  Var_x[mu_i] > threshold (0.01 by default).
- ``tc_decomposition``: the beta-TCVAE split (Chen et al. 2018) of the aggregate KL into index
  code mutual information, total correlation and dimension-wise KL, with the minibatch-weighted
  sampling (MWS) estimator of log q(z): log q(z_i) ~ logsumexp_j log q(z_i|x_j) - log(n N),
  where n is the batch size and N the data set size. MWS is biased for small batches; compare
  values measured with the same batch size and N.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from deft_tune.metrics._checks import check_codes

__all__ = ["active_latents", "gaussian_log_density", "kl_per_latent", "tc_decomposition"]

_LOG_2PI = np.log(2 * np.pi)


def _check_gaussian(mu: np.ndarray, logvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, logvar = check_codes(_numpy(mu), "mu"), check_codes(_numpy(logvar), "logvar")
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have one shape, got {mu.shape} and {logvar.shape}")
    return mu, logvar


def _numpy(x) -> np.ndarray:
    """Arrays and torch tensors alike (the training loop passes tensors)."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def kl_per_latent(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Mean over the batch of 0.5 (mu^2 + exp(logvar) - logvar - 1), shape (d,), nats."""
    mu, logvar = _check_gaussian(mu, logvar)
    return np.mean(0.5 * (mu**2 + np.exp(logvar) - logvar - 1.0), axis=0)


def active_latents(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Number of latents with Var over the batch of the mean > ``threshold`` (Burda et al.)."""
    mu = check_codes(_numpy(mu), "mu")
    if mu.shape[0] < 2:
        raise ValueError(f"mu must hold at least 2 samples to have a variance, got {mu.shape[0]}")
    return int(np.sum(np.var(mu, axis=0) > threshold))


def gaussian_log_density(
    z: np.ndarray, mu: np.ndarray | float, logvar: np.ndarray | float
) -> np.ndarray:
    """Elementwise log N(z; mu, exp(logvar)) with broadcasting."""
    return -0.5 * (_LOG_2PI + logvar + (z - mu) ** 2 * np.exp(-logvar))


def tc_decomposition(
    z: np.ndarray, mu: np.ndarray, logvar: np.ndarray, dataset_size: int
) -> dict[str, float]:
    """MWS estimates (nats) of ``mutual_info``, ``total_correlation``, ``dimensionwise_kl``.

    ``z`` (n, d) is one sample of q(z|x) per row, drawn with ``mu`` and ``logvar`` (n, d).
    """
    mu, logvar = _check_gaussian(mu, logvar)
    z = check_codes(_numpy(z), "z")
    if z.shape != mu.shape:
        raise ValueError(f"z must have the shape of mu {mu.shape}, got {z.shape}")
    if (
        isinstance(dataset_size, bool)
        or not isinstance(dataset_size, (int, np.integer))
        or dataset_size < z.shape[0]
    ):
        raise ValueError(
            f"dataset_size == {dataset_size!r}, must be an integer >= the batch size {z.shape[0]}"
        )
    n = z.shape[0]
    log_norm = np.log(n * float(dataset_size))
    # pairwise[i, j, k] = log q(z_ik | x_j): the batch as a mixture that stands for q(z).
    pairwise = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])
    log_qz_given_x = gaussian_log_density(z, mu, logvar).sum(axis=1)
    log_qz = logsumexp(pairwise.sum(axis=2), axis=1) - log_norm
    log_prod_qzk = (logsumexp(pairwise, axis=1) - log_norm).sum(axis=1)
    log_pz = gaussian_log_density(z, 0.0, 0.0).sum(axis=1)
    return {
        "mutual_info": float(np.mean(log_qz_given_x - log_qz)),
        "total_correlation": float(np.mean(log_qz - log_prod_qzk)),
        "dimensionwise_kl": float(np.mean(log_prod_qzk - log_pz)),
    }
