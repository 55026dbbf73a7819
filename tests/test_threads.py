"""threads.py: passive OpenMP waiting set at import (the user's choice wins), pools sized."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from threadpoolctl import threadpool_info

from deft_tune import threads
from tests import REPO


def _fresh(env_extra: dict[str, str]) -> dict:
    code = (
        "import json, os, sys\n"
        "import deft_tune\n"
        "print(json.dumps({'policy': os.environ.get('OMP_WAIT_POLICY'), "
        "'torch_first': 'torch' in sys.modules}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, **env_extra, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_deft_tune_asks_for_passive_waiting_before_torch_loads():
    assert _fresh({}) == {"policy": "PASSIVE", "torch_first": False}
    assert _fresh({"OMP_WAIT_POLICY": "ACTIVE"})["policy"] == "ACTIVE"  # the user's wins


def test_available_cpus_is_the_affinity():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    assert threads.available_cpus() == (expected or os.cpu_count())


def test_limit_threads_sizes_torch_and_the_loaded_blas_pools():
    before = torch.get_num_threads()
    try:
        threads.limit_threads(1)
        assert torch.get_num_threads() == 1
        blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
        assert blas and all(p["num_threads"] == 1 for p in blas)
    finally:
        threads.limit_threads(before)
