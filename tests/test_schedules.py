import math

import pytest

from deft_tune.config import RunConfig, ScheduleConfig, StageConfig
from deft_tune.schedules import (
    beta_at,
    lr_scales_at,
    position,
    stage_at,
    stage_boundaries,
)

FIXED = ScheduleConfig(
    rule="fixed",
    stages=(
        StageConfig(beta=70, steps=100),
        StageConfig(beta=30, steps=50, lr_scale=0.1),
        StageConfig(beta=12, steps=25, lr_scale=0.0),
        StageConfig(beta=1, lr_scale=0.5),
    ),
)
# The authors' examples/deft.py rule: FracEncoder's five groups, thresholds [70, 30, 15, 1]; the
# fifth group opens when beta reaches 1 and has no threshold of its own.
ANNEALED = ScheduleConfig(
    rule="annealed",
    stages=(
        StageConfig(beta=70),
        StageConfig(beta=30, earlier="freeze"),
        StageConfig(beta=15, earlier="freeze"),
        StageConfig(beta=1, earlier="freeze"),
        StageConfig(earlier="freeze"),
    ),
    beta_max=150,
    gamma=20,
    anneal_steps=200_000,
)
BASELINE = ScheduleConfig(stages=())


@pytest.mark.parametrize(
    ("step", "stage", "beta"),
    [
        (0, 0, 70),
        (99, 0, 70),
        (100, 1, 30),
        (149, 1, 30),
        (150, 2, 12),
        (174, 2, 12),
        (175, 3, 1),
        (10_000, 3, 1),
    ],
)
def test_fixed_rule_breakpoints(step, stage, beta):
    assert stage_at(FIXED, 400, step) == stage
    assert beta_at(FIXED, 400, step) == beta


def test_fixed_rule_boundaries_are_cumulative_stage_lengths():
    assert stage_boundaries(FIXED, 400) == (0, 100, 150, 175)


@pytest.mark.parametrize(
    ("step", "scales"),
    [
        (0, (1, 0, 0, 0)),
        (99, (1, 0, 0, 0)),
        (100, (0.1, 1, 0, 0)),
        (150, (0, 0, 1, 0)),
        (175, (0.5, 0.5, 0.5, 1)),
    ],
)
def test_lr_scales_active_one_earlier_stage_scale_later_zero(step, scales):
    assert lr_scales_at(FIXED, 4, step) == scales


def test_annealed_boundaries_are_the_authors_switch_steps():
    # t_i = ceil(200000 * ln(150 / threshold) / 20): ln(150/70) = 0.762140 -> 7621.4,
    # ln 5 = 1.609438 -> 16094.4, ln 10 = 2.302585 -> 23025.9, ln 150 = 5.010635 -> 50106.4.
    assert stage_boundaries(ANNEALED, 200_000) == (0, 7622, 16095, 23026, 50107)
    assert stage_at(ANNEALED, 200_000, 200_000) == 4  # the fifth group trains to the end


def test_annealed_stage_switches_exactly_when_beta_falls_to_the_threshold():
    for start, threshold in zip((7622, 16095, 23026, 50107), (70, 30, 15, 1)):
        assert beta_at(ANNEALED, 100_000, start - 1) > threshold
        assert beta_at(ANNEALED, 100_000, start) <= threshold
        assert stage_at(ANNEALED, 100_000, start) == stage_at(ANNEALED, 100_000, start - 1) + 1


def test_annealed_beta_follows_exponential_and_floors_at_one():
    assert beta_at(ANNEALED, 100_000, 0) == 150
    assert beta_at(ANNEALED, 100_000, 10_000) == pytest.approx(150 * math.exp(-1))
    assert beta_at(ANNEALED, 10**6, 60_000) == 1.0  # 150 e^-6 = 0.37 -> floored


def test_annealed_threshold_below_floor_is_never_reached():
    schedule = ScheduleConfig(
        rule="annealed",
        stages=(StageConfig(beta=0.5), StageConfig(beta=0)),
        beta_max=10,
        gamma=5,
        anneal_steps=100,
    )
    assert stage_at(schedule, 10**6, 10**6) == 0
    assert stage_boundaries(schedule, 500) == (0, 500)


def test_baseline_has_one_stage_and_every_group_at_base_rate():
    assert stage_at(BASELINE, 100, 50) == 0
    assert lr_scales_at(BASELINE, 3, 50) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="objective.beta"):
        beta_at(BASELINE, 100, 0)


def _run(schedule: ScheduleConfig, steps: int, **objective) -> RunConfig:
    kind = objective.pop("kind", "deft")
    groups = len(schedule.stages) or 2
    return RunConfig.from_dict({"model": {"groups": groups}, "objective": {"kind": kind,
                                **objective}, "schedule": schedule if kind == "deft" else
                                {"stages": []}, "training": {"steps": steps}})  # fmt: skip


def test_position_progress_runs_to_one_as_each_stage_ends():
    run = _run(FIXED, 400)
    # Progress is the stage's fraction done once the step is trained: stage 1 spans 100..149.
    assert position(run, 0).progress == 0.01
    assert position(run, 124).progress == 0.5
    assert position(run, 149).progress == 1
    assert position(run, 150).stage == 2 and position(run, 150).progress == 1 / 25
    last = position(run, 399)
    assert (last.stage, last.stage_start, last.stage_end, last.progress) == (3, 175, 400, 1)


def test_position_of_deft_reads_the_schedule():
    at = position(_run(FIXED, 400), 100)
    assert (at.stage, at.beta, at.lr_scales, at.capacity) == (1, 30, (0.1, 1, 0, 0), None)
    assert (at.stage_start, at.stage_end) == (100, 150)


def test_position_of_baselines_opens_every_group_for_the_whole_run():
    beta = position(_run(BASELINE, 200, kind="beta_vae", beta=6.0), 49)
    assert (beta.stage, beta.beta, beta.lr_scales, beta.capacity) == (1, 6.0, (1, 1), None)
    assert (beta.stage_start, beta.stage_end, beta.progress) == (0, 200, 0.25)
    annealed = position(
        _run(
            BASELINE,
            200,
            kind="annealed_vae",
            capacity_max=20.0,
            capacity_steps=100,
            capacity_weight=50.0,
        ),
        50,
    )
    assert (annealed.beta, annealed.capacity) == (50.0, 10.0)  # 20 * 50 / 100


def test_negative_step_is_refused():
    with pytest.raises(ValueError, match="step == -1"):
        stage_at(FIXED, 400, -1)


def test_freeze_zeroes_the_earlier_groups_rate_and_marks_the_position():
    assert lr_scales_at(ANNEALED, 5, 20_000) == (0.0, 0.0, 1.0, 0.0, 0.0)
    run = RunConfig.from_dict({"model": {"groups": 5}, "schedule": ANNEALED,
                               "training": {"steps": 200_000}})  # fmt: skip
    assert not position(run, 7621).freeze and position(run, 7622).freeze
    assert position(run, 60_000).stage_end == 200_000
