import logging

import pytest
import torch

from deft_tune.config import RunConfig
from deft_tune.errors import DataError
from deft_tune.model import FORMAT, build_model, load_model, save_model

CONFIG = RunConfig.from_dict({
    "data": {"name": "squares"},
    "model": {"groups": 3, "latents_per_group": 2, "encoder_width": 4, "decoder_width": 4},
    "schedule": {"stages": [{"beta": 4, "steps": 4}, {"beta": 2, "steps": 4},
                            {"beta": 1, "earlier": "freeze"}]},
})  # fmt: skip
SHAPE = (1, 64, 64)


def _saved(tmp_path, stage=1, freeze=True):
    model = build_model(CONFIG, SHAPE)
    model.encoder.set_stage(stage, freeze=freeze)
    return save_model(tmp_path / "model.pt", CONFIG, model, SHAPE), model


@pytest.mark.parametrize("stage, freeze", [(0, False), (1, True), (2, False)])
def test_a_model_loads_in_the_stage_state_it_was_saved_in(tmp_path, stage, freeze):
    path, model = _saved(tmp_path, stage, freeze)
    assert torch.load(path, weights_only=True)["format"] == FORMAT == 2
    encoder = load_model(path)[1].encoder
    assert (encoder.stage, encoder.freeze) == (stage, freeze)
    images = torch.rand(3, *SHAPE)
    assert torch.equal(encoder(images)[0], model.eval().encoder(images)[0])


def test_a_file_without_stage_state_loads_every_group_open_with_one_warning(tmp_path, caplog):
    path, _ = _saved(tmp_path)
    saved = torch.load(path, weights_only=True)
    old = {k: v for k, v in saved.items() if k not in ("format", "stage", "freeze")}
    torch.save(old, path)
    with caplog.at_level(logging.WARNING):
        encoder = load_model(path)[1].encoder
    assert (encoder.stage, encoder.freeze) == (2, False)
    [record] = caplog.records
    message = record.getMessage()
    assert str(path) in message and "predates the stage state" in message
    assert "every group open and none frozen" in message and "\n" not in message


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": 3}, "model file format 3, which this deft-tune does not read (formats 1 to 2)"),
        ({"stage": 3}, "its stage state (stage 3, freeze True) does not fit its model of 3 groups"),
        ({"freeze": "yes"}, "(stage 1, freeze 'yes') does not fit"),
    ],
)
def test_a_bad_stage_state_or_format_is_refused_in_one_line(tmp_path, change, message):
    path, _ = _saved(tmp_path)
    torch.save({**torch.load(path, weights_only=True), **change}, path)
    with pytest.raises(DataError) as caught:
        load_model(path)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
