"""The annealing test's independent runs as Ray tasks, for `deft-tune ifp --address`.

The runs are the same :class:`deft_tune.freezing.annealing.AnnealingRun` objects the local
process pool takes (a few dozen rendered images each, so shipping them is cheap) and each task
calls the same :func:`run_annealing`. Every node of the cluster needs deft-tune installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from deft_tune.errors import ConfigError
from deft_tune.freezing.annealing import AnnealingResult, AnnealingRun, run_annealing

__all__ = ["run_on_ray"]

log = logging.getLogger(__name__)


def _run_one(run: AnnealingRun) -> AnnealingResult:
    import torch

    torch.set_num_threads(1)  # one CPU per task, as requested from Ray
    return run_annealing(run)


def run_on_ray(
    runs: Sequence[AnnealingRun],
    on_result: Callable[[AnnealingResult], None] | None = None,
    *,
    address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
) -> list[AnnealingResult]:
    """Run every run as a Ray task; results in input order, ``on_result`` as each finishes.

    Connects to ``address`` (``ray://HOST:PORT``, ``HOST:PORT`` or ``auto``) unless Ray is
    already initialised in this process; a connection this call opened is closed at the end.
    """
    import ray

    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"cannot connect to the Ray cluster at {address!r}: {exc}; "
                "check --address (ray://HOST:10001 or HOST:6379)"
            ) from None
        started = True
    try:
        task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run)(_run_one)
        refs = [task.remote(run) for run in runs]
        position = {ref: i for i, ref in enumerate(refs)}
        results: dict[int, AnnealingResult] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = position[done[0]]
            results[i] = ray.get(done[0])
            if on_result:
                on_result(results[i])
        return [results[i] for i in range(len(refs))]
    finally:
        if started:
            ray.shutdown()
