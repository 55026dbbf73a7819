"""How long the disentanglement metrics take on dSprites, standard and fast settings.

A fixed 10-d representation of real dSprites observations stands in for a trained encoder:
5 image moments (mass, centroid x/y, two second moments: scale, position, some orientation
and shape information) and 5 fixed random projections of the pixels. It costs about as much
per image as reading the images, so the figures are the metrics' own cost plus sampling, not
an encoder's forward pass.

    python benchmarks/metrics_speed.py                # every metric alone, the suite, fast
    python benchmarks/metrics_speed.py --smoke        # tiny sizes, seconds (checks it runs)
    python benchmarks/metrics_speed.py --write-doc    # also update the table in docs/metrics.md

Per metric it reports the total time and the part spent drawing observations and computing
codes ("sampling"); the rest is the estimator (classifiers, histograms).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch

from deft_tune.data import get_dataset
from deft_tune.metrics import FAST, METRICS, STANDARD, MetricSettings, evaluate

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
BEGIN, END = "<!-- speed:begin -->", "<!-- speed:end -->"


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
    data.stored_images()  # load or render the cache outside the timings
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


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOC} lacks the {BEGIN} ... {END} markers")
    new = re.sub(
        f"{re.escape(BEGIN)}.*?{re.escape(END)}", f"{BEGIN}\n{text}\n{END}", doc, flags=re.S
    )
    tmp = DOC.with_name(f".{DOC.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, DOC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sample sizes")
    parser.add_argument("--fast-only", action="store_true", help="only the FAST setting")
    parser.add_argument("--no-individual", action="store_true", help="suite timings only")
    parser.add_argument("--n-jobs", type=int, default=1, help="DCI classifiers in parallel")
    parser.add_argument("--threads", type=int, default=2, help="torch/BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-doc", action="store_true", help=f"update the table in {DOC}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings_list = [FAST] if args.fast_only else [STANDARD, FAST]
    settings_list = [dataclasses.replace(s, n_jobs=args.n_jobs) for s in settings_list]
    if args.smoke:
        settings_list = [
            dataclasses.replace(
                s,
                name=f"{s.name}-smoke",
                num_train=500,
                num_test=250,
                beta_vae_train=50,
                beta_vae_eval=25,
                factor_vae_train=50,
                factor_vae_eval=25,
                factor_vae_variance=500,
            )
            for s in settings_list
        ]
    rows = run(settings_list, not args.no_individual, args.seed)
    text = markdown(rows, args)
    print(text)
    if args.write_doc:
        write_doc(text)


if __name__ == "__main__":
    main()
