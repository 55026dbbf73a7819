"""The search as a Ray job: the command, the job client, and the launcher's ``ray up``.

- :class:`SearchJob` is ``deft-tune search --address auto ...`` with a project folder as its
  working directory (uploaded by Ray, .gitignore honoured) and the tracking URI in every worker's
  environment;
- :class:`JobClient` wraps ``ray.job_submission.JobSubmissionClient``: submit, follow the log,
  status, stop; its failures become one :class:`ClusterError` line;
- :func:`bring_up` runs ``ray up`` unless the launcher already has a head, and
  :func:`dashboard_tunnel` holds ``ray dashboard`` (an SSH port-forward to the head's job
  server) open while the job is submitted and followed.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deft_tune.errors import ClusterError, ConfigError

# Never uploaded with the working directory (on top of what .gitignore already excludes).
_EXCLUDES = [".git", ".venv", "**/__pycache__", "mlruns", "mlflow.db", "mlartifacts", "runs"]
DASHBOARD_PORT = 8265


@dataclass(frozen=True)
class SearchJob:
    """``deft-tune search`` as a Ray job; ``space`` is relative to ``working_dir``."""

    working_dir: Path
    space: str
    storage: str | None = None
    tracking_uri: str | None = None
    search_args: tuple[str, ...] = ()  # passed through: --name, --resume, --gpus-per-trial ...

    @classmethod
    def create(cls, working_dir: str | Path, space: str | Path, **options: Any) -> SearchJob:
        """Check that the space lies inside the uploaded folder and make its path relative."""
        root = Path(working_dir).resolve()
        if not root.is_dir():
            raise ConfigError(f"--working-dir {working_dir}: no such folder")
        space_path = Path(space).resolve()
        if not space_path.is_file():
            raise ConfigError(f"--space {space}: no such file")
        if not space_path.is_relative_to(root):
            raise ConfigError(
                f"--space {space} lies outside {root}, the folder the job uploads; "
                "copy it into search_spaces/ or pass --working-dir"
            )
        return cls(root, space_path.relative_to(root).as_posix(), **options)

    def command(self) -> list[str]:
        """The search command the job runs; ``--address auto`` joins the job's cluster."""
        command = [
            "python",
            "-m",
            "deft_tune",
            "search",
            "--address",
            "auto",
            "--space",
            self.space,
        ]
        for flag, value in (("--storage", self.storage), ("--tracking-uri", self.tracking_uri)):
            if value is not None:
                command += [flag, value]
        return command + list(self.search_args)

    def entrypoint(self) -> str:
        return shlex.join(self.command())

    def runtime_env(self) -> dict[str, Any]:
        """The project as working directory; the tracking URI reaches every worker process."""
        env_vars = {"PYTHONUNBUFFERED": "1"}
        if self.tracking_uri is not None:
            env_vars["MLFLOW_TRACKING_URI"] = self.tracking_uri
        return {
            "working_dir": str(self.working_dir),
            "excludes": list(_EXCLUDES),
            "env_vars": env_vars,
        }

    def submit_command(self, address: str) -> str:
        """The equivalent ``ray job submit`` line, for --dry-run and for users to copy."""
        env = {k: v for k, v in self.runtime_env().items() if k != "working_dir"}
        return shlex.join(
            [
                "ray",
                "job",
                "submit",
                "--address",
                address,
                "--working-dir",
                str(self.working_dir),
                "--runtime-env-json",
                json.dumps(env),
                "--",
                *self.command(),
            ]
        )


