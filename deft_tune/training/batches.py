"""Training batches gathered by index from data that lives on the device: no DataLoader.

A data set that offers ``stored_images()`` (uint8 rows, possibly bit-packed) is moved to the
device once (on CPU the memory-mapped array is used as is, without a copy); each batch is a
seeded draw of row indices, a gather, and ``decode_batch`` on the device. A data set with only
the protocol falls back to ``sample_observations_from_factors`` with a numpy generator.
"""

from __future__ import annotations

import warnings
from typing import Any, cast

import numpy as np
import torch

from deft_tune.data.base import GroundTruthData, StoredData, stored_rows

__all__ = ["BatchSource", "device_storage", "probe_batch"]


class BatchSource:
    """Endless seeded training batches of ``batch_size`` observations on ``device``."""

    def __init__(
        self,
        data: GroundTruthData,
        batch_size: int,
        seed: int,
        device: torch.device,
        storage: torch.Tensor | None = None,
    ) -> None:
        """``storage``: the data set's rows already on ``device`` (:func:`device_storage`), so
        that the replicas of a run share one copy; made here when not given."""
        self.data = data
        self.stored = cast(StoredData, data)  # used only when it has stored rows
        self.batch_size = batch_size
        self.device = device
        if storage is None:
            storage = device_storage(data, device)
        self.on_device = storage is not None
        # Three independent streams: indices, decode nuisances, and the protocol fallback.
        self.index_generator = torch.Generator(device).manual_seed(seed)
        self.decode_generator = torch.Generator(device).manual_seed(seed + 1)
        self.rng = np.random.default_rng([seed, 2])
        if storage is None:
            return
        self.storage = storage
        weights = self.stored.sampling_weights() if hasattr(data, "sampling_weights") else None
        self.weights = None if weights is None else torch.as_tensor(weights, device=device)
        self.indices = torch.empty(batch_size, dtype=torch.int64, device=device)

    def next(self) -> torch.Tensor:
        """The next batch, float32 (batch_size, C, H, W) on the device."""
        if not self.on_device:
            factors = self.data.sample_factors(self.batch_size, self.rng)
            images = self.data.sample_observations_from_factors(factors, self.rng)
            return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self.device)
        if self.weights is None:
            torch.randint(
                len(self.storage),
                (self.batch_size,),
                generator=self.index_generator,
                device=self.device,
                out=self.indices,
            )
        else:
            torch.multinomial(
                self.weights,
                self.batch_size,
                replacement=True,
                generator=self.index_generator,
                out=self.indices,
            )
        raw = self.storage.index_select(0, self.indices)
        return self.stored.decode_batch(raw, self.decode_generator)

    def state_dict(self) -> dict[str, Any]:
        return {
            "index": self.index_generator.get_state(),
            "decode": self.decode_generator.get_state(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.index_generator.set_state(state["index"])
        self.decode_generator.set_state(state["decode"])
        self.rng.bit_generator.state = state["rng"]


def _to_device(rows: np.ndarray, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():  # read-only memory map: we never write to it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(rows).to(device)


def device_storage(data: GroundTruthData, device: torch.device) -> torch.Tensor | None:
    """The data set's stored rows on ``device`` (on the CPU the memory map itself), or None."""
    rows = stored_rows(data)
    return None if rows is None else _to_device(rows, device)


def probe_batch(
    data: GroundTruthData, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The fixed probe batch: observations (n, C, H, W) and factors (n, k) or None.

    Drawn from its own stream of ``seed`` so that it is the same for a run and its resumption.
    """
    rng = np.random.default_rng([seed, 1])
    if getattr(data, "factor_sizes", ()):
        factors = data.sample_factors(size, rng)
        images = data.sample_observations_from_factors(factors, rng)
        return np.asarray(images, dtype=np.float32), np.asarray(factors, dtype=np.int64)
    source = BatchSource(data, size, seed + 7, torch.device("cpu"))
    return source.next().numpy(), None
