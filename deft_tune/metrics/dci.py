"""DCI: Disentanglement, Completeness, Informativeness (Eastwood & Williams 2018), as
disentanglement_lib computes it.

One gradient-boosted tree classifier per factor predicts the factor from all codes; its feature
importances form column j of the importance matrix R (d codes x k factors).
- disentanglement: per code 1 - H_k(R[i, :] / sum), weighted by the code's share of importance;
- completeness: per factor 1 - H_d(R[:, j] / sum), weighted by the factor's share (as
  disentanglement_lib does; with the classifiers' normalised importances the shares are equal,
  so this is the plain mean over factors);
- informativeness_train / _test: mean classification accuracy over factors.
All in [0, 1].

``classifier="gbt"`` is the standard (sklearn GradientBoostingClassifier with default
parameters, impurity-based importances). ``classifier="hist_gbt"`` is the fast variant used in
search trials: HistGradientBoostingClassifier, with importances taken as the total split gain
per feature over all trees. The fast variant gives different numbers and is never substituted
for the standard one silently: the setting that uses it is named ``FAST``.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from deft_tune.data.base import GroundTruthData
from deft_tune.metrics._checks import check_pair
from deft_tune.metrics._parallel import SharedTasks
from deft_tune.metrics._sampling import ENCODE_BATCH, RepresentationFn, sample_train_test
from deft_tune.validation import RandomLike, check_random_state

__all__ = [
    "CLASSIFIERS",
    "completeness",
    "compute_dci",
    "dci",
    "disentanglement",
    "importance_matrix",
    "start_dci",
]

CLASSIFIERS = ("gbt", "hist_gbt")
# The fast variant: few, small, steep boosting rounds. Depth-3 trees of the standard GBT have
# up to 8 leaves, hence max_leaf_nodes=8; 20 rounds at rate 0.3 reach the accuracy of 100 at 0.1
# on dSprites-like codes at a fifth of the time (see docs/metrics.md).
HIST_GBT_PARAMS = {"max_iter": 20, "max_leaf_nodes": 8, "learning_rate": 0.3}
_EPS = 1e-11  # disentanglement_lib's offset, so that all-zero rows have a defined entropy


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Entropy in base ``base`` of the distributions along ``axis`` (rows normalised first)."""
    p = p / p.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=axis) / np.log(base)


def _check_importance(importance: np.ndarray) -> np.ndarray:
    importance = np.asarray(importance, dtype=np.float64)
    if importance.ndim != 2 or importance.shape[0] < 1 or importance.shape[1] < 1:
        raise ValueError(f"importance must have shape (d, k), got {importance.shape}")
    if not np.isfinite(importance).all() or (importance < 0).any():
        raise ValueError("importance must be finite and non-negative")
    return importance


def disentanglement(importance: np.ndarray) -> float:
    """Disentanglement from an importance matrix (d codes, k factors); 1 if k == 1."""
    return _weighted_certainty(importance, axis=1)


def completeness(importance: np.ndarray) -> float:
    """Completeness from an importance matrix (d codes, k factors); 1 if d == 1."""
    return _weighted_certainty(importance, axis=0)


def _weighted_certainty(importance: np.ndarray, axis: int) -> float:
    """1 minus the entropy of each code's (``axis=1``) or factor's (``axis=0``) importance
    spread along ``axis``, weighted by its share of the total importance (equal shares when it
    is all 0); 1 when ``axis`` has a single entry."""
    importance = _check_importance(importance)
    spread_over = importance.shape[axis]
    if spread_over == 1:
        return 1.0
    certainty = 1.0 - _entropy(importance + _EPS, spread_over, axis=axis)
    total = importance.sum()
    weights = (
        importance.sum(axis=axis) / total
        if total > 0
        else np.full(len(certainty), 1 / len(certainty))
    )
    return float(np.sum(certainty * weights))


def _hist_gain_importance(model: HistGradientBoostingClassifier, num_features: int) -> np.ndarray:
    """Total split gain per feature over all trees, normalised to sum 1 (0s if no split)."""
    gains = np.zeros(num_features)
    for trees in model._predictors:  # noqa: SLF001 - sklearn exposes no importances here
        for tree in trees:
            nodes = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
            np.add.at(gains, nodes["feature_idx"], np.maximum(nodes["gain"], 0.0))
    return gains / gains.sum() if gains.sum() > 0 else gains


