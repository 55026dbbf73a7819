"""Experiment 3: information diffusion (NMI2/NMI1 over the captured factors) of experiment 1's
retrained models, DEFT against beta-VAE paired by seed."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from deft_tune.tables import markdown_table

from .. import retrain
from ..intervals import RESAMPLES, Claim, bracket, paired_claim
from ..markdown import pm
from .units import arms

CAPTURED = 0.05  # NMI1 at the last evaluation from which a factor counts as captured


def diffusion(history: list[dict[str, float]]) -> float:
    """NMI2/NMI1 at the last evaluation, averaged over the factors the model captured (NMI1 >=
    CAPTURED); NaN when it captured none (a model that encodes nothing shows no diffusion, which
    is no evidence either way)."""
    if not history:
        return math.nan
    last = history[-1]
    factors = [k.removeprefix("info/nmi1/") for k in last if k.startswith("info/nmi1/")]
    ratios = [last[f"info/nmi2/{f}"] / last[f"info/nmi1/{f}"] for f in factors
              if last[f"info/nmi1/{f}"] >= CAPTURED and f"info/nmi2/{f}" in last]  # fmt: skip
    return statistics.fmean(ratios) if ratios else math.nan


def experiment_3(rows: list[dict[str, Any]]) -> str:
    lines = ["## 3. Information diffusion: the second-best latent's share of each factor", ""]
    by_arm = _with_history(rows)
    lines += [
        "Read from experiment 1's units: each retrained model's last evaluation of NMI1 and "
        "NMI2, the largest and second largest normalised mutual information between a factor "
        "and one latent, on the evaluation probe. A model's diffusion is NMI2/NMI1 averaged over "
        f"the factors it captured (NMI1 >= {CAPTURED}); the paper's claim is that DEFT diffuses "
        "less than beta-VAE. Seeds are shared by the arms, so differences pair by seed "
        f"(95% intervals of the mean paired difference: bootstrap, {RESAMPLES:,} resamples, "
        "and Student's t).",
        "",
    ]
    table = [{"arm": retrain.ARMS[k].label, "seeds": len(mine),
              "diffusion (NMI2/NMI1)": pm([diffusion(r["history"]) for r in mine]),
              "factors captured": pm([_captured(r["history"]) for r in mine])}
             for k, mine in by_arm.items() if mine]  # fmt: skip
    if table:
        lines += [markdown_table(table), ""]
    pairs = _diffusion_pairs(rows)
    if len(pairs) < len(retrain.SEEDS):
        wait = (f"Not judged yet: {len(pairs)} of {len(retrain.SEEDS)} seeds have both a DEFT "
                "and a beta-VAE unit with a diffusion (experiment 1's units, "
                "benchmarks/campaign.yaml).")  # fmt: skip
        return "\n".join([*lines, wait, ""])
    claim = paired_claim(pairs)
    lines.append(f"DEFT minus beta-VAE, paired over {len(pairs)} seeds: {claim.mean:+.3f}, "
                 f"bootstrap {bracket(claim.bootstrap)}, t {bracket(claim.t)}; DEFT's diffusion "
                 f"is {claim.verdict()}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def _with_history(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {k: [r for r in mine if r.get("history")] for k, mine in arms(rows).items()}


def _diffusion_pairs(rows: Sequence[dict[str, Any]]) -> list[float]:
    """DEFT minus beta-VAE diffusion for each seed both arms have."""
    return _paired(_with_history(rows), "deft", "beta_vae", lambda r: diffusion(r["history"]))


def e3_claim(rows: Sequence[dict[str, Any]]) -> Claim | None:
    """DEFT minus beta-VAE diffusion, paired by seed, once every seed has both."""
    pairs = _diffusion_pairs(rows)
    return paired_claim(pairs) if len(pairs) >= len(retrain.SEEDS) else None


def _captured(history: list[dict[str, float]]) -> float:
    last = history[-1] if history else {}
    return float(sum(v >= CAPTURED for k, v in last.items() if k.startswith("info/nmi1/")))


def _paired(by_arm: dict, a: str, b: str, value) -> list[float]:
    """value(row of a) - value(row of b) for each seed both arms have, where both are finite."""
    theirs = {r["seed"]: value(r) for r in by_arm.get(b, [])}
    out = []
    for row in by_arm.get(a, []):
        mine, other = value(row), theirs.get(row["seed"], math.nan)
        if math.isfinite(mine) and math.isfinite(other):
            out.append(mine - other)
    return out
