import math

import numpy as np
import pytest
import torch

from deft_tune.config import RunConfig
from deft_tune.errors import DataError, TrainingError
from deft_tune.model import save_model
from deft_tune.schedules import lr_scales_at
from deft_tune.training import EvalContext, Trainer
from deft_tune.training.batches import BatchSource
from tests.doubles import Squares, SquaresProtocolOnly, write_code_running_checkpoint

SMALL = {"encoder_width": 4, "decoder_width": 4}
DEFT = {
    "model": {"groups": 3, "latents_per_group": 2, **SMALL},
    "schedule": {
        "stages": [
            {"beta": 8, "steps": 6},
            {"beta": 4, "steps": 6, "lr_scale": 0.1},
            {"beta": 1, "lr_scale": 0.0},
        ]
    },
    "training": {"steps": 18, "batch_size": 8, "lr": 1e-3, "seed": 3},
    "evaluation": {"interval": 3, "probe_size": 48},
}


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny convolutions: a second thread only adds synchronisation (and, on a loaded machine,
    # spinning OpenMP threads slow everything down by an order of magnitude).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def deft_config(**training):
    return RunConfig.from_dict({**DEFT, "training": {**DEFT["training"], **training}})


def frozen_config():
    """DEFT's schedule with the groups before each stage frozen behind their projections."""
    stages = [{"beta": 8, "steps": 6}, {"beta": 4, "steps": 6, "earlier": "freeze"},
              {"beta": 1, "earlier": "freeze"}]  # fmt: skip
    return RunConfig.from_dict({**DEFT, "schedule": {"stages": stages}})


def collect(trainer, until=None):
    reports = []
    trainer.run(report=reports.append, until=until)
    return reports


def test_per_group_learning_rates_follow_the_schedule_exactly():
    config = deft_config()
    seen = []

    def hook(ctx: EvalContext):
        seen.append((ctx.step, [g["lr"] for g in trainer.replicas[0].optimizer.param_groups]))
        return {}

    trainer = Trainer(config, data=Squares(), hooks=[hook])
    reports = collect(trainer)
    assert [r["step"] for r in reports] == [3, 6, 9, 12, 15, 18]
    for report, (step, lrs) in zip(reports, seen):
        scales = lr_scales_at(config.schedule, 3, step - 1)  # the last step trained
        # encoder groups, then the decoder and the projections at the base rate
        assert lrs == [1e-3 * s for s in scales] + [1e-3, 1e-3]
        assert [report[f"lr/group{g}"] for g in range(3)] == [1e-3 * s for s in scales]
    assert [r["train/stage"] for r in reports] == [0, 0, 1, 1, 2, 2]
    assert [r["train/beta"] for r in reports] == [8, 8, 4, 4, 1, 1]
    assert [r["train/stage_progress"] for r in reports] == [0.5, 1, 0.5, 1, 0.5, 1]


def test_groups_not_yet_open_carry_exactly_zero_kl():
    reports = collect(Trainer(deft_config(), data=Squares()))
    for report in reports:
        stage = int(report["train/stage"])
        for g in range(stage + 1, 3):
            assert report[f"kl/group{g}"] == 0.0
            assert report[f"kl/latent{2 * g}"] == report[f"kl/latent{2 * g + 1}"] == 0.0
        assert report["kl/group0"] > 0


def test_frozen_group_with_lr_scale_zero_does_not_move():
    trainer = Trainer(deft_config(), data=Squares())
    trainer.run(until=12)
    frozen = [p.detach().clone() for p in trainer.model.encoder.encoders[0].parameters()]
    trainer.run()  # stage 2 freezes groups 0 and 1 (lr_scale 0)
    assert all(
        torch.equal(a, b) for a, b in zip(frozen, trainer.model.encoder.encoders[0].parameters())
    )


def test_deft_with_one_stage_and_one_group_equals_beta_vae():
    common = {
        "model": {"groups": 1, "latents_per_group": 4, **SMALL},
        "training": {"steps": 8, "batch_size": 8, "seed": 1},
        "evaluation": {"interval": 4, "probe_size": 48},
    }
    deft = RunConfig.from_dict(
        {**common, "objective": {"kind": "deft"}, "schedule": {"stages": [{"beta": 4.0}]}}
    )
    beta_vae = RunConfig.from_dict({**common, "objective": {"kind": "beta_vae", "beta": 4.0}})
    a, b = Trainer(deft, data=Squares()), Trainer(beta_vae, data=Squares())
    last_a, last_b = a.run(), b.run()
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert last_a["train/loss"] == last_b["train/loss"]


def _comparable(report):
    return {k: v for k, v in report.items() if k != "train/images_per_sec"}


@pytest.mark.parametrize("make_config", [deft_config, frozen_config], ids=["scale", "freeze"])
def test_resume_from_checkpoint_continues_bit_for_bit(tmp_path, make_config):
    config = make_config()
    path = tmp_path / "ckpt.pt"
    straight = collect(Trainer(config, data=Squares()))

    def save_at_9(report):
        if report["step"] == 9:
            first.save_checkpoint(path)

    first = Trainer(config, data=Squares())
    first.run(report=save_at_9, until=10)  # runs past the checkpoint: must not matter
    resumed = Trainer.from_checkpoint(path, data=Squares())
    assert resumed.step == 9
    tail = collect(resumed)
    assert [_comparable(r) for r in tail] == [_comparable(r) for r in straight[3:]]
    reference = Trainer(config, data=Squares())
    reference.run()
    for pa, pb in zip(resumed.model.parameters(), reference.model.parameters()):
        assert torch.equal(pa, pb)


def test_nan_loss_stops_the_run_naming_the_step():
    class NaNAfterFive(SquaresProtocolOnly):
        calls = 0

        def sample_observations_from_factors(self, factors, rng):
            images = super().sample_observations_from_factors(factors, rng)
            NaNAfterFive.calls += 1
            return images * np.nan if NaNAfterFive.calls > 5 else images

    trainer = Trainer(deft_config(), data=NaNAfterFive())
    with pytest.raises(TrainingError, match="NaN or inf at step 4"):
        trainer.run()


def test_protocol_only_data_trains_through_the_numpy_fallback():
    trainer = Trainer(deft_config(), data=SquaresProtocolOnly())
    assert not trainer.replicas[0].batches.on_device
    last = trainer.run(until=6)
    assert last["step"] == 6 and math.isfinite(last["train/loss"])
    assert "info/nmi1/size" in last


@pytest.mark.parametrize("kind", ["beta_tcvae", "annealed_vae"])
def test_baselines_open_every_group_from_the_start(kind):
    config = RunConfig.from_dict(
        {
            "model": {"groups": 2, "latents_per_group": 2, **SMALL},
            "objective": {"kind": kind, "capacity_steps": 10},
            "training": {"steps": 4, "batch_size": 8},
            "evaluation": {"interval": 4, "probe_size": 48},
        }
    )
    last = Trainer(config, data=Squares()).run()
    assert last["train/stage"] == 1 and last["lr/group0"] == last["lr/group1"] == 5e-4
    assert last["kl/group1"] > 0 and math.isfinite(last["train/loss"])


def test_representation_returns_encoder_means_and_checks_shape():
    trainer = Trainer(deft_config(), data=Squares())
    images = Squares().images(np.arange(5))
    codes = trainer.representation(images)
    assert codes.shape == (5, 6) and codes.dtype == np.float32
    assert np.array_equal(codes[:, 2:], np.zeros((5, 4), np.float32))  # stage 0: closed groups
    with pytest.raises(ValueError, match="observations must have shape"):
        trainer.representation(images[:, :, :32])


def test_sampling_weights_steer_the_batch_indices():
    class OnlyRowSeven(Squares):
        def sampling_weights(self):
            weights = np.zeros(self.num_samples)
            weights[7] = 1.0
            return weights

    data = OnlyRowSeven()
    source = BatchSource(data, 6, seed=0, device=torch.device("cpu"))
    expected = torch.from_numpy(data.images(np.full(6, 7)))
    assert torch.equal(source.next(), expected)


def test_same_seed_same_run_and_different_seed_different_run():
    a = Trainer(deft_config(), data=Squares()).run(until=3)
    b = Trainer(deft_config(), data=Squares()).run(until=3)
    c = Trainer(deft_config(seed=4), data=Squares()).run(until=3)
    assert a["train/loss"] == b["train/loss"] != c["train/loss"]


def test_frozen_groups_keep_their_weights_while_their_projections_learn():
    trainer = Trainer(frozen_config(), data=Squares())
    reports = collect(trainer, until=6)  # stage 0 ends at step 6
    group0 = [p.detach().clone() for p in trainer.model.encoder.encoders[0].parameters()]
    reports += collect(trainer)
    after = trainer.model.encoder.encoders[0].parameters()
    assert all(torch.equal(a, b) for a, b in zip(group0, after))
    projection = trainer.model.encoder.projections[0]
    assert projection.log_scale.abs().sum() > 0  # rescaled while frozen
    assert [r["lr/group0"] for r in reports] == [1e-3, 1e-3, 0.0, 0.0, 0.0, 0.0]
    # The tracker reports, per open group, the nats gained since the stage began.
    stage2 = reports[-1]
    assert {"info/gain/group0", "info/gain/group1", "info/gain/group2"} <= set(stage2)


def _entered_earlier(reports):
    """Per stage > 0, the earlier groups' encoder gains at the stage's last report."""
    from deft_tune.freezing import stage_gains

    return [s["entered_earlier"] for s in stage_gains(reports) if s["stage"] > 0]


def test_frozen_groups_gain_exactly_nothing_while_their_projections_move_kl():
    reports = collect(Trainer(frozen_config(), data=Squares()))
    entered = _entered_earlier(reports)
    assert entered == [{"group0": 0.0}, {"group0": 0.0, "group1": 0.0}]
    assert all(r["info/diffusion"] == 0.0 for r in reports)
    moved = [r["info/projection/group0"] for r in reports if r["train/stage"] > 0]
    assert any(m != 0.0 for m in moved)  # the projection learns: KL moves, no information


def test_slowed_groups_that_still_learn_show_their_gain():
    reports = collect(Trainer(deft_config(), data=Squares()))  # lr_scale 0.1, then 0
    entered = _entered_earlier(reports)
    assert entered[0]["group0"] > 0.0  # slowed, not stopped: the encoder drifts
    assert entered[1] == {"group0": 0.0, "group1": 0.0}  # lr 0: the encoders stand still
    assert all(r.get("info/projection/group0", 0.0) == 0.0 for r in reports)  # not projected


def _equivalence_config(**training):
    stages = [{"beta": 8, "steps": 40}, {"beta": 4, "steps": 30, "earlier": "freeze"},
              {"beta": 1, "earlier": "freeze"}]  # fmt: skip
    base = {**DEFT["training"], "steps": 100, **training}
    return RunConfig.from_dict({**DEFT, "schedule": {"stages": stages}, "training": base,
                                "evaluation": {"interval": 20, "probe_size": 48}})  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2], ids=["in-turn", "two-workers"])
