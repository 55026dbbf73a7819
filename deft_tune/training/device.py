"""Where a run's tensors live: the device ("auto" made concrete) and the memory layout.

The layout changes a run's numbers a little, so "auto" is a fixed rule per device, never a
timing: the trainer resolves the device and the layout once, at construction, and the run
records the layout it used (:func:`resolve_run`).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from deft_tune.config import RunConfig
from deft_tune.errors import TrainingError

__all__ = ["MemoryFormat", "default_memory_format", "resolve_device", "resolve_run"]


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
