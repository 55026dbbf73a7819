"""Reading the benchmarks' committed JSON files (campaign ledger, unit files): a file that cannot
be parsed or is not an object is one ConfigError line naming it and how to fix it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deft_tune.errors import ConfigError


def read_json_object(path: Path, what: str, fix: str) -> dict[str, Any]:
    """``path``'s JSON object; ``what`` names the file in the error, ``fix`` says what to do."""
    try:
        found = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc}): {fix}") from None
    if not isinstance(found, dict):
        raise ConfigError(f"{what} {path} is not a JSON object: {fix}")
    return found
