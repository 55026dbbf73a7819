"""`deft-tune ifp`: the annealing test (IFP per factor) and the schedule it suggests.

deft-tune ifp dsprites_full --draws 3 --out runs/ifp              # table, curves, plot
deft-tune ifp dsprites_full --unsupervised --latents 10           # freezing per latent
deft-tune ifp --suggest runs/ifp > schedule.yaml                  # a run config for train
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from deft_tune.errors import ConfigError

SMOKE = {"steps": 60, "width": 4, "draws": 1, "batch_size": 16}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ifp",
        help="annealing test: information freezing points and a suggested DEFT schedule",
        usage="%(prog)s NAME [options]            (the annealing test on data set NAME)\n"
        "       %(prog)s --suggest DIR [options]   (the schedule its DIR/ifp.parquet suggests)",
    )
    # The data set is named as `deft-tune data show NAME` names it; --suggest DIR is the other
    # mode (exactly one of the two, checked in run: one line, exit 2).
    p.add_argument(
        "dataset",
        nargs="?",
        metavar="NAME",
        help="run the annealing test on this data set (see `deft-tune data list`)",
    )
    p.add_argument(
        "--suggest",
        type=Path,
        metavar="DIR",
        help="instead: print the schedule suggested by DIR/ifp.parquet as a run config",
    )
    p.add_argument("--dataset", dest="dataset_option", help=argparse.SUPPRESS)  # until 0.1
    p.add_argument("--factors", nargs="+", help="factors to test (default: all)")
    p.add_argument("--draws", type=int, default=3, help="random draws of the fixed factors (3)")
    p.add_argument("--seeds", type=int, default=1, help="training seeds per draw (1)")
    p.add_argument("--out", type=Path, default=Path("ifp"), help="output folder (./ifp)")
    p.add_argument("--steps", type=int, default=8000, help="annealing steps T (8000)")
    p.add_argument("--beta-max", type=float, default=70.0, help="starting beta - 1 (70)")
    p.add_argument("--gamma", type=float, default=15.0, help="annealing rate (15)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (64)")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (5e-4)")
    p.add_argument("--width", type=int, default=32, help="encoder/decoder base width (32)")
    p.add_argument("--threshold", type=float, default=0.1, help="IFP KL threshold, nats (0.1)")
    p.add_argument("--window", type=int, default=None, help="smoothing window in steps")
    p.add_argument("--seed", type=int, default=0, help="base seed of draws and runs (0)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (1)")
    p.add_argument(
        "--address",
        help="Ray cluster address (ray://HOST:PORT or HOST:PORT): "
        "run the annealing runs as Ray tasks there",
    )
    p.add_argument(
        "--unsupervised",
        action="store_true",
        help="one VAE with --latents latents on the full data set, no labels",
    )
    p.add_argument("--latents", type=int, default=10, help="latents of --unsupervised (10)")
    p.add_argument("--cache-dir", type=Path, help="data cache folder")
    p.add_argument(
        "--smoke-test",
        action="store_true",
        help="a seconds-long run (60 steps, width 4, one draw) to check the set-up",
    )
    p.add_argument(
        "--training-steps",
        type=int,
        default=4000,
        help="--suggest: training.steps of the suggested config (4000)",
    )
    p.add_argument(
        "--latents-per-group", type=int, default=2, help="--suggest: latents per group (2)"
    )
    p.add_argument(
        "--lr-scale",
        type=float,
        default=0.1,
        help="--suggest: learning-rate scale of earlier groups (0.1)",
    )
    p.add_argument("--output", type=Path, help="--suggest: also write the YAML to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deft_tune.fileio import check_output_dir, check_output_file
    from deft_tune.validation import check_seed

    args.dataset = _dataset_name(args)
    if args.suggest is not None:
        if args.output is not None:
            check_output_file(args.output, "--output")
        return _suggest(args)
    check_output_dir(args.out, "--out")
    check_seed(args.seed, "--seed")
    if args.cache_dir is not None:
        check_output_dir(args.cache_dir, "--cache-dir", writable=False)
    if args.smoke_test:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    from deft_tune.data import get_dataset
    from deft_tune.freezing.loop import AnnealingConfig

    options = {"cache_dir": args.cache_dir} if args.cache_dir else {}
    data = get_dataset(args.dataset, **options)
    config = AnnealingConfig(
        beta_max=args.beta_max,
        gamma=args.gamma,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        encoder_width=args.width,
        decoder_width=args.width,
        threshold=args.threshold,
        window=args.window,
    )
    _check_memory(args, data)
    if args.unsupervised:
        return _unsupervised(args, data, config)
    return _supervised(args, data, config)


def _dataset_name(args: argparse.Namespace) -> str | None:
    """The data set to test (None with --suggest); ConfigError unless exactly one mode is given."""
    name, option = args.dataset, args.dataset_option
    if name is not None and option is not None and name != option:
        raise ConfigError(
            f"two data sets, {name} and --dataset {option}: name one, as deft-tune ifp NAME"
        )
    name = name or option
    if name is not None and args.suggest is not None:
        raise ConfigError(
            f"give a data set NAME ({name}: run the annealing test) or --suggest DIR (print "
            "the schedule of a finished one), not both"
        )
    if name is None and args.suggest is None:
        after = " (a NAME after --factors is read as a factor: put NAME first)"
        raise ConfigError(
            "give a data set: deft-tune ifp NAME [options] runs the annealing test on it "
            "(`deft-tune data list` names them), or --suggest DIR prints the schedule of a "
            "finished one" + (after if args.factors else "")
        )
    return name


def _check_memory(args: argparse.Namespace, data) -> None:
    """One annealing run (a plain VAE on the CPU) fits in this machine's RAM."""
    from deft_tune.training.memory import check_training_memory, training_memory

    needed = training_memory(
        data.observation_shape,
        groups=1,
        latents_per_group=args.latents if args.unsupervised else 1,
        encoder_width=args.width,
        decoder_width=args.width,
        batch_size=args.batch_size,
    )
    check_training_memory(needed, {"model": "--width", "batch": "--batch-size"}, "cpu")


