"""Search spaces whose stage betas come from an annealing-test (IFP) table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from deft_tune.errors import ConfigError
from deft_tune.search import (
    define_by_run,
    load_space,
    points_to_evaluate,
    run_config_from_params,
    space_from_dict,
)


def _space(**params) -> dict:
    return {"data": {"name": "dsprites_full"}, "budget": {"steps_per_trial": 1000,
            "eval_interval": 100}, "params": params}  # fmt: skip


def _write_ifp(path: Path, rows: dict[str, list[float]], drop: str | None = None,
               dataset: list[str] | None = None) -> Path:  # fmt: skip
    import pyarrow as pa
    import pyarrow.parquet as pq

    factor = [name for name, values in rows.items() for _ in values]
    ifp = [v for values in rows.values() for v in values]
    n = len(ifp)
    columns = {"factor": factor, "draw": list(range(n)), "seed": [0] * n, "ifp": ifp,
               "steps": [8000] * n, "final_kl": [1.0] * n}  # fmt: skip
    if drop:
        del columns[drop]
    if dataset:
        columns["dataset"] = dataset
    pq.write_table(pa.table(columns), path)
    return path


IFPS = {
    "pos": [60.0, 70.0, 80.0],  # quartiles 65 / 75, median 70
    "scale": [20.0, 30.0, 40.0],  # quartiles 25 / 35, median 30
    "shape": [2.0, 3.0, 4.0, float("nan")],  # quartiles 2.5 / 3.5; one run never froze
}


def test_ifp_candidates_sit_in_the_gaps_between_factors(tmp_path):
    from deft_tune.freezing.ifp_table import ifps_by_factor, read_ifp_table
    from deft_tune.search.space.ifp_betas import beta_candidates

    table = ifps_by_factor(read_ifp_table(_write_ifp(tmp_path / "ifp.parquet", IFPS)))
    assert sorted(table) == ["pos", "scale", "shape"] and len(table["shape"]) == 3
    # Separated: sqrt(65 * 35) = 47.697..., sqrt(25 * 3.5) = 9.3541...
    assert beta_candidates(table) == (47.7, 9.354)
    # Overlapping factors: the geometric middle of the medians, sqrt(50 * 30) = 38.729...
    overlap = {"a": np.array([10.0, 50.0, 90.0]), "b": np.array([20.0, 30.0, 40.0])}
    assert beta_candidates(overlap) == (38.73,)


def test_betas_from_ifp_table_are_categorical_and_decreasing(tmp_path):
    _write_ifp(tmp_path / "ifp.parquet", IFPS)
    path = tmp_path / "space.yaml"
    path.write_text("data: dsprites_full\nbudget: {steps_per_trial: 1000, eval_interval: 100}\n"
                    "params: {num_stages: {low: 2, high: 3}, betas_from_ifp: ifp.parquet}\n"
                    "start: [{betas: [47.7, 9.354, 1]}]\n")  # fmt: skip
    space = load_space(path)  # the table path is relative to the space file
    assert space.ifp_betas == (47.7, 9.354)
    assert points_to_evaluate(space) == [{"num_stages": 3}]  # 3 stages: a single choice
    fn = define_by_run(space)
    study = optuna.create_study()
    study.enqueue_trial({"num_stages": 2})
    trial = study.ask()
    constants = fn(trial) or {}
    assert trial.distributions["ifp/betas_n2"].choices == ("47.7", "9.354")
    config = run_config_from_params(space, {**trial.params, **constants}, seed=0)
    assert [s.beta for s in config.schedule.stages] in ([47.7, 1.0], [9.354, 1.0])
    fixed = {"num_stages": 3, "stage1/frac": 0.3, "stage2/frac": 0.3, "stage2/lr_scale": 0.1,
             "stage3/lr_scale": 0.1}  # fmt: skip
    constants = fn(optuna.trial.FixedTrial(fixed))
    assert constants["ifp/betas_n3"] == "47.7,9.354"
    params = {**fixed, **constants}
    config = run_config_from_params(space, params, seed=0)
    assert [s.beta for s in config.schedule.stages] == [47.7, 9.354, 1.0]


@pytest.mark.parametrize(
    ("drop", "stages", "match"),
    [
        ("seed", {"low": 2, "high": 3}, r"lacks column\(s\) \['seed'\]"),
        (None, {"low": 2, "high": 4}, "enough for 2..3 stages"),
        (None, {"low": 1, "high": 3}, "enough for 2..3 stages"),
    ],
)
def test_bad_ifp_tables_are_refused(tmp_path, drop, stages, match):
    table = _write_ifp(tmp_path / "ifp.parquet", IFPS, drop=drop)
    with pytest.raises(ConfigError, match=match):
        space_from_dict(_space(num_stages=stages, betas_from_ifp=str(table)))


def test_missing_or_non_parquet_ifp_table(tmp_path):
    with pytest.raises(ConfigError, match="no IFP table at .*: run `deft-tune ifp NAME --out"):
        space_from_dict(_space(betas_from_ifp=str(tmp_path / "none.parquet")))
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(ConfigError, match="not a readable Parquet file"):
        space_from_dict(_space(betas_from_ifp=str(junk)))


def test_a_table_of_several_data_sets_gives_the_spaces_rows(tmp_path):
    # "pos" and "scale" belong to dsprites_full; the "shape" rows to another data set.
    rows = {"pos": [60.0, 70.0, 80.0], "scale": [20.0, 30.0, 40.0], "shape": [2.0, 3.0, 4.0]}
    owners = ["dsprites_full"] * 6 + ["color_dsprites"] * 3
    folder = tmp_path / "ifp-out"
    folder.mkdir()
    _write_ifp(folder / "ifp.parquet", rows, dataset=owners)
    space = space_from_dict(_space(num_stages=2, betas_from_ifp=str(folder)))  # a folder is fine
    assert space.ifp_betas == (47.7,)  # only the pos/scale gap of dsprites_full
    other = {**_space(num_stages=2, betas_from_ifp=str(folder)), "data": "scream_dsprites"}
    with pytest.raises(ConfigError, match="run `deft-tune ifp scream_dsprites`"):
        space_from_dict(other)
