"""The reproduction's steps, each through the project's own CLI, recorded in one MLflow store.

Steps (experiment names in MLflow):
- ``e1-<method>``: a search per method on dsprites_full (search_spaces/<method>.yaml merged with
  the budget's overrides); ``e1-<method>-retrain``: its best trial exported (`deft-tune export`),
  retrained per seed (`deft-tune train`) and scored (`deft-tune evaluate`).
- ``e2-ifp``: the annealing test (`deft-tune ifp`), one child run per annealing run.
- experiment 3 reads the NMI histories of e1-deft-retrain and e1-beta_vae-retrain.
- ``e4-<method>-c<strength>`` (+ ``-retrain``): DEFT and beta-TCVAE on correlated dSprites.
- ``e5-deft-no-ifp``: the DEFT search again without the IFP stopper (the same seed and budget).

A step whose MLflow experiment already holds a finished parent run is skipped, so an
interrupted reproduction continues where it stopped.
"""

from __future__ import annotations

import copy
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import repro_tracking as rt
import yaml

REPO = Path(__file__).resolve().parents[2]
SPACES = REPO / "search_spaces"
METHODS = ("deft", "beta_vae", "beta_tcvae", "annealed_vae")
SPACE_OF = {"deft": "dsprites_full", "beta_vae": "beta_vae", "beta_tcvae": "beta_tcvae",
            "annealed_vae": "annealed_vae"}
