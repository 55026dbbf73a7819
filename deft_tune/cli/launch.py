"""`deft-tune launch`: run a search as a Ray job on a cluster, and look after the job.

Imports nothing heavy at registration; Ray is imported (through deft_tune.search) only when a
launch runs, after the cluster file and the space have been checked.
"""

from __future__ import annotations

import argparse
import sys

from deft_tune.cli.inspect import DEFAULT_STORE
from deft_tune.errors import ConfigError

# Flags handed to `deft-tune search` in the job as they are (name, argparse options).
_PASS_VALUES = (("--name", {"metavar": "NAME"}),
                ("--gpus-per-trial", {"type": float, "metavar": "F"}),
                ("--cpus-per-trial", {"type": float, "metavar": "N"}),
                ("--seed", {"type": int, "metavar": "K"}),
                ("--num-trials", {"type": int, "metavar": "N"}))  # fmt: skip
_PASS_SWITCHES = ("--resume", "--no-ifp-stopper", "--no-asha", "--smoke-test")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "launch",
        help="run a search as a Ray job on a cluster (launcher YAML or an address)",
        description="Submit `deft-tune search` as a Ray job with a project folder as its working "
        "directory, stream its log and print its job id; or ask about a job.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--cluster",
        metavar="FILE",
        help="Ray cluster launcher YAML (clusters/aws.yaml, clusters/gcp.yaml): "
        "`ray up` if the head is not up, then submit through `ray dashboard`",
    )
    where.add_argument(
        "--address", metavar="URL", help="job server of a running cluster, http://HEAD:8265"
    )
    p.add_argument("--space", metavar="FILE", help="search-space YAML inside --working-dir")
    p.add_argument(
        "--storage",
        metavar="URI|PATH",
        help="trial storage every node reaches: s3://, gs:// or an NFS path",
    )
    p.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="an MLflow server every node reaches, http://HOST:5000 (default: "
        f"{DEFAULT_STORE} in the job's working directory: one node only)",
    )
    p.add_argument(
        "--working-dir",
        metavar="DIR",
        default=".",
        help="folder uploaded as the job's working directory (default: .)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=8265,
        help="local port of the dashboard tunnel with --cluster (default: 8265)",
    )
    for flag, options in _PASS_VALUES:
        p.add_argument(flag, help=f"passed to deft-tune search ({flag})", **options)
    for flag in _PASS_SWITCHES:
        p.add_argument(flag, action="store_true", help=f"passed to deft-tune search ({flag})")
    p.add_argument(
        "--no-follow",
        action="store_true",
        help="submit, print the job id and return without streaming the log",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything and print the commands, run nothing",
    )
    job = p.add_mutually_exclusive_group()
    job.add_argument("--status", metavar="JOB", help="print a job's status")
    job.add_argument("--logs", metavar="JOB", help="print a job's log, following it to the end")
    job.add_argument("--stop", metavar="JOB", help="stop a job")
    p.set_defaults(func=run)


def search_args(args: argparse.Namespace) -> tuple[str, ...]:
    out: list[str] = []
    for flag, _ in _PASS_VALUES:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            out += [flag, str(value)]
    return tuple(out) + tuple(f for f in _PASS_SWITCHES if getattr(args, f[2:].replace("-", "_")))


def search_options(args: argparse.Namespace):
    """What the search in the job will be asked, to check it here before submitting."""
    from deft_tune.search.options import SearchOptions

    return SearchOptions(
        space=args.space,
        name=args.name,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        resume=args.resume,
        gpus_per_trial=args.gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial,
        ifp_stopper=not args.no_ifp_stopper,
        asha=not args.no_asha,
        smoke_test=args.smoke_test,
        seed=args.seed,
        num_trials=args.num_trials,
    )


def run(args: argparse.Namespace) -> int:
    job_id = args.status or args.logs or args.stop
    if job_id is None and args.space is None:
        raise ConfigError(
            "--space is required to launch a search (or give --status, --logs "
            "or --stop JOB to ask about a job)"
        )
    if job_id is not None and args.dry_run:
        raise ConfigError("--dry-run applies to launching a search, not to --status/--logs/--stop")
    from deft_tune.search.cluster import launch

    cluster = launch.check_cluster(
        args.cluster, args.storage, args.tracking_uri, for_job=job_id is not None
    )
    if job_id is not None:
        return launch.manage(cluster, args.address, args.port, args, print)
    job = launch.prepare(args.working_dir, search_options(args), search_args(args))
    if args.dry_run:
        for line in launch.dry_run_lines(cluster, args.address, args.port, job):
            print(line)
        return 0
    return launch.submit(
        cluster, args.address, args.port, job, follow=not args.no_follow, out=print, write=_write
    )


def _write(chunk: str) -> None:
    sys.stdout.write(chunk)
    sys.stdout.flush()
