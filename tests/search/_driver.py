"""`deft-tune search` as a separate driver process, training on the tests' Squares data.

Usage: python _driver.py SEARCH-ARGS...   (the arguments of `deft-tune search`)
Parses them with the real CLI parser and runs the real runner; only the data set differs.
"""

from __future__ import annotations

import sys

from _search_support import Squares

from deft_tune.cli import build_parser
from deft_tune.cli.search import options_from_args
from deft_tune.search.runner import main_search

if __name__ == "__main__":
    args = build_parser().parse_args(["search", *sys.argv[1:]])
    sys.exit(main_search(options_from_args(args), data_factory=Squares))
