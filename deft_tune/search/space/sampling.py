"""A search space compiled for Optuna and Tune: define-by-run, starting points, run configs.

Suggest names (flat; OptunaSearch turns "stage2/frac" into ``{"stage2": {"frac": ...}}``):

- every method: ``lr``; baselines: ``num_latents``, ``beta`` or ``capacity_max``,
  ``capacity_weight``, ``capacity_steps``;
- DEFT: ``rule``, ``num_stages``, ``latents_per_group``; betas ``stage1/beta`` (the first),
  ``beta_last`` and ``stage{i}/beta_pos`` for the middle stages i = 2..n-1 (or
  ``ifp/betas_n{n}`` with an IFP table); ``stage{i}/frac`` for i = 1..n-1 under the fixed
  rule; ``beta_max``, ``gamma``, ``anneal_steps`` under the annealed rule; ``earlier`` (how
  the groups opened before a stage are treated: "scale" or "freeze", one choice per trial) and,
  under "scale", ``stage{i}/lr_scale`` for i = 2..n.

Besides the parameters, every trial's Tune config carries ``trial_number`` (:data:`TRIAL_NUMBER`):
the Optuna trial number, the trial's ordinal in the search (start points first). The trial's
seed derives from it and the search seed (:func:`trial_seed`), so the same space and seed give
the same seeds, unlike Tune's random trial ids. It is a constant of the define-by-run
function, so Optuna never sees it as a parameter.

Betas decrease by construction, never by rejection: a middle stage's beta sits at position u in
(0, 1) between the previous beta and the last one on a log scale,
``log b_i = log b_last + u_i (log b_{i-1} - log b_last)``, and the first beta's range lies above
the last's. Parameters keep one meaning whatever the stage count, which is what TPE needs to
learn across trials with different counts.

Under the fixed rule a trial of n stages has n betas (each stage's loss beta). Under the
annealed rule it has n - 1 thresholds, built the same way (the first, the middle positions,
``beta_last``): stage i ends when the annealed beta falls to threshold i, and the last stage has
none and trains to the end, as in the authors' code (thresholds [70, 30, 15, 1]: five groups).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable
from typing import Any

from deft_tune.config import RunConfig, flatten
from deft_tune.errors import ConfigError
from deft_tune.search.space.params import Param
from deft_tune.search.space.schema import SearchSpace

__all__ = [
    "TRIAL_NUMBER",
    "define_by_run",
    "points_to_evaluate",
    "run_config_from_params",
    "trial_seed",
    "trial_threads",
]

TRIAL_NUMBER = "trial_number"  # the key of the Optuna trial number in a trial's Tune config


def define_by_run(space: SearchSpace) -> Callable[[Any], dict[str, Any] | None]:
    """The Optuna define-by-run function of ``space`` (picklable, as Tune saves its searcher)."""
    return _DefineByRun(space)


class _DefineByRun:
    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def __call__(self, trial: Any) -> dict[str, Any] | None:
        constants: dict[str, Any] = {}

        def take(key: str, name: str, param: Param | None = None) -> Any:
            param = param if param is not None else self.space.params[key]
            if param.fixed:
                constants[name] = param.value
                return param.value
            return param.suggest(trial, name)

        _walk(self.space, take)
        return {**constants, TRIAL_NUMBER: int(trial.number)}


def trial_seed(search_seed: int, ordinal: int | str) -> int:
    """A trial's training seed: ``sha256("<search seed>/<ordinal>")`` reduced to 31 bits.

    ``ordinal`` is the trial's Optuna number (a Tune trial id only for configs from before the
    number was recorded); a retried or resumed trial keeps its number, hence its seed.
    """
    digest = hashlib.sha256(f"{search_seed}/{ordinal}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def trial_threads(cpus_per_trial: float) -> int:
    """torch threads of a trial: its whole CPUs from Ray (at least 1), as Ray's OMP_NUM_THREADS."""
    return max(1, math.floor(cpus_per_trial))


def points_to_evaluate(space: SearchSpace) -> list[dict[str, Any]]:
    """The space's starting points in flat suggest names (OptunaSearch ignores nested ones)."""
    return [dict(point) for point in space.start]


def run_config_from_params(space: SearchSpace, params: dict[str, Any], seed: int) -> RunConfig:
    """The run config of one trial: ``params`` as Tune delivers them (nested or flat).

    Fixed parameters come from the space; keys the space does not define are ignored (the
    runner may add its own). A missing sampled parameter is a ConfigError.
    """
    flat = flatten(params, sep="/")

    def take(key: str, name: str, param: Param | None = None) -> Any:
        param = param if param is not None else space.params[key]
        if param.fixed:
            return param.value
        if name not in flat:
            raise ConfigError(f"trial parameters lack {name!r} (space {space.name!r})")
        return flat[name]

    values = _walk(space, take)
    raw = {section: dict(fields) for section, fields in space.base.items()}
    for section, fields in _sections(space, values, seed).items():
        raw.setdefault(section, {}).update(fields)
    return RunConfig.from_dict(raw)


# --- the walk shared by sampling and building -------------------------------------------------

Take = Callable[..., Any]


