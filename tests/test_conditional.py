"""Chapter 11's models: a class-conditional diffusion model trained with conditioning dropout (a
learned null label, for classifier-free guidance), a noise-aware classifier (for classifier
guidance), their specs, losses, zoo entries and sampling through the family."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_lib import data, guidance, samplers, zoo
from diffusion_lib.diffusion import GaussianDiffusion
from diffusion_lib.families.classifier import ClassifierSpec, noisy_cross_entropy_loss
from diffusion_lib.families.diffusion import DiffusionSpec, drop_labels
from diffusion_lib.family import get_family, sample_in_batches
from diffusion_lib.schedules import get_beta_schedule
from diffusion_lib.seeds import ENV_SEED_SHIFT
from diffusion_lib.train import TrainConfig

NULL_UNET = {
    "type": "unet",
    "in_channels": 1,
    "image_size": 8,
    "base_channels": 8,
    "channel_mults": [1],
    "num_res_blocks": 1,
    "attention_resolutions": [],
    "num_classes": 10,
    "null_label": True,
}
TINY_TRAIN = TrainConfig(steps=3, batch_size=8, warmup_steps=1, checkpoint_every=2)


def entry(spec, family="diffusion", name="test-conditional-spy", **changes):
    return zoo.ZooEntry(
        name=name,
        description="a tiny model, for tests",
        family=family,
        spec=spec,
        data=zoo.DataSpec.dataset("digits"),
        sample_shape=(1, 8, 8),
        train=changes.pop("train", TINY_TRAIN),
        train_threads=1,
        chapter=11,
        **changes,
    )


# ---------------------------------------------------------------- the diffusion spec
@pytest.mark.parametrize(
    "network, dropout, message",
    [
        (NULL_UNET, 1.0, r"label_dropout must be a number in \[0, 1\), got 1.0"),
        (NULL_UNET, -0.1, r"label_dropout must be a number in \[0, 1\), got -0.1"),
        (NULL_UNET, math.nan, r"label_dropout must be a number in \[0, 1\), got nan"),
        (NULL_UNET, "0.1", r"label_dropout must be a number in \[0, 1\), got '0.1'"),
        (NULL_UNET, True, r"label_dropout must be a number in \[0, 1\), got True"),
        (
            {**NULL_UNET, "null_label": False},
            0.1,
            "label_dropout 0.1 needs a class-conditional network with a null label .*null_label=False",
        ),
        (
            {k: v for k, v in NULL_UNET.items() if k not in ("num_classes", "null_label")},
            0.2,
            "label_dropout 0.2 needs a class-conditional network .*got num_classes=None, null_label=None",
        ),
    ],
)
def test_label_dropout_is_checked_when_an_entry_is_registered(network, dropout, message):
    spec = DiffusionSpec(network=network, schedule="cosine", num_timesteps=8, label_dropout=dropout)
    with pytest.raises(ValueError, match=message):
        zoo.register(entry(spec))
    assert "test-conditional-spy" not in zoo.names()


def test_a_null_label_with_no_dropout_is_a_valid_spec():
    get_family("diffusion").check_spec(DiffusionSpec(network=NULL_UNET, label_dropout=0.0))
    get_family("diffusion").check_spec(DiffusionSpec(network=NULL_UNET, label_dropout=0))


# ---------------------------------------------------------------- conditioning dropout
def test_drop_labels_replaces_about_p_of_the_labels_and_only_by_the_null_label():
    y = torch.arange(20_000) % 10
    dropped = drop_labels(y, 0.2, 10, torch.Generator().manual_seed(0))
    null = dropped == 10
    sd = math.sqrt(0.2 * 0.8 / len(y))  # binomial standard error of the rate
    assert abs(null.double().mean().item() - 0.2) < 4 * sd
    assert torch.equal(dropped[~null], y[~null]), "the other labels are kept"
    again = drop_labels(y, 0.2, 10, torch.Generator().manual_seed(0))
    assert torch.equal(dropped, again), "the mask comes from the generator"
    assert not torch.equal(dropped, drop_labels(y, 0.2, 10, torch.Generator().manual_seed(1)))
    assert torch.equal(drop_labels(y, 0.0, 10, torch.Generator().manual_seed(0)), y)
    with pytest.raises(ValueError, match=r"probability must be a number in \[0, 1\), got 1"):
        drop_labels(y, 1, 10, torch.Generator())


class Spy(nn.Module):
    """A stand-in ε-network that records the labels it is given."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, x, t, y):
        self.seen.append(y.clone())
        return self.scale * x


