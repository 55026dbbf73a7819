"""docs/RESULTS.md from committed files alone: campaign unit files and curve banks.

    python -m benchmarks.reproduce report [--out docs/RESULTS.md]

No MLflow store and no training: every number is read or recomputed (seeded) from files under
benchmarks/, so running it again on a clean clone changes nothing. A section whose units are not
committed yet says which are missing instead of showing a number. Each table names the commit,
machine and cost of the units it rests on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deft_tune.fileio import atomic_write_text
from deft_tune.tables import markdown_table

from . import retrain
from .markdown import pm

ROOT = retrain.ROOT
RESULTS_DOC = ROOT / "docs" / "RESULTS.md"
DEFT_BANK = "benchmarks/banks/dsprites/part-*.parquet"
RESAMPLES = 10_000
SEED = 0  # of every bootstrap
REPLAYS = 200
MIG_GOAL = 0.30


def bootstrap_difference(a: Sequence[float], b: Sequence[float], seed: int = SEED) -> tuple:
    """The 2.5th and 97.5th percentiles of mean(a*) - mean(b*) over resamples of each group with
    replacement (groups resampled independently: the seeds of two arms are not paired)."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    dx = x[rng.integers(0, len(x), size=(RESAMPLES, len(x)))].mean(axis=1)
    dy = y[rng.integers(0, len(y), size=(RESAMPLES, len(y)))].mean(axis=1)
    low, high = np.percentile(dx - dy, [2.5, 97.5])
    return float(low), float(high)


def verdict(low: float, high: float) -> str:
    if low > 0:
        return "higher"
    if high < 0:
        return "lower"
    return "not separated (the interval holds 0)"


def _provenance(rows: Sequence[dict[str, Any]]) -> str:
    commits = sorted({r["commit"][:12] for r in rows})
    cpus = sorted({f"{r['machine']['cpu']} ({r['machine']['logical_cpus']} CPUs)" for r in rows})
    minutes = sum(r["wall_s"] for r in rows) / 60
    return (f"{len(rows)} unit files, commit(s) {', '.join(commits)}, machine(s) "
            f"{'; '.join(cpus)}, {minutes:.0f} min of unit wall time")  # fmt: skip


# --- experiment 1 ------------------------------------------------------------------------------


def experiment_1(rows: list[dict[str, Any]]) -> str:
    lines = ["## 1. Each method's searched best, retrained on fresh seeds", ""]
    stale = [r for r in rows if not _current(r)]
    by_arm = {k: [r for r in rows if r["arm"] == k and _current(r)] for k in retrain.ARMS}
    missing = [k for k, mine in by_arm.items() if len(mine) < len(retrain.SEEDS)]
    lines += [
        "Each arm's schedule is its bank's best by the mean over the trial's seeds of the "
        "objective (a winner picked on one seed is biased up), retrained with seeds "
        f"{', '.join(map(str, retrain.SEEDS))} (none within 16 of a bank seed), the bank's "
        "steps, standard-setting scores (`python -m benchmarks.reproduce retrain`). "
        f"Differences: bootstrap 95% intervals ({RESAMPLES:,} resamples of each arm's seeds, "
        f'seed {SEED}); "higher" only where the interval excludes 0.',
        "",
    ]
    table = []
    for key, mine in by_arm.items():
        if not mine:
            continue
        source = mine[0]["source"]
        line = {"arm": retrain.ARMS[key].label, "seeds": len(mine),
                "from": source.get("trial", source.get("config", ""))}  # fmt: skip
        for score, name in retrain.SCORES:
            line[name] = pm([r["scores"][score] for r in mine])
        table.append(line)
    if table:
        lines += [markdown_table(table), "", f"Units: {_provenance(rows)}.", ""]
        lines += _differences(by_arm)
    if stale:
        lines += ["", "Left out, their bank has grown since they trained (rerun them: delete the "
                  "files and run the campaign): "
                  + ", ".join(f"{r['arm']} seed {r['seed']}" for r in stale) + "."]  # fmt: skip
    if missing:
        lines += ["", "Not yet committed (arm: seeds done of "
                  f"{len(retrain.SEEDS)}): "
                  + ", ".join(f"{k} {len(by_arm[k])}" for k in missing)
                  + "; each needs its bank (benchmarks/campaign.yaml). No claim of this "
                  "experiment is judged before every arm has all its seeds."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _current(row: dict[str, Any]) -> bool:
    """Whether the row's schedule was picked from the bank as committed now."""
    parts = sorted(p.name for p in (retrain.BANKS / retrain.ARMS[row["arm"]].bank).glob("part-*"))
    return row["source"].get("bank_parts") == parts


def _differences(by_arm: dict[str, list[dict[str, Any]]]) -> list[str]:
    complete = {k: v for k, v in by_arm.items() if len(v) >= len(retrain.SEEDS)}
    if "deft" not in complete:
        return []
    rows = []
    for other in (k for k in complete if k != "deft"):
        for score, name in retrain.SCORES:
            a = [r["scores"][score] for r in complete["deft"]]
            b = [r["scores"][score] for r in complete[other]]
            low, high = bootstrap_difference(a, b)
            rows.append({"DEFT (searched) minus": retrain.ARMS[other].label, "score": name,
                         "difference of means": f"{statistics.fmean(a) - statistics.fmean(b):+.3f}",
                         "95% interval": f"[{low:+.3f}, {high:+.3f}]",
                         "DEFT is": verdict(low, high)})  # fmt: skip
    lines = [markdown_table(rows), ""] if rows else []
    migs = [r["scores"]["mig"] for r in complete["deft"]]
    mean = statistics.fmean(migs)
    reached = "reached" if mean >= MIG_GOAL else "not reached"
    lines.append(f"MIG >= {MIG_GOAL} at this budget: {reached} (searched DEFT's mean {mean:.3f} "
                 f"over {len(migs)} seeds).")  # fmt: skip
    return lines


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


def render(rows: list[dict[str, Any]], parts: list[str]) -> str:
    head = [
        "# Results: the DEFT paper's claims and the product's own, from committed files",
        "",
        "Generated by `python -m benchmarks.reproduce report` from files committed under "
        "benchmarks/ alone (campaign unit files and curve banks): running it again on a clean "
        "clone changes nothing. Long work runs as campaign units "
        "(`python -m benchmarks.campaign status`); a section says which units it still waits "
        "for instead of showing a number.",
        "",
        "Experiments 2 (IFP clusters: its draws are campaign units, the section is not written "
        "yet), 3 (diffusion) and 4 (correlated factors) are not in this report yet. Their "
        "2026-11-29 report, [docs/paper-cpu/RESULTS.md](paper-cpu/RESULTS.md), rests on one seed "
        "per trial and an MLflow store that no longer exists: read it as a pilot, not as evidence.",
        "",
    ]
    return "\n".join(head) + "\n" + experiment_1(rows) + "\n" + experiment_5(parts)


def deft_parts() -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob(DEFT_BANK))


def write(out: Path = RESULTS_DOC) -> Path:
    text = render(retrain.read_rows(), deft_parts())
    atomic_write_text(out, text)
    return out
