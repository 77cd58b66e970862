"""Denoiser networks and timestep embeddings: values, shapes, dtypes and bad input."""

import hashlib
import math

import pytest
import torch

from diffusion_lib.nets import MLPDenoiser, UNet, timestep_embedding
from diffusion_lib.nets.classifier import DigitsClassifier
from diffusion_lib.nets.unet import EncoderClassifier


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


# ---------------------------------------------------------------- the null label (chapter 11)
def parameter_signature(net) -> tuple:
    """The number of tensors in the state dict and a hash of their names and shapes, in order."""
    state = net.state_dict()
    text = ";".join(f"{name}:{tuple(value.shape)}" for name, value in state.items())
    return len(state), hashlib.sha256(text.encode()).hexdigest()[:16]


def test_unets_without_a_null_label_keep_their_parameters():
    # Golden values: the UNet as it was before the null label existed (git 701bdc1), so that
    # cached weights of digits-ddpm and friends still load with strict=True.
    assert parameter_signature(tiny_unet()) == (128, "bc15c08d1ecb6c10")
    assert parameter_signature(tiny_unet(num_classes=10)) == (129, "bfc9d8407cb1b7ea")
    with_null = tiny_unet(num_classes=10, null_label=True).state_dict()
    assert list(with_null) == list(tiny_unet(num_classes=10).state_dict()), "same names"
    assert with_null["class_emb.weight"].shape == (11, 32), "one more row: the label 10"


# 40 channels: GroupNorm's groups hold 5 channels each (with at most 32 channels every group holds
# one, and a normalisation that removes each channel's mean also removes the per-channel shift
# that carries t and y; only blocks with more channels than groups see them).
WIDE = 40


def test_the_null_label_is_one_more_label():
    torch.manual_seed(0)
    net = tiny_unet(num_classes=10, null_label=True, base_channels=WIDE)
    assert net.label_range == (0, 10) and tiny_unet(num_classes=10).label_range == (0, 9)
    assert tiny_unet().label_range is None
    x, t = torch.randn(1, 1, 8, 8).expand(3, -1, -1, -1), torch.tensor([5, 5, 5])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))  # away from the zero-initialised branches and output
        out = net(x, t, torch.tensor([10, 10, 3]))
    assert out.shape == x.shape
    assert torch.equal(out[0], out[1]) and (out[0] - out[2]).abs().max() > 1e-2, "x equal, labels differ"
    emb = net.embed(t, torch.tensor([10, 10, 10])) - net.embed(t, torch.tensor([0, 0, 0]))
    assert torch.allclose(emb, (net.class_emb.weight[10] - net.class_emb.weight[0]).expand(3, -1))


@pytest.mark.parametrize(
    "null_label, y, message",
    [
        (False, [0, 10], r"y must hold labels in \[0, 9\], got values in \[0, 10\]"),
        (False, [-1, 3], r"y must hold labels in \[0, 9\], got values in \[-1, 3\]"),
        (True, [11, 2], r"y must hold labels in \[0, 10\] \(10 is the null label\), got values in \[2, 11\]"),
        (True, [1.0, 2.0], r"y must be an integer tensor of shape \(2,\), got torch.float32 \(2,\)"),
        (True, [1, 2, 3], r"y must be an integer tensor of shape \(2,\), got torch.int64 \(3,\)"),
    ],
)
def test_labels_out_of_range_are_refused(null_label, y, message):
    net = tiny_unet(num_classes=10, null_label=null_label)
    with pytest.raises(ValueError, match=message):
        net(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor(y))


def test_a_null_label_needs_classes():
    with pytest.raises(ValueError, match="null_label=True needs num_classes"):
        tiny_unet(null_label=True)
    with pytest.raises(ValueError, match="null_label must be True or False, got 1"):
        tiny_unet(num_classes=10, null_label=1)
    with pytest.raises(ValueError, match="num_classes must be None or an int >= 1, got 0"):
        tiny_unet(num_classes=0)


# ---------------------------------------------------------------- the noise-aware classifier
def tiny_encoder(**kwargs):
    options = dict(base_channels=8, channel_mults=(1, 2), attention_resolutions=(4,), num_heads=2)
    options.update(kwargs)
    return EncoderClassifier(**options)


def test_encoder_classifier_shapes_and_a_uniform_start():
    torch.manual_seed(0)
    net = tiny_encoder(num_classes=7)
    x, t = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 250, 500, 999])
    logits = net(x, t)
    assert logits.shape == (5, 7) and logits.dtype == torch.float32
    assert logits.abs().max().item() == 0.0, "zero-initialised head: every class equally likely"
    assert net.double()(x.double(), t).dtype == torch.float64
    rgb = tiny_encoder(in_channels=3, image_size=16, channel_mults=(1, 2, 2))
    assert rgb(torch.randn(2, 3, 16, 16), torch.tensor([3, 4])).shape == (2, 10)


def test_encoder_classifier_depends_on_t_and_x():
    torch.manual_seed(0)
    net = tiny_encoder(base_channels=WIDE)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))  # away from the zero-initialised branches and head
    x = torch.randn(2, 1, 8, 8)
    early, late = net(x, torch.tensor([1, 1])), net(x, torch.tensor([900, 900]))
    assert (early - late).abs().max() > 1e-2, "the timestep embedding reaches the logits"
    assert (early - net(x.flip(0), torch.tensor([1, 1]))).abs().max() > 1e-2, "and so does x"
    assert torch.allclose(early[1], net(x[1:], torch.tensor([1]))[0], atol=1e-6), "examples independent"


def test_encoder_classifier_is_the_unets_down_path():
    # One piece of code per idea: the classifier's blocks are the U-Net's, with the same names
    # and shapes (and, from the same seed, the same initial weights up to the middle block).
    torch.manual_seed(0)
    unet = tiny_unet().state_dict()
    torch.manual_seed(0)
    encoder = tiny_encoder().state_dict()
    shared = [k for k in unet if k.split(".")[0] in ("time_mlp", "conv_in", "down", "middle")]
    assert [k for k in encoder if k.split(".")[0] not in ("norm", "head")] == shared
    assert all(torch.equal(encoder[k], unet[k]) for k in shared)
    assert encoder["head.weight"].shape == (10, 16) and encoder["norm.weight"].shape == (16,)


def test_encoder_classifier_bad_configuration_and_input():
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got 1"):
        tiny_encoder(num_classes=1)
    with pytest.raises(ValueError, match=r"image_size must be divisible by 2\^2"):
        tiny_encoder(image_size=6, channel_mults=(1, 2, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 8, 8\), got \(2, 1, 4, 4\)"):
        tiny_encoder()(torch.randn(2, 1, 4, 4), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="t must be a 1-D tensor of timesteps"):
        tiny_encoder()(torch.randn(2, 1, 8, 8), torch.tensor(3))
