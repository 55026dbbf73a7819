"""dSprites (Matthey et al. 2017): rendered procedurally, or read from the user's real file.

Storage: one row per image, the 64x64 mask bit-packed into 512 bytes (``np.packbits``, first
pixel in the most significant bit), in the grid order of the real file (pos_y varying fastest).
The rows live in an Arrow cache file (see :mod:`deft_tune.data.cache`), together with the
factor indices as columns, and are memory-mapped on load; :meth:`DSprites.decode_batch` unpacks
a gathered batch with torch ops on whatever device it is on.

The real file (``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` or its HDF5 twin) is checked
against the renderer's factor order row by row before it is used, and cached in the same
format, so everything downstream is the same whichever source the images came from.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from deft_tune.data import cache
from deft_tune.data.base import GridData
from deft_tune.data.render import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    SIDE,
    factor_values,
    render_masks,
    render_packed,
)
from deft_tune.errors import DataError

__all__ = [
    "DSprites",
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "factor_values",
    "render_masks",
    "render_packed",
    "unpack_masks",
]

log = logging.getLogger(__name__)

RENDER_VERSION = 1  # bump when the renderer's output changes, so old caches are not reused
PACKED_WIDTH = SIDE * SIDE // 8
REAL_FILE_NAMES = (
    "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
    "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5",
)
_RENDER_CHUNK = 16384  # images per progress step; bounds the renderer's working memory

# What numpy's zip reader and h5py raise on a damaged or truncated file.
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)

Progress = Callable[[int, int], None]  # (rows done, rows in all)


class DSprites(GridData):
    """dSprites with all five factors: shape, scale, orientation, pos_x, pos_y.

    ``cache_dir``: where the rendered set is cached (see :func:`cache.resolve_cache_dir`).
    ``path``: the real .npz / .h5 / .hdf5 file, or a folder holding it; images then come from
    that file instead of the renderer.
    """

    name = "dsprites_full"
    description = (
        "dSprites: 737,280 binary 64x64 sprites, every shape x scale x orientation x "
        "position (3 x 6 x 40 x 32 x 32)"
    )
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    observation_shape = (1, SIDE, SIDE)

    def __init__(
        self, cache_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None
    ) -> None:
        self.cache_dir = cache.resolve_cache_dir(cache_dir)
        self.path = _locate_real_file(Path(path).expanduser()) if path is not None else None
        source = f"from {self.path.name}" if self.path else "procedurally rendered"
        self.description = f"{type(self).description}; {source}"
        self._packed: np.ndarray | None = None

    # --- the storage grid: all five dSprites factors (variants may hide some) ---------------

    @property
    def storage_sizes(self) -> tuple[int, ...]:
        """Sizes of the stored grid of masks (shape, scale, orientation, pos_x, pos_y)."""
        return tuple(self.factor_sizes)

    @property
    def cache_path(self) -> Path:
        """The Arrow file that holds (or will hold) this data set's masks."""
        sizes = "x".join(map(str, self.storage_sizes))
        if self.path is None:
            return self.cache_dir / f"dsprites-render{RENDER_VERSION}-{sizes}.arrow"
        stat = self.path.stat()
        key = f"{self.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{sizes}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        return self.cache_dir / f"dsprites-file-{digest}.arrow"

    def masks(self, progress: Progress | None = None) -> np.ndarray:
        """Every mask of the storage grid, bit-packed: read-only uint8 (rows, 512).

        Memory-mapped from the cache; rendered (or read from the real file) and cached first if
        the cache file is missing or corrupt. ``progress(done, total)`` follows that work.
        """
        if self._packed is None:
            table = cache.load_or_build(
                self.cache_path, lambda: self._build_table(progress), self._schema(), self._rows
            )
            self._packed = cache.fixed_rows(table, "image")
        return self._packed

    def build_cache(self, progress: Progress | None = None) -> Path:
        """Render (or read) and cache the masks unless a valid cache exists; its path."""
        self.masks(progress)
        return self.cache_path

    def stored_images(self) -> np.ndarray:
        """Bit-packed masks, uint8 (737,280, 512), memory-mapped from the cache."""
        return self.masks()

    def decode_batch(
        self, raw: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return unpack_masks(raw)

    # --- building the cache -------------------------------------------------------------

    @property
    def _rows(self) -> int:
        return int(np.prod(self.storage_sizes, dtype=np.int64))

    def _grid_factors(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        flat = np.arange(start, self._rows if stop is None else stop, dtype=np.int64)
        return np.stack(np.unravel_index(flat, self.storage_sizes), axis=1)

    def _schema(self) -> pa.Schema:
        fields = [pa.field("image", pa.list_(pa.uint8(), PACKED_WIDTH))]
        fields += [pa.field(name, pa.uint8()) for name in FACTOR_NAMES]
        source = self.path.name if self.path else f"renderer v{RENDER_VERSION}"
        return pa.schema(fields, metadata={"dataset": "dsprites", "source": source})

    def _build_table(self, progress: Progress | None) -> pa.Table:
        if self.path is not None:
            log.info("reading dSprites from %s", self.path)
            packed = read_real_file(self.path, self._grid_factors(), progress)
        else:
            log.info("rendering %d dSprites images", self._rows)
            packed = self._render(progress)
        factors = self._grid_factors().astype(np.uint8)
        columns = [cache.uint8_rows_array(packed)] + [pa.array(col) for col in factors.T]
        return pa.Table.from_arrays(columns, schema=self._schema())

    def _render(self, progress: Progress | None) -> np.ndarray:
        return render_packed(self._grid_factors(), progress)


# Byte value -> its 8 bits as float32, most significant first. On the CPU one lookup per byte
# costs a third of the shifts below: the standard metric suite unpacks 2.9 M masks (BetaVAE and
# FactorVAE batches), and a CPU training step unpacks its batch.
_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32)


def unpack_masks(raw: torch.Tensor) -> torch.Tensor:
    """Bit-packed rows (n, 512) uint8 -> float32 masks (n, 1, 64, 64), on raw's device."""
    if raw.ndim != 2 or raw.shape[1] != PACKED_WIDTH:
        raise ValueError(f"raw must have shape (n, {PACKED_WIDTH}), got {tuple(raw.shape)}")
    if raw.device.type == "cpu":
        bits_cpu = _BITS[raw.to(torch.uint8).numpy()]
        return torch.from_numpy(bits_cpu).reshape(len(raw), 1, SIDE, SIDE)
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=raw.device)
    bits = (raw.to(torch.uint8).unsqueeze(-1) >> shifts) & 1  # most significant bit first
    return bits.reshape(len(raw), 1, SIDE, SIDE).to(torch.float32)


