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

A measurement can be saved (``--save FILE.json``, every trial of both arms) and its table
written later from the file alone (``--from FILE.json``): the campaign's unit saves
benchmarks/results/stopper_savings/quick-s0-s1.json, and docs/search.md's table is rendered
from it.

    nice -n 5 python benchmarks/stopper_savings.py --trials 8 --write-doc   # quick.yaml
    python benchmarks/stopper_savings.py --write-doc \\
        --from benchmarks/results/stopper_savings/quick-s0-s1.json
    python benchmarks/stopper_savings.py --space search_spaces/dsprites_full.yaml \\
        --seeds 0 1 2 --address auto --gpus-per-trial 0.25
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _search_bench import (
    ROOT,
    SearchRun,
    add_budget_arguments,
    budget_overrides,
    machine,
    run_search,
    search_run_from_dict,
    today,
    write_between,
    write_space,
)

from deft_tune.fileio import atomic_write_text

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


def measure(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Both arms' searches per seed, as JSON-ready data: every trial of each."""
    workdir = args.workdir.resolve() / "savings"
    if workdir.exists():
        shutil.rmtree(workdir)
    result: dict[str, Any] = {"measured": today(), "command": command, "machine": machine(),
                              "asha": args.asha, "seeds": []}  # fmt: skip
    for seed in args.seeds:
        budget = {**budget_overrides(args), "seed": seed}
        arms = {}
        for arm, ifp in (("no stopper", False), ("IFP stopper", True)):
            name = f"savings-s{seed}-{'ifp' if ifp else 'none'}"
            space = write_space(args.space, workdir, name, budget)
            run = run_search(space, workdir, address=args.address, ifp_stopper=ifp, asha=args.asha)
            print(_row(seed, arm, run), flush=True)
            arms[arm] = asdict(run)
        result["seeds"].append({"seed": seed, "arms": arms})
    return result


def render(result: dict[str, Any]) -> str:
    """docs/search.md's block from a measurement (:func:`measure`, or its saved file)."""
    rows, verdicts, pairs = [], [], []
    for entry in result["seeds"]:
        seed = entry["seed"]
        arms = {arm: search_run_from_dict(data) for arm, data in entry["arms"].items()}
        rows += [_row(seed, arm, run) for arm, run in arms.items()]
        verdicts.append(f"- seed {seed}: " + verdict(arms["IFP stopper"], arms["no stopper"]))
        pairs += pair_table(seed, arms["IFP stopper"], arms["no stopper"])
    return "\n".join(
        [
            f"Measured {result['measured']} with `{result['command']}` on {result['machine']}; "
            f"ASHA {'on' if result['asha'] else 'off'} in both arms.",
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


def _measuring_command(argv: list[str]) -> str:
    """The command line that measured, less where it kept its scratch and what only saves or
    writes its result."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg == "--write-doc":
            skip = False
            continue
        if arg in ("--save", "--workdir"):
            skip = True
            continue
        kept.append(arg)
    return " ".join(["python", "benchmarks/stopper_savings.py", *kept])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_budget_arguments(parser, ROOT / "search_spaces" / "quick.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="search seeds")
    parser.add_argument("--asha", action="store_true", help="ASHA on in both arms")
    parser.add_argument("--save", type=Path, metavar="FILE", help="save the measurement (JSON)")
    parser.add_argument("--from", dest="saved", type=Path, metavar="FILE",
                        help="write the table of a saved measurement; run nothing")  # fmt: skip
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.saved is not None:
        try:
            result = json.loads(args.saved.read_text())
        except (OSError, ValueError) as exc:
            print(f"stopper_savings: cannot read --from {args.saved}: {exc}", file=sys.stderr)
            return 2
    else:
        result = measure(args, _measuring_command(argv))
        if args.save is not None:
            atomic_write_text(args.save, json.dumps(result, indent=1) + "\n")
    text = render(result)
    print(text)
    if args.write_doc:
        write_between(BEGIN, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
