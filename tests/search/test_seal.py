"""The seal of a search folder: `search --resume` refuses any file Ray would unpickle that
deft-tune did not seal, before Ray starts, and runs none of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from deft_tune.errors import ConfigError
from deft_tune.search.seal import SEAL_FILE, key_path, seal, verify
from tests import REPO, scaled
from tests.doubles import tiny_space, write_code_running_pickle


def _search_folder(root):
    """The top of a Tune experiment folder as a finished search leaves it."""
    folder = root / "runs" / "tiny"
    trial = folder / "train_trial_0001"
    trial.mkdir(parents=True)
    (folder / "deft_search.json").write_text(json.dumps({"parent_run_id": "x"}))
    (folder / "tuner.pkl").write_bytes(b"\x80\x05N.")  # pickle of None
    (folder / "searcher-state-1.pkl").write_bytes(b"\x80\x05N.")
    (folder / "experiment_state-1.json").write_text("{}")
    (trial / "params.pkl").write_bytes(b"\x80\x05N.")
    (trial / "result.json").write_text("{}")
    return folder


def test_a_sealed_folder_verifies_and_any_changed_added_or_removed_file_is_refused(tmp_path):
    folder = _search_folder(tmp_path)
    seal(str(folder))
    verify(str(folder))
    assert oct(key_path().stat().st_mode & 0o777) == "0o600"
    (folder / "train_trial_0001" / "result.json").write_text('{"appended": 1}')
    verify(str(folder))  # a trial's results are JSON, never unpickled: not sealed
    marker = tmp_path / "ran"
    tampering = {
        "tuner.pkl": lambda: write_code_running_pickle(folder / "tuner.pkl", marker),
        "searcher-state-2.pkl": lambda: (folder / "searcher-state-2.pkl").write_bytes(b"x"),
        "train_trial_0001/params.pkl": lambda: (folder / "train_trial_0001/params.pkl").unlink(),
        "deft_search.json": lambda: (folder / "deft_search.json").write_text("{}"),
    }
    for name, tamper in tampering.items():
        seal(str(folder))
        tamper()
        with pytest.raises(ConfigError, match="changed since deft-tune sealed") as refused:
            verify(str(folder))
        assert name in str(refused.value)
    assert not marker.exists()


def test_an_unsealed_folder_a_foreign_key_or_a_folder_writable_by_all_is_refused(tmp_path):
    folder = _search_folder(tmp_path)
    with pytest.raises(ConfigError, match="has no seal of yours"):
        verify(str(folder))
    seal(str(folder))
    (folder / SEAL_FILE).write_text("not json")
    with pytest.raises(ConfigError, match="has no seal of yours"):
        verify(str(folder))
    seal(str(folder))
    key_path().write_bytes(os.urandom(32))  # a seal made with another key is forged
    with pytest.raises(ConfigError, match="changed since"):
        verify(str(folder))
    seal(str(folder))
    (folder / "train_trial_0001").chmod(0o777)
    with pytest.raises(ConfigError, match="writable by all"):
        verify(str(folder))


def test_resume_from_a_crafted_tuner_pickle_is_one_line_before_ray_and_runs_no_code(tmp_path):
    space = tiny_space(tmp_path / "tiny.yaml")
    folder = _search_folder(tmp_path)
    marker = tmp_path / "ran"
    write_code_running_pickle(folder / "tuner.pkl", marker)
    write_code_running_pickle(folder / "searcher-state-1.pkl", marker)
    script = (
        "import sys; from deft_tune.cli import main; rc = main(sys.argv[1:]); "
        "assert 'ray' not in sys.modules; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "search", "--space", str(space), "--storage", "runs"]
        + ["--resume"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "has no seal of yours" in done.stderr
    assert not marker.exists()
