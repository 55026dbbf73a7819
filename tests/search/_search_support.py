"""Helpers for the search tests: a tiny space and a tiny data set every trial process can use.

Trials run in Ray worker processes, which cannot see a data set patched into the test
process; so the tests hand the runner a data factory (the training tests' 48-image Squares),
shipped to the workers by value. The space still names dsprites_full (the space format only
accepts registered names); the trials train on Squares.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import ray.cloudpickle  # noqa: E402
import train_doubles  # noqa: E402

ray.cloudpickle.register_pickle_by_value(train_doubles)
Squares = train_doubles.Squares


def tiny_space(path: Path, *, trials: int = 3, steps: int = 40, interval: int = 10,
               concurrent: int = 2, ifp: bool = True, asha: bool = True,
               name: str = "tiny") -> Path:
    """A DEFT space that trains in seconds on Squares (widths 4, batch 16, 2-3 stages)."""
    space = {
        "name": name,
        "data": {"name": "dsprites_full"},
        "objective": {"metric": "metrics/mig", "mode": "max", "metrics": ["mig"]},
        "budget": {"steps_per_trial": steps, "num_trials": trials, "max_concurrent": concurrent,
                   "eval_interval": interval, "seed": 0, "cpus_per_trial": 1},
        "stopping": {"ifp": {"enabled": ifp},
                     "asha": {"enabled": asha, "grace_period": 2, "reduction_factor": 2}},
        "base": {"model": {"encoder_width": 4, "decoder_width": 4},
                 "training": {"batch_size": 16}, "evaluation": {"probe_size": 64}},
        "params": {"num_stages": {"low": 2, "high": 3}, "latents_per_group": 1, "lr": 1e-3,
                   "beta_first": {"low": 4, "high": 40}, "beta_last": 1,
                   "stage_frac": {"low": 0.2, "high": 0.4}, "lr_scale": {"choices": [0.1, 1.0]}},
    }
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path
