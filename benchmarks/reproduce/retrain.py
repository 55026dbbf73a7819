"""Experiment 1's units: each arm's schedule retrained on seeds its bank never saw.

An arm is a method's best schedule from its committed curve bank (benchmarks/banks/<bank>/),
picked by the mean over the trial's replica seeds of the bank's objective (one seed lets noise
pick the winner), or ``hand``: configs/dsprites_deft.yaml, the authors' stage betas fitted by
hand, with its stage lengths scaled to the bank's steps per trial. Every arm trains the same
data, steps and metrics; a unit is one arm and one seed, trained with ``deft-tune train`` (the
command a user runs) and scored in the standard setting (MIG, DCI, FactorVAE), and leaves one
JSON file with the scores, the run config, the bank trial it came from, wall time, commit and
machine.

    python -m benchmarks.reproduce retrain --arm deft --seed 10000 --out FILE.json
"""

from __future__ import annotations

import glob
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deft_tune.data.correlated import check_correlation
from deft_tune.errors import ConfigError
from deft_tune.fileio import atomic_write_text
from deft_tune.search.replay.bankfile import read_banks
from deft_tune.search.tracking.provenance import commit, machine

from ..files import read_json_object

ROOT = Path(__file__).resolve().parents[2]
BANKS = ROOT / "benchmarks" / "banks"
HAND = ROOT / "configs" / "dsprites_deft.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "e1"
CORRELATED_RESULTS = ROOT / "benchmarks" / "results" / "e4"
SCALED_RESULTS = ROOT / "benchmarks" / "results" / "e1_steps"
# Experiment-1 units trained again later with the same command: do the scores come back?
RERUN_RESULTS = ROOT / "benchmarks" / "results" / "e1_rerun"
METRICS = ("mig", "dci", "factor_vae")
# The campaign runs one unit at a time on a 2-core machine: training uses both cores, and so
# does the standard DCI, whose per-factor classifiers run in training.threads processes (most
# of a unit's time at one thread). Every arm trains and scores alike; the scores of a config do
# not depend on the DCI's process count, and its threads are part of the recorded config.
THREADS = 2
# The retrained scores (metrics.json keys) and their names in the report.
SCORES = (
    ("mig", "MIG"),
    ("dci/disentanglement", "DCI disentanglement"),
    ("factor_vae/eval_accuracy", "FactorVAE score"),
)
# Seeds a unit may take: far from each other and from any bank seed, since a run's random
# streams use seed + k for k <= 7 (deft_tune.validation) and replica r takes seed + r.
SEEDS = (10_000, 10_100, 10_200, 10_300, 10_400)
# Experiment 4: DEFT's and beta-TCVAE's schedules, searched on independent factors, trained on
# correlated dSprites (orientation tied to pos_x) at two strengths with the same 3 seeds each,
# so that differences pair by seed.
CORRELATED_ARMS = ("deft", "beta_tcvae")
CORRELATIONS = (0.5, 0.9)
CORRELATED_SEEDS = SEEDS[:3]
# Where searched DEFT misses MIG 0.30 at the bank's steps: its schedule at 2x and 4x the steps
# (stages keep their share of the run), 3 seeds each, to show the trend.
STEP_SCALES = (2, 4)
SCALED_SEEDS = SEEDS[:3]
# The training history a unit keeps: the top-2 NMI per factor (experiment 3, diffusion), and
# the IFP stopper's signals (kept_history).
HISTORY_PREFIXES = ("info/nmi1/", "info/nmi2/")
_STREAMS = 16  # two seeds closer than this may share a stream


@dataclass(frozen=True)
class Arm:
    key: str
    label: str
    bank: str  # folder under benchmarks/banks/ (the hand arm takes its steps from DEFT's bank)


ARMS = {
    "deft": Arm("deft", "DEFT (searched)", "dsprites"),
    "hand": Arm("hand", "DEFT (hand schedule, configs/dsprites_deft.yaml)", "dsprites"),
    "beta_vae": Arm("beta_vae", "beta-VAE (searched)", "beta_vae"),
    "beta_tcvae": Arm("beta_tcvae", "beta-TCVAE (searched)", "beta_tcvae"),
    "annealed_vae": Arm("annealed_vae", "AnnealedVAE (searched)", "annealed_vae"),
}


