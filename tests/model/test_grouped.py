import pytest
import torch

from deft_tune.model.grouped import (
    GroupedVAE,
    apply_lr_scales,
    describe_parameter_groups,
    parameter_groups,
)


def make_model():
    torch.manual_seed(0)
    return GroupedVAE((1, 64, 64), groups=3, latents_per_group=2, encoder_width=8, decoder_width=8)


def test_closed_groups_output_exact_zero_mean_and_logvar():
    model = make_model()
    model.encoder.set_stage(1)
    mean, logvar = model.encoder(torch.rand(4, 1, 64, 64))
    assert mean.shape == (4, 6)
    assert torch.equal(mean[:, 4:], torch.zeros(4, 2))
    assert torch.equal(logvar[:, 4:], torch.zeros(4, 2))
    assert mean[:, :4].abs().sum() > 0


def test_closed_groups_get_no_gradient():
    model = make_model()
    model.encoder.set_stage(0)
    output, mean, logvar, _ = model(torch.rand(4, 1, 64, 64))
    (output.sum() + mean.sum() + logvar.sum()).backward()
    assert all(p.grad is None for p in model.encoder.encoders[1].parameters())
    assert all(p.grad is not None for p in model.encoder.encoders[0].parameters())


def test_group_of_latent_and_stage_bounds():
    model = make_model()
    assert model.encoder.group_of_latent().tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="stage == 3"):
        model.encoder.set_stage(3)


def test_parameter_groups_are_named_per_group_and_lr_scales_set_exactly():
    model = make_model()
    optimizer = torch.optim.Adam(parameter_groups(model, lr=1e-3))
    names = ["group0", "group1", "group2", "decoder", "projection"]
    assert [g["name"] for g in optimizer.param_groups] == names
    assert apply_lr_scales(optimizer, (0.1, 1.0, 0.0))
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3 * 0.1, 1e-3, 0.0, 1e-3, 1e-3]
    assert not apply_lr_scales(optimizer, (0.1, 1.0, 0.0))  # unchanged -> False
    table = describe_parameter_groups(optimizer)
    assert "group1" in table and "decoder" in table


def test_zero_lr_scale_freezes_a_group_under_adam():
    model = make_model()
    optimizer = torch.optim.Adam(parameter_groups(model, lr=1e-2))
    apply_lr_scales(optimizer, (0.0, 1.0, 0.0))
    model.encoder.set_stage(1)
    before = [p.detach().clone() for p in model.encoder.encoders[0].parameters()]
    for _ in range(3):
        optimizer.zero_grad()
        output, mean, logvar, _ = model(torch.rand(4, 1, 64, 64))
        (output.square().mean() + mean.square().sum()).backward()
        optimizer.step()
    after = list(model.encoder.encoders[0].parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_frozen_groups_get_no_gradient_and_their_projection_does():
    model = make_model()
    model.encoder.set_stage(2, freeze=True)
    output, mean, logvar, _ = model(torch.rand(4, 1, 64, 64))
    (output.sum() + mean.sum() + logvar.sum()).backward()
    for g in (0, 1):
        assert all(p.grad is None for p in model.encoder.encoders[g].parameters())
        assert all(p.grad is not None for p in model.encoder.projections[g].parameters())
    assert all(p.grad is not None for p in model.encoder.encoders[2].parameters())
    assert all(p.grad is None for p in model.encoder.projections[2].parameters())


def test_projection_starts_as_the_identity_and_rescales_mean_and_logvar():
    model = make_model()
    images = torch.rand(4, 1, 64, 64)
    model.encoder.set_stage(2)
    plain = model.encoder(images)
    model.encoder.set_stage(2, freeze=True)
    frozen = model.encoder(images)
    assert all(torch.equal(a, b) for a, b in zip(plain, frozen))  # w1 = w2 = 0: identity
    projection = model.encoder.projections[0]
    with torch.no_grad():
        projection.log_scale.copy_(torch.tensor([0.5, 0.0]))
        projection.logvar_shift.copy_(torch.tensor([0.0, -1.0]))
    mean, logvar = model.encoder(images)
    expected_mean = plain[0][:, 0] * torch.exp(torch.tensor(0.5))
    assert torch.allclose(mean[:, 0], expected_mean) and torch.equal(mean[:, 1], plain[0][:, 1])
    assert torch.equal(logvar[:, 1], plain[1][:, 1] - 1.0)
    assert torch.equal(logvar[:, 0], plain[1][:, 0])


def test_freezing_keeps_earlier_encoders_exactly_under_adam():
    model = make_model()
    optimizer = torch.optim.Adam(parameter_groups(model, lr=1e-2))
    model.encoder.set_stage(1, freeze=True)
    before = [p.detach().clone() for p in model.encoder.encoders[0].parameters()]
    for _ in range(3):
        optimizer.zero_grad()
        output, mean, logvar, _ = model(torch.rand(4, 1, 64, 64))
        (output.square().mean() + mean.square().sum()).backward()
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.encoder.encoders[0].parameters()))
    assert model.encoder.projections[0].log_scale.abs().sum() > 0  # the projection trained
