"""benchmarks/stopper_calibration.py on the committed DEFT bank with few replays: each swept
value is the shipped default with one field changed, the default's rows are the bank's own
rules, and every number is a share or a regret that can be read."""

from __future__ import annotations

import pytest

from benchmarks import stopper_calibration as calibration
from deft_tune.search.replay.bankfile import read_banks
from deft_tune.search.replay.command import replay_bank
from deft_tune.search.replay.options import ReplayOptions
from tests import REPO

PARTS = sorted((REPO / "benchmarks" / "banks" / "dsprites").glob("part-*.parquet"))


@pytest.mark.skipif(not PARTS, reason="no DEFT bank part is committed yet")
def test_a_sweep_changes_one_field_and_its_default_reproduces_the_bank_rules(monkeypatch):
    monkeypatch.setattr(calibration, "REPLAYS", 4)
    monkeypatch.setattr(calibration, "SWEEPS", {"no_capture": (True, False)})
    parts = [p.relative_to(REPO).as_posix() for p in PARTS[:1]]
    found = calibration.calibrate(parts)
    rows = found["rows"]
    trials = found["trials"]
    assert {(r["value"], r["rule"], r["trials"]) for r in rows} == {
        (v, rule, n) for v in (True, False) for rule in ("ifp", "ifp+asha")
        for n in (trials, trials // 2)
    }  # fmt: skip
    bank = read_banks(PARTS[:1])
    options = ReplayOptions(None, banks=tuple(parts), rules=("none", "ifp"), replays=4,
                            seed=calibration.SEED, log_mlflow=False)  # fmt: skip
    own = replay_bank(bank, options).summaries[1]
    default = next(r for r in rows if r["value"] is True and r["rule"] == "ifp"
                   and r["trials"] == trials)  # fmt: skip
    assert default["savings_pct"][0] == pytest.approx(own.savings.median * 100)
    off = next(r for r in rows if r["value"] is False and r["rule"] == "ifp"
               and r["trials"] == trials)  # fmt: skip
    assert off["savings_pct"][0] <= default["savings_pct"][0]  # a rule off stops no more
    for row in rows:
        assert 0 <= row["savings_pct"][0] <= 100 and 0 <= row["lost_pct"] <= 100
        mean, low, high = row["regret_beyond_none"]
        assert 0 <= low <= mean <= high
    text = calibration.markdown(found)
    assert "True (default)" in text and text.count("\n| no_capture |") == 4
