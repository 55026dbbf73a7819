"""Experiment 5: what the IFP stopper saved.

Run: experiment 1's DEFT search again with ``--no-ifp-stopper`` (same space, budget and search
seed), experiment ``e5-deft-no-ifp``; experiment 1's DEFT search first if it is missing.
Judged: trial-steps and best objective with the stopper against without it.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from deft_tune.results.report import objective_value

from . import e1_methods
from .markdown import best_trial, figure, fmt, table, wall
from .pipeline import Context, groups, search, space_for

KEY, NAME = "e5", "experiment 5"  # the --only choice; the name in the report
SEARCH = "e5-deft-no-ifp"  # the search without the stopper
WITH = e1_methods.search_name("deft")  # the search with it
PAIR = {"with the IFP stopper": WITH, "without it": SEARCH}


# --- run ----------------------------------------------------------------------------------------


def run(ctx: Context) -> None:
    if WITH not in ctx.done | groups(ctx):
        e1_methods.run_search(ctx, "deft")
    space = e1_methods.SPACE_OF["deft"]
    search(ctx, SEARCH, space_for(ctx, space, space, SEARCH), "--no-ifp-stopper")


# --- collect, judge ---------------------------------------------------------------------------


def in_store(store: Any) -> bool:
    return any(n.startswith(SEARCH) for n in store.names)


def collect(store: Any) -> dict[str, Any] | None:
    """Both searches by their label in the report; None unless both are in the store."""
    found = {label: store.search(name) for label, name in PAIR.items()}
    return None if any(s is None for s in found.values()) else found


def steps_saved(saved: float) -> str:
    """'33% fewer trial-steps', or '17% more trial-steps' when the stopper's search ran more."""
    if math.isnan(saved):
        return "trial-steps not comparable (the search without the stopper ran none)"
    return f"{fmt(100 * abs(saved), 0)}% {'fewer' if saved >= 0 else 'more'} trial-steps"


# --- render -------------------------------------------------------------------------------------


def render(store: Any, docs: Path, written: list[Path]) -> list[str]:
    lines = ["## 5. What the IFP stopper saved", ""]
    found = collect(store)
    if found is None:
        return lines + [f"Not run in this store (needs {WITH} and {SEARCH}).", ""]
    rows = [_row(store, label, record) for label, record in found.items()]
    lines += [
        "The DEFT search of experiment 1 and the same search (same space, budget and "
        "search seed) with `--no-ifp-stopper`; ASHA on in both. Trial-steps: the last "
        "step each trial logged, summed.",
        "",
    ]
    header = [
        "search", "parent run", "trials", "trial-steps", "stop reasons", "best MIG (standard)",
        "best trial run", "wall s",
    ]  # fmt: skip
    lines += table(header, rows)
    with_steps, without = (int(r[3]) for r in rows)
    saved = 1 - with_steps / without if without else math.nan
    store.verdicts.append(
        f"Experiment 5, the IFP stopper: {steps_saved(saved)}; best MIG "
        f"{rows[0][5]} with it, {rows[1][5]} without."
    )
    lines += [
        f"The stopper's search ran {steps_saved(saved)} than the search without it "
        "(ASHA stops trials in both). Both searches sample with TPE from the same seed, "
        "but after the first stopped trial they see different results, so later trials "
        "differ: the saving is one sample, not a controlled ablation.",
        "",
    ]
    lines.append(figure(docs / "results" / "exp5_stopper.png", docs, written, plot(found)))
    return lines + [""]


def _row(store: Any, label: str, record: Any) -> list[str]:
    reasons = Counter(t.stop_reason for t in record.trials)
    best = best_trial(record)
    return [
        label,
        f"`{record.parent_run_id}`",
        str(len(record.trials)),
        str(sum(t.steps for t in record.trials)),
        ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())),
        fmt(objective_value(best, record.objective)) if best else "-",
        f"`{best.run_id}`" if best else "-",
        wall(store, PAIR[label]),
    ]


def plot(found: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(8, 3.2))
    axes = fig.subplots(1, len(found), sharey=True)
    reasons = sorted({t.stop_reason for s in found.values() for t in s.trials})
    for ax, (label, record) in zip(axes, found.items()):
        for i, trial in enumerate(record.trials):
            color = f"C{reasons.index(trial.stop_reason)}"
            ax.bar(i, trial.steps, color=color, label=trial.stop_reason)
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
        ax.set_title(f"DEFT search {label}")
        ax.set_xlabel("trial (start order)")
    axes[0].set_ylabel("steps trained")
    fig.tight_layout()
    return fig
