"""What `deft-tune launch` does: check, bring the cluster up, submit, follow, ask about jobs.

Everything a user can get wrong (the cluster file, the space, storage and tracking for the
cluster's size) is checked before a cluster is brought up or a job submitted.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from deft_tune.errors import ConfigError
from deft_tune.search.cluster.files import ClusterFile, load_cluster_file
from deft_tune.search.cluster.jobs import (
    JobClient,
    SearchJob,
    bring_up,
    bring_up_commands,
    dashboard_tunnel,
)
from deft_tune.search.cluster.resources import is_local_path, static_resource_problems
from deft_tune.search.options import SearchOptions, prepare_space

Out = Callable[[str], Any]


def check_cluster(
    path: str | None, storage: str | None, tracking_uri: str | None, *, for_job: bool
) -> ClusterFile | None:
    """The validated launcher file (None without --cluster); refuses what cannot work on it."""
    if path is None:
        return None
    cluster = load_cluster_file(path)
    if cluster.kind != "launcher":
        raise ConfigError(
            f"--cluster {path} is a KubeRay {cluster.kind}, not launcher YAML: "
            "`kubectl apply -f` it, port-forward the head's port 8265 and pass "
            "--address http://127.0.0.1:8265"
        )
    if not for_job:
        problems = static_resource_problems(storage, tracking_uri, cluster.max_nodes)
        if problems:
            raise ConfigError(
                f"--cluster {path} has up to {cluster.max_nodes} nodes: " + "; ".join(problems)
            )
    return cluster


def prepare(working_dir: str, options: SearchOptions, search_args: tuple[str, ...]) -> SearchJob:
    """The job, once the space and the overrides are valid (here, not minutes later on the
    cluster) and the storage path means the same on every node."""
    prepare_space(options)
    storage, tracking_uri = options.storage, options.tracking_uri
    if (
        storage is not None
        and is_local_path(storage)
        and not PurePosixPath(storage.removeprefix("file://")).is_absolute()
    ):
        raise ConfigError(
            f"--storage {storage} is relative: the job runs in a folder Ray makes "
            "on the cluster; give an absolute path that every node mounts (NFS) "
            "or s3://BUCKET/PATH, gs://BUCKET/PATH"
        )
    return SearchJob.create(
        working_dir,
        options.space,
        storage=storage,
        tracking_uri=tracking_uri,
        search_args=search_args,
    )


def dry_run_lines(
    cluster: ClusterFile | None, address: str | None, port: int, job: SearchJob
) -> list[str]:
    lines = ["# deft-tune launch --dry-run: checked; these would run (nothing was started)"]
    if cluster is not None:
        lines += bring_up_commands(cluster.path, port)
        address = f"http://127.0.0.1:{port}"
    return [*lines, job.submit_command(_required(address))]


@contextmanager
def job_server(
    cluster: ClusterFile | None, address: str | None, port: int, *, up: bool
) -> Iterator[str]:
    """The job server's address: ``address``, or a tunnel to the launcher cluster's head."""
    if cluster is None:
        yield _required(address)
        return
    if up:
        bring_up(cluster.path)
    with dashboard_tunnel(cluster.path, port) as url:
        yield url


def _required(address: str | None) -> str:
    if address is None:  # the CLI asks for exactly one of --cluster and --address
        raise ConfigError("give --cluster FILE or --address http://HEAD:8265")
    return address


def submit(
    cluster: ClusterFile | None,
    address: str | None,
    port: int,
    job: SearchJob,
    *,
    follow: bool,
    out: Out,
    write: Out,
) -> int:
    """Submit the job, print its id, stream its log; 0 if it succeeded, 1 if not."""
    where = f"--cluster {cluster.path}" if cluster is not None else f"--address {address}"
    with job_server(cluster, address, port, up=True) as url:
        client = JobClient(url)
        job_id = client.submit(job)
        out(f"submitted job {job_id} to {url}")
        out(
            f"  watch: deft-tune launch {where} --logs {job_id}   "
            f"(--status {job_id}, --stop {job_id})"
        )
        if not follow:
            return 0
        try:
            status = client.follow(job_id, write)
        except KeyboardInterrupt:
            out(
                f"job {job_id} goes on running; follow it with: deft-tune launch {where} "
                f"--logs {job_id}, stop it with --stop {job_id}"
            )
            return 130
    out(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def manage(
    cluster: ClusterFile | None, address: str | None, port: int, args: argparse.Namespace, out: Out
) -> int:
    """--status, --logs or --stop JOB."""
    with job_server(cluster, address, port, up=False) as url:
        client = JobClient(url)
        if args.status:
            info = client.status(args.status)
            out(
                f"job {args.status}: {info['status']}"
                + (f" ({info['message']})" if info["message"] else "")
            )
            out(f"  entrypoint: {info['entrypoint']}")
            return 0
        if args.logs:
            status = client.follow(args.logs, lambda chunk: print(chunk, end="", flush=True))
            out(f"job {args.logs}: {status}")
            return 0
        stopped = client.stop(args.stop)
        out(f"job {args.stop}: " + ("stop requested" if stopped else "was not running"))
        return 0
