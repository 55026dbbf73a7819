"""A replay's results as text: the terminal tables and the Markdown block of docs/search.md.

Three tables: the bank's spread (schedules against seeds), one row per rule (trial-steps,
savings, simulated wall time, the objective returned and its regret, each a median with its
bootstrap 95% interval, and the IQM of savings and regret), and, with ``--sweep``, one row per
value of the swept field and rule. The goal the issue set (>= 40% fewer trial-steps than no
stopping, with regret inside the bank's seed noise) is judged per rule in one line each.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from deft_tune.search.replay.options import yaml_text
from deft_tune.search.replay.summary import ReplayResult, RuleSummary, Spread, Stat
from deft_tune.tables import format_table, markdown_table

__all__ = [
    "GOAL_SAVINGS",
    "goal_lines",
    "markdown",
    "rule_rows",
    "spread_rows",
    "sweep_rows",
    "text",
]

GOAL_SAVINGS = 0.40  # fewer trial-steps than no stopping, as a share
FIGURES = ("anytime.png", "sweep.png")  # the command writes them beside replay.md


def _stat(stat: Stat | None, scale: float = 1.0, iqm: bool = False, digits: int = 3) -> str:
    return "-" if stat is None else stat.text(digits, scale, of_iqm=iqm)


def rule_rows(summaries: tuple[RuleSummary, ...]) -> list[dict[str, Any]]:
    return [
        {
            "rule": s.rule,
            "trial-steps": _stat(s.trial_steps, digits=4),
            "savings %": _stat(s.savings, 100),
            "savings % (IQM)": _stat(s.savings, 100, iqm=True),
            "wall s": _stat(s.wall_s),
            "stopped": f"{s.stopped:g}",
            "objective": _stat(s.best),
            "regret": _stat(s.regret),
            "regret (IQM)": _stat(s.regret, iqm=True),
        }
        for s in summaries
    ]


def spread_rows(spread: Spread | None) -> list[dict[str, Any]]:
    if spread is None:
        return []
    return [
        {
            "schedules": spread.schedules,
            "seeds each": spread.replicas,
            "between schedules (sd of means)": spread.between,
            "within (sd of seeds)": spread.within,
            "noise of a mean": spread.noise_of_mean,
            "F": spread.f_ratio,
            "p (ANOVA)": spread.p_value,
            "schedules differ beyond noise (p < 0.05)": "yes" if spread.separated else "no",
        }
    ]


def sweep_rows(result: ReplayResult) -> list[dict[str, Any]]:
    return [
        {
            "value": yaml_text(point.value),
            "rule": point.summary.rule,
            "savings %": _stat(point.summary.savings, 100),
            "regret": _stat(point.summary.regret),
            "stopped": f"{point.summary.stopped:g}",
        }
        for point in result.sweep
    ]


def goal_lines(result: ReplayResult) -> list[str]:
    """Per stopping rule: is the goal met (median savings >= 40%, median regret within the
    noise of a schedule's mean)?"""
    noise = result.spread.noise_of_mean if result.spread else None
    lines = []
    for s in result.summaries:
        if s.rule == "none":
            continue
        saves = s.savings.median >= GOAL_SAVINGS
        regret = s.regret.median if s.regret else None
        within = noise is not None and regret is not None and regret <= noise
        verdict = "met" if saves and within else "not met"
        noise_text = f"{noise:.3g}" if noise is not None else "unknown (one seed per schedule)"
        lines.append(
            f"{s.rule}: {100 * s.savings.median:.3g}% fewer trial-steps, median regret "
            f"{regret if regret is None else f'{regret:.3g}'} against seed noise {noise_text}: "
            f"goal (>= {100 * GOAL_SAVINGS:.0f}% fewer, regret within noise) {verdict}"
        )
    return lines


def _header(result: ReplayResult) -> list[str]:
    bank = result.bank
    replicas = max((len(t.replica_finals) for t in bank.trials), default=1)
    return [
        f"bank {bank.experiment} (parent run {bank.parent_run_id}): {len(bank.trials)} trials "
        f"x {replicas} seeds, {bank.space.budget.steps_per_trial} steps each, objective "
        f"{bank.objective} ({bank.mode}), best {bank.best:.4g}",
        f"{len(result.orders)} replays of {len(result.orders[0])} trials in random orders, "
        f"{result.concurrency} at a time",
    ]


def text(result: ReplayResult) -> str:
    """What the command prints."""
    parts = [*_header(result), result.command, "", "spread of the final objective:"]
    parts.append(
        format_table(spread_rows(result.spread))
        if result.spread
        else "(needs two or more seeds per schedule)"
    )
    parts += [
        "",
        "rules (median [95% interval] over replays):",
        format_table(rule_rows(result.summaries)),
    ]
    if result.sweep:
        parts += ["", f"sweep of {result.sweep_field}:", format_table(sweep_rows(result))]
    return "\n".join([*parts, "", *goal_lines(result)])


def markdown(result: ReplayResult, folder: str = "") -> str:
    """The generated block of docs/search.md; ``folder``: where the figures lie, seen from the
    document ("" when beside it)."""
    prefix = f"{folder.rstrip('/')}/" if folder else ""
    parts = [
        f"Measured {date.today().isoformat()} with `{result.command}`.",
        "",
        *(f"- {line}" for line in _header(result)),
        "",
        "Spread of the final objective (standard setting) over the bank's schedules and seeds:",
        "",
        markdown_table(spread_rows(result.spread)) if result.spread else "(one seed each)",
        "",
        "Rules, median [bootstrap 95% interval] over replays; savings = 1 - trial-steps(rule) / "
        "trial-steps(none) in the same replay:",
        "",
        markdown_table(rule_rows(result.summaries)),
    ]
    if result.sweep:
        parts += ["", f"Sweep of `{result.sweep_field}`:", "", markdown_table(sweep_rows(result))]
    parts += ["", *(f"- {line}" for line in goal_lines(result))]
    parts += ["", f"![best objective so far against trial-steps]({prefix}{FIGURES[0]})"]
    if result.sweep:
        parts += ["", f"![savings against regret per value]({prefix}{FIGURES[1]})"]
    return "\n".join(parts)
