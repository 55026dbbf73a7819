"""`deft-tune search` as a separate driver process, training on the tests' Squares data.

Usage: python -m tests.search.driver SEARCH-ARGS...   (the arguments of `deft-tune search`;
the repository root on PYTHONPATH, see :func:`command`). Parses them with the real CLI parser and
runs the real runner; only the data set differs.
"""

from __future__ import annotations

import os
import sys

from deft_tune.cli import EXIT_USER_ERROR, build_parser
from deft_tune.cli.search import options_from_args
from deft_tune.errors import DeftError
from deft_tune.search.runner import main_search
from tests import REPO
from tests.doubles import Squares


def command(*search_args: str) -> list[str]:
    """The command line that runs this driver with ``search_args``."""
    return [sys.executable, "-m", "tests.search.driver", *search_args]


def environment() -> dict[str, str]:
    """The environment the driver needs: the repository root importable (for ``tests``)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


if __name__ == "__main__":
    args = build_parser().parse_args(["search", *sys.argv[1:]])
    try:
        sys.exit(main_search(options_from_args(args), data_factory=Squares))
    except DeftError as exc:  # as the CLI does (deft_tune.cli.main)
        print(f"deft-tune: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
