"""What a search was asked to do and what came of it, shared by the runner and the Tune glue.

- :class:`SearchOptions` (the command line) and :func:`prepare_space`: the space file with the
  command line's overrides applied, checked before Ray starts;
- :class:`SearchOutcome`: what `deft-tune search` reports at the end;
- the experiment folder's state file (``deft_search.json``: the parent run id and tracking URI
  that ``--resume`` continues).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deft_tune.config import MAX_THREADS, read_yaml
from deft_tune.data import check_dataset_options
from deft_tune.errors import ConfigError
from deft_tune.search.space import SearchSpace, largest_run, load_space
from deft_tune.search.space.schema import check_trial_share
from deft_tune.validation import check_scalar

__all__ = [
    "STATE_FILE",
    "SearchOptions",
    "SearchOutcome",
    "check_local_device",
    "check_local_memory",
    "check_local_resources",
    "check_storage_reachable",
    "cluster_address",
    "discard_folder",
    "folder_exists",
    "prepare_space",
    "read_command",
    "read_state",
    "require_trial_fits",
    "resume_command",
    "smoke_budget",
    "space_as_run",
    "storage_root",
    "write_state",
]

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
    seed: int | None = None  # budget.seed: which trials are drawn, and their training seeds
    num_trials: int | None = None  # budget.num_trials: a part of a bank is a few trials


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
    errors: int = 0  # trials that failed (after their retries)
    first_error: str | None = None  # the last line of the first failed trial's error
    full_storage: str | None = None  # the local storage folder whose device filled up
    concurrent: int = 1  # budget.max_concurrent: > 1 makes stops depend on the finish order
    best_setting: str | None = None  # "standard" or "fast" (report.objective_setting)

    @property
    def failed(self) -> bool:
        """Every trial failed (after its retries): the search produced nothing to export."""
        return not self.interrupted and self.trials > 0 and self.errors == self.trials


# --- the space, with the command line's overrides ------------------------------------------


def prepare_space(options: SearchOptions) -> SearchSpace:
    """Load the space and apply overrides; ConfigError (before Ray starts) if anything is off."""
    space = load_space(options.space)
    overrides = _budget_overrides(options, space.budget)
    if overrides:  # rebuilt from the file so budget-derived defaults follow the new budget
        space = load_space(options.space, budget_overrides=overrides)
    stopping = space.stopping
    if not options.ifp_stopper:
        stopping = dataclasses.replace(
            stopping, ifp=dataclasses.replace(stopping.ifp, enabled=False)
        )
    if not options.asha:
        stopping = dataclasses.replace(
            stopping, asha=dataclasses.replace(stopping.asha, enabled=False)
        )
    name = options.name or space.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):  # "--x" would read as a flag
        raise ConfigError(
            f"--name == {name!r}: use letters, digits, '_', '-' or '.', starting with a letter "
            "or digit"
        )
    _check_device_budget(space)
    check_dataset_options(space.data["name"], space.data.get("options") or {})
    return dataclasses.replace(space, name=name, stopping=stopping)


def _trial_device(space: SearchSpace) -> str:
    return str((space.base.get("training") or {}).get("device", "auto"))


def _check_device_budget(space: SearchSpace) -> None:
    device = _trial_device(space)
    if device.startswith("cuda") and space.budget.gpus_per_trial == 0:
        raise ConfigError(
            f"base.training.device == {device!r} but budget.gpus_per_trial == 0: a trial "
            "would get no GPU; set --gpus-per-trial (e.g. 1) or device 'auto'"
        )


def cluster_address(explicit: str | None) -> str | None:
    """The cluster to join: ``--address``, else $RAY_ADDRESS, else none (a private local Ray)."""
    return explicit or os.environ.get("RAY_ADDRESS") or None


def check_local_memory(space: SearchSpace) -> None:
    """A search on a local Ray trains on this machine: its largest trial must fit in memory."""
    from deft_tune.data import dataset_class
    from deft_tune.training import resolve_device
    from deft_tune.training.memory import check_run_memory

    config = largest_run(space)
    family: Any = dataset_class(config.data.name)  # its shape is a class attribute
    shape = family.observation_shape
    # A trial without a GPU share sees no GPU (Ray hides them): it trains in the RAM.
    gpu = space.budget.gpus_per_trial > 0
    device = resolve_device(config.training.device) if gpu else "cpu"
    try:
        check_run_memory(config, shape, device)
    except ConfigError as exc:
        raise ConfigError(f"the largest trial of space {space.name!r}: {exc}") from None


def require_trial_fits(
    budget: Any, available: dict[str, float], where: str = "the local Ray"
) -> None:
    """ConfigError when one trial asks for more CPUs or GPUs than ``where`` has (the local Ray;
    before it starts, this machine): Tune would wait for them forever. (A cluster may grow, so
    only a local search is held to this.)"""
    for key, field, need in (
        ("CPU", "cpus_per_trial", budget.cpus_per_trial),
        ("GPU", "gpus_per_trial", budget.gpus_per_trial),
    ):
        have = float(available.get(key, 0.0))
        if need > have:
            raise ConfigError(
                f"--{field.replace('_', '-')} == {need:g} (budget.{field}) but {where} has "
                f"{have:g} {key}s: no trial could ever start; ask for at most {have:g}"
            )


def check_local_resources(space: SearchSpace) -> None:
    """Before Ray starts: a trial of a local search fits this machine's CPUs and GPUs (the
    local Ray, once started, is asked again: it may see fewer)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    gpus = 0
    if space.budget.gpus_per_trial > 0:
        import torch

        gpus = torch.cuda.device_count()
    require_trial_fits(space.budget, {"CPU": cpus, "GPU": gpus}, "this machine")


