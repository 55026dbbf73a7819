"""dSprites variants as defined by disentanglement_lib, all stored as the plain dSprites masks.

Every variant shares the dSprites cache file; what differs is :meth:`decode_batch`, which adds
the variant's nuisance (a random shape, colour, noise or background) on the device, drawn from
the torch generator it is given. Training on a GPU and ``sample_observations_from_factors`` on
the CPU therefore produce the same distribution through the same code.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from deft_tune.data.dsprites import DSprites, unpack_masks
from deft_tune.data.render import FACTOR_NAMES, FACTOR_SIZES, SIDE

__all__ = ["ColorDSprites", "DSpritesNoShape", "NoisyDSprites", "ScreamDSprites"]


class DSpritesNoShape(DSprites):
    """dSprites without the shape factor: each image's shape is drawn at random.

    Stored rows are (n, 3, 512): the three shapes' masks of one (scale, orientation, position),
    so that :meth:`decode_batch` can draw the shape on the device.
    """

    name = "dsprites_noshape"
    description = "dSprites with shape as a random nuisance (factors: scale, orientation, pos)"
    factor_names = FACTOR_NAMES[1:]
    factor_sizes = FACTOR_SIZES[1:]

    @property
    def storage_sizes(self) -> tuple[int, ...]:
        return (FACTOR_SIZES[0], *self.factor_sizes)

    def stored_images(self) -> np.ndarray:
        """uint8 (245,760, 3, 512): a read-only strided view of the memory-mapped masks."""
        masks = self.masks()
        return masks.reshape(FACTOR_SIZES[0], self.num_samples, -1).transpose(1, 0, 2)

    def decode_batch(
        self, raw: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if raw.ndim != 3 or raw.shape[1] != FACTOR_SIZES[0]:
            raise ValueError(f"raw must have shape (n, {FACTOR_SIZES[0]}, 512), got {raw.shape}")
        shape = torch.randint(FACTOR_SIZES[0], (len(raw),), generator=generator, device=raw.device)
        return unpack_masks(raw[torch.arange(len(raw), device=raw.device), shape])


class ColorDSprites(DSprites):
    """dSprites in colour: the mask times one colour per image, each channel uniform [0.5, 1]."""

    name = "color_dsprites"
    description = "dSprites, each sprite in a random colour (channels uniform in [0.5, 1])"
    observation_shape = (3, SIDE, SIDE)

    def decode_batch(
        self, raw: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        masks = unpack_masks(raw)
        colour = torch.rand(len(raw), 3, 1, 1, generator=generator, device=raw.device)
        return masks * (0.5 + 0.5 * colour)


class NoisyDSprites(DSprites):
    """dSprites on noise: background uniform in [0, 1] per pixel and channel, sprite pixels 1."""

    name = "noisy_dsprites"
    description = "dSprites on a background of uniform noise per pixel and channel"
    observation_shape = (3, SIDE, SIDE)

    def decode_batch(
        self, raw: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        masks = unpack_masks(raw)
        noise = torch.rand(len(raw), 3, SIDE, SIDE, generator=generator, device=raw.device)
        return torch.maximum(masks, noise)  # sprite pixels (1) win over any noise value


class ScreamDSprites(DSprites):
    """dSprites on a random 64x64 crop of a picture, mixed with a random colour.

    background = (crop + colour) / 2; sprite pixels are inverted (1 - background). The original
    picture (Munch's The Scream) cannot be downloaded here, so the picture is a photograph that
    matplotlib ships as sample data, resized to fit 350 x 274 as the original was.
    """

    name = "scream_dsprites"
    picture = "grace_hopper.jpg"  # in matplotlib's sample data
    picture_box = (350, 274)  # (width, height) the picture is shrunk to fit
    description = (  # a plain string: `deft-tune data list` reads it without importing torch
        "dSprites on random crops of a picture (matplotlib sample data grace_hopper.jpg, resized "
        "to fit 350x274, mixed with a random colour), sprite pixels inverted"
    )
    observation_shape = (3, SIDE, SIDE)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pictures: dict[torch.device, torch.Tensor] = {}

    def background_picture(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The resized picture, float32 (3, height, width) in [0, 1], on ``device``."""
        device = torch.device(device)
        if device not in self._pictures:
            from matplotlib import cbook  # the picture ships with matplotlib

            with Image.open(cbook.get_sample_data(self.picture, asfileobj=False)) as image:
                image = image.convert("RGB")
                image.thumbnail(self.picture_box, Image.Resampling.LANCZOS)
                array = np.asarray(image, dtype=np.float32) / 255.0
            self._pictures[device] = torch.from_numpy(array).permute(2, 0, 1).to(device)
        return self._pictures[device]

    def decode_batch(
        self, raw: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        masks = unpack_masks(raw).bool()
        picture = self.background_picture(raw.device)
        n, (_, height, width) = len(raw), picture.shape
        top = torch.randint(height - SIDE + 1, (n,), generator=generator, device=raw.device)
        left = torch.randint(width - SIDE + 1, (n,), generator=generator, device=raw.device)
        steps = torch.arange(SIDE, device=raw.device)
        rows = (top[:, None] + steps)[:, :, None]  # (n, 64, 1)
        cols = (left[:, None] + steps)[:, None, :]  # (n, 1, 64)
        crops = picture[:, rows, cols].permute(1, 0, 2, 3)  # (n, 3, 64, 64)
        colour = torch.rand(n, 3, 1, 1, generator=generator, device=raw.device)
        background = (crops + colour) / 2
        return torch.where(masks, 1 - background, background)
