import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from deft_tune.metrics._classifiers import fit_logistic_regression
from deft_tune.metrics.beta_vae import beta_vae_score
from deft_tune.metrics.modularity import explicitness_per_factor

# The label is the small second feature; the large, uninformative first one slows lbfgs down:
# it needs about 144 iterations to converge here, more than disentanglement_lib's default 100.
I = np.arange(40)
SLOW_X = np.column_stack([I % 7 * 1000.0, I % 3])
SLOW_Y = I % 3


def test_logistic_regression_stops_at_100_iterations():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # none may reach the caller
        model = fit_logistic_regression(SLOW_X, SLOW_Y)
    assert model.max_iter == 100 and model.solver == "lbfgs"
    assert model.n_iter_.tolist() == [100]


def test_metrics_fit_without_convergence_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        scores = beta_vae_score(SLOW_X, SLOW_Y, SLOW_X, SLOW_Y)
        train, test = explicitness_per_factor(SLOW_X, SLOW_Y, SLOW_X, SLOW_Y)
    # Stopped early or not, the three classes are separated by the second feature.
    assert scores == {"beta_vae/train_accuracy": 1.0, "beta_vae/eval_accuracy": 1.0}
    assert train == test == 1.0
