"""The fields the KubeRay operator (API ``ray.io/v1``) requires of a RayCluster and a RayJob.

Not the operator's full CRD (thousands of lines of Kubernetes pod spec): the parts that a
manifest must get right for the operator to accept it and start Ray, as JSON schemas checked
with the same validator as the launcher YAML. Unknown keys are allowed, as Kubernetes would
prune or reject them itself.
"""

from __future__ import annotations

from typing import Any

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

_CONTAINER = {
    "type": "object",
    "required": ["name", "image"],
    "properties": {"name": {"type": "string"}, "image": {"type": "string", "minLength": 1}},
}

_POD_TEMPLATE = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["containers"],
            "properties": {"containers": {"type": "array", "minItems": 1, "items": _CONTAINER}},
        }
    },
}

_REPLICAS = {"type": "integer", "minimum": 0}

_HEAD_GROUP = {
    "type": "object",
    "required": ["template"],
    # KubeRay passes rayStartParams to `ray start` and only accepts strings ("0", not 0).
    "properties": {"rayStartParams": _STRING_MAP, "template": _POD_TEMPLATE},
}

_WORKER_GROUP = {
    "type": "object",
    "required": ["groupName", "template", "minReplicas", "maxReplicas"],
    "properties": {
        "groupName": {"type": "string", "minLength": 1},
        "replicas": _REPLICAS,
        "minReplicas": _REPLICAS,
        "maxReplicas": _REPLICAS,
        "rayStartParams": _STRING_MAP,
        "template": _POD_TEMPLATE,
    },
}

_CLUSTER_SPEC = {
    "type": "object",
    "required": ["headGroupSpec"],
    "properties": {
        "rayVersion": {"type": "string"},
        "enableInTreeAutoscaling": {"type": "boolean"},
        "headGroupSpec": _HEAD_GROUP,
        "workerGroupSpecs": {"type": "array", "items": _WORKER_GROUP},
    },
}


def _manifest(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "ray.io/v1"},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}},
            },
            "spec": spec,
        },
    }


_JOB_SPEC = {
    "type": "object",
    # A RayJob runs on a cluster it makes (rayClusterSpec) or on one it finds (clusterSelector);
    # validate_kuberay_manifest checks that exactly one is there, with a clearer message.
    "required": ["entrypoint"],
    "properties": {
        "entrypoint": {"type": "string", "minLength": 1},
        "runtimeEnvYAML": {"type": "string"},
        "shutdownAfterJobFinishes": {"type": "boolean"},
        "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
        "rayClusterSpec": _CLUSTER_SPEC,
        "clusterSelector": _STRING_MAP,
    },
}

KUBERAY_SCHEMAS: dict[str, dict[str, Any]] = {
    "RayCluster": _manifest("RayCluster", _CLUSTER_SPEC),
    "RayJob": _manifest("RayJob", _JOB_SPEC),
}
