"""Figures of a finished search: what `deft-tune inspect NAME --plots DIR` writes.

Every figure has a fixed size (FIGSIZE at plots.save_figure's 100 dpi), so a test can check the
PNG's pixel size. Records come from deft_tune.search.tracking.reader (plain objects).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator

from deft_tune import report_keys as keys
from deft_tune.plots import save_figure
from deft_tune.results import report

FIGSIZE = (8.0, 5.0)  # inches: 800 x 500 pixels at 100 dpi
TOP_TRIALS = 3
FEW_VALUES = 4  # a parameter with at most this many values gets a labelled tick on each
_PLAIN = FuncFormatter(lambda value, _: f"{value:g}")  # 0.001, 3, 40: no offset, no 10^x


def objective_over_trials(trials: Sequence[Any], metric: str, mode: str) -> Figure:
    """The objective of each trial in start order, and the best so far."""
    order = sorted(trials, key=lambda t: t.start_time)
    figure = Figure(figsize=FIGSIZE)
    ax = figure.subplots()
    xs, ys, best, running = [], [], [], None
    for i, trial in enumerate(order, start=1):
        value = report.objective_value(trial, metric)
        if value is None:
            continue
        running = value if running is None else (max if mode == "max" else min)(running, value)
        xs.append(i)
        ys.append(value)
        best.append(running)
    ax.scatter(xs, ys, label="trial", color="tab:blue")
    ax.step(xs, best, where="post", label="best so far", color="tab:red")
    ax.set(xlabel="trial (start order)", ylabel=metric, title=f"{metric} over the search")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.legend()
    return figure


def objective_vs_params(trials: Sequence[Any], metric: str) -> Figure:
    """One scatter per sampled parameter: the objective against the parameter's value."""
    columns = _sampled_columns(trials, metric)
    figure = Figure(figsize=FIGSIZE)
    if not columns:
        figure.text(0.5, 0.5, "no parameter varied across trials", ha="center")
        return figure
    cols = min(3, len(columns))
    rows = math.ceil(len(columns) / cols)
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax, (name, points) in zip(axes.flat, columns.items()):
        xs = [p[0] for p in points]
        ax.scatter(xs, [p[1] for p in points], s=12)
        ax.set_xlabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
        log = name in ("lr", "beta 1") or name.startswith("lr scale")
        param_ticks(ax, xs, log=log)
        ax.ticklabel_format(axis="y", useOffset=False)
    for ax in list(axes.flat)[len(columns) :]:
        ax.set_visible(False)
    figure.supylabel(metric)
    figure.tight_layout()
    return figure


def param_ticks(ax: Axes, values: Sequence[float], *, log: bool) -> None:
    """x ticks for a parameter: a labelled tick on each value when it took few (choices, stage
    counts), whole numbers for integer parameters, plain numbers (no offset such as
    "1.005x10^0", no bare powers of ten) otherwise."""
    distinct = sorted(set(values))
    if log:
        ax.set_xscale("log")
    if len(distinct) <= FEW_VALUES:
        ax.xaxis.set_major_locator(FixedLocator(distinct))
        ax.xaxis.set_minor_locator(NullLocator())
    elif all(float(v).is_integer() for v in distinct):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    elif log:
        ax.xaxis.set_major_locator(MaxNLocator(4))  # inside the range, even within a decade
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap at this size
    ax.xaxis.set_major_formatter(_PLAIN)


def _sampled_columns(trials: Sequence[Any], metric: str) -> dict[str, list[tuple[float, float]]]:
    """Numeric schedule values that differ between trials, paired with each trial's objective."""
    columns: dict[str, list[tuple[float, float]]] = {}
    for trial in report.finished(trials, metric):
        row = report.trial_row(trial, metric)
        values = {"stages": row["stages"], "lr": row["lr"]}
        values.update({f"beta {i + 1}": b for i, b in enumerate(row["betas"])})
        values.update({f"lr scale {i + 2}": s for i, s in enumerate(row["lr_scales"])})
        for name, value in values.items():
            if value is not None:
                columns.setdefault(name, []).append((float(value), row["objective"]))
    return {k: v for k, v in columns.items() if len({x for x, _ in v}) > 1}


