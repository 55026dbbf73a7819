"""refine.py: a narrowed space spans the top trials' values, widened and clipped."""

import math

import pytest

from deft_tune.results.refine import refine_space
from tests.results.test_report import Trial, deft_params


def test_refined_space_spans_the_top_trials_widened_and_clipped():
    space = {
        "name": "s",
        "budget": {"steps_per_trial": 1000},
        "params": {
            "beta_first": {"low": 4, "high": 40, "log": True},
            "stage_frac": {"low": 0.1, "high": 0.4},
            "num_stages": {"low": 2, "high": 4},
            "lr_scale": {"choices": [0.1, 1.0]},
            "lr": 0.001,
        },
        "start": [{"betas": [20, 1]}],
    }
    top = [
        Trial("a", {}, deft_params([10, 1], [1, 0.1], [200, "None"])),
        Trial("b", {}, deft_params([20, 1], [1, 0.1], [300, "None"])),
    ]
    refined = refine_space(space, top, widen=0.1)
    beta = refined["params"]["beta_first"]
    pad = 0.1 * math.log(2)
    assert beta["low"] == pytest.approx(math.exp(math.log(10) - pad))
    assert beta["high"] == pytest.approx(math.exp(math.log(20) + pad))
    assert refined["params"]["stage_frac"]["low"] == pytest.approx(0.19)
    assert refined["params"]["stage_frac"]["high"] == pytest.approx(0.31)
    assert refined["params"]["num_stages"] == 2  # both top trials had 2 stages
    assert refined["params"]["lr_scale"] == 0.1
    assert refined["params"]["lr"] == 0.001 and "start" not in refined
    assert refined["name"] == "s-refined"


def test_values_outside_the_recorded_ranges_narrow_inside_them():
    # A space recorded with another budget than its trials ran with (before the search logged
    # its space as run): stage fractions of 40-step trials read against 600 steps.
    space = {
        "name": "s",
        "data": {"name": "dsprites_full"},
        "budget": {"steps_per_trial": 600},
        "params": {"stage_frac": {"low": 0.3, "high": 0.5}, "beta_first": {"low": 4, "high": 8}},
    }
    top = [
        Trial("a", {}, deft_params([10, 1], [1, 0.1], [12, "None"])),
        Trial("b", {}, deft_params([20, 1], [1, 0.1], [16, "None"])),
    ]
    refined = refine_space(space, top)
    frac, beta = refined["params"]["stage_frac"], refined["params"]["beta_first"]
    assert 0.3 <= frac["low"] < frac["high"] <= 0.5  # was low 0.3 > high 0.0273
    assert 4 <= beta["low"] < beta["high"] <= 8
    from deft_tune.search.space import space_from_dict

    space_from_dict(refined)  # loadable, as export --space-out checks
