"""DiffWave (chapter 15): the network (zero-initialised output, its receptive field by autograd,
non-causality, the class and mel conditioners and their errors), the "diffwave" family (spec
checks, the loss on the right conditioning, sampling options, samples, WAV files, the "samples"
and "vocoded" outputs, ``vocode``) on tiny untrained networks, and ``python -m diffusion_lib
sample`` on tiny registered entries and on the chapter's own, whose user errors come before any
training. Also the shared checks ``files.check_output_folder`` and ``sampling.check_label``."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_lib import audio, data, samplers, zoo
from diffusion_lib.__main__ import main
from diffusion_lib.families.audio import FAST_ETA, AudioSpec, mel_of, vocode
from diffusion_lib.family import families, get_family
from diffusion_lib.files import check_output_folder
from diffusion_lib.nets.diffwave import DiffWave, receptive_field
from diffusion_lib.sampling import check_label
from diffusion_lib.train import TrainConfig

RATE = data.WAVEFORM_SAMPLE_RATE
LENGTH = data.WAVEFORM_LENGTH
TINY_NET = {"residual_channels": 4, "num_layers": 3, "dilation_cycle": 3, "step_dim": 8}
TINY_MEL = {"n_fft": 128, "hop": 16, "n_mels": 16}
FAMILY = get_family("diffwave")


def randomised(module: nn.Module, seed=0, scale=0.3) -> nn.Module:
    """Every parameter drawn afresh (the zero-initialised output included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return module


def random_out(net: DiffWave, seed=0) -> DiffWave:
    """The network with a random, non-zero ``conv_out`` (it starts at zero: ε = 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.conv_out.weight.copy_(
            torch.randn(net.conv_out.weight.shape, generator=g, dtype=net.conv_out.weight.dtype)
        )
        net.conv_out.bias.fill_(0.1)
    return net


def clips(b, length, seed=0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 1, length, generator=g, dtype=dtype) * 2 - 1).to(dtype)


# ---------------------------------------------------------------- the network
def test_diffwave_maps_clips_to_clips_and_starts_at_zero():
    torch.manual_seed(0)
    net = DiffWave(64, **TINY_NET)
    x, t = clips(3, 64), torch.tensor([0, 4, 9])
    out = net(x, t)
    assert out.shape == (3, 1, 64) and out.dtype == torch.float32
    assert torch.equal(out, torch.zeros_like(out)), "conv_out is zero-initialised: ε = 0 at init"
    assert torch.equal(net.conv_out.weight, torch.zeros_like(net.conv_out.weight))
    random_out(net)
    out = net(x, t)
    assert out.abs().min() > 0 and torch.isfinite(out).all()
    assert not torch.allclose(out, net(x, t + 1), atol=1e-6), "the step matters"
    assert torch.allclose(net(x[:1], t[:1]), out[:1], atol=1e-6), "each clip on its own"
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 64\), got \(3, 1, 65\)"):
        net(clips(3, 65), t)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 64\), got \(3, 64\)"):
        net(x[:, 0], t)


def _positive_relus(net: DiffWave) -> DiffWave:
    """Keep the two ReLUs open everywhere, so that no gradient inside the field vanishes by
    chance: conv_in maps inputs in [0, 1] to positive values, and the skip output's bias is large."""
    with torch.no_grad():
        net.conv_in.weight.abs_()
        net.conv_in.bias.abs_().add_(0.5)
        net.skip_out.bias.fill_(5.0)
    return net


@pytest.mark.parametrize(
    "layers, cycle, base", [(1, 1, 2), (3, 3, 2), (4, 2, 2), (5, 3, 2), (3, 3, 3), (2, 1, 3), (4, 4, 3)]
)
def test_the_receptive_field_by_autograd_is_the_formula(layers, cycle, base):
    field = receptive_field(layers, cycle, dilation_base=base)
    assert field == 1 + 2 * sum(base ** (i % cycle) for i in range(layers))
    length, i = 128, 64
    net = DiffWave(length, 3, layers, cycle, step_dim=4, dilation_base=base).double()
    assert net.receptive_field == field
    randomised(net, seed=layers * 10 + base)
    _positive_relus(net)
    x = torch.rand(1, 1, length, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x.requires_grad_(True)
    net(x, torch.tensor([3]))[0, 0, i].backward()
    grad = x.grad[0, 0]
    half = (field - 1) // 2
    inside = torch.zeros(length, dtype=torch.bool)
    inside[i - half : i + half + 1] = True
    assert (grad[~inside] == 0).all(), "no dependence outside the field"
    assert (grad[inside] != 0).all(), "every sample inside the field counts"
    assert int(inside.sum()) == field


def test_the_network_is_not_causal_it_sees_the_future():
    torch.manual_seed(0)
    net = random_out(DiffWave(64, **TINY_NET)).double()
    x = clips(1, 64, dtype=torch.float64)
    t = torch.tensor([5])
    i = 20
    later = x.clone()
    later[0, 0, i + 1 :] += 0.5  # change only what comes after sample i
    before, after = net(x, t)[0, 0], net(later, t)[0, 0]
    half = receptive_field(3, 3) // 2
    assert torch.equal(before[: i - half], after[: i - half]), "out of reach of the change"
    assert before[i] != after[i], "sample i depends on samples after i"
    earlier = x.clone()
    earlier[0, 0, :i] += 0.5
    assert net(earlier, t)[0, 0, i] != before[i], "and on samples before i"


def test_class_conditioning_changes_the_output_and_checks_the_labels():
    torch.manual_seed(0)
    net = random_out(DiffWave(64, **TINY_NET, num_classes=3))
    x, t = clips(2, 64), torch.tensor([2, 2])
    zero, one = net(x, t, torch.tensor([0, 0])), net(x, t, torch.tensor([1, 1]))
    assert not torch.allclose(zero, one, atol=1e-6), "the label matters"
    assert torch.allclose(net(x, t, torch.tensor([0, 1]))[1], one[1], atol=1e-6)
    for y, message in [
        (torch.tensor([0, 3]), r"y must hold labels in \[0, 2\], got values in \[0, 3\]"),
        (torch.tensor([-1, 0]), r"y must hold labels in \[0, 2\], got values in \[-1, 0\]"),
        (None, r"y must be an integer tensor of shape \(2,\) for a class-conditional DiffWave"),
        (torch.tensor([0.0, 1.0]), r"y must be an integer tensor of shape \(2,\)"),
        (torch.tensor([0, 1, 2]), r"y must be an integer tensor of shape \(2,\)"),
        ([0, 1], r"y must be an integer tensor of shape \(2,\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            net(x, t, y)
    plain = DiffWave(64, **TINY_NET)
    with pytest.raises(ValueError, match=r"y was given but this DiffWave is not class-conditional"):
        plain(x, t, torch.tensor([0, 1]))


def test_the_vocoder_upsamples_the_mel_to_the_clip_and_checks_it():
    torch.manual_seed(0)
    length, hop, n_mels = 100, 9, 5
    net = random_out(DiffWave(length, **TINY_NET, n_mels=n_mels, hop=hop))
    frames = math.ceil(length / hop)  # 12
    mel = torch.randn(2, n_mels, frames)
    up = net.upsample_mel(mel)
    assert up.shape == (2, n_mels, length)
    assert net.upsample_mel(torch.randn(2, n_mels, frames + 3)).shape == (2, n_mels, length)
    x, t = clips(2, length), torch.tensor([1, 7])
    out = net(x, t, mel=mel)
    assert out.shape == (2, 1, length)
    assert not torch.allclose(out, net(x, t, mel=mel + 1.0), atol=1e-6), "the mel matters"
    with pytest.raises(
        ValueError, match=f"mel must have at least {frames} frames for {length} samples, got 11"
    ):
        net(x, t, mel=mel[:, :, :-1])
    with pytest.raises(ValueError, match=r"mel must have shape \(2, 5, frames\), got None"):
        net(x, t)
    with pytest.raises(ValueError, match=r"mel must have shape \(2, 5, frames\), got \(2, 4, 12\)"):
        net(x, t, mel=mel[:, :4])
    with pytest.raises(ValueError, match=r"mel must have shape \(2, 5, frames\), got \(1, 5, 12\)"):
        net(x, t, mel=mel[:1])
    with pytest.raises(ValueError, match=r"y was given but this DiffWave is not class-conditional"):
        net(x, t, torch.tensor([0, 1]), mel=mel)
    with pytest.raises(ValueError, match=r"mel was given but this DiffWave is not a vocoder \(n_mels=None\)"):
        DiffWave(length, **TINY_NET)(x, t, mel=mel)
    with pytest.raises(ValueError, match=r"mel was given but this DiffWave is not a vocoder"):
        DiffWave(length, **TINY_NET, num_classes=2)(x, t, torch.tensor([0, 1]), mel=mel)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"length": 0}, "length must be an int >= 1, got 0"),
        ({"length": 64.0}, "length must be an int >= 1, got 64.0"),
        ({"residual_channels": True}, "residual_channels must be an int >= 1, got True"),
        ({"num_layers": -1}, "num_layers must be an int >= 1, got -1"),
        ({"dilation_cycle": 0}, "dilation_cycle must be an int >= 1, got 0"),
        ({"step_dim": "8"}, "step_dim must be an int >= 1, got '8'"),
        ({"dilation_base": 0}, "dilation_base must be an int >= 1, got 0"),
        ({"num_classes": 0}, "num_classes must be None or an int >= 1, got 0"),
        ({"num_classes": True}, "num_classes must be None or an int >= 1, got True"),
        ({"num_classes": 2.0}, "num_classes must be None or an int >= 1, got 2.0"),
        ({"n_mels": 8}, "n_mels and hop go together, got n_mels=8, hop=None"),
        ({"hop": 16}, "n_mels and hop go together, got n_mels=None, hop=16"),
        ({"n_mels": 8, "hop": 16, "num_classes": 3}, "a DiffWave takes one conditioner"),
        ({"n_mels": 8, "hop": 8}, r"hop must be the square of an int >= 2 \(4, 9, 16, …\), got 8"),
        ({"n_mels": 8, "hop": 1}, "hop must be the square of an int >= 2.*got 1"),
        ({"n_mels": 8, "hop": 0}, "hop must be the square of an int >= 2.*got 0"),
        ({"n_mels": 8, "hop": 16.0}, "hop must be the square of an int >= 2.*got 16.0"),
        ({"n_mels": 8, "hop": True}, "hop must be the square of an int >= 2.*got True"),
        ({"n_mels": 0, "hop": 16}, "n_mels must be an int >= 1, got 0"),
        ({"n_mels": 8.0, "hop": 16}, "n_mels must be an int >= 1, got 8.0"),
    ],
)
def test_diffwave_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DiffWave(**{"length": 64, **kwargs})


