"""Search spaces: loading and validation, the define-by-run space, run configs, starting points."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys

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
from deft_tune.search.space.sampling import (
    TRIAL_NUMBER,
    betas_from_positions,
    positions_from_betas,
    stage_lengths,
    trial_seed,
)
from tests import REPO

SPACES = REPO / "search_spaces"
SHIPPED = sorted(SPACES.glob("*.yaml"))

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space(**params) -> dict:
    return {"data": {"name": "dsprites_full"}, "budget": {"steps_per_trial": 1000,
            "eval_interval": 100}, "params": params}  # fmt: skip


def _ask(study: optuna.Study, fn) -> dict:
    trial = study.ask()
    constants = fn(trial) or {}
    return {**trial.params, **constants}


def _nested(flat: dict) -> dict:
    """What OptunaSearch delivers: "stage1/beta" un-flattened to {"stage1": {"beta": ...}}."""
    out: dict = {}
    for key, value in flat.items():
        *path, leaf = key.split("/")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


# --- shipped spaces ---------------------------------------------------------------------------


def test_all_expected_spaces_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert {
        "quick",
        "dsprites_full",
        "color_dsprites",
        "scream_dsprites",
        "smallnorb",
        "correlated_dsprites",
        "beta_vae",
        "beta_tcvae",
        "annealed_vae",
        "bank_dsprites",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_space_loads_and_compiles(path):
    space = load_space(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for point in points_to_evaluate(space):
        study.enqueue_trial(point)
    fn = define_by_run(space)
    for seed in range(6):
        config = run_config_from_params(space, _ask(study, fn), seed=seed)
        assert config.training.steps == space.budget.steps_per_trial
        assert config.training.seed == seed
        assert config.evaluation.interval == space.budget.eval_interval
        assert config.data.name == space.data["name"]
        if space.method == "deft":
            betas = [s.beta for s in config.schedule.stages]
            if config.schedule.rule == "annealed":  # thresholds; the last stage has none
                assert betas[-1] is None
                betas = betas[:-1]
            assert all(a > b for a, b in zip(betas, betas[1:]))
            if config.schedule.rule == "fixed":
                assert sum(config.stage_steps()) == space.budget.steps_per_trial
        else:
            assert config.model.groups == 1 and not config.schedule.stages


def test_quick_space_is_small():
    space = load_space(SPACES / "quick.yaml")
    assert space.data["name"] == "dsprites_full"
    assert space.budget.steps_per_trial <= 600 and space.budget.num_trials <= 6
    assert space.objective.metrics == ("mig",)


def test_the_bank_space_records_a_replayable_bank():
    # docs/search.md, "Replaying stopping rules": every trial run to its end with 3 seeds,
    # sampled independently of the others, both ways of treating earlier groups.
    space = load_space(SPACES / "bank_dsprites.yaml")
    assert not space.stopping.ifp.enabled and not space.stopping.asha.enabled
    assert space.budget.sampler == "random" and not space.start
    assert space.budget.num_trials >= 16 and space.base["training"]["replicas"] == 3
    assert set(space.params["earlier"].values()) == {"scale", "freeze"}
    assert space.data["name"] == "dsprites_full"


def test_baselines_share_the_dsprites_budget():
    deft = load_space(SPACES / "dsprites_full.yaml")
    for name in ("beta_vae", "beta_tcvae", "annealed_vae"):
        base = load_space(SPACES / f"{name}.yaml")
        assert base.method == name
        assert (base.budget, base.objective, base.data) == (deft.budget, deft.objective, deft.data)


def test_authors_starting_point_reproduces_their_schedule():
    space = load_space(SPACES / "dsprites_full.yaml")
    study = optuna.create_study()
    study.enqueue_trial(points_to_evaluate(space)[0])
    params = _ask(study, define_by_run(space))
    config = run_config_from_params(space, _nested(params), seed=0)
    stages = config.schedule.stages
    assert [s.beta for s in stages] == pytest.approx([70, 30, 12, 1], rel=1e-12)
    assert config.stage_steps() == (5000, 5000, 5000, 5000)
    assert [s.lr_scale for s in stages] == [1.0, 0.1, 0.1, 0.1]
    assert (config.model.groups, config.model.latents_per_group) == (4, 2)
    assert config.training.lr == 5e-4 and config.schedule.rule == "fixed"


def test_authors_annealed_freeze_rule_is_the_second_starting_point():
    space = load_space(SPACES / "dsprites_full.yaml")
    study = optuna.create_study()
    study.enqueue_trial(points_to_evaluate(space)[1])
    config = run_config_from_params(space, _nested(_ask(study, define_by_run(space))), seed=0)
    schedule = config.schedule
    assert schedule.rule == "annealed" and config.model.groups == 5
    assert [s.beta for s in schedule.stages] == pytest.approx([70, 30, 15, 1, None])
    assert {s.earlier for s in schedule.stages} == {"freeze"}
    assert (schedule.beta_max, schedule.gamma) == (150, 20)


def test_both_earlier_modes_are_sampled_and_freeze_samples_no_lr_scale():
    space = space_from_dict(_space(num_stages=3, earlier={"choices": ["scale", "freeze"]},
                                   rule="fixed"))  # fmt: skip
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    fn = define_by_run(space)
    seen = set()
    for _ in range(12):
        params = _ask(study, fn)
        config = run_config_from_params(space, params, seed=0)
        mode = params["earlier"]
        seen.add(mode)
        assert {s.earlier for s in config.schedule.stages} == {mode}
        has_scales = any(key.endswith("/lr_scale") for key in params)
        assert has_scales == (mode == "scale")
        if mode == "freeze":
            assert [s.lr_scale for s in config.schedule.stages] == [1.0, 1.0, 1.0]
    assert seen == {"scale", "freeze"}


def test_annealed_trials_sample_thresholds_and_leave_the_last_stage_without_one():
    space = space_from_dict(_space(rule="annealed", num_stages=4, beta_first=60, beta_last=2,
                                   beta_pos=0.5, beta_max=150, gamma=20, lr_scale=0.1,
                                   lr=1e-3, latents_per_group=2))  # fmt: skip
    config = run_config_from_params(space, {}, seed=0)
    # three thresholds: 60, then halfway between 60 and 2 in log (sqrt(120)), then 2.
    betas = [s.beta for s in config.schedule.stages]
    assert betas[:3] == pytest.approx([60, math.sqrt(120), 2]) and betas[3] is None


def test_a_fixed_betas_list_is_refused_with_the_annealed_rule():
    with pytest.raises(ConfigError, match="params.betas is a list of per-stage loss betas"):
        space_from_dict(_space(betas=[20, 5, 1], rule={"choices": ["fixed", "annealed"]}))


def test_start_points_with_lr_scales_need_earlier_scale():
    raw = {**_space(earlier={"choices": ["scale", "freeze"]}),
           "start": [{"betas": [20, 5, 1], "earlier": "freeze", "lr_scales": 0.1}]}  # fmt: skip
    with pytest.raises(ConfigError, match=r"start\[0\].lr_scales is given but earlier is"):
        space_from_dict(raw)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_tunes_optuna_searcher_takes_the_space_and_its_starting_point(tmp_path):
    from ray.tune.search.optuna import OptunaSearch

    space = load_space(SPACES / "dsprites_full.yaml")
    sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, group=True)
    searcher = OptunaSearch(
        space=define_by_run(space),
        metric=space.objective.metric,
        mode=space.objective.mode,
        points_to_evaluate=points_to_evaluate(space),
        sampler=sampler,
    )
    first = searcher.suggest("t0")
    assert first["stage1"] == {"beta": 70.0, "frac": 0.25}  # un-flattened by Tune
    config = run_config_from_params(space, first, seed=0)
    assert [s.beta for s in config.schedule.stages] == pytest.approx([70, 30, 12, 1])
    searcher.on_trial_complete("t0", {"metrics/mig": 0.2})
    for i in range(1, 4):
        run_config_from_params(space, searcher.suggest(f"t{i}"), seed=i)
        searcher.on_trial_complete(f"t{i}", {"metrics/mig": 0.1})
    searcher.save(str(tmp_path / "searcher.pkl"))  # Tune pickles it for --resume


# --- the define-by-run space -----------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("rule", ["fixed", "annealed"])
def test_define_by_run_has_the_right_stage_parameters_for_every_count(rule):
    space = space_from_dict(_space(num_stages={"low": 1, "high": 6},
                                   rule={"choices": ["fixed", "annealed"]},
                                   beta_first={"low": 10, "high": 100}))  # fmt: skip
    fn = define_by_run(space)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, multivariate=True,
                                                                   group=True))  # fmt: skip
    for n in range(1, 7):
        study.enqueue_trial({"num_stages": n, "rule": rule})
        params = _ask(study, fn)

        def count(suffix, params=params):
            return sum(1 for key in params if key.startswith("stage") and key.endswith(suffix))

        # fixed: n loss betas; annealed: n - 1 thresholds (the last stage has none)
        betas = n if rule == "fixed" else n - 1
        assert params["num_stages"] == n and params["rule"] == rule
        assert ("stage1/beta" in params) == (betas >= 1)
        assert count("/beta_pos") == max(betas - 2, 0)
        assert count("/lr_scale") == n - 1
        assert count("/frac") == (n - 1 if rule == "fixed" else 0)
        assert ("beta_last" in params) == (betas >= 2)
        assert ("gamma" in params) == (rule == "annealed")
        config = run_config_from_params(space, params, seed=0)
        assert config.model.groups == len(config.schedule.stages) == n


def test_fixed_values_come_back_as_constants():
    space = space_from_dict(_space(num_stages=3, lr=1e-3, lr_scale=0.1))
    trial = optuna.create_study().ask()
    constants = define_by_run(space)(trial)
    assert constants["num_stages"] == 3 and constants["lr"] == 1e-3
    assert constants["stage2/lr_scale"] == constants["stage3/lr_scale"] == 0.1
    assert "num_stages" not in trial.params and "stage2/beta_pos" in trial.params


def test_trials_carry_their_optuna_number_and_seeds_derive_from_it():
    # The number is the trial's ordinal in the search (not a parameter TPE models), so the
    # same search seed gives the same trial seeds whatever ids Tune draws.
    space = space_from_dict(_space(num_stages=3))
    study = optuna.create_study()
    fn = define_by_run(space)
    numbers = [fn(study.ask())[TRIAL_NUMBER] for _ in range(3)]
    assert numbers == [0, 1, 2]
    assert all(TRIAL_NUMBER not in t.params for t in study.trials)
    seeds = [trial_seed(0, n) for n in numbers]
    assert seeds == [trial_seed(0, n) for n in range(3)] and len(set(seeds)) == 3
    assert trial_seed(1, 0) != trial_seed(0, 0) and 0 <= min(seeds) <= max(seeds) < 2**31
    # sha256(b"0/0") begins 5513e3ea (from `sha256sum`): its first 31 bits.
    assert trial_seed(0, 0) == 0x5513E3EA & 0x7FFFFFFF


@pytest.mark.parametrize(("cpus", "threads"), [(0.5, 1), (1, 1), (2.5, 2), (4, 4)])
def test_a_trial_run_config_records_its_threads_from_its_cpus(cpus, threads):
    raw = _space(num_stages=2)
    raw["budget"]["cpus_per_trial"] = cpus
    space = space_from_dict(raw)
    params = _ask(optuna.create_study(), define_by_run(space))
    assert run_config_from_params(space, params, seed=0).training.threads == threads
    with pytest.raises(ConfigError, match="budget.cpus_per_trial"):
        space_from_dict({**raw, "base": {"training": {"threads": 2}}})


def test_define_by_run_survives_pickling():
    space = load_space(SPACES / "quick.yaml")
    fn = pickle.loads(pickle.dumps(define_by_run(space)))
    params = optuna.trial.FixedTrial(points_to_evaluate(space)[0])
    assert fn(params)["beta_last"] == 1.0


def test_many_random_trials_give_valid_decreasing_schedules():
    space = space_from_dict(_space(num_stages={"low": 2, "high": 6},
                                   stage_frac={"low": 0.05, "high": 0.5}))  # fmt: skip
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    fn = define_by_run(space)
    for _ in range(100):
        config = run_config_from_params(space, _ask(study, fn), seed=0)
        betas = [s.beta for s in config.schedule.stages]
        assert all(a > b for a, b in zip(betas, betas[1:])) and betas[-1] == 1.0
        steps = config.stage_steps()
        assert sum(steps) == 1000 and min(steps) >= 1
        assert steps[-1] >= 0.05 * 1000  # the last stage keeps at least stage_frac's low end


def test_nested_and_flat_params_give_the_same_config():
    space = load_space(SPACES / "dsprites_full.yaml")
    params = _ask(optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5)),
                  define_by_run(space))  # fmt: skip
    flat = run_config_from_params(space, params, seed=2)
    nested = run_config_from_params(space, {**_nested(params), "extra": 1}, seed=2)
    assert flat == nested


def test_missing_sampled_parameter_is_named():
    space = load_space(SPACES / "quick.yaml")
    with pytest.raises(ConfigError, match="stage1/beta"):
        run_config_from_params(space, {"num_stages": 2}, seed=0)


def test_baseline_parameters_reach_the_objective():
    space = space_from_dict({**_space(beta={"low": 2, "high": 8}), "method": "beta_tcvae"})
    config = run_config_from_params(space, {"beta": 5.0, "lr": 1e-3}, seed=1)
    assert config.objective.kind == "beta_tcvae" and config.objective.beta == 5.0
    assert (config.model.groups, config.model.latents_per_group) == (1, 10)
    annealed = space_from_dict({**_space(), "method": "annealed_vae"})
    config = run_config_from_params(annealed, {"capacity_max": 20.0}, seed=1)
    assert config.objective.capacity_steps == 500  # half the budget by default
    assert config.objective.capacity_max == 20.0


# --- exact values of the building blocks -----------------------------------------------------


def test_betas_from_positions_exact():
    assert betas_from_positions(100.0, [0.5], 1.0) == pytest.approx([100.0, 10.0, 1.0])
    # u = 0.5 twice: 10^4 -> 10^2 -> 10^1 -> 1
    assert betas_from_positions(1e4, [0.5, 0.5], 1.0) == pytest.approx([1e4, 100.0, 10.0, 1.0])
    assert positions_from_betas([1e4, 100.0, 10.0, 1.0]) == pytest.approx([0.5, 0.5])
    assert betas_from_positions(8.0, [], 2.0) == [8.0, 2.0]


def test_stage_lengths_scale_down_to_leave_the_last_stage_its_share():
    assert stage_lengths([0.2, 0.3], 1000, 0.2) == [200, 300]
    assert stage_lengths([0.5, 0.5], 1000, 0.2) == [400, 400]  # scaled by 0.8
    assert stage_lengths([0.25, 0.25, 0.25], 4000, 0.1) == [1000, 1000, 1000]


def test_importing_the_search_package_does_not_import_ray_or_optuna(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("params: {num_stages: 0}\ndata: dsprites_full\n")
    code = (
        "import sys\nfrom deft_tune.search import load_space\n"
        f"try:\n    load_space({str(bad)!r})\nexcept Exception as exc:\n    print(exc)\n"
        "assert 'ray' not in sys.modules and 'optuna' not in sys.modules, 'heavy import'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "params.num_stages" in out.stdout


# --- validation: one clear line naming file, field, value and fix ------------------------------


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({**_space(), "objectve": {}}, "unknown key 'objectve': did you mean 'objective'"),
        (_space(beta_frist=10), "unknown key 'params.beta_frist': did you mean 'beta_first'"),
        (_space(betas=[70, 80, 1]), r"params.betas == \[70.0, 80.0, 1.0\] must strictly decrease"),
        (_space(num_stages=0), "params.num_stages == 0, must be >= 1"),
        (_space(num_stages={"low": 0, "high": 3}), "params.num_stages.low == 0, must be >= 1"),
        (_space(num_stages={"low": 4, "high": 2}), "params.num_stages.low == 4 > "),
        (_space(lr={"low": 0, "high": 1e-3, "log": True}), "params.lr.low == 0.0, must be > 0"),
        (_space(lr_scale={"low": 0, "high": 1, "log": True}), "on a log scale, must be > 0"),
        (_space(stage_frac={"low": 0.0, "high": 0.5}), "params.stage_frac.low == 0.0, must be > 0"),
        (_space(beta_pos=1.2), "params.beta_pos == 1.2, must be > 0 and < 1"),
        (_space(beta_first={"low": 0.5, "high": 10}), "keep beta_first above beta_last"),
        (_space(rule="annealed", beta_first={"low": 10, "high": 300}), "raise beta_max"),
        (_space(rule="sometimes"), "params.rule == 'sometimes', must be one of"),
        (_space(num_stages={"choices": [2, 2]}), "repeats a value"),
        (_space(gamma={"low": 1}), "range lacks 'high'"),
        ({**_space(), "objective": {"metric": "metrics/mgi"}}, "objective.metric == 'metrics/mgi'"),
        ({**_space(), "objective": {"metric": "train/los"}}, "not a metric or report key"),
        ({**_space(), "objective": {"metrics": ["mig", "dcj"]}}, r"objective.metrics\[1\]"),
        ({**_space(), "objective": {"mode": "maximise"}}, "objective.mode == 'maximise'"),
        ({**_space(), "data": {"name": "mnist"}}, "data.name == 'mnist'"),
        ({**_space(), "base": {"training": {"steps": 5}}}, "budget.steps_per_trial"),
        ({**_space(), "base": {"schedule": {}}}, "unknown key 'base.schedule'"),
        ({**_space(), "budget": {"steps_per_trial": 100, "eval_interval": 500}}, "eval_interval"),
        ({**_space(), "stopping": {"ifp": {"diffusion_threshold": 2}}}, r"must lie in \[0, 1\]"),
        ({**_space(), "stopping": {"asha": {"reduction_factor": 1}}}, "must be > 1"),
        (
            {**_space(num_stages=5), "budget": {"steps_per_trial": 4, "eval_interval": 1}},
            "num_stages=5",
        ),
        ({**_space(), "start": [{"betas": [10, 20, 1]}]}, r"start\[0\].betas == .* must strictly"),
        ({**_space(), "start": [{"betas": [500, 20, 1]}]}, r"start\[0\].betas\[0\] == 500.0 lies"),
        ({**_space(), "start": [{"betas": [50, 5, 1], "num_stages": 4}]}, "disagrees on the stage"),
        ({**_space(), "start": [{"lr": 1e-3}]}, "params.lr is fixed at 0.0005"),
        (
            {
                **_space(stage_frac={"low": 0.1, "high": 0.7}),
                "start": [{"stage_fracs": [0.6, 0.6]}],
            },
            "sum to 1.2",
        ),
        ({**_space(), "start": [{"nope": 1}]}, r"unknown key 'start\[0\].nope'"),
        ({**_space(betas=[70, 30, 1]), "method": "beta_vae"}, "unknown key 'params.betas'"),
        (_space(betas=[70, 30, 1], num_stages=4), "the list fixes the stage count"),
        (_space(betas=[70, 30, 1], beta_first=50), "give one source of stage betas"),
        (["not", "a", "mapping"], "must be a mapping"),
    ],
)
def test_malformed_space_is_refused_with_one_line(raw, match):
    with pytest.raises(ConfigError, match=match) as info:
        space_from_dict(raw)
    assert "\n" not in str(info.value)


def test_non_yaml_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("params: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml is not valid YAML at line \d"):
        load_space(bad)
    with pytest.raises(ConfigError, match="cannot read search space .*absent.yaml"):
        load_space(tmp_path / "absent.yaml")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("data: dsprites_full\nparams: {num_stages: 0}\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: params.num_stages == 0"):
        load_space(wrong)


def test_a_space_that_is_not_utf8_or_has_a_huge_seed_is_one_line(tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("data: dsprites_full\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml is not UTF-8 text \(byte 0xe9"):
        load_space(latin1)
    with pytest.raises(ConfigError, match=r"budget.seed == 10+, must lie in \[0, 2\*\*63 - 1\]"):
        space_from_dict({"data": "dsprites_full", "budget": {"seed": 10**20}})


def test_name_defaults_to_the_file_stem(tmp_path):
    path = tmp_path / "my-search.yaml"
    path.write_text("data: dsprites_full\n")
    assert load_space(path).name == "my-search"


def test_fixed_betas_fix_the_stage_count():
    space = space_from_dict(_space(betas=[70, 30, 12, 1], stage_frac=0.25))
    constants = define_by_run(space)(optuna.create_study().ask())
    assert constants["num_stages"] == 4 and constants["stage3/beta"] == 12.0
    scales = {f"stage{i}/lr_scale": 0.5 for i in (2, 3, 4)}
    config = run_config_from_params(space, constants | scales, seed=0)
    assert [s.beta for s in config.schedule.stages] == [70.0, 30.0, 12.0, 1.0]
    assert config.stage_steps() == (250, 250, 250, 250)


def test_log_scale_positions_are_geometric():
    # With u = 0.5 everywhere the betas are evenly spaced on a log scale between first and last.
    space = space_from_dict(_space(num_stages=4, beta_first=1000, beta_last=1, beta_pos=0.5))
    config = run_config_from_params(
        space,
        {
            "stage1/frac": 0.2,
            "stage2/frac": 0.2,
            "stage3/frac": 0.2,
            "stage2/lr_scale": 1.0,
            "stage3/lr_scale": 1.0,
            "stage4/lr_scale": 1.0,
        },
        0,
    )
    betas = [s.beta for s in config.schedule.stages]
    assert betas == pytest.approx([1000.0, math.sqrt(1000.0), 1000.0**0.25, 1.0])


def test_the_reference_docs_example_loads():
    import re

    import yaml

    text = (SPACES.parent / "docs" / "search_spaces.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    space = space_from_dict(yaml.safe_load(example))
    assert space.name == "quick" and len(points_to_evaluate(space)) == 1


def test_a_run_config_given_as_a_space_is_named_as_one():
    config = REPO / "configs" / "dsprites_deft.yaml"
    with pytest.raises(ConfigError, match="dsprites_deft.yaml is a run config") as caught:
        load_space(config)
    assert f"deft-tune train --config {config}" in str(caught.value)
