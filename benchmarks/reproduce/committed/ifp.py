"""Experiment 2: the IFP draws of dsprites_full's factors, their clusters with intervals and the
stage betas they give, beside the searched and hand schedules' betas."""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from deft_tune.data.dsprites import FACTOR_NAMES
from deft_tune.errors import ConfigError
from deft_tune.tables import markdown_table

from .. import retrain
from ..intervals import (
    RESAMPLES,
    SEED,
    bootstrap_median_difference,
    resamples,
    shift_interval,
)
from .units import provenance

IFP_RESULTS = retrain.ROOT / "benchmarks" / "results" / "ifp"
IFP_DRAWS = 8  # per factor before experiment 2 is judged (the minimum)
IFP_FIGURE = retrain.ROOT / "docs" / "results" / "ifp_draws.png"
# What benchmarks/ifp_draws.py writes, and so what the report may read from every IFP unit file.
UNIT_KEYS = ("factor", "draws", "seed", "command", "runs", "curves", "wall_s", "commit", "machine")


def experiment_2(units: list[dict[str, Any]]) -> str:
    from deft_tune.freezing.suggest import summarize

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
    per_factor = _per_factor(runs)
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
    return "\n".join(lines + _judged(runs, factors, per_factor))


def _judged(runs: list[dict[str, Any]], factors: list, per_factor: dict[str, list[float]]) -> list:
    """Clusters and their stage betas (as `deft-tune ifp --suggest`), or why there are none; the
    factors' IFPs compared in pairs; the stage betas used against the IFPs."""
    from deft_tune.freezing.suggest import suggest_schedule

    suggestion = suggest_schedule(runs)
    clusters = "; ".join(f"{{{', '.join(c.factors)}}} [{c.low:.3g}, {c.high:.3g}]"
                         for c in suggestion.clusters)  # fmt: skip
    lines = [
        f"Clusters (factors whose 10th-90th percentiles overlap, chained by falling median IFP): "
        f"{clusters}. Stage betas between them: "
        f"{', '.join(f'{b:.3g}' for b in suggestion.stage_betas)}.",
        "",
    ]
    merged = [c for c in suggestion.clusters if len(c.factors) > 1]
    if merged:
        lines += [_why_merged(factors, len(suggestion.clusters)), ""]
    lines += [
        "Pairs of factors, each with the next lower by median IFP, and the highest with the "
        "lowest: the ratio of their median IFPs over the runs that froze (a run that never "
        "froze would only lower its factor), with a bootstrap 95% interval "
        f"({RESAMPLES:,} resamples of each factor's runs, seed {SEED}) and the distribution-free "
        "Hodges-Lehmann 95% interval (exact Mann-Whitney), both on log beta; a factor is called "
        "higher only where both exclude 1.",
        "",
        markdown_table(_pair_rows(factors, per_factor)),
        "",
        "The stage betas used against the IFPs: a stage at beta b admits the factors whose IFP "
        "lies above b and that no earlier stage admitted (by median IFP); a factor whose "
        "10th-90th percentile holds b is split by it (some of its draws enter in this stage, "
        "some later).",
        "",
        _stage_table(factors),
        "",
    ]
    return lines


def e2_summary(units: list[dict[str, Any]]) -> str | None:
    """The summary's line on experiment 2 (None until every factor has its draws)."""
    from deft_tune.freezing.suggest import suggest_schedule, summarize

    if short_factors(units):
        return None
    runs = [run for unit in units for run in unit["runs"]]
    factors, _ = summarize(runs)
    separated = [f"{row['factor']} {row['its IFP is']} than {row['against']} (ratio "
                 f"{row['ratio of median IFPs']})"
                 for row in _pair_rows(factors, _per_factor(runs))
                 if row["its IFP is"] in ("higher", "lower")]  # fmt: skip
    count = len(suggest_schedule(runs).clusters)
    return (
        f"IFPs (section 2): {count} cluster{'' if count == 1 else 's'} of factors at this budget; "
        f"pairs whose IFPs are separated: {', '.join(separated) or 'none'}."
    )


