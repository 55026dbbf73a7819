"""docs/RESULTS.md from committed files (benchmarks/reproduce/from_files.py, retrain.py): the
schedule an arm retrains, the seeds it may take, the intervals the claims rest on, and a report
that says what it still waits for."""

from __future__ import annotations

import json
import math
import os
import statistics
from types import SimpleNamespace

import pytest
import yaml

from benchmarks import ifp_draws
from benchmarks.reproduce import from_files, retrain
from benchmarks.reproduce.committed import correlated, diffusion, ifp, methods, stoppers
from deft_tune.data.dsprites import FACTOR_NAMES
from deft_tune.errors import ConfigError
from tests import REPO

DEFT_PARTS = sorted((REPO / "benchmarks" / "banks" / "dsprites").glob("part-*.parquet"))


def _trial(trial_id, finals, seed=1):
    config = yaml.safe_dump({"training": {"seed": seed, "replicas": len(finals)}})
    return SimpleNamespace(trial_id=trial_id, replica_finals=tuple(finals), run_config=config)


def test_the_best_schedule_is_the_best_seed_mean_not_the_luckiest_seed():
    bank = SimpleNamespace(mode="max", experiment="b", trials=(
        _trial("lucky", [0.40, 0.02, 0.03]),  # best single seed, mean 0.15
        _trial("steady", [0.20, 0.19, 0.21]),  # mean 0.20
        _trial("failed", [0.9, math.nan, 0.9]),  # a seed without a score: never the best
    ))  # fmt: skip
    assert retrain.best_trial(bank).trial_id == "steady"
    low = SimpleNamespace(mode="min", experiment="b", trials=bank.trials[:2])
    assert retrain.best_trial(low).trial_id == "lucky"


def test_bank_seeds_cover_every_replica():
    bank = SimpleNamespace(trials=(_trial("a", [0.1, 0.2, 0.3], seed=50), _trial("b", [0.1], 9)))
    assert retrain.bank_seeds(bank) == [50, 51, 52, 9]


def test_the_hand_schedule_keeps_each_stage_share_at_the_bank_steps():
    raw = retrain.hand_config(2000)
    assert raw["training"]["steps"] == 2000
    assert [s.get("steps") for s in raw["schedule"]["stages"]] == [500, 500, 500, None]
    assert [s["beta"] for s in raw["schedule"]["stages"]] == [70, 30, 12, 1]


@pytest.mark.skipif(not DEFT_PARTS, reason="no DEFT bank part is committed yet")
def test_an_arm_trains_its_bank_best_with_a_fresh_seed_and_refuses_a_bank_seed():
    from deft_tune.search.replay.bankfile import read_banks

    bank = read_banks(DEFT_PARTS)
    config, source = retrain.arm_config("deft", retrain.SEEDS[0])
    means = {t.trial_id: statistics.fmean(t.replica_finals) for t in bank.trials}
    assert source["trial"] == max(means, key=means.get)
    assert config["training"]["seed"] == retrain.SEEDS[0] and config["training"]["replicas"] == 1
    assert config["evaluation"]["metrics"] == ["mig", "dci", "factor_vae"]
    assert source["bank_parts"] == [p.name for p in DEFT_PARTS]
    with pytest.raises(ConfigError, match="within 16 of bank seed"):
        retrain.arm_config("deft", retrain.bank_seeds(bank)[0] + 3)
    for seed in retrain.SEEDS:  # the planned seeds share no random stream with the bank
        assert all(abs(seed - s) >= 16 for s in retrain.bank_seeds(bank))


@pytest.fixture
def banks(tmp_path, monkeypatch):
    """Two committed parts of each bank, as the rows below were picked from."""
    for arm in retrain.ARMS.values():
        for k in range(2):
            (tmp_path / arm.bank).mkdir(exist_ok=True)
            (tmp_path / arm.bank / f"part-{k}.parquet").touch()
    monkeypatch.setattr(retrain, "BANKS", tmp_path)
    return tmp_path


def _row(arm, seed, mig):
    return {"arm": arm, "seed": seed, "steps": 2000, "wall_s": 600.0, "commit": "abc" * 14,
            "machine": {"cpu": "cpu", "logical_cpus": 2},
            "source": {"trial": f"part0/{arm}", "bank_parts": ["part-0.parquet", "part-1.parquet"]},
            "scores": {"mig": mig, "dci/disentanglement": mig / 2,
                       "factor_vae/eval_accuracy": 0.5}}  # fmt: skip


