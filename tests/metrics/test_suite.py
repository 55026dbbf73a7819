import numpy as np
import pytest

from deft_tune.errors import ConfigError
from deft_tune.metrics import (
    FAST,
    METRICS,
    STANDARD,
    compute_beta_vae,
    compute_dci,
    compute_factor_vae,
    compute_mig,
    compute_modularity,
    compute_sap,
    evaluate,
)
from deft_tune.report_keys import METRIC_KEYS
from tests.doubles import identity_codes, permuted_codes

TINY = {
    "num_train": 600,
    "num_test": 300,
    "batch_size": 16,
    "beta_vae_train": 200,
    "beta_vae_eval": 100,
    "factor_vae_train": 200,
    "factor_vae_eval": 100,
    "factor_vae_variance": 500,
}
MIXING = np.random.default_rng(42).normal(size=(3, 5))


def mixed_codes(observations):
    """A fixed linear mix of the factors into 5 codes plus input-dependent jitter."""
    f = observations[:, :, 0, 0].astype(np.float64)
    return f @ MIXING + 0.3 * np.sin(f.sum(axis=1, keepdims=True) * np.arange(1, 6))


def test_every_metric_and_key(oracle_data):
    scores = evaluate(mixed_codes, oracle_data, seed=0, settings=FAST, **TINY)
    assert {key.split("/")[0] for key in scores} == set(METRICS)
    assert all(isinstance(v, float) for v in scores.values())
    for key in (
        "mig",
        "sap",
        "modularity",
        "dci/disentanglement",
        "dci/completeness",
        "factor_vae/eval_accuracy",
        "beta_vae/eval_accuracy",
    ):
        assert key in scores


def test_every_score_in_its_range(oracle_data):
    for fn in (mixed_codes, identity_codes):
        scores = evaluate(fn, oracle_data, seed=1, settings=FAST, **TINY)
        dims = scores.pop("factor_vae/num_active_dims")
        assert 0 <= dims <= 5
        for key, value in scores.items():
            assert 0.0 <= value <= 1.0, key


def test_same_seed_same_result_other_seed_other_result(oracle_data):
    a = evaluate(mixed_codes, oracle_data, seed=7, settings=FAST, **TINY)
    assert evaluate(mixed_codes, oracle_data, seed=7, settings=FAST, **TINY) == a
    assert evaluate(mixed_codes, oracle_data, seed=8, settings=FAST, **TINY) != a


def test_shared_draw_equals_each_metric_alone(oracle_data):
    s = {"num_train": 400, "num_test": 200}
    together = evaluate(
        mixed_codes, oracle_data, names=["mig", "dci", "sap", "modularity"], seed=3, **s
    )
    alone = {
        **compute_mig(mixed_codes, oracle_data, seed=3, num_train=400),
        **compute_dci(mixed_codes, oracle_data, seed=3, **s),
        **compute_sap(mixed_codes, oracle_data, seed=3, **s),
        **compute_modularity(mixed_codes, oracle_data, seed=3, **s),
    }
    assert together == alone
    beta = evaluate(mixed_codes, oracle_data, names=["beta_vae", "factor_vae"], seed=3, **TINY)
    assert beta == {
        **compute_beta_vae(mixed_codes, oracle_data, 3, 16, 200, 100),
        **compute_factor_vae(mixed_codes, oracle_data, 3, 16, 200, 100, 500),
    }


def test_settings_are_named_and_distinct():
    assert STANDARD.name == "standard" and STANDARD.dci_classifier == "gbt"
    assert STANDARD.num_train == 10_000 and STANDARD.factor_vae_variance == 10_000
    assert FAST.name == "fast" and FAST.dci_classifier == "hist_gbt"
    assert FAST.num_train < STANDARD.num_train


def test_bad_names_and_sizes(oracle_data):
    with pytest.raises(ConfigError, match="unknown metric"):
        evaluate(identity_codes, oracle_data, names=["mig", "irs"])
    with pytest.raises(ConfigError, match="unknown metric setting"):
        evaluate(identity_codes, oracle_data, names=["mig"], num_samples=5)
    with pytest.raises(ConfigError, match="num_train == 0"):
        evaluate(identity_codes, oracle_data, names=["mig"], num_train=0)


def test_nan_codes_are_refused(oracle_data):
    def nan_codes(observations):
        return np.full((observations.shape[0], 2), np.nan)

    with pytest.raises(ValueError, match="representation_fn output"):
        evaluate(nan_codes, oracle_data, names=["mig"], num_train=100)


def test_each_metric_returns_the_keys_report_keys_declares():
    # DCI's keys are not checked by running it: its classifiers take seconds even on tiny data.
    from deft_tune.metrics import METRICS
    from deft_tune.metrics.mig import mig
    from deft_tune.metrics.modularity import modularity_explicitness
    from deft_tune.metrics.sap import sap

    assert set(METRIC_KEYS) == set(METRICS)
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 3, size=(200, 2))
    codes = factors + 0.1 * rng.normal(size=(200, 2))
    half = (codes[:100], factors[:100], codes[100:], factors[100:])
    assert set(mig(codes, factors)) == set(METRIC_KEYS["mig"])
    assert set(sap(*half)) == set(METRIC_KEYS["sap"])
    assert set(modularity_explicitness(*half)) == set(METRIC_KEYS["modularity"])


def test_blocks_score_each_representation_on_one_shared_sample(oracle_data):
    from deft_tune.metrics import evaluate_blocks

    # Two representations encoded side by side, as the replicas of a run are.
    def both(observations):
        return np.concatenate([identity_codes(observations), permuted_codes(observations)], 1)

    calls = []

    def counted(observations):
        calls.append(len(observations))
        return both(observations)

    sizes = {"num_train": 300, "num_test": 200, "beta_vae_train": 60, "beta_vae_eval": 30,
             "factor_vae_train": 60, "factor_vae_eval": 30, "factor_vae_variance": 200}  # fmt: skip
    together = evaluate_blocks(counted, oracle_data, 2, seed=5, **sizes)
    alone = [evaluate(fn, oracle_data, seed=5, **sizes) for fn in (identity_codes, permuted_codes)]
    assert together == alone
    encoded_once = sum(calls)
    calls.clear()
    evaluate(counted, oracle_data, seed=5, **sizes)
    assert encoded_once == sum(calls)  # both blocks from one sample: no second pass


def test_dci_beside_the_other_metrics_changes_no_score(oracle_data):
    # The sequential reference: each metric alone in this process (DCI's fits one by one).
    alone = {
        **compute_beta_vae(mixed_codes, oracle_data, 4, 16, 200, 100),
        **compute_factor_vae(mixed_codes, oracle_data, 4, 16, 200, 100, 500),
        **compute_mig(mixed_codes, oracle_data, seed=4, num_train=600),
        **compute_dci(mixed_codes, oracle_data, seed=4, num_train=600, num_test=300),
        **compute_sap(mixed_codes, oracle_data, seed=4, num_train=600, num_test=300),
        **compute_modularity(mixed_codes, oracle_data, seed=4, num_train=600, num_test=300),
    }
    for n_jobs in (1, 2):  # 2: DCI's fits on a worker while this process runs the rest
        together = evaluate(mixed_codes, oracle_data, seed=4, n_jobs=n_jobs, **TINY)
        assert together == alone
        assert list(together) == [k for name in METRICS for k in alone if k.startswith(name)]
