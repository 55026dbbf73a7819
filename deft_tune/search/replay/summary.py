"""Replays summarised: median and interquartile mean (IQM) over replays, each with a seeded
bootstrap 95% interval; savings; the anytime curves on a common grid; and the bank's spread
(how much schedules differ against how much one schedule's seeds differ).

The intervals are over replays of one bank (trial orders and, with ``--trials``, subsets): they
say how much a rule's result depends on the order the trials come in, not how it would change
on another bank. The bank's seed noise is what :func:`spread` measures.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from deft_tune.search.replay.bank import CurveBank
from deft_tune.search.replay.simulate import ReplayRun

__all__ = [
    "ReplayResult",
    "RuleSummary",
    "Spread",
    "Stat",
    "SweepPoint",
    "anytime",
    "bootstrap_ci",
    "describe",
    "iqm",
    "median",
    "regret_beyond_none",
    "rule_summary",
    "spread",
]

RESAMPLES = 2000


@dataclass(frozen=True)
class Stat:
    median: float
    median_ci: tuple[float, float]
    iqm: float
    iqm_ci: tuple[float, float]

    def text(self, digits: int = 3, scale: float = 1.0, of_iqm: bool = False) -> str:
        """``median [low, high]`` (or the IQM's) to ``digits`` significant digits; large numbers
        (trial-steps) are written whole, not in exponent notation."""
        centre, (low, high) = (self.iqm, self.iqm_ci) if of_iqm else (self.median, self.median_ci)
        return "{} [{}, {}]".format(*(_num(v * scale, digits) for v in (centre, low, high)))


def _num(value: float, digits: int) -> str:
    return f"{value:.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"


def iqm(values: np.ndarray) -> np.ndarray | float:
    """The interquartile mean along the last axis: the mean of the middle half (a quarter of
    the values cut at each end)."""
    ordered = np.sort(np.asarray(values, dtype=float), axis=-1)
    count = ordered.shape[-1]
    cut = int(0.25 * count)
    middle = ordered[..., cut : count - cut].mean(axis=-1)
    return float(middle) if middle.ndim == 0 else middle


def median(values: np.ndarray) -> np.ndarray | float:
    """The median along the last axis."""
    found = np.median(np.asarray(values, dtype=float), axis=-1)
    return float(found) if found.ndim == 0 else found


Statistic = Callable[[np.ndarray], "np.ndarray | float"]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, statistic: Statistic, seed: int
) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of ``statistic`` (computed along the last axis) over
    resamples of ``values`` with replacement; the same resamples for every statistic of the
    same seed and size, so rules compared on one seed are compared on the same resamples."""
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), size=(RESAMPLES, len(data)))
    low, high = np.percentile(statistic(data[picks]), [2.5, 97.5])
    return float(low), float(high)


def describe(values: Sequence[float], seed: int) -> Stat | None:
    """Median and IQM of the finite ``values`` with their bootstrap intervals; None if none."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if data.size == 0:
        return None
    return Stat(
        median=float(median(data)),
        median_ci=bootstrap_ci(data, median, seed),
        iqm=float(iqm(data)),
        iqm_ci=bootstrap_ci(data, iqm, seed),
    )


@dataclass(frozen=True)
class RuleSummary:
    rule: str
    replays: int
    trial_steps: Stat
    savings: Stat
    wall_s: Stat
    best: Stat | None
    regret: Stat | None
    stopped: float  # median count of trials the rule stopped


def rule_summary(rule: str, runs: Sequence[ReplayRun], seed: int) -> RuleSummary:
    def stat(values: list[float]) -> Stat:
        found = describe(values, seed)
        if found is None:
            raise ValueError(f"rule {rule}: no finite values to summarise")
        return found

    return RuleSummary(
        rule=rule,
        replays=len(runs),
        trial_steps=stat([float(r.trial_steps) for r in runs]),
        savings=stat([r.savings for r in runs]),
        wall_s=stat([r.wall_s for r in runs]),
        best=describe([r.best for r in runs if r.best is not None], seed),
        regret=describe([r.regret for r in runs if r.regret is not None], seed),
        stopped=float(np.median([r.stopped for r in runs])),
    )


def anytime(
    runs: Sequence[ReplayRun], grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best objective so far at each ``grid`` trial-step count: median, 25th and 75th
    percentile over replays (NaN where no replay has a trial ended by then)."""
    table = np.full((len(runs), len(grid)), np.nan)
    for i, run in enumerate(runs):
        for steps, value in run.curve:
            table[i, grid >= steps] = value  # later ends overwrite: the curve is in end order
    median, low, high = (np.full(len(grid), np.nan) for _ in range(3))
    seen = ~np.isnan(table).all(axis=0)
    if seen.any():
        median[seen] = np.nanmedian(table[:, seen], axis=0)
        low[seen], high[seen] = np.nanpercentile(table[:, seen], [25, 75], axis=0)
    return median, low, high


