"""Tables, filters, Parquet and exports over searches read from MLflow.

Works on the plain records of :mod:`deft_tune.search.tracking.reader` (any objects with the same
fields do), so it needs no tracking server of its own and tests can feed it records directly.

One best: :func:`ranked` is the order of trials everywhere: inspect, export, and the search's
own summary and parent run (:func:`best_report` ranks Tune's last reports with it).
"""

from __future__ import annotations

import itertools
import math
import operator
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deft_tune import report_keys as keys
from deft_tune.config import ScheduleConfig, StageConfig
from deft_tune.errors import ConfigError
from deft_tune.fileio import atomic_write
from deft_tune.schedules import stage_boundaries
from deft_tune.training.aggregate import aggregate, replica_key, split_objective_key

_STAGE_PARAM = re.compile(r"schedule\.stages\.(\d+)\.(beta|lr_scale|steps|earlier)$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, "<": operator.lt,
}  # fmt: skip
_WHERE = re.compile(r"^\s*([\w/.\-]+)\s*(>=|<=|==|!=|>|<)\s*([-+\w.]+)\s*$")


# --- reading trial records --------------------------------------------------------------------


def stage_values(params: dict[str, str], field: str) -> list[float]:
    """The per-stage values of ``field`` (beta, lr_scale, steps) from flattened params; a stage
    without a value (an open last stage's steps, an annealed last stage's threshold) is left out.
    """
    found = {}
    for key, value in params.items():
        match = _STAGE_PARAM.match(key)
        if match and match.group(2) == field and value not in ("None", ""):
            found[int(match.group(1))] = float(value)
    return [found[i] for i in sorted(found)]


def stage_count(params: dict[str, str]) -> int:
    """How many stages a trial's flattened run config has."""
    found = {int(m.group(1)) for key in params if (m := _STAGE_PARAM.match(key))}
    return max(found) + 1 if found else 0


def earlier_mode(params: dict[str, str]) -> str | None:
    """How a DEFT trial treated its earlier groups ("scale" or "freeze"; stage 2's setting)."""
    return params.get("schedule.stages.1.earlier") or (
        "scale" if params.get("objective.kind", "deft") == "deft" and stage_count(params) else None
    )


def param_float(text: str | None) -> float | None:
    """A flattened run config param (MLflow keeps params as text) as a number, or None."""
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def stage_starts(trial: Any) -> list[int]:
    """The steps at which the trial's stages 1, 2, ... began, from its run config params."""
    p = trial.params
    count = stage_count(p)
    total = int(param_float(p.get("training.steps")) or 0)
    if count < 2 or total <= 0:
        return []
    if p.get("schedule.rule", "fixed") == "fixed":
        lengths = stage_values(p, "steps")[: count - 1]
        return [int(s) for s in itertools.accumulate(lengths) if s < total]
    betas: list[float | None] = list(stage_values(p, "beta"))
    betas += [None] * (count - len(betas))  # an annealed last stage may omit its threshold
    schedule = ScheduleConfig(
        rule="annealed",
        stages=tuple(StageConfig(beta=b) for b in betas),
        beta_max=param_float(p.get("schedule.beta_max")) or ScheduleConfig.beta_max,
        gamma=param_float(p.get("schedule.gamma")) or ScheduleConfig.gamma,
        anneal_steps=int(
            param_float(p.get("schedule.anneal_steps")) or ScheduleConfig.anneal_steps
        ),
    )
    return [s for s in stage_boundaries(schedule, total)[1:] if s < total]


