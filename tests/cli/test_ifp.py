"""`deft-tune ifp`: a short real annealing test on dSprites positions, and --suggest."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deft_tune.cli import main
from deft_tune.config import load_config


def write_table(folder, ifps, dataset="dsprites_full"):
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(f, i, v) for f, vs in ifps.items() for i, v in enumerate(vs)]
    pq.write_table(
        pa.table(
            {
                "dataset": [dataset] * len(rows),
                "factor": [r[0] for r in rows],
                "draw": [r[1] for r in rows],
                "seed": [0] * len(rows),
                "ifp": [r[2] for r in rows],
                "ifp_step": [0] * len(rows),
                "steps": [100] * len(rows),
                "final_kl": [1.0] * len(rows),
            }
        ),
        folder / "ifp.parquet",
    )


def test_suggest_prints_a_config_train_accepts(tmp_path, capsys):
    write_table(tmp_path / "ifp", {"pos_x": [50.0], "scale": [14.0], "shape": [3.5]})
    out = tmp_path / "suggested.yaml"
    assert (
        main(
            [
                "ifp",
                "--suggest",
                str(tmp_path / "ifp"),
                "--training-steps",
                "3000",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert printed == out.read_text()
    assert "# Stage 0: beta 26.5 -> expected to capture pos_x" in printed
    config = load_config(out)
    betas = [s.beta for s in config.schedule.stages]
    assert betas == [26.458, 7.0, 1.0]  # sqrt(50*14), sqrt(14*3.5), 1 (rounded to 3 places)
    assert config.model.groups == 3 and config.training.steps == 3000


def test_suggest_without_a_table_is_one_line_exit_2(tmp_path, capsys):
    assert main(["ifp", "--suggest", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deft-tune: error: no IFP table") and err.count("\n") == 1


def test_the_data_set_is_named_as_data_show_names_it_or_suggest_is_given(tmp_path, capsys):
    out = ["--out", str(tmp_path / "o")]
    for argv, message in (
        (["ifp"], "give a data set: deft-tune ifp NAME [options] runs the annealing test"),
        (["ifp", "--factors", "shape", "dsprites_full"], "is read as a factor: put NAME first"),
        (["ifp", "dsprites_full", "--suggest", str(tmp_path)], "or --suggest DIR (print the"),
        (["ifp", "dsprites_full", "--dataset", "cars"], "two data sets, dsprites_full and"),
        # The name reaches the data sets, positional or as the old --dataset (kept, hidden).
        (["ifp", "no_such_set", *out], "unknown data set 'no_such_set'; known: dsprites_full"),
        (["ifp", "--dataset", "no_such_set", *out], "unknown data set 'no_such_set'; known:"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
    with pytest.raises(SystemExit):
        main(["ifp", "--help"])
    usage = capsys.readouterr().out
    assert usage.startswith("usage: deft-tune ifp NAME [options] ")
    assert "deft-tune ifp --suggest DIR [options]" in usage and "--dataset" not in usage
    assert not (tmp_path / "o").exists()


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["ifp", "dsprites_full", "--draws", "0", "--out", str(tmp_path)]) == 2
    assert "draws == 0" in capsys.readouterr().err
    assert main(["ifp", "dsprites_full", "--steps", "0"]) == 2
    assert "annealing steps == 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_short_real_annealing_test_on_dsprites_positions(tmp_path, capsys):
    out = tmp_path / "ifp"
    code = main(
        [
            "ifp",
            "dsprites_full",
            "--factors",
            "pos_x",
            "--draws",
            "1",
            "--steps",
            "200",
            "--width",
            "8",
            "--batch-size",
            "32",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = pq.read_table(out / "ifp.parquet").to_pylist()
    assert len(rows) == 1 and rows[0]["factor"] == "pos_x"
    assert math.isfinite(rows[0]["ifp"]) and 1.0 < rows[0]["ifp"] < 71.0
    assert rows[0]["final_kl"] > 0.1
    assert (out / "ifp.png").read_bytes()[:4] == b"\x89PNG"
    assert "pos_x: IFP median" in capsys.readouterr().out


@pytest.mark.slow
def test_unsupervised_smoke_run_writes_latents_table(tmp_path, capsys):
    out = tmp_path / "u"
    assert (
        main(
            [
                "ifp",
                "dsprites_full",
                "--unsupervised",
                "--latents",
                "3",
                "--smoke-test",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = pq.read_table(out / "latents.parquet").to_pylist()
    assert sorted(r["latent"] for r in rows) == [0, 1, 2]
    assert (out / "latents.png").read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out.count("z") >= 3


def test_paths_in_the_way_are_refused_before_the_annealing_runs(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    runs = ["ifp", "dsprites_full", "--smoke-test"]
    assert main([*runs, "--out", str(a_file)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main([*runs, "--out", str(tmp_path / "o"), "--cache-dir", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--cache-dir {a_file} is a file" in err
    assert main(["ifp", "--suggest", str(tmp_path), "--output", str(tmp_path)]) == 2
    assert "--output" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_impossible_seeds_and_sizes_are_one_line_before_any_run(tmp_path, capsys):
    runs = ["ifp", "dsprites_full", "--out", str(tmp_path / "o")]
    assert main([*runs, "--seed", "-1"]) == 2
    assert "--seed == -1, must lie in [0, 2**63 - 1]" in capsys.readouterr().err
    assert main([*runs, "--width", "100000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this run needs about" in err and "lower --width" in err
    assert main([*runs, "--batch-size", "1000000000"]) == 2
    assert "lower --batch-size" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
