"""Fixtures of the metric tests: the oracle data set (see tests/doubles.py)."""

from __future__ import annotations

import pytest

from tests.doubles import FactorsAsObservations


@pytest.fixture
def oracle_data() -> FactorsAsObservations:
    return FactorsAsObservations()