def resolve_metric(name: str, available: Iterable[str]) -> str:
    """A metric key as logged: ``mig`` finds ``metrics/mig``; unknown names list the known."""
    available = sorted(set(available))
    for candidate in (name, keys.metric_key(name), keys.final_key(name)):
        if candidate in available:
            return candidate
    scores = [k for k in available if k.startswith((keys.METRIC_PREFIX, keys.FINAL_PREFIX))]
    shown = ", ".join(scores) or ", ".join(available[:12])
    raise ConfigError(f"no trial logged metric {name!r}; logged: {shown or 'nothing'}")


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _final(trial: Any, metric: str) -> str | None:
    """The key of the standard setting's score of ``metric``, if the trial logged one."""
    if metric.startswith(keys.METRIC_PREFIX) and keys.final_key(metric) in trial.metrics:
        return keys.final_key(metric)
    return None


def objective_value(trial: Any, metric: str) -> float | None:
    """The trial's score on ``metric``: the standard setting's ``final/<key>`` when the trial
    ran to its end, else the last value it reported (a stopped trial's fast-setting score).
    None when there is none, or it is not a finite number.

    The search, its parent run, inspect and export all rank on this one number.
    """
    return _number(trial.metrics.get(_final(trial, metric) or metric))


def objective_setting(trial: Any, metric: str) -> str | None:
    """Which metric setting :func:`objective_value` is: "standard", "fast", "report" (a report
    key such as train/recon) or None (no value)."""
    if objective_value(trial, metric) is None:
        return None
    if _final(trial, metric):
        return "standard"
    return "fast" if metric.startswith(keys.METRIC_PREFIX) else "report"


def completed(trial: Any, metric: str) -> bool:
    """Whether the trial ran to its last step: its standard score, its ``trial/completed``
    mark (the search's last report) or its stop reason says so."""
    return (
        _final(trial, metric) is not None
        or trial.metrics.get(keys.COMPLETED) == 1.0
        or getattr(trial, "stop_reason", None) == "completed"
    )


def finished(trials: Sequence[Any], metric: str) -> list[Any]:
    """Trials that ended and logged the metric (running or crashed-early ones cannot rank)."""
    return [t for t in trials if t.status != "RUNNING" and objective_value(t, metric) is not None]


def _score(trial: Any, metric: str) -> float:
    """:func:`objective_value` of a trial :func:`finished` kept (so it has one)."""
    value = objective_value(trial, metric)
    if value is None:
        raise ValueError(f"trial {trial.trial_id} has no value of {metric}")
    return value


def ranked(trials: Sequence[Any], metric: str, mode: str) -> list[Any]:
    """Best first (``mode`` "max" or "min"): the trials that ran to their end (scored in the
    standard setting) before those stopped early; ties keep the given order."""
    sign = -1.0 if mode == "max" else 1.0

    def order(trial: Any) -> tuple[int, float]:
        return (0 if completed(trial, metric) else 1, sign * _score(trial, metric))

    return sorted(finished(trials, metric), key=order)


@dataclass(frozen=True)
class _LastReport:
    """A trial's last Tune report, seen as a record by :func:`ranked`."""

    trial_id: str
    metrics: Mapping[str, Any]
    status: str = "TERMINATED"


def best_report(
    reports: Sequence[Mapping[str, Any]], metric: str, mode: str
) -> tuple[str, float] | None:
    """Trial id and :func:`objective_value` of the best of the trials' last reports (Tune's
    ``Result.metrics``, which carry ``trial_id``), by :func:`ranked`; None if none scored.

    What the search prints and records on its parent run: the same trial, and the same
    number, as inspect's first row and export's choice.
    """
    records = [
        _LastReport(str(r.get("trial_id", i)), {k: v for k, v in r.items() if _is_number(v)})
        for i, r in enumerate(reports)
    ]
    order = ranked(records, metric, mode)
    return (order[0].trial_id, _score(order[0], metric)) if order else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- filtering --------------------------------------------------------------------------------


