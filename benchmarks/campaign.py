"""The evidence campaign: hours of experiments as a plan of short units, each leaving one small
committed file, so that the work adds up across sittings and machines.

    python -m benchmarks.campaign status              # done, missing and failed units, hours left
    python -m benchmarks.campaign run --minutes 170   # missing units in plan order, niced
    python -m benchmarks.campaign run --only bank-dsprites-p0 --minutes 60

The plan (benchmarks/campaign.yaml) lists every long unit the docs depend on: its commands (the
CLI a user would type; ``{out}`` is where the unit's file goes, ``{tmp}`` a scratch folder that
is deleted afterwards), its estimated cost in minutes and the file it leaves under benchmarks/.

``run`` takes missing units in plan order and starts none that would not finish in the minutes
left (the measured cost of a unit of the same group when there is one, else the plan's
estimate). A unit runs niced in its own process group; its file is written to a scratch path
and renamed into place only when every command succeeded, so a campaign killed at any moment
leaves every finished unit's file intact and no partial file (the next ``run`` clears the
scratch of the unit that was in flight). A failed unit is recorded with its error in the ledger
and the campaign goes on. The ledger (benchmarks/results/campaign_ledger.json) keeps, per unit,
when it ran, its wall time, the commit and the machine: commit it with the unit files.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from benchmarks.files import read_json_object
from deft_tune.errors import ConfigError
from deft_tune.fileio import atomic_write_text
from deft_tune.search.tracking.provenance import commit, machine

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "benchmarks" / "campaign.yaml"
LEDGER = ROOT / "benchmarks" / "results" / "campaign_ledger.json"
SCRATCH = ROOT / "benchmarks" / ".campaign-scratch"  # git-ignored
NICE = 10
UNIT_KEYS = {"id", "group", "cost_min", "output", "commands", "about", "needs"}


@dataclass(frozen=True)
class Unit:
    id: str
    group: str
    cost_min: float  # the plan's estimate
    output: Path  # relative to the repository root
    commands: tuple[str, ...]
    about: str = ""
    needs: tuple[Path, ...] = ()  # files (other units' outputs) that must exist first

    @property
    def waits_for(self) -> list[Path]:
        return [need for need in self.needs if not (ROOT / need).is_file()]

    @property
    def path(self) -> Path:
        return ROOT / self.output

    @property
    def done(self) -> bool:
        return self.path.is_file()


# --- the plan and the ledger ----------------------------------------------------------------


def load_plan(path: Path = PLAN) -> list[Unit]:
    """The plan's units in order; ConfigError (one line) for anything malformed."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        why = " ".join(str(exc).split())[:200]
        raise ConfigError(f"campaign plan {path} cannot be read ({why})") from None
    entries = raw.get("units") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"campaign plan {path} must hold a non-empty list under 'units'")
    units = [_unit(path, i, entry) for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for unit in units:
        if unit.id in seen or any(u.output == unit.output and u.id != unit.id for u in units):
            raise ConfigError(f"campaign plan {path}: unit {unit.id!r} repeats an id or output")
        seen.add(unit.id)
    return units


def _unit(path: Path, index: int, entry: Any) -> Unit:
    where = f"campaign plan {path}, units[{index}]"
    if not isinstance(entry, dict) or not {"id", "cost_min", "output", "commands"} <= set(entry):
        raise ConfigError(f"{where} needs id, cost_min, output and commands")
    unknown = set(entry) - UNIT_KEYS
    if unknown:
        raise ConfigError(
            f"{where} has unknown keys {sorted(unknown)} (allowed {sorted(UNIT_KEYS)})"
        )
    commands = entry["commands"]
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise ConfigError(f"{where}.commands must be a list of command lines")
    output = Path(str(entry["output"]))
    if output.is_absolute() or ".." in output.parts or output.parts[:1] != ("benchmarks",):
        raise ConfigError(f"{where}.output must be a path under benchmarks/, got {output}")
    needs = entry.get("needs", [])
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise ConfigError(f"{where}.needs must be a list of files (other units' outputs)")
    cost = entry["cost_min"]
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost <= 0:
        raise ConfigError(f"{where}.cost_min must be a number of minutes > 0")
    return Unit(str(entry["id"]), str(entry.get("group", entry["id"])), float(cost), output,
                tuple(commands), str(entry.get("about", "")),
                tuple(Path(n) for n in needs))  # fmt: skip


def read_ledger() -> dict[str, dict[str, Any]]:
    """Each unit's last run; ConfigError (one line) when the file is not a JSON object."""
    if not LEDGER.is_file():
        return {}
    fix = f"restore it (git checkout -- {LEDGER.relative_to(ROOT)})"
    return read_json_object(LEDGER, "campaign ledger", fix)


def _record(unit: Unit, entry: dict[str, Any]) -> None:
    ledger = read_ledger()
    ledger[unit.id] = entry
    atomic_write_text(LEDGER, json.dumps(ledger, indent=1, sort_keys=True) + "\n")


def expected_minutes(unit: Unit, ledger: dict[str, dict[str, Any]]) -> float:
    """The median measured unit of the same group (one slow unit on a loaded machine must not
    keep its whole group from starting), else the plan's estimate."""
    measured = [e["wall_s"] / 60 for e in ledger.values()
                if e.get("group") == unit.group and e.get("status") == "done"]  # fmt: skip
    return statistics.median(measured) if measured else unit.cost_min


# --- status -----------------------------------------------------------------------------------


def status(units: list[Unit]) -> str:
    ledger = read_ledger()
    lines, left = [], 0.0
    for unit in units:
        entry = ledger.get(unit.id, {})
        if unit.done:
            state = f"done     {entry.get('wall_s', 0) / 60:6.1f} min measured"
        elif unit.waits_for:
            first, more = unit.waits_for[0], len(unit.waits_for) - 1
            state = f"waits    for {first}" + (f" and {more} more" if more else "")
            left += expected_minutes(unit, ledger)
        elif entry.get("status") == "failed":
            state = f"FAILED   {entry.get('error', '')[:80]}"
            left += expected_minutes(unit, ledger)
        else:
            state = f"missing  {expected_minutes(unit, ledger):6.1f} min expected"
            left += expected_minutes(unit, ledger)
        lines.append(f"{unit.id:32s} {state}  -> {unit.output}")
    done = sum(u.done for u in units)
    lines.append(f"{done} of {len(units)} units done; {left / 60:.1f} h of units left")
    return "\n".join(lines)


# --- running --------------------------------------------------------------------------------


def run(units: list[Unit], minutes: float, only: list[str] | None = None) -> int:
    """Run missing units in plan order within ``minutes``; the number of units that failed."""
    _clear_scratch()
    deadline = time.monotonic() + minutes * 60
    chosen = [u for u in units if only is None or u.id in only]
    failures = 0
    for unit in chosen:
        if unit.done:
            continue
        if unit.waits_for:
            print(f"skip {unit.id}: waits for {', '.join(map(str, unit.waits_for))}", flush=True)
            continue
        left = (deadline - time.monotonic()) / 60
        need = expected_minutes(unit, read_ledger())
        if need > left:
            print(f"skip {unit.id}: needs ~{need:.0f} min, {left:.0f} min left", flush=True)
            continue
        failures += not run_unit(unit)
    return failures


def run_unit(unit: Unit) -> bool:
    """Run one unit's commands; its file lands only if all of them succeeded."""
    scratch = SCRATCH / unit.id
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "tmp").mkdir(parents=True)
    staged = scratch / unit.path.name
    started = time.time()
    print(f"start {unit.id} ({datetime.now(timezone.utc):%H:%M} UTC)", flush=True)
    try:
        for line in unit.commands:
            _run_command(line, scratch, staged)
        if not staged.is_file():
            raise RuntimeError(f"its commands wrote no {{out}} file ({unit.path.name})")
    except (RuntimeError, OSError) as exc:
        _record(unit, _entry(unit, "failed", started, error=str(exc)[-500:]))
        print(f"FAILED {unit.id}: {exc}", flush=True)
        return False
    finally:
        shutil.rmtree(scratch / "tmp", ignore_errors=True)
    unit.path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, unit.path)  # same file system: the file appears whole or not at all
    _record(unit, _entry(unit, "done", started))
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"done {unit.id} in {(time.time() - started) / 60:.1f} min -> {unit.output}", flush=True)
    return True


