"""The live table: every score names its setting, and every line says how many trials have
ended of the budget and when the search should end (on a fake clock: no test waits)."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

from deft_tune.report_keys import COMPLETED, STEP, final_key
from deft_tune.search.callbacks import NO_ETA, LiveTable, duration, search_eta, trial_rest
from tests import REPO


class FakeClock:
    """Monotonic seconds that move only when the test says (picklable, like time.monotonic)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _trial(trial_id: str, **last_result) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, last_result=dict(last_result))


def _columns(line: str) -> tuple[str, str, str]:
    """(ended, ETA, status) of a table line."""
    fields = line[45:].split(maxsplit=2)
    return fields[0], fields[1], fields[2]


def test_the_live_table_names_each_scores_setting_and_counts_ended_trials(capsys):
    table = LiveTable("metrics/mig", asha=True, total=4, concurrency=2, clock=FakeClock())
    running = _trial("a", **{STEP: 100, "metrics/mig": 0.16307})
    table.on_trial_result(0, [], running, running.last_result)
    last = {STEP: 600, "metrics/mig": 0.16307, final_key("metrics/mig"): 0.16790, COMPLETED: 1.0}
    table.on_trial_result(0, [], running, last)
    failed = _trial("b", **{STEP: 100})
    table.on_trial_error(0, [], failed)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("objective: metrics/mig (metrics: the fast setting at each")
    assert lines[1].split()[-3:] == ["ended", "ETA", "status"]
    assert lines[2].endswith("0.1631   0/4      —  running (fast)")
    assert lines[3].endswith("0.1679   0/4      —  final (standard)")  # best.yaml's number
    assert _columns(lines[4])[0::2] == ("1/4", "error")


def test_the_eta_spreads_the_mean_wall_time_of_ended_trials_over_the_slots(capsys):
    clock = FakeClock()
    table = LiveTable("metrics/mig", asha=False, total=4, concurrency=4, clock=clock)
    a, b, c = _trial("a"), _trial("b"), _trial("c")
    table.on_trial_start(0, [], a)
    table.on_trial_start(0, [], b)  # the resources run 2 at a time, not max_concurrent's 4
    clock.now = 10.0
    table.on_trial_result(0, [], a, {STEP: 1})
    clock.now = 100.0
    a.last_result = {STEP: 2, COMPLETED: 1.0}
    table.on_trial_complete(0, [], a)  # mean 100 s; b's slot frees now, one round of 2 is left
    table.on_trial_start(0, [], c)
    clock.now = 150.0
    table.on_trial_result(0, [], b, {STEP: 2})  # b: past the mean; c: 50 s left; d after b
    clock.now = 160.0
    b.last_result = {STEP: 2, COMPLETED: 1.0}
    table.on_trial_complete(0, [], b)  # mean 130 s: c ends in 70 s, d (not started) in 130 s
    out = capsys.readouterr().out.splitlines()[2:]
    assert [_columns(line)[:2] for line in out] == [
        ("0/4", NO_ETA),  # no trial has ended: nothing to estimate from
        ("1/4", "1m40s"),
        ("1/4", "1m40s"),
        ("2/4", "2m10s"),
    ]
    assert table.progress() == ("2/4", "2m10s")

    # A restored table (Tune pickles its callbacks) keeps the ended trials' wall times and
    # takes a running trial's time so far from Tune's time_total_s, not a stale clock reading.
    again = pickle.loads(pickle.dumps(table))
    again.clock = clock
    clock.now = 1000.0
    again.on_trial_start(0, [], _trial("c", time_total_s=40.0))  # resumed 40 s in: 90 s left
    assert again.progress() == ("2/4", "2m10s")
    again.on_trial_result(0, [], _trial("c"), {STEP: 3})
    assert capsys.readouterr().out.splitlines()[1].split()[-3:] == ["ended", "ETA", "status"]
    # A table pickled before the ETA existed counts on from what it knew.
    older = LiveTable.__new__(LiveTable)
    older.__setstate__({"metric": "metrics/mig", "asha": True, "total": 4, "_ended": {"a"}})
    assert older.progress() == ("1/4", NO_ETA)


