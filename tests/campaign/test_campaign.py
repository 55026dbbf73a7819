"""The campaign runner on tiny plans: units land whole or not at all, failures are recorded and
the campaign goes on, a unit that cannot finish in time is not started, a killed campaign leaves
no partial file, bad plans are one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmarks import campaign

WRITE = "python write.py {out}"  # write.py: see the root fixture
SLOW = "python slow.py {out}"  # half a file, a marker, then it waits to be killed


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setattr(campaign, "ROOT", tmp_path)
    monkeypatch.setattr(campaign, "LEDGER", tmp_path / "benchmarks" / "ledger.json")
    monkeypatch.setattr(campaign, "SCRATCH", tmp_path / "benchmarks" / ".scratch")
    (tmp_path / "write.py").write_text("import sys\nopen(sys.argv[1], 'w').write('{\"x\": 1}')\n")
    (tmp_path / "slow.py").write_text(
        "import sys, time\nopen(sys.argv[1], 'w').write('half')\n"
        "open('started', 'w').close()\ntime.sleep(600)\n"
    )
    return tmp_path


def plan(root, units: str):
    path = root / "plan.yaml"
    path.write_text("units:\n" + textwrap.indent(textwrap.dedent(units), "  "))
    return path


def test_units_run_in_order_failures_are_recorded_and_long_units_wait(root, capsys):
    path = plan(
        root,
        f"""\
        - id: ok
          cost_min: 1
          output: benchmarks/out/ok.json
          commands: ['{WRITE}']
        - id: fails
          cost_min: 1
          output: benchmarks/out/fails.json
          commands: ['python -c "raise SystemExit(3)"']
        - id: silent
          cost_min: 1
          output: benchmarks/out/silent.json
          commands: ['python -c "pass"']
        - id: long
          cost_min: 600
          output: benchmarks/out/long.json
          commands: ['{WRITE}']
        """,
    )
    assert campaign.main(["--plan", str(path), "run", "--minutes", "30"]) == 1
    assert json.loads((root / "benchmarks/out/ok.json").read_text()) == {"x": 1}
    assert not (root / "benchmarks/out/fails.json").exists()
    assert not (root / "benchmarks/out/long.json").exists()  # 600 min > 30 left: not started
    ledger = json.loads(campaign.LEDGER.read_text())
    assert ledger["ok"]["status"] == "done" and ledger["ok"]["commit"]
    assert ledger["fails"]["status"] == "failed" and "exit 3" in ledger["fails"]["error"]
    assert "wrote no {out} file" in ledger["silent"]["error"]
    assert "long" not in ledger
    capsys.readouterr()
    assert campaign.main(["--plan", str(path), "status"]) == 0
    shown = capsys.readouterr().out
    assert "1 of 4 units done" in shown and "FAILED" in shown and "600.0 min expected" in shown


def test_a_unit_waits_for_the_files_it_needs_even_from_earlier_units_of_the_same_run(root, capsys):
    path = plan(
        root,
        f"""\
        - id: later
          cost_min: 1
          output: benchmarks/out/later.json
          needs: [benchmarks/out/first.json]
          commands: ['{WRITE}']
        - id: first
          cost_min: 1
          output: benchmarks/out/first.json
          commands: ['{WRITE}']
        - id: after
          cost_min: 1
          output: benchmarks/out/after.json
          needs: [benchmarks/out/first.json]
          commands: ['{WRITE}']
        """,
    )
    assert campaign.main(["--plan", str(path), "run", "--minutes", "30"]) == 0
    said = capsys.readouterr().out
    assert "skip later: waits for benchmarks/out/first.json" in said
    assert not (root / "benchmarks/out/later.json").exists()
    assert (root / "benchmarks/out/after.json").exists()  # its need landed earlier in the run
    assert campaign.main(["--plan", str(path), "status"]) == 0
    assert "2 of 3 units done" in capsys.readouterr().out
    assert campaign.main(["--plan", str(path), "run", "--minutes", "30"]) == 0
    assert (root / "benchmarks/out/later.json").exists()


def test_a_killed_campaign_leaves_no_partial_file_and_the_next_run_clears_it(root):
    started = root / "started"
    path = plan(
        root,
        f"""\
        - id: slow
          cost_min: 1
          output: benchmarks/out/slow.json
          commands: ['{SLOW}']
        """,
    )
    code = (
        "import sys; from pathlib import Path; from benchmarks import campaign as c\n"
        f"root = Path({str(root)!r}); c.ROOT = root\n"
        "c.LEDGER = root / 'benchmarks' / 'ledger.json'\n"
        "c.SCRATCH = root / 'benchmarks' / '.scratch'\n"
        f"sys.exit(c.main(['--plan', {str(path)!r}, 'run', '--minutes', '5']))\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", code])
    while not started.exists():  # the unit is in flight, its file half written
        assert runner.poll() is None, "the campaign ended before its unit started"
        os.sched_yield()
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    assert not (root / "benchmarks/out/slow.json").exists()
    pgid = int((campaign.SCRATCH / "slow" / "pgid").read_text())
    campaign._clear_scratch()  # what the next run does first
    assert not campaign.SCRATCH.joinpath("slow").exists()
    while _alive(pgid):  # the unit's process group was told to stop: wait until it has
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize(
    "units, message",
    [
        ("- id: a\n  cost_min: 1\n  output: /etc/x\n  commands: [x]\n", "under benchmarks/"),
        ("- id: a\n  cost_min: 0\n  output: benchmarks/x\n  commands: [x]\n", "cost_min"),
        ("- id: a\n  output: benchmarks/x\n  commands: [x]\n", "needs id, cost_min"),
        (
            "- id: a\n  cost_min: 1\n  output: benchmarks/x\n  commands: [x]\n  when: now\n",
            "unknown",
        ),
        ("- id: a\n  cost_min: 1\n  output: benchmarks/x\n  commands: [x]\n  needs: b\n", "needs"),
    ],
)
def test_bad_plans_are_one_line(root, capsys, units, message):
    path = plan(root, units)
    assert campaign.main(["--plan", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_unknown_unit_is_refused(root, capsys):
    path = plan(root, f"- id: a\n  cost_min: 1\n  output: benchmarks/a\n  commands: ['{WRITE}']\n")
    assert campaign.main(["--plan", str(path), "run", "--minutes", "1", "--only", "zz"]) == 2
    assert "zz" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["status"], ["run", "--minutes", "1"]])
@pytest.mark.parametrize(
    ("ledger", "why"),
    [("<<<<<<< HEAD\n{}", "cannot be read (Expecting"), ("[]", "is not a JSON object")],
)
def test_a_broken_ledger_is_one_line_before_any_unit_runs(root, capsys, command, ledger, why):
    path = plan(root, f"- id: a\n  cost_min: 1\n  output: benchmarks/a\n  commands: ['{WRITE}']\n")
    campaign.LEDGER.parent.mkdir(parents=True)
    campaign.LEDGER.write_text(ledger)
    assert campaign.main(["--plan", str(path), *command]) == 2
    err = capsys.readouterr().err
    assert f"ledger.json {why}" in err and "git checkout --" in err
    assert len(err.strip().splitlines()) == 1 and not (root / "benchmarks" / "a").exists()


def test_the_committed_plan_loads():
    units = campaign.load_plan()
    assert any(u.group == "bank_dsprites" for u in units)
    assert all(u.output.parts[0] == "benchmarks" for u in units)


def test_a_group_is_expected_to_take_its_median_measured_unit():
    unit = campaign.Unit("u", "g", 99.0, campaign.Path("benchmarks/u"), ("x",))
    ledger = {k: {"group": "g", "status": "done", "wall_s": 60 * m}
              for k, m in (("a", 10), ("b", 50), ("c", 20))}  # fmt: skip
    ledger["d"] = {"group": "g", "status": "failed", "wall_s": 6000}
    assert campaign.expected_minutes(unit, ledger) == 20
    assert campaign.expected_minutes(unit, {}) == 99.0
