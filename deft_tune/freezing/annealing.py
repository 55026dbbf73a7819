"""The annealing test: where each factor's information freezes into a latent as beta falls.

Supervised (the authors' test): for each factor, a VAE with one latent trains on the factor's
single-factor view (the factor sweeps its values, the others stay at one random draw) while beta
falls as beta_max · exp(-gamma · t / T) + 1. The KL of the latent stays near 0 until the pressure
is low enough for the factor's information to enter; the beta at that rise is the factor's
information freezing point (IFP). Repeating over random draws (and seeds) gives a distribution
per factor. Runs are independent: :func:`run_local` spreads them over processes; the search
package runs the same :func:`run_annealing` as Ray tasks on a cluster.

Unsupervised: :func:`annealing_test_unsupervised` trains one VAE with many latents on the full
data set under the same annealed beta and reports the beta at which each latent's KL rises past
the threshold (freezing events), without labels.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch

from deft_tune.data.base import GridData, GroundTruthData, StoredData, stored_rows
from deft_tune.data.views import single_factor_view
from deft_tune.errors import ConfigError, DataError
from deft_tune.freezing.detect import FreezingPoint, default_window, find_freezing_point
from deft_tune.freezing.loop import AnnealingConfig, Curve, anneal

__all__ = [
    "AnnealingResult",
    "AnnealingRun",
    "LatentFreezing",
    "annealing_runs",
    "annealing_test",
    "annealing_test_unsupervised",
    "run_annealing",
    "run_local",
]

log = logging.getLogger(__name__)

OnResult = Callable[["AnnealingResult"], None]
Runner = Callable[[Sequence["AnnealingRun"], OnResult | None], list["AnnealingResult"]]


@dataclass(frozen=True, eq=False)
class AnnealingRun:
    """One independent run: a rendered single-factor view and everything to train on it.

    The view is passed as its images (a few dozen, float32 (n, C, H, W)), not as the data set,
    so that a worker process or a Ray task receives kilobytes, not the whole data set.
    """

    dataset: str
    factor: str
    draw: int
    seed: int
    images: np.ndarray
    config: AnnealingConfig
    fixed: dict[str, int] = field(default_factory=dict)  # the draw: other factors' values


@dataclass(frozen=True, eq=False)
class AnnealingResult:
    """The outcome of one run: its IFP (NaN if the KL never rose to stay) and its curve."""

    dataset: str
    factor: str
    draw: int
    seed: int
    ifp: float
    ifp_step: int  # -1 when the factor never froze
    steps: int
    final_kl: float  # median KL over the last smoothing window, nats
    curve: Curve
    fixed: dict[str, int] = field(default_factory=dict)


def run_seed(base_seed: int, *keys: int) -> int:
    """A run's seed derived from the base seed and its coordinates (factor, draw, repeat)."""
    return int(np.random.SeedSequence([base_seed, *keys]).generate_state(1)[0])


