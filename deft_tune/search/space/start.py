"""Starting points: schedules a user writes as betas and fractions, turned into suggest names.

A starting point is written the way a schedule is thought of (``betas: [70, 30, 12, 1]``,
``stage_fracs: [0.25, 0.25, 0.25]``, ``lr_scales: 0.1``) and converted to the flat names the
define-by-run function suggests, because OptunaSearch silently ignores anything else. Every
value must lie inside the space; a value for a fixed parameter must equal it. A point may be
partial: Optuna samples the parameters it leaves out.
"""

from __future__ import annotations

import math
from typing import Any

from deft_tune.errors import ConfigError
from deft_tune.search.space.params import Param
from deft_tune.search.space.sampling import ifp_param, positions_from_betas
from deft_tune.search.space.schema import SearchSpace, param_domains
from deft_tune.validation import check_keys

__all__ = ["start_point"]

_DEFT_KEYS = ("rule", "num_stages", "betas", "stage_fracs", "lr_scales", "lr",
              "latents_per_group", "beta_max", "gamma", "anneal_steps", "earlier")  # fmt: skip
_DEFT_SCALARS = ("rule", "lr", "latents_per_group", "beta_max", "gamma", "anneal_steps",
                 "earlier")  # fmt: skip


def start_point(space: SearchSpace, raw: Any, where: str) -> dict[str, Any]:
    """The flat suggest-name dict of one starting point ``raw`` (validated)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of parameter: value, got {raw!r}")
    out: dict[str, Any] = {}
    put = _Putter(space, out, where)
    if space.method != "deft":
        check_keys(raw, tuple(space.params), where)
        for key, value in raw.items():
            put(key, key, value)
        return out
    check_keys(raw, _DEFT_KEYS, where)
    for key in _DEFT_SCALARS:
        if key in raw:
            put(key, key, raw[key])
    counted = _stage_count(space, raw, where)
    if counted is None:  # no per-stage values: Optuna samples the stage count and the rest
        if "betas" in raw:  # given, but not as a list: say so
            _put_betas(space, put, raw["betas"], 0, where, raw.get("rule"))
        return out
    n = counted
    put("num_stages", "num_stages", n)
    if "betas" in raw:
        _put_betas(space, put, raw["betas"], n, where, raw.get("rule"))
    if "stage_fracs" in raw:
        _put_fracs(space, put, raw, n, where)
    if "lr_scales" in raw:
        _check_scaled(space, raw, where)
        scales = raw["lr_scales"]
        scales = scales if isinstance(scales, list) else [scales] * (n - 1)
        for i, scale in enumerate(scales, start=2):
            put("lr_scale", f"stage{i}/lr_scale", scale, f"{where}.lr_scales[{i - 2}]")
    return out


class _Putter:
    """Checks one value against its parameter and records it if the parameter is sampled."""

    def __init__(self, space: SearchSpace, out: dict[str, Any], where: str) -> None:
        self.space, self.out, self.where = space, out, where
        self.domains = param_domains(space.method)

    def __call__(self, key: str, name: str, value: Any, where: str | None = None,
                 param: Param | None = None) -> None:  # fmt: skip
        where = where or f"{self.where}.{key}"
        param = param if param is not None else self.space.params[key]
        if key in self.domains:
            value = self.domains[key][0].check(value, where)
        if param.kind == "range" and param.type == "float":
            value = _snap(value, param)
        if not param.contains(value):
            fixed = "is fixed at" if param.fixed else "is"
            raise ConfigError(
                f"{where} == {value!r} lies outside the space: params.{key or name} "
                f"{fixed} {param.describe()}; move the point inside or widen it"
            )
        if not param.fixed:
            self.out[name] = value


def _snap(value: float, param: Param) -> float:
    """Undo round-off of a converted value (a beta position of 0.85000000001) at a bound."""
    for bound in (param.low, param.high):
        if bound is not None and math.isclose(value, bound, rel_tol=1e-9):
            return float(bound)
    return value


def _check_scaled(space: SearchSpace, raw: dict, where: str) -> None:
    earlier = space.params["earlier"]
    mode = raw.get("earlier", earlier.value if earlier.fixed else "scale")
    if mode != "scale":
        raise ConfigError(
            f"{where}.lr_scales is given but earlier is {mode!r}: learning-rate scales belong to "
            "earlier: scale (frozen groups take no rate); drop lr_scales or set earlier: scale"
        )


def _stage_count(space: SearchSpace, raw: dict, where: str) -> int | None:
    counts = {}
    if "num_stages" in raw:
        counts["num_stages"] = raw["num_stages"]
    if isinstance(raw.get("betas"), list):  # the annealed rule's are the n - 1 thresholds
        annealed = _rule(space, raw.get("rule")) == "annealed"
        counts["betas"] = len(raw["betas"]) + (1 if annealed else 0)
    for key in ("stage_fracs", "lr_scales"):
        if isinstance(raw.get(key), list):
            counts[key] = len(raw[key]) + 1
    if len(set(counts.values())) > 1:
        raise ConfigError(
            f"{where} disagrees on the stage count: {counts} (betas has one entry "
            "per stage (annealed: one threshold per stage but the last), stage_fracs and "
            "lr_scales one per stage after the first)"
        )
    if counts:
        return next(iter(counts.values()))
    stages = space.params["num_stages"]
    if stages.fixed:
        return stages.value
    if "stage_fracs" in raw or "lr_scales" in raw:
        raise ConfigError(f"{where} gives per-stage values but no stage count: add num_stages")
    return None


def _put_betas(
    space: SearchSpace, put: _Putter, betas: Any, n: int, where: str, raw_rule: Any = None
) -> None:
    if not isinstance(betas, list) or not all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0 for b in betas
    ):
        raise ConfigError(f"{where}.betas == {betas!r}, must be a list of positive numbers")
    betas = [float(b) for b in betas]
    if any(a <= b for a, b in zip(betas, betas[1:])):
        raise ConfigError(
            f"{where}.betas == {betas} must strictly decrease (DEFT lowers the "
            "pressure stage by stage): sort them from high to low"
        )
    if space.betas is not None:
        if tuple(betas) != space.betas:
            raise ConfigError(
                f"{where}.betas == {betas} but params.betas fixes them at "
                f"{list(space.betas)}: drop betas from the starting point"
            )
        return
    thresholds = _rule(space, raw_rule) == "annealed"  # betas are the n - 1 thresholds
    if space.ifp_betas is not None:
        if not thresholds:
            put("beta_last", "beta_last", betas[-1], f"{where}.betas[-1]")
        label = ",".join(f"{b:g}" for b in (betas if thresholds else betas[:-1]))
        put("", f"ifp/betas_n{n}", label, f"{where}.betas", ifp_param(space, n))
        return
    put("beta_first", "stage1/beta", betas[0], f"{where}.betas[0]")
    if len(betas) >= 2:
        put("beta_last", "beta_last", betas[-1], f"{where}.betas[-1]")
    for i, u in enumerate(positions_from_betas(betas) if len(betas) >= 3 else [], start=2):
        put("beta_pos", f"stage{i}/beta_pos", u, f"{where}.betas[{i - 1}] (as position {u:.3g})")


def _rule(space: SearchSpace, raw_rule: Any) -> str:
    """The start point's rule: its own, the space's fixed one, else the fixed rule."""
    rules = space.params["rule"]
    return raw_rule if raw_rule is not None else rules.value if rules.fixed else "fixed"


def _put_fracs(space: SearchSpace, put: _Putter, raw: dict, n: int, where: str) -> None:
    fracs = raw["stage_fracs"]
    if _rule(space, raw.get("rule")) != "fixed" or not isinstance(fracs, list):
        raise ConfigError(
            f"{where}.stage_fracs must be a list and needs rule 'fixed' "
            "(the annealed beta decides when stages end)"
        )
    for i, frac in enumerate(fracs, start=1):
        put("stage_frac", f"stage{i}/frac", frac, f"{where}.stage_fracs[{i - 1}]")
    last_min = space.params["stage_frac"].bounds[0]
    if sum(fracs) > 1 - last_min + 1e-12:
        raise ConfigError(
            f"{where}.stage_fracs sum to {sum(fracs):g}: leave at least "
            f"{last_min:g} (params.stage_frac's low end) to the last stage"
        )