def test_replica_r_of_a_run_is_the_one_replica_run_with_seed_plus_r(threads):
    from deft_tune.metrics import FAST, evaluate, evaluate_blocks

    torch.set_num_threads(threads)  # 2: the replicas step on two workers, one thread each
    run = Trainer(_equivalence_config(replicas=3, engine="threads"), data=Squares())
    reports = collect(run)
    torch.set_num_threads(1)
    assert [r["train/replicas"] for r in reports] == [3.0] * 5
    sizes = {"num_train": 200, "num_test": 100}
    together = evaluate_blocks(run.representation, run.data, 3, ["mig", "sap"], seed=7,
                               settings=FAST, **sizes)  # fmt: skip
    for r in range(3):
        alone = Trainer(_equivalence_config(seed=DEFT["training"]["seed"] + r), data=Squares())
        single = collect(alone)
        for mine, theirs in zip(run.replicas[r].model.parameters(), alone.model.parameters()):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
        assert [x[f"replica{r}/train/stage"] for x in reports] == [x["train/stage"] for x in single]
        for key in ("train/loss", "kl/group0", "info/active_gain"):
            assert [x[f"replica{r}/{key}"] for x in reports] == pytest.approx(
                [x[key] for x in single], rel=1e-5, abs=1e-6
            )
        scores = evaluate(alone.representation, alone.data, ["mig", "sap"], seed=7,
                          settings=FAST, **sizes)  # fmt: skip
        assert together[r] == pytest.approx(scores, abs=1e-6)
    mean_kl = sum(reports[-1][f"replica{r}/kl/total"] for r in range(3)) / 3
    assert reports[-1]["kl/total"] == pytest.approx(mean_kl)


