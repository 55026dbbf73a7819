"""Information freezing: the annealing test, online freezing/diffusion signals, schedule advice.

- :class:`InformationTracker`: the training loop's eval hook behind the ``info/*`` report keys.
- :func:`find_freezing_point`: the IFP of one KL-versus-beta curve.
"""

from deft_tune.freezing.detect import (
    FreezingPoint,
    default_window,
    find_freezing_point,
    running_median,
)
from deft_tune.freezing.signals import FreezingEvent, InformationTracker

__all__ = [
    "FreezingEvent",
    "FreezingPoint",
    "InformationTracker",
    "default_window",
    "find_freezing_point",
    "running_median",
]