def test_good_hops_are_squares():
    for hop in (4, 9, 16, 64):
        assert DiffWave(64, **TINY_NET, n_mels=3, hop=hop).hop == hop


# ---------------------------------------------------------------- the family, without training
def audio_entry(name="test-dw-class", *, length=64, num_classes=3, vocoder=False, T=8) -> zoo.ZooEntry:
    network = {"length": length, **TINY_NET}
    if vocoder:
        network.update(n_mels=TINY_MEL["n_mels"], hop=TINY_MEL["hop"])
        spec = AudioSpec(network=network, sample_rate=RATE, schedule="cosine", num_timesteps=T, mel=TINY_MEL)
    else:
        if num_classes is not None:
            network["num_classes"] = num_classes
        spec = AudioSpec(network=network, sample_rate=RATE, schedule="cosine", num_timesteps=T)
    return zoo.ZooEntry(
        name=name,
        description="a tiny DiffWave, for tests",
        family="diffwave",
        spec=spec,
        data=zoo.DataSpec.dataset("waveforms", n=16),
        sample_shape=(1, length),
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


@pytest.mark.parametrize(
    "change, message",
    [
        ({"network": [("length", 64)]}, "network must be a dict of DiffWave's arguments"),
        ({"sample_rate": 0}, r"sample_rate must be an int in \[1, 384000\], got 0"),
        ({"sample_rate": 400_000}, r"sample_rate must be an int in \[1, 384000\], got 400000"),
        ({"sample_rate": 4000.0}, r"sample_rate must be an int in \[1, 384000\], got 4000.0"),
        ({"sample_rate": True}, r"sample_rate must be an int in \[1, 384000\], got True"),
        ({"mel": TINY_MEL}, "a vocoder .* needs mel settings and only a vocoder takes them; got n_mels=None"),
        # Ho et al.'s linear schedule needs T > 20 (its last β is 0.02·1000/T): refused at registration.
        ({"schedule": "linear", "num_timesteps": 20}, r"schedule 'linear' with num_timesteps 20 is refused"),
        ({"schedule": "nope"}, r"schedule 'nope' with num_timesteps .* is refused: name must be one of"),
    ],
)
def test_a_bad_audio_spec_is_refused(change, message):
    spec = replace(audio_entry().spec, **change)
    with pytest.raises(ValueError, match=message):
        FAMILY.check_spec(spec)
    with pytest.raises(ValueError, match=message):
        zoo.register(replace(audio_entry(name="test-dw-bad"), spec=spec))
    assert "test-dw-bad" not in zoo.names()


@pytest.mark.parametrize(
    "mel, message",
    [
        ({}, r"a vocoder .* needs mel settings .*got n_mels=16, mel=\{\}"),
        ({**TINY_MEL, "n_mels": 8}, r"mel\['n_mels'\] must equal the network's n_mels \(16\), got 8"),
        ({**TINY_MEL, "hop": 4}, r"mel\['hop'\] must equal the network's hop \(16\), got 4"),
        ({"n_fft": 128, "n_mels": 16}, r"mel\['hop'\] must equal the network's hop \(16\), got None"),
    ],
)
def test_a_vocoder_spec_needs_matching_mel_settings(mel, message):
    spec = replace(audio_entry(vocoder=True).spec, mel=mel)
    with pytest.raises(ValueError, match=message):
        FAMILY.check_spec(spec)


def test_a_spec_of_another_family_is_refused():
    from diffusion_lib.families.video import VideoSpec

    with pytest.raises(ValueError, match="spec must be a AudioSpec for family 'diffwave', got VideoSpec"):
        FAMILY.check_spec(VideoSpec(network={}))
    FAMILY.check_spec(audio_entry().spec)
    FAMILY.check_spec(audio_entry(vocoder=True).spec)


def captured_loss(monkeypatch, entry):
    """The loss function the family's ``train`` hands to ``train_network``."""
    seen = {}

    def capture(entry, loss_fn, data, **kwargs):
        seen["loss"] = loss_fn

    monkeypatch.setattr(FAMILY, "train_network", capture)
    FAMILY.train(
        entry, [], dependencies={}, checkpoint=Path("unused"), progress=False, device=torch.device("cpu")
    )
    return seen["loss"]


class Recorder(nn.Module):
    """A network that records its inputs and returns a fixed function of x and t."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, y=None, mel=None):
        self.calls.append({"x": x, "t": t, "y": y, "mel": mel})
        return 0.5 * x + 0.01 * t.float()[:, None, None]


def l_simple_by_hand(entry, x0, seed):
    """L_simple drawn as GaussianDiffusion draws it: t, then ε, on one generator."""
    diffusion = FAMILY.process(entry)
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, entry.spec.num_timesteps, (x0.shape[0],), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    ab = diffusion.alphas_cumprod[t].float()[:, None, None]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    out = 0.5 * x_t + 0.01 * t.float()[:, None, None]
    return ((eps - out) ** 2).mean(), t, x_t


def test_the_class_models_loss_is_l_simple_on_its_labels(monkeypatch):
    entry = audio_entry(length=LENGTH)
    loss_fn = captured_loss(monkeypatch, entry)
    batch = data.waveforms(4, seed=2)
    recorder = Recorder()
    loss = loss_fn(recorder, [batch.audio, batch.labels], torch.Generator().manual_seed(7))
    expected, t, x_t = l_simple_by_hand(entry, batch.audio, 7)
    assert torch.allclose(loss, expected, atol=1e-6)
    (call,) = recorder.calls
    assert torch.equal(call["y"], batch.labels) and call["mel"] is None
    assert torch.equal(call["t"], t) and torch.allclose(call["x"], x_t, atol=1e-6)


def test_the_vocoders_loss_is_l_simple_on_the_clips_own_mel(monkeypatch):
    entry = audio_entry(length=LENGTH, vocoder=True)
    loss_fn = captured_loss(monkeypatch, entry)
    batch = data.waveforms(4, seed=3)
    recorder = Recorder()
    loss = loss_fn(recorder, [batch.audio, batch.labels], torch.Generator().manual_seed(1))
    expected, t, x_t = l_simple_by_hand(entry, batch.audio, 1)
    assert torch.allclose(loss, expected, atol=1e-6)
    (call,) = recorder.calls
    assert call["y"] is None and torch.equal(call["t"], t)
    assert torch.equal(call["mel"], mel_of(batch.audio, entry.spec)), "the clean clip's mel, not x_t's"
    assert call["mel"].shape == (4, TINY_MEL["n_mels"], 1 + LENGTH // TINY_MEL["hop"])


def test_an_unconditional_models_loss_passes_no_labels(monkeypatch):
    entry = audio_entry(num_classes=None, length=LENGTH)
    loss_fn = captured_loss(monkeypatch, entry)
    batch = data.waveforms(2, seed=0)
    recorder = Recorder()
    loss_fn(recorder, [batch.audio, batch.labels], torch.Generator().manual_seed(0))
    assert recorder.calls[0]["y"] is None and recorder.calls[0]["mel"] is None


def test_mel_of_is_the_libraries_mel_spectrogram_with_the_specs_settings():
    spec = audio_entry(length=LENGTH, vocoder=True).spec
    x = data.waveforms(3, seed=4).audio
    assert torch.equal(mel_of(x, spec), audio.mel_spectrogram(x, RATE, **TINY_MEL))
    assert torch.equal(mel_of(x, spec), audio.mel_spectrogram(x[:, 0], RATE, n_fft=128, hop=16, n_mels=16))
    other = replace(spec, sample_rate=8000)
    assert not torch.equal(mel_of(x, other), mel_of(x, spec)), "the rate places the filters"


def test_sampling_options_default_to_ddpm_with_every_step_and_steps_alone_mean_ddim(tmp_path):
    entry = audio_entry()
    options = FAMILY.sampling_options(entry, given())
    assert options["sampler"] == "ddpm" and options["steps"] is None and options["label"] is None
    assert options["wav"] is None and options["sample_rate"] == RATE
    assert FAMILY.describe(entry, options) == "ddpm (8 steps)"
    options = FAMILY.sampling_options(entry, given(steps=3, label=2))
    assert (options["sampler"], options["steps"], options["eta"], options["spacing"]) == (
        "ddim",
        3,
        1.0,
        "leading",
    ), "the fast schedule: DDIM with η = 1"
    assert FAMILY.describe(entry, options) == "ddim (3 steps, eta 1, leading), label 2"
    assert FAMILY.sampling_options(entry, given(steps=3, eta=0.0))["eta"] == 0.0, "a given η is kept"
    options = FAMILY.sampling_options(entry, given(sampler="ddim"))
    assert options["steps"] == 8, "ddim's default 50 steps capped at T"
    options = FAMILY.sampling_options(entry, given(sampler="dpm-solver++", steps=4))
    assert options["sampler"] == "dpm-solver++" and options["steps"] == 4
    options = FAMILY.sampling_options(entry, given(wav=str(tmp_path / "new")))
    assert options["wav"] == str(tmp_path / "new") and not (tmp_path / "new").exists(), "checked, not made"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 9}, "--steps must be at most the model's 8 training steps, got 9"),
        (
            {"sampler": "ddpm", "steps": 3},
            "--steps applies to ddim and dpm-solver\\+\\+; ddpm takes all 8 steps",
        ),
        ({"eta": 0.5}, "--eta applies to ddim only, not to ddpm"),
        ({"label": 3}, r"--label must be an int in \[0, 2\] for 'test-dw-class' \(3 classes\), got 3"),
        ({"wav": "{t}/no/dir"}, "--wav '{t}/no/dir': its folder '{t}/no' does not exist"),
        ({"wav": "{t}/file.wav"}, "--wav must be a folder, got the file '{t}/file.wav'"),
    ],
)
def test_sampling_options_refuse_what_does_not_apply(tmp_path, kwargs, message):
    (tmp_path / "file.wav").write_bytes(b"")
    kwargs = {k: v.replace("{t}", str(tmp_path)) if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=message.replace("{t}", str(tmp_path))) as error:
        FAMILY.sampling_options(audio_entry(), given(**kwargs))
    assert "\n" not in str(error.value)


def test_label_on_an_unconditional_model_and_sampling_a_vocoder_are_refused():
    with pytest.raises(
        ValueError, match="--label applies to class-conditional models; 'test-dw-plain' is unconditional"
    ):
        FAMILY.sampling_options(audio_entry("test-dw-plain", num_classes=None), given(label=0))
    FAMILY.sampling_options(audio_entry("test-dw-plain", num_classes=None), given())
    with pytest.raises(ValueError) as error:
        FAMILY.sampling_options(audio_entry("test-dw-voc", vocoder=True, length=LENGTH), given())
    message = str(error.value)
    assert "\n" not in message and "'test-dw-voc' is a vocoder" in message and "cannot be sampled" in message


def draw(model, n, seed=0, batch_size=256, **kwargs) -> dict:
    options = FAMILY.sampling_options(model.entry, given(**kwargs))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return FAMILY.sample(model, n, batch_size=batch_size, generator=generator, options=options)


def test_samples_are_the_declared_arrays_in_range_and_deterministic():
    model = loaded(audio_entry())
    arrays = draw(model, 5, steps=3)
    assert set(arrays) == set(FAMILY.sample_arrays) == {"audio", "sample_rate", "labels"}
    audio_, rate, labels = arrays["audio"], arrays["sample_rate"], arrays["labels"]
    assert audio_.dtype == np.float32 and audio_.shape == (5, 64) and np.isfinite(audio_).all()
    assert audio_.min() >= -1.0 and audio_.max() <= 1.0 and audio_.std() > 0
    assert isinstance(rate, np.int64) and np.ndim(rate) == 0 and rate == RATE
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 2, 0, 1]
    again = draw(model, 5, steps=3)
    assert all(np.array_equal(arrays[k], again[k]) for k in arrays), "the same seed, the same clips"
    assert not np.array_equal(draw(model, 5, seed=1, steps=3)["audio"], audio_)
    one = draw(model, 4, label=2)  # ddpm, all 8 steps
    assert one["labels"].tolist() == [2] * 4 and one["audio"].shape == (4, 64)
    assert np.abs(one["audio"]).max() <= 1.0
    plain = draw(loaded(audio_entry("test-dw-plain", num_classes=None)), 2, steps=2)
    assert set(plain) == {"audio", "sample_rate"}


def test_write_files_writes_one_wav_per_clip(tmp_path):
    model = loaded(audio_entry())
    folder = tmp_path / "wavs"
    options = FAMILY.sampling_options(model.entry, given(steps=2, wav=str(folder)))
    arrays = FAMILY.sample(
        model, 4, batch_size=3, generator=torch.Generator().manual_seed(0), options=options
    )
    assert FAMILY.write_files(arrays, {**options, "wav": None}) == []
    assert not folder.exists()
    written = FAMILY.write_files(arrays, options)
    assert written == [f"4 WAV files in {folder}"]
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"clip-{k:04d}-label-{k % 3}.wav" for k in range(4)]
    for k, name in enumerate(names):
        clip, rate = audio.read_wav(folder / name)
        assert rate == RATE and clip.shape == (64,)
        assert np.abs(clip - arrays["audio"][k]).max() <= 1 / 32767
    # an unconditional model's clips carry no label; an existing folder is written into
    plain = loaded(audio_entry("test-dw-plain", num_classes=None))
    options = FAMILY.sampling_options(plain.entry, given(steps=2, wav=str(folder)))
    arrays = FAMILY.sample(
        plain, 2, batch_size=2, generator=torch.Generator().manual_seed(0), options=options
    )
    assert FAMILY.write_files(arrays, options) == [f"2 WAV files in {folder}"]
    assert {"clip-0000.wav", "clip-0001.wav"} <= {p.name for p in folder.iterdir()}


def test_the_samples_output_is_sample_as_tensors_and_checks_its_kwargs():
    model = loaded(audio_entry())
    tensors = FAMILY.output(model, "samples", n=3, seed=4, steps=2, progress=False)
    assert set(tensors) == {"audio", "labels"}, "the 0-d sample rate is left out"
    by_hand = draw(model, 3, seed=4, steps=2)
    assert torch.equal(tensors["audio"], torch.from_numpy(by_hand["audio"]))
    assert tensors["labels"].tolist() == [0, 1, 2]
    assert torch.equal(
        FAMILY.output(model, "samples", n=3, seed=4, steps=2, label=1)["labels"],
        torch.ones(3, dtype=torch.long),
    )
    for kwargs, message in [
        ({"n": 2, "temperature": 1.0}, "options must be among .*, got temperature"),
        ({"n": 2, "wav_dir": "x"}, "got wav_dir"),
        ({"n": 0}, "n must be an int >= 1, got 0"),
        ({"n": 2.0}, "n must be an int >= 1, got 2.0"),
        ({"n": 2, "seed": -1}, "seed must be an int >= 0, got -1"),
        ({"n": 2, "batch_size": True}, "batch_size must be an int >= 1, got True"),
        ({"n": 2, "steps": 9}, "--steps must be at most the model's 8 training steps"),
        ({"n": 2, "label": 5}, r"--label must be an int in \[0, 2\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            FAMILY.output(model, "samples", **kwargs)
    with pytest.raises(
        ValueError, match="output must be one of 'samples', 'vocoded' for a diffwave, got 'x'"
    ):
        FAMILY.output(model, "x", n=1)


def test_the_vocoded_output_renders_test_clips_from_their_mels():
    vocoder = loaded(audio_entry("test-dw-voc", vocoder=True, length=LENGTH))
    tensors = FAMILY.output(vocoder, "vocoded", n=3, seed=5, steps=2, progress=False)
    assert set(tensors) == {"audio", "reference", "labels"}
    reference = data.waveforms(3, seed=5, split="test")
    assert torch.equal(tensors["reference"], reference.audio[:, 0])
    assert torch.equal(tensors["labels"], reference.labels)
    audio_ = tensors["audio"]
    assert audio_.shape == (3, LENGTH) and audio_.dtype == torch.float32
    assert audio_.min() >= -1.0 and audio_.max() <= 1.0 and audio_.std() > 0
    mel = mel_of(reference.audio, vocoder.entry.spec)
    by_hand = vocode(vocoder, mel, steps=2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(audio_, by_hand[:, 0])
    again = FAMILY.output(vocoder, "vocoded", n=3, seed=5, steps=2, progress=False)
    assert torch.equal(again["audio"], audio_)
    for kwargs, message in [
        ({"n": 0}, "n must be an int >= 1, got 0"),
        ({"n": 1, "seed": 1.5}, "seed must be an int >= 0, got 1.5"),
        ({"n": 1, "batch_size": 0}, "batch_size must be an int >= 1, got 0"),
        ({"n": 1, "steps": 9}, r"steps must be None or an int in \[1, 8\], got 9"),
    ]:
        with pytest.raises(ValueError, match=message):
            FAMILY.output(vocoder, "vocoded", progress=False, **kwargs)


def test_vocode_refuses_a_model_that_is_not_a_vocoder_and_bad_steps():
    vocoder = loaded(audio_entry("test-dw-voc", vocoder=True, length=LENGTH))
    mel = mel_of(data.waveforms(2, seed=0).audio, vocoder.entry.spec)
    full = vocode(vocoder, mel, generator=torch.Generator().manual_seed(0))  # ddpm, every step
    assert full.shape == (2, 1, LENGTH) and full.abs().max() <= 1.0
    with pytest.raises(ValueError, match="model 'test-dw-class' is not a vocoder"):
        vocode(loaded(audio_entry()), mel)
    for steps in (0, 9, True, 2.0, "2"):
        with pytest.raises(ValueError, match=r"steps must be None or an int in \[1, 8\]"):
            vocode(vocoder, mel, steps=steps)
    for eta in (-0.1, 1.5, True, "1", float("nan")):
        with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\], got"):
            vocode(vocoder, mel, steps=2, eta=eta)


def test_the_fast_vocoder_is_ddim_with_the_eta_given():
    vocoder = loaded(audio_entry("test-dw-voc", vocoder=True, length=LENGTH))
    mel = mel_of(data.waveforms(2, seed=0).audio, vocoder.entry.spec)

    def fast(**kw):
        return vocode(vocoder, mel, steps=3, generator=torch.Generator().manual_seed(0), **kw)

    with torch.no_grad():
        for eta in (0.0, 0.5, 1.0):
            expected = samplers.ddim(
                lambda x, t: vocoder.model(x, t, mel=mel), vocoder.diffusion, (2, 1, LENGTH), steps=3,
                eta=eta, spacing="leading", clip_denoised=True, generator=torch.Generator().manual_seed(0),
            )  # fmt: skip
            assert torch.allclose(fast(eta=eta), expected, atol=1e-6)
    assert FAST_ETA == 1.0 and torch.equal(fast(), fast(eta=1.0)), "η = FAST_ETA by default"
    assert not torch.allclose(fast(eta=0.0), fast(eta=1.0), atol=1e-3)


# ---------------------------------------------------------------- the command line, on tiny entries
TINY_ENTRIES = [
    zoo.ZooEntry(
        name="tiny-audio",
        description="a tiny class-conditional DiffWave, for tests",
        family="diffwave",
        spec=AudioSpec(
            network={"length": LENGTH, **TINY_NET, "num_classes": 8},
            sample_rate=RATE,
            schedule="cosine",
            num_timesteps=8,
        ),
        data=zoo.DataSpec.dataset("waveforms", n=16),
        sample_shape=(1, LENGTH),
        train=TrainConfig(steps=3, batch_size=4, warmup_steps=1),
        train_threads=1,
        chapter=15,
    ),
    zoo.ZooEntry(
        name="tiny-audio-plain",
        description="a tiny unconditional DiffWave, for tests",
        family="diffwave",
        spec=AudioSpec(
            network={"length": LENGTH, **TINY_NET}, sample_rate=RATE, schedule="cosine", num_timesteps=8
        ),
        data=zoo.DataSpec.dataset("waveforms", n=16),
        sample_shape=(1, LENGTH),
        train=TrainConfig(steps=3, batch_size=4, warmup_steps=1),
        train_threads=1,
        chapter=15,
    ),
    zoo.ZooEntry(
        name="tiny-vocoder",
        description="a tiny DiffWave vocoder, for tests",
        family="diffwave",
        spec=AudioSpec(
            network={"length": LENGTH, **TINY_NET, "n_mels": 16, "hop": 16},
            sample_rate=RATE,
            schedule="cosine",
            num_timesteps=8,
            mel=TINY_MEL,
        ),
        data=zoo.DataSpec.dataset("waveforms", n=16),
        sample_shape=(1, LENGTH),
        train=TrainConfig(steps=3, batch_size=4, warmup_steps=1),
        train_threads=1,
        chapter=15,
    ),
]


@pytest.fixture
def home(tiny_zoo):
    """This module's TINY_ENTRIES registered in an empty cache (conftest's ``tiny_zoo``)."""
    return tiny_zoo


def test_sample_tiny_audio_writes_the_npz_and_the_wavs(home, tmp_path, capsys):
    cache, trained = home
    out, wavs = tmp_path / "clips.npz", tmp_path / "wavs"
    argv = [
        "sample",
        "tiny-audio",
        "--n",
        "3",
        "--out",
        str(out),
        "--wav",
        str(wavs),
        "--steps",
        "4",
        "--label",
        "2",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    line = captured.out.strip()
    assert "\n" not in line
    assert line.startswith(
        "sampled 3 audio from tiny-audio with ddim (4 steps, eta 1, leading), label 2 (seed 0)"
    )
    assert line.endswith(f"wrote {out} and 3 WAV files in {wavs}")
    assert trained == ["tiny-audio"]
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["audio", "labels", "sample_rate"]
        clips_, rate, labels = npz["audio"], npz["sample_rate"], npz["labels"]
    assert clips_.dtype == np.float32 and clips_.shape == (3, LENGTH) and np.abs(clips_).max() <= 1.0
    assert rate.dtype == np.int64 and rate.shape == () and int(rate) == RATE
    assert labels.dtype == np.int64 and labels.tolist() == [2, 2, 2]
    names = sorted(p.name for p in wavs.iterdir())
    assert names == ["clip-0000-label-2.wav", "clip-0001-label-2.wav", "clip-0002-label-2.wav"]
    for k, name in enumerate(names):
        clip, wav_rate = audio.read_wav(wavs / name)
        assert wav_rate == RATE and np.abs(clip - clips_[k]).max() <= 1 / 32767
    # the cached model again, deterministically, by DDPM with every step this time
    assert main(["sample", "tiny-audio", "--n", "2", "--out", str(tmp_path / "b.npz")]) == 0
    assert "with ddpm (8 steps) (seed 0)" in capsys.readouterr().out and trained == ["tiny-audio"]
    assert main(["sample", "tiny-audio", "--n", "2", "--out", str(tmp_path / "c.npz")]) == 0
    with np.load(tmp_path / "b.npz") as b, np.load(tmp_path / "c.npz") as c:
        assert np.array_equal(b["audio"], c["audio"]) and b["labels"].tolist() == [0, 1]


AUDIO = "sample tiny-audio --n 2 --out {t}/x.npz"


@pytest.mark.parametrize(
    "command, expected",
    [
        (
            AUDIO + " --gif {t}/x.gif",
            "--gif applies to video-diffusion models; 'tiny-audio' is a diffwave model",
        ),
        (AUDIO + " --wav {t}/no/wavs", "--wav '{t}/no/wavs': its folder '{t}/no' does not exist"),
        (AUDIO + " --wav {t}/file.txt", "--wav must be a folder, got the file '{t}/file.txt'"),
        (AUDIO + " --label 8", r"--label must be an int in [0, 7] for 'tiny-audio' (8 classes), got 8"),
        (
            AUDIO.replace("tiny-audio", "tiny-audio-plain") + " --label 0",
            "--label applies to class-conditional models; 'tiny-audio-plain' is unconditional",
        ),
        (AUDIO.replace("tiny-audio", "tiny-vocoder"), "model 'tiny-vocoder' is a vocoder"),
        (
            AUDIO + " --grid {t}/g.png",
            "--grid draws images or 2-D points; 'tiny-audio' makes samples of shape (1, 768)",
        ),
        (AUDIO + " --steps 9", "--steps must be at most the model's 8 training steps, got 9"),
        (
            AUDIO + " --sampler ddpm --steps 2",
            "--steps applies to ddim and dpm-solver++; ddpm takes all 8 steps",
        ),
        (AUDIO + " --guidance 2", "--guidance applies to"),
        (AUDIO + " --label -1", "argument --label: must be an int >= 0, got '-1'"),
    ],
)
def test_audio_user_errors_are_one_line_before_anything_trains(home, tmp_path, capsys, command, expected):
    cache, trained = home
    work = tmp_path / "work"
    work.mkdir()
    (work / "file.txt").write_text("a file")
    before = sorted(work.iterdir())
    argv = [a.replace("{t}", str(work)) for a in command.split()]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    assert expected.replace("{t}", str(work)) in captured.err
    assert sorted(work.iterdir()) == before, "nothing written"
    assert not cache.exists() and trained == [], "nothing trained"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--label", "8"], "--label must be an int in [0, 7] for 'audio-diffwave' (8 classes), got 8"),
        (["--steps", "51"], "--steps must be at most the model's 50 training steps, got 51"),
        (
            ["--gif", "{t}/x.gif"],
            "--gif applies to video-diffusion models; 'audio-diffwave' is a diffwave model",
        ),
        (
            ["--grid", "{t}/g.png"],
            "--grid draws images or 2-D points; 'audio-diffwave' makes samples of shape",
        ),
        (["--wav", "{t}/no/wavs"], "--wav '{t}/no/wavs': its folder '{t}/no' does not exist"),
        (["--name", "audio-vocoder"], "model 'audio-vocoder' is a vocoder"),
    ],
)
def test_the_chapters_audio_models_refuse_before_training(tmp_path, monkeypatch, capsys, args, expected):
    cache, work = tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv(zoo.ENV_HOME, str(cache))
    trained = []
    for family in families().values():
        monkeypatch.setattr(family, "train", lambda entry, *a, **k: trained.append(entry.name))
    name = "audio-diffwave"
    if args[0] == "--name":
        name, args = args[1], args[2:]
    argv = [
        "sample",
        name,
        "--n",
        "2",
        "--out",
        str(work / "x.npz"),
        *(a.replace("{t}", str(work)) for a in args),
    ]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert expected.replace("{t}", str(work)) in captured.err
    assert list(work.iterdir()) == [] and not cache.exists() and trained == []


# ---------------------------------------------------------------- shared checks
def test_check_label():
    check_label("m", None, None)
    check_label("m", None, 3)
    check_label("m", 0, 3)
    check_label("m", 2, 3)
    with pytest.raises(ValueError, match="--label applies to class-conditional models; 'm' is unconditional"):
        check_label("m", 0, None)
    for label in (3, 7, -1):
        with pytest.raises(
            ValueError, match=rf"--label must be an int in \[0, 2\] for 'm' \(3 classes\), got {label}"
        ):
            check_label("m", label, 3)


def test_check_output_folder_accepts_a_folder_or_a_new_one_in_a_folder(tmp_path, monkeypatch):
    assert check_output_folder("--wav", str(tmp_path)) == tmp_path
    assert check_output_folder("--wav", str(tmp_path / "new")) == tmp_path / "new"
    assert not (tmp_path / "new").exists(), "checked, not created"
    monkeypatch.chdir(tmp_path)
    assert check_output_folder("--wav", "relative") == Path("relative")


def test_check_output_folder_refuses_a_file_and_a_missing_parent(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=f"--wav must be a folder, got the file '{tmp_path}/a.wav'"):
        check_output_folder("--wav", str(tmp_path / "a.wav"))
    with pytest.raises(
        ValueError, match=f"--wav '{tmp_path}/no/dir': its folder '{tmp_path}/no' does not exist"
    ):
        check_output_folder("--wav", str(tmp_path / "no" / "dir"))
    with pytest.raises(ValueError, match="--out '.*/a.wav/x': its folder '.*/a.wav' does not exist"):
        check_output_folder("--out", str(tmp_path / "a.wav" / "x"))


def test_check_output_folder_refuses_an_unwritable_folder(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root can write anyway: pretend it cannot
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
        with pytest.raises(ValueError, match=f"--wav '{locked}': its folder '{locked}' is not writable"):
            check_output_folder("--wav", str(locked))
        with pytest.raises(ValueError, match=f"--wav '{locked}/new': its folder '{locked}' is not writable"):
            check_output_folder("--wav", str(locked / "new"))
        assert check_output_folder("--wav", str(tmp_path / "free")) == tmp_path / "free"
    finally:
        locked.chmod(0o700)
