"""One replica of a run: one model, its optimizer, batches, noise and probe, trained exactly as a
one-replica run with the same seed is.

A run of ``training.replicas`` R trains R of these side by side (:mod:`deft_tune.train`):
replica r takes the seed ``training.seed + r`` for its initialisation, its batch order, its
reparameterisation noise and its probe batch, and shares only the data set (one copy of its
rows on the device) and the schedule.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deft_tune import report_keys as keys
from deft_tune.batches import BatchSource, probe_batch
from deft_tune.config import RunConfig
from deft_tune.data.base import GroundTruthData
from deft_tune.errors import TrainingError
from deft_tune.freezing import InformationTracker
from deft_tune.model import (
    GroupedVAE,
    apply_lr_scales,
    build_model,
    describe_parameter_groups,
    encode_in_chunks,
    encode_with_encoder_output_in_chunks,
    kl_per_latent,
    objective_loss,
    parameter_groups,
    place_model,
    reconstruction_loss,
    run_autocast,
)
from deft_tune.schedules import Position

__all__ = ["EvalContext", "EvalHook", "Replica"]

log = logging.getLogger(__name__)

ACTIVE_KL = 0.1  # nats on the probe batch above which a latent counts as active
ENCODE_BATCH = 512


@dataclass(frozen=True)
class EvalContext:
    """What an eval hook sees at one evaluation of one replica (arrays are host numpy)."""

    step: int
    stage: int
    beta: float
    stage_start: int
    stage_end: int
    kl_per_latent: np.ndarray  # of the means and log-variances the decoder sees
    group_of_latent: np.ndarray
    num_groups: int
    probe_codes: np.ndarray
    probe_factors: np.ndarray | None
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    replica: int = 0
    # KL per latent of the encoders' own output, before a frozen group's projection: what the
    # encoders read from the images (None: the same as kl_per_latent).
    encoder_kl_per_latent: np.ndarray | None = None


EvalHook = Callable[[EvalContext], dict[str, float]]


def _information_tracker(config: RunConfig, data: GroundTruthData) -> InformationTracker:
    names = tuple(getattr(data, "factor_names", ()) or ()) or None
    return InformationTracker(config.model.groups, names)


class Replica:
    """One model of a run; see the module docstring. ``index`` is r, ``seed`` the run's seed + r."""

    def __init__(
        self,
        config: RunConfig,
        data: GroundTruthData,
        device: torch.device,
        index: int,
        hooks: Sequence[EvalHook] = (),
        storage: torch.Tensor | None = None,
    ) -> None:
        self.config, self.data, self.device, self.index = config, data, device, index
        self.seed = config.training.seed + index
        self.tracker = _information_tracker(config, data)
        self.hooks: list[EvalHook] = [self.tracker, *hooks]
        self.channels_last = config.training.memory_format == "channels_last"
        self.model = self._build_model()
        lr = config.training.lr
        self.optimizer = torch.optim.Adam(parameter_groups(self.model, lr), lr=lr)
        batch_size = config.training.batch_size
        self.batches = BatchSource(data, batch_size, self.seed, device, storage)
        self.noise_generator = torch.Generator(device).manual_seed(self.seed + 3)
        probe, factors = probe_batch(data, config.evaluation.probe_size, self.seed)
        self.probe = torch.from_numpy(probe)
        self.probe_factors = factors
        self._sums = torch.zeros(3, dtype=torch.float64, device=device)
        self._steps_summed = 0
        self._bad_step = torch.full((), -1, dtype=torch.int64, device=device)
        self._stage: int | None = None

    def _build_model(self) -> GroupedVAE:
        model = build_model(self.config, self.data.observation_shape, self.seed)
        return place_model(model, self.config, self.device)

    def _autocast(self) -> contextlib.AbstractContextManager:
        return run_autocast(self.config, self.device)

    def enter_stage(self, at: Position) -> None:
        """Open the stage's groups, freeze or slow the earlier ones (a no-op within a stage)."""
        if at.stage == self._stage:
            return
        if self._stage is not None:  # a stage change while training (not a start or a resume)
            self.tracker.begin_stage(at.stage, self._encoder_group_kl())
        self._stage = at.stage
        self.model.encoder.set_stage(at.stage, freeze=at.freeze)
        apply_lr_scales(self.optimizer, at.lr_scales)
        if self.index == 0:  # the same table for every replica
            log.info(
                "step %d: stage %d, parameter groups\n%s",
                at.step,
                at.stage,
                describe_parameter_groups(self.optimizer),
            )

    # --- training ---------------------------------------------------------------------------

    def train_step(self, at: Position) -> None:
        """One optimizer step at ``at`` (the stage must have been entered; the model stays in
        train mode: evaluation restores it)."""
        images = self.batches.next()
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            output, mean, logvar, z = self.model(images, self.noise_generator)
        mean, logvar, z = mean.float(), logvar.float(), z.float()
        recon = reconstruction_loss(output, images, self.config.model.loss)
        kl = kl_per_latent(mean, logvar)
        loss = objective_loss(
            self.config.objective, recon, kl, z, mean, logvar, beta=at.beta, step=at.step
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        terms = torch.stack([loss.detach(), recon.detach().mean(), kl.detach().sum(1).mean()])
        self._sums += terms
        # Remember the first non-finite step on the device; checked at report time.
        bad = ~torch.isfinite(terms).all() & (self._bad_step < 0)
        self._bad_step = torch.where(bad, at.step, self._bad_step)
        self._steps_summed += 1

    def add_losses(self, sums: torch.Tensor, steps: int, bad_step: torch.Tensor) -> None:
        """Fold in loss sums of ``steps`` steps trained elsewhere (the stacked engine): ``sums``
        (loss, reconstruction, KL), ``bad_step`` the first non-finite step or -1."""
        self._sums += sums
        self._bad_step = torch.where(self._bad_step < 0, bad_step, self._bad_step)
        self._steps_summed += steps

    def losses(self) -> dict[str, float]:
        """Losses averaged since the last call (one host sync); TrainingError after a NaN."""
        sums = self._sums.tolist()
        bad_step = int(self._bad_step)
        if bad_step >= 0:
            raise TrainingError(
                f"the loss became NaN or inf at step {bad_step}"
                + (f" (replica {self.index}, seed {self.seed})" if self.index else "")
                + ": lower training.lr or check the data (try precision 'fp32')"
            )
        n = max(self._steps_summed, 1)
        self._sums.zero_()
        self._steps_summed = 0
        return {keys.LOSS: sums[0] / n, keys.RECON: sums[1] / n, keys.KL: sums[2] / n}

    # --- evaluation -------------------------------------------------------------------------

    def encode(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder means and log-variances of host observations, chunk by chunk."""
        return encode_in_chunks(
            self.model, observations, self.device, channels_last=self.channels_last,
            autocast=self._autocast(), chunk_size=ENCODE_BATCH,
        )  # fmt: skip

    def _encoder_group_kl(self) -> np.ndarray:
        """Nats per group on the probe batch of the encoders' own output (before projections)."""
        *_, raw_mean, raw_logvar = self._encode_with_encoder_output(self.probe)
        kl = kl_per_latent(raw_mean, raw_logvar).mean(0).double().cpu().numpy()
        groups = self.model.encoder.group_of_latent().numpy()
        return np.bincount(groups, weights=kl, minlength=self.config.model.groups)

    def _encode_with_encoder_output(
        self, observations: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return encode_with_encoder_output_in_chunks(
            self.model, observations, self.device, channels_last=self.channels_last,
            autocast=self._autocast(), chunk_size=ENCODE_BATCH,
        )  # fmt: skip

    def evaluate(self, at: Position, step: int) -> dict[str, float]:
        """KL per latent and group on the probe batch, schedule position, hooks' numbers."""
        mean, logvar, raw_mean, raw_logvar = self._encode_with_encoder_output(self.probe)
        kl = kl_per_latent(mean, logvar).mean(0).double().cpu().numpy()
        encoder_kl = kl_per_latent(raw_mean, raw_logvar).mean(0).double().cpu().numpy()
        groups = self.model.encoder.group_of_latent().numpy()
        out: dict[str, float] = {
            keys.BETA: at.beta,
            keys.STAGE: float(at.stage),
            keys.STAGE_PROGRESS: at.progress,
        }
        encoder_groups = [g for g in self.optimizer.param_groups if g["name"].startswith("group")]
        for g, group in enumerate(encoder_groups):
            out[keys.lr_group(g)] = float(group["lr"])
        if at.capacity is not None:
            out[keys.CAPACITY] = at.capacity
        out.update({keys.kl_latent(i): float(v) for i, v in enumerate(kl)})
        num_groups = self.config.model.groups
        group_kl = np.bincount(groups, weights=kl, minlength=num_groups)
        out.update({keys.kl_group(g): float(v) for g, v in enumerate(group_kl)})
        out[keys.KL_TOTAL] = float(kl.sum())
        out[keys.ACTIVE_LATENTS] = float((kl > ACTIVE_KL).sum())
        ctx = EvalContext(
            step=step, stage=at.stage, beta=at.beta, stage_start=at.stage_start,
            stage_end=at.stage_end, kl_per_latent=kl, group_of_latent=groups,
            num_groups=num_groups, probe_codes=mean.cpu().numpy(),
            probe_factors=self.probe_factors,
            factor_names=tuple(getattr(self.data, "factor_names", ())),
            factor_sizes=tuple(getattr(self.data, "factor_sizes", ())), replica=self.index,
            encoder_kl_per_latent=encoder_kl,
        )  # fmt: skip
        for hook in self.hooks:
            out.update(hook(ctx))
        return out

    # --- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "batches": self.batches.state_dict(),
            "noise": self.noise_generator.get_state(),
            "sums": self._sums.cpu(),
            "steps_summed": self._steps_summed,
            "bad_step": int(self._bad_step),
            "hooks": [h.state_dict() if hasattr(h, "state_dict") else None for h in self.hooks],
        }

    def load_state_dict(self, state: dict[str, Any], at: Position) -> None:
        """Continue from ``state``, saved at the step ``at`` describes."""
        self.model.load_state_dict(state["model"])
        self._stage = None
        self.enter_stage(at)  # close groups, set the rates; then the optimizer's own state
        self.optimizer.load_state_dict(state["optimizer"])
        self.batches.load_state_dict(state["batches"])
        self.noise_generator.set_state(state["noise"])
        self._sums = state["sums"].to(self.device)
        self._steps_summed = int(state["steps_summed"])
        self._bad_step = torch.tensor(int(state["bad_step"]), device=self.device)
        for hook, hook_state in zip(self.hooks, state["hooks"]):
            if hook_state is not None and hasattr(hook, "load_state_dict"):
                hook.load_state_dict(hook_state)
