"""The documents cite only what the repository holds: every test they name exists, every
repository path they quote in backticks is there, and every command they show runs as shown."""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import shlex

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


_BLOCK = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.S)
_SHELL = {">", ">>", "|", "&&", "&", "2>&1"}  # what follows is the shell's, not deft-tune's


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(subcommand path, its parser) for the parser and every subcommand below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _shown_commands():
    """(document, line, argv) of every `deft-tune ...` line in the documents' code blocks;
    usage synopses ("(--a | --b)", "[--c X]") are not commands."""
    for doc in DOCS:
        for block in _BLOCK.findall(doc.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if not line.startswith("deft-tune "):
                    continue
                argv = shlex.split(line)[1:]
                if any(t.startswith(("(", "[")) for t in argv):
                    continue
                cut = next((i for i, t in enumerate(argv) if t in _SHELL), len(argv))
                yield doc.name, line, argv[:cut]


def test_every_command_the_docs_show_parses_without_old_spellings():
    from deft_tune.cli import build_parser

    parser = build_parser()
    parsers = dict(_commands(parser))
    shown, wrong = 0, []
    for doc, line, argv in _shown_commands():
        shown += 1
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(argv)
        except SystemExit as exc:
            if exc.code:
                wrong.append(f"{doc}: {line}: {err.getvalue().strip()}")
                continue
        path = max((p for p in parsers if tuple(argv[: len(p)]) == p), key=len)
        hidden = {
            option
            for action in parsers[path]._actions
            if action.help == argparse.SUPPRESS
            for option in action.option_strings
        }
        old = [t for t in argv if t.split("=")[0] in hidden]
        if old or err.getvalue():
            wrong.append(f"{doc}: {line}: an old spelling {old} {err.getvalue().strip()}")
    assert shown > 30 and not wrong, wrong


def test_the_deft_modes_block_is_what_the_committed_unit_files_give():
    from benchmarks import deft_modes

    rows = deft_modes.read_rows()
    text = f"{deft_modes.header(rows)}\n\n{deft_modes.table(rows)}" if rows else "No unit file yet."
    doc = (REPO / "docs" / "training.md").read_text()
    block = doc.split("<!-- deft-modes:begin -->\n", 1)[1].split("\n<!-- deft-modes:end -->", 1)[0]
    assert block == text.strip(), "regenerate it: python -m benchmarks.deft_modes table --write"