def _fit_one(x_train, y_train, x_test, y_test, classifier: str, random_state: int):
    # One OpenMP thread per fit and predict: parallelism comes from n_jobs over factors, and on
    # a busy machine (or beside a training process) spinning OpenMP threads slow it by 10x.
    with threadpool_limits(limits=1, user_api="openmp"):
        if classifier == "gbt":
            model = GradientBoostingClassifier(random_state=random_state).fit(x_train, y_train)
            importance = np.abs(model.feature_importances_)
        else:
            model = HistGradientBoostingClassifier(random_state=random_state, **HIST_GBT_PARAMS)
            model.fit(x_train, y_train)
            importance = _hist_gain_importance(model, x_train.shape[1])
        train_accuracy = np.mean(model.predict(x_train) == y_train)
        test_accuracy = np.mean(model.predict(x_test) == y_test)
    return importance, train_accuracy, test_accuracy


Problem = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # codes/factors train, test


def _checked(problem: Problem) -> Problem:
    codes_train, factors_train = check_pair(problem[0], problem[1], "_train")
    codes_test, factors_test = check_pair(problem[2], problem[3], "_test", min_values=1)
    if codes_test.shape[1] != codes_train.shape[1]:
        raise ValueError(
            f"codes_test has {codes_test.shape[1]} codes, codes_train {codes_train.shape[1]}"
        )
    return codes_train, factors_train, codes_test, factors_test


class PendingDCI:
    """DCI of several problems whose per-factor classifiers are being fitted: see
    :func:`start_dci`. ``result()`` waits for them; ``cancel()`` drops the fits not started."""

    def __init__(self, fits: SharedTasks, num_factors: list[int]) -> None:
        self.fits, self.num_factors = fits, num_factors

    def importance(self) -> list[tuple[np.ndarray, float, float]]:
        """Per problem: importance matrix (d, k), mean train accuracy, mean test accuracy."""
        fits, out = self.fits.results(), []
        for k in self.num_factors:
            mine, fits = fits[:k], fits[k:]
            out.append((
                np.stack([f[0] for f in mine], axis=1),
                float(np.mean([f[1] for f in mine])),
                float(np.mean([f[2] for f in mine])),
            ))  # fmt: skip
        return out

    def result(self) -> list[dict[str, float]]:
        return [
            {
                "dci/disentanglement": disentanglement(importance),
                "dci/completeness": completeness(importance),
                "dci/informativeness_train": train_acc,
                "dci/informativeness_test": test_acc,
            }
            for importance, train_acc, test_acc in self.importance()
        ]

    def cancel(self) -> None:
        self.fits.cancel()


def start_dci(
    problems: list[Problem],
    classifier: str = "gbt",
    random_state: int = 0,
    n_jobs: int = 1,
) -> PendingDCI:
    """Start fitting the per-factor classifiers of every problem: ``n_jobs - 1`` worker
    processes begin now; this process joins in when ``result()`` is asked for. The scores do
    not depend on ``n_jobs`` (each fit is a pure function of its data and ``random_state``)."""
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier == {classifier!r}, must be one of {CLASSIFIERS}")
    tasks, costs = [], []
    for codes_train, factors_train, codes_test, factors_test in map(_checked, problems):
        for j in range(factors_train.shape[1]):
            tasks.append((codes_train, factors_train[:, j], codes_test, factors_test[:, j],
                          classifier, random_state))  # fmt: skip
            # A multi-class booster grows one tree per class and round, a binary one one.
            classes = np.unique(factors_train[:, j]).size
            costs.append(classes if classes > 2 else 1)
    fits = SharedTasks(_fit_one, tasks, costs, n_jobs).start()
    return PendingDCI(fits, [p[1].shape[1] for p in problems])


def importance_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    classifier: str = "gbt",
    random_state: int = 0,
    n_jobs: int = 1,
) -> tuple[np.ndarray, float, float]:
    """Importance matrix (d, k), mean train accuracy, mean test accuracy.

    ``n_jobs`` fits the per-factor classifiers in parallel; the result does not depend on it.
    """
    problem = (codes_train, factors_train, codes_test, factors_test)
    return start_dci([problem], classifier, random_state, n_jobs).importance()[0]


def dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    classifier: str = "gbt",
    random_state: int = 0,
    n_jobs: int = 1,
) -> dict[str, float]:
    """``dci/disentanglement``, ``dci/completeness``, ``dci/informativeness_{train,test}``."""
    problem = (codes_train, factors_train, codes_test, factors_test)
    return start_dci([problem], classifier, random_state, n_jobs).result()[0]


def compute_dci(
    representation_fn: RepresentationFn,
    data: GroundTruthData,
    seed: RandomLike = 0,
    num_train: int = 10_000,
    num_test: int = 5_000,
    classifier: str = "gbt",
    n_jobs: int = 1,
    encode_batch: int = ENCODE_BATCH,
) -> dict[str, float]:
    """Sample train and test points of ``data``, encode them, and score DCI."""
    rng = check_random_state(seed)
    train, test = sample_train_test(data, representation_fn, num_train, num_test, rng, encode_batch)
    return dci(*train, *test, classifier=classifier, n_jobs=n_jobs)
