"""Figures of a finished search: what `deft-tune inspect NAME --plots DIR` writes.

Every figure has a fixed size (FIGSIZE at plots.save_figure's 100 dpi), so a test can check the
PNG's pixel size. Records come from deft_tune.search.tracking.reader (plain objects).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from deft_tune import plots
from deft_tune import report_keys as keys
from deft_tune.plots import save_figure
from deft_tune.results import report
from deft_tune.training.aggregate import split_replica_key

FIGSIZE = (8.0, 5.0)  # inches: 800 x 500 pixels at 100 dpi
TOP_TRIALS = 3
FEW_VALUES = 4  # a parameter with at most this many round values gets a labelled tick on each


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
    """One scatter per sampled parameter: the objective against the parameter's value. Stage
    parameters name their stage numbered from 0, as the training output and metrics.json do."""
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
        param_ticks(ax, xs, log=name == "lr" or name.startswith(_LOG_PARAMS))
        ax.yaxis.set_major_formatter(plots.PLAIN)
    for ax in list(axes.flat)[len(columns) :]:
        ax.set_visible(False)
    figure.supylabel(metric)
    figure.tight_layout()
    return figure


def _beta_name(stage: int) -> str:
    return f"beta of stage {stage} (from 0)"


def _lr_scale_name(stage: int) -> str:
    return f"lr_scale of stage {stage} (from 0)"


# Sampled on a log scale by default (docs/search_spaces.md): the first stage's beta, lr_scale.
_LOG_PARAMS = (_beta_name(0), "lr_scale of stage")


def param_ticks(ax: Axes, values: Sequence[float], *, log: bool) -> None:
    """x ticks for a parameter, few, rounded and apart so that their labels never meet: a
    labelled tick on each value of a parameter with few round values (choices, stage counts),
    whole numbers for integer parameters, round numbers otherwise (1, 2, 5 x 10^k first on a log
    axis); plain labels (no offset such as "1.005x10^0", no bare powers of ten)."""
    distinct = sorted(set(values))
    if log:
        ax.set_xscale("log")
    if len(distinct) <= FEW_VALUES and all(_round(v) for v in distinct):
        ticks = plots.spaced(distinct, distinct[0], distinct[-1], log=log)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
    elif log:
        plots.plain_log_axis(ax.xaxis, distinct[0], distinct[-1])
    elif all(float(v).is_integer() for v in distinct):
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.xaxis.set_major_formatter(plots.PLAIN)


def _round(value: float) -> bool:
    """A value a person chose (0.1, 3, 5e-4), not one a sampler drew (0.000224224)."""
    return float(value).is_integer() or float(f"{value:.2g}") == value


def _sampled_columns(trials: Sequence[Any], metric: str) -> dict[str, list[tuple[float, float]]]:
    """Numeric schedule values that differ between trials, paired with each trial's objective;
    stages numbered from 0."""
    columns: dict[str, list[tuple[float, float]]] = {}
    for trial in report.finished(trials, metric):
        row = report.trial_row(trial, metric)
        values = {"stages (count)": row["stages"], "lr": row["lr"]}
        values.update({_beta_name(i): b for i, b in enumerate(row["betas"])})
        # trial_row's lr_scales start at stage 1: stage 0 trains alone, at the base rate.
        values.update({_lr_scale_name(i + 1): s for i, s in enumerate(row["lr_scales"])})
        for name, value in values.items():
            if value is not None:
                columns.setdefault(name, []).append((float(value), row["objective"]))
    return {k: v for k, v in columns.items() if len({x for x, _ in v}) > 1}


def information_per_group(
    histories: dict[str, dict[str, list[tuple[int, float]]]],
    stage_starts: dict[str, list[int]] | None = None,
    note: str = "",
) -> Figure:
    """KL per group over training, one panel per trial (``{trial: {key: [(step, v)]}}``, keys
    ``kl/groupG`` (the mean over replicas, drawn thick) and ``replica{r}/kl/groupG`` (each
    replica, thin)), with dashed lines where the trial's stages began (``{trial: [step, ...]}``)
    and the stages (numbered from 0) on the top axis. ``note``, over the panels, says which
    trials these are."""
    figure = Figure(figsize=FIGSIZE)
    if not histories:
        figure.text(0.5, 0.5, "no trial logged KL per group", ha="center")
        return figure
    axes = figure.subplots(1, len(histories), squeeze=False, sharey=True)[0]
    for ax, (trial, series) in zip(axes, histories.items()):
        means: dict[int, list[tuple[int, float]]] = {}
        replicas: dict[int, list[list[tuple[int, float]]]] = {}
        for key, points in series.items():
            replica, base = split_replica_key(key)
            if not base.startswith(keys.KL_GROUP_PREFIX) or not points:
                continue
            group = int(base.removeprefix(keys.KL_GROUP_PREFIX))
            if replica is None:
                means[group] = points
            else:
                replicas.setdefault(group, []).append(points)
        for group in sorted(means):
            thin = [_unzip(points) for points in replicas.get(group, [])]
            plots.draw_group_kl(ax, group, *_unzip(means[group]), thin)
        reported = sorted({step for points in series.values() for step, _ in points})
        reports = [{keys.STEP: float(step)} for step in reported]
        plots.mark_stages(ax, reports, (stage_starts or {}).get(trial, []))
        ax.set_title(trial, fontsize=10)
        plots.step_axis(ax)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("KL on the probe batch (nats)")
    axes[0].yaxis.set_major_formatter(plots.PLAIN)
    if note:
        figure.suptitle(note, fontsize=9)
    figure.tight_layout()
    return figure


def _unzip(points: list[tuple[int, float]]) -> tuple[list[float], list[float]]:
    return [float(step) for step, _ in points], [value for _, value in points]


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
    ranked = report.ranked(search.trials, metric, search.mode)
    top = ranked[:TOP_TRIALS]
    per_group = {}
    read = histories if histories is not None else _stored_histories()
    for trial in top:
        group_keys = [k for k in trial.metrics if _is_group_kl(k)]
        per_group[trial.trial_id] = read(uri, trial.run_id, group_keys)
    shown = {k: v for k, v in per_group.items() if v}
    figures = {
        "objective_over_trials.png": objective_over_trials(search.trials, metric, search.mode),
        "objective_vs_params.png": objective_vs_params(search.trials, metric),
        "information_per_group.png": information_per_group(
            shown,
            {t.trial_id: report.stage_starts(t) for t in top},
            panels_note(len(shown), len(top), len(ranked), len(search.trials), metric, search.mode)
            + _replicas_note(t for t in top if t.trial_id in shown),
        ),
        "stop_reasons.png": stop_reasons(search.trials, steps),
    }
    return [save_figure(figure, directory / name) for name, figure in figures.items()]


def _is_group_kl(key: str) -> bool:
    """``kl/groupG`` (the mean over replicas) or ``replica{r}/kl/groupG``."""
    return split_replica_key(key)[1].startswith(keys.KL_GROUP_PREFIX)


def panels_note(shown: int, top: int, ranked: int, total: int, metric: str, mode: str) -> str:
    """Which trials information_per_group.png shows, of how many, and why: "top 3 of 4 trials
    by metrics/mig (highest first)", and the trials that could not be shown."""
    order = "highest" if mode == "max" else "lowest"
    if shown == total:
        which = f"all {total} trials" if total > 1 else "the one trial"
    else:
        which = f"top {shown} of {total} trials by {metric} ({order} first)"
    notes = []
    if ranked < total:
        notes.append(f"{total - ranked} without a {metric} value cannot rank")
    if shown < top:
        notes.append(f"{top - shown} of the top {top} logged no KL per group")
    extra = f"; {', '.join(notes)}" if notes else ""
    return f"KL per group: {which}{extra}"


def _replicas_note(trials: Iterable[Any]) -> str:
    """How the curves of replicated trials are drawn, when any trial shown has replicas."""
    counts = {int(report.param_float(t.params.get("training.replicas")) or 1) for t in trials}
    if max(counts, default=1) < 2:
        return ""
    many = f"its {counts.pop()} replicas" if len(counts) == 1 else "its replicas"
    return f"\nthick: a trial's mean over {many}, thin: each replica"


def _stored_histories() -> Callable[..., dict]:
    from deft_tune.search.tracking.reader import metric_histories  # MLflow, when it is needed

    return metric_histories
