"""A local ``mlflow server`` for searches with many concurrent trials (``--mlflow-server``).

Many processes writing one sqlite file lock each other; a server in front of the same store
(``<folder>/mlflow.db``, artifacts in ``<folder>/mlartifacts``) serialises them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from deft_tune.errors import TrackingError
from deft_tune.search.tracking.layout import default_tracking_uri

__all__ = ["MlflowServer", "free_port"]

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on loopback as a child process; a context manager that stops it.

    The store is ``<directory>/mlflow.db`` with artifacts under ``<directory>/mlartifacts``, so
    the same folder works with or without the server. It runs in its own process group so that
    stopping it also stops the web workers it forks.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        port: int | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 90.0,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.log_path = self.directory / "mlflow-server.log"

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MlflowServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            default_tracking_uri(self.directory),
            "--artifacts-destination",
            str(self.directory / "mlartifacts"),
        ]
        # The server's job runner (GenAI scoring, trace archival) forks a dozen consumers and
        # slows start-up; a tracking store for trials does not need it.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.log_path, "ab") as sink:
            self.process = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self._wait_ready()
        log.info("mlflow server on %s (log: %s)", self.uri, self.log_path)
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise TrackingError(
                    f"mlflow server exited with code {self.process.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise TrackingError(
            f"mlflow server did not answer on {self.uri} within "
            f"{self.startup_timeout:.0f} s; see {self.log_path}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