def information_per_group(
    histories: dict[str, dict[str, list[tuple[int, float]]]],
    stage_starts: dict[str, list[int]] | None = None,
) -> Figure:
    """KL per group over training, one panel per trial (``{trial: {kl/groupG: [(step, v)]}}``),
    with dashed lines where the trial's stages began (``{trial: [step, ...]}``)."""
    figure = Figure(figsize=FIGSIZE)
    if not histories:
        figure.text(0.5, 0.5, "no trial logged KL per group", ha="center")
        return figure
    axes = figure.subplots(1, len(histories), squeeze=False, sharey=True)[0]
    for ax, (trial, series) in zip(axes, histories.items()):
        for key in sorted(series, key=lambda k: int(k.removeprefix(keys.KL_GROUP_PREFIX))):
            steps, values = zip(*series[key])
            ax.plot(steps, values, label=key.removeprefix("kl/"))
        last = max(step for points in series.values() for step, _ in points)
        for start in (stage_starts or {}).get(trial, []):
            if start < last:
                ax.axvline(start, color="gray", linestyle="--", linewidth=0.8)
        ax.set(title=trial, xlabel="step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    axes[0].set_ylabel("KL on the probe batch (nats)")
    figure.tight_layout()
    return figure


def stop_reasons(trials: Sequence[Any], steps_per_trial: int) -> Figure:
    """How many trials each stop reason ended, and the trial-steps early stops saved."""
    counts = Counter(t.stop_reason for t in trials)
    saved: Counter[str] = Counter()
    for trial in trials:
        saved[trial.stop_reason] += max(0, steps_per_trial - trial.steps)
    reasons = sorted(counts)
    figure = Figure(figsize=FIGSIZE)
    left, right = figure.subplots(1, 2)
    left.bar(reasons, [counts[r] for r in reasons], color="tab:blue")
    left.set(title="trials per stop reason", ylabel="trials")
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.bar(reasons, [saved[r] for r in reasons], color="tab:green")
    total = steps_per_trial * len(trials)
    right.set(title=f"trial-steps saved ({sum(saved.values())} of {total})", ylabel="steps")
    for ax in (left, right):
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    figure.tight_layout()
    return figure


def write_all(
    search: Any,
    metric: str,
    uri: str,
    directory: str | os.PathLike,
    histories: Callable[..., dict] | None = None,
) -> list[Path]:
    """Write the four figures of ``search`` to ``directory``; returns their paths."""
    directory = Path(directory)
    steps = int((search.space.get("budget") or {}).get("steps_per_trial", 0)) or max(
        (t.steps for t in search.trials), default=0
    )
    top = report.ranked(search.trials, metric, search.mode)[:TOP_TRIALS]
    per_group = {}
    read = histories if histories is not None else _stored_histories()
    for trial in top:
        group_keys = [k for k in trial.metrics if k.startswith(keys.KL_GROUP_PREFIX)]
        per_group[trial.trial_id] = read(uri, trial.run_id, group_keys)
    figures = {
        "objective_over_trials.png": objective_over_trials(search.trials, metric, search.mode),
        "objective_vs_params.png": objective_vs_params(search.trials, metric),
        "information_per_group.png": information_per_group(
            {k: v for k, v in per_group.items() if v},
            {t.trial_id: report.stage_starts(t) for t in top},
        ),
        "stop_reasons.png": stop_reasons(search.trials, steps),
    }
    return [save_figure(figure, directory / name) for name, figure in figures.items()]


def _stored_histories() -> Callable[..., dict]:
    from deft_tune.search.tracking.reader import metric_histories  # MLflow, when it is needed

    return metric_histories
