"""inspect's figures: labelled ticks on parameters with few values, integer ticks on counts,
no axis offsets, stage lines."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deft_tune.results import report_plots


def _axis(values, log=False):
    figure = Figure()
    ax = figure.subplots()
    ax.scatter(values, [1.0051 + 0.0001 * i for i in range(len(values))])
    report_plots.param_ticks(ax, values, log=log)
    ax.ticklabel_format(axis="y", useOffset=False)
    FigureCanvasAgg(figure).draw()
    return ax


def _labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text()]


def test_few_values_get_one_labelled_tick_each():
    assert _labels(_axis([2, 3, 3, 2])) == ["2", "3"]  # stage counts: integers, no 2.5
    assert _labels(_axis([0.1, 1.0, 0.1], log=True)) == ["0.1", "1"]  # choices on a log axis


def test_many_values_get_plain_labels_without_offset():
    ax = _axis([1.0 + 0.001 * i for i in range(8)])
    assert ax.xaxis.get_offset_text().get_text() == ""
    assert ax.yaxis.get_offset_text().get_text() == ""
    ax = _axis([1.1e-3, 1.4e-3, 1.9e-3, 2.2e-3, 2.8e-3], log=True)  # within one decade
    assert len(_labels(ax)) >= 2 and not any("10^" in label for label in _labels(ax))
    ax = _axis(list(range(2, 12)))
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_information_panels_mark_each_trials_stage_starts():
    series = {"kl/group0": [(200, 1.0), (400, 2.0), (600, 2.5)]}
    figure = report_plots.information_per_group({"t": series}, {"t": [216, 419]})
    lines = [line.get_xdata()[0] for line in figure.axes[0].lines if line.get_linestyle() == "--"]
    assert lines == [216, 419]
