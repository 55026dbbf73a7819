"""One training loop for every objective (DEFT, beta-VAE, beta-TCVAE, AnnealedVAE).

The loop knows nothing about who listens: every ``evaluation.interval`` steps (and at the last
step) it measures the information signals on a fixed probe batch, calls the eval hooks and hands
one flat dict of numbers to a ``report`` callback. Batches are gathered by index from data that
lives on the device (:mod:`deft_tune.batches`); losses are accumulated on the device and read
only at report time, so a step never waits for the host.

A trainer sets torch's CPU threads to ``training.threads`` (process-wide: torch has one pool),
since the thread count is part of what the numbers are (see :mod:`deft_tune.threads`).

    trainer = Trainer(load_config("run.yaml"))
    last = trainer.run(report=print)
    codes = trainer.representation(images)
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deft_tune import report_keys as keys
from deft_tune.batches import BatchSource, probe_batch
from deft_tune.config import RunConfig
from deft_tune.data import run_dataset
from deft_tune.data.base import GroundTruthData
from deft_tune.errors import ConfigError, DataError, TrainingError
from deft_tune.fileio import atomic_write
from deft_tune.memory import check_run_memory
from deft_tune.model import (
    MODEL_FILE,
    GroupedVAE,
    apply_lr_scales,
    build_model,
    describe_parameter_groups,
    kl_per_latent,
    load_torch_file,
    objective_loss,
    parameter_groups,
    reconstruction_loss,
)
from deft_tune.schedules import Position, position
from deft_tune.threads import limit_threads

__all__ = ["EvalContext", "EvalHook", "Trainer", "read_checkpoint", "resolve_device"]

log = logging.getLogger(__name__)

ACTIVE_KL = 0.1  # nats on the probe batch above which a latent counts as active
ENCODE_BATCH = 512


@dataclass(frozen=True)
class EvalContext:
    """What an eval hook sees at one evaluation (arrays are host numpy)."""

    step: int
    stage: int
    beta: float
    stage_start: int
    stage_end: int
    kl_per_latent: np.ndarray
    group_of_latent: np.ndarray
    num_groups: int
    probe_codes: np.ndarray
    probe_factors: np.ndarray | None
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]


EvalHook = Callable[[EvalContext], dict[str, float]]
Report = Callable[[dict[str, float]], None]
OnStep = Callable[[int], None]


def resolve_device(name: str | torch.device | None) -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"training.device == {name!r} but CUDA is not available: use 'cpu'")
    return torch.device(name)


CHECKPOINT_KEYS = frozenset(
    ("config", "step", "model", "optimizer", "batches", "noise", "sums", "steps_summed",
     "bad_step", "hooks")
)  # fmt: skip


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The state a checkpoint holds (weights_only: no code runs); DataError if not one."""
    what = "deft-tune training checkpoint"
    state = load_torch_file(path, what)
    if isinstance(state, dict) and {"config", "model", "observation_shape"} <= state.keys():
        raise DataError(
            f"{path} is not a {what}: it is a model file ({MODEL_FILE}), which holds weights "
            "but no optimizer or data state; resume from the run's checkpoints/last.pt"
        )
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= state.keys():
        raise DataError(f"{path} is not a {what} (it lacks the trainer's state)")
    return state


def _default_hooks(config: RunConfig, data: GroundTruthData) -> list[EvalHook]:
    from deft_tune.freezing import InformationTracker  # a library room beside this one

    names = tuple(getattr(data, "factor_names", ()) or ()) or None
    tracker: EvalHook = InformationTracker(config.model.groups, names)
    return [tracker]


