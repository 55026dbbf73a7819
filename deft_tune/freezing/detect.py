"""Finding the information freezing point (IFP) on a KL-versus-beta curve.

During the annealing test beta falls step by step and the KL of a latent stays near zero until
the pressure is low enough for a factor's information to enter; then it rises and keeps rising.
The IFP is the beta at that rise. Per-step KL is measured on a small batch and is noisy, so the
curve is smoothed with a centred running median (a single-step spike cannot move a median of 3
or more points), and a crossing only counts if the smoothed curve then stays above the threshold:
to the end of the run by default (beta only falls, so admitted information stays; this also
skips the start-up transient of a freshly initialised encoder, whose KL briefly rises and then
collapses under the high beta), or for ``hold`` points when given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["FreezingPoint", "default_window", "find_freezing_point", "running_median"]


@dataclass(frozen=True)
class FreezingPoint:
    """Where a curve froze: ``index`` into it and the ``beta`` there (NaN when it never froze)."""

    index: int | None
    beta: float

    @property
    def found(self) -> bool:
        return self.index is not None


def default_window(steps: int) -> int:
    """A smoothing window of about 0.6% of the run (50 steps of the authors' 8,000), at least 5.

    Under the authors' schedule beta falls by ~9% over such a window: fine enough to place the
    IFP, wide enough to average a 64-image batch's noise.
    """
    return max(5, int(steps) // 160)


def running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Centred running median of a 1-D array; the window shrinks at the ends."""
    values = _check_curve(values, "values")
    window = _check_window(window)
    half = window // 2
    if values.size == 0:
        return values.copy()
    padded = np.pad(values, half, mode="constant", constant_values=np.nan)
    stacked = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.nanmedian(stacked, axis=1)


def find_freezing_point(
    betas: np.ndarray,
    kl: np.ndarray,
    threshold: float = 0.1,
    window: int = 5,
    hold: int | None = None,
) -> FreezingPoint:
    """The first point where the smoothed KL rises past ``threshold`` (nats) and stays there.

    ``betas`` and ``kl`` are aligned 1-D arrays (one entry per logged step). The smoothed curve
    must stay above the threshold for ``hold`` points (or until the end of the curve if fewer
    remain); ``hold`` None means to the end of the curve. Returns the index and beta of the
    crossing, or index None and beta NaN when the KL never rises past the threshold to stay.
    """
    betas = _check_curve(betas, "betas")
    kl = _check_curve(kl, "kl")
    if betas.shape != kl.shape:
        raise ValueError(f"betas and kl must have the same length, got {betas.size} and {kl.size}")
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold == {threshold!r}, must be a positive number of nats")
    window = _check_window(window)
    hold = kl.size if hold is None else _check_window(hold, "hold")
    above = running_median(kl, window) > threshold
    # run[i] = how many consecutive points from i on stay above the threshold.
    run = np.zeros(above.size + 1, dtype=np.int64)
    for i in range(above.size - 1, -1, -1):
        run[i] = run[i + 1] + 1 if above[i] else 0
    remaining = above.size - np.arange(above.size)
    ok = above & (run[:-1] >= np.minimum(hold, remaining))
    if not ok.any():
        return FreezingPoint(None, float("nan"))
    index = int(np.argmax(ok))
    return FreezingPoint(index, float(betas[index]))


def _check_curve(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite (a NaN KL means training diverged)")
    return values


def _check_window(window: int, name: str = "window") -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"{name} == {window!r}, must be an integer >= 1")
    return int(window)
