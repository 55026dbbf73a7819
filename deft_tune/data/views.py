"""Single-factor views: the data the annealing test trains on.

A view sweeps one factor through all its values while every other factor stays at one value: a
random draw or values the caller gives. The view is itself a :class:`GridData` with one factor,
so the training loop runs on it unchanged: ``stored_images()`` holds only the swept rows of the
base data set and ``decode_batch`` delegates to the base, so nuisance randomness drawn at decode
time (colour, noise, the shape of ``dsprites_noshape``, SmallNORB's instance) stays as the base
data set defines it.

Data sets that only follow the :class:`GroundTruthData` protocol (no stored rows) are rendered
once through ``sample_observations_from_factors``; such a view stores float32 observations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import numpy as np
import torch

from deft_tune.data.base import GridData, GroundTruthData, StoredData, stored_rows
from deft_tune.errors import ConfigError
from deft_tune.validation import RandomLike, check_random_state

Fixed = Mapping[str, int]


class SingleFactorView(GridData):
    """One factor of ``base`` sweeping its values; built by :func:`single_factor_view`.

    Attributes: ``base``, ``factor`` (index into the base's factors), ``fixed_factors`` (name ->
    value index of every other factor), ``base_factors`` ((size, k) factor vectors of the base
    for the view's rows, in sweep order).
    """

    def __init__(
        self,
        base: GroundTruthData,
        factor: int,
        fixed_factors: dict[str, int],
        stored: np.ndarray,
        decodes: bool,
    ) -> None:
        self.base = base
        self.factor = factor
        self.fixed_factors = fixed_factors
        name = base.factor_names[factor]
        self.name = f"{base.name}[{name}]"
        self.description = f"{base.name} with only {name} varying"
        self.factor_names = (name,)
        self.factor_sizes = (int(base.factor_sizes[factor]),)
        self.observation_shape = cast(tuple[int, int, int], tuple(base.observation_shape))
        self._stored = stored
        self._decodes = decodes  # False: stored rows are already float observations

    @property
    def base_factors(self) -> np.ndarray:
        """The base data set's factor vectors of the view's rows, shape (size, k)."""
        return _sweep(self.base, self.factor, self.fixed_factors)

    def stored_images(self) -> np.ndarray:
        return self._stored

    def decode_batch(
        self, raw: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self._decodes:
            return cast(StoredData, self.base).decode_batch(raw, generator)
        return raw.to(torch.float32)


def single_factor_view(
    data: GroundTruthData, factor: int | str, rng_or_fixed: RandomLike | Fixed = None
) -> SingleFactorView:
    """A view of ``data`` where ``factor`` (name or index) sweeps all its values.

    ``rng_or_fixed``: a seed, a ``np.random.Generator`` or None, to draw the other factors
    uniformly; or a mapping name -> value index that fixes every other factor (an entry for
    ``factor`` itself is ignored, so one full draw serves every factor, and a view's
    ``fixed_factors`` rebuild it).
    """
    index = _factor_index(data, factor)
    if isinstance(rng_or_fixed, Mapping):
        fixed = _check_fixed(data, index, rng_or_fixed)
        # Only a protocol-only data set needs randomness here: derive it from the values.
        rng = np.random.default_rng([index, *fixed.values()])
    else:
        rng = check_random_state(rng_or_fixed)
        sizes = zip(data.factor_names, data.factor_sizes, strict=True)
        fixed = {n: int(rng.integers(s)) for j, (n, s) in enumerate(sizes) if j != index}
    factors = _sweep(data, index, fixed)
    rows = stored_rows(data) if isinstance(data, GridData) else None
    if rows is None:
        images = np.asarray(data.sample_observations_from_factors(factors, rng), np.float32)
        return SingleFactorView(data, index, fixed, images, decodes=False)
    # A copy of the few swept rows: small, and no longer tied to the base's memory map.
    grid = cast(GridData, data)
    stored = np.ascontiguousarray(rows[grid.factors_to_index(factors)])
    return SingleFactorView(data, index, fixed, stored, decodes=True)


def all_single_factor_views(
    data: GroundTruthData, draws: int, rng: RandomLike = None
) -> dict[str, list[SingleFactorView]]:
    """``draws`` views per factor, each with its own random draw of the others: factor name ->
    views. Repeated draws give the spread of each factor's information freezing point.
    """
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ConfigError(f"draws == {draws!r}, must be an integer >= 1")
    rng = check_random_state(rng)
    return {
        name: [single_factor_view(data, j, rng) for _ in range(int(draws))]
        for j, name in enumerate(data.factor_names)
    }


def _factor_index(data: GroundTruthData, factor: int | str) -> int:
    names = tuple(data.factor_names)
    if isinstance(factor, str):
        if factor not in names:
            raise ConfigError(
                f"factor {factor!r} is not a factor of {data.name}; "
                f"choose one of {', '.join(names)}"
            )
        return names.index(factor)
    if (
        isinstance(factor, bool)
        or not isinstance(factor, (int, np.integer))
        or not 0 <= factor < len(names)
    ):
        raise ConfigError(
            f"factor == {factor!r}, must be a name ({', '.join(names)}) or an "
            f"index in [0, {len(names)})"
        )
    return int(factor)


def _check_fixed(data: GroundTruthData, index: int, values: Fixed) -> dict[str, int]:
    """Validate fixed values: every factor but the swept one, each an index in range."""
    sizes = dict(zip(data.factor_names, data.factor_sizes, strict=True))
    unknown = sorted(set(values) - set(sizes))
    if unknown:
        raise ConfigError(f"fixed values name unknown factors {unknown}; known: {', '.join(sizes)}")
    swept = data.factor_names[index]
    missing = [n for n in sizes if n != swept and n not in values]
    if missing:
        raise ConfigError(
            f"fixed values lack {', '.join(missing)}: give every factor except {swept!r}, "
            "or pass a seed to draw them"
        )
    for name, value in values.items():
        valid = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if name != swept and not (valid and 0 <= value < sizes[name]):
            raise ConfigError(
                f"fixed {name} == {value!r}, must be an integer index in [0, {sizes[name]})"
            )
    return {n: int(values[n]) for n in data.factor_names if n != swept}


def _sweep(data: GroundTruthData, index: int, fixed: dict[str, int]) -> np.ndarray:
    """Factor vectors (size, k): column ``index`` runs through its values, the rest are fixed."""
    size = int(data.factor_sizes[index])
    columns = [
        np.arange(size) if j == index else np.full(size, fixed[name])
        for j, name in enumerate(data.factor_names)
    ]
    return np.stack(columns, axis=1).astype(np.int64)
