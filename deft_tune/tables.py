"""Tables for terminals and Markdown, and generated blocks inside documents.

One formatter for every table the package and its benchmarks print or write: rows are dicts
(column -> value); floats are shortened, lists shown in brackets, missing values as "-".
Generated Markdown lives between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` markers so
that a command can rewrite its block of a hand-written document and nothing else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deft_tune.errors import ConfigError
from deft_tune.fileio import atomic_write_text

__all__ = ["check_block", "format_table", "markdown_table", "union_keys", "write_block"]


def union_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every column of ``rows`` in first-seen order."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


def cell(value: Any, digits: int = 4) -> str:
    """A value as table text: floats to ``digits`` significant digits, lists in brackets."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(cell(v, digits) for v in value) + "]"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Plain aligned text for a terminal; "(no rows)" when there are none."""
    if not rows:
        return "(no rows)"
    columns = list(columns or union_keys(rows))
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, digits: int = 4
) -> str:
    """A GitHub Markdown table; strings are taken as they are (so they may hold Markdown)."""
    columns = list(columns or union_keys(rows))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c), digits) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def check_block(path: str | os.PathLike, name: str, what: str = "") -> None:
    """ConfigError when the document at ``path`` exists without the ``name`` block's markers:
    a ``--write-doc`` there would change a document no one marked for it (a new file is fine)."""
    path = Path(path)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    what = f"{what} " if what else ""
    try:
        doc = path.read_text() if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{what}{path}: cannot read it as text; give a Markdown file") from None
    if doc is not None and not (begin in doc and end in doc):
        raise ConfigError(
            f"{what}{path} has no {name} block: add the lines {begin} and {end} where it "
            "goes, or give a new file"
        )


def write_block(path: str | os.PathLike, name: str, text: str, *, strict: bool = False) -> Path:
    """Replace the ``name`` block of the document at ``path`` with ``text`` (atomically).

    A document without the file is created with the block; one without the block gets it
    appended, or (``strict``) is refused (:func:`check_block`).
    """
    path = Path(path)
    if strict:
        check_block(path, name)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    doc = path.read_text() if path.exists() else ""
    if begin in doc and end in doc:
        pattern = f"{re.escape(begin)}.*?{re.escape(end)}"
        doc = re.sub(pattern, lambda _: block, doc, count=1, flags=re.S)
    else:
        doc = f"{doc.rstrip()}\n\n{block}\n" if doc else f"{block}\n"
    return atomic_write_text(path, doc)