def bank_parts(arm: Arm) -> list[str]:
    parts = sorted(glob.glob(str(BANKS / arm.bank / "part-*.parquet")))
    if not parts:
        raise ConfigError(
            f"arm {arm.key!r} needs its bank's parts under {BANKS / arm.bank}: run its campaign "
            "units first (python -m benchmarks.campaign status)"
        )
    return parts


def seed_mean(replica_finals: tuple[float, ...]) -> float:
    """A schedule's score: the mean over its seeds, NaN (never the best) if one seed failed."""
    return statistics.fmean(replica_finals) if replica_finals else math.nan


def best_trial(bank: Any) -> Any:
    """The trial with the best seed mean of the bank's objective (ties: the first listed)."""
    sign = 1.0 if bank.mode == "max" else -1.0
    scored = [(sign * seed_mean(t.replica_finals), t) for t in bank.trials]
    finite = [(score, t) for score, t in scored if math.isfinite(score) and t.run_config]
    if not finite:
        raise ConfigError(f"bank {bank.experiment} has no trial with a score and a run config")
    return max(finite, key=lambda pair: pair[0])[1]


def bank_seeds(bank: Any) -> list[int]:
    """Every seed a replica of the bank trained with."""
    seeds = []
    for trial in bank.trials:
        training = yaml.safe_load(trial.run_config)["training"]
        seeds += [int(training["seed"]) + r for r in range(int(training.get("replicas", 1)))]
    return seeds


def hand_config(steps: int) -> dict[str, Any]:
    """configs/dsprites_deft.yaml at ``steps``: its stages keep their share of the run."""
    return _at_steps(yaml.safe_load(HAND.read_text()), steps)


def _at_steps(raw: dict[str, Any], steps: int) -> dict[str, Any]:
    """``raw`` trained for ``steps``: each fixed stage keeps its share of the run."""
    scale = steps / int(raw["training"]["steps"])
    for stage in (raw.get("schedule") or {}).get("stages", []):
        if stage.get("steps") is not None:
            stage["steps"] = max(1, round(int(stage["steps"]) * scale))
    raw["training"]["steps"] = steps
    return raw


