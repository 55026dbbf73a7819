"""Run several metrics at once: the standard and fast settings, and ``evaluate``.

MIG, DCI, SAP and Modularity/Explicitness are defined on i.i.d. samples, so ``evaluate`` draws
one train set and one test set and scores all four on them; the BetaVAE and FactorVAE scores
need their own structured batches. For an integer seed, ``evaluate(..., names=[m])`` returns
exactly what ``compute_m(..., seed=seed)`` returns with the same sizes.

DCI's per-factor classifiers are most of the standard setting's cost: they start on
``n_jobs - 1`` worker processes as soon as the shared draw is encoded and fit while this process
computes the other metrics, then this process helps with the rest (:mod:`._parallel`). No score
depends on ``n_jobs`` or on that order.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deft_tune.data.base import GroundTruthData
from deft_tune.errors import ConfigError
from deft_tune.metrics._sampling import RepresentationFn, sample_codes, split_blocks
from deft_tune.metrics.beta_vae import beta_vae_blocks
from deft_tune.metrics.dci import CLASSIFIERS, PendingDCI, start_dci
from deft_tune.metrics.factor_vae import factor_vae_blocks
from deft_tune.metrics.mig import mig
from deft_tune.metrics.modularity import modularity_explicitness
from deft_tune.metrics.sap import sap
from deft_tune.report_keys import METRIC_KEYS
from deft_tune.validation import RandomLike, check_random_state, check_scalar

__all__ = [
    "FAST",
    "METRICS",
    "METRIC_KEYS",
    "STANDARD",
    "MetricSettings",
    "evaluate",
    "evaluate_blocks",
]

logger = logging.getLogger(__name__)

METRICS = tuple(METRIC_KEYS)  # beta_vae, factor_vae, mig, dci, sap, modularity
_SHARED = ("mig", "dci", "sap", "modularity")  # scored on one shared train/test draw


@dataclass(frozen=True)
class MetricSettings:
    """Sample sizes and estimator choices; the defaults are disentanglement_lib's."""

    name: str = "standard"
    num_train: int = 10_000  # shared i.i.d. train samples (MIG, DCI, SAP, Modularity)
    num_test: int = 5_000  # shared i.i.d. test samples (DCI, SAP, Explicitness)
    batch_size: int = 64  # BetaVAE / FactorVAE batch per point
    beta_vae_train: int = 10_000
    beta_vae_eval: int = 5_000
    factor_vae_train: int = 10_000
    factor_vae_eval: int = 5_000
    factor_vae_variance: int = 10_000
    bins: int = 20
    dci_classifier: str = "gbt"
    # Processes for DCI's per-factor classifiers: this one and n_jobs - 1 workers, which fit
    # beside the other metrics. The scores do not depend on it; a caller gives its CPU share.
    n_jobs: int = 1
    encode_batch: int = 1024  # observations per call of the representation function

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if field.type == "int":
                check_scalar(
                    getattr(self, field.name), f"metric setting {field.name}", int, min_val=1
                )
        if self.dci_classifier not in CLASSIFIERS:
            raise ConfigError(
                f"metric setting dci_classifier == {self.dci_classifier!r}, must "
                f"be one of {CLASSIFIERS}"
            )


STANDARD = MetricSettings()
# For use inside search trials: about 10x fewer samples and histogram gradient boosting in DCI.
# Its numbers are noisier and DCI's differ from the standard ones: report them as "fast".
FAST = MetricSettings(
    name="fast",
    num_train=2_000,
    num_test=1_000,
    beta_vae_train=500,
    beta_vae_eval=250,
    factor_vae_train=500,
    factor_vae_eval=250,
    factor_vae_variance=2_000,
    dci_classifier="hist_gbt",
)


def _resolve(names, settings: MetricSettings, sizes: dict) -> tuple[list[str], MetricSettings]:
    names = list(METRICS if names is None else names)
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {unknown or names}; known: {', '.join(METRICS)}")
    fields = {f.name for f in dataclasses.fields(MetricSettings)} - {"name"}
    bad = sorted(set(sizes) - fields)
    if bad:
        raise ConfigError(f"unknown metric setting(s) {bad}; known: {', '.join(sorted(fields))}")
    if sizes:
        settings = dataclasses.replace(settings, name=f"{settings.name}+custom", **sizes)
    return list(dict.fromkeys(names)), settings


