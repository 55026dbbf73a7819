"""The committed DEFT bank (benchmarks/banks/dsprites/part-*.parquet, recorded by the evidence
campaign) replayed from the files themselves with all four rules: `none` spends every recorded
step, no rule spends more, regret is never negative, and the same seed gives the same tables.

Until the campaign has committed the bank's first part there is nothing to replay and the test
says so as a skip; once a part is in the repository it runs in every CI run."""

from __future__ import annotations

import pytest

from deft_tune.search.replay.bankfile import read_banks
from deft_tune.search.replay.command import replay_bank
from deft_tune.search.replay.options import RULES, ReplayOptions
from deft_tune.search.replay.render import markdown
from tests import REPO

PARTS = sorted((REPO / "benchmarks" / "banks" / "dsprites").glob("part-*.parquet"))


@pytest.mark.skipif(not PARTS, reason="the campaign has not committed a DEFT bank part yet")
def test_the_committed_dsprites_bank_replays_under_every_rule():
    bank = read_banks(PARTS)
    options = ReplayOptions(None, banks=tuple(map(str, PARTS)), rules=RULES, replays=5,
                            seed=0, log_mlflow=False)  # fmt: skip
    result = replay_bank(bank, options)
    recorded = sum(trial.steps for trial in bank.trials)
    assert {run.trial_steps for run in result.runs["none"]} == {recorded}
    for rule in RULES:
        assert all(run.trial_steps <= recorded for run in result.runs[rule])
        assert all(run.regret is not None and run.regret >= 0 for run in result.runs[rule])
    assert markdown(replay_bank(bank, options)) == markdown(result)
