"""On-disk cache of rendered data sets: Arrow IPC files, written atomically, memory-mapped.

A cache file is one Arrow table in one record batch, so that a fixed-width column (bit-packed
images) maps to one contiguous buffer that numpy can view without copying: loading costs a few
milliseconds whatever the file's size, and the operating system pages rows in as they are used.

Atomicity: a file is written under a temporary name in the same folder and renamed into place,
so readers (and a second worker rendering the same set at the same moment) only ever see no
file or a complete one; the last rename wins and both renames leave a valid file.

Where: ``resolve_cache_dir`` picks the argument, else the ``DEFT_TUNE_CACHE`` environment
variable, else the per-user cache folder (``platformdirs``). A run config's relative
``data.options.cache_dir`` or ``path`` lies inside that folder (:func:`resolve_option_paths`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from deft_tune.errors import DataError
from deft_tune.fileio import atomic_write, check_output_dir, check_output_file

log = logging.getLogger(__name__)

ENV_VAR = "DEFT_TUNE_CACHE"


class CorruptCacheError(DataError):
    """A cache file that exists but cannot be used (truncated, not Arrow, wrong layout)."""


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir`` if given, else $DEFT_TUNE_CACHE, else the user cache.

    ConfigError, naming the setting, when a file stands where the folder must be.
    """
    if cache_dir is not None:
        path, source = Path(cache_dir).expanduser(), "cache_dir"
    elif os.environ.get(ENV_VAR):
        path, source = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        import platformdirs  # imported here: only needed when nothing else says where

        path, source = Path(platformdirs.user_cache_dir("deft-tune")), "the user cache folder"
    return check_output_dir(path, source, writable=False)  # written only when rendering


# Data set options that are paths: in a run config (or a search space) a relative one lies in
# the cache folder, so that a config means the same from any folder and on any machine.
PATH_OPTIONS = ("cache_dir", "path")


def resolve_option_paths(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` of a run config's data section with ``cache_dir`` and ``path`` made absolute:
    ``~`` expanded, and a relative path taken inside the user's cache setting
    (:func:`resolve_cache_dir` without an argument: $DEFT_TUNE_CACHE, else the user cache), not
    the working folder (which a Ray trial changes). Absolute paths stay as they are."""
    resolved = dict(options)
    for key in PATH_OPTIONS:
        if resolved.get(key) is None:
            continue
        path = Path(resolved[key]).expanduser()
        resolved[key] = path if path.is_absolute() else resolve_cache_dir() / path
    return resolved


def write_table(path: str | os.PathLike, table: pa.Table) -> Path:
    """Write ``table`` to ``path`` as one Arrow IPC record batch, atomically."""

    def write(tmp: str) -> None:
        with pa.ipc.new_file(tmp, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(table.num_rows, 1))

    try:
        return atomic_write(path, write, durable=True)
    except (NotADirectoryError, FileExistsError, PermissionError) as exc:
        raise DataError(f"cannot write to the cache folder {Path(path).parent}: {exc}") from None


def read_table(
    path: str | os.PathLike, schema: pa.Schema | None = None, num_rows: int | None = None
) -> pa.Table:
    """Memory-map the Arrow IPC file at ``path``; check its schema and row count if given.

    Raises :class:`CorruptCacheError` for a file that is not a complete Arrow IPC file or does
    not have the expected layout, and :class:`FileNotFoundError` when there is no file.
    """
    path = Path(path)
    try:
        source = pa.memory_map(str(path), "r")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CorruptCacheError(f"cannot open {path}: {exc}") from None
    try:
        table = pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, OSError) as exc:  # truncated, or not Arrow at all
        raise CorruptCacheError(f"{path} is not a complete Arrow IPC file: {exc}") from None
    if schema is not None and not table.schema.equals(schema, check_metadata=True):
        raise CorruptCacheError(f"{path} has schema {table.schema}, expected {schema}")
    if num_rows is not None and table.num_rows != num_rows:
        raise CorruptCacheError(f"{path} has {table.num_rows} rows, expected {num_rows}")
    return table


def load_or_build(
    path: str | os.PathLike,
    build: Callable[[], pa.Table],
    schema: pa.Schema,
    num_rows: int,
) -> pa.Table:
    """The cached table at ``path``, built with ``build()`` and cached first if needed.

    A corrupt file is reported with a warning and rebuilt. The returned table is always the
    memory-mapped file (re-read after writing), so every caller gets the same zero-copy layout.
    """
    path = Path(path)
    where = "the data cache file"
    fix = f"remove that folder, or set another cache folder (${ENV_VAR}, --cache-dir)"
    check_output_file(path, where, fix=fix, writable=False)
    try:
        return read_table(path, schema, num_rows)
    except FileNotFoundError:
        log.info("no cache file %s yet; rendering it", path)
    except CorruptCacheError as exc:
        log.warning("cache file %s is corrupt; re-rendering (%s)", path, exc)
    check_output_file(path, where, fix=fix)  # it can be written: checked before rendering
    table = build()
    if not table.schema.equals(schema, check_metadata=True) or table.num_rows != num_rows:
        raise ValueError(
            f"build() returned {table.num_rows} rows of {table.schema}, "
            f"expected {num_rows} rows of {schema}"
        )
    write_table(path, table)
    log.info("cached %d rows in %s", num_rows, path)
    return read_table(path, schema, num_rows)


def fixed_rows(table: pa.Table, column: str) -> np.ndarray:
    """A fixed-size-list<uint8> column as a read-only (n, width) uint8 array, without copying.

    Zero-copy needs the column in one chunk (as :func:`write_table` writes it); several chunks
    are concatenated (copied).
    """
    data = table.column(column)
    if not pa.types.is_fixed_size_list(data.type) or data.type.value_type != pa.uint8():
        raise ValueError(f"column {column!r} must be fixed_size_list<uint8>, got {data.type}")
    chunk = data.chunk(0) if data.num_chunks == 1 else data.combine_chunks()
    width = data.type.list_size
    if chunk.null_count or len(chunk.flatten()) != len(chunk) * width:
        raise ValueError(f"column {column!r} has missing rows")
    values = chunk.flatten()  # the rows' bytes, honouring any slice offset
    # Read the data buffer directly: Array.to_numpy would import pandas (0.3 s) on first use.
    buffer = values.buffers()[1]
    flat = np.frombuffer(buffer, dtype=np.uint8, count=len(values), offset=values.offset)
    return flat.reshape(len(chunk), width)


def uint8_rows_array(rows: np.ndarray) -> pa.FixedSizeListArray:
    """(n, width) uint8 numpy rows -> a fixed-size-list<uint8> Arrow array (no copy)."""
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    if rows.ndim != 2:
        raise ValueError(f"rows must be 2-D (n, width), got shape {rows.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), rows.shape[1])
