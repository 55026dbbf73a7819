"""How long the disentanglement metrics take on dSprites, standard and fast settings.

A fixed 10-d representation of real dSprites observations stands in for a trained encoder:
5 image moments (mass, centroid x/y, two second moments: scale, position, some orientation
and shape information) and 5 fixed random projections of the pixels. It costs about as much
per image as reading the images, so the figures are the metrics' own cost plus sampling, not
an encoder's forward pass.

    python -m benchmarks.metrics_speed                # every metric alone, the suite, fast
    python -m benchmarks.metrics_speed --smoke        # tiny sizes, seconds (checks it runs)
    python -m benchmarks.metrics_speed --write-doc    # also update the table in docs/metrics.md
    python -m benchmarks.metrics_speed --compare REF  # the standard suite: REF's code vs this

Per metric it reports the total time and the part spent drawing observations and computing
codes ("sampling"); the rest is the estimator (classifiers, histograms). ``--compare REF`` runs
the whole standard suite of git revision REF's ``deft_tune`` and of this checkout's, one after
the other, each in a fresh process, and reports wall seconds, CPU seconds (the process and its
worker processes, their start included), their ratios, and whether every score is identical
(==). Run it from the repository root with ``-m``, so that this checkout's ``deft_tune`` is the
one imported (a plain ``python benchmarks/...`` imports the installed one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deft_tune.data import get_dataset
from deft_tune.data.base import stored_rows
from deft_tune.metrics import FAST, METRICS, STANDARD, MetricSettings, evaluate

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "metrics.md"
BEGIN, END = "<!-- speed:begin -->", "<!-- speed:end -->"
COMPARE_BEGIN, COMPARE_END = "<!-- speed-compare:begin -->", "<!-- speed-compare:end -->"


class Timed:
    """Wraps a data set and a representation function; adds up the time spent in them."""

    def __init__(self, data, representation_fn):
        self.data, self.fn, self.seconds = data, representation_fn, 0.0
        self.name, self.factor_sizes = data.name, data.factor_sizes
        self.factor_names, self.observation_shape = data.factor_names, data.observation_shape

    def sample_factors(self, n, rng):
        return self.data.sample_factors(n, rng)

    def sample_observations_from_factors(self, factors, rng):
        start = time.perf_counter()
        try:
            return self.data.sample_observations_from_factors(factors, rng)
        finally:
            self.seconds += time.perf_counter() - start

    def representation(self, observations):
        start = time.perf_counter()
        try:
            return self.fn(observations)
        finally:
            self.seconds += time.perf_counter() - start


def moment_codes(seed: int = 0):
    """The fixed 10-d codes function described in the module docstring."""
    projection = np.random.default_rng(seed).normal(size=(64 * 64, 5)).astype(np.float32) / 64
    grid = np.arange(64, dtype=np.float32) / 63

    def codes(observations: np.ndarray) -> np.ndarray:
        x = observations.reshape(len(observations), -1)
        img = observations[:, 0]
        mass = img.sum(axis=(1, 2)) + 1e-6
        cx = (img.sum(axis=1) @ grid) / mass
        cy = (img.sum(axis=2) @ grid) / mass
        sxx = (img.sum(axis=1) @ grid**2) / mass - cx**2
        syy = (img.sum(axis=2) @ grid**2) / mass - cy**2
        moments = np.stack([mass / 4096, cx, cy, sxx - syy, sxx + syy], axis=1)
        return np.concatenate([moments, x @ projection], axis=1)

    return codes


def time_one(data, codes, names, settings: MetricSettings, seed: int) -> tuple[float, float, dict]:
    timed = Timed(data, codes)
    start = time.perf_counter()
    scores = evaluate(timed.representation, timed, names=names, seed=seed, settings=settings)
    return time.perf_counter() - start, timed.seconds, scores


def run(settings_list, individual: bool, seed: int) -> list[tuple[str, str, float, float, dict]]:
    data = get_dataset("dsprites_full")
    stored_rows(data)  # load or render the cache outside the timings
    codes = moment_codes()
    rows = []
    for settings in settings_list:
        for names in ([[m] for m in METRICS] if individual else []) + [list(METRICS)]:
            label = names[0] if len(names) == 1 else "whole suite (shared draw)"
            total, sampling, scores = time_one(data, codes, names, settings, seed)
            rows.append((settings.name, label, total, sampling, scores))
            print(
                f"{settings.name:>9} {label:<26} {total:8.2f} s  sampling {sampling:7.2f} s  "
                + " ".join(f"{k}={v:.3f}" for k, v in scores.items()),
                flush=True,
            )
    return rows


def markdown(rows, args) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        f"`python benchmarks/metrics_speed.py{' --smoke' if args.smoke else ''}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
        f"n_jobs {args.n_jobs}; load average {load:.1f} at the end (the machine was shared with "
        f"other jobs: absolute times are noisy, ratios within one run less so).",
        "",
        "| setting | metric | total (s) | sampling + codes (s) | estimator (s) |",
        "|---|---|---:|---:|---:|",
    ]
    for setting, label, total, sampling, _ in rows:
        lines.append(
            f"| {setting} | {label} | {total:.2f} | {sampling:.2f} | {total - sampling:.2f} |"
        )
    lines += ["", "Scores of the benchmark representation (seed 0):", ""]
    for setting, label, _, _, scores in rows:
        if label.startswith("whole"):
            lines.append(f"- {setting}: " + ", ".join(f"`{k}` {v:.3f}" for k, v in scores.items()))
    return "\n".join(lines)


def write_doc(text: str, begin: str = BEGIN, end: str = END) -> None:
    doc = DOC.read_text()
    if begin not in doc or end not in doc:
        raise SystemExit(f"{DOC} lacks the {begin} ... {end} markers")
    new = re.sub(
        f"{re.escape(begin)}.*?{re.escape(end)}", f"{begin}\n{text}\n{end}", doc, flags=re.S
    )
    tmp = DOC.with_name(f".{DOC.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, DOC)


def smoke(settings: MetricSettings) -> MetricSettings:
    """``settings`` at tiny sizes: seconds, to check that the benchmark runs."""
    return dataclasses.replace(
        settings,
        name=f"{settings.name}-smoke",
        num_train=500,
        num_test=250,
        beta_vae_train=50,
        beta_vae_eval=25,
        factor_vae_train=50,
        factor_vae_eval=25,
        factor_vae_variance=500,
    )


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def child(n_jobs: int, seed: int, tiny: bool) -> None:
    """The whole standard suite in this process; prints one JSON line (--compare's child)."""
    from joblib.externals.loky import get_reusable_executor

    import deft_tune

    data = get_dataset("dsprites_full")
    stored_rows(data)
    settings = dataclasses.replace(smoke(STANDARD) if tiny else STANDARD, n_jobs=n_jobs)
    before = _cpu(resource.RUSAGE_SELF)
    total, sampling, scores = time_one(data, moment_codes(), list(METRICS), settings, seed)
    get_reusable_executor().shutdown(wait=True)  # its workers' CPU time lands in RUSAGE_CHILDREN
    cpu = _cpu(resource.RUSAGE_SELF) - before + _cpu(resource.RUSAGE_CHILDREN)
    row = {"total": total, "sampling": sampling, "cpu": cpu, "scores": scores}
    print(json.dumps({"package": deft_tune.__file__, **row}))


def _run_watching_load(command: list[str], env: dict) -> tuple[str, float]:
    """The command's last stdout line, and the mean 1-minute load average while it ran."""
    loads = []
    with tempfile.TemporaryFile("w+") as stdout:
        child = subprocess.Popen(command, env=env, stdout=stdout, text=True)
        while child.poll() is None:
            loads.append(os.getloadavg()[0])
            time.sleep(5)
        if child.returncode:
            raise SystemExit(f"{' '.join(command)} failed ({child.returncode})")
        stdout.seek(0)
        return stdout.read().splitlines()[-1], sum(loads) / max(len(loads), 1)


def compare(ref: str, n_jobs: tuple[int, int], threads: int, seed: int, tiny: bool) -> list[dict]:
    """Standard suite of ``ref``'s deft_tune, then of this checkout's, each in a new process."""
    with tempfile.TemporaryDirectory(prefix="deft-metrics-old-") as old:
        archive = subprocess.run(
            ["git", "archive", ref, "deft_tune"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        rows = []
        runs = ((f"before ({ref})", old, n_jobs[0]), ("after", str(ROOT), n_jobs[1]))
        for label, path, jobs in runs:
            flags = {"--n-jobs": jobs, "--threads": threads, "--seed": seed}
            command = [sys.executable, str(Path(__file__).resolve()), "--child"]
            command += [str(x) for flag in flags.items() for x in flag] + ["--smoke"] * tiny
            out, load = _run_watching_load(command, {**os.environ, "PYTHONPATH": path})
            row = {"label": label, "n_jobs": jobs, "load": load, **json.loads(out)}
            if not row["package"].startswith(path):
                raise SystemExit(f"{label} imported {row['package']}, not the code under {path}")
            rows.append(row)
            print(
                f"{label:<22} n_jobs {jobs}: {row['total']:7.1f} s wall, {row['cpu']:7.1f} s "
                f"CPU, sampling {row['sampling']:6.1f} s, load {load:.1f}",
                flush=True,
            )
    return rows


def compare_markdown(rows: list[dict], args) -> str:
    before, after = rows
    same = before["scores"] == after["scores"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python -m "
        f"benchmarks.metrics_speed --compare {args.compare} --n-jobs {args.n_jobs}"
        f"{' --smoke' if args.smoke else ''}"
        f"{f' --old-n-jobs {args.old_n_jobs}' if args.old_n_jobs else ''}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}, niced. A "
        "shared machine: `load` is the mean 1-minute load average during each run; above the "
        "2 cores it stretches the wall time of either run, so the CPU seconds (this process "
        "and its worker processes, their start included) are the steadier figure.",
        "",
        "| code | n_jobs | whole standard suite, wall (s) | CPU (s) | sampling + codes (s) "
        "| load |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [r["label"], r["n_jobs"]]
        cells += [f"{r[key]:.1f}" for key in ("total", "cpu", "sampling", "load")]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += [
        "",
        f"Wall time before / after: {before['total'] / after['total']:.2f}x; CPU time "
        f"{before['cpu'] / after['cpu']:.2f}x. Every score identical (==): "
        f"{'yes' if same else 'NO'}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sample sizes")
    parser.add_argument("--fast-only", action="store_true", help="only the FAST setting")
    parser.add_argument("--no-individual", action="store_true", help="suite timings only")
    parser.add_argument("--n-jobs", type=int, default=1, help="DCI classifiers in parallel")
    parser.add_argument("--threads", type=int, default=2, help="torch/BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-doc", action="store_true", help=f"update the table in {DOC}")
    parser.add_argument("--compare", metavar="REF", help="standard suite: REF's code vs this")
    parser.add_argument("--old-n-jobs", type=int, help="--compare: REF's n_jobs (default: same)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(args.n_jobs, args.seed, args.smoke)
        return
    if args.compare:
        jobs = (args.old_n_jobs or args.n_jobs, args.n_jobs)
        compared = compare(args.compare, jobs, args.threads, args.seed, args.smoke)
        text = compare_markdown(compared, args)
        print(text)
        if args.write_doc:
            write_doc(text, COMPARE_BEGIN, COMPARE_END)
        return
    settings_list = [FAST] if args.fast_only else [STANDARD, FAST]
    settings_list = [dataclasses.replace(s, n_jobs=args.n_jobs) for s in settings_list]
    if args.smoke:
        settings_list = [smoke(s) for s in settings_list]
    rows = run(settings_list, not args.no_individual, args.seed)
    text = markdown(rows, args)
    print(text)
    if args.write_doc:
        write_doc(text)


if __name__ == "__main__":
    main()
