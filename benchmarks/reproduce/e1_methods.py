"""Experiment 1: the DEFT search against the baselines' searches at the same compute.

Run: one search per method on dsprites_full (``search_spaces/<space>.yaml`` merged with the
budget), experiment ``e1-<method>``; its best trial exported, retrained per seed and scored,
experiment ``e1-<method>-retrain``. Judged: does DEFT score higher, with lower variance?
Experiments 2, 3 and 5 read this experiment's DEFT search and retrained models through
:func:`search_name`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from deft_tune.results.report import objective_value

from .markdown import (
    LABEL,
    SCORES,
    best_trial,
    figure,
    fmt,
    ids,
    mean_std,
    pm,
    scores_of,
    table,
    wall,
)
from .pipeline import Context, retrain, retrain_group, search, space_for

KEY, NAME = "e1", "experiment 1"  # the --only choice; the name in the report
METHODS = ("deft", "beta_vae", "beta_tcvae", "annealed_vae")
# The shipped search space of each method (also its key in a budget's ``spaces:``).
SPACE_OF = {
    "deft": "dsprites_full",
    "beta_vae": "beta_vae",
    "beta_tcvae": "beta_tcvae",
    "annealed_vae": "annealed_vae",
}
Scores = dict[str, dict[str, list[float]]]  # method -> score key -> one value per seed


def search_name(method: str) -> str:
    """The MLflow experiment (and ledger step) of the method's search."""
    return f"e1-{method}"


# --- run ----------------------------------------------------------------------------------------


def run_search(ctx: Context, method: str) -> None:
    name = search_name(method)
    search(ctx, name, space_for(ctx, SPACE_OF[method], SPACE_OF[method], name))


def run(ctx: Context) -> None:
    for method in METHODS:
        run_search(ctx, method)
        retrain(ctx, search_name(method), list(ctx.budget["seeds"]))


# --- collect, judge ---------------------------------------------------------------------------


def in_store(store: Any) -> bool:
    return any(n.startswith(retrain_group(search_name("deft"))) for n in store.names)


def collect(store: Any) -> dict[str, tuple[Any | None, Any]]:
    """Each retrained method's search (None if absent) and retrained group, in METHODS order."""
    return {
        method: (
            store.search(search_name(method)),
            store.search(retrain_group(search_name(method))),
        )
        for method in METHODS
        if retrain_group(search_name(method)) in store.names
    }


def claim_higher_steadier(data: Scores, ours: str = "deft") -> str:
    """Which baselines DEFT beats on mean and on spread, per metric, in words."""
    if ours not in data or len(data) < 2:
        return "cannot be checked: DEFT or every baseline is missing."
    parts, holds = [], True
    for key, name in SCORES:
        mean, spread = mean_std(data[ours][key])
        others = {m: mean_std(v[key]) for m, v in data.items() if m != ours}
        beaten = [LABEL[m] for m, (mu, _) in others.items() if mean > mu]
        steadier = [LABEL[m] for m, (_, sd) in others.items() if spread < sd]
        holds &= len(beaten) == len(others) and len(steadier) == len(others)
        parts.append(
            f"{name}: higher mean than {', '.join(beaten) or 'none'}; lower std than "
            f"{', '.join(steadier) or 'none'}"
        )
    verdict = "holds on every metric" if holds else "does not hold at this budget"
    return f"{verdict} ({'; '.join(parts)})."


# --- render -------------------------------------------------------------------------------------


def render(store: Any, docs: Path, written: list[Path]) -> list[str]:
    lines = ["## 1. Search versus baselines, same compute (dsprites_full)", ""]
    found = collect(store)
    if not found:
        return lines + ["Not run in this store.", ""]
    data = {m: {key: scores_of(group, key) for key, _ in SCORES} for m, (_, group) in found.items()}
    rows = [_row(store, m, record, group, data[m]) for m, (record, group) in found.items()]
    header = [
        "method", "trials", "search best MIG", "best trial run", "MIG", "DCI disentanglement",
        "FactorVAE score", "seeds", "search wall s", "retrained run ids",
    ]  # fmt: skip
    lines += table(header, rows)
    title = "Retrained best schedules (mean ± std over seeds)"
    lines.append(figure(docs / "results" / "exp1_scores.png", docs, written, plot(data, title)))
    verdict = claim_higher_steadier(data)
    store.verdicts.append(f"Experiment 1, DEFT scores higher with lower variance: {verdict}")
    claim = "The paper's claim (DEFT scores higher with lower variance):"
    return lines + ["", f"**{claim}** {verdict}", ""]


def _row(store: Any, method: str, record: Any, group: Any, scores: dict) -> list[str]:
    best = best_trial(record) if record else None
    return [
        LABEL[method],
        str(len(record.trials)) if record else "-",
        fmt(objective_value(best, record.objective)) if best else "-",
        f"`{best.run_id}`" if best else "-",
        *(pm(scores[key]) for key, _ in SCORES),
        str(len(group.trials)),
        wall(store, search_name(method)),
        ids(group),
    ]


def plot(data: Scores, title: str) -> Figure:
    fig = Figure(figsize=(10, 3.4))
    axes = fig.subplots(1, len(SCORES))
    for ax, (key, name) in zip(axes, SCORES):
        for x, scores in enumerate(data.values()):
            values = scores[key]
            mean, spread = mean_std(values)
            ax.bar(x, mean if values else 0, color=f"C{x}", alpha=0.5)
            if len(values) > 1:
                ax.errorbar(x, mean, yerr=spread, color="k", capsize=4)
            ax.scatter([x] * len(values), values, color="k", s=10, zorder=3)
        ax.set_xticks(range(len(data)), [LABEL.get(m, m) for m in data], rotation=20)
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
