"""Training figures: stage lines where the stages changed, stages numbered from 0, plain tick
labels, a replicated run's mean and each replica; round log ticks whose labels never meet."""

from __future__ import annotations

import itertools
import math

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deft_tune import plots
from deft_tune.training.aggregate import combine, replica_reports

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


# Three replicas of one run whose group 0 means 3.0 nats at the end (the reviewer's case: the
# mean plotted, the replicas at 8.47, 0.20 and 0.32).
REPLICA_KL = ((0.5, 4.0, 8.47), (0.1, 0.15, 0.20), (0.2, 0.3, 0.32))


def _replicated_history() -> list[dict[str, float]]:
    history = []
    for i, step in enumerate((200.0, 400.0, 600.0)):
        reports = [
            {"step": step, "train/replicas": 3.0, "train/stage": float(i), "kl/group0": kl[i]}
            for kl in REPLICA_KL
        ]
        history.append(combine(reports))
    return history


def test_a_replicated_runs_kl_plot_shows_the_mean_and_each_replica():
    history = _replicated_history()
    assert history[-1]["kl/group0"] == pytest.approx(3.0, abs=0.01)
    replicas = [[replica_reports(report)[r] for report in history] for r in range(3)]
    ax = plots.plot_kl_per_group(history, 1, [216, 419], replicas).axes[0]
    assert "mean over 3 replicas" in ax.get_title() and "each replica" in ax.get_title()
    assert "mean over 3 replicas" in ax.get_ylabel()
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) == 3]
    thin = [line for line in curves if line.get_linewidth() < 1]
    assert sorted(tuple(line.get_ydata()) for line in thin) == sorted(REPLICA_KL)  # 8.47 too
    (mean,) = [line for line in curves if line.get_linewidth() > 1]
    assert mean.get_label() == "group 0" and mean.get_ydata()[-1] == pytest.approx(3.0, abs=0.01)
    assert {line.get_color() for line in thin} == {mean.get_color()}  # the group's colour
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["group 0", "each replica"]

    one = plots.plot_kl_per_group(HISTORY, 2, [216, 419]).axes[0]
    assert "mean" not in one.get_title() and "replica" not in one.get_title()
    assert all(line.get_linewidth() > 1 for line in one.get_lines() if line.get_label()[0] != "_")


def _top_axis(ax):
    (top,) = ax.child_axes
    return top


def test_the_top_axis_numbers_the_stages_from_0_as_the_tables_do():
    ax = plots.plot_kl_per_group(HISTORY, 2, [216, 419]).axes[0]
    FigureCanvasAgg(ax.figure).draw()
    top = _top_axis(ax)
    assert [t.get_text() for t in top.get_xticklabels()] == ["0", "1", "2"]
    # Each number over the middle of its stage's plotted steps: 200-216, 216-419, 419-600.
    assert list(top.get_xticks()) == [208.0, 317.5, 509.5]
    assert top.get_xlabel() == plots.STAGE_AXIS_LABEL == "stage (numbered from 0)"
    # Without the schedule: from the reports' train/stage, each change at the report before it
    # (stage 0 ended at the first report, so it has no plotted steps).
    assert plots.stage_spans(HISTORY) == [(1, 200.0, 400.0), (2, 400.0, 600.0)]


def test_a_run_of_one_stage_gets_no_stage_axis():
    history = [{"step": 100.0, "kl/group0": 1.0}, {"step": 200.0, "kl/group0": 2.0}]
    ax = plots.plot_kl_per_group(history, 1, []).axes[0]
    assert ax.child_axes == []


@pytest.mark.parametrize(
    ("low", "high"),
    [(0.000224224, 0.000614686), (2.11581, 37.5182), (1.0, 71.0), (0.11, 0.71), (1e-5, 3e-2)],
)
def test_log_ticks_are_round_inside_the_range_and_apart(low, high):
    ticks = plots.log_ticks(low, high)
    assert len(ticks) >= 2
    slack = plots.SLACK * math.log10(high / low)  # past the data, inside the axis' margin
    assert all(-slack <= math.log10(t / low) and math.log10(t / high) <= slack for t in ticks)
    assert all(float(f"{t:.1g}") == t or float(f"{t:.2g}") == t for t in ticks)  # round
    gaps = [math.log10(b / a) for a, b in zip(ticks, ticks[1:])]
    assert min(gaps) >= plots.TICK_GAP * math.log10(high / low) - 1e-12


def test_log_ticks_reach_into_the_margin_and_fall_back_to_rounded_ends():
    assert plots.log_ticks(0.000224, 0.000229) == [0.00022, 0.00023]
    assert plots.log_ticks(1.0001, 71.0) == [1.0, 3.0, 10.0, 50.0]  # an annealing's betas


def test_plain_labels_on_a_log_axis_never_meet():
    figure = Figure(figsize=(2.6, 2))
    ax = figure.subplots()
    ax.set_xscale("log")
    ax.scatter([0.000224224, 0.000466, 0.000486, 0.000614686], [1, 2, 3, 4])
    plots.plain_log_axis(ax.xaxis, 0.000224224, 0.000614686)
    FigureCanvasAgg(figure).draw()
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    assert [t.get_text() for t in labels] == ["0.0003", "0.0005"]
    assert not overlapping(labels)


def overlapping(labels) -> list[tuple[str, str]]:
    """Pairs of drawn text artists whose boxes meet."""
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels if t.get_text()]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]
