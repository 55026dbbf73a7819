"""One replay: the bank's trials in a given order, N at a time, in simulated time.

Every running trial's next report arrives when its recorded cost has passed; reports are handed
to the rule in the order they arrive (ties: the trial started first goes first). A trial ends
at its final report or when the rule stops it; its slot takes the next trial at once (no
start-up cost: the bank's first report already carries its trial's set-up time). What the rule
would have returned is chosen by the live search's own ranking (:func:`deft_tune.results.ranked`):
trials that ran to the end by their standard-setting objective first, else the best stopped
trial by the last score it reported.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from deft_tune import report_keys as keys
from deft_tune.results import report
from deft_tune.search.replay.bank import BankTrial, CurveBank
from deft_tune.search.replay.rules import Judge

__all__ = ["ReplayRun", "TrialOutcome", "replay", "replay_many", "replay_orders"]

COMPLETED = "completed"


@dataclass(frozen=True)
class TrialOutcome:
    trial_id: str
    end: str  # "completed", or why the rule stopped it ("no_capture", "asha", ...)
    step: int  # the step of its last report
    value: float  # what the live search ranks it by (standard if completed, else last fast)


@dataclass(frozen=True)
class ReplayRun:
    rule: str
    order: tuple[str, ...]  # the trials in start order
    outcomes: tuple[TrialOutcome, ...]  # in the order the trials ended
    trial_steps: int  # steps trained, summed over trials
    unstopped_steps: int  # the same trials' steps without any rule
    wall_s: float  # simulated: the end of the last trial
    best: float | None  # the objective of the trial the search would have returned
    regret: float | None  # the bank's best minus that (for max; the reverse for min)
    curve: tuple[tuple[int, float], ...]  # (trial-steps so far, best so far) at each trial end

    @property
    def savings(self) -> float:
        return 1.0 - self.trial_steps / self.unstopped_steps

    @property
    def stopped(self) -> int:
        return sum(o.end != COMPLETED for o in self.outcomes)


@dataclass
class _Running:
    trial: BankTrial
    index: int = 0  # the next report (len(reports): the final one)
    steps: int = 0  # steps trained so far

    def next_report(self) -> Any:
        reports = self.trial.reports
        return reports[self.index] if self.index < len(reports) else self.trial.final

    @property
    def at_final(self) -> bool:
        return self.index == len(self.trial.reports)


def replay_orders(count: int, replays: int, seed: int, trials: int | None) -> list[list[int]]:
    """``replays`` random orders of ``count`` trials (the first ``trials`` of each), seeded."""
    rng = np.random.default_rng(seed)
    take = count if trials is None else min(trials, count)
    return [[int(i) for i in rng.permutation(count)[:take]] for _ in range(replays)]


def replay(
    bank: CurveBank, judge: Judge, order: Sequence[int], concurrency: int, rule: str = ""
) -> ReplayRun:
    """Replay ``bank``'s trials ``order`` (indices) under ``judge``, ``concurrency`` at a time."""
    queue = [bank.trials[i] for i in order]
    events: list[tuple[float, int, _Running]] = []
    tick = 0  # tie-break: the earlier-started trial's report first

    def start(now: float) -> None:
        nonlocal tick
        if queue:
            running = _Running(queue.pop(0))
            judge.add(running.trial.trial_id)
            heapq.heappush(events, (now + running.next_report().cost_s, tick, running))
            tick += 1

    for _ in range(min(concurrency, len(queue))):  # more slots than trials stay idle
        start(0.0)
    ended: list[TrialOutcome] = []
    curve: list[tuple[int, float | None]] = []
    steps, now = 0, 0.0
    while events:
        now, rank, running = heapq.heappop(events)
        current = running.next_report()
        steps += current.step - running.steps
        running.steps = current.step
        # Tune hands each rule a fresh dict (the stopper writes its reason into it): the
        # bank's recorded reports stay as recorded for the next replay.
        outcome = _judge(bank, judge, running, dict(current.result))
        if outcome is None:
            running.index += 1
            heapq.heappush(events, (now + running.next_report().cost_s, rank, running))
            continue
        ended.append(outcome)
        curve.append((steps, _best(bank, ended)[0]))
        start(now)
    best, regret = _best(bank, ended)
    return ReplayRun(
        rule=rule,
        order=tuple(bank.trials[i].trial_id for i in order),
        outcomes=tuple(ended),
        trial_steps=steps,
        unstopped_steps=sum(bank.trials[i].steps for i in order),
        wall_s=now,
        best=best,
        regret=regret,
        curve=tuple((s, v) for s, v in curve if v is not None),
    )


def _judge(
    bank: CurveBank, judge: Judge, running: _Running, result: dict[str, float]
) -> TrialOutcome | None:
    """The trial's outcome if it ends at this result, else None (it goes on)."""
    trial = running.trial
    reason = judge.result(trial.trial_id, result)
    if reason is None and not running.at_final:
        return None
    completed = running.at_final and reason in (None, "asha")  # Tune: its last result is final
    judge.end(trial.trial_id, result, completed)
    value = trial.final_objective if completed else result.get(bank.objective, float("nan"))
    return TrialOutcome(
        trial.trial_id, COMPLETED if completed else str(reason), running.steps, float(value)
    )


def _best(bank: CurveBank, ended: Sequence[TrialOutcome]) -> tuple[float | None, float | None]:
    """(objective, regret) of the trial the live search would return among ``ended``."""
    chosen = report.ranked([_record(bank, o) for o in ended], bank.objective, bank.mode)
    if not chosen:
        return None, None
    value = report.objective_value(chosen[0], bank.objective)
    return value, (bank.regret(value) if value is not None else None)


def _record(bank: CurveBank, outcome: TrialOutcome) -> SimpleNamespace:
    """A trial record as report.ranked reads one: the standard score as ``final/<key>`` for a
    completed trial, the last reported score alone for a stopped one."""
    metrics = {bank.objective: outcome.value}
    if outcome.end == COMPLETED:
        metrics[keys.final_key(bank.objective)] = outcome.value
    status = "FINISHED" if outcome.end == COMPLETED else "KILLED"
    return SimpleNamespace(trial_id=outcome.trial_id, status=status, metrics=metrics)


def replay_many(
    bank: CurveBank,
    judges: Callable[[], Judge],
    orders: Sequence[Sequence[int]],
    concurrency: int,
    rule: str = "",
) -> list[ReplayRun]:
    """One replay per order, each with a fresh judge (no state carried between replays)."""
    return [replay(bank, judges(), order, concurrency, rule) for order in orders]
