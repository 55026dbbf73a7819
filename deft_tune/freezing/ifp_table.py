"""The IFP table (``ifp.parquet``): written by the annealing test, read by ``deft-tune ifp
--suggest`` and by search spaces that take their stage betas from it (``betas_from_ifp``).

One row per annealing run: the data set, the factor, the draw of the other factors, the seed,
the IFP (the beta at which the factor's information entered; NaN when it never did), the step
of that, the run's length and its final KL, and the fixed factor values as JSON. Readers need
only :data:`REQUIRED_COLUMNS`; a table without ``dataset`` is taken to be of any data set.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deft_tune.errors import DataError
from deft_tune.fileio import atomic_write

__all__ = [
    "IFP_COLUMNS",
    "REQUIRED_COLUMNS",
    "TABLE_FILE",
    "ifps_by_factor",
    "read_ifp_table",
    "results_table",
    "write_ifp_table",
]

TABLE_FILE = "ifp.parquet"
IFP_COLUMNS = ("dataset", "factor", "draw", "seed", "ifp", "ifp_step", "steps", "final_kl")
REQUIRED_COLUMNS = ("factor", "draw", "seed", "ifp", "steps", "final_kl")


def results_table(results: Sequence[Any]) -> pa.Table:
    """One row per annealing result; ``fixed`` (the other factors' values) as a JSON string."""
    rows = {name: [getattr(r, name) for r in results] for name in IFP_COLUMNS}
    rows["fixed"] = [json.dumps(r.fixed, sort_keys=True) for r in results]
    return pa.table(rows)


def write_ifp_table(results: Sequence[Any], path: str | os.PathLike) -> Path:
    table = results_table(results)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_ifp_table(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of an IFP table (a folder is taken to hold ``ifp.parquet``); DataError if unusable."""
    path = Path(path)
    if path.is_dir():
        path = path / TABLE_FILE
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise DataError(
            f"no IFP table at {path}: run `deft-tune ifp NAME --out {path.parent}` "
            "first, or fix the path"
        ) from None
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path} is not a readable Parquet file: {exc}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(
            f"{path} lacks column(s) {missing}: an IFP table has {list(REQUIRED_COLUMNS)} "
            "(write it with `deft-tune ifp`)"
        )
    rows = table.to_pylist()
    if not rows:
        raise DataError(f"{path} has no runs")
    return rows


def ifps_by_factor(
    rows: Iterable[Mapping[str, Any]], dataset: str | None = None, source: str = "the IFP table"
) -> dict[str, np.ndarray]:
    """Finite IFPs per factor (a factor that never froze is left out).

    With ``dataset``, rows of other data sets are dropped; a table that holds none of its rows
    is refused (freezing points are a property of the data).
    """
    rows = list(rows)
    if dataset is not None and rows and "dataset" in rows[0]:
        owners = sorted({str(row["dataset"]) for row in rows})
        if dataset not in owners:
            raise DataError(
                f"{source} holds the annealing test of {owners}, not of {dataset!r}: "
                f"run `deft-tune ifp {dataset}`"
            )
        rows = [row for row in rows if row["dataset"] == dataset]
    found: dict[str, list[float]] = {}
    for row in rows:
        value = _number(row["ifp"], source)
        if math.isfinite(value) and value <= 0:
            raise DataError(f"{source} has IFPs <= 0; a freezing beta is positive")
        found.setdefault(str(row["factor"]), [])
        if math.isfinite(value):
            found[str(row["factor"])].append(value)
    return {factor: np.asarray(v) for factor, v in found.items() if v}


def _number(value: Any, source: str) -> float:
    try:
        return float("nan") if value is None else float(value)
    except (TypeError, ValueError):
        raise DataError(f"{source}: column 'ifp' must be numeric, got {value!r}") from None
