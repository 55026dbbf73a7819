"""One exception hierarchy for user errors.

The CLI turns a :class:`DeftError` into one line on stderr and exit code 2; anything else is a
bug and keeps its traceback.
"""


class DeftError(Exception):
    """A user-facing error: the message names what is wrong and how to fix it."""


class ConfigError(DeftError, ValueError):
    """A run config, search space or CLI value is invalid."""


class DataError(DeftError):
    """A data set is unknown, or a data file is missing, unreadable or malformed."""


class TrainingError(DeftError):
    """Training cannot go on (for example the loss became NaN)."""


class TrackingError(DeftError):
    """The tracking server or store cannot be reached or queried."""


class ClusterError(DeftError):
    """A Ray cluster cannot be brought up or reached, or a job on it cannot be found."""


class DiskFullError(DeftError):
    """An output could not be written: the device holding it is full."""