def check_local_device(space: SearchSpace) -> None:
    """A search on a local Ray trains on this machine: a CUDA device must exist here."""
    device = _trial_device(space)
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            f"base.training.device == {device!r} but this machine has no CUDA and the search "
            "runs on a local Ray: use device 'auto' or 'cpu', or --address a cluster with GPUs"
        )


def space_as_run(options: SearchOptions, space: SearchSpace) -> str:
    """The space file as the search runs it (what the parent run logs as its search space):
    the file with the name, budget and stopping that the command line's overrides made, so
    that what is read back (export --space-out) describes the trials that ran."""
    raw = read_yaml(options.space, "search space")
    raw = {
        **raw,
        "name": space.name,
        "budget": dataclasses.asdict(space.budget),
        "stopping": dataclasses.asdict(space.stopping),
    }
    return yaml.safe_dump(raw, sort_keys=False)


def _budget_overrides(options: SearchOptions, budget: Any) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if options.cpus_per_trial is not None:
        overrides["cpus_per_trial"] = check_trial_share(
            options.cpus_per_trial, "--cpus-per-trial", zero_ok=False, most=MAX_THREADS
        )
    if options.gpus_per_trial is not None:
        overrides["gpus_per_trial"] = check_trial_share(
            options.gpus_per_trial, "--gpus-per-trial", zero_ok=True
        )
    if options.seed is not None:
        overrides["seed"] = check_scalar(options.seed, "--seed", int, min_val=0)
    if options.num_trials is not None:
        overrides["num_trials"] = check_scalar(options.num_trials, "--num-trials", int, min_val=1)
    if options.smoke_test:
        overrides.update(smoke_budget(budget))
    return overrides


def smoke_budget(budget: Any) -> dict[str, int]:
    """Seconds instead of minutes: 2 trials of 2 reports of 20 steps (budget fields to set)."""
    steps = min(budget.steps_per_trial, 40)
    return {
        "steps_per_trial": steps,
        "eval_interval": max(1, steps // 2),
        "num_trials": min(budget.num_trials, 2),
    }


def storage_root(storage: str | None) -> str:
    """Absolute local path (trials chdir) or a URI (s3://, gs://) left as is."""
    if storage and "://" in storage:
        return storage.rstrip("/")
    return str(Path(storage or "runs").expanduser().resolve())


def resume_command(options: SearchOptions, name: str) -> str:
    parts = ["deft-tune", "search", "--space", options.space, "--name", name]
    for flag, value in (
        ("--storage", options.storage),
        ("--address", options.address),
        ("--tracking-uri", options.tracking_uri),
        ("--seed", options.seed),
        ("--num-trials", options.num_trials),
    ):
        if value is not None and value != "":
            parts += [flag, str(value)]
    if options.mlflow_server:
        parts.append("--mlflow-server")
    if options.smoke_test:
        parts.append("--smoke-test")
    return shlex.join([*parts, "--resume"])


def read_command(verb: str, name: str, uri: str, *extra: str) -> str:
    """``deft-tune inspect|export NAME ...`` as it runs from this folder: with the search's
    --tracking-uri unless it is the default one here."""
    from deft_tune.search.tracking.layout import default_tracking_uri

    store = [] if uri == default_tracking_uri() else ["--tracking-uri", uri]
    return shlex.join(["deft-tune", verb, name, *store, *extra])


# --- the experiment folder's own state ----------------------------------------------------


def _fs(path: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(path)


def check_storage_reachable(experiment_path: str, storage: str) -> None:
    """Before Ray: a remote --storage answers (Ray would fail later with a traceback)."""
    try:
        fs, inner = _fs(experiment_path)
        fs.get_file_info(inner)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"--storage {storage}: cannot reach it ({reason}); check the URI, the credentials "
            "and the network, or use a local folder"
        ) from None


def read_state(experiment_path: str) -> dict[str, Any] | None:
    fs, inner = _fs(experiment_path)
    try:
        with fs.open_input_stream(f"{inner}/{STATE_FILE}") as stream:
            return json.loads(stream.read().decode())
    except (FileNotFoundError, OSError):
        return None


def folder_exists(experiment_path: str) -> bool:
    fs, inner = _fs(experiment_path)
    return fs.get_file_info(inner).type != _file_type().NotFound


def discard_folder(experiment_path: str, *, made_here: bool) -> None:
    """Undo a search that never started a trial, so that the same command runs again: the
    folder if this search made it, else only the state file that would block a rerun."""
    fs, inner = _fs(experiment_path)
    if made_here:
        fs.delete_dir(inner)
    elif fs.get_file_info(f"{inner}/{STATE_FILE}").type != _file_type().NotFound:
        fs.delete_file(f"{inner}/{STATE_FILE}")


def _file_type():
    import pyarrow.fs

    return pyarrow.fs.FileType


def write_state(experiment_path: str, state: dict[str, Any]) -> None:
    fs, inner = _fs(experiment_path)
    fs.create_dir(inner, recursive=True)
    tmp = f"{inner}/.{STATE_FILE}.{uuid.uuid4().hex}.tmp"  # unique: no two writers collide
    with fs.open_output_stream(tmp) as stream:
        stream.write(json.dumps(state, indent=1).encode())
    fs.move(tmp, f"{inner}/{STATE_FILE}")
