"""docs/RESULTS.md from committed files alone: campaign unit files and curve banks.

    python -m benchmarks.reproduce report [--out docs/RESULTS.md]

No MLflow store and no training: every number is read or recomputed (seeded) from files under
benchmarks/, so running it again on a clean clone changes nothing. A section whose units are not
committed yet says which are missing instead of showing a number. Each table names the commit,
machine and cost of the units it rests on.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deft_tune import report_keys as keys
from deft_tune.errors import ConfigError
from deft_tune.fileio import atomic_write_text
from deft_tune.search.replay.bankfile import read_banks
from deft_tune.tables import markdown_table

from . import retrain
from .intervals import (
    RESAMPLES,
    SEED,
    Claim,
    bootstrap_coverage,
    bootstrap_mean,
    bracket,
    paired_claim,
    resamples,
    t_interval,
    unpaired_claim,
)
from .markdown import pm

ROOT = retrain.ROOT
RESULTS_DOC = ROOT / "docs" / "RESULTS.md"
DEFT_BANK = "benchmarks/banks/dsprites/part-*.parquet"
IFP_RESULTS = ROOT / "benchmarks" / "results" / "ifp"
IFP_DRAWS = 8  # per factor before experiment 2 is judged (the minimum)
IFP_FIGURE = ROOT / "docs" / "results" / "ifp_draws.png"
REPLAYS = 200
MIG_GOAL = 0.30


def _provenance(rows: Sequence[dict[str, Any]]) -> str:
    commits = sorted({r["commit"][:12] for r in rows})
    cpus = sorted({f"{r['machine']['cpu']} ({r['machine']['logical_cpus']} CPUs)" for r in rows})
    minutes = sum(r["wall_s"] for r in rows) / 60
    files = f"{len(rows)} unit file{'s' if len(rows) != 1 else ''}"
    return (f"{files}, commit(s) {', '.join(commits)}, machine(s) {'; '.join(cpus)}, "
            f"{minutes:.0f} min of unit wall time")  # fmt: skip


# --- experiment 1 ------------------------------------------------------------------------------


def experiment_1(
    rows: list[dict[str, Any]],
    scaled: Sequence[dict[str, Any]] = (),
    banks: str = "",
    reruns: Sequence[dict[str, Any]] = (),
) -> str:
    lines = ["## 1. Each method's searched best, retrained on fresh seeds", ""]
    repeats = _repeats(rows, reruns)
    stale = [r for r in rows if not _current(r)]
    by_arm = _arms(rows)
    missing = [k for k, mine in by_arm.items() if len(mine) < len(retrain.SEEDS)]
    lines += [
        "Each arm's schedule is its bank's best by the mean over the trial's seeds of the "
        "objective (a winner picked on one seed is biased up), retrained with seeds "
        f"{', '.join(map(str, retrain.SEEDS))} (none within 16 of a bank seed), the bank's "
        "steps, standard-setting scores (`python -m benchmarks.reproduce retrain`). "
        f"Differences: bootstrap 95% intervals ({RESAMPLES:,} resamples of each arm's seeds, "
        f'seed {SEED}) and Welch\'s t 95% intervals; "higher" only where both exclude 0 '
        "(the header says why). The last column feeds "
        "each retrained run's recorded signals to the live IFP stopper with "
        "search_spaces/dsprites_full.yaml's settings: where it would have ended the run in a "
        "search (units from before 2026-12-06 did not record the signals; where such a unit "
        "was trained again later and gave every score to the last digit, the signals of that "
        "same run are read from its rerun).",
        "",
    ]
    if banks:
        lines += [banks, ""]
    table = []
    for key, mine in by_arm.items():
        if not mine:
            continue
        source = mine[0]["source"]
        line = {"arm": retrain.ARMS[key].label, "seeds": len(mine),
                "from": source.get("trial", source.get("config", ""))}  # fmt: skip
        for score, name in retrain.SCORES:
            line[name] = pm([r["scores"][score] for r in mine])
        line["IFP stopper would stop"] = stopper_verdicts([_with_signals(r, repeats) for r in mine])
        table.append(line)
    if table:
        lines += [markdown_table(table), "", f"Units: {_provenance(rows)}.", ""]
        lines += _reproduced_line(repeats)
        lines += _differences(by_arm)
        lines += _steps_trend(by_arm["deft"], [r for r in scaled if _current(r)])
    if stale:
        lines += ["", "Left out, their bank has grown since they trained or they ran for other "
                  "steps (rerun them: delete the files and run the campaign): "
                  + ", ".join(f"{r['arm']} seed {r['seed']}" for r in stale) + "."]  # fmt: skip
    if missing:
        lines += ["", "Not yet committed (arm: seeds done of "
                  f"{len(retrain.SEEDS)}): "
                  + ", ".join(f"{k} {len(by_arm[k])}" for k in missing)
                  + "; each needs its bank (benchmarks/campaign.yaml). No claim against an "
                  "arm is judged before it has all its seeds."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _unit_key(row: dict[str, Any]) -> tuple:
    return row["arm"], row["seed"], row.get("correlation"), row.get("scale", 1)


def _repeats(rows: Sequence[dict[str, Any]], reruns: Sequence[dict[str, Any]]) -> list[tuple]:
    """(unit, its rerun) for every rerun of a committed unit (the same arm and seed)."""
    units = {_unit_key(r): r for r in rows}
    pairs = [(units.get(_unit_key(again)), again) for again in reruns]
    return [(unit, again) for unit, again in pairs if unit is not None]


def _mismatch(unit: dict[str, Any], again: dict[str, Any]) -> str:
    """Why a rerun is not the same run as its unit; "" where config and every score agree."""
    if unit["config"] != again["config"]:
        return "another config"
    return "" if unit["scores"] == again["scores"] else "other scores"


def _with_signals(row: dict[str, Any], repeats: list[tuple]) -> dict[str, Any]:
    """``row``, with the history of a rerun that reproduced it where it kept no signals itself."""
    if _has_signals(row):
        return row
    same = [again for unit, again in repeats if unit is row and not _mismatch(unit, again)]
    return {**row, "history": same[0]["history"]} if same else row


def _has_signals(row: dict[str, Any]) -> bool:
    return any(keys.STAGE in point for point in row.get("history", ()))


def _reproduced_line(repeats: list[tuple]) -> list[str]:
    """Whether units trained again later (benchmarks/results/e1_rerun/) gave the same scores."""
    if not repeats:
        return []
    differ = [f"{unit['arm']} seed {unit['seed']} ({_mismatch(unit, again)})"
              for unit, again in repeats if _mismatch(unit, again)]  # fmt: skip
    line = (f"Trained again later with the same command "
            f"(benchmarks/results/e1_rerun/: {_provenance([a for _, a in repeats])}): "
            f"{len(repeats) - len(differ)} of {len(repeats)} gave the same config and every "
            "score to the last digit")  # fmt: skip
    return [line + (f"; not: {', '.join(differ)}." if differ else "."), ""]


def stopper_verdicts(rows: Sequence[dict[str, Any]]) -> str:
    """Where the live IFP stopper (dsprites_full.yaml's settings) ends each row's run, fed its
    recorded signals: each verdict with its count; rows that kept no signals are counted apart."""
    from benchmarks.deft_modes import stopper_verdict

    verdicts = Counter(
        stopper_verdict({"reports": r["history"], "config": r["config"]})
        for r in rows
        if _has_signals(r)
    )
    told = [f"{'never' if v == '-' else v} ({n})" for v, n in sorted(verdicts.items())]
    missing = len(rows) - sum(verdicts.values())
    return "; ".join(told + ([f"not recorded ({missing})"] if missing else []))


def bank_table() -> str:
    """The committed banks the searched arms come from: size, cost, spread and best schedule."""
    table = []
    for folder in sorted({arm.bank for arm in retrain.ARMS.values()}):
        parts = sorted(retrain.BANKS.glob(f"{folder}/part-*.parquet"))
        if not parts:
            continue
        bank = read_banks(parts)
        means = [retrain.seed_mean(t.replica_finals) for t in bank.trials]
        best = retrain.best_trial(bank)
        seeds = sorted({len(t.replica_finals) for t in bank.trials})
        wall = sum(p.wall_s or 0.0 for p in bank.parts) / 60
        table.append({
            "bank": f"benchmarks/banks/{folder}", "method": bank.space.method,
            "parts": len(parts), "trials x seeds": f"{len(bank.trials)} x "
            + "/".join(map(str, seeds)), "steps": bank.budget["steps_per_trial"],
            "recorded (min)": f"{wall:.0f}",
            f"seed-mean {bank.objective}": f"{min(means):.3f}-{max(means):.3f}",
            "best (seed mean)": f"{best.trial_id} ({retrain.seed_mean(best.replica_finals):.3f})",
        })  # fmt: skip
    if not table:
        return ""
    return ("The banks (every stopper off, the same data and steps; recording wall time beside "
            "other work):\n\n" + markdown_table(table))  # fmt: skip


def _current(row: dict[str, Any]) -> bool:
    """Whether the row's schedule was picked from the bank as committed now, and trained for
    the bank's steps (times the row's scale; a shortened smoke run is not evidence)."""
    parts = sorted(p.name for p in (retrain.BANKS / retrain.ARMS[row["arm"]].bank).glob("part-*"))
    bank_steps = row["source"].get("bank_steps", row["steps"])
    return row["source"].get("bank_parts") == parts and row["steps"] == bank_steps * row.get(
        "scale", 1
    )


def _arms(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Experiment 1's current units by arm (a unit whose bank grew since is left out)."""
    return {k: [r for r in rows if r["arm"] == k and _current(r)] for k in retrain.ARMS}


