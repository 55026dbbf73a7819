"""Which Ray a search uses: its own local one unless told to join a cluster.

Ray's bare ``ray.init()`` joins any cluster `ray start` left running on the machine; these
tests record what the runner asks Ray for, without starting one.
"""

from __future__ import annotations

import pytest

from deft_tune.search import tuner as _tune


@pytest.fixture
def init_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(_tune.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(_tune.ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(_tune.ray, "shutdown", lambda: calls.append("shutdown"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def test_no_address_starts_a_private_local_ray(init_calls):
    with _tune.ray_session(None):
        assert init_calls == [{"address": "local", "include_dashboard": False}]
    assert init_calls[-1] == "shutdown"


def test_an_explicit_address_is_joined(init_calls, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")
    with _tune.ray_session("auto"):
        assert init_calls[0]["address"] == "auto"


def test_ray_address_in_the_environment_is_joined(init_calls, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6380")
    with _tune.ray_session(None):
        assert init_calls[0]["address"] == "127.0.0.1:6380"
    assert _tune.cluster_address(None) == "127.0.0.1:6380"


def test_a_running_ray_in_this_process_is_reused_and_left_running(monkeypatch):
    monkeypatch.setattr(_tune.ray, "is_initialized", lambda: True)
    monkeypatch.setattr(_tune.ray, "init", lambda **kwargs: pytest.fail("init called"))
    monkeypatch.setattr(_tune.ray, "shutdown", lambda: pytest.fail("shutdown called"))
    with _tune.ray_session("auto"):
        pass


def test_a_trial_larger_than_the_local_ray_is_refused_with_the_numbers():
    from types import SimpleNamespace

    from deft_tune.errors import ConfigError

    fits = SimpleNamespace(cpus_per_trial=2.0, gpus_per_trial=0.0)
    _tune.require_trial_fits(fits, {"CPU": 2.0})
    with pytest.raises(ConfigError, match=r"--cpus-per-trial == 64 .* local Ray has 2 CPUs"):
        _tune.require_trial_fits(SimpleNamespace(cpus_per_trial=64, gpus_per_trial=0), {"CPU": 2})
    with pytest.raises(ConfigError, match=r"--gpus-per-trial == 0.5 .* has 0 GPUs"):
        _tune.require_trial_fits(SimpleNamespace(cpus_per_trial=1, gpus_per_trial=0.5), {"CPU": 2})