def spy_training(monkeypatch, dropout, *, steps=60, seed=0):
    """Train the diffusion family's loss on a Spy for ``steps`` batches of 64; the labels seen."""
    family = get_family("diffusion")
    spy = Spy()
    monkeypatch.setattr(family, "build", lambda e: spy)
    spec = DiffusionSpec(network=NULL_UNET, schedule="cosine", num_timesteps=8, label_dropout=dropout)
    config = TrainConfig(steps=steps, batch_size=64, warmup_steps=1, seed=seed)
    digits = list(data.digits("train"))
    family.train(
        entry(spec, train=config), digits, dependencies={}, checkpoint=None, progress=False, device="cpu"
    )
    return torch.cat(spy.seen)


def test_the_training_loss_drops_labels_at_the_spec_s_rate(monkeypatch):
    seen = spy_training(monkeypatch, 0.2)
    assert len(seen) == 60 * 64
    rate = (seen == 10).double().mean().item()
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(seen)), rate
    assert seen.max() == 10 and set(seen[seen != 10].tolist()) == set(range(10))
    assert torch.equal(spy_training(monkeypatch, 0.2), seen), "deterministic: the run's generator"
    assert not torch.equal(spy_training(monkeypatch, 0.2, seed=1), seen)


def test_no_dropout_draws_nothing_so_conditional_models_train_as_before(monkeypatch):
    # Without dropout the loss draws nothing more from the run's generator: the minibatches (and
    # so the labels seen) are those of the plain conditional loss, with no null label among them.
    seen = spy_training(monkeypatch, 0.0, steps=5)
    generator = torch.Generator().manual_seed(0)
    digits = list(data.digits("train"))
    diffusion = GaussianDiffusion(get_beta_schedule("cosine", 8))
    expected = []
    for _ in range(5):
        index = torch.randint(0, len(digits[0]), (64,), generator=generator)
        expected.append(digits[1][index])
        diffusion.training_losses(lambda x, t: x, digits[0][index], generator=generator)
    assert torch.equal(seen, torch.cat(expected))


