"""A narrowed search space for a second round: the ranges the top trials used, widened a little.

`deft-tune export --space-out` writes it; the trials are the records of
:mod:`deft_tune.search.tracking.reader` (their run config params), ranked by
:func:`deft_tune.results.ranked`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from deft_tune.results.report import earlier_mode, param_float, stage_count, stage_values

__all__ = ["observed_values", "refine_space"]


def observed_values(trial: Any, steps_per_trial: int) -> dict[str, list[Any]]:
    """A trial's values of the search-space parameters, read back from its run config params."""
    p = trial.params
    betas = stage_values(p, "beta")
    seen: dict[str, list[Any]] = defaultdict(list)
    annealed = p.get("schedule.rule") == "annealed"
    for key, param in (
        ("lr", "training.lr"),
        ("beta", "objective.beta"),
        ("capacity_max", "objective.capacity_max"),
        ("gamma", "schedule.gamma"),
        ("beta_max", "schedule.beta_max"),
    ):
        if key in ("gamma", "beta_max") and not annealed:
            continue  # a fixed-rule run config carries the defaults: not sampled values
        if param_float(p.get(param)) is not None:
            seen[key].append(param_float(p[param]))
    if p.get("objective.kind", "deft") != "deft":
        if param_float(p.get("model.latents_per_group")) is not None:
            seen["num_latents"].append(int(float(p["model.latents_per_group"])))
        return dict(seen)
    seen["rule"].append(p.get("schedule.rule", "fixed"))
    seen["num_stages"].append(stage_count(p))
    if earlier_mode(p) is not None:
        seen["earlier"].append(earlier_mode(p))
    seen["latents_per_group"].append(int(float(p.get("model.latents_per_group", 1))))
    if betas:
        seen["beta_first"].append(betas[0])
    seen["beta_pos"].extend(_positions(betas))
    fixed_lengths = stage_values(p, "steps")[: stage_count(p) - 1]  # the last takes the rest
    seen["stage_frac"].extend(s / steps_per_trial for s in fixed_lengths)
    if earlier_mode(p) == "scale":  # frozen trials' lr_scale is not a sampled value
        seen["lr_scale"].extend(stage_values(p, "lr_scale")[1:])
    return dict(seen)


def _positions(betas: list[float]) -> list[float]:
    """Where each middle beta lies between its predecessor and the last beta, in log space."""
    if len(betas) < 3 or betas[-1] <= 0:
        return []
    last = math.log(betas[-1])
    return [
        (math.log(b) - last) / (math.log(prev) - last)
        for prev, b in zip(betas[:-2], betas[1:-1])
        if prev != betas[-1]
    ]


def refine_space(
    space: dict[str, Any], trials: Sequence[Any], widen: float = 0.1
) -> dict[str, Any]:
    """A copy of ``space`` whose searched ranges span the given (top) trials, widened a little.

    Ranges shrink to [min, max] of the values the trials used (first clipped into the original
    range), widened by ``widen`` of the span on each side (in log space for log ranges) and
    clipped to the original range; choices keep only the values the trials used. Fixed
    parameters stay as they were. ``space`` is the space as the search ran it (the parent run's
    artifact): stage fractions are read against its budget.
    """
    steps = int((space.get("budget") or {}).get("steps_per_trial", 1))
    seen: dict[str, list[Any]] = defaultdict(list)
    for trial in trials:
        for key, values in observed_values(trial, steps).items():
            seen[key].extend(values)
    from deft_tune.search.space import param_domains  # pure Python: no Ray, no Optuna

    domains = param_domains(space.get("method", "deft"))
    params = dict(space.get("params") or {})
    for key, spec in params.items():
        if isinstance(spec, dict) and seen.get(key) and key in domains:
            params[key] = _narrow(spec, seen[key], widen, domains[key][0].type == "int")
    refined = {**space, "params": params, "name": f"{space.get('name', 'search')}-refined"}
    refined.pop("start", None)  # the first round's starting points may lie outside the ranges
    return refined


def _narrow(spec: dict[str, Any], values: list[Any], widen: float, integer: bool) -> Any:
    if "choices" in spec:
        used = [c for c in spec["choices"] if c in values or param_float(str(c)) in values]
        return used[0] if len(used) == 1 else {**spec, "choices": used or list(spec["choices"])}
    low, high, log = float(spec["low"]), float(spec["high"]), bool(spec.get("log"))
    fwd, back = (math.log, math.exp) if log else (float, float)
    inside = [min(max(float(v), low), high) for v in values]  # the new range lies in the old
    lo, hi = fwd(min(inside)), fwd(max(inside))
    if integer and lo == hi:  # every top trial agreed on this count: fix it
        return int(round(back(lo)))
    pad = widen * (hi - lo if hi > lo else abs(hi) or 1.0)
    new_low, new_high = max(low, back(lo - pad)), min(high, back(hi + pad))
    if integer:
        new_low, new_high = math.floor(new_low), math.ceil(new_high)
    if new_low == new_high:  # every top trial agreed: fix the value
        return new_low
    return {**spec, "low": new_low, "high": new_high}
