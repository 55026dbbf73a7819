"""`deft-tune evaluate --model DIR --metrics mig dci ... [--fast] [--seed S] [--out FILE.json]`.

Scores a model trained by `deft-tune train` (DIR holds its model.pt) with the disentanglement
metrics, on the data set named in the model's config; the representation is the encoder mean.
Prints a table (metric key | value) and writes the scores, settings and seed as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deft_tune.cli._threads import add_threads_argument, apply_threads
from deft_tune.config import RunConfig
from deft_tune.data import get_dataset
from deft_tune.data.base import GroundTruthData
from deft_tune.errors import ConfigError, DataError
from deft_tune.metrics import FAST, METRICS, STANDARD, evaluate

ENCODE_BATCH = 512


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score a trained model with disentanglement metrics")
    p.add_argument("--model", required=True, type=Path, help="output folder of `deft-tune train`")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=list(METRICS),
        metavar="NAME",
        help=f"metrics to compute (default: all of {', '.join(METRICS)})",
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
    p.add_argument("--n-jobs", type=int, default=1, help="DCI classifiers fitted in parallel")
    add_threads_argument(p)
    p.add_argument(
        "--device", default="auto", help="torch device for the encoder (auto, cpu, cuda)"
    )
    p.set_defaults(func=run)


def representation_from_model_dir(
    model_dir: Path, device: str = "auto"
) -> tuple[Callable[[np.ndarray], np.ndarray], GroundTruthData, RunConfig]:
    """Encoder-mean function, data set and config of a `deft-tune train` output folder."""
    from deft_tune.model import GroupedVAE

    path = Path(model_dir) / "model.pt"
    if not path.is_file():
        raise ConfigError(
            f"--model {model_dir}: no model.pt there; pass the --out folder of "
            f"a finished `deft-tune train`"
        )
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        config = RunConfig.from_dict(saved["config"])
    except (pickle.UnpicklingError, KeyError, TypeError, RuntimeError, EOFError, OSError) as exc:
        raise DataError(f"{path} is not a deft-tune model file ({exc})") from None
    data = get_dataset(config.data.name, **config.data.options)
    m = config.model
    model = GroupedVAE(
        data.observation_shape, m.groups, m.latents_per_group, m.encoder_width, m.decoder_width
    )
    try:
        model.load_state_dict(saved["model"])
    except (KeyError, RuntimeError) as exc:
        raise DataError(
            f"{path}: the weights do not match the model in its config ({exc})"
        ) from None
    from deft_tune.train import resolve_device  # checks that a requested GPU exists

    device = resolve_device(device)
    model = model.to(device).eval()

    @torch.no_grad()
    def encoder_mean(observations: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(observations, dtype=np.float32))
        means = [
            model.encoder(chunk.to(device))[0].float().cpu() for chunk in x.split(ENCODE_BATCH)
        ]
        return torch.cat(means).numpy()

    return encoder_mean, data, config


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def format_table(scores: dict[str, float]) -> str:
    width = max(len("metric"), *(len(k) for k in scores))
    lines = [f"{'metric':<{width}} | value", f"{'-' * width}-+-------"]
    lines += [f"{key:<{width}} | {value:.4f}" for key, value in scores.items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    unknown = [name for name in args.metrics if name not in METRICS]
    if unknown:
        raise ConfigError(f"--metrics: unknown {', '.join(unknown)}; known: {', '.join(METRICS)}")
    if args.n_jobs < 1:
        raise ConfigError(f"--n-jobs == {args.n_jobs}, must be >= 1")
    apply_threads(args.threads)
    settings = dataclasses.replace(FAST if args.fast else STANDARD, n_jobs=args.n_jobs)
    representation_fn, data, config = representation_from_model_dir(args.model, args.device)
    seed = config.training.seed if args.seed is None else args.seed
    start = time.perf_counter()
    scores = evaluate(representation_fn, data, names=args.metrics, seed=seed, settings=settings)
    seconds = time.perf_counter() - start
    out = args.out or args.model / f"evaluation{'_fast' if args.fast else ''}.json"
    payload = {
        "model": str(args.model),
        "data": config.data.name,
        "seed": seed,
        "settings": dataclasses.asdict(settings),
        "seconds": round(seconds, 2),
        "scores": {k: (v if math.isfinite(v) else None) for k, v in scores.items()},
    }
    _write_json(out, payload)
    print(format_table(scores))
    print(f"deft-tune: {settings.name} metrics in {seconds:.1f} s; written to {out}")
    return 0
