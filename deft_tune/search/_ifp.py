"""Stage-beta candidates from an annealing-test table (the Parquet `deft-tune ifp` writes).

DEFT wants stage i's beta below the freezing point of the factor it should admit and above the
freezing points of the factors still to come. Sorting factors by their median IFP, the useful
betas therefore lie between consecutive factors: where the two IFP distributions are separated
(the lower quantile of the higher factor above the upper quantile of the lower one) the
candidate is the geometric middle of that gap, otherwise the geometric middle of the two
medians. Betas are compared on a log scale, as the annealing itself is exponential.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from deft_tune.errors import ConfigError

__all__ = ["IFP_COLUMNS", "beta_candidates", "read_ifp_table"]

logger = logging.getLogger(__name__)

IFP_COLUMNS = ("factor", "draw", "seed", "ifp", "steps", "final_kl")


def read_ifp_table(path: str | os.PathLike, dataset: str | None = None) -> dict[str, np.ndarray]:
    """Finite IFPs per factor from the Parquet at ``path`` (a folder: its ``ifp.parquet``).

    A table with a ``dataset`` column is restricted to ``dataset``'s rows: freezing points are a
    property of the data, so a table of another data set is refused. ConfigError naming what is
    wrong.
    """
    import pyarrow.parquet as pq  # only spaces with betas_from_ifp need it

    path = Path(path)
    if path.is_dir():
        path = path / "ifp.parquet"
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise ConfigError(
            f"betas_from_ifp: {path} does not exist: run `deft-tune ifp` first or fix the path"
        ) from None
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise ConfigError(f"betas_from_ifp: {path} is not a readable Parquet file: {exc}") from None
    missing = [c for c in IFP_COLUMNS if c not in table.column_names]
    if missing:
        raise ConfigError(
            f"betas_from_ifp: {path} lacks column(s) {missing}; an IFP table has "
            f"{list(IFP_COLUMNS)} (write it with `deft-tune ifp`)"
        )
    if dataset is not None and "dataset" in table.column_names:
        table = _rows_of(table, dataset, path)
    factors = [str(f) for f in table.column("factor").to_pylist()]
    try:
        ifps = np.asarray(table.column("ifp").to_pylist(), dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"betas_from_ifp: {path} column 'ifp' must be numeric") from None
    out: dict[str, np.ndarray] = {}
    for name in dict.fromkeys(factors):
        values = ifps[[f == name for f in factors]]
        values = values[np.isfinite(values)]  # NaN: the factor never froze in that run
        if values.size:
            out[name] = values
        else:
            logger.info("factor %s never froze in %s: no stage boundary for it", name, path)
    if np.any(ifps[np.isfinite(ifps)] <= 0):
        raise ConfigError(f"betas_from_ifp: {path} has IFPs <= 0; a freezing beta is positive")
    return out


def _rows_of(table, dataset: str, path: Path):
    names = table.column("dataset").to_pylist()
    if dataset not in names:
        raise ConfigError(
            f"betas_from_ifp: {path} holds the annealing test of {sorted(set(map(str, names)))}, "
            f"not of {dataset!r}: run `deft-tune ifp` on {dataset}"
        )
    return table.filter([name == dataset for name in names])


def beta_candidates(
    ifps: dict[str, np.ndarray], quantiles: tuple[float, float] = (0.25, 0.75)
) -> tuple[float, ...]:
    """Strictly decreasing stage-beta candidates between factors, rounded to 4 digits."""
    low_q, high_q = quantiles
    stats = sorted(
        (
            (float(np.median(v)), float(np.quantile(v, low_q)), float(np.quantile(v, high_q)))
            for v in ifps.values()
        ),
        reverse=True,
    )
    out: list[float] = []
    for (med_a, low_a, _), (med_b, _, high_b) in zip(stats, stats[1:]):
        if med_a <= med_b:
            continue  # equal medians: no beta separates the two factors
        candidate = math.sqrt(low_a * high_b) if low_a > high_b else math.sqrt(med_a * med_b)
        candidate = float(f"{candidate:.4g}")
        if not out or candidate < out[-1]:
            out.append(candidate)
    return tuple(out)
