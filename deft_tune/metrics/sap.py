"""SAP, the Separated Attribute Predictability score (Kumar et al. 2018), as disentanglement_lib
computes it for discrete factors.

Score matrix S (d codes x k factors): the test accuracy of a linear SVM (C=0.01, balanced
class weights) that predicts factor j from code i alone. SAP is the mean over factors of the
gap between the best and second best code. Range [0, 1].
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from deft_tune.data.base import GroundTruthData
from deft_tune.metrics._checks import check_pair
from deft_tune.metrics._sampling import ENCODE_BATCH, RepresentationFn, sample_train_test
from deft_tune.validation import RandomLike, check_random_state

__all__ = ["compute_sap", "sap", "sap_from_scores", "score_matrix"]


def sap_from_scores(scores: np.ndarray) -> float:
    """Mean over factors of top-1 minus top-2 of a score matrix (d codes, k factors)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] < 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must have shape (d, k) with d >= 2 codes, got {scores.shape}")
    ordered = np.sort(scores, axis=0)
    return float(np.mean(ordered[-1] - ordered[-2]))


def _accuracy(x_train, y_train, x_test, y_test) -> float:
    model = LinearSVC(C=0.01, class_weight="balanced", random_state=0)
    with warnings.catch_warnings():
        # C=0.01 on raw codes converges slowly on some pairs; disentanglement_lib accepts the
        # solver's iterate after its default iteration budget too.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train[:, None], y_train)
    return float(np.mean(model.predict(x_test[:, None]) == y_test))


def score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
) -> np.ndarray:
    """Test accuracy of predicting each factor from each single code, shape (d, k)."""
    return np.array(
        [
            [
                _accuracy(
                    codes_train[:, i], factors_train[:, j], codes_test[:, i], factors_test[:, j]
                )
                for j in range(factors_train.shape[1])
            ]
            for i in range(codes_train.shape[1])
        ]
    )


def sap(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
) -> dict[str, float]:
    """``{"sap": score}`` from train and test codes (n, d) and factors (n, k)."""
    codes_train, factors_train = check_pair(codes_train, factors_train, "_train")
    codes_test, factors_test = check_pair(codes_test, factors_test, "_test", min_values=1)
    if codes_train.shape[1] < 2:
        raise ValueError(f"codes_train has {codes_train.shape[1]} code; SAP needs at least 2")
    return {
        "sap": sap_from_scores(score_matrix(codes_train, factors_train, codes_test, factors_test))
    }


def compute_sap(
    representation_fn: RepresentationFn,
    data: GroundTruthData,
    seed: RandomLike = 0,
    num_train: int = 10_000,
    num_test: int = 5_000,
    encode_batch: int = ENCODE_BATCH,
) -> dict[str, float]:
    """Sample train and test points of ``data``, encode them, and score SAP."""
    rng = check_random_state(seed)
    train, test = sample_train_test(data, representation_fn, num_train, num_test, rng, encode_batch)
    return sap(*train, *test)
