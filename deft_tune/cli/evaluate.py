"""`deft-tune evaluate --model DIR --metrics mig dci ... [--fast] [--seed S] [--out FILE.json]`.

Scores a model trained by `deft-tune train` (DIR holds its model.pt) with the disentanglement
metrics, on the data set named in the model's config; the representation is the encoder mean.
Prints a table (metric key | value) and writes the scores, settings and seed as JSON.

The model is the one the run scored: its groups open and frozen as the run ended (the model
file's stage state), encoded as the run encoded (memory format, precision, chunk size) with the
run's torch threads and on its device unless --threads / --device say otherwise. So with the
run's seed (the default) and the standard setting, evaluate gives back the scores of the run's
metrics.json exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from deft_tune.cli._threads import add_threads_argument, apply_threads, checked_threads
from deft_tune.config import check_device
from deft_tune.errors import ConfigError, TrainingError
from deft_tune.fileio import atomic_write_text, check_output_file
from deft_tune.report_keys import METRIC_KEYS
from deft_tune.tables import format_table
from deft_tune.threads import available_cpus
from deft_tune.training.aggregate import aggregate, combine_scores
from deft_tune.validation import check_seed

if TYPE_CHECKING:  # torch and the metrics (scikit-learn) load when a model is scored
    import numpy as np
    import torch

    from deft_tune.config import RunConfig
    from deft_tune.data.base import GroundTruthData


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score a trained model with disentanglement metrics")
    p.add_argument("--model", required=True, type=Path, help="output folder of `deft-tune train`")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=list(METRIC_KEYS),
        metavar="NAME",
        help=f"metrics to compute (default: all of {', '.join(METRIC_KEYS)})",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="the FAST setting (smaller samples, histogram GBT in DCI), as in trials",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="sampling seed (default: the run's training seed)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON file to write (default: MODEL/evaluation[_fast].json)",
    )
    p.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        help="processes for DCI's classifiers, which fit beside the other metrics (default: "
        "--threads, else one per available core; 1 with --fast); no score depends on it",
    )
    add_threads_argument(p, help="CPU threads for torch (default: the run's training.threads)")
    p.add_argument(
        "--device",
        default=None,
        help="torch device for the encoder (auto, cpu, cuda; default: the run's training.device)",
    )
    p.set_defaults(func=run)


def representation_from_model_dir(
    model_dir: Path, device: str | None = None
) -> tuple[Callable[[np.ndarray], np.ndarray], GroundTruthData, RunConfig, int]:
    """Encoder means of every replica of a `deft-tune train` output folder side by side
    ((n, R * d), for evaluate_blocks), its data set, its config and R. The replicas encode as
    they did in the run (see the module docstring), on ``device`` (default: the run's)."""
    import numpy as np
    import torch

    from deft_tune.data import run_dataset
    from deft_tune.model import encode_in_chunks, load_model, model_files, place_model, run_autocast
    from deft_tune.training.evaluation import ENCODE_BATCH

    paths = model_files(model_dir)
    if not paths:
        raise ConfigError(
            f"--model {model_dir}: no model.pt or model-replica*.pt there; pass the --out "
            "folder of a finished `deft-tune train`"
        )
    loaded = [load_model(path) for path in paths]
    config = loaded[0][0]
    data = run_dataset(config.data.name, config.data.options)
    torch_device = _device(config, device)
    models = [place_model(model, config, torch_device).eval() for _, model in loaded]
    channels_last = config.training.memory_format == "channels_last"

    def encoder_means(observations: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(observations, dtype=np.float32))
        codes = [
            encode_in_chunks(model, x, torch_device, channels_last=channels_last,
                             autocast=run_autocast(config, torch_device),
                             chunk_size=ENCODE_BATCH)[0].cpu()
            for model in models
        ]  # fmt: skip
        return torch.cat(codes, dim=1).numpy()

    return encoder_means, data, config, len(models)


def _device(config: RunConfig, device: str | None) -> torch.device:
    """``device``, or the run's; one line when the run's is not on this machine."""
    from deft_tune.training import resolve_device  # checks that a requested GPU exists

    if device is not None:
        return resolve_device(device)
    try:
        return resolve_device(config.training.device)
    except TrainingError:
        raise ConfigError(
            f"the run trained on {config.training.device!r}, which this machine lacks: pass "
            "--device cpu (the scores may then differ a little from the run's)"
        ) from None


def run(args: argparse.Namespace) -> int:
    unknown = [name for name in args.metrics if name not in METRIC_KEYS]
    if unknown:
        known = ", ".join(METRIC_KEYS)
        raise ConfigError(f"--metrics: unknown {', '.join(unknown)}; known: {known}")
    if args.n_jobs is not None and args.n_jobs < 1:
        raise ConfigError(f"--n-jobs == {args.n_jobs}, must be >= 1")
    if args.seed is not None:
        check_seed(args.seed, "--seed")
    threads = checked_threads(args.threads)
    if args.device is not None:
        check_device(args.device, "--device")
    out = args.out or args.model / f"evaluation{'_fast' if args.fast else ''}.json"
    check_output_file(out, "--out")
    representation_fn, data, config, count = representation_from_model_dir(args.model, args.device)
    apply_threads(config.training.threads if threads is None else threads)  # as the run scored
    from deft_tune.metrics import FAST, STANDARD, evaluate_blocks

    settings = dataclasses.replace(FAST if args.fast else STANDARD, n_jobs=_n_jobs(args))
    seed = config.training.seed if args.seed is None else args.seed
    start = time.perf_counter()
    per_replica = evaluate_blocks(
        representation_fn, data, count, names=args.metrics, seed=seed, settings=settings
    )
    scores = combine_scores(per_replica)
    seconds = time.perf_counter() - start
    payload = {
        "model": str(args.model),
        "data": config.data.name,
        "seed": seed,
        "settings": dataclasses.asdict(settings),
        "seconds": round(seconds, 2),
        "scores": {k: (v if math.isfinite(v) else None) for k, v in scores.items()},
    }
    atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
    print(format_table(score_rows(per_replica)))
    print(
        f"deft-tune: {settings.name} metrics of {count} replica(s) on one sample in "
        f"{seconds:.1f} s; written to {out}"
    )
    return 0


def _n_jobs(args: argparse.Namespace) -> int:
    """--n-jobs, else the command's CPUs; --fast in one process, as in trials (its DCI takes
    about a second, less than starting a worker)."""
    if args.n_jobs is not None:
        return args.n_jobs
    return 1 if args.fast else args.threads or available_cpus()


def score_rows(per_replica: list[dict[str, float]]) -> list[dict[str, str]]:
    """A row per metric key: its value, or with several replicas mean ± std and each one's."""
    rows = []
    for key in per_replica[0]:
        values = [scores[key] for scores in per_replica]
        if len(values) == 1:
            rows.append({"metric": key, "value": f"{values[0]:.4f}"})
            continue
        row = {"metric": key, "mean ± std": f"{aggregate(values, 'mean'):.4f} ± "
               f"{aggregate(values, 'std'):.4f}"}  # fmt: skip
        row.update({f"replica{r}": f"{v:.4f}" for r, v in enumerate(values)})
        rows.append(row)
    return rows
