"""Session-wide services for the search tests: one local Ray and one `mlflow server`.

Starting either takes seconds, so every test that needs one shares it. Both are torn down at the
end of the session; the server runs in its own process group and is stopped with it.
"""

from __future__ import annotations

import socket

import pytest


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` bound to 127.0.0.1 on a free port; yields the MlflowServer."""
    from deft_tune.search.tracking import MlflowServer

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
