"""Experiment 5: the IFP stopper and ASHA replayed on the committed DEFT bank: savings against
regret, with intervals over replays."""

from __future__ import annotations

import math
from typing import Any

from deft_tune.tables import markdown_table

from .. import retrain
from ..intervals import SEED

REPLAYS = 200


def experiment_5(parts: list[str]) -> str:
    from deft_tune.search.replay.bankfile import read_banks

    lines = ["## 5. The IFP stopper and ASHA, replayed on the committed DEFT bank", ""]
    if not parts:
        return "\n".join(lines + ["No DEFT bank part is committed yet.", ""])
    bank = read_banks([retrain.ROOT / p for p in parts])
    whole, half = _replays(bank, parts, None), _replays(bank, parts, len(bank.trials) // 2)
    noise = whole.spread.noise_of_mean if whole.spread else math.nan
    cost = sum(p.wall_s or 0 for p in bank.parts) / 60
    commits = sorted({p.commit[:12] for p in bank.parts})
    lines += [
        f"{len(parts)} committed parts: {len(bank.trials)} trials, each with its seeds, "
        f"{bank.budget['steps_per_trial']:,} steps, every stopper off (recorded by commit(s) "
        f"{', '.join(commits)} in {cost:.0f} min of search wall time). Each rule is replayed "
        f"{REPLAYS} times in random trial orders, on the whole bank and on random searches of "
        f"half its trials (where the best trial is not always present, so regret varies). "
        "Median over replays [bootstrap 95% interval]; regret is the bank's best objective minus "
        "the one the rule returns (with half the trials `none` has regret too: the best trial "
        "is not always drawn), and a rule's own cost is its regret beyond `none`'s in the same "
        f"replay; the seed noise of a schedule's mean is {noise:.4f}.",
        "",
        f"`{whole.command}`, and the same with `--trials {len(bank.trials) // 2}`:",
        "",
        markdown_table(_rule_rows(whole, "all", noise) + _rule_rows(half, "half", noise)),
        "",
    ]
    return "\n".join(lines)


def _replays(bank: Any, parts: list[str], trials: int | None) -> Any:
    from deft_tune.search.replay.command import replay_bank
    from deft_tune.search.replay.options import ReplayOptions

    rules = ("none", "ifp", "asha", "ifp+asha")
    options = ReplayOptions(experiment=None, banks=tuple(parts), rules=rules, replays=REPLAYS,
                            seed=SEED, trials=trials, log_mlflow=False)  # fmt: skip
    return replay_bank(bank, options)


def _rule_rows(result: Any, trials: str, noise: float) -> list[dict[str, str]]:
    from deft_tune.search.replay.summary import describe, regret_beyond_none

    rows = []
    for s in result.summaries:
        extra = regret_beyond_none(result, s.rule)
        beyond = describe(extra, SEED)
        lost = 100 * sum(e > 0 for e in extra) / len(extra) if extra else math.nan
        within = beyond is not None and beyond.median_ci[1] <= noise
        rows.append({"trials per search": trials, "rule": s.rule,
                     "savings % of trial-steps": s.savings.text(3, 100),
                     "regret": s.regret.text() if s.regret else "-",
                     "regret beyond none": beyond.text() if beyond else "-",
                     "replays it lost to none (%)": f"{lost:.0f}",
                     "trials stopped (median)": f"{s.stopped:g}",
                     "regret's interval within seed noise": "yes" if within else "no"})  # fmt: skip
    return rows
