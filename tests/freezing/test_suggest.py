"""Schedule suggestion on IFP tables whose clusters are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deft_tune.config import RunConfig, load_config
from deft_tune.errors import ConfigError, DataError
from deft_tune.freezing.suggest import suggest_schedule, summarize

IFPS = {
    "pos_x": [40.0, 45.0, 50.0],
    "pos_y": [42.0, 47.0, 52.0],
    "scale": [15.0, 18.0, 20.0],
    "shape": [4.0, 5.0, 6.0],
    "orientation": [3.0, 4.5, 5.5],
    "colour": [math.nan, math.nan, math.nan],
}


def rows(ifps=IFPS, dataset="dsprites_full"):
    return [{"dataset": dataset, "factor": f, "ifp": v} for f, vs in ifps.items() for v in vs]


def test_summaries_by_falling_median_with_quantile_intervals():
    factors, never = summarize(rows())
    assert [f.factor for f in factors] == ["pos_y", "pos_x", "scale", "shape", "orientation"]
    assert never == ["colour"]
    pos_x = factors[1]
    # numpy's linear quantiles of [40, 45, 50]: 10% -> 41, 90% -> 49.
    assert (pos_x.median, pos_x.low, pos_x.high, pos_x.frozen, pos_x.runs) == (45, 41, 49, 3, 3)


def test_betas_decrease_and_lie_between_the_clusters_they_name():
    s = suggest_schedule(rows())
    assert [c.factors for c in s.clusters] == [
        ("pos_y", "pos_x"),
        ("scale",),
        ("shape", "orientation"),
    ]
    assert all(a > b for a, b in zip(s.stage_betas, s.stage_betas[1:]))
    for beta, upper, lower in zip(s.stage_betas, s.clusters, s.clusters[1:]):
        assert lower.high < beta < upper.low
    # Hand-computed: pos low 41, scale high 19.6, scale low 15.6, shape high 5.8.
    assert s.stage_betas == pytest.approx((math.sqrt(41 * 19.6), math.sqrt(15.6 * 5.8), 1.0))
    assert s.never_frozen == ("colour",)


def test_evidence_names_stages_and_overlaps():
    text = "\n".join(suggest_schedule(rows()).evidence())
    assert "Stage 0: beta 28.3 -> expected to capture pos_y, pos_x" in text
    assert "Stage 2: beta 1 -> expected to capture shape, orientation, colour" in text
    assert "Overlap: pos_y, pos_x" in text and "Overlap: shape, orientation" in text
    assert "colour: never froze" in text


def test_run_config_is_a_valid_deft_config(tmp_path):
    from deft_tune.config import dump_config

    config = suggest_schedule(rows()).run_config(steps=3000, lr_scale=0.2)
    assert isinstance(config, RunConfig) and config.model.groups == 3
    assert [s.lr_scale for s in config.schedule.stages] == [1.0, 0.2, 0.2]
    assert config.stage_steps() == (1000, 1000, 1000)
    loaded = load_config(dump_config(config, tmp_path / "s.yaml", header="evidence"))
    assert loaded == config


def test_separated_factors_each_get_a_stage():
    s = suggest_schedule(rows({"a": [60.0, 70.0], "b": [10.0, 12.0], "c": [2.0, 3.0]}))
    assert [c.factors for c in s.clusters] == [("a",), ("b",), ("c",)]
    assert len(s.stage_betas) == 3 and s.stage_betas[-1] == 1.0
    assert "No overlap" in "\n".join(s.evidence())


def test_a_wide_factor_with_a_low_median_bridges_the_clusters_it_reaches():
    # c's median is lowest but its interval reaches up into a's: a, b and c cannot be split.
    ifps = {
        "a": [60.0, 70.0],
        "b": [10.0, 12.0],
        "c": [2.0, 2.0, 2.0, 2.0, 2.0, 65.0],
        "d": [1.2, 1.3],
    }
    s = suggest_schedule(rows(ifps), quantiles=(0.0, 1.0))
    assert [c.factors for c in s.clusters] == [("a", "b", "c"), ("d",)]
    assert s.clusters[1].high < s.stage_betas[0] < s.clusters[0].low


def test_a_gap_at_or_below_the_final_beta_merges_the_last_clusters():
    s = suggest_schedule(rows({"a": [30.0, 31.0], "b": [1.0, 1.0]}), final_beta=6.0)
    assert [c.factors for c in s.clusters] == [("a", "b")]
    assert s.stage_betas == (6.0,)


def test_nothing_froze_gives_one_stage():
    s = suggest_schedule(rows({"a": [np.nan], "b": [np.nan]}))
    assert s.stage_betas == (1.0,) and s.never_frozen == ("a", "b")
    assert s.run_config().model.groups == 1


def test_bad_input():
    with pytest.raises(DataError, match="no runs"):
        suggest_schedule([])
    with pytest.raises(ConfigError, match="min_ratio"):
        suggest_schedule(rows(), min_ratio=0.5)
