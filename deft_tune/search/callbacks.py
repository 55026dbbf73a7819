"""Driver-side Tune callbacks: the trials' MLflow finalisation and the live table.

Both are pickled into the experiment state (Tune saves its run config) and come back on
``Tuner.restore``; so they hold only plain data, reach MLflow through the driver's
``MLFLOW_TRACKING_URI`` (set by the runner for each run: a resumed search may use a new
server port) and print to whatever ``sys.stdout`` is at the time.
"""

from __future__ import annotations

import logging
import math
import sys
from types import SimpleNamespace
from typing import Any

from ray.tune import Callback

from deft_tune import report_keys as keys
from deft_tune.report_keys import COMPLETED
from deft_tune.results import report
from deft_tune.search.tracking.layout import IFP_STOP_REASONS, STOP_TAG
from deft_tune.search.tracking.writer import SearchTracking

log = logging.getLogger(__name__)


def stop_reason(trial: Any, asha: bool) -> tuple[str, str]:
    """(MLflow status, deft.stop_reason) of a trial Tune reports complete.

    The IFP stopper's reason rides in the trial's last result (see deft_tune.search.stopping);
    a trial that ended without one and without its final report was cut by ASHA, or, with ASHA
    off, ended by Tune itself (the search stopping around it).
    """
    last = trial.last_result or {}
    if last.get(STOP_TAG) in IFP_STOP_REASONS:
        return "KILLED", last[STOP_TAG]
    if last.get(COMPLETED) == 1.0:
        return "FINISHED", "completed"
    return "KILLED", "asha" if asha else "interrupted"


class TrialRunFinisher(Callback):
    """Ends each trial's MLflow child run with its stop reason; never leaves one RUNNING."""

    def __init__(self, experiment: str, parent_run_id: str, asha: bool) -> None:
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.asha = asha
        self._tracking: SearchTracking | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tracking": None}  # clients do not travel

    @property
    def tracking(self) -> SearchTracking:
        if self._tracking is None:
            from mlflow import get_tracking_uri

            self._tracking = SearchTracking(get_tracking_uri(), self.experiment)
            self._tracking.parent_run_id = self.parent_run_id
        return self._tracking

    def _finish(self, trial: Any, status: str, reason: str) -> None:
        try:
            if not self.tracking.finish_trial(trial.trial_id, status, reason):
                log.warning("trial %s ended before it opened its MLflow run", trial.trial_id)
        except Exception as exc:  # tracking must not take the search down with it
            log.warning("could not finalise the MLflow run of trial %s: %s", trial.trial_id, exc)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, *stop_reason(trial, self.asha))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, "FAILED", "error")


def _fmt(value: Any, spec: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return format(value, spec)
    return "-"


_SETTINGS = "metrics: the fast setting at each report, the standard one at a trial's end"


class LiveTable(Callback):
    """One line per report and per trial end: trial, step, stage, beta, objective, status."""

    HEADER = f"{'trial':<10} {'step':>7} {'stage':>5} {'beta':>9} {'objective':>10}  status"

    def __init__(self, metric: str, asha: bool = True, total: int | None = None) -> None:
        self.metric = metric
        self.asha = asha
        self.total = total  # budget.num_trials: ended trials are counted against it
        self._ended: set[str] = set()
        self._printed_header = False

    def _line(self, trial: Any, result: dict[str, Any], status: str) -> None:
        out = sys.stdout
        if not self._printed_header:
            metric = self.metric.startswith(keys.METRIC_PREFIX)
            print(f"objective: {self.metric}" + (f" ({_SETTINGS})" if metric else ""), file=out)
            print(self.HEADER, file=out)
            self._printed_header = True
        # A score names its setting: a report's is fast, a trial's last one standard.
        scored = SimpleNamespace(metrics=result)
        value = report.objective_value(scored, self.metric)
        setting = report.objective_setting(scored, self.metric)
        shown = f" ({setting})" if setting in ("fast", "standard") else ""
        row = (
            f"{trial.trial_id:<10} {_fmt(result.get(keys.STEP), '7.0f')} "
            f"{_fmt(result.get(keys.STAGE), '5.0f')} {_fmt(result.get(keys.BETA), '9.3g')}"
            f" {_fmt(value, '10.4f')}  {status}{shown}"
        )
        print(row, file=out, flush=True)

    def _ended_status(self, trial: Any, label: str) -> str:
        """``label`` with how many trials have ended of the budget ("done, 3/4 trials")."""
        ended: set[str] = getattr(self, "_ended", set())  # restored from an older pickle
        ended.add(trial.trial_id)
        self._ended = ended
        total = getattr(self, "total", None)
        return f"{label}, {len(ended)}/{total} trials ended" if total else label

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        status = "final" if result.get(COMPLETED) == 1.0 else "running"
        self._line(trial, result, status)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _, reason = stop_reason(trial, self.asha)
        label = "done" if reason == "completed" else f"stopped ({reason})"
        self._line(trial, trial.last_result or {}, self._ended_status(trial, label))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, trial.last_result or {}, "retrying from checkpoint")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, trial.last_result or {}, self._ended_status(trial, "error"))
