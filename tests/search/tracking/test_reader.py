"""Reading a tracking store changes nothing: a sqlite store is checked read-only before MLflow
sees it, and anything that is not a readable MLflow store is one line naming it, its bytes
unchanged and nothing created."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from deft_tune.cli import main
from deft_tune.errors import TrackingError
from deft_tune.search.tracking.reader import check_sqlite_store, list_searches, load_search
from deft_tune.search.tracking.writer import SearchTracking


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A small real MLflow store holding one search (a parent run and one trial run)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    tracking = SearchTracking(f"sqlite:///{path}", "kept")
    tracking.start_parent({"search_seed": 0}, {"search_space.yaml": "name: kept\n"})
    return path


def _damaged(store, tmp_path):
    data = store.read_bytes()
    flipped = bytearray(data)
    for i in range(100, len(flipped), 997):  # one bit in every 997th byte
        flipped[i] ^= 0x10
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text)")
        db.execute("INSERT INTO notes VALUES ('not mlflow')")
    db.close()
    cases = {
        "garbage": bytes(range(256)) * 32,
        "truncated": data[: len(data) // 2],
        "bit-flipped": bytes(flipped),
    }
    for name, content in cases.items():
        (tmp_path / f"{name}.db").write_bytes(content)
    return [tmp_path / f"{name}.db" for name in cases] + [other]


@pytest.mark.parametrize("command", [["inspect"], ["inspect", "kept"], ["export", "kept"]])
def test_stores_that_are_not_mlflow_are_refused_and_left_unchanged(
    store, tmp_path, capsys, command
):
    for path in _damaged(store, tmp_path):
        before = _sha(path)
        argv = [*command, "--tracking-uri", f"sqlite:///{path}"]
        if command[0] == "export":
            argv += ["--out", str(tmp_path / "best.yaml")]
        assert main(argv) == 2, path
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err, err
        assert _sha(path) == before, f"{path.name} was written to"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bit-flipped.db", "garbage.db", "notes.db", "truncated.db",
    ]  # fmt: skip


def test_a_missing_store_or_a_folder_is_refused_and_nothing_is_created(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    assert main(["inspect", "--tracking-uri", f"sqlite:///{missing}"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
    folder = tmp_path / "folder.db"
    folder.mkdir()
    assert main(["inspect", "--tracking-uri", f"sqlite:///{folder}"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_inspect_in_a_folder_without_a_store_creates_none(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["inspect"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "mlflow.db") in err
    assert list(tmp_path.iterdir()) == []


def test_reading_a_real_store_leaves_its_bytes_unchanged(store):
    before = _sha(store)
    uri = f"sqlite:///{store}"
    check_sqlite_store(uri)
    assert [s.experiment for s in list_searches(uri)] == ["kept"]
    assert load_search(uri, "kept").trials == ()
    assert _sha(store) == before


def test_other_uris_are_left_to_mlflow():
    check_sqlite_store("http://127.0.0.1:5000")
    with pytest.raises(TrackingError, match="in-memory"):
        check_sqlite_store("sqlite:///:memory:")
