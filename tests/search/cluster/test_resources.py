"""What a multi-node search accepts as trial storage and tracking store (the rules, with the
node probe replaced by given answers; test_multinode.py runs the real probe on two nodes)."""

from __future__ import annotations

import pytest

from deft_tune.errors import ConfigError
from deft_tune.search.cluster.resources import NodeReport, require_shared_resources

REMOTE = ("s3://bucket/deft", "http://mlflow.internal:5000")


def answers(*reports):
    calls = []

    def probe(storage, uri):
        calls.append((storage, uri))
        return list(reports)

    return probe, calls


def test_one_node_may_use_anything():
    probe, calls = answers()
    require_shared_resources(None, "sqlite:///mlflow.db", 1, probe=probe)
    assert calls == []


def test_remote_storage_and_server_are_trusted_without_asking_the_nodes():
    probe, calls = answers()
    require_shared_resources(*REMOTE, 3, probe=probe)
    assert calls == []


@pytest.mark.parametrize(
    ("storage", "uri", "says"),
    [
        (None, REMOTE[1], "needs --storage that every node reaches"),
        (REMOTE[0], "sqlite:////tmp/mlflow.db", "use --tracking-uri http://HOST:5000"),
        (REMOTE[0], None, "tracking URI sqlite:///<this folder>/mlflow.db (the default) is a file"),
        (REMOTE[0], "file:///tmp/mlruns", "is a file on one node"),
    ],
)
def test_local_stores_are_refused_on_several_nodes_with_what_to_use(storage, uri, says):
    with pytest.raises(ConfigError) as error:
        require_shared_resources(storage, uri, 2, probe=answers()[0])
    assert says in str(error.value) and "\n" not in str(error.value)


def test_a_local_path_is_accepted_only_when_every_node_sees_it(tmp_path):
    seen = NodeReport("10.0.0.1 (aaaa)", True, True)
    blind = NodeReport("10.0.0.2 (bbbb)", False, True)
    probe, calls = answers(seen, seen)
    require_shared_resources(str(tmp_path), REMOTE[1], 2, probe=probe)
    assert calls == [(str(tmp_path), None)]
    with pytest.raises(ConfigError, match=r"nodes 10.0.0.2 \(bbbb\) do not see; use s3://"):
        require_shared_resources(str(tmp_path), REMOTE[1], 2, probe=answers(seen, blind)[0])


def test_a_loopback_server_is_accepted_only_when_every_node_reaches_it():
    cut_off = NodeReport("10.0.0.2 (bbbb)", True, False)
    with pytest.raises(ConfigError, match="mlflow server --host 0.0.0.0"):
        require_shared_resources(
            REMOTE[0],
            "http://127.0.0.1:5000",
            2,
            probe=answers(NodeReport("x", True, True), cut_off)[0],
        )
