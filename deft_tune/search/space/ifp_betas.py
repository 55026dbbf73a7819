"""Stage-beta candidates from an annealing-test table (the Parquet `deft-tune ifp` writes;
:mod:`deft_tune.freezing.ifp_table` reads it).

DEFT wants stage i's beta below the freezing point of the factor it should admit and above the
freezing points of the factors still to come. Sorting factors by their median IFP, the useful
betas therefore lie between consecutive factors: where the two IFP distributions are separated
(the lower quantile of the higher factor above the upper quantile of the lower one) the
candidate is the geometric middle of that gap, otherwise the geometric middle of the two
medians. Betas are compared on a log scale, as the annealing itself is exponential.
"""

from __future__ import annotations

import logging
import math

import numpy as np

__all__ = ["beta_candidates"]

logger = logging.getLogger(__name__)


def beta_candidates(
    ifps: dict[str, np.ndarray], quantiles: tuple[float, float] = (0.25, 0.75)
) -> tuple[float, ...]:
    """Strictly decreasing stage-beta candidates between factors, rounded to 4 digits."""
    low_q, high_q = quantiles
    stats = sorted(
        (
            (float(np.median(v)), float(np.quantile(v, low_q)), float(np.quantile(v, high_q)))
            for v in ifps.values()
        ),
        reverse=True,
    )
    out: list[float] = []
    for (med_a, low_a, _), (med_b, _, high_b) in zip(stats, stats[1:]):
        if med_a <= med_b:
            continue  # equal medians: no beta separates the two factors
        candidate = math.sqrt(low_a * high_b) if low_a > high_b else math.sqrt(med_a * med_b)
        candidate = float(f"{candidate:.4g}")
        if not out or candidate < out[-1]:
            out.append(candidate)
    return tuple(out)
