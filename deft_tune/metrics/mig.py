"""Mutual Information Gap (Chen et al. 2018), as disentanglement_lib computes it.

Per factor: the gap between the largest and second largest mutual information with a single
discretised code, divided by the factor's entropy; MIG is the mean over factors. Range [0, 1].
"""

from __future__ import annotations

import numpy as np

from deft_tune.data.base import GroundTruthData
from deft_tune.metrics._checks import check_pair
from deft_tune.metrics._sampling import ENCODE_BATCH, RepresentationFn, sample_codes
from deft_tune.metrics.mutual_info import entropies, mutual_info_matrix, normalized_top2
from deft_tune.validation import RandomLike, check_random_state

__all__ = ["compute_mig", "mig", "mig_from_mi"]


def mig_from_mi(mi: np.ndarray, factor_entropies: np.ndarray) -> float:
    """MIG from a factor-by-code MI matrix (k, d) and the factor entropies (k,)."""
    nmi1, nmi2 = normalized_top2(mi, factor_entropies)
    return float(np.mean(nmi1 - nmi2))


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> dict[str, float]:
    """MIG of codes (n, d) against integer factors (n, k): ``{"mig": score}``."""
    codes, factors = check_pair(codes, factors, keep_float32=True)  # binned as given
    mi = mutual_info_matrix(codes, factors, bins)
    return {"mig": mig_from_mi(mi, entropies(factors))}


def compute_mig(
    representation_fn: RepresentationFn,
    data: GroundTruthData,
    seed: RandomLike = 0,
    num_train: int = 10_000,
    bins: int = 20,
    encode_batch: int = ENCODE_BATCH,
) -> dict[str, float]:
    """Sample ``num_train`` points of ``data``, encode them, and score MIG."""
    rng = check_random_state(seed)
    codes, factors = sample_codes(data, representation_fn, num_train, rng, encode_batch)
    return mig(codes, factors, bins)
