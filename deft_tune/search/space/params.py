"""One searchable parameter of a space: a fixed value, a numeric range or a list of choices.

In YAML a parameter is written as a plain value (fixed), ``{low, high}`` with optional
``log: true`` (a range; integers when the parameter is an integer), or ``{choices: [...]}``.
Parsing checks the value against the parameter's domain so that an Optuna study never sees a
range it cannot sample (log scale with low <= 0, a fraction outside (0, 1), ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from deft_tune.errors import ConfigError
from deft_tune.validation import check_keys

__all__ = ["Domain", "Param", "parse_param"]


@dataclass(frozen=True)
class Domain:
    """What values a parameter may take: its type and open/closed numeric bounds."""

    type: Literal["float", "int", "str"]
    # Bounds; ``open_low``/``open_high`` make them strict (fractions in (0, 1), betas > 0).
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[Any, ...] | None = None  # allowed values of a "str" parameter
    log: bool = False  # default scale of a range

    def check(self, value: Any, where: str) -> Any:
        """``value`` converted to the domain's type, or ConfigError naming ``where``."""
        if self.type == "str":
            if self.choices is not None and value not in self.choices:
                raise ConfigError(f"{where} == {value!r}, must be one of {list(self.choices)}")
            if not isinstance(value, str):
                raise ConfigError(f"{where} == {value!r}, must be a string")
            return value
        value = _number(value, self.type, where)
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            raise ConfigError(f"{where} == {value}, must be {self._bound_text()}")
        if self.high is not None and (value >= self.high if self.open_high else value > self.high):
            raise ConfigError(f"{where} == {value}, must be {self._bound_text()}")
        return value

    def _bound_text(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.open_high else '<='} {self.high:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Param:
    """A parsed parameter: ``kind`` "fixed" (``value``), "range" or "choices"."""

    kind: Literal["fixed", "range", "choices"]
    type: Literal["float", "int", "str"]
    value: Any = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def fixed(self) -> bool:
        return self.kind == "fixed"

    @property
    def bounds(self) -> tuple[Any, Any]:
        """Smallest and largest value the parameter can take."""
        if self.kind == "fixed":
            return self.value, self.value
        if self.kind == "range":
            return self.low, self.high
        ordered = sorted(self.choices) if self.type != "str" else list(self.choices)
        return ordered[0], ordered[-1]

    def values(self) -> tuple[Any, ...]:
        """Every value of a fixed or categorical parameter; the two bounds of a range."""
        if self.kind == "choices":
            return self.choices
        return tuple(dict.fromkeys(self.bounds))

    def contains(self, value: Any) -> bool:
        if self.kind == "fixed":
            return value == self.value
        if self.kind == "choices":
            return value in self.choices
        return self.low <= value <= self.high

    def suggest(self, trial: Any, name: str) -> Any:
        """Sample from an Optuna trial (define-by-run); a fixed parameter is not suggested."""
        if self.kind == "choices":
            return trial.suggest_categorical(name, list(self.choices))
        if self.type == "int":
            low, high = self.bounds
            return trial.suggest_int(name, int(low), int(high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.kind == "fixed":
            return repr(self.value)
        if self.kind == "choices":
            return f"one of {list(self.choices)}"
        return f"[{self.low:g}, {self.high:g}]{' log' if self.log else ''}"


def parse_param(raw: Any, domain: Domain, where: str) -> Param:
    """A :class:`Param` from YAML: a value, ``{low, high[, log]}`` or ``{choices}``."""
    if not isinstance(raw, dict):
        return Param("fixed", domain.type, value=domain.check(raw, where))
    check_keys(raw, ("low", "high", "log", "choices"), where)
    if "choices" in raw:
        if set(raw) != {"choices"}:
            raise ConfigError(f"{where} mixes 'choices' with a range: give one of the two")
        return _parse_choices(raw["choices"], domain, where)
    if domain.type == "str":
        raise ConfigError(f"{where} is not numeric: give a value or {{choices: [...]}}")
    missing = [key for key in ("low", "high") if key not in raw]
    if missing:
        raise ConfigError(f"{where} range lacks {missing[0]!r}: write {{low: A, high: B}}")
    low = domain.check(raw["low"], f"{where}.low")
    high = domain.check(raw["high"], f"{where}.high")
    log = raw.get("log", domain.log)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log == {log!r}, must be true or false")
    if low > high:
        raise ConfigError(f"{where}.low == {low} > {where}.high == {high}: swap them")
    if log and low <= 0:
        raise ConfigError(
            f"{where}.low == {low} on a log scale, must be > 0: raise it or set log: false"
        )
    if low == high:
        return Param("fixed", domain.type, value=low)
    return Param("range", domain.type, low=low, high=high, log=log)


def _parse_choices(raw: Any, domain: Domain, where: str) -> Param:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}.choices must be a non-empty list, got {raw!r}")
    values = tuple(domain.check(v, f"{where}.choices[{i}]") for i, v in enumerate(raw))
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}.choices {list(values)} repeats a value: list each once")
    if len(values) == 1:
        return Param("fixed", domain.type, value=values[0])
    return Param("choices", domain.type, choices=values)


def _number(value: Any, type_: str, where: str) -> float | int:
    if isinstance(value, str):
        try:  # PyYAML reads "5e-4" (no dot) as a string
            value = float(value)
        except ValueError:
            raise ConfigError(f"{where} == {value!r}, must be a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{where} == {value!r}, must be a number")
    if type_ == "int":
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where} == {value}, must be a whole number")
        return int(value)
    return float(value)
