"""Video diffusion (chapter 15): the space–time U-Net (shapes, frames independent without temporal
layers and coupled with them, temporal attention against a hand computation, label and argument
errors), the "video-diffusion" family (spec checks, the loss on the labels, sampling options,
samples, the GIF, the "samples" output) on tiny untrained networks, and ``python -m diffusion_lib
sample`` on tiny registered entries and on the chapter's own, whose user errors come before any
training. Also the shared check ``files.check_output_path``."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from torch import nn

from diffusion_lib import data, viz, zoo
from diffusion_lib.__main__ import main
from diffusion_lib.families.audio import AudioSpec
from diffusion_lib.families.video import GIF_MAX_CLIPS, VideoSpec
from diffusion_lib.family import families, get_family
from diffusion_lib.files import check_output_path
from diffusion_lib.nets.video import SpaceTimeUNet, TemporalAttention
from diffusion_lib.train import TrainConfig

FAMILY = get_family("video-diffusion")
TINY_NET = {
    "frames": 3,
    "in_channels": 1,
    "image_size": 8,
    "base_channels": 8,
    "channel_mults": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [4],
}


def randomised(module: nn.Module, seed=0, scale=0.3, keep=()) -> nn.Module:
    """Every parameter drawn afresh (the zero-initialised projections included), but those of the
    modules in ``keep``."""
    kept = {id(p) for m in keep for p in m.parameters()}
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if id(p) not in kept:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return module


def temporal_layers(net: nn.Module) -> list:
    return [m for m in net.modules() if isinstance(m, TemporalAttention)]


def videos(b, frames=3, size=8, seed=0) -> torch.Tensor:
    return torch.randn(b, frames, 1, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- the network
def test_the_space_time_unet_maps_videos_to_videos_and_starts_at_zero():
    torch.manual_seed(0)
    net = SpaceTimeUNet(**TINY_NET, num_classes=4)
    x, t, y = videos(2), torch.tensor([1, 9]), torch.tensor([0, 3])
    out = net(x, t, y)
    assert out.shape == (2, 3, 1, 8, 8) and out.dtype == torch.float32
    assert torch.equal(out, torch.zeros_like(out)), "the output convolution starts at zero"
    assert len(temporal_layers(net)) > 0
    assert all(torch.equal(m.proj.weight, torch.zeros_like(m.proj.weight)) for m in temporal_layers(net))
    randomised(net)
    out = net(x, t, y)
    assert torch.isfinite(out).all() and out.abs().mean() > 0
    assert not torch.allclose(out, net(x, t + 1, y), atol=1e-5), "the step matters"
    assert not torch.allclose(out, net(x, t, torch.tensor([1, 2])), atol=1e-5), "the label matters"
    assert torch.allclose(net(x[1:], t[1:], y[1:]), out[1:], atol=1e-5), "each clip on its own"
    assert len(temporal_layers(SpaceTimeUNet(**TINY_NET, temporal=False))) == 0
    wide = SpaceTimeUNet(frames=2, in_channels=3, image_size=16, base_channels=8, channel_mults=(1, 2, 2))
    assert wide(torch.zeros(1, 2, 3, 16, 16), torch.tensor([0])).shape == (1, 2, 3, 16, 16)
    for bad in (torch.zeros(2, 2, 1, 8, 8), torch.zeros(2, 3, 1, 8, 4), torch.zeros(3, 1, 8, 8)):
        with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 1, 8, 8\), got"):
            net(bad, torch.zeros(len(bad)), torch.zeros(len(bad), dtype=torch.long))


def test_the_chapters_network_reads_the_step_and_the_label():
    # Regression: with GroupNorm groups of one channel (16 and 32 channels), an embedding added
    # before the normalisation is subtracted again, and the network ignored t and y entirely.
    net = randomised(SpaceTimeUNet(**zoo.entry("video-ddpm").spec.network), scale=0.1)
    x = torch.randn(2, 8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x, torch.tensor([10, 10]), torch.tensor([0, 1]))
        later = net(x, torch.tensor([500, 500]), torch.tensor([0, 1]))
        other = net(x, torch.tensor([10, 10]), torch.tensor([5, 7]))
    assert (out - later).abs().amax(dim=(1, 2, 3, 4)).min() > 1e-3, "the step matters"
    assert (out - other).abs().amax(dim=(1, 2, 3, 4)).min() > 1e-3, "the label matters"


def perturbed_frame_changes(net, frame=1) -> torch.Tensor:
    """For a batch of two clips with frame ``frame`` of clip 0 changed: which (clip, frame) outputs
    changed at all (exact comparison), a (2, F) bool tensor."""
    x, t = videos(2, seed=1), torch.tensor([3, 3])
    other = x.clone()
    other[0, frame] += torch.randn(other[0, frame].shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = net(x, t), net(other, t)
    return (a != b).flatten(2).any(dim=2)


def test_without_temporal_layers_each_frame_is_denoised_on_its_own():
    net = randomised(SpaceTimeUNet(**TINY_NET, temporal=False))
    changed = perturbed_frame_changes(net, frame=1)
    assert changed.tolist() == [[False, True, False], [False, False, False]]


def test_a_patched_network_folds_patches_into_channels_and_keeps_frames_apart():
    # p = 2: the first convolution sees (4C, H/2, W/2), the output is unfolded to (C, H, W).
    net = randomised(SpaceTimeUNet(**{**TINY_NET, "image_size": 8, "patch_size": 2}, temporal=False))
    assert net.conv_in.in_channels == 4 * TINY_NET["in_channels"]
    x, t = torch.randn(2, TINY_NET["frames"], TINY_NET["in_channels"], 8, 8), torch.tensor([3, 3])
    with torch.no_grad():
        out = net(x, t)
        # The fold is a permutation of the pixels: unfolding what was folded gives x back.
        folded = torch.nn.functional.pixel_unshuffle(x.flatten(0, 1), 2)
    assert out.shape == x.shape
    assert torch.equal(torch.nn.functional.pixel_shuffle(folded, 2).view_as(x), x)
    # Pixels of one 2 × 2 patch are read together: changing one pixel changes its patch's outputs.
    other = x.clone()
    other[0, 1, 0, 0, 0] += 1.0
    with torch.no_grad():
        changed = (net(other, t) != out).flatten(2).any(dim=2)
    assert changed.tolist() == [[False, True, False], [False, False, False]]


def test_temporal_attention_couples_the_frames_once_its_projection_is_not_zero():
    torch.manual_seed(0)
    net = SpaceTimeUNet(**TINY_NET, temporal=True)
    # The temporal layers' output projections start at zero (each layer the identity), so at
    # initialisation the network still treats the frames independently, exactly: everything
    # else is randomised here, but those projections are kept at zero ...
    randomised(net, keep=[m.proj for m in temporal_layers(net)])
    assert perturbed_frame_changes(net, frame=1).tolist() == [[False, True, False], [False, False, False]]
    # ... and once they have random weights, as training would give them, a change to one frame
    # reaches every frame of its clip (and still no other clip).
    for k, layer in enumerate(temporal_layers(net)):
        randomised(layer.proj, seed=100 + k)
    assert perturbed_frame_changes(net, frame=1).tolist() == [[True, True, True], [False, False, False]]
    assert perturbed_frame_changes(net, frame=0).tolist() == [[True, True, True], [False, False, False]]


def test_temporal_attention_is_the_hand_computation():
    torch.manual_seed(0)
    b, f, c, h, w, heads = 2, 3, 4, 2, 3, 2
    layer = TemporalAttention(c, f, num_heads=heads).double()
    assert torch.equal(layer.proj.weight, torch.zeros(c, c)) and torch.equal(layer.proj.bias, torch.zeros(c))
    x = torch.randn(b * f, c, h, w, dtype=torch.float64)
    assert torch.equal(layer(x), x), "a zero projection: the identity"
    randomised(layer, seed=3, scale=0.7)  # LayerNorm, positions, qkv and the projection
    out = layer(x)
    d = c // heads
    expected = x.clone()
    Wqkv, bqkv = layer.qkv.weight, layer.qkv.bias
    for clip in range(b):
        for i in range(h):
            for j in range(w):
                tokens = x[clip * f : (clip + 1) * f, :, i, j]  # (F, C): this pixel in each frame
                mean = tokens.mean(dim=1, keepdim=True)
                var = tokens.var(dim=1, unbiased=False, keepdim=True)
                normed = (tokens - mean) / torch.sqrt(
                    var + layer.norm.eps
                ) * layer.norm.weight + layer.norm.bias
                qkv = (normed + layer.position) @ Wqkv.T + bqkv  # (F, 3C): q, k, v
                q, k, v = qkv[:, :c], qkv[:, c : 2 * c], qkv[:, 2 * c :]
                heads_out = []
                for head in range(heads):
                    part = slice(head * d, (head + 1) * d)
                    scores = q[:, part] @ k[:, part].T / math.sqrt(d)  # (F, F): over frames
                    heads_out.append(torch.softmax(scores, dim=1) @ v[:, part])
                mixed = torch.cat(heads_out, dim=1) @ layer.proj.weight.T + layer.proj.bias
                expected[clip * f : (clip + 1) * f, :, i, j] += mixed
    assert torch.allclose(out, expected, atol=1e-12)
    assert not torch.allclose(out, x, atol=1e-3)


def test_joint_temporal_attention_is_the_hand_computation():
    """joint=True: one sequence per clip of every pixel of every frame, the frame's position added."""
    torch.manual_seed(0)
    b, f, c, h, w, heads = 2, 3, 4, 2, 2, 2
    layer = randomised(TemporalAttention(c, f, num_heads=heads, joint=True).double(), seed=4, scale=0.7)
    x = torch.randn(b * f, c, h, w, dtype=torch.float64)
    out = layer(x)
    d = c // heads
    expected = x.clone()
    for clip in range(b):
        frames = x[clip * f : (clip + 1) * f]  # (F, C, H, W)
        tokens = frames.permute(0, 2, 3, 1).reshape(f * h * w, c)  # every pixel of every frame
        position = layer.position.repeat_interleave(h * w, dim=0)  # each token's frame
        normed = torch.nn.functional.layer_norm(
            tokens, (c,), layer.norm.weight, layer.norm.bias, layer.norm.eps
        )
        qkv = (normed + position) @ layer.qkv.weight.T + layer.qkv.bias
        q, k, v = qkv[:, :c], qkv[:, c : 2 * c], qkv[:, 2 * c :]
        heads_out = []
        for head in range(heads):
            part = slice(head * d, (head + 1) * d)
            scores = q[:, part] @ k[:, part].T / math.sqrt(d)  # (F·H·W, F·H·W)
            heads_out.append(torch.softmax(scores, dim=1) @ v[:, part])
        mixed = torch.cat(heads_out, dim=1) @ layer.proj.weight.T + layer.proj.bias
        expected[clip * f : (clip + 1) * f] += mixed.view(f, h, w, c).permute(0, 3, 1, 2)
    assert torch.allclose(out, expected, atol=1e-12)
    factorised = TemporalAttention(c, f, num_heads=heads).double()
    factorised.load_state_dict(layer.state_dict())
    assert not torch.allclose(factorised(x), out, atol=1e-3), "joint differs from per-pixel attention"


