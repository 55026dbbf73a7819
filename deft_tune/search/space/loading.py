"""Loading a search space: YAML in, a validated :class:`SearchSpace` out.

Loading imports no Ray and no Optuna, so a malformed space is refused before Ray starts. Every
space is also test-compiled on load: a run config is built for every stage count and switching
rule with all parameters at their low ends and at their high ends, so a combination that could
not train fails here, not in the middle of a search.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from deft_tune.config import RunConfig, read_yaml
from deft_tune.errors import ConfigError, DataError
from deft_tune.freezing.ifp_table import ifps_by_factor, read_ifp_table
from deft_tune.search.space.ifp_betas import beta_candidates
from deft_tune.search.space.params import Param
from deft_tune.search.space.sampling import define_by_run, run_config_from_params
from deft_tune.search.space.schema import (
    Budget,
    SearchSpace,
    param_domains,
    parse_params,
    parse_top,
)
from deft_tune.search.space.start import start_point
from deft_tune.validation import check_keys

__all__ = ["largest_run", "load_space", "space_from_dict"]

logger = logging.getLogger(__name__)


def load_space(
    path: str | os.PathLike, budget_overrides: dict[str, Any] | None = None
) -> SearchSpace:
    """Read and validate a search-space YAML file; ConfigError names the file and field.

    ``budget_overrides`` replace fields of the file's ``budget:`` before anything is derived
    from it (the DEFT annealing and AnnealedVAE capacity spans follow the trial length).
    """
    path = Path(path)
    raw = read_yaml(path, "search space")
    # A run config handed to search is a common slip: name it rather than its first odd key.
    if isinstance(raw, dict) and {"schedule", "training"} & set(raw) and "params" not in raw:
        raise ConfigError(
            f"{path} is a run config (it has schedule/training), not a search space: train it "
            f"with `deft-tune train --config {path}`, or search with a space such as "
            "search_spaces/quick.yaml"
        )
    try:
        return space_from_dict(raw, source=str(path), budget_overrides=budget_overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def space_from_dict(
    raw: Any, source: str = "<dict>", budget_overrides: dict[str, Any] | None = None
) -> SearchSpace:
    """Build and validate a space from plain data (parsed YAML)."""
    if budget_overrides and isinstance(raw, dict):
        raw = {**raw, "budget": {**(raw.get("budget") or {}), **budget_overrides}}
    top = parse_top(raw, source)
    params = parse_params(raw.get("params"), top["method"])
    params = _fill_defaults(params, top["method"], top["budget"])
    extra: dict[str, Any] = {}
    if top["method"] == "deft":
        extra = _deft_betas(raw.get("params") or {}, params, source, top["data"]["name"])
        _check_deft(params, extra)
    space = SearchSpace(**top, params=params, **extra, source=source)
    starts = raw.get("start") or []
    if not isinstance(starts, list):
        raise ConfigError(f"start must be a list of starting points, got {starts!r}")
    start = tuple(start_point(space, point, f"start[{i}]") for i, point in enumerate(starts))
    space = dataclasses.replace(space, start=start)
    _probe(space)
    return space


def _fill_defaults(params: dict[str, Param], method: str, budget: Budget) -> dict[str, Param]:
    """Defaults that depend on the budget: annealing and capacity spread over the trial."""
    steps = budget.steps_per_trial
    derived = {"anneal_steps": steps} if method == "deft" else {}
    if method == "annealed_vae":
        derived["capacity_steps"] = max(1, steps // 2)
    domains = param_domains(method)
    for key, value in derived.items():
        if key not in params:
            params[key] = Param("fixed", domains[key][0].type, value=value)
    return params


# --- DEFT: where the stage betas come from ----------------------------------------------------


def _deft_betas(raw: dict, params: dict[str, Param], source: str, data_name: str) -> dict[str, Any]:
    chosen = [key for key in ("betas", "betas_from_ifp") if key in raw]
    free = [key for key in ("beta_first", "beta_pos") if key in raw]
    if "betas" in raw and "beta_last" in raw:
        free.append("beta_last")
    if len(chosen) > 1 or (chosen and free):
        both = [*chosen, *free][:2]
        raise ConfigError(
            f"params sets both {both[0]!r} and {both[1]!r}: give one source of "
            "stage betas (a fixed list, an IFP table, or beta_first/beta_pos)"
        )
    if "betas" in raw:
        return {"betas": _fixed_betas(raw["betas"], raw, params)}
    if "betas_from_ifp" in raw:
        return _ifp_betas(raw["betas_from_ifp"], params, source, data_name)
    return {}


def _fixed_betas(raw: Any, raw_params: dict, params: dict[str, Param]) -> tuple[float, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"params.betas must be a non-empty list of numbers, got {raw!r}")
    betas = tuple(param_domains("deft")["beta_first"][0].check(b, f"params.betas[{i}]")
                  for i, b in enumerate(raw))  # fmt: skip
    _check_decreasing(betas, "params.betas")
    stages = params["num_stages"]
    if "num_stages" in raw_params and not (stages.fixed and stages.value == len(betas)):
        raise ConfigError(
            f"params.betas has {len(betas)} stages but params.num_stages is "
            f"{stages.describe()}: the list fixes the stage count; drop num_stages"
        )
    if "annealed" in params["rule"].values():
        raise ConfigError(
            "params.betas is a list of per-stage loss betas, which the annealed rule does not "
            "use (it needs thresholds): set params.rule: fixed, or give beta_first/beta_pos/"
            "beta_last for the annealed thresholds"
        )
    params["num_stages"] = Param("fixed", "int", value=len(betas))
    return betas


def _ifp_betas(raw: Any, params: dict[str, Param], source: str, data_name: str) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = {"path": raw}
    if not isinstance(raw, dict) or "path" not in raw:
        raise ConfigError(
            f"params.betas_from_ifp must be a path or {{path, quantiles}}, got {raw!r}"
        )
    check_keys(raw, ("path", "quantiles"), "params.betas_from_ifp")
    quantiles = raw.get("quantiles", [0.25, 0.75])
    if (not isinstance(quantiles, list) or len(quantiles) != 2
            or not all(isinstance(q, (int, float)) for q in quantiles)
            or not 0 <= quantiles[0] <= quantiles[1] <= 1):  # fmt: skip
        raise ConfigError(
            f"params.betas_from_ifp.quantiles == {quantiles!r}, must be [low, high] "
            "with 0 <= low <= high <= 1"
        )
    path = Path(raw["path"]).expanduser()
    if not path.is_absolute() and source != "<dict>":
        path = Path(source).parent / path  # relative to the space file
    try:
        table = ifps_by_factor(read_ifp_table(path), dataset=data_name, source=str(path))
    except DataError as exc:
        raise ConfigError(f"betas_from_ifp: {exc}") from None
    candidates = beta_candidates(table, (quantiles[0], quantiles[1]))
    last = params["beta_last"]
    if not last.fixed:
        raise ConfigError(
            "params.beta_last must be a fixed value with betas_from_ifp "
            f"(the IFP table decides the other betas), got {last.describe()}"
        )
    kept = tuple(b for b in candidates if b > last.value)
    high = params["num_stages"].bounds[1]
    if params["num_stages"].bounds[0] < 2 or len(kept) < high - 1:
        raise ConfigError(
            f"params.betas_from_ifp: {path} gives {len(kept)} stage betas above beta_last "
            f"{list(kept)}, enough for 2..{len(kept) + 1} stages, but params.num_stages is "
            f"{params['num_stages'].describe()}: narrow num_stages to that range"
        )
    return {"ifp_betas": kept, "ifp_table": str(path)}


def _check_deft(params: dict[str, Param], extra: dict[str, Any]) -> None:
    first_high = params["beta_first"].bounds[1]
    if extra.get("betas"):
        first_high = extra["betas"][0]
    elif extra.get("ifp_betas"):
        first_high = extra["ifp_betas"][0]
    elif params["num_stages"].bounds[1] >= 2:
        low, last_high = params["beta_first"].bounds[0], params["beta_last"].bounds[1]
        if low <= last_high:
            raise ConfigError(
                f"params.beta_first reaches down to {low:g} but params.beta_last up to "
                f"{last_high:g}: betas must decrease, so keep beta_first above beta_last"
            )
    if "annealed" in params["rule"].values():
        beta_max = params["beta_max"].bounds[0]
        if first_high >= beta_max:
            raise ConfigError(
                f"the first stage beta reaches {first_high:g} but params.beta_max starts at "
                f"{beta_max:g}: under the annealed rule that stage would end at step 0; "
                "raise beta_max or lower the first beta"
            )


def _check_decreasing(betas: tuple[float, ...] | list[float], where: str) -> None:
    if any(a <= b for a, b in zip(betas, betas[1:])):
        raise ConfigError(
            f"{where} == {list(betas)} must strictly decrease (DEFT lowers the "
            "pressure stage by stage): sort them from high to low"
        )


# --- test-compiling a space on load ------------------------------------------------------------


class _ProbeTrial:
    """Stands in for an Optuna trial: every parameter at one end of its range, or overridden."""

    number = 0

    def __init__(self, end: int, overrides: dict[str, Any]) -> None:
        self.end, self.overrides = end, overrides
        self.params: dict[str, Any] = {}

    def _pick(self, name: str, values: list[Any]) -> Any:
        self.params[name] = self.overrides.get(name, values[self.end])
        return self.params[name]

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return self._pick(name, [low, high])

    def suggest_int(self, name: str, low: int, high: int, log: bool = False) -> int:
        return self._pick(name, [low, high])

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self._pick(name, [choices[0], choices[-1]])


def _probe(space: SearchSpace) -> None:
    """Build a run config at both ends of the space for every stage count, rule and start."""
    cases: list[tuple[str, dict[str, Any]]] = []
    if space.method == "deft":
        low, high = space.params["num_stages"].bounds
        for rule in space.params["rule"].values():
            for n in range(low, high + 1):
                cases.append((f"num_stages={n}, rule={rule!r}", {"num_stages": n, "rule": rule}))
    else:
        cases.append(("", {}))
    cases += [(f"start[{i}]", point) for i, point in enumerate(space.start)]
    fn = define_by_run(space)
    for label, overrides in cases:
        for end in (0, 1):
            trial = _ProbeTrial(end, overrides)
            constants = fn(trial) or {}
            params = {**trial.params, **constants}
            try:
                run_config_from_params(space, params, seed=0)
            except ConfigError as exc:
                where = f"{label} and " if label else ""
                raise ConfigError(
                    f"this space can produce an invalid run ({where}every other parameter at "
                    f"its {('low', 'high')[end]} end): {exc}"
                ) from None


def largest_run(space: SearchSpace) -> RunConfig:
    """The run config of the space's largest trial (every parameter at its high end: the most
    groups and latents), for the checks made before a search starts."""
    trial = _ProbeTrial(1, {})
    constants = define_by_run(space)(trial) or {}
    return run_config_from_params(space, {**trial.params, **constants}, seed=0)
