"""`deft-tune replay`: judge stopping rules on a recorded unstopped search (a curve bank).

Imports nothing heavy at registration (`deft-tune --help` stays instant); bad options are refused
in one line before the bank is read.
"""

from __future__ import annotations

import argparse

from deft_tune.cli.inspect import add_tracking_uri

RULES_HELP = "none, ifp (the IFP stopper), asha, ifp+asha"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "replay",
        help="replay stopping rules on a recorded search with every stopper off",
        description="Replay a recorded search (every trial run to its end, e.g. recorded with "
        "--no-ifp-stopper --no-asha) many times in simulated time under each stopping rule: "
        "random trial orders, N trials at a time, each report costing its recorded time, the "
        "live IFP stopper and Ray's ASHA deciding. Prints trial-steps, savings, wall time, the "
        "objective each rule would return and its regret (median and IQM with bootstrap 95% "
        "intervals), writes the anytime figure and logs an MLflow run in experiment NAME-replay.",
    )
    p.add_argument(
        "experiment",
        metavar="NAME",
        nargs="?",
        help="the search's name, as `deft-tune inspect` lists it",
    )
    p.add_argument(
        "--bank",
        nargs="+",
        metavar="FILE",
        default=(),
        help="replay curve bank files (deft-tune bank export) instead of an MLflow search; "
        "several files are parts of one bank",
    )
    p.add_argument(
        "--rules", default="none,ifp,asha,ifp+asha", help=f"comma-separated: {RULES_HELP}"
    )
    p.add_argument(
        "--concurrency", type=int, metavar="N", help="trials at a time (default: the bank's)"
    )
    p.add_argument("--replays", type=int, default=100, metavar="K", help="replays (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the trial orders and bootstrap")
    p.add_argument(
        "--trials", type=int, metavar="M", help="trials per replay, a random subset (default all)"
    )
    add_tracking_uri(p)
    p.add_argument(
        "--sweep",
        metavar="stopping.ifp.FIELD=V1,V2",
        help="replay the IFP rules once per value of one stopper field (savings against regret)",
    )
    p.add_argument("--out", metavar="DIR", help="figure and table folder (default ./replay-NAME)")
    p.add_argument(
        "--write-doc", metavar="FILE", help="rewrite the stopper-replay block of FILE (Markdown)"
    )
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace):
    """The options, each checked (ConfigError: one line, exit 2) before any work."""
    from deft_tune.search.replay.options import (
        ReplayOptions,
        check_options,
        parse_rules,
        parse_sweep,
    )

    return check_options(
        ReplayOptions(
            experiment=args.experiment,
            rules=parse_rules(args.rules),
            concurrency=args.concurrency,
            replays=args.replays,
            seed=args.seed,
            trials=args.trials,
            tracking_uri=args.tracking_uri,
            sweep=parse_sweep(args.sweep) if args.sweep else None,
            out=args.out,
            write_doc=args.write_doc,
            banks=tuple(args.bank),
        )
    )


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    from deft_tune.search.replay.command import run_replay

    run_replay(options)
    return 0
