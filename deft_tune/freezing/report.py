"""Annealing-test output: Parquet tables and the IFP figure, all written atomically.

- ``ifp.parquet``: the IFP table, one row per run (:mod:`deft_tune.freezing.ifp_table` owns its
  format), the input of ``deft-tune ifp --suggest`` and of ``betas_from_ifp``.
- ``curves.parquet``: the logged curves, one row per run and logged step (beta, kl, recon).
- ``ifp.png``: the IFP distribution per factor and the KL-versus-beta curves with the detected
  points.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from deft_tune import plots  # noqa: E402
from deft_tune.fileio import atomic_write  # noqa: E402
from deft_tune.freezing.annealing import AnnealingResult, LatentFreezing  # noqa: E402
from deft_tune.freezing.ifp_table import TABLE_FILE, write_ifp_table  # noqa: E402
from deft_tune.freezing.loop import Curve  # noqa: E402

__all__ = [
    "BETA_FLOOR",
    "curves_table",
    "plot_ifp",
    "plot_unsupervised",
    "write_report",
    "write_unsupervised_report",
]


BETA_FLOOR = 1.0  # the annealing's beta, beta_max * exp(-gamma t / T) + 1, never falls below it


def curves_table(results: Sequence[AnnealingResult]) -> pa.Table:
    """Long format: one row per run and logged step; kl sums the run's latents."""

    def repeat(name: str) -> list:
        return [getattr(r, name) for r in results for _ in range(len(r.curve.steps))]

    return pa.table(
        {
            "dataset": repeat("dataset"),
            "factor": repeat("factor"),
            "draw": repeat("draw"),
            "seed": repeat("seed"),
            "step": _concat([r.curve.steps for r in results], np.int64),
            "beta": _concat([r.curve.betas for r in results], np.float64),
            "kl": _concat([r.curve.kl.sum(axis=1) for r in results], np.float64),
            "recon": _concat([r.curve.recon for r in results], np.float64),
        }
    )


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)


