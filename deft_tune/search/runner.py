"""Run a search: the space, Ray, MLflow and Tune put together, with resume and interruption.

Order matters: the space is loaded and checked first (a bad space never starts Ray), then
the tracking store (and a local ``mlflow server`` when asked), then Ray, then the Tuner. An
interrupted search (Ctrl-C, SIGTERM) keeps its experiment folder; ``--resume`` restores the
Tuner from it and continues the same MLflow parent run, whose id is kept in the experiment
folder (``deft_search.json``). A resume first checks the folder's seal (seal.py): Ray
unpickles what is there.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deft_tune.errors import ConfigError, DiskFullError
from deft_tune.fileio import check_output_dir, disk_full
from deft_tune.search.lock import search_lock
from deft_tune.search.options import (
    SearchOptions,
    SearchOutcome,
    check_local_device,
    check_local_memory,
    check_local_resources,
    check_storage_reachable,
    cluster_address,
    prepare_space,
    read_command,
    read_state,
    resume_command,
    storage_root,
)
from deft_tune.search.seal import verify
from deft_tune.search.space import load_space
from deft_tune.search.tracking.layout import default_tracking_uri

log = logging.getLogger(__name__)


# --- tracking store and environment --------------------------------------------------------


@contextmanager
def tracking_store(options: SearchOptions, previous: dict[str, Any] | None) -> Iterator[str]:
    """The tracking URI for this run; starts and always stops a local server if asked."""
    if options.mlflow_server:
        if options.tracking_uri:
            raise ConfigError(
                "--mlflow-server and --tracking-uri both given: the server "
                "makes its own URI; pass only one"
            )
        from deft_tune.search.tracking.server import MlflowServer

        with MlflowServer(Path.cwd()) as server:
            yield server.uri
        return
    uri = options.tracking_uri or (previous or {}).get("tracking_uri") or default_tracking_uri()
    if uri.startswith("http://127.0.0.1") and previous and not options.tracking_uri:
        uri = default_tracking_uri()  # the old run's local server is gone; its store is here
    from deft_tune.search.tracking.reader import check_server_reachable, check_sqlite_store_to_write

    check_sqlite_store_to_write(uri)
    check_server_reachable(uri)
    yield uri


@contextmanager
def driver_environment(uri: str) -> Iterator[None]:
    """MLFLOW_TRACKING_URI for the driver's callbacks (signals: interrupts.py, once Ray runs)."""
    old_uri = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri


# --- the search ----------------------------------------------------------------------------


def run_search(
    options: SearchOptions,
    *,
    data_factory: Callable[[], Any] | None = None,
    out: Callable[[str], None] = print,
) -> SearchOutcome:
    """Run (or resume) a search; returns what happened. See the module docstring."""
    space = prepare_space(options)
    if not cluster_address(options.address):  # the trials run on this machine
        check_local_device(space)
        check_local_resources(space)
        check_local_memory(space)
    experiment_path = _experiment_path(options, space.name)
    if "://" not in experiment_path:  # a local folder: nothing in the way, before Ray
        check_output_dir(experiment_path, "--storage")
    else:
        check_storage_reachable(experiment_path, str(options.storage))
    with search_lock(experiment_path, space.name):  # held until this search has ended
        previous = read_state(experiment_path)
        _check_resume(options, space.name, experiment_path, previous)
        with tracking_store(options, previous) as uri, driver_environment(uri):
            from deft_tune.search import tuner  # imports Ray

            return tuner.execute(space, options, experiment_path, uri, previous, data_factory, out)


def _check_resume(options: SearchOptions, name: str, path: str, previous: dict | None) -> None:
    if options.resume and previous is None:
        raise ConfigError(
            f"nothing to resume: no search {name!r} in {path}; run without --resume to start it"
        )
    if options.resume:
        verify(path)  # before Ray unpickles anything there (seal.py says what is trusted)
    if not options.resume and previous is not None and previous.get("finished"):
        inspect = read_command("inspect", name, str(previous.get("tracking_uri")))
        raise ConfigError(
            f"a search {name!r} already ran to its end in {path}: see it with `{inspect}`, "
            f"or run it again under another --name (e.g. --name {name}-2)"
        )
    if not options.resume and previous is not None:
        raise ConfigError(
            f"a search {name!r} already exists in {path}: add --resume to "
            "continue it, or pick another --name"
        )


