"""The walls of DESIGN.md, checked: which rooms each room may import, the library rooms import
no Ray, Optuna or MLflow, the top holds only the shared vocabulary, and no module of the package
takes part in an import cycle."""

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
    "deft_tune.plots", "deft_tune.threads",
    "deft_tune.data", "deft_tune.model", "deft_tune.metrics",
    "deft_tune.freezing", "deft_tune.freezing.report", "deft_tune.freezing.ifp_table",
    "deft_tune.training", "deft_tune.training.trainer", "deft_tune.training.replica",
    "deft_tune.training.evaluation", "deft_tune.training.checkpoint",
    "deft_tune.training.device", "deft_tune.training.batches", "deft_tune.training.memory",
    "deft_tune.training.aggregate",
    "deft_tune.results", "deft_tune.results.report", "deft_tune.results.refine",
    "deft_tune.results.report_plots",
)  # fmt: skip
HEAVY = ("ray", "optuna", "mlflow")

# The rooms of deft_tune/ (its packages) and the shared vocabulary: the plain modules at the top
# (config, schedules, report_keys, validation, fileio, errors, threads, tables, plots).
TOP = "top"
ROOMS = ("data", "model", "metrics", "freezing", "training", "results", "search", "cli")
MAX_TOP_MODULES = 10  # plain modules at the top, __init__ and __main__ aside

# What each room may import from the package, wherever the import stands: its own modules, and
# the rooms (all of one) or modules (``training.aggregate``: that module) named here.
MAY_IMPORT: dict[str, set[str]] = {
    TOP: {TOP},  # the vocabulary imports no room
    "data": {TOP},
    "model": {TOP, "data"},
    "metrics": {TOP, "data"},
    "freezing": {TOP, "data", "model", "metrics"},
    # The loop: a plain PyTorch library; nothing of the search, of results or of the CLI.
    "training": {TOP, "data", "model", "freezing", "metrics"},  # a run scores itself
    # Finished searches read back: of the loop only the replica keys and statistics that a
    # search's records carry (no torch: inspect's --help imports results/).
    "results": {TOP, "training.aggregate"},
    "search": {TOP, "data", "model", "metrics", "freezing", "training", "results"},
    "cli": {TOP, *ROOMS},
}
# ... and inside a function only (imported when it is called), besides those: results reads a
# search's metric histories through the tracking reader and parameter domains from the space
# language, both of the search room.
MAY_IMPORT_WHEN_CALLED: dict[str, set[str]] = {
    "results": {"search.tracking.reader", "search.space"},
}
# Only the search imports Ray, Optuna or MLflow, anywhere (the CLI reaches them through it).
HEAVY_ROOMS = {"search"}


def _fresh_import(modules: tuple[str, ...], heavy: tuple[str, ...] = HEAVY) -> dict[str, bool]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps({{m: m in sys.modules for m in {list(heavy)!r}}}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_library_rooms_import_no_ray_optuna_or_mlflow():
    assert _fresh_import(LIBRARY_ROOMS) == dict.fromkeys(HEAVY, False)


def test_the_faces_of_training_and_results_load_without_torch():
    # The search, results and the CLI's --help read training.aggregate; the loop loads on use.
    modules = ("deft_tune.training", "deft_tune.results", "deft_tune.results.report")
    assert _fresh_import(modules, ("torch",)) == {"torch": False}


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


def room_of(module: str) -> str:
    """The room of a module of the package: its package below deft_tune, else the top."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] == "__main__":
        return "cli"  # `python -m deft_tune` is the command line
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return TOP


def _imports(path: Path, modules: set[str]) -> list[tuple[str, bool]]:
    """(imported name, inside a function?) for every import in ``path``: modules of the package
    (``from m import name`` counts ``m.name`` when that is a module, else ``m``) and the
    first part of every other import."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.append((name if name in modules else node.module, in_function))
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


def _allowed(target: str, allowed: set[str]) -> bool:
    relative = target.removeprefix("deft_tune.")
    return room_of(target) in allowed or any(
        relative == item or relative.startswith(f"{item}.") for item in allowed
    )


def wall_breaches() -> list[str]:
    """Every import that crosses a wall, as one line naming the module, the import and the rule."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    breaches = []
    for module, path in sorted(paths.items()):
        room = room_of(module)
        for name, in_function in _imports(path, set(paths)):
            if name.split(".")[0] in HEAVY:
                if room not in HEAVY_ROOMS:
                    breaches.append(f"{module} imports {name}: only search/ imports {HEAVY}")
                continue
            if name != "deft_tune" and not name.startswith("deft_tune."):
                continue
            allowed = MAY_IMPORT[room] | {room}
            if in_function:
                allowed = allowed | MAY_IMPORT_WHEN_CALLED.get(room, set())
            if not _allowed(name, allowed):
                where = " inside a function" if in_function else ""
                breaches.append(
                    f"{module} imports {name}{where}: {room} may import {sorted(allowed)}"
                )
    return breaches


def test_every_module_has_a_room_with_a_rule():
    rooms = {room_of(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert rooms == {TOP, *ROOMS} == set(MAY_IMPORT)


def test_each_room_imports_only_what_its_rule_names():
    assert wall_breaches() == []


def test_the_wall_check_finds_a_breach(tmp_path, monkeypatch):
    # training/ reaching into results/ (and Ray) is refused, naming the module and the rule.
    fake = tmp_path / "deft_tune"
    (fake / "training").mkdir(parents=True)
    (fake / "results").mkdir()
    (fake / "training" / "__init__.py").write_text("")
    (fake / "results" / "__init__.py").write_text("")
    (fake / "results" / "report.py").write_text("")
    (fake / "training" / "loop.py").write_text(
        "from deft_tune.results import report\n\ndef f():\n    import ray\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    breaches = wall_breaches()
    assert len(breaches) == 2
    assert breaches[0].startswith("deft_tune.training.loop imports deft_tune.results.report: ")
    assert breaches[1].startswith("deft_tune.training.loop imports ray: only search/")


def test_the_top_holds_at_most_ten_plain_modules():
    plain = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(plain) <= MAX_TOP_MODULES, plain
