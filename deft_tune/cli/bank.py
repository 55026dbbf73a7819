"""`deft-tune bank export NAME [NAME ...] --out FILE.parquet`: recorded searches as a
curve bank file that `deft-tune replay --bank` and `deft-tune importance` read without MLflow.

Imports nothing heavy at registration; the searches are read (and refused, one line) before
anything is written, and the file is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deft_tune.cli.inspect import add_tracking_uri, tracking_uri
from deft_tune.errors import ConfigError
from deft_tune.fileio import check_output_file


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bank",
        help="curve bank files: recorded searches as Parquet, replayed without MLflow",
        description="Curve banks: recorded searches (every trial run to its end) as one "
        "Parquet table each, to commit and replay anywhere.",
    )
    commands = p.add_subparsers(dest="bank_command", metavar="SUBCOMMAND", required=True)
    export = commands.add_parser(
        "export",
        help="write recorded searches (parts of one bank) to FILE.parquet",
        description="Write the newest search of each NAME as one curve bank: one row per "
        "trial, replica and report, with each trial's sampled parameters and final scores, and "
        "each part's seed, parent run, commit, versions, machine and wall time. Parts must come "
        "from the same space with different search seeds (deft-tune search --seed K).",
    )
    export.add_argument(
        "experiments",
        nargs="+",
        metavar="NAME",
        help="the searches' names, as `deft-tune inspect` lists them",
    )
    export.add_argument("--out", required=True, type=Path, metavar="FILE.parquet")
    export.add_argument("--force", action="store_true", help="replace an existing --out file")
    add_tracking_uri(export)
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix != ".parquet":
        raise ConfigError(f"--out {out} must end in .parquet (a curve bank is a Parquet file)")
    check_output_file(out, "--out", replace=args.force)
    from deft_tune.search.replay.bankfile import export_banks

    bank = export_banks(tracking_uri(args), args.experiments, out)
    steps = sum(len(t.reports) for t in bank.trials)
    print(f"wrote {out}: {len(bank.trials)} trials, {steps} reports, {len(bank.parts)} part(s)")
    return 0
