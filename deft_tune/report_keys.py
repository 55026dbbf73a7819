"""The report's keys, defined once: what the training loop, its information tracker and a search
trial put in the flat dict of numbers they report.

Writers (deft_tune.training, deft_tune.freezing.signals, the search's trainable) build their keys
from these names; readers (the search-space schema, the IFP stopper, ASHA, inspect and export,
the plots) match against them. Keys are namespaced and flat: ``train/loss``, ``kl/group2``,
``metrics/mig``.
"""

from __future__ import annotations

import re

__all__ = [
    "FIXED_KEYS",
    "METRIC_KEYS",
    "PATTERNS",
    "is_report_key",
]

STEP = "step"

# The training loop (deft_tune.training): losses averaged since the last report, the schedule's
# position, per-group learning rates and the KL on the probe batch.
LOSS = "train/loss"
RECON = "train/recon"
KL = "train/kl"
IMAGES_PER_SEC = "train/images_per_sec"
BETA = "train/beta"
STAGE = "train/stage"
STAGE_PROGRESS = "train/stage_progress"
CAPACITY = "train/capacity"  # AnnealedVAE only
KL_TOTAL = "kl/total"
ACTIVE_LATENTS = "info/active_latents"
REPLICAS = "train/replicas"  # how many replicas (seeds) the run trains side by side


KL_LATENT_PREFIX = "kl/latent"
KL_GROUP_PREFIX = "kl/group"
LR_GROUP_PREFIX = "lr/group"


def kl_latent(latent: int) -> str:
    return f"{KL_LATENT_PREFIX}{latent}"


def kl_group(group: int) -> str:
    return f"{KL_GROUP_PREFIX}{group}"


def lr_group(group: int) -> str:
    return f"{LR_GROUP_PREFIX}{group}"


# The information tracker (deft_tune.freezing.signals).
ACTIVE_GAIN = "info/active_gain"
FROZEN_GAIN = "info/frozen_gain"
DIFFUSION = "info/diffusion"
ACTIVE_CAPTURED = "info/active_captured"
FREEZING_EVENTS = "info/freezing_events"
LAST_FREEZING_BETA = "info/last_freezing_beta"
NMI1_MEAN = "info/nmi1_mean"
NMI2_MEAN = "info/nmi2_mean"


GAIN_GROUP_PREFIX = "info/gain/group"


def gain_group(group: int) -> str:
    """Nats group ``group``'s encoder gained since the current stage began (an earlier group's
    share is information that diffused into it), measured before any projection."""
    return f"{GAIN_GROUP_PREFIX}{group}"


PROJECTION_GROUP_PREFIX = "info/projection/group"


def projection_group(group: int) -> str:
    """Nats of KL that earlier group ``group``'s projection moved (KL after it minus before):
    a frozen group's rescaling, not information its encoder took in."""
    return f"{PROJECTION_GROUP_PREFIX}{group}"


def nmi1(factor: str) -> str:
    return f"info/nmi1/{factor}"


def nmi2(factor: str) -> str:
    return f"info/nmi2/{factor}"


# A search trial: disentanglement scores (the fast setting at every report), the standard
# setting's scores at the end, and the marker of a trial that ran to its last step.
METRIC_PREFIX = "metrics/"
FINAL_PREFIX = "final/"
COMPLETED = "trial/completed"


# The keys each metric of deft_tune.metrics.evaluate returns its scores under.
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "beta_vae": ("beta_vae/train_accuracy", "beta_vae/eval_accuracy"),
    "factor_vae": (
        "factor_vae/train_accuracy",
        "factor_vae/eval_accuracy",
        "factor_vae/num_active_dims",
    ),
    "mig": ("mig",),
    "dci": (
        "dci/disentanglement",
        "dci/completeness",
        "dci/informativeness_train",
        "dci/informativeness_test",
    ),
    "sap": ("sap",),
    "modularity": ("modularity", "modularity/explicitness_train", "modularity/explicitness_test"),
}


def metric_key(name: str) -> str:
    """``mig`` -> ``metrics/mig``: a score at a report (the fast setting during a search)."""
    return f"{METRIC_PREFIX}{name}"


def is_final(key: str) -> bool:
    """A trial's end-of-run score: ``final/<key>``, or one replica's ``replica{r}/final/<key>``."""
    return key.startswith(FINAL_PREFIX) or f"/{FINAL_PREFIX}" in key


def final_key(metric: str) -> str:
    """``metrics/mig`` (or ``mig``) -> ``final/mig``: the standard score at a trial's end."""
    return FINAL_PREFIX + metric.removeprefix(METRIC_PREFIX)


FIXED_KEYS = (
    LOSS, RECON, KL, BETA, STAGE, STAGE_PROGRESS, IMAGES_PER_SEC, CAPACITY, KL_TOTAL, REPLICAS,
    ACTIVE_LATENTS, ACTIVE_GAIN, FROZEN_GAIN, DIFFUSION, ACTIVE_CAPTURED, FREEZING_EVENTS,
    LAST_FREEZING_BETA, NMI1_MEAN, NMI2_MEAN,
)  # fmt: skip
# Keys with an index or a factor name in them.
PATTERNS = (
    r"kl/latent\d+", r"kl/group\d+", r"lr/group\d+", r"info/gain/group\d+",
    r"info/projection/group\d+", r"info/nmi[12]/.+",
)  # fmt: skip


def is_report_key(key: str) -> bool:
    """Whether the training loop or its tracker reports ``key`` (a fixed key or a pattern)."""
    return key in FIXED_KEYS or any(re.fullmatch(p, key) for p in PATTERNS)