def test_experiment_1_judges_a_claim_only_with_every_seed_and_its_interval(banks):
    deft = [_row("deft", s, 0.30 + 0.01 * i) for i, s in enumerate(retrain.SEEDS)]
    beta = [_row("beta_vae", s, 0.10 + 0.01 * i) for i, s in enumerate(retrain.SEEDS)]
    text = methods.experiment_1(deft + beta[:3])
    assert "beta_vae 3" in text and "No claim against an arm is judged" in text
    assert "DEFT is" not in text  # no difference table while an arm misses seeds
    text = methods.experiment_1(deft + beta)
    assert "| DEFT (searched) minus |" in text and "| higher |" in text
    assert "0.320 ± 0.016" in text  # the mean ± std of DEFT's MIG over its 5 seeds
    assert "MIG >= 0.3 at this budget: reached" in text
    assert methods.experiment_1(deft + beta) == text
    (banks / "dsprites" / "part-2.parquet").touch()  # the DEFT bank grew: its rows are stale
    text = methods.experiment_1(deft + beta)
    assert "Left out, their bank has grown" in text and "deft seed 10000" in text
    assert "DEFT is" not in text


def test_the_committed_report_is_what_the_committed_files_give():
    assert from_files.document() == (REPO / "docs" / "RESULTS.md").read_text(), (
        "regenerate it: python -m benchmarks.reproduce report"
    )


def test_below_the_mig_goal_the_report_shows_the_trend_with_more_steps(banks):
    def deft(seed, mig, scale=1):
        row = _row("deft", seed, mig) | {"scale": scale, "steps": 2000 * scale}
        row["source"] = row["source"] | {"bank_steps": 2000}
        return row

    rows = [deft(s, 0.20) for s in retrain.SEEDS]
    twice = [deft(s, 0.26, scale=2) for s in retrain.SCALED_SEEDS]
    text = methods.experiment_1(rows, twice)
    assert "MIG >= 0.3 at this budget: not reached" in text
    assert "| 2,000 | 5 | 0.200 ± 0.000 | 0.100 ± 0.000 |" in text
    assert "| 4,000 | 3 | 0.260 ± 0.000 | 0.130 ± 0.000 | 0.500 ± 0.000 |" in text
    assert "Not all of the longer runs are committed yet" in text
    smoke = deft(10_000, 0.9) | {"steps": 60}  # a shortened run is no evidence
    assert "deft seed 10000" in methods.experiment_1(rows[1:] + [smoke])
    # every longer run in: each scale against the same seeds' bank-steps runs, paired
    base = [deft(s, m) for s, m in zip(retrain.SEEDS, [0.20, 0.22, 0.18, 0.20, 0.20])]
    gains = [0.10, 0.12, 0.08]  # mean 0.10, sd 0.02: t(2) half-width 4.303 * 0.02 / sqrt 3
    four = [deft(s, r["scores"]["mig"] + g, scale=4)
            for s, r, g in zip(retrain.SCALED_SEEDS, base, gains)]  # fmt: skip
    text = methods.experiment_1(base, twice + four)
    assert "Not all of the longer runs" not in text
    assert "| 4x minus 1x | MIG | +0.100 | [" in text and "[+0.050, +0.150] | higher |" in text
    assert "| 4x minus 1x | FactorVAE score | +0.000 |" in text  # no change: not separated
    assert "MIG >= 0.3 at 4x the steps: not settled" in text  # mean 0.30, its interval holds it
    assert "MIG >= 0.3 at 2x the steps: not reached; searched DEFT's mean 0.260, bootstrap" in text
    assert "over 3 seeds.\n\nMIG >= 0.3 at 4x" in text  # one paragraph per goal line
    summary = from_files.summary(base, [], (), twice + four)
    assert "| searched DEFT at 4x the steps minus at 1x: MIG, paired by seed | 1 | +0.100 |" in (
        summary
    )
    assert "the MIG trend" not in summary  # nothing waits
    reached = [deft(s, 0.31) for s in retrain.SEEDS]
    assert "trend with more steps" not in methods.experiment_1(reached, twice)
    assert methods.mig_goal([0.25, 0.35, 0.28, 0.32, 0.30]).startswith("not settled")


