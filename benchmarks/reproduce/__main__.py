"""``python -m benchmarks.reproduce`` (from the repository root).

python -m benchmarks.reproduce report [--out docs/RESULTS.md]      # from committed files
python -m benchmarks.reproduce retrain --arm ARM --seed S --out F   # one experiment-1 unit
    [--correlation C] [--scale K]              # one experiment-4 unit, or at K x the steps
python -m benchmarks.reproduce [--budget ...]              # the MLflow-store run (run.py)
"""

import argparse
import sys
from pathlib import Path

from deft_tune.errors import ConfigError


def _files_main(argv: list[str]) -> int:
    from . import from_files, retrain

    parser = argparse.ArgumentParser(prog="python -m benchmarks.reproduce")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="write docs/RESULTS.md from committed files")
    report.add_argument("--out", type=Path, default=from_files.RESULTS_DOC)
    unit = commands.add_parser("retrain", help="train one arm with one seed (a campaign unit)")
    unit.add_argument("--arm", choices=sorted(retrain.ARMS), required=True)
    unit.add_argument("--seed", type=int, required=True)
    unit.add_argument("--out", type=Path, required=True)
    unit.add_argument("--steps", type=int, default=None, help="shorter run (a smoke check)")
    unit.add_argument(
        "--correlation",
        type=float,
        default=None,
        help="train on correlated dSprites of this strength (experiment 4)",
    )
    unit.add_argument(
        "--scale",
        type=int,
        default=1,
        help="train for this many times the bank's steps (experiment 1's trend)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            print(f"wrote {from_files.write(args.out)}")
        else:
            row = retrain.unit(
                args.arm, args.seed, args.out, args.steps, args.correlation, args.scale
            )
            scores = ", ".join(f"{k} {v:.4f}" for k, v in row["scores"].items())
            print(f"wrote {args.out}: {scores}")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in ("report", "retrain"):
        sys.exit(_files_main(sys.argv[1:]))
    from .driver import main

    sys.exit(main(prog="python -m benchmarks.reproduce"))
