"""Fixtures shared by the whole suite.

- a private data-set cache for the session, and the small dSprites grid; tests marked `cuda`
  skip without CUDA;
- a small real filesystem to fill (a tmpfs, where mounting is allowed);
- one local Ray and one `mlflow server` on loopback for the session (each takes seconds to
  start, so every test that needs one shares it; both are torn down at the end);
- one recorded tiny search (real Ray, real MLflow store) that every test which only reads a
  finished search shares.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from types import SimpleNamespace

import pytest

from tests.doubles import SMALL_DSPRITES_SIZES, SmallGridDSprites, tiny_space


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip on a machine without CUDA."""
    needing = [item for item in items if item.get_closest_marker("cuda")]
    if not needing:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (benchmarks/gpu_check.py runs it on a GPU)")
    for item in needing:
        item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def deft_cache_dir(tmp_path_factory):
    """A private cache folder ($DEFT_TUNE_CACHE) for the session: tests never touch the user's."""
    path = tmp_path_factory.mktemp("deft-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("DEFT_TUNE_CACHE", str(path))
    yield path
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def deft_user_folders(tmp_path_factory):
    """Private per-user config and state folders (the seal key, search locks): tests never
    touch the user's."""
    patch = pytest.MonkeyPatch()
    for variable in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        patch.setenv(variable, str(tmp_path_factory.mktemp(variable.lower())))
    yield
    patch.undo()


@pytest.fixture
def small_disk(tmp_path):
    """Make a folder on a real filesystem of ``size`` bytes (a tmpfs), to fill up: a full disk
    as the user meets it. Mounting needs root; elsewhere the test is skipped (fileio's own
    test simulates ENOSPC, so the contract is still tested)."""
    mounted = []

    def make(size: int):
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
        done = subprocess.run(command, capture_output=True) if shutil.which("mount") else None
        if done is None or done.returncode != 0:
            pytest.skip("cannot mount a small tmpfs here (needs root)")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_dsprites(monkeypatch, tmp_path):
    """Shrink dSprites (and every variant) to SMALL_DSPRITES_SIZES; returns its cache folder.

    The full grid of 737,280 images takes seconds to render; tests use this one instead. The
    cache folder is fresh for each test.
    """
    from deft_tune.data.dsprites import DSprites
    from deft_tune.data.variants import DSpritesNoShape

    monkeypatch.setattr(DSprites, "factor_sizes", SMALL_DSPRITES_SIZES)
    monkeypatch.setattr(DSpritesNoShape, "factor_sizes", SMALL_DSPRITES_SIZES[1:])
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("DEFT_TUNE_CACHE", str(cache_dir))
    return cache_dir


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` bound to 127.0.0.1 on a free port; yields the MlflowServer."""
    from deft_tune.search.tracking.server import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    try:
        yield server
    finally:
        server.stop()
    # Stopping must take the whole process group down: the port is free again.
    with socket.socket() as sock:
        assert sock.connect_ex((server.host, server.port)) != 0, "mlflow server still listening"


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the session (2 CPUs, no dashboard); reused by in-process searches."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


@pytest.fixture(scope="session")
def recorded_search(tmp_path_factory, ray_session):
    """Four tiny trials on the small dSprites grid, two at a time, tracked in the embedded
    sqlite store: the search the read-only tests inspect. Each trial trains two replicas (seeds).
    ASHA is on; the IFP stopper is off, so at least the first trial runs to its end (its own
    tests are in test_stopping.py).

    Only tests that read the store (never write to it) may use it.
    """
    from deft_tune.search.options import SearchOptions
    from deft_tune.search.runner import run_search

    folder = tmp_path_factory.mktemp("recorded-search")
    space = tiny_space(
        folder / "tiny.yaml",
        trials=4,
        steps=40,
        interval=10,
        name="tinyx",
        ifp=False,
        replicas=2,
    )
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    options = SearchOptions(space=str(space), storage=str(folder / "runs"), tracking_uri=uri)
    lines: list[str] = []
    outcome = run_search(
        options, data_factory=SmallGridDSprites(str(folder / "cache")), out=lines.append
    )
    return SimpleNamespace(uri=uri, folder=folder, outcome=outcome, space=space, lines=lines)