def test_the_summary_lists_every_judged_comparison_and_what_waits(banks):
    deft = [_row("deft", s, 0.30 + 0.01 * i) for i, s in enumerate(retrain.SEEDS)]
    beta = [_row("beta_vae", s, 0.10 + 0.01 * i) for i, s in enumerate(retrain.SEEDS)]
    text = from_files.summary(deft + beta[:4], [])
    assert "| claim |" not in text  # nothing judged while beta-VAE misses a seed
    assert "section 1, beta-VAE (searched) (4 of 5 seeds)" in text
    assert "section 3 (DEFT and beta-VAE seeds)" in text and "section 4" in text
    assert "section 2 (draws done of 8: orientation 0, pos_x 0, pos_y 0, scale 0, shape 0)" in text
    units = [_ifp_unit(f, [40.0] * 4, seed) for f in FACTOR_NAMES for seed in (0, 1)]
    text = from_files.summary(deft + beta[:4], [], units)
    assert "section 2 (draws" not in text  # no longer waiting: judged, in one line
    assert "IFPs (section 2): 1 cluster of factors at this budget;" in text
    text = from_files.summary(deft + beta, [])
    row = "| searched DEFT minus beta-VAE (searched): MIG | 1 | +0.200 |"
    assert row in text and text.count("| higher |") == 2  # MIG and DCI; FactorVAE is equal
    assert "Searched DEFT's MIG >= 0.3 at the bank's steps: reached (section 1)." in text
    assert "beta-VAE (searched) (" not in text  # no longer waiting


def test_a_scaled_config_keeps_its_stage_shares_and_evaluation_count():
    config = retrain._scaled(retrain.hand_config(2000), 4)
    assert config["training"]["steps"] == 8000
    assert [s.get("steps") for s in config["schedule"]["stages"]] == [2000, 2000, 2000, None]
    assert (
        config["evaluation"]["interval"] == 4 * retrain.hand_config(2000)["evaluation"]["interval"]
    )


def _history(nmi1, nmi2):
    """Two evaluations; the last one holds the per-factor NMI pairs given."""
    last = {"step": 2000.0}
    for factor, (a, b) in enumerate(zip(nmi1, nmi2)):
        last |= {f"info/nmi1/f{factor}": a, f"info/nmi2/f{factor}": b}
    return [{"step": 1000.0, "info/nmi1/f0": 0.9, "info/nmi2/f0": 0.9}, last]


def test_diffusion_averages_nmi2_over_nmi1_on_the_captured_factors_only():
    # f2 is not captured (NMI1 < 0.05): its ratio 1.0 does not count; the first point neither.
    assert diffusion.diffusion(_history([0.5, 0.4, 0.01], [0.1, 0.2, 0.01])) == pytest.approx(
        (0.1 / 0.5 + 0.2 / 0.4) / 2
    )
    assert math.isnan(diffusion.diffusion(_history([0.01], [0.0])))  # captured nothing
    assert math.isnan(diffusion.diffusion([]))


def test_experiment_3_pairs_deft_and_beta_vae_by_seed(banks):
    def rows(arm, ratio):
        return [_row(arm, s, 0.2) | {"history": _history([0.5, 0.5], [0.5 * ratio, 0.5 * ratio])}
                for s in retrain.SEEDS]  # fmt: skip

    deft, beta = rows("deft", 0.2), rows("beta_vae", 0.6)
    text = diffusion.experiment_3(deft + beta[:4])
    assert "Not judged yet: 4 of 5 seeds" in text
    text = diffusion.experiment_3(deft + beta)
    assert (
        "DEFT minus beta-VAE, paired over 5 seeds: -0.400, bootstrap [-0.400, -0.400], "
        "t [-0.400, -0.400]" in text
    )
    assert "DEFT's diffusion is lower." in text
    assert "| DEFT (searched) | 5 | 0.200 ± 0.000 | 2.000 ± 0.000 |" in text


