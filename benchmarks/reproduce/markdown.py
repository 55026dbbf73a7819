"""Rendering helpers the experiments' sections share: numbers, mean ± std, tables, figures.

Kept in one place so every section formats a score, a spread, a wall time or a run-id list the
same way.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from deft_tune.plots import save_figure
from deft_tune.results.report import ranked

LABEL = {
    "deft": "DEFT",
    "beta_vae": "beta-VAE",
    "beta_tcvae": "beta-TCVAE",
    "annealed_vae": "AnnealedVAE",
}
# The retrained models' scores (`deft-tune evaluate`, logged as eval/<key>) and their names.
SCORES = (
    ("eval/mig", "MIG"),
    ("eval/dci/disentanglement", "DCI disentanglement"),
    ("eval/factor_vae/eval_accuracy", "FactorVAE score"),
)


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std; NaN where there are too few values for either."""
    if not values:
        return math.nan, math.nan
    spread = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.fmean(values), spread


def pm(values: list[float]) -> str:
    mean, spread = mean_std(values)
    return f"{fmt(mean)} ± {fmt(spread)}" if values else "-"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def wall(store: Any, *steps: str) -> str:
    """The ledger's wall seconds of ``steps``, summed ("-" when none was recorded)."""
    found = [store.walls[s] for s in steps if s in store.walls]
    return f"{sum(found):.0f}" if found else "-"


def scores_of(group: Any, key: str) -> list[float]:
    return [
        t.metrics[key] for t in group.trials if key in t.metrics and not math.isnan(t.metrics[key])
    ]


def best_trial(search: Any) -> Any | None:
    order = ranked(search.trials, search.objective, search.mode)
    return order[0] if order else None


def ids(group: Any) -> str:
    return ", ".join(f"`{t.run_id}`" for t in group.trials)


def figure(path: Path, docs: Path, written: list[Path], fig: Figure) -> str:
    """Save ``fig`` to ``path`` (noted in ``written``); its Markdown image link from ``docs``."""
    written.append(save_figure(fig, path))
    return f"![{path.stem}]({path.relative_to(docs).as_posix()})"
