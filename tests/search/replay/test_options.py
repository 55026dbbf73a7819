"""Parsing `deft-tune replay`'s rules and sweep (no MLflow, no Ray)."""

from __future__ import annotations

import pytest

from deft_tune.errors import ConfigError
from deft_tune.search.replay.options import parse_rules, parse_sweep


def test_rules_keep_their_order_and_drop_repeats():
    assert parse_rules(" asha, none,asha ") == ("asha", "none")
    with pytest.raises(ConfigError, match="did you mean 'ifp\\+asha'"):
        parse_rules("ifp+ash")


def test_sweep_values_are_yaml_scalars_checked_by_the_schema():
    sweep = parse_sweep("stopping.ifp.capture_threshold=null,0.05,0.2")
    assert sweep.field == "capture_threshold" and sweep.values == (None, 0.05, 0.2)
    assert sweep.text == "stopping.ifp.capture_threshold=null,0.05,0.2"
    assert parse_sweep("stopping.ifp.no_capture=true,false").values == (True, False)
    with pytest.raises(ConfigError, match="gives no values"):
        parse_sweep("stopping.ifp.patience=")
    with pytest.raises(ConfigError, match="--sweep field == 'enabled'"):
        parse_sweep("stopping.ifp.enabled=true,false")  # that is what --rules compares