def _walk(space: SearchSpace, take: Take) -> dict[str, Any]:
    """Visit the parameters a trial has, in order; ``take`` samples or looks each one up."""
    values = {"lr": take("lr", "lr")}
    if space.method != "deft":
        for key in space.params:
            if key != "lr":
                values[key] = take(key, key)
        return values
    values["rule"] = rule = take("rule", "rule")
    values["num_stages"] = n = take("num_stages", "num_stages")
    values["latents_per_group"] = take("latents_per_group", "latents_per_group")
    if rule == "fixed":
        values["betas"] = _stage_betas(space, n, take)
    else:  # n - 1 thresholds; the last stage has none
        values["betas"] = [*_stage_betas(space, n - 1, take, thresholds=True), None]
    if rule == "fixed":
        values["fracs"] = [take("stage_frac", f"stage{i}/frac") for i in range(1, n)]
    else:
        for key in ("beta_max", "gamma", "anneal_steps"):
            values[key] = take(key, key)
    values["earlier"] = earlier = take("earlier", "earlier")
    scales = [1.0] * (n - 1)  # frozen earlier groups take no rate
    if earlier == "scale":
        scales = [take("lr_scale", f"stage{i}/lr_scale") for i in range(2, n + 1)]
    values["lr_scales"] = [1.0, *scales]
    return values


def _stage_betas(space: SearchSpace, n: int, take: Take, thresholds: bool = False) -> list[float]:
    """``n`` decreasing betas; ``thresholds``: the annealed rule's, which an IFP table gives
    directly (its candidates are boundaries between factors) without ``beta_last``."""
    if n == 0:
        return []
    if space.betas is not None:  # a fixed list (fixed rule only): reported as constants
        return [take("", f"stage{i}/beta", Param("fixed", "float", value=b))
                for i, b in enumerate(space.betas, start=1)]  # fmt: skip
    if space.ifp_betas is not None:
        count = n + 1 if thresholds else n  # the stage count the label is named after
        label = take("", f"ifp/betas_n{count}", ifp_param(space, count))
        chosen = [float(b) for b in label.split(",")]
        return chosen if thresholds else [*chosen, space.params["beta_last"].bounds[0]]
    first = take("beta_first", "stage1/beta")
    if n == 1:
        return [first]
    last = take("beta_last", "beta_last")
    positions = [take("beta_pos", f"stage{i}/beta_pos") for i in range(2, n)]
    return betas_from_positions(first, positions, last)


def betas_from_positions(first: float, positions: list[float], last: float) -> list[float]:
    """Stage betas: each middle beta at position u between the previous and ``last`` (log)."""
    betas = [first]
    for u in positions:
        betas.append(math.exp(math.log(last) + u * (math.log(betas[-1]) - math.log(last))))
    return [*betas, last]


def positions_from_betas(betas: list[float]) -> list[float]:
    """The inverse of :func:`betas_from_positions` for the middle stages."""
    last = math.log(betas[-1])
    return [
        (math.log(b) - last) / (math.log(prev) - last) for prev, b in zip(betas[:-2], betas[1:-1])
    ]


def ifp_param(space: SearchSpace, n: int) -> Param:
    """The categorical over decreasing choices of n-1 IFP candidates (the last beta is fixed)."""
    combos = [",".join(f"{b:g}" for b in combo)
              for combo in itertools.combinations(space.ifp_betas or (), n - 1)]  # fmt: skip
    if len(combos) == 1:
        return Param("fixed", "str", value=combos[0])
    return Param("choices", "str", choices=tuple(combos))


def _sections(space: SearchSpace, v: dict[str, Any], seed: int) -> dict[str, dict[str, Any]]:
    steps = space.budget.steps_per_trial
    sections: dict[str, dict[str, Any]] = {
        "data": dict(space.data),
        "training": {
            "steps": steps,
            "lr": v["lr"],
            "seed": seed,
            "threads": trial_threads(space.budget.cpus_per_trial),
        },
        "evaluation": {
            "interval": space.budget.eval_interval,
            "metrics": list(space.objective.metrics),
        },
    }
    if space.method != "deft":
        sections["model"] = {"groups": 1, "latents_per_group": v["num_latents"]}
        names = ("beta", "capacity_max", "capacity_weight", "capacity_steps")
        objective: dict[str, Any] = {k: v[k] for k in names if k in v}
        sections["objective"] = {"kind": space.method, **objective}
        return sections
    n = v["num_stages"]
    sections["model"] = {"groups": n, "latents_per_group": v["latents_per_group"]}
    sections["objective"] = {"kind": "deft"}
    if v["rule"] == "fixed":
        lengths = [*stage_lengths(v["fracs"], steps, space.params["stage_frac"].bounds[0]), None]
    else:  # the annealed beta decides when stages end
        lengths = [None] * n
    stages = [
        {"beta": beta, "steps": length, "lr_scale": scale, "earlier": v["earlier"]}
        for beta, length, scale in zip(v["betas"], lengths, v["lr_scales"])
    ]
    sections["schedule"] = {"rule": v["rule"], "stages": stages}
    if v["rule"] != "fixed":
        sections["schedule"].update({k: v[k] for k in ("beta_max", "gamma", "anneal_steps")})
    return sections


def stage_lengths(fracs: list[float], steps: int, last_min: float) -> list[int]:
    """Steps of every stage but the last from budget fractions; the last keeps >= last_min.

    When the fractions leave less than ``last_min`` of the budget to the last stage they are
    scaled down together, so every sample is valid without rejection.
    """
    total = sum(fracs)
    scale = min(1.0, (1.0 - last_min) / total) if total > 0 else 1.0
    return [max(1, math.floor(f * scale * steps)) for f in fracs]
