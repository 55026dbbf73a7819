import logging
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from deft_tune.data import cache
from deft_tune.data.cache import CorruptCacheError
from deft_tune.errors import ConfigError


def _table(rows: np.ndarray, tag: str = "t") -> pa.Table:
    table = pa.table({"image": cache.uint8_rows_array(rows), "k": pa.array(np.arange(len(rows)))})
    return table.replace_schema_metadata({"tag": tag})


@pytest.fixture
def rows():
    return np.random.default_rng(0).integers(0, 256, size=(50, 16), dtype=np.uint8)


def test_cache_dir_argument_beats_env_var_beats_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DEFT_TUNE_CACHE", str(tmp_path / "env"))
    assert cache.resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert cache.resolve_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("DEFT_TUNE_CACHE")
    assert cache.resolve_cache_dir().name == "deft-tune"


def test_round_trip_is_memory_mapped_and_read_only(tmp_path, rows):
    path = cache.write_table(tmp_path / "sub" / "t.arrow", _table(rows))
    table = cache.read_table(path, _table(rows).schema, len(rows))
    images = cache.fixed_rows(table, "image")
    assert images.shape == rows.shape and (images == rows).all()
    assert not images.flags.writeable  # a view of the mapped file, not a copy
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left


def test_fixed_rows_views_the_numpy_rows_without_copying(rows):
    table = _table(rows)
    assert np.shares_memory(cache.fixed_rows(table, "image"), rows)
    with pytest.raises(ValueError, match="fixed_size_list<uint8>"):
        cache.fixed_rows(table, "k")


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: b"not an arrow file at all" * 10,
        lambda data: b"",
    ],
    ids=["truncated", "not-arrow", "empty"],
)
def test_damaged_files_are_reported_as_corrupt(tmp_path, rows, damage):
    path = cache.write_table(tmp_path / "t.arrow", _table(rows))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptCacheError, match="t.arrow"):
        cache.read_table(path)


def test_wrong_layout_is_reported_as_corrupt(tmp_path, rows):
    path = cache.write_table(tmp_path / "t.arrow", _table(rows))
    with pytest.raises(CorruptCacheError, match="rows"):
        cache.read_table(path, _table(rows).schema, len(rows) + 1)
    with pytest.raises(CorruptCacheError, match="schema"):
        cache.read_table(path, _table(rows, tag="other").schema, len(rows))
    with pytest.raises(FileNotFoundError):
        cache.read_table(tmp_path / "missing.arrow")


def test_load_or_build_builds_once_then_reads(tmp_path, rows):
    calls = []

    def build():
        calls.append(1)
        return _table(rows)

    schema, path = _table(rows).schema, tmp_path / "t.arrow"
    first = cache.load_or_build(path, build, schema, len(rows))
    second = cache.load_or_build(path, build, schema, len(rows))
    assert len(calls) == 1
    assert (cache.fixed_rows(first, "image") == cache.fixed_rows(second, "image")).all()


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path, rows, caplog):
    path = cache.write_table(tmp_path / "t.arrow", _table(rows))
    path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="deft_tune.data.cache"):
        table = cache.load_or_build(path, lambda: _table(rows), _table(rows).schema, len(rows))
    assert f"cache file {path} is corrupt; re-rendering" in caplog.text
    assert (cache.fixed_rows(table, "image") == rows).all()


def test_build_with_the_wrong_layout_is_a_bug_not_a_cache(tmp_path, rows):
    with pytest.raises(ValueError, match="expected"):
        cache.load_or_build(
            tmp_path / "t.arrow", lambda: _table(rows[:3]), _table(rows).schema, len(rows)
        )
    assert not (tmp_path / "t.arrow").exists()


def test_failed_write_leaves_neither_temp_nor_target(tmp_path, rows, monkeypatch):
    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        cache.write_table(tmp_path / "t.arrow", _table(rows))
    assert list(tmp_path.iterdir()) == []


def _write_many(path: str, value: int) -> None:
    rows = np.full((20000, 64), value, dtype=np.uint8)  # 1.3 MB: a write takes a while
    table = pa.table({"image": cache.uint8_rows_array(rows)})
    for _ in range(20):
        cache.write_table(path, table)


def test_concurrent_writers_never_leave_a_torn_file(tmp_path):
    # Two real processes (forked: no second import of torch) race to replace the same file
    # while this one keeps reading it.
    path = tmp_path / "shared.arrow"
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_many, args=(str(path), v)) for v in (1, 2)]
    for writer in writers:
        writer.start()
    reads = 0
    while any(w.is_alive() for w in writers) or reads == 0:
        try:
            table = cache.read_table(path, num_rows=20000)
        except FileNotFoundError:
            time.sleep(0.001)
            continue
        images = cache.fixed_rows(table, "image")
        assert images[0, 0] in (1, 2) and (images == images[0, 0]).all()  # one writer's file
        reads += 1
    for writer in writers:
        writer.join()
    assert [w.exitcode for w in writers] == [0, 0]
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["shared.arrow"]


def test_a_folder_where_the_cache_file_goes_is_refused_before_rendering(tmp_path, rows):
    path = tmp_path / "t.arrow"
    path.mkdir()

    def build():
        raise AssertionError("rendered although the cache file cannot be written")

    with pytest.raises(ConfigError, match="data cache file .*t.arrow is a folder: remove"):
        cache.load_or_build(path, build, _table(rows).schema, len(rows))


def test_a_file_where_the_cache_folder_goes_is_refused_naming_the_setting(tmp_path, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="cache_dir .*a_file is a file"):
        cache.resolve_cache_dir(a_file)
    monkeypatch.setenv("DEFT_TUNE_CACHE", str(a_file / "below"))
    with pytest.raises(ConfigError, match=r"\$DEFT_TUNE_CACHE .*a_file is a file, not a folder"):
        cache.resolve_cache_dir()


def test_relative_data_paths_of_a_run_config_lie_in_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFT_TUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    resolved = cache.resolve_option_paths(
        {"cache_dir": "mine", "path": "~/data.npz", "correlation": 0.5}
    )
    assert resolved == {
        "cache_dir": tmp_path / "cache" / "mine",
        "path": tmp_path / "home" / "data.npz",
        "correlation": 0.5,
    }
    assert cache.resolve_option_paths({"path": str(tmp_path / "x")}) == {"path": tmp_path / "x"}


def test_a_run_config_means_the_same_data_from_any_folder(small_dsprites, tmp_path, monkeypatch):
    from deft_tune.data import run_dataset

    for folder in (tmp_path, tmp_path / "elsewhere"):
        folder.mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        data = run_dataset("dsprites_full", {"cache_dir": "mine"})
        assert data.cache_dir == small_dsprites / "mine"
