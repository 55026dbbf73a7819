"""dSprites with two factors tied together: the correlated-factor experiment of the DEFT paper.

The images are dSprites' own (same cache); only the distribution of factors changes. Factor ``b``
of ``pair = (a, b)`` follows factor ``a``; every other factor stays uniform and independent:

    P(b | a) = correlation * [b == tie(a)] + (1 - correlation) / size_b

that is, with probability ``correlation`` b sits on a fixed monotone map of a, otherwise it is
drawn uniformly. Why a mixture rather than a discretised Gaussian around tie(a) (the authors'
arrow data set adds Gaussian noise to an angle): both ends are exact without special cases
(0 is independence, 1 a deterministic map), the joint has a closed form for
``sampling_weights``, every (a, b) pair keeps a positive probability for any strength below 1,
and the strength reads directly as the fraction of samples on the map.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from deft_tune.data.dsprites import DSprites
from deft_tune.errors import ConfigError

DEFAULT_PAIR = ("pos_x", "orientation")


def tie_map(size_a: int, size_b: int) -> np.ndarray:
    """The monotone map a -> b used at full strength: b = floor(a * size_b / size_a), shape
    (size_a,). It spreads a's values evenly over b's range and never wraps, which matters for a
    circular b such as orientation (index 39 draws the same image as index 0).
    """
    return (np.arange(size_a, dtype=np.int64) * size_b) // size_a


def pair_joint(size_a: int, size_b: int, correlation: float) -> np.ndarray:
    """Joint probabilities P(a, b), shape (size_a, size_b); a uniform, b | a as the module says."""
    joint = np.full((size_a, size_b), (1.0 - correlation) / size_b)
    joint[np.arange(size_a), tie_map(size_a, size_b)] += correlation
    return joint / size_a


def sample_tied(
    a: np.ndarray, size_a: int, size_b: int, correlation: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw b for each value of ``a`` (n,) from P(b | a)."""
    on_map = rng.random(len(a)) < correlation  # never at 0, always at 1
    uniform = rng.integers(0, size_b, size=len(a))
    return np.where(on_map, tie_map(size_a, size_b)[a], uniform)


def check_correlation(correlation: float) -> float:
    """The strength as a float in [0, 1], or :class:`ConfigError` naming the fix."""
    if (
        isinstance(correlation, bool)
        or not isinstance(correlation, (int, float, np.number))
        or not math.isfinite(correlation)
        or not 0.0 <= correlation <= 1.0
    ):
        raise ConfigError(
            f"correlation == {correlation!r}, must be a number in [0, 1] "
            f"(0 = independent factors, 1 = one factor a function of the other)"
        )
    return float(correlation)


class CorrelatedDSprites(DSprites):
    """dSprites whose factor ``pair[1]`` is tied to ``pair[0]`` with strength ``correlation``.

    ``sample_factors`` draws from the correlated distribution and ``sampling_weights`` gives the
    same distribution over the 737,280 flat indices, so training batches follow it too. The
    rendered images and their cache are shared with ``dsprites_full``.
    """

    name = "correlated_dsprites"
    description = (
        "dSprites with one factor tied to another (options pair, correlation: 0 = independent, "
        "1 = deterministic; default orientation follows pos_x)"
    )

    def __init__(
        self,
        correlation: float = 0.0,
        pair: Sequence[str] = DEFAULT_PAIR,
        cache_dir: str | os.PathLike | None = None,
        path: str | os.PathLike | None = None,
    ) -> None:
        self.correlation = check_correlation(correlation)
        self.pair = self._check_pair(pair)
        super().__init__(cache_dir=cache_dir, path=path)
        a, b = self.pair
        self.description += f"; {b} tied to {a} with correlation {self.correlation:g}"

    def _check_pair(self, pair: Sequence[str]) -> tuple[str, str]:
        names = self.factor_names
        if isinstance(pair, str) or len(pair) != 2 or pair[0] == pair[1]:
            raise ConfigError(
                f"pair == {pair!r}, must be two different factor names, e.g. {list(DEFAULT_PAIR)}"
            )
        unknown = [p for p in pair if p not in names]
        if unknown:
            raise ConfigError(
                f"pair names unknown factor {unknown[0]!r}; choose from {', '.join(names)}"
            )
        return (str(pair[0]), str(pair[1]))

    @property
    def _pair_axes(self) -> tuple[int, int]:
        return self.factor_names.index(self.pair[0]), self.factor_names.index(self.pair[1])

    def joint(self) -> np.ndarray:
        """P(pair[0], pair[1]) as a (size_a, size_b) matrix."""
        ia, ib = self._pair_axes
        return pair_joint(self.factor_sizes[ia], self.factor_sizes[ib], self.correlation)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n factor vectors (n, 5): pair[1] drawn given pair[0], the rest uniform."""
        factors = super().sample_factors(n, rng)
        ia, ib = self._pair_axes
        sizes = self.factor_sizes
        factors[:, ib] = sample_tied(factors[:, ia], sizes[ia], sizes[ib], self.correlation, rng)
        return factors

    def sampling_weights(self) -> np.ndarray:
        """P(flat index), float64 (737,280,): the joint of the pair times uniform for the rest."""
        ia, ib = self._pair_axes
        sizes = self.factor_sizes
        shape = [1] * len(sizes)
        shape[ia], shape[ib] = sizes[ia], sizes[ib]
        joint = self.joint() if ia < ib else self.joint().T  # axes in grid order
        others = np.prod(sizes, dtype=np.int64) // (sizes[ia] * sizes[ib])
        weights = np.broadcast_to(joint.reshape(shape) / others, sizes)
        return np.ascontiguousarray(weights).reshape(-1)
