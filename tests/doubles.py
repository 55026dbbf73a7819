"""Test doubles shared by the whole suite, in one place.

- :class:`Squares` (48 binary images of squares) and :class:`SquaresProtocolOnly`: small,
  fast stand-ins for dSprites in training, search and CLI tests;
- :class:`Bars`: a tiny grid of vertical bars for the annealing test;
- :class:`FactorsAsObservations` and the ``*_codes`` representations: metric oracles whose
  expected scores follow from the definitions;
- :class:`SmallGridDSprites`: a picklable factory of dSprites cut to a small grid (the real
  renderer), for trials that run in Ray worker processes;
- :func:`tiny_space`: a DEFT search space that trains in seconds; :class:`UnreadableData`, a
  data factory that fails in every trial;
- :func:`write_code_running_checkpoint`: a hostile checkpoint whose unpickling would run a
  shell command (it touches a marker file), to prove that no checkpoint is ever unpickled, and
  :func:`write_code_running_pickle`, the same as a plain pickle (a crafted Ray state file).

Ray workers cannot import this module by name (they run outside the test's sys.path), so it is
registered to be pickled by value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from deft_tune.data.base import GridData
from deft_tune.data.dsprites import DSprites

# A dSprites grid small enough to render in milliseconds: 3 shapes x 2 scales x 3 orientations
# x 4 x 4 positions = 288 images (the first values of each factor).
SMALL_DSPRITES_SIZES = (3, 2, 3, 4, 4)


class Squares(GridData):
    """4 x-positions, 4 y-positions, 3 sizes of a filled square: 48 binary images.

    Stored as uint8 rows (48, 1, 64, 64); the base class decodes them to float on the device.
    """

    name = "squares"
    factor_names = ("size", "x", "y")
    factor_sizes = (3, 4, 4)
    observation_shape = (1, 64, 64)

    def __init__(self) -> None:
        factors = self.index_to_factors(np.arange(self.num_samples))
        images = np.zeros((self.num_samples, 1, 64, 64), dtype=np.uint8)
        for row, (size, x, y) in enumerate(factors):
            side = 8 + 6 * size
            top, left = 6 + 10 * y, 6 + 10 * x
            images[row, 0, top : top + side, left : left + side] = 1
        self._images = images

    def stored_images(self) -> np.ndarray:
        return self._images


class SquaresProtocolOnly:
    """The same data through the bare protocol (no stored rows): the loop's fallback path."""

    name = "squares_protocol"
    factor_names = Squares.factor_names
    factor_sizes = Squares.factor_sizes
    observation_shape = Squares.observation_shape

    def __init__(self) -> None:
        self._grid = Squares()

    def sample_factors(self, n, rng):
        return self._grid.sample_factors(n, rng)

    def sample_observations_from_factors(self, factors, rng):
        rows = self._grid.factors_to_index(factors)
        return self._grid.stored_images()[rows].astype(np.float32)


class Bars(GridData):
    """A bar at one of 16 x-positions with one of 4 widths."""

    name = "bars"
    factor_names = ("x", "width")
    factor_sizes = (16, 4)
    observation_shape = (1, 64, 64)

    def stored_images(self) -> np.ndarray:
        out = np.zeros((64, 1, 64, 64), np.uint8)
        for x in range(16):
            for w in range(4):
                out[x * 4 + w, 0, 10:50, 4 * x : 4 * x + 2 + w] = 1
        return out


class FactorsAsObservations(GridData):
    """Observation of factors f is f itself as a float (n, k, 1, 1) array.

    Every representation is then a known function of the factors, so the expected score of an
    identity, constant, duplicated or permuted representation follows from the definitions.
    """

    name = "factors_as_observations"
    factor_names = ("a", "b", "c")
    factor_sizes = (4, 5, 6)
    observation_shape = (3, 1, 1)

    def sample_observations_from_factors(self, factors, rng):
        factors = self.check_factors(factors)
        return factors.astype(np.float32)[:, :, None, None]


def identity_codes(observations: np.ndarray) -> np.ndarray:
    return observations[:, :, 0, 0]


def constant_codes(observations: np.ndarray) -> np.ndarray:
    return np.zeros((observations.shape[0], 3), dtype=np.float32)


def duplicated_codes(observations: np.ndarray) -> np.ndarray:
    """Factor a twice (codes 0 and 1), then b and c."""
    f = observations[:, :, 0, 0]
    return np.concatenate([f[:, :1], f], axis=1)


def permuted_codes(observations: np.ndarray) -> np.ndarray:
    return observations[:, [2, 0, 1], 0, 0]


def noisy_identity_codes(observations: np.ndarray) -> np.ndarray:
    """Identity plus a little noise derived from the input, so it stays deterministic."""
    f = observations[:, :, 0, 0].astype(np.float64)
    jitter = np.sin(np.arange(f.size).reshape(f.shape) * 12.9898) * 0.05
    return f + jitter