# --- checkpoints are data, never code ---------------------------------------------------


def _trained(steps=3):
    trainer = Trainer(deft_config(), data=Squares())
    trainer.run(until=steps)
    return trainer


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    path = write_code_running_checkpoint(tmp_path / "evil.pt", marker, _trained().state_dict())
    with pytest.raises(DataError, match="not a deft-tune training checkpoint") as caught:
        Trainer.from_checkpoint(path, data=Squares())
    assert not marker.exists(), "unpickling the checkpoint ran its code"
    assert str(path) in str(caught.value) and "never loaded" in str(caught.value)
    assert "weights_only=False" not in str(caught.value)  # no advice to load it unsafely


def _not_checkpoints(tmp_path):
    state = _trained().state_dict()
    model_file = tmp_path / "model.pt"
    save_model(model_file, deft_config(), _trained().model, (1, 64, 64))
    wrong_shape = {
        **state,
        "replicas": [{**state["replicas"][0], "model": {"x": torch.zeros(2)}}],
    }
    return {
        "random bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
        "zeros": lambda p: p.write_bytes(bytes(4096)),
        "empty": lambda p: p.write_bytes(b""),
        "a list": lambda p: torch.save([1, 2, 3], p),
        "a model file": lambda p: p.write_bytes(model_file.read_bytes()),
        "half a checkpoint": lambda p: torch.save({"step": 3, "config": state["config"]}, p),
        "other weights": lambda p: torch.save(wrong_shape, p),
        "a folder": lambda p: p.mkdir(),
    }


