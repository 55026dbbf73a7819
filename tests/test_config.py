import pytest

from deft_tune.config import RunConfig, dump_config, load_config
from deft_tune.errors import ConfigError

DEFT = {
    "model": {"groups": 2, "latents_per_group": 3},
    "schedule": {"stages": [{"beta": 20, "steps": 300}, {"beta": 1, "lr_scale": 0.1}]},
    "training": {"steps": 1000},
}


def test_defaults_are_valid_and_follow_the_authors_dsprites_betas():
    config = RunConfig()
    assert [s.beta for s in config.schedule.stages] == [70, 30, 12, 1]
    assert sum(config.stage_steps()) == config.training.steps


def test_open_last_stage_takes_the_rest_of_the_steps():
    assert RunConfig.from_dict(DEFT).stage_steps() == (300, 700)


def test_yaml_round_trip_is_exact(tmp_path):
    config = RunConfig.from_dict(DEFT)
    path = dump_config(config, tmp_path / "run.yaml", header="exported\nrun 42")
    text = path.read_text()
    assert text.startswith("# exported\n# run 42\n")
    assert load_config(path) == config
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_baseline_without_schedule_section_gets_no_stages():
    config = RunConfig.from_dict({"objective": {"kind": "beta_tcvae", "beta": 6}})
    assert config.schedule.stages == ()


def test_scientific_notation_string_is_read_as_float():
    assert RunConfig.from_dict({"training": {"lr": "1e-4"}}).training.lr == 1e-4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modle": {}}, "unknown key 'modle': did you mean 'model'?"),
        ({"training": {"steps": 0}}, "training.steps == 0, must lie in [1, 1e+09]"),
        (
            {"schedule": {"stages": [{"beta": -0.5, "steps": 300}, {"beta": 1}]}},
            "schedule.stages[0].beta == -0.5, must be >= 0",
        ),
        (
            {"schedule": {"stages": [{"beta": 5, "steps": 300}, {"beta": 1, "lr_scale": 1.5}]}},
            "schedule.stages[1].lr_scale == 1.5, must lie in [0, 1]",
        ),
        (
            {"schedule": {"stages": [{"beta": 5}]}},
            "schedule.stages has 1 stages but model.groups == 2",
        ),
        (
            {"schedule": {"stages": [{"steps": 300}, {"beta": 1}]}},
            "schedule.stages[0].beta is missing: every stage needs its beta",
        ),
        (
            {"schedule": {"stages": [{"beta": 5, "steps": 300}, {}]}},
            "schedule.stages[1].beta is missing",
        ),
        (
            {
                "schedule": {
                    "stages": [
                        {"beta": 5, "steps": 300},
                        {"beta": 1, "earlier": "freeze", "lr_scale": 0.1},
                    ]
                }
            },
            "lr_scale == 0.1 with earlier: freeze",
        ),
        (
            {"schedule": {"stages": [{"beta": 5, "steps": 300}, {"beta": 1, "earlier": "thaw"}]}},
            "schedule.stages[1].earlier == 'thaw', must be one of ['scale', 'freeze']",
        ),
        (
            {"schedule": {"stages": [{"beta": 5, "steps": 600}, {"beta": 1, "steps": 600}]}},
            "schedule stage steps sum to 1200 but training.steps == 1000",
        ),
        (
            {"schedule": {"rule": "annealed", "stages": [{"beta": 5}, {"beta": 9}]}},
            "must decrease under the annealed rule",
        ),
        (
            {"schedule": {"stages": [{"beta": 1, "steps": 300}, {"beta": 20}]}},
            "schedule.stages betas [1.0, 20.0] rise under the fixed rule, must not",
        ),
        ({"objective": {"kind": "vae"}}, "objective.kind == 'vae', must be one of"),
        ({"training": {"batch_size": "big"}}, "training.batch_size == 'big', must be int"),
        ({"training": {"device": "tpu"}}, "training.device == 'tpu'"),
        (
            {"evaluation": {"metrics": ["mig", "migg"]}},
            "evaluation.metrics[1] == 'migg', must be one of",
        ),
        (
            {"training": {"steps": 1000, "seed": 10**20}},
            "training.seed == 100000000000000000000, must lie in [0, 2**63 - 1]",
        ),
        ({"training": {"threads": 0}}, "training.threads == 0, must lie in [1, 1024]"),
    ],
)
def test_impossible_values_are_refused_naming_field_value_and_fix(change, message):
    raw = {**DEFT, **change}
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict(raw)
    assert message in str(caught.value)


def test_unreadable_and_non_yaml_files_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {steps: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML at line"):
        load_config(bad)


def test_a_search_space_given_as_a_run_config_is_named_as_one():
    from tests import REPO

    space = REPO / "search_spaces" / "quick.yaml"
    with pytest.raises(ConfigError, match="quick.yaml is a search space") as caught:
        load_config(space)
    assert f"deft-tune search --space {space}" in str(caught.value)


def test_a_frozen_group_stays_frozen_and_the_annealed_last_stage_may_omit_its_threshold():
    three = {"model": {"groups": 3}, "training": {"steps": 1000}}
    stages = [{"beta": 9, "steps": 300}, {"beta": 3, "steps": 300, "earlier": "freeze"},
              {"beta": 1, "earlier": "scale", "lr_scale": 0.1}]  # fmt: skip
    with pytest.raises(ConfigError, match=r"stages\[2\].earlier == 'scale' after stage 1 froze"):
        RunConfig.from_dict({**three, "schedule": {"stages": stages}})
    stages[2] = {"beta": 1, "earlier": "freeze"}
    assert RunConfig.from_dict({**three, "schedule": {"stages": stages}})
    annealed = {"rule": "annealed", "stages": [{"beta": 9}, {"beta": 3}, {}]}
    config = RunConfig.from_dict({**three, "schedule": annealed})
    assert config.schedule.stages[-1].beta is None


def test_freeze_and_an_open_annealed_last_stage_survive_the_yaml_round_trip(tmp_path):
    raw = {"model": {"groups": 3}, "schedule": {"rule": "annealed", "stages": [
        {"beta": 9}, {"beta": 3, "earlier": "freeze"}, {"earlier": "freeze"}]}}  # fmt: skip
    config = RunConfig.from_dict(raw)
    path = dump_config(config, tmp_path / "run.yaml")
    assert load_config(path) == config
    assert "earlier: freeze" in path.read_text()


def test_a_config_that_is_not_utf8_is_named_in_one_line(tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("data: {name: dsprites_full}\n# r\u00e9sum\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(latin1)
    message = str(caught.value)
    assert "latin1.yaml is not UTF-8 text (byte 0xe9" in message and "\n" not in message


def test_the_largest_seed_is_accepted():
    config = RunConfig.from_dict({**DEFT, "training": {"steps": 1000, "seed": 2**63 - 1}})
    assert config.training.seed == 2**63 - 1


def test_equal_fixed_rule_betas_are_accepted():
    stages = [{"beta": 4, "steps": 300}, {"beta": 4, "lr_scale": 0.1}]
    assert RunConfig.from_dict({**DEFT, "schedule": {"stages": stages}}).schedule.rule == "fixed"
