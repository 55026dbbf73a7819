"""fANOVA importance over trials whose objective depends on one sampled parameter only: that
parameter explains nearly all of it, the others nearly nothing; the command writes its table,
figure and docs block from a bank file."""

from __future__ import annotations

import dataclasses
import math

import optuna
import pytest
import yaml

from deft_tune.config import flatten
from deft_tune.errors import ConfigError
from deft_tune.search.importance import importances, trial_values
from deft_tune.search.space import define_by_run, load_space, run_config_from_params
from tests import REPO

SPACE = REPO / "search_spaces" / "bank_dsprites.yaml"


def sampled_trials(count: int, objective) -> list[tuple[dict[str, str], float]]:
    """Trials drawn at random from the DEFT bank's space, as their run config params (MLflow's
    text values), each scored by ``objective`` of its values as read back from them."""
    space = load_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    sample = define_by_run(space)
    trials = []
    for _ in range(count):
        trial = study.ask()
        constants = sample(trial) or {}
        config = run_config_from_params(space, {**trial.params, **constants}, seed=0)
        params = {k: str(v) for k, v in flatten(config.to_dict()).items()}
        trials.append((params, objective(trial_values(params, 2000))))
    return trials


def raw_space() -> dict:
    return yaml.safe_load(SPACE.read_text())


def test_the_one_parameter_the_objective_depends_on_explains_it():
    trials = sampled_trials(40, lambda p: math.log(p["beta_first"]))
    result = importances(raw_space(), trials, "metrics/mig", resamples=20, seed=0)
    top = result.ranked[0]
    assert top.param == "beta_first" and top.value > 0.8 and top.low > 0.5
    assert all(imp.value < 0.1 for imp in result.ranked[1:])
    assert {"lr_scale", "gamma"} <= set(result.left_out)  # conditional: not in every trial
    assert importances(raw_space(), trials, "m", resamples=20, seed=0) == dataclasses.replace(
        result, objective="m"
    )  # the same seed, the same numbers


def test_per_stage_values_enter_as_their_mean():
    ((params, _),) = sampled_trials(1, lambda p: 0.0)
    values = trial_values(params, 2000)
    stages = int(values["num_stages"])
    fractions = [float(params[f"schedule.stages.{i}.steps"]) / 2000 for i in range(stages - 1)]
    if values["rule"] == "fixed":
        assert values["stage_frac"] == pytest.approx(sum(fractions) / len(fractions))
    assert values["beta_first"] == float(params["schedule.stages.0.beta"])


def test_too_few_trials_or_nothing_varying_is_one_line():
    trials = sampled_trials(3, lambda p: 1.0)
    with pytest.raises(ConfigError, match="at least 4 trials"):
        importances(raw_space(), trials, "metrics/mig")
