"""The walls of DESIGN.md, checked: the library rooms import no Ray, Optuna or MLflow, and no
module of the package takes part in an import cycle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests import REPO

PACKAGE = REPO / "deft_tune"
# Everything but deft_tune.search (and the CLI, which reaches the search lazily).
LIBRARY_ROOMS = (
    "deft_tune", "deft_tune.config", "deft_tune.errors", "deft_tune.fileio",
    "deft_tune.validation", "deft_tune.tables", "deft_tune.report_keys", "deft_tune.schedules",
    "deft_tune.training", "deft_tune.training.trainer", "deft_tune.training.batches",
    "deft_tune.data", "deft_tune.model",
    "deft_tune.freezing", "deft_tune.freezing.report", "deft_tune.freezing.ifp_table",
    "deft_tune.metrics", "deft_tune.results", "deft_tune.results.report",
    "deft_tune.results.report_plots", "deft_tune.plots", "deft_tune.results.refine",
    "deft_tune.threads",
)  # fmt: skip
HEAVY = ("ray", "optuna", "mlflow")


def _fresh_import(modules: tuple[str, ...]) -> dict[str, bool]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_library_rooms_import_no_ray_optuna_or_mlflow():
    assert _fresh_import(LIBRARY_ROOMS) == dict.fromkeys(HEAVY, False)


def test_the_cli_and_the_search_package_load_without_them():
    # Ray, Optuna and MLflow load when a command needs them, not to parse a command line.
    assert _fresh_import(
        (
            "deft_tune.cli",
            "deft_tune.search",
            "deft_tune.search.space",
            "deft_tune.search.tracking",
            "deft_tune.search.options",
            "deft_tune.search.runner",
            "deft_tune.search.replay",
            "deft_tune.search.replay.options",
        )
    ) == dict.fromkeys(HEAVY, False)


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """Modules of the package that ``path`` imports when it is imported (not in functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _top_level_imports(path, set(paths)) - {name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_of_the_package_is_in_an_import_cycle():
    graph = import_graph()
    assert len(graph) > 50  # the walk saw the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
