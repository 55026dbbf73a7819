"""Cluster files: Ray cluster launcher YAML (checked against the launcher's own schema, shipped
in the ray wheel) and KubeRay ``ray.io/v1`` manifests (checked against the fields the operator
requires, :data:`~deft_tune.search.cluster.kuberay.KUBERAY_SCHEMAS`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import ray
import ray.autoscaler
import yaml

from deft_tune.errors import ConfigError
from deft_tune.search.cluster.kuberay import KUBERAY_SCHEMAS

log = logging.getLogger(__name__)

LAUNCHER_SCHEMA_PATH = Path(ray.autoscaler.__file__).parent / "ray-schema.json"


# --- cluster files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterFile:
    """A validated cluster file: ``kind`` is "launcher", "RayCluster" or "RayJob"."""

    path: Path
    kind: str
    body: dict[str, Any]

    @property
    def max_nodes(self) -> int:
        """The most nodes the cluster can have, head included."""
        if self.kind == "launcher":
            # Workers are capped per node type and, over all types, by the top-level max_workers.
            types = self.body.get("available_node_types", {})
            per_type = sum(
                t.get("max_workers", 0)
                for name, t in types.items()
                if name != self.body.get("head_node_type")
            )
            overall = self.body.get("max_workers")
            if not types:
                return 1 + (overall or 0)
            return 1 + (per_type if overall is None else min(overall, per_type))
        spec = self.body["spec"]
        spec = spec.get("rayClusterSpec", spec)
        return 1 + sum(g["maxReplicas"] for g in spec.get("workerGroupSpecs", []))


def load_cluster_file(path: str | Path) -> ClusterFile:
    """Read and validate a launcher YAML or a KubeRay manifest; ConfigError names the problem."""
    path = Path(path)
    try:
        body = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"--cluster {path}: cannot read it ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"--cluster {path}: not valid YAML ({_one_line(exc)})") from exc
    if not isinstance(body, dict):
        raise ConfigError(f"--cluster {path}: must be a YAML mapping, got {type(body).__name__}")
    if "apiVersion" in body or "kind" in body:
        validate_kuberay_manifest(body, str(path))
        return ClusterFile(path, body["kind"], body)
    validate_launcher_config(body, str(path))
    return ClusterFile(path, "launcher", body)


def launcher_schema() -> dict[str, Any]:
    """The cluster launcher's JSON schema from the installed ray wheel."""
    return json.loads(LAUNCHER_SCHEMA_PATH.read_text())


def validate_launcher_config(body: dict[str, Any], source: str = "cluster config") -> None:
    """Check against Ray's launcher schema, then the node types the schema cannot relate."""
    _validate(body, launcher_schema(), source)
    types = body.get("available_node_types")
    if types is None:
        return
    head = body.get("head_node_type")
    if head not in types:
        raise ConfigError(
            f"{source}: head_node_type == {head!r} must name one of "
            f"available_node_types ({', '.join(types)})"
        )
    for name, node_type in types.items():
        low, high = node_type.get("min_workers", 0), node_type.get("max_workers")
        if high is not None and low > high:
            raise ConfigError(
                f"{source}: available_node_types.{name}.min_workers == {low} > "
                f"max_workers == {high}"
            )
    wanted = sum(t.get("min_workers", 0) for name, t in types.items() if name != head)
    if "max_workers" in body and wanted > body["max_workers"]:
        raise ConfigError(
            f"{source}: the node types' min_workers add up to {wanted} > "
            f"max_workers == {body['max_workers']}; raise max_workers"
        )


def validate_kuberay_manifest(body: dict[str, Any], source: str = "manifest") -> None:
    """Check a ray.io/v1 RayCluster or RayJob for the fields KubeRay requires."""
    kind = body.get("kind")
    if body.get("apiVersion") != "ray.io/v1" or kind not in KUBERAY_SCHEMAS:
        raise ConfigError(
            f"{source}: apiVersion {body.get('apiVersion')!r} kind {kind!r} is not "
            f"a KubeRay manifest; use apiVersion ray.io/v1 with kind "
            f"{' or '.join(KUBERAY_SCHEMAS)}"
        )
    _validate(body, KUBERAY_SCHEMAS[kind], source)
    if kind == "RayJob" and ("rayClusterSpec" in body["spec"]) == (
        "clusterSelector" in body["spec"]
    ):
        raise ConfigError(
            f"{source}: spec: a RayJob needs exactly one of rayClusterSpec (a "
            "cluster made for the job) or clusterSelector (a running RayCluster)"
        )
    spec = body["spec"].get("rayClusterSpec", body["spec"])
    for i, group in enumerate(spec.get("workerGroupSpecs", [])):
        if group["minReplicas"] > group["maxReplicas"]:
            raise ConfigError(
                f"{source}: spec.workerGroupSpecs[{i}].minReplicas == "
                f"{group['minReplicas']} > maxReplicas == {group['maxReplicas']}"
            )


def _validate(body: dict[str, Any], schema: dict[str, Any], source: str) -> None:
    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(body))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"{source}: {where}: {_one_line(error.message)}")


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