def test_experiment_4_judges_each_gap_and_the_growth_once_their_seeds_are_in(banks):
    def rows(arm, correlation, mig):
        return [_row(arm, s, mig + 0.001 * i) | {"correlation": correlation}
                for i, s in enumerate(retrain.CORRELATED_SEEDS)]  # fmt: skip

    weak, strong = retrain.CORRELATIONS
    cells = (rows("deft", weak, 0.30) + rows("deft", strong, 0.30)
             + rows("beta_tcvae", weak, 0.25) + rows("beta_tcvae", strong, 0.10))  # fmt: skip
    # Experiment 1's units: the same schedules on independent factors, with more seeds than
    # experiment 4 uses and another arm, which correlation 0 leaves out.
    independent = [_row("deft", s, 0.32) for s in retrain.SEEDS]
    independent += [_row("beta_tcvae", s, 0.30) for s in retrain.SEEDS]
    independent += [_row("beta_vae", s, 0.0) for s in retrain.SEEDS]
    interval = "[{0}, {0}] | [{0}, {0}]".format
    missing = [r for r in independent if (r["arm"], r["seed"]) != ("beta_tcvae", 10_200)]
    text = correlated.experiment_4(cells, missing)
    assert "beta_tcvae at 0: 2" in text and "Not judged yet" in text
    assert "| MIG | DEFT minus beta-TCVAE at 0 |" not in text and "its growth" not in text
    assert f"| MIG | DEFT minus beta-TCVAE at {strong} | +0.200 | {interval('+0.200')} |" in text
    text = correlated.experiment_4(cells[:-1], independent)  # each strength once it is whole
    assert f"beta_tcvae at {strong}: 2" in text and "Not judged yet" in text
    assert f"at {weak} | +0.050 |" in text and f"at {strong} |" not in text
    assert "| MIG | DEFT minus beta-TCVAE at 0 |" in text and "its growth" not in text
    text = correlated.experiment_4(cells, independent)
    assert "Not judged yet" not in text
    assert "| 0 | DEFT (searched) | 3 | 0.320 ± 0.000 |" in text
    assert text.index("| 0 | beta-TCVAE") < text.index(f"| {weak} | DEFT")  # by strength
    assert f"| MIG | DEFT minus beta-TCVAE at 0 | +0.020 | {interval('+0.020')} | higher |" in text
    weak_gap = f"| MIG | DEFT minus beta-TCVAE at {weak} | +0.050 | {interval('+0.050')} |"
    assert weak_gap in text
    growth = f"| MIG | its growth from 0 to {strong} | +0.180 | {interval('+0.180')} | higher |"
    assert growth in text and f"growth from {weak}" not in text
    assert "12 unit files" in text  # the correlated ones: experiment 1's count in section 1


