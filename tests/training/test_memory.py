"""The memory estimate: exact layer and parameter counts, and runs too large refused up front."""

from __future__ import annotations

import pytest
import torch

from deft_tune.config import RunConfig
from deft_tune.errors import ConfigError
from deft_tune.model.grouped import GroupedVAE
from deft_tune.training import Trainer
from deft_tune.training.memory import (
    FLOAT_BYTES,
    check_training_memory,
    format_bytes,
    training_memory,
)
from tests.doubles import Squares


def _real_counts(shape, groups, per_group, ew, dw):
    """Parameters and per-sample layer outputs of a real model (the oracle)."""
    model = GroupedVAE(shape, groups, per_group, ew, dw)
    outputs = [0]

    def count(module, inputs, output):
        for tensor in output if isinstance(output, tuple) else (output,):
            outputs[0] += tensor.numel()

    for leaf in (m for m in model.modules() if not list(m.children())):
        leaf.register_forward_hook(count)
    with torch.no_grad():
        mean, _ = model.encoder(torch.zeros((1, *shape)))
        model.decoder(mean)
    return sum(p.numel() for p in model.parameters()), outputs[0]


@pytest.mark.parametrize(
    ("shape", "groups", "per_group", "ew", "dw"),
    [((1, 64, 64), 3, 2, 8, 16), ((3, 64, 64), 1, 10, 32, 4), ((1, 64, 64), 4, 1, 5, 7)],
)
def test_the_estimate_counts_exactly_what_a_real_model_holds(shape, groups, per_group, ew, dw):
    parameters, outputs = _real_counts(shape, groups, per_group, ew, dw)
    image = shape[0] * shape[1] * shape[2]
    got = training_memory(
        shape,
        groups=groups,
        latents_per_group=per_group,
        encoder_width=ew,
        decoder_width=dw,
        batch_size=16,
        probe_size=100,
    )
    assert got == {
        "model": 4 * parameters * FLOAT_BYTES,
        "batch": 16 * (image + 2 * outputs) * FLOAT_BYTES,
        "probe": 100 * image * FLOAT_BYTES,
    }


def _config(**sections):
    base = {
        "model": {"groups": 2, "latents_per_group": 2, "encoder_width": 4, "decoder_width": 4},
        "schedule": {"stages": [{"beta": 4, "steps": 4}, {"beta": 1}]},
        "training": {"steps": 8, "batch_size": 8},
        "evaluation": {"interval": 4, "probe_size": 48},
    }
    for section, fields in sections.items():
        base[section] = {**base[section], **fields}
    return RunConfig.from_dict(base)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"model": {"encoder_width": 4096, "decoder_width": 4096}},
            "model.encoder_width / model.decoder_width",
        ),  # at their bound: ~88 GiB
        ({"training": {"batch_size": 10**9}}, "training.batch_size"),
        ({"evaluation": {"probe_size": 10**9}}, "evaluation.probe_size"),
    ],
)
def test_a_run_larger_than_the_machine_is_refused_naming_the_estimate(change, field, monkeypatch):
    import deft_tune.training.memory as memory

    monkeypatch.setattr(memory, "_ram", lambda: ("RAM", 16 * 2**30))  # any machine: 16 GiB
    with pytest.raises(ConfigError) as caught:
        Trainer(_config(**change), data=Squares(), device="cpu")
    message = str(caught.value)
    assert message.startswith("this run needs about ") and " of RAM (" in message
    assert message.endswith(f"there is: lower {field}") and "\n" not in message


def test_each_memory_is_compared_with_its_own_total(monkeypatch):
    import deft_tune.training.memory as memory

    monkeypatch.setattr(memory, "_ram", lambda: ("RAM", 1000))
    check_training_memory({"model": 400, "batch": 500, "probe": 100}, {}, "cpu")
    with pytest.raises(ConfigError, match=r"needs about 1001 B of RAM .*: lower the batch"):
        fields = {"model": "the widths", "batch": "the batch", "probe": "the probe"}
        check_training_memory({"model": 400, "batch": 501, "probe": 100}, fields, "cpu")
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(3 * 2**40) == "3.0 TiB"
