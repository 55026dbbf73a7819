"""Compute saved by the IFP stopper: one space, one search seed, run with and without it.

Each arm is a whole search on the embedded defaults (local Ray, sqlite MLflow store). ASHA is
off in both arms unless ``--asha`` (then on in both), so the difference is the IFP stopper's.
Reported per seed: trial-steps of each arm (the sum over trials of the last step each logged),
the best objective of each (the search's best: the standard-setting score of a completed
trial), the ratio of trial-steps, and the noise the two best objectives are compared with.

Noise: each trial trains ``training.replicas`` R seeds of its schedule (quick.yaml: 3) and its
objective is their mean, so the noise of one trial's objective is its seeds' spread over
sqrt(R). sigma (of the difference of two trials' objectives) = sqrt(2 / R) x the root mean
square of the completed trials' seed standard deviations, both arms pooled. (Before trials had
replicas, same-schedule pairs across the arms served; since trial seeds follow the trial
number, such a pair trains the same seeds and differs by nothing.) The best objectives count as
"within noise" when they differ by at most 2 sigma. The issue's goal: at least 40% fewer
trial-steps, best within noise.

    nice -n 5 python benchmarks/stopper_savings.py --trials 8 --write-doc   # quick.yaml
    python benchmarks/stopper_savings.py --space search_spaces/dsprites_full.yaml \\
        --seeds 0 1 2 --address auto --gpus-per-trial 0.25
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from collections import Counter

from _search_bench import (
    ROOT,
    SearchRun,
    add_budget_arguments,
    budget_overrides,
    machine,
    run_search,
    today,
    write_between,
    write_space,
)

BEGIN, END = "<!-- stopper-savings:begin -->", "<!-- stopper-savings:end -->"
GOAL_SAVING = 0.40


def seed_noise(*runs: SearchRun) -> tuple[float, int] | None:
    """sigma of the difference of two trials' objectives from their seeds' spread, and how
    many completed trials it pools; None when no completed trial trained several seeds."""
    spreads = [
        (t.seed_std, t.replicas)
        for run in runs
        for t in run.trials
        if t.status == "FINISHED" and t.seed_std is not None and t.replicas > 1
    ]
    if not spreads:
        return None
    mean_square = sum(std * std / replicas for std, replicas in spreads) / len(spreads)
    return math.sqrt(2 * mean_square), len(spreads)


def _reasons(run: SearchRun) -> str:
    counts = Counter(t.stop_reason for t in run.trials if t.status != "FINISHED")
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) or "none"


def _row(seed: int, arm: str, run: SearchRun) -> str:
    best = "-" if run.best_value is None else f"{run.best_value:.4f}"
    return (
        f"| {seed} | {arm} | {len(run.trials)} | {_reasons(run)} | {run.trial_steps} "
        f"| {best} | {run.wall_seconds:.0f} |"
    )


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def pair_table(seed: int, stopped: SearchRun, full: SearchRun) -> list[str]:
    """Each schedule of the unstopped arm beside the same schedule in the stopper's arm: does
    the stopper end the schedules that would have scored best?"""
    twins = {t.schedule: t for t in stopped.trials}
    lines = [
        f"Seed {seed}, schedule by schedule (sorted by the unstopped objective):",
        "",
        "| groups | first beta | no stopper: objective | IFP stopper: end (step) "
        "| IFP stopper: objective |",
        "|---|---|---|---|---|",
    ]
    for trial in sorted(full.trials, key=lambda t: -(t.objective or 0.0)):
        params = dict(trial.schedule)
        twin = twins.get(trial.schedule)
        end = f"{twin.stop_reason} ({twin.steps})" if twin else "not sampled"
        beta = float(params.get("schedule.stages.0.beta", "nan"))
        lines.append(
            f"| {params.get('model.groups', '-')} | {beta:.2f} "
            f"| {_score(trial.objective)} | {end} "
            f"| {_score(twin.objective if twin else None)} |"
        )
    return lines + [""]


def verdict(stopped: SearchRun, full: SearchRun) -> str:
    saving = 1 - stopped.trial_steps / full.trial_steps
    noise = seed_noise(stopped, full)
    line = (
        f"trial-steps with/without the stopper = {stopped.trial_steps}/{full.trial_steps}"
        f" = {1 - saving:.2f} ({saving:.0%} fewer)"
    )
    if stopped.best_value is None or full.best_value is None:
        return line + "; a best objective is missing: goal not judged."
    gap = stopped.best_value - full.best_value
    line += f"; best objective difference {gap:+.4f}"
    if noise is None:
        return line + "; no completed trial trained several seeds, so no noise estimate."
    sigma, pooled = noise
    within = abs(gap) <= 2 * sigma
    met = saving >= GOAL_SAVING and within
    return (
        line + f", noise sigma {sigma:.4f} from the seed spread of {pooled} completed trials "
        f"({'within' if within else 'outside'} 2 sigma). Goal (>= 40% fewer trial-steps, "
        f"best within noise): **{'met' if met else 'not met'}**."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_budget_arguments(parser, ROOT / "search_spaces" / "quick.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="search seeds")
    parser.add_argument("--asha", action="store_true", help="ASHA on in both arms")
    args = parser.parse_args()
    command = " ".join(
        [
            "python",
            "benchmarks/stopper_savings.py",
            *[a for a in sys.argv[1:] if a != "--write-doc"],
        ]
    )
    workdir = args.workdir.resolve() / "savings"
    if workdir.exists():
        shutil.rmtree(workdir)
    rows, verdicts, pairs = [], [], []
    for seed in args.seeds:
        budget = {**budget_overrides(args), "seed": seed}
        arms = {}
        for arm, ifp in (("no stopper", False), ("IFP stopper", True)):
            name = f"savings-s{seed}-{'ifp' if ifp else 'none'}"
            space = write_space(args.space, workdir, name, budget)
            arms[arm] = run_search(
                space, workdir, address=args.address, ifp_stopper=ifp, asha=args.asha
            )
            rows.append(_row(seed, arm, arms[arm]))
            print(rows[-1], flush=True)
        verdicts.append(f"- seed {seed}: " + verdict(arms["IFP stopper"], arms["no stopper"]))
        pairs += pair_table(seed, arms["IFP stopper"], arms["no stopper"])
    text = "\n".join(
        [
            f"Measured {today()} with `{command}` on {machine()}; ASHA "
            f"{'on' if args.asha else 'off'} in both arms.",
            "",
            "| seed | arm | trials | stopped (reason count) | trial-steps | best objective "
            "| wall (s) |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            *verdicts,
            "",
            *pairs,
        ]
    ).rstrip()
    print(text)
    if args.write_doc:
        write_between(BEGIN, END, text)


if __name__ == "__main__":
    main()
