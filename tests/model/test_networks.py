import math

import pytest
import torch

from deft_tune.model.networks import Decoder, Encoder, reconstruction_loss


@pytest.mark.parametrize(("channels", "width"), [(1, 32), (3, 8)])
def test_encoder_and_decoder_shapes(channels, width):
    encoder = Encoder(channels, latents=5, width=width)
    decoder = Decoder(5, channels, width=width)
    mean, logvar = encoder(torch.zeros(2, channels, 64, 64))
    assert mean.shape == logvar.shape == (2, 5)
    assert decoder(mean).shape == (2, channels, 64, 64)


def test_disentanglement_lib_layer_sizes_at_width_32():
    encoder = Encoder(1, latents=10, width=32)
    convs = [m for m in encoder.convs if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert encoder.head[1].in_features == 1024 and encoder.head[1].out_features == 256
    assert encoder.head[3].out_features == 20
    decoder = Decoder(10, 1, width=32)
    assert decoder.dense[2].out_features == 1024


def test_bernoulli_loss_equals_hand_computed_cross_entropy():
    logits = torch.zeros(1, 1, 64, 64)
    target = torch.ones(1, 1, 64, 64)
    # sigmoid(0) = 1/2 -> -log(1/2) per pixel, 4096 pixels.
    assert reconstruction_loss(logits, target, "bernoulli").item() == pytest.approx(
        4096 * math.log(2)
    )


def test_gaussian_loss_is_squared_distance_of_sigmoid_means():
    logits = torch.zeros(1, 1, 64, 64)
    target = torch.zeros(1, 1, 64, 64)
    target[0, 0, 0, :4] = 1.0  # 4 pixels off by 0.5, the rest off by 0.5 too
    assert reconstruction_loss(logits, target, "gaussian").item() == pytest.approx(4096 * 0.25)


def test_reconstruction_loss_refuses_bad_shapes_and_kinds():
    with pytest.raises(ValueError, match="output shape"):
        reconstruction_loss(torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 32, 32), "bernoulli")
    with pytest.raises(ValueError, match="kind == 'l1'"):
        reconstruction_loss(torch.zeros(1, 4), torch.zeros(1, 4), "l1")
