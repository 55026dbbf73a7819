"""How much two of our metric choices move scores away from disentanglement_lib's.

1. Binning precision (MIG, Modularity): disentanglement_lib bins an encoder's float32 codes with
   float32 histogram edges; binning the same codes after a cast to float64 puts codes that lie
   on an edge into the neighbouring bin. Counted per code entry, and the MIG and Modularity of
   the two binnings compared.
2. The logistic regression of BetaVAE and Explicitness: disentanglement_lib calls
   ``LogisticRegression()`` with scikit-learn's defaults. Today that is lbfgs, multinomial,
   ``max_iter=100``; with the scikit-learn of its release (< 0.22) it was liblinear,
   one-vs-rest. Each is fitted on the same features, with ``max_iter=1000`` as a reference for
   "converged", and the ConvergenceWarnings at each budget are counted.

Representations (all float32, on dsprites_full's factor grid): ``values``, the factor
values themselves; ``noisy``, values plus Gaussian noise (sd 5% of each factor's range);
``rounded``, noisy rounded to 0.01 so many codes sit on float-sensitive bin edges; ``mixed``,
noisy standardised and rotated (entangled); ``moments``, the 10-d image moments and pixel
projections of real observations from benchmarks/metrics_speed.py (the only one that renders
images).

    python benchmarks/metrics_fidelity.py              # standard sizes, seeds 0-2 (6-10 min)
    python benchmarks/metrics_fidelity.py --smoke      # tiny sizes, checks that it runs
    python benchmarks/metrics_fidelity.py --write-doc  # also update the tables in docs/metrics.md
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from metrics_speed import moment_codes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from deft_tune.data import get_dataset
from deft_tune.data.base import GroundTruthData
from deft_tune.data.render import factor_values
from deft_tune.metrics import discretize, mig, modularity
from deft_tune.metrics._sampling import sample_codes
from deft_tune.metrics.beta_vae import _sample_points, beta_vae_score
from deft_tune.metrics.modularity import _macro_auc, _standardise, explicitness_per_factor

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
BEGIN, END = "<!-- fidelity:begin -->", "<!-- fidelity:end -->"
SPANS = np.array([2.0, 0.5, 2 * np.pi, 1.0, 1.0], dtype=np.float32)  # range of each factor

CLASSIFIERS: dict[str, Callable[[], Any]] = {
    # LogisticRegression() today, and deft_tune's fit (checked on every draw below).
    "lbfgs-100": lambda: LogisticRegression(max_iter=100),
    "lbfgs-1000": lambda: LogisticRegression(max_iter=1000),  # reference: converged
    # LogisticRegression() before scikit-learn 0.22, when disentanglement_lib was released.
    "liblinear-ovr": lambda: OneVsRestClassifier(LogisticRegression(solver="liblinear")),
}


class FactorsAsObservations:
    """dsprites_full's factor grid whose observation of a factor row is the row itself."""

    def __init__(self, data: GroundTruthData) -> None:
        self.data, self.name = data, f"{data.name} factors"
        self.factor_names, self.factor_sizes = data.factor_names, data.factor_sizes
        self.observation_shape = (len(data.factor_sizes), 1, 1)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.data.sample_factors(n, rng)

    def sample_observations_from_factors(self, factors, rng) -> np.ndarray:
        return np.asarray(factors, dtype=np.float32)[:, :, None, None]