def test_search_eta_and_durations():
    assert search_eta([], [5.0], left=3, slots=2) is None
    assert search_eta([60.0], [], left=0, slots=2) == 0.0
    assert search_eta([60.0], [10.0], left=1, slots=2) == 50.0  # the running trial's rest
    assert search_eta([60.0], [10.0, 30.0], left=5, slots=2) == 30.0 + 2 * 60.0  # 1st free
    assert search_eta([60.0], [], left=5, slots=1) == 300.0
    assert search_eta([60.0], [10.0], left=2, slots=2) == 60.0  # the idle slot takes the next
    assert [duration(s) for s in (0, 44.6, 725, 3600 * 3 + 420, 86400 * 2 + 3600 * 4)] == [
        "0s",
        "45s",
        "12m05s",
        "3h07m",
        "2d04h",
    ]


def test_a_trial_that_outlasts_the_mean_finishes_at_its_own_pace(capsys):
    assert trial_rest(50.0, mean=10.0) == 0.0  # without its step: the mean says it is late
    assert trial_rest(50.0, mean=10.0, done=0.5) == 50.0  # half its steps in 50 s: 50 s more
    assert trial_rest(50.0, mean=10.0, done=1.0) == 0.0
    clock = FakeClock()
    table = LiveTable("metrics/mig", asha=True, total=2, concurrency=2, clock=clock,
                      steps_per_trial=2000)  # fmt: skip
    short, long = _trial("a"), _trial("b")
    table.on_trial_start(0, [], short)
    table.on_trial_start(0, [], long)
    clock.now = 10.0
    table.on_trial_complete(0, [], short)  # stopped early: the mean wall time is 10 s
    clock.now = 50.0
    table.on_trial_result(0, [], long, {STEP: 1000})
    assert _columns(capsys.readouterr().out.splitlines()[-1])[:2] == ("1/2", "50s")


def _replay_recorded_search(bank, slots: int, table: LiveTable, clock: FakeClock):
    """Tune's callbacks for ``bank``'s trials run in order, ``slots`` at a time, each report
    arriving its recorded cost after the one before; returns {trial: seconds it ended at}."""
    events, free = [], [0.0] * slots
    for order, trial in enumerate(bank.trials):
        slot = min(range(slots), key=free.__getitem__)
        now = free[slot]
        events.append((now, 0, order, "start", {}))
        for report in (*trial.reports, trial.final):
            now += report.cost_s
            done = report is trial.final
            events.append((now, 1, order, "result", {**report.result, COMPLETED: float(done)}))
        events.append((now, 2, order, "complete", {}))
        free[slot] = now
    handles = [_trial(t.trial_id.split("/")[-1]) for t in bank.trials]
    ended = {}
    for now, _, order, kind, result in sorted(events, key=lambda e: e[:2]):
        clock.now, trial = now, handles[order]
        if kind == "start":
            table.on_trial_start(0, [], trial)
        elif kind == "result":
            trial.last_result = result
            table.on_trial_result(0, [], trial, result)
        else:
            table.on_trial_complete(0, [], trial)
            ended[trial.trial_id] = now
    return ended


def _seconds(text: str) -> float:
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    number, total = "", 0.0
    for char in text:
        if char.isdigit():
            number += char
        else:
            total, number = total + int(number) * units[char], ""
    return total


def test_the_eta_on_a_recorded_search_replayed_on_a_fake_clock(capsys):
    from deft_tune.search.replay.bankfile import read_banks

    # A real search: 4 trials of 2,000 steps, 2 at a time on the 2-core machine (73 minutes).
    bank = read_banks([REPO / "benchmarks/banks/dsprites/part-0.parquet"])
    clock = FakeClock()
    table = LiveTable(bank.objective, asha=False, total=4, concurrency=2, clock=clock,
                      steps_per_trial=bank.budget["steps_per_trial"])  # fmt: skip
    ended = _replay_recorded_search(bank, 2, table, clock)
    last = max(ended.values())
    assert last == pytest.approx(bank.parts[0].wall_s, rel=0.01)  # the replay is the search
    lines = capsys.readouterr().out.splitlines()[2:]
    first_end = next(i for i, line in enumerate(lines) if "done" in line)
    assert first_end > 30 and all(
        _columns(line)[:2] == ("0/4", NO_ETA) for line in lines[:first_end]
    )
    ends = [line for line in lines if "done" in line]
    assert [_columns(line)[0] for line in ends] == ["1/4", "2/4", "3/4", "4/4"]
    assert _columns(ends[-1])[1] == "0s"
    for line, at in zip(ends, sorted(ended.values())):
        # The estimate from the trials ended so far is within 15% of the search's wall time.
        assert abs(_seconds(_columns(line)[1]) - (last - at)) < 0.15 * last, (line, last - at)
