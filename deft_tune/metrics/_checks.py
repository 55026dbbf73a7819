"""Input checks shared by the metric cores: bad input raises a ValueError naming the argument.

A wrong number is worse than an error: a metric that silently averages NaN codes or divides by
the entropy of a constant factor would mislead every search that optimises it.
"""

from __future__ import annotations

import numpy as np


def check_codes(codes: np.ndarray, name: str = "codes", keep_float32: bool = False) -> np.ndarray:
    """A finite float array of shape (n, d) with n >= 1 and d >= 1, as float64.

    With ``keep_float32`` float32 codes stay float32: disentanglement_lib bins an encoder's
    float32 output as it is, and float32 histogram edges put some codes in other bins than
    float64 edges would (docs/metrics.md). Every other dtype becomes float64.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] == 0 or codes.shape[1] == 0:
        raise ValueError(f"{name} must have shape (n, d) with n, d >= 1, got {codes.shape}")
    if not (np.issubdtype(codes.dtype, np.floating) or np.issubdtype(codes.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {codes.dtype}")
    if not (keep_float32 and codes.dtype == np.float32):
        codes = codes.astype(np.float64, copy=False)
    if not np.isfinite(codes).all():
        bad = int(np.sum(~np.isfinite(codes)))
        raise ValueError(f"{name} holds {bad} NaN or infinite values; check the encoder output")
    return codes


def check_factors(factors: np.ndarray, name: str = "factors", min_values: int = 2) -> np.ndarray:
    """Integer factor indices of shape (n, k); each factor must take at least ``min_values``.

    A factor with a single value has zero entropy and no classifier can be trained on it, so
    every score that normalises by entropy or fits a classifier refuses it.
    """
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[0] == 0 or factors.shape[1] == 0:
        raise ValueError(f"{name} must have shape (n, k) with n, k >= 1, got {factors.shape}")
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"{name} must be integer indices, got dtype {factors.dtype}")
    factors = factors.astype(np.int64, copy=False)
    if (factors < 0).any():
        raise ValueError(f"{name} must be non-negative indices, got minimum {factors.min()}")
    for j in range(factors.shape[1]):
        count = np.unique(factors[:, j]).size
        if count < min_values:
            raise ValueError(
                f"{name}[:, {j}] takes {count} distinct value(s); each factor needs "
                f"at least {min_values} (use more samples or drop the factor)"
            )
    return factors


def check_pair(
    codes: np.ndarray,
    factors: np.ndarray,
    suffix: str = "",
    min_values: int = 2,
    keep_float32: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Codes and factors checked together: same number of samples."""
    codes = check_codes(codes, f"codes{suffix}", keep_float32)
    factors = check_factors(factors, f"factors{suffix}", min_values)
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes{suffix} and factors{suffix} must have the same number of "
            f"samples, got {codes.shape[0]} and {factors.shape[0]}"
        )
    return codes, factors


def check_positive_int(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} == {value!r}, must be an integer >= {minimum}")
    return int(value)
