"""What every section says of the unit files it rests on, and which of them still count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import retrain

LISTED_COMMITS = 3  # more than this and the line names a count: each unit file names its own


def provenance(rows: Sequence[dict[str, Any]]) -> str:
    cpus = sorted({f"{r['machine']['cpu']} ({r['machine']['logical_cpus']} CPUs)" for r in rows})
    minutes = sum(r["wall_s"] for r in rows) / 60
    files = f"{len(rows)} unit file{'s' if len(rows) != 1 else ''}"
    return (f"{files}, {_commits(rows)}, machine(s) {'; '.join(cpus)}, "
            f"{minutes:.0f} min of unit wall time")  # fmt: skip


def _commits(rows: Sequence[dict[str, Any]]) -> str:
    commits = sorted({r["commit"][:12] for r in rows})
    if len(commits) <= LISTED_COMMITS:
        return f"commit(s) {', '.join(commits)}"
    return f"{len(commits)} commits (main moves on as units land; each file names its own)"


def current(row: dict[str, Any]) -> bool:
    """Whether the row's schedule was picked from the bank as committed now, and trained for
    the bank's steps (times the row's scale; a shortened smoke run is not evidence)."""
    parts = sorted(p.name for p in (retrain.BANKS / retrain.ARMS[row["arm"]].bank).glob("part-*"))
    bank_steps = row["source"].get("bank_steps", row["steps"])
    return row["source"].get("bank_parts") == parts and row["steps"] == bank_steps * row.get(
        "scale", 1
    )


def arms(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Experiment 1's current units by arm (a unit whose bank grew since is left out)."""
    return {k: [r for r in rows if r["arm"] == k and current(r)] for k in retrain.ARMS}
