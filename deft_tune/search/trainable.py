"""The Tune trainable: one trial = one run config trained by the training loop.

Every ``budget.eval_interval`` steps the trial scores the objective with the *fast* metric
setting, saves a checkpoint (the trainer's state plus the trial's MLflow run id) and reports
through ``tune.report``; the numbers also go to the trial's MLflow child run in one batch.
When training ends it scores the *standard* setting and reports once more, with the standard
value under the objective key (``metrics/<key>``, what Optuna and ``get_best_result`` read:
Tune hands the searcher a trial's last reported value) and again as ``final/<key>``. That last
report carries ``trial/completed = 1``; a trial stopped early never reports it.

Seeds and threads: a trial's seed is ``sha256("<search seed>/<trial number>")`` reduced to 31
bits (:func:`~deft_tune.search.space.trial_seed`), where the number is the trial's Optuna trial
number (its ordinal in the search), not Tune's random trial id: the same space and search seed
give the same seeds. Its torch threads are its whole CPUs (``budget.cpus_per_trial``). Both are
written into the trial's run config (``training.seed``, ``training.threads``), which the
trainer applies and which is what reproduces the trial. The final standard scores fit DCI's
classifiers on that many processes too (:meth:`Trainer.scores`); no score depends on it.

Resume: on a retry (worker died) or a restored search, ``tune.get_checkpoint()`` holds the last
checkpoint; the trainer continues from it bit-for-bit and the same MLflow run is continued.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ray import cloudpickle, tune

from deft_tune import plots
from deft_tune import report_keys as keys
from deft_tune.config import RunConfig
from deft_tune.data import run_dataset
from deft_tune.data.base import GroundTruthData
from deft_tune.errors import DataError
from deft_tune.metrics.suite import FAST, MetricSettings
from deft_tune.report_keys import COMPLETED, final_key, metric_key
from deft_tune.schedules import stage_boundaries
from deft_tune.search.quiet import quiet_trial
from deft_tune.search.space import TRIAL_NUMBER, SearchSpace, run_config_from_params, trial_seed
from deft_tune.search.tracking.layout import RUN_CONFIG_ARTIFACT
from deft_tune.search.tracking.writer import TrialRun
from deft_tune.training import Trainer
from deft_tune.training.aggregate import (
    aggregate,
    combine,
    replica_histories,
    replica_key,
    replica_values,
)

log = logging.getLogger(__name__)

TRAINER_FILE = "trainer.pt"
STATE_FILE = "trial.json"
PID_FILE = "worker.pid"  # the trial process id, in the trial dir (fault-injection tests use it)

DataFactory = Callable[[], GroundTruthData]


@dataclass(frozen=True)
class TrackingTarget:
    """Where a trial logs: the tracking URI, the search's experiment and its parent run."""

    uri: str
    experiment_id: str
    parent_run_id: str


def replica_scores(
    trainer: Trainer, space: SearchSpace, seed: int, settings: MetricSettings | None
) -> list[dict[str, float]]:
    """Every replica's scores of the space's metrics (``metrics/<key>``), all on ONE shared
    sample drawn from ``seed``: the sampling and the encoding are done once for all. ``None``:
    the standard setting on the trial's CPUs (:meth:`Trainer.scores`)."""
    names = space.objective.metrics
    if not names:
        return []
    blocks = trainer.scores(names, seed, settings)
    return [{metric_key(k): float(v) for k, v in scores.items()} for scores in blocks]


def combined_scores(
    per_replica: list[dict[str, float]],
    space: SearchSpace,
    name: Callable[[str], str] = lambda key: key,
) -> dict[str, float]:
    """``replica{r}/<key>``, the mean ``<key>`` and, with several replicas, its statistics
    (``_std``, ``_min``, ...; :mod:`deft_tune.training.aggregate`); the objective's aggregate
    always. Every key is renamed by ``name`` (``final_key`` for a trial's last scores)."""
    if not per_replica:
        return {}
    renamed = [{name(k): v for k, v in scores.items()} for scores in per_replica]
    objective = name(space.objective.metric)
    needs = [objective] if space.objective.aggregate != "mean" else []
    return combine(renamed, statistics_of=needs)


