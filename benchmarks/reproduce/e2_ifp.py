"""Experiment 2: information freezing points beside the stage betas the DEFT search found.

Run: the annealing test (`deft-tune ifp`) at the budget's reduced size (ledger step
``e2-ifp-run``), recorded as experiment ``e2-ifp`` with one child run per annealing run.
Judged: do the found stage boundaries (experiment 1's best DEFT trial) fall between the IFP
clusters of ``deft_tune.freezing.suggest_schedule``?
"""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from deft_tune.results.report import stage_values

from . import e1_methods, tracking
from .markdown import best_trial, figure, fmt, table, wall
from .pipeline import Context, cli, step

KEY, NAME = "e2", "experiment 2"  # the --only choice; the name in the report
GROUP = "e2-ifp"  # the MLflow experiment of the annealing runs
STEP = "e2-ifp-run"  # the ledger step of `deft-tune ifp`


# --- run ----------------------------------------------------------------------------------------


def run(ctx: Context) -> None:
    """The annealing test at the budget's reduced size, one child run per annealing run."""
    if GROUP in ctx.done:
        ctx.log(f"{GROUP}: already in the store, skipped")
        return
    opts = ctx.budget["ifp"]
    out = ctx.results / "ifp"
    command = cli(
        "ifp", "dsprites_full", "--out", str(out),
        *(f"--{k}={v}" for k, v in opts.items()),
    )  # fmt: skip
    step(ctx, STEP, command)
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "ifp.parquet").to_pylist()
    group = tracking.start_group(ctx.uri, GROUP, "ifp", {"command": shlex.join(command), **opts})
    for row in rows:
        name = f"{row['factor']}-draw{row['draw']}-seed{row['seed']}"
        params = {k: row[k] for k in ("dataset", "factor", "draw", "seed") if k in row}
        metrics = {"ifp": row["ifp"], "final_kl": row["final_kl"], "steps": row["steps"]}
        tracking.add_run(group, name, params, metrics, {})
    tracking.finish(group)


# --- collect, judge ---------------------------------------------------------------------------


def in_store(store: Any) -> bool:
    return any(n.startswith(GROUP) for n in store.names)


def collect(store: Any) -> list[dict[str, Any]] | None:
    """One row per annealing run (factor, IFP, data set, run id); None when not run."""
    ifp = store.search(GROUP)
    if ifp is None:
        return None
    return [
        {
            "factor": t.params["factor"],
            "ifp": t.metrics.get("ifp", math.nan),
            "dataset": t.params.get("dataset", "dsprites_full"),
            "run_id": t.run_id,
        }
        for t in ifp.trials
    ]


def found_betas(store: Any) -> tuple[list[float], str]:
    """The stage betas of experiment 1's best DEFT trial and where they come from."""
    name = e1_methods.search_name("deft")
    search = store.search(name)
    best = best_trial(search) if search else None
    if best is None:
        return [], ""
    return stage_values(best.params, "beta"), f"{name} trial run `{best.run_id}`"


def boundary_verdicts(boundaries: list[float], suggestion: Any) -> list[str]:
    """For each stage boundary: which factors freeze above/below it, and any interval it cuts."""
    verdicts = []
    for beta in boundaries:
        above = [f.factor for f in suggestion.factors if f.median > beta]
        below = [f.factor for f in suggestion.factors if f.median <= beta]
        below += [f"{name} (never froze)" for name in suggestion.never_frozen]
        cut = [c for c in suggestion.clusters if c.low <= beta <= c.high]
        where = (
            (
                "inside the IFP interval of cluster "
                + ", ".join("{" + ", ".join(c.factors) + "}" for c in cut)
                + ": NOT between clusters"
            )
            if cut
            else "outside every cluster's interval"
        )
        verdicts.append(
            f"beta {fmt(beta, 3)}: medians above it: {', '.join(above) or 'none'}; "
            f"below: {', '.join(below) or 'none'}; {where}."
        )
    if not boundaries:
        verdicts.append("the best schedule has one stage: no boundary to place.")
    return verdicts