def e1_claims(by_arm: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, Claim]]:
    """(other arm, score, searched DEFT minus that arm) for every arm with all its seeds."""
    complete = {k: v for k, v in by_arm.items() if len(v) >= len(retrain.SEEDS)}
    if "deft" not in complete:
        return []
    return [(retrain.ARMS[other].label, name,
             unpaired_claim([r["scores"][score] for r in complete["deft"]],
                            [r["scores"][score] for r in complete[other]]))
            for other in complete if other != "deft"
            for score, name in retrain.SCORES]  # fmt: skip


def _differences(by_arm: dict[str, list[dict[str, Any]]]) -> list[str]:
    rows = [{"DEFT (searched) minus": other, "score": name,
             "difference of means": f"{claim.mean:+.3f}", "bootstrap 95%": bracket(claim.bootstrap),
             "Welch t 95%": bracket(claim.t), "DEFT is": claim.verdict()}
            for other, name, claim in e1_claims(by_arm)]  # fmt: skip
    lines = [markdown_table(rows), ""] if rows else []
    migs = _complete_migs(by_arm)
    if migs:
        lines.append(f"MIG >= {MIG_GOAL} at this budget: {mig_goal(migs)} (searched DEFT's mean "
                     f"{statistics.fmean(migs):.3f}, bootstrap "
                     f"{bracket(bootstrap_mean(migs), False)}, t "
                     f"{bracket(t_interval(migs), False)} over {len(migs)} seeds).")  # fmt: skip
    return lines


