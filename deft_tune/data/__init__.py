"""Ground-truth data sets, by name.

>>> from deft_tune.data import get_dataset, names
>>> data = get_dataset("dsprites_full")
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from deft_tune.data.base import GridData, GroundTruthData
from deft_tune.errors import DataError

__all__ = [
    "GridData",
    "GroundTruthData",
    "check_dataset_options",
    "dataset_class",
    "get_dataset",
    "names",
    "run_dataset",
]

# name -> "module:class"; imported lazily so that `deft-tune data list` stays instant.
_REGISTRY: dict[str, str] = {
    "dsprites_full": "deft_tune.data.dsprites:DSprites",
    "dsprites_noshape": "deft_tune.data.variants:DSpritesNoShape",
    "color_dsprites": "deft_tune.data.variants:ColorDSprites",
    "noisy_dsprites": "deft_tune.data.variants:NoisyDSprites",
    "scream_dsprites": "deft_tune.data.variants:ScreamDSprites",
    "smallnorb": "deft_tune.data.smallnorb:SmallNORB",
    "correlated_dsprites": "deft_tune.data.correlated:CorrelatedDSprites",
}


def names() -> list[str]:
    """The names :func:`get_dataset` accepts."""
    return list(_REGISTRY)


def dataset_class(name: str) -> type:
    """The class behind ``name``, without constructing it (its ``description``, sizes, ...)."""
    if name not in _REGISTRY:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(_REGISTRY)}")
    module_name, class_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def check_dataset_options(name: str, options: Mapping[str, Any]) -> None:
    """DataError naming an option the data set's constructor does not take (checked without
    constructing it: before a search starts Ray, not in its first trial)."""
    import inspect

    accepted: set[str] = set()
    for cls in dataset_class(name).__mro__:  # a variant passes **kwargs on to its base
        if "__init__" not in vars(cls):
            continue
        params = inspect.signature(vars(cls)["__init__"]).parameters.values()
        accepted |= {
            p.name for p in params if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD
        }
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    unknown = sorted(set(options) - accepted)
    if unknown:
        known = ", ".join(sorted(accepted - {"self"})) or "none"
        raise DataError(
            f"data.options.{unknown[0]}: data set {name!r} takes no option {unknown[0]!r}; "
            f"its options: {known}"
        )


def get_dataset(name: str, **options) -> GroundTruthData:
    """The data set called ``name``; ``options`` go to its constructor (cache_dir, path, ...)."""
    if name not in _REGISTRY:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(_REGISTRY)}")
    module_name, class_name = _REGISTRY[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls(**options)
    except TypeError as exc:  # an option the data set does not take
        raise DataError(f"data set {name!r}: {exc}") from None


def run_dataset(name: str, options: Mapping[str, Any]) -> GroundTruthData:
    """The data set of a run config's (or a search space's) data section: :func:`get_dataset`
    with a relative ``cache_dir`` or ``path`` taken inside the user's cache folder
    (:func:`deft_tune.data.cache.resolve_option_paths`)."""
    from deft_tune.data.cache import resolve_option_paths  # pyarrow: only when a set is made

    return get_dataset(name, **resolve_option_paths(options))
