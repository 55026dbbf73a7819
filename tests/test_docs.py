"""The documents cite only what the repository holds: every test they name exists, and every
repository path they quote in backticks is there."""

from __future__ import annotations

import ast
import re

from tests import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_TEST = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
_PATH = re.compile(r"`((?:deft_tune|tests|docs|benchmarks|shared)/[\w./-]+)`")


def _functions(path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_test_the_docs_cite_exists():
    missing = []
    for doc in DOCS:
        for file, name in _TEST.findall(doc.read_text()):
            path = REPO / file
            if not path.is_file() or name not in _functions(path):
                missing.append(f"{doc.name}: {file}::{name}")
    assert not missing, missing


def test_every_repository_path_the_docs_quote_exists():
    missing = []
    for doc in DOCS:
        for quoted in _PATH.findall(doc.read_text()):
            path = quoted.rstrip("/.")
            if any(c in path for c in "*<>") or not path:
                continue  # a pattern, not a path
            if not (REPO / path).exists():
                missing.append(f"{doc.name}: {quoted}")
    assert not missing, missing