class Trainer:
    """Trains one run described by a :class:`RunConfig`; see the module docstring."""

    def __init__(
        self,
        config: RunConfig,
        *,
        data: GroundTruthData | None = None,
        hooks: Sequence[EvalHook] = (),
        device: str | torch.device | None = None,
    ) -> None:
        self.config = config
        limit_threads(config.training.threads)  # before any kernel runs: it decides the numbers
        self.data = data if data is not None else run_dataset(config.data.name, config.data.options)
        self.device = resolve_device(device if device is not None else config.training.device)
        check_run_memory(config, self.data.observation_shape, self.device)  # before allocating
        self.hooks = [*_default_hooks(config, self.data), *hooks]
        self.step = 0
        self.model = self._build_model()
        lr = config.training.lr
        self.optimizer = torch.optim.Adam(parameter_groups(self.model, lr), lr=lr)
        self.batches = BatchSource(
            self.data, config.training.batch_size, config.training.seed, self.device
        )
        self.noise_generator = torch.Generator(self.device).manual_seed(config.training.seed + 3)
        probe, factors = probe_batch(self.data, config.evaluation.probe_size, config.training.seed)
        self._probe = torch.from_numpy(probe)
        self._probe_factors = factors
        self._total = config.training.steps
        self._sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        self._steps_summed = 0
        self._bad_step = torch.full((), -1, dtype=torch.int64, device=self.device)
        self._stage: int | None = None
        self._clock: tuple[float, int] | None = None
        self._enter_stage(self.position(0))

    # --- setup ------------------------------------------------------------------------------

    def _build_model(self) -> GroupedVAE:
        model = build_model(self.config, self.data.observation_shape).to(self.device)
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return model

    @property
    def _channels_last(self) -> bool:
        return self.device.type == "cuda"  # measured: a loss on CPU for these small convs

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.config.training.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def probe(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The fixed probe batch: observations (n, C, H, W) and factors (n, k) or None."""
        return self._probe.numpy(), self._probe_factors

    @property
    def num_groups(self) -> int:
        return self.config.model.groups

    # --- the schedule at a step -------------------------------------------------------------

    def position(self, step: int) -> Position:
        """Stage, loss weight, stage span and learning-rate scales at training step ``step``."""
        return position(self.config, step)

    def _enter_stage(self, at: Position) -> None:
        if at.stage == self._stage:
            return
        self._stage = at.stage
        self.model.encoder.set_stage(at.stage)
        apply_lr_scales(self.optimizer, at.lr_scales)
        log.info(
            "step %d: stage %d, parameter groups\n%s",
            at.step,
            at.stage,
            describe_parameter_groups(self.optimizer),
        )

    # --- training ---------------------------------------------------------------------------

    def _train_step(self) -> None:
        step = self.step
        at = self.position(step)
        self._enter_stage(at)
        images = self.batches.next()
        if self._channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            output, mean, logvar, z = self.model(images, self.noise_generator)
        mean, logvar, z = mean.float(), logvar.float(), z.float()
        recon = reconstruction_loss(output, images, self.config.model.loss)
        kl = kl_per_latent(mean, logvar)
        loss = objective_loss(
            self.config.objective, recon, kl, z, mean, logvar, beta=at.beta, step=step
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        terms = torch.stack([loss.detach(), recon.detach().mean(), kl.detach().sum(1).mean()])
        self._sums += terms
        # Remember the first non-finite step on the device; checked at report time.
        bad = ~torch.isfinite(terms).all() & (self._bad_step < 0)
        self._bad_step = torch.where(bad, step, self._bad_step)
        self._steps_summed += 1
        self.step += 1

    def run(
        self, report: Report | None = None, until: int | None = None, on_step: OnStep | None = None
    ) -> dict[str, float]:
        """Train up to step ``until`` (default training.steps); return the last report.

        ``on_step(step)`` is called after every step with the number of steps trained (a
        progress bar's hook: it gets no tensor, so it never makes the step wait for the device).
        """
        until = self._total if until is None else until
        if until < self.step:
            raise ValueError(f"until == {until} lies before the current step {self.step}")
        interval = self.config.evaluation.interval
        self.model.train()
        self._clock = (time.perf_counter(), self.step)
        last: dict[str, float] = {}
        while self.step < until:
            self._train_step()
            if on_step is not None:
                on_step(self.step)
            if self.step % interval == 0 or self.step == until:
                last = self._report(report)
        return last

    def _report(self, report: Report | None) -> dict[str, float]:
        sums = self._sums.tolist()  # the one host sync per interval
        bad_step = int(self._bad_step)
        if bad_step >= 0:
            raise TrainingError(
                f"the loss became NaN or inf at step {bad_step}: lower "
                "training.lr or check the data (try precision 'fp32')"
            )
        now = time.perf_counter()
        start_time, start_step = self._clock or (now, self.step)
        images = (self.step - start_step) * self.config.training.batch_size
        n = max(self._steps_summed, 1)
        out = {
            keys.STEP: float(self.step),
            keys.LOSS: sums[0] / n,
            keys.RECON: sums[1] / n,
            keys.KL: sums[2] / n,
            keys.IMAGES_PER_SEC: images / max(now - start_time, 1e-9),
        }
        out.update(self.evaluate())
        self._sums.zero_()
        self._steps_summed = 0
        if report is not None:
            report(out)
        self.model.train()
        self._clock = (time.perf_counter(), self.step)  # evaluation time is not training time
        return out

    # --- evaluation -------------------------------------------------------------------------

    @torch.no_grad()
    def _encode(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()
        means, logvars = [], []
        for chunk in observations.split(ENCODE_BATCH):
            chunk = chunk.to(self.device, non_blocking=True)
            if self._channels_last:
                chunk = chunk.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                mean, logvar = self.model.encoder(chunk)
            means.append(mean.float())
            logvars.append(logvar.float())
        return torch.cat(means), torch.cat(logvars)

    def representation(self, observations: np.ndarray) -> np.ndarray:
        """Encoder means (n, d) of observations (n, C, H, W) float32: the metrics' input."""
        observations = np.asarray(observations, dtype=np.float32)
        expected = tuple(self.data.observation_shape)
        if observations.ndim != 4 or observations.shape[1:] != expected:
            raise ValueError(
                f"observations must have shape (n, {', '.join(map(str, expected))})"
                f", got {observations.shape}"
            )
        mean, _ = self._encode(torch.from_numpy(observations))
        return mean.cpu().numpy()

    def evaluate(self) -> dict[str, float]:
        """KL per latent and group on the probe batch, schedule position, hooks' numbers."""
        mean, logvar = self._encode(self._probe)
        kl = kl_per_latent(mean, logvar).mean(0).double().cpu().numpy()
        groups = self.model.encoder.group_of_latent().numpy()
        at = self.position(max(self.step - 1, 0))  # the state of the last step trained
        out: dict[str, float] = {
            keys.BETA: at.beta,
            keys.STAGE: float(at.stage),
            keys.STAGE_PROGRESS: at.progress,
        }
        for g, group in enumerate(self._encoder_param_groups()):
            out[keys.lr_group(g)] = float(group["lr"])
        if at.capacity is not None:
            out[keys.CAPACITY] = at.capacity
        out.update({keys.kl_latent(i): float(v) for i, v in enumerate(kl)})
        group_kl = np.bincount(groups, weights=kl, minlength=self.num_groups)
        out.update({keys.kl_group(g): float(v) for g, v in enumerate(group_kl)})
        out[keys.KL_TOTAL] = float(kl.sum())
        out[keys.ACTIVE_LATENTS] = float((kl > ACTIVE_KL).sum())
        ctx = self._context(at, kl, groups, mean)
        for hook in self.hooks:
            out.update(hook(ctx))
        return out

    def _encoder_param_groups(self) -> list[dict[str, Any]]:
        return [g for g in self.optimizer.param_groups if g["name"].startswith("group")]

    def _context(self, at: Position, kl, groups, mean) -> EvalContext:
        return EvalContext(
            step=self.step,
            stage=at.stage,
            beta=at.beta,
            stage_start=at.stage_start,
            stage_end=at.stage_end,
            kl_per_latent=kl,
            group_of_latent=groups,
            num_groups=self.num_groups,
            probe_codes=mean.cpu().numpy(),
            probe_factors=self._probe_factors,
            factor_names=tuple(getattr(self.data, "factor_names", ())),
            factor_sizes=tuple(getattr(self.data, "factor_sizes", ())),
        )

    # --- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "batches": self.batches.state_dict(),
            "noise": self.noise_generator.get_state(),
            "sums": self._sums.cpu(),
            "steps_summed": self._steps_summed,
            "bad_step": int(self._bad_step),
            "hooks": [h.state_dict() if hasattr(h, "state_dict") else None for h in self.hooks],
        }

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write everything needed to continue bit-for-bit (atomically)."""
        state = self.state_dict()
        return atomic_write(path, lambda tmp: torch.save(state, tmp), durable=True)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        *,
        data: GroundTruthData | None = None,
        hooks: Sequence[EvalHook] = (),
        device: str | torch.device | None = None,
    ) -> Trainer:
        """A trainer that continues from a checkpoint written by :meth:`save_checkpoint`.

        The file is loaded with ``weights_only=True`` (tensors and plain data: a checkpoint
        never runs code); DataError names the file when it is not a checkpoint of this loop.
        """
        state = read_checkpoint(path)
        try:
            config = RunConfig.from_dict(state["config"])
        except ConfigError as exc:
            raise DataError(f"{path}: the run config in it is invalid ({exc})") from None
        trainer = cls(config, data=data, hooks=hooks, device=device)
        try:
            trainer.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
            raise DataError(
                f"{path} is not a deft-tune training checkpoint of its own config ({reason})"
            ) from None
        return trainer

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.model.load_state_dict(state["model"])
        self._stage = None
        self._enter_stage(self.position(self.step))  # close groups, set lrs; then the optimizer
        self.optimizer.load_state_dict(state["optimizer"])
        self.batches.load_state_dict(state["batches"])
        self.noise_generator.set_state(state["noise"])
        self._sums = state["sums"].to(self.device)
        self._steps_summed = int(state["steps_summed"])
        self._bad_step = torch.tensor(int(state["bad_step"]), device=self.device)
        for hook, hook_state in zip(self.hooks, state["hooks"]):
            if hook_state is not None and hasattr(hook, "load_state_dict"):
                hook.load_state_dict(hook_state)
