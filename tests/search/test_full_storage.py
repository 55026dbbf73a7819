"""A search whose local --storage fills up stops in one line of its own (Ray's error lines for
the failed writes come before it), exit 2, instead of EOFError tracebacks from Tune's state."""

from __future__ import annotations

import subprocess

import pytest

from tests import scaled
from tests.doubles import tiny_space
from tests.search.driver import command, environment


@pytest.mark.slow
def test_a_search_on_a_full_disk_stops_in_one_line_naming_the_storage(tmp_path, small_disk):
    storage = small_disk(1 << 20)  # less than one trial's checkpoints
    space = tiny_space(tmp_path / "tiny.yaml", trials=2, name="full")
    done = subprocess.run(
        command("--space", str(space), "--storage", str(storage)),
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=scaled(300),
    )
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.endswith(
        f"search 'full' stopped: no space left on the device of --storage {storage}; free "
        "some space there and run it again under another --name"
    ), done.stderr[-3000:]
    assert "EOFError" not in done.stderr and "UnpicklingError" not in done.stderr
