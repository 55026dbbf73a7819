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
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ray.tune import Callback
from ray.tune.result import TIME_TOTAL_S

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
    """``value`` in its column; "-" (as wide) for a value missing or not a finite number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return format(value, spec)
    return "-".rjust(int(spec.split(".")[0] or 0))


_SETTINGS = "metrics: the fast setting at each report, the standard one at a trial's end"
NO_ETA = "—"  # no trial has ended yet: nothing to estimate from


def duration(seconds: float) -> str:
    """A duration as a terminal column: 45s, 12m05s, 3h07m, 2d04h."""
    whole = max(int(round(seconds)), 0)
    minutes, secs = divmod(whole, 60)
    hours, mins = divmod(minutes, 60)
    days, hrs = divmod(hours, 24)
    if days:
        return f"{days}d{hrs:02d}h"
    if hours:
        return f"{hours}h{mins:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def trial_rest(ran: float, mean: float, done: float | None = None) -> float:
    """Seconds a running trial has left after ``ran`` seconds: at its own pace once it has
    reported a share ``done`` of its steps (0 < done), else the mean wall time of the ended
    trials less what it ran (none less than 0). Its own pace keeps a trial that outlasts the
    mean (the mean counts the trials stopped early) from showing 0s while it still runs."""
    if done is not None and done > 0:
        return ran * max(1.0 - done, 0.0) / done
    return max(mean - ran, 0.0)


def search_eta(
    walls: list[float],
    running: list[float],
    left: int,
    slots: int,
    done: list[float | None] | None = None,
) -> float | None:
    """Seconds until the search's last trial ends, or None before any trial has ended.

    ``walls``: wall seconds of the trials that ended (stopped ones included: the trials still
    to run may be stopped too); ``running``: how long each running trial has run, and ``done``
    the share of its steps each has reported (None: unknown); ``left``: trials not ended,
    running ones included; ``slots``: trials at a time. Each running trial is expected to take
    :func:`trial_rest` more, each waiting trial the mean from the moment a slot frees: waiting
    trials fill the slots that free first, round by round (every slot takes its k-th waiting
    trial before any slot its k+1-th).
    """
    if not walls:
        return None
    mean = sum(walls) / len(walls)
    done = done if done is not None else [None] * len(running)
    rest = [trial_rest(ran, mean, share) for ran, share in zip(running, done)]
    slots = max(slots, len(rest), 1)
    free = sorted(rest + [0.0] * (slots - len(rest)))  # idle slots are free now
    rounds, extra = divmod(max(left - len(running), 0), slots)
    return max(f + (rounds + (i < extra)) * mean for i, f in enumerate(free))


class LiveTable(Callback):
    """One line per report and per trial end: trial, step, stage, beta, objective, how many
    trials have ended of the budget, the search's ETA, status.

    The ETA (:func:`search_eta`) is the mean wall time of the ended trials spread over the
    trials at a time: the most seen running at once (the resources may allow fewer than
    ``budget.max_concurrent``), at most ``concurrency``; a running trial that has reported its
    step finishes at its own pace (of ``steps_per_trial``). Times come from ``clock`` (monotonic
    seconds); a restored table keeps the ended trials' wall times and takes a running trial's
    time so far from Tune's ``time_total_s``.
    """

    def __init__(
        self,
        metric: str,
        asha: bool = True,
        total: int | None = None,
        concurrency: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        steps_per_trial: int | None = None,
    ) -> None:
        self.metric = metric
        self.asha = asha
        self.total = total  # budget.num_trials: ended trials are counted against it
        self.concurrency = concurrency  # budget.max_concurrent
        self.clock = clock
        self.steps_per_trial = steps_per_trial  # budget.steps_per_trial: a trial's own pace
        # What the table learns while the search runs:
        self._ended: set[str] = set()  # trial ids
        self._walls: list[float] = []  # wall seconds of each ended trial
        self._started: dict[str, float] = {}  # running trial id -> clock() when it started
        self._done: dict[str, float] = {}  # running trial id -> share of its steps reported
        self._peak = 0  # the most trials seen running at once
        self._printed_header = False

    def __getstate__(self) -> dict[str, Any]:
        # Clock readings mean nothing in another process (a restored search notes its running
        # trials again), and a resumed search prints its header again.
        return {**self.__dict__, "_started": {}, "_done": {}, "_printed_header": False}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["metric"])  # type: ignore[misc]  # what an older pickle lacks
        self.__dict__.update(state)

    def _header(self) -> str:
        width = self._ended_width()
        return (
            f"{'trial':<10} {'step':>7} {'stage':>5} {'beta':>9} {'objective':>10} "
            f"{'ended':>{width}} {'ETA':>6}  status"
        )

    def _ended_width(self) -> int:
        return max(5, 2 * len(str(self.total or 0)) + 1)

    def _started_at(self, trial: Any) -> float:
        """When ``trial`` started on this table's clock (noted on its first sighting)."""
        if trial.trial_id not in self._started:
            ran = (trial.last_result or {}).get(TIME_TOTAL_S)
            ran = ran if isinstance(ran, (int, float)) and math.isfinite(ran) else 0.0
            self._started[trial.trial_id] = self.clock() - max(float(ran), 0.0)
            self._peak = max(self._peak, len(self._started))
        return self._started[trial.trial_id]

    def _end(self, trial: Any) -> None:
        if trial.trial_id in self._ended:
            return
        started = self._started_at(trial)
        self._walls.append(max(self.clock() - started, 0.0))
        del self._started[trial.trial_id]
        self._done.pop(trial.trial_id, None)
        self._ended.add(trial.trial_id)

    def progress(self) -> tuple[str, str]:
        """(trials ended of the budget, the search's ETA) as the table prints them."""
        ended = len(self._ended)
        if not self.total:
            return f"{ended}/?", NO_ETA
        now = self.clock()
        running = [now - started for started in self._started.values()]
        done = [self._done.get(trial_id) for trial_id in self._started]
        slots = min(self._peak, self.concurrency or self._peak)
        eta = search_eta(self._walls, running, self.total - ended, slots, done)
        return f"{ended}/{self.total}", NO_ETA if eta is None else duration(eta)

    def _line(self, trial: Any, result: dict[str, Any], status: str) -> None:
        out = sys.stdout
        if not self._printed_header:
            metric = self.metric.startswith(keys.METRIC_PREFIX)
            print(f"objective: {self.metric}" + (f" ({_SETTINGS})" if metric else ""), file=out)
            print(self._header(), file=out)
            self._printed_header = True
        # A score names its setting: a report's is fast, a trial's last one standard.
        scored = SimpleNamespace(metrics=result)
        value = report.objective_value(scored, self.metric)
        setting = report.objective_setting(scored, self.metric)
        shown = f" ({setting})" if setting in ("fast", "standard") else ""
        ended, eta = self.progress()
        row = (
            f"{trial.trial_id:<10} {_fmt(result.get(keys.STEP), '7.0f')} "
            f"{_fmt(result.get(keys.STAGE), '5.0f')} {_fmt(result.get(keys.BETA), '9.3g')}"
            f" {_fmt(value, '10.4f')} {ended:>{self._ended_width()}} {eta:>6}  {status}{shown}"
        )
        print(row, file=out, flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started_at(trial)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self._started_at(trial)
        step = result.get(keys.STEP)
        if self.steps_per_trial and isinstance(step, (int, float)) and math.isfinite(step):
            self._done[trial.trial_id] = max(float(step), 0.0) / self.steps_per_trial
        status = "final" if result.get(COMPLETED) == 1.0 else "running"
        self._line(trial, result, status)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _, reason = stop_reason(trial, self.asha)
        self._end(trial)
        label = "done" if reason == "completed" else f"stopped ({reason})"
        self._line(trial, trial.last_result or {}, label)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, trial.last_result or {}, "retrying from checkpoint")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial)
        self._line(trial, trial.last_result or {}, "error")
