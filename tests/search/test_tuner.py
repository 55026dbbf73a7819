"""Which Ray a search uses (its own local one unless told to join a cluster), and which
Optuna sampler.

Ray's bare ``ray.init()`` joins any cluster `ray start` left running on the machine; these
tests record what the runner asks Ray for, without starting one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deft_tune.search import tuner as _tune
from tests import REPO, scaled


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


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_private_ray_reaps_only_the_raylet_it_started(init_calls, tmp_path):
    """Another Ray of this process (the test session's) has its raylet among this process's
    children too: it was once killed at the end of a private Ray's block (2026-12-05)."""
    from deft_tune.search import reaper

    named = tmp_path / "raylet"  # the name the reaper looks for, on a harmless process
    named.symlink_to(shutil.which("sleep"))
    other = subprocess.Popen([str(named), "300"])
    try:
        assert other.pid in reaper.raylet_children()
        watchers = len(reaper._WATCHERS)
        with _tune.ray_session(None):  # ray.init is a stand-in: it starts no raylet
            assert len(reaper._WATCHERS) == watchers
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


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


def _budget_space(**budget):
    from deft_tune.search import space_from_dict

    return space_from_dict(
        {
            "data": "dsprites_full",
            "budget": {"steps_per_trial": 400, "eval_interval": 100, **budget},
        }
    )


def test_the_sampler_follows_budget_sampler_and_seed():
    import optuna

    from deft_tune.errors import ConfigError

    tpe = _tune.make_sampler(_budget_space())
    assert isinstance(tpe, optuna.samplers.TPESampler)
    random = _tune.make_sampler(_budget_space(sampler="random", seed=3))
    assert isinstance(random, optuna.samplers.RandomSampler)
    again = _tune.make_sampler(_budget_space(sampler="random", seed=3))
    draws = [optuna.create_study(sampler=s).ask().suggest_float("x", 0, 1) for s in (random, again)]
    assert draws[0] == draws[1]  # seeded by budget.seed
    with pytest.raises(ConfigError, match=r"budget.sampler == 'grid', must be one of"):
        _budget_space(sampler="grid")


def test_a_trial_larger_than_the_local_ray_is_refused_with_the_numbers():
    from types import SimpleNamespace

    from deft_tune.errors import ConfigError

    fits = SimpleNamespace(cpus_per_trial=2.0, gpus_per_trial=0.0)
    _tune.require_trial_fits(fits, {"CPU": 2.0})
    with pytest.raises(ConfigError, match=r"--cpus-per-trial == 64 .* local Ray has 2 CPUs"):
        _tune.require_trial_fits(SimpleNamespace(cpus_per_trial=64, gpus_per_trial=0), {"CPU": 2})
    with pytest.raises(ConfigError, match=r"--gpus-per-trial == 0.5 .* has 0 GPUs"):
        _tune.require_trial_fits(SimpleNamespace(cpus_per_trial=1, gpus_per_trial=0.5), {"CPU": 2})


# --- what the private local Ray exposes -----------------------------------------------------


def _no_ray_in_this_process() -> bool:
    import ray

    return not ray.is_initialized()


# These tests start a second private Ray in a subprocess. Beside the session's Ray they twice ended
# the whole pytest run (2026-12-05); the cause was the reaper, not them: a private-Ray block with a
# stand-in ray.init watched every raylet child of the test process, the session's included, and
# killed it at the end (test_a_private_ray_reaps_only_the_raylet_it_started). They still run first,
# in a process of their own, in .ci/run, and skip when this process has Ray up.
_ALONE = pytest.mark.skipif(
    "not _no_ray_in_this_process()", reason="needs a process without Ray (.ci/run runs it first)"
)

_EXPOSURE = """
import json, os, subprocess, sys
from deft_tune.search.tuner import ray_session

def descendants():
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError):
            pass
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found

def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\\0", b" ").decode(errors="replace")
    except OSError:
        return ""

with ray_session(None):
    pids = descendants() | {os.getpid()}
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ours = [line.split()[3] + " " + line.split("users:")[-1] for line in listening.splitlines()
            if any(f"pid={pid}," in line for pid in pids)]
    commands = [cmdline(pid) for pid in pids]
    auth = os.environ.get("RAY_AUTH_MODE")
print(json.dumps({"pids": sorted(pids - {os.getpid()}), "listening": ours,
                  "commands": commands, "auth": auth}))
"""


@pytest.mark.slow
@_ALONE
@pytest.mark.skipif(shutil.which("ss") is None or not os.path.isdir("/proc"), reason="needs ss")
def test_the_private_local_ray_listens_on_loopback_needs_its_token_and_goes_away(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", _EXPOSURE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(300),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["listening"], "the check found none of Ray's sockets"
    assert not any(address.endswith(":8265") for address in seen["listening"]), seen
    hosts = {address.split()[0].rsplit(":", 1)[0] for address in seen["listening"]}
    assert hosts <= {"127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}, seen["listening"]
    # Ray still starts its dashboard process, without the web UI (metrics only).
    heads = [command for command in seen["commands"] if "dashboard/dashboard.py" in command]
    assert all("--disable-frontend" in command for command in heads), heads
    assert seen["auth"] == "token"  # every request to Ray's ports needs the session's token
    deadline = time.monotonic() + 60
    while alive := [pid for pid in seen["pids"] if Path(f"/proc/{pid}").exists()]:
        assert time.monotonic() < deadline, f"Ray processes outlived the search: {alive}"
        time.sleep(0.5)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_nan_objective_reaches_optuna_as_a_pruned_trial_without_a_value():
    """A replica without a finite score makes the objective NaN (deft_tune.training.aggregate): the
    trial must not stay RUNNING in the study (Ray's own handling) nor win."""
    import math

    import optuna

    space = _budget_space(num_trials=4, max_concurrent=1)
    searcher = _tune._searcher(space)
    for trial, value in (("t0", math.nan), ("t1", 0.1), ("t2", 0.05)):
        assert searcher.suggest(trial) is not None
        searcher.on_trial_complete(trial, {space.objective.key: value})
    study = searcher.searcher._ot_study
    pruned, complete = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE
    assert [t.state for t in study.trials] == [pruned, complete, complete]
    assert study.trials[0].value is None and study.best_value == 0.1
    assert searcher.suggest("t3") is not None  # TPE samples on with the pruned trial


_KILLED_DRIVER = """
import json, os, sys, time
from deft_tune.search.tuner import ray_session

with ray_session(None):
    while True:  # until both agents are up: the processes that outlived a killed driver
        pids = {p: cmdline(p) for p in descendants()}
        if sum("Agent" in c for c in pids.values()) >= 2:
            break
        time.sleep(0.2)
    print(json.dumps(pids), flush=True)
    time.sleep(3600)
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's parent may be slow to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@_ALONE
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_driver_killed_with_sigkill_leaves_no_ray_process_behind(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["PYTHONPATH"] = str(REPO)
    helpers = _EXPOSURE.split("with ray_session")[0]
    driver = subprocess.Popen(
        [sys.executable, "-c", helpers + _KILLED_DRIVER],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = driver.stdout.readline()  # the event: Ray and both agents are up
    finally:
        driver.kill()
        driver.wait()
    started = {int(pid): command for pid, command in json.loads(line).items()}
    assert any("DashboardAgent" in c for c in started.values()), started
    deadline = time.monotonic() + scaled(60)
    while alive := {p: c for p, c in started.items() if _running(p)}:
        assert time.monotonic() < deadline, f"Ray processes outlived the killed driver: {alive}"
        time.sleep(0.5)