def parse_where(expression: str, available: Iterable[str]) -> Callable[[Any], bool]:
    """``"mig > 0.1"`` -> a predicate over trial records; trials without the metric fail it."""
    match = _WHERE.match(expression)
    if not match:
        raise ConfigError(
            f"--where {expression!r} is not 'METRIC OP NUMBER' "
            "(OP one of > >= < <= == !=), e.g. --where 'mig > 0.1'"
        )
    name, op, number = match.groups()
    try:
        threshold = float(number)
    except ValueError:
        raise ConfigError(f"--where {expression!r}: {number!r} is not a number") from None
    key = resolve_metric(name, available)
    compare = _OPERATORS[op]

    def keep(trial: Any) -> bool:
        value = objective_value(trial, key)
        return value is not None and compare(value, threshold)

    return keep


# --- tables -----------------------------------------------------------------------------------


def trial_row(trial: Any, metric: str) -> dict[str, Any]:
    """One trial as a flat row: identity, outcome, schedule, objective, other metrics."""
    betas = stage_values(trial.params, "beta")
    wall = (trial.end_time - trial.start_time) if trial.end_time else None
    row: dict[str, Any] = {
        "trial": trial.trial_id,
        "seeds": trial_seeds(trial),
        "status": trial.status,
        "stop_reason": trial.stop_reason,
        "objective": objective_value(trial, metric),
        "mean ± std": objective_spread(trial, metric),
        "setting": objective_setting(trial, metric),
        "method": trial.params.get("objective.kind", ""),
        "stages": stage_count(trial.params) or None,
        "betas": betas,
        "earlier": earlier_mode(trial.params),
        # A frozen stage's lr_scale is its default and unused: only scaled trials show theirs.
        "lr_scales": stage_values(trial.params, "lr_scale")[1:]
        if earlier_mode(trial.params) != "freeze"
        else [],
        "lr": param_float(trial.params.get("training.lr")),
        "steps": trial.steps,
        "wall_s": round(wall, 1) if wall is not None else None,
        "run_id": trial.run_id,
    }
    for key, value in sorted(trial.metrics.items()):
        plain = split_objective_key(key)[0] == key and not key.endswith("_std")
        if key.startswith((keys.METRIC_PREFIX, keys.FINAL_PREFIX)) and key != metric and plain:
            row[key] = value  # the run's scores; per-replica values and statistics stay out
    return row


def trial_seeds(trial: Any) -> list[int]:
    """Every replica's training seed (replica r trains with training.seed + r); [] when the
    record has no seed."""
    try:  # as text, exactly: a seed may be as large as 2**63 - 1, past a float's precision
        seed = int(trial.params["training.seed"])
    except (KeyError, TypeError, ValueError):
        return []
    count = int(param_float(trial.params.get("training.replicas")) or 1)
    return [seed + r for r in range(count)]


def objective_spread(trial: Any, metric: str) -> str | None:
    """Mean ± std of the objective's metric over a trial's replicas (None for one replica),
    in the setting :func:`objective_value` reads."""
    count = int(param_float(trial.params.get("training.replicas")) or 1)
    if count < 2:
        return None
    base, _ = split_objective_key(metric)
    if objective_setting(trial, metric) == "standard":
        base = keys.final_key(base)
    values = [trial.metrics.get(replica_key(r, base)) for r in range(count)]
    found = [v for v in values if v is not None]
    if not found:
        return None
    return f"{aggregate(found, 'mean'):.4g} ± {aggregate(found, 'std'):.4g} ({len(found)})"


def trials_table(
    trials: Sequence[Any],
    metric: str,
    mode: str,
    *,
    top: int | None = None,
    where: Callable[[Any], bool] | None = None,
) -> list[dict[str, Any]]:
    """Rows sorted by the objective (best first), then the trials that cannot rank."""
    chosen = [t for t in trials if where is None or where(t)]
    best = ranked(chosen, metric, mode)
    rest = [t for t in chosen if t not in best]
    rows = [trial_row(t, metric) for t in best + rest]
    return rows[:top] if top else rows


