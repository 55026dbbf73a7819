"""docs/RESULTS.md generation: tables come from a real MLflow store, with their run ids.

The store is written with the project's own tracking classes in the layout a search and the
reproduction pipeline write (parent run, trial child runs, retrain groups, the ledger); the
report is then generated from it alone.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys

import pytest

from benchmarks.reproduce import driver, e3_diffusion, e5_stopper, pipeline, report
from benchmarks.reproduce import tracking as rt

SPACE = {
    "name": "s",
    "objective": {"metric": "metrics/mig", "mode": "max"},
    "budget": {
        "steps_per_trial": 300,
        "num_trials": 2,
        "max_concurrent": 2,
        "eval_interval": 100,
        "seed": 0,
        "cpus_per_trial": 1,
    },
}
SCORES = {"deft": [0.31, 0.35, 0.27], "beta_vae": [0.12, 0.2, 0.05]}
FACTORS = ("shape", "scale")


def _search(uri: str, name: str, trials: list[tuple[float, list[float], str, int]]) -> list[str]:
    """A search in the runner's layout: (objective, stage betas, stop reason, steps) per trial."""
    group = rt.start_group(uri, name, "search-double", SPACE)
    ids = []
    for i, (mig, betas, reason, steps) in enumerate(trials):
        params = {"schedule": {"stages": [{"beta": b} for b in betas]}}
        history = [{"step": s, "train/loss": 1.0} for s in range(100, steps + 1, 100)]
        run_id = rt.add_run(group, f"t{i}", params, {"metrics/mig": mig}, {}, history)
        group.client.set_tag(run_id, "deft.stop_reason", reason)
        ids.append(run_id)
    rt.finish(group)
    return ids


def _retrain(uri: str, name: str, migs: list[float], nmi2: float) -> list[str]:
    group = rt.start_group(uri, name, "retrain", {"search": name})
    ids = []
    for seed, mig in enumerate(migs):
        history = [
            {
                "step": s,
                **{f"info/nmi1/{f}": 0.5 for f in FACTORS},
                **{f"info/nmi2/{f}": nmi2 * s / 200 for f in FACTORS},
            }
            for s in (100, 200)
        ]
        metrics = {
            "eval/mig": mig,
            "eval/dci/disentanglement": mig + 0.1,
            "eval/factor_vae/eval_accuracy": mig + 0.4,
        }
        ids.append(
            rt.add_run(
                group, f"seed{seed}", {"repro": {"metric_setting": "fast"}}, metrics, {}, history
            )
        )
    rt.finish(group)
    return ids


def _ifp(uri: str) -> list[str]:
    ifp = rt.start_group(uri, "e2-ifp", "ifp", {"command": "deft-tune ifp --draws 2"})
    ifp_values = {"shape": [3.0, 4.0], "scale": [20.0, 30.0]}
    ids = [
        rt.add_run(
            ifp, f"{f}-{d}", {"factor": f, "draw": d, "dataset": "dsprites_full"}, {"ifp": v}, {}
        )
        for f, vs in ifp_values.items()
        for d, v in enumerate(vs)
    ]
    rt.finish(ifp)
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("repro")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    ids = {
        "e1-deft": _search(
            uri,
            "e1-deft",
            [(0.4, [6.0, 2.0, 1.0], "completed", 300), (0.1, [3.0, 1.0], "no_capture", 100)],
        ),
        "e5": _search(
            uri,
            "e5-deft-no-ifp",
            [(0.3, [6.0, 2.0, 1.0], "completed", 300), (0.2, [3.0, 1.0], "completed", 300)],
        ),
        "deft": _retrain(uri, "e1-deft-retrain", SCORES["deft"], 0.1),
        "beta_vae": _retrain(uri, "e1-beta_vae-retrain", SCORES["beta_vae"], 0.4),
    }
    for strength, deft, tcvae in (("0.5", [0.3, 0.4], [0.3, 0.3]), ("0.9", [0.3, 0.3], [0.1, 0.2])):
        ids[f"e4-deft-{strength}"] = _retrain(uri, f"e4-deft-c{strength}-retrain", deft, 0.1)
        _retrain(uri, f"e4-beta_tcvae-c{strength}-retrain", tcvae, 0.1)
    ids["ifp"] = _ifp(uri)
    ledger = None
    for step, seconds in (("e1-deft", 120.0), ("e5-deft-no-ifp", 150.0), ("e2-ifp-run", 60.0)):
        ledger = rt.record_step(
            uri,
            ledger,
            step,
            "cmd",
            seconds,
            {"budget": "unit", "description": "a test store", "seeds": [0, 1, 2]},
        )
    rt.finish(ledger)
    docs = folder / "docs"
    written = report.write_report(uri, docs, driver.EXPERIMENTS)
    return {
        "uri": uri,
        "ids": ids,
        "text": (docs / "RESULTS.md").read_text(),
        "written": written,
        "folder": folder,
    }


def _row(text: str, first_cell: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))


def test_experiment_1_table_is_mean_and_std_of_the_stored_runs(store):
    row = _row(store["text"], "DEFT")
    mean, spread = statistics.fmean(SCORES["deft"]), statistics.stdev(SCORES["deft"])
    assert f"{mean:.3f} ± {spread:.3f}" in row
    dci = [s + 0.1 for s in SCORES["deft"]]
    assert f"{statistics.fmean(dci):.3f} ± {statistics.stdev(dci):.3f}" in row
    assert all(run_id in row for run_id in store["ids"]["deft"])
    assert store["ids"]["e1-deft"][0] in row  # the search's best trial (MIG 0.4)
    assert "| 0.400 |" in row and "| 120 |" in row  # search best and ledger wall time
    # beta-VAE is lower on the mean but its spread is larger: the claim holds here
    assert "holds on every metric" in store["text"]