# --- render -------------------------------------------------------------------------------------


def render(store: Any, docs: Path, written: list[Path]) -> list[str]:
    from deft_tune.freezing.suggest import suggest_schedule

    lines = ["## 2. Information freezing points beside the found stage betas", ""]
    rows = collect(store)
    if rows is None:
        return lines + ["Not run in this store.", ""]
    suggestion = suggest_schedule(rows)
    recorded = str(store.search(GROUP).space.get("command", ""))
    command = re.sub(r"^\S+ -m deft_tune", "deft-tune", recorded)
    lines += [
        f"Annealing test (`{command}`): {len(rows)} runs, wall {wall(store, STEP)} s. Clusters "
        "are `deft_tune.freezing.suggest_schedule`'s (10th–90th percentile intervals).",
        "",
    ]
    lines += table(
        ["factor", "IFP per run", "median", "10th–90th pct", "cluster", "run ids"],
        _table_rows(rows, suggestion),
    )
    betas, source = found_betas(store)
    if betas:
        lines += [
            f"Stage betas of the best DEFT schedule the search found ({source}): "
            f"{', '.join(fmt(b, 3) for b in betas)}.",
            "",
        ]
        verdicts = boundary_verdicts(betas[:-1], suggestion)
        lines += [f"- {line}" for line in verdicts] + [""]
        inside = sum("NOT between" in v for v in verdicts)
        store.verdicts.append(
            f"Experiment 2, found stage boundaries fall outside the IFP clusters' intervals: "
            f"{len(betas) - 1 - inside} of {len(betas) - 1} boundaries do "
            f"({len(suggestion.clusters)} IFP cluster(s) at this annealing budget)."
        )
    else:
        lines += ["No DEFT search in this store: no found betas to compare.", ""]
    path = docs / "results" / "exp2_ifp.png"
    lines.append(figure(path, docs, written, plot(rows, suggestion, betas)))
    return lines + [""]


def _table_rows(rows: list[dict[str, Any]], suggestion: Any) -> list[list[str]]:
    cluster_of = {f: i for i, c in enumerate(suggestion.clusters) for f in c.factors}
    table_rows = []
    for f in suggestion.factors:
        runs = [r for r in rows if r["factor"] == f.factor]
        values = [fmt(r["ifp"], 2) if math.isfinite(r["ifp"]) else "never" for r in runs]
        table_rows.append(
            [
                f.factor,
                ", ".join(values),
                fmt(f.median, 2),
                f"{fmt(f.low, 2)} – {fmt(f.high, 2)}",
                str(cluster_of.get(f.factor, "-")),
                ", ".join(f"`{r['run_id']}`" for r in runs),
            ]
        )
    for name in suggestion.never_frozen:
        table_rows.append([name, "never (all runs)", "-", "-", "last", "-"])
    return table_rows


def plot(rows: list[dict], suggestion: Any, betas: list[float]) -> Figure:
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    order = [f.factor for f in suggestion.factors] + list(suggestion.never_frozen)
    for x, factor in enumerate(order):
        values = [r["ifp"] for r in rows if r["factor"] == factor and math.isfinite(r["ifp"])]
        ax.scatter([x] * len(values), values, color=f"C{x}")
    for f in suggestion.factors:
        x = order.index(f.factor)
        ax.plot([x - 0.3, x + 0.3], [f.median] * 2, color="k")
        ax.plot([x, x], [f.low, f.high], color="k", alpha=0.4)
    for beta in betas[:-1]:
        ax.axhline(beta, color="r", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(order)), order)
    ax.set_ylabel("beta (IFP; red: found stage betas)")
    ax.set_title("Annealing-test IFPs per factor and the searched stage boundaries")
    fig.tight_layout()
    return fig
