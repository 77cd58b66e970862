"""Denoiser networks and timestep embeddings: values, shapes, dtypes and bad input."""

import math

import pytest
import torch

from diffusion_lib.nets import MLPDenoiser, UNet, timestep_embedding
from diffusion_lib.nets.classifier import DigitsClassifier


def test_timestep_embedding_at_t0_is_cos_ones_then_sin_zeros():
    emb = timestep_embedding(torch.tensor([0]), 8)
    assert emb.shape == (1, 8) and emb.dtype == torch.float32
    assert torch.equal(emb, torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]]))


def test_timestep_embedding_values_match_the_formula():
    t = torch.tensor([0, 1, 17, 999])
    dim, half = 10, 5
    emb = timestep_embedding(t, dim)
    for row, step in enumerate(t.tolist()):
        for k in range(half):
            omega = 10_000.0 ** (-k / half)
            assert emb[row, k].item() == pytest.approx(math.cos(step * omega), abs=1e-5)
            assert emb[row, half + k].item() == pytest.approx(math.sin(step * omega), abs=1e-5)


def test_timestep_embedding_odd_dimension_pads_one_zero():
    emb = timestep_embedding(torch.tensor([3, 250]), 7)
    assert emb.shape == (2, 7)
    assert torch.equal(emb[:, -1], torch.zeros(2))
    assert torch.allclose(emb[:, :6], timestep_embedding(torch.tensor([3, 250]), 6))
    assert timestep_embedding(torch.tensor([5]), 1).tolist() == [[0.0]]


@pytest.mark.parametrize(
    "t, dim, error, message",
    [
        (torch.tensor([1]), 0, ValueError, "dim must be an int >= 1, got 0"),
        (torch.tensor([[1]]), 4, ValueError, r"t must be a 1-D tensor of timesteps, got \(1, 1\)"),
        ([1, 2], 4, ValueError, "t must be a 1-D tensor of timesteps, got list"),
    ],
)
def test_timestep_embedding_bad_input(t, dim, error, message):
    with pytest.raises(error, match=message):
        timestep_embedding(t, dim)


def tiny_unet(**kwargs):
    options = dict(base_channels=8, channel_mults=(1, 2), attention_resolutions=(4,), num_heads=2)
    options.update(kwargs)
    return UNet(**options)


def test_unet_output_shape_and_dtype():
    torch.manual_seed(0)
    net = tiny_unet()
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 10, 999])
    out = net(x, t)
    assert out.shape == x.shape and out.dtype == torch.float32
    out64 = net.double()(x.double(), t)
    assert out64.dtype == torch.float64


def test_unet_three_levels_rgb_and_class_conditioning():
    torch.manual_seed(0)
    net = tiny_unet(in_channels=3, image_size=16, channel_mults=(1, 2, 2), num_classes=10)
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([5, 6]), torch.tensor([1, 7])
    assert net(x, t, y).shape == x.shape
    with pytest.raises(ValueError, match="y .* is required"):
        net(x, t)
    with pytest.raises(ValueError, match="unconditional"):
        tiny_unet()(torch.randn(1, 1, 8, 8), torch.tensor([0]), torch.tensor([1]))


def test_unet_starts_as_zero_predictor_and_uses_the_timestep():
    torch.manual_seed(0)
    net = tiny_unet()
    x = torch.randn(2, 1, 8, 8)
    assert net(x, torch.tensor([1, 1])).abs().max().item() == 0.0, "zero-initialised output layer"
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert not torch.allclose(net(x, torch.tensor([1, 1])), net(x, torch.tensor([900, 900])))


def test_unet_bad_configuration_and_input():
    with pytest.raises(ValueError, match=r"image_size must be divisible by 2\^2"):
        tiny_unet(image_size=6, channel_mults=(1, 2, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 8, 8\), got \(2, 1, 4, 4\)"):
        tiny_unet()(torch.randn(2, 1, 4, 4), torch.tensor([0, 0]))


def test_mlp_denoiser_shapes_dtypes_and_bad_input():
    torch.manual_seed(0)
    net = MLPDenoiser(data_dim=2, hidden=16, num_layers=2, time_dim=8)
    x = torch.randn(5, 2)
    assert net(x, torch.arange(5)).shape == (5, 2)
    assert net.double()(x.double(), torch.arange(5)).dtype == torch.float64
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\), got \(5, 3\)"):
        net(torch.randn(5, 3).double(), torch.arange(5))
    with pytest.raises(ValueError, match="must be >= 1"):
        MLPDenoiser(hidden=0)


def test_digits_classifier_shapes():
    torch.manual_seed(0)
    net = DigitsClassifier().eval()
    x = torch.randn(4, 1, 8, 8)
    assert net(x).shape == (4, 10)
    assert net.features(x).shape == (4, 64)
