"""The training objectives: beta-VAE, AnnealedVAE, beta-TCVAE and DEFT.

All four share the reconstruction term and the Gaussian KL against N(0, I); they differ only in
how the KL enters the loss. DEFT is beta-VAE with the beta of the current stage, so a DEFT run
with one stage and one group is a beta-VAE run (tested end to end).
"""

from __future__ import annotations

import math

import torch

from deft_tune.config import ObjectiveConfig
from deft_tune.schedules import annealed_capacity

__all__ = [
    "gaussian_log_density",
    "kl_per_latent",
    "objective_loss",
    "total_correlation",
]

_LOG_2PI = math.log(2 * math.pi)


def kl_per_latent(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per sample and latent, (n, d) in nats."""
    return 0.5 * (mean.square() + logvar.exp() - logvar - 1)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, exp(logvar)) (broadcasting)."""
    return -0.5 * (_LOG_2PI + logvar + (x - mean).square() * torch.exp(-logvar))


def total_correlation(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Minibatch-weighted-sampling estimate of TC(q(z)) (Chen et al. 2018), a scalar.

    q(z_i) is estimated by the average over the batch of q(z_i | x_j); the normalising constants
    log(N·M) are dropped as in disentanglement_lib (they shift the estimate by a constant,
    leaving the gradients unchanged).
    """
    if z.ndim != 2 or z.shape != mean.shape or z.shape != logvar.shape:
        raise ValueError(
            f"z, mean, logvar must share one (n, d) shape, got {tuple(z.shape)}, "
            f"{tuple(mean.shape)}, {tuple(logvar.shape)}"
        )
    # log q(z_i[d] | x_j) for every pair (i, j): (n, n, d).
    log_q_pairs = gaussian_log_density(z[:, None, :], mean[None, :, :], logvar[None, :, :])
    log_qz = torch.logsumexp(log_q_pairs.sum(2), dim=1)
    log_qz_product = torch.logsumexp(log_q_pairs, dim=1).sum(1)
    return (log_qz - log_qz_product).mean()


def objective_loss(
    objective: ObjectiveConfig,
    recon: torch.Tensor,
    kl: torch.Tensor,
    z: torch.Tensor,
    mean: torch.Tensor,
    logvar: torch.Tensor,
    *,
    beta: float,
    step: int,
) -> torch.Tensor:
    """The scalar loss to minimise (batch mean).

    ``recon`` is the per-sample reconstruction loss (n,), ``kl`` the per-sample, per-latent KL
    (n, d); ``beta`` is the KL weight of beta-VAE, beta-TCVAE (objective.beta) and DEFT (the
    schedule's beta at ``step``); AnnealedVAE uses its capacity settings instead.
    """
    recon_mean = recon.mean()
    kl_mean = kl.sum(1).mean()
    kind = objective.kind
    if kind in ("beta_vae", "deft"):
        return recon_mean + beta * kl_mean
    if kind == "annealed_vae":
        capacity = annealed_capacity(objective, step)
        return recon_mean + objective.capacity_weight * (kl_mean - capacity).abs()
    if kind == "beta_tcvae":
        # beta-TCVAE as in disentanglement_lib: ELBO + (beta - 1) * TC.
        return recon_mean + kl_mean + (beta - 1) * total_correlation(z, mean, logvar)
    raise ValueError(f"objective.kind == {kind!r} is not an objective")
