"""What every node of a multi-node search must share: trial storage and the tracking store.

:func:`require_shared_resources`: a search on more than one node needs trial storage and a
tracking store that every node reaches; a local path is accepted only where every node sees it,
which a task pinned to each node checks (:func:`probe_nodes`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import ray

from deft_tune.errors import ConfigError
from deft_tune.search.tracking.layout import DEFAULT_STORE

__all__ = [
    "NodeReport",
    "alive_node_count",
    "probe_nodes",
    "require_shared_resources",
    "static_resource_problems",
]

# Tracking URIs whose store is a file on one machine (MLflow's default is sqlite in the cwd).
_LOCAL_STORE_SCHEMES = ("", "file", "sqlite")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")


@dataclass(frozen=True)
class NodeReport:
    """What one node saw: the storage marker file, and an answer from the tracking server."""

    node: str
    sees_storage: bool
    reaches_tracking: bool


Probe = Callable[[str | None, str | None], list[NodeReport]]


def is_local_path(storage: str) -> bool:
    """True for a plain path or ``file://``; False for s3://, gs://, hdfs:// and the like."""
    scheme = urlparse(storage).scheme
    return scheme in ("", "file") or len(scheme) == 1  # "C:\\..." parses with scheme "c"


def static_resource_problems(
    storage: str | None, tracking_uri: str | None, num_nodes: int
) -> list[str]:
    """What is wrong for ``num_nodes`` nodes without asking the nodes (see below)."""
    if num_nodes <= 1:
        return []
    problems = []
    if storage is None:
        problems.append(
            f"a search on {num_nodes} nodes needs --storage that every node reaches: "
            "s3://BUCKET/PATH, gs://BUCKET/PATH or a path on an NFS mount present on every node"
        )
    scheme = urlparse(tracking_uri or "").scheme
    if tracking_uri is None or scheme in _LOCAL_STORE_SCHEMES or len(scheme) == 1:
        problems.append(
            f"tracking URI {tracking_uri or DEFAULT_STORE + ' (the default)'} is a "
            f"file on one node; on {num_nodes} nodes use --tracking-uri http://HOST:5000 of an "
            "`mlflow server` every node reaches (or a database URI such as postgresql://...)"
        )
    return problems


def require_shared_resources(
    storage: str | None, tracking_uri: str | None, num_nodes: int, *, probe: Probe | None = None
) -> None:
    """Refuse storage or tracking that not every node of a multi-node cluster can use.

    Call it after connecting to the cluster, with the number of alive nodes. A remote storage URI
    or a remote tracking server is trusted; a local storage path (NFS, or one machine) and a
    loopback tracking URL are accepted only if ``probe`` (by default: a task pinned to every
    alive Ray node, :func:`probe_nodes`) reports that every node sees them.
    """
    problems = static_resource_problems(storage, tracking_uri, num_nodes)
    if num_nodes > 1:
        local_storage = storage if storage is not None and is_local_path(storage) else None
        loopback_url = tracking_uri if _is_loopback_http(tracking_uri) else None
        if local_storage is not None or loopback_url is not None:
            reports = (probe or probe_nodes)(local_storage, loopback_url)
            problems += _probe_problems(reports, local_storage, loopback_url)
    if problems:
        raise ConfigError("; ".join(problems))


def _is_loopback_http(uri: str | None) -> bool:
    parsed = urlparse(uri or "")
    return parsed.scheme in ("http", "https") and parsed.hostname in _LOOPBACK_HOSTS


def _probe_problems(
    reports: Sequence[NodeReport], storage: str | None, url: str | None
) -> list[str]:
    problems = []
    blind = [r.node for r in reports if storage is not None and not r.sees_storage]
    if blind:
        problems.append(
            f"--storage {storage} is a local path that nodes {', '.join(blind)} do not see; use "
            "s3://BUCKET/PATH, gs://BUCKET/PATH or a path on an NFS mount present on every node"
        )
    cut_off = [r.node for r in reports if url is not None and not r.reaches_tracking]
    if cut_off:
        problems.append(
            f"tracking URI {url} is loopback and nodes {', '.join(cut_off)} cannot reach it; "
            "start `mlflow server --host 0.0.0.0` on a host every node reaches and pass "
            "--tracking-uri http://THAT-HOST:5000"
        )
    return problems


def alive_node_count() -> int:
    """Alive nodes of the connected Ray cluster."""
    return sum(1 for node in ray.nodes() if node["Alive"])


def probe_nodes(
    storage: str | None, tracking_uri: str | None, timeout: float = 120.0
) -> list[NodeReport]:
    """Run :func:`check_node` on every alive node of the connected cluster (0 CPUs each)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    marker, made = None, []
    if storage is not None:
        folder = Path(storage.removeprefix("file://")).expanduser().resolve()
        made = [p for p in (folder, *folder.parents) if not p.exists()]  # removed afterwards
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / f".deft-{token}"
        marker.write_text(token)
    try:
        task = ray.remote(num_cpus=0, max_retries=0)(check_node)
        nodes = [n for n in ray.nodes() if n["Alive"]]
        refs = [
            task.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(marker) if marker else None, token, tracking_uri)
            for n in nodes
        ]
        answers = ray.get(refs, timeout=timeout)
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
        for folder in made:  # deepest first; the search makes them again if it runs
            with contextlib.suppress(OSError):
                folder.rmdir()
    return [
        NodeReport(f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})", *answer)
        for n, answer in zip(nodes, answers)
    ]


def check_node(marker: str | None, token: str, tracking_uri: str | None) -> tuple[bool, bool]:
    """On one node: does the marker hold the token, does the tracking server answer /health?"""
    import urllib.request

    sees = True
    if marker is not None:
        try:
            sees = Path(marker).read_text() == token
        except OSError:
            sees = False
    reaches = True
    if tracking_uri is not None:
        try:
            with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=10) as r:
                reaches = r.status == 200
        except OSError:
            reaches = False
    return sees, reaches