def test_header_states_budget_setting_and_partial(store):
    text = store["text"]
    assert "300 steps per trial, 2 trials per search" in text
    assert "**fast**" in text and "seeds [0, 1, 2]" in text
    assert "5.5 min summed" in text  # 120 + 150 + 60 s from the ledger
    assert "recorded by 1 run(s) of run.py" in text
    assert "PARTIAL" not in text
    assert "no GPU run is recorded" in text


def test_a_store_with_one_experiment_is_marked_partial(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _ifp(uri)
    report.write_report(uri, tmp_path / "docs", driver.EXPERIMENTS)
    text = (tmp_path / "docs" / "RESULTS.md").read_text()
    assert (
        "**PARTIAL: not in this store: experiment 1, experiment 3, experiment 4, experiment 5.**"
    ) in text
    assert text.count("Not run in this store") == 4
    assert "| scale | 20.00, 30.00 | 25.00 |" in text


def test_correlated_table_and_trend(store):
    text = store["text"]
    row = _row(text, "0.5")
    assert row.startswith("| 0.5 | DEFT | 0.350 ± 0.071 | 0.450 ± 0.071 |")
    assert all(run_id in row for run_id in store["ids"]["e4-deft-0.5"])
    # DCI: DEFT 0.45 -> 0.40, beta-TCVAE 0.40 -> 0.25
    assert (
        "DEFT -0.050, beta-TCVAE -0.150; the claim that the TC penalty suffers more "
        "from correlation holds" in text
    )


def test_ifp_table_and_found_boundaries(store):
    text = store["text"]
    assert "| scale | 20.00, 30.00 | 25.00 |" in text
    assert all(run_id in text for run_id in store["ids"]["ifp"])
    # found betas 6 and 2 (best trial): 6 lies between the clusters {scale} and {shape}
    assert (
        "beta 6.000: medians above it: scale; below: shape; outside every cluster's interval."
    ) in text
    assert "beta 2.000: medians above it: scale, shape; below: none" in text


def test_nmi_and_stopper_sections_come_from_histories(store):
    text = store["text"]
    assert "\n| shape | 0.500 | 0.100 | 0.500 | 0.400 |\n" in text
    assert "over captured factors at the last step: DEFT 0.200, beta-VAE 0.800" in text
    assert "diffusion with DEFT) holds" in text
    stop_with, stop_without = _row(text, "with the IFP stopper"), _row(text, "without it")
    assert "| 400 |" in stop_with and "completed 1, no_capture 1" in stop_with
    assert "| 600 |" in stop_without
    assert f"{math.floor(100 * (1 - 400 / 600) + 0.5)}% fewer trial-steps" in text


def test_figures_are_written(store):
    names = sorted(p.name for p in store["written"])
    assert names == [
        "RESULTS.md",
        "exp1_scores.png",
        "exp2_ifp.png",
        "exp3_nmi.png",
        "exp4_correlated.png",
        "exp5_stopper.png",
    ]
    assert all(p.stat().st_size > 1000 for p in store["written"])


def test_report_only_needs_a_store(tmp_path):
    """Through run.py as a file from another folder: the documented command imports its package."""
    command = [sys.executable, str(pipeline.HERE / "run.py"), "--report-only", "--results", "."]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "no MLflow store" in done.stderr


def test_stopper_saving_reads_as_fewer_or_more():
    assert e5_stopper.steps_saved(1 - 400 / 600) == "33% fewer trial-steps"
    assert e5_stopper.steps_saved(1 - 7000 / 6000) == "17% more trial-steps"


def test_published_budget_writes_docs_and_others_a_subfolder(store):
    assert driver.default_docs("paper-cpu") == pipeline.REPO / "docs" / "paper-cpu"
    assert driver.default_docs("small") == pipeline.REPO / "docs" / "small"
    assert rt.store_budget(store["uri"]) == "unit"  # --report-only's default folder


def test_report_only_regenerates_from_the_store(store, tmp_path):
    assert (
        driver.main(["--report-only", "--results", str(store["folder"]), "--docs", str(tmp_path)])
        == 0
    )
    again = (tmp_path / "RESULTS.md").read_text()
    strip = [line for line in again.splitlines() if not line.startswith("Generated by")]
    first = [line for line in store["text"].splitlines() if not line.startswith("Generated by")]
    assert strip == first


def test_summary_lists_every_judged_claim(store):
    summary = store["text"].split("## Summary")[1].split("## 1.")[0]
    assert "Experiment 1, DEFT scores higher with lower variance: holds" in summary
    assert "2 of 2 boundaries do (2 IFP cluster(s)" in summary
    assert (
        "Experiment 5, the IFP stopper: 33% fewer trial-steps; best MIG 0.400 with it, "
        "0.300 without." in summary
    )
    assert "not judged: none." in summary


def test_a_model_that_captured_nothing_cannot_judge_diffusion():
    def history(nmi1, nmi2):
        return {"info/nmi1/shape": [(100, nmi1)], "info/nmi2/shape": [(100, nmi2)]}

    collapsed = {"deft": history(0.4, 0.2), "beta_vae": history(0.0, 0.0)}
    assert e3_diffusion.diffusion_verdict(collapsed, ["shape"]).startswith(
        "cannot be judged in these two runs: beta-VAE captured no factor"
    )
    diffused = {"deft": history(0.4, 0.3), "beta_vae": history(0.4, 0.1)}
    assert "does not hold" in e3_diffusion.diffusion_verdict(diffused, ["shape"])
