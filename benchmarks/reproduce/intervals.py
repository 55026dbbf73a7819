"""The 95% intervals docs/RESULTS.md judges its claims with, over 3-5 seeds per arm.

Two intervals for every difference: the percentile bootstrap the results issue asks for, and
Student's t (Welch's for two unpaired arms). At these sample sizes the bootstrap is too narrow:
for normal samples it covers the true mean in about 84% of samples of 5 and 76% of 3
(:func:`bootstrap_coverage` measures it), because a resample never spreads wider than the seeds
drawn. The t interval keeps its 95% there. A difference is called higher or lower only where
both intervals exclude 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

RESAMPLES = 10_000
SEED = 0  # of every bootstrap
LEVEL = 0.95


def bootstrap_difference(a: Sequence[float], b: Sequence[float], seed: int = SEED) -> tuple:
    """The 2.5th and 97.5th percentiles of mean(a*) - mean(b*) over resamples of each group with
    replacement (groups resampled independently: the seeds of two arms are not paired)."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    dx, dy = resamples(x, rng).mean(axis=1), resamples(y, rng).mean(axis=1)
    low, high = np.percentile(dx - dy, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_mean(values: Sequence[float], seed: int = SEED) -> tuple:
    """The 2.5th and 97.5th percentiles of the mean of ``values`` resampled with replacement:
    the interval of a paired difference, one value per seed."""
    rng = np.random.default_rng(seed)
    means = resamples(np.asarray(values, dtype=float), rng).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def resamples(x: np.ndarray, rng: np.random.Generator, count: int = RESAMPLES) -> np.ndarray:
    """``count`` rows, each ``x`` drawn again with replacement."""
    return x[rng.integers(0, len(x), size=(count, len(x)))]


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """Student's t 95% interval of the mean of ``values`` (one per seed, or paired differences)."""
    x = _at_least_two(values)
    half = _t_quantile(len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def welch_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t 95% interval of mean(a) - mean(b): unpaired groups, variances not assumed equal,
    degrees of freedom by Welch-Satterthwaite."""
    x, y = _at_least_two(a), _at_least_two(b)
    share_x, share_y = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    difference = float(x.mean() - y.mean())
    if share_x + share_y == 0:  # no spread in either group: nothing to be unsure of
        return difference, difference
    dof = (share_x + share_y) ** 2 / (share_x**2 / (len(x) - 1) + share_y**2 / (len(y) - 1))
    half = _t_quantile(dof) * math.sqrt(share_x + share_y)
    return difference - half, difference + half


def _at_least_two(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {len(x)}")
    return x


def _t_quantile(dof: float) -> float:
    return float(stats.t.ppf(0.5 + LEVEL / 2, dof))


@dataclass(frozen=True)
class Claim:
    """A difference (its mean over seeds) with its bootstrap and t 95% intervals."""

    mean: float
    bootstrap: tuple[float, float]
    t: tuple[float, float]

    def verdict(self) -> str:
        """Called "higher" or "lower" only where both intervals exclude 0, on the same side."""
        if self.bootstrap[0] > 0 and self.t[0] > 0:
            return "higher"
        if self.bootstrap[1] < 0 and self.t[1] < 0:
            return "lower"
        holding = [name for name, (low, high) in (("bootstrap", self.bootstrap), ("t", self.t))
                   if low <= 0 <= high]  # fmt: skip
        which = "both intervals hold" if len(holding) == 2 else f"the {holding[0]} interval holds"
        return f"not separated ({which} 0)"

    def columns(self, mean: str, t: str, verdict: str) -> dict[str, str]:
        """The claim as table cells under the given headers for the mean, the t interval and
        the verdict (the bootstrap interval's header is the same in every table)."""
        return {mean: f"{self.mean:+.3f}", "bootstrap 95%": bracket(self.bootstrap),
                t: bracket(self.t), verdict: self.verdict()}  # fmt: skip


def paired_claim(differences: Sequence[float]) -> Claim:
    """A claim on differences paired by seed: bootstrap of their mean and Student's t."""
    return Claim(statistics.fmean(differences), bootstrap_mean(differences),
                 t_interval(differences))  # fmt: skip


def unpaired_claim(a: Sequence[float], b: Sequence[float]) -> Claim:
    """A claim on mean(a) - mean(b), arms not paired: both resampled, and Welch's t."""
    return Claim(statistics.fmean(a) - statistics.fmean(b), bootstrap_difference(a, b),
                 welch_interval(a, b))  # fmt: skip


def bracket(interval: tuple[float, float], sign: bool = True) -> str:
    """``[low, high]`` to 3 decimals, signed where the interval is of a difference."""
    spec = "+.3f" if sign else ".3f"
    return f"[{interval[0]:{spec}}, {interval[1]:{spec}}]"


def bootstrap_coverage(size: int, samples: int = 2_000, seed: int = SEED) -> float:
    """How often the percentile bootstrap's 95% interval of the mean holds the true mean, over
    ``samples`` standard normal samples of ``size`` values (2,000 resamples each)."""
    rng = np.random.default_rng(seed)
    held = 0
    for _ in range(samples):
        means = resamples(rng.standard_normal(size), rng, 2_000).mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        held += bool(low <= 0 <= high)
    return held / samples


# --- shifts between two samples' locations (experiment 2's IFPs: medians, not means) ----------


def bootstrap_median_difference(a: Sequence[float], b: Sequence[float], seed: int = SEED) -> tuple:
    """The 2.5th and 97.5th percentiles of median(a*) - median(b*), each group resampled with
    replacement on its own."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    dx, dy = np.median(resamples(x, rng), axis=1), np.median(resamples(y, rng), axis=1)
    low, high = np.percentile(dx - dy, [2.5, 97.5])
    return float(low), float(high)


def shift_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The distribution-free 95% interval of the shift between a's and b's locations (Hodges-
    Lehmann, from the Mann-Whitney test's exact null distribution): the k-th smallest and k-th
    largest of the pairwise differences a_i - b_j, with k the largest count for which
    P(U < k) <= 2.5%. (-inf, inf) when the samples are too small for any such k."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    cdf = mann_whitney_cdf(len(x), len(y))
    k = int(np.searchsorted(cdf, (1 - LEVEL) / 2, side="right"))  # P(U <= k - 1) <= 2.5%
    if k == 0:
        return -math.inf, math.inf
    differences = np.sort(np.subtract.outer(x, y).ravel())
    return float(differences[k - 1]), float(differences[-k])


def mann_whitney_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u) for u = 0 .. m*n, U the Mann-Whitney count of pairs (x_i > y_j) for samples of
    m and n values from one continuous distribution (every order of the m + n equally likely).

    Counts orders by the largest value: it is an x (beating all n y's) or a y (beating none),
    so count(m, n, u) = count(m - 1, n, u - n) + count(m, n - 1, u)."""
    counts = [[np.zeros(1, dtype=object) for _ in range(n + 1)] for _ in range(m + 1)]
    for i in range(m + 1):
        for j in range(n + 1):
            if i == 0 or j == 0:
                counts[i][j] = np.ones(1, dtype=object)  # one order, U = 0
                continue
            row = np.zeros(i * j + 1, dtype=object)
            row[j : j + (i - 1) * j + 1] += counts[i - 1][j]
            row[: (j - 1) * i + 1] += counts[i][j - 1]
            counts[i][j] = row
    total = counts[m][n]
    return np.cumsum(total).astype(float) / float(sum(total))