def factor_representations(seed: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The four representations of factor rows (see the module docstring), float32."""
    noise = np.random.default_rng(1000 + seed)
    rotation = np.linalg.qr(np.random.default_rng(seed).normal(size=(5, 5)))[0]

    def values(obs):
        return factor_values(obs[:, :, 0, 0].astype(np.int64)).astype(np.float32)

    def noisy(obs):
        codes = values(obs)
        return codes + (noise.normal(size=codes.shape) * 0.05 * SPANS).astype(np.float32)

    def rounded(obs):
        return np.round(noisy(obs), 2).astype(np.float32)

    def mixed(obs):
        return (((noisy(obs) - SPANS / 2) / SPANS) @ rotation).astype(np.float32)

    return {"values": values, "noisy": noisy, "rounded": rounded, "mixed": mixed}


def fit(name: str, x: np.ndarray, y: np.ndarray):
    """A fitted classifier, the number of ConvergenceWarnings it raised and its iterations."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf = CLASSIFIERS[name]().fit(x, y)
    count = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    n_iter = int(np.max(getattr(clf, "n_iter_", [0])))
    return clf, count, n_iter


def binning_row(codes: np.ndarray, factors: np.ndarray, bins: int) -> dict:
    """Float32 against float64 binning of the same float32 codes."""
    wide = codes.astype(np.float64)
    moved = int(np.sum(discretize(codes, bins) != discretize(wide, bins)))
    return {
        "moved": moved,
        "entries": codes.size,
        "mig": mig(codes, factors, bins)["mig"] - mig(wide, factors, bins)["mig"],
        "modularity": modularity(codes, factors, bins) - modularity(wide, factors, bins),
    }


def beta_vae_row(data, fn, rng, sizes: dict) -> dict:
    """BetaVAE eval accuracy, warnings and iterations for each classifier on one draw."""
    train = _sample_points(data, fn, sizes["beta_train"], 64, rng, 1024)
    evaluation = _sample_points(data, fn, sizes["beta_eval"], 64, rng, 1024)
    row = {}
    for name in CLASSIFIERS:
        clf, count, n_iter = fit(name, *train)
        row[name] = (float(clf.score(*evaluation)), count, n_iter)
    ours = beta_vae_score(*train, *evaluation)["beta_vae/eval_accuracy"]
    assert ours == row["lbfgs-100"][0], "deft_tune's BetaVAE no longer fits lbfgs-100"
    return row


def explicitness_row(train, test) -> dict:
    """Explicitness (test AUC, mean over factors), warnings summed and max iterations."""
    x_train, x_test = _standardise(train[0].astype(np.float64), test[0])
    row = {}
    for name in CLASSIFIERS:
        aucs, counts, iters = [], 0, 0
        for j in range(train[1].shape[1]):
            clf, count, n_iter = fit(name, x_train, train[1][:, j])
            aucs.append(_macro_auc(clf, x_test, test[1][:, j]))
            counts, iters = counts + count, max(iters, n_iter)
            if name == "lbfgs-100":
                ours = explicitness_per_factor(x_train, train[1][:, j], x_test, test[1][:, j])
                assert ours[1] == aucs[-1], "deft_tune's Explicitness no longer fits lbfgs-100"
        row[name] = (float(np.mean(aucs)), counts, iters)
    return row


def sizes_of(args) -> dict[str, int]:
    if args.smoke:
        return {"train": 500, "test": 250, "beta_train": 100, "beta_eval": 50}
    return {"train": 10_000, "test": 5_000, "beta_train": 10_000, "beta_eval": 5_000}


def measure(args) -> dict:
    """{representation: [per-seed dicts with 'binning', 'beta_vae', 'explicitness']}."""
    dsprites = get_dataset("dsprites_full")
    grid = FactorsAsObservations(dsprites)
    sizes = sizes_of(args)
    results: dict[str, list] = {}
    for seed in range(args.seeds):
        reps: dict[str, tuple[GroundTruthData, Callable[[np.ndarray], np.ndarray]]]
        reps = {n: (grid, f) for n, f in factor_representations(seed).items()}
        reps["moments"] = (dsprites, moment_codes())
        for name, (data, fn) in reps.items():
            start = time.perf_counter()
            rng = np.random.default_rng(seed)
            train = sample_codes(data, fn, sizes["train"], rng)
            test = sample_codes(data, fn, sizes["test"], rng)
            assert train[0].dtype == np.float32, "the representations must give float32 codes"
            results.setdefault(name, []).append(
                {
                    "binning": binning_row(*train, bins=20),
                    "explicitness": explicitness_row(train, test),
                    "beta_vae": beta_vae_row(data, fn, rng, sizes),
                }
            )
            print(f"seed {seed} {name}: {time.perf_counter() - start:.1f} s", flush=True)
    return results


def _span(values) -> str:
    """max |value| over seeds, in a compact form."""
    top = max(abs(v) for v in values)
    return "0" if top == 0 else f"{top:.1e}"


def binning_table(results: dict) -> list[str]:
    lines = [
        "| representation | code entries in another bin | max abs. change in MIG "
        "| max abs. change in Modularity |",
        "|---|---:|---:|---:|",
    ]
    for name, runs in results.items():
        rows = [r["binning"] for r in runs]
        moved, total = sum(r["moved"] for r in rows), sum(r["entries"] for r in rows)
        lines.append(
            f"| {name} | {moved:,} of {total:,} | {_span(r['mig'] for r in rows)} "
            f"| {_span(r['modularity'] for r in rows)} |"
        )
    return lines


def classifier_table(results: dict, key: str, label: str) -> list[str]:
    lines = [
        f"| representation | {label} lbfgs-100 (ours) | lbfgs-1000 | max abs. change 100 -> 1000 "
        "| liblinear-ovr | fits warning at 100 | most iterations at 1000 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        rows = [r[key] for r in runs]
        mean = {c: np.mean([r[c][0] for r in rows]) for c in CLASSIFIERS}
        change = _span(r["lbfgs-1000"][0] - r["lbfgs-100"][0] for r in rows)
        fits = len(rows) * (5 if key == "explicitness" else 1)
        warned = sum(r["lbfgs-100"][1] for r in rows)
        lines.append(
            f"| {name} | {mean['lbfgs-100']:.4f} | {mean['lbfgs-1000']:.4f} | {change} "
            f"| {mean['liblinear-ovr']:.4f} | {warned} of {fits} "
            f"| {max(r['lbfgs-1000'][2] for r in rows)} |"
        )
    return lines


def markdown(results: dict, args, seconds: float) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    seeds, s = len(next(iter(results.values()))), sizes_of(args)
    return "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python "
            f"benchmarks/metrics_fidelity.py{' --smoke' if args.smoke else ''}` on "
            f"{platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
            f"scikit-learn {_sklearn_version()}; seeds 0-{seeds - 1}, {seconds:.0f} s, load "
            f"average {load:.1f} at the end.",
            "",
            "Binning float32 codes in float32 (disentanglement_lib, and ours) against float64, "
            f"20 bins, {s['train']:,} codes per seed:",
            "",
            *binning_table(results),
            "",
            f"BetaVAE eval accuracy (mean over seeds; {s['beta_train']:,} / "
            f"{s['beta_eval']:,} points, batch 64):",
            "",
            *classifier_table(results, "beta_vae", "eval accuracy,"),
            "",
            f"Explicitness test AUC (mean over seeds; {s['train']:,} / {s['test']:,} codes; 5 "
            "fits per seed, one per factor):",
            "",
            *classifier_table(results, "explicitness", "test AUC,"),
        ]
    )


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


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
    parser.add_argument("--smoke", action="store_true", help="tiny sample sizes, one seed")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--write-doc", action="store_true", help=f"update the tables in {DOC}")
    args = parser.parse_args()
    if args.smoke:
        args.seeds = 1
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results = measure(args)
    text = markdown(results, args, time.perf_counter() - start)
    print(text)
    if args.write_doc:
        write_doc(text)


if __name__ == "__main__":
    main()
