"""Codes of sampled observations: the one place the metrics call the representation function.

A representation function maps observations (n, C, H, W) float32 to codes (n, d); for a VAE it
is the encoder mean. It may return a NumPy array or a torch tensor. Observations are encoded in
chunks of ``encode_batch`` so that large samples never sit in memory as float images at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from deft_tune.data.base import GroundTruthData
from deft_tune.metrics._checks import check_codes, check_positive_int

RepresentationFn = Callable[[np.ndarray], Any]

ENCODE_BATCH = 1024


def encode(representation_fn: RepresentationFn, observations: np.ndarray) -> np.ndarray:
    """Codes (n, d) of one chunk of observations, checked for shape and NaN.

    float32 codes (an encoder's usual output) stay float32 so that MIG and Modularity bin them
    as disentanglement_lib does; the other metrics convert them to float64 themselves.
    """
    codes = representation_fn(observations)
    if hasattr(codes, "detach"):  # a torch tensor, possibly on a GPU
        codes = codes.detach().cpu().numpy()
    codes = check_codes(np.asarray(codes), "representation_fn output", keep_float32=True)
    if codes.shape[0] != observations.shape[0]:
        raise ValueError(
            f"representation_fn returned {codes.shape[0]} codes for "
            f"{observations.shape[0]} observations"
        )
    return codes


def codes_of_factors(
    data: GroundTruthData,
    representation_fn: RepresentationFn,
    factors: np.ndarray,
    rng: np.random.Generator,
    encode_batch: int = ENCODE_BATCH,
) -> np.ndarray:
    """Codes of observations drawn for the given factors, encoded chunk by chunk."""
    encode_batch = check_positive_int(encode_batch, "encode_batch")
    chunks = [
        encode(
            representation_fn,
            data.sample_observations_from_factors(factors[i : i + encode_batch], rng),
        )
        for i in range(0, len(factors), encode_batch)
    ]
    return np.concatenate(chunks, axis=0)


def sample_codes(
    data: GroundTruthData,
    representation_fn: RepresentationFn,
    num: int,
    rng: np.random.Generator,
    encode_batch: int = ENCODE_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """``num`` i.i.d. factor draws and the codes of their observations: (codes, factors)."""
    num = check_positive_int(num, "num_points")
    factors = np.asarray(data.sample_factors(num, rng), dtype=np.int64)
    return codes_of_factors(data, representation_fn, factors, rng, encode_batch), factors


def sample_train_test(
    data: GroundTruthData,
    representation_fn: RepresentationFn,
    num_train: int,
    num_test: int,
    seed_rng: np.random.Generator,
    encode_batch: int = ENCODE_BATCH,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Train codes/factors then test codes/factors from one generator, in that order.

    MIG, DCI, SAP and Modularity all draw their samples this way, so one draw serves them all
    and each ``compute_*`` alone gives exactly what the shared draw gives with the same seed.
    """
    train = sample_codes(data, representation_fn, num_train, seed_rng, encode_batch)
    return train, sample_codes(data, representation_fn, num_test, seed_rng, encode_batch)


def split_blocks(codes: np.ndarray, blocks: int) -> list[np.ndarray]:
    """The codes of ``blocks`` representations encoded side by side: (n, blocks * d) -> ``blocks``
    arrays (n, d). Several replicas of a model are scored on one sample this way: the sampling
    is done once and each replica's score sees exactly its own columns."""
    blocks = check_positive_int(blocks, "blocks")
    if codes.shape[-1] % blocks:
        raise ValueError(
            f"codes have {codes.shape[-1]} columns, not a multiple of blocks == {blocks}"
        )
    return np.split(codes, blocks, axis=-1)