def _complete_migs(by_arm: dict[str, list[dict[str, Any]]]) -> list[float]:
    """Searched DEFT's MIG per seed, once it has all its seeds."""
    deft = by_arm.get("deft", [])
    return [r["scores"]["mig"] for r in deft] if len(deft) >= len(retrain.SEEDS) else []


def mig_goal(migs: Sequence[float]) -> str:
    """Whether both 95% intervals of the mean MIG (bootstrap, t) lie above MIG_GOAL, both below
    it, or one holds it."""
    intervals = (bootstrap_mean(migs), t_interval(migs))
    if all(low >= MIG_GOAL for low, _ in intervals):
        return "reached"
    if all(high < MIG_GOAL for _, high in intervals):
        return "not reached"
    return f"not settled (an interval holds {MIG_GOAL})"


def _steps_trend(deft: list[dict[str, Any]], scaled: list[dict[str, Any]]) -> list[str]:
    """Unless searched DEFT reaches the MIG goal with all its seeds: its MIG at 1x, 2x, 4x steps."""
    if len(deft) < len(retrain.SEEDS) or mig_goal([r["scores"]["mig"] for r in deft]) == "reached":
        return []
    lines = ["", f"The trend with more steps (searched DEFT's schedule, its stages keeping their "
             f"share of the run; `retrain --arm deft --scale K`, seeds "
             f"{', '.join(map(str, retrain.SCALED_SEEDS))}):", ""]  # fmt: skip
    table = [{"steps": f"{deft[0]['steps']:,}", "seeds": len(deft),
              "MIG": pm([r["scores"]["mig"] for r in deft])}]  # fmt: skip
    for scale in retrain.STEP_SCALES:
        mine = [r for r in scaled if r["arm"] == "deft" and r["scale"] == scale]
        if mine:
            table.append({"steps": f"{mine[0]['steps']:,}", "seeds": len(mine),
                          "MIG": pm([r["scores"]["mig"] for r in mine])})  # fmt: skip
    lines += [markdown_table(table), ""]
    if len(table) < 1 + len(retrain.STEP_SCALES):
        lines.append("Not all of the longer runs are committed yet (benchmarks/campaign.yaml).")
    return lines


# --- experiment 2 ------------------------------------------------------------------------------


