"""Search overhead: wall time of a whole search minus the time its trials spent training.

One search on the embedded defaults (a local Ray started for the run, MLflow in a sqlite file
in the working directory), timed from the runner's call to its return: Ray start, Tuner set-up,
Optuna, trial actors starting, checkpoints, MLflow writes, the driver's callbacks, Ray shutdown.
A trial's training time is Tune's ``time_total_s`` of its last result: the time inside the
trainable (data load, model set-up, training steps, metric evaluations, reports).

overhead = wall x concurrency - sum(trial time), per trial = overhead / trials. With
concurrency 1 (the default here, so that the figure is not blurred by idle slots) that is the
issue's definition: wall minus the sum of trial training times.

    nice -n 5 python benchmarks/search_overhead.py --write-doc       # quick.yaml, 1 at a time
    python benchmarks/search_overhead.py --space search_spaces/dsprites_full.yaml \\
        --trials 16 --max-concurrent 8 --gpus-per-trial 0.5 --address auto
"""

from __future__ import annotations

import argparse
import shutil
import sys

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

BEGIN, END = "<!-- search-overhead:begin -->", "<!-- search-overhead:end -->"


def table(run: SearchRun, concurrency: int, args: argparse.Namespace) -> str:
    n = len(run.trials)
    overhead = run.wall_seconds * concurrency - run.trial_seconds
    stopped = sum(t.status != "FINISHED" for t in run.trials)
    rows = [
        f"Measured {today()} with `{' '.join(args.command)}` on {machine()}.",
        "",
        "| space | trials (stopped) | concurrency | trial-steps | search wall (s) "
        "| sum of trial time (s) | overhead (s) | overhead per trial (s) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {args.space.name} | {n} ({stopped}) | {concurrency} | {run.trial_steps} "
        f"| {run.wall_seconds:.1f} | {run.trial_seconds:.1f} | {overhead:.1f} "
        f"| {overhead / n:.1f} |",
        "",
        "Trial time of each trial (s): " + ", ".join(f"{t.seconds:.1f}" for t in run.trials) + ".",
    ]
    if concurrency == 1:  # with parallel trials the wall-clock split is not additive
        rows.append(overhead_split(run, overhead))
    return "\n".join(rows)


def overhead_split(run: SearchRun, overhead: float) -> str:
    before, after = run.outside_trials()
    between = overhead - before - after
    gaps = max(len(run.trials) - 1, 1)
    return (
        f"Of the overhead, {before:.0f} s passed before the first trainable started (Ray "
        f"start, Tuner, first trial actor) and {after:.0f} s after the last report (MLflow "
        f"finalisation, Ray shutdown); the remaining {between:.0f} s, {between / gaps:.0f} s "
        "per gap, lie between trials (Tune's bookkeeping and the next trial's MLflow run; "
        "the worker process, its torch import and its data set are reused). Timestamps are "
        "Tune's whole seconds, so each part is good to about a second."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_budget_arguments(parser, ROOT / "search_spaces" / "quick.yaml")
    parser.set_defaults(max_concurrent=1)
    args = parser.parse_args()
    args.command = [
        "python",
        "benchmarks/search_overhead.py",
        *[a for a in sys.argv[1:] if a != "--write-doc"],
    ]
    workdir = args.workdir.resolve() / "overhead"
    if workdir.exists():
        shutil.rmtree(workdir)  # a fresh store and storage: this search only
    budget = budget_overrides(args)
    space = write_space(args.space, workdir, "overhead", budget)
    run = run_search(space, workdir, address=args.address)
    text = table(run, budget["max_concurrent"], args)
    print(text)
    if args.write_doc:
        write_between(BEGIN, END, text)


if __name__ == "__main__":
    main()
