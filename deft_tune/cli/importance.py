"""`deft-tune importance BANK.parquet [...] | NAME`: which sampled schedule parameters
matter for the objective (fANOVA, bootstrap intervals over trials), as a table, a figure and,
with --write-doc, the ``importance`` block of a Markdown document.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deft_tune.cli.inspect import add_tracking_uri, tracking_uri
from deft_tune.validation import check_scalar

DOC_BLOCK = "importance"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "importance",
        help="which sampled parameters matter for the objective (fANOVA over trials)",
        description="Each searched parameter's share of the objective's variance (Optuna's "
        "fANOVA over the trials' final objectives), with a 95%% interval from bootstrap "
        "resamples of the trials. SOURCE: curve bank files (.parquet, parts of one bank) or one "
        "recorded search's name.",
    )
    p.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="BANK.parquet ... or a search's NAME"
    )
    p.add_argument("--resamples", type=int, default=100, help="bootstrap resamples (100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resamples and forests")
    p.add_argument("--out", type=Path, help="figure folder (default ./importance-NAME)")
    p.add_argument("--write-doc", metavar="FILE", help="rewrite the importance block of FILE")
    add_tracking_uri(p)
    p.set_defaults(func=run)


def _load(args: argparse.Namespace):
    """(name, space as run, [(params, final objective)], objective key)."""
    banks = [s for s in args.sources if s.endswith(".parquet")]
    if banks:
        from deft_tune.errors import ConfigError
        from deft_tune.search.replay.bankfile import read_banks

        if len(banks) != len(args.sources):
            raise ConfigError("give either bank files (.parquet) or one search NAME, not both")
        bank = read_banks(banks)
        trials = [(t.params, t.final_objective) for t in bank.trials]
        return bank.experiment, bank.raw_space, trials, bank.objective
    from deft_tune.errors import ConfigError
    from deft_tune.results import report
    from deft_tune.search.tracking.reader import load_search

    if len(args.sources) != 1:
        raise ConfigError("give one search NAME (or bank files ending in .parquet)")
    search = load_search(tracking_uri(args), args.sources[0])
    found = [(t.params, report.objective_value(t, search.objective)) for t in search.trials]
    trials = [(p, v) for p, v in found if v is not None]
    return search.experiment, search.space, trials, search.objective


def run(args: argparse.Namespace) -> int:
    check_scalar(args.resamples, "--resamples", int, min_val=1)
    check_scalar(args.seed, "--seed", int, min_val=0)
    if args.write_doc:
        from deft_tune.tables import check_block

        check_block(args.write_doc, DOC_BLOCK, "--write-doc")  # before the work, never appended
    from deft_tune.search.importance import importances
    from deft_tune.search.importance_render import figure, markdown, text

    name, space, trials, objective = _load(args)
    result = importances(space, trials, objective, resamples=args.resamples, seed=args.seed)
    sources = " ".join(args.sources)
    command = f"deft-tune importance {sources} --resamples {args.resamples} --seed {args.seed}"
    print(text(result, name))
    from deft_tune.plots import save_figure

    out = (args.out or Path(f"importance-{name}")).resolve()
    path = save_figure(figure(result, name), out / "importance.png")
    print(f"wrote {path}")
    if args.write_doc:
        import os

        from deft_tune.tables import write_block

        relative = os.path.relpath(path, Path(args.write_doc).resolve().parent)
        text_block = markdown(result, name, command, relative)
        doc = write_block(args.write_doc, DOC_BLOCK, text_block, strict=True)
        print(f"wrote {doc} ({DOC_BLOCK} block)")
    return 0
