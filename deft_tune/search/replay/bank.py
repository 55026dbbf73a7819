"""A curve bank: a recorded search whose trials all ran to their end, read back from MLflow as
the sequences of reports a stopping rule would have seen.

What a trial's reports hold here is what the rules read, nothing more: the step, every key the
IFP stopper reads (:func:`deft_tune.search.stopping.reads`, per replica), and the objective key
(what ASHA compares and what a stopped trial is ranked by). Each regular report is rebuilt from
the MLflow metrics logged at its step (one ``log_batch`` per report, so one report per step);
the trainable's final report is rebuilt as it sent it to Tune: the last report with the
standard-setting objective under the objective key and ``trial/completed = 1``.

Costs: a report's cost is the time between its MLflow timestamp and the previous one's
(the first report's from the run's start time: model set-up included); the final report's cost
is the time from the last report to the logging of the final scores (the standard-setting
evaluation). These are the recorded times of the bank's own search, with whatever else ran on
the machine then (its ``max_concurrent`` trials at once): a replay does not rescale them.

Only a bank whose every trial completed can be replayed: a trial stopped while recording has no
reports past its stop, and no rule can be judged on reports that do not exist.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from dataclasses import dataclass, field
from typing import Any

from deft_tune import report_keys as keys
from deft_tune.errors import ConfigError
from deft_tune.results import report
from deft_tune.search.space import SearchSpace, space_from_dict
from deft_tune.search.stopping import reads
from deft_tune.search.tracking.layout import SPACE_ARTIFACT
from deft_tune.training.aggregate import replica_key, split_objective_key

__all__ = [
    "BankPart",
    "BankTrial",
    "CurveBank",
    "Report",
    "bank_from_records",
    "load_bank",
    "replica_finals",
]

TIME_KEY = keys.LOSS  # logged in every report: its history gives the report steps and times
_SHOWN = 6  # trials named in a refusal before "and N more"


@dataclass(frozen=True)
class Report:
    step: int
    result: dict[str, float]  # the keys the rules read, "step" included
    cost_s: float  # recorded seconds from the previous report to this one


@dataclass(frozen=True)
class BankTrial:
    trial_id: str
    run_id: str
    reports: tuple[Report, ...]  # every eval_interval steps, the last at steps_per_trial
    final: Report  # the trainable's last report (standard-setting objective, completed = 1)
    final_objective: float  # what the live search ranks a completed trial by
    replica_finals: tuple[float, ...]  # each replica's standard score of the objective's metric
    params: dict[str, str]  # the run config, flattened (the schedule)
    finals: dict[str, float] = field(default_factory=dict)  # final/* scores, run and replicas
    stop_reason: str = "completed"
    run_config: str = ""  # the trial's run config YAML as it logged it ("" if it has none)
    part: int = 0  # which recorded search of a merged bank it comes from

    @property
    def steps(self) -> int:
        return self.final.step

    @property
    def recorded_id(self) -> str:
        """Its id in the search that recorded it (:meth:`in_part` prefixed the part)."""
        return self.trial_id.removeprefix(_part_prefix(self.part))

    def in_part(self, part: int) -> BankTrial:
        """This trial as part ``part`` of a merged bank: named ``part{k}/<recorded id>``, so
        the ids stay unique across parts."""
        return dataclasses.replace(self, part=part, trial_id=_part_prefix(part) + self.recorded_id)


def _part_prefix(part: int) -> str:
    return f"part{part}/"


@dataclass(frozen=True)
class BankPart:
    """One recorded search of a bank: where it came from and what it cost."""

    experiment: str
    parent_run_id: str
    search_seed: int
    trials: int
    started: float  # seconds since the epoch
    wall_s: float | None  # the search's wall time; None when it never ended
    commit: str = "unknown"
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CurveBank:
    experiment: str
    parent_run_id: str
    uri: str
    raw_space: dict[str, Any]  # search_space.yaml as the search recorded it
    budget: dict[str, int]  # steps_per_trial and eval_interval as the search ran them
    space: SearchSpace  # raw_space with that budget: what the rules are built from
    trials: tuple[BankTrial, ...]
    parts: tuple[BankPart, ...] = ()  # the recorded searches it holds (one from MLflow)

    @property
    def objective(self) -> str:
        return self.space.objective.key

    @property
    def mode(self) -> str:
        return self.space.objective.mode

    @property
    def best(self) -> float:
        """The best standard-setting objective over all trials: what regret is measured from."""
        pick = max if self.mode == "max" else min
        return pick(t.final_objective for t in self.trials)

    def regret(self, value: float) -> float:
        """How much worse ``value`` is than the bank's best (>= 0 for a completed trial's)."""
        return self.best - value if self.mode == "max" else value - self.best


def load_bank(uri: str, experiment: str) -> CurveBank:
    """The newest search of ``experiment`` as a curve bank; ConfigError (one line naming the
    trials and why) when it cannot be replayed."""
    from deft_tune.search.tracking.reader import load_search, timed_histories

    search = load_search(uri, experiment)
    _refuse_stopped(search)
    wanted = {t.run_id: _wanted_keys(t.metrics, search.objective) for t in search.trials}
    bank = bank_from_records(search, timed_histories(uri, wanted), uri)
    configs = {t.run_id: _run_config(uri, t.run_id) for t in bank.trials}
    trials = tuple(dataclasses.replace(t, run_config=configs[t.run_id]) for t in bank.trials)
    return dataclasses.replace(bank, trials=trials)


def _run_config(uri: str, run_id: str) -> str:
    from deft_tune.errors import TrackingError
    from deft_tune.search.tracking.reader import run_config_text

    try:
        return run_config_text(uri, run_id)
    except TrackingError:  # a trial logged without its artifact: the params still describe it
        return ""


def _wanted_keys(logged: dict[str, float], objective: str) -> list[str]:
    final = [keys.final_key(objective)] if objective.startswith(keys.METRIC_PREFIX) else []
    chosen = [k for k in logged if reads(k) or k == objective]
    return sorted({TIME_KEY, objective, *chosen, *final})


def bank_from_records(search: Any, histories: dict[str, dict[str, list]], uri: str) -> CurveBank:
    """A bank from a search record (tracking.reader.SearchRecord) and its trials' timed
    histories (run id -> key -> [(step, value, seconds)]); ConfigError when any trial lacks
    what a replay needs."""
    if not search.trials:
        raise ConfigError(f"search {search.experiment!r} has no trials to replay")
    _refuse_stopped(search)
    budget = _budget(search)
    space = _space(search, budget)
    trials, problems = [], []
    for record in search.trials:
        try:
            trials.append(_trial(record, histories.get(record.run_id, {}), space))
        except _Missing as why:
            problems.append(f"{record.trial_id} ({why})")
    if problems:
        raise ConfigError(
            f"search {search.experiment!r} cannot be replayed: {_listed(problems)} lack the "
            "report histories a replay needs"
        )
    return CurveBank(
        search.experiment,
        search.parent_run_id,
        uri,
        dict(search.space),
        budget,
        space,
        tuple(trials),
        (_part(search, len(trials)),),
    )


def _part(search: Any, trials: int) -> BankPart:
    """The search as one part of a bank (its parent run's params say seed, commit, machine;
    a search recorded before they were logged says "unknown")."""
    params = search.params
    seed = params.get("search_seed", (search.space.get("budget") or {}).get("seed", 0))
    start = getattr(search, "start_time", 0.0)
    end = getattr(search, "end_time", None)
    return BankPart(
        experiment=search.experiment,
        parent_run_id=search.parent_run_id,
        search_seed=int(float(seed)),
        trials=trials,
        started=start,
        wall_s=end - start if end else None,
        commit=params.get("commit", "unknown"),
        versions=_prefixed(params, "versions."),
        machine=_prefixed(params, "machine."),
    )


def _prefixed(params: dict[str, str], prefix: str) -> dict[str, str]:
    return {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}


def _refuse_stopped(search: Any) -> None:
    stopped = [
        f"{t.trial_id} ({t.stop_reason})" for t in search.trials if t.stop_reason != "completed"
    ]
    if stopped:
        raise ConfigError(
            f"search {search.experiment!r} cannot be replayed: {_listed(stopped)} did not run "
            "to the end, and no rule can be judged on reports that were never made; record the "
            f"bank with every stopper off: {_record_command(search)}"
        )


def _record_command(search: Any) -> str:
    """The command that records ``search``'s space as a bank (its space file as the parent run
    recorded it, under a new name); the flags alone when no file was recorded."""
    space = search.params.get("space_file")
    if not space:
        return "deft-tune search --space SPACE.yaml --no-ifp-stopper --no-asha"
    name = f"{search.experiment}-bank"
    return f"deft-tune search --space {shlex.quote(space)} --name {name} --no-ifp-stopper --no-asha"


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{len(items)} trial{'s' if len(items) > 1 else ''}: {shown}{more}"


def _budget(search: Any) -> dict[str, int]:
    """steps_per_trial and eval_interval as the search ran them (the parent run's params hold
    the budget after --smoke-test and other overrides; the space artifact is the file)."""
    raw = search.space.get("budget") or {}
    found = {}
    for name in ("steps_per_trial", "eval_interval"):
        value = search.params.get(f"budget.{name}", raw.get(name))
        if value is not None:
            found[name] = int(float(value))
    return found


def _space(search: Any, budget: dict[str, int]) -> SearchSpace:
    try:
        return space_from_dict(search.space, budget_overrides=budget)
    except ConfigError as exc:
        raise ConfigError(
            f"the space of search {search.experiment!r} (its {SPACE_ARTIFACT} artifact): {exc}"
        ) from None


class _Missing(Exception):
    """What a trial's records lack (the message), turned into one refusal by the caller."""


