"""Run a search: the space, Ray, MLflow and Tune put together, with resume and interruption.

Order matters: the space is loaded and checked first (a bad space never starts Ray), then
the tracking store (and a local ``mlflow server`` when asked), then Ray, then the Tuner. An
interrupted search (Ctrl-C, SIGTERM) keeps its experiment folder; ``--resume`` restores the
Tuner from it and continues the same MLflow parent run, whose id is kept in the experiment
folder (``deft_search.json``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deft_tune.errors import ConfigError
from deft_tune.search.space import SearchSpace, load_space
from deft_tune.search.tracking import MlflowServer, default_tracking_uri

log = logging.getLogger(__name__)

STATE_FILE = "deft_search.json"  # in the experiment folder: parent run id, tracking URI


@dataclass(frozen=True)
class SearchOptions:
    """What `deft-tune search` was asked to do (None: take the space's value)."""

    space: str
    name: str | None = None
    address: str | None = None
    storage: str | None = None
    resume: bool = False
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    tracking_uri: str | None = None
    mlflow_server: bool = False
    ifp_stopper: bool = True
    asha: bool = True
    smoke_test: bool = False


@dataclass(frozen=True)
class SearchOutcome:
    name: str
    experiment_path: str
    tracking_uri: str
    parent_run_id: str
    interrupted: bool
    trials: int
    completed: int
    best_trial_id: str | None
    best_value: float | None
    resume_command: str


# --- the space, with the command line's overrides ------------------------------------------

def prepare_space(options: SearchOptions) -> SearchSpace:
    """Load the space and apply overrides; ConfigError (before Ray starts) if anything is off."""
    space = load_space(options.space)
    overrides = _budget_overrides(options, space.budget)
    if overrides:  # rebuilt from the file so budget-derived defaults follow the new budget
        space = load_space(options.space, budget_overrides=overrides)
    stopping = space.stopping
    if not options.ifp_stopper:
        stopping = dataclasses.replace(stopping, ifp=dataclasses.replace(stopping.ifp,
                                                                         enabled=False))
    if not options.asha:
        stopping = dataclasses.replace(stopping, asha=dataclasses.replace(stopping.asha,
                                                                          enabled=False))
    name = options.name or space.name
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ConfigError(f"--name == {name!r}: use letters, digits, '_', '-' or '.'")
    return dataclasses.replace(space, name=name, stopping=stopping)


def _budget_overrides(options: SearchOptions, budget: Any) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if options.cpus_per_trial is not None:
        _positive("--cpus-per-trial", options.cpus_per_trial)
        overrides["cpus_per_trial"] = float(options.cpus_per_trial)
    if options.gpus_per_trial is not None:
        if options.gpus_per_trial < 0:
            raise ConfigError(f"--gpus-per-trial == {options.gpus_per_trial}, must be >= 0")
        overrides["gpus_per_trial"] = float(options.gpus_per_trial)
    if options.smoke_test:
        overrides.update(smoke_budget(budget))
    return overrides


def smoke_budget(budget: Any) -> dict[str, int]:
    """Seconds instead of minutes: 2 trials of 2 reports of 20 steps (budget fields to set)."""
    steps = min(budget.steps_per_trial, 40)
    return {"steps_per_trial": steps, "eval_interval": max(1, steps // 2),
            "num_trials": min(budget.num_trials, 2)}


def _positive(flag: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{flag} == {value}, must be > 0")


def storage_root(storage: str | None) -> str:
    """Absolute local path (trials chdir) or a URI (s3://, gs://) left as is."""
    if storage and "://" in storage:
        return storage.rstrip("/")
    return str(Path(storage or "runs").expanduser().resolve())


def resume_command(options: SearchOptions, name: str) -> str:
    parts = ["deft-tune", "search", "--space", options.space, "--name", name]
    for flag, value in (("--storage", options.storage), ("--address", options.address),
                        ("--tracking-uri", options.tracking_uri)):
        if value:
            parts += [flag, value]
    if options.mlflow_server:
        parts.append("--mlflow-server")
    if options.smoke_test:
        parts.append("--smoke-test")
    return " ".join([*parts, "--resume"])


# --- the experiment folder's own state ----------------------------------------------------

def _fs(path: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(path)


def read_state(experiment_path: str) -> dict[str, Any] | None:
    fs, inner = _fs(experiment_path)
    try:
        with fs.open_input_stream(f"{inner}/{STATE_FILE}") as stream:
            return json.loads(stream.read().decode())
    except (FileNotFoundError, OSError):
        return None


def write_state(experiment_path: str, state: dict[str, Any]) -> None:
    fs, inner = _fs(experiment_path)
    fs.create_dir(inner, recursive=True)
    tmp = f"{inner}/.{STATE_FILE}.tmp"
    with fs.open_output_stream(tmp) as stream:
        stream.write(json.dumps(state, indent=1).encode())
    fs.move(tmp, f"{inner}/{STATE_FILE}")


# --- tracking store and environment --------------------------------------------------------

@contextmanager
def tracking_store(options: SearchOptions, previous: dict[str, Any] | None) -> Iterator[str]:
    """The tracking URI for this run; starts and always stops a local server if asked."""
    if options.mlflow_server:
        if options.tracking_uri:
            raise ConfigError("--mlflow-server and --tracking-uri both given: the server "
                              "makes its own URI; pass only one")
        with MlflowServer(Path.cwd()) as server:
            yield server.uri
        return
    uri = options.tracking_uri or (previous or {}).get("tracking_uri") or default_tracking_uri()
    if uri.startswith("http://127.0.0.1") and previous and not options.tracking_uri:
        uri = default_tracking_uri()  # the old run's local server is gone; its store is here
    yield uri


@contextmanager
def driver_environment(uri: str) -> Iterator[None]:
    """MLFLOW_TRACKING_URI for the driver's callbacks; SIGTERM handled like Ctrl-C."""
    old_uri = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    old_term = signal.getsignal(signal.SIGTERM)
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and hasattr(signal, "SIGUSR1"):
        # Tune stops gracefully on SIGINT and SIGUSR1 (it always installs the latter).
        signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGUSR1))
    try:
        yield
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("deft-tune", "torch", "ray", "optuna", "mlflow", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "missing"
    return found


# --- the search ----------------------------------------------------------------------------

def run_search(options: SearchOptions, *, data_factory: Callable[[], Any] | None = None,
               out: Callable[[str], None] = print) -> SearchOutcome:
    """Run (or resume) a search; returns what happened. See the module docstring."""
    space = prepare_space(options)
    experiment_path = f"{storage_root(options.storage)}/{space.name}"
    previous = read_state(experiment_path)
    _check_resume(options, space.name, experiment_path, previous)
    with tracking_store(options, previous) as uri, driver_environment(uri):
        from deft_tune.search import _tune

        return _tune.execute(space, options, experiment_path, uri, previous, data_factory, out)


def _check_resume(options: SearchOptions, name: str, path: str, previous: dict | None) -> None:
    if options.resume and previous is None:
        raise ConfigError(f"nothing to resume: no search {name!r} in {path}; "
                          "run without --resume to start it")
    if not options.resume and previous is not None:
        raise ConfigError(f"a search {name!r} already exists in {path}: add --resume to "
                          "continue it, or pick another --name")


def summary_lines(outcome: SearchOutcome, metric: str) -> list[str]:
    """What the CLI prints at the end."""
    if outcome.interrupted:
        return [f"search {outcome.name!r} interrupted after {outcome.completed} of "
                f"{outcome.trials} trials; its state is in {outcome.experiment_path}",
                f"resume with: {outcome.resume_command}"]
    lines = [f"search {outcome.name!r}: {outcome.trials} trials, {outcome.completed} ran to the "
             f"end; tracking: {outcome.tracking_uri} (experiment {outcome.name!r})"]
    if outcome.best_trial_id is None:
        lines.append("no trial reported the objective: see the trials' logs in "
                     f"{outcome.experiment_path}")
    else:
        lines.append(f"best trial {outcome.best_trial_id}: {metric} = {outcome.best_value:.4f}")
        if outcome.completed == 0:
            lines.append("no trial ran to the end: the best was stopped early and its score is "
                         "from its last report (the fast setting); `deft-tune inspect "
                         f"{outcome.name}` says why each stopped")
    lines += ["inspect it:  deft-tune inspect " + outcome.name,
              "export it:   deft-tune export " + outcome.name + " --out best.yaml"]
    return lines


def main_search(options: SearchOptions, data_factory: Callable[[], Any] | None = None) -> int:
    """Run and print the summary; exit code 0, or 130 when interrupted."""
    outcome = run_search(options, data_factory=data_factory)
    metric = load_space(options.space).objective.metric
    for line in summary_lines(outcome, metric):
        print(line, file=sys.stdout if not outcome.interrupted else sys.stderr)
    return 130 if outcome.interrupted else 0
