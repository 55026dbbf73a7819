"""A DEFT schedule suggested from the annealing test's IFPs.

Each factor's IFPs (over draws and seeds) are summarised by their median and an interval (the
10th to 90th percentile by default). Factors are sorted by falling median and chained into
clusters while their intervals overlap in beta: factors in one cluster freeze at the same
pressure and cannot be separated by a beta. A stage's beta lies at the geometric midpoint of
the gap between one cluster and the next, so at that beta the clusters above have frozen and
the clusters below have not; the last stage runs at ``final_beta`` (1 by default) and takes the
rest. Factors that never froze during the test go with the last stage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from deft_tune.config import (
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    RunConfig,
    ScheduleConfig,
    StageConfig,
    TrainingConfig,
)
from deft_tune.errors import ConfigError, DataError

__all__ = ["Cluster", "FactorIFP", "Suggestion", "suggest_schedule", "summarize"]


@dataclass(frozen=True)
class FactorIFP:
    """One factor's IFP distribution: median and interval over the runs that froze."""

    factor: str
    runs: int
    frozen: int
    median: float
    low: float
    high: float


@dataclass(frozen=True)
class Cluster:
    """Factors whose IFP intervals overlap; ``low``/``high`` bound the union of intervals."""

    factors: tuple[str, ...]
    low: float
    high: float


@dataclass(frozen=True)
class Suggestion:
    dataset: str
    factors: tuple[FactorIFP, ...]  # by falling median
    clusters: tuple[Cluster, ...]  # one per stage, by falling IFP
    stage_betas: tuple[float, ...]  # strictly decreasing
    never_frozen: tuple[str, ...]

    def evidence(self) -> list[str]:
        """Human-readable lines: the IFPs, what each stage should capture, what overlaps."""
        lines = [
            f"Schedule suggested from the annealing test on {self.dataset}.",
            "IFP per factor: median [interval] over runs that froze:",
        ]
        for f in self.factors:
            lines.append(
                f"  {f.factor}: {f.median:.3g} [{f.low:.3g}, {f.high:.3g}] "
                f"({f.frozen}/{f.runs} runs froze)"
            )
        for name in self.never_frozen:
            lines.append(f"  {name}: never froze during the test (left to the last stage)")
        for i, (beta, cluster) in enumerate(zip(self.stage_betas, self.clusters)):
            extra = list(self.never_frozen) if i == len(self.clusters) - 1 else []
            names = ", ".join([*cluster.factors, *extra]) or "nothing left"
            lines.append(
                f"Stage {i}: beta {beta:.3g} -> expected to capture {names} "
                f"(IFPs {cluster.low:.3g}..{cluster.high:.3g})"
            )
        overlaps = [c.factors for c in self.clusters if len(c.factors) > 1]
        for group in overlaps:
            lines.append(
                f"Overlap: {', '.join(group)} freeze at the same betas and cannot be "
                "split by a stage"
            )
        if not overlaps:
            lines.append("No overlap: every factor's IFP interval is separated from the others")
        return lines

    def run_config(
        self,
        steps: int = 4000,
        latents_per_group: int = 2,
        lr_scale: float = 0.1,
        base: RunConfig | None = None,
    ) -> RunConfig:
        """A DEFT run config: one group per stage, stage steps splitting ``steps`` evenly."""
        n = len(self.stage_betas)
        if steps < n:
            raise ConfigError(f"steps == {steps}, must be >= the number of stages ({n})")
        stages = tuple(
            StageConfig(
                beta=round(beta, 3),
                steps=steps // n if i < n - 1 else None,
                lr_scale=1.0 if i == 0 else lr_scale,
            )
            for i, beta in enumerate(self.stage_betas)
        )
        base = base or RunConfig(data=DataConfig(name=self.dataset))
        return RunConfig(
            data=base.data,
            model=ModelConfig(
                **{**base.model.__dict__, "groups": n, "latents_per_group": latents_per_group}
            ),
            objective=ObjectiveConfig(**{**base.objective.__dict__, "kind": "deft"}),
            schedule=ScheduleConfig(rule="fixed", stages=stages),
            training=TrainingConfig(**{**base.training.__dict__, "steps": steps}),
            evaluation=base.evaluation,
        )