def _locate_real_file(path: Path) -> Path:
    if path.is_dir():
        for name in REAL_FILE_NAMES:
            if (path / name).is_file():
                return path / name
        raise DataError(
            f"no dSprites file in folder {path}; expected one of {', '.join(REAL_FILE_NAMES)}"
        )
    if not path.is_file():
        raise DataError(f"dSprites file {path} does not exist; pass the .npz or .hdf5 file")
    return path


# --- the real file ----------------------------------------------------------------------


def read_real_file(
    path: Path, expected: np.ndarray, progress: Progress | None = None
) -> np.ndarray:
    """Bit-packed masks (n, 512) from the real .npz / .h5 file, checked against ``expected``.

    ``expected`` holds the factor indices (n, 5) that row i must have: the file's
    ``latents_classes`` (less the constant colour column) must equal them, so the file and the
    renderer agree on factor order.
    """
    suffix = path.suffix.lower()
    opener: Callable[..., Any]
    if suffix == ".npz":
        opener = _open_npz
    elif suffix in (".h5", ".hdf5"):
        opener = _open_h5
    else:
        raise DataError(f"dSprites file {path} must end in .npz, .h5 or .hdf5")
    try:
        with opener(path) as (images, classes):
            _check_arrays(path, images, classes, expected)
            return _pack(path, images, progress)
    except _READ_ERRORS as exc:  # a damaged or truncated file
        raise DataError(f"cannot read dSprites file {path}: {type(exc).__name__}: {exc}") from None


class _open_npz:
    """Context manager: (imgs, latents_classes) of an .npz, without unpickling anything."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> tuple[np.ndarray, np.ndarray]:
        self.file = np.load(self.path, allow_pickle=False)  # metadata (a pickle) is never read
        missing = {"imgs", "latents_classes"} - set(self.file.files)
        if missing:
            self.file.close()
            raise DataError(
                f"dSprites file {self.path} lacks the array(s) {', '.join(sorted(missing))}; "
                f"it has {', '.join(self.file.files) or 'none'}"
            )
        return self.file["imgs"], self.file["latents_classes"]

    def __exit__(self, *exc) -> None:
        self.file.close()


class _open_h5:
    """Context manager: (imgs, latents/classes) of the HDF5 twin, read lazily with h5py."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        try:
            import h5py
        except ImportError:
            raise DataError(
                f"reading {self.path} needs h5py (pip install h5py), or pass the .npz file"
            ) from None
        self.file = h5py.File(self.path, "r")
        for key in ("imgs", "latents/classes"):
            if key not in self.file:
                self.file.close()
                raise DataError(f"dSprites file {self.path} lacks the dataset {key!r}")
        return self.file["imgs"], self.file["latents/classes"][()]

    def __exit__(self, *exc) -> None:
        self.file.close()


def _check_arrays(path: Path, images, classes: np.ndarray, expected: np.ndarray) -> None:
    n = len(expected)
    if tuple(images.shape) != (n, SIDE, SIDE) or images.dtype != np.uint8:
        raise DataError(
            f"dSprites file {path}: imgs must be uint8 of shape ({n}, {SIDE}, {SIDE}), "
            f"got {images.dtype} {tuple(images.shape)}"
        )
    if classes.shape != (n, 6) or not np.issubdtype(classes.dtype, np.integer):
        raise DataError(
            f"dSprites file {path}: latents_classes must be integer of shape ({n}, 6), "
            f"got {classes.dtype} {classes.shape}"
        )
    if n and (classes[:, 0] != classes[0, 0]).any():
        raise DataError(f"dSprites file {path}: latents_classes column 0 (colour) must be constant")
    wrong = np.flatnonzero((classes[:, 1:] != expected).any(axis=1))
    if wrong.size:
        i = int(wrong[0])
        raise DataError(
            f"dSprites file {path}: row {i} has factors {classes[i, 1:].tolist()}, the grid "
            f"order needs {expected[i].tolist()} (shape, scale, orientation, pos_x, pos_y)"
        )


def _pack(path: Path, images, progress: Progress | None) -> np.ndarray:
    n = len(images)
    packed = np.empty((n, PACKED_WIDTH), dtype=np.uint8)
    for start in range(0, n, _RENDER_CHUNK):
        block = np.asarray(images[start : start + _RENDER_CHUNK])
        if block.size and block.max() > 1:
            raise DataError(
                f"dSprites file {path}: imgs must hold only 0 and 1, found {block.max()}"
            )
        packed[start : start + len(block)] = np.packbits(block.reshape(len(block), -1), axis=1)
        if progress is not None:
            progress(start + len(block), n)
    return packed
