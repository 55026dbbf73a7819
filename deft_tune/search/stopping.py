"""Early stopping of hopeless trials: the IFP stopper (information signals) and ASHA.

:class:`IFPStopper` reads the information signals the training loop reports every evaluation
(see deft_tune.freezing) and stops a trial for one of three reasons:

- ``"diffusion"``: ``info/diffusion`` (the share of this stage's new information that went into
  the earlier, slowed groups instead of the active one) stayed above ``diffusion_threshold`` for
  ``patience`` reports in a row, counted only past the grace part of the stage and once the
  stage gained at least ``min_gain`` nats (a ratio of two tiny gains is noise). DEFT exists to
  prevent exactly this; a schedule that lets it happen will not disentangle.
- ``"no_capture"``: a stage ended (``train/stage`` moved on, or ``train/stage_progress`` reached
  1), no report of that stage showed its group taking information in, and, when the stage's
  end fell between two reports, the group holds nothing at the next one (``kl/group{i}``);
  and no earlier stage's group took anything in either. The pressure so far sat above every
  factor's freezing point, and the trial spent its stages learning nothing. An empty stage
  after one that captured is not judged: its beta merely fell between two freezing points,
  and the example config's best runs do exactly that (its third group stays empty at beta 12
  in 6 of 9 runs at 4,000 steps, MIG up to 0.255, docs/search.md).
- ``"collapse"``: ``kl/total`` below ``collapse_kl`` nats for ``patience`` reports after
  ``collapse_grace_fraction`` of the budget: the posterior collapsed and carries nothing. A
  NaN or infinite ``kl/total`` counts as below (a replica that diverged has no posterior left
  to judge, and must not vote with the healthy ones); a missing one does not.

A trial of several replicas (``training.replicas``) is judged replica by replica on each one's
own signals (``replica{r}/...``) and stops for a reason only when more than half of its replicas
meet that rule at the same report (:func:`majority`): "no_capture" means most seeds captured
nothing, never one unlucky seed. ASHA compares trials on the objective's aggregate over the
replicas (``objective.aggregate``).

The reason travels with the trial: the stopper writes it into the result it judged, under the
key ``deft.stop_reason`` (:data:`~deft_tune.search.tracking.layout.STOP_TAG`). Tune hands the
stopper the very dict it then gives the callbacks and keeps as the trial's last result, so the
driver-side callbacks read the reason from ``trial.last_result`` (and tag the trial's MLflow run
with it), and it survives experiment checkpoints and ``--resume``. The stopper object does not:
on restore Tune takes its stopper from the experiment state and the callbacks from the Tuner's
pickle, two separate copies, so a callback that asked its own copy found no reason for the
trials the other copy stopped. :meth:`IFPStopper.reason` keeps the stopper's own record.

Honest objective: the trainable reports the current objective (the fast metric setting) in
every report, so the last value a stopped trial reported is what Optuna is told. Nothing here
replaces or improves it: TPE sees a stopped trial exactly as good as it was when it stopped.
The final report of a trial (its last step) is never judged: stopping it saves nothing.

A trial retried or restored from a checkpoint reports a step at or below one already seen; its
state here starts afresh from that report.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from ray.tune.schedulers import ASHAScheduler
from ray.tune.stopper import Stopper

from deft_tune import report_keys as keys
from deft_tune.search.space import IFPStopping, SearchSpace
from deft_tune.search.tracking.layout import IFP_STOP_REASONS, STOP_TAG
from deft_tune.training.aggregate import replica_key

__all__ = ["STOP_REASONS", "IFPStopper", "make_scheduler", "make_stopper", "reads"]

logger = logging.getLogger(__name__)

STOP_REASONS = IFP_STOP_REASONS
# Nats a group must hold to count as captured when judged from its KL, unless the space sets
# stopping.ifp.capture_threshold: the information tracker's default capture threshold.
GROUP_CAPTURE_KL = 0.1


# The report keys the stopper reads, each also per replica as replica{r}/<key> (see reads()).
SIGNAL_KEYS = (keys.STAGE, keys.STAGE_PROGRESS, keys.KL_TOTAL, keys.ACTIVE_CAPTURED,
               keys.ACTIVE_GAIN, keys.FROZEN_GAIN, keys.DIFFUSION)  # fmt: skip
_GROUP_KL = re.compile(rf"{re.escape(keys.KL_GROUP_PREFIX)}\d+")
_REPLICA = re.compile(r"replica\d+/")


def reads(key: str) -> bool:
    """Whether :class:`IFPStopper` reads report key ``key``: what a replay of recorded reports
    (deft_tune.search.replay) must load for the stopper to decide as it did live."""
    if key in (keys.STEP, keys.REPLICAS, "training_iteration"):
        return True
    plain = key[m.end() :] if (m := _REPLICA.match(key)) else key
    return plain in SIGNAL_KEYS or bool(_GROUP_KL.fullmatch(plain))


@dataclass
class _TrialState:
    last_step: int = -1
    stage: int | None = None
    stage_start: int = 0  # step at which the current stage began, as far as reports tell
    stage_reports: int = 0
    captured: bool = False  # the current stage's group took information in
    held: bool = False  # an earlier stage's group did
    diffusing: int = 0  # consecutive reports above the diffusion threshold
    collapsed: int = 0  # consecutive reports below the collapse KL


class IFPStopper(Stopper):
    """Stops trials whose information signals say the schedule cannot work (see module doc)."""

    def __init__(self, config: IFPStopping, steps_per_trial: int) -> None:
        if steps_per_trial < 1:
            raise ValueError(f"steps_per_trial == {steps_per_trial}, must be >= 1")
        self.config = config
        self.steps_per_trial = int(steps_per_trial)
        self._trials: dict[str, list[_TrialState]] = {}  # one state per replica
        self._reasons: dict[str, str] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if trial_id in self._reasons:
            result[STOP_TAG] = self._reasons[trial_id]
            return True
        step = int(_number(result, keys.STEP, _number(result, "training_iteration", 0)))
        count = max(1, int(_number(result, keys.REPLICAS, 1)))
        states = self._trials.get(trial_id)
        if states is None or len(states) != count or step <= states[0].last_step:
            # new, or retried from a checkpoint
            states = self._trials[trial_id] = [_TrialState() for _ in range(count)]
        verdicts = [
            self._judge(state, step, _replica_view(result, r, count))
            for r, state in enumerate(states)
        ]
        for state in states:
            state.last_step = step
        reason = majority(verdicts)
        if reason is None or step >= self.steps_per_trial:
            return False
        self._reasons[trial_id] = result[STOP_TAG] = reason  # see the module docstring
        logger.info("stopping trial %s at step %d: %s", trial_id, step, reason)
        return True

    def stop_all(self) -> bool:
        return False

    def reason(self, trial_id: str) -> str | None:
        """Why ``trial_id`` was stopped ("diffusion", "no_capture", "collapse"), or None."""
        return self._reasons.get(trial_id)

    @property
    def reasons(self) -> dict[str, str]:
        """Every stopped trial and its reason."""
        return dict(self._reasons)

    # --- the three rules ----------------------------------------------------------------------

    def _judge(self, state: _TrialState, step: int, result: dict[str, Any]) -> str | None:
        cfg = self.config
        stage = int(_number(result, keys.STAGE, 0))
        reason = None
        if state.stage is not None and stage != state.stage:
            empty = not state.captured and not self._holds(result, state.stage)
            if cfg.no_capture and state.stage_reports and empty and not state.held:
                reason = "no_capture"  # no stage up to the one that just ended took anything in
            state.held = state.held or not empty
        if stage != state.stage:
            # The stage began after the previous report (the loop reports a stage's last step
            # under that stage); on a trial's first report only stage 0's start is known.
            known = state.last_step >= 0 or stage == 0
            state.stage_start = max(state.last_step, 0) if known else step
            state.stage, state.stage_reports = stage, 0
            state.captured, state.diffusing = False, 0
        state.stage_reports += 1
        state.captured = state.captured or self._captured(result)
        progress = _number(result, keys.STAGE_PROGRESS, 0.0)
        if cfg.no_capture and progress >= 1 and not state.captured and not state.held:
            reason = reason or "no_capture"
        if self._diffusing(state, step, progress, result):
            state.diffusing += 1
        else:
            state.diffusing = 0
        late = step >= cfg.collapse_grace_fraction * self.steps_per_trial
        state.collapsed = state.collapsed + 1 if late and self._collapsed(result) else 0
        if state.diffusing >= cfg.patience:
            reason = reason or "diffusion"
        if state.collapsed >= cfg.patience:
            reason = reason or "collapse"
        return reason

    def _collapsed(self, result: dict[str, Any]) -> bool:
        """``kl/total`` below ``collapse_kl``; NaN or infinite counts as below while the rule
        is on (collapse_kl > 0)."""
        kl = result.get(keys.KL_TOTAL)
        if isinstance(kl, (int, float)) and not isinstance(kl, bool) and not math.isfinite(kl):
            return self.config.collapse_kl > 0
        return _number(result, keys.KL_TOTAL, math.nan) < self.config.collapse_kl

    def _holds(self, result: dict[str, Any], group: int) -> bool:
        """Whether ``group`` holds information now: it may have filled up after the stage's
        last report and before the stage ended. Closed until its stage, any KL it has was
        taken in since."""
        threshold = self.config.capture_threshold
        threshold = GROUP_CAPTURE_KL if threshold is None else threshold
        return _number(result, keys.kl_group(group), 0.0) >= threshold

    def _captured(self, result: dict[str, Any]) -> bool:
        if self.config.capture_threshold is None:
            return _number(result, keys.ACTIVE_CAPTURED, 0.0) > 0
        return _number(result, keys.ACTIVE_GAIN, 0.0) >= self.config.capture_threshold

    def _diffusing(self, state: _TrialState, step: int, progress: float, result: dict) -> bool:
        cfg = self.config
        if progress < cfg.grace_fraction or step - state.stage_start < cfg.grace_steps:
            return False
        gain = _number(result, keys.ACTIVE_GAIN, 0.0) + _number(result, keys.FROZEN_GAIN, 0.0)
        diffusion = _number(result, keys.DIFFUSION, math.nan)
        return gain >= cfg.min_gain and diffusion > cfg.diffusion_threshold


def majority(verdicts: list[str | None]) -> str | None:
    """The reason more than half of a trial's replicas were judged by, or None.

    Each replica is judged on its own signals (``replica{r}/...``); a trial stops only when
    most of its seeds say its schedule cannot work, never on one unlucky seed.
    """
    for reason in STOP_REASONS:
        if 2 * verdicts.count(reason) > len(verdicts):
            return reason
    return None


def _replica_view(result: dict[str, Any], replica: int, count: int) -> dict[str, Any]:
    """Replica ``replica``'s report (its ``replica{r}/`` keys unprefixed), or the result as it
    is for a one-replica trial."""
    if count == 1:
        return result
    prefix = replica_key(replica, "")
    view = {k[len(prefix) :]: v for k, v in result.items() if k.startswith(prefix)}
    view.setdefault(keys.STEP, result.get(keys.STEP))
    return view


def _number(result: dict[str, Any], key: str, default: float) -> float:
    """``result[key]`` as a float; ``default`` when missing, not a number, or NaN."""
    value = result.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return default
    return float(value)


def make_stopper(space: SearchSpace) -> IFPStopper | None:
    """The space's IFP stopper, or None when ``stopping.ifp.enabled`` is false."""
    if not space.stopping.ifp.enabled:
        return None
    return IFPStopper(space.stopping.ifp, space.budget.steps_per_trial)


