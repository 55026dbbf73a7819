"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

# A dSprites grid small enough to render in milliseconds: 3 shapes x 2 scales x 3 orientations
# x 4 x 4 positions = 288 images (the first values of each factor).
SMALL_DSPRITES_SIZES = (3, 2, 3, 4, 4)


@pytest.fixture(scope="session", autouse=True)
def deft_cache_dir(tmp_path_factory):
    """A private cache folder ($DEFT_TUNE_CACHE) for the session: tests never touch the user's."""
    path = tmp_path_factory.mktemp("deft-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("DEFT_TUNE_CACHE", str(path))
    yield path
    patch.undo()


@pytest.fixture
def small_dsprites(monkeypatch, tmp_path):
    """Shrink dSprites (and every variant) to SMALL_DSPRITES_SIZES; returns its cache folder.

    The full grid of 737,280 images takes seconds to render; tests use this one instead. The
    cache folder is fresh for each test.
    """
    from deft_tune.data.dsprites import DSprites
    from deft_tune.data.variants import DSpritesNoShape

    monkeypatch.setattr(DSprites, "factor_sizes", SMALL_DSPRITES_SIZES)
    monkeypatch.setattr(DSpritesNoShape, "factor_sizes", SMALL_DSPRITES_SIZES[1:])
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("DEFT_TUNE_CACHE", str(cache_dir))
    return cache_dir
