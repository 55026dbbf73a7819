"""Independent tasks shared by this process and ``n_jobs - 1`` worker processes.

DCI's per-factor classifiers are most of the standard suite's cost, and the other metrics are
mostly sampling and encoding in this process. So the fits start first, on the workers, while
this process runs the other metrics; then this process takes the fits still waiting. At most
``n_jobs`` processes work at a time (this process's own thread pools aside), so a trial's CPU
share bounds it. Tasks go out longest first, which keeps the last one from running alone.

Each task is a pure function of its arguments, so its result does not depend on which process
ran it or when: ``results()`` equals ``[fn(*task) for task in tasks]``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from joblib.externals.loky import get_reusable_executor

T = TypeVar("T")


class SharedTasks(Generic[T]):
    """``fn(*task)`` for every task, longest (highest cost) first; see the module docstring."""

    def __init__(
        self,
        fn: Callable[..., T],
        tasks: Sequence[tuple[Any, ...]],
        costs: Sequence[float],
        n_jobs: int = 1,
    ) -> None:
        if len(costs) != len(tasks):
            raise ValueError(f"{len(costs)} costs for {len(tasks)} tasks")
        self.fn, self.tasks, self.n_jobs = fn, list(tasks), n_jobs
        self._waiting = deque(sorted(range(len(tasks)), key=lambda i: -costs[i]))
        self._results: dict[int, T] = {}
        self._feeders: list[Future[None]] = []

    def start(self) -> SharedTasks[T]:
        """Start the ``n_jobs - 1`` workers on the longest tasks; returns at once."""
        workers = min(self.n_jobs - 1, len(self.tasks))
        if workers > 0:
            # A worker process (loky's, reused across calls as joblib reuses it) per feeder
            # thread; the feeders only wait, so they cost this process no CPU.
            executor = get_reusable_executor(max_workers=workers)
            feeders = ThreadPoolExecutor(workers, thread_name_prefix="deft-metrics")
            self._feeders = [feeders.submit(self._feed, executor) for _ in range(workers)]
            feeders.shutdown(wait=False)
        return self

    def results(self) -> list[T]:
        """Run the tasks still waiting here, wait for the workers, return results in task order."""
        try:
            while (index := self._next()) is not None:
                self._results[index] = self.fn(*self.tasks[index])
            for feeder in self._feeders:
                feeder.result()  # a worker's exception is raised here
        finally:
            self.cancel()
        return [self._results[i] for i in range(len(self.tasks))]

    def cancel(self) -> None:
        """Drop the tasks not started (on an error elsewhere: the workers stop soon)."""
        self._waiting.clear()

    def _next(self) -> int | None:
        try:
            return self._waiting.popleft()  # atomic: the feeders and this thread share it
        except IndexError:
            return None

    def _feed(self, executor) -> None:
        try:
            while (index := self._next()) is not None:
                self._results[index] = executor.submit(self.fn, *self.tasks[index]).result()
        except BaseException:
            self.cancel()  # fail fast: nobody takes further tasks
            raise
