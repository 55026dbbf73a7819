"""Experiment 3: information diffusion, the top-2 NMI per factor over training.

Run: nothing of its own; it reads the NMI histories (``info/nmi1/<factor>``,
``info/nmi2/<factor>``) of experiment 1's retrained DEFT and beta-VAE models, and runs
experiment 1 first when those are missing. Judged: does NMI2 rise less towards NMI1 with DEFT?
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from . import e1_methods
from .markdown import LABEL, figure, fmt, table
from .pipeline import Context, groups, retrain_group

KEY, NAME = "e3", "experiment 3"  # the --only choice; the name in the report
METHODS = ("deft", "beta_vae")
GROUPS = tuple(retrain_group(e1_methods.search_name(m)) for m in METHODS)  # what it reads
History = dict[str, list[tuple[int, float]]]  # metric key -> (step, value) points


# --- run ----------------------------------------------------------------------------------------


def run(ctx: Context) -> None:
    if not set(GROUPS) <= ctx.done | groups(ctx):
        e1_methods.run(ctx)  # the NMI histories come from experiment 1's retrained models
    ctx.log(f"e3: reads the NMI histories of {' and '.join(GROUPS)}")


# --- collect, judge ---------------------------------------------------------------------------


def in_store(store: Any) -> bool:
    return any(n.startswith(GROUPS[1]) for n in store.names)


def collect(store: Any) -> tuple[dict[str, Any], dict[str, History]]:
    """Per method the retrained seed with the highest MIG (its best model) and its NMI history."""
    runs = {}
    for method, name in zip(METHODS, GROUPS):
        group = store.search(name)
        scored = [t for t in group.trials if "eval/mig" in t.metrics] if group else []
        if scored:
            runs[method] = max(scored, key=lambda t: t.metrics["eval/mig"])
    if len(runs) < 2:
        return runs, {}
    prefixes = ("info/nmi1/", "info/nmi2/")
    return runs, {method: store.histories(trial.run_id, prefixes) for method, trial in runs.items()}


def diffusion_verdict(
    histories: dict[str, History], factors: list[str], captured: float = 0.05
) -> str:
    """Compare NMI2/NMI1 at the last step over the factors a model captured (NMI1 >= 0.05).

    A model that captured no factor shows no diffusion because it encodes nothing, which is
    no evidence for or against the claim.
    """
    ratios: dict[str, float | None] = {}
    for method, history in histories.items():
        pairs = [
            (_last(history, f"info/nmi1/{f}"), _last(history, f"info/nmi2/{f}")) for f in factors
        ]
        kept = [b / a for a, b in pairs if a >= captured and not math.isnan(b)]
        ratios[method] = statistics.fmean(kept) if kept else None
    empty = [LABEL[m] for m, r in ratios.items() if r is None]
    if empty:
        return (
            f"cannot be judged in these two runs: {', '.join(empty)} captured no factor "
            f"(NMI1 < {captured} for every factor at the last step)."
        )
    deft, beta_vae = ratios["deft"], ratios["beta_vae"]
    assert deft is not None and beta_vae is not None  # both captured a factor (above)
    less = deft < beta_vae
    return (
        f"mean NMI2/NMI1 over captured factors at the last step: DEFT "
        f"{fmt(ratios['deft'])}, beta-VAE {fmt(ratios['beta_vae'])}: the paper's claim "
        f"(less diffusion with DEFT) {'holds' if less else 'does not hold'} in these two "
        "runs."
    )


def _last(history: History, key: str) -> float:
    points = history.get(key) or []
    return points[-1][1] if points else math.nan


# --- render -------------------------------------------------------------------------------------


def render(store: Any, docs: Path, written: list[Path]) -> list[str]:
    lines = ["## 3. Information diffusion: top-2 NMI per factor over training", ""]
    runs, histories = collect(store)
    if not histories:
        return lines + [f"Not run in this store (needs {' and '.join(GROUPS)}).", ""]
    factors = sorted({k.split("/")[-1] for h in histories.values() for k in h})
    lines += [
        f"Runs: DEFT `{runs['deft'].run_id}`, beta-VAE `{runs['beta_vae'].run_id}` "
        "(of each method's retrained best schedule, the seed with the highest MIG). "
        "NMI1/NMI2: the largest and second largest normalised mutual information "
        "between a factor and one latent, on the evaluation probe "
        "(`info/nmi1/<factor>`, `info/nmi2/<factor>`). Diffusion shows as NMI2 rising "
        "towards NMI1. Values at the last step:",
        "",
    ]
    rows = []
    for factor in factors:
        row = [factor]
        for method in runs:
            h = histories[method]
            row += [fmt(_last(h, f"info/nmi1/{factor}")), fmt(_last(h, f"info/nmi2/{factor}"))]
        rows.append(row)
    lines += table(["factor", "DEFT NMI1", "DEFT NMI2", "beta-VAE NMI1", "beta-VAE NMI2"], rows)
    verdict = diffusion_verdict(histories, factors)
    store.verdicts.append(f"Experiment 3, information diffusion: {verdict}")
    lines += [verdict, ""]
    lines.append(figure(docs / "results" / "exp3_nmi.png", docs, written, plot(histories, factors)))
    return lines + [""]


def plot(histories: dict[str, History], factors: list[str]) -> Figure:
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, len(histories), sharey=True)
    for ax, (method, history) in zip(axes, histories.items()):
        for i, factor in enumerate(factors):
            for rank, style in (("nmi1", "-"), ("nmi2", "--")):
                points = history.get(f"info/{rank}/{factor}", [])
                if points:
                    ax.plot(
                        *zip(*points),
                        style,
                        color=f"C{i}",
                        label=f"{factor} {rank.upper()}" if rank == "nmi1" else None,
                    )
        ax.set_title(f"{LABEL[method]} (solid NMI1, dashed NMI2)")
        ax.set_xlabel("step")
    axes[0].set_ylabel("normalised MI")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
