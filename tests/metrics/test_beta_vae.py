import numpy as np
import pytest

from deft_tune.metrics.beta_vae import beta_vae_features, beta_vae_score, compute_beta_vae
from tests.doubles import constant_codes, identity_codes, noisy_identity_codes

SMALL = {"batch_size": 16, "num_train": 300, "num_eval": 150}


def test_features_are_mean_absolute_differences():
    codes1 = np.array([[[0.0, 1.0], [2.0, 3.0]]])
    codes2 = np.array([[[1.0, 1.0], [0.0, 0.0]]])
    # |diffs| = [[1, 0], [2, 3]] -> mean over the batch axis.
    np.testing.assert_allclose(beta_vae_features(codes1, codes2), [[1.5, 1.5]])


def test_identity_scores_one(oracle_data):
    # The fixed factor's code difference is exactly 0, the others are not: separable.
    scores = compute_beta_vae(identity_codes, oracle_data, seed=0, **SMALL)
    assert scores == {"beta_vae/train_accuracy": 1.0, "beta_vae/eval_accuracy": 1.0}
    noisy = compute_beta_vae(noisy_identity_codes, oracle_data, seed=0, **SMALL)
    assert noisy["beta_vae/eval_accuracy"] > 0.95


def test_constant_codes_at_chance(oracle_data):
    scores = compute_beta_vae(constant_codes, oracle_data, seed=0, **SMALL)
    # All features are 0: the classifier can only predict one factor (chance ~ 1/3).
    assert scores["beta_vae/eval_accuracy"] < 0.45


def test_score_on_hand_made_points():
    features = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.1]])
    labels = np.array([0, 0, 1, 1])
    scores = beta_vae_score(features, labels, features[::-1], labels[::-1])
    assert scores == {"beta_vae/train_accuracy": 1.0, "beta_vae/eval_accuracy": 1.0}


def test_bad_input():
    with pytest.raises(ValueError, match="codes1 and codes2"):
        beta_vae_features(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="labels_train"):
        beta_vae_score(
            np.zeros((4, 2)), np.zeros(3, dtype=int), np.zeros((4, 2)), np.zeros(4, dtype=int)
        )
    with pytest.raises(ValueError, match="at least two factors"):
        beta_vae_score(
            np.zeros((4, 2)), np.zeros(4, dtype=int), np.zeros((4, 2)), np.zeros(4, dtype=int)
        )