def _add_objective(report: dict[str, float], space: SearchSpace) -> None:
    """The search's objective key: its aggregate over the replicas, NaN when any replica's
    value is not finite, also for an objective that is a signal (whose plain mean in the
    trainer's report skips NaN: deft_tune.training.aggregate)."""
    objective = space.objective
    values = replica_values(report, objective.metric)
    report[objective.key] = aggregate(values, objective.aggregate)


class _TrialReporter:
    """The trainer's report callback: fast objective, checkpoint, tune.report, MLflow batch."""

    def __init__(self, trainer: Trainer, space: SearchSpace, run: TrialRun, seed: int) -> None:
        self.trainer, self.space, self.run, self.seed = trainer, space, run, seed
        self.last: dict[str, float] = {}
        self.history: list[dict[str, float]] = []

    def __call__(self, report: dict[str, float]) -> None:
        metrics = dict(report)
        scores = replica_scores(self.trainer, self.space, self.seed, FAST)
        metrics.update(combined_scores(scores, self.space))
        _add_objective(metrics, self.space)
        metrics[COMPLETED] = 0.0
        self.last = metrics
        self.history.append(_history_entry(metrics))
        # MLflow before Tune: a worker killed between the two replays this step from the
        # previous checkpoint, and TrialRun skips steps it already logged.
        self.run.log_metrics(metrics, step=self.trainer.step)
        with tempfile.TemporaryDirectory(prefix="deft-ckpt-") as folder:
            save_trial_checkpoint(
                Path(folder), self.trainer, self.run.run_id, metrics, self.history
            )
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def save_trial_checkpoint(
    folder: Path,
    trainer: Trainer,
    run_id: str,
    last: dict[str, float],
    history: list[dict[str, float]],
) -> None:
    trainer.save_checkpoint(folder / TRAINER_FILE)
    state = {"mlflow_run_id": run_id, "last_report": last, "history": history}
    (folder / STATE_FILE).write_text(json.dumps(state))


def _restore(data: GroundTruthData | None) -> tuple[Trainer, dict[str, Any]] | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        trainer = Trainer.from_checkpoint(Path(folder) / TRAINER_FILE, data=data)
        state = _read_state(Path(folder) / STATE_FILE)
    log.info("trial resumes from its checkpoint at step %d", trainer.step)
    return trainer, state


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # missing, not UTF-8, not JSON
        raise DataError(f"{path} is not a trial state file ({exc})") from None
    if not isinstance(state, dict):
        raise DataError(f"{path} is not a trial state file (not a JSON object)")
    return state


def _open_run(
    target: TrackingTarget, trial_id: str, config: RunConfig, run_id: str | None
) -> TrialRun:
    run = TrialRun.open(
        target.uri,
        target.experiment_id,
        target.parent_run_id,
        trial_id,
        run_id=run_id,
        params=config.to_dict(),
    )
    if run.resumed_step is None:  # a new run: its config is the trial's one artifact so far
        run.log_text(yaml.safe_dump(config.to_dict(), sort_keys=False), RUN_CONFIG_ARTIFACT)
    return run


def _write_pid() -> None:
    folder = tune.get_context().get_trial_dir()
    # The driver's staging folder of the trial: on other nodes of a cluster it does not exist.
    if folder and Path(folder).is_dir():
        Path(folder, PID_FILE).write_text(str(os.getpid()))


# The data sets this worker process has opened: with Tune reusing the worker between trials,
# the next trial finds its data (rows memory-mapped or on the device) already there.
_RESIDENT: dict[str, GroundTruthData] = {}


def resident_data(space: SearchSpace, factory: DataFactory | None) -> GroundTruthData:
    """The space's data set (or the factory's), opened once per worker process."""
    if factory is not None:
        key = "factory:" + hashlib.sha256(cloudpickle.dumps(factory)).hexdigest()
    else:
        key = "data:" + json.dumps(space.data, sort_keys=True, default=str)
    if key not in _RESIDENT:
        _RESIDENT[key] = (
            factory()
            if factory is not None
            else run_dataset(space.data["name"], space.data["options"])
        )
    return _RESIDENT[key]


