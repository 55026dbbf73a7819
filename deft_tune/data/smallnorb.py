"""SmallNORB (LeCun et al. 2004), read from the user's copy of the six .mat files.

Preprocessing follows disentanglement_lib: both splits concatenated (48,600 examples), the left
image of each stereo pair, a Lanczos resize from 96x96 to 64x64, values scaled to [0, 1]. The
resized images are kept as uint8 (the resize of a uint8 "L" image is uint8 already, so nothing
is lost) in an Arrow cache (:mod:`deft_tune.data.cache`), since resizing takes a while.

Nuisance: the examples form the full grid category x elevation x azimuth x lighting x instance
(5 x 9 x 18 x 6 x 10), but the instance is not a ground-truth factor. As with
``dsprites_noshape``, a stored row is one cell of the factor grid holding all its instances,
uint8 (10, 64, 64), and :meth:`SmallNORB.decode_batch` picks one instance per image from the
generator. So the grid arithmetic of :class:`GridData` holds unchanged (4,860 cells), uniform
training batches are uniform over factors and instance (disentanglement_lib's distribution),
and every consumer, single-factor views included, sees a fresh random instance per image.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from deft_tune.data import cache
from deft_tune.data.base import GridData
from deft_tune.errors import DataError
from deft_tune.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

#: magic number -> element type, as defined by the NORB file format (little-endian).
NORB_DTYPES: dict[int, np.dtype] = {
    0x1E3D4C51: np.dtype("<f4"),
    0x1E3D4C53: np.dtype("<f8"),
    0x1E3D4C54: np.dtype("<i4"),
    0x1E3D4C55: np.dtype("u1"),
    0x1E3D4C56: np.dtype("<i2"),
}
MAGIC_UINT8 = 0x1E3D4C55
MAGIC_INT32 = 0x1E3D4C54

SPLIT_PREFIXES = (
    "smallnorb-5x46789x9x18x6x2x96x96-training",
    "smallnorb-5x01235x9x18x6x2x96x96-testing",
)
SOURCE_SIDE = 96
TARGET_SIDE = 64
_CACHE_VERSION = 2  # bump when the preprocessing changes, so old caches are not reused


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn the OS and gzip errors of reading ``path`` into one-line :class:`DataError`."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError) as exc:  # permissions, a corrupt or cut gzip stream, ...
        raise DataError(f"{path}: cannot read ({exc})") from None


def _read_bytes(path: Path, count: int, offset: int = 0) -> bytes:
    """``count`` bytes at ``offset`` of a plain or gzip file; fewer if the file ends early."""
    opener = gzip.open if path.suffix == ".gz" else open
    with _reading(path), opener(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(count)


def _payload_size(path: Path) -> int:
    with _reading(path):
        if path.suffix != ".gz":
            return path.stat().st_size
        with gzip.open(path, "rb") as fh:  # gzip stores no reliable length: read through it
            return fh.seek(0, os.SEEK_END)


def read_norb_header(path: str | os.PathLike) -> tuple[np.dtype, tuple[int, ...], int]:
    """Parse a NORB header: (element dtype, shape, header size in bytes).

    Header: int32 magic, int32 ndim, then max(3, ndim) int32 dims; unused dims are 1. Raises
    :class:`DataError` on an unknown magic, a bad ndim or a file shorter than the header.
    """
    path = Path(path)
    head = _read_bytes(path, 8)
    if len(head) < 8:
        raise DataError(f"{path}: truncated header ({len(head)} bytes, need at least 8)")
    magic, ndim = (int(v) for v in np.frombuffer(head, dtype="<i4"))
    if magic not in NORB_DTYPES:
        raise DataError(
            f"{path}: wrong magic number {magic:#x}; not a NORB file "
            f"(known: {', '.join(f'{m:#x}' for m in NORB_DTYPES)})"
        )
    if not 0 < ndim <= 16:
        raise DataError(f"{path}: bad ndim {ndim} in the header, must lie in [1, 16]")
    header_size = 8 + 4 * max(3, ndim)
    raw_dims = _read_bytes(path, header_size)[8:]
    if len(raw_dims) < header_size - 8:
        raise DataError(f"{path}: truncated header ({8 + len(raw_dims)} bytes, need {header_size})")
    dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype="<i4"))
    if any(d < 0 for d in dims):
        raise DataError(f"{path}: negative dimension in the header {dims}")
    return NORB_DTYPES[magic], dims[:ndim], header_size


def read_norb_file(path: str | os.PathLike) -> np.ndarray:
    """Any valid NORB file (plain or .gz) -> its array; the file size must match the header.

    Plain files are memory-mapped (read-only), so opening a 450 MB image file is instant.
    """
    path = Path(path)
    dtype, shape, header_size = read_norb_header(path)
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = _payload_size(path)
    if actual != expected:
        what = "truncated" if actual < expected else "too long"
        raise DataError(
            f"{path}: {what}: {actual} bytes, the header {shape} of {dtype} promises {expected}"
        )
    if path.suffix == ".gz":
        data = _read_bytes(path, expected - header_size, offset=header_size)
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    with _reading(path):
        return np.memmap(path, dtype=dtype, mode="r", offset=header_size, shape=shape)


def write_norb_file(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (uint8, int32, int16, float32 or float64) in the NORB format.

    The inverse of :func:`read_norb_file`; used to build test fixtures and small subsets.
    """
    array = np.asarray(array)
    magic = next((m for m, dt in NORB_DTYPES.items() if dt == array.dtype.newbyteorder("<")), None)
    if magic is None or array.ndim == 0:
        raise ValueError(
            f"array must be a non-scalar of a NORB dtype, got {array.dtype} with ndim {array.ndim}"
        )
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = np.asarray([magic, array.ndim, *dims], dtype="<i4").tobytes()
    payload = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    atomic_write_bytes(path, header + payload)


