"""Single-factor views on test doubles (a stored-rows grid, a protocol-only data set), on
SmallNORB's decode-time instance, and on real dSprites masks rendered on demand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deft_tune.data.base import GridData
from deft_tune.data.correlated import CorrelatedDSprites
from deft_tune.data.dsprites import DSprites, render_masks
from deft_tune.data.smallnorb import SmallNORB
from deft_tune.data.views import SingleFactorView, all_single_factor_views, single_factor_view
from deft_tune.errors import ConfigError


class TinyGrid(GridData):
    """3 x 4 x 2 grid; row i is stored as (i, 100 + i); decoding adds generator noise."""

    name = "tiny"
    factor_names = ("a", "b", "c")
    factor_sizes = (3, 4, 2)
    observation_shape = (1, 1, 2)

    def stored_images(self) -> np.ndarray:
        i = np.arange(self.num_samples, dtype=np.uint8)
        return np.stack([i, 100 + i], axis=1)

    def decode_batch(self, raw, generator=None):
        noise = torch.rand(raw.shape, generator=generator)
        return (raw.to(torch.float32) / 255 + noise).reshape(-1, 1, 1, 2)


class ProtocolOnly:
    """Only the GroundTruthData protocol: observation = factors / 10 plus rng noise."""

    name = "protocol"
    factor_names = ("p", "q")
    factor_sizes = (5, 3)
    observation_shape = (1, 1, 2)

    def sample_factors(self, n, rng):
        return np.stack([rng.integers(0, s, n) for s in self.factor_sizes], axis=1)

    def sample_observations_from_factors(self, factors, rng):
        noise = rng.uniform(0, 0.01, size=(len(factors), 1, 1, 1))
        return (factors[:, None, None, :] / 10 + noise).astype(np.float32)


def test_sweeps_one_factor_with_others_fixed():
    data = TinyGrid()
    view = single_factor_view(data, "b", 0)
    assert isinstance(view, SingleFactorView) and isinstance(view, GridData)
    assert view.factor_names == ("b",) and view.factor_sizes == (4,)
    assert view.num_samples == 4 and view.observation_shape == (1, 1, 2)
    assert set(view.fixed_factors) == {"a", "c"}
    a, c = view.fixed_factors["a"], view.fixed_factors["c"]
    expected_rows = [a * 8 + b * 2 + c for b in range(4)]  # row-major index of (a, b, c)
    np.testing.assert_array_equal(view.stored_images(), data.stored_images()[expected_rows])
    np.testing.assert_array_equal(view.base_factors, [[a, b, c] for b in range(4)])


def test_factor_by_index_and_by_name_agree_and_seed_is_reproducible():
    data = TinyGrid()
    by_name = single_factor_view(data, "c", np.random.default_rng(5))
    by_index = single_factor_view(data, 2, np.random.default_rng(5))
    assert by_name.fixed_factors == by_index.fixed_factors
    np.testing.assert_array_equal(by_name.stored_images(), by_index.stored_images())


def test_random_draws_cover_every_value_of_the_fixed_factors():
    rng = np.random.default_rng(0)
    draws = [single_factor_view(TinyGrid(), "c", rng).fixed_factors for _ in range(60)]
    assert {d["a"] for d in draws} == {0, 1, 2}  # P(a value missing) < 3 * (2/3)**60
    assert {d["b"] for d in draws} == {0, 1, 2, 3}


def test_fixed_values_rebuild_the_view_and_extra_swept_key_is_ignored():
    data = TinyGrid()
    view = single_factor_view(data, "a", {"a": 2, "b": 3, "c": 1})
    assert view.fixed_factors == {"b": 3, "c": 1}
    np.testing.assert_array_equal(view.stored_images()[:, 0], [7, 15, 23])
    again = single_factor_view(data, "a", view.fixed_factors)
    np.testing.assert_array_equal(again.stored_images(), view.stored_images())


def test_decode_delegates_to_base_with_the_same_generator():
    data = TinyGrid()
    view = single_factor_view(data, "b", {"a": 1, "c": 0})
    rows = data.factors_to_index(view.base_factors)
    gathered = torch.from_numpy(view.stored_images()[[3, 0, 3]])
    ours = view.decode_batch(gathered, torch.Generator().manual_seed(9))
    theirs = data.decode_batch(
        torch.from_numpy(data.stored_images()[rows[[3, 0, 3]]]), torch.Generator().manual_seed(9)
    )
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_view_is_a_working_grid_for_metrics_and_sampling():
    view = single_factor_view(TinyGrid(), "b", {"a": 0, "c": 1})
    assert view.index_to_factors(np.array([0, 3])).tolist() == [[0], [3]]
    factors, obs = view.sample(6, np.random.default_rng(1))
    assert factors.shape == (6, 1) and obs.shape == (6, 1, 1, 2)
    # value b of the swept factor is stored row 0*8 + b*2 + 1 of the base: decoded / 255 + noise
    base_value = (factors[:, 0] * 2 + 1) / 255
    assert np.all((obs[:, 0, 0, 0] >= base_value - 1e-6) & (obs[:, 0, 0, 0] < base_value + 1))


class RowNORB(SmallNORB):
    """SmallNORB's decoding on a 2x2x3x2 grid with 2 instances; image (cell, i) is 2 cell + i."""

    factor_sizes = (2, 2, 3, 2)
    nuisance_sizes = (2,)

    def __init__(self):  # no files: constant images stand in for the toys
        values = np.arange(48, dtype=np.uint8).reshape(24, 2, 1, 1)
        self._images = np.broadcast_to(values, (24, 2, 64, 64))


