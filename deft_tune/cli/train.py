"""`deft-tune train --config run.yaml [--out DIR] [--resume] [--threads N]`: train one run.

The run is its config: ``training.threads`` (torch's CPU threads) included, so that an exported
trial trains to its score again. ``--threads N`` overrides it, and the output folder's
config.yaml then says N. The output folder receives the config, checkpoints
(checkpoints/last.pt), the final model (model.pt), the report history (history.jsonl), the
final numbers and metrics (metrics.json), and two figures (traversals.png, kl_per_group.png).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from deft_tune import report_keys as keys
from deft_tune.cli._threads import add_threads_argument, checked_threads
from deft_tune.config import RunConfig, dump_config, load_config
from deft_tune.errors import ConfigError, DataError, TrainingError
from deft_tune.fileio import atomic_write_text, check_output_dir, check_output_file


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train one DEFT (or baseline) run from a config file")
    p.add_argument("--config", required=True, type=Path, help="run config YAML")
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: runs/<config name>)"
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    add_threads_argument(
        p,
        help="torch CPU threads, overriding the config's training.threads (the run's "
        "config.yaml records N; another count gives other numbers)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


# What the run writes in --out besides the model file, checked before any work.
OUTPUT_FILES = ("config.yaml", "metrics.json", "history.jsonl", "traversals.png",
                "kl_per_group.png", "checkpoints/last.pt")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    config = with_threads(load_config(args.config), checked_threads(args.threads))
    out = args.out if args.out is not None else Path("runs") / args.config.stem
    _check_outputs(out, config.training.replicas)
    checkpoint = out / "checkpoints" / "last.pt"
    earlier = _load_history(out / "history.jsonl")
    trainer = _open_trainer(config, checkpoint, resume=args.resume)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(trainer.config, out / "config.yaml")  # as run: "auto" made concrete
    history = [row for row in earlier if row["step"] <= trainer.step]  # later ones replay
    report = _Reporter(trainer, out, history, progress=not args.no_progress)
    try:
        with report.logging_through_bar():
            last = trainer.run(report=report, on_step=report.step)
    finally:
        report.close()
    _finish(trainer, out, history, last)
    print(f"deft-tune: trained {trainer.step} steps; results in {out}")
    return 0


def with_threads(config: RunConfig, threads: int | None) -> RunConfig:
    """``config`` with training.threads replaced by ``threads`` (None: unchanged)."""
    if threads is None:
        return config
    return config.replace(training=dataclasses.replace(config.training, threads=threads))


def _open_trainer(config: RunConfig, checkpoint: Path, *, resume: bool):
    from deft_tune.training import Trainer, resolve_run

    if resume:
        if not checkpoint.exists():
            raise TrainingError(f"--resume but {checkpoint} does not exist: drop --resume")
        trainer = Trainer.from_checkpoint(checkpoint)
        ran = trainer.config.training.threads
        wanted = resolve_run(config, trainer.device)  # "auto" as the run chose
        if trainer.config != wanted and trainer.config == with_threads(wanted, ran):
            raise ConfigError(
                f"--resume: the run trained with training.threads {ran}, not "
                f"{config.training.threads}; resume with --threads {ran}"
            )
        if trainer.config != wanted:
            raise ConfigError(
                f"--resume: the config differs from the one in {checkpoint}; "
                "resume with the same config or train into a new --out"
            )
        return trainer
    if checkpoint.exists():
        raise TrainingError(
            f"{checkpoint.parent.parent} already holds a run: pass --resume "
            "to continue it or choose another --out"
        )
    return Trainer(config)


def _check_outputs(out: Path, replicas: int) -> None:
    from deft_tune.model.files import model_file

    check_output_dir(out, "--out")
    per_replica = [model_file(out, r, replicas) for r in range(replicas)]
    if replicas > 1:
        per_replica += [out / f"traversals-replica{r}.png" for r in range(replicas)]
    for path in (*(out / name for name in OUTPUT_FILES), *per_replica):
        check_output_file(path, "--out", fix="remove it or choose another --out")


def _load_history(path: Path) -> list[dict[str, float]]:
    """The reports of an earlier (interrupted) run in ``path``; DataError if damaged."""
    if not path.exists():
        return []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read as a report history ({exc})") from None
    rows = [_history_row(path, number, line) for number, line in enumerate(lines, 1)]
    return [row for row in rows if row is not None]


def _history_row(path: Path, number: int, line: str) -> dict[str, float] | None:
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        row = None
    if not isinstance(row, dict) or not isinstance(row.get("step"), (int, float)):
        raise DataError(
            f"{path} line {number} is not a report (a JSON object with a step): "
            "restore the file or delete it to start the history afresh"
        )
    return row


def _json_clean(value: Any) -> Any:
    """Nested lists and dicts with NaN and inf as None (JSON has neither)."""
    if isinstance(value, dict):
        return {k: _json_clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_clean(v) for v in value]
    return _json_number(value) if isinstance(value, float) else value


def _json_number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None  # JSON has no NaN


class _Reporter:
    """The report callback (history file, periodic checkpoints, the bar's numbers) and the
    per-step one (:meth:`step`: the bar moves every step; tqdm redraws at most 10 times a
    second)."""

    def __init__(self, trainer, out: Path, history: list, *, progress: bool) -> None:
        self.trainer = trainer
        self.out = out
        self.history = history
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=trainer.config.training.steps,
                initial=trainer.step,
                unit="step",
                dynamic_ncols=True,
            )
        self._saved = trainer.step
        self._postfix: dict[str, Any] = {}

    def logging_through_bar(self) -> contextlib.AbstractContextManager[None]:
        """Log lines (a stage change's table) printed above the bar, not through it."""
        if self.bar is None:
            return contextlib.nullcontext()
        from tqdm.contrib.logging import logging_redirect_tqdm

        return logging_redirect_tqdm()

    def __call__(self, report: dict[str, float]) -> None:
        self.history.append(report)
        lines = "".join(
            json.dumps({k: _json_number(v) for k, v in row.items()}) + "\n" for row in self.history
        )
        atomic_write_text(self.out / "history.jsonl", lines)
        step = int(report["step"])
        interval = self.trainer.config.training.checkpoint_interval
        if step // interval > self._saved // interval:
            self.trainer.save_checkpoint(self.out / "checkpoints" / "last.pt")
            self._saved = step
        if self.bar is not None:  # the bar itself moves in step()
            self._postfix.update(
                stage=int(report[keys.STAGE]),
                beta=f"{report['train/beta']:.3g}",
                loss=f"{report['train/loss']:.1f}",
            )
            self.bar.set_postfix(self._postfix)

    def step(self, step: int) -> None:
        if self.bar is not None:
            # The stage the bar shows follows the schedule at every step, not only at reports
            # (beta and loss are measured, so they wait for the next report).
            stage = self.trainer.position(max(step - 1, 0)).stage
            if self._postfix.get("stage") != stage:
                self._postfix["stage"] = stage
                self.bar.set_postfix(self._postfix, refresh=False)
            self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _finish(trainer, out: Path, history: list, last: dict[str, float]) -> None:
    from deft_tune.freezing import stage_gains
    from deft_tune.model import model_file, save_model

    trainer.save_checkpoint(out / "checkpoints" / "last.pt")
    count = len(trainer.replicas)
    for r, replica in enumerate(trainer.replicas):
        path = model_file(out, r, count)
        save_model(path, trainer.config, replica.model, trainer.data.observation_shape, r)
    last = last or history[-1]  # a resumed run that had already finished trains nothing
    metrics = _metrics(trainer)
    results = {
        "final": {k: _json_number(v) for k, v in last.items()},
        "metrics": metrics,
        # Per stage: nats the active group took in, and those that entered earlier groups
        # (the mean over replicas).
        "stages": _json_clean(stage_gains(history)),
    }
    atomic_write_text(out / "metrics.json", json.dumps(results, indent=2) + "\n")
    _figures(trainer, out, history, last)
    for name, value in metrics.items():
        if "/" not in name or count == 1:  # per-replica scores stay in metrics.json
            print(f"metrics/{name}: {value:.4f} (standard setting)")


def _figures(trainer, out: Path, history: list, last: dict[str, float]) -> None:
    """Each replica's traversals around its median probe code; KL per group over training (with
    several replicas: their mean and each replica's curve)."""
    from deft_tune import plots
    from deft_tune.schedules import stage_boundaries
    from deft_tune.training.aggregate import replica_histories, replica_values

    count = len(trainer.replicas)
    for r, replica in enumerate(trainer.replicas):
        codes = trainer.representation(replica.probe.numpy()[:256], replica=r)
        groups = replica.model.encoder.group_of_latent().numpy()
        kl = [
            (replica_values(last, keys.kl_latent(i))[r : r + 1] or [math.nan])[0]
            for i in range(len(groups))
        ]
        images = plots.traversal_images(replica.model.decoder, np.median(codes, axis=0))
        name = "traversals.png" if count == 1 else f"traversals-replica{r}.png"
        plots.save_figure(plots.plot_traversals(images, groups, kl), out / name)
    starts = stage_boundaries(trainer.config.schedule, trainer.config.training.steps)[1:]
    plots.save_figure(
        plots.plot_kl_per_group(
            history, trainer.num_groups, starts, replica_histories(history, count)
        ),
        out / "kl_per_group.png",
    )


def _metrics(trainer) -> dict[str, float]:
    """The run's scores (standard setting): per replica and their mean ± std, on ONE sample."""
    names = trainer.config.evaluation.metrics
    if not names or not getattr(trainer.data, "factor_sizes", ()):
        return {}
    from deft_tune.training.aggregate import combine_scores

    return combine_scores(trainer.scores(names, trainer.config.training.seed))
