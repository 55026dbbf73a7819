"""`deft-tune launch`: the dry run prints what would run; user errors are one line, exit 2."""

from __future__ import annotations

import shlex
import shutil

import pytest

from deft_tune.cli import main
from tests import REPO

ROOT = REPO
QUICK = "search_spaces/quick.yaml"
SHARED = ["--storage", "s3://bucket/deft", "--tracking-uri", "http://mlflow.internal:5000"]


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse errors
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_with_an_address_prints_the_job_submission(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(
        capsys,
        "launch",
        "--address",
        "http://head:8265",
        "--space",
        QUICK,
        *SHARED,
        "--name",
        "q1",
        "--gpus-per-trial",
        "0.25",
        "--no-asha",
        "--seed",
        "3",
        "--num-trials",
        "4",
        "--dry-run",
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("# deft-tune launch --dry-run") and len(lines) == 2
    submit = shlex.split(lines[1])
    assert submit[:7] == [
        "ray",
        "job",
        "submit",
        "--address",
        "http://head:8265",
        "--working-dir",
        str(ROOT),
    ]
    search = submit[submit.index("--") + 1 :]
    assert search[:8] == [
        "python",
        "-m",
        "deft_tune",
        "search",
        "--address",
        "auto",
        "--space",
        QUICK,
    ]
    for flag in (*SHARED, "--name", "q1", "--gpus-per-trial", "0.25", "--no-asha"):
        assert flag in search
    assert search[search.index("--seed") :][:4] == ["--seed", "3", "--num-trials", "4"]
    assert '"MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"' in lines[1]


def test_dry_run_with_a_launcher_file_brings_it_up_and_tunnels(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(
        capsys,
        "launch",
        "--cluster",
        "clusters/gcp.yaml",
        "--space",
        QUICK,
        *SHARED,
        "--port",
        "18265",
        "--dry-run",
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[1].startswith("ray up -y clusters/gcp.yaml")
    assert lines[2].startswith("ray dashboard clusters/gcp.yaml --port 18265")
    assert lines[3].startswith("ray job submit --address http://127.0.0.1:18265")


def test_dry_run_starts_nothing(capsys, monkeypatch):
    import ray
    import ray.job_submission

    started = []
    monkeypatch.setattr(ray, "init", lambda *a, **k: started.append("ray.init"))
    monkeypatch.setattr(
        ray.job_submission, "JobSubmissionClient", lambda *a, **k: started.append("job client")
    )
    monkeypatch.chdir(ROOT)
    code, _, err = run_cli(
        capsys, "launch", "--address", "http://head:8265", "--space", QUICK, "--dry-run"
    )
    assert code == 0, err
    assert started == []


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "one of the arguments --cluster --address is required"),
        (["--cluster", "clusters/aws.yaml", "--address", "http://h:8265"], "not allowed with"),
        (["--address", "http://h:8265"], "--space is required"),
        (["--address", "http://h:8265", "--space", "nope.yaml"], "cannot read search space"),
        (["--address", "http://h:8265", "--space", QUICK, "--storage", "runs"], "is relative"),
        (
            ["--address", "http://h:8265", "--space", QUICK, "--gpus-per-trial", "-1"],
            "must be >= 0",
        ),
        (["--address", "http://h:8265", "--space", QUICK, "--name", "a b"], "--name == 'a b'"),
        (["--address", "http://h:8265", "--space", QUICK, "--seed", "-1"], "--seed == -1"),
        (["--address", "http://h:8265", "--space", QUICK, "--num-trials", "0"], "--num-trials"),
        (["--cluster", "clusters/aws.yaml", "--space", QUICK], "has up to 5 nodes"),
        (
            ["--cluster", "clusters/aws.yaml", "--space", QUICK, "--storage", "s3://b/d"],
            "is a file on one node",
        ),
        (
            ["--cluster", "clusters/kuberay-raycluster.yaml", "--space", QUICK, *SHARED],
            "is a KubeRay RayCluster",
        ),
        (
            ["--address", "http://h:8265", "--status", "raysubmit_1", "--dry-run"],
            "--dry-run applies",
        ),
        (["--address", "http://h:8265", "--status", "j1", "--stop", "j1"], "not allowed with"),
        (
            ["--address", "http://127.0.0.1:9", "--status", "raysubmit_1"],
            "cannot reach the job server on http://127.0.0.1:9",
        ),
    ],
)
def test_launch_errors_are_one_line_and_exit_2(capsys, monkeypatch, argv, says):
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(capsys, "launch", *argv)
    assert code == 2
    assert says in err and err.count("\n") == 1, err


def test_a_space_outside_the_working_dir_or_broken_is_refused(capsys, tmp_path):
    outside = tmp_path / "quick.yaml"
    shutil.copy(ROOT / QUICK, outside)
    code, _, err = run_cli(
        capsys,
        "launch",
        "--address",
        "http://h:8265",
        "--working-dir",
        str(ROOT),
        "--space",
        str(outside),
        "--dry-run",
    )
    assert code == 2 and "lies outside" in err and "--working-dir" in err
    outside.write_text(outside.read_text().replace("num_trials: 4", "num_trials: -4"))
    code, _, err = run_cli(
        capsys,
        "launch",
        "--address",
        "http://h:8265",
        "--working-dir",
        str(tmp_path),
        "--space",
        str(outside),
        "--dry-run",
    )
    assert code == 2 and "num_trials" in err and err.count("\n") == 1


def test_a_head_only_cluster_may_keep_local_storage_and_tracking(capsys, monkeypatch, tmp_path):
    import yaml

    body = yaml.safe_load((ROOT / "clusters" / "aws.yaml").read_text())
    body["max_workers"] = 0  # caps the gpu type's max_workers: 4
    single = tmp_path / "single.yaml"
    single.write_text(yaml.safe_dump(body))
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(
        capsys, "launch", "--cluster", str(single), "--space", QUICK, "--dry-run"
    )
    assert code == 0, err
    assert "ray up -y" in out
