"""Training figures: stage lines where the stages changed, plain tick labels."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg

from deft_tune import plots

# Reports every 200 steps of a run whose stages began at 216 and 419 (report at step s shows
# the stage of step s - 1).
HISTORY = [
    {"step": 200.0, "train/stage": 0.0, "kl/group0": 1.0, "kl/group1": 0.0},
    {"step": 400.0, "train/stage": 1.0, "kl/group0": 1.0005, "kl/group1": 0.5},
    {"step": 600.0, "train/stage": 2.0, "kl/group0": 1.001, "kl/group1": 0.7},
]


def _vertical_lines(figure) -> list[float]:
    ax = figure.axes[0]
    return [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]


def test_stage_lines_lie_where_the_stages_began_not_at_the_reports():
    assert plots.stage_lines(HISTORY, [216, 419]) == [216.0, 419.0]
    assert plots.stage_lines(HISTORY, [216, 419, 700]) == [216.0, 419.0]  # never reached
    # Without the schedule: the last report before each change.
    assert plots.stage_lines(HISTORY) == [200.0, 400.0]
    figure = plots.plot_kl_per_group(HISTORY, 2, [216, 419])
    assert _vertical_lines(figure) == [216.0, 419.0]


def test_kl_plot_has_no_axis_offset():
    figure = plots.plot_kl_per_group(HISTORY, 2, [216, 419])
    FigureCanvasAgg(figure).draw()
    ax = figure.axes[0]
    assert ax.yaxis.get_offset_text().get_text() == ""
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_a_replicated_runs_kl_plot_says_it_shows_the_mean():
    one = plots.plot_kl_per_group(HISTORY, 2, [216, 419]).axes[0]
    three = plots.plot_kl_per_group(HISTORY, 2, [216, 419], replicas=3).axes[0]
    assert "mean" not in one.get_title()
    assert "mean over 3 replicas" in three.get_title() and "mean" in three.get_ylabel()