def test_a_unit_keeps_the_nmi_history_and_the_stoppers_signals(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text(
        '{"step": 100.0, "train/loss": 3.0, "info/nmi1/shape": 0.4, "info/nmi2/shape": 0.1}\n'
        '{"step": 150.0, "train/loss": 2.0}\n'
        '{"step": 200.0, "train/stage": 1.0, "kl/group0": 2.5, "info/nmi1/shape": 0.5}\n'
    )
    assert retrain.kept_history(path) == [
        {"step": 100.0, "info/nmi1/shape": 0.4, "info/nmi2/shape": 0.1},
        {"step": 200.0, "train/stage": 1.0, "kl/group0": 2.5, "info/nmi1/shape": 0.5},
    ]


def test_the_stopper_column_replays_each_runs_signals_through_the_live_stopper():
    def point(step, stage, progress, captured):
        return {"step": step, "train/stage": stage, "train/stage_progress": progress,
                "info/active_captured": captured, "kl/total": 5.0}  # fmt: skip

    config = {"training": {"steps": 2000}}
    empty_first = [point(250, 0, 0.5, 0.0), point(500, 0, 1.0, 0.0), point(750, 1, 0.5, 1.0)]
    # the later stage is empty, but the first captured: not judged (docs/search.md)
    captured = [point(500, 0, 1.0, 1.0), point(1000, 1, 1.0, 0.0), point(1500, 2, 0.5, 1.0)]
    rows = [{"history": h, "config": config} for h in (empty_first, captured, captured)]
    rows.append({"history": [{"step": 500, "info/nmi1/shape": 0.3}], "config": config})
    assert methods.stopper_verdicts(rows) == ("never (2); no_capture at 500 (1); not recorded (1)")


def test_a_rerun_that_gives_every_score_again_lends_its_signals_to_the_unit(banks):
    signals = [{"step": 500, "train/stage": 0, "train/stage_progress": 1.0,
                "info/active_captured": 0.0, "kl/total": 5.0}]  # fmt: skip
    deft = [_row("deft", s, 0.30 + 0.01 * i) | {"config": {"training": {"steps": 2000}}}
            for i, s in enumerate(retrain.SEEDS)]  # fmt: skip
    again = deft[0] | {"history": signals, "commit": "def" * 14}
    text = methods.experiment_1(deft, reruns=[again])
    assert "| no_capture at 500 (1); not recorded (4) |" in text
    assert "1 of 1 gave the same config and every score to the last digit." in text
    other = again | {"scores": again["scores"] | {"mig": 0.5}}
    text = methods.experiment_1(deft, reruns=[other])
    assert "| not recorded (5) |" in text  # another run: its signals are not the unit's
    assert "0 of 1 gave the same config" in text and "not: deft seed 10000 (other scores)" in text
    moved = again | {"config": {"training": {"steps": 4000}}}
    assert "(another config)" in methods.experiment_1(deft, reruns=[moved])
    assert "Trained again later" not in methods.experiment_1(deft)


def test_the_scoring_time_is_the_gap_from_the_last_report_to_the_scores(tmp_path):
    (tmp_path / "history.jsonl").write_text("{}\n")
    (tmp_path / "metrics.json").write_text("{}\n")
    os.utime(tmp_path / "history.jsonl", (1000.0, 1000.0))
    os.utime(tmp_path / "metrics.json", (1212.5, 1212.5))
    assert retrain.scoring_seconds(tmp_path) == 212.5


def test_the_header_gives_the_scoring_cost_of_the_units_that_timed_it():
    assert "No committed unit has timed it yet." in from_files.scoring_cost([{"wall_s": 600.0}])
    rows = [{"scoring_s": s} for s in (200.0, 260.0, 230.0)] + [{"wall_s": 600.0}]
    line = from_files.scoring_cost(rows)
    assert "the 3 committed units that timed it" in line
    assert "median 230 s, 200-260 s" in line


def test_experiment_5_without_a_bank_says_so():
    assert "No DEFT bank part is committed yet." in stoppers.experiment_5([])


def _ifp_unit(factor, ifps, seed=0, settings="--steps 2000 --gamma 5"):
    runs = [{"dataset": "dsprites_full", "factor": factor, "draw": i, "seed": seed, "ifp": v,
             "ifp_step": 1000 if math.isfinite(v) else -1, "steps": 2000, "final_kl": 1.0}
            for i, v in enumerate(ifps)]  # fmt: skip
    command = f"deft-tune ifp dsprites_full --factors {factor} --draws 4 --seed {seed} {settings}"
    return {"factor": factor, "draws": len(ifps), "seed": seed, "runs": runs, "wall_s": 60.0,
            "commit": "abc" * 14, "machine": {"cpu": "cpu", "logical_cpus": 2},
            "command": command.strip()}  # fmt: skip


def test_a_unit_keeps_every_tenth_point_of_each_curve_and_the_last():
    rows = [{"draw": d, "seed": 7 + d, "step": t, "beta": 70.0 / t, "kl": t / 3, "recon": 1.0}
            for d in (1, 0) for t in range(25, 0, -1)]  # fmt: skip
    curves = ifp_draws.thinned_curves(rows)
    assert [c["draw"] for c in curves] == [0, 1] and curves[0]["seed"] == 7
    assert curves[0]["step"] == [1, 11, 21, 25]
    assert curves[0]["beta"] == [70.0, 6.364, 3.333, 2.8]  # 4 significant digits
    assert curves[0]["kl"] == [0.3333, 3.667, 7.0, 8.333]


def test_the_ifp_figure_draws_the_units_curves(tmp_path):
    plain = [_ifp_unit("shape", [40.0, 42.0])]
    assert ifp.ifp_figure(plain, tmp_path / "none.png") is None
    assert "![IFP per factor" not in ifp.experiment_2(plain)
    curves = [{"draw": d, "seed": d, "step": [1, 1000, 2000], "beta": [71.0, 6.0, 1.5],
               "kl": [0.0, 2.0, 3.0]} for d in (0, 1)]  # fmt: skip
    units = [{**_ifp_unit("shape", [40.0, float("nan")]), "curves": curves}]
    out = ifp.ifp_figure(units, tmp_path / "figures" / "ifp.png")
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "![IFP per factor and KL against beta](results/ifp_draws.png)" in (
        ifp.experiment_2(units)
    )


def test_experiment_2_clusters_the_factors_once_each_has_its_draws():
    assert "No IFP unit is committed yet" in ifp.experiment_2([])
    high = [40.0, 42.0, 44.0, 46.0]  # shape-like: freezes early
    low = [3.0, 3.2, 3.4, float("nan")]  # one draw never froze
    units = [_ifp_unit("shape", high), _ifp_unit("pos_x", low)]
    text = ifp.experiment_2(units)
    # every dsprites_full factor is counted, those with no unit yet too
    assert "Not judged yet (draws of 8): orientation 0, pos_x 4, pos_y 0, scale 0, shape 4." in text
    assert "| shape | 4 | 4 | 43 | [40.6, 45.4] |" in text  # median, 10th-90th percentile
    units += [_ifp_unit("shape", high, seed=1), _ifp_unit("pos_x", low, seed=1)]
    text = ifp.experiment_2(units)
    assert "| pos_x | 8 | 6 | 3.2 |" in text
    assert "Not judged yet (draws of 8): orientation 0, pos_y 0, scale 0." in text
    assert "Clusters" not in text and ifp.e2_summary(units) is None
    like = {"scale": high, "orientation": low, "pos_y": low}
    units += [_ifp_unit(f, values, seed) for f, values in like.items() for seed in (0, 1)]
    text = ifp.experiment_2(units)
    assert "Not judged yet" not in text
    assert "Clusters (factors whose 10th-90th percentiles overlap, chained by falling" in text
    assert "} [40, 46]; {" in text and "} [3, 3.4]." in text
    assert "Stage betas between them: 11.7, 1." in text  # sqrt(40 * 3.4): the gap's midpoint
    # why factors share a cluster: each factor's 90th/10th percentile against the median gaps
    assert "Some factors share a cluster at this budget" in text
    assert "a factor of 1.1-1.1 in beta" in text and "medians (a factor of 1-13)" in text
    # pairs by falling median (shape, scale, pos_x, orientation, pos_y) and the extremes;
    # 43 / 3.2 = 13.4 over the runs that froze, every pair of draws on the same side
    assert "| shape | scale | 1 | [" in text
    assert "| scale | pos_x | 13.4 | [" in text and "| pos_x | orientation | 1 | [" in text
    assert text.count("| higher |") == 2 and "| shape | pos_y | 13.4 |" in text
    assert ifp.e2_summary(units) == (
        "IFPs (section 2): 2 clusters of factors at this budget; pairs whose IFPs are separated: "
        "scale higher than pos_x (ratio 13.4), shape higher than pos_y (ratio 13.4)."
    )
    # the hand schedule's betas (70, 30, 12, 1): 30 admits the high pair, 1 the low three
    hand = "| DEFT (hand schedule, configs/dsprites_deft.yaml) |"
    assert f"{hand} 0 | 70 | nothing | none |" in text
    assert f"{hand} 1 | 30 | shape, scale | none |" in text
    assert f"{hand} 3 | 1 | pos_x, orientation, pos_y | none |" in text
    assert "| DEFT (searched) | 0 |" in text
    assert "annealing settings `--steps 2000 --gamma 5`." in text
    units.append(_ifp_unit("scale", high, settings="--steps 2000"))
    assert "`--steps 2000`; `--steps 2000 --gamma 5` (the units differ!)" in (
        ifp.experiment_2(units)
    )


def test_experiment_2_says_why_when_every_factor_falls_in_one_cluster():
    spread = [5.0, 10.0, 20.0, 40.0]  # every factor alike: intervals chain into one cluster
    units = [_ifp_unit(f, spread, seed) for f in FACTOR_NAMES for seed in (0, 1)]
    text = ifp.experiment_2(units)
    assert "Stage betas between them: 1." in text
    # 90th over 10th percentile of 5, 10, 20, 40 (twice each): 40 / 5 = 8; equal medians
    assert "Every factor falls in one cluster at this budget" in text
    assert "a factor of 8-8 in beta" in text and "medians (a factor of 1-1)" in text
    assert "higher |" not in text
    assert ifp.e2_summary(units) == (
        "IFPs (section 2): 1 cluster of factors at this budget; pairs whose IFPs are separated: "
        "none."
    )


@pytest.mark.skipif(not DEFT_PARTS, reason="no DEFT bank part is committed yet")
def test_a_bad_correlation_or_scale_is_one_clear_error():
    config, source = retrain.arm_config("deft", retrain.SEEDS[0], correlation=0.9)
    assert config["data"] == {"name": "correlated_dsprites", "options": {"correlation": 0.9}}
    assert source["correlation"] == 0.9
    with pytest.raises(ConfigError, match="correlation == 1.5, must be a number in"):
        retrain.arm_config("deft", retrain.SEEDS[0], correlation=1.5)
    with pytest.raises(ConfigError, match="--scale 0: must be a whole number >= 1"):
        retrain._scaled(config, 0)


def test_the_units_line_lists_a_few_commits_and_counts_many():
    from benchmarks.reproduce.committed.units import LISTED_COMMITS, provenance

    def rows(n: int) -> list[dict]:
        machine = {"cpu": "cpu", "logical_cpus": 2}
        return [
            {"commit": f"{i:x}".ljust(40, "0"), "machine": machine, "wall_s": 60.0}
            for i in range(n)
        ]

    few = provenance(rows(LISTED_COMMITS))
    assert "commit(s) 000000000000, 100000000000, 200000000000," in few
    assert f"{LISTED_COMMITS} unit files" in few and "3 min of unit wall time" in few
    many = provenance(rows(LISTED_COMMITS + 1) * 2)
    assert f"{LISTED_COMMITS + 1} commits (" in many and "100000000000" not in many
    assert f"{2 * (LISTED_COMMITS + 1)} unit files" in many


@pytest.mark.slow
def test_a_real_ifp_unit_file_is_what_experiment_2_reads(tmp_path):
    # The campaign's ten IFP units run this at 2,000 steps; a short run checks the file they leave.
    out = tmp_path / "shape-seed3.json"
    tiny = ["--steps", "80", "--gamma", "5", "--width", "8", "--batch-size", "32"]
    unit = ifp_draws.unit("shape", draws=2, seed=3, out=out, settings=tiny)
    assert json.loads(out.read_text())["runs"] == json.loads(json.dumps(unit["runs"]))
    assert [r["factor"] for r in unit["runs"]] == ["shape", "shape"]
    assert sorted(unit) == sorted(ifp.UNIT_KEYS)  # what the report requires of a unit file
    assert [c["draw"] for c in unit["curves"]] == [0, 1] and unit["curves"][0]["step"][-1] == 79
    text = ifp.experiment_2([unit])
    assert "| shape | 2 |" in text and "pos_y 0, scale 0, shape 2." in text
    assert "annealing settings `--steps 80 --gamma 5 --width 8 --batch-size 32`." in text
    assert ifp.ifp_figure([unit], tmp_path / "ifp.png").read_bytes().startswith(b"\x89PNG")


def test_a_broken_unit_file_is_one_line_exit_2_and_no_report(tmp_path, monkeypatch, capsys):
    from benchmarks.reproduce.__main__ import _files_main

    row = json.loads(next(iter(sorted(retrain.RESULTS.glob("*.json")))).read_text())
    assert sorted(row) == sorted(retrain.ROW_KEYS)  # what retrain.unit writes
    folder = tmp_path / "e4"
    folder.mkdir()
    monkeypatch.setattr(retrain, "CORRELATED_RESULTS", folder)
    out = tmp_path / "RESULTS.md"
    no_scores = json.dumps({k: v for k, v in row.items() if k != "scores"})
    cases = [('{"arm": "deft", ', "cannot be read (Expecting"), (no_scores, "lacks scores"),
             ("[1, 2]", "is not a JSON object")]  # fmt: skip
    for text, says in cases:
        (folder / "deft-c0.9-seed1.json").write_text(text)
        assert _files_main(["report", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"unit file {folder / 'deft-c0.9-seed1.json'} " in err and says in err, err
        assert err.count("\n") == 1 and "git checkout --" in err
        assert not out.exists()