def interrupted_line(options: SearchOptions) -> str:
    """What an interrupt that Tune did not see says: how to resume, if anything was saved."""
    name = options.name or load_space(options.space).name
    path = _experiment_path(options, name)
    if read_state(path) is None:
        return f"search {name!r} interrupted before it started; nothing to resume"
    return f"search {name!r} interrupted; resume with: {resume_command(options, name)}"


def _experiment_path(options: SearchOptions, name: str) -> str:
    return f"{storage_root(options.storage)}/{name}"


def summary_lines(outcome: SearchOutcome, metric: str) -> list[str]:
    """What the CLI prints at the end."""
    if outcome.full_storage:
        return [full_storage_line(outcome.name, outcome.full_storage)]
    if outcome.interrupted:
        return [
            f"search {outcome.name!r} interrupted after {outcome.completed} of "
            f"{outcome.trials} trials; its state is in {outcome.experiment_path}",
            f"resume with: {outcome.resume_command}",
        ]
    lines = [
        f"search {outcome.name!r}: {outcome.trials} trials, {outcome.completed} ran to the "
        f"end; tracking: {outcome.tracking_uri} (experiment {outcome.name!r})"
    ]
    if outcome.errors:
        lines.append(
            f"{outcome.errors} of {outcome.trials} trials failed; the first error: "
            f"{outcome.first_error}"
        )
    if outcome.failed:
        return [
            *lines,
            f"search {outcome.name!r} failed: every trial failed; their logs are in "
            f"{outcome.experiment_path}",
        ]
    if outcome.best_trial_id is None:
        lines.append(
            f"no trial reported the objective: see the trials' logs in {outcome.experiment_path}"
        )
    else:
        setting = f" ({outcome.best_setting} setting)" if outcome.best_setting else ""
        lines.append(
            f"best trial {outcome.best_trial_id}: {metric} = {outcome.best_value:.4f}{setting}"
        )
        if outcome.completed == 0:
            lines.append(
                "no trial ran to the end: the best was stopped early and its score is "
                "from its last report (the fast setting); "
                f"`{read_command('inspect', outcome.name, outcome.tracking_uri)}` says why each "
                "stopped"
            )
    if outcome.concurrent > 1:
        lines.append(
            f"{outcome.concurrent} trials ran at a time: ASHA's stops and TPE's later draws "
            "followed the order they finished in, so the same seed may give another search; "
            "budget.max_concurrent: 1 repeats it exactly"
        )
    lines += [
        "inspect it:  " + read_command("inspect", outcome.name, outcome.tracking_uri),
        "export it:   "
        + read_command("export", outcome.name, outcome.tracking_uri, "--out", "best.yaml"),
    ]
    return lines


EXIT_FAILED = 1  # the search ran but every trial failed
EXIT_FULL = 2  # the storage's device filled up (a user error, as a bad --storage is)


def _raise_if_full(error: Exception, options: SearchOptions) -> None:
    """DiskFullError (one line) when ``error`` came from a full local storage: Ray's and
    Optuna's state files cut short surface as EOFError or UnpicklingError tracebacks."""
    root = storage_root(options.storage)
    if "://" not in root and disk_full(error, root):
        name = options.name or load_space(options.space).name
        raise DiskFullError(full_storage_line(name, root)) from None


def full_storage_line(name: str, root: str) -> str:
    # Tune's state may be cut short there: a resume could be refused, a new name is safe.
    return (
        f"search {name!r} stopped: no space left on the device of --storage {root}; free some "
        "space there and run it again under another --name"
    )


def main_search(options: SearchOptions, data_factory: Callable[[], Any] | None = None) -> int:
    """Run and print the summary; exit code 0, 1 when every trial failed
    (:attr:`SearchOutcome.failed`), or 130 when interrupted."""
    try:
        outcome = run_search(options, data_factory=data_factory)
    except KeyboardInterrupt:  # a second signal, or one outside Tune's fit (interrupts.py)
        print(interrupted_line(options), file=sys.stderr)
        return 130
    except Exception as exc:
        _raise_if_full(exc, options)
        raise
    metric = load_space(options.space).objective.key
    ok = not (outcome.interrupted or outcome.failed)
    for line in summary_lines(outcome, metric):
        print(line, file=sys.stdout if ok else sys.stderr)
    if outcome.full_storage:
        return EXIT_FULL
    if outcome.interrupted:
        return 130
    return EXIT_FAILED if outcome.failed else 0
