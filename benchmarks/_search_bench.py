"""Shared parts of the search benchmarks: a space with budget overrides, one timed search on
the embedded defaults, what each trial did, and the docs/search.md table writer.

Everything is read back the way a user would: the trials' Tune results (``result.json`` in
the storage folder) for their time, MLflow (through ``deft_tune.search.tracking.reader``) for their
steps, status and scores. No figure is typed by hand.
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
import time
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "search.md"


@dataclass(frozen=True)
class Trial:
    trial_id: str
    status: str  # MLflow status: FINISHED (ran to the end), KILLED (stopped), FAILED
    stop_reason: str
    steps: int  # the last step the trial logged (a stopped trial trains no further)
    seconds: float  # Tune's time_total_s: time inside the trainable
    ended_at: float  # epoch seconds of its last result (Tune's whole-second timestamp)
    objective: float | None  # standard setting if completed, else the last fast score
    schedule: tuple  # the sampled run config less its seed: pairs trials of two searches
    replicas: int = 1  # seeds the trial trained (training.replicas)
    seed_std: float | None = None  # the final objective's std over those seeds (replicas > 1)


@dataclass(frozen=True)
class SearchRun:
    name: str
    started_at: float  # epoch seconds when the runner was called
    wall_seconds: float
    best_trial_id: str | None
    best_value: float | None
    trials: tuple[Trial, ...]

    @property
    def trial_steps(self) -> int:
        return sum(t.steps for t in self.trials)

    @property
    def trial_seconds(self) -> float:
        return sum(t.seconds for t in self.trials)

    def outside_trials(self) -> tuple[float, float]:
        """Seconds before the first trial's trainable started and after the last one ended."""
        first = min(t.ended_at - t.seconds for t in self.trials)
        last = max(t.ended_at for t in self.trials)
        return first - self.started_at, self.started_at + self.wall_seconds - last


def search_run_from_dict(data: dict[str, Any]) -> SearchRun:
    """A :class:`SearchRun` saved as JSON (``dataclasses.asdict``) back, tuples restored."""
    trials = tuple(
        Trial(**{**t, "schedule": tuple(tuple(pair) for pair in t["schedule"])})
        for t in data["trials"]
    )
    kept = {f.name for f in fields(SearchRun)} - {"trials"}
    return SearchRun(**{k: v for k, v in data.items() if k in kept}, trials=trials)


def add_budget_arguments(parser: Any, default_space: Path) -> None:
    parser.add_argument("--space", type=Path, default=default_space, help="search-space YAML")
    parser.add_argument("--trials", type=int, help="budget.num_trials override")
    parser.add_argument("--steps", type=int, help="budget.steps_per_trial override")
    parser.add_argument("--eval-interval", type=int, help="budget.eval_interval override")
    parser.add_argument("--max-concurrent", type=int, help="budget.max_concurrent override")
    parser.add_argument("--cpus-per-trial", type=float, help="budget.cpus_per_trial override")
    parser.add_argument("--gpus-per-trial", type=float, help="budget.gpus_per_trial override")
    parser.add_argument("--address", help="Ray cluster address (default: a local Ray)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "deft-tune-bench",
        help="folder for the searches' runs/ and mlflow.db (its benchmark subfolder is replaced)",
    )
    parser.add_argument("--write-doc", action="store_true", help=f"update {DOC.name}")


def budget_overrides(args: Any) -> dict[str, Any]:
    keys = {
        "trials": "num_trials",
        "steps": "steps_per_trial",
        "eval_interval": "eval_interval",
        "max_concurrent": "max_concurrent",
        "cpus_per_trial": "cpus_per_trial",
        "gpus_per_trial": "gpus_per_trial",
    }
    return {
        budget_key: getattr(args, arg)
        for arg, budget_key in keys.items()
        if getattr(args, arg) is not None
    }


def write_space(source: Path, folder: Path, name: str, budget: dict[str, Any]) -> Path:
    """A copy of ``source`` named ``name`` with ``budget`` keys replaced; checked by load_space."""
    from deft_tune.search.space import load_space

    raw = yaml.safe_load(source.read_text())
    raw["name"] = name
    raw["budget"] = {**raw.get("budget", {}), **budget}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_space(path)
    return path


def run_search(
    space: Path,
    workdir: Path,
    *,
    address: str | None = None,
    ifp_stopper: bool = True,
    asha: bool = True,
) -> SearchRun:
    """One search on the embedded defaults (sqlite store in ``workdir``), timed end to end:
    Ray start, data preparation (cached), all trials, MLflow finalisation, Ray shutdown."""
    from deft_tune.search.options import SearchOptions
    from deft_tune.search.runner import run_search as run
    from deft_tune.search.tracking import default_tracking_uri
    from deft_tune.search.tracking.reader import load_search

    workdir = workdir.resolve()
    uri = default_tracking_uri(workdir)
    options = SearchOptions(
        space=str(space),
        storage=str(workdir / "runs"),
        tracking_uri=uri,
        address=address,
        ifp_stopper=ifp_stopper,
        asha=asha,
    )
    started_at, start = time.time(), time.perf_counter()
    outcome = run(options, out=lambda line: None)
    wall = time.perf_counter() - start
    if outcome.interrupted:
        raise SystemExit(f"search {outcome.name!r} was interrupted: no figures written")
    times = trial_times(Path(outcome.experiment_path))
    record = load_search(uri, outcome.name)
    metric = record.objective.replace("metrics/", "", 1)
    nan = (float("nan"), float("nan"))
    trials = tuple(
        Trial(
            t.trial_id,
            t.status,
            t.stop_reason,
            t.steps,
            *times.get(t.trial_id, nan),
            _objective(t.metrics, metric),
            _schedule(t.params),
            int(float(t.params.get("training.replicas", 1))),
            t.metrics.get(f"final/{metric}_std"),
        )
        for t in record.trials
    )
    return SearchRun(
        outcome.name, started_at, wall, outcome.best_trial_id, outcome.best_value, trials
    )


def trial_times(experiment: Path) -> dict[str, tuple[float, float]]:
    """(time_total_s, timestamp) of each trial's last Tune result: the time spent inside the
    trainable and when its last report arrived."""
    found = {}
    for result in experiment.glob("*/result.json"):
        lines = [line for line in result.read_text().splitlines() if line.strip()]
        if lines:
            last = json.loads(lines[-1])
            found[last["trial_id"]] = (float(last["time_total_s"]), float(last["timestamp"]))
    return found


def _objective(metrics: dict[str, float], key: str) -> float | None:
    return metrics.get(f"final/{key}", metrics.get(f"metrics/{key}"))


def _schedule(params: dict[str, str]) -> tuple:
    """The trial's run config without its seed (what the schedule is, whatever the seed)."""
    return tuple(sorted((k, v) for k, v in params.items() if k != "training.seed"))


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = found.group(1).strip() if found else model
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} "
        f"(1-min load average {load:.1f} at the start: the machine is shared)"
    )


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def write_between(begin: str, end: str, text: str) -> None:
    doc = DOC.read_text()
    if begin not in doc or end not in doc:
        raise SystemExit(f"{DOC} lacks the {begin} ... {end} markers")
    new = re.sub(
        f"{re.escape(begin)}.*?{re.escape(end)}",
        lambda _: f"{begin}\n{text}\n{end}",
        doc,
        flags=re.S,
    )
    tmp = DOC.with_name(f".{DOC.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, DOC)