def write_report(
    results: Sequence[AnnealingResult], out_dir: str | os.PathLike, title: str = ""
) -> dict[str, Path]:
    """Write ifp.parquet, curves.parquet and ifp.png into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "table": out / TABLE_FILE,
        "curves": out / "curves.parquet",
        "plot": out / "ifp.png",
    }
    write_ifp_table(results, paths["table"])
    curves = curves_table(results)
    atomic_write(paths["curves"], lambda tmp: pq.write_table(curves, tmp))
    figure = plot_ifp(results, title)
    atomic_write(paths["plot"], lambda tmp: _save(figure, tmp))
    return paths


def plot_ifp(results: Sequence[AnnealingResult], title: str = "") -> plt.Figure:
    """Left: each factor's IFPs (points) and median (bar). Right: KL against falling beta."""
    factors = list(dict.fromkeys(r.factor for r in results))
    colors = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(factors)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, factor in enumerate(factors):
        ifps = np.array([r.ifp for r in results if r.factor == factor])
        found = ifps[np.isfinite(ifps)]
        jitter = np.linspace(-0.15, 0.15, len(found)) if len(found) > 1 else np.zeros(1)
        left.scatter(i + jitter[: len(found)], found, color=colors[factor], s=18, zorder=3)
        if len(found):
            left.hlines(np.median(found), i - 0.3, i + 0.3, color="black", lw=1.5)
        missing = len(ifps) - len(found)
        if missing:  # at the axis' foot, wherever the IFPs lie
            left.annotate(f"{missing} never", (i, 0.02), xycoords=("data", "axes fraction"),
                          ha="center", va="bottom", fontsize=8)  # fmt: skip
    left.set_xticks(range(len(factors)), factors, rotation=30, ha="right")
    _ifp_scale(left, np.array([r.ifp for r in results]))
    left.set_ylabel("IFP (beta)")
    left.set_title("IFP per factor (bar: median)")
    for r in results:
        kl = r.curve.kl.sum(axis=1)
        right.plot(r.curve.betas, kl, color=colors[r.factor], lw=0.6, alpha=0.6)
        if math.isfinite(r.ifp):
            right.scatter(
                [r.ifp],
                [kl[np.searchsorted(r.curve.steps, r.ifp_step)]],
                color=colors[r.factor],
                marker="x",
                s=40,
                zorder=3,
            )
    for factor in factors:
        right.plot([], [], color=colors[factor], label=factor)
    right.set_xscale("log")
    betas = np.concatenate([r.curve.betas for r in results]) if results else np.ones(1)
    plots.plain_log_axis(right.xaxis, float(betas.min()), float(betas.max()))
    right.invert_xaxis()  # beta falls during training: time runs left to right
    right.set_xlabel("beta (annealed)")
    right.set_ylabel("KL (nats)")
    right.set_title("KL against beta (x: detected IFP)")
    right.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def write_unsupervised_report(
    freezings: Sequence[LatentFreezing], curve: Curve, out_dir: str | os.PathLike, title: str = ""
) -> dict[str, Path]:
    """Write latents.parquet (one row per latent) and latents.png (KL per latent vs beta)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "latent": [f.latent for f in freezings],
            "ifp": [f.ifp for f in freezings],
            "ifp_step": [f.ifp_step for f in freezings],
            "final_kl": [f.final_kl for f in freezings],
        }
    )
    paths = {"table": out / "latents.parquet", "plot": out / "latents.png"}
    atomic_write(paths["table"], lambda tmp: pq.write_table(table, tmp))
    figure = plot_unsupervised(freezings, curve, title)
    atomic_write(paths["plot"], lambda tmp: _save(figure, tmp))
    return paths


def plot_unsupervised(
    freezings: Sequence[LatentFreezing], curve: Curve, title: str = ""
) -> plt.Figure:
    """KL of every latent against falling beta, with each latent's freezing point."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for f in freezings:
        line = ax.plot(curve.betas, curve.kl[:, f.latent], lw=0.7, label=f"z{f.latent}")[0]
        if math.isfinite(f.ifp):
            row = np.searchsorted(curve.steps, f.ifp_step)
            ax.scatter([f.ifp], [curve.kl[row, f.latent]], color=line.get_color(), marker="x")
    ax.set_xscale("log")
    if len(curve.betas):
        plots.plain_log_axis(ax.xaxis, float(np.min(curve.betas)), float(np.max(curve.betas)))
    ax.invert_xaxis()
    ax.set_xlabel("beta (annealed)")
    ax.set_ylabel("KL (nats)")
    ax.set_title(title or "Freezing events per latent")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _ifp_scale(ax: plt.Axes, ifps: np.ndarray) -> None:
    """A log axis with round, plain labels (2, 5, 10, 20) when the IFPs span a decade or more;
    else a linear one with plain labels (a log axis over 1.02-1.05 labels its ticks 1.03x10^0
    and squeezes the points together) from the annealing's floor (beta 1) to at least beta 2,
    so that IFPs a few hundredths apart, all at the annealing's end, are not spread over the
    panel as if they differed."""
    found = ifps[np.isfinite(ifps) & (ifps > 0)]
    below = 0.12 if found.size < ifps.size else 0.04  # room for the "never" notes at the foot
    if found.size and found.max() / found.min() >= 10:
        low, high = float(found.min()), float(found.max())
        ax.set_yscale("log")
        ax.set_ylim(low / (high / low) ** below, high * (high / low) ** 0.05)
        plots.plain_log_axis(ax.yaxis, low, high)
        return
    bottom = min(BETA_FLOOR, float(found.min())) if found.size else BETA_FLOOR
    high = float(found.max()) if found.size else BETA_FLOOR
    top = max(BETA_FLOOR + 1.0, high + 0.08 * (high - bottom))
    ax.set_ylim(bottom - below * (top - bottom), top)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.yaxis.set_major_formatter(plots.PLAIN)


def _save(figure: plt.Figure, path: str) -> None:
    try:
        figure.savefig(path, format="png", dpi=120)
    finally:
        plt.close(figure)
