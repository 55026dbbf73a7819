"""Atomic writes: nothing half-written, unique temp names, the user's umask; output checks."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading

import pytest

from deft_tune.errors import ConfigError, DiskFullError
from deft_tune.fileio import atomic_write, atomic_write_text, check_output_dir, check_output_file


def test_a_failed_write_leaves_neither_file_nor_temp(tmp_path):
    target = tmp_path / "out.txt"

    def fail(tmp: str) -> None:
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_a_write_that_meets_enospc_is_one_line_and_the_previous_file_stays(tmp_path):
    target = tmp_path / "last.pt"
    target.write_text("the previous checkpoint")

    def full(tmp: str) -> None:
        open(tmp, "w").write("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError) as caught:
        atomic_write(target, full)
    message = str(caught.value)
    assert f"cannot write last.pt in {tmp_path}: no space left" in message
    assert "the previous last.pt is intact" in message and "\n" not in message
    assert target.read_text() == "the previous checkpoint" and list(tmp_path.iterdir()) == [target]


def test_a_write_that_fills_a_real_disk_is_one_line_also_without_an_errno(small_disk):
    import torch

    disk = small_disk(1 << 20)
    (disk / "notes.txt").write_text("kept")
    with pytest.raises(DiskFullError, match=f"cannot write notes.txt in {disk}: no space"):
        atomic_write_text(disk / "notes.txt", "x" * (2 << 20))
    with pytest.raises(DiskFullError, match="cannot write big.pt"):  # torch: "unexpected pos"
        atomic_write(disk / "big.pt", lambda tmp: torch.save(torch.zeros(1 << 19), tmp))
    assert (disk / "notes.txt").read_text() == "kept" and len(list(disk.iterdir())) == 1


def test_files_get_the_permissions_of_a_plain_open(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x", durable=True)
    with open(tmp_path / "b.txt", "w") as handle:
        handle.write("x")
    mode = stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "b.txt").st_mode)


def test_concurrent_writers_of_one_path_never_collide(tmp_path):
    target = tmp_path / "shared.txt"
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        start.wait()
        try:
            for _ in range(20):
                atomic_write_text(target, f"writer {i}\n" * 100)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    lines = set(target.read_text().splitlines())
    assert len(lines) == 1  # one writer's whole content, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["shared.txt"]


def test_output_checks_refuse_folders_and_files_in_the_way(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="--out .*dir is a folder: give a file path"):
        check_output_file(tmp_path / "dir", "--out")
    with pytest.raises(ConfigError, match="file is a file, not a folder"):
        check_output_file(tmp_path / "file" / "x.yaml", "--out")
    with pytest.raises(ConfigError, match="--out .*file is a file: give a folder"):
        check_output_dir(tmp_path / "file", "--out")
    assert check_output_file(tmp_path / "new" / "x.yaml", "--out") == tmp_path / "new" / "x.yaml"
    assert not (tmp_path / "new").exists()  # checking creates nothing


_UMASK_SCRIPT = """
import os, sys
os.umask(0o022)  # before deft_tune reads it
from deft_tune.data.dsprites import DSprites
from tests.doubles import SMALL_DSPRITES_SIZES
DSprites.factor_sizes = SMALL_DSPRITES_SIZES  # the small grid, as the small_dsprites fixture
from deft_tune.cli import main
for argv in (
    ["data", "show", "dsprites_full", "--out", "dsprites.png"],
    ["ifp", "dsprites_full", "--smoke-test", "--out", "ifp"],
    ["train", "--config", "run.yaml", "--out", "run", "--no-progress"],
):
    assert main(argv) == 0, argv
"""

_RUN = """
data: {name: dsprites_full}
model: {groups: 1, latents_per_group: 2, encoder_width: 4, decoder_width: 4}
schedule: {stages: [{beta: 1}]}
training: {steps: 4, batch_size: 8, checkpoint_interval: 2}
evaluation: {interval: 2, probe_size: 32, metrics: []}
"""


@pytest.mark.slow
def test_what_the_commands_write_gets_the_users_umask(tmp_path):
    # The files a new user's first commands write (a PNG, the annealing test's outputs, a run
    # folder) come out 0644 under umask 022, not the 0600 of a temporary file.
    from tests import REPO, scaled

    (tmp_path / "run.yaml").write_text(_RUN)
    env = {**os.environ, "DEFT_TUNE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-c", _UMASK_SCRIPT],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=scaled(600),
    )
    written = [
        p for folder in ("ifp", "run") for p in (tmp_path / folder).rglob("*") if p.is_file()
    ]
    written.append(tmp_path / "dsprites.png")
    assert {"ifp.parquet", "config.yaml", "model.pt", "last.pt"} <= {p.name for p in written}
    modes = {
        p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in written
    }
    assert set(modes.values()) == {"0o644"}, modes
