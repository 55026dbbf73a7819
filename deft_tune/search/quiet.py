"""What Ray, Tune and Optuna print during a search, kept off the live table.

The search prints one line per trial report (callbacks.LiveTable). Left alone, Ray and Tune add
to it: Tune's experiment banner with a TensorBoard hint (the TensorBoard logger is one of the
loggers Tune adds by default), a token-authentication notice when the local Ray starts, a
"Checkpoint successfully created at ..." line from every trial at every report, a warning about
experiment snapshots (which ``CheckpointConfig(num_to_keep)`` forces by design), "Wrote the
latest version of all result files" at the end, and Optuna's "A new study created". Warnings and
errors that say something is wrong still come through.

- :func:`quiet_driver` (around the search in the driver): Tune's old, silent output path at
  ``verbose=0`` (``RAY_AIR_NEW_OUTPUT=0``: the new one prints its banner at every verbosity),
  no automatic loggers (:func:`file_loggers` puts back the CSV and JSON ones: ``result.json``
  and ``progress.csv`` stay, the TensorBoard logger and its hint go), no snapshot warning, and
  the informational log lines above dropped. Environment variables the user set are kept.
- :func:`quiet_trial` (in each trial's process): no checkpoint line per report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["file_loggers", "quiet_driver", "quiet_trial"]

DRIVER_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}
# Informational loggers of the driver whose INFO lines interleave with the table.
_DRIVER_INFO = ("ray.tune.tune", "optuna")
_TOKEN_SETUP = "ray._private.authentication.authentication_token_setup"
_TRIAL_INFO = ("ray.train._internal.storage", "ray.train.v2._internal.execution.storage")


class _DropMessages(logging.Filter):
    """Drops records whose message starts with one of ``prefixes``."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


@contextmanager
def quiet_driver() -> Iterator[None]:
    """Ray's, Tune's and Optuna's chatter off the driver's output while the search runs."""
    saved_env = {key: os.environ.get(key) for key in DRIVER_ENV}
    for key, value in DRIVER_ENV.items():
        os.environ.setdefault(key, value)
    loggers = [logging.getLogger(name) for name in _DRIVER_INFO]
    saved_levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    # The notice that token authentication is on (Ray's default for a local cluster); the
    # warning that it is off, should a cluster run without it, still comes through.
    token = logging.getLogger(_TOKEN_SETUP)
    notice = _DropMessages("Token authentication is enabled")
    token.addFilter(notice)
    try:
        yield
    finally:
        token.removeFilter(notice)
        for logger, level in zip(loggers, saved_levels):
            logger.setLevel(level)
        for key, saved in saved_env.items():
            if saved is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = saved


def quiet_trial() -> None:
    """No "Checkpoint successfully created" line from this trial's process at every report."""
    for name in _TRIAL_INFO:
        logging.getLogger(name).setLevel(logging.WARNING)


def file_loggers() -> list[Any]:
    """The result files Tune writes by default (result.json, progress.csv), without its
    TensorBoard logger: passed explicitly because :func:`quiet_driver` turns the defaults off."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    return [CSVLoggerCallback(), JsonLoggerCallback()]