def test_smallnorb_view_keeps_the_random_instance():
    data = RowNORB()
    view = single_factor_view(data, "azimuth", {"category": 1, "elevation": 0, "lighting": 1})
    cells = [((1 * 2 + 0) * 3 + az) * 2 + 1 for az in range(3)]  # row-major over (2, 2, 3, 2)
    assert view.stored_images().shape == (3, 2, 64, 64)
    np.testing.assert_array_equal(
        view.stored_images()[:, :, 0, 0], [[2 * c, 2 * c + 1] for c in cells]
    )
    out = view.decode_batch(
        torch.from_numpy(view.stored_images()[[0] * 32]), torch.Generator().manual_seed(1)
    )
    assert out.shape == (32, 1, 64, 64)
    assert set(np.round(out[:, 0, 0, 0].numpy() * 255).astype(int)) == {
        2 * cells[0],
        2 * cells[0] + 1,
    }


class LazyMasks:
    """dSprites' stored rows rendered on demand, so a test needs no full 737,280 render."""

    def __init__(self, data):
        self.data = data

    def __getitem__(self, indices):
        masks = render_masks(self.data.index_to_factors(np.asarray(indices)))
        return np.packbits(masks.reshape(len(masks), -1), axis=1)


@pytest.mark.parametrize("cls", [DSprites, CorrelatedDSprites])
def test_view_on_dsprites_masks(cls, tmp_path, monkeypatch):
    data = cls(cache_dir=tmp_path)
    monkeypatch.setattr(data, "stored_images", lambda: LazyMasks(data))
    view = single_factor_view(data, "orientation", np.random.default_rng(4))
    assert view.factor_names == ("orientation",) and view.num_samples == 40
    assert view.stored_images().shape == (40, 512)
    expected = render_masks(view.base_factors).reshape(40, 1, 64, 64).astype(np.float32)
    np.testing.assert_array_equal(view.images(np.arange(40)), expected)


def test_protocol_only_data_is_rendered_once():
    data = ProtocolOnly()
    view = single_factor_view(data, "p", {"q": 2})
    stored = view.stored_images()
    assert stored.dtype == np.float32 and stored.shape == (5, 1, 1, 2)
    np.testing.assert_allclose(stored[:, 0, 0, 0], np.arange(5) / 10, atol=0.0101)
    np.testing.assert_allclose(stored[:, 0, 0, 1], 0.2, atol=0.0101)
    torch.testing.assert_close(
        view.decode_batch(torch.from_numpy(stored)), torch.from_numpy(stored)
    )
    drawn = single_factor_view(data, "q", 3)
    assert set(drawn.fixed_factors) == {"p"} and drawn.stored_images().shape == (3, 1, 1, 2)


def test_all_single_factor_views():
    views = all_single_factor_views(TinyGrid(), draws=4, rng=2)
    assert list(views) == ["a", "b", "c"]
    assert all(len(v) == 4 for v in views.values())
    assert [v.factor_sizes for v in views["b"]] == [(4,)] * 4
    assert len({tuple(v.fixed_factors.items()) for v in views["a"]}) > 1
    with pytest.raises(ConfigError, match="draws == 0"):
        all_single_factor_views(TinyGrid(), draws=0)


@pytest.mark.parametrize(
    "factor, fixed, message",
    [
        ("d", None, "'d' is not a factor of tiny; choose one of a, b, c"),
        (3, None, r"factor == 3, must be a name \(a, b, c\) or an index in \[0, 3\)"),
        (True, None, "factor == True"),
        ("a", {"b": 1}, "lack c"),
        ("a", {"b": 1, "c": 0, "z": 0}, r"unknown factors \['z'\]"),
        ("a", {"b": 4, "c": 0}, r"fixed b == 4, must be an integer index in \[0, 4\)"),
        ("a", {"b": 1.0, "c": 0}, "fixed b == 1.0"),
    ],
)
def test_rejects_bad_arguments(factor, fixed, message):
    with pytest.raises(ConfigError, match=message):
        single_factor_view(TinyGrid(), factor, fixed)


def test_nothing_but_the_other_factors_is_held_still():
    view = single_factor_view(RowNORB(), "category", 0)
    assert set(view.fixed_factors) == {
        "elevation",
        "azimuth",
        "lighting",
    }
