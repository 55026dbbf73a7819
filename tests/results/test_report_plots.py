"""inspect's figures: labelled ticks on parameters with few round values, integer ticks on
counts, rounded labels that never meet, no axis offsets, stage lines and stage numbers from 0,
a note saying which trials the information panels show."""

from __future__ import annotations

from types import SimpleNamespace

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deft_tune.results import report_plots
from tests.test_plots import overlapping


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


# Four trials of the committed dSprites bank (benchmarks/banks/dsprites): sampled values.
LRS = [0.000224224, 0.000466102, 0.000486855, 0.000614686]
BETAS_0 = [2.11581, 5.14531, 7.1898, 37.5182]
BETAS_1 = [1.59471, 1.47015, 4.71907, 13.0853]


def test_four_sampled_values_get_round_ticks_whose_labels_never_meet():
    for values, log in ((LRS, True), (BETAS_0, True), (BETAS_1, False)):
        ax = _axis(values, log=log)
        labels = [t for t in ax.get_xticklabels() if t.get_text()]
        assert len(labels) >= 2, values
        assert not overlapping(labels), [t.get_text() for t in labels]
        for label in labels:  # round: no 0.000224224, no 37.5182
            assert len(label.get_text().replace("0.", "").lstrip("0")) <= 2, label.get_text()
    assert _labels(_axis(LRS, log=True)) == ["0.0003", "0.0005"]
    assert _labels(_axis(BETAS_0, log=True)) == ["2", "10", "30"]  # 2: in the margin by 2.12


def _trial(trial_id, objective, lr, betas, start):
    params = {"training.lr": str(lr), "training.replicas": "3", "objective.kind": "deft"}
    params.update({f"schedule.stages.{i}.beta": str(b) for i, b in enumerate(betas)})
    params.update({f"schedule.stages.{i}.steps": "500" for i in range(len(betas) - 1)})
    params["schedule.rule"] = "fixed"
    params["training.steps"] = "2000"
    return SimpleNamespace(
        trial_id=trial_id,
        run_id=f"run-{trial_id}",
        status="FINISHED",
        stop_reason="completed",
        params=params,
        metrics={
            "metrics/mig": objective,
            "kl/group0": 1.0,
            **{f"replica{r}/kl/group0": 1.0 for r in range(3)},
        },
        start_time=start,
        end_time=start + 1.0,
        steps=2000,
    )


TRIALS = [
    _trial("t0", 0.19, LRS[0], [BETAS_0[0], BETAS_1[0], 1.0], 0.0),
    _trial("t1", 0.10, LRS[1], [BETAS_0[1], BETAS_1[1], 1.0], 1.0),
    _trial("t2", 0.07, LRS[2], [BETAS_0[2], BETAS_1[2], 1.0], 2.0),
    _trial("t3", 0.05, LRS[3], [BETAS_0[3], BETAS_1[3], 1.0], 3.0),
]


def test_parameter_panels_name_stages_from_0_and_keep_their_labels_apart():
    figure = report_plots.objective_vs_params(TRIALS, "metrics/mig")
    FigureCanvasAgg(figure).draw()
    names = [ax.get_xlabel() for ax in figure.axes if ax.get_visible()]
    assert names == ["lr", "beta of stage 0 (from 0)", "beta of stage 1 (from 0)"]
    lr = figure.axes[0]
    assert lr.get_xscale() == "log" and figure.axes[1].get_xscale() == "log"
    for ax in figure.axes:
        assert not overlapping(ax.get_xticklabels()), ax.get_xlabel()


def _curves(trial):
    """A trial's KL history as metric_histories returns it: 2,000 steps, a report every 100."""
    steps = range(100, 2001, 100)
    series = {"kl/group0": [(s, s / 1000) for s in steps]}
    series.update({f"replica{r}/kl/group0": [(s, r * s / 1000) for s in steps] for r in range(3)})
    return series


def test_information_panels_say_which_trials_they_show_and_keep_ticks_apart(tmp_path):
    search = SimpleNamespace(trials=TRIALS, space={"budget": {"steps_per_trial": 2000}}, mode="max")
    seen = []

    def histories(uri, run_id, group_keys):
        seen.append(sorted(group_keys))
        return _curves(run_id)

    figure_paths = report_plots.write_all(search, "metrics/mig", "uri", tmp_path, histories)
    assert [p.name for p in figure_paths][2] == "information_per_group.png"
    # The replicas' curves are read along with the mean.
    assert seen[0] == ["kl/group0"] + [f"replica{r}/kl/group0" for r in range(3)]

    figure = report_plots.information_per_group(
        {t: _curves(t) for t in ("t0", "t1", "t2")},
        {t: [500, 1000, 1500] for t in ("t0", "t1", "t2")},
        report_plots.panels_note(3, 3, 4, 4, "metrics/mig", "max"),
    )
    FigureCanvasAgg(figure).draw()
    assert figure.get_suptitle() == "KL per group: top 3 of 4 trials by metrics/mig (highest first)"
    for ax in figure.axes[:3]:
        assert not overlapping(ax.get_xticklabels()), [t.get_text() for t in ax.get_xticklabels()]
        (top,) = ax.child_axes
        assert [t.get_text() for t in top.get_xticklabels()] == ["0", "1", "2", "3"]
        assert top.get_xlabel() == "stage (numbered from 0)"
        curves = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
        widths = sorted(line.get_linewidth() for line in curves)
        assert widths[:3] == [0.7] * 3 and widths[3] > 1  # each replica thin, the mean thick


def test_the_panels_note_says_why_trials_are_missing():
    note = report_plots.panels_note
    assert note(3, 3, 4, 4, "metrics/mig", "max").endswith(
        "top 3 of 4 trials by metrics/mig (highest first)"
    )
    assert note(2, 2, 2, 2, "metrics/mig", "min") == "KL per group: all 2 trials"
    text = note(2, 3, 3, 5, "final/mig", "min")
    assert "top 2 of 5 trials by final/mig (lowest first)" in text
    assert "2 without a final/mig value cannot rank" in text
    assert "1 of the top 3 logged no KL per group" in text