def _per_factor(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    per_factor: dict[str, list[float]] = {}
    for run in runs:
        per_factor.setdefault(run["factor"], []).append(run["ifp"])
    return per_factor


def _why_merged(factors: list, count: int) -> str:
    """The measured reason factors share a cluster: one draw's IFP spreads wider than the gaps
    between the factors' medians."""
    spreads = [f.high / f.low for f in factors if f.low > 0]
    gaps = [upper.median / lower.median for upper, lower in zip(factors, factors[1:])]
    return (
        f"{'Every factor falls in one cluster' if count == 1 else 'Some factors share a cluster'}"
        f" at this budget, so the annealing test cannot place a stage beta between them: one "
        f"draw's IFP spreads over a factor of {min(spreads):.2g}-{max(spreads):.2g} in beta "
        f"(each factor's 90th over 10th percentile), wider than the gaps between neighbouring "
        f"medians (a factor of {min(gaps):.2g}-{max(gaps):.2g})."
    )


def _pairs(order: list[str]) -> list[tuple[str, str]]:
    pairs = list(zip(order, order[1:]))
    if len(order) > 2:
        pairs.append((order[0], order[-1]))
    return pairs


def _pair_rows(factors: list, per_factor: dict[str, list[float]]) -> list[dict[str, str]]:
    order = [f.factor for f in factors]
    return [_pair_row(upper, lower, per_factor) for upper, lower in _pairs(order)]


def _pair_row(upper: str, lower: str, per_factor: dict[str, list[float]]) -> dict[str, str]:
    a, b = ([math.log(v) for v in per_factor[f] if math.isfinite(v)] for f in (upper, lower))
    ratio = math.exp(statistics.median(a) - statistics.median(b))
    boot = tuple(math.exp(v) for v in bootstrap_median_difference(a, b))
    ranks = tuple(math.exp(v) for v in shift_interval(a, b))
    holding = [name for name, (low, high) in (("bootstrap", boot), ("Mann-Whitney", ranks))
               if low <= 1 <= high]  # fmt: skip
    if not holding:
        verdict = "higher" if boot[0] > 1 else "lower"
    elif len(holding) == 2:
        verdict = "not separated (both intervals hold 1)"
    else:
        verdict = f"not separated (the {holding[0]} interval holds 1)"
    return {"factor": upper, "against": lower, "ratio of median IFPs": f"{ratio:.3g}",
            "bootstrap 95%": _ratio_bracket(boot), "Mann-Whitney 95%": _ratio_bracket(ranks),
            "its IFP is": verdict}  # fmt: skip


def _ratio_bracket(interval: tuple[float, ...]) -> str:
    return "[" + ", ".join("inf" if math.isinf(v) else f"{v:.3g}" for v in interval) + "]"


def _stage_table(factors: list) -> str:
    rows = []
    for label, betas in _stage_betas():
        if isinstance(betas, str):  # why the schedule is unavailable
            rows.append({"schedule": label, "stage": "-", "beta": "-", "admits": betas,
                         "splits": "-"})  # fmt: skip
            continue
        above = math.inf
        for stage, beta in enumerate(betas):
            admits = [f.factor for f in factors if beta < f.median <= above]
            splits = [f.factor for f in factors if f.low < beta < f.high]
            rows.append({"schedule": label, "stage": str(stage), "beta": f"{beta:.3g}",
                         "admits": ", ".join(admits) or "nothing",
                         "splits": ", ".join(splits) or "none"})  # fmt: skip
            above = beta
    return markdown_table(rows)


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


def _stage_betas() -> list[tuple[str, list[float] | str]]:
    """The searched DEFT schedule's and the hand schedule's stage betas (or why unavailable)."""
    found: list[tuple[str, list[float] | str]] = []
    for key in ("deft", "hand"):
        try:
            config, _ = retrain.arm_config(key, retrain.SEEDS[0])
        except ConfigError as exc:  # its bank is not committed yet
            found.append((retrain.ARMS[key].label, f"unavailable ({exc})"))
            continue
        found.append((retrain.ARMS[key].label, [s["beta"] for s in config["schedule"]["stages"]]))
    return found
