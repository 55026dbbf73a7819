"""How DEFT treats the groups it opened before, measured: scale 0.1, scale 0, freeze with the
learned projection, against beta-VAE, on dsprites_full at the example configs' budget.

Every variant is ``configs/dsprites_deft.yaml`` (or ``configs/dsprites_beta_vae.yaml``) with one
field changed, trained with ``deft-tune train`` (the command a user runs), once per seed: one
campaign unit (benchmarks/campaign.yaml) per run, each leaving one JSON file under
benchmarks/results/deft_modes/ with the final MIG (standard setting), the per-stage nats that
entered the earlier groups' encoders and that their projections moved (``metrics.json``'s
``stages``), every report's information signals, the run config, wall time, commit and machine.
The table in docs/training.md is generated from those files alone, with, per run, where the IFP
stopper with dsprites_full.yaml's settings would have stopped it (its reports fed to the live
stopper).

    python -m benchmarks.deft_modes unit --variant scale-0.1 --seed 0 --out FILE.json
    python -m benchmarks.deft_modes table --write
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from deft_tune import report_keys as keys
from deft_tune.fileio import atomic_write_text
from deft_tune.search.tracking.provenance import commit, machine
from deft_tune.tables import markdown_table, write_block

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "training.md"
RESULTS = ROOT / "benchmarks" / "results" / "deft_modes"
DEFT, BETA_VAE = (
    ROOT / "configs" / "dsprites_deft.yaml",
    ROOT / "configs" / "dsprites_beta_vae.yaml",
)
STOPPER_SPACE = ROOT / "search_spaces" / "dsprites_full.yaml"


def _stages(earlier: str, lr_scale: float | None) -> list[dict[str, Any]]:
    """The example config's stages with the earlier groups treated as asked."""
    stages = yaml.safe_load(DEFT.read_text())["schedule"]["stages"]
    for stage in stages[1:]:
        stage.pop("lr_scale", None)
        stage["earlier"] = earlier
        if lr_scale is not None:
            stage["lr_scale"] = lr_scale
    return stages


# slug -> (name in the table, base config, stages or None to keep the config's)
VARIANTS: dict[str, tuple[str, Path, Any]] = {
    "scale-0.1": ("DEFT, earlier scale 0.1", DEFT, _stages("scale", 0.1)),
    "scale-0": ("DEFT, earlier scale 0", DEFT, _stages("scale", 0.0)),
    "freeze": ("DEFT, earlier freeze + projection", DEFT, _stages("freeze", None)),
    "beta-vae": ("beta-VAE (beta 4)", BETA_VAE, None),
}


def variant_config(slug: str, seed: int) -> dict[str, Any]:
    _, base, stages = VARIANTS[slug]
    raw = yaml.safe_load(base.read_text())
    raw["training"]["seed"] = seed
    if stages is not None:
        raw["schedule"]["stages"] = stages
    return raw


def _signal(key: str) -> bool:
    return (
        key == keys.STEP or key.startswith(("info/", "kl/group", "train/")) or key == keys.KL_TOTAL
    )


# --- one unit: one run ------------------------------------------------------------------------


def unit(slug: str, seed: int, out: Path, work: Path | None) -> dict[str, Any]:
    """Train the variant with ``seed`` (unless ``work`` already holds the finished run) and
    write its result row to ``out``."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = work or Path(scratch) / "run"
        config = variant_config(slug, seed)
        if not (folder / "metrics.json").exists():
            path = Path(scratch) / "config.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            command = [sys.executable, "-m", "deft_tune", "train", "--config", str(path), "--out",
                       str(folder), "--no-progress", "--threads", "1"]  # fmt: skip
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        row = _row(slug, seed, folder, config)
    atomic_write_text(out, json.dumps(row, indent=1) + "\n")
    return row


def _row(slug: str, seed: int, folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    metrics = json.loads((folder / "metrics.json").read_text())
    history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    wall = (folder / "metrics.json").stat().st_mtime - (folder / "config.yaml").stat().st_mtime
    return {
        "variant": slug,
        "seed": seed,
        "mig": metrics["metrics"]["mig"],
        "stages": metrics.get("stages", []),
        "reports": [{k: v for k, v in r.items() if _signal(k)} for r in history],
        "config": config,
        "wall_s": round(wall, 1),
        "commit": commit(),
        "machine": machine(),
    }


# --- the table --------------------------------------------------------------------------------


def read_rows() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]


def stopper_verdict(row: dict[str, Any]) -> str:
    """Where the IFP stopper with dsprites_full.yaml's settings stops the run ("-": never)."""
    from deft_tune.search.space import load_space
    from deft_tune.search.stopping import IFPStopper

    space = load_space(STOPPER_SPACE)
    steps = int(row["config"]["training"]["steps"])
    stopper = IFPStopper(space.stopping.ifp, steps)
    for report in row["reports"]:
        result = dict(report)
        if stopper("run", result):
            return f"{result.get('deft.stop_reason', '?')} at {int(report[keys.STEP]):,}"
    return "-"


