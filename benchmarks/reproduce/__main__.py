"""``python -m benchmarks.reproduce`` (from the repository root): the same as run.py."""

import sys

from .driver import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m benchmarks.reproduce"))
