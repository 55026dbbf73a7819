"""The validation vocabulary: one line naming field, value and rule; non-finite refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deft_tune.errors import ConfigError
from deft_tune.validation import (
    MAX_SEED,
    check_choice,
    check_keys,
    check_random_state,
    check_scalar,
    check_seed,
)


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (0, {"min_val": 1}, "x == 0.0, must be >= 1"),
        (0.0, {"min_val": 0, "include_boundaries": "neither"}, "x == 0.0, must be > 0"),
        (1.5, {"min_val": 0, "max_val": 1}, "x == 1.5, must lie in [0, 1]"),
        (
            1.0,
            {"min_val": 0, "max_val": 1, "include_boundaries": "left"},
            "x == 1.0, must lie in [0, 1)",
        ),
        (math.nan, {"min_val": 0}, "x == nan, must be a finite number"),
        (math.inf, {}, "x == inf, must be a finite number"),
        (True, {}, "x == True, must be a number"),
        ("3", {}, "x == '3', must be a number"),
    ],
)
def test_check_scalar_refuses_with_one_line(value, kwargs, message):
    with pytest.raises(ConfigError) as caught:
        check_scalar(value, "x", **kwargs)
    assert str(caught.value) == message


def test_check_scalar_converts_to_the_asked_type():
    assert check_scalar(3, "x") == 3.0 and isinstance(check_scalar(3, "x"), float)
    assert check_scalar(4.0, "n", int) == 4 and isinstance(check_scalar(4.0, "n", int), int)
    assert check_scalar(np.int64(2), "n", int, min_val=1) == 2
    with pytest.raises(ConfigError, match="n == 2.5, must be a whole number"):
        check_scalar(2.5, "n", int)
    with pytest.raises(ConfigError, match="must be >= 1: the hint"):
        check_scalar(0, "n", int, min_val=1, hint="the hint")


def test_check_choice_and_keys_suggest_the_closest_name():
    assert check_choice("fixed", "rule", ("fixed", "annealed")) == "fixed"
    with pytest.raises(ConfigError, match=r"rule == 'fixd', must be one of .*did you mean 'fixed'"):
        check_choice("fixd", "rule", ("fixed", "annealed"))
    check_keys({"beta": 1}, ("beta", "steps"), "stages[0]")
    with pytest.raises(ConfigError, match="unknown key 'stages.0.stpes': did you mean 'steps'"):
        check_keys({"stpes": 1}, ("beta", "steps"), "stages.0")


def test_check_random_state_turns_seeds_into_one_generator():
    rng = np.random.default_rng(1)
    assert check_random_state(rng) is rng
    assert check_random_state(5).integers(1000) == np.random.default_rng(5).integers(1000)
    with pytest.raises(TypeError, match="seed must be an int"):
        check_random_state("5")
    with pytest.raises(TypeError):
        check_random_state(True)


def test_seeds_are_whole_numbers_up_to_the_largest_every_generator_takes():
    assert check_seed(0, "seed") == 0 and check_seed(MAX_SEED, "seed") == 2**63 - 1
    assert check_seed(7.0, "seed") == 7
    for bad, message in ((-1, "must lie in"), (2**63, "must lie in"), (1.5, "whole number"),
                         (math.nan, "finite"), ("7", "an integer")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            check_seed(bad, "seed")
