"""Disentanglement metrics (the disentanglement_lib suite) and label-free information scores."""

from deft_tune.metrics.mutual_info import (
    discretize,
    entropies,
    mutual_info_matrix,
    normalized_top2,
)

__all__ = ["discretize", "entropies", "mutual_info_matrix", "normalized_top2"]
