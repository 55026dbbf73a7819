"""The logistic regression of BetaVAE and Explicitness, fitted as disentanglement_lib fits it.

disentanglement_lib calls ``LogisticRegression()``: scikit-learn's defaults, so lbfgs with at
most 100 iterations today. We pin those 100 iterations instead of following a future default.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

MAX_ITER = 100


def fit_logistic_regression(
    x: np.ndarray, y: np.ndarray, random_state: int | None = None
) -> LogisticRegression:
    """A ``LogisticRegression`` with scikit-learn's default settings, fitted on (x, y)."""
    model = LogisticRegression(max_iter=MAX_ITER, random_state=random_state)
    with warnings.catch_warnings():
        # disentanglement_lib keeps whatever lbfgs reached after 100 iterations. A few
        # Explicitness fits stop there, within 1e-4 AUC of converged (docs/metrics.md); a
        # warning per fit would only flood the logs of every search trial.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)
