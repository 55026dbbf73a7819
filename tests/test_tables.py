"""The one table formatter, Markdown tables, and generated blocks inside documents."""

from __future__ import annotations

import pytest

from deft_tune.errors import ConfigError
from deft_tune.tables import format_table, markdown_table, write_block


def test_text_table_aligns_columns_and_shortens_values():
    rows = [
        {"trial": "a", "objective": 0.123456, "betas": [70.0, 1.0]},
        {"trial": "bb", "objective": None},
    ]
    assert format_table(rows).splitlines() == [
        "trial  objective  betas",
        "a      0.1235     [70, 1]",
        "bb     -          -",
    ]
    assert format_table([]) == "(no rows)"


def test_markdown_table_keeps_strings_and_formats_numbers():
    text = markdown_table([{"rule": "**ifp**", "steps": 1200, "regret": 0.012345}], digits=3)
    assert text.splitlines() == [
        "| rule | steps | regret |",
        "|---|---|---|",
        "| **ifp** | 1200 | 0.0123 |",
    ]


def test_write_block_replaces_only_its_block(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\nhand text\n\n<!-- t:begin -->\nold\n<!-- t:end -->\n\ntail\n")
    write_block(doc, "t", "new\ntable")
    assert doc.read_text() == (
        "# Title\n\nhand text\n\n<!-- t:begin -->\nnew\ntable\n<!-- t:end -->\n\ntail\n"
    )
    write_block(doc, "other", "x")
    assert doc.read_text().endswith("tail\n\n<!-- other:begin -->\nx\n<!-- other:end -->\n")
    write_block(tmp_path / "fresh.md", "t", "y")
    assert (tmp_path / "fresh.md").read_text() == "<!-- t:begin -->\ny\n<!-- t:end -->\n"


def test_a_strict_write_refuses_a_document_without_its_block_and_leaves_it(tmp_path):
    doc = tmp_path / "notes.md"
    doc.write_text("# Notes\n")
    with pytest.raises(ConfigError, match="notes.md has no t block: add the lines <!-- t:begin"):
        write_block(doc, "t", "x", strict=True)
    assert doc.read_text() == "# Notes\n"
    write_block(tmp_path / "new.md", "t", "y", strict=True)  # a new file is fine
    assert (tmp_path / "new.md").read_text() == "<!-- t:begin -->\ny\n<!-- t:end -->\n"