def _shared_scores(
    representation_fn, data, names, seed: int, s: MetricSettings, blocks: int
) -> tuple[dict[str, Callable[[], list[dict[str, float]]]], PendingDCI | None]:
    """Scorers of the shared-draw metrics, and DCI's fits, already started (see start_dci)."""
    if not any(name in _SHARED for name in names):
        return {}, None
    rng = np.random.default_rng(seed)
    train = sample_codes(data, representation_fn, s.num_train, rng, s.encode_batch)
    needs_test = any(n in names for n in ("dci", "sap", "modularity"))
    test = (
        sample_codes(data, representation_fn, s.num_test, rng, s.encode_batch)
        if needs_test
        else None
    )
    trains = [(codes, train[1]) for codes in split_blocks(train[0], blocks)]
    scorers: dict[str, Callable[[], list[dict[str, float]]]] = {
        "mig": lambda: [mig(*t, bins=s.bins) for t in trains]
    }
    pending = None
    if test is not None:
        both = [(*t, codes, test[1]) for t, codes in zip(trains, split_blocks(test[0], blocks))]
        if "dci" in names:
            pending = start_dci(both, s.dci_classifier, n_jobs=s.n_jobs)
        scorers["sap"] = lambda: [sap(*b) for b in both]
        scorers["modularity"] = lambda: [modularity_explicitness(*b, bins=s.bins) for b in both]
    return {name: scorers[name] for name in names if name in scorers}, pending


def evaluate(
    representation_fn: RepresentationFn,
    data: GroundTruthData,
    names: list[str] | tuple[str, ...] | None = None,
    seed: RandomLike = 0,
    settings: MetricSettings = STANDARD,
    **sizes,
) -> dict[str, float]:
    """Score ``representation_fn`` on ``data`` with the named metrics (all by default).

    ``sizes`` override fields of ``settings`` (``num_train=5000``...). Returns one flat dict;
    every key starts with its metric's name (``mig``, ``dci/completeness``...).
    """
    return evaluate_blocks(representation_fn, data, 1, names, seed, settings, **sizes)[0]


def evaluate_blocks(
    representation_fn: RepresentationFn,
    data: GroundTruthData,
    blocks: int,
    names: list[str] | tuple[str, ...] | None = None,
    seed: RandomLike = 0,
    settings: MetricSettings = STANDARD,
    **sizes,
) -> list[dict[str, float]]:
    """:func:`evaluate` of ``blocks`` representations at once: ``representation_fn`` returns
    their codes side by side, (n, blocks * d) (the replicas of a run), and every metric scores
    each block on ONE shared sample (drawn and encoded once). Block b's dict equals what
    ``evaluate`` gives its representation alone with the same seed."""
    names, s = _resolve(names, settings, sizes)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        # A generator or None: draw one integer so every metric derives from the same seed.
        seed = int(check_random_state(seed).integers(2**63))
    # DCI's classifiers (most of the cost) start first, on n_jobs - 1 worker processes, and
    # fit while this process computes the other metrics; the order changes no score.
    timed, pending = _shared_scores(representation_fn, data, names, seed, s, blocks)
    timed["beta_vae"] = lambda: beta_vae_blocks(
        representation_fn, data, blocks, seed, s.batch_size, s.beta_vae_train, s.beta_vae_eval,
        s.encode_batch,
    )  # fmt: skip
    timed["factor_vae"] = lambda: factor_vae_blocks(
        representation_fn, data, blocks, seed, s.batch_size, s.factor_vae_train,
        s.factor_vae_eval, s.factor_vae_variance, s.encode_batch,
    )  # fmt: skip
    if pending is not None:
        timed["dci"] = pending.result
    scores = {}
    try:
        for name in sorted(names, key=lambda n: n == "dci"):  # DCI's wait last
            start = time.perf_counter()
            scores[name] = timed[name]()
            logger.debug("metric %s (%s) took %.2f s", name, s.name, time.perf_counter() - start)
    finally:
        if pending is not None:
            pending.cancel()  # on an error elsewhere: no further fits
    results: list[dict[str, float]] = [{} for _ in range(blocks)]
    for name in names:  # keys in the order of names, as each metric alone gives them
        for result, block_scores in zip(results, scores[name]):
            result.update(block_scores)
    return results
