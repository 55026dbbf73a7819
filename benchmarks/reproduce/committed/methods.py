"""Experiment 1: each method's searched best (and the hand schedule) retrained on fresh seeds,
the differences DEFT minus each arm, the MIG 0.30 goal with the trend at more steps, where the
live IFP stopper would end each run, and whether reruns give every score back."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from deft_tune import report_keys as keys
from deft_tune.search.replay.bankfile import read_banks
from deft_tune.tables import markdown_table

from .. import retrain
from ..intervals import (
    RESAMPLES,
    SEED,
    Claim,
    bootstrap_mean,
    bracket,
    paired_claim,
    t_interval,
    unpaired_claim,
)
from ..markdown import pm
from .units import arms, current, provenance

MIG_GOAL = 0.30


def experiment_1(
    rows: list[dict[str, Any]],
    scaled: Sequence[dict[str, Any]] = (),
    banks: str = "",
    reruns: Sequence[dict[str, Any]] = (),
) -> str:
    lines = ["## 1. Each method's searched best, retrained on fresh seeds", ""]
    repeats = _repeats(rows, reruns)
    stale = [r for r in rows if not current(r)]
    by_arm = arms(rows)
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
        lines += [markdown_table(table), "", f"Units: {provenance(rows)}.", ""]
        lines += _reproduced_line(repeats)
        lines += _differences(by_arm)
        lines += _steps_trend(by_arm["deft"], [r for r in scaled if current(r)])
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
            f"(benchmarks/results/e1_rerun/: {provenance([a for _, a in repeats])}): "
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
             **claim.columns("difference of means", "Welch t 95%", "DEFT is")}
            for other, name, claim in e1_claims(by_arm)]  # fmt: skip
    lines = [markdown_table(rows), ""] if rows else []
    migs = complete_migs(by_arm)
    if migs:
        lines.append(f"MIG >= {MIG_GOAL} at this budget: {_goal_line(migs)}.")
    return lines


def _goal_line(migs: Sequence[float]) -> str:
    return (f"{mig_goal(migs)}; searched DEFT's mean {statistics.fmean(migs):.3f}, bootstrap "
            f"{bracket(bootstrap_mean(migs), False)}, t {bracket(t_interval(migs), False)} over "
            f"{len(migs)} seeds")  # fmt: skip


def complete_migs(by_arm: dict[str, list[dict[str, Any]]]) -> list[float]:
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


def trend_short(scaled: list[dict[str, Any]]) -> str:
    """The longer runs still missing, as '2x 1, 4x 0' seeds done; '' once all are in."""
    done = {k: sum(r["arm"] == "deft" and r["scale"] == k for r in scaled)
            for k in retrain.STEP_SCALES}  # fmt: skip
    return ", ".join(f"{k}x {n}" for k, n in done.items() if n < len(retrain.SCALED_SEEDS))


def _steps_trend(deft: list[dict[str, Any]], scaled: list[dict[str, Any]]) -> list[str]:
    """Unless searched DEFT reaches the MIG goal with all its seeds: its scores at 1x, 2x, 4x
    steps, and each longer run against the same seed's bank-steps run."""
    migs = complete_migs({"deft": deft})
    if not migs or mig_goal(migs) == "reached":
        return []
    lines = ["", f"The trend with more steps (searched DEFT's schedule, its stages keeping their "
             f"share of the run; `retrain --arm deft --scale K`, seeds "
             f"{', '.join(map(str, retrain.SCALED_SEEDS))}):", ""]  # fmt: skip
    longer = [_at_scale(scaled, scale) for scale in retrain.STEP_SCALES]
    table = [_scores_row(runs) for runs in [deft, *longer] if runs]
    lines += [markdown_table(table), ""]
    claims = trend_claims(deft, scaled)
    if not claims:
        lines.append("Not all of the longer runs are committed yet (benchmarks/campaign.yaml).")
        return lines
    rows = [{"steps": f"{scale}x minus 1x", "score": name,
             **claim.columns("mean", "t 95%", "it is")}
            for scale, name, claim in claims]  # fmt: skip
    lines += [
        f"Each longer run against the bank-steps run of the same seed (paired over seeds "
        f"{', '.join(map(str, retrain.SCALED_SEEDS))}; bootstrap and Student's t 95% intervals):",
        "",
        markdown_table(rows),
        "",
    ]
    for scale in retrain.STEP_SCALES:
        migs = [r["scores"]["mig"] for r in _at_scale(scaled, scale)]
        lines += [f"MIG >= {MIG_GOAL} at {scale}x the steps: {_goal_line(migs)}.", ""]
    return lines


def _scores_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"steps": f"{runs[0]['steps']:,}", "seeds": len(runs)}
    for score, name in retrain.SCORES:
        row[name] = pm([r["scores"][score] for r in runs])
    return row


def trend_claims(
    deft: list[dict[str, Any]], scaled: Sequence[dict[str, Any]]
) -> list[tuple[int, str, Claim]]:
    """(scale, score, its runs minus the bank-steps runs of the same seeds), once every longer
    run is in; [] before."""
    if not deft or trend_short(list(scaled)):
        return []
    base = {r["seed"]: r for r in deft}
    claims = []
    for scale in retrain.STEP_SCALES:
        longer = {r["seed"]: r for r in _at_scale(scaled, scale)}
        seeds = sorted(set(longer) & set(base))
        for score, name in retrain.SCORES:
            differences = [longer[s]["scores"][score] - base[s]["scores"][score] for s in seeds]
            claims.append((scale, name, paired_claim(differences)))
    return claims


def _at_scale(scaled: Sequence[dict[str, Any]], scale: int) -> list[dict[str, Any]]:
    return [r for r in scaled if r["arm"] == "deft" and r["scale"] == scale]
