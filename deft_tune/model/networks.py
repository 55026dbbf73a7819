"""The disentanglement_lib convolutional encoder and decoder, and the reconstruction losses.

Encoder: four 4x4 stride-2 convolutions (w, w, 2w, 2w channels; w = 32 in disentanglement_lib),
a 256-unit dense layer and a dense layer giving 2·d numbers (means, then log-variances).
Decoder: dense 256, dense 2w·4·4 (1024 for w = 32), then transposed convolutions
2w -> 2w -> w -> w -> C back to 64x64. Inputs are 64x64 images with C channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Decoder", "Encoder", "reconstruction_loss"]

IMAGE_SIZE = 64


class Encoder(nn.Module):
    """Images (n, C, 64, 64) -> (means, log-variances), each (n, latents)."""

    def __init__(self, in_channels: int, latents: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.latents = latents
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, w, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(w, w, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 4, 2, 1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * w * 4 * 4, 256),
            nn.ReLU(),
            nn.Linear(256, 2 * latents),
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.convs(images))
        return out[:, : self.latents], out[:, self.latents :]


class Decoder(nn.Module):
    """Latents (n, d) -> logits (n, C, 64, 64) (Bernoulli) or means (Gaussian)."""

    def __init__(self, latents: int, out_channels: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.width = w
        self.dense = nn.Sequential(
            nn.Linear(latents, 256),
            nn.ReLU(),
            nn.Linear(256, 2 * w * 4 * 4),
            nn.ReLU(),
        )
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(2 * w, 2 * w, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(w, w, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(w, out_channels, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        hidden = self.dense(z).view(z.shape[0], 2 * self.width, 4, 4)
        return self.deconvs(hidden)


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample reconstruction loss (n,), summed over pixels.

    ``bernoulli``: binary cross-entropy of the logits ``output`` against ``target`` in [0, 1]
    (disentanglement_lib's default; it also applies to grey-level targets). ``gaussian``: the
    squared L2 distance between sigmoid(output) and the target (disentanglement_lib's l2 loss).
    """
    if output.shape != target.shape:
        raise ValueError(f"output shape {tuple(output.shape)} != target {tuple(target.shape)}")
    output = output.float()
    if kind == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(output, target, reduction="none")
    elif kind == "gaussian":
        per_pixel = (torch.sigmoid(output) - target).square()
    else:
        raise ValueError(f"kind == {kind!r}, must be 'bernoulli' or 'gaussian'")
    return per_pixel.flatten(1).sum(1)
