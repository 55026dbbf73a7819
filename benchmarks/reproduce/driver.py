"""Reproduce the DEFT paper's claims at a CPU budget and write docs/RESULTS.md from MLflow.

    python benchmarks/reproduce/run.py [--budget paper-cpu] [--only e1 e4] [--results DIR]
    python benchmarks/reproduce/run.py --report-only --results DIR    # no training

Budgets are benchmarks/reproduce/budgets/<name>.yaml (paper-cpu, the default: about an hour of
training per experiment; small: about 40 minutes for all five; tiny: a smoke check). Every run
goes to one MLflow store, ``sqlite:///<results>/mlflow.db``; the report reads only that store.
Each budget's report goes to docs/<budget>/ (docs/RESULTS.md comes from committed files:
``python -m benchmarks.reproduce report``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import e1_methods, e2_ifp, e3_diffusion, e4_correlated, e5_stopper, pipeline, report
from .tracking import store_budget

EXPERIMENTS = (e1_methods, e2_ifp, e3_diffusion, e4_correlated, e5_stopper)  # report order
BY_KEY = {e.KEY: e for e in EXPERIMENTS}
PUBLISHED = "paper-cpu"  # the default budget (about an hour of training per experiment)


def parse(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--budget", choices=pipeline.budget_names(), default=PUBLISHED)
    p.add_argument(
        "--only",
        nargs="+",
        choices=list(BY_KEY),
        default=list(BY_KEY),
        metavar="EXP",
        help="experiments to run (e1..e5; default all)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="results folder with the MLflow store (default runs/reproduce-BUDGET)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="regenerate the report from the existing store; train nothing",
    )
    p.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="where RESULTS.md and results/*.png go (default docs/BUDGET/; docs/RESULTS.md "
        "itself comes from committed files: python -m benchmarks.reproduce report)",
    )
    return p.parse_args(argv)


def default_docs(budget: str) -> Path:
    """docs/<budget>/: docs/RESULTS.md itself is written from committed files alone
    (``python -m benchmarks.reproduce report``), never from a local store."""
    return pipeline.REPO / "docs" / budget


def run(budget_name: str, results: Path, keys: list[str]) -> None:
    """Each chosen experiment's steps, in the order given, into the store under ``results``."""
    results.mkdir(parents=True, exist_ok=True)
    os.chdir(results)  # MLflow puts new experiments' artifacts under the working folder
    ctx = pipeline.Context(budget_name, pipeline.load_budget(budget_name), results, log=_stamp)
    ctx.done = pipeline.groups(ctx)
    for key in keys:
        ctx.log(f"--- experiment {key} ---")
        BY_KEY[key].run(ctx)
        ctx.done = pipeline.groups(ctx)
    pipeline.close(ctx)


def _stamp(line: str) -> None:
    print(time.strftime("%H:%M:%S"), line, flush=True)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse(argv, prog)
    results = (args.results or Path("runs") / f"reproduce-{args.budget}").resolve()
    uri = f"sqlite:///{results / 'mlflow.db'}"
    if not args.report_only:
        run(args.budget, results, args.only)
    elif not (results / "mlflow.db").exists():
        print(
            f"run.py: no MLflow store at {results / 'mlflow.db'}: run without "
            "--report-only first, or pass --results",
            file=sys.stderr,
        )
        return 2
    docs = args.docs or default_docs(
        (store_budget(uri) or args.budget) if args.report_only else args.budget
    )
    written = report.write_report(uri, docs, EXPERIMENTS)
    for path in written:
        print(f"wrote {path}")
    return 0
