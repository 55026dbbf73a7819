"""How a run's replicas are reported: each replica's signals under ``replica{r}/``, and the run's
under the plain key, aggregated over replicas.

A run of R replicas trains R copies of one schedule with seeds ``seed``, ``seed + 1``, ...
Every key of a replica's report appears as ``replica{r}/<key>``; the plain ``<key>`` is the mean
over replicas. Scores (``metrics/*``, ``final/*``) and the search objective also get
``<key>_std`` (sample standard deviation, 0 for one replica), ``<key>_min``, ``<key>_median`` and
``<key>_mean_minus_std``, so any of the aggregates a search may rank on is in every report. A
one-replica run reports as it always did: plain keys, no prefixes and no statistics but the
objective's.

A replica without a finite value: a score's aggregates (its mean and every statistic) are NaN
when any replica's value is NaN, infinite or missing. Skipping it would rank a schedule on the
seeds that did not collapse, so a collapsed seed would make its schedule look better (``_min``
and ``_mean_minus_std`` included). The search's objective follows the same rule, also when it
is a report key (the trainable aggregates it so), and the search then sees NaN for that trial:
Optuna is told it was pruned, without a value (deft_tune.search.tuner), which TPE counts among
the worst; :func:`deft_tune.results.ranked` (the best trial of the summary, inspect and export)
leaves it out, and inspect lists it after the trials that rank. Signals (every other key:
losses, KL, the information signals) are means over the replicas that have a finite value, NaN
when none has: a signal can be NaN for one seed without a failure (``info/last_freezing_beta``
before that seed's first freezing event, an NMI with no factor varied on its probe), and each
replica's value stays in the report beside the mean. A NaN loss stops the run anyway
(TrainingError).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from deft_tune import report_keys as keys

__all__ = [
    "AGGREGATES",
    "STATISTICS",
    "aggregate",
    "combine",
    "combine_scores",
    "objective_key",
    "replica_histories",
    "replica_key",
    "replica_reports",
    "replica_values",
    "signal_mean",
    "split_objective_key",
    "split_replica_key",
]

# What a search may rank on (objective.aggregate): each is a statistic over the replicas.
AGGREGATES = ("mean", "mean_minus_std", "median", "min")
STATISTICS = ("std", "min", "median", "mean_minus_std")  # the suffixed keys besides the mean
RUN_KEYS = (keys.STEP, keys.IMAGES_PER_SEC, keys.REPLICAS)  # one value for the whole run


def replica_key(replica: int, key: str) -> str:
    return f"replica{replica}/{key}"


def split_replica_key(name: str) -> tuple[int | None, str]:
    """The inverse of :func:`replica_key`: ``(r, key)``, or ``(None, name)`` for a run's key."""
    head, sep, rest = name.partition("/")
    index = head.removeprefix("replica")
    if sep and head.startswith("replica") and index.isdigit():
        return int(index), rest
    return None, name


def objective_key(metric: str, aggregate_name: str) -> str:
    """The key a search optimises: ``metrics/mig`` (mean) or ``metrics/mig_min`` and so on."""
    return metric if aggregate_name == "mean" else f"{metric}_{aggregate_name}"


def split_objective_key(key: str) -> tuple[str, str]:
    """The inverse of :func:`objective_key`: ``metrics/mig_min`` -> (``metrics/mig``, "min")."""
    for name in AGGREGATES[1:]:
        if key.endswith(f"_{name}"):
            return key[: -len(name) - 1], name
    return key, "mean"


def aggregate(values: Sequence[float], how: str) -> float:
    """One of :data:`AGGREGATES` (or "std") of a score's replica values; NaN when there are
    none or any is not a finite number (see the module docstring)."""
    if not values or not all(_finite(v) for v in values):
        return math.nan
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {
        "mean": mean,
        "std": std,
        "min": min(values),
        "median": statistics.median(values),
        "mean_minus_std": mean - std,
    }[how]


def signal_mean(values: Sequence[float]) -> float:
    """The mean of a signal's finite replica values; NaN when none is finite."""
    finite = [v for v in values if _finite(v)]
    return statistics.fmean(finite) if finite else math.nan


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _has_statistics(key: str, extra: Sequence[str]) -> bool:
    return key.startswith((keys.METRIC_PREFIX, keys.FINAL_PREFIX)) or key in extra


def combine(
    reports: Sequence[dict[str, float]], statistics_of: Sequence[str] = ()
) -> dict[str, float]:
    """One report of the run from its replicas' reports (see the module docstring).

    ``statistics_of`` names further keys that get the suffixed statistics and a score's NaN
    rule (the objective when it is not a score). Keys of :data:`RUN_KEYS` are taken from the
    first report as they are.
    """
    if not reports:
        raise ValueError("combine needs at least one replica's report")
    if len(reports) == 1:
        out = dict(reports[0])
        for key in statistics_of:
            if key in out:
                out.update({f"{key}_{s}": aggregate([out[key]], s) for s in STATISTICS})
        return out
    out = {k: reports[0][k] for k in RUN_KEYS if k in reports[0]}
    names = dict.fromkeys(k for report in reports for k in report if k not in RUN_KEYS)
    for key in names:
        values = [report.get(key, math.nan) for report in reports]
        for r, value in enumerate(values):
            out[replica_key(r, key)] = value
        if _has_statistics(key, statistics_of):  # a score: NaN with any replica's NaN
            out[key] = aggregate(values, "mean")
            out.update({f"{key}_{s}": aggregate(values, s) for s in STATISTICS})
        else:
            out[key] = signal_mean(values)
    return out


def combine_scores(per_replica: Sequence[dict[str, float]]) -> dict[str, float]:
    """A run's scores: one replica's as they are; several replicas' as ``replica{r}/<key>``,
    the mean ``<key>`` and every statistic of every key (metric names carry no prefix)."""
    many = len(per_replica) > 1
    return combine(per_replica, statistics_of=list(per_replica[0]) if many else ())


def replica_values(report: dict[str, float], key: str) -> list[float]:
    """Each replica's value of ``key`` in a combined report (the plain value for one replica)."""
    count = int(report.get(keys.REPLICAS, 1) or 1)
    if count <= 1:
        return [report[key]] if key in report else []
    return [report[replica_key(r, key)] for r in range(count) if replica_key(r, key) in report]


def replica_reports(report: dict[str, float]) -> list[dict[str, float]]:
    """Each replica's own report from a combined one: its ``replica{r}/`` keys unprefixed and
    the run's keys (step, throughput, replica count) as they are; ``[report]`` for one replica.
    A replica none of whose keys the report holds gets the run's keys alone."""
    count = int(report.get(keys.REPLICAS, 1) or 1)
    if count <= 1:
        return [dict(report)]
    out: list[dict[str, float]] = [
        {k: report[k] for k in RUN_KEYS if k in report} for _ in range(count)
    ]
    for key, value in report.items():
        r, base = split_replica_key(key)
        if r is not None and r < count:
            out[r][base] = value
    return out


def replica_histories(history: Sequence[dict[str, float]], count: int) -> list[list[dict]]:
    """Each replica's own history (:func:`replica_reports` of every report) of a run of
    ``count`` replicas; [] for one replica, whose history is the run's."""
    if count <= 1:
        return []
    per_report = [replica_reports(report) for report in history]
    return [[reports[r] for reports in per_report] for r in range(count)]
