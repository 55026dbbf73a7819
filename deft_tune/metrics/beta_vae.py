"""BetaVAE score (Higgins et al. 2017), as disentanglement_lib's ``beta_vae`` computes it.

One training point: pick a factor at random, draw two batches of factors that agree on that
factor only by construction, and take the mean absolute difference of their codes. A logistic
regression predicts the fixed factor from that feature; the score is its accuracy on train and
eval points. Range [0, 1] (chance is about 1 / num_factors).
"""

from __future__ import annotations

import numpy as np

from deft_tune.data.base import GroundTruthData
from deft_tune.metrics._checks import check_codes, check_positive_int
from deft_tune.metrics._classifiers import fit_logistic_regression
from deft_tune.metrics._sampling import (
    ENCODE_BATCH,
    RepresentationFn,
    codes_of_factors,
    split_blocks,
)
from deft_tune.validation import RandomLike, check_random_state

__all__ = ["beta_vae_blocks", "beta_vae_features", "beta_vae_score", "compute_beta_vae"]


def beta_vae_features(codes1: np.ndarray, codes2: np.ndarray) -> np.ndarray:
    """Mean absolute difference over the batch axis: (points, batch, d) pairs -> (points, d)."""
    codes1, codes2 = np.asarray(codes1, dtype=np.float64), np.asarray(codes2, dtype=np.float64)
    if codes1.ndim != 3 or codes1.shape != codes2.shape:
        raise ValueError(
            f"codes1 and codes2 must both have shape (points, batch, d), got "
            f"{codes1.shape} and {codes2.shape}"
        )
    return np.mean(np.abs(codes1 - codes2), axis=1)


def _check_points(features: np.ndarray, labels: np.ndarray, suffix: str):
    features = check_codes(features, f"features{suffix}")
    labels = np.asarray(labels)
    if labels.shape != (features.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels{suffix} must be integers of shape ({features.shape[0]},), got "
            f"{labels.dtype} {labels.shape}"
        )
    return features, labels


def beta_vae_score(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    eval_features: np.ndarray,
    eval_labels: np.ndarray,
    random_state: int = 0,
) -> dict[str, float]:
    """Accuracy of a logistic regression from features (n, d) to fixed-factor labels (n,).

    The regression has scikit-learn's defaults (lbfgs, at most 100 iterations), as in
    disentanglement_lib; see ``deft_tune.metrics._classifiers``.
    """
    train_features, train_labels = _check_points(train_features, train_labels, "_train")
    eval_features, eval_labels = _check_points(eval_features, eval_labels, "_eval")
    if np.unique(train_labels).size < 2:
        raise ValueError("train_labels must hold at least two factors; use more points")
    model = fit_logistic_regression(train_features, train_labels, random_state)
    return {
        "beta_vae/train_accuracy": float(model.score(train_features, train_labels)),
        "beta_vae/eval_accuracy": float(model.score(eval_features, eval_labels)),
    }


def _sample_points(
    data: GroundTruthData,
    representation_fn: RepresentationFn,
    num_points: int,
    batch_size: int,
    rng: np.random.Generator,
    encode_batch: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` features (mean |code1 - code2| over a batch) and their fixed factors."""
    num_factors = len(data.factor_sizes)
    per_chunk = max(1, encode_batch // (2 * batch_size))  # points encoded in one call
    features, labels = [], []
    for start in range(0, num_points, per_chunk):
        count = min(per_chunk, num_points - start)
        chunk = []
        for _ in range(count):
            index = int(rng.integers(num_factors))
            first = np.asarray(data.sample_factors(batch_size, rng), dtype=np.int64)
            second = np.asarray(data.sample_factors(batch_size, rng), dtype=np.int64)
            second[:, index] = first[:, index]
            chunk += [first, second]
            labels.append(index)
        codes = codes_of_factors(
            data,
            representation_fn,
            np.concatenate(chunk),
            rng,
            encode_batch=len(chunk) * batch_size,
        )
        codes = codes.reshape(count, 2, batch_size, -1)
        features.append(beta_vae_features(codes[:, 0], codes[:, 1]))
    return np.concatenate(features), np.asarray(labels, dtype=np.int64)


def compute_beta_vae(
    representation_fn: RepresentationFn,
    data: GroundTruthData,
    seed: RandomLike = 0,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    encode_batch: int = ENCODE_BATCH,
) -> dict[str, float]:
    """``beta_vae/train_accuracy`` and ``beta_vae/eval_accuracy`` (disentanglement_lib sizes)."""
    return beta_vae_blocks(
        representation_fn, data, 1, seed, batch_size, num_train, num_eval, encode_batch
    )[0]


def beta_vae_blocks(
    representation_fn: RepresentationFn,
    data: GroundTruthData,
    blocks: int,
    seed: RandomLike = 0,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    encode_batch: int = ENCODE_BATCH,
) -> list[dict[str, float]]:
    """:func:`compute_beta_vae` of ``blocks`` representations encoded side by side (see
    ``split_blocks``), all on one sample; the features are per code, so each block's score is
    exactly what its representation alone would get."""
    rng = check_random_state(seed)
    batch_size = check_positive_int(batch_size, "batch_size")
    train = _sample_points(
        data,
        representation_fn,
        check_positive_int(num_train, "num_train"),
        batch_size,
        rng,
        encode_batch,
    )
    evaluation = _sample_points(
        data,
        representation_fn,
        check_positive_int(num_eval, "num_eval"),
        batch_size,
        rng,
        encode_batch,
    )
    return [
        beta_vae_score(train_block, train[1], eval_block, evaluation[1])
        for train_block, eval_block in zip(
            split_blocks(train[0], blocks), split_blocks(evaluation[0], blocks)
        )
    ]