def search_row(search: Any) -> dict[str, Any]:
    counts: dict[str, int] = defaultdict(int)
    for trial in search.trials:
        counts[trial.status] += 1
    best = ranked(search.trials, search.objective, search.mode)
    return {
        "search": search.experiment,
        "parent_run": search.parent_run_id,
        "started": datetime.fromtimestamp(search.start_time).strftime("%Y-%m-%d %H:%M"),
        "status": search.status,
        "trials": len(search.trials),
        "by_status": " ".join(f"{k}:{v}" for k, v in sorted(counts.items())),
        "objective": search.objective,
        "best": objective_value(best[0], search.objective) if best else None,
    }


# --- Parquet ----------------------------------------------------------------------------------


def write_parquet(trials: Sequence[Any], path: str | os.PathLike) -> os.PathLike:
    """All trials with every param (``params.*``) and final metric (``metrics.*``), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    param_keys = sorted({k for t in trials for k in t.params})
    metric_keys = sorted({k for t in trials for k in t.metrics})
    columns: dict[str, list[Any]] = {
        "run_id": [t.run_id for t in trials],
        "trial_id": [t.trial_id for t in trials],
        "status": [t.status for t in trials],
        "stop_reason": [t.stop_reason for t in trials],
        "steps": [t.steps for t in trials],
        "start_time": [t.start_time for t in trials],
        "end_time": [t.end_time for t in trials],
    }
    for key in param_keys:
        columns[f"params.{key}"] = [t.params.get(key) for t in trials]
    for key in metric_keys:
        columns[f"metrics.{key}"] = [t.metrics.get(key) for t in trials]
    table = pa.table(columns)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


# --- choosing the trial to export --------------------------------------------------------------


def schedule_key(trial: Any) -> tuple[tuple[str, str], ...]:
    """What a trial's schedule is, seed aside: trials with the same key differ only by seed."""
    return tuple(sorted((k, v) for k, v in trial.params.items() if k != "training.seed"))


def seeds_robust(trials: Sequence[Any], metric: str, mode: str) -> list[tuple[float, list[Any]]]:
    """Schedules ranked by mean - std (max) or mean + std (min) over their seeds, best first.

    Only schedules that ran with two or more seeds count.
    """
    groups: dict[tuple, list[Any]] = defaultdict(list)
    for trial in finished(trials, metric):
        groups[schedule_key(trial)].append(trial)
    scored = []
    for members in groups.values():
        if len(members) < 2:
            continue
        values = [_score(t, metric) for t in members]
        spread = statistics.stdev(values)
        mean = statistics.fmean(values)
        scored.append((mean - spread if mode == "max" else mean + spread, members))
    return sorted(scored, key=lambda s: s[0], reverse=(mode == "max"))


def choose_trial(
    trials: Sequence[Any], metric: str, mode: str, rank: int = 1, robust: bool = False
) -> tuple[Any, str]:
    """The trial at ``rank`` (1 = best) and a line saying why it was chosen."""
    if rank < 1:
        raise ConfigError(f"--rank == {rank}, must be >= 1 (1 is the best trial)")
    if robust:
        scored = seeds_robust(trials, metric, mode)
        if not scored:
            raise ConfigError(
                "--seeds-robust needs schedules that ran with several seeds; "
                "this search ran each schedule once: drop --seeds-robust"
            )
        if rank > len(scored):
            raise ConfigError(f"--rank {rank} but only {len(scored)} schedules ran several seeds")
        score, members = scored[rank - 1]
        best = ranked(members, metric, mode)[0]
        sign = "-" if mode == "max" else "+"
        return best, (
            f"rank {rank} by mean {sign} std of {metric} over {len(members)} seeds = {score:.4g}"
        )
    order = ranked(trials, metric, mode)
    if not order:
        raise ConfigError(
            f"no finished trial logged {metric!r}: wait for the search or choose another --metric"
        )
    if rank > len(order):
        raise ConfigError(f"--rank {rank} but only {len(order)} trials finished")
    chosen = order[rank - 1]
    return chosen, f"rank {rank} of {len(order)} by {metric} ({mode})"
