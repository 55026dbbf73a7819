"""Fixtures of the annealing-test tests: the bars grid (see tests/doubles.py)."""

from __future__ import annotations

import pytest

from tests.doubles import Bars


@pytest.fixture
def bars() -> Bars:
    return Bars()
