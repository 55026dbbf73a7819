import numpy as np
import pytest

from deft_tune.metrics.factor_vae import (
    compute_factor_vae,
    factor_vae_score,
    prune_dims,
    vote_matrix,
)
from tests.doubles import constant_codes, duplicated_codes, identity_codes, permuted_codes

SMALL = {"batch_size": 16, "num_train": 300, "num_eval": 150, "num_variance_estimate": 1000}


def test_majority_vote_accuracy_by_hand():
    train = np.array([[3, 1], [0, 4]])  # code 0 -> factor 0, code 1 -> factor 1
    evaluation = np.array([[1, 2], [1, 0]])
    # train: (3 + 4) / 8; eval: votes[0, 0] + votes[1, 1] = 1 + 0 out of 4.
    assert factor_vae_score(train, evaluation) == (7 / 8, 1 / 4)


def test_vote_matrix_by_hand():
    local = np.array([[1.0, 4.0, 0.1], [2.0, 1.0, 3.0]])
    global_ = np.array([1.0, 2.0, 1.0])
    active = np.array([True, True, False])  # code 2's tiny variance must not win
    # normalised rows: [1, 2] -> code 0; [2, 0.5] -> code 1.
    votes = vote_matrix(local, np.array([1, 0]), global_, active, num_factors=2)
    assert votes.tolist() == [[0, 1], [1, 0]]


def test_prune_dims_threshold_on_std():
    assert prune_dims(np.array([0.05**2, 0.04**2, 1.0])).tolist() == [True, False, True]


def test_identity_and_permutation_score_one(oracle_data):
    for fn in (identity_codes, permuted_codes, duplicated_codes):
        scores = compute_factor_vae(fn, oracle_data, seed=0, **SMALL)
        assert scores["factor_vae/eval_accuracy"] == 1.0, fn.__name__
    assert scores["factor_vae/num_active_dims"] == 4.0


def test_constant_codes_score_zero(oracle_data):
    scores = compute_factor_vae(constant_codes, oracle_data, seed=0, **SMALL)
    assert scores == {
        "factor_vae/train_accuracy": 0.0,
        "factor_vae/eval_accuracy": 0.0,
        "factor_vae/num_active_dims": 0.0,
    }


def test_bad_input():
    with pytest.raises(ValueError, match="train_votes and eval_votes"):
        factor_vae_score(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="local_variances"):
        vote_matrix(np.ones((2, 2)), np.array([0, 1]), np.ones(3), np.ones(3, bool), 2)
    with pytest.raises(ValueError, match="variances"):
        prune_dims(np.array([np.nan]))
