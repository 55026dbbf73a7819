"""``python benchmarks/reproduce/run.py [--budget ...] [--only ...] [--results DIR] [...]``.

The reproduction's command, the same as ``python -m benchmarks.reproduce`` from the repository
root (options: benchmarks/reproduce/driver.py). Run as a file, Python puts only this folder on
the import path; the package is therefore imported from the files next to this one, by
location, so its relative imports work from any working folder without editing sys.path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _import_package(name: str, folder: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"no package {name!r} at {folder}")
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    _import_package("benchmarks", here.parent)
    _import_package("benchmarks.reproduce", here)
    from benchmarks.reproduce.driver import main

    sys.exit(main())