def experiment_2(units: list[dict[str, Any]]) -> str:
    from deft_tune.freezing.suggest import suggest_schedule, summarize

    lines = ["## 2. Information freezing points: clusters and the stage betas", ""]
    runs = [run for unit in units for run in unit["runs"]]
    lines += [
        "The annealing test of dsprites_full (`python -m benchmarks.ifp_draws`: per factor, "
        "draws of the other factors held fixed while beta falls; docs/ifp.md). Per factor: the "
        "median IFP over the runs that froze, their 10th-90th percentile (the interval the "
        "clusters are chained on, as `deft-tune ifp --suggest` does) and a bootstrap 95% "
        f"interval of the median ({RESAMPLES:,} resamples of the runs, seed {SEED}). Judged "
        f"once every factor has {IFP_DRAWS} draws.",
        "",
    ]
    if not runs:
        return "\n".join(lines + ["No IFP unit is committed yet (benchmarks/campaign.yaml).", ""])
    factors, never = summarize(runs)
    per_factor = {}
    for run in runs:
        per_factor.setdefault(run["factor"], []).append(run["ifp"])
    table = [{"factor": f.factor, "runs": f.runs, "froze": f.frozen,
              "median IFP": f"{f.median:.3g}", "10th-90th pct": f"[{f.low:.3g}, {f.high:.3g}]",
              "median's 95% interval": _median_interval(per_factor[f.factor])}
             for f in factors]  # fmt: skip
    lines += [markdown_table(table), "", f"Units: {_provenance(units)}; {_ifp_settings(units)}.",
              ""]  # fmt: skip
    if any(unit.get("curves") for unit in units):
        lines += [f"![IFP per factor and KL against beta]({IFP_FIGURE.relative_to(ROOT / 'docs')})",
                  ""]  # fmt: skip
    if never:
        lines += [f"Never froze in any run: {', '.join(never)}.", ""]
    short = {f: len(v) for f, v in per_factor.items() if len(v) < IFP_DRAWS}
    if short:
        return "\n".join(
            lines
            + [
                f"Not judged yet (draws of {IFP_DRAWS}): "
                + ", ".join(f"{f} {n}" for f, n in sorted(short.items()))
                + ".",
                "",
            ]
        )
    suggestion = suggest_schedule(runs)
    clusters = "; ".join(f"{{{', '.join(c.factors)}}} [{c.low:.3g}, {c.high:.3g}]"
                         for c in suggestion.clusters)  # fmt: skip
    lines += [
        f"Clusters (factors whose intervals overlap, by falling IFP): {clusters}. Stage betas "
        f"between them: {', '.join(f'{b:.3g}' for b in suggestion.stage_betas)}.",
        "",
        f"Stage betas used: {_stage_betas()}.",
        "",
    ]
    return "\n".join(lines)