def _supervised(args: argparse.Namespace, data, config) -> int:
    from tqdm import tqdm

    from deft_tune.freezing.annealing import annealing_runs, run_local
    from deft_tune.freezing.report import write_report

    runs = annealing_runs(data, config, args.factors, args.draws, args.seeds, args.seed)
    with tqdm(total=len(runs), desc=f"annealing {data.name}", unit="run") as bar:

        def on_result(result) -> None:
            bar.set_postfix_str(f"{result.factor}: IFP {result.ifp:.3g}")
            bar.update()

        if args.address:
            from deft_tune.search.cluster.remote_ifp import run_on_ray

            results = run_on_ray(runs, on_result, address=args.address)
        else:
            results = run_local(runs, on_result, workers=args.workers)
    paths = write_report(results, args.out, title=f"Annealing test: {data.name}")
    _print_summary(results)
    print(f"wrote {paths['table']}, {paths['curves']}, {paths['plot']}")
    return 0


def _print_summary(results) -> None:
    from deft_tune.freezing.suggest import summarize

    rows = [{"factor": r.factor, "ifp": r.ifp} for r in results]
    factors, never = summarize(rows)
    for f in factors:
        print(
            f"{f.factor:>14}: IFP median {f.median:.3g} [{f.low:.3g}, {f.high:.3g}] "
            f"({f.frozen}/{f.runs} runs froze)"
        )
    for name in never:
        print(f"{name:>14}: never froze")


def _unsupervised(args: argparse.Namespace, data, config) -> int:
    from deft_tune.freezing.annealing import annealing_test_unsupervised
    from deft_tune.freezing.report import write_unsupervised_report

    freezings, curve = annealing_test_unsupervised(data, args.latents, config, args.seed)
    for f in freezings:
        print(f"z{f.latent}: IFP {f.ifp:.3g} (step {f.ifp_step}), final KL {f.final_kl:.3g}")
    paths = write_unsupervised_report(
        freezings, curve, args.out, title=f"Freezing events: {data.name}"
    )
    print(f"wrote {paths['table']}, {paths['plot']}")
    return 0


def _suggest(args: argparse.Namespace) -> int:
    from deft_tune.config import dump_config
    from deft_tune.freezing.ifp_table import read_ifp_table
    from deft_tune.freezing.suggest import suggest_schedule

    suggestion = suggest_schedule(read_ifp_table(args.suggest))
    if not suggestion.dataset:
        raise ConfigError(f"{args.suggest} names no data set: the table needs a dataset column")
    config = suggestion.run_config(args.training_steps, args.latents_per_group, args.lr_scale)
    header = "\n".join(suggestion.evidence())
    if args.output:
        dump_config(config, args.output, header=header)
        text = args.output.read_text()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            text = dump_config(config, Path(tmp) / "suggested.yaml", header=header).read_text()
    sys.stdout.write(text)
    return 0
