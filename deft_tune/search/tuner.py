"""The Ray part of a search: Ray itself, the Tuner (new or restored), fit and its results.

Kept apart from runner.py so that importing the runner (and `deft-tune --help`) never imports
Ray, and a bad space or flag is refused before Ray starts. Both read the options, the outcome
and the state file from :mod:`deft_tune.search.options`, so neither imports the other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from deft_tune.data import run_dataset
from deft_tune.report_keys import COMPLETED
from deft_tune.results.report import best_report, objective_setting
from deft_tune.search.callbacks import LiveTable, TrialRunFinisher
from deft_tune.search.cluster.resources import alive_node_count, require_shared_resources
from deft_tune.search.interrupts import StopRequest, graceful_stop, stop_when_full
from deft_tune.search.options import (
    SearchOptions,
    SearchOutcome,
    cluster_address,
    discard_folder,
    folder_exists,
    require_trial_fits,
    resume_command,
    space_as_run,
    write_state,
)
from deft_tune.search.quiet import file_loggers, quiet_driver
from deft_tune.search.reaper import raylet_children, reap_on_exit
from deft_tune.search.seal import seal
from deft_tune.search.space import SearchSpace, define_by_run, points_to_evaluate
from deft_tune.search.stopping import make_scheduler, make_stopper
from deft_tune.search.tracking.layout import (
    BEST_TRIAL_TAG,
    INTERRUPTED_TAG,
    SPACE_ARTIFACT,
)
from deft_tune.search.tracking.provenance import commit, machine, package_versions
from deft_tune.search.tracking.writer import SearchTracking
from deft_tune.search.trainable import TrackingTarget, train_trial

log = logging.getLogger(__name__)


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Reuse this process's Ray, join ``address`` (or $RAY_ADDRESS), or start a private one.

    Without an address Ray's own default would join whatever `ray start` left running on this
    machine (its trials, storage and failures included); a search without --address promises
    a local Ray of its own, so it asks for one explicitly: on loopback only, serving no
    dashboard UI, its processes ended with the search (reaper.py). docs/reliability.md lists
    what listens where.
    """
    if ray.is_initialized():
        yield
        return
    address = cluster_address(address)
    if address:
        ray.init(address=address, log_to_driver=True)
        private: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    else:
        before = set(raylet_children())
        with loopback_only():
            ray.init(address="local", include_dashboard=False)
        private = reap_on_exit([r for r in raylet_children() if r not in before])
    with private:  # the reaper acts once Ray has shut down (or the driver died)
        try:
            yield
        finally:
            ray.shutdown()


@contextmanager
def loopback_only() -> Iterator[None]:
    """Ray's one-machine switch: the node's address is 127.0.0.1, so the GCS, raylet, workers,
    agents and metrics listen on loopback only (``ray._private.services.get_node_ip_address``;
    measured with ss, Ray 2.60). The switch is read when Ray is imported, so this process's
    copy is set too; Ray's processes get it from the environment and their arguments."""
    from ray._private import ray_constants

    old_env, old_flag = os.environ.get(_CLUSTER_SWITCH), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_CLUSTER_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = old_flag
        if old_env is None:
            os.environ.pop(_CLUSTER_SWITCH, None)
        else:
            os.environ[_CLUSTER_SWITCH] = old_env


_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR


def prepare_data(space: SearchSpace, options: SearchOptions, out: Callable[[str], None]) -> None:
    """Render or read the data set's cache once here, not in every trial at the same time."""
    if cluster_address(options.address):
        return  # the driver may not share a disk with the workers; each node builds its own
    data = run_dataset(space.data["name"], space.data["options"])
    build = getattr(data, "build_cache", None)
    if build is not None and not Path(getattr(data, "cache_path", "")).is_file():
        out(f"preparing data set {space.data['name']!r} (once; cached for later runs) ...")
        build()


def make_sampler(space: SearchSpace) -> Any:
    """The space's Optuna sampler (``budget.sampler``), seeded by ``budget.seed``: TPE
    (multivariate, grouped: the space is conditional), or uniform random sampling."""
    import optuna

    seed = space.budget.seed
    if space.budget.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # multivariate/group TPE is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed)


class NanLastOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna a trial whose objective is NaN (a replica without a
    finite score: deft_tune.training.aggregate) was pruned, without a value.

    Ray's own tells Optuna the NaN as a completed value, which Optuna refuses; Ray logs that
    and leaves the trial RUNNING in the study for good, where TPE never sees it. A pruned
    trial without intermediate values TPE counts among the worst (its group of good trials
    takes the completed ones first): the place of a schedule that lost a seed.
    """

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        value = (result or {}).get(self.metric)
        if isinstance(value, float) and math.isnan(value):
            result = None  # with error False, Ray tells Optuna PRUNED
        super().on_trial_complete(trial_id, result, error)


def _searcher(space: SearchSpace) -> ConcurrencyLimiter:
    sampler = make_sampler(space)
    search = NanLastOptunaSearch(
        space=define_by_run(space),
        metric=space.objective.key,
        mode=space.objective.mode,
        sampler=sampler,
        points_to_evaluate=points_to_evaluate(space) or None,
    )
    return ConcurrencyLimiter(search, max_concurrent=space.budget.max_concurrent)


def _trainable(space: SearchSpace, target: TrackingTarget, data_factory: Any) -> Any:
    fn = tune.with_parameters(train_trial, space=space, target=target, data_factory=data_factory)
    budget = space.budget
    return tune.with_resources(fn, {"cpu": budget.cpus_per_trial, "gpu": budget.gpus_per_trial})


def _tuner(
    space: SearchSpace, path: str, trainable: Any, parent_run_id: str, resume: bool
) -> tune.Tuner:
    if resume and tune.Tuner.can_restore(path):
        # The restored run config brings back its stopper and callbacks; stop reasons
        # survive in the trials' results (see stopping.py), not in either object.
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    stopper = make_stopper(space)
    asha = space.stopping.asha.enabled
    root, name = path.rsplit("/", 1)
    run_config = tune.RunConfig(
        name=name,
        storage_path=root,
        stop=stopper,
        verbose=0,
        failure_config=tune.FailureConfig(max_failures=2),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[
            TrialRunFinisher(space.name, parent_run_id, asha),
            LiveTable(
                space.objective.key,
                asha,
                space.budget.num_trials,
                space.budget.max_concurrent,
                steps_per_trial=space.budget.steps_per_trial,
            ),
            *file_loggers(),  # result.json, progress.csv; no TensorBoard logger (quiet.py)
        ],
    )
    tune_config = tune.TuneConfig(
        # A finished trial's worker takes the next one: no new process, torch imported and the
        # data set opened once per worker (search/trainable.py resident_data).
        reuse_actors=True,
        num_samples=space.budget.num_trials,
        search_alg=_searcher(space),
        scheduler=make_scheduler(space),
    )
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


def _parent_params(space: SearchSpace, options: SearchOptions) -> dict[str, Any]:
    return {
        "space_file": options.space,
        "method": space.method,
        "data": space.data,
        "objective": dataclasses.asdict(space.objective),
        "budget": dataclasses.asdict(space.budget),
        "stopping": dataclasses.asdict(space.stopping),
        "search_seed": space.budget.seed,
        "smoke_test": options.smoke_test,
        "versions": package_versions(),
        "commit": commit(),
        "machine": machine(),
    }


def execute(
    space: SearchSpace,
    options: SearchOptions,
    path: str,
    uri: str,
    previous: dict[str, Any] | None,
    data_factory: Any,
    out: Callable[[str], None],
) -> SearchOutcome:
    """Start Ray, check what its nodes share, track, fit, and settle every MLflow run."""
    with quiet_driver(), ray_session(options.address), graceful_stop() as stop:
        # Before anything is written: a refused search leaves no state or run behind.
        if not cluster_address(options.address):
            require_trial_fits(space.budget, ray.cluster_resources())
        require_shared_resources(options.storage, uri, alive_node_count())
        return _track_and_fit(space, options, path, uri, previous, data_factory, out, stop)


def _track_and_fit(
    space: SearchSpace,
    options: SearchOptions,
    path: str,
    uri: str,
    previous: dict[str, Any] | None,
    data_factory: Any,
    out: Callable[[str], None],
    stop: StopRequest,
) -> SearchOutcome:
    tracking = SearchTracking(uri, space.name)
    artifacts = {SPACE_ARTIFACT: space_as_run(options, space)}
    made_here = not folder_exists(path)
    parent = tracking.start_parent(
        _parent_params(space, options),
        artifacts,
        run_id=(previous or {}).get("parent_run_id"),
        run_name=space.name,
    )
    state = {"parent_run_id": parent, "tracking_uri": uri, "space": options.space}
    write_state(path, state)
    target = TrackingTarget(uri, tracking.experiment_id, parent)
    status = "FAILED"
    try:
        if data_factory is None:
            prepare_data(space, options, out)
        tuner = _tuner(space, path, _trainable(space, target, data_factory), parent, options.resume)
        out(
            f"search {space.name!r}: {space.budget.num_trials} trials, "
            f"{space.budget.max_concurrent} at a time; state in {path}"
        )
        stop.fitting = True
        with stop_when_full(None if "://" in path else path.rsplit("/", 1)[0], stop):
            grid = tuner.fit()
        stop.fitting = False
        outcome = _outcome(space, options, path, uri, parent, grid, stop)
        status = "KILLED" if outcome.interrupted else "FINISHED"
        if status == "FINISHED":  # a rerun is told to inspect it, not to resume it
            write_state(path, {**state, "finished": True})
        _summarise(tracking, outcome)
        return outcome
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception:
        if not options.resume and not tracking.trial_runs():
            status = _DISCARD  # nothing ran: leave nothing that blocks the same command
        raise
    finally:
        _settle(tracking, path, status, made_here)


_DISCARD = "DISCARD"


def _settle(tracking: SearchTracking, path: str, status: str, made_here: bool) -> None:
    """End the search's runs and seal its folder; a search that failed before its first trial
    is undone instead (its parent run deleted, its folder or state file removed)."""
    if status == _DISCARD:
        try:
            tracking.discard_parent()
        finally:
            discard_folder(path, made_here=made_here)
        return
    try:  # a run still open here was cut short by the search's end
        tracking.end_open_trials("KILLED", "interrupted")
        tracking.finish_parent(status)
    finally:
        seal(path)  # Tune has saved its state for the last time: what --resume may trust


def _outcome(
    space: SearchSpace,
    options: SearchOptions,
    path: str,
    uri: str,
    parent: str,
    grid: Any,
    stop: StopRequest,
) -> SearchOutcome:
    results = list(grid)
    settled = grid.num_terminated + grid.num_errors
    unsettled = settled < len(results) or len(results) < space.budget.num_trials
    interrupted = stop.requested or unsettled  # Tune's stop can leave every trial settled
    best = best_report(
        [r.metrics or {} for r in results], space.objective.key, space.objective.mode
    )
    completed = sum((r.metrics or {}).get(COMPLETED) == 1.0 for r in results)
    by_id = {str((r.metrics or {}).get("trial_id")): r.metrics or {} for r in results}
    best_scored = SimpleNamespace(metrics=by_id.get(best[0], {})) if best else None
    errors = [r.error for r in results if r.error is not None]
    return SearchOutcome(
        name=space.name,
        experiment_path=path,
        tracking_uri=uri,
        parent_run_id=parent,
        interrupted=interrupted,
        trials=len(results),
        completed=completed,
        # The trial and number inspect and export read (final/<key> of a completed trial).
        best_trial_id=best[0] if best else None,
        best_value=best[1] if best else None,
        resume_command=resume_command(options, space.name),
        errors=len(errors),
        first_error=last_line(errors[0]) if errors else None,
        full_storage=stop.full_storage,
        concurrent=space.budget.max_concurrent,
        best_setting=objective_setting(best_scored, space.objective.key) if best_scored else None,
    )


def last_line(error: BaseException) -> str:
    """The line of a trial's error that says what went wrong (its traceback's last line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _summarise(tracking: SearchTracking, outcome: SearchOutcome) -> None:
    metrics: dict[str, float] = {
        "search/trials": outcome.trials,
        "search/completed": outcome.completed,
    }
    tags = {INTERRUPTED_TAG: str(outcome.interrupted).lower()}
    if outcome.best_value is not None and outcome.best_trial_id is not None:
        metrics["search/best_objective"] = outcome.best_value
        tags[BEST_TRIAL_TAG] = outcome.best_trial_id
    tracking.log_summary(metrics, tags)
