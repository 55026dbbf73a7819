"""`deft-tune inspect`: the searches in a tracking store, or the trials of one search."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from deft_tune.errors import ConfigError
from deft_tune.fileio import check_output_dir, check_output_file
from deft_tune.results import report
from deft_tune.tables import format_table, union_keys

# How every --tracking-uri help names the default store (tracking.layout.default_tracking_uri),
# one wording everywhere: tracking.layout.DEFAULT_STORE, repeated here, beside the flag, so that
# `--help` imports no search code (tests/test_cli.py holds the two equal).
DEFAULT_STORE = "sqlite:///<this folder>/mlflow.db"
TRACKING_URI_HELP = f"MLflow tracking URI (default: {DEFAULT_STORE}, as for every command)"

TRIAL_COLUMNS = (
    "trial",
    "seeds",
    "status",
    "stop_reason",
    "objective",
    "mean ± std",
    "setting",
    "method",
    "stages",
    "betas",
    "earlier",
    "lr_scales",
    "lr",
    "steps",
    "wall_s",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect", help="list searches, or the trials of one search sorted by its objective"
    )
    parser.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="a search's name (its MLflow experiment); omit to list every search",
    )
    add_tracking_uri(parser)
    parser.add_argument("--metric", help="rank by this metric instead of the search objective")
    parser.add_argument("--top", type=int, metavar="K", help="show only the K best trials")
    parser.add_argument("--where", metavar="EXPR", help="filter, e.g. 'mig > 0.1'")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--parquet",
        type=Path,
        metavar="FILE",
        help="write all trials (params and final metrics) to Parquet",
    )
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write PNG figures to DIR")
    parser.set_defaults(func=run)


def add_tracking_uri(parser: argparse._ActionsContainer) -> None:
    """--tracking-uri, with the one help text every command gives it."""
    parser.add_argument("--tracking-uri", metavar="URI", help=TRACKING_URI_HELP)


def tracking_uri(args: argparse.Namespace) -> str:
    from deft_tune.search.tracking import default_tracking_uri

    return args.tracking_uri or default_tracking_uri()


def run(args: argparse.Namespace) -> int:
    from deft_tune.search.tracking import reader as experiments

    if args.parquet is not None:
        check_output_file(args.parquet, "--parquet")
    if args.plots is not None:
        check_output_dir(args.plots, "--plots")
    uri = tracking_uri(args)
    if args.name is None:
        rows = [report.search_row(s) for s in experiments.list_searches(uri)]
        print(_dump(rows) if args.json else format_table(rows))
        return 0
    if args.top is not None and args.top < 1:
        raise ConfigError(f"--top == {args.top}, must be >= 1")
    search = experiments.load_search(uri, args.name)
    metric = objective_metric(search, args.metric)
    where = report.parse_where(args.where, _logged(search)) if args.where else None
    rows = report.trials_table(search.trials, metric, search.mode, top=args.top, where=where)
    if args.json:
        print(_dump(rows))
    else:
        print(
            f"search {search.experiment}: {len(search.trials)} trials, objective {metric} "
            f"({search.mode}), parent run {search.parent_run_id}"
        )
        extra = [c for c in union_keys(rows) if "/" in c]
        print(format_table(rows, [*TRIAL_COLUMNS, *extra]))
    if args.parquet:
        print(f"wrote {report.write_parquet(search.trials, args.parquet)}")
    if args.plots:
        from deft_tune.results import report_plots

        for path in report_plots.write_all(search, metric, uri, args.plots):
            print(f"wrote {path}")
    return 0


def objective_metric(search, requested: str | None) -> str:
    """The metric to rank by, as logged; refuses a metric no trial logged."""
    if not search.trials:
        raise ConfigError(f"search {search.experiment!r} has no trials yet")
    return report.resolve_metric(requested or search.objective, _logged(search))


def _logged(search) -> set[str]:
    return {key for trial in search.trials for key in trial.metrics}


def _dump(rows: list[dict]) -> str:
    def clean(value):
        return None if isinstance(value, float) and math.isnan(value) else value

    return json.dumps([{k: clean(v) for k, v in row.items()} for row in rows], indent=2)
