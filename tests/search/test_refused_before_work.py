"""`deft-tune search` refusals that must come before Ray and MLflow start: one line, exit 2,
nothing written (no search folder, no store, no parent run), Ray never imported."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from tests import REPO, scaled
from tests.doubles import tiny_space

_CLI = (
    "import sys; from deft_tune.cli import main; rc = main(sys.argv[1:]); "
    "assert 'ray' not in sys.modules, 'Ray was imported'; sys.exit(rc)"
)


def refused(folder: Path, *search_args: str) -> str:
    """Run `deft-tune search` in ``folder``; assert one line, exit 2, Ray never imported and no
    search folder or default store written; returns the line."""
    before = set(folder.iterdir())
    done = subprocess.run(
        [sys.executable, "-c", _CLI, "search", *search_args],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    assert set(folder.iterdir()) == before, "the refused search wrote something"
    return lines[0]


def test_a_sqlite_file_that_is_not_an_mlflow_store_is_refused_and_left_unchanged(tmp_path):
    space = tiny_space(tmp_path / "tiny.yaml")
    foreign = tmp_path / "foreign.db"
    with closing(sqlite3.connect(foreign)) as db:
        db.execute("CREATE TABLE accounts (name TEXT)")
        db.commit()
    (tmp_path / "notes.db").write_text("not a database at all\n")
    for store in (foreign, tmp_path / "notes.db"):
        before = hashlib.sha256(store.read_bytes()).hexdigest()
        line = refused(tmp_path, "--space", str(space), "--tracking-uri", f"sqlite:///{store}")
        assert str(store) in line and "not an MLflow store" in line
        assert hashlib.sha256(store.read_bytes()).hexdigest() == before


def test_impossible_data_options_resources_and_unreachable_stores_are_refused_before_ray(
    tmp_path, monkeypatch
):
    space = tiny_space(tmp_path / "tiny.yaml")
    with_option = tmp_path / "zz.yaml"
    text = space.read_text().replace("data:\n  name: dsprites_full\n", "")
    with_option.write_text(text + "data:\n  name: dsprites_full\n  options:\n    zz: 1\n")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no metadata-server wait
    cases = {
        "data.options.zz": ["--space", str(with_option)],
        "--cpus-per-trial == 1e-09": ["--space", str(space), "--cpus-per-trial", "1e-9"],
        "this machine has": ["--space", str(space), "--cpus-per-trial", "1024"],
        "--cpus-per-trial == 100000.0, must lie in (0, 1024]": [
            "--space", str(space), "--cpus-per-trial", "100000"
        ],
        "GPUs: no trial could ever start": ["--space", str(space), "--gpus-per-trial", "100"],
        "--gpus-per-trial == 1e-05": ["--space", str(space), "--gpus-per-trial", "0.00001"],
        "nothing answers at 127.0.0.1:9": [
            "--space", str(space), "--tracking-uri", "http://127.0.0.1:9"
        ],
        "cannot reach it": [
            "--space", str(space),
            "--storage", "s3://deft-no-bucket/x?endpoint_override=127.0.0.1:9&scheme=http",
        ],
    }  # fmt: skip
    for expected, args in cases.items():
        assert expected in refused(tmp_path, *args), expected