def _mean_std(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.{digits}f}{spread}"


def _stage_values(row: dict[str, Any], field: str) -> list[float]:
    return [sum(s[field].values()) for s in row["stages"] if s["stage"] > 0 and field in s]


def table(rows: list[dict[str, Any]]) -> str:
    """One row per run, then each variant's mean ± std over seeds."""
    stages = max((len(_stage_values(r, "entered_earlier")) for r in rows), default=0)
    lines = []
    for r in rows:
        line = {"variant": VARIANTS[r["variant"]][0], "seed": r["seed"],
                "MIG (standard)": f"{r['mig']:.4f}", "wall (min)": f"{r['wall_s'] / 60:.1f}",
                "IFP stopper (dsprites_full.yaml) stops": stopper_verdict(r)}  # fmt: skip
        entered, moved = _stage_values(r, "entered_earlier"), _stage_values(r, "projection_moved")
        for i in range(stages):
            line[f"stage {i + 1}: nats into earlier encoders"] = (
                f"{entered[i]:.2f}" if i < len(entered) else "-")  # fmt: skip
            line[f"stage {i + 1}: KL moved by projections"] = (
                f"{moved[i]:.2f}" if i < len(moved) else "-")  # fmt: skip
        lines.append(line)
    for slug, (name, _, _) in VARIANTS.items():
        mine = [r for r in rows if r["variant"] == slug]
        if not mine:
            continue
        line = {"variant": f"**{name}**", "seed": f"{len(mine)} seeds",
                "MIG (standard)": f"**{_mean_std([r['mig'] for r in mine])}**",
                "wall (min)": _mean_std([r["wall_s"] / 60 for r in mine], 1),
                "IFP stopper (dsprites_full.yaml) stops": ""}  # fmt: skip
        for i in range(stages):
            for field, column in (("entered_earlier", "nats into earlier encoders"),
                                  ("projection_moved", "KL moved by projections")):  # fmt: skip
                values = [v[i] for r in mine if i < len(v := _stage_values(r, field))]
                line[f"stage {i + 1}: {column}"] = _mean_std(values)
        lines.append(line)
    return markdown_table(lines)


def header(rows: list[dict[str, Any]]) -> str:
    commits = sorted({r["commit"][:12] for r in rows})
    cpus = sorted({r["machine"]["cpu"] for r in rows})
    hours = sum(r["wall_s"] for r in rows) / 3600
    return (f"Generated by `python -m benchmarks.deft_modes table --write` from {len(rows)} "
            f"committed unit files (benchmarks/results/deft_modes/), each one run of 4,000 steps "
            f"trained niced with one torch thread beside other work on a shared {', '.join(cpus)} "
            f"machine by commit(s) {', '.join(commits)}: {hours:.1f} h of run wall time in all, "
            "each run's in the table.")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("unit", help="train one variant and seed, write its JSON row")
    one.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--out", type=Path, required=True)
    one.add_argument("--work", type=Path, help="run folder to train in or read (default: temp)")
    show = commands.add_parser("table", help="the table from the committed unit files")
    show.add_argument("--write", action="store_true", help="write it into docs/training.md")
    args = parser.parse_args()
    if args.command == "unit":
        row = unit(args.variant, args.seed, args.out, args.work)
        print(f"{args.variant} seed {args.seed}: MIG {row['mig']:.4f}")
        return
    rows = read_rows()
    text = f"{header(rows)}\n\n{table(rows)}" if rows else "No unit file yet."
    print(text)
    if args.write:
        write_block(DOC, "deft-modes", text)


if __name__ == "__main__":
    main()
