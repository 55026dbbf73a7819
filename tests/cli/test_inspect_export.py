"""`deft-tune inspect` and `deft-tune export` on a real tiny search (local Ray, sqlite MLflow).

The trials of the session's recorded search (tests/conftest.py) train on a small dSprites grid
(the real renderer, 288 images) so that the exported config, trained again by `deft-tune train`
in this process on the same grid, must reproduce the trial exactly: every logged loss and the
final standard-setting score.
"""

from __future__ import annotations

import json

import pytest
import yaml
from PIL import Image

from deft_tune.cli import main
from deft_tune.config import load_config
from deft_tune.search.space import load_space


@pytest.fixture
def search(recorded_search):
    """The session's recorded tiny search (four trials, ASHA on, IFP stopper off, sqlite store)."""
    return recorded_search


def _cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_inspect_lists_the_search_with_counts_and_best(search, capsys):
    code, out, _ = _cli(capsys, "inspect", "--tracking-uri", search.uri, "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["search"] == "tinyx" and row["trials"] == 4
    assert row["best"] == pytest.approx(search.outcome.best_value)
    assert row["objective"] == "metrics/mig"


@pytest.mark.slow
def test_inspect_search_sorts_filters_and_writes_parquet_and_plots(search, capsys, tmp_path):
    code, out, _ = _cli(capsys, "inspect", "tinyx", "--tracking-uri", search.uri, "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4
    # Trials that ran to the end (standard setting) first, each group best first.
    settings = [r["setting"] for r in rows if r["objective"] is not None]
    assert settings == sorted(settings, key=lambda s: s != "standard")
    for setting in set(settings):
        group = [r["objective"] for r in rows if r["setting"] == setting]
        assert group == sorted(group, reverse=True)
    scores = [r["objective"] for r in rows if r["objective"] is not None]
    assert rows[0]["trial"] == search.outcome.best_trial_id
    assert all(r["stages"] in (2, 3) and len(r["betas"]) == r["stages"] for r in rows)

    code, out, _ = _cli(capsys, "inspect", "tinyx", "--tracking-uri", search.uri, "--top", "1")
    assert code == 0 and search.outcome.best_trial_id in out
    assert out.count("\n") == 3  # the header line, the column names, one trial

    threshold = scores[0]
    code, out, _ = _cli(
        capsys,
        "inspect",
        "tinyx",
        "--tracking-uri",
        search.uri,
        "--json",
        "--where",
        f"mig >= {threshold}",
    )
    kept = json.loads(out)
    assert kept[0]["trial"] == search.outcome.best_trial_id
    assert [r["trial"] for r in kept] == [
        r["trial"] for r in rows if r["objective"] is not None and r["objective"] >= threshold
    ]

    parquet, plots = tmp_path / "trials.parquet", tmp_path / "plots"
    code, _, _ = _cli(
        capsys,
        "inspect",
        "tinyx",
        "--tracking-uri",
        search.uri,
        "--parquet",
        str(parquet),
        "--plots",
        str(plots),
    )
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert code == 0 and table.num_rows == 4
    assert {"params.schedule.stages.0.beta", "metrics.metrics/mig"} <= set(table.column_names)
    names = sorted(p.name for p in plots.iterdir())
    assert names == [
        "information_per_group.png",
        "objective_over_trials.png",
        "objective_vs_params.png",
        "stop_reasons.png",
    ]
    for path in plots.iterdir():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (800, 500)


@pytest.mark.slow
def test_exported_config_reproduces_its_trial(search, capsys, tmp_path, small_dsprites):
    best = tmp_path / "best.yaml"
    code, out, _ = _cli(capsys, "export", "tinyx", "--tracking-uri", search.uri, "--out", str(best))
    assert code == 0 and "deft-tune train --config" in out
    header = [line for line in best.read_text().splitlines() if line.startswith("#")]
    assert any(search.outcome.best_trial_id in line and "run id" in line for line in header)
    assert any(line.startswith("# objective metrics/mig = ") for line in header)
    assert any("training.threads 1 (torch CPU threads" in line for line in header)
    config = load_config(best)
    assert config.training.steps == 40 and config.training.threads == 1  # cpus_per_trial 1

    code, _, _ = _cli(
        capsys, "train", "--config", str(best), "--out", str(tmp_path / "again"), "--no-progress"
    )
    assert code == 0
    history = (tmp_path / "again" / "history.jsonl").read_text().splitlines()
    retrained = {row["step"]: row["train/loss"] for row in map(json.loads, history)}

    from deft_tune.search.tracking.reader import load_search, metric_histories

    trial = next(
        t
        for t in load_search(search.uri, "tinyx").trials
        if t.trial_id == search.outcome.best_trial_id
    )
    logged = dict(metric_histories(search.uri, trial.run_id, ["train/loss"])["train/loss"])
    # The best trial ran to its end (the first trial of the search cannot be cut): its losses
    # at every report, and its final standard-setting MIG, come back exactly.
    assert trial.stop_reason == "completed" and len(logged) == 4
    assert {step: retrained[step] for step in logged} == logged
    results = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert results["metrics"]["mig"] == trial.metrics["final/mig"]


@pytest.mark.slow
def test_export_space_out_narrows_a_loadable_space(search, capsys, tmp_path):
    refined = tmp_path / "refined.yaml"
    code, _, _ = _cli(
        capsys,
        "export",
        "tinyx",
        "--tracking-uri",
        search.uri,
        "--space-out",
        str(refined),
        "--span",
        "2",
    )
    assert code == 0
    space = load_space(refined)
    original = yaml.safe_load(search.space.read_text())["params"]["beta_first"]
    beta = yaml.safe_load(refined.read_text())["params"]["beta_first"]
    if isinstance(beta, dict):
        assert original["low"] <= beta["low"] <= beta["high"] <= original["high"]
    assert space.name == "tinyx-refined"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "nosuch"], "no search named 'nosuch'"),
        (["inspect", "tinyx", "--metric", "sap"], "no trial logged metric 'sap'"),
        (["export", "tinyx", "--out", "x.yaml", "--metric", "dci"], "no trial logged metric 'dci'"),
        (["export", "tinyx", "--out", "x.yaml", "--seeds-robust"], "ran each schedule once"),
        (["inspect", "tinyx", "--where", "mig >> 1"], "--where"),
    ],
)
def test_bad_requests_get_one_line_and_exit_2(search, capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, *argv, "--tracking-uri", search.uri)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    if "nosuch" in argv:
        assert "known: tinyx" in err
    assert not (tmp_path / "x.yaml").exists()


