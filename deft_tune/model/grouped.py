"""The grouped encoder of DEFT and the VAE around it.

The latent space is split into G groups of L latents; each group has its own convolutional
encoder. ``stage`` is the index of the active group: groups after it are not open yet and
output mean 0 and log-variance 0, so they carry no information and cost no KL (their encoders
are not even run). Each group's parameters form their own optimizer parameter group named
``group{g}`` (the decoder is ``decoder``): DEFT's per-group learning rates are set on the
optimizer, because a gradient hook's scale is normalised away by Adam.

Frozen groups (``set_stage(stage, freeze=True)``, the authors' FracEncoder): the groups before
the stage run without gradients, and each of their latents passes through a learnable
:class:`Projection` (mean * exp(w1), log-variance + w2; identity at w = 0), so the decoder can
rescale a frozen latent but no new information enters it. The projections are the parameter
group ``projection`` at the base rate; they receive gradients only while their group is frozen.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import torch
from torch import nn

from deft_tune.model.networks import Decoder, Encoder

__all__ = [
    "GroupedEncoder",
    "Projection",
    "GroupedVAE",
    "apply_lr_scales",
    "describe_parameter_groups",
    "encode_in_chunks",
    "encode_with_encoder_output_in_chunks",
    "parameter_groups",
]

log = logging.getLogger(__name__)


class Projection(nn.Module):
    """Per-latent affine map of a frozen group's output: (mean * exp(w1), logvar + w2)."""

    def __init__(self, latents: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(latents))  # w1: identity at 0
        self.logvar_shift = nn.Parameter(torch.zeros(latents))  # w2

    def forward(
        self, mean: torch.Tensor, logvar: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return mean * self.log_scale.exp(), logvar + self.logvar_shift


class GroupedEncoder(nn.Module):
    """G sub-encoders; images (n, C, 64, 64) -> (means, log-variances), each (n, G·L)."""

    def __init__(self, in_channels: int, groups: int, latents_per_group: int, width: int) -> None:
        super().__init__()
        self.groups = groups
        self.latents_per_group = latents_per_group
        self.encoders = nn.ModuleList(
            Encoder(in_channels, latents_per_group, width) for _ in range(groups)
        )
        # Zero-initialised: creating them draws no random numbers, so adding them changed no
        # run's initialisation.
        self.projections = nn.ModuleList(Projection(latents_per_group) for _ in range(groups))
        self.stage = groups - 1  # everything open unless a schedule says otherwise
        self.freeze = False  # the groups before the stage are frozen

    @property
    def num_latents(self) -> int:
        return self.groups * self.latents_per_group

    def set_stage(self, stage: int, freeze: bool = False) -> None:
        """Open groups 0..``stage``; ``freeze``: the groups before it run frozen, projected."""
        if not 0 <= stage < self.groups:
            raise ValueError(f"stage == {stage}, must lie in [0, {self.groups})")
        self.stage = stage
        self.freeze = freeze

    def _projected(self, g: int) -> bool:
        return self.freeze and g < self.stage

    def _encode_open(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each open group's encoder output (mean, log-variance), before any projection; a
        frozen group's runs without gradients."""
        outputs = []
        for g in range(self.stage + 1):
            if self._projected(g):
                with torch.no_grad():  # frozen: no gradient into the encoder, its output detached
                    outputs.append(self.encoders[g](images))
            else:
                outputs.append(self.encoders[g](images))
        return outputs

    def _assemble(
        self, outputs: list[tuple[torch.Tensor, torch.Tensor]], images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The open groups' outputs side by side, the closed groups' zeros after them."""
        means = [m for m, _ in outputs]
        logvars = [lv for _, lv in outputs]
        closed = (self.groups - self.stage - 1) * self.latents_per_group
        if closed:
            zeros = images.new_zeros(images.shape[0], closed, dtype=means[0].dtype)
            means.append(zeros)
            logvars.append(zeros)
        return torch.cat(means, 1), torch.cat(logvars, 1)

    def _project(
        self, outputs: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [self.projections[g](*out) if self._projected(g) else out
                for g, out in enumerate(outputs)]  # fmt: skip

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._assemble(self._project(self._encode_open(images)), images)

    def forward_with_encoder_output(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean, log-variance) as :meth:`forward` returns them, then as the encoders output
        them before any projection: what an encoder reads from the images, which a frozen
        group's projection can rescale but not change (the information signals' input)."""
        raw = self._encode_open(images)
        return *self._assemble(self._project(raw), images), *self._assemble(raw, images)

    def group_of_latent(self) -> torch.Tensor:
        """Group index of each latent, int64 (G·L,)."""
        return torch.arange(self.groups).repeat_interleave(self.latents_per_group)


class GroupedVAE(nn.Module):
    """Grouped encoder + shared decoder; ``forward`` returns (output, mean, logvar, z)."""

    def __init__(
        self,
        observation_shape: Sequence[int],
        groups: int,
        latents_per_group: int,
        encoder_width: int = 32,
        decoder_width: int = 32,
    ) -> None:
        super().__init__()
        channels, height, width = observation_shape
        if (height, width) != (64, 64):
            raise ValueError(
                f"observation_shape must be (C, 64, 64), got {tuple(observation_shape)}"
            )
        self.encoder = GroupedEncoder(channels, groups, latents_per_group, encoder_width)
        self.decoder = Decoder(groups * latents_per_group, channels, decoder_width)

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(images)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * noise
        return self.decoder(z), mean, logvar, z


@torch.no_grad()
def encode_in_chunks(
    model: GroupedVAE,
    observations: torch.Tensor,
    device: torch.device,
    *,
    channels_last: bool = False,
    autocast: contextlib.AbstractContextManager | None = None,
    chunk_size: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder means and log-variances (float32, on ``device``) of host ``observations``,
    chunk by chunk in eval mode, in the memory format the model trained in; the model's
    train/eval mode is restored afterwards."""
    mean, logvar = _chunked(model, False, observations, device, channels_last, autocast, chunk_size)
    return mean, logvar


@torch.no_grad()
def encode_with_encoder_output_in_chunks(
    model: GroupedVAE,
    observations: torch.Tensor,
    device: torch.device,
    *,
    channels_last: bool = False,
    autocast: contextlib.AbstractContextManager | None = None,
    chunk_size: int = 512,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """As :func:`encode_in_chunks`, then the encoders' own means and log-variances before any
    projection (:meth:`GroupedEncoder.forward_with_encoder_output`), from the same pass."""
    mean, logvar, raw_mean, raw_logvar = _chunked(
        model, True, observations, device, channels_last, autocast, chunk_size
    )
    return mean, logvar, raw_mean, raw_logvar


def _chunked(
    model: GroupedVAE,
    with_encoder_output: bool,
    observations: torch.Tensor,
    device: torch.device,
    channels_last: bool,
    autocast: contextlib.AbstractContextManager | None,
    chunk_size: int,
) -> list[torch.Tensor]:
    """The encoder over chunks of ``observations`` in eval mode, each output float32 and
    concatenated; the model's train/eval mode is restored."""
    encoder = model.encoder
    encode = encoder.forward_with_encoder_output if with_encoder_output else encoder.forward
    was_training = model.training
    model.eval()
    parts: list[list[torch.Tensor]] = []
    for chunk in observations.split(chunk_size):
        chunk = chunk.to(device, non_blocking=True)
        if channels_last:
            chunk = chunk.contiguous(memory_format=torch.channels_last)
        with autocast if autocast is not None else contextlib.nullcontext():
            parts.append([t.float() for t in encode(chunk)])
    model.train(was_training)
    return [torch.cat(column) for column in zip(*parts)]


def parameter_groups(model: GroupedVAE, lr: float) -> list[dict]:
    """Optimizer parameter groups: ``group0``..``group{G-1}``, ``decoder``, ``projection``, all
    at ``lr``. A group whose parameters get no gradient (closed, frozen) is left alone by Adam."""
    groups = [
        {"name": f"group{g}", "params": list(encoder.parameters()), "lr": lr, "base_lr": lr}
        for g, encoder in enumerate(model.encoder.encoders)
    ]
    groups.append(
        {"name": "decoder", "params": list(model.decoder.parameters()), "lr": lr, "base_lr": lr}
    )
    projections = list(model.encoder.projections.parameters())
    groups.append({"name": "projection", "params": projections, "lr": lr, "base_lr": lr})
    return groups


def apply_lr_scales(optimizer: torch.optim.Optimizer, scales: Sequence[float]) -> bool:
    """Set each encoder group's lr to base_lr x its scale; True if anything changed."""
    changed = False
    by_name = {group["name"]: group for group in optimizer.param_groups}
    for g, scale in enumerate(scales):
        group = by_name[f"group{g}"]
        lr = group["base_lr"] * scale
        if group["lr"] != lr:
            group["lr"] = lr
            changed = True
    return changed


def describe_parameter_groups(optimizer: torch.optim.Optimizer) -> str:
    """A table of parameter groups: name, parameter count, learning rate."""
    lines = [f"{'group':<10}{'parameters':>12}{'lr':>12}"]
    for group in optimizer.param_groups:
        count = sum(p.numel() for p in group["params"])
        lines.append(f"{group['name']:<10}{count:>12,}{group['lr']:>12.3g}")
    return "\n".join(lines)
