"""`deft-tune search`: run a schedule search on Ray Tune, tracked in MLflow.

Imports nothing heavy at registration: `deft-tune --help` and a malformed space stay instant,
and a bad space is refused before Ray starts.
"""

from __future__ import annotations

import argparse

from deft_tune.cli.inspect import add_tracking_uri


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search",
        help="search DEFT schedules (Ray Tune + Optuna, tracked in MLflow)",
        description="Run (or resume) a search over a search-space YAML file. Each trial trains "
        "one model; hopeless trials are stopped early; every trial is a child run "
        "of the search's MLflow run.",
    )
    p.add_argument("--space", required=True, metavar="FILE", help="search-space YAML file")
    p.add_argument("--name", help="experiment name (default: the space's name)")
    p.add_argument(
        "--address",
        metavar="RAY_ADDRESS",
        help="join this Ray cluster (auto: the one `ray start` runs on this "
        "machine); default: $RAY_ADDRESS if set, else a private local Ray",
    )
    p.add_argument(
        "--storage",
        metavar="PATH|URI",
        help="trial storage: a path or s3://, gs:// (default: ./runs); shared "
        "storage is required on a multi-node cluster",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted search")
    p.add_argument(
        "--gpus-per-trial",
        type=float,
        metavar="F",
        help="GPUs per trial, fractions share a GPU (default: the space's)",
    )
    p.add_argument(
        "--cpus-per-trial", type=float, metavar="N", help="CPUs per trial (default: the space's)"
    )
    tracking = p.add_mutually_exclusive_group()
    add_tracking_uri(tracking)
    tracking.add_argument(
        "--mlflow-server",
        action="store_true",
        help="start a local `mlflow server` on 127.0.0.1 for the search "
        "(many concurrent trials) and stop it at the end",
    )
    p.add_argument(
        "--no-ifp-stopper", action="store_true", help="do not stop trials on information signals"
    )
    p.add_argument("--no-asha", action="store_true", help="do not use the ASHA scheduler")
    p.add_argument(
        "--seed",
        type=int,
        metavar="K",
        help="search seed (default: the space's budget.seed): which schedules are drawn and "
        "each trial's training seeds; parts of a bank differ only in it",
    )
    p.add_argument(
        "--num-trials", type=int, metavar="N", help="trials to run (default: the space's)"
    )
    p.add_argument(
        "--smoke-test", action="store_true", help="shrink the budget to seconds (2 short trials)"
    )
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace):
    from deft_tune.search.options import SearchOptions

    return SearchOptions(
        space=args.space,
        name=args.name,
        address=args.address,
        storage=args.storage,
        resume=args.resume,
        gpus_per_trial=args.gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial,
        tracking_uri=args.tracking_uri,
        mlflow_server=args.mlflow_server,
        ifp_stopper=not args.no_ifp_stopper,
        asha=not args.no_asha,
        smoke_test=args.smoke_test,
        seed=args.seed,
        num_trials=args.num_trials,
    )


def run(args: argparse.Namespace) -> int:
    from deft_tune.search.runner import main_search

    return main_search(options_from_args(args))
