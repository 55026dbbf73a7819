"""`deft-tune importance` on a bank file: its table, figure and docs block."""

from __future__ import annotations

import dataclasses
import math

from deft_tune.cli import main
from deft_tune.search.replay.bankfile import write_bank
from tests.search.test_importance import raw_space, sampled_trials


def test_the_command_reads_a_bank_file_and_writes_table_figure_and_block(bank, tmp_path, capsys):
    trials = sampled_trials(8, lambda p: math.log(p["beta_first"]))
    template = bank.trials[0]
    fake = tuple(
        _scored(template, f"t{i}", params, value) for i, (params, value) in enumerate(trials)
    )
    path = write_bank(dataclasses.replace(bank, raw_space=raw_space(), trials=fake),
                      tmp_path / "bank.parquet")  # fmt: skip
    doc = tmp_path / "doc.md"
    doc.write_text("# Doc\n\n<!-- importance:begin -->\n<!-- importance:end -->\n")
    argv = ["importance", str(path), "--resamples", "5", "--out", str(tmp_path / "fig"),
            "--write-doc", str(doc)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "fANOVA importance of metrics/mig over 8 trials" in out
    assert (tmp_path / "fig" / "importance.png").stat().st_size > 0
    block = doc.read_text()
    assert "| beta_first |" in block and "](fig/importance.png)" in block
    doc.write_text("# Doc without markers\n")  # refused before the importances are computed
    assert main([*argv[:-2], "--out", str(tmp_path / "fig2"), "--write-doc", str(doc)]) == 2
    assert "has no importance block" in capsys.readouterr().err
    assert doc.read_text() == "# Doc without markers\n" and not (tmp_path / "fig2").exists()


def _scored(template, trial_id, params, value):
    """The template trial with other parameters and ``value`` as its final objective."""
    final = dataclasses.replace(
        template.final, result={**template.final.result, "metrics/mig": value}
    )
    return dataclasses.replace(template, trial_id=trial_id, params=params, final=final,
                               final_objective=value)  # fmt: skip