def train_trial(
    config: dict[str, Any],
    *,
    space: SearchSpace,
    target: TrackingTarget,
    data_factory: DataFactory | None = None,
) -> None:
    """The function trainable (wrap with ``tune.with_parameters``)."""
    quiet_trial()
    _write_pid()
    trial_id = tune.get_context().get_trial_id()
    data = resident_data(space, data_factory)
    restored = _restore(data)
    if restored is None:
        # The trainer applies the run config's threads (the trial's whole CPUs).
        seed = trial_seed(space.budget.seed, config.get(TRIAL_NUMBER, trial_id))
        trainer = Trainer(run_config_from_params(space, config, seed), data=data)
        state: dict[str, Any] = {}
    else:
        trainer, state = restored
        seed = trainer.config.training.seed
    run = _open_run(target, trial_id, trainer.config, state.get("mlflow_run_id"))
    reporter = _TrialReporter(trainer, space, run, seed)
    reporter.last = state.get("last_report", {})
    reporter.history = state.get("history", [])
    try:
        trainer.run(report=reporter)
        final = _final_report(trainer, space, seed, reporter.last)
        run.log_metrics(  # the standard scores, and the mark that ranks the trial as completed
            {k: v for k, v in final.items() if keys.is_final(k) or k == COMPLETED},
            step=trainer.step,
            skip_logged=False,
        )
        _log_artifacts(run, trainer, reporter.history, reporter.last, seed)
        tune.report(final)
        run.end("FINISHED")
    except Exception:
        run.set_tags({"deft.error": "see the trial's Ray log"})
        run.end("FAILED")  # a retry marks it RUNNING again; the driver settles the rest
        raise


def _final_report(
    trainer: Trainer, space: SearchSpace, seed: int, last: dict[str, float]
) -> dict[str, float]:
    # The standard setting, its DCI classifiers on the trial's CPUs (training.threads); the
    # in-trial FAST reports stay in one process: their DCI takes about a second.
    standard = replica_scores(trainer, space, seed, None)
    # The standard scores under the objective's keys too: Tune hands Optuna the last value.
    final = {**last, **combined_scores(standard, space), COMPLETED: 1.0}
    final.update(combined_scores(standard, space, final_key))
    final[keys.STEP] = float(trainer.step)
    return final


def _log_artifacts(
    run: TrialRun,
    trainer: Trainer,
    history: list[dict[str, float]],
    last: dict[str, float],
    seed: int,
) -> None:
    """The first replica's latent traversals around one observation, and the KL per group
    over the trial (with several replicas: their mean and each replica's curve)."""
    data = trainer.data
    rng = np.random.default_rng(seed)
    observation = data.sample_observations_from_factors(data.sample_factors(1, rng), rng)
    code = trainer.representation(observation, replica=0)[0]
    images = plots.traversal_images(trainer.model.decoder, code)
    groups = trainer.model.encoder.group_of_latent().tolist()
    kl = [replica_values(last, keys.kl_latent(i))[:1] or [float("nan")] for i in range(len(code))]
    labels = [values[0] for values in kl] if last else None
    run.log_figure(plots.plot_traversals(images, groups, labels), "traversals.png")
    if history:
        config = trainer.config
        starts = stage_boundaries(config.schedule, config.training.steps)[1:]
        replicas = replica_histories(history, config.training.replicas)
        run.log_figure(
            plots.plot_kl_per_group(history, config.model.groups, starts, replicas),
            "information.png",
        )


def _history_entry(report: dict[str, float]) -> dict[str, float]:
    """What the information plot needs of a report (kept small: it rides in checkpoints): the
    mean KL per group and latent, and each replica's KL per group."""
    keep = (keys.STEP, keys.STAGE, keys.REPLICAS)
    count = int(report.get(keys.REPLICAS, 1) or 1)
    per_replica = [replica_key(r, keys.KL_GROUP_PREFIX) for r in range(count)] if count > 1 else []
    prefixes = (keys.KL_GROUP_PREFIX, keys.KL_LATENT_PREFIX, *per_replica)
    return {k: v for k, v in report.items() if k in keep or k.startswith(prefixes)}
