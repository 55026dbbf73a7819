"""The search-space file format: frozen dataclasses and the parser that validates them.

See docs/search_spaces.md for the reference. Parsing here is pure Python (no Ray, no Optuna) so
that a bad space is refused before a cluster is touched; every error names the field, the value
and the fix. The parts that need a trial (define-by-run, run configs) live in sampling.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deft_tune.config import EARLIER_MODES, MAX_STEPS, MAX_THREADS, OBJECTIVES, SWITCH_RULES
from deft_tune.config import _build as build_dataclass  # the run config's named-error builder
from deft_tune.errors import ConfigError
from deft_tune.report_keys import FIXED_KEYS, METRIC_KEYS, is_report_key, metric_key
from deft_tune.search.space.params import Domain, Param, parse_param
from deft_tune.training.aggregate import objective_key
from deft_tune.validation import check_keys, check_scalar, check_seed

__all__ = [
    "ASHAStopping",
    "Budget",
    "IFPStopping",
    "METHODS",
    "Objective",
    "SearchSpace",
    "StoppingConfig",
    "param_domains",
    "parse_stopping",
]

METHODS = OBJECTIVES  # deft and the three baselines

_POSITIVE: dict[str, Any] = {"low": 0.0, "open_low": True}


@dataclass(frozen=True)
class Objective:
    # A report key: "metrics/<key>" for a disentanglement metric, or an unsupervised report key.
    metric: str = "metrics/mig"
    mode: Literal["max", "min"] = "max"
    # Names for deft_tune.metrics.evaluate (fast setting during trials, standard at the end).
    metrics: tuple[str, ...] = ()
    # Over a trial's replicas (training.replicas seeds): what the search ranks, ASHA compares
    # and the best trial is chosen by.
    aggregate: Literal["mean", "mean_minus_std", "median", "min"] = "mean"

    @property
    def key(self) -> str:
        """The reported key the search optimises (``metrics/mig``, ``metrics/mig_min``...)."""
        return objective_key(self.metric, self.aggregate)


@dataclass(frozen=True)
class Budget:
    steps_per_trial: int = 4000
    num_trials: int = 20
    max_concurrent: int = 2
    eval_interval: int = 250
    seed: int = 0
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    # How Optuna samples: TPE (learns from earlier trials), or uniformly at random, which a
    # curve bank for `deft-tune replay` needs (a random order of its trials is a random search).
    sampler: Literal["tpe", "random"] = "tpe"


@dataclass(frozen=True)
class IFPStopping:
    enabled: bool = True
    # diffusion: info/diffusion above the threshold for `patience` reports in a row, judged only
    # after the grace part of the stage and once the stage gained at least `min_gain` nats
    # (a ratio of two tiny gains is noise). 1 (the default) switches the rule off: measured on
    # the encoders' own output, a run at lr_scale 0.1 diffuses 0.7-0.999 and scores with the
    # best (docs/search.md, "The diffusion rule"); the DEFT bank's sweep is to set it.
    diffusion_threshold: float = 1.0
    min_gain: float = 0.05
    patience: int = 2
    grace_fraction: float = 0.25  # of the current stage (train/stage_progress)
    grace_steps: int = 0  # and at least this many steps into the stage
    # no_capture: a stage ended without its group taking anything in, and no earlier group had
    # (an empty stage after a capturing one is not judged: docs/search.md). Capture: None trusts
    # the tracker's info/active_captured (and 0.1 nats of kl/group{i} after the stage); a number
    # (nats): the stage's largest info/active_gain, or the group's KL after it, must reach it.
    no_capture: bool = True
    capture_threshold: float | None = None
    # collapse: kl/total below collapse_kl nats for `patience` reports after this budget part.
    collapse_kl: float = 0.1
    collapse_grace_fraction: float = 0.25


@dataclass(frozen=True)
class ASHAStopping:
    enabled: bool = True
    grace_period: int = 2  # reports before a trial can be cut (converted to steps)
    reduction_factor: float = 3.0


@dataclass(frozen=True)
class StoppingConfig:
    ifp: IFPStopping = field(default_factory=IFPStopping)
    asha: ASHAStopping = field(default_factory=ASHAStopping)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space; build with load_space / space_from_dict."""

    name: str
    method: str  # run config objective.kind: deft, beta_vae, beta_tcvae, annealed_vae
    data: dict[str, Any]  # DataConfig fields {name, options}
    objective: Objective
    budget: Budget
    stopping: StoppingConfig
    params: dict[str, Param]  # every parameter of the method, defaults filled in
    base: dict[str, Any] = field(default_factory=dict)  # fixed run config fields
    betas: tuple[float, ...] | None = None  # a fixed list of stage betas
    ifp_betas: tuple[float, ...] | None = None  # candidate betas from an IFP table
    ifp_table: str | None = None
    start: tuple[dict[str, Any], ...] = ()  # starting points, flat suggest names
    source: str = "<dict>"