def _trial(record: Any, history: dict[str, list], space: SearchSpace) -> BankTrial:
    objective = space.objective.key
    steps = space.budget.steps_per_trial
    timeline = {step: seconds for step, _, seconds in history.get(TIME_KEY, [])}
    if not timeline:
        raise _Missing(f"no {TIME_KEY} history")
    if max(timeline) != steps:
        raise _Missing(f"its reports end at step {max(timeline)}, not at {steps}")
    values: dict[int, dict[str, float]] = {step: {keys.STEP: step} for step in timeline}
    for key, points in history.items():
        if key != objective and not reads(key):
            continue  # the clock and the final scores: not part of a report the rules see
        for step, value, _ in points:
            if step in values:
                values[step][key] = value
    gaps = [step for step, result in values.items() if objective not in result]
    if gaps:
        raise _Missing(f"no {objective} at step {min(gaps)}")
    final_value = report.objective_value(record, objective)
    if final_value is None or report.objective_setting(record, objective) == "fast":
        raise _Missing(f"no {keys.final_key(objective)}")
    reports = _reports(values, timeline, record.start_time)
    final = _final(reports[-1], timeline[steps], history, objective, final_value)
    return BankTrial(
        record.trial_id,
        record.run_id,
        reports,
        final,
        final_value,
        replica_finals(record.metrics, objective),
        dict(record.params),
        {k: v for k, v in record.metrics.items() if keys.is_final(k)},
        record.stop_reason,
    )


