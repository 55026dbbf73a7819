"""`deft-tune replay` end to end on the synthetic bank: the tables, the figure, the MLflow run,
the doc block, the sweep, determinism, and one-line refusals of bad input before any work."""

from __future__ import annotations

import dataclasses
import shlex

import numpy as np
import pytest

from deft_tune.cli import main
from deft_tune.search.replay.command import replay_bank
from deft_tune.search.replay.options import ReplayOptions, parse_sweep
from tests.search.replay.conftest import BANK, FINAL, with_costs

REGRET_IFP = FINAL["t0"] - FINAL["t1"]  # the no_capture trial was the best schedule


def test_the_command_prints_plots_logs_and_writes_its_block(bank_store, tmp_path, capsys):
    from mlflow import MlflowClient
    from PIL import Image

    doc = tmp_path / "docs" / "search.md"
    doc.parent.mkdir()
    doc.write_text("# Search\n\n<!-- stopper-replay:begin -->\nnot yet measured\n"
                   "<!-- stopper-replay:end -->\n\nafter\n")  # fmt: skip
    out = tmp_path / "docs" / "replay"
    argv = ["replay", BANK, "--tracking-uri", bank_store.uri, "--replays", "30",
            "--concurrency", "2", "--out", str(out), "--write-doc", str(doc)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "rules (median [95% interval] over replays):" in printed
    assert "ifp+asha" in printed and "12.5 [12.5, 12.5]" in printed  # ifp's savings, every order
    with Image.open(out / "anytime.png") as image:
        assert image.size == (800, 500)
    text = doc.read_text()
    assert "not yet measured" not in text and text.endswith("after\n")
    assert "](replay/anytime.png)" in text and "deft-tune replay bank --rules" in text
    assert (out / "replay.md").read_text().count("| rule |") == 1
    client = MlflowClient(bank_store.uri)
    experiment = client.get_experiment_by_name(f"{BANK}-replay")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["deft.role"] == "replay"
    assert run.data.tags["deft.bank_run_id"] == bank_store.parent
    assert run.data.params["replays"] == "30" and run.data.params["concurrency"] == "2"
    metrics = run.data.metrics
    assert metrics["ifp/savings_median"] == pytest.approx(0.125)
    assert metrics["ifp/regret_median"] == pytest.approx(REGRET_IFP)
    assert metrics["none/regret_median"] == pytest.approx(0.0)
    assert "ifp_asha/trial_steps_median" in metrics and "bank/f_ratio" in metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"anytime.png", "replay.md"}


def _options(**changes):
    return dataclasses.replace(ReplayOptions(BANK, replays=20, seed=3, concurrency=2), **changes)


def _decisions(result):
    return {rule: [(r.order, r.outcomes) for r in runs] for rule, runs in result.runs.items()}


def test_a_seed_gives_the_same_replays(bank):
    first, again = replay_bank(bank, _options()), replay_bank(bank, _options())
    assert _decisions(first) == _decisions(again) and first.summaries == again.summaries
    other = replay_bank(bank, _options(seed=4))
    assert first.orders != other.orders


def test_ifp_decisions_do_not_depend_on_the_order_but_ashas_do(bank):
    result = replay_bank(with_costs(bank, [10.0, 10.0, 10.0, 10.0], 5.0), _options(replays=40))
    ifp = result.runs["ifp"]
    assert {r.trial_steps for r in ifp} == {1400} and {r.regret for r in ifp} == {REGRET_IFP}
    assert len({r.trial_steps for r in result.runs["asha"]}) > 1
    assert {r.trial_steps for r in result.runs["none"]} == {1600}