def param_domains(method: str) -> dict[str, tuple[Domain, Any]]:
    """Domain and default of every parameter of ``method``."""
    common: dict[str, tuple[Domain, Any]] = {
        "lr": (Domain("float", log=True, **_POSITIVE), 5e-4),
    }
    if method != "deft":
        common["num_latents"] = (Domain("int", low=1), 10)
    if method in ("beta_vae", "beta_tcvae"):
        return {**common, "beta": (Domain("float", log=True, **_POSITIVE), {"low": 1, "high": 16})}
    if method == "annealed_vae":
        return {
            **common,
            "capacity_max": (Domain("float", **_POSITIVE), {"low": 5, "high": 50}),
            "capacity_weight": (Domain("float", **_POSITIVE), 100.0),
            "capacity_steps": (Domain("int", low=1), None),  # None: half of steps_per_trial
        }
    fraction: dict[str, Any] = {"low": 0.0, "high": 1.0, "open_low": True, "open_high": True}
    return {
        **common,
        "rule": (Domain("str", choices=SWITCH_RULES), "fixed"),
        "num_stages": (Domain("int", low=1), {"low": 2, "high": 4}),
        "latents_per_group": (Domain("int", low=1), 2),
        "beta_first": (Domain("float", log=True, **_POSITIVE), {"low": 10, "high": 200}),
        "beta_last": (Domain("float", log=True, **_POSITIVE), 1.0),
        "beta_pos": (Domain("float", **fraction), {"low": 0.15, "high": 0.85}),
        "stage_frac": (Domain("float", **fraction), {"low": 0.1, "high": 0.4}),
        "earlier": (Domain("str", choices=EARLIER_MODES), "scale"),
        "lr_scale": (Domain("float", low=0.0, high=1.0), {"low": 0.01, "high": 1.0, "log": True}),
        "beta_max": (Domain("float", low=1.0), 150.0),
        "gamma": (Domain("float", **_POSITIVE), 20.0),
        "anneal_steps": (Domain("int", low=1), None),  # None: steps_per_trial
    }


# --- parsing --------------------------------------------------------------------------------

_TOP_KEYS = ("name", "method", "data", "objective", "budget", "stopping", "base", "params",
             "start")  # fmt: skip
_BASE_SECTIONS = {  # run config fields a space may fix; the rest is decided by the search
    "model": ("encoder_width", "decoder_width", "loss"),
    "training": (
        "batch_size",
        "precision",
        "device",
        "checkpoint_interval",
        "replicas",
        "memory_format",
        "engine",
    ),
    "evaluation": ("probe_size",),
}


def parse_top(raw: Any, source: str) -> dict[str, Any]:
    """The plain sections of a space (everything but params and start), validated."""
    if raw is None:
        raise ConfigError("the search space is empty: it needs at least data: {name: ...}")
    if not isinstance(raw, dict):
        raise ConfigError(f"a search space must be a mapping of sections, got {type(raw).__name__}")
    check_keys(raw, _TOP_KEYS, "")
    method = raw.get("method", "deft")
    if method not in METHODS:
        raise ConfigError(f"method == {method!r}, must be one of {list(METHODS)}")
    name = raw.get("name", Path(source).stem if source != "<dict>" else "deft-search")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"name == {name!r}: use letters, digits, '_', '-' or '.'")
    return {
        "name": name,
        "method": method,
        "data": _parse_data(raw.get("data")),
        "objective": _parse_objective(raw.get("objective", {})),
        "budget": _parse_budget(raw.get("budget", {})),
        "stopping": parse_stopping(raw.get("stopping", {})),
        "base": _parse_base(raw.get("base", {})),
    }


def _parse_data(raw: Any) -> dict[str, Any]:
    from deft_tune.data import names

    if raw is None:
        raise ConfigError("data is missing: add data: {name: dsprites_full}")
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"data must be a mapping {{name, options}}, got {raw!r}")
    check_keys(raw, ("name", "options"), "data")
    if raw.get("name") not in names():
        raise ConfigError(f"data.name == {raw.get('name')!r}, must be one of {names()}")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"data.options must be a mapping, got {options!r}")
    return {"name": raw["name"], "options": dict(options)}


def _parse_objective(raw: Any) -> Objective:
    obj = build_dataclass(Objective, raw, "objective")
    metric = obj.metric
    metrics = tuple(dict.fromkeys(obj.metrics))
    for i, name in enumerate(metrics):
        if name not in METRIC_KEYS:
            raise ConfigError(
                f"objective.metrics[{i}] == {name!r}, must be one of {list(METRIC_KEYS)}"
            )
    if metric.startswith(metric_key("")):
        key = metric.removeprefix(metric_key(""))
        family = key.split("/")[0]
        if key not in METRIC_KEYS.get(family, ()):
            known = [metric_key(k) for keys in METRIC_KEYS.values() for k in keys]
            raise ConfigError(
                f"objective.metric == {metric!r}, must be one of {known} "
                f"or a report key such as 'train/recon'"
            )
        if family not in metrics:
            metrics = (family, *metrics)  # the objective's metric must be computed
    elif not is_report_key(metric):
        raise ConfigError(
            f"objective.metric == {metric!r} is not a metric or report key: use "
            f"'metrics/<name>' (e.g. 'metrics/mig') or one of {list(FIXED_KEYS)}"
        )
    return Objective(metric=metric, mode=obj.mode, metrics=metrics, aggregate=obj.aggregate)


