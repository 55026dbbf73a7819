"""The ground-truth data protocol that metrics, training and the annealing test rely on.

Any object with these members works (a user's own data set, a test double); the
:class:`GridData` base class adds the grid arithmetic for data sets that are a full product of
their factors.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class GroundTruthData(Protocol):
    """What every ground-truth data set offers.

    Observations are float32 in [0, 1] with shape (n, C, H, W); factors are integer indices of
    shape (n, k), column j in ``range(factor_sizes[j])``.
    """

    name: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    observation_shape: tuple[int, int, int]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray: ...


class GridData:
    """Base for data sets whose samples are every combination of their factors.

    Subclasses set ``name``, ``factor_names``, ``factor_sizes``, ``observation_shape`` and
    implement :meth:`images`; factor order is row-major, the last factor varying fastest.
    """

    name: str = ""
    description: str = ""
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    observation_shape: tuple[int, int, int] = (1, 64, 64)

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def num_samples(self) -> int:
        return int(np.prod(self.factor_sizes, dtype=np.int64))

    @property
    def _strides(self) -> np.ndarray:
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        """Integer factor indices (n, k) -> flat sample indices (n,)."""
        factors = self.check_factors(factors)
        return factors @ self._strides

    def index_to_factors(self, indices: np.ndarray) -> np.ndarray:
        """Flat sample indices (n,) -> integer factor indices (n, k)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {indices.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_samples):
            raise ValueError(
                f"indices must lie in [0, {self.num_samples}), got "
                f"[{indices.min()}, {indices.max()}]"
            )
        return (indices[:, None] // self._strides) % np.asarray(self.factor_sizes)

    def check_factors(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(
                f"factors must have shape (n, {self.num_factors}), got {factors.shape}"
            )
        if not np.issubdtype(factors.dtype, np.integer):
            raise ValueError(f"factors must be integer indices, got dtype {factors.dtype}")
        factors = factors.astype(np.int64, copy=False)
        sizes = np.asarray(self.factor_sizes)
        if factors.size and ((factors < 0).any() or (factors >= sizes).any()):
            raise ValueError(
                f"factors out of range: column j must lie in [0, factor_sizes[j]) "
                f"with factor_sizes={self.factor_sizes}"
            )
        return factors

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n factor vectors drawn uniformly and independently, shape (n, k)."""
        return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1)

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Observations (n, C, H, W) float32 in [0, 1]; ``rng`` feeds any nuisance randomness."""
        indices = self.factors_to_index(factors)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        return self._decode_numpy(indices, generator)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        factors = self.sample_factors(n, rng)
        return factors, self.sample_observations_from_factors(factors, rng)

    def images(self, indices: np.ndarray) -> np.ndarray:
        """Observations of the given flat indices, float32 (n, C, H, W) in [0, 1].

        Data sets with per-sample nuisance randomness (colour, noise) draw it from a fixed seed
        here, so the same index always gives the same image.
        """
        indices = np.asarray(indices, dtype=np.int64)
        self.index_to_factors(indices)  # range and shape check
        return self._decode_numpy(indices, torch.Generator().manual_seed(0))

    def _decode_numpy(self, indices: np.ndarray, generator: torch.Generator) -> np.ndarray:
        raw = torch.from_numpy(np.ascontiguousarray(self.stored_images()[indices]))
        return self.decode_batch(raw, generator).numpy()

    # --- what the training loop uses: rows gathered by index, decoded on the device ---------

    def stored_images(self) -> np.ndarray:
        """All samples in the data set's storage format, indexable by flat index.

        uint8 rows of any per-sample shape (for example bit-packed masks), usually memory-mapped
        from the cache. The training loop moves this array to the device once and gathers
        batches from it; :meth:`decode_batch` turns a gathered batch into observations.
        """
        raise NotImplementedError

    def decode_batch(
        self, raw: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Gathered stored rows (n, ...) -> float32 observations (n, C, H, W) in [0, 1].

        Runs on whatever device ``raw`` is on; nuisance randomness (colour, noise, background)
        comes from ``generator``, which must live on the same device.
        """
        return raw.to(torch.float32)

    def sampling_weights(self) -> np.ndarray | None:
        """Probabilities over flat indices for training batches; None means uniform."""
        return None


class StoredData(GroundTruthData, Protocol):
    """A data set whose samples are stored rows the training loop gathers and decodes itself
    (:class:`GridData` and its subclasses)."""

    def stored_images(self) -> np.ndarray: ...

    def decode_batch(
        self, raw: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...

    def sampling_weights(self) -> np.ndarray | None: ...


def stored_rows(data: GroundTruthData) -> np.ndarray | None:
    """The data set's stored rows (:meth:`GridData.stored_images`), or None if it has none."""
    stored = getattr(data, "stored_images", None)
    if stored is None:
        return None
    try:
        return stored()
    except NotImplementedError:  # a GridData subclass that only follows the protocol
        return None
