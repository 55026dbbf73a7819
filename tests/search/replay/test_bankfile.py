"""Curve bank files: a recorded search exported to Parquet replays exactly as the search read
from MLflow; parts of one space merge, anything else is refused in one line."""

from __future__ import annotations

import dataclasses
import json

import pyarrow.parquet as pq
import pytest

from deft_tune.cli import main
from deft_tune.search.replay.bank import load_bank
from deft_tune.search.replay.bankfile import SCHEMA_VERSION, read_banks
from deft_tune.search.replay.command import replay_bank
from deft_tune.search.replay.options import ReplayOptions
from deft_tune.search.replay.render import markdown
from tests.search.replay.conftest import BANK, REPLICAS, SPECS, bank_space, write_search

OPTIONS = dict(replays=20, seed=3, log_mlflow=False)


def _export(store, out, *experiments, force=False):
    argv = ["bank", "export", *experiments, "--out", str(out), "--tracking-uri", store.uri]
    return main(argv + (["--force"] if force else []))


@pytest.fixture(scope="module")
def exported(bank_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("bankfile") / "bank.parquet"
    assert _export(bank_store, out, BANK) == 0
    return out


def test_an_experiment_and_its_export_replay_to_identical_tables(bank_store, exported):
    from_store = load_bank(bank_store.uri, BANK)
    from_file = read_banks([exported])
    assert from_file.trials == from_store.trials
    assert (from_file.experiment, from_file.parent_run_id) == (BANK, bank_store.parent)
    live = replay_bank(from_store, ReplayOptions(BANK, **OPTIONS))
    replayed = replay_bank(from_file, ReplayOptions(None, banks=(str(exported),), **OPTIONS))
    assert replayed.command.startswith(f"deft-tune replay --bank {exported} --rules")
    assert markdown(dataclasses.replace(replayed, command=live.command)) == markdown(live)


def test_the_file_is_one_row_per_trial_replica_and_report_with_its_metadata(exported):
    table = pq.read_table(exported)
    reports = len(SPECS["t0"].fast) + 1  # four reports and the final one
    assert table.num_rows == len(SPECS) * reports * (REPLICAS + 1)
    meta = json.loads(table.schema.metadata[b"deft_tune.bank"])
    assert meta["schema_version"] == SCHEMA_VERSION and meta["space"]["name"] == BANK
    (part,) = meta["parts"]
    assert part["search_seed"] == 0 and part["trials"] == len(SPECS)
    assert {"info/diffusion", "kl/group0", "metrics/mig"} <= set(meta["signals"])
    rows = table.filter(table["final"]).to_pylist()
    t0 = {row["replica"]: row["final/mig"] for row in rows if row["trial_id"] == "t0"}
    assert t0 == {-1: sum(SPECS["t0"].finals) / REPLICAS, 0: 0.4, 1: 0.5, 2: 0.6}


def test_parts_with_other_seeds_merge_into_one_bank(bank_store, exported, tmp_path):
    space = bank_space(BANK)
    space["budget"] = {**space["budget"], "seed": 7, "num_trials": 2}
    # Recorded later, under other stopper defaults: they set up the merged bank's rules.
    space["stopping"] = {**space["stopping"], "ifp": {"enabled": False, "patience": 3}}
    write_search(bank_store.uri, "bank-part7", {"t0": SPECS["t1"], "t1": SPECS["t2"]}, space=space)
    both = tmp_path / "both.parquet"
    assert _export(bank_store, both, BANK, "bank-part7") == 0
    merged = read_banks([both])
    assert [p.search_seed for p in merged.parts] == [0, 7] and merged.experiment == BANK
    assert merged.space.stopping.ifp.patience == 3
    assert [t.trial_id for t in merged.trials][-2:] == ["part1/t0", "part1/t1"]
    assert len(merged.trials) == len(SPECS) + 2
    # The same merge from two files, and a file of a merged bank, read back alike.
    single = tmp_path / "part7.parquet"
    assert _export(bank_store, single, "bank-part7") == 0
    assert read_banks([exported, single]).trials == merged.trials
    result = replay_bank(merged, ReplayOptions(None, banks=(str(both),), **OPTIONS))
    assert {r.trial_steps for r in result.runs["none"]} == {len(merged.trials) * 400}


def test_parts_that_differ_or_share_a_seed_are_refused(bank_store, exported, tmp_path, capsys):
    space = bank_space("longer")
    space["budget"] = {**space["budget"], "seed": 8, "max_concurrent": 3}
    write_search(bank_store.uri, "longer", {"t0": SPECS["t0"]}, space=space)
    out = tmp_path / "x.parquet"
    assert _export(bank_store, out, BANK, "longer") == 2
    assert "budget.max_concurrent (2 != 3)" in capsys.readouterr().err and not out.exists()
    assert main(["replay", "--bank", str(exported), str(exported)]) == 2
    assert "same search seed 0" in capsys.readouterr().err


def test_bad_bank_files_are_one_line(exported, tmp_path, capsys):
    text = tmp_path / "text.parquet"
    text.write_text("not parquet")
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(exported.read_bytes()[:300])
    other = tmp_path / "other.parquet"
    table = pq.read_table(exported)
    meta = json.loads(table.schema.metadata[b"deft_tune.bank"])
    encoded = json.dumps({**meta, "schema_version": 99})
    pq.write_table(table.replace_schema_metadata({b"deft_tune.bank": encoded}), other)
    for path, message in (
        (text, "not a readable Parquet"),
        (cut, "not a readable Parquet"),
        (other, "schema version 99"),
        (tmp_path / "none.parquet", "does not"),
    ):
        assert main(["replay", "--bank", str(path), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert main(["replay", "--out", str(tmp_path / "o")]) == 2  # neither source
    assert "exactly one source" in capsys.readouterr().err


def test_export_refuses_to_replace_a_file_unless_forced(bank_store, exported, capsys):
    before = exported.read_bytes()
    assert _export(bank_store, exported, BANK) == 2
    assert "--force" in capsys.readouterr().err and exported.read_bytes() == before
    assert _export(bank_store, exported, BANK, force=True) == 0
    assert dataclasses.asdict(read_banks([exported]).parts[0])["parent_run_id"] == bank_store.parent