def annealing_runs(
    data: GroundTruthData,
    config: AnnealingConfig,
    factors: Sequence[str] | None = None,
    draws: int = 3,
    seeds: int = 1,
    seed: int = 0,
) -> list[AnnealingRun]:
    """The runs of the supervised test: per factor, ``draws`` views times ``seeds`` repeats."""
    names = tuple(data.factor_names)
    chosen = names if factors is None else tuple(factors)
    unknown = [f for f in chosen if f not in names]
    if unknown:
        raise ConfigError(
            f"factors {unknown} are not factors of {data.name}; choose from {', '.join(names)}"
        )
    for name, value in (("draws", draws), ("seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} == {value!r}, must be an integer >= 1")
    _check_images_shape(tuple(data.observation_shape), data.name)
    runs: list[AnnealingRun] = []
    for factor in chosen:
        j = names.index(factor)
        for draw in range(draws):
            view = single_factor_view(data, j, np.random.default_rng(run_seed(seed, j, draw)))
            images = view.images(np.arange(view.num_samples))
            fixed = dict(view.fixed_factors)
            runs.extend(
                AnnealingRun(
                    data.name, factor, draw, run_seed(seed, j, draw, s + 1), images, config, fixed
                )
                for s in range(seeds)
            )
    return runs


def run_annealing(run: AnnealingRun) -> AnnealingResult:
    """Train one run and find its IFP. A plain function of its argument, for any executor."""
    images = torch.from_numpy(np.ascontiguousarray(run.images, dtype=np.float32))

    def sample(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(images), (run.config.batch_size,), generator=generator)
        return images[index]

    curve = anneal(sample, images.shape[1], run.config, run.seed, latents=run.config.latents)
    point = _freezing_point(curve.betas, curve.kl.sum(axis=1), run.config)
    window = run.config.window or default_window(run.config.steps)
    return AnnealingResult(
        dataset=run.dataset,
        factor=run.factor,
        draw=run.draw,
        seed=run.seed,
        ifp=point.beta,
        ifp_step=int(curve.steps[point.index]) if point.found else -1,
        steps=run.config.steps,
        final_kl=float(np.median(curve.kl[-window:].sum(axis=1))),
        curve=curve,
        fixed=dict(run.fixed),
    )


def _freezing_point(betas: np.ndarray, kl: np.ndarray, config: AnnealingConfig) -> FreezingPoint:
    # The window is in steps; curves logged every log_every steps have fewer points per window.
    window = max(1, (config.window or default_window(config.steps)) // config.log_every)
    return find_freezing_point(betas, kl, threshold=config.threshold, window=window)


def _init_worker() -> None:
    # Several runs share the machine's cores: one thread each avoids oversubscription.
    torch.set_num_threads(1)


def run_local(
    runs: Sequence[AnnealingRun], on_result: OnResult | None = None, workers: int = 1
) -> list[AnnealingResult]:
    """Run in this process (``workers`` 1) or in a pool of spawned processes; input order."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers == {workers!r}, must be an integer >= 1")
    results: dict[int, AnnealingResult] = {}
    if workers == 1 or len(runs) <= 1:
        for i, run in enumerate(runs):
            results[i] = run_annealing(run)
            if on_result:
                on_result(results[i])
    else:
        context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
        with ProcessPoolExecutor(min(workers, len(runs)), context, _init_worker) as pool:
            futures = {pool.submit(run_annealing, run): i for i, run in enumerate(runs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_result:
                    on_result(results[futures[future]])
    return [results[i] for i in range(len(runs))]


def annealing_test(
    data: GroundTruthData,
    config: AnnealingConfig | None = None,
    *,
    factors: Sequence[str] | None = None,
    draws: int = 3,
    seeds: int = 1,
    seed: int = 0,
    workers: int = 1,
    on_result: OnResult | None = None,
    runner: Runner | None = None,
) -> list[AnnealingResult]:
    """The supervised annealing test: IFP results per factor, draw and seed.

    ``runner(runs, on_result)`` replaces the local process pool (the search package passes its
    Ray runner when a cluster address is given).
    """
    runs = annealing_runs(data, config or AnnealingConfig(), factors, draws, seeds, seed)
    log.info(
        "annealing test on %s: %d runs of %d steps", data.name, len(runs), runs[0].config.steps
    )
    if runner is not None:
        return list(runner(runs, on_result))
    return run_local(runs, on_result, workers)


@dataclass(frozen=True)
class LatentFreezing:
    """The unsupervised test: per latent, the beta (NaN: never) at which its KL froze."""

    latent: int
    ifp: float
    ifp_step: int
    final_kl: float


def annealing_test_unsupervised(
    data: GroundTruthData,
    latents: int = 10,
    config: AnnealingConfig | None = None,
    seed: int = 0,
) -> tuple[list[LatentFreezing], Curve]:
    """Freezing events without labels: one VAE with ``latents`` latents on the full data set.

    Returns one :class:`LatentFreezing` per latent, sorted by falling IFP (latents that never
    froze last), and the curve with the KL of every latent.
    """
    config = config or AnnealingConfig()
    if isinstance(latents, bool) or not isinstance(latents, int) or latents < 1:
        raise ConfigError(f"latents == {latents!r}, must be an integer >= 1")
    channels = _check_images_shape(tuple(data.observation_shape), data.name)
    curve = anneal(
        _full_data_sampler(data, config.batch_size, seed),
        channels,
        config,
        run_seed(seed, 0),
        latents=latents,
    )
    window = config.window or default_window(config.steps)
    out = []
    for i in range(latents):
        point = _freezing_point(curve.betas, curve.kl[:, i], config)
        out.append(
            LatentFreezing(
                latent=i,
                ifp=point.beta,
                ifp_step=int(curve.steps[point.index]) if point.found else -1,
                final_kl=float(np.median(curve.kl[-window:, i])),
            )
        )
    out.sort(key=lambda f: -f.ifp if math.isfinite(f.ifp) else math.inf)
    return out, curve


def _full_data_sampler(
    data: GroundTruthData, batch_size: int, seed: int
) -> Callable[[torch.Generator], torch.Tensor]:
    """Batches of the full data set: stored rows by index where the data has them."""
    stored = stored_rows(data) if isinstance(data, GridData) else None
    if stored is None:
        rng = np.random.default_rng(run_seed(seed, 1))

        def sample_protocol(generator: torch.Generator) -> torch.Tensor:
            factors = data.sample_factors(batch_size, rng)
            return torch.from_numpy(data.sample_observations_from_factors(factors, rng))

        return sample_protocol
    rows = cast(StoredData, data)
    weights = rows.sampling_weights()
    probs = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)

    def sample_rows(generator: torch.Generator) -> torch.Tensor:
        if probs is None:
            index = torch.randint(len(stored), (batch_size,), generator=generator)
        else:
            index = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        raw = torch.from_numpy(np.ascontiguousarray(stored[np.sort(index.numpy())]))
        return rows.decode_batch(raw, generator)

    return sample_rows


def _check_images_shape(shape: tuple[int, ...], name: str) -> int:
    if len(shape) != 3 or shape[1:] != (64, 64):
        raise DataError(
            f"data set {name} has observations of shape {shape}; the annealing "
            "test's networks take (C, 64, 64)"
        )
    return int(shape[0])