def test_unreachable_tracking_server_names_the_uri(capsys):
    from deft_tune.search.tracking.server import free_port

    uri = f"http://127.0.0.1:{free_port()}"
    code, _, err = _cli(capsys, "inspect", "--tracking-uri", uri)
    assert code == 2 and err.count("\n") == 1 and uri in err, err


def test_search_without_finished_trials_says_so(tmp_path, capsys):
    from deft_tune.search.tracking.writer import SearchTracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = SearchTracking(uri, "empty")
    tracking.start_parent({"search_seed": 0}, {"search_space.yaml": "name: empty\n"})
    code, _, err = _cli(
        capsys, "export", "empty", "--tracking-uri", uri, "--out", str(tmp_path / "x.yaml")
    )
    assert code == 2 and "has no trials yet" in err


def test_inspect_shows_the_seed_of_every_replica_of_a_trial(tmp_path, capsys):
    from deft_tune.search.tracking.writer import SearchTracking, TrialRun

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = SearchTracking(uri, "seeded")
    space = "name: seeded\nobjective: {metric: metrics/mig}\n"
    parent = tracking.start_parent({"search_seed": 0}, {"search_space.yaml": space})
    for trial, seed, replicas, mig in (("t1", 12, 3, 0.4), ("t2", 2**63 - 2, 1, 0.2)):
        params = {"training": {"seed": seed, "replicas": replicas}}
        run = TrialRun.open(uri, tracking.experiment_id, parent, trial, params=params)
        run.log_metrics({"metrics/mig": mig, "train/loss": 1.0}, step=10)
        run.end()
    code, out, err = _cli(capsys, "inspect", "seeded", "--tracking-uri", uri, "--json")
    assert code == 0, err
    # Replica r trains with training.seed + r; the largest seed is shown exactly.
    assert [(r["trial"], r["seeds"]) for r in json.loads(out)] == [
        ("t1", [12, 13, 14]),
        ("t2", [2**63 - 2]),
    ]
    code, out, _ = _cli(capsys, "inspect", "seeded", "--tracking-uri", uri)
    header, first = out.splitlines()[1:3]
    assert header.split()[:2] == ["trial", "seeds"] and first.startswith("t1     [12, 13, 14]")


@pytest.mark.slow
def test_inspect_and_export_leave_the_store_unchanged(search, capsys, tmp_path):
    import hashlib

    store = search.folder / "mlflow.db"
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    for argv in (
        ["inspect"],
        ["inspect", "tinyx", "--json"],
        ["export", "tinyx", "--out", str(tmp_path / "b.yaml")],
        ["export", "tinyx", "--space-out", str(tmp_path / "s.yaml")],
    ):
        code, _, err = _cli(capsys, *argv, "--tracking-uri", search.uri)
        assert code == 0, (argv, err)
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before


def test_output_paths_in_the_way_are_refused_before_the_store_is_read(tmp_path, capsys):
    folder, a_file = tmp_path / "x.parquet", tmp_path / "a_file"
    folder.mkdir()
    a_file.write_text("x")
    for argv, flag in (
        (["inspect", "s", "--parquet", str(folder)], "--parquet"),
        (["inspect", "s", "--plots", str(a_file)], "--plots"),
        (["export", "s", "--out", str(folder)], "--out"),
        (["export", "s", "--space-out", str(a_file / "s.yaml")], "--space-out"),
    ):
        code, _, err = _cli(capsys, *argv, "--tracking-uri", f"sqlite:///{tmp_path / 'no.db'}")
        assert code == 2 and err.count("\n") == 1 and flag in err, (argv, err)


