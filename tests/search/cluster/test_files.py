"""Every file in clusters/ against Ray's launcher schema (from the ray wheel) and the fields
KubeRay's ray.io/v1 RayCluster and RayJob require; broken copies refused with one line."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from deft_tune.errors import ConfigError
from deft_tune.search.cluster.files import LAUNCHER_SCHEMA_PATH, load_cluster_file
from tests import REPO

CLUSTERS = REPO / "clusters"
FILES = sorted(CLUSTERS.glob("*.yaml"))
KINDS = {
    "aws.yaml": "launcher",
    "gcp.yaml": "launcher",
    "kuberay-raycluster.yaml": "RayCluster",
    "kuberay-rayjob.yaml": "RayJob",
}


def test_the_schema_is_the_one_shipped_with_ray():
    import ray

    assert LAUNCHER_SCHEMA_PATH.is_file()
    assert Path(ray.__file__).parent in LAUNCHER_SCHEMA_PATH.parents


def test_every_cluster_file_is_known():
    assert sorted(p.name for p in FILES) == sorted(KINDS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_cluster_file_validates_and_says_what_to_change(path):
    cluster = load_cluster_file(path)
    assert cluster.kind == KINDS[path.name]
    assert cluster.max_nodes > 1
    assert "# CHANGE" in path.read_text() or "CHANGE:" in path.read_text()


def _gpu_group(cluster):
    if cluster.kind == "launcher":
        return cluster.body["available_node_types"]["gpu"]
    spec = cluster.body["spec"].get("rayClusterSpec", cluster.body["spec"])
    return spec["workerGroupSpecs"][0]


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_launcher_gpu_workers_declare_their_gpu_and_the_head_runs_no_trials(name):
    cluster = load_cluster_file(CLUSTERS / name)
    gpu = _gpu_group(cluster)
    assert gpu["resources"]["GPU"] >= 1 and gpu["min_workers"] <= gpu["max_workers"]
    assert cluster.body["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert any("pip install" in c and "deft-tune" in c for c in cluster.body["setup_commands"])
    if name == "gcp.yaml":  # GCP refuses a GPU VM that could live-migrate
        config = gpu["node_config"]
        assert config["guestAccelerators"][0]["acceleratorCount"] >= 1
        assert config["scheduling"][0]["onHostMaintenance"] == "TERMINATE"


@pytest.mark.parametrize("name", ["kuberay-raycluster.yaml", "kuberay-rayjob.yaml"])
def test_kuberay_gpu_group_asks_kubernetes_for_gpus(name):
    group = _gpu_group(load_cluster_file(CLUSTERS / name))
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1


def test_the_rayjob_runs_a_search_and_cleans_up():
    body = load_cluster_file(CLUSTERS / "kuberay-rayjob.yaml").body
    assert body["spec"]["entrypoint"].startswith("deft-tune search --address auto")
    assert body["spec"]["shutdownAfterJobFinishes"] is True


def _set(body, path, value):
    *parents, last = path
    for key in parents:
        body = body[key]
    if value is _DELETE:
        del body[last]
    else:
        body[last] = value


_DELETE = object()
BROKEN = [
    ("aws.yaml", ["cluster_name"], _DELETE, "'cluster_name' is a required property"),
    ("aws.yaml", ["head_node"], {}, "Additional properties"),
    ("gcp.yaml", ["available_node_types", "gpu", "resources", "GPU"], 0.5, "resources.GPU"),
    ("gcp.yaml", ["head_node_type"], "cpu-head", "head_node_type == 'cpu-head'"),
    ("aws.yaml", ["available_node_types", "gpu", "min_workers"], 9, "min_workers == 9"),
    ("kuberay-raycluster.yaml", ["spec", "headGroupSpec"], _DELETE, "headGroupSpec"),
    (
        "kuberay-raycluster.yaml",
        ["spec", "workerGroupSpecs", 0, "maxReplicas"],
        _DELETE,
        "maxReplicas",
    ),
    (
        "kuberay-raycluster.yaml",
        ["spec", "headGroupSpec", "rayStartParams", "num-cpus"],
        0,
        "spec.headGroupSpec.rayStartParams.num-cpus",
    ),
    (
        "kuberay-raycluster.yaml",
        ["spec", "workerGroupSpecs", 0, "minReplicas"],
        9,
        "minReplicas == 9 > maxReplicas",
    ),
    ("kuberay-raycluster.yaml", ["apiVersion"], "ray.io/v1alpha1", "use apiVersion ray.io/v1"),
    ("kuberay-rayjob.yaml", ["spec", "entrypoint"], _DELETE, "'entrypoint' is a required"),
    ("kuberay-rayjob.yaml", ["spec", "rayClusterSpec"], _DELETE, "exactly one of rayClusterSpec"),
    (
        "kuberay-rayjob.yaml",
        ["spec", "clusterSelector"],
        {"ray.io/cluster": "x"},
        "exactly one of rayClusterSpec",
    ),
]


@pytest.mark.parametrize(
    ("name", "path", "value", "says"),
    BROKEN,
    ids=[f"{b[0]}:{'.'.join(map(str, b[1]))}" for b in BROKEN],
)
def test_a_broken_cluster_file_is_refused_with_one_line(tmp_path, name, path, value, says):
    body = copy.deepcopy(yaml.safe_load((CLUSTERS / name).read_text()))
    _set(body, path, value)
    broken = tmp_path / name
    broken.write_text(yaml.safe_dump(body))
    with pytest.raises(ConfigError) as error:
        load_cluster_file(broken)
    message = str(error.value)
    assert says in message and "\n" not in message and str(broken) in message


@pytest.mark.parametrize(
    ("text", "says"), [("- a\n- b\n", "must be a YAML mapping"), ("a: [1\n", "not valid YAML")]
)
def test_a_file_that_is_no_cluster_config_is_refused(tmp_path, text, says):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=says):
        load_cluster_file(path)
    with pytest.raises(ConfigError, match="cannot read it"):
        load_cluster_file(tmp_path / "missing.yaml")
