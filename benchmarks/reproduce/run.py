"""Reproduce the DEFT paper's claims at a CPU budget and write docs/RESULTS.md from MLflow.

    python benchmarks/reproduce/run.py [--budget paper-cpu] [--only e1 e4] [--results DIR]
    python benchmarks/reproduce/run.py --report-only --results DIR    # no training

Budgets are benchmarks/reproduce/budgets/<name>.yaml (paper-cpu, the default: about an hour of
training per experiment; small: about 40 minutes for all five; tiny: a smoke check). Every run
goes to one MLflow store, ``sqlite:///<results>/mlflow.db``; the report reads only that store.
The published budget's report goes to docs/, any other budget's to docs/<budget>/.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import repro_pipeline  # noqa: E402
import repro_report  # noqa: E402

BUDGETS = sorted(p.stem for p in (HERE / "budgets").glob("*.yaml"))
PUBLISHED = "paper-cpu"  # the budget: its report is docs/RESULTS.md


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", choices=BUDGETS, default=PUBLISHED)
    p.add_argument("--only", nargs="+", choices=repro_pipeline.EXPERIMENTS,
                   default=list(repro_pipeline.EXPERIMENTS), metavar="EXP",
                   help="experiments to run (e1..e5; default all)")
    p.add_argument("--results", type=Path, default=None,
                   help="results folder with the MLflow store (default runs/reproduce-BUDGET)")
    p.add_argument("--report-only", action="store_true",
                   help="regenerate the report from the existing store; train nothing")
    p.add_argument("--docs", type=Path, default=None,
                   help=f"where RESULTS.md and results/*.png go (default docs/ for {PUBLISHED}, "
                        "else docs/BUDGET/)")
    return p.parse_args(argv)


def default_docs(budget: str) -> Path:
    docs = repro_report.REPO / "docs"
    return docs if budget == PUBLISHED else docs / budget


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    results = (args.results or Path("runs") / f"reproduce-{args.budget}").resolve()
    if args.report_only:
        if not (results / "mlflow.db").exists():
            print(f"run.py: no MLflow store at {results / 'mlflow.db'}: run without "
                  "--report-only first, or pass --results", file=sys.stderr)
            return 2
    else:
        budget = yaml.safe_load((HERE / "budgets" / f"{args.budget}.yaml").read_text())
        results.mkdir(parents=True, exist_ok=True)
        os.chdir(results)  # MLflow puts new experiments' artifacts under the working folder
        ctx = repro_pipeline.Context(args.budget, budget, results,
                                     log=lambda line: print(time.strftime("%H:%M:%S"), line,
                                                            flush=True))
        repro_pipeline.run_all(ctx, args.only)
    uri = f"sqlite:///{results / 'mlflow.db'}"
    docs = args.docs or default_docs(args.budget if not args.report_only
                                     else repro_report.store_budget(uri) or args.budget)
    written = repro_report.write_report(uri, docs)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
