"""Evaluation on the probe batch: what an eval hook sees (:class:`EvalContext`), each replica's
signals at an evaluation, and the trainer's encodings for the metrics.

Every ``evaluation.interval`` steps a replica encodes its fixed probe batch, measures the KL per
latent and group (of what the decoder sees and of the encoders' own output), and hands one
:class:`EvalContext` to each eval hook (the information tracker first). :class:`ReplicaEvaluation`
and :class:`TrainerEvaluation` are the evaluation half of
:class:`~deft_tune.training.replica.Replica` and :class:`~deft_tune.training.trainer.Trainer`
(mixed into them).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from deft_tune import report_keys as keys
from deft_tune.model import encode_in_chunks, encode_with_encoder_output_in_chunks, kl_per_latent
from deft_tune.schedules import Position
from deft_tune.training.aggregate import combine

if TYPE_CHECKING:
    from deft_tune.config import RunConfig
    from deft_tune.data.base import GroundTruthData
    from deft_tune.metrics.suite import MetricSettings
    from deft_tune.model import GroupedVAE
    from deft_tune.training.replica import Replica

__all__ = [
    "ACTIVE_KL",
    "ENCODE_BATCH",
    "EvalContext",
    "EvalHook",
    "ReplicaEvaluation",
    "TrainerEvaluation",
]

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


class ReplicaEvaluation:
    """A replica's probe-batch signals and encodings."""

    if TYPE_CHECKING:  # set by the Replica this is mixed into
        config: RunConfig
        data: GroundTruthData
        device: torch.device
        index: int
        model: GroupedVAE
        optimizer: torch.optim.Optimizer
        hooks: list[EvalHook]
        channels_last: bool
        probe: torch.Tensor
        probe_factors: np.ndarray | None

        def _autocast(self) -> contextlib.AbstractContextManager: ...

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


class TrainerEvaluation:
    """Every replica's signals at the current step, encodings of observations, scores."""

    if TYPE_CHECKING:  # set by the Trainer this is mixed into
        config: RunConfig
        data: GroundTruthData
        step: int
        replicas: list[Replica]

        def position(self, step: int) -> Position: ...

    def evaluate(self) -> dict[str, float]:
        """Every replica's probe-batch signals at the current step, combined."""
        at = self.position(max(self.step - 1, 0))
        return combine([r.evaluate(at, self.step) for r in self.replicas])

    def representation(self, observations: np.ndarray, replica: int | None = None) -> np.ndarray:
        """Encoder means of observations (n, C, H, W) float32: the metrics' input.

        One replica's (n, d), or with ``replica`` None every replica's side by side,
        (n, R * d), for :func:`deft_tune.metrics.evaluate_blocks`.
        """
        observations = np.asarray(observations, dtype=np.float32)
        expected = tuple(self.data.observation_shape)
        if observations.ndim != 4 or observations.shape[1:] != expected:
            raise ValueError(
                f"observations must have shape (n, {', '.join(map(str, expected))})"
                f", got {observations.shape}"
            )
        images = torch.from_numpy(observations)
        chosen = self.replicas if replica is None else [self.replicas[replica]]
        return np.concatenate([r.encode(images)[0].cpu().numpy() for r in chosen], axis=1)

    def scores(
        self, names: Sequence[str], seed: int, settings: MetricSettings | None = None
    ) -> list[dict[str, float]]:
        """Every replica's metric scores, all on ONE shared sample drawn from ``seed``
        (:func:`deft_tune.metrics.evaluate_blocks`). ``settings`` None: the standard setting,
        with DCI's classifiers on ``training.threads`` processes, the run's CPU share (no score
        depends on it)."""
        from deft_tune.metrics import STANDARD, evaluate_blocks  # scikit-learn when scoring

        if settings is None:
            settings = dataclasses.replace(STANDARD, n_jobs=self.config.training.threads)
        count = len(self.replicas)
        return evaluate_blocks(self.representation, self.data, count, list(names), seed, settings)