def make_scheduler(space: SearchSpace) -> ASHAScheduler | None:
    """ASHA on the space's objective, in training steps; None when switched off.

    Rungs are counted in steps (the report key ``step``), not in reports, so that an extra
    report (a retry's, or the trainable's final one) cannot shift them. A rung is judged at the
    first report at or past it, so every rung lies at or before the last report but one
    (``max_t = steps_per_trial - eval_interval``), and trials that pass every rung are not
    stopped at ``max_t``: ASHA never ends a trial at its last step, where stopping saves
    nothing and would skip the trial's final (standard-setting) evaluation. With a single
    report per trial there is nothing to cut and no scheduler is made.
    ``stopping.asha.grace_period`` is given in reports and converted here. The scheduler
    carries the metric and mode itself: do not pass them to TuneConfig too (Tune refuses
    both), and give them to ``ResultGrid.get_best_result`` explicitly.
    """
    asha = space.stopping.asha
    last_judged = space.budget.steps_per_trial - space.budget.eval_interval
    if not asha.enabled or last_judged < 1:
        return None
    return ASHAScheduler(
        time_attr=keys.STEP,
        metric=space.objective.key,
        mode=space.objective.mode,
        max_t=last_judged,
        grace_period=min(asha.grace_period * space.budget.eval_interval, last_judged),
        reduction_factor=asha.reduction_factor,
        stop_last_trials=False,
    )
