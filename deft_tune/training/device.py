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

__all__ = [
    "Engine",
    "MemoryFormat",
    "default_engine",
    "default_memory_format",
    "resolve_device",
    "resolve_run",
]


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


Engine = Literal["threads", "stacked"]


def default_engine(device: torch.device, replicas: int, memory_format: str) -> Engine:
    """The engine "auto" means for a run of ``replicas`` on ``device``: a fixed rule from
    measurements, never a timing at run time.

    CUDA: stacked (one batched computation instead of R launch-bound small ones), pending a GPU
    measurement (docs/training.md). Everywhere else threads: on the CPU,
    benchmarks/replica_throughput.py measured the stacked engine slower than the threads
    engine side by side at R = 1, 2, 4, 8 (docs/training.md: vmap's grouped convolutions,
    transposed ones above all, run slower on the CPU than R plain ones), and other devices are
    unmeasured. One replica, or a channels_last run on any device: threads (nothing to stack;
    the stacked engine trains in the contiguous layout).
    """
    if replicas == 1 or memory_format == "channels_last":
        return "threads"
    return "stacked" if device.type == "cuda" else "threads"


def resolve_run(config: RunConfig, device: torch.device) -> RunConfig:
    """``config`` with its "auto" engine and layout made concrete for ``device``: what the run
    records. The stacked engine trains in the contiguous layout."""
    training = config.training
    engine, layout = training.engine, training.memory_format
    if engine == "auto":
        engine = default_engine(device, training.replicas, layout)
    if layout == "auto":
        layout = "contiguous" if engine == "stacked" else default_memory_format(device)
    chosen = dataclasses.replace(training, engine=engine, memory_format=layout)
    return dataclasses.replace(config, training=chosen)
