"""The grouped VAE of DEFT: networks, grouped encoder and objectives."""

from deft_tune.model.grouped import (
    GroupedEncoder,
    GroupedVAE,
    apply_lr_scales,
    describe_parameter_groups,
    parameter_groups,
)
from deft_tune.model.networks import Decoder, Encoder, reconstruction_loss
from deft_tune.model.objectives import (
    annealed_capacity,
    kl_per_latent,
    objective_loss,
    total_correlation,
)

__all__ = [
    "Decoder",
    "Encoder",
    "GroupedEncoder",
    "GroupedVAE",
    "annealed_capacity",
    "apply_lr_scales",
    "describe_parameter_groups",
    "kl_per_latent",
    "objective_loss",
    "parameter_groups",
    "reconstruction_loss",
    "total_correlation",
]
