"""Curve banks as files: a recorded search (or several parts of one) as one Parquet table that a
replay reads exactly as it reads the search from MLflow, with no store and no training.

One row per (trial, replica, report); ``replica`` -1 is the run's own row (the plain keys: the
aggregates over replicas, the objective), ``replica`` r holds replica r's keys without their
``replica{r}/`` prefix. Columns:

- ``part``, ``trial_id``, ``run_id``, ``replica``, ``step``, ``final`` (the trainable's last
  report, as Tune saw it), ``cost_s`` (the report's recorded seconds);
- one float column per signal a stopping rule or the objective reads (listed in the metadata
  under ``signals``); null where a row's report lacks the key;
- ``final/<score>``: the trial's standard scores at its end, on its final rows (replica rows: that
  replica's); ``stop_reason``; ``param.<name>``: the trial's run config, flattened, as text;
  ``run_config``: the run config YAML the trial logged, on its final run row (what `deft-tune
  train --config` retrains from).

The file's key-value metadata ``deft_tune.bank`` (JSON) holds the schema version, the space as
run, the budget, the objective, the signal columns and one entry per part: experiment, search
seed, parent run id, trials, start, wall time, commit, package versions and machine.

Parts recorded from one space with different search seeds merge into one bank: each trial of a
random search is drawn independently of the others, so their union is a random search. Parts
whose space differs in anything but the seed, the trial count, the name and the stopping
settings are refused, naming the first difference. Stopping settings only set up a replay's
rules (every stopper was off while recording): a merged bank takes the newest part's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from deft_tune import report_keys as keys
from deft_tune.errors import ConfigError
from deft_tune.fileio import atomic_write
from deft_tune.search.replay.bank import (
    BankPart,
    BankTrial,
    CurveBank,
    Report,
    load_bank,
    replica_finals,
)
from deft_tune.search.space import space_from_dict
from deft_tune.training.aggregate import replica_key, split_replica_key

__all__ = ["SCHEMA_VERSION", "export_banks", "merge_banks", "read_banks", "write_bank"]

SCHEMA_VERSION = 1
META_KEY = b"deft_tune.bank"
RUN_ROW = -1  # the replica column of a run's own row
_PARAM = "param."
# Space fields that may differ between parts: the name, and the stopping settings (a bank is
# recorded with every stopper off, so they only set up a replay's rules; the newest part's
# are the replay's, the defaults of the newest code that recorded any of it).
_PER_PART = ("name", "stopping")
_PER_PART_BUDGET = ("seed", "num_trials")


# --- writing ------------------------------------------------------------------------------


def export_banks(uri: str, experiments: Sequence[str], out: str | os.PathLike) -> CurveBank:
    """Read each recorded search from MLflow, merge them and write the bank to ``out``."""
    bank = merge_banks([load_bank(uri, name) for name in experiments])
    write_bank(bank, out)
    return bank


def write_bank(bank: CurveBank, out: str | os.PathLike) -> Path:
    """``bank`` as a Parquet file, written atomically (no partial file on any failure)."""
    signals = sorted({_plain(k) for t in bank.trials for r in _all_reports(t) for k in r.result})
    signals = [k for k in signals if k != keys.STEP]
    rows = [row for part, trial in _trials_by_part(bank) for row in _rows(part, trial, signals)]
    table = pa.Table.from_pylist(rows, schema=_schema(rows, signals))
    table = table.replace_schema_metadata({META_KEY: json.dumps(_metadata(bank, signals))})
    return atomic_write(out, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def _all_reports(trial: BankTrial) -> tuple[Report, ...]:
    return (*trial.reports, trial.final)


def _plain(key: str) -> str:
    return split_replica_key(key)[1]


def _trials_by_part(bank: CurveBank) -> Iterable[tuple[int, BankTrial]]:
    """Each trial with the index of the recorded search it comes from."""
    for trial in bank.trials:
        yield trial.part, trial


def _rows(part: int, trial: BankTrial, signals: list[str]) -> list[dict[str, Any]]:
    indices = (split_replica_key(k)[0] for k in trial.final.result)
    replicas = sorted({r for r in indices if r is not None})
    common = {"part": part, "trial_id": trial.recorded_id, "run_id": trial.run_id,
              "stop_reason": trial.stop_reason,
              **{_PARAM + k: v for k, v in trial.params.items()}}  # fmt: skip
    rows = []
    for report in _all_reports(trial):
        final = report is trial.final
        for replica in (RUN_ROW, *replicas):
            row = {**common, "replica": replica, "step": report.step, "final": final,
                   "cost_s": report.cost_s}  # fmt: skip
            for key in signals:
                name = key if replica == RUN_ROW else replica_key(replica, key)
                row[key] = report.result.get(name)
            if final:
                row.update(_finals(trial.finals, replica))
                if replica == RUN_ROW:
                    row["run_config"] = trial.run_config
            rows.append(row)
    return rows


def _finals(finals: dict[str, float], replica: int) -> dict[str, float]:
    if replica == RUN_ROW:
        return {k: v for k, v in finals.items() if k.startswith(keys.FINAL_PREFIX)}
    prefix = replica_key(replica, "")
    return {k.removeprefix(prefix): v for k, v in finals.items() if k.startswith(prefix)}


def _schema(rows: list[dict[str, Any]], signals: list[str]) -> pa.Schema:
    fixed = [("part", pa.int32()), ("trial_id", pa.string()), ("run_id", pa.string()),
             ("replica", pa.int32()), ("step", pa.int64()), ("final", pa.bool_()),
             ("cost_s", pa.float64()), ("stop_reason", pa.string()),
             ("run_config", pa.string())]  # fmt: skip
    names = {name for name, _ in fixed} | set(signals)
    extra = sorted({k for row in rows for k in row} - names)
    fields = [*fixed, *((k, pa.float64()) for k in signals)]
    fields += [(k, pa.string() if k.startswith(_PARAM) else pa.float64()) for k in extra]
    return pa.schema(fields)


def _metadata(bank: CurveBank, signals: list[str]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "name": bank.experiment,
        "objective": bank.objective,
        "mode": bank.mode,
        "space": bank.raw_space,
        "budget": bank.budget,
        "signals": signals,
        "parts": [dataclasses.asdict(part) for part in bank.parts],
    }


# --- reading ------------------------------------------------------------------------------


def read_banks(paths: Sequence[str | os.PathLike]) -> CurveBank:
    """The bank the files hold together (merged as parts); ConfigError, one line, for a file that
    is not a bank of this schema or parts that do not merge."""
    if not paths:
        raise ConfigError("--bank needs at least one FILE.parquet")
    return merge_banks([_read_bank(Path(path)) for path in paths])


def _read_bank(path: Path) -> CurveBank:
    table = _read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise ConfigError(f"{path} is a Parquet file but not a deft-tune curve bank (no metadata)")
    meta = json.loads(raw)
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"{path} is a curve bank of schema version {version}, this deft-tune reads version "
            f"{SCHEMA_VERSION}: export it again with this version (deft-tune bank export)"
        )
    try:
        return _bank(path, meta, table.to_pylist())
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path} is a damaged curve bank ({exc!r})") from None


def _read_table(path: Path) -> pa.Table:
    if not path.is_file():
        raise ConfigError(f"--bank {path} does not exist or is not a file")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{path} is not a readable Parquet file ({why}): is it a curve bank, or cut short?"
        ) from None


def _bank(path: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> CurveBank:
    signals = meta["signals"]
    space = space_from_dict(meta["space"], budget_overrides=meta["budget"])
    parts = tuple(BankPart(**part) for part in meta["parts"])
    by_trial: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in rows:
        by_trial.setdefault((row["part"], row["trial_id"]), []).append(row)
    multi = len(parts) > 1
    trials = [_trial(part, trial_id, found, signals, space.objective.key, multi)
              for (part, trial_id), found in by_trial.items()]  # fmt: skip
    return CurveBank(
        meta["name"], ",".join(p.parent_run_id for p in parts), str(path), meta["space"],
        {k: int(v) for k, v in meta["budget"].items()}, space, tuple(trials), parts,
    )  # fmt: skip


def _trial(
    part: int,
    trial_id: str,
    rows: list[dict[str, Any]],
    signals: list[str],
    objective: str,
    multi: bool,
) -> BankTrial:
    reports: dict[tuple[bool, int], dict[str, Any]] = {}
    costs: dict[tuple[bool, int], float] = {}
    finals: dict[str, float] = {}
    for row in rows:
        at = (row["final"], row["step"])
        result = reports.setdefault(at, {keys.STEP: row["step"]})
        costs[at] = row["cost_s"]
        replica = row["replica"]
        for key in signals:
            if row[key] is not None:
                result[key if replica == RUN_ROW else replica_key(replica, key)] = row[key]
        if row["final"]:
            finals.update(_final_scores(row, replica))
    ordered = [Report(step, reports[(False, step)], costs[(False, step)])
               for _, step in sorted(at for at in reports if not at[0])]  # fmt: skip
    (final_at,) = [at for at in reports if at[0]]
    final = Report(final_at[1], reports[final_at], costs[final_at])
    first = rows[0]
    params = {k.removeprefix(_PARAM): v for k, v in first.items()
              if k.startswith(_PARAM) and v is not None}  # fmt: skip
    run_config = next((r["run_config"] for r in rows if r.get("run_config")), "")
    trial = BankTrial(
        trial_id=trial_id,
        run_id=first["run_id"],
        reports=tuple(ordered),
        final=final,
        final_objective=final.result[objective],
        replica_finals=_replica_finals(finals, objective),
        params=params,
        finals=finals,
        stop_reason=first["stop_reason"],
        run_config=run_config,
    )
    return trial.in_part(part) if multi else trial


def _final_scores(row: dict[str, Any], replica: int) -> dict[str, float]:
    found = {k: v for k, v in row.items() if k.startswith(keys.FINAL_PREFIX) and v is not None}
    if replica == RUN_ROW:
        return found
    return {replica_key(replica, k): v for k, v in found.items()}


def _replica_finals(finals: dict[str, float], objective: str) -> tuple[float, ...]:
    replicas = {r for r in (split_replica_key(k)[0] for k in finals) if r is not None}
    metrics = {**finals, keys.REPLICAS: float(len(replicas) or 1)}
    return replica_finals(metrics, objective)


# --- merging ------------------------------------------------------------------------------


def merge_banks(banks: Sequence[CurveBank]) -> CurveBank:
    """One bank from parts recorded from the same space with different search seeds (a single
    bank comes back as it is); ConfigError naming the first difference otherwise."""
    if len(banks) == 1:
        return banks[0]
    first = banks[0]
    seeds: dict[int, str] = {}
    for bank in banks:
        _require_same_space(first, bank)
        for part in bank.parts:
            if part.search_seed in seeds:
                raise ConfigError(
                    f"parts {seeds[part.search_seed]!r} and {part.experiment!r} were recorded "
                    f"with the same search seed {part.search_seed}: they drew the same trials; "
                    "record each part with its own --seed"
                )
            seeds[part.search_seed] = part.experiment
    parts = tuple(part for bank in banks for part in bank.parts)
    trials = tuple(
        trial.in_part(offset + trial.part)
        for offset, bank in zip(_offsets(banks), banks) for trial in bank.trials
    )  # fmt: skip
    name = _common_name([part.experiment for part in parts]) or first.experiment
    newest = max(banks, key=lambda b: max(p.started for p in b.parts))
    raw_space = {**first.raw_space, "stopping": newest.raw_space.get("stopping", {})}
    return dataclasses.replace(
        first, experiment=name, parent_run_id=",".join(p.parent_run_id for p in parts),
        uri=",".join(dict.fromkeys(b.uri for b in banks)), trials=trials, parts=parts,
        raw_space=raw_space, space=space_from_dict(raw_space, budget_overrides=first.budget),
    )  # fmt: skip


def _common_name(names: list[str]) -> str:
    """What part names share, without a part suffix: bank_dsprites-p0, -p1 -> bank_dsprites."""
    return re.sub(r"[-_.]+(p|part)?$", "", os.path.commonprefix(names))


def _offsets(banks: Sequence[CurveBank]) -> list[int]:
    offsets, total = [], 0
    for bank in banks:
        offsets.append(total)
        total += max(len(bank.parts), 1)
    return offsets


def _require_same_space(first: CurveBank, other: CurveBank) -> None:
    difference = _first_difference(_comparable(first.raw_space), _comparable(other.raw_space))
    if difference is None and first.budget != other.budget:
        difference = f"budget {first.budget} != {other.budget}"
    if difference is not None:
        raise ConfigError(
            f"banks {first.experiment!r} and {other.experiment!r} do not merge: their spaces "
            f"differ at {difference}; only the search seed, trial count and name may differ"
        )


def _comparable(space: dict[str, Any]) -> dict[str, Any]:
    budget = {k: v for k, v in (space.get("budget") or {}).items() if k not in _PER_PART_BUDGET}
    return {**{k: v for k, v in space.items() if k not in _PER_PART}, "budget": budget}


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
            if found is not None:
                return found
        return None
    if a != b and not (_is_nan(a) and _is_nan(b)):
        return f"{where or 'the top'} ({a!r} != {b!r})"
    return None


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
