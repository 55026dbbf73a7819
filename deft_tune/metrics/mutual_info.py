"""The factor-by-latent mutual-information matrix and its normalised top-1/top-2 per factor.

These are the pure cores of MIG and Modularity and of the information-diffusion measure the
training loop tracks on a fixed probe batch (NMI2 rising = information spreading into a second
latent). Codes are discretised as disentanglement_lib does: per code, ``bins`` equal-width bins
from ``np.histogram`` edges, then ``np.digitize``, in the codes' own precision (float32 codes
get float32 edges; other dtypes are binned as float64). Mutual information is in nats and equals
``sklearn.metrics.mutual_info_score`` on the discretised codes (tested against it); it is
computed here from joint counts because one bincount per pair is far faster.
"""

from __future__ import annotations

import numpy as np

from deft_tune.metrics._checks import check_codes, check_factors, check_positive_int

__all__ = ["discretize", "entropies", "mutual_info_matrix", "normalized_top2"]


def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """Codes (n, d) -> bin indices (n, d) in 1..bins, equal-width bins per code.

    A constant code falls into one bin. Fewer samples than bins is refused: the histogram would
    be mostly empty and the mutual information biased, not merely noisy. float32 codes are
    binned in float32, as disentanglement_lib bins an encoder's output: a code lying on a bin
    edge can land one bin higher or lower than in float64.
    """
    codes = check_codes(codes, keep_float32=True)
    bins = check_positive_int(bins, "bins", minimum=2)
    if codes.shape[0] < bins:
        raise ValueError(
            f"codes has {codes.shape[0]} samples, fewer than bins={bins}; "
            f"use at least {bins} samples or fewer bins"
        )
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], bins=bins)[1]
        out[:, i] = np.digitize(codes[:, i], edges[:-1])
    return out


def _entropy_of_counts(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def entropies(labels: np.ndarray) -> np.ndarray:
    """Entropy in nats of each column of an integer array (n, k) -> (k,)."""
    labels = check_factors(labels, "labels", min_values=1)
    return np.array([_entropy_of_counts(np.unique(col, return_counts=True)[1]) for col in labels.T])


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """MI (nats) of two non-negative integer label vectors, from their joint counts."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    nb = int(b.max()) + 1
    joint = np.bincount(a * nb + b, minlength=(int(a.max()) + 1) * nb).reshape(-1, nb)
    # I(A;B) = H(A) + H(B) - H(A,B); clipped at 0 against rounding.
    h = (
        _entropy_of_counts(joint.sum(axis=1))
        + _entropy_of_counts(joint.sum(axis=0))
        - _entropy_of_counts(joint.ravel())
    )
    return max(h, 0.0)


def mutual_info_matrix(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> np.ndarray:
    """Mutual information (nats) between each factor and each discretised code, shape (k, d).

    Note the orientation: rows are factors (disentanglement_lib uses codes x factors).
    """
    discrete = discretize(codes, bins)
    factors = check_factors(factors, min_values=1)
    if factors.shape[0] != discrete.shape[0]:
        raise ValueError(
            f"codes and factors must have the same number of samples, got "
            f"{discrete.shape[0]} and {factors.shape[0]}"
        )
    return np.array([[_mutual_info(f, c) for c in discrete.T] for f in factors.T])


def normalized_top2(mi: np.ndarray, factor_entropies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each factor's row of ``mi`` (k, d) divided by its entropy; the largest and second largest.

    Returns (nmi1, nmi2), each of shape (k,). With a single code nmi2 is 0.
    """
    mi = np.asarray(mi, dtype=np.float64)
    h = np.asarray(factor_entropies, dtype=np.float64)
    if mi.ndim != 2 or mi.shape[0] == 0 or mi.shape[1] == 0:
        raise ValueError(f"mi must have shape (k, d) with k, d >= 1, got {mi.shape}")
    if h.shape != (mi.shape[0],):
        raise ValueError(f"factor_entropies must have shape ({mi.shape[0]},), got {h.shape}")
    if not (np.isfinite(mi).all() and np.isfinite(h).all()):
        raise ValueError("mi and factor_entropies must be finite")
    if (h <= 0).any():
        j = int(np.argmax(h <= 0))
        raise ValueError(
            f"factor_entropies[{j}] == {h[j]}, must be > 0 (a factor with one "
            f"value carries no information to normalise by)"
        )
    normalized = mi / h[:, None]
    ordered = -np.sort(-normalized, axis=1)
    nmi2 = ordered[:, 1] if mi.shape[1] > 1 else np.zeros(mi.shape[0])
    return ordered[:, 0], nmi2