def test_joint_resolutions_choose_which_temporal_layers_are_joint():
    net = SpaceTimeUNet(**TINY_NET, joint_resolutions=[4])
    seen = []
    for layer in temporal_layers(net):
        layer.register_forward_hook(lambda m, inputs, out: seen.append((inputs[0].shape[-1], m.joint)))
    net(videos(1), torch.tensor([3]))
    assert {side for side, _ in seen} == {8, 4} and all(joint == (side == 4) for side, joint in seen)
    assert not any(m.joint for m in temporal_layers(SpaceTimeUNet(**TINY_NET)))


def test_the_space_time_unet_checks_its_labels():
    net = SpaceTimeUNet(**TINY_NET, num_classes=3)
    x, t = videos(2), torch.tensor([0, 1])
    for y, message in [
        (None, r"y must be an integer tensor of shape \(2,\) for a class-conditional network"),
        (torch.tensor([0.0, 1.0]), r"y must be an integer tensor of shape \(2,\)"),
        (torch.tensor([[0, 1]]), r"y must be an integer tensor of shape \(2,\)"),
        (torch.tensor([0, 3]), r"y must hold labels in \[0, 2\], got values in \[0, 3\]"),
        (torch.tensor([-1, 2]), r"y must hold labels in \[0, 2\], got values in \[-1, 2\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            net(x, t, y)
    with pytest.raises(
        ValueError, match=r"y was given but this network is unconditional \(num_classes=None\)"
    ):
        SpaceTimeUNet(**TINY_NET)(x, t, torch.tensor([0, 1]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frames": 0}, "frames must be an int >= 1, got 0"),
        ({"in_channels": 1.0}, "in_channels must be an int >= 1, got 1.0"),
        ({"image_size": True}, "image_size must be an int >= 1, got True"),
        ({"base_channels": -8}, "base_channels must be an int >= 1, got -8"),
        ({"num_res_blocks": "1"}, "num_res_blocks must be an int >= 1, got '1'"),
        (
            {"image_size": 9},
            r"image_size must be divisible by patch_size · 2\^1 = 2 for channel_mults \(1, 2\), got 9",
        ),
        ({"patch_size": 0}, "patch_size must be an int >= 1, got 0"),
        (
            {"patch_size": 8},
            r"image_size must be divisible by patch_size · 2\^1 = 16 for channel_mults \(1, 2\), got 8",
        ),
        (
            {"image_size": 10, "channel_mults": (1, 2, 2)},
            r"image_size must be divisible by patch_size · 2\^2 = 4 for channel_mults \(1, 2, 2\), got 10",
        ),
        ({"temporal": 1}, "temporal must be True or False, got 1"),
        ({"temporal": "yes"}, "temporal must be True or False, got 'yes'"),
        ({"num_classes": 0}, "num_classes must be None or an int >= 1, got 0"),
        ({"num_classes": False}, "num_classes must be None or an int >= 1, got False"),
        ({"base_channels": 6, "attention_resolutions": []}, r"num_heads must divide channels \(6\), got 4"),
    ],
)
def test_the_space_time_unet_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpaceTimeUNet(**{**TINY_NET, **kwargs})


def test_temporal_attention_refuses_heads_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match=r"num_heads must divide channels \(6\), got 4"):
        TemporalAttention(6, 3, num_heads=4)
    assert TemporalAttention(6, 3, num_heads=3).position.shape == (3, 6)


# ---------------------------------------------------------------- the family, without training
def video_entry(name="test-vd-class", *, num_classes=4, temporal=True, T=8) -> zoo.ZooEntry:
    network = {**TINY_NET, "temporal": temporal}
    if num_classes is not None:
        network["num_classes"] = num_classes
    return zoo.ZooEntry(
        name=name,
        description="a tiny video diffusion model, for tests",
        family="video-diffusion",
        spec=VideoSpec(network=network, schedule="cosine", num_timesteps=T),
        data=zoo.DataSpec.dataset("moving_digits", n=16, frames=3),  # never trained here
        sample_shape=(3, 1, 8, 8),
        train=TrainConfig(steps=3, batch_size=4, warmup_steps=1),
        train_threads=1,
        chapter=15,
    )


def loaded(entry: zoo.ZooEntry, seed=0) -> zoo.ZooModel:
    """A "loaded" model without training: the family's network with random weights."""
    net = randomised(FAMILY.build(entry), seed=seed, scale=0.2)
    net.requires_grad_(False)
    return zoo.ZooModel(entry, net.eval(), FAMILY.process(entry), {})


def given(**kwargs) -> dict:
    return {option.dest: kwargs.get(option.dest) for option in FAMILY.sample_options}


def test_a_bad_video_spec_is_refused():
    for network in ([("frames", 3)], None, "frames=3"):
        spec = replace(video_entry().spec, network=network)
        with pytest.raises(ValueError, match="network must be a dict of SpaceTimeUNet's arguments"):
            FAMILY.check_spec(spec)
        with pytest.raises(ValueError, match="network must be a dict of SpaceTimeUNet's arguments"):
            zoo.register(replace(video_entry("test-vd-bad"), spec=spec))
    assert "test-vd-bad" not in zoo.names()
    with pytest.raises(
        ValueError, match="spec must be a VideoSpec for family 'video-diffusion', got AudioSpec"
    ):
        FAMILY.check_spec(AudioSpec(network={}, sample_rate=4000))
    for schedule, steps in (("linear", 20), ("nope", 100)):
        with pytest.raises(ValueError, match=f"schedule '{schedule}' with num_timesteps {steps} is refused"):
            FAMILY.check_spec(replace(video_entry().spec, schedule=schedule, num_timesteps=steps))
    with pytest.raises(ValueError, match="prediction_type must be one of epsilon, x0, v, got 'eps'"):
        FAMILY.check_spec(replace(video_entry().spec, prediction_type="eps"))
    FAMILY.check_spec(video_entry().spec)


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, y=None):
        self.calls.append({"x": x, "t": t, "y": y})
        return 0.5 * x