def test_export_span_is_how_many_best_trials_the_narrowed_space_spans(tmp_path, capsys):
    from deft_tune.cli import build_parser

    store = ["--tracking-uri", f"sqlite:///{tmp_path / 'no.db'}"]
    space = ["--space-out", str(tmp_path / "s.yaml")]
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    help_text = capsys.readouterr().out
    assert "--span K" in help_text and "--top" not in help_text  # the old name is hidden
    for argv, message in (
        ([*space, "--span", "0"], "--span == 0, must be >= 1"),
        (
            ["--out", str(tmp_path / "b.yaml"), "--span", "3"],
            "add --space-out FILE, or drop --span",
        ),
    ):
        code, _, err = _cli(capsys, "export", "s", *argv, *store)
        assert code == 2 and err.count("\n") == 1 and message in err, err
    # The old spelling works for one release: the same value, one warning line first.
    code, _, err = _cli(capsys, "export", "s", *space, "--top", "0", *store)
    warning, error = err.splitlines()
    assert code == 2 and error.endswith(
        "--span == 0, must be >= 1 (the best trials to narrow around)"
    )
    assert (
        warning == "deft-tune export: warning: --top is now --span; --top goes in the next release"
    )
    assert build_parser().parse_args(["export", "s", *space, "--top", "3"]).span == 3
    assert build_parser().parse_args(["export", "s", *space]).span is None  # SPAN, 5, applies
    assert not (tmp_path / "s.yaml").exists() and not (tmp_path / "no.db").exists()


def test_export_refuses_to_overwrite_a_file_unless_forced(tmp_path, capsys):
    mine = tmp_path / "mine.yaml"
    mine.write_text("my own notes\n")
    store = ["--tracking-uri", f"sqlite:///{tmp_path / 'no.db'}"]
    for flag in ("--out", "--space-out"):
        code, _, err = _cli(capsys, "export", "s", flag, str(mine), *store)
        assert code == 2 and err.count("\n") == 1, err
        assert f"{flag} {mine} exists: pass --force to replace it" in err
        code, _, err = _cli(capsys, "export", "s", flag, str(mine), "--force", *store)
        assert code == 2 and "exists" not in err  # past the check: the store is read next
    assert mine.read_text() == "my own notes\n"


@pytest.mark.slow
def test_space_out_after_a_smoke_test_search_is_a_valid_space(ray_session, tmp_path, capsys):
    from deft_tune.search.options import SearchOptions
    from deft_tune.search.runner import run_search
    from tests.doubles import SmallGridDSprites, tiny_space

    space = tiny_space(tmp_path / "smoke.yaml", steps=400, interval=100, ifp=False, name="smoke")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = SearchOptions(
        space=str(space), storage=str(tmp_path / "runs"), tracking_uri=uri, smoke_test=True
    )
    outcome = run_search(options, data_factory=SmallGridDSprites(str(tmp_path / "c")), out=print)
    assert outcome.trials == 2
    # The live table as Tune drives it: no ETA before a trial has ended, then one; 2/2 at the end.
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    shown = [(r[i], r[i + 1]) for r in rows for i, t in enumerate(r) if t in ("0/2", "1/2", "2/2")]
    first_end = [ended for ended, _ in shown].index("1/2")
    assert first_end > 0 and {eta for _, eta in shown[:first_end]} == {"—"}, shown
    assert "—" not in {eta for _, eta in shown[first_end:]} and shown[-1] == ("2/2", "0s"), shown
    refined = tmp_path / "refined.yaml"
    argv = ["export", "smoke", "--tracking-uri", uri, "--space-out", str(refined)]
    code, _, err = _cli(capsys, *argv)
    assert code == 0, err
    loaded = load_space(refined)  # the space as run: the smoke budget its trials had
    assert loaded.budget.steps_per_trial == 40 and loaded.budget.num_trials == 2
    frac = yaml.safe_load(refined.read_text())["params"]["stage_frac"]
    assert not isinstance(frac, dict) or 0.2 <= frac["low"] <= frac["high"] <= 0.4


def test_an_exported_config_names_the_paths_it_carries():
    from deft_tune.cli.export import carried_paths
    from deft_tune.config import RunConfig

    plain = RunConfig.from_dict({"data": {"name": "dsprites_full"}})
    assert carried_paths(plain) == ""
    pathy = RunConfig.from_dict(
        {"data": {"name": "dsprites_full", "options": {"cache_dir": "/shared/cache"}}}
    )
    assert "data.options.cache_dir = /shared/cache" in carried_paths(pathy)
