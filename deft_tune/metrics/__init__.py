"""Disentanglement metrics (the disentanglement_lib suite) and label-free information scores.

Each metric has a pure core over arrays (codes (n, d), integer factors (n, k)) and a
``compute_*`` that samples a ground-truth data set through a representation function with an
explicit seed. :func:`evaluate` runs several at once with the ``STANDARD`` (disentanglement_lib)
or ``FAST`` (in-trial) settings and returns one flat dict of named floats.

>>> from deft_tune.metrics import evaluate, FAST
>>> scores = evaluate(encoder_mean, data, names=["mig", "dci"], seed=0, settings=FAST)
"""

from deft_tune.metrics.beta_vae import beta_vae_features, beta_vae_score, compute_beta_vae
from deft_tune.metrics.dci import completeness, compute_dci, dci, disentanglement
from deft_tune.metrics.factor_vae import compute_factor_vae, factor_vae_score, prune_dims
from deft_tune.metrics.mig import compute_mig, mig, mig_from_mi
from deft_tune.metrics.modularity import (
    compute_modularity,
    modularity,
    modularity_explicitness,
    modularity_from_mi,
)
from deft_tune.metrics.mutual_info import (
    discretize,
    entropies,
    mutual_info_matrix,
    normalized_top2,
)
from deft_tune.metrics.sap import compute_sap, sap, sap_from_scores
from deft_tune.metrics.suite import (
    FAST,
    METRIC_KEYS,
    METRICS,
    STANDARD,
    MetricSettings,
    evaluate,
    evaluate_blocks,
)
from deft_tune.metrics.unsupervised import active_latents, kl_per_latent, tc_decomposition

__all__ = [
    "FAST",
    "METRICS",
    "METRIC_KEYS",
    "STANDARD",
    "MetricSettings",
    "active_latents",
    "beta_vae_features",
    "beta_vae_score",
    "completeness",
    "compute_beta_vae",
    "compute_dci",
    "compute_factor_vae",
    "compute_mig",
    "compute_modularity",
    "compute_sap",
    "dci",
    "discretize",
    "disentanglement",
    "entropies",
    "evaluate",
    "evaluate_blocks",
    "factor_vae_score",
    "kl_per_latent",
    "mig",
    "mig_from_mi",
    "modularity",
    "modularity_explicitness",
    "modularity_from_mi",
    "mutual_info_matrix",
    "normalized_top2",
    "prune_dims",
    "sap",
    "sap_from_scores",
    "tc_decomposition",
]
