"""report.py on hand-made trial records: ranking, filters, seeds-robust choice, refinement."""

import math
from dataclasses import dataclass, field

import pyarrow.parquet as pq
import pytest

from deft_tune.errors import ConfigError
from deft_tune.results import report


@dataclass(frozen=True)
class Trial:
    trial_id: str
    metrics: dict
    params: dict = field(default_factory=dict)
    status: str = "FINISHED"
    stop_reason: str = "completed"
    run_id: str = "r"
    start_time: float = 0.0
    end_time: float | None = 10.0
    steps: int = 400


def deft_params(betas, lr_scales, steps, seed=0, lr=5e-4):
    params = {
        "objective.kind": "deft",
        "schedule.rule": "fixed",
        "training.lr": str(lr),
        "training.seed": str(seed),
        "model.latents_per_group": "2",
    }
    for i, (b, s, n) in enumerate(zip(betas, lr_scales, steps)):
        params |= {
            f"schedule.stages.{i}.beta": str(b),
            f"schedule.stages.{i}.lr_scale": str(s),
            f"schedule.stages.{i}.steps": str(n),
        }
    return params


TRIALS = [
    Trial("a", {"metrics/mig": 0.10, "metrics/dci/disentanglement": 0.3}, start_time=1),
    Trial("b", {"metrics/mig": 0.30}, start_time=2),
    Trial("c", {"metrics/mig": 0.20}, start_time=3, stop_reason="diffusion", steps=150),
    Trial("d", {"metrics/mig": 0.90}, status="RUNNING", start_time=4),
    Trial("e", {"train/loss": 50.0}, status="FAILED", stop_reason="error", start_time=5),
]


def test_ranking_is_best_first_and_skips_running_and_unscored_trials():
    # a and b ran to their end (stop reason completed), c was stopped: completed trials first.
    assert [t.trial_id for t in report.ranked(TRIALS, "metrics/mig", "max")] == ["b", "a", "c"]
    assert [t.trial_id for t in report.ranked(TRIALS, "metrics/mig", "min")] == ["a", "b", "c"]
    rows = report.trials_table(TRIALS, "metrics/mig", "max")
    assert [r["trial"] for r in rows] == ["b", "a", "c", "d", "e"]
    assert [r["trial"] for r in report.trials_table(TRIALS, "metrics/mig", "max", top=2)] == [
        "b",
        "a",
    ]


def test_one_best_completed_trials_rank_on_their_standard_final_score_first():
    # "done" ran to the end: fast 0.15 at its last report, standard 0.10 at its end; "cut" was
    # stopped with a fast 0.20. The search picks "done" (standard scores of completed trials
    # first), and so must inspect and export.
    done = Trial("done", {"metrics/mig": 0.15, "final/mig": 0.10})
    cut = Trial("cut", {"metrics/mig": 0.20}, status="KILLED", stop_reason="no_capture")
    assert report.objective_value(done, "metrics/mig") == 0.10
    assert report.objective_setting(done, "metrics/mig") == "standard"
    assert report.objective_setting(cut, "metrics/mig") == "fast"
    assert [t.trial_id for t in report.ranked([cut, done], "metrics/mig", "max")] == ["done", "cut"]
    row = report.trial_row(done, "metrics/mig")
    assert (row["objective"], row["setting"]) == (0.10, "standard")
    kept = report.parse_where("mig < 0.12", {"metrics/mig", "final/mig"})
    assert kept(done) and not kept(cut)


# One trial seen twice: its last Tune report (what the search ranks) and its MLflow record
# (what inspect and export rank). A completed trial's last report has the standard score under
# both keys; MLflow keeps the last fast score under metrics/<key> and the standard one under
# final/<key>. (trial id, last fast score, standard score or None if stopped, stop reason)
_SEEN = {
    "completed beats a better stopped trial": [
        ("done", 0.15, 0.10, "completed"),
        ("cut", 0.20, None, "no_capture"),
    ],
    "among completed, the standard score decides, not the last fast one": [
        ("x", 0.30, 0.11, "completed"),
        ("y", 0.05, 0.12, "completed"),
    ],
    "a completed trial whose standard score is NaN cannot rank": [
        ("nan", 0.50, math.nan, "completed"),
        ("ok", 0.10, 0.20, "completed"),
        ("cut", 0.40, None, "asha"),
    ],
    "no trial completed: the fast scores decide": [
        ("p", 0.10, None, "asha"),
        ("q", 0.30, None, "diffusion"),
    ],
}


