"""deft-tune's test suite; its folders mirror the package (tests/search/space/ tests
deft_tune/search/space/). Shared doubles live in tests/doubles.py."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the repository root
