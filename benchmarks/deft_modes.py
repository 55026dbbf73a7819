"""How DEFT treats the groups it opened before, measured: scale 0.1, scale 0, freeze with the
learned projection, against beta-VAE, on dsprites_full at the example configs' budget.

Every variant is ``configs/dsprites_deft.yaml`` (or ``configs/dsprites_beta_vae.yaml``) with one
field changed, trained with ``deft-tune train`` (the command a user runs), once per seed. Per run
it reads the final MIG (standard setting) and, from ``metrics.json``'s ``stages``, the nats that
entered the earlier groups during each stage (the information that diffused instead of going
into the newly opened group). Runs go two at a time with one torch thread each, niced; a run
folder that already holds ``metrics.json`` is read, not trained again, so an interrupted
comparison continues where it stopped. ``--write`` puts the table into docs/training.md.

    nice -n 10 python benchmarks/deft_modes.py --seeds 0 1 2 --write
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from _search_bench import machine

from deft_tune.tables import markdown_table, write_block

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "training.md"
DEFT, BETA_VAE = (
    ROOT / "configs" / "dsprites_deft.yaml",
    ROOT / "configs" / "dsprites_beta_vae.yaml",
)


def _stages(earlier: str, lr_scale: float | None) -> list[dict[str, Any]]:
    """The example config's stages with the earlier groups treated as asked."""
    stages = yaml.safe_load(DEFT.read_text())["schedule"]["stages"]
    for stage in stages[1:]:
        stage.pop("lr_scale", None)
        stage["earlier"] = earlier
        if lr_scale is not None:
            stage["lr_scale"] = lr_scale
    return stages


VARIANTS: dict[str, tuple[Path, Any]] = {
    "DEFT, earlier scale 0.1": (DEFT, _stages("scale", 0.1)),
    "DEFT, earlier scale 0": (DEFT, _stages("scale", 0.0)),
    "DEFT, earlier freeze + projection": (DEFT, _stages("freeze", None)),
    "beta-VAE (beta 4)": (BETA_VAE, None),
}


def variant_config(name: str, seed: int, folder: Path) -> Path:
    """The variant's config with ``training.seed`` set, written beside its runs."""
    base, stages = VARIANTS[name]
    raw = yaml.safe_load(base.read_text())
    raw["training"]["seed"] = seed
    if stages is not None:
        raw["schedule"]["stages"] = stages
    folder.mkdir(parents=True, exist_ok=True)
    slug = name.split(" (")[0].lower().replace(",", "").replace(" + ", "-").replace(" ", "-")
    path = folder / f"{slug}-seed{seed}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def train(config: Path, out: Path) -> float:
    """Train unless ``out`` already holds a finished run; the run's wall seconds, from its
    folder (config.yaml is written when training starts, metrics.json when it ends), so that a
    run read back from an earlier invocation still states its cost."""
    if not (out / "metrics.json").exists():
        command = [sys.executable, "-m", "deft_tune", "train", "--config", str(config), "--out",
                   str(out), "--no-progress", "--threads", "1"]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return (out / "metrics.json").stat().st_mtime - (out / "config.yaml").stat().st_mtime


def one_run(name: str, seed: int, runs: Path) -> dict[str, Any]:
    config = variant_config(name, seed, runs / "configs")
    out = runs / config.stem
    seconds = train(config, out)
    metrics = json.loads((out / "metrics.json").read_text())
    entered = [s["entered_earlier_total"] for s in metrics.get("stages", []) if s["stage"] > 0]
    row = {"variant": name, "seed": seed, "mig": metrics["metrics"]["mig"], "entered": entered,
           "seconds": seconds}  # fmt: skip
    print(f"{name:36s} seed {seed}: MIG {row['mig']:.4f}, entered {entered}", flush=True)
    return row


def run_all(seeds: list[int], runs: Path, parallel: int) -> list[dict[str, Any]]:
    jobs = [(name, seed) for seed in seeds for name in VARIANTS]
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda job: one_run(*job, runs), jobs))


def _mean_std(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.{digits}f}{spread}"


def table(rows: list[dict[str, Any]]) -> str:
    """One row per run, then each variant's mean ± std over seeds."""
    stages = max((len(r["entered"]) for r in rows), default=0)
    lines = []
    for r in rows:
        line = {"variant": r["variant"], "seed": r["seed"], "MIG (standard)": f"{r['mig']:.4f}",
                "wall (min)": f"{r['seconds'] / 60:.1f}"}  # fmt: skip
        for i in range(stages):
            value = r["entered"][i] if i < len(r["entered"]) else None
            line[f"nats into earlier groups, stage {i + 1}"] = "-" if value is None else (
                f"{value:.2f}")  # fmt: skip
        lines.append(line)
    for name in VARIANTS:
        mine = [r for r in rows if r["variant"] == name]
        line = {"variant": f"**{name}**", "seed": f"{len(mine)} seeds",
                "MIG (standard)": f"**{_mean_std([r['mig'] for r in mine])}**",
                "wall (min)": _mean_std([r["seconds"] / 60 for r in mine], 1)}  # fmt: skip
        for i in range(stages):
            values = [r["entered"][i] for r in mine if i < len(r["entered"])]
            line[f"nats into earlier groups, stage {i + 1}"] = _mean_std(values)
        lines.append(line)
    return markdown_table(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "deft-modes")
    parser.add_argument("--parallel", type=int, default=2, help="runs side by side (2)")
    parser.add_argument("--write", action="store_true", help="write the table to docs/")
    args = parser.parse_args()
    rows = run_all(args.seeds, args.runs, args.parallel)
    text = table(rows)
    print(text)
    if args.write:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        total = sum(r["seconds"] for r in rows) / 3600
        header = (f"Measured {stamp} by `python benchmarks/deft_modes.py --seeds "
                  f"{' '.join(map(str, args.seeds))} --write` on {machine()} ({len(rows)} "
                  f"runs of 4,000 steps, {args.parallel} at a time, niced, with one torch thread "
                  f"each, beside other work on the shared machine: {total:.1f} h of run wall time "
                  "in all, each run's in the table).")  # fmt: skip
        write_block(DOC, "deft-modes", f"{header}\n\n{text}")


if __name__ == "__main__":
    main()