# float32 codes on which float32 and float64 binning disagree (10 samples, bins=10, edges at
# min 0 + i * (max 1 - 0) / 10). float32(0.7) = 0.699999988079071. The float32 edge 7 is
# float32(7 * float32(0.1)) = float32(0.70000001043) = 0.699999988079071 as well, so the code
# sits on it and opens bin 8; the float64 edge 7 is 7 * 0.1 = 0.7000000000000001, above the
# code, which stays in bin 7 with float32(0.65) = 0.6499999762 (in [0.6, 0.7) either way).
EDGE_CODES = np.array([0.0] * 3 + [0.65] * 2 + [0.7] * 2 + [1.0] * 3, dtype=np.float32)[:, None]
EDGE_BINS_FLOAT32 = [1, 1, 1, 7, 7, 8, 8, 10, 10, 10]
EDGE_BINS_FLOAT64 = [1, 1, 1, 7, 7, 7, 7, 10, 10, 10]
# A factor that the float32 bins separate exactly (0.65 -> 0, 0.7 -> 1) and the float64 bins
# mix in bin 7: MI = ln 2 with float32 bins, ln 2 - 0.4 ln 2 = 0.6 ln 2 with float64 bins.
EDGE_FACTOR = np.array([0] * 5 + [1] * 5)


class _SmallDSprites(DSprites):
    factor_sizes = SMALL_DSPRITES_SIZES


class SmallGridDSprites:
    """A picklable data factory: dSprites restricted to SMALL_DSPRITES_SIZES in ``cache_dir``."""

    def __init__(self, cache_dir: str) -> None:
        self.cache_dir = cache_dir

    def __call__(self) -> DSprites:
        return _SmallDSprites(cache_dir=self.cache_dir)


def tiny_space(
    path: Path,
    *,
    trials: int = 3,
    steps: int = 40,
    interval: int = 10,
    concurrent: int = 2,
    ifp: bool = True,
    asha: bool = True,
    name: str = "tiny",
    replicas: int = 1,
) -> Path:
    """A DEFT space that trains in seconds on Squares (widths 4, batch 16, 2-3 stages), each
    trial ``replicas`` seeds."""
    space = {
        "name": name,
        "data": {"name": "dsprites_full"},
        "objective": {"metric": "metrics/mig", "mode": "max", "metrics": ["mig"]},
        "budget": {
            "steps_per_trial": steps,
            "num_trials": trials,
            "max_concurrent": concurrent,
            "eval_interval": interval,
            "seed": 0,
            "cpus_per_trial": 1,
        },
        "stopping": {
            "ifp": {"enabled": ifp},
            "asha": {"enabled": asha, "grace_period": 2, "reduction_factor": 2},
        },
        "base": {
            "model": {"encoder_width": 4, "decoder_width": 4},
            "training": {"batch_size": 16, "replicas": replicas},
            "evaluation": {"probe_size": 64},
        },
        "params": {
            "num_stages": {"low": 2, "high": 3},
            "latents_per_group": 1,
            "lr": 1e-3,
            "beta_first": {"low": 4, "high": 40},
            "beta_last": 1,
            "stage_frac": {"low": 0.2, "high": 0.4},
            "lr_scale": {"choices": [0.1, 1.0]},
        },
    }
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


class UnreadableData:
    """A data factory that fails in every trial, as a broken data set would."""

    MESSAGE = "the test's data set is unreadable"

    def __call__(self):
        from deft_tune.errors import DataError

        raise DataError(self.MESSAGE)


class _RunsCode:
    """Unpickling this calls ``os.system(command)``: what a hostile checkpoint would do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def trials_checkpointed(search_folder: Path) -> int:
    """How many trials of the search stored in ``search_folder`` hold a checkpoint. Any index
    counts: Tune keeps only the last two (CheckpointConfig(num_to_keep=2)), so a trial that
    started early may have dropped checkpoint_000000 before a later one wrote its own."""
    return sum(1 for trial in search_folder.glob("*/") if any(trial.glob("checkpoint_*")))


def write_code_running_checkpoint(path: Path, marker: Path, state: dict) -> Path:
    """``state`` (a real trainer's state dict) saved with one entry that, when unpickled by a
    full ``torch.load``, runs ``touch marker``. A safe loader leaves ``marker`` absent."""
    import torch

    torch.save({**state, "hooks": [_RunsCode(f"touch {marker}")]}, path)
    return path


def write_code_running_pickle(path: Path, marker: Path) -> Path:
    """A pickle (a crafted ``tuner.pkl`` or ``searcher-state-*.pkl``) whose unpickling runs
    ``touch marker``: what a hostile file in a search folder would do."""
    import pickle

    path.write_bytes(pickle.dumps(_RunsCode(f"touch {marker}")))
    return path


def _register_for_ray() -> None:
    try:
        import ray.cloudpickle
    except ImportError:  # a run without the search extras
        return
    import sys

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


_register_for_ray()
