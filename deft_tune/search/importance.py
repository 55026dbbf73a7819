"""Which sampled parameters matter for the objective: Optuna's fANOVA over the trials of a curve
bank (or a recorded search), with a bootstrap interval over trials.

Each trial's sampled values are read back from its run config (:func:`deft_tune.results.refine.
observed_values`, the reading that `export --space-out` narrows ranges with). A parameter that
takes one value per stage (``beta_pos``, ``stage_frac``, ``lr_scale``) enters as its mean over
the trial's stages. fANOVA needs every parameter in every trial, so parameters that exist only in
some trials (``lr_scale`` only where earlier groups are scaled, ``gamma`` only for the annealed
rule) and fixed ones are left out, and the output names them.

Importance is the fraction of the objective's variance (over the fitted random forest) that a
parameter explains alone: the point estimate fits all trials; the interval is the 2.5-97.5%
percentiles over ``resamples`` bootstrap resamples of the trials (each fitted with its own
seed), which is what a 16-trial bank can and cannot say.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deft_tune.errors import ConfigError
from deft_tune.results.refine import observed_values

__all__ = ["Importance", "ImportanceResult", "importances", "trial_values"]


@dataclass(frozen=True)
class Importance:
    param: str
    value: float  # fitted on every trial
    low: float  # bootstrap 2.5% percentile
    high: float  # bootstrap 97.5% percentile


@dataclass(frozen=True)
class ImportanceResult:
    objective: str
    trials: int
    resamples: int
    seed: int
    ranked: tuple[Importance, ...]  # most important first
    left_out: tuple[str, ...]  # searched parameters not in every trial


def trial_values(params: dict[str, str], steps_per_trial: int) -> dict[str, Any]:
    """One value per sampled parameter of a trial (per-stage values: their mean)."""
    values = {}
    for name, seen in observed_values(_Params(params), steps_per_trial).items():
        if not seen:
            continue
        numbers = [v for v in seen if isinstance(v, (int, float)) and not isinstance(v, bool)]
        values[name] = statistics.fmean(numbers) if len(numbers) == len(seen) else seen[0]
    return values


@dataclass(frozen=True)
class _Params:
    params: dict[str, str]


def importances(
    space: dict[str, Any],
    trials: Sequence[tuple[dict[str, str], float]],
    objective: str,
    *,
    resamples: int = 100,
    seed: int = 0,
) -> ImportanceResult:
    """fANOVA importances of ``space``'s searched parameters over ``trials`` ((run config
    params, final objective) pairs); ConfigError when too few trials or parameters vary."""
    steps = int((space.get("budget") or {}).get("steps_per_trial", 1))
    searched = _searched(space)
    rows = [(trial_values(p, steps), v) for p, v in trials if math.isfinite(v)]
    if len(rows) < 4:
        raise ConfigError(
            f"importance needs at least 4 trials with a finite {objective}, got {len(rows)}"
        )
    common = [name for name in searched if all(name in values for values, _ in rows)]
    varied = [n for n in common if len({_key(values[n]) for values, _ in rows}) > 1]
    if not varied:
        raise ConfigError("no searched parameter varies over these trials: nothing to compare")
    if len({v for _, v in rows}) < 2:
        raise ConfigError(f"{objective} is the same in every trial: no parameter explains it")
    point = _fanova(space, rows, varied, seed)
    rng = random.Random(seed)
    draws: dict[str, list[float]] = {name: [] for name in varied}
    for i in range(resamples):
        sample = [rows[rng.randrange(len(rows))] for _ in rows]
        usable = [n for n in varied if len({_key(values[n]) for values, _ in sample}) > 1]
        spread = len({v for _, v in sample}) > 1
        # A resample where nothing varies, or the objective does not: nothing is explained.
        found = _fanova(space, sample, usable, seed + 1 + i) if usable and spread else {}
        for name in varied:
            draws[name].append(found.get(name, 0.0))  # constant in the resample: explains 0
    ranked = sorted(
        (Importance(n, point[n], _percentile(draws[n], 2.5), _percentile(draws[n], 97.5))
         for n in varied),
        key=lambda imp: -imp.value,
    )  # fmt: skip
    left_out = tuple(n for n in searched if n not in varied)
    return ImportanceResult(objective, len(rows), resamples, seed, tuple(ranked), left_out)


def _searched(space: dict[str, Any]) -> list[str]:
    """Parameters the space samples (a range or choices), in the file's order."""
    return [name for name, spec in (space.get("params") or {}).items()
            if isinstance(spec, dict) and ("choices" in spec or "low" in spec)]  # fmt: skip


def _key(value: Any) -> Any:
    return round(value, 12) if isinstance(value, float) else value


def _distribution(spec: dict[str, Any], values: list[Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if "choices" in spec:
        choices = sorted({_key(v) for v in values}, key=str)
        return CategoricalDistribution(choices)
    low = min(float(spec["low"]), *map(float, values))
    high = max(float(spec["high"]), *map(float, values))
    return FloatDistribution(low, high, log=bool(spec.get("log")) and low > 0)


def _fanova(
    space: dict[str, Any], rows: list[tuple[dict[str, Any], float]], names: list[str], seed: int
) -> dict[str, float]:
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    specs = space["params"]
    dists = {n: _distribution(specs[n], [values[n] for values, _ in rows]) for n in names}
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a study per resample: no banner each
    study = optuna.create_study(direction="maximize")
    for values, objective in rows:
        params = {n: _key(values[n]) if "choices" in specs[n] else float(values[n]) for n in names}
        trial = optuna.trial.create_trial(params=params, distributions=dists, value=objective)
        study.add_trial(trial)
    evaluator = FanovaImportanceEvaluator(seed=seed)
    found = optuna.importance.get_param_importances(study, evaluator=evaluator, params=names)
    return {name: float(value) for name, value in found.items()}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    below, above = math.floor(position), math.ceil(position)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
