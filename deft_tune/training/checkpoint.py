"""The training checkpoint (``checkpoints/last.pt``, a trial's ``trainer.pt``): its format,
its reader and the trainer's and replicas' state in it.

A checkpoint holds everything needed to continue bit for bit: the run config, the step and per
replica its model, optimizer, batch order, noise generator, the losses summed since the last
report and its eval hooks' state (:data:`CHECKPOINT_KEYS`, :data:`REPLICA_KEYS`).
:func:`read_checkpoint` loads one with ``weights_only=True`` (no code runs) and refuses what is
not one. :class:`TrainerCheckpoint` and :class:`ReplicaCheckpoint` are the checkpoint half of
:class:`~deft_tune.training.trainer.Trainer` and :class:`~deft_tune.training.replica.Replica`
(mixed into them); ``Trainer.from_checkpoint`` builds a trainer from a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from deft_tune.errors import DataError
from deft_tune.fileio import atomic_write
from deft_tune.model import MODEL_FILE, load_torch_file
from deft_tune.schedules import Position

if TYPE_CHECKING:
    from deft_tune.config import RunConfig
    from deft_tune.model import GroupedVAE
    from deft_tune.training.batches import BatchSource
    from deft_tune.training.evaluation import EvalHook
    from deft_tune.training.replica import Replica
    from deft_tune.training.stacked import StackedReplicas

__all__ = [
    "CHECKPOINT_KEYS",
    "REPLICA_KEYS",
    "ReplicaCheckpoint",
    "TrainerCheckpoint",
    "read_checkpoint",
]

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


class TrainerCheckpoint:
    """The trainer's state: its config, its step and every replica's state."""

    if TYPE_CHECKING:  # set by the Trainer this is mixed into
        config: RunConfig
        step: int
        replicas: list[Replica]
        _stack: StackedReplicas | None

        def position(self, step: int) -> Position: ...

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "step": self.step,
            "replicas": self._stack.state_dicts()
            if self._stack is not None
            else [replica.state_dict() for replica in self.replicas],
        }

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write everything needed to continue bit-for-bit (atomically)."""
        state = self.state_dict()
        return atomic_write(path, lambda tmp: torch.save(state, tmp), durable=True)

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
        if self._stack is not None:
            self._stack.load_optimizers([r["optimizer"] for r in state["replicas"]], at)


class ReplicaCheckpoint:
    """One replica's state: model, optimizer, batch order, noise, loss sums and hooks."""

    if TYPE_CHECKING:  # set by the Replica this is mixed into
        device: torch.device
        model: GroupedVAE
        optimizer: torch.optim.Optimizer
        batches: BatchSource
        noise_generator: torch.Generator
        hooks: list[EvalHook]
        _sums: torch.Tensor
        _steps_summed: int
        _bad_step: torch.Tensor
        _stage: int | None

        def enter_stage(self, at: Position) -> None: ...

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