def summarize(
    rows: Iterable[Mapping], quantiles: tuple[float, float] = (0.1, 0.9)
) -> tuple[list[FactorIFP], list[str]]:
    """Per-factor IFP summaries by falling median, and the factors that never froze."""
    by_factor: dict[str, list[float]] = {}
    for row in rows:
        by_factor.setdefault(str(row["factor"]), []).append(float(row["ifp"]))
    if not by_factor:
        raise DataError("the IFP table has no runs")
    summaries, never = [], []
    for factor, values in by_factor.items():
        found = np.array([v for v in values if math.isfinite(v)])
        if found.size == 0:
            never.append(factor)
            continue
        low, high = np.quantile(found, quantiles)
        summaries.append(
            FactorIFP(
                factor,
                len(values),
                int(found.size),
                float(np.median(found)),
                float(low),
                float(high),
            )
        )
    summaries.sort(key=lambda f: -f.median)
    return summaries, never


def _clusters(factors: Sequence[FactorIFP], min_ratio: float) -> list[Cluster]:
    """Chain factors (by falling median) into clusters whose intervals are separated.

    A factor joins the last cluster if its interval reaches it; then clusters are merged from
    the bottom up while the last one reaches the one above it (a factor with a low median but a
    wide interval can bridge several clusters).
    """
    clusters: list[Cluster] = []
    for f in factors:
        clusters.append(Cluster((f.factor,), f.low, f.high))
        while len(clusters) > 1 and clusters[-1].high * min_ratio >= clusters[-2].low:
            lower = clusters.pop()
            clusters[-1] = _merge(clusters[-1], lower)
    return clusters


def _merge(upper: Cluster, lower: Cluster) -> Cluster:
    return Cluster(
        (*upper.factors, *lower.factors), min(upper.low, lower.low), max(upper.high, lower.high)
    )


def suggest_schedule(
    rows: Iterable[Mapping],
    dataset: str | None = None,
    final_beta: float = 1.0,
    min_ratio: float = 1.05,
    quantiles: tuple[float, float] = (0.1, 0.9),
) -> Suggestion:
    """Stage betas between separated IFP clusters; see the module docstring.

    ``rows`` are IFP-table rows (``factor``, ``ifp``, optionally ``dataset``). Two clusters
    count as separated only if the upper one's interval starts ``min_ratio`` times above the
    lower one's top.
    """
    rows = list(rows)
    if not (math.isfinite(final_beta) and final_beta >= 0):
        raise ConfigError(f"final_beta == {final_beta!r}, must be a number >= 0")
    if not (math.isfinite(min_ratio) and min_ratio >= 1):
        raise ConfigError(f"min_ratio == {min_ratio!r}, must be >= 1")
    dataset = dataset or (str(rows[0].get("dataset", "")) if rows else "")
    factors, never = summarize(rows, quantiles)
    clusters = _clusters(factors, min_ratio)
    # Merge from the bottom while the last gap would not lie above the final beta.
    while len(clusters) > 1 and _gap(clusters[-2], clusters[-1]) <= final_beta:
        lower = clusters.pop()
        clusters[-1] = _merge(clusters[-1], lower)
    betas = [_gap(a, b) for a, b in zip(clusters, clusters[1:])] + [final_beta]
    if not clusters:  # nothing froze at all: one stage at the final beta
        clusters = [Cluster((), final_beta, final_beta)]
    return Suggestion(dataset, tuple(factors), tuple(clusters), tuple(betas), tuple(never))


def _gap(upper: Cluster, lower: Cluster) -> float:
    """The geometric midpoint between an upper cluster's bottom and a lower cluster's top."""
    return math.sqrt(upper.low * lower.high)
