"""The grouped VAE of DEFT: networks, grouped encoder and objectives."""

from deft_tune.model.files import (
    FORMAT,
    MODEL_FILE,
    build_model,
    load_model,
    load_torch_file,
    model_file,
    model_files,
    place_model,
    run_autocast,
    save_model,
)
from deft_tune.model.grouped import (
    GroupedEncoder,
    GroupedVAE,
    apply_lr_scales,
    describe_parameter_groups,
    encode_in_chunks,
    encode_with_encoder_output_in_chunks,
    parameter_groups,
)
from deft_tune.model.networks import Decoder, Encoder, reconstruction_loss
from deft_tune.model.objectives import (
    kl_per_latent,
    objective_loss,
    total_correlation,
)

__all__ = [
    "FORMAT",
    "MODEL_FILE",
    "Decoder",
    "Encoder",
    "GroupedEncoder",
    "GroupedVAE",
    "apply_lr_scales",
    "build_model",
    "describe_parameter_groups",
    "encode_in_chunks",
    "encode_with_encoder_output_in_chunks",
    "kl_per_latent",
    "load_model",
    "load_torch_file",
    "model_file",
    "model_files",
    "objective_loss",
    "parameter_groups",
    "place_model",
    "reconstruction_loss",
    "run_autocast",
    "save_model",
    "total_correlation",
]
