"""DEFT against beta-VAE on dsprites_full at the example configs' budget (4,000 steps).

Trains ``configs/dsprites_deft.yaml`` and ``configs/dsprites_beta_vae.yaml`` with
``deft-tune train`` (the command a user runs), once per seed, and reads each run's final MIG
(standard setting, ``metrics.json``) and training speed. The table goes to docs/training.md between
the markers. A run folder that already holds ``metrics.json`` for the same config is read, not
trained again, so an interrupted comparison continues where it stopped.

    python benchmarks/deft_vs_beta_vae.py --seeds 0 --runs runs/compare
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"DEFT": "configs/dsprites_deft.yaml", "beta-VAE": "configs/dsprites_beta_vae.yaml"}
DOC = ROOT / "docs" / "training.md"
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"


def seeded_config(config: Path, seed: int, folder: Path) -> Path:
    """The example config with ``training.seed`` set, written beside the run."""
    raw = yaml.safe_load(config.read_text())
    raw["training"]["seed"] = seed
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config.stem}_seed{seed}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def train(config: Path, out: Path) -> None:
    """Train unless ``out`` already holds a finished run."""
    if not (out / "metrics.json").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "deft_tune",
                "train",
                "--config",
                str(config),
                "--out",
                str(out),
                "--no-progress",
            ],
            check=True,
        )


def run_all(seeds: list[int], runs: Path) -> list[dict]:
    rows = []
    for seed in seeds:
        for method, config in CONFIGS.items():
            path = seeded_config(ROOT / config, seed, runs / "configs")
            out = runs / f"{path.stem}"
            train(path, out)
            metrics = json.loads((out / "metrics.json").read_text())
            mig = metrics["metrics"]["mig"]
            speed = metrics["final"]["train/images_per_sec"]
            rows.append({"method": method, "seed": seed, "mig": mig, "speed": speed})
            print(f"{method:9s} seed {seed}: MIG {mig:.4f}", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| method | seed | MIG (standard) | training img/s |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['seed']} | {r['mig']:.4f} | {r['speed']:.0f} |")
    for method in CONFIGS:
        migs = [r["mig"] for r in rows if r["method"] == method]
        spread = f" ± {statistics.stdev(migs):.4f}" if len(migs) > 1 else ""
        lines.append(
            f"| **{method}, mean** | {len(migs)} seeds | "
            f"**{statistics.mean(migs):.4f}{spread}** | |"
        )
    return "\n".join(lines)


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{BEGIN}\nMeasured {stamp} by `benchmarks/deft_vs_beta_vae.py`.\n\n{text}\n{END}"
    if BEGIN in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + block + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "compare")
    parser.add_argument("--write", action="store_true", help="write the table to docs/")
    args = parser.parse_args()
    text = table(run_all(args.seeds, args.runs))
    print(text)
    if args.write:
        write_doc(text)


if __name__ == "__main__":
    main()