def test_files_that_are_not_checkpoints_are_refused_naming_the_file(tmp_path):
    for what, write in _not_checkpoints(tmp_path).items():
        path = tmp_path / f"{what.replace(' ', '_')}.pt"
        write(path)
        with pytest.raises(DataError) as caught:
            Trainer.from_checkpoint(path, data=Squares())
        message = str(caught.value)
        assert str(path) in message and "\n" not in message, (what, message)
        assert "checkpoint" in message, (what, message)
    model_message = str(
        pytest.raises(DataError, Trainer.from_checkpoint, tmp_path / "a_model_file.pt").value
    )
    assert "it is a model file" in model_message


def test_a_checkpoint_holds_only_tensors_and_plain_data(tmp_path):
    trainer = _trained(steps=18)  # every stage, freezing events, captures
    path = trainer.save_checkpoint(tmp_path / "ckpt.pt")
    state = torch.load(path, weights_only=True)  # raises if anything else were pickled
    assert isinstance(state["config"], dict) and isinstance(
        state["replicas"][0]["batches"]["rng"], dict
    )
    assert Trainer.from_checkpoint(path, data=Squares()).step == 18


def test_scores_default_to_the_standard_setting_on_the_runs_threads(monkeypatch):
    import dataclasses

    import deft_tune.metrics as metrics

    seen = []

    def fake(representation_fn, data, blocks, names, seed, settings):
        seen.append(settings)
        return [{"mig": 0.5}] * blocks

    monkeypatch.setattr(metrics, "evaluate_blocks", fake)
    run = Trainer(deft_config(threads=2), data=Squares())
    torch.set_num_threads(1)
    assert run.scores(["mig"], seed=3) == [{"mig": 0.5}]
    assert run.scores(("mig",), seed=3, settings=metrics.FAST) == [{"mig": 0.5}]
    # DCI's classifiers get the run's CPU share; a given setting is used as it is.
    assert seen == [dataclasses.replace(metrics.STANDARD, n_jobs=2), metrics.FAST]
