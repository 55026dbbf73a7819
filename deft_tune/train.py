"""One training loop for every objective (DEFT, beta-VAE, beta-TCVAE, AnnealedVAE).

The loop knows nothing about who listens: every ``evaluation.interval`` steps (and at the last
step) it measures the information signals on a fixed probe batch, calls the eval hooks and hands
one flat dict of numbers to a ``report`` callback. Batches are gathered by index from data that
lives on the device (:mod:`deft_tune.batches`); losses are accumulated on the device and read
only at report time, so a step never waits for the host.

A run trains ``training.replicas`` R copies of its model side by side (:mod:`deft_tune.replica`),
replica r with seed ``seed + r``, on one schedule; the report holds each replica's signals under
``replica{r}/`` and their aggregates under the plain keys (:mod:`deft_tune.aggregate`). On the
CPU, several replicas step on Python threads with one torch thread each (at most
``torch.get_num_threads()`` of them), so each computes exactly as a one-thread, one-replica run.

A trainer sets torch's CPU threads to ``training.threads`` (process-wide: torch has one pool),
since the thread count is part of what the numbers are (see :mod:`deft_tune.threads`).

    trainer = Trainer(load_config("run.yaml"))
    last = trainer.run(report=print)
    codes = trainer.representation(images)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import torch

from deft_tune import report_keys as keys
from deft_tune.aggregate import combine
from deft_tune.batches import device_storage
from deft_tune.config import RunConfig
from deft_tune.data import run_dataset
from deft_tune.data.base import GroundTruthData
from deft_tune.errors import ConfigError, DataError, TrainingError
from deft_tune.fileio import atomic_write
from deft_tune.memory import check_run_memory
from deft_tune.model import MODEL_FILE, GroupedVAE, load_torch_file
from deft_tune.replica import EvalContext, EvalHook, Replica
from deft_tune.schedules import Position, position
from deft_tune.threads import limit_threads

if TYPE_CHECKING:
    from deft_tune.metrics.suite import MetricSettings

__all__ = [
    "EvalContext",
    "EvalHook",
    "Trainer",
    "default_memory_format",
    "read_checkpoint",
    "resolve_device",
    "resolve_run",
]

log = logging.getLogger(__name__)

Report = Callable[[dict[str, float]], None]
T = TypeVar("T")
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


MemoryFormat = Literal["contiguous", "channels_last"]


def default_memory_format(device: torch.device) -> MemoryFormat:
    """The layout "auto" means on ``device``: a fixed rule from the hardware, never a timing.

    channels_last on CUDA (cuDNN's preferred layout) and on CPUs without AVX-512 (measured
    1.5x the contiguous step on an AVX2 CPU); contiguous on AVX-512 CPUs, where channels_last
    measured no gain (docs/training.md, benchmarks/train_throughput.py).
    """
    if device.type == "cuda":
        return "channels_last"
    if device.type == "cpu":
        capability = torch.backends.cpu.get_cpu_capability()
        return "contiguous" if capability.startswith("AVX512") else "channels_last"
    return "contiguous"


def resolve_run(config: RunConfig, device: torch.device) -> RunConfig:
    """``config`` with its "auto" layout made concrete for ``device``: what the run records."""
    training = config.training
    if training.memory_format != "auto":
        return config
    chosen = dataclasses.replace(training, memory_format=default_memory_format(device))
    return dataclasses.replace(config, training=chosen)


CHECKPOINT_KEYS = frozenset(("config", "step", "replicas"))
REPLICA_KEYS = frozenset(
    ("model", "optimizer", "batches", "noise", "sums", "steps_summed", "bad_step", "hooks")
)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The state a checkpoint holds (weights_only: no code runs); DataError if not one."""
    what = "deft-tune training checkpoint"
    state = load_torch_file(path, what)
    if isinstance(state, dict) and {"config", "model", "observation_shape"} <= state.keys():
        raise DataError(
            f"{path} is not a {what}: it is a model file ({MODEL_FILE}), which holds weights "
            "but no optimizer or data state; resume from the run's checkpoints/last.pt"
        )
    replicas = state.get("replicas") if isinstance(state, dict) else None
    if (
        not isinstance(state, dict)
        or not CHECKPOINT_KEYS <= state.keys()
        or not isinstance(replicas, list)
        or not all(isinstance(r, dict) and REPLICA_KEYS <= r.keys() for r in replicas)
    ):
        raise DataError(f"{path} is not a {what} (it lacks the trainer's state)")
    return state


class Trainer:
    """Trains one run described by a :class:`RunConfig`; see the module docstring.

    ``hooks`` are extra eval hooks, called once per replica (their context says which).
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
        self._workers = self._worker_count()
        self._clock: tuple[float, int] | None = None
        self._enter_stage(self.position(0))

    def _worker_count(self) -> int:
        """Python threads to step the replicas on (1: one after the other)."""
        if self.device.type != "cpu" or len(self.replicas) < 2:
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

    # --- evaluation -------------------------------------------------------------------------

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

    # --- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "step": self.step,
            "replicas": [replica.state_dict() for replica in self.replicas],
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
        at = self.position(self.step)
        if len(state["replicas"]) != len(self.replicas):
            raise DataError(
                f"the checkpoint holds {len(state['replicas'])} replicas, the config "
                f"{len(self.replicas)}"
            )
        for replica, replica_state in zip(self.replicas, state["replicas"]):
            replica.load_state_dict(replica_state, at)
