"""The live table: every score names its setting, and ended trials count against the budget."""

from __future__ import annotations

from types import SimpleNamespace

from deft_tune.report_keys import COMPLETED, STEP, final_key
from deft_tune.search.callbacks import LiveTable


def test_the_live_table_names_each_scores_setting_and_counts_ended_trials(capsys):
    table = LiveTable("metrics/mig", asha=True, total=4)
    running = SimpleNamespace(trial_id="a", last_result={STEP: 100, "metrics/mig": 0.16307})
    table.on_trial_result(0, [], running, running.last_result)
    last = {STEP: 600, "metrics/mig": 0.16307, final_key("metrics/mig"): 0.16790, COMPLETED: 1.0}
    table.on_trial_result(0, [], running, last)
    failed = SimpleNamespace(trial_id="b", last_result={STEP: 100})
    table.on_trial_error(0, [], failed)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("objective: metrics/mig (metrics: the fast setting at each")
    assert lines[2].endswith("0.1631  running (fast)")
    assert lines[3].endswith("0.1679  final (standard)")  # the number best.yaml's header gives
    assert lines[4].endswith("error, 1/4 trials ended")
