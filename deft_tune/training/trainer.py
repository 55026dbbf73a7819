"""One training loop for every objective (DEFT, beta-VAE, beta-TCVAE, AnnealedVAE).

The loop knows nothing about who listens: every ``evaluation.interval`` steps (and at the last
step) it measures the information signals on a fixed probe batch, calls the eval hooks and hands
one flat dict of numbers to a ``report`` callback. Batches are gathered by index from data that
lives on the device (:mod:`.batches`); losses are accumulated on the device and read only at
report time, so a step never waits for the host.

A run trains ``training.replicas`` R copies of its model side by side (:mod:`.replica`), replica
r with seed ``seed + r``, on one schedule; the report holds each replica's signals under
``replica{r}/`` and their aggregates under the plain keys (:mod:`.aggregate`). On the CPU,
several replicas step on Python threads with one torch thread each (at most
``torch.get_num_threads()`` of them), so each computes exactly as a one-thread, one-replica run.

A trainer sets torch's CPU threads to ``training.threads`` (process-wide: torch has one pool),
since the thread count is part of what the numbers are (see :mod:`deft_tune.threads`).

Here: construction, the schedule at a step, the loop and its reports. Elsewhere in the package:
the device and layout a run resolves (:mod:`.device`), evaluation on the probe batch
(:mod:`.evaluation`) and the checkpoint state (:mod:`.checkpoint`), the last two mixed into
:class:`Trainer`.

    trainer = Trainer(load_config("run.yaml"))
    last = trainer.run(report=print)
    codes = trainer.representation(images)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

import numpy as np
import torch

from deft_tune import report_keys as keys
from deft_tune.config import RunConfig
from deft_tune.data import run_dataset
from deft_tune.data.base import GroundTruthData
from deft_tune.errors import ConfigError, DataError
from deft_tune.model import GroupedVAE
from deft_tune.schedules import Position, position
from deft_tune.threads import limit_threads
from deft_tune.training.aggregate import combine
from deft_tune.training.batches import device_storage
from deft_tune.training.checkpoint import TrainerCheckpoint, read_checkpoint
from deft_tune.training.device import resolve_device, resolve_run
from deft_tune.training.evaluation import EvalHook, TrainerEvaluation
from deft_tune.training.memory import check_run_memory
from deft_tune.training.replica import Replica
from deft_tune.training.stacked import StackedReplicas

__all__ = ["Trainer"]

log = logging.getLogger(__name__)

Report = Callable[[dict[str, float]], None]
T = TypeVar("T")
OnStep = Callable[[int], None]


class Trainer(TrainerEvaluation, TrainerCheckpoint):
    """Trains one run described by a :class:`RunConfig`; see the module docstring.

    ``hooks`` are extra eval hooks, called once per replica (their context says which).
    Evaluation (``evaluate``, ``representation``) is :class:`.evaluation.TrainerEvaluation`;
    the checkpoint state (``state_dict``, ``save_checkpoint``, ``load_state_dict``) is
    :class:`.checkpoint.TrainerCheckpoint`.
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        data: GroundTruthData | None = None,
        hooks: Sequence[EvalHook] = (),
        device: str | torch.device | None = None,
    ) -> None:
        limit_threads(config.training.threads)  # before any kernel runs: it decides the numbers
        self.data = data if data is not None else run_dataset(config.data.name, config.data.options)
        self.device = resolve_device(device if device is not None else config.training.device)
        self.config = resolve_run(config, self.device)
        check_run_memory(self.config, self.data.observation_shape, self.device)  # first
        self.step = 0
        storage = device_storage(self.data, self.device)
        self.replicas = [
            Replica(self.config, self.data, self.device, r, hooks, storage)
            for r in range(self.config.training.replicas)
        ]
        stacked = self.config.training.engine == "stacked"
        self._stack = StackedReplicas(self.replicas, self.config) if stacked else None
        self._workers = self._worker_count()
        self._clock: tuple[float, int] | None = None
        self._enter_stage(self.position(0))

    def _worker_count(self) -> int:
        """Python threads to step the replicas on (1: one after the other)."""
        if self._stack is not None or self.device.type != "cpu" or len(self.replicas) < 2:
            return 1
        return max(1, min(len(self.replicas), torch.get_num_threads()))

    @property
    def model(self) -> GroupedVAE:
        """The first replica's model (a one-replica run's only one)."""
        return self.replicas[0].model

    @property
    def probe(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The first replica's fixed probe batch: observations (n, C, H, W), factors or None."""
        first = self.replicas[0]
        return first.probe.numpy(), first.probe_factors

    @property
    def num_groups(self) -> int:
        return self.config.model.groups

    # --- the schedule at a step -------------------------------------------------------------

    def position(self, step: int) -> Position:
        """Stage, loss weight, stage span and learning-rate scales at training step ``step``."""
        return position(self.config, step)

    def _enter_stage(self, at: Position) -> None:
        for replica in self.replicas:
            replica.enter_stage(at)
        if self._stack is not None:
            self._stack.enter_stage(at)

    # --- training ---------------------------------------------------------------------------

    @contextmanager
    def _each(self) -> Iterator[Callable[[Callable[[Replica], T]], list[T]]]:
        """A map over the replicas: on worker threads with one torch thread each, or in turn."""
        if self._workers == 1:
            yield lambda fn: [fn(replica) for replica in self.replicas]
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # each replica's ops single-threaded, on its own worker
        try:
            with ThreadPoolExecutor(self._workers, thread_name_prefix="replica") as pool:
                yield lambda fn: list(pool.map(fn, self.replicas))
        finally:
            torch.set_num_threads(threads)

    def run(
        self, report: Report | None = None, until: int | None = None, on_step: OnStep | None = None
    ) -> dict[str, float]:
        """Train up to step ``until`` (default training.steps); return the last report.

        ``on_step(step)`` is called after every step with the number of steps trained (a
        progress bar's hook: it gets no tensor, so it never makes the step wait for the device).
        """
        until = self.config.training.steps if until is None else until
        if until < self.step:
            raise ValueError(f"until == {until} lies before the current step {self.step}")
        interval = self.config.evaluation.interval
        self._clock = (time.perf_counter(), self.step)
        last: dict[str, float] = {}
        with self._each() as each:
            while self.step < until:
                at = self.position(self.step)
                self._enter_stage(at)
                if self._stack is not None:
                    self._stack.train_step(at)
                else:
                    each(partial(Replica.train_step, at=at))
                self.step += 1
                if on_step is not None:
                    on_step(self.step)
                if self.step % interval == 0 or self.step == until:
                    last = self._report(report, each)
        return last

    def _report(self, report: Report | None, each: Callable) -> dict[str, float]:
        now = time.perf_counter()
        start_time, start_step = self._clock or (now, self.step)
        at = self.position(max(self.step - 1, 0))  # the state of the last step trained
        step = self.step
        if self._stack is not None:
            self._stack.flush()
        per_replica = each(lambda replica: {**replica.losses(), **replica.evaluate(at, step)})
        images = (self.step - start_step) * self.config.training.batch_size * len(self.replicas)
        out = {
            keys.STEP: float(self.step),
            keys.IMAGES_PER_SEC: images / max(now - start_time, 1e-9),  # all replicas
            keys.REPLICAS: float(len(self.replicas)),
            **combine(per_replica),
        }
        if report is not None:
            report(out)
        self._clock = (time.perf_counter(), self.step)  # evaluation time is not training time
        return out

    # --- a trainer from a checkpoint (the state itself: .checkpoint) -------------------------

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
