"""Experiment 2: the IFP draws of dsprites_full's factors, their clusters with intervals and the
stage betas they give, beside the searched and hand schedules' betas."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from deft_tune.data.dsprites import FACTOR_NAMES
from deft_tune.errors import ConfigError
from deft_tune.tables import markdown_table

from .. import retrain
from ..intervals import RESAMPLES, SEED, resamples
from .units import provenance

IFP_RESULTS = retrain.ROOT / "benchmarks" / "results" / "ifp"
IFP_DRAWS = 8  # per factor before experiment 2 is judged (the minimum)
IFP_FIGURE = retrain.ROOT / "docs" / "results" / "ifp_draws.png"
# What benchmarks/ifp_draws.py writes, and so what the report may read from every IFP unit file.
UNIT_KEYS = ("factor", "draws", "seed", "command", "runs", "curves", "wall_s", "commit", "machine")


def experiment_2(units: list[dict[str, Any]]) -> str:
    from deft_tune.freezing.suggest import suggest_schedule, summarize

    lines = ["## 2. Information freezing points: clusters and the stage betas", ""]
    runs = [run for unit in units for run in unit["runs"]]
    lines += [
        "The annealing test of dsprites_full (`python -m benchmarks.ifp_draws`: per factor, "
        "draws of the other factors held fixed while beta falls; docs/ifp.md). Per factor: the "
        "median IFP over the runs that froze, their 10th-90th percentile (the interval the "
        "clusters are chained on, as `deft-tune ifp --suggest` does) and a bootstrap 95% "
        f"interval of the median ({RESAMPLES:,} resamples of the runs, seed {SEED}). Judged "
        f"once every factor has {IFP_DRAWS} draws.",
        "",
    ]
    if not runs:
        return "\n".join(lines + ["No IFP unit is committed yet (benchmarks/campaign.yaml).", ""])
    factors, never = summarize(runs)
    per_factor: dict[str, list[float]] = {}
    for run in runs:
        per_factor.setdefault(run["factor"], []).append(run["ifp"])
    table = [{"factor": f.factor, "runs": f.runs, "froze": f.frozen,
              "median IFP": f"{f.median:.3g}", "10th-90th pct": f"[{f.low:.3g}, {f.high:.3g}]",
              "median's 95% interval": _median_interval(per_factor[f.factor])}
             for f in factors]  # fmt: skip
    lines += [markdown_table(table), "", f"Units: {provenance(units)}; {_ifp_settings(units)}.",
              ""]  # fmt: skip
    if any(unit.get("curves") for unit in units):
        figure = IFP_FIGURE.relative_to(retrain.ROOT / "docs")
        lines += [f"![IFP per factor and KL against beta]({figure})", ""]
    if never:
        lines += [f"Never froze in any run: {', '.join(never)}.", ""]
    if short_factors(units):
        return "\n".join(lines + [f"Not judged yet (draws of {IFP_DRAWS}): {waiting(units)}.", ""])
    suggestion = suggest_schedule(runs)
    clusters = "; ".join(f"{{{', '.join(c.factors)}}} [{c.low:.3g}, {c.high:.3g}]"
                         for c in suggestion.clusters)  # fmt: skip
    lines += [
        f"Clusters (factors whose intervals overlap, by falling IFP): {clusters}. Stage betas "
        f"between them: {', '.join(f'{b:.3g}' for b in suggestion.stage_betas)}.",
        "",
        f"Stage betas used: {_stage_betas()}.",
        "",
    ]
    return "\n".join(lines)


def ifp_figure(units: list[dict[str, Any]], out: Path) -> Path | None:
    """docs/RESULTS.md's experiment-2 figure from the units' thinned curves (None: no curves):
    each factor's IFPs and median, and every run's KL against the falling beta."""
    import matplotlib.pyplot as plt

    from deft_tune.freezing.annealing import AnnealingResult
    from deft_tune.freezing.loop import Curve
    from deft_tune.freezing.report import plot_ifp
    from deft_tune.plots import save_figure

    results = []
    for unit in units:
        curves = {c["draw"]: c for c in unit.get("curves", ())}
        for run in unit["runs"] if curves else ():
            c = curves[run["draw"]]
            curve = Curve(np.array(c["step"]), np.array(c["beta"]), np.array(c["kl"])[:, None],
                          np.full(len(c["step"]), np.nan))  # fmt: skip
            results.append(AnnealingResult(run["dataset"], run["factor"], run["draw"],
                                           run["seed"], run["ifp"], run["ifp_step"],
                                           run["steps"], run["final_kl"], curve))  # fmt: skip
    if not results:
        return None
    plural = "unit" if len(units) == 1 else "units"
    title = f"dsprites_full: {len(results)} annealing runs from {len(units)} committed {plural}"
    figure = plot_ifp(results, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(figure, out)
    plt.close(figure)
    return out


def short_factors(units: list[dict[str, Any]]) -> dict[str, int]:
    """The runs so far of each dsprites_full factor with fewer than IFP_DRAWS (none is 0)."""
    count = dict.fromkeys(FACTOR_NAMES, 0)
    for run in (run for unit in units for run in unit["runs"]):
        count[run["factor"]] = count.get(run["factor"], 0) + 1
    return {f: n for f, n in count.items() if n < IFP_DRAWS}


def waiting(units: list[dict[str, Any]]) -> str:
    return ", ".join(f"{f} {n}" for f, n in sorted(short_factors(units).items()))


def _ifp_settings(units: list[dict[str, Any]]) -> str:
    """The annealing settings the units ran with (their commands past the factor and seed)."""
    tails = sorted({re.sub(r".*--seed \S+ ?", "", u["command"]) for u in units})
    listed = "; ".join(f"`{t}`" for t in tails)
    return f"annealing settings {listed}" + (" (the units differ!)" if len(tails) > 1 else "")


def _median_interval(ifps: list[float]) -> str:
    found = np.array([v for v in ifps if math.isfinite(v)])
    if found.size < 2:
        return "-"
    rng = np.random.default_rng(SEED)
    medians = np.median(resamples(found, rng), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return f"[{low:.3g}, {high:.3g}]"


def _stage_betas() -> str:
    """The searched DEFT schedule's and the hand schedule's stage betas."""
    found = []
    for key in ("deft", "hand"):
        try:
            config, _ = retrain.arm_config(key, retrain.SEEDS[0])
        except ConfigError as exc:  # its bank is not committed yet
            found.append(f"{retrain.ARMS[key].label}: unavailable ({exc})")
            continue
        betas = [stage["beta"] for stage in config["schedule"]["stages"]]
        found.append(f"{retrain.ARMS[key].label} {', '.join(f'{b:.3g}' for b in betas)}")
    return "; ".join(found)
