"""The anytime figure of a replay: the best objective the search would return so far, against
the trial-steps spent, per rule (median over replays and the band of the middle half)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from deft_tune.search.replay.summary import ReplayResult, anytime

__all__ = ["FIGSIZE", "anytime_figure"]

FIGSIZE = (8.0, 5.0)  # inches: 800 x 500 pixels at plots.save_figure's 100 dpi
GRID_POINTS = 200


def anytime_figure(result: ReplayResult) -> Figure:
    bank = result.bank
    longest = max(run.unstopped_steps for runs in result.runs.values() for run in runs)
    grid = np.linspace(0, longest, GRID_POINTS)
    figure = Figure(figsize=FIGSIZE)
    ax = figure.subplots()
    for rule, runs in result.runs.items():
        median, low, high = anytime(runs, grid)
        (line,) = ax.step(grid, median, where="post", label=rule)
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