# Tune and Optuna keep every trial in the driver's memory (tens of KiB each) and the live table
# lists them: 100,000 trials is GiBs, and weeks of a real search.
MAX_TRIALS = 100_000

RAY_RESOLUTION = 0.0001  # the finest share of a resource Ray grants (ray_constants)


def check_trial_share(value: Any, name: str, *, zero_ok: bool, most: float | None = None) -> float:
    """A trial's CPUs or GPUs as Ray takes them: (0 or) at least Ray's finest share, at most
    ``most``."""
    share = check_scalar(
        value,
        name,
        min_val=0,
        max_val=most,
        include_boundaries="both" if zero_ok else "right",
    )
    if 0 < share < RAY_RESOLUTION:
        floor = f"0 or >= {RAY_RESOLUTION}" if zero_ok else f">= {RAY_RESOLUTION}"
        raise ConfigError(
            f"{name} == {share:g}, must be {floor} (the finest share of a resource Ray grants)"
        )
    return share


def _parse_budget(raw: Any) -> Budget:
    budget = build_dataclass(Budget, raw, "budget")
    most = {"steps_per_trial": MAX_STEPS, "num_trials": MAX_TRIALS, "max_concurrent": MAX_TRIALS}
    for name in ("steps_per_trial", "num_trials", "max_concurrent", "eval_interval"):
        bound = most.get(name, MAX_STEPS)
        check_scalar(getattr(budget, name), f"budget.{name}", int, min_val=1, max_val=bound)
    check_seed(budget.seed, "budget.seed")
    # A trial trains with as many torch threads as it has CPUs: training.threads' bound.
    check_trial_share(
        budget.cpus_per_trial, "budget.cpus_per_trial", zero_ok=False, most=MAX_THREADS
    )
    check_trial_share(budget.gpus_per_trial, "budget.gpus_per_trial", zero_ok=True)
    if budget.eval_interval > budget.steps_per_trial:
        raise ConfigError(
            f"budget.eval_interval == {budget.eval_interval} > budget.steps_per_trial == "
            f"{budget.steps_per_trial}: a trial would report only once; lower eval_interval"
        )
    return budget


def parse_stopping(raw: Any) -> StoppingConfig:
    """The ``stopping`` section, validated (`deft-tune replay --sweep` checks its values here)."""
    stop = build_dataclass(StoppingConfig, raw, "stopping")
    ifp, asha = stop.ifp, stop.asha
    for name in ("diffusion_threshold", "grace_fraction", "collapse_grace_fraction"):
        check_scalar(getattr(ifp, name), f"stopping.ifp.{name}", min_val=0, max_val=1)
    check_scalar(ifp.patience, "stopping.ifp.patience", int, min_val=1)
    for name in ("min_gain", "collapse_kl", "capture_threshold"):
        if getattr(ifp, name) is not None:
            check_scalar(getattr(ifp, name), f"stopping.ifp.{name}", min_val=0)
    check_scalar(ifp.grace_steps, "stopping.ifp.grace_steps", int, min_val=0)
    check_scalar(asha.grace_period, "stopping.asha.grace_period", int, min_val=1)
    check_scalar(
        asha.reduction_factor,
        "stopping.asha.reduction_factor",
        min_val=1,
        include_boundaries="neither",
    )
    return stop


def _parse_base(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"base must be a mapping of run config sections, got {raw!r}")
    check_keys(raw, tuple(_BASE_SECTIONS), "base")
    for section, fields in _BASE_SECTIONS.items():
        values = raw.get(section) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"base.{section} must be a mapping, got {values!r}")
        for key in values:
            if key not in fields:
                raise ConfigError(
                    f"base.{section}.{key} cannot be fixed in a search space: "
                    f"{_why_not_base(section, key)}; fixable here: {', '.join(fields)}"
                )
    return {section: dict(raw[section] or {}) for section in raw}


def _why_not_base(section: str, key: str) -> str:
    owners = {
        ("training", "steps"): "set budget.steps_per_trial",
        ("training", "seed"): "trial seeds derive from budget.seed",
        ("training", "threads"): "a trial runs budget.cpus_per_trial threads",
        ("training", "lr"): "set params.lr",
        ("evaluation", "interval"): "set budget.eval_interval",
        ("evaluation", "metrics"): "set objective.metrics",
        ("model", "groups"): "the group count is params.num_stages",
        ("model", "latents_per_group"): "set params.latents_per_group (or num_latents)",
    }
    return owners.get((section, key), "unknown field")


def parse_params(raw: Any, method: str) -> dict[str, Param]:
    """Every parameter of ``method``, from ``raw`` or its default; special keys excluded."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params must be a mapping of parameter: value/range, got {raw!r}")
    domains = param_domains(method)
    special = ("betas", "betas_from_ifp") if method == "deft" else ()
    check_keys(raw, (*domains, *special), "params")
    params = {}
    for name, (domain, default) in domains.items():
        value = raw.get(name, default)
        if value is not None:
            params[name] = parse_param(value, domain, f"params.{name}")
    return params
