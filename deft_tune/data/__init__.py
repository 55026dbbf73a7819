"""Ground-truth data sets, by name.

>>> from deft_tune.data import get_dataset, names
>>> data = get_dataset("dsprites_full")
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deft_tune.errors import DataError

if TYPE_CHECKING:
    from deft_tune.data.base import GridData, GroundTruthData

__all__ = [
    "GridData",
    "GroundTruthData",
    "check_dataset_options",
    "dataset_class",
    "describe",
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


def __getattr__(name: str) -> Any:
    # The base classes import torch: only when one is used, so that `data list` stays instant.
    if name in ("GridData", "GroundTruthData"):
        from deft_tune.data import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def describe(name: str) -> str:
    """The ``description`` of the class behind ``name``, read from its source when it is a
    plain string there (no torch import: `deft-tune data list` stays instant), else from the
    class."""
    if name not in _REGISTRY:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(_REGISTRY)}")
    module_name, class_name = _REGISTRY[name].split(":")
    spec = importlib.util.find_spec(module_name)
    if spec is not None and spec.origin and spec.origin.endswith(".py"):
        with open(spec.origin, encoding="utf-8") as handle:
            found = _class_string(ast.parse(handle.read()), class_name, "description")
        if found is not None:
            return found
    return str(getattr(dataset_class(name), "description", ""))


def _class_string(tree: ast.Module, class_name: str, attribute: str) -> str | None:
    """The string literal assigned to ``attribute`` in the body of class ``class_name``."""
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and node.name == class_name):
            continue
        for item in node.body:
            value: ast.expr | None
            if isinstance(item, ast.Assign):
                targets, value = item.targets, item.value
            elif isinstance(item, ast.AnnAssign):
                targets, value = [item.target], item.value
            else:
                continue
            named = any(isinstance(t, ast.Name) and t.id == attribute for t in targets)
            if named and isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
    return None


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
