import numpy as np
import pytest
import torch

from deft_tune.data import get_dataset
from deft_tune.data.dsprites import DSprites, render_masks
from deft_tune.data.variants import (
    ColorDSprites,
    DSpritesNoShape,
    NoisyDSprites,
    ScreamDSprites,
)

VARIANTS = ("dsprites_noshape", "color_dsprites", "noisy_dsprites", "scream_dsprites")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _raw(data: DSprites, indices) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(data.stored_images()[indices]))


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_follows_the_protocol_and_is_seeded(small_dsprites, name):
    data = get_dataset(name)
    assert data.cache_path == DSprites().cache_path  # one cache file for all variants
    factors = data.sample_factors(10, np.random.default_rng(0))
    first = data.sample_observations_from_factors(factors, np.random.default_rng(1))
    again = data.sample_observations_from_factors(factors, np.random.default_rng(1))
    other = data.sample_observations_from_factors(factors, np.random.default_rng(2))
    assert first.shape == (10, *data.observation_shape) and first.dtype == np.float32
    assert 0 <= first.min() and first.max() <= 1
    assert (first == again).all() and (first != other).any()


def test_noshape_draws_one_of_the_three_shapes(small_dsprites):
    data = DSpritesNoShape()
    assert data.factor_names == ("scale", "orientation", "pos_x", "pos_y")
    stored = data.stored_images()
    assert stored.shape == (96, 3, 512)
    factors = data.index_to_factors(np.arange(96))
    with_shape = [np.concatenate([np.full((96, 1), s), factors], axis=1) for s in range(3)]
    candidates = np.stack([render_masks(f) for f in with_shape], axis=1)  # (96, 3, 64, 64)
    decoded = data.decode_batch(_raw(data, np.arange(96)), _gen(0))[:, 0].numpy()
    matches = (decoded[:, None] == candidates).all(axis=(2, 3))  # (96, 3)
    assert matches.any(axis=1).all()
    chosen = matches.argmax(axis=1)
    assert set(chosen) == {0, 1, 2}  # 96 draws: every shape shows up
    with pytest.raises(ValueError, match="raw"):
        data.decode_batch(torch.zeros(2, 512, dtype=torch.uint8))


def test_colour_is_one_colour_per_sprite_in_the_upper_half(small_dsprites):
    data = ColorDSprites()
    indices = np.arange(0, 288, 7)
    masks = render_masks(data.index_to_factors(indices)).astype(bool)
    out = data.decode_batch(_raw(data, indices), _gen(3)).numpy()  # (n, 3, 64, 64)
    for image, mask in zip(out, masks):
        assert (image[:, ~mask] == 0).all()
        colour = image[:, mask]  # (3, on-pixels)
        assert (colour == colour[:, :1]).all()  # one colour per sprite
        assert (0.5 <= colour).all() and (colour <= 1).all()


def test_noise_is_behind_the_sprite(small_dsprites):
    data = NoisyDSprites()
    indices = np.arange(288)
    masks = render_masks(data.index_to_factors(indices)).astype(bool)
    out = data.decode_batch(_raw(data, indices), _gen(4)).numpy()
    assert (out.transpose(1, 0, 2, 3)[:, masks] == 1).all()
    background = out.transpose(1, 0, 2, 3)[:, ~masks]
    assert abs(background.mean() - 0.5) < 0.01  # uniform [0, 1] over ~3.3M values
    assert abs(background.var() - 1 / 12) < 0.002


def test_scream_inverts_the_sprite_on_a_crop_plus_colour(small_dsprites):
    data = ScreamDSprites()
    assert data.picture in data.description
    picture = data.background_picture()
    _, height, width = picture.shape
    assert max(width / 350, height / 274) == pytest.approx(1, abs=0.01)  # fits the box
    indices = np.arange(0, 288, 5)
    raw = _raw(data, indices)
    plain = data.decode_batch(torch.zeros_like(raw), _gen(5))  # no sprite: the background
    out = data.decode_batch(raw, _gen(5))  # same draws, with the sprites
    masks = torch.from_numpy(render_masks(data.index_to_factors(indices))).bool()[:, None]
    assert torch.equal(out, torch.where(masks, 1 - plain, plain))
    # the background is (a crop of the picture + a colour) / 2: the colour is recoverable
    crop_plus_colour = 2 * plain[0]
    colour = crop_plus_colour - _find_crop(picture, crop_plus_colour)
    assert torch.allclose(colour, colour[:, :1, :1].expand_as(colour), atol=1e-5)
    assert -1e-5 <= colour.min() and colour.max() <= 1 + 1e-5


def _find_crop(picture: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The 64x64 crop of ``picture`` that differs from ``target`` by a per-channel constant."""
    # Horizontal differences cancel the constant: match the target's first row of them against
    # every 63-long run of the picture's, then check the whole crop.
    grad = picture[0, :, 1:] - picture[0, :, :-1]  # (height, width - 1)
    runs = grad.unfold(1, 63, 1)  # (height, width - 63, 63)
    target_grad = target[0, 0, 1:] - target[0, 0, :-1]
    tops, lefts = torch.nonzero((runs - target_grad).abs().amax(dim=2) < 1e-5, as_tuple=True)
    for top, left in zip(tops.tolist(), lefts.tolist()):
        crop = picture[:, top : top + 64, left : left + 64]
        diff = target - crop
        if (diff - diff.mean(dim=(1, 2), keepdim=True)).abs().max() < 1e-5:
            return crop
    raise AssertionError("the background is not a crop of the picture plus a colour")
