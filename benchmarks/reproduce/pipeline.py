"""The run side shared by the experiments: budget, search spaces, CLI steps, searches, retrains.

Every step runs through the project's own CLI (`deft-tune search`, `export`, `train`,
`evaluate`, `ifp`) in a subprocess, logs to ``<results>/logs/<step>.log`` and records its wall
time in the ledger. A step whose MLflow experiment already holds a finished parent run is
skipped, so an interrupted reproduction continues where it stopped.
"""

from __future__ import annotations

import copy
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deft_tune.threads import available_cpus

from . import tracking

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUDGETS = HERE / "budgets"
SPACES = REPO / "search_spaces"
EVAL_METRICS = ("mig", "dci", "factor_vae")
RETRAIN_SUFFIX = "-retrain"  # a search's retrained models: experiment <search>-retrain
_LEDGER_LOCK = threading.Lock()  # retrain runs finish in parallel threads


def budget_names() -> list[str]:
    return sorted(p.stem for p in BUDGETS.glob("*.yaml"))


def load_budget(name: str) -> dict[str, Any]:
    return yaml.safe_load((BUDGETS / f"{name}.yaml").read_text())


def retrain_group(search_name: str) -> str:
    """The MLflow experiment holding the retrained models of the search ``search_name``."""
    return f"{search_name}{RETRAIN_SUFFIX}"


@dataclass
class Context:
    budget_name: str
    budget: dict[str, Any]
    results: Path
    log: Callable[[str], None] = print
    ledger: Any = None
    done: set[str] = field(default_factory=set)

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.results / 'mlflow.db'}"


def groups(ctx: Context) -> set[str]:
    """The finished groups in the store so far (none before the store exists)."""
    return tracking.finished_groups(ctx.uri) if (ctx.results / "mlflow.db").exists() else set()


def close(ctx: Context) -> None:
    """End the ledger's parent run once every chosen experiment has run."""
    tracking.finish(ctx.ledger)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` into a copy of ``base``: dicts merge, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def space_for(
    ctx: Context, base_file: str, override_key: str, name: str, data: dict[str, Any] | None = None
) -> Path:
    """Write the search space of one step: the shipped file, the budget, its own overrides."""
    space = yaml.safe_load((SPACES / f"{base_file}.yaml").read_text())
    space = deep_merge(space, ctx.budget["search"])
    space = deep_merge(space, ctx.budget["spaces"].get(override_key, {}))
    space["name"] = name
    if data is not None:
        space["data"] = data
    path = ctx.results / "spaces" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# {base_file}.yaml + budget {ctx.budget_name}\n" + yaml.safe_dump(space, sort_keys=False)
    )
    return path


# --- running commands -------------------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deft_tune", *args]


def run_logged(ctx: Context, command: list[str], log_name: str) -> float:
    """Run a command (cwd = results, output to logs/<name>.log); its wall seconds."""
    logs = ctx.results / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(logs / f"{log_name}.log", "w") as sink:
        done = subprocess.run(
            command,
            cwd=ctx.results,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(command)} failed (exit {done.returncode}); see {logs / log_name}.log"
        )
    return seconds


def step(ctx: Context, name: str, command: list[str]) -> float:
    """Run one step and record its wall time in the ledger under ``name``."""
    seconds = run_logged(ctx, command, name)
    with _LEDGER_LOCK:
        ctx.ledger = tracking.record_step(
            ctx.uri,
            ctx.ledger,
            name,
            shlex.join(command),
            seconds,
            {"budget": ctx.budget_name, **ctx.budget},
        )
    ctx.log(f"{name}: {seconds:.0f} s")
    return seconds


# --- searches, export, retrain ----------------------------------------------------------------


def search(ctx: Context, name: str, space: Path, *extra: str) -> None:
    """`deft-tune search` into experiment ``name`` (ledger step ``name``), resumed if begun."""
    if name in ctx.done:
        ctx.log(f"{name}: already in the store, skipped")
        return
    if (ctx.results / "ray" / name).exists():  # an earlier attempt stopped part-way
        extra = (*extra, "--resume")
    command = cli(
        "search", "--space", str(space), "--name", name,
        "--storage", str(ctx.results / "ray"), "--tracking-uri", ctx.uri, *extra,
    )  # fmt: skip
    step(ctx, name, command)


def retrain(ctx: Context, search_name: str, seeds: list[int]) -> None:
    """Export the search's best trial and train + evaluate it once per seed."""
    group_name = retrain_group(search_name)
    if group_name in ctx.done:
        ctx.log(f"{group_name}: already in the store, skipped")
        return
    best = ctx.results / "configs" / f"{search_name}-best.yaml"
    best.parent.mkdir(parents=True, exist_ok=True)
    export = cli("export", search_name, "--tracking-uri", ctx.uri, "--out", str(best))
    step(ctx, f"{search_name}-export", export)
    header = "".join(
        line for line in best.read_text().splitlines(keepends=True) if line.startswith("#")
    )
    source_run = next(
        (
            part.split("run id: ")[1].split(";")[0]
            for part in header.splitlines()
            if "run id: " in part
        ),
        "",
    )
    description = {
        "search": search_name,
        "source_run": source_run,
        "seeds": seeds,
        "metric_setting": ctx.budget["metric_setting"],
    }
    group = tracking.start_group(ctx.uri, group_name, "retrain", description)
    with ThreadPoolExecutor(int(ctx.budget.get("parallel", 1))) as pool:
        outcomes = list(pool.map(lambda s: _train_and_score(ctx, best, search_name, s), seeds))
    for seed, (run_dir, evaluation, wall) in zip(seeds, outcomes):
        tags = {"repro.seed": seed, "repro.source_run": source_run, "repro.wall_s": round(wall, 1)}
        tracking.record_retrain(group, f"seed{seed}", run_dir, evaluation, tags)
    tracking.finish(group)


def _train_and_score(
    ctx: Context, best: Path, search_name: str, seed: int
) -> tuple[Path, Path, float]:
    config = yaml.safe_load(best.read_text())
    config["training"]["seed"] = seed
    config["training"]["device"] = "cpu"
    config["evaluation"]["metrics"] = []  # scored by `deft-tune evaluate` in the budget's setting
    path = ctx.results / "configs" / f"{search_name}-seed{seed}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_dir = ctx.results / "train" / f"{search_name}-seed{seed}"
    if run_dir.exists():  # a half-finished earlier attempt: train afresh
        shutil.rmtree(run_dir)
    name = f"{search_name}-seed{seed}"
    train = cli(
        "train", "--config", str(path), "--out", str(run_dir), "--threads", "1", "--no-progress"
    )
    wall = step(ctx, f"{name}-train", train)
    evaluation = run_dir / "evaluation.json"
    fast = ["--fast"] if ctx.budget["metric_setting"] == "fast" else []
    # Each of the side-by-side evaluations gets its share of the cores: with torch's default
    # (one thread per core each) two standard evaluations took ~1,100 s each in experiment 1,
    # against ~330-630 s for one alone.
    threads = str(max(1, available_cpus() // int(ctx.budget.get("parallel", 1))))
    evaluate = cli(
        "evaluate", "--model", str(run_dir), "--metrics", *EVAL_METRICS, *fast,
        "--device", "cpu", "--threads", threads, "--out", str(evaluation),
    )  # fmt: skip
    wall += step(ctx, f"{name}-evaluate", evaluate)
    return run_dir, evaluation, wall
