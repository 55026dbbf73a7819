"""A replay's figures: the anytime curves (the best objective the search would return so far,
against the trial-steps spent, per rule: median over replays and the band of the middle half) and,
with a sweep, the savings-regret frontier (one point per value of the swept field and rule)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from deft_tune.search.replay.options import yaml_text
from deft_tune.search.replay.summary import ReplayResult, Stat, anytime

__all__ = ["FIGSIZE", "anytime_figure", "sweep_figure"]

FIGSIZE = (8.0, 5.0)  # inches: 800 x 500 pixels at plots.save_figure's 100 dpi
GRID_POINTS = 200
_DASHES = ("-", "--", "-.", ":")


def anytime_figure(result: ReplayResult) -> Figure:
    bank = result.bank
    longest = max(run.unstopped_steps for runs in result.runs.values() for run in runs)
    grid = np.linspace(0, longest, GRID_POINTS)
    figure = Figure(figsize=FIGSIZE)
    ax = figure.subplots()
    for i, (rule, runs) in enumerate(result.runs.items()):
        median, low, high = anytime(runs, grid)
        spent = grid > max(run.trial_steps for run in runs)  # the rule never got this far
        for values in (median, low, high):
            values[spent] = np.nan
        # Rules that coincide stay visible: each drawn thinner and in its own dash over the last.
        dash, width = _DASHES[i % len(_DASHES)], max(3.0 - 0.7 * i, 1.0)
        (line,) = ax.step(grid, median, where="post", label=rule, linestyle=dash, linewidth=width)
        ax.fill_between(grid, low, high, step="post", alpha=0.2, color=line.get_color())
    ax.axhline(bank.best, color="black", linestyle="--", linewidth=1, label="bank's best")
    ax.set(
        xlabel="trial-steps spent",
        ylabel=f"{bank.objective}: best so far",
        title=f"{bank.experiment}: {len(result.orders)} replays, "
        f"{result.concurrency} trials at a time (median, middle half)",
    )
    ax.legend()
    return figure


def _errors(stats: list[Stat], scale: float = 1.0) -> tuple[list[float], list[list[float]]]:
    """Medians and their interval as errorbar's (below, above) distances."""
    centres = [scale * s.median for s in stats]
    below = [c - scale * s.median_ci[0] for c, s in zip(centres, stats)]
    above = [scale * s.median_ci[1] - c for c, s in zip(centres, stats)]
    return centres, [below, above]


def sweep_figure(result: ReplayResult) -> Figure:
    """Median savings against median regret per swept value, with their 95% intervals; the
    bank's seed noise (of a schedule's mean) as a vertical line when the bank has it."""
    figure = Figure(figsize=FIGSIZE)
    ax = figure.subplots()
    for rule in dict.fromkeys(p.summary.rule for p in result.sweep):
        points = [p for p in result.sweep if p.summary.rule == rule and p.summary.regret]
        x, xerr = _errors([p.summary.regret for p in points if p.summary.regret])
        y, yerr = _errors([p.summary.savings for p in points], scale=100)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, marker="o", capsize=3, label=rule)
        for point, at in zip(points, zip(x, y)):
            ax.annotate(yaml_text(point.value), at, textcoords="offset points", xytext=(5, 5))
    if result.spread is not None:
        noise = result.spread.noise_of_mean
        ax.axvline(noise, color="black", linestyle="--", linewidth=1, label="seed noise of a mean")
    ax.set(
        xlabel=f"regret of the returned {result.bank.objective} (median)",
        ylabel="trial-steps saved against no stopping, % (median)",
        title=f"{result.sweep_field}: savings against regret",
    )
    ax.legend()
    return figure