def ifp_figure(units: list[dict[str, Any]], out: Path) -> Path | None:
    """docs/RESULTS.md's experiment-2 figure from the units' thinned curves (None: no curves):
    each factor's IFPs and median, and every run's KL against the falling beta."""
    import matplotlib.pyplot as plt

    from deft_tune.freezing.annealing import AnnealingResult
    from deft_tune.freezing.loop import Curve
    from deft_tune.freezing.report import plot_ifp
    from deft_tune.plots import save_figure

    results = []
    for unit in units:
        curves = {c["draw"]: c for c in unit.get("curves", ())}
        for run in unit["runs"] if curves else ():
            c = curves[run["draw"]]
            curve = Curve(np.array(c["step"]), np.array(c["beta"]), np.array(c["kl"])[:, None],
                          np.full(len(c["step"]), np.nan))  # fmt: skip
            results.append(AnnealingResult(run["dataset"], run["factor"], run["draw"],
                                           run["seed"], run["ifp"], run["ifp_step"],
                                           run["steps"], run["final_kl"], curve))  # fmt: skip
    if not results:
        return None
    title = f"dsprites_full: {len(results)} annealing runs from {len(units)} committed units"
    figure = plot_ifp(results, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(figure, out)
    plt.close(figure)
    return out


def _ifp_settings(units: list[dict[str, Any]]) -> str:
    """The annealing settings the units ran with (their commands past the factor and seed)."""
    tails = sorted({re.sub(r".*--seed \S+ ?", "", u["command"]) for u in units})
    listed = "; ".join(f"`{t}`" for t in tails)
    return f"annealing settings {listed}" + (" (the units differ!)" if len(tails) > 1 else "")


def _median_interval(ifps: list[float]) -> str:
    found = np.array([v for v in ifps if math.isfinite(v)])
    if found.size < 2:
        return "-"
    rng = np.random.default_rng(SEED)
    medians = np.median(resamples(found, rng), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return f"[{low:.3g}, {high:.3g}]"


def _stage_betas() -> str:
    """The searched DEFT schedule's and the hand schedule's stage betas."""
    found = []
    for key in ("deft", "hand"):
        try:
            config, _ = retrain.arm_config(key, retrain.SEEDS[0])
        except ConfigError as exc:  # its bank is not committed yet
            found.append(f"{retrain.ARMS[key].label}: unavailable ({exc})")
            continue
        betas = [stage["beta"] for stage in config["schedule"]["stages"]]
        found.append(f"{retrain.ARMS[key].label} {', '.join(f'{b:.3g}' for b in betas)}")
    return "; ".join(found)


# --- experiment 3 ------------------------------------------------------------------------------

CAPTURED = 0.05  # NMI1 at the last evaluation from which a factor counts as captured


def diffusion(history: list[dict[str, float]]) -> float:
    """NMI2/NMI1 at the last evaluation, averaged over the factors the model captured (NMI1 >=
    CAPTURED); NaN when it captured none (a model that encodes nothing shows no diffusion, which
    is no evidence either way)."""
    if not history:
        return math.nan
    last = history[-1]
    factors = [k.removeprefix("info/nmi1/") for k in last if k.startswith("info/nmi1/")]
    ratios = [last[f"info/nmi2/{f}"] / last[f"info/nmi1/{f}"] for f in factors
              if last[f"info/nmi1/{f}"] >= CAPTURED and f"info/nmi2/{f}" in last]  # fmt: skip
    return statistics.fmean(ratios) if ratios else math.nan


def experiment_3(rows: list[dict[str, Any]]) -> str:
    lines = ["## 3. Information diffusion: the second-best latent's share of each factor", ""]
    by_arm = _with_history(rows)
    lines += [
        "Read from experiment 1's units: each retrained model's last evaluation of NMI1 and "
        "NMI2, the largest and second largest normalised mutual information between a factor "
        "and one latent, on the evaluation probe. A model's diffusion is NMI2/NMI1 averaged over "
        f"the factors it captured (NMI1 >= {CAPTURED}); the paper's claim is that DEFT diffuses "
        "less than beta-VAE. Seeds are shared by the arms, so differences pair by seed "
        f"(95% intervals of the mean paired difference: bootstrap, {RESAMPLES:,} resamples, "
        "and Student's t).",
        "",
    ]
    table = [{"arm": retrain.ARMS[k].label, "seeds": len(mine),
              "diffusion (NMI2/NMI1)": pm([diffusion(r["history"]) for r in mine]),
              "factors captured": pm([_captured(r["history"]) for r in mine])}
             for k, mine in by_arm.items() if mine]  # fmt: skip
    if table:
        lines += [markdown_table(table), ""]
    pairs = _diffusion_pairs(rows)
    if len(pairs) < len(retrain.SEEDS):
        wait = (f"Not judged yet: {len(pairs)} of {len(retrain.SEEDS)} seeds have both a DEFT "
                "and a beta-VAE unit with a diffusion (experiment 1's units, "
                "benchmarks/campaign.yaml).")  # fmt: skip
        return "\n".join([*lines, wait, ""])
    claim = paired_claim(pairs)
    lines.append(f"DEFT minus beta-VAE, paired over {len(pairs)} seeds: {claim.mean:+.3f}, "
                 f"bootstrap {bracket(claim.bootstrap)}, t {bracket(claim.t)}; DEFT's diffusion "
                 f"is {claim.verdict()}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def _with_history(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {k: [r for r in rows if r["arm"] == k and _current(r) and r.get("history")]
            for k in retrain.ARMS}  # fmt: skip


def _diffusion_pairs(rows: Sequence[dict[str, Any]]) -> list[float]:
    """DEFT minus beta-VAE diffusion for each seed both arms have."""
    return _paired(_with_history(rows), "deft", "beta_vae", lambda r: diffusion(r["history"]))


def e3_claim(rows: Sequence[dict[str, Any]]) -> Claim | None:
    """DEFT minus beta-VAE diffusion, paired by seed, once every seed has both."""
    pairs = _diffusion_pairs(rows)
    return paired_claim(pairs) if len(pairs) >= len(retrain.SEEDS) else None


def _captured(history: list[dict[str, float]]) -> float:
    last = history[-1] if history else {}
    return float(sum(v >= CAPTURED for k, v in last.items() if k.startswith("info/nmi1/")))


def _paired(by_arm: dict, a: str, b: str, value) -> list[float]:
    """value(row of a) - value(row of b) for each seed both arms have, where both are finite."""
    theirs = {r["seed"]: value(r) for r in by_arm.get(b, [])}
    out = []
    for row in by_arm.get(a, []):
        mine, other = value(row), theirs.get(row["seed"], math.nan)
        if math.isfinite(mine) and math.isfinite(other):
            out.append(mine - other)
    return out


# --- experiment 4 ------------------------------------------------------------------------------


def experiment_4(rows: list[dict[str, Any]]) -> str:
    lines = ["## 4. Correlated factors: DEFT against beta-TCVAE as the correlation grows", ""]
    strengths = retrain.CORRELATIONS
    cells = _cells(rows)
    lines += [
        "Each method's experiment-1 schedule (its bank's best on independent factors) trained on "
        "correlated dSprites, orientation tied to pos_x with strength "
        f"{' and '.join(map(str, strengths))}, seeds "
        f"{', '.join(map(str, retrain.CORRELATED_SEEDS))} "
        "(`python -m benchmarks.reproduce retrain --arm ARM --seed S --correlation C`), standard "
        "scores. The paper's claim: a total-correlation penalty (beta-TCVAE) suffers from "
        "correlated factors and DEFT does not, so DEFT's lead grows with the correlation. "
        "Differences pair by seed, each with its bootstrap and Student's t 95% interval over "
        "the seeds; with 3 seeds the t interval is wide and the bootstrap's too narrow (the "
        "header says why), so only a difference both exclude 0 from is called.",
        "",
    ]
    table = [{"correlation": c, "arm": retrain.ARMS[a].label, "seeds": len(mine),
              **{name: pm([r["scores"][key] for r in mine]) for key, name in retrain.SCORES}}
             for (a, c), mine in cells.items() if mine]  # fmt: skip
    if table:
        lines += [markdown_table(table), "", f"Units: {_provenance(sum(cells.values(), []))}.", ""]
    short = _short_cells(cells)
    if short:
        return "\n".join(
            lines
            + [
                f"Not judged yet (seeds done of {len(retrain.CORRELATED_SEEDS)}): "
                + ", ".join(short)
                + " (benchmarks/campaign.yaml).",
                "",
            ]
        )
    lines += [markdown_table(_correlated_differences(cells)), ""]
    return "\n".join(lines) + "\n"


def _cells(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, float], list[dict[str, Any]]]:
    """Experiment 4's current units by (arm, correlation)."""
    return {(a, c): [r for r in rows if r["arm"] == a and r["correlation"] == c and _current(r)]
            for a in retrain.CORRELATED_ARMS for c in retrain.CORRELATIONS}  # fmt: skip


def _short_cells(cells: dict) -> list[str]:
    return [f"{a} at {c}: {len(m)}" for (a, c), m in cells.items()
            if len(m) < len(retrain.CORRELATED_SEEDS)]  # fmt: skip


def e4_claims(cells: dict) -> list[tuple[str, str, Claim]]:
    """(score, what, claim): DEFT - beta-TCVAE per strength and its growth from the weaker to
    the stronger, paired by seed."""
    weak, strong = retrain.CORRELATIONS[0], retrain.CORRELATIONS[-1]
    out = []
    for key, name in retrain.SCORES:
        gap = {c: _seed_gaps(cells, c, key) for c in retrain.CORRELATIONS}
        growth = {s: gap[strong][s] - gap[weak][s] for s in gap[strong] if s in gap[weak]}
        for label, values in ((f"DEFT minus beta-TCVAE at {weak}", gap[weak]),
                              (f"DEFT minus beta-TCVAE at {strong}", gap[strong]),
                              (f"its growth from {weak} to {strong}", growth)):  # fmt: skip
            out.append((name, label, paired_claim(list(values.values()))))
    return out


def _correlated_differences(cells: dict) -> list[dict[str, str]]:
    return [{"score": name, "paired over seeds": label, "mean": f"{claim.mean:+.3f}",
             "bootstrap 95%": bracket(claim.bootstrap), "t 95%": bracket(claim.t),
             "it is": claim.verdict()}
            for name, label, claim in e4_claims(cells)]  # fmt: skip


def _seed_gaps(cells: dict, correlation: float, key: str) -> dict[int, float]:
    deft = {r["seed"]: r["scores"][key] for r in cells[("deft", correlation)]}
    return {
        r["seed"]: deft[r["seed"]] - r["scores"][key]
        for r in cells[("beta_tcvae", correlation)]
        if r["seed"] in deft
    }


# --- experiment 5 ------------------------------------------------------------------------------


def experiment_5(parts: list[str]) -> str:
    from deft_tune.search.replay.bankfile import read_banks

    lines = ["## 5. The IFP stopper and ASHA, replayed on the committed DEFT bank", ""]
    if not parts:
        return "\n".join(lines + ["No DEFT bank part is committed yet.", ""])
    bank = read_banks([ROOT / p for p in parts])
    whole, half = _replays(bank, parts, None), _replays(bank, parts, len(bank.trials) // 2)
    noise = whole.spread.noise_of_mean if whole.spread else math.nan
    cost = sum(p.wall_s or 0 for p in bank.parts) / 60
    commits = sorted({p.commit[:12] for p in bank.parts})
    lines += [
        f"{len(parts)} committed parts: {len(bank.trials)} trials, each with its seeds, "
        f"{bank.budget['steps_per_trial']:,} steps, every stopper off (recorded by commit(s) "
        f"{', '.join(commits)} in {cost:.0f} min of search wall time). Each rule is replayed "
        f"{REPLAYS} times in random trial orders, on the whole bank and on random searches of "
        f"half its trials (where the best trial is not always present, so regret varies). "
        "Median over replays [bootstrap 95% interval]; regret is the bank's best objective minus "
        "the one the rule returns (with half the trials `none` has regret too: the best trial "
        "is not always drawn), and a rule's own cost is its regret beyond `none`'s in the same "
        f"replay; the seed noise of a schedule's mean is {noise:.4f}.",
        "",
        f"`{whole.command}`, and the same with `--trials {len(bank.trials) // 2}`:",
        "",
        markdown_table(_rule_rows(whole, "all", noise) + _rule_rows(half, "half", noise)),
        "",
    ]
    return "\n".join(lines)


def _replays(bank: Any, parts: list[str], trials: int | None) -> Any:
    from deft_tune.search.replay.command import replay_bank
    from deft_tune.search.replay.options import ReplayOptions

    rules = ("none", "ifp", "asha", "ifp+asha")
    options = ReplayOptions(experiment=None, banks=tuple(parts), rules=rules, replays=REPLAYS,
                            seed=SEED, trials=trials, log_mlflow=False)  # fmt: skip
    return replay_bank(bank, options)


def _rule_rows(result: Any, trials: str, noise: float) -> list[dict[str, str]]:
    from deft_tune.search.replay.summary import describe, regret_beyond_none

    rows = []
    for s in result.summaries:
        extra = regret_beyond_none(result, s.rule)
        beyond = describe(extra, SEED)
        lost = 100 * sum(e > 0 for e in extra) / len(extra) if extra else math.nan
        within = beyond is not None and beyond.median_ci[1] <= noise
        rows.append({"trials per search": trials, "rule": s.rule,
                     "savings % of trial-steps": s.savings.text(3, 100),
                     "regret": s.regret.text() if s.regret else "-",
                     "regret beyond none": beyond.text() if beyond else "-",
                     "replays it lost to none (%)": f"{lost:.0f}",
                     "trials stopped (median)": f"{s.stopped:g}",
                     "regret's interval within seed noise": "yes" if within else "no"})  # fmt: skip
    return rows


# --- the document ------------------------------------------------------------------------------


def render(
    rows: list[dict[str, Any]],
    parts: list[str],
    correlated: list[dict[str, Any]] = (),
    ifp_units: list[dict[str, Any]] = (),
    scaled: list[dict[str, Any]] = (),
    banks: str = "",
    reruns: list[dict[str, Any]] = (),
) -> str:
    head = [
        "# Results: the DEFT paper's claims and the product's own, from committed files",
        "",
        "Generated by `python -m benchmarks.reproduce report` from files committed under "
        "benchmarks/ alone (campaign unit files and curve banks): running it again on a clean "
        "clone changes nothing. Long work runs as campaign units "
        "(`python -m benchmarks.campaign status`); a section says which units it still waits "
        "for instead of showing a number.",
        "",
        scoring_cost([*rows, *correlated, *scaled]),
        "",
        intervals_note(),
        "",
        "The 2026-11-29 report, [docs/paper-cpu/RESULTS.md](paper-cpu/RESULTS.md), rests on one "
        "seed per trial and an MLflow store that no longer exists: read it as a pilot, not as "
        "evidence.",
        "",
    ]
    sections = (
        summary(rows, correlated),
        experiment_1(rows, scaled, banks, reruns),
        experiment_2(list(ifp_units)),
        experiment_3(rows),
        experiment_4(list(correlated)),
        experiment_5(parts),
    )
    text = "\n".join(head) + "\n" + "\n".join(sections)
    return re.sub(r"\n{3,}", "\n\n", text)  # sections join with one blank line, never two


def summary(rows: list[dict[str, Any]], correlated: Sequence[dict[str, Any]]) -> str:
    """Every comparison judged so far, one row each, and what is not judged yet."""
    judged: list[dict[str, str]] = []

    def add(claim_text: str, section: str, claim: Claim) -> None:
        judged.append({"claim": claim_text, "section": section, "mean": f"{claim.mean:+.3f}",
                       "bootstrap 95%": bracket(claim.bootstrap), "t 95%": bracket(claim.t),
                       "verdict": claim.verdict()})  # fmt: skip

    by_arm = _arms(rows)
    for other, score, claim in e1_claims(by_arm):
        add(f"searched DEFT minus {other}: {score}", "1", claim)
    diffusion_claim = e3_claim(rows)
    if diffusion_claim is not None:
        add("DEFT minus beta-VAE: diffusion (NMI2/NMI1), paired by seed", "3", diffusion_claim)
    cells = _cells(correlated)
    if not _short_cells(cells):
        for score, what, claim in e4_claims(cells):
            add(f"correlated factors, {what}: {score}, paired by seed", "4", claim)
    lines = ["## Summary: every comparison judged so far", ""]
    if judged:
        lines += ["Each row is a difference of means over seeds with its two 95% intervals; the "
                  "sections give the method, the units and the per-arm scores.", "",
                  markdown_table(judged), ""]  # fmt: skip
    migs = _complete_migs(by_arm)
    if migs:
        lines += [f"Searched DEFT's MIG >= {MIG_GOAL} at the bank's steps: {mig_goal(migs)} "
                  "(section 1).", ""]  # fmt: skip
    waiting = [f"section 1, {retrain.ARMS[k].label} ({len(v)} of {len(retrain.SEEDS)} seeds)"
               for k, v in by_arm.items() if len(v) < len(retrain.SEEDS)]  # fmt: skip
    if diffusion_claim is None:
        waiting.append("section 3 (DEFT and beta-VAE seeds)")
    if _short_cells(cells):
        waiting.append("section 4 (correlated units)")
    if waiting:
        lines += [f"Not judged yet: {'; '.join(waiting)}. Sections 2 and 5 measure one thing "
                  "each (IFP clusters; the stoppers' savings and regret) with intervals of their "
                  "own.", ""]  # fmt: skip
    return "\n".join(lines)


def scoring_cost(rows: Sequence[dict[str, Any]]) -> str:
    """The header's line on what scoring one model costs, from the units that timed it."""
    timed = [r["scoring_s"] for r in rows if "scoring_s" in r]
    what = (f"Every retrained model is scored in the standard (disentanglement_lib) setting: "
            f"{', '.join(f'`{m}`' for m in retrain.METRICS)} with "
            f"{retrain.THREADS} threads.")  # fmt: skip
    if timed:
        units = "the one committed unit" if len(timed) == 1 else f"the {len(timed)} committed units"
        low, high = min(timed), max(timed)
        spread = (f"{low:.0f} s" if len(timed) == 1 else
                  f"median {statistics.median(timed):.0f} s, {low:.0f}-{high:.0f} s")  # fmt: skip
        what += (f" Its cost per model, measured in {units} that timed it (last report to "
                 f"scores): {spread} on a machine shared with other work.")  # fmt: skip
    else:
        what += " No committed unit has timed it yet."
    return (
        what + " [docs/metrics.md](metrics.md) (Speed) measures each metric and says why "
        "the suite cannot come down to 60 s here with identical scores."
    )


def intervals_note() -> str:
    """The header's line on how differences are judged, with the bootstrap's measured coverage."""
    covered = {size: bootstrap_coverage(size) for size in (5, 3)}
    return (
        "Every difference is judged over 3-5 seeds per arm. There the percentile bootstrap's 95% "
        f"interval of a mean holds the true mean in only {covered[5]:.0%} of normal samples of 5 "
        f"and {covered[3]:.0%} of 3 (simulated: 2,000 samples, seed {SEED}), because a resample "
        "never spreads wider than the seeds drawn. So each difference also gets Student's t "
        "interval (Welch's for unpaired arms), which keeps its 95%, and is called higher or lower "
        "only where both intervals exclude 0."
    )


def deft_parts() -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob(DEFT_BANK))


def write(out: Path = RESULTS_DOC) -> Path:
    read = retrain.read_rows
    ifp_units = read(IFP_RESULTS)
    text = render(read(), deft_parts(), read(retrain.CORRELATED_RESULTS), ifp_units,
                  read(retrain.SCALED_RESULTS), bank_table(),
                  read(retrain.RERUN_RESULTS))  # fmt: skip
    ifp_figure(ifp_units, IFP_FIGURE)
    atomic_write_text(out, text)
    return out
