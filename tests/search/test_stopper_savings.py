"""benchmarks/stopper_savings.py's saved measurement: its JSON gives back the same table, and a
bad file is one line, exit 2."""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def savings(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports its sibling _search_bench
    return importlib.import_module("stopper_savings"), importlib.import_module("_search_bench")


def _arm(bench, name, steps_and_reasons):
    trials = tuple(
        bench.Trial(trial_id=f"t{i}", status="FINISHED" if reason == "completed" else "KILLED",
                    stop_reason=reason, steps=steps, seconds=10.0, ended_at=100.0 + i,
                    objective=0.1 + 0.01 * i, schedule=(("model.groups", "3"), ("lr", str(i))),
                    replicas=3, seed_std=0.02 if reason == "completed" else None)
        for i, (steps, reason) in enumerate(steps_and_reasons)
    )  # fmt: skip
    return bench.SearchRun(name, 0.0, 60.0, "t1", 0.11, trials)


def _measurement(bench):
    full = _arm(bench, "none", [(600, "completed"), (600, "completed")])
    stopped = _arm(bench, "ifp", [(200, "no_capture"), (600, "completed")])
    return {"measured": "2026-12-06", "command": "python benchmarks/stopper_savings.py",
            "machine": "a CPU", "asha": False,
            "seeds": [{"seed": 0, "arms": {"no stopper": asdict(full),
                                           "IFP stopper": asdict(stopped)}}]}  # fmt: skip


def test_a_saved_measurement_renders_the_table_it_was_measured_with(savings, tmp_path, capsys):
    module, bench = savings
    result = _measurement(bench)
    saved = tmp_path / "quick.json"
    saved.write_text(json.dumps(result))
    text = module.render(result)
    assert "| 0 | IFP stopper | 2 | no_capture 1 | 800 | 0.1100 | 60 |" in text
    assert "trial-steps with/without the stopper = 800/1200 = 0.67 (33% fewer)" in text
    assert "| 3 | nan | 0.1100 | completed (600) | 0.1100 |" in text  # schedules pair up
    assert module.main(["--from", str(saved)]) == 0
    assert capsys.readouterr().out.strip() == text  # the JSON round trip loses nothing


def test_a_bad_saved_file_is_one_line_and_exit_2(savings, tmp_path, capsys):
    module, _ = savings
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path in (broken, tmp_path / "missing.json"):
        assert module.main(["--from", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"stopper_savings: cannot read --from {path}") and "\n" not in err


def test_the_recorded_command_leaves_out_saving_and_writing(savings):
    module, _ = savings
    argv = ["--trials", "8", "--save", "out.json", "--seeds", "0", "1", "--write-doc",
            "--workdir", "/scratch/u1"]  # fmt: skip
    assert module._measuring_command(argv) == (
        "python benchmarks/stopper_savings.py --trials 8 --seeds 0 1"
    )
