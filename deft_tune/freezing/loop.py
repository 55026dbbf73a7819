"""The small training loop of the annealing test: a plain VAE under an annealed beta.

It reuses the model's encoder, decoder and losses, but not the staged trainer: the test needs
no groups, stages, probes or checkpoints, only beta(t) = beta_max · exp(-gamma · t / T) + 1 and
a log of beta, KL per latent and reconstruction at every logged step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from deft_tune.errors import ConfigError, TrainingError
from deft_tune.model.networks import Decoder, Encoder, reconstruction_loss
from deft_tune.model.objectives import kl_per_latent

__all__ = ["AnnealingConfig", "Curve", "anneal"]


@dataclass(frozen=True)
class AnnealingConfig:
    """Settings of one annealing run; defaults are the authors' (beta 70 -> 1 over 8,000 steps)."""

    beta_max: float = 70.0
    gamma: float = 15.0
    steps: int = 8000
    batch_size: int = 64
    lr: float = 5e-4
    latents: int = 1
    encoder_width: int = 32
    decoder_width: int = 32
    loss: Literal["bernoulli", "gaussian"] = "bernoulli"
    # The IFP: first beta at which the smoothed KL rises past `threshold` nats and stays.
    threshold: float = 0.1
    window: int | None = None  # smoothing window in steps; None: about 0.6% of the run
    log_every: int = 1

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "latents",
            "encoder_width",
            "decoder_width",
            "log_every",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"annealing {name} == {value!r}, must be an integer >= 1")
        for name in ("beta_max", "gamma", "lr", "threshold"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"annealing {name} == {value!r}, must be a number > 0")
        if self.window is not None and (not isinstance(self.window, int) or self.window < 1):
            raise ConfigError(
                f"annealing window == {self.window!r}, must be an integer >= 1 or None (automatic)"
            )
        if self.loss not in ("bernoulli", "gaussian"):
            raise ConfigError(f"annealing loss == {self.loss!r}, must be 'bernoulli' or 'gaussian'")

    def beta_at(self, step: int | np.ndarray) -> float | np.ndarray:
        """beta_max · exp(-gamma · step / steps) + 1: never below 1, beta_max + 1 at step 0."""
        return self.beta_max * np.exp(-self.gamma * np.asarray(step) / self.steps) + 1.0


@dataclass(frozen=True, eq=False)
class Curve:
    """What one run logged: per logged step the beta, KL per latent (nats) and reconstruction."""

    steps: np.ndarray  # (m,) int
    betas: np.ndarray  # (m,)
    kl: np.ndarray  # (m, latents), batch means
    recon: np.ndarray  # (m,), batch mean per image


def anneal(
    sample: Callable[[torch.Generator], torch.Tensor],
    channels: int,
    config: AnnealingConfig,
    seed: int,
    latents: int = 1,
) -> Curve:
    """Train a VAE under the annealed beta on batches from ``sample(generator)``.

    All randomness (initial weights, batches, reparameterisation noise) comes from ``seed``;
    the global torch RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = Encoder(channels, latents, config.encoder_width)
        decoder = Decoder(latents, channels, config.decoder_width)
    generator = torch.Generator().manual_seed(seed)
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    logged = range(0, config.steps, config.log_every)
    kl_log = np.empty((len(logged), latents))
    recon_log = np.empty(len(logged))
    for step in range(config.steps):
        beta = float(config.beta_at(step))
        images = sample(generator)
        mean, logvar = encoder(images)
        noise = torch.randn(mean.shape, generator=generator)
        z = mean + torch.exp(0.5 * logvar) * noise
        recon = reconstruction_loss(decoder(z), images, config.loss).mean()
        kl = kl_per_latent(mean, logvar).mean(0)
        loss = recon + beta * kl.sum()
        if not torch.isfinite(loss):
            raise TrainingError(
                f"annealing run (seed {seed}) diverged at step {step}, "
                f"beta {beta:.3g}: lower the learning rate (lr={config.lr})"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % config.log_every == 0:
            row = step // config.log_every
            kl_log[row] = kl.detach().numpy()
            recon_log[row] = recon.item()
    steps = np.asarray(logged, dtype=np.int64)
    return Curve(
        steps=steps,
        betas=np.asarray(config.beta_at(steps), dtype=np.float64),
        kl=kl_log,
        recon=recon_log,
    )
