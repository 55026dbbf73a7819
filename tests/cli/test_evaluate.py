import json

import pytest
import torch
import yaml

from deft_tune import data as data_registry
from deft_tune.cli import main

CONFIG = {
    "data": {"name": "squares"},
    "model": {"groups": 2, "latents_per_group": 2, "encoder_width": 4, "decoder_width": 4},
    "schedule": {"stages": [{"beta": 4, "steps": 4}, {"beta": 1, "lr_scale": 0.1}]},
    "training": {"steps": 8, "batch_size": 8, "checkpoint_interval": 4, "device": "cpu"},
    "evaluation": {"interval": 4, "probe_size": 48, "metrics": []},
}


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    """A model from `deft-tune train` on the 48-image squares double (tests/doubles.py)."""
    patch = pytest.MonkeyPatch()
    patch.setitem(data_registry._REGISTRY, "squares", "tests.doubles:Squares")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("run")
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = folder / "out"
    assert main(["train", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    yield out
    torch.set_num_threads(threads)
    patch.undo()


def test_evaluate_prints_a_table_and_writes_json(trained_model, tmp_path, capsys):
    capsys.readouterr()
    target = tmp_path / "scores.json"
    argv = [
        "evaluate",
        "--model",
        str(trained_model),
        "--metrics",
        "mig",
        "dci",
        "--fast",
        "--seed",
        "5",
        "--out",
        str(target),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "metric" in printed and "dci/completeness" in printed
    payload = json.loads(target.read_text())
    assert set(payload["scores"]) == {
        "mig",
        "dci/disentanglement",
        "dci/completeness",
        "dci/informativeness_train",
        "dci/informativeness_test",
    }
    assert payload["settings"]["name"] == "fast" and payload["seed"] == 5
    assert all(0 <= v <= 1 for v in payload["scores"].values())
    assert f"{payload['scores']['mig']:.4f}" in printed
    # Same seed, same numbers.
    assert main(argv) == 0
    assert json.loads(target.read_text())["scores"] == payload["scores"]


def test_default_output_and_seed(trained_model, capsys):
    argv = ["evaluate", "--model", str(trained_model), "--metrics", "mig", "--fast"]
    assert main([*argv, "--threads", "2"]) == 0
    assert torch.get_num_threads() == 2  # the fixture left 1
    torch.set_num_threads(1)
    payload = json.loads((trained_model / "evaluation_fast.json").read_text())
    assert payload["seed"] == 0 and set(payload["scores"]) == {"mig"}
    assert payload["settings"]["n_jobs"] == 1  # --fast: DCI in one process, as in trials


@pytest.mark.parametrize("extra, n_jobs", [(["--threads", "2"], 2), (["--n-jobs", "3"], 3)])
def test_dci_processes_follow_the_threads_and_are_written(trained_model, extra, n_jobs):
    out = trained_model / "standard.json"
    argv = ["evaluate", "--model", str(trained_model), "--metrics", "mig", "--out", str(out)]
    assert main([*argv, *extra]) == 0
    torch.set_num_threads(1)
    settings = json.loads(out.read_text())["settings"]
    assert settings["name"] == "standard" and settings["n_jobs"] == n_jobs


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metrics", "irs"], "--metrics: unknown irs"),
        (["--n-jobs", "0"], "--n-jobs == 0"),
        (["--threads", "0"], "--threads == 0"),
        (["--seed", str(10**20)], "--seed == 100000000000000000000, must lie in [0, 2**63 - 1]"),
    ],
)
def test_bad_arguments_one_line_exit_2(trained_model, capsys, extra, message):
    assert main(["evaluate", "--model", str(trained_model), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_missing_or_corrupt_model(tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path)]) == 2
    assert "no model.pt or model-replica*.pt there" in capsys.readouterr().err
    (tmp_path / "model.pt").write_bytes(b"not a model")
    out = tmp_path / "e.json"
    assert main(["evaluate", "--model", str(tmp_path), "--out", str(out)]) == 2
    assert "not a deft-tune model file" in capsys.readouterr().err
    assert not out.exists()


def test_replicas_are_trained_saved_and_scored_on_one_sample(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(data_registry._REGISTRY, "squares", "tests.doubles:Squares")
    raw = {**CONFIG, "training": {**CONFIG["training"], "replicas": 2},
           "evaluation": {**CONFIG["evaluation"], "metrics": ["mig"]}}  # fmt: skip
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    assert main(["train", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("model*.pt")) == [
        "model-replica0.pt",
        "model-replica1.pt",
    ]
    trained = json.loads((out / "metrics.json").read_text())["metrics"]
    assert {"replica0/mig", "replica1/mig", "mig", "mig_std"} <= set(trained)
    capsys.readouterr()
    target = tmp_path / "scores.json"
    assert main(["evaluate", "--model", str(out), "--metrics", "mig", "--out", str(target)]) == 0
    printed = capsys.readouterr().out
    assert "mean ± std" in printed and "replica1" in printed
    scores = json.loads(target.read_text())["scores"]
    # The run's seed and the standard setting: evaluate gives train's numbers back.
    assert scores["replica0/mig"] == trained["replica0/mig"]
    assert scores["mig"] == pytest.approx((scores["replica0/mig"] + scores["replica1/mig"]) / 2)


def test_an_output_path_in_the_way_is_refused_before_scoring(trained_model, tmp_path, capsys):
    folder = tmp_path / "scores.json"
    folder.mkdir()
    assert main(["evaluate", "--model", str(trained_model), "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "is a folder" in err


# --- evaluate scores the model the run scored -------------------------------------------------

FREEZE = {"stages": [{"beta": 4, "steps": 4}, {"beta": 1, "earlier": "freeze"}]}
# beta falls from 150 to 30 only after ~16,000 steps: the run ends in stage 0 of 2.
ANNEALED = {"rule": "annealed", "stages": [{"beta": 30}, {}]}
RUNS = {
    "freeze": ({"schedule": FREEZE}, (1, True)),
    "scale": ({}, (1, False)),
    "annealed, ended before its last stage": ({"schedule": ANNEALED}, (0, False)),
    "beta-VAE": ({"objective": {"kind": "beta_vae"}, "schedule": {"stages": []}}, (1, False)),
    "2 replicas, freeze": ({"schedule": FREEZE, "replicas": 2}, (1, True)),
}


def _train_scored(folder, changes):
    """A run of CONFIG with ``changes`` (``replicas`` goes into training) whose metrics.json
    holds MIG and SAP; lr 0.01 so that the frozen groups' projections move off the identity."""
    changes = dict(changes)
    training = {**CONFIG["training"], "lr": 0.01, "replicas": changes.pop("replicas", 1)}
    raw = {**CONFIG, **changes, "training": training,
           "evaluation": {**CONFIG["evaluation"], "metrics": ["mig", "sap"]}}  # fmt: skip
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = folder / "out"
    assert main(["train", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("changes, ended", list(RUNS.values()), ids=list(RUNS))
def test_evaluate_gives_back_the_runs_own_scores(tmp_path, monkeypatch, changes, ended):
    from deft_tune.model import load_model, model_files

    monkeypatch.setitem(data_registry._REGISTRY, "squares", "tests.doubles:Squares")
    torch.set_num_threads(1)
    out = _train_scored(tmp_path, changes)
    for path in model_files(out):  # the file holds the stage state the run ended in
        encoder = load_model(path)[1].encoder
        assert (encoder.stage, encoder.freeze) == ended
    target = tmp_path / "scores.json"
    argv = ["evaluate", "--model", str(out), "--metrics", "mig", "sap", "--out", str(target)]
    assert main(argv) == 0
    trained = json.loads((out / "metrics.json").read_text())["metrics"]
    assert json.loads(target.read_text())["scores"] == trained


@pytest.mark.parametrize("layout, precision", [("contiguous", "fp32"), ("channels_last", "bf16")])
def test_evaluate_encodes_exactly_as_the_trainer(tmp_path, monkeypatch, layout, precision):
    """The codes themselves: frozen groups through their learned projections, in the run's
    memory format and precision (SAP and MIG barely see a projection's rescaling)."""
    from deft_tune.cli.evaluate import representation_from_model_dir
    from deft_tune.config import RunConfig
    from deft_tune.model import model_file, save_model
    from deft_tune.training import Trainer
    from tests.doubles import Squares

    monkeypatch.setitem(data_registry._REGISTRY, "squares", "tests.doubles:Squares")
    torch.set_num_threads(1)
    training = {**CONFIG["training"], "lr": 0.01, "replicas": 2, "memory_format": layout,
                "precision": precision}  # fmt: skip
    trainer = Trainer(RunConfig.from_dict({**CONFIG, "schedule": FREEZE, "training": training}))
    trainer.run()
    assert trainer.model.encoder.projections[0].log_scale.abs().min() > 0  # not the identity
    for r, replica in enumerate(trainer.replicas):
        save_model(model_file(tmp_path, r, 2), trainer.config, replica.model, (1, 64, 64), r)
    encode, _, config, count = representation_from_model_dir(tmp_path)
    images = Squares().stored_images().astype("float32")
    assert count == 2 and config == trainer.config
    assert (encode(images) == trainer.representation(images)).all()
