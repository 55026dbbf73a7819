"""A two-node Ray cluster on 127.0.0.1 and an `mlflow server` on loopback, for the module.

Ray 2.60 heads require a token when one exists on the machine (~/.ray/auth_token): the cluster
runs with its own token (RAY_AUTH_MODE=token), and every Ray client the tests start (the launch
CLI, `ray list nodes`) gets the same environment. The test process itself never imports a Ray
client, so its own Ray settings stay untouched.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import pytest

from tests import scaled
from tests.search.cluster.local_cluster import RAY, LocalCluster, wait_for

# Notice a lost node in ~3 s instead of Ray's default ~15-30 s (GCS health checks of raylets).
_FAST_FAILURE_DETECTION = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


class ClusterUnderTest:
    def __init__(self, cluster: LocalCluster, env: dict[str, str]) -> None:
        self.cluster, self.env = cluster, env
        self.mlflow = None  # the MlflowServer, once started

    def run(self, command: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, **kwargs)

    def alive_nodes(self) -> list[dict]:
        listed = self.run(
            [RAY, "list", "nodes", "--address", self.cluster.job_server, "--format", "json"],
            timeout=scaled(60),
        )
        try:
            nodes = json.loads(listed.stdout) if listed.returncode == 0 else []
        except json.JSONDecodeError:  # the state API answers before it has its first list
            return []
        return [n for n in nodes if n["state"] == "ALIVE"]

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        wait_for(
            lambda: len(self.alive_nodes()) == count,
            timeout,
            f"{count} alive Ray nodes",
            interval=1,
        )


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """Head (0 CPUs, job server) + node "w1" (2 CPUs) + `mlflow server` (``.mlflow``), started
    side by side (each takes tens of seconds on a busy machine); all stopped at the end, also on
    failure."""
    from deft_tune.search.tracking.server import MlflowServer

    root = tmp_path_factory.mktemp("ray-cluster")
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    ray_env = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        **_FAST_FAILURE_DETECTION,
    }
    cluster = LocalCluster(root, env=ray_env)
    under_test = ClusterUnderTest(cluster, {**os.environ, **ray_env})
    server = MlflowServer(root / "mlflow")
    try:
        cluster.start_head()
        cluster.add_node("w1", num_cpus=2)
        under_test.mlflow = server.start()
        under_test.wait_for_nodes(2)
        yield under_test
    finally:
        try:
            server.stop()
        finally:
            cluster.stop()
