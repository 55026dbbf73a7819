"""Small, fast stand-ins for dSprites in the training tests: squares on a 64x64 canvas."""

from __future__ import annotations

import numpy as np

from deft_tune.data.base import GridData


class Squares(GridData):
    """4 x-positions, 4 y-positions, 3 sizes of a filled square: 48 binary images.

    Stored as uint8 rows (48, 1, 64, 64); the base class decodes them to float on the device.
    """

    name = "squares"
    factor_names = ("size", "x", "y")
    factor_sizes = (3, 4, 4)
    observation_shape = (1, 64, 64)

    def __init__(self) -> None:
        factors = self.index_to_factors(np.arange(self.num_samples))
        images = np.zeros((self.num_samples, 1, 64, 64), dtype=np.uint8)
        for row, (size, x, y) in enumerate(factors):
            side = 8 + 6 * size
            top, left = 6 + 10 * y, 6 + 10 * x
            images[row, 0, top : top + side, left : left + side] = 1
        self._images = images

    def stored_images(self) -> np.ndarray:
        return self._images


class SquaresProtocolOnly:
    """The same data through the bare protocol (no stored rows): the loop's fallback path."""

    name = "squares_protocol"
    factor_names = Squares.factor_names
    factor_sizes = Squares.factor_sizes
    observation_shape = Squares.observation_shape

    def __init__(self) -> None:
        self._grid = Squares()

    def sample_factors(self, n, rng):
        return self._grid.sample_factors(n, rng)

    def sample_observations_from_factors(self, factors, rng):
        rows = self._grid.factors_to_index(factors)
        return self._grid.stored_images()[rows].astype(np.float32)
