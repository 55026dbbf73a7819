"""Matplotlib figures: latent traversals and information (KL) per group over training, and the
axis vocabulary every figure of the package shares.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot), so that nothing here
touches global backend state, and are written atomically. Shared: plain tick labels (no offset
such as "1.03x10^0", no bare powers of ten), few round ticks on a log axis, step axes, KL curves
of a group (the mean over replicas thick, each replica thin) and the stages of a run marked on
a step axis, numbered from 0 as the training output, ``metrics.json`` and the run config's
``schedule.stages`` list number them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from deft_tune import report_keys as keys
from deft_tune.fileio import atomic_write

__all__ = [
    "PLAIN",
    "STAGE_AXIS_LABEL",
    "draw_group_kl",
    "group_colour",
    "log_ticks",
    "mark_stages",
    "plain_log_axis",
    "plot_kl_per_group",
    "plot_traversals",
    "save_figure",
    "stage_lines",
    "stage_spans",
    "step_axis",
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
    replica_histories: Sequence[Sequence[dict[str, float]]] = (),
) -> Figure:
    """KL (nats, probe batch) of each group against the step; stage starts as dashed lines, the
    stages (numbered from 0) on the top axis.

    ``history``: the run's reports (a replicated run's plain keys are the means over its
    replicas). ``replica_histories``: each replica's reports with plain keys, for a run of
    several replicas; then the mean is drawn thick, each replica thin in its group's colour, and
    the title says so. ``stage_starts``: the steps at which stages 1, 2, ... began (the
    schedule's :func:`~deft_tune.schedules.stage_boundaries` after the first), drawn where they
    are; without them a line marks the last report before each change (the change lies between
    it and the next report).
    """
    if not history:
        raise ValueError("history is empty: nothing to plot")
    steps = [r["step"] for r in history]
    figure = Figure(figsize=(7, 4.2))
    ax = figure.subplots()
    for g in range(num_groups):
        key = keys.kl_group(g)
        replicas = [
            ([r["step"] for r in h if key in r], [r[key] for r in h if key in r])
            for h in replica_histories
        ]
        draw_group_kl(ax, g, steps, [r.get(key, np.nan) for r in history], replicas)
    count = len(replica_histories)
    if count > 1:
        ax.plot([], [], color="gray", linewidth=0.7, label="each replica")
    mark_stages(ax, history, stage_starts)
    step_axis(ax)
    ax.yaxis.set_major_formatter(PLAIN)
    if count > 1:
        ax.set_ylabel(f"KL per group (nats; thick: mean over {count} replicas)")
        ax.set_title(
            f"information per group: mean over {count} replicas (thick), each replica (thin)"
        )
    else:
        ax.set_ylabel("KL per group (nats)")
        ax.set_title("information per group")
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


def stage_spans(
    history: Sequence[dict[str, float]], stage_starts: Sequence[int] | None = None
) -> list[tuple[int, float, float]]:
    """(stage, first step, last step) of each stage within the plotted steps, stages numbered
    from 0 as the training output and ``metrics.json`` number them. With ``stage_starts`` (the
    starts of stages 1, 2, ...) exactly; without, from the reports' ``train/stage``, a change
    placed at the last report before it. A stage with no plotted steps is left out."""
    if not history:
        return []
    first = float(min(r["step"] for r in history))
    last = float(max(r["step"] for r in history))
    if stage_starts is not None:
        bounds = [0.0, *(float(s) for s in stage_starts), math.inf]
        spans = [
            (i, max(b, first), min(e, last)) for i, (b, e) in enumerate(zip(bounds, bounds[1:]))
        ]
        return [(i, b, e) for i, b, e in spans if b < e]
    if not any(keys.STAGE in r for r in history):
        return []
    stages = [int(r.get(keys.STAGE, 0)) for r in history]
    order = [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]]
    bounds = [first, *stage_lines(history), last]
    return [(s, b, e) for s, b, e in zip(order, bounds, bounds[1:]) if b < e]


STAGE_AXIS_LABEL = "stage (numbered from 0)"


def mark_stages(
    ax: Axes, history: Sequence[dict[str, float]], stage_starts: Sequence[int] | None = None
) -> None:
    """Dashed lines where stages began and, on a top axis labelled :data:`STAGE_AXIS_LABEL`,
    each stage's number over the middle of its steps. Nothing for a run of one stage."""
    spans = stage_spans(history, stage_starts)
    for step in stage_lines(history, stage_starts):
        ax.axvline(step, color="gray", linestyle="--", linewidth=0.8)
    if len(spans) < 2:
        return
    top = ax.secondary_xaxis("top")
    top.set_xticks([(b + e) / 2 for _, b, e in spans], [str(s) for s, _, _ in spans])
    top.tick_params(length=0, labelsize=8)
    top.set_xlabel(STAGE_AXIS_LABEL, fontsize=8)


def group_colour(group: int) -> str:
    return _GROUP_COLOURS[group % len(_GROUP_COLOURS)]


def draw_group_kl(
    ax: Axes,
    group: int,
    steps: Sequence[float],
    values: Sequence[float],
    replicas: Sequence[tuple[Sequence[float], Sequence[float]]] = (),
) -> None:
    """A group's KL curve, labelled "group G": with several ``replicas`` ((steps, values) each)
    the mean thick and each replica thin in the same colour, so that a mean of 3.0 nats over
    replicas at 8.5, 0.2 and 0.3 is not read as three replicas near 3."""
    colour = group_colour(group)
    spread = len(replicas) > 1
    for replica_steps, replica_values in replicas if spread else ():
        ax.plot(replica_steps, replica_values, color=colour, linewidth=0.7, alpha=0.5)
    ax.plot(steps, values, color=colour, linewidth=2.0 if spread else 1.5, label=f"group {group}")


PLAIN = FuncFormatter(lambda value, _: _plain(value))  # 0.001, 3, 40: no offset, no 10^x


def _plain(value: float) -> str:
    """At most four significant digits, no exponent where a decimal reads as well."""
    text = f"{value:.4g}"
    if "e" in text and 1e-6 <= abs(value) < 1e6:
        text = f"{value:.10f}".rstrip("0").rstrip(".")
    return text


def step_axis(ax: Axes) -> None:
    """The x axis counts steps: whole numbers, at most five plain labels (narrow panels)."""
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax.xaxis.set_major_formatter(PLAIN)


# Mantissas of log ticks, roundest first: 1, then 2 and 5, then the rest of a decade's digits.
_MANTISSAS = ((1.0,), (2.0, 5.0), (3.0,), (1.5, 4.0, 6.0, 8.0), (2.5, 7.0, 9.0))
TICK_GAP = 0.25  # of an axis' data range: labels this far apart never meet in a narrow panel
SLACK = 0.03  # of the range: a tick this far past the data still lies in matplotlib's 5% margin


def spaced(
    candidates: Sequence[float], low: float, high: float, *, log: bool, gap: float = TICK_GAP
) -> list[float]:
    """Of ``candidates`` (ticks in order of preference) those inside [low, high] (or just past
    its ends, within the axis' margins: beta 1 of an annealing that ends at 1.0001) and at least
    ``gap`` of that range (in log on a log axis) from every tick kept before them; sorted."""
    where = math.log10 if log else float
    lo, hi = where(low), where(high)
    slack = max(SLACK * (hi - lo), 1e-9 * max(1.0, abs(lo), abs(hi)))
    chosen: list[float] = []
    for tick in candidates:
        at = where(tick)
        inside = lo - slack <= at <= hi + slack
        if inside and all(abs(at - where(c)) >= gap * (hi - lo) for c in chosen):
            chosen.append(tick)
    return sorted(chosen)


def log_ticks(low: float, high: float, *, gap: float = TICK_GAP) -> list[float]:
    """Round ticks for a log axis over [low, high] (positive): 1 x 10^k first, then 2 and 5, then
    the other digits, each at least ``gap`` of the range (in log) from the others, so that labels
    never meet. Two or more where the range allows, else its ends to two significant digits."""
    if not (0 < low <= high) or not math.isfinite(high):
        raise ValueError(f"log ticks need 0 < low <= high, got {low}, {high}")
    exponents = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    candidates = [float(f"{m}e{e}") for ms in _MANTISSAS for e in exponents for m in ms]
    chosen = spaced(candidates, low, high, log=True, gap=gap)
    if len(chosen) < 2:
        chosen = sorted({float(f"{low:.2g}"), float(f"{high:.2g}")})
    return chosen


def plain_log_axis(axis: Axis, low: float, high: float) -> None:
    """A log axis with :func:`log_ticks` over [low, high], plain labels and no minor labels."""
    axis.set_major_locator(FixedLocator(log_ticks(low, high)))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(PLAIN)