def _reports(
    values: dict[int, dict[str, float]], timeline: dict[int, float], start: float
) -> tuple[Report, ...]:
    out, previous = [], start
    for step in sorted(values):
        out.append(Report(step, values[step], max(0.0, timeline[step] - previous)))
        previous = timeline[step]
    return tuple(out)


def _final(
    last: Report, last_time: float, history: dict[str, list], objective: str, value: float
) -> Report:
    """The trainable's final report as Tune saw it: the last report with the standard-setting
    objective under the objective key; its cost is the standard-setting evaluation's time
    (none for an objective that is not a score: the trainable evaluates nothing more)."""
    logged = history.get(keys.final_key(objective)) or []
    cost = max(0.0, logged[-1][2] - last_time) if logged else 0.0
    result = {**last.result, objective: value, keys.COMPLETED: 1.0}
    return Report(last.step, result, cost)


def replica_finals(metrics: dict[str, float], objective: str) -> tuple[float, ...]:
    """Each replica's standard-setting score of the objective's metric (its replicas' spread
    is the seed noise a schedule's objective carries)."""
    metric, _ = split_objective_key(objective)
    base = keys.final_key(metric) if metric.startswith(keys.METRIC_PREFIX) else metric
    count = int(metrics.get(keys.REPLICAS, 1) or 1)
    if count <= 1:
        value = metrics.get(base)
        return (value,) if value is not None and math.isfinite(value) else ()
    found = [metrics.get(replica_key(r, base)) for r in range(count)]
    return tuple(v for v in found if v is not None and math.isfinite(v))