def arm_config(
    key: str, seed: int, correlation: float | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run config a unit trains, and where it came from; with ``correlation``, on
    correlated dSprites of that strength instead of the bank's data."""
    arm = ARMS[key]
    bank = read_banks(bank_parts(arm))
    near = [s for s in bank_seeds(bank) if abs(s - seed) < _STREAMS]
    if near:
        raise ConfigError(f"seed {seed} is within {_STREAMS} of bank seed(s) {near[:3]}")
    source: dict[str, Any]
    if key == "hand":
        raw = hand_config(int(bank.budget["steps_per_trial"]))
        source = {"config": HAND.relative_to(ROOT).as_posix()}
    else:
        trial = best_trial(bank)
        raw = yaml.safe_load(trial.run_config)
        source = {"bank": arm.bank, "trial": trial.trial_id,
                  "bank_seed_mean": seed_mean(trial.replica_finals),
                  "bank_replicas": list(trial.replica_finals)}  # fmt: skip
    raw["training"].update(seed=seed, replicas=1, threads=THREADS)
    raw["evaluation"]["metrics"] = list(METRICS)
    if correlation is not None:
        correlation = check_correlation(correlation)  # one line, not a failed training run
        raw["data"] = {"name": "correlated_dsprites", "options": {"correlation": correlation}}
        source["correlation"] = correlation
    source["bank_parts"] = [Path(p).name for p in bank_parts(arm)]
    source["bank_steps"] = int(bank.budget["steps_per_trial"])
    return raw, source


def unit(
    key: str,
    seed: int,
    out: Path,
    steps: int | None = None,
    correlation: float | None = None,
    scale: int = 1,
) -> dict[str, Any]:
    """Train arm ``key`` with ``seed`` (on correlated dSprites with ``correlation``; for
    ``scale`` times the bank's steps) and write its row to ``out``. ``steps`` shortens the run
    (a smoke check; the report refuses rows whose steps are not their bank's times scale)."""
    config, source = arm_config(key, seed, correlation)
    if scale != 1:
        config = _scaled(config, scale)
    if steps is not None:
        config = _shortened(config, steps)
    with tempfile.TemporaryDirectory() as scratch:
        folder, path = Path(scratch) / "run", Path(scratch) / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        started = time.monotonic()
        command = [sys.executable, "-m", "deft_tune", "train", "--config", str(path), "--out",
                   str(folder), "--no-progress", "--threads", str(THREADS)]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.monotonic() - started
        scores = json.loads((folder / "metrics.json").read_text())["metrics"]
        history = kept_history(folder / "history.jsonl")
        scoring = scoring_seconds(folder)
    row = {
        "arm": key,
        "seed": seed,
        "correlation": correlation,
        "scale": scale,
        "scores": {k: scores.get(k, math.nan) for k, _ in SCORES},
        "history": history,
        "steps": int(config["training"]["steps"]),
        "source": source,
        "config": config,
        "wall_s": round(wall, 1),
        "scoring_s": round(scoring, 1),
        "commit": commit(),
        "machine": machine(),
    }
    atomic_write_text(out, json.dumps(row, indent=1) + "\n")
    return row


def scoring_seconds(run: Path) -> float:
    """Seconds the standard scores took in the finished run folder ``run``: ``deft-tune train``
    rewrites history.jsonl at each report and writes metrics.json once the scores are in, so
    the gap between the two files is the last report to the scores (the final checkpoint and
    model files, well under a second here, included)."""
    return (run / "metrics.json").stat().st_mtime - (run / "history.jsonl").stat().st_mtime


def _scaled(config: dict[str, Any], scale: int) -> dict[str, Any]:
    """``config`` for ``scale`` times its steps, evaluated and checkpointed as often per run."""
    if scale < 1:
        raise ConfigError(f"--scale {scale}: must be a whole number >= 1")
    config = _at_steps(config, int(config["training"]["steps"]) * scale)
    for section, key in (("training", "checkpoint_interval"), ("evaluation", "interval")):
        if config[section].get(key) is not None:
            config[section][key] = int(config[section][key]) * scale
    return config


def _shortened(config: dict[str, Any], steps: int) -> dict[str, Any]:
    config = _at_steps(config, steps)
    config["training"]["checkpoint_interval"] = steps
    config["evaluation"]["interval"] = max(1, steps // 2)
    return config


def kept_history(path: Path) -> list[dict[str, float]]:
    """The run's evaluations, reduced to the step, the HISTORY_PREFIXES keys and the signals the
    IFP stopper reads (so the report can tell where the live stopper would end the run)."""
    from deft_tune.search.stopping import reads

    points = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        kept = {k: v for k, v in record.items()
                if k.startswith(HISTORY_PREFIXES) or (reads(k) and k != "step")}  # fmt: skip
        if kept:
            points.append({"step": record["step"], **kept})
    return points


# What :func:`unit` writes, and so what the report may read from every retrain unit file.
ROW_KEYS = ("arm", "seed", "correlation", "scale", "scores", "history", "steps", "source",
            "config", "wall_s", "scoring_s", "commit", "machine")  # fmt: skip


def read_rows(folder: Path = RESULTS, keys: tuple[str, ...] = ROW_KEYS) -> list[dict[str, Any]]:
    """Every unit file in ``folder``; one that is not a JSON object with ``keys`` is a
    :class:`ConfigError` naming it (a report is never written from part of the evidence)."""
    return [_unit_file(path, keys) for path in sorted(folder.glob("*.json"))]


def _unit_file(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    fix = f"restore it (git checkout -- {path}) or delete it and run its campaign unit again"
    row = read_json_object(path, "unit file", fix)
    missing = [key for key in keys if key not in row]
    if missing:
        raise ConfigError(f"unit file {path} lacks {', '.join(missing)}: {fix}")
    return row
