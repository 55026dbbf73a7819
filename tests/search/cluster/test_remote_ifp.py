"""The Ray path of the annealing test, against a stand-in for the ray module.

A real local ``ray.init`` took minutes on the shared CI-sized machine, so this unit test
checks what run_on_ray adds (connection, one task per run, completion order vs. input order,
callback, shutdown of a connection it opened) with a fake ray that finishes tasks in reverse.
"""

from __future__ import annotations

import sys
import types

import pytest

from deft_tune.errors import ConfigError
from deft_tune.freezing.annealing import AnnealingRun
from deft_tune.freezing.loop import AnnealingConfig


def fake_ray(fail_init: bool = False) -> types.SimpleNamespace:
    log = []

    class Ref:
        def __init__(self, value):
            self.value = value

    def init(**kwargs):
        log.append(("init", kwargs["address"]))
        if fail_init:
            raise ConnectionError("refused")
        state["up"] = True

    def remote(**resources):
        log.append(("resources", resources))
        return lambda fn: types.SimpleNamespace(remote=lambda run: Ref(fn(run)))

    def wait(pending, num_returns):
        return [pending[-1]], pending[:-1]  # the last submitted finishes first

    def shutdown():
        log.append(("shutdown",))
        state["up"] = False

    state = {"up": False}
    return types.SimpleNamespace(
        is_initialized=lambda: state["up"],
        init=init,
        remote=remote,
        wait=wait,
        get=lambda ref: ref.value,
        shutdown=shutdown,
        log=log,
    )


@pytest.fixture
def runs(monkeypatch):
    import deft_tune.search.cluster.remote_ifp as module

    monkeypatch.setattr(module, "run_annealing", lambda run: ("done", run.factor))
    config = AnnealingConfig(steps=5)
    return [AnnealingRun("bars", f, 0, i, None, config) for i, f in enumerate("abc")]


def test_tasks_results_in_input_order_and_connection_closed(monkeypatch, runs):
    from deft_tune.search.cluster.remote_ifp import run_on_ray

    ray = fake_ray()
    monkeypatch.setitem(sys.modules, "ray", ray)
    seen = []
    results = run_on_ray(runs, seen.append, address="ray://head:10001", cpus_per_run=2)
    assert results == [("done", "a"), ("done", "b"), ("done", "c")]
    assert seen == [("done", "c"), ("done", "b"), ("done", "a")]
    assert ray.log == [
        ("init", "ray://head:10001"),
        ("resources", {"num_cpus": 2, "num_gpus": 0.0}),
        ("shutdown",),
    ]


def test_a_failed_connection_is_one_clear_error(monkeypatch, runs):
    from deft_tune.search.cluster.remote_ifp import run_on_ray

    monkeypatch.setitem(sys.modules, "ray", fake_ray(fail_init=True))
    with pytest.raises(ConfigError, match="cannot connect to the Ray cluster at 'nowhere:1'"):
        run_on_ray(runs, address="nowhere:1")
