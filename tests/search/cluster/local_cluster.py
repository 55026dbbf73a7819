"""A multi-node Ray cluster on 127.0.0.1, started the way a user starts one: `ray start`.

Each node is one `ray start --block` process in its own process group and its own temp dir;
Ray's daemons (GCS, raylet, dashboard, agents) and the worker processes the raylet forks stay
in that group, so killing the group is losing the machine, and nothing else on this host (other
Ray sessions included) is touched. `ray stop` is never used: it kills every Ray on the host.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests import scaled

OBJECT_STORE_BYTES = 100 * 1024 * 1024
# The `ray` script of this interpreter, also when its bin folder is not on PATH (a venv).
_BESIDE = Path(sys.executable).with_name("ray")
RAY = str(_BESIDE) if _BESIDE.exists() else "ray"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Node:
    name: str
    process: subprocess.Popen
    temp_dir: Path
    log: Path

    def kill(self) -> None:
        """SIGKILL the node's whole process group, as if its machine were gone."""
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=scaled(30))

    def signal(self, number: int) -> None:
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:
            pass


@dataclass
class LocalCluster:
    """A head (no CPUs: trials never land there) and worker nodes, all on 127.0.0.1."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)  # e.g. RAY_AUTH_MODE for every node
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    nodes: list[Node] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def job_server(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start_head(self) -> Node:
        return self._start(
            "head",
            [
                "--head",
                "--port",
                str(self.gcs_port),
                "--num-cpus",
                "0",
                "--include-dashboard",
                "true",
                "--dashboard-host",
                "127.0.0.1",
                "--dashboard-port",
                str(self.dashboard_port),
                "--ray-client-server-port",
                str(free_port()),
            ],
        )

    def add_node(self, name: str, num_cpus: int) -> Node:
        return self._start(name, ["--address", self.address, "--num-cpus", str(num_cpus)])

    def _start(self, name: str, args: list[str]) -> Node:
        # Unix socket paths must stay under ~100 characters: short temp dirs under /tmp.
        temp_dir = Path(tempfile.mkdtemp(prefix=f"dt-{name}-", dir="/tmp"))
        log = self.root / f"{name}.log"
        command = [
            RAY,
            "start",
            "--block",
            *args,
            "--temp-dir",
            str(temp_dir),
            "--node-ip-address",
            "127.0.0.1",
            "--num-gpus",
            "0",
            "--object-store-memory",
            str(OBJECT_STORE_BYTES),
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--dashboard-agent-grpc-port",
            str(free_port()),
            "--metrics-export-port",
            str(free_port()),
            "--runtime-env-agent-port",
            str(free_port()),
        ]
        with log.open("w") as sink:
            process = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        node = Node(name, process, temp_dir, log)
        self.nodes.append(node)
        return node

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM every node's group at once, SIGKILL what is left after ``grace`` seconds
        (stragglers of a group too), and remove the nodes' temp dirs."""
        for node in self.nodes:
            node.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for node in self.nodes:
            try:
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for node in self.nodes:
            node.signal(signal.SIGKILL)
            node.process.wait(timeout=scaled(30))
            shutil.rmtree(node.temp_dir, ignore_errors=True)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    """``predicate()`` once true; TimeoutError after ``timeout`` seconds, scaled by the load."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")
