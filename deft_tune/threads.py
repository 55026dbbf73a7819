"""CPU threads: how many cores a process really has, and thread pools that wait politely.

A deft-tune process can hold three thread pools: torch's intra-op pool (OpenMP: GNU libgomp in
the Linux wheels, MKL and oneDNN run on it), the BLAS pool of numpy and scipy (OpenBLAS) and
scikit-learn's own OpenMP runtime. Two things go wrong on a shared machine or a packed cluster
node:

- Busy waiting. An OpenMP thread that finishes its share of a parallel region spins for the
  next one (libgomp: up to 300,000 spins; Intel OpenMP: 200 ms) before it sleeps. On a core of
  its own that saves a wake-up; on a core another process needs, the spinning takes the time
  that process would have used, and every process waits on threads that do not run. Measured
  here (benchmarks/thread_hygiene.py, docs/training.md): 4 short trains of 2 torch threads on 2
  cores ran 17x slower per process than with passive waiting. :func:`quiet_pools` asks for
  passive waiting (``OMP_WAIT_POLICY=PASSIVE``; ``KMP_BLOCKTIME=0`` for Intel OpenMP) unless
  the user set a policy; an OpenMP runtime reads it once, when it loads, so it must run before
  torch (or scikit-learn) is imported: ``import deft_tune`` does it.
- Pools sized to the machine instead of the process. :func:`available_cpus` is the process's
  CPU affinity (what ``taskset``, a cgroup cpuset or a batch scheduler leaves it), not
  ``os.cpu_count()``; a Ray trial's share is its ``cpus_per_trial``, which becomes its run
  config's ``training.threads`` (Ray also sets ``OMP_NUM_THREADS`` to it in the trial's
  process, which pools loaded later read). :func:`limit_threads` sizes torch's pool to a count
  and caps the BLAS and OpenMP pools loaded so far at it (threadpoolctl).

torch's thread count changes a run's numbers (the order of floating-point sums inside a
kernel depends on how the work is split), so it is part of the run config
(``training.threads``), not only a matter of speed.
"""

from __future__ import annotations

import logging
import os

__all__ = ["available_cpus", "limit_threads", "quiet_pools"]

log = logging.getLogger(__name__)

# What quiet_pools sets unless the user set it: passive waiting for GNU and Intel OpenMP.
QUIET_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def quiet_pools() -> None:
    """Ask OpenMP runtimes loaded from now on to wait passively (the user's choice wins)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity where the OS has one, else all."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def limit_threads(threads: int) -> None:
    """torch's intra-op threads = ``threads``; the BLAS and OpenMP pools loaded so far too.

    Process-wide: torch has one pool. A count above :func:`available_cpus` is applied as
    given (it decides the numbers) with a warning, since the threads will share cores.
    """
    import torch
    from threadpoolctl import threadpool_limits

    cpus = available_cpus()
    if threads > cpus:
        log.warning(
            "%d torch threads on %d available CPUs: they will share cores (the numbers "
            "are those of %d threads; only the speed suffers)",
            threads,
            cpus,
            threads,
        )
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    threadpool_limits(limits=threads)
