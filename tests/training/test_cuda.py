"""The CUDA paths: skipped without CUDA (tests/conftest.py), run on a GPU by
benchmarks/gpu_check.py (``pytest -m cuda tests/training/test_cuda.py``)."""

import dataclasses
import math

import pytest

from deft_tune.training import Trainer, read_checkpoint
from tests.doubles import Squares
from tests.training.test_stacked import with_engine
from tests.training.test_trainer import collect, deft_config, frozen_config

pytestmark = pytest.mark.cuda


def test_auto_on_cuda_stacks_replicas_and_one_model_runs_channels_last():
    stacked = Trainer(deft_config(replicas=2, device="cuda"), data=Squares())
    single = Trainer(deft_config(device="cuda"), data=Squares())
    assert (stacked.config.training.engine, stacked.config.training.memory_format) == (
        "stacked",
        "contiguous",
    )
    assert single.config.training.memory_format == "channels_last"
    assert math.isfinite(stacked.run(until=6)["train/loss"])
    assert math.isfinite(single.run(until=6)["train/loss"])


def test_stacked_replicas_on_cuda_match_the_threads_engine():
    """Looser than on the CPU: cuDNN picks other kernels (TF32) for grouped convolutions."""
    reports = {}
    for engine in ("threads", "stacked"):
        config = with_engine(frozen_config(), engine, replicas=2)
        training = dataclasses.replace(config.training, device="cuda")
        reports[engine] = collect(Trainer(config.replace(training=training), data=Squares()))
    for x, y in zip(reports["threads"], reports["stacked"]):
        assert set(x) == set(y)
        for r in range(2):
            key = f"replica{r}/train/loss"
            assert y[key] == pytest.approx(x[key], rel=5e-3)


@pytest.mark.parametrize("engine", ["threads", "stacked"])
def test_bf16_autocast_trains_on_cuda(engine):
    config = deft_config(replicas=2, device="cuda", precision="bf16", engine=engine)
    last = Trainer(config, data=Squares()).run()
    assert math.isfinite(last["train/loss"]) and last["step"] == 18


def test_a_cuda_checkpoint_continues_on_the_cpu(tmp_path):
    config = deft_config(replicas=2, device="cuda", engine="stacked")
    trainer = Trainer(config, data=Squares())
    trainer.run(until=9)
    trainer.save_checkpoint(tmp_path / "last.pt")
    cpu = Trainer(with_engine(config, "threads"), data=Squares(), device="cpu")
    cpu.load_state_dict(read_checkpoint(tmp_path / "last.pt"))
    assert math.isfinite(cpu.run()["train/loss"])