@dataclass(frozen=True)
class Spread:
    schedules: int
    replicas: int  # per schedule (the smallest count among them)
    between: float  # standard deviation of the schedules' mean final scores
    within: float  # pooled standard deviation of one schedule's replicas (seed noise)
    noise_of_mean: float  # within / sqrt(replicas): the seed noise of a schedule's mean
    f_ratio: float  # one-way ANOVA F: replicas * var(means) / pooled within variance

    @property
    def p_value(self) -> float:
        """The one-way ANOVA's: the chance of an F this large if every schedule scored the same
        in expectation (F with schedules - 1 and schedules * (replicas - 1) degrees of freedom;
        the smallest replica count stands for all)."""
        from scipy.stats import f as f_distribution

        if math.isinf(self.f_ratio):
            return 0.0
        dfn, dfd = self.schedules - 1, self.schedules * (self.replicas - 1)
        return float(f_distribution.sf(self.f_ratio, dfn, dfd))

    @property
    def separated(self) -> bool:
        """Schedules differ beyond seed noise: the ANOVA rejects equal means at 5%."""
        return self.p_value < 0.05


def spread(bank: CurveBank) -> Spread | None:
    """How much the schedules' final scores (the objective's metric, standard setting) differ,
    between schedules and between one schedule's replicas; None without two replicas each."""
    groups = [t.replica_finals for t in bank.trials if len(t.replica_finals) >= 2]
    if len(groups) < 2:
        return None
    means = [statistics.fmean(g) for g in groups]
    pooled = statistics.fmean(statistics.variance(g) for g in groups)
    replicas = min(len(g) for g in groups)
    between = statistics.stdev(means)
    within = math.sqrt(pooled)
    noise = within / math.sqrt(replicas)
    f_ratio = replicas * between**2 / pooled if pooled > 0 else math.inf
    return Spread(len(groups), replicas, between, within, noise, f_ratio)


def regret_beyond_none(result: ReplayResult, rule: str) -> list[float]:
    """Per replay, the regret ``rule`` adds to what no stopping returns on the same trials in
    the same order (replays without both regrets left out); needs "none" among the rules."""
    pairs = zip(result.runs[rule], result.runs["none"], strict=True)
    return [r.regret - n.regret for r, n in pairs if r.regret is not None and n.regret is not None]


@dataclass(frozen=True)
class SweepPoint:
    value: object  # the stopping.ifp field's value
    summary: RuleSummary


@dataclass(frozen=True)
class ReplayResult:
    """Everything a replay measured: what the command prints, plots, logs and writes."""

    bank: CurveBank
    command: str  # the command line that reproduces it
    concurrency: int
    orders: tuple[tuple[int, ...], ...]
    runs: dict[str, list[ReplayRun]]
    summaries: tuple[RuleSummary, ...]
    spread: Spread | None
    sweep_field: str | None = None
    sweep: tuple[SweepPoint, ...] = ()
