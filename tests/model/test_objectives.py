import math

import numpy as np
import pytest
import torch

from deft_tune.config import ObjectiveConfig
from deft_tune.model.objectives import (
    kl_per_latent,
    objective_loss,
    total_correlation,
)
from deft_tune.schedules import annealed_capacity


def test_kl_is_zero_at_the_prior_and_matches_hand_values():
    mean = torch.tensor([[0.0, 1.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0, math.log(2.0)]])
    # 0; 0.5 * 1; 0.5 * (2 - ln 2 - 1)
    expected = [0.0, 0.5, 0.5 * (1 - math.log(2))]
    assert kl_per_latent(mean, logvar)[0].tolist() == pytest.approx(expected)


def _tc_oracle(z, mean, logvar):
    """Plain loops over the minibatch-weighted-sampling formula."""
    n, d = z.shape
    var = np.exp(logvar)

    def log_normal(x, m, v):
        return -0.5 * (math.log(2 * math.pi * v) + (x - m) ** 2 / v)

    total = 0.0
    for i in range(n):
        joint = [
            sum(log_normal(z[i, k], mean[j, k], var[j, k]) for k in range(d)) for j in range(n)
        ]
        log_qz = np.logaddexp.reduce(joint)
        log_prod = sum(
            np.logaddexp.reduce([log_normal(z[i, k], mean[j, k], var[j, k]) for j in range(n)])
            for k in range(d)
        )
        total += log_qz - log_prod
    return total / n


def test_total_correlation_matches_loop_oracle():
    rng = np.random.default_rng(0)
    z, mean, logvar = (rng.normal(size=(5, 3)) for _ in range(3))
    got = total_correlation(*(torch.tensor(a) for a in (z, mean, logvar))).item()
    assert got == pytest.approx(_tc_oracle(z, mean, logvar), rel=1e-10)


def test_total_correlation_of_one_latent_is_zero():
    z = torch.randn(6, 1, dtype=torch.float64)
    assert total_correlation(z, z * 0.5, torch.zeros_like(z)).item() == pytest.approx(0, abs=1e-12)


def test_beta_vae_deft_and_annealed_losses_by_hand():
    recon = torch.tensor([10.0, 20.0])
    kl = torch.tensor([[1.0, 2.0], [3.0, 0.0]])  # per-sample sums 3, 3 -> mean 3
    z = mean = logvar = torch.zeros(2, 2)
    for kind in ("beta_vae", "deft"):
        loss = objective_loss(
            ObjectiveConfig(kind=kind), recon, kl, z, mean, logvar, beta=4.0, step=0
        )
        assert loss.item() == 15 + 4 * 3
    annealed = ObjectiveConfig(
        kind="annealed_vae", capacity_max=25, capacity_steps=100, capacity_weight=100
    )
    assert annealed_capacity(annealed, 50) == 12.5
    assert annealed_capacity(annealed, 500) == 25
    loss = objective_loss(annealed, recon, kl, z, mean, logvar, beta=1.0, step=50)
    assert loss.item() == 15 + 100 * abs(3 - 12.5)


def test_beta_tcvae_adds_beta_minus_one_times_tc():
    torch.manual_seed(1)
    z, mean, logvar = torch.randn(8, 3), torch.randn(8, 3), torch.randn(8, 3) * 0.1
    recon = torch.ones(8)
    kl = kl_per_latent(mean, logvar)
    loss = objective_loss(
        ObjectiveConfig(kind="beta_tcvae"), recon, kl, z, mean, logvar, beta=6.0, step=0
    )
    expected = 1 + kl.sum(1).mean() + 5 * total_correlation(z, mean, logvar)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
