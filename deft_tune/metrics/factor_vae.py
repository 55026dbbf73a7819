"""FactorVAE score (Kim & Mnih 2018), as disentanglement_lib's ``factor_vae`` computes it.

Codes are divided by their global standard deviation (from ``num_variance_estimate`` samples);
codes with std < 0.05 are pruned as collapsed. One point: fix a random factor across a batch,
and vote for the active code with the smallest normalised variance. A majority-vote classifier
maps each code to the factor that won it most often; the score is its accuracy on train and
eval votes. Range [0, 1]; both are 0 when no code is active.
"""

from __future__ import annotations

import numpy as np

from deft_tune.data.base import GroundTruthData
from deft_tune.metrics._checks import check_positive_int
from deft_tune.metrics._sampling import (
    ENCODE_BATCH,
    RepresentationFn,
    codes_of_factors,
    split_blocks,
)
from deft_tune.validation import RandomLike, check_random_state

__all__ = [
    "compute_factor_vae",
    "factor_vae_blocks",
    "factor_vae_score",
    "prune_dims",
    "vote_matrix",
]


def prune_dims(variances: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Boolean mask of active codes: standard deviation >= ``threshold``."""
    variances = np.asarray(variances, dtype=np.float64)
    if variances.ndim != 1 or not np.isfinite(variances).all() or (variances < 0).any():
        raise ValueError("variances must be a finite, non-negative 1-D array")
    return np.sqrt(variances) >= threshold


def vote_matrix(
    local_variances: np.ndarray,
    factor_indices: np.ndarray,
    global_variances: np.ndarray,
    active: np.ndarray,
    num_factors: int,
) -> np.ndarray:
    """Votes (k factors, number of active codes): argmin of normalised variance per point."""
    local_variances = np.asarray(local_variances, dtype=np.float64)
    factor_indices = np.asarray(factor_indices, dtype=np.int64)
    active = np.asarray(active, dtype=bool)
    if local_variances.ndim != 2 or local_variances.shape[1] != active.shape[0]:
        raise ValueError(
            f"local_variances must have shape (points, {active.shape[0]}), got "
            f"{local_variances.shape}"
        )
    if factor_indices.shape != (local_variances.shape[0],):
        raise ValueError(
            f"factor_indices must have shape ({local_variances.shape[0]},), got "
            f"{factor_indices.shape}"
        )
    normalised = local_variances[:, active] / np.asarray(global_variances)[active]
    votes = np.zeros((num_factors, int(active.sum())), dtype=np.int64)
    np.add.at(votes, (factor_indices, np.argmin(normalised, axis=1)), 1)
    return votes


def factor_vae_score(train_votes: np.ndarray, eval_votes: np.ndarray) -> tuple[float, float]:
    """Accuracy of the majority-vote classifier (code -> factor) on train and eval votes."""
    train_votes, eval_votes = np.asarray(train_votes), np.asarray(eval_votes)
    if train_votes.ndim != 2 or train_votes.shape != eval_votes.shape:
        raise ValueError(
            f"train_votes and eval_votes must have one shape (k, d), got "
            f"{train_votes.shape} and {eval_votes.shape}"
        )
    if train_votes.sum() == 0 or eval_votes.sum() == 0:
        raise ValueError("train_votes and eval_votes must each hold at least one vote")
    columns = np.arange(train_votes.shape[1])
    classifier = np.argmax(train_votes, axis=0)
    return (
        float(train_votes[classifier, columns].sum() / train_votes.sum()),
        float(eval_votes[classifier, columns].sum() / eval_votes.sum()),
    )


def _local_variances(
    data: GroundTruthData,
    representation_fn: RepresentationFn,
    num_points: int,
    batch_size: int,
    rng: np.random.Generator,
    encode_batch: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per point: variance (ddof 1) of the codes of a batch with one factor fixed."""
    num_factors = len(data.factor_sizes)
    per_chunk = max(1, encode_batch // batch_size)
    variances, indices = [], []
    for start in range(0, num_points, per_chunk):
        count = min(per_chunk, num_points - start)
        chunk = []
        for _ in range(count):
            index = int(rng.integers(num_factors))
            factors = np.asarray(data.sample_factors(batch_size, rng), dtype=np.int64)
            factors[:, index] = factors[0, index]
            chunk.append(factors)
            indices.append(index)
        codes = codes_of_factors(
            data, representation_fn, np.concatenate(chunk), rng, encode_batch=count * batch_size
        )
        codes = codes.astype(np.float64).reshape(count, batch_size, -1)  # as the global ones
        variances.append(np.var(codes, axis=1, ddof=1))
    return np.concatenate(variances), np.asarray(indices, dtype=np.int64)


def compute_factor_vae(
    representation_fn: RepresentationFn,
    data: GroundTruthData,
    seed: RandomLike = 0,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    encode_batch: int = ENCODE_BATCH,
) -> dict[str, float]:
    """``factor_vae/{train_accuracy,eval_accuracy,num_active_dims}``.

    ``num_active_dims`` counts the codes kept after pruning (disentanglement_lib reports the
    length of its boolean mask there, i.e. all codes, which is a known slip).
    """
    return factor_vae_blocks(
        representation_fn, data, 1, seed, batch_size, num_train, num_eval,
        num_variance_estimate, encode_batch,
    )[0]  # fmt: skip


_NOTHING_ACTIVE = {
    "factor_vae/train_accuracy": 0.0,
    "factor_vae/eval_accuracy": 0.0,
    "factor_vae/num_active_dims": 0.0,
}


def factor_vae_blocks(
    representation_fn: RepresentationFn,
    data: GroundTruthData,
    blocks: int,
    seed: RandomLike = 0,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    encode_batch: int = ENCODE_BATCH,
) -> list[dict[str, float]]:
    """:func:`compute_factor_vae` of ``blocks`` representations encoded side by side (see
    ``split_blocks``), all on one sample: variances, pruning and votes are per block."""
    rng = check_random_state(seed)
    batch_size = check_positive_int(batch_size, "batch_size", minimum=2)
    count = check_positive_int(num_variance_estimate, "num_variance_estimate", 2)
    factors = np.asarray(data.sample_factors(count, rng))
    codes = codes_of_factors(data, representation_fn, factors, rng, encode_batch)
    # Variances in float64 where disentanglement_lib keeps an encoder's float32 (docs/metrics.md).
    global_variances = split_blocks(np.var(codes.astype(np.float64), axis=0, ddof=1), blocks)
    active = [prune_dims(v) for v in global_variances]
    if not any(a.any() for a in active):
        return [dict(_NOTHING_ACTIVE) for _ in range(blocks)]
    points = (check_positive_int(num_train, "num_train"), check_positive_int(num_eval, "num_eval"))
    train, evaluation = (
        _local_variances(data, representation_fn, n, batch_size, rng, encode_batch) for n in points
    )
    train_blocks, eval_blocks = split_blocks(train[0], blocks), split_blocks(evaluation[0], blocks)
    k = len(data.factor_sizes)
    out = []
    for b in range(blocks):
        if not active[b].any():
            out.append(dict(_NOTHING_ACTIVE))
            continue
        train_acc, eval_acc = factor_vae_score(
            vote_matrix(train_blocks[b], train[1], global_variances[b], active[b], k),
            vote_matrix(eval_blocks[b], evaluation[1], global_variances[b], active[b], k),
        )
        out.append({
            "factor_vae/train_accuracy": train_acc,
            "factor_vae/eval_accuracy": eval_acc,
            "factor_vae/num_active_dims": float(active[b].sum()),
        })  # fmt: skip
    return out
