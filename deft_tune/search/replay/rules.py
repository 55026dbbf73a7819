"""The stopping rules a replay compares, driven through the classes the live search uses.

A rule (:data:`~deft_tune.search.replay.options.RULES`) switches the IFP stopper and ASHA on or
off in the bank's space and builds them with the live factories (``make_stopper``,
``make_scheduler``): every other setting (thresholds, ASHA's grace period and reduction factor,
the budget) is the space's, and a sweep sets one ``stopping.ifp`` field in the space's YAML and
validates it again, exactly as a space file would.

:class:`Judge` drives them as Tune's controller does (ray/tune/execution/tune_controller.py in
Ray 2.60: ``_process_trial_result`` and ``stop_trial``):

- a new trial: ``scheduler.on_trial_add``;
- each result: the stopper first; only when it does not stop, ``scheduler.on_trial_result``;
  a stop from either ends the trial;
- a trial that ran to its end: Tune hands its last result once more (marked done) to the
  stopper, not to the scheduler;
- every ended trial: ``scheduler.on_trial_complete`` with its last result, so a trial the IFP
  stopper ended enters ASHA's rungs with its last score, as it does live.

ASHA reads only ``trial.trial_id`` of the trial object and ignores the controller, so a
stand-in carries the id (checked against a real Tune run in tests/search/test_replay.py).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from ray.tune.schedulers import TrialScheduler

from deft_tune.search.space import SearchSpace, space_from_dict
from deft_tune.search.stopping import IFPStopper, make_scheduler, make_stopper

__all__ = ["Judge", "make_judge", "rule_space", "with_ifp_field"]

ASHA_REASON = "asha"  # deft.stop_reason of a trial the scheduler cut (tracking.layout)


@dataclass(frozen=True)
class _TrialStandIn:
    """What ASHA reads of a Tune trial: its id."""

    trial_id: str


class Judge:
    """One rule's stopper and scheduler (either may be None), called in Tune's order."""

    def __init__(self, stopper: IFPStopper | None, scheduler: Any | None) -> None:
        self.stopper = stopper
        self.scheduler = scheduler
        self._trials: dict[str, _TrialStandIn] = {}

    def add(self, trial_id: str) -> None:
        trial = self._trials[trial_id] = _TrialStandIn(trial_id)
        if self.scheduler is not None:
            self.scheduler.on_trial_add(None, trial)

    def result(self, trial_id: str, result: dict[str, float]) -> str | None:
        """The reason the rule stops the trial at this result, or None to go on."""
        if self.stopper is not None and self.stopper(trial_id, result):
            return self.stopper.reason(trial_id) or "stopper"
        if self.scheduler is not None:
            decision = self.scheduler.on_trial_result(None, self._trials[trial_id], result)
            if decision == TrialScheduler.STOP:
                return ASHA_REASON
        return None

    def end(self, trial_id: str, last: dict[str, float], completed: bool) -> None:
        """The trial ended (``completed``: it ran to its end; else a rule stopped it)."""
        if completed and self.stopper is not None:
            self.stopper(trial_id, {**last, "done": True})  # Tune's duplicate of the last result
        if self.scheduler is not None:
            self.scheduler.on_trial_complete(None, self._trials[trial_id], last)


def rule_space(space: SearchSpace, rule: str) -> SearchSpace:
    """``space`` with the IFP stopper and ASHA switched on as ``rule`` names them, off if not."""
    parts = rule.split("+")
    ifp = dataclasses.replace(space.stopping.ifp, enabled="ifp" in parts)
    asha = dataclasses.replace(space.stopping.asha, enabled="asha" in parts)
    return dataclasses.replace(
        space, stopping=dataclasses.replace(space.stopping, ifp=ifp, asha=asha)
    )


def make_judge(space: SearchSpace, rule: str) -> Judge:
    """A fresh judge (no trial seen yet) of ``rule`` over ``space``, built by the live code."""
    ruled = rule_space(space, rule)
    return Judge(make_stopper(ruled), make_scheduler(ruled))


def with_ifp_field(
    raw_space: dict[str, Any], field: str, value: Any, budget: dict[str, int]
) -> SearchSpace:
    """The space of ``raw_space`` (its YAML) with ``stopping.ifp.<field>: value`` written in,
    loaded and checked as that file would be, with the budget the bank ran."""
    raw = copy.deepcopy(raw_space)
    stopping = raw.setdefault("stopping", {}) or {}
    raw["stopping"] = stopping
    stopping["ifp"] = {**(stopping.get("ifp") or {}), field: value}
    return space_from_dict(raw, budget_overrides=budget)