# ---------------------------------------------------------------- the noise-aware classifier
class ClassifierSpy(nn.Module):
    """A stand-in classifier that records its inputs and returns zero logits."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(10))
        self.seen = []

    def forward(self, x, t):
        self.seen.append((x.clone(), t.clone()))
        return self.bias.expand(x.shape[0], -1)


def test_the_noise_aware_classifier_s_loss_sees_x_t_not_x_0():
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000))
    x0, labels = data.digits("test").images[:32], data.digits("test").labels[:32]
    spy = ClassifierSpy()
    loss = noisy_cross_entropy_loss(diffusion)(spy, [x0, labels], torch.Generator().manual_seed(3))
    assert loss.item() == pytest.approx(math.log(10), rel=1e-6), "zero logits: cross-entropy log 10"
    ((x_t, t),) = spy.seen
    generator = torch.Generator().manual_seed(3)  # the same draws: t first, then ε
    expected_t = torch.randint(0, 1000, (32,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    abar = diffusion.alphas_cumprod[expected_t].float()[:, None, None, None]
    assert torch.equal(t, expected_t)
    assert torch.allclose(x_t, abar.sqrt() * x0 + (1 - abar).sqrt() * eps, atol=1e-6)
    assert (x_t - x0).abs().mean() > 0.1 and t.float().std() > 100, "noisy, at spread-out timesteps"


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            ClassifierSpec(network={"type": "unet_encoder"}),
            "'unet_encoder' is called as model\\(x_t, t\\) and needs noise",
        ),
        (
            ClassifierSpec(noise={"schedule": "linear", "num_timesteps": 10}),
            "noise needs a network called as model\\(x_t, t\\) \\('unet_encoder'\\), got network type "
            "'digits_classifier'",
        ),
        (
            ClassifierSpec(network={"type": "unet_encoder"}, noise={"schedule": "linear"}),
            "noise must be None or a dict with the keys schedule, num_timesteps, got",
        ),
        (
            ClassifierSpec(
                network={"type": "unet_encoder"}, noise={"schedule": "square", "num_timesteps": 10}
            ),
            "square",
        ),
    ],
)
def test_a_bad_classifier_spec_is_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        zoo.register(entry(spec, family="classifier"))


TINY_ENCODER = {"type": "unet_encoder", "base_channels": 8, "channel_mults": [1], "attention_resolutions": []}
NOISE = {"schedule": "linear", "num_timesteps": 1000}


def test_a_noise_aware_classifier_trains_and_outputs_noisy_logits(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_SEED_SHIFT, raising=False)
    tiny = entry(ClassifierSpec(network=TINY_ENCODER, noise=NOISE), family="classifier", name="test-noisy")
    zoo.register(tiny)
    try:
        loaded = zoo.load("test-noisy", progress=False)
        assert isinstance(loaded.diffusion, GaussianDiffusion) and loaded.diffusion.num_timesteps == 1000
        assert len(loaded.record["losses"]) == 3
        out = zoo.outputs("test-noisy", "logits", data="digits", split="test", t=500, seed=2, progress=False)
        images = data.digits("test").images
        steps = torch.full((len(images),), 500)
        x_t = loaded.diffusion.q_sample(images, steps, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            assert torch.equal(out.tensors["logits"], loaded.model(x_t, steps))
        with pytest.raises(ValueError, match=r"t must be an int in \[0, 999\], got 1000"):
            zoo.outputs("test-noisy", "logits", data="digits", split="test", t=1000, progress=False)
    finally:
        zoo.unregister("test-noisy")


# ---------------------------------------------------------------- the book's entries
@pytest.mark.parametrize("name", ["digits-cond-ddpm", "digits-noisy-classifier"])
def test_the_chapter_11_entries_train_through_the_zoo(name, tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    real = zoo.entry(name)
    zoo.register(replace(real, train=replace(real.train, steps=2, batch_size=16)))
    try:
        loaded = zoo.load(name, progress=False)
        assert len(loaded.record["losses"]) == 2 and all(math.isfinite(v) for v in loaded.record["losses"])
        assert loaded.diffusion.num_timesteps == 1000 and real.train_threads == 2 and real.chapter == 11
    finally:
        zoo.register(real)
    if name == "digits-cond-ddpm":
        assert real.spec.label_dropout in (0.1, 0.2) and loaded.model.label_range == (0, 10)
        assert real.spec.network == {
            **zoo.entry("digits-ddpm").spec.network,
            "num_classes": 10,
            "null_label": True,
        }
        # digits-ddpm's batch, learning rate, warm-up and EMA, with fewer steps: the same network
        # would take digits-ddpm's ~300 s, at the edge of the 5-minute budget
        ddpm = zoo.entry("digits-ddpm").train
        assert replace(real.train, steps=ddpm.steps) == ddpm and real.train.steps == 1500
    else:
        assert real.spec.noise == NOISE and real.spec.network["base_channels"] == 32


# ---------------------------------------------------------------- sampling
class Labelled(nn.Module):
    """ε(x, t, y) = x · (y + 1) / 10: which label reached the network shows in the output."""

    def forward(self, x, t, y):
        return x * (y.to(x.dtype) + 1.0)[:, None] / 10.0


class LabelledImages(nn.Module):
    """Labelled for images (B, C, H, W)."""

    def forward(self, x, t, y):
        return x * (y.to(x.dtype) + 1.0)[:, None, None, None] / 10.0


def test_sample_in_batches_with_a_fixed_label_and_a_binding():
    model = Labelled()
    calls = []

    def draw(net, size):
        calls.append(size)
        return net(torch.ones(size, 3), torch.zeros(size))

    plain = sample_in_batches(model, 5, 2, 10, draw, label=4)
    assert plain["labels"].tolist() == [4] * 5 and np.allclose(plain["points"], 0.5) and calls == [2, 2, 1]
    cycling = sample_in_batches(model, 12, 5, 10, draw)
    assert cycling["labels"].tolist() == [*range(10), 0, 1]
    assert np.allclose(cycling["points"][:, 0], (np.array([*range(10), 0, 1]) + 1) / 10)

    def bind(net, y):
        return guidance.classifier_free(net, y, 3.0, null_label=10)

    guided = sample_in_batches(model, 4, 4, 10, draw, label=2, bind=bind)
    # uncond (label 10): 1.1; cond (label 2): 0.3; 1.1 + 3 · (0.3 − 1.1) = −1.3
    assert np.allclose(guided["points"], -1.3) and guided["labels"].tolist() == [2] * 4
    with pytest.raises(ValueError, match=r"label must be an int in \[0, 9\], got 10"):
        sample_in_batches(model, 4, 4, 10, draw, label=10)
    with pytest.raises(ValueError, match="label applies to class-conditional models"):
        sample_in_batches(model, 4, 4, None, draw, label=1)


def test_the_family_samples_with_guidance_as_the_library_does(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    spec = DiffusionSpec(network=NULL_UNET, schedule="cosine", num_timesteps=8, label_dropout=0.2)
    zoo.register(entry(spec, name="test-guided"))
    try:
        loaded = zoo.load("test-guided", progress=False)
        family = get_family("diffusion")
        options = family.sampling_options(
            loaded.entry, {"sampler": "ddim", "steps": 4, "label": 7, "guidance": 2.5}
        )
        assert (
            family.describe(loaded.entry, options)
            == "ddim (4 steps, eta 0, leading), label 7, guidance scale 2.5"
        )
        arrays = family.sample(
            loaded, 3, batch_size=2, generator=torch.Generator().manual_seed(5), options=options
        )
        net = guidance.classifier_free(loaded.model, 7, 2.5, null_label=10)
        generator = torch.Generator().manual_seed(5)
        batches = [
            samplers.ddim(net, loaded.diffusion, (size, 1, 8, 8), steps=4, generator=generator,
                          clip_denoised=True, progress=False)
            for size in (2, 1)
        ]  # fmt: skip
        expected = ((torch.cat(batches) + 1) / 2).clamp(0, 1).numpy()
        assert np.allclose(arrays["images"], expected, atol=1e-6) and arrays["labels"].tolist() == [7, 7, 7]
        plain = family.sampling_options(loaded.entry, {})
        assert plain["guidance"] == 1.0 and plain["label"] is None
        assert family.describe(loaded.entry, plain) == "ddpm (8 steps), guidance scale 1"
    finally:
        zoo.unregister("test-guided")


def test_the_ddim_samples_output_is_guided_ddim_and_checks_its_kwargs(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_SEED_SHIFT, raising=False)
    spec = DiffusionSpec(network=NULL_UNET, schedule="linear", num_timesteps=1000, label_dropout=0.2)
    noisy = ClassifierSpec(network=TINY_ENCODER, noise=NOISE)
    zoo.register(entry(spec, name="test-guided"))
    zoo.register(entry(noisy, family="classifier", name="test-noisy"))
    try:
        loaded = zoo.load("test-guided", progress=False)
        judge = zoo.load("test-noisy", progress=False).model.eval()
        x_T = torch.randn(13, 1, 8, 8, generator=torch.Generator().manual_seed(4))
        y = torch.arange(13) % 10

        def by_hand(net):
            return samplers.ddim(net, loaded.diffusion, x_T.shape, steps=5, spacing="linspace", x_T=x_T,
                                 clip_denoised=True, progress=False)  # fmt: skip

        # Through the zoo, cached: the tiny U-Net, guided.
        kwargs = {"n": 13, "seed": 4, "steps": 5, "batch_size": 6, "guidance_scale": 2.5}
        out = zoo.outputs("test-guided", "ddim_samples", progress=False, **kwargs).tensors
        assert torch.equal(out["x_T"], x_T) and torch.equal(out["labels"], y)
        guided = guidance.classifier_free(loaded.model, y, 2.5, null_label=10)
        assert torch.allclose(out["x0"], by_hand(guided), atol=1e-5)
        again = zoo.outputs("test-guided", "ddim_samples", progress=False, **kwargs).tensors
        assert torch.equal(again["x0"], out["x0"]), "cached: the same tensors"

        # Each kwarg reaches the right network: Labelled's ε tells the labels it saw apart.
        stub = replace(loaded, model=LabelledImages())
        model, family = stub.model, get_family("diffusion")
        null = torch.full_like(y, 10)
        cases = [
            ({}, lambda x, t: model(x, t, y)),  # the conditional network
            ({"guidance_scale": 0.0}, lambda x, t: model(x, t, null)),
            ({"guidance_scale": 2.5}, guidance.classifier_free(model, y, 2.5, null_label=10)),
            (
                {"guidance_scale": 0.0, "classifier": "test-noisy", "classifier_scale": 3000.0},
                guidance.classifier_guided(
                    lambda x, t: model(x, t, null), judge, loaded.diffusion, y, 3000.0
                ),
            ),
        ]
        results = []
        for options, net in cases:
            x0 = family.output(stub, "ddim_samples", n=13, seed=4, steps=5, batch_size=6, progress=False,
                               **options)["x0"]  # fmt: skip
            assert torch.allclose(x0, by_hand(net), atol=1e-5), options
            assert x0.abs().max() <= 1.0
            results.append(x0)
        for i in range(len(results)):
            for j in range(i):
                assert not torch.allclose(results[i], results[j], atol=1e-3), (cases[i][0], cases[j][0])

        # The classifier's key is part of the output's: retraining it computes the output again.
        cg = {"n": 4, "steps": 2, "guidance_scale": 0.0, "classifier": "test-noisy", "classifier_scale": 1.0}

        def cached_outputs():
            return sorted(path.name for path in (tmp_path / "cache").rglob("test-guided-*.out-*.safetensors"))

        zoo.outputs("test-guided", "ddim_samples", progress=False, **cg)
        before = cached_outputs()
        zoo.outputs("test-guided", "ddim_samples", progress=False, **cg)
        assert cached_outputs() == before, "read from the cache"
        zoo.register(replace(zoo.entry("test-noisy"), train=replace(TINY_TRAIN, steps=4)))
        zoo.outputs("test-guided", "ddim_samples", progress=False, **cg)
        assert len(cached_outputs()) == len(before) + 1, "a new classifier, a new output"

        for kwarg in ("guidance_scale", "classifier_scale"):  # past the zoo's JSON check
            options = {
                kwarg: math.nan,
                **({"classifier": "test-noisy"} if kwarg == "classifier_scale" else {}),
            }
            with pytest.raises(ValueError, match=f"{kwarg} must be a finite number >= 0, got nan"):
                family.output(stub, "ddim_samples", n=2, steps=2, progress=False, **options)

        bad = [
            ({"steps": 0}, r"steps must be an int in \[1, 1000\] \(the model's training steps\), got 0"),
            ({"steps": 1001}, r"steps must be an int in \[1, 1000\]"),
            ({"spacing": "even"}, "spacing must be one of leading, trailing, linspace, got 'even'"),
            ({"guidance_scale": -1.0}, "guidance_scale must be a finite number >= 0, got -1.0"),
            ({"guidance_scale": math.inf}, "kwargs must be JSON-able.*'guidance_scale': inf"),
            ({"guidance_scale": True}, "guidance_scale must be a finite number >= 0, got True"),
            ({"classifier": "test-noisy"}, "classifier and classifier_scale go together"),
            ({"classifier_scale": 1.0}, "classifier and classifier_scale go together"),
            ({"classifier": "no-such-model", "classifier_scale": 1.0}, "no-such-model"),
            ({"classifier": 3, "classifier_scale": 1.0}, "classifier must be the name of a zoo classifier"),
            (
                {"classifier": "test-noisy", "classifier_scale": -2.0},
                "classifier_scale must be a finite number >= 0, got -2.0",
            ),
            ({"n": 0}, "n must be an int >= 1, got 0"),
            ({"seed": -1}, "seed must be an int >= 0, got -1"),
        ]
        for kwargs, message in bad:
            kwargs = {"n": 2, "steps": 2, **kwargs}
            with pytest.raises(ValueError, match=message):
                zoo.outputs("test-guided", "ddim_samples", progress=False, **kwargs)
    finally:
        zoo.unregister("test-guided")
        zoo.unregister("test-noisy")


def test_the_ddim_samples_output_refuses_guidance_without_a_null_label(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    plain = {**NULL_UNET, "null_label": False}
    zoo.register(entry(DiffusionSpec(network=plain, schedule="cosine", num_timesteps=10), name="test-plain"))
    unconditional = {k: v for k, v in NULL_UNET.items() if k not in ("num_classes", "null_label")}
    zoo.register(
        entry(DiffusionSpec(network=unconditional, schedule="cosine", num_timesteps=10), name="test-uncond")
    )
    try:
        for name in ("test-plain", "test-uncond"):
            with pytest.raises(
                ValueError,
                match=f"guidance_scale needs a class-conditional model with a null label .*'{name}' has none",
            ):
                zoo.outputs(name, "ddim_samples", n=2, steps=2, guidance_scale=2.0, progress=False)
        with pytest.raises(
            ValueError, match="classifier guidance needs a class-conditional model; 'test-uncond' is not"
        ):
            zoo.outputs(
                "test-uncond",
                "ddim_samples",
                n=2,
                steps=2,
                classifier="digits-noisy-classifier",
                classifier_scale=1.0,
                progress=False,
            )
        out = zoo.outputs("test-uncond", "ddim_samples", n=3, steps=2, progress=False).tensors
        assert set(out) == {"x_T", "x0"} and out["x0"].shape == (3, 1, 8, 8)
    finally:
        zoo.unregister("test-plain")
        zoo.unregister("test-uncond")