def _entry(unit: Unit, state: str, started: float, error: str = "") -> dict[str, Any]:
    entry = {"status": state, "group": unit.group, "wall_s": round(time.time() - started, 1),
             "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "commit": commit(), "machine": machine(), "commands": list(unit.commands)}  # fmt: skip
    if error:
        entry["error"] = error
    return entry


def _argv(line: str, scratch: Path, staged: Path) -> list[str]:
    words = [w.format(tmp=scratch / "tmp", out=staged) for w in shlex.split(line)]
    if words[0] == "deft-tune":
        return [sys.executable, "-m", "deft_tune", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    return words


def _run_command(line: str, scratch: Path, staged: Path) -> None:
    log = scratch / "log.txt"
    with log.open("a") as handle:
        process = subprocess.Popen(
            _argv(line, scratch, staged), cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=lambda: os.nice(NICE),
        )  # fmt: skip
        (scratch / "pgid").write_text(str(process.pid))
        try:
            code = process.wait()
        except BaseException:  # interrupted: take the unit's whole process group with us
            _kill_group(process.pid)
            raise
    if code != 0:
        tail = log.read_text()[-400:].strip().replace("\n", " | ")
        raise RuntimeError(f"exit {code} from `{line}`: {tail}")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def _clear_scratch() -> None:
    """The scratch of a unit a killed campaign left in flight: its processes and files."""
    if not SCRATCH.is_dir():
        return
    for folder in SCRATCH.iterdir():
        pgid = folder / "pgid"
        if pgid.is_file() and pgid.read_text().strip().isdigit():
            _kill_group(int(pgid.read_text()))
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.campaign", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--plan", type=Path, default=PLAN)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="done, missing and failed units")
    runner = commands.add_parser("run", help="run missing units in plan order")
    runner.add_argument("--minutes", type=float, required=True, help="time to spend")
    runner.add_argument("--only", nargs="+", metavar="UNIT", help="just these units")
    args = parser.parse_args(argv)
    try:
        units = load_plan(args.plan)
        read_ledger()  # a broken ledger is one line here, not a traceback
        if args.command == "status":
            print(status(units))
            return 0
        known = {u.id for u in units}
        unknown = sorted(set(args.only or ()) - known)
        if unknown:
            raise ConfigError(f"--only names units not in the plan: {', '.join(unknown)}")
        if args.minutes <= 0:
            raise ConfigError(f"--minutes == {args.minutes}, must be > 0")
    except ConfigError as exc:
        print(f"campaign: error: {exc}", file=sys.stderr)
        return 2
    return 1 if run(units, args.minutes, args.only) else 0


if __name__ == "__main__":
    sys.exit(main())
