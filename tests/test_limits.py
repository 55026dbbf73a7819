"""Every size has a bound checked with its field (docs/reliability.md, "Limits"): past it a run
would fail deep inside torch or the OS, or never end; here it is one line, exit 2, in seconds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deft_tune.cli import main
from deft_tune.config import MAX_YAML_BYTES, RunConfig
from deft_tune.errors import ConfigError
from deft_tune.search.replay.options import ReplayOptions, check_options
from deft_tune.search.space import space_from_dict
from tests import REPO, scaled

_BETA_VAE = {"objective": {"kind": "beta_vae"}}  # no stages: any steps or groups are allowed


@pytest.mark.parametrize(
    ("section", "name", "value"),
    [
        ("training", "steps", 2**64),
        ("training", "steps", 1e18),
        ("training", "threads", 10**9),
        ("training", "replicas", 10**9),
        ("model", "groups", 10**9),
        ("model", "latents_per_group", 10**9),
        ("model", "encoder_width", 10**9),
        ("model", "decoder_width", 10**9),
    ],
)
def test_run_config_sizes_past_their_bounds_are_refused_naming_the_field(section, name, value):
    with pytest.raises(ConfigError, match=rf"{section}\.{name} == .*, must lie in \[1, "):
        RunConfig.from_dict({**_BETA_VAE, section: {name: value}})


@pytest.mark.parametrize(
    ("name", "value"),
    [("num_trials", 10**12), ("steps_per_trial", 10**18), ("max_concurrent", 10**9)],
)
def test_search_budgets_past_their_bounds_are_refused_naming_the_field(name, value):
    raw = {"name": "big", "data": {"name": "dsprites_full"}, "budget": {name: value}}
    with pytest.raises(ConfigError, match=rf"budget\.{name} == {value}, must lie in \[1, "):
        space_from_dict(raw)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"replays": 10**12}, "--replays == 1000000000000, must lie in [1, 10000]"),
     ({"concurrency": 10**9}, "--concurrency == 1000000000, must lie in [1, 100000]")],
)  # fmt: skip
def test_replay_counts_past_their_bounds_are_refused(tmp_path, change, message):
    options = ReplayOptions(experiment="bank", out=str(tmp_path / "out"), **change)
    with pytest.raises(ConfigError) as caught:
        check_options(options)
    assert message in str(caught.value)


def refused(*args: str, cwd) -> str:
    """Run deft-tune in a fresh interpreter (a hang or a memory blow-up stays outside the test
    process); assert exit 2 and one line on stderr, in seconds; returns the line."""
    done = subprocess.run(
        [sys.executable, "-m", "deft_tune", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    return lines[0]


def test_a_fifo_a_device_or_a_huge_file_as_config_is_one_line_before_reading(tmp_path):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)  # nothing ever writes to it: reading would block for good
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (MAX_YAML_BYTES + 1))
    for path in (fifo, "/dev/zero"):
        line = refused("train", "--config", str(path), cwd=tmp_path)
        assert f"config {path} is not a regular file" in line
    assert "larger than 1 MiB" in refused("train", "--config", str(huge), cwd=tmp_path)
    assert "is not a regular file" in refused("search", "--space", str(fifo), cwd=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_train_with_a_billion_replicas_or_threads_and_a_bogus_device_are_one_line(tmp_path, capsys):
    cases = {
        "training.replicas == 1000000000": "training: {replicas: 1000000000}\n",
        "training.threads == 1000000000": "training: {threads: 1000000000}\n",
    }
    for expected, text in cases.items():
        config = tmp_path / "big.yaml"
        config.write_text("objective: {kind: beta_vae}\n" + text)
        assert main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
        assert expected in capsys.readouterr().err
    config.write_text("objective: {kind: beta_vae}\n")
    assert main(["train", "--config", str(config), "--threads", "1000000000"]) == 2
    assert "--threads == 1000000000, must lie in [1, 1024]" in capsys.readouterr().err
    model = tmp_path / "model"
    assert main(["evaluate", "--model", str(model), "--device", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device == 'bogus', must be 'auto', 'cpu'" in err
    assert not (tmp_path / "out").exists() and not model.exists()