def resize_lanczos(images: np.ndarray, side: int = TARGET_SIDE) -> np.ndarray:
    """uint8 images (n, H, W) -> uint8 (n, side, side), Pillow's Lanczos filter per image."""
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 of shape (n, H, W), got {images.dtype} {images.shape}"
        )
    out = np.empty((len(images), side, side), dtype=np.uint8)
    for i, image in enumerate(images):
        resized = Image.fromarray(np.ascontiguousarray(image)).resize(
            (side, side), resample=Image.Resampling.LANCZOS
        )
        out[i] = np.asarray(resized)
    return out


Progress = Callable[[int, int], None]  # (images done, images in all)
STORAGE_NAMES = ("category", "elevation", "azimuth", "lighting", "instance")


class SmallNORB(GridData):
    """SmallNORB from ``path``, a folder holding the six .mat (or .mat.gz) files of both splits.

    Factors: category 5, elevation 9, azimuth 18 (the file's azimuth / 2), lighting 6; the
    instance (10) is a nuisance drawn when decoding (see the module docstring).
    ``cache_dir``: where the preprocessed images are cached (:func:`cache.resolve_cache_dir`).
    """

    name = "smallnorb"
    description = "SmallNORB toys, left camera, 64x64 grey, instance as nuisance (needs the files)"
    factor_names = ("category", "elevation", "azimuth", "lighting")
    factor_sizes = (5, 9, 18, 6)
    nuisance_names = ("instance",)
    nuisance_sizes = (10,)  # the fastest axis of the stored grid
    observation_shape = (1, TARGET_SIDE, TARGET_SIDE)

    def __init__(
        self, path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
    ) -> None:
        if path is None:
            raise DataError(
                "smallnorb needs the folder with its six .mat files: pass path=FOLDER (--path) "
                "(download from https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/)"
            )
        self.path = Path(path).expanduser()
        self.cache_dir = cache.resolve_cache_dir(cache_dir)
        self.files = self._locate_files()
        self._images: np.ndarray | None = None

    @property
    def storage_sizes(self) -> tuple[int, ...]:
        """Sizes of the stored grid: category, elevation, azimuth, lighting, instance."""
        return (*self.factor_sizes, *self.nuisance_sizes)

    def build_cache(self, progress: Progress | None = None) -> Path:
        """Read, resize and cache the images unless a valid cache exists; its path.

        ``progress(done, total)`` follows the resizing, in images.
        """
        self._load(progress)
        return self.cache_path

    def stored_images(self) -> np.ndarray:
        """uint8 (4,860, 10, 64, 64): per factor cell its 10 instances, memory-mapped."""
        return self._load()

    def _load(self, progress: Progress | None = None) -> np.ndarray:
        if self._images is None:
            table = cache.load_or_build(
                self.cache_path, lambda: self._build_table(progress), self._schema(), self._rows
            )
            rows = cache.fixed_rows(table, "image")
            self._images = rows.reshape(self.num_samples, -1, TARGET_SIDE, TARGET_SIDE)
        return self._images

    def decode_batch(
        self, raw: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Stored rows (n, 10, 64, 64) -> (n, 1, 64, 64) in [0, 1], one random instance each."""
        count = self.nuisance_sizes[0]
        if raw.ndim != 4 or raw.shape[1] != count:
            raise ValueError(f"raw must have shape (n, {count}, 64, 64), got {tuple(raw.shape)}")
        pick = torch.randint(count, (len(raw),), generator=generator, device=raw.device)
        chosen = raw[torch.arange(len(raw), device=raw.device), pick]
        return chosen.to(torch.float32).div_(255.0).unsqueeze(1)

    # --- building the cache -------------------------------------------------------------

    @property
    def _rows(self) -> int:
        return int(np.prod(self.storage_sizes, dtype=np.int64))

    @property
    def cache_path(self) -> Path:
        """The Arrow file that holds (or will hold) the preprocessed images."""
        key = hashlib.sha1(repr((_CACHE_VERSION, self.storage_sizes)).encode())
        for file in sorted(self.files.values()):
            stat = file.stat()
            key.update(f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        return self.cache_dir / f"smallnorb-{TARGET_SIDE}-{key.hexdigest()[:16]}.arrow"

    def _schema(self) -> pa.Schema:
        fields = [pa.field("image", pa.list_(pa.uint8(), TARGET_SIDE * TARGET_SIDE))]
        fields += [pa.field(name, pa.uint8()) for name in STORAGE_NAMES]
        return pa.schema(fields, metadata={"dataset": "smallnorb", "source": str(self.path)})

    def _locate_files(self) -> dict[tuple[str, str], Path]:
        if not self.path.is_dir():
            raise DataError(
                f"smallnorb folder {self.path} does not exist or is not a folder; "
                "pass the folder holding the six smallnorb-*.mat files"
            )
        files = {}
        for prefix in SPLIT_PREFIXES:
            for kind in ("dat", "cat", "info"):
                plain = self.path / f"{prefix}-{kind}.mat"
                gz = plain.with_name(plain.name + ".gz")
                if not plain.exists() and not gz.exists():
                    raise DataError(
                        f"smallnorb file {plain.name} (or .gz) not found in "
                        f"{self.path}; the folder needs all six files"
                    )
                files[prefix, kind] = plain if plain.exists() else gz
        return files

    def _build_table(self, progress: Progress | None) -> pa.Table:
        per_split = self._rows // len(SPLIT_PREFIXES)
        images = np.zeros((self._rows, TARGET_SIDE * TARGET_SIDE), dtype=np.uint8)
        filled = np.zeros(self._rows, dtype=np.int64)
        for prefix in SPLIT_PREFIXES:
            dat, rows = self._read_split(prefix, per_split)
            log.info("resizing %d smallnorb images of %s", len(rows), prefix)
            for start in range(0, len(rows), 1024):  # chunks: never 450 MB in memory at once
                block = resize_lanczos(np.asarray(dat[start : start + 1024, 0]))
                images[rows[start : start + 1024]] = block.reshape(len(block), -1)
                if progress is not None:
                    progress(int(filled.sum()) + start + len(block), self._rows)
            np.add.at(filled, rows, 1)
        if (filled != 1).any():
            cell = np.unravel_index(int(np.argmax(filled != 1)), self.storage_sizes)
            raise DataError(
                f"smallnorb files in {self.path} do not form the full grid: (category, "
                f"elevation, azimuth/2, lighting, instance) = {tuple(int(c) for c in cell)} "
                f"occurs {filled[filled != 1][0]} times"
            )
        grid = np.unravel_index(np.arange(self._rows), self.storage_sizes)
        columns = [cache.uint8_rows_array(images)]
        columns += [pa.array(column.astype(np.uint8)) for column in grid]
        return pa.Table.from_arrays(columns, schema=self._schema())

    def _read_split(self, prefix: str, count: int) -> tuple[np.ndarray, np.ndarray]:
        """One split's images (count, 2, 96, 96) and their stored row indices (count,)."""
        side = SOURCE_SIDE
        dat = self._read_checked(prefix, "dat", MAGIC_UINT8, (count, 2, side, side))
        cat = self._read_checked(prefix, "cat", MAGIC_INT32, (count,))
        info = self._read_checked(prefix, "info", MAGIC_INT32, (count, 4))
        instance, elevation, azimuth, lighting = np.asarray(info, dtype=np.int64).T
        if (azimuth % 2).any():
            raise DataError(
                f"{self.files[prefix, 'info']}: azimuth values must be even (0, 2, ..., 34)"
            )
        labels = (np.asarray(cat, dtype=np.int64), elevation, azimuth // 2, lighting, instance)
        for name, values, size in zip(STORAGE_NAMES, labels, self.storage_sizes, strict=True):
            if values.size and (values.min() < 0 or values.max() >= size):
                kind = "cat" if name == "category" else "info"
                raise DataError(
                    f"{self.files[prefix, kind]}: {name} values must lie in "
                    f"[0, {size}), got [{values.min()}, {values.max()}]"
                )
        rows = np.ravel_multi_index(labels, self.storage_sizes)
        return dat, rows.astype(np.int64)

    def _read_checked(
        self, prefix: str, kind: str, magic: int, shape: tuple[int, ...]
    ) -> np.ndarray:
        path = self.files[prefix, kind]
        dtype, found, _ = read_norb_header(path)
        if dtype != NORB_DTYPES[magic]:
            raise DataError(
                f"{path}: wrong magic number: holds {dtype}, a smallnorb {kind} "
                f"file holds {NORB_DTYPES[magic]} (magic {magic:#x})"
            )
        if len(found) != len(shape):
            raise DataError(
                f"{path}: ndim {len(found)} in the header, a smallnorb {kind} "
                f"file has {len(shape)} dimensions {shape}"
            )
        if found != shape:
            raise DataError(f"{path}: dims {found} in the header, expected {shape}")
        return read_norb_file(path)