def _tune_report(trial_id, fast, standard, reason):
    out = {"trial_id": trial_id, "metrics/mig": fast, "trial/completed": 0.0, "done": True}
    if standard is not None:
        out |= {"metrics/mig": standard, "final/mig": standard, "trial/completed": 1.0}
    return out


def _mlflow_record(trial_id, fast, standard, reason):
    metrics = {"metrics/mig": fast, "trial/completed": 0.0}
    if standard is not None:
        metrics |= {"final/mig": standard, "trial/completed": 1.0}
    status = "FINISHED" if reason == "completed" else "KILLED"
    return Trial(trial_id, metrics, status=status, stop_reason=reason)


@pytest.mark.parametrize("case", sorted(_SEEN))
@pytest.mark.parametrize("mode", ["max", "min"])
def test_the_search_and_inspect_pick_the_same_best_with_the_same_value(case, mode):
    rows = _SEEN[case]
    best = report.best_report([_tune_report(*row) for row in rows], "metrics/mig", mode)
    records = report.ranked([_mlflow_record(*row) for row in rows], "metrics/mig", mode)
    assert best == (records[0].trial_id, report.objective_value(records[0], "metrics/mig"))


def test_a_report_key_objective_also_ranks_completed_trials_first():
    done = Trial("done", {"train/recon": 50.0, "trial/completed": 1.0})
    cut = Trial("cut", {"train/recon": 40.0}, stop_reason="asha")
    assert [t.trial_id for t in report.ranked([cut, done], "train/recon", "min")] == ["done", "cut"]
    tune = [{"trial_id": "cut", "train/recon": 40.0}, {"trial_id": "done", **done.metrics}]
    assert report.best_report(tune, "train/recon", "min") == ("done", 50.0)
    assert report.objective_setting(done, "train/recon") == "report"
    unscored = [{"trial_id": "x", "metrics/mig": math.nan}]
    assert report.best_report(unscored, "metrics/mig", "max") is None


def test_metric_names_resolve_to_logged_keys_or_list_them():
    keys = {"metrics/mig", "final/mig", "train/loss"}
    assert report.resolve_metric("mig", keys) == "metrics/mig"
    assert report.resolve_metric("final/mig", keys) == "final/mig"
    with pytest.raises(
        ConfigError, match="no trial logged metric 'sap'; logged: final/mig, metrics/mig"
    ):
        report.resolve_metric("sap", keys)


@pytest.mark.parametrize(
    ("expression", "kept"),
    [
        ("mig > 0.15", ["b", "c"]),
        ("mig >= 0.2", ["b", "c"]),
        ("mig < 0.2", ["a"]),
        ("mig == 0.3", ["b"]),
        ("mig != 0.3", ["a", "c"]),
    ],
)
def test_where_filters_by_metric(expression, kept):
    where = report.parse_where(expression, {"metrics/mig"})
    rows = report.trials_table(TRIALS, "metrics/mig", "max", where=where)
    assert sorted(r["trial"] for r in rows if r["status"] == "FINISHED") == kept


@pytest.mark.parametrize("bad", ["mig", "mig >> 1", "mig > high"])
def test_malformed_where_is_refused_with_the_form(bad):
    with pytest.raises(ConfigError, match="--where"):
        report.parse_where(bad, {"metrics/mig"})


