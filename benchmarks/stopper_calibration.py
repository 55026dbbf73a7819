"""The IFP stopper's defaults judged on the committed DEFT bank: one field at a time swept away
from the shipped defaults, every value replayed on whole searches of the bank and on random
searches of half its trials (where the best schedule is not always drawn).

    python -m benchmarks.stopper_calibration [--bank FILE ...] [--write]

Per field, value, search size and rule: trial-steps saved against no stopping, and the regret a
rule adds beyond no stopping in the same replay (its own cost: with half the trials no stopping
has regret too), as medians with bootstrap 95% intervals over the replays, and the share of
replays in which the rule returned a worse schedule than no stopping would have. ``--write``
saves benchmarks/results/stopper_calibration.json and rewrites the ``stopper-calibration`` block
of docs/search.md. Seconds to minutes on 2 cores; nothing is trained.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from deft_tune.fileio import atomic_write_text
from deft_tune.search.replay.bankfile import read_banks
from deft_tune.search.replay.command import replay_bank
from deft_tune.search.replay.options import ReplayOptions
from deft_tune.search.replay.rules import with_ifp_field
from deft_tune.search.replay.summary import bootstrap_ci, regret_beyond_none
from deft_tune.search.space import IFPStopping
from deft_tune.search.tracking.provenance import commit
from deft_tune.tables import markdown_table, write_block

ROOT = Path(__file__).resolve().parents[1]
BANK = "benchmarks/banks/dsprites/part-*.parquet"
RESULT = ROOT / "benchmarks" / "results" / "stopper_calibration.json"
DOC, BLOCK = ROOT / "docs" / "search.md", "stopper-calibration"
REPLAYS, SEED = 200, 0
RULES = ("none", "ifp", "ifp+asha")
# Each field's values around its default (IFPStopping); the default is among them.
SWEEPS: dict[str, tuple[Any, ...]] = {
    "no_capture": (True, False),
    "capture_threshold": (None, 0.05, 0.2, 0.5),
    "collapse_kl": (0.05, 0.1, 0.3),
    "collapse_grace_fraction": (0.1, 0.25, 0.5),
    "grace_fraction": (0.1, 0.25, 0.5),
    "diffusion_threshold": (0.5, 0.7, 0.9, 1.0),
}


def calibrate(parts: list[str]) -> dict[str, Any]:
    bank = read_banks([ROOT / p for p in parts])
    half = len(bank.trials) // 2
    rows = []
    for field, values in SWEEPS.items():
        for value in values:
            swept = dataclasses.replace(
                bank, space=with_ifp_field(bank.raw_space, field, value, bank.budget)
            )
            for trials in (None, half):
                options = ReplayOptions(None, banks=tuple(parts), rules=RULES, replays=REPLAYS,
                                        seed=SEED, trials=trials, log_mlflow=False)  # fmt: skip
                result = replay_bank(swept, options)
                rows += _rows(result, field, value, trials or len(bank.trials))
    spread = result.spread
    return {
        "bank": parts,
        "trials": len(bank.trials),
        "steps_per_trial": bank.budget["steps_per_trial"],
        "replays": REPLAYS,
        "seed": SEED,
        "noise_of_mean": spread.noise_of_mean if spread else math.nan,
        "defaults": {field: getattr(IFPStopping(), field) for field in SWEEPS},
        "commit": commit(),
        "rows": rows,
    }


def _rows(result: Any, field: str, value: Any, trials: int) -> list[dict[str, Any]]:
    found = []
    for summary in result.summaries:
        if summary.rule == "none":
            continue
        extra = regret_beyond_none(result, summary.rule)
        found.append({
            "field": field,
            "value": value,
            "trials": trials,
            "rule": summary.rule,
            "savings_pct": _stat(summary.savings, 100),
            "regret_beyond_none": _mean(extra),
            "lost_pct": 100 * sum(e > 0 for e in extra) / len(extra) if extra else None,
            "stopped": summary.stopped,
        })  # fmt: skip
    return found


def _mean(values: list[float]) -> list[float] | None:
    """Mean and bootstrap 95% interval: a rule's losses are rare, so medians hide them."""
    if not values:
        return None
    return [float(np.mean(values)), *bootstrap_ci(values, _mean_last_axis, SEED)]


def _mean_last_axis(values: np.ndarray) -> np.ndarray | float:
    return np.mean(values, axis=-1)


def _stat(stat: Any, scale: float = 1.0) -> list[float]:
    return [stat.median * scale, stat.median_ci[0] * scale, stat.median_ci[1] * scale]


def _text(stat: list[float] | None, digits: int = 3) -> str:
    if stat is None:
        return "-"
    return "{:.{d}g} [{:.{d}g}, {:.{d}g}]".format(*stat, d=digits)


def table(found: dict[str, Any]) -> str:
    """One line per field, value and rule: whole searches beside searches of half the trials."""
    whole, half = found["trials"], found["trials"] // 2
    keyed = {(r["field"], repr(r["value"]), r["rule"], r["trials"]): r for r in found["rows"]}
    lines = []
    for row in (r for r in found["rows"] if r["trials"] == whole):
        other = keyed[(row["field"], repr(row["value"]), row["rule"], half)]
        default = found["defaults"][row["field"]] == row["value"]
        line = {"field": row["field"], "value": f"{row['value']}{' (default)' if default else ''}",
                "rule": row["rule"]}  # fmt: skip
        for size, r in ((f"{whole} trials", row), (f"{half} trials", other)):
            line[f"savings % ({size})"] = _text(r["savings_pct"])
            line[f"regret beyond none, mean ({size})"] = _text(r["regret_beyond_none"], 2)
            line[f"replays lost % ({size})"] = f"{r['lost_pct']:.0f}"
        lines.append(line)
    return markdown_table(lines)


def markdown(found: dict[str, Any]) -> str:
    return (
        f"Generated by `python -m benchmarks.stopper_calibration --write` (commit "
        f"{found['commit'][:12]}) on {len(found['bank'])} parts of the DEFT bank: "
        f"{found['trials']} trials x their seeds, {found['steps_per_trial']:,} steps; each value "
        f"replayed {found['replays']} times (seed {found['seed']}) on whole searches and on "
        f"searches of {found['trials'] // 2} random trials, 2 at a time. Median [bootstrap 95% "
        "interval] over replays for savings, mean [interval] for the regret beyond none (the "
        "objective no stopping returns in the same replay minus the rule's; its losses are rare, "
        "so a median hides them); replays lost: the share where that regret is > 0. The seed "
        f"noise of a schedule's mean is {found['noise_of_mean']:.4f}.\n\n" + table(found)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", nargs="+", default=None, help=f"bank parts (default {BANK})")
    parser.add_argument("--write", action="store_true", help="save the JSON and the doc block")
    args = parser.parse_args(argv)
    parts = args.bank or sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob(BANK))
    found = calibrate(parts)
    print(markdown(found))
    if args.write:
        atomic_write_text(RESULT, json.dumps(found, indent=1) + "\n")
        write_block(DOC, BLOCK, markdown(found), strict=True)
        print(f"wrote {RESULT} and the {BLOCK} block of {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
