"""Modularity (Ridgeway & Zemel 2018) and Explicitness, as disentanglement_lib's
``modularity_explicitness`` computes them.

Modularity: per code, how much of its (squared) mutual information goes to its best factor;
1 when each code informs about one factor only. Explicitness: per factor, the macro ROC AUC of
a one-vs-rest logistic regression from standardised codes, on train and test samples.
All scores in [0, 1].
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import roc_auc_score

from deft_tune.data.base import GroundTruthData
from deft_tune.metrics._checks import check_pair
from deft_tune.metrics._classifiers import fit_logistic_regression
from deft_tune.metrics._sampling import ENCODE_BATCH, RepresentationFn, sample_train_test
from deft_tune.metrics.mutual_info import mutual_info_matrix
from deft_tune.validation import RandomLike, check_random_state

__all__ = [
    "compute_modularity",
    "explicitness_per_factor",
    "modularity",
    "modularity_explicitness",
    "modularity_from_mi",
]


def modularity_from_mi(mi: np.ndarray) -> float:
    """Mean over codes of 1 - delta, from a factor-by-code MI matrix (k, d).

    delta = (sum_f mi^2 - max_f mi^2) / (max_f mi^2 * (k - 1)); a code with no information at
    all scores 0 (disentanglement_lib's convention). Needs k >= 2 factors.
    """
    mi = np.asarray(mi, dtype=np.float64)
    if mi.ndim != 2 or mi.shape[0] < 2 or mi.shape[1] == 0:
        raise ValueError(f"mi must have shape (k, d) with k >= 2 factors, got {mi.shape}")
    squared = np.square(mi)
    top = squared.max(axis=0)
    informative = top > 0
    per_code = np.zeros(mi.shape[1])
    rest = squared.sum(axis=0)[informative] - top[informative]
    per_code[informative] = 1.0 - rest / (top[informative] * (mi.shape[0] - 1))
    return float(np.mean(per_code))


def explicitness_per_factor(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[float, float]:
    """Macro one-vs-rest ROC AUC of a logistic regression, on train and on test samples.

    Classes absent from a split (no positive or no negative example) have no AUC and are left
    out of that split's average. The regression has scikit-learn's defaults (lbfgs, at most 100
    iterations), as in disentanglement_lib.
    """
    clf = fit_logistic_regression(x_train, y_train)
    return (_macro_auc(clf, x_train, y_train), _macro_auc(clf, x_test, y_test))


def _macro_auc(clf: ClassifierMixin, x: np.ndarray, y: np.ndarray) -> float:
    proba = clf.predict_proba(x)
    onehot = y[:, None] == clf.classes_[None, :]
    scorable = onehot.any(axis=0) & ~onehot.all(axis=0)
    if not scorable.any():
        raise ValueError("factors_test must hold at least two classes seen in training")
    return float(roc_auc_score(onehot[:, scorable], proba[:, scorable], average="macro"))


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant code stays 0 instead of becoming NaN
    return (train - mean) / std, (test - mean) / std


def modularity_explicitness(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    bins: int = 20,
) -> dict[str, float]:
    """``modularity``, ``modularity/explicitness_train`` and ``modularity/explicitness_test``."""
    codes_train, factors_train = check_pair(codes_train, factors_train, "_train", keep_float32=True)
    codes_test, factors_test = check_pair(codes_test, factors_test, "_test", min_values=1)
    score = modularity_from_mi(mutual_info_matrix(codes_train, factors_train, bins))
    x_train, x_test = _standardise(codes_train.astype(np.float64), codes_test)
    pairs = [
        explicitness_per_factor(x_train, factors_train[:, j], x_test, factors_test[:, j])
        for j in range(factors_train.shape[1])
    ]
    train_auc, test_auc = np.mean(pairs, axis=0)
    return {
        "modularity": score,
        "modularity/explicitness_train": float(train_auc),
        "modularity/explicitness_test": float(test_auc),
    }


def modularity(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """Modularity alone (no classifier), from codes (n, d) and factors (n, k)."""
    codes, factors = check_pair(codes, factors, keep_float32=True)
    return modularity_from_mi(mutual_info_matrix(codes, factors, bins))


def compute_modularity(
    representation_fn: RepresentationFn,
    data: GroundTruthData,
    seed: RandomLike = 0,
    num_train: int = 10_000,
    num_test: int = 5_000,
    bins: int = 20,
    encode_batch: int = ENCODE_BATCH,
) -> dict[str, float]:
    """Sample train and test points of ``data``, encode them, score modularity/explicitness."""
    rng = check_random_state(seed)
    train, test = sample_train_test(data, representation_fn, num_train, num_test, rng, encode_batch)
    return modularity_explicitness(*train, *test, bins=bins)