def test_stage_values_read_flattened_run_config_params():
    params = deft_params([70, 30, 1], [1, 0.1, 0.1], [100, 100, "None"])
    assert report.stage_values(params, "beta") == [70, 30, 1]
    assert report.stage_values(params, "steps") == [100, 100]
    row = report.trial_row(Trial("x", {"metrics/mig": 0.5}, params), "metrics/mig")
    assert (row["stages"], row["betas"], row["lr_scales"]) == (3, [70, 30, 1], [0.1, 0.1])
    assert row["seeds"] == [0]  # inspect shows each trial's training seeds
    frozen = {
        **params,
        "schedule.stages.1.earlier": "freeze",
        "schedule.stages.2.earlier": "freeze",
    }
    row = report.trial_row(Trial("y", {"metrics/mig": 0.5}, frozen), "metrics/mig")
    assert (row["earlier"], row["lr_scales"]) == ("freeze", [])


def test_seeds_robust_ranks_mean_minus_std_over_seeds():
    steady = deft_params([20, 1], [1, 0.1], [200, "None"])
    jumpy = deft_params([40, 1], [1, 0.1], [200, "None"])
    trials = [
        Trial(f"s{i}", {"metrics/mig": v}, {**steady, "training.seed": str(i)})
        for i, v in enumerate([0.30, 0.32, 0.34])
    ]
    trials += [
        Trial(f"j{i}", {"metrics/mig": v}, {**jumpy, "training.seed": str(i)})
        for i, v in enumerate([0.10, 0.60])
    ]
    scored = report.seeds_robust(trials, "metrics/mig", "max")
    # steady: mean 0.32, sample std 0.02 -> 0.30; jumpy: mean 0.35, std 0.3536 -> -0.0036
    assert scored[0][0] == pytest.approx(0.30)
    assert scored[1][0] == pytest.approx(0.35 - math.sqrt(0.125))
    chosen, why = report.choose_trial(trials, "metrics/mig", "max", robust=True)
    assert chosen.trial_id == "s2" and "over 3 seeds" in why
    plain, _ = report.choose_trial(trials, "metrics/mig", "max")
    assert plain.trial_id == "j1"


def test_seeds_robust_without_repeated_seeds_says_so():
    trials = [
        Trial(str(b), {"metrics/mig": 0.1}, deft_params([b, 1], [1, 1], [9, "None"]))
        for b in (10, 20)
    ]
    with pytest.raises(ConfigError, match="ran each schedule once"):
        report.choose_trial(trials, "metrics/mig", "max", robust=True)


def test_rank_out_of_range_is_refused():
    with pytest.raises(ConfigError, match="--rank 4 but only 3 trials finished"):
        report.choose_trial(TRIALS, "metrics/mig", "max", rank=4)


def test_parquet_holds_every_trial_param_and_metric(tmp_path):
    trials = [
        Trial("a", {"metrics/mig": 0.1}, {"training.lr": "0.001"}),
        Trial("b", {"train/loss": 3.0}, {"model.groups": "2"}),
    ]
    path = report.write_parquet(trials, tmp_path / "t.parquet")
    table = pq.read_table(path).to_pydict()
    assert table["trial_id"] == ["a", "b"]
    assert table["params.training.lr"] == ["0.001", None]
    assert table["metrics.train/loss"] == [None, 3.0]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_stage_starts_come_from_the_trials_schedule():
    fixed = Trial("f", {}, params={**deft_params([4, 2, 1], [1, 0.1, 0.1], [216, 203, "None"]),
                                   "training.steps": "600"})  # fmt: skip
    assert report.stage_starts(fixed) == [216, 419]
    annealed = Trial(
        "a",
        {},
        params={
            **deft_params([70, 30, 15, 1], [1, 0.1, 0.1, 0.1], ["None"] * 4),
            "schedule.rule": "annealed",
            "schedule.beta_max": "150",
            "schedule.gamma": "20",
            "schedule.anneal_steps": "200000",
            "training.steps": "30000",
        },
    )
    assert report.stage_starts(annealed) == [7622, 16095, 23026]  # docs/training.md
    assert report.stage_starts(Trial("b", {}, params={"objective.kind": "beta_vae"})) == []