def test_a_sweep_writes_its_table_and_frontier(bank_store, tmp_path, capsys):
    argv = [
        "replay",
        BANK,
        "--tracking-uri",
        bank_store.uri,
        "--replays",
        "10",
        "--rules",
        "ifp",
        "--sweep",
        "stopping.ifp.no_capture=true,false",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "sweep of stopping.ifp.no_capture:" in printed
    assert "--sweep stopping.ifp.no_capture=true,false" in printed
    assert (tmp_path / "sweep.png").is_file()
    assert "| false | ifp | 0 [0, 0] |" in (tmp_path / "replay.md").read_text()


def test_each_rules_anytime_curve_ends_where_the_rule_stopped_spending(bank):
    from deft_tune.search.replay.figure import anytime_figure

    result = replay_bank(with_costs(bank, [10.0, 10.0, 10.0, 10.0], 5.0), _options(replays=10))
    ax = anytime_figure(result).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    for rule in ("none", "ifp"):  # ifp spends 1400 trial-steps in every order, none 1600
        xs, ys = lines[rule].get_data()
        drawn = np.asarray(xs)[~np.isnan(np.asarray(ys, dtype=float))]
        assert drawn.max() <= max(r.trial_steps for r in result.runs[rule])
    assert len({(line.get_linestyle(), line.get_linewidth()) for line in lines.values()}) == len(
        lines
    )  # coinciding rules stay visible


def test_a_sweep_traces_savings_against_regret(bank):
    sweep = parse_sweep("stopping.ifp.no_capture=true,false")
    result = replay_bank(bank, _options(rules=("none", "ifp"), sweep=sweep))
    points = {(p.value, p.summary.rule): p.summary for p in result.sweep}
    assert set(points) == {(True, "ifp"), (False, "ifp")}  # the IFP rules only
    assert points[True, "ifp"].savings.median == pytest.approx(0.125)
    assert points[True, "ifp"].regret.median == pytest.approx(REGRET_IFP)
    assert points[False, "ifp"].savings.median == 0.0  # no rule left that stops t0
    assert points[False, "ifp"].regret.median == pytest.approx(0.0)
    assert result.sweep_field == "stopping.ifp.no_capture"


def test_a_swept_value_is_set_as_a_space_file_would_set_it(bank):
    from deft_tune.search.replay.rules import make_judge, with_ifp_field

    space = with_ifp_field(bank.raw_space, "patience", 3, bank.budget)
    assert space.stopping.ifp.patience == 3 and space.budget == bank.space.budget
    judge = make_judge(space, "ifp+asha")
    assert judge.stopper.config.patience == 3 and judge.scheduler is not None
    assert make_judge(space, "none").stopper is None and make_judge(space, "none").scheduler is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rules", "none,fast"], "--rules == 'fast', must be one of ['none', 'ifp', 'asha'"),
        (["--rules", ","], "--rules == ',', must name at least one of"),
        (["--concurrency", "0"], "--concurrency == 0, must lie in [1, 100000]"),
        (["--replays", "0"], "--replays == 0, must lie in [1, 10000]"),
        (["--sweep", "stopping.ifp.nope=1"], "--sweep field == 'nope', must be one of"),
        (["--sweep", "diffusion_threshold=0.5"], "is not 'stopping.ifp.FIELD=v1,v2,...'"),
        (["--sweep", "stopping.ifp.diffusion_threshold=0.5,2"],
         "--sweep: stopping.ifp.diffusion_threshold == 2.0, must lie in [0, 1]"),
        (["--sweep", "stopping.ifp.patience=1.5"], "stopping.ifp.patience == 1.5"),
        (["--rules", "asha", "--sweep", "stopping.ifp.patience=1,2"],
         "needs a rule with the IFP stopper in --rules"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, flags, message):
    store = tmp_path / "untouched.db"
    argv = ["replay", BANK, "--tracking-uri", f"sqlite:///{store}", "--out", str(tmp_path / "o")]
    assert main([*argv, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not store.exists() and not (tmp_path / "o").exists()  # nothing read, nothing written


def test_write_doc_on_a_document_without_the_block_is_refused_before_any_work(tmp_path, capsys):
    store, doc = tmp_path / "untouched.db", tmp_path / "README.md"
    doc.write_text("# My notes\n\nno markers here\n")
    argv = ["replay", BANK, "--tracking-uri", f"sqlite:///{store}", "--out", str(tmp_path / "o"),
            "--write-doc", str(doc)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"--write-doc {doc} has no stopper-replay block: add the lines" in err
    assert doc.read_text() == "# My notes\n\nno markers here\n"
    assert not store.exists() and not (tmp_path / "o").exists()


def test_a_bank_that_cannot_be_replayed_is_one_line(bank_store, tmp_path, capsys):
    argv = ["replay", "stopped-bank", "--tracking-uri", bank_store.uri, "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot be replayed: 1 trial: t1 (asha)" in err and err.count("\n") == 1


def test_the_command_a_stopped_bank_suggests_runs_as_printed(tmp_path, capsys):
    from deft_tune.cli import build_parser
    from deft_tune.cli.search import options_from_args
    from deft_tune.search.options import prepare_space
    from deft_tune.search.tracking.writer import SearchTracking
    from tests.doubles import tiny_space
    from tests.search.replay.conftest import SPECS, write_trial

    space = tiny_space(tmp_path / "my space.yaml", name="stopped")  # a path to quote
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    search = SearchTracking(uri, "stopped")
    search.start_parent({"space_file": str(space)}, {"search_space.yaml": space.read_text()})
    for trial_id, spec in SPECS.items():
        write_trial(search, trial_id, spec, final=True)
        search.finish_trial(trial_id, "KILLED" if trial_id == "t1" else "FINISHED", "asha")
    search.finish_parent()
    assert main(["replay", "stopped", "--tracking-uri", uri, "--out", str(tmp_path / "o")]) == 2
    command = capsys.readouterr().err.strip().rsplit("record the bank with every stopper off: ")[1]
    argv = shlex.split(command)
    assert argv[:2] == ["deft-tune", "search"]
    options = options_from_args(build_parser().parse_args(argv[1:]))
    ready = prepare_space(options)  # what the search checks before Ray: all of it passes
    assert ready.name == "stopped-bank"
    assert not ready.stopping.ifp.enabled and not ready.stopping.asha.enabled