EVAL_METRICS = ("mig", "dci", "factor_vae")
EXPERIMENTS = ("e1", "e2", "e3", "e4", "e5")
_LEDGER_LOCK = threading.Lock()  # retrain runs finish in parallel threads


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


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` into a copy of ``base``: dicts merge, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def space_for(ctx: Context, base_file: str, override_key: str, name: str,
              data: dict[str, Any] | None = None) -> Path:
    """Write the search space of one step: the shipped file, the budget, its own overrides."""
    space = yaml.safe_load((SPACES / f"{base_file}.yaml").read_text())
    space = deep_merge(space, ctx.budget["search"])
    space = deep_merge(space, ctx.budget["spaces"].get(override_key, {}))
    space["name"] = name
    if data is not None:
        space["data"] = data
    path = ctx.results / "spaces" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {base_file}.yaml + budget {ctx.budget_name}\n"
                    + yaml.safe_dump(space, sort_keys=False))
    return path


# --- running commands ---------------------------------------------------------------------

def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deft_tune", *args]


def run_logged(ctx: Context, command: list[str], log_name: str) -> float:
    """Run a command (cwd = results, output to logs/<name>.log); its wall seconds."""
    logs = ctx.results / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(logs / f"{log_name}.log", "w") as sink:
        done = subprocess.run(command, cwd=ctx.results, stdout=sink, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed (exit {done.returncode}); "
                           f"see {logs / log_name}.log")
    return seconds


def step(ctx: Context, name: str, command: list[str]) -> float:
    seconds = run_logged(ctx, command, name)
    with _LEDGER_LOCK:
        ctx.ledger = rt.record_step(ctx.uri, ctx.ledger, name, shlex.join(command), seconds,
                                    {"budget": ctx.budget_name, **ctx.budget})
    ctx.log(f"{name}: {seconds:.0f} s")
    return seconds


# --- searches, export, retrain ------------------------------------------------------------

def search(ctx: Context, name: str, space: Path, *extra: str) -> None:
    if name in ctx.done:
        ctx.log(f"{name}: already in the store, skipped")
        return
    if (ctx.results / "ray" / name).exists():  # an earlier attempt stopped part-way
        extra = (*extra, "--resume")
    step(ctx, name, cli("search", "--space", str(space), "--name", name,
                        "--storage", str(ctx.results / "ray"), "--tracking-uri", ctx.uri,
                        *extra))


def retrain(ctx: Context, search_name: str, seeds: list[int]) -> None:
    """Export the search's best trial and train + evaluate it once per seed."""
    group_name = f"{search_name}-retrain"
    if group_name in ctx.done:
        ctx.log(f"{group_name}: already in the store, skipped")
        return
    best = ctx.results / "configs" / f"{search_name}-best.yaml"
    best.parent.mkdir(parents=True, exist_ok=True)
    step(ctx, f"{search_name}-export", cli("export", search_name, "--tracking-uri", ctx.uri,
                                           "--out", str(best)))
    header = "".join(line for line in best.read_text().splitlines(keepends=True)
                     if line.startswith("#"))
    source_run = next((part.split("run id: ")[1].split(";")[0] for part in header.splitlines()
                       if "run id: " in part), "")
    group = rt.start_group(ctx.uri, group_name, "retrain",
                           {"search": search_name, "source_run": source_run, "seeds": seeds,
                            "metric_setting": ctx.budget["metric_setting"]})
    with ThreadPoolExecutor(int(ctx.budget.get("parallel", 1))) as pool:
        outcomes = list(pool.map(lambda s: _train_and_score(ctx, best, search_name, s), seeds))
    for seed, (run_dir, evaluation, wall) in zip(seeds, outcomes):
        rt.record_retrain(group, f"seed{seed}", run_dir, evaluation,
                          {"repro.seed": seed, "repro.source_run": source_run,
                           "repro.wall_s": round(wall, 1)})
    rt.finish(group)


def _train_and_score(ctx: Context, best: Path, search_name: str, seed: int
                     ) -> tuple[Path, Path, float]:
    config = yaml.safe_load(best.read_text())
    config["training"]["seed"] = seed
    config["training"]["device"] = "cpu"
    config["evaluation"]["metrics"] = []  # scored by `deft-tune evaluate` in the budget's setting
    path = ctx.results / "configs" / f"{search_name}-seed{seed}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_dir = ctx.results / "train" / f"{search_name}-seed{seed}"
    if run_dir.exists():  # a half-finished earlier attempt: train afresh
        import shutil

        shutil.rmtree(run_dir)
    name = f"{search_name}-seed{seed}"
    wall = step(ctx, f"{name}-train", cli("train", "--config", str(path), "--out", str(run_dir),
                                          "--threads", "1", "--no-progress"))
    evaluation = run_dir / "evaluation.json"
    fast = ["--fast"] if ctx.budget["metric_setting"] == "fast" else []
    # Each of the side-by-side evaluations gets its share of the cores: with torch's default
    # (one thread per core each) two standard evaluations took ~1,100 s each in experiment 1,
    # against ~330-630 s for one alone.
    threads = str(max(1, (os.cpu_count() or 1) // int(ctx.budget.get("parallel", 1))))
    wall += step(ctx, f"{name}-evaluate", cli("evaluate", "--model", str(run_dir), "--metrics",
                                              *EVAL_METRICS, *fast, "--device", "cpu",
                                              "--threads", threads, "--out", str(evaluation)))
    return run_dir, evaluation, wall


# --- the experiments ----------------------------------------------------------------------

def experiment_1(ctx: Context) -> None:
    for method in METHODS:
        name = f"e1-{method}"
        search(ctx, name, space_for(ctx, SPACE_OF[method], SPACE_OF[method], name))
        retrain(ctx, name, list(ctx.budget["seeds"]))


def experiment_2(ctx: Context) -> None:
    """The annealing test at the budget's reduced size, one child run per annealing run."""
    if "e2-ifp" in ctx.done:
        ctx.log("e2-ifp: already in the store, skipped")
        return
    opts = ctx.budget["ifp"]
    out = ctx.results / "ifp"
    command = cli("ifp", "--dataset", "dsprites_full", "--out", str(out),
                  *(f"--{k}={v}" for k, v in opts.items()))
    step(ctx, "e2-ifp-run", command)
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "ifp.parquet").to_pylist()
    group = rt.start_group(ctx.uri, "e2-ifp", "ifp", {"command": shlex.join(command), **opts})
    for row in rows:
        name = f"{row['factor']}-draw{row['draw']}-seed{row['seed']}"
        params = {k: row[k] for k in ("dataset", "factor", "draw", "seed") if k in row}
        metrics = {"ifp": row["ifp"], "final_kl": row["final_kl"], "steps": row["steps"]}
        rt.add_run(group, name, params, metrics, {})
    rt.finish(group)


def experiment_3(ctx: Context) -> None:
    if not {"e1-deft-retrain", "e1-beta_vae-retrain"} <= ctx.done | _groups(ctx):
        experiment_1(ctx)  # the NMI histories come from experiment 1's retrained models
    ctx.log("e3: reads the NMI histories of e1-deft-retrain and e1-beta_vae-retrain")


def experiment_4(ctx: Context) -> None:
    for strength in ctx.budget["correlations"]:
        data = {"name": "correlated_dsprites", "options": {"correlation": float(strength)}}
        for method, base, key in (("deft", "correlated_dsprites", "correlated_dsprites"),
                                  ("beta_tcvae", "beta_tcvae", "correlated_beta_tcvae")):
            name = f"e4-{method}-c{strength}"
            search(ctx, name, space_for(ctx, base, key, name, data))
            retrain(ctx, name, list(ctx.budget["correlated_seeds"]))


def experiment_5(ctx: Context) -> None:
    if "e1-deft" not in ctx.done | _groups(ctx):
        search(ctx, "e1-deft", space_for(ctx, "dsprites_full", "dsprites_full", "e1-deft"))
    name = "e5-deft-no-ifp"
    search(ctx, name, space_for(ctx, "dsprites_full", "dsprites_full", name), "--no-ifp-stopper")


RUNNERS = {"e1": experiment_1, "e2": experiment_2, "e3": experiment_3, "e4": experiment_4,
           "e5": experiment_5}


def _groups(ctx: Context) -> set[str]:
    return finished_groups(ctx.uri) if (ctx.results / "mlflow.db").exists() else set()


def finished_groups(uri: str) -> set[str]:
    """Experiment names whose newest parent run finished (steps that need not run again)."""
    from deft_tune.search.tracking import reader as experiments

    return {s.experiment for s in experiments.list_searches(uri) if s.status == "FINISHED"
            and s.experiment != rt.LEDGER}


def run_all(ctx: Context, only: list[str]) -> None:
    ctx.done = _groups(ctx)
    for key in only:
        ctx.log(f"--- experiment {key} ---")
        RUNNERS[key](ctx)
        ctx.done = _groups(ctx)
    rt.finish(ctx.ledger)
