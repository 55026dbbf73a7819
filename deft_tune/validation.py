"""One vocabulary for checking values at the edge (configs, spaces, CLI flags, seeds).

In the manner of scikit-learn's ``check_scalar`` and ``check_random_state``: a check returns the
value converted to its type or raises :class:`ConfigError` with one line that names the field,
shows the value and says what it must be ("training.lr == -1.0, must be > 0"). Non-finite
numbers (NaN, inf) are refused everywhere a number is checked: ``nan <= 0`` is false, so a
comparison alone would let NaN through.

Library code past the edge trusts its inputs; array checks of the metric cores stay with them
(:mod:`deft_tune.metrics._checks`).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

from deft_tune.errors import ConfigError

__all__ = [
    "MAX_SEED",
    "RandomLike",
    "check_choice",
    "check_keys",
    "check_random_state",
    "check_scalar",
    "check_seed",
]

RandomLike = int | np.random.Generator | None

# The largest seed: torch generators take seeds below 2**64 and the training loop derives its
# streams as seed + k (k <= 7); 2**63 - 1 (a signed 64-bit integer) also fits every int64 column
# a seed may be stored in. numpy takes any non-negative integer.
MAX_SEED = 2**63 - 1


def check_scalar(
    value: Any,
    name: str,
    kind: type = float,
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_boundaries: str = "both",
    hint: str = "",
) -> Any:
    """``value`` as ``kind`` (int or float), finite and within the bounds, else ConfigError.

    ``include_boundaries`` is "both", "left", "right" or "neither" (which bounds are allowed).
    An int is accepted where a float is asked for; a whole float (3.0) where an int is; bools
    never. ``hint`` is appended to the message ("..., must be >= 1: <hint>").
    """
    number = _as_number(value, name, kind)
    left = include_boundaries in ("both", "left")
    right = include_boundaries in ("both", "right")
    too_low = min_val is not None and (number < min_val if left else number <= min_val)
    too_high = max_val is not None and (number > max_val if right else number >= max_val)
    if too_low or too_high:
        raise ConfigError(
            f"{name} == {number!r}, must {_bounds(min_val, max_val, left, right)}"
            + (f": {hint}" if hint else "")
        )
    return number


def _as_number(value: Any, name: str, kind: type) -> float | int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} == {value!r}, must be {what}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} == {value!r}, must be a finite number")
    number = float(value)
    if kind is int:
        if isinstance(value, numbers.Integral):
            return int(value)  # exact, also beyond float precision
        if number.is_integer():
            return int(number)
        raise ConfigError(f"{name} == {value!r}, must be a whole number")
    return number


def _bounds(low: float | None, high: float | None, left: bool, right: bool) -> str:
    if low is not None and high is not None:
        return f"lie in {'[' if left else '('}{low:g}, {high:g}{']' if right else ')'}"
    if low is not None:
        return f"be {'>=' if left else '>'} {low:g}"
    return f"be {'<=' if right else '<'} {high:g}"


def check_seed(value: Any, name: str) -> int:
    """``value`` as a seed: a whole number in [0, 2**63 - 1] (:data:`MAX_SEED`)."""
    seed = check_scalar(value, name, int)
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} == {seed}, must lie in [0, 2**63 - 1]")
    return seed


def check_choice(value: Any, name: str, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``; else ConfigError listing them (with a guess)."""
    if value in choices:
        return value
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{name} == {value!r}, must be one of {list(choices)}{guess}")


def check_keys(raw: Iterable[Any], known: Collection[str], where: str) -> None:
    """ConfigError for the first key of ``raw`` not in ``known``, with a did-you-mean hint."""
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            name = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"unknown key {name!r}: {hint}")


def check_random_state(seed: RandomLike) -> np.random.Generator:
    """Turn a seed, a generator or None into one ``np.random.Generator`` (at the edge only)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}")
