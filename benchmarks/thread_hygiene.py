"""Thread hygiene: how much an oversubscribed machine slows deft-tune, before and after.

Two commands a new user runs, each timed alone and as ``--copies`` processes at once (4 on a
2-core machine: 2x oversubscription, as on a shared machine or a packed cluster node):

- ``deft-tune ifp dsprites_full --smoke-test`` (torch's default threads: one per core);
- ``deft-tune train`` of a short run (the quick search's trial model, 150 steps, no metrics).

"before" is the code at ``--before`` (default: the commit before issue #19's changes), run from
a ``git archive`` of it: torch's OpenMP threads spin while they wait for work, and a plain train
uses torch's default thread count. "after" is this checkout: OpenMP waits passively
(``OMP_WAIT_POLICY=PASSIVE``, set by ``import deft_tune``) and train applies the config's
``training.threads`` (1 by default); "after, --threads 2" isolates the waiting policy. Every
variant runs in the same rounds, alternating, so that load from other processes hits each alike.
Slowdown = mean wall time of one process among the copies / wall time alone.

    nice -n 10 python benchmarks/thread_hygiene.py --write-doc      # docs/training.md
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from deft_tune.tables import markdown_table, write_block
from deft_tune.threads import QUIET_ENV, available_cpus

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "training.md"
BEFORE = "8dd87c7"  # the last commit before issue #19 (no passive waiting, no training.threads)

TRAIN_CONFIG = """\
data: {name: dsprites_full}
model: {groups: 2, latents_per_group: 2, encoder_width: 8, decoder_width: 8}
schedule: {stages: [{beta: 4, steps: 75}, {beta: 1, lr_scale: 0.1}]}
training: {steps: 150, batch_size: 32, lr: 0.003, checkpoint_interval: 1000}
evaluation: {interval: 50, probe_size: 256, metrics: []}
"""


@dataclass(frozen=True)
class Variant:
    command: str  # "ifp" or "train"
    version: str  # "before" or "after"
    extra: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.version}{', ' + ' '.join(self.extra) if self.extra else ''}"


VARIANTS = (
    Variant("ifp", "before"),
    Variant("ifp", "after"),
    Variant("train", "before"),
    Variant("train", "after"),
    Variant("train", "after", ("--threads", "2")),
)


def argv(variant: Variant, work: Path, out: Path) -> list[str]:
    if variant.command == "ifp":
        args = ["ifp", "dsprites_full", "--smoke-test", "--out", str(out)]
    else:
        args = ["train", "--config", str(work / "train.yaml"), "--out", str(out), "--no-progress"]
    return [sys.executable, "-m", "deft_tune", *args, *variant.extra]


def environment(variant: Variant, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV and k != "OMP_NUM_THREADS"}
    source = work / "before" if variant.version == "before" else ROOT
    env["PYTHONPATH"] = str(source)
    env["DEFT_TUNE_CACHE"] = str(work / "cache")
    return env


def timed(variant: Variant, work: Path, copies: int, tag: str) -> list[float]:
    """Wall seconds of each of ``copies`` processes of ``variant`` started at once."""
    procs = []
    for i in range(copies):
        out = work / "out" / f"{tag}-{i}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv(variant, work, out),
            env=environment(variant, work),
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append((proc, start))
    seconds = []
    for proc, start in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{variant} failed:\n{err[-2000:]}")
        seconds.append(time.perf_counter() - start)
    return seconds


def prepare(work: Path, before: str) -> None:
    (work / "before").mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", before, "deft_tune"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(work / "before")], input=archive, check=True)
    (work / "train.yaml").write_text(TRAIN_CONFIG)
    env = environment(Variant("ifp", "after"), work)
    subprocess.run(  # render the data set once, outside the timings
        [sys.executable, "-m", "deft_tune", "data", "render", "dsprites_full"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def measure(work: Path, copies: int, rounds: int) -> dict[Variant, dict[str, list[float]]]:
    found: dict[Variant, dict[str, list[float]]] = {
        v: {"alone": [], "loaded": []} for v in VARIANTS
    }
    for r in range(rounds):
        for variant in VARIANTS:
            tag = f"{variant.command}-{variant.version}-{len(variant.extra)}-{r}"
            found[variant]["alone"] += timed(variant, work, 1, f"{tag}-alone")
            found[variant]["loaded"] += timed(variant, work, copies, f"{tag}-loaded")
            print(
                f"round {r + 1}: {variant.command} {variant.label}: alone "
                f"{found[variant]['alone'][-1]:.1f} s, {copies} at once "
                f"{statistics.fmean(found[variant]['loaded'][-copies:]):.1f} s",
                flush=True,
            )
    return found


def render(found: dict[Variant, dict[str, list[float]]], copies: int, header: str) -> str:
    rows = []
    loaded = {v: statistics.fmean(t["loaded"]) for v, t in found.items()}
    for variant, times in found.items():
        alone = statistics.median(times["alone"])
        before = Variant(variant.command, "before")
        rows.append(
            {
                "command": f"`{variant.command}`",
                "code": variant.label,
                "alone (s)": f"{alone:.1f}",
                f"{copies} at once, per process (s)": f"{loaded[variant]:.1f}",
                "slowdown": f"{loaded[variant] / alone:.1f}x",
                "vs before, loaded": f"{loaded[before] / loaded[variant]:.1f}x faster"
                if variant != before
                else "",
            }
        )
    return header + "\n\n" + markdown_table(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help=f"git revision of 'before' ({BEFORE})")
    parser.add_argument("--copies", type=int, default=2 * available_cpus(), help="processes")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every variant (1)")
    parser.add_argument("--write-doc", action="store_true", help=f"write the table into {DOC}")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deft-threads-"))
    try:
        prepare(work, args.before)
        load = os.getloadavg()[0]
        start = datetime.now(timezone.utc)
        found = measure(work, args.copies, args.rounds)
        end_load = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = (
        f"Measured {start:%Y-%m-%d %H:%M} UTC by `python benchmarks/thread_hygiene.py "
        f"--copies {args.copies} --rounds {args.rounds}` on {platform.machine()}, "
        f"{available_cpus()} CPUs, Linux (1-min load average {load:.1f} at the start, "
        f"{end_load:.1f} at the end: the machine is shared); before = {args.before}. "
        "Times are medians alone and means over the processes (and rounds) at once."
    )
    text = render(found, args.copies, header)
    print(text)
    if args.write_doc:
        write_block(DOC, "thread-hygiene", text)
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