class JobClient:
    """Submit, follow, inspect and stop jobs on the Ray cluster whose job server is ``address``."""

    def __init__(self, address: str) -> None:
        from ray.job_submission import JobSubmissionClient

        self.address = address
        with self._errors("reach the job server"):
            self._client = JobSubmissionClient(address)

    def submit(self, job: SearchJob) -> str:
        with self._errors("submit the search"):
            return self._client.submit_job(
                entrypoint=job.entrypoint(),
                runtime_env=job.runtime_env(),
                metadata={"deft-tune": job.space},
            )

    def follow(self, job_id: str, write: Callable[[str], Any]) -> str:
        """Write the job's log (from the start) until the job ends; its final status."""

        async def tail() -> None:
            async for chunk in self._client.tail_job_logs(job_id):
                write(chunk)

        with self._errors(f"follow job {job_id}"):
            asyncio.run(tail())
            return self.status(job_id)["status"]

    def status(self, job_id: str) -> dict[str, Any]:
        with self._errors(f"find job {job_id}"):
            info = self._client.get_job_info(job_id)
        return {
            "job_id": job_id,
            "status": str(info.status.value),
            "message": info.message,
            "entrypoint": info.entrypoint,
            "start_time": info.start_time,
            "end_time": info.end_time,
        }

    def stop(self, job_id: str) -> bool:
        with self._errors(f"stop job {job_id}"):
            return bool(self._client.stop_job(job_id))

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        from ray.exceptions import AuthenticationError

        try:
            yield
        except AuthenticationError:
            # Ray >= 2.5x heads started where a token exists (~/.ray/auth_token) require it.
            raise ClusterError(
                f"the Ray cluster at {self.address} requires a token: export "
                "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<the head's token> (or "
                "RAY_AUTH_TOKEN_PATH=FILE)"
            ) from None
        except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
            raise ClusterError(
                f"cannot {what} on {self.address}: {_first_line(exc)}; is the "
                "cluster up (ray start --head / ray up) and --address its "
                "dashboard, http://HEAD:8265?"
            ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


# --- the Ray cluster launcher -------------------------------------------------------------------


def head_is_up(cluster_file: Path) -> bool:
    """Whether the launcher finds a head node for this cluster file (``ray get-head-ip``)."""
    found = subprocess.run(
        ["ray", "get-head-ip", str(cluster_file)], capture_output=True, text=True
    )
    return found.returncode == 0 and bool(found.stdout.strip())


def bring_up(cluster_file: Path) -> None:
    """``ray up`` the cluster unless its head is already up (its output goes to the terminal)."""
    if head_is_up(cluster_file):
        return
    done = subprocess.run(["ray", "up", "-y", str(cluster_file)])
    if done.returncode != 0:
        raise ClusterError(
            f"ray up {cluster_file} failed (exit {done.returncode}): see its "
            "output above (credentials, quotas, the CHANGE lines of the file)"
        )


def bring_up_commands(cluster_file: Path, port: int) -> list[str]:
    """What :func:`bring_up` and :func:`dashboard_tunnel` run, for --dry-run."""
    return [
        f"ray up -y {shlex.quote(str(cluster_file))}   "
        f"# skipped if `ray get-head-ip {shlex.quote(str(cluster_file))}` finds a head",
        f"ray dashboard {shlex.quote(str(cluster_file))} --port {port}   "
        f"# tunnel to the head's job server, open while the job is followed",
    ]


@contextmanager
def dashboard_tunnel(cluster_file: Path, port: int, timeout: float = 60.0) -> Iterator[str]:
    """Hold ``ray dashboard`` open; yields the local job-server address."""
    tunnel = subprocess.Popen(
        ["ray", "dashboard", str(cluster_file), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_port(port, tunnel, timeout)
        yield f"http://127.0.0.1:{port}"
    finally:
        tunnel.terminate()
        try:
            tunnel.wait(timeout=10)
        except subprocess.TimeoutExpired:
            tunnel.kill()


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ClusterError(
                f"ray dashboard exited ({process.returncode}): "
                f"{(process.stderr.read() if process.stderr else '').strip()[-300:]}"
            )
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise ClusterError(
        f"ray dashboard opened no tunnel on port {port} in {timeout:.0f} s; "
        "is the head reachable over SSH?"
    )
