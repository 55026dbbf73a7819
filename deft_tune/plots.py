"""Matplotlib figures: latent traversals and information (KL) per group over training.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot), so that nothing here
touches global backend state, and are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from deft_tune import report_keys as keys
from deft_tune.fileio import atomic_write

__all__ = [
    "plot_kl_per_group",
    "plot_traversals",
    "save_figure",
    "stage_lines",
    "traversal_images",
]

_GROUP_COLOURS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
    "tab:gray",
)


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` to ``path`` (format from the suffix) atomically."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=100, format=fmt))


@torch.no_grad()
def traversal_images(
    decoder: torch.nn.Module, base_code: np.ndarray, steps: int = 9, span: float = 2.0
) -> np.ndarray:
    """Decoded traversals (d, steps, C, H, W) in [0, 1]: latent i swept over [-span, span]
    with the others held at ``base_code`` (d,)."""
    base_code = np.asarray(base_code, dtype=np.float32)
    if base_code.ndim != 1:
        raise ValueError(f"base_code must be 1-D (d,), got shape {base_code.shape}")
    d = base_code.shape[0]
    values = np.linspace(-span, span, steps, dtype=np.float32)
    codes = np.repeat(base_code[None, None, :], d, 0).repeat(steps, 1)  # (d, steps, d)
    codes[np.arange(d), :, np.arange(d)] = values
    param = next(decoder.parameters())
    was_training = decoder.training
    decoder.eval()
    z = torch.from_numpy(codes.reshape(d * steps, d)).to(param.device, param.dtype)
    images = torch.sigmoid(decoder(z).float()).cpu().numpy()
    decoder.train(was_training)
    return images.reshape(d, steps, *images.shape[1:])


def plot_traversals(
    images: np.ndarray,
    group_of_latent: Sequence[int],
    kl_per_latent: Sequence[float] | None = None,
) -> Figure:
    """One row per latent; the row label names the latent, its group (coloured) and its KL."""
    images = np.asarray(images)
    if images.ndim != 5:
        raise ValueError(f"images must be (latents, steps, C, H, W), got shape {images.shape}")
    d, steps = images.shape[:2]
    if len(group_of_latent) != d:
        raise ValueError(f"group_of_latent has {len(group_of_latent)} entries, images {d} rows")
    figure = Figure(figsize=(steps * 0.9 + 1.6, d * 0.9 + 0.4))
    axes = figure.subplots(d, steps, squeeze=False)
    for i in range(d):
        group = int(group_of_latent[i])
        label = f"z{i} g{group}"
        if kl_per_latent is not None:
            label += f"\n{float(kl_per_latent[i]):.2f} nats"
        for j in range(steps):
            ax = axes[i, j]
            picture = images[i, j].transpose(1, 2, 0)
            ax.imshow(
                picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1
            )
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color(_GROUP_COLOURS[group % len(_GROUP_COLOURS)])
                spine.set_linewidth(2)
        axes[i, 0].set_ylabel(
            label,
            rotation=0,
            ha="right",
            va="center",
            fontsize=8,
            color=_GROUP_COLOURS[group % len(_GROUP_COLOURS)],
        )
    figure.suptitle("latent traversals (frame colour = encoder group)", fontsize=9)
    figure.subplots_adjust(left=0.12, right=0.99, top=0.95, bottom=0.01, wspace=0.05, hspace=0.05)
    return figure


def plot_kl_per_group(
    history: Sequence[dict[str, float]],
    num_groups: int,
    stage_starts: Sequence[int] | None = None,
    replicas: int = 1,
) -> Figure:
    """KL (nats, probe batch) of each group against the step; stage changes as dashed lines.
    With several ``replicas`` the curves are their mean, and the title says so.

    ``stage_starts``: the steps at which stages 1, 2, ... began (the schedule's
    :func:`~deft_tune.schedules.stage_boundaries` after the first), drawn where they are; without
    them a line marks the last report before each change (the change lies between it and the
    next report).
    """
    if not history:
        raise ValueError("history is empty: nothing to plot")
    steps = np.array([r["step"] for r in history])
    figure = Figure(figsize=(7, 4))
    ax = figure.subplots()
    for g in range(num_groups):
        kl = [r.get(keys.kl_group(g), np.nan) for r in history]
        ax.plot(steps, kl, label=f"group {g}", color=_GROUP_COLOURS[g % len(_GROUP_COLOURS)])
    for step in stage_lines(history, stage_starts):
        ax.axvline(step, color="gray", linestyle="--", linewidth=0.8)
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", useOffset=False)
    mean = f", mean over {replicas} replicas" if replicas > 1 else ""
    ax.set_ylabel(f"KL per group (nats{mean})")
    ax.set_title(f"information per group{mean} (dashed: stage change)")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def stage_lines(
    history: Sequence[dict[str, float]], stage_starts: Sequence[int] | None = None
) -> list[float]:
    """Where to draw stage changes: the stage starts inside the plotted steps when known, else
    the last report before each change (a report at step s shows the stage of step s - 1)."""
    if stage_starts is not None:
        last = max((r["step"] for r in history), default=0)
        return [float(s) for s in stage_starts if 0 < s < last]
    stages = [r.get(keys.STAGE, 0.0) for r in history]
    return [r["step"] for before, after, r in zip(stages, stages[1:], history) if after != before]