def captured_loss(monkeypatch, entry):
    seen = {}
    monkeypatch.setattr(FAMILY, "train_network", lambda entry, loss_fn, data, **kw: seen.update(loss=loss_fn))
    FAMILY.train(
        entry, [], dependencies={}, checkpoint=Path("unused"), progress=False, device=torch.device("cpu")
    )
    return seen["loss"]


@pytest.mark.parametrize("num_classes", [10, None])
def test_the_loss_is_l_simple_on_the_clips_labels(monkeypatch, num_classes):
    entry = video_entry(num_classes=num_classes)
    loss_fn = captured_loss(monkeypatch, entry)
    clips = data.Videos(videos(4, seed=1).clamp(-1, 1), torch.tensor([3, 0, 9 % (num_classes or 1), 1]), None)
    recorder = Recorder()
    loss = loss_fn(recorder, [clips.videos, clips.labels], torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # t, then ε, as GaussianDiffusion draws them
    t = torch.randint(0, 8, (4,), generator=g)
    eps = torch.randn(clips.videos.shape, generator=g)
    ab = FAMILY.process(entry).alphas_cumprod[t].float().reshape(4, 1, 1, 1, 1)
    x_t = ab.sqrt() * clips.videos + (1 - ab).sqrt() * eps
    assert torch.allclose(loss, ((eps - 0.5 * x_t) ** 2).mean(), atol=1e-6)
    (call,) = recorder.calls
    assert torch.equal(call["t"], t) and torch.allclose(call["x"], x_t, atol=1e-6)
    if num_classes is None:
        assert call["y"] is None
    else:
        assert torch.equal(call["y"], clips.labels)


def test_a_v_predicting_model_regresses_on_v(monkeypatch):
    entry = video_entry()
    entry = replace(entry, spec=replace(entry.spec, prediction_type="v"))
    loss_fn = captured_loss(monkeypatch, entry)
    clips, labels = videos(4, seed=1).clamp(-1, 1), torch.tensor([3, 0, 1, 2])
    loss = loss_fn(Recorder(), [clips, labels], torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    t = torch.randint(0, 8, (4,), generator=g)
    eps = torch.randn(clips.shape, generator=g)
    ab = FAMILY.process(entry).alphas_cumprod[t].float().reshape(4, 1, 1, 1, 1)
    x_t = ab.sqrt() * clips + (1 - ab).sqrt() * eps
    v = ab.sqrt() * eps - (1 - ab).sqrt() * clips  # Salimans & Ho (2022)'s v
    assert torch.allclose(loss, ((v - 0.5 * x_t) ** 2).mean(), atol=1e-6)


class Constant(nn.Module):
    """A "network" whose output is the same for every input."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x, t, y=None):
        return torch.full_like(x, self.value)


def test_sampling_reads_the_output_as_the_spec_predicts():
    # An x0-predictor that always says 0.25: DDIM's last step returns its x̂0, 0.25 → 0.625 in
    # [0, 1], whatever the noise; read as ε it would give something else.
    entry = video_entry()
    for prediction, expected in (("x0", True), ("epsilon", False)):
        model = zoo.ZooModel(
            replace(entry, spec=replace(entry.spec, prediction_type=prediction)),
            Constant(0.25), FAMILY.process(entry), {},
        )  # fmt: skip
        clips = draw(model, 3, steps=2, eta=0.0)["videos"]
        assert np.allclose(clips, 0.625, atol=1e-6) is expected


def test_sampling_options_default_to_ddim_and_check_the_gif(tmp_path):
    entry = video_entry()
    options = FAMILY.sampling_options(entry, given())
    assert (options["sampler"], options["steps"], options["eta"], options["spacing"]) == (
        "ddim",
        8,
        1.0,
        "leading",
    ), "ddim's 50 steps, capped at T = 8, with η = 1"
    assert options["label"] is None and options["gif"] is None
    assert FAMILY.describe(entry, options) == "ddim (8 steps, eta 1, leading)"
    assert FAMILY.sampling_options(entry, given(eta=0.0))["eta"] == 0.0, "a given η is kept"
    assert FAMILY.sampling_options(entry, given(sampler="dpm-solver++"))["eta"] == 0.0, "no η"
    long = replace(entry, spec=replace(entry.spec, num_timesteps=100))
    assert FAMILY.sampling_options(long, given())["steps"] == 50
    options = FAMILY.sampling_options(entry, given(sampler="ddpm", label=3, gif=str(tmp_path / "a.GIF")))
    assert options["sampler"] == "ddpm" and options["steps"] is None and options["label"] == 3
    assert FAMILY.describe(entry, options) == "ddpm (8 steps), label 3"
    assert options["gif"] == str(tmp_path / "a.GIF") and not (tmp_path / "a.GIF").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 9}, "--steps must be at most the model's 8 training steps, got 9"),
        ({"sampler": "ddpm", "eta": 0.5}, "--eta applies to ddim only, not to ddpm"),
        ({"label": 4}, r"--label must be an int in \[0, 3\] for 'test-vd-class' \(4 classes\), got 4"),
        ({"gif": "{t}/x.png"}, "--gif must be a .gif file, got '{t}/x.png'"),
        ({"gif": "{t}/x"}, "--gif must be a .gif file, got '{t}/x'"),
        ({"gif": "{t}/no/x.gif"}, "--gif '{t}/no/x.gif': its folder '{t}/no' does not exist"),
        ({"gif": "{t}/folder.gif"}, "--gif must be a file, got the folder '{t}/folder.gif'"),
    ],
)
def test_sampling_options_refuse_what_does_not_apply(tmp_path, kwargs, message):
    (tmp_path / "folder.gif").mkdir()
    kwargs = {k: v.replace("{t}", str(tmp_path)) if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=message.replace("{t}", str(tmp_path))) as error:
        FAMILY.sampling_options(video_entry(), given(**kwargs))
    assert "\n" not in str(error.value)


def test_label_on_an_unconditional_video_model_is_refused():
    plain = video_entry("test-vd-plain", num_classes=None, temporal=False)
    with pytest.raises(ValueError, match="--label applies to class-conditional models; 'test-vd-plain' is"):
        FAMILY.sampling_options(plain, given(label=0))


def draw(model, n, seed=0, batch_size=256, **kwargs) -> dict:
    options = FAMILY.sampling_options(model.entry, given(**kwargs))
    with torch.no_grad():
        return FAMILY.sample(
            model, n, batch_size=batch_size, generator=torch.Generator().manual_seed(seed), options=options
        )


def test_samples_are_videos_in_the_unit_interval_with_labels_and_deterministic():
    model = loaded(video_entry())
    arrays = draw(model, 5, steps=2)
    assert set(arrays) == set(FAMILY.sample_arrays) == {"videos", "labels"}
    clips = arrays["videos"]
    assert clips.dtype == np.float32 and clips.shape == (5, 3, 1, 8, 8) and np.isfinite(clips).all()
    assert clips.min() >= 0.0 and clips.max() <= 1.0 and clips.std() > 0
    assert arrays["labels"].dtype == np.int64 and arrays["labels"].tolist() == [0, 1, 2, 3, 0]
    again = draw(model, 5, steps=2)
    assert np.array_equal(again["videos"], clips) and np.array_equal(again["labels"], arrays["labels"])
    deterministic = draw(model, 5, steps=2, eta=0.0)["videos"]
    in_batches = draw(model, 5, steps=2, eta=0.0, batch_size=2)["videos"]
    assert np.allclose(in_batches, deterministic, atol=1e-5), (
        "ddim with η = 0 draws only x_T: batches do not matter"
    )
    assert not np.array_equal(draw(model, 5, seed=1, steps=2)["videos"], clips)
    assert draw(model, 3, steps=2, label=1)["labels"].tolist() == [1, 1, 1]
    plain = draw(loaded(video_entry("test-vd-plain", num_classes=None, temporal=False)), 2, sampler="ddpm")
    assert set(plain) == {"videos"} and plain["videos"].shape == (2, 3, 1, 8, 8)


def gif_frames(path) -> list:
    with Image.open(path) as picture:
        return [np.array(frame.convert("L")) for frame in ImageSequence.Iterator(picture)]


def test_write_files_writes_one_gif_of_every_frame(tmp_path):
    model = loaded(video_entry())
    path = tmp_path / "clips.gif"
    options = FAMILY.sampling_options(model.entry, given(steps=2, gif=str(path)))
    arrays = FAMILY.sample(
        model, 4, batch_size=4, generator=torch.Generator().manual_seed(0), options=options
    )
    assert FAMILY.write_files(arrays, {**options, "gif": None}) == [] and not path.exists()
    assert FAMILY.write_files(arrays, options) == [str(path)]
    frames = gif_frames(path)
    assert len(frames) == 3, "one GIF frame per video frame"
    for k, frame in enumerate(frames):  # each frame: the grid of the clips' frame k, enlarged 4 times
        grid = viz.image_grid(torch.from_numpy(arrays["videos"][:, k]) * 2 - 1)
        expected = np.kron(np.round(grid * 255).astype(np.uint8), np.ones((4, 4), dtype=np.uint8))
        assert frame.shape == expected.shape and np.abs(frame.astype(int) - expected).max() <= 1


def test_the_gif_shows_at_most_64_clips(tmp_path):
    rng = np.random.default_rng(0)
    many = {"videos": rng.random((GIF_MAX_CLIPS + 1, 2, 1, 8, 8)).astype(np.float32)}
    FAMILY.write_files(many, {"gif": str(tmp_path / "many.gif")})
    FAMILY.write_files({"videos": many["videos"][:GIF_MAX_CLIPS]}, {"gif": str(tmp_path / "cap.gif")})
    first, capped = gif_frames(tmp_path / "many.gif"), gif_frames(tmp_path / "cap.gif")
    assert len(first) == 2 and all(np.array_equal(a, b) for a, b in zip(first, capped))


def test_the_samples_output_is_sample_as_tensors_and_checks_its_kwargs():
    model = loaded(video_entry())
    tensors = FAMILY.output(model, "samples", n=3, seed=2, steps=2, progress=False)
    assert set(tensors) == {"videos", "labels"}
    assert torch.equal(tensors["videos"], torch.from_numpy(draw(model, 3, seed=2, steps=2)["videos"]))
    assert tensors["videos"].shape == (3, 3, 1, 8, 8) and tensors["labels"].tolist() == [0, 1, 2]
    for kwargs, message in [
        ({"n": 2, "wav": "x"}, "options must be among .*, got wav"),
        ({"n": 2, "guidance": 2.0}, "got guidance"),
        ({"n": -1}, "n must be an int >= 1, got -1"),
        ({"n": 2, "seed": "0"}, "seed must be an int >= 0, got '0'"),
        ({"n": 2, "batch_size": 0}, "batch_size must be an int >= 1, got 0"),
        ({"n": 2, "label": 9}, r"--label must be an int in \[0, 3\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            FAMILY.output(model, "samples", **kwargs)
    with pytest.raises(
        ValueError, match="output must be one of 'samples' for a video-diffusion, got 'vocoded'"
    ):
        FAMILY.output(model, "vocoded", n=1)


# ---------------------------------------------------------------- the command line, on tiny entries
VIDEO_NET = {**TINY_NET, "frames": 8, "image_size": 16, "attention_resolutions": [8]}
TINY_ENTRIES = [
    zoo.ZooEntry(
        name="tiny-video",
        description="a tiny class-conditional video diffusion model, for tests",
        family="video-diffusion",
        spec=VideoSpec(network={**VIDEO_NET, "num_classes": 10}, schedule="cosine", num_timesteps=8),
        data=zoo.DataSpec.dataset("moving_digits", n=16),
        sample_shape=(8, 1, 16, 16),
        train=TrainConfig(steps=3, batch_size=4, warmup_steps=1),
        train_threads=1,
        chapter=15,
    ),
    zoo.ZooEntry(
        name="tiny-video-plain",
        description="a tiny unconditional independent-frame model, for tests",
        family="video-diffusion",
        spec=VideoSpec(network={**VIDEO_NET, "temporal": False}, schedule="cosine", num_timesteps=8),
        data=zoo.DataSpec.dataset("moving_digits", n=16),
        sample_shape=(8, 1, 16, 16),
        train=TrainConfig(steps=3, batch_size=4, warmup_steps=1),
        train_threads=1,
        chapter=15,
    ),
]


@pytest.fixture
def home(tiny_zoo):
    """This module's TINY_ENTRIES registered in an empty cache (conftest's ``tiny_zoo``)."""
    return tiny_zoo


def test_sample_tiny_video_writes_the_npz_and_the_gif(home, tmp_path, capsys):
    cache, trained = home
    out, gif = tmp_path / "clips.npz", tmp_path / "clips.gif"
    assert main(["sample", "tiny-video", "--n", "3", "--out", str(out), "--gif", str(gif)]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and trained == ["tiny-video"]
    assert line.startswith("sampled 3 videos from tiny-video with ddim (8 steps, eta 1, leading) (seed 0)")
    assert line.endswith(f"wrote {out} and {gif}")
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["labels", "videos"]
        clips, labels = npz["videos"], npz["labels"]
    assert clips.dtype == np.float32 and clips.shape == (3, 8, 1, 16, 16)
    assert clips.min() >= 0.0 and clips.max() <= 1.0
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 2]
    with Image.open(gif) as picture:
        assert picture.format == "GIF" and picture.n_frames == 8


VIDEO = "sample tiny-video --n 2 --out {t}/x.npz"


@pytest.mark.parametrize(
    "command, expected",
    [
        (
            VIDEO + " --wav {t}/wavs",
            "--wav applies to diffwave models; 'tiny-video' is a video-diffusion model",
        ),
        (VIDEO + " --gif {t}/x.png", "--gif must be a .gif file, got '{t}/x.png'"),
        (VIDEO + " --gif {t}/no/x.gif", "--gif '{t}/no/x.gif': its folder '{t}/no' does not exist"),
        (VIDEO + " --gif {t}/folder.gif", "--gif must be a file, got the folder '{t}/folder.gif'"),
        (VIDEO + " --label 10", "--label must be an int in [0, 9] for 'tiny-video' (10 classes), got 10"),
        (
            VIDEO.replace("tiny-video", "tiny-video-plain") + " --label 1",
            "--label applies to class-conditional models; 'tiny-video-plain' is unconditional",
        ),
        (
            VIDEO + " --grid {t}/g.png",
            "--grid draws images or 2-D points; 'tiny-video' makes samples of shape (8, 1, 16, 16)",
        ),
        (VIDEO + " --steps 9", "--steps must be at most the model's 8 training steps, got 9"),
        (VIDEO + " --out {t}/x.gif", "--out must be a .npz file, got '{t}/x.gif'"),
    ],
)
def test_video_user_errors_are_one_line_before_anything_trains(home, tmp_path, capsys, command, expected):
    cache, trained = home
    work = tmp_path / "work"
    work.mkdir()
    (work / "folder.gif").mkdir()
    argv = [a.replace("{t}", str(work)) for a in command.split()]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    assert expected.replace("{t}", str(work)) in captured.err
    assert sorted(p.name for p in work.iterdir()) == ["folder.gif"], "nothing written"
    assert list((work / "folder.gif").iterdir()) == []
    assert not cache.exists() and trained == [], "nothing trained"


@pytest.mark.parametrize(
    "name, args, expected",
    [
        (
            "video-ddpm",
            ["--label", "10"],
            "--label must be an int in [0, 9] for 'video-ddpm' (10 classes), got 10",
        ),
        (
            "video-ddpm",
            ["--steps", "1001"],
            "--steps must be at most the model's 1000 training steps, got 1001",
        ),
        (
            "video-ddpm",
            ["--wav", "{t}/w"],
            "--wav applies to diffwave models; 'video-ddpm' is a video-diffusion",
        ),
        ("video-ddpm", ["--gif", "{t}/x.png"], "--gif must be a .gif file, got '{t}/x.png'"),
        (
            "video-ddpm",
            ["--grid", "{t}/g.png"],
            "--grid draws images or 2-D points; 'video-ddpm' makes samples",
        ),
        (
            "video-frames",
            ["--gif", "{t}/no/x.gif"],
            "--gif '{t}/no/x.gif': its folder '{t}/no' does not exist",
        ),
    ],
)
def test_the_chapters_video_models_refuse_before_training(
    tmp_path, monkeypatch, capsys, name, args, expected
):
    cache, work = tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv(zoo.ENV_HOME, str(cache))
    trained = []
    for family in families().values():
        monkeypatch.setattr(family, "train", lambda entry, *a, **k: trained.append(entry.name))
    args = [a.replace("{t}", str(work)) for a in args]
    assert main(["sample", name, "--n", "2", "--out", str(work / "x.npz"), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert expected.replace("{t}", str(work)) in captured.err
    assert list(work.iterdir()) == [] and not cache.exists() and trained == []


# ---------------------------------------------------------------- shared checks
def test_check_output_path_accepts_a_writable_file_of_the_suffix(tmp_path, monkeypatch):
    assert check_output_path("--gif", str(tmp_path / "a.gif"), ".gif") == tmp_path / "a.gif"
    assert check_output_path("--gif", str(tmp_path / "A.GIF"), ".gif") == tmp_path / "A.GIF", "any case"
    (tmp_path / "old.npz").write_bytes(b"old")
    assert check_output_path("--out", str(tmp_path / "old.npz"), ".npz") == tmp_path / "old.npz"
    assert (tmp_path / "old.npz").read_bytes() == b"old", "checked, not touched"
    monkeypatch.chdir(tmp_path)
    assert check_output_path("--out", "here.npz", ".npz") == Path("here.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.npz"]


@pytest.mark.parametrize(
    "value, suffix, message",
    [
        ("{t}/a.png", ".gif", "--x must be a .gif file, got '{t}/a.png'"),
        ("{t}/a", ".gif", "--x must be a .gif file, got '{t}/a'"),
        ("{t}/a.gif.txt", ".gif", "--x must be a .gif file, got '{t}/a.gif.txt'"),
        ("{t}/dir.npz", ".npz", "--x must be a file, got the folder '{t}/dir.npz'"),
        ("{t}/no/a.npz", ".npz", "--x '{t}/no/a.npz': its folder '{t}/no' does not exist"),
        ("{t}/file.npz/a.npz", ".npz", "--x '{t}/file.npz/a.npz': its folder '{t}/file.npz' does not exist"),
    ],
)
def test_check_output_path_refuses(tmp_path, value, suffix, message):
    (tmp_path / "dir.npz").mkdir()
    (tmp_path / "file.npz").write_bytes(b"")
    with pytest.raises(ValueError) as error:
        check_output_path("--x", value.replace("{t}", str(tmp_path)), suffix)
    assert str(error.value) == message.replace("{t}", str(tmp_path))


def test_check_output_path_refuses_an_unwritable_folder(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root can write anyway: pretend it cannot
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
        with pytest.raises(ValueError) as error:
            check_output_path("--gif", str(locked / "a.gif"), ".gif")
        assert str(error.value) == f"--gif '{locked / 'a.gif'}': its folder '{locked}' is not writable"
        assert check_output_path("--gif", str(tmp_path / "a.gif"), ".gif") == tmp_path / "a.gif"
    finally:
        locked.chmod(0o700)
