"""benchmarks/gpu_check.py --dry-run: every step of the GPU check on the CPU at toy size."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = {"environment", "cuda tests", "example config", "replica throughput", "search",
         "export -> retrain", "total seconds"}  # fmt: skip


@pytest.mark.slow
def test_the_gpu_check_dry_run_runs_every_step_and_writes_one_report(tmp_path):
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": path},
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report) == STEPS and all(step["ok"] for step in report.values())
    import torch

    assert report["environment"]["packages"]["torch"] == torch.__version__
    assert "skipped" in report["cuda tests"]["summary"]  # no CUDA here
    assert [r["precision"] for r in report["example config"]["rows"]] == ["fp32", "bf16"]
    rows = report["replica throughput"]["rows"]
    assert [r["replicas R"] for r in rows] == [1, 2] and "stacked / threads" in rows[0]
    assert report["search"]["trials"] == report["search"]["completed"] == 4
    retrain = report["export -> retrain"]
    assert retrain["deterministic"]["loss difference"] == 0.0
    assert "# GPU check (dry run" in (tmp_path / "report.md").read_text()
