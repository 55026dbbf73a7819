"""A tiny 64x64 grid data set for the annealing-test tests: vertical bars."""

from __future__ import annotations

import numpy as np
import pytest

from deft_tune.data.base import GridData


class Bars(GridData):
    """A bar at one of 16 x-positions with one of 4 widths."""

    name = "bars"
    factor_names = ("x", "width")
    factor_sizes = (16, 4)
    observation_shape = (1, 64, 64)

    def stored_images(self) -> np.ndarray:
        out = np.zeros((64, 1, 64, 64), np.uint8)
        for x in range(16):
            for w in range(4):
                out[x * 4 + w, 0, 10:50, 4 * x : 4 * x + 2 + w] = 1
        return out


@pytest.fixture
def bars() -> Bars:
    return Bars()
