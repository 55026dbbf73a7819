"""One replica of a run: one model, its optimizer, batches, noise and probe, trained exactly as a
one-replica run with the same seed is.

A run of ``training.replicas`` R trains R of these side by side (:mod:`.trainer`): replica r
takes the seed ``training.seed + r`` for its initialisation, its batch order, its
reparameterisation noise and its probe batch, and shares only the data set (one copy of its
rows on the device) and the schedule.

Here: construction, stage entry, the training step and its losses. Evaluation on the probe
batch is :mod:`.evaluation` and the checkpoint state :mod:`.checkpoint`, both mixed into
:class:`Replica`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import torch

from deft_tune import report_keys as keys
from deft_tune.config import RunConfig
from deft_tune.data.base import GroundTruthData
from deft_tune.errors import TrainingError
from deft_tune.freezing import InformationTracker
from deft_tune.model import (
    GroupedVAE,
    apply_lr_scales,
    build_model,
    describe_parameter_groups,
    kl_per_latent,
    objective_loss,
    parameter_groups,
    place_model,
    reconstruction_loss,
    run_autocast,
)
from deft_tune.schedules import Position
from deft_tune.training.batches import BatchSource, probe_batch
from deft_tune.training.checkpoint import ReplicaCheckpoint
from deft_tune.training.evaluation import EvalHook, ReplicaEvaluation

__all__ = ["Replica"]

log = logging.getLogger(__name__)


def _information_tracker(config: RunConfig, data: GroundTruthData) -> InformationTracker:
    names = tuple(getattr(data, "factor_names", ()) or ()) or None
    return InformationTracker(config.model.groups, names)


class Replica(ReplicaEvaluation, ReplicaCheckpoint):
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
