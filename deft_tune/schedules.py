"""The DEFT schedule as pure functions of the training step.

Stage i opens encoder group i. Under the ``fixed`` rule stage i lasts ``stages[i].steps`` steps
and its loss beta is ``stages[i].beta``. Under the ``annealed`` rule (the authors'
examples/deft.py) the loss beta at step t is ``max(beta_max * exp(-gamma * t / anneal_steps), 1)``
and stage i ends when that beta falls to ``stages[i].beta``; the boundary is solved in closed form
so that the stage never depends on float round-off accumulated over a run. The authors' rule is
five groups with thresholds [70, 30, 15, 1] and no threshold on the fifth: beta_max 150, gamma
20, anneal_steps 200,000 switch at steps 7,622, 16,095, 23,026 and 50,107 (beta reaches its
floor of 1 there, and the last group trains to the end).

Per-group learning-rate scales: the active group trains at the base rate (1), the groups opened
before it at the stage's ``lr_scale`` (or not at all when the stage freezes them: ``earlier:
freeze``), groups not yet opened at 0. Baselines (no stages) have every group open from step 0
at the base rate.

:func:`position` puts it together for a whole run config: the training loop reads the stage,
the loss weight, the stage's span and the learning-rate scales of a step from it and never
branches on the objective itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deft_tune.config import ObjectiveConfig, RunConfig, ScheduleConfig

__all__ = [
    "Position",
    "annealed_capacity",
    "beta_at",
    "lr_scales_at",
    "position",
    "stage_at",
    "stage_boundaries",
]


def _stage_starts(schedule: ScheduleConfig) -> list[float]:
    """Start step of each stage; ``math.inf`` for a stage the schedule never reaches."""
    starts: list[float] = [0.0]
    if schedule.rule == "fixed":
        for stage in schedule.stages[:-1]:
            starts.append(starts[-1] + (stage.steps or 0))
        return starts
    for stage in schedule.stages[:-1]:  # only the last stage may lack its threshold
        starts.append(math.inf if stage.beta is None else _annealed_crossing(schedule, stage.beta))
    return starts


def _annealed_crossing(schedule: ScheduleConfig, threshold: float) -> float:
    """First integer step t with beta(t) <= threshold, or inf when beta never gets there."""
    if threshold >= schedule.beta_max:
        return 0.0
    if threshold < 1.0:  # beta is floored at 1
        return math.inf
    t = schedule.anneal_steps * math.log(schedule.beta_max / threshold) / schedule.gamma
    step = math.ceil(t)
    # Guard the closed form against round-off: the crossing must agree with beta_at itself.
    while step > 0 and _annealed_beta(schedule, step - 1) <= threshold:
        step -= 1
    while _annealed_beta(schedule, step) > threshold:
        step += 1
    return float(step)


def _annealed_beta(schedule: ScheduleConfig, step: int) -> float:
    decayed = schedule.beta_max * math.exp(-schedule.gamma * step / schedule.anneal_steps)
    return max(decayed, 1.0)


def _check_step(step: int) -> None:
    if step < 0:
        raise ValueError(f"step == {step}, must be >= 0")


def stage_boundaries(schedule: ScheduleConfig, total_steps: int) -> tuple[int, ...]:
    """Start step of each stage; a stage not reached within ``total_steps`` starts there."""
    return tuple(int(min(start, total_steps)) for start in _stage_starts(schedule))


def stage_at(schedule: ScheduleConfig, total_steps: int, step: int) -> int:
    """Index of the stage that trains step ``step`` (0 for a baseline without stages).

    ``total_steps`` is part of the signature for symmetry with :func:`stage_boundaries`; the
    stage itself never depends on the run length (the last stage is open-ended).
    """
    _check_step(step)
    if not schedule.stages:
        return 0
    return sum(1 for start in _stage_starts(schedule)[1:] if start <= step)


def beta_at(schedule: ScheduleConfig, total_steps: int, step: int) -> float:
    """The loss beta of a DEFT schedule at ``step``."""
    _check_step(step)
    if not schedule.stages:
        raise ValueError("schedule has no stages: a baseline's beta is objective.beta")
    if schedule.rule == "annealed":
        return _annealed_beta(schedule, step)
    beta = schedule.stages[stage_at(schedule, total_steps, step)].beta
    if beta is None:  # refused by the config's validation
        raise ValueError("a fixed-rule stage has no beta")
    return float(beta)


def lr_scales_at(schedule: ScheduleConfig, groups: int, step: int) -> tuple[float, ...]:
    """Learning-rate scale of each encoder group at ``step`` (1 active, 0 not yet open; 0 for
    the earlier groups of a stage that freezes them)."""
    _check_step(step)
    if not schedule.stages:
        return (1.0,) * groups
    if len(schedule.stages) != groups:
        raise ValueError(f"groups == {groups} but the schedule has {len(schedule.stages)} stages")
    stage = stage_at(schedule, 0, step)
    current = schedule.stages[stage]
    earlier = 0.0 if current.earlier == "freeze" else float(current.lr_scale)
    return tuple(earlier if g < stage else 1.0 if g == stage else 0.0 for g in range(groups))


def annealed_capacity(objective: ObjectiveConfig, step: int) -> float:
    """AnnealedVAE's target KL: rises linearly from 0 to capacity_max over capacity_steps."""
    return objective.capacity_max * min(step / objective.capacity_steps, 1.0)


@dataclass(frozen=True)
class Position:
    """Where training step ``step`` lies in a run: what the loop needs to train and report it."""

    step: int
    stage: int  # the newest open group (every group is open for the baselines)
    beta: float  # the KL weight of the loss (AnnealedVAE: capacity_weight)
    stage_start: int  # first step of the stage
    stage_end: int  # the step the stage ends at (the run's end for the last stage)
    lr_scales: tuple[float, ...]  # per encoder group
    capacity: float | None = None  # AnnealedVAE's target KL at this step
    freeze: bool = False  # the groups before the stage are frozen (earlier: freeze)

    @property
    def progress(self) -> float:
        """Fraction (0..1) of the stage done once this step is trained."""
        span = max(self.stage_end - self.stage_start, 1)
        return min(max((self.step + 1 - self.stage_start) / span, 0.0), 1.0)


def position(config: RunConfig, step: int) -> Position:
    """The schedule's :class:`Position` at training step ``step`` of ``config``'s run."""
    _check_step(step)
    total, groups, objective = config.training.steps, config.model.groups, config.objective
    if objective.kind != "deft":  # one stage over the whole run, every group open
        annealed = objective.kind == "annealed_vae"
        return Position(
            step=step,
            stage=groups - 1,
            beta=objective.capacity_weight if annealed else objective.beta,
            stage_start=0,
            stage_end=total,
            lr_scales=(1.0,) * groups,
            capacity=annealed_capacity(objective, step) if annealed else None,
        )
    schedule = config.schedule
    stage = stage_at(schedule, total, step)
    bounds = stage_boundaries(schedule, total)
    return Position(
        step=step,
        stage=stage,
        beta=beta_at(schedule, total, step),
        stage_start=bounds[stage],
        stage_end=bounds[stage + 1] if stage + 1 < len(bounds) else total,
        lr_scales=lr_scales_at(schedule, groups, step),
        freeze=stage > 0 and schedule.stages[stage].earlier == "freeze",
    )
