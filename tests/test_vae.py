"""The KL autoencoder of chapter 12: its posterior and KL term against independent computations,
the loss against a hand computation, the scale factor, the networks' shapes, the family and its
zoo entry, and every bad input."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from diffusion_lib import zoo
from diffusion_lib.families.vae import VAESpec, autoencoder_loss, scene_image_data
from diffusion_lib.nets.vae import AutoencoderKL
from diffusion_lib.seeds import ENV_SEED_SHIFT
from diffusion_lib.train import TrainConfig
from diffusion_lib.vae import DiagonalGaussian, scale_factor, vae_loss

TINY = {"base_channels": 8, "channel_mults": [1, 2, 2], "num_res_blocks": 1, "latent_channels": 4}


def posterior(batch=3, seed=0, dtype=torch.float64) -> DiagonalGaussian:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(batch, 4, 2, 2, generator=g, dtype=dtype)
    logvar = torch.randn(batch, 4, 2, 2, generator=g, dtype=dtype) - 1.0
    return DiagonalGaussian(mean, logvar)


# ---------------------------------------------------------------- the posterior and its KL
def test_kl_matches_torch_distributions_per_example():
    q = posterior()
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(q.mean, q.std), torch.distributions.Normal(0.0, 1.0)
    )
    assert q.kl().shape == (3,)
    assert torch.allclose(q.kl(), expected.flatten(1).sum(1), atol=1e-12)


def test_kl_is_the_monte_carlo_mean_of_log_q_minus_log_p():
    q = posterior(batch=2, seed=1)
    g = torch.Generator().manual_seed(2)
    normal = torch.distributions.Normal(q.mean, q.std)
    z = torch.stack([q.sample(g) for _ in range(20_000)])  # (S, B, ...)
    log_ratio = (normal.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)).flatten(2).sum(2)
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(z))
    assert torch.all((mc - q.kl()).abs() < 4 * se), (mc, q.kl(), se)


def test_kl_is_zero_only_at_the_standard_normal():
    zero = DiagonalGaussian(torch.zeros(2, 4, 2, 2), torch.zeros(2, 4, 2, 2))
    assert torch.equal(zero.kl(), torch.zeros(2))
    assert torch.all(posterior().kl() > 0)


def test_sample_is_the_reparameterisation_and_carries_gradients():
    mean = torch.randn(2, 4, 2, 2, requires_grad=True)
    logvar = torch.randn(2, 4, 2, 2, requires_grad=True)
    q = DiagonalGaussian(mean, logvar)
    z = q.sample(torch.Generator().manual_seed(7))
    eps = torch.randn(2, 4, 2, 2, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(z, mean + torch.exp(0.5 * logvar) * eps, atol=1e-6)
    z.sum().backward()
    assert torch.allclose(mean.grad, torch.ones_like(mean))
    assert torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps, atol=1e-6)


def test_logvar_is_clamped_where_it_is_used():
    q = DiagonalGaussian(torch.zeros(1, 2), torch.tensor([[100.0, -100.0]]))
    assert torch.allclose(q.std, torch.tensor([[math.exp(10.0), math.exp(-15.0)]]))
    assert torch.isfinite(q.kl()).all()


# ---------------------------------------------------------------- the loss
def test_vae_loss_by_hand():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64)
    x_hat = torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64)
    q = posterior()
    out = vae_loss(x, x_hat, q, kl_weight=0.25)
    rec = sum(((x[b] - x_hat[b]) ** 2).sum() for b in range(3)) / 3
    kl = sum(
        0.5 * (q.mean[b] ** 2 + q.logvar[b].exp() - 1 - q.logvar[b]).sum() for b in range(3)
    ) / 3  # fmt: skip
    assert torch.allclose(out.reconstruction, rec) and torch.allclose(out.kl, kl)
    assert torch.allclose(out.loss, rec + 0.25 * kl)
    assert torch.allclose(vae_loss(x, x_hat, q, kl_weight=0).loss, rec)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kl_weight": -1.0}, "kl_weight must be a finite number >= 0, got -1.0"),
        ({"kl_weight": math.nan}, "kl_weight must be a finite number >= 0, got nan"),
        ({"kl_weight": True}, "kl_weight must be a finite number >= 0, got True"),
        ({"reconstruction": torch.zeros(3, 3, 4, 5)}, r"reconstruction must have x's shape \(3, 3, 4, 4\)"),
        ({"x": torch.zeros(3, 3, 4, 4, dtype=torch.long)}, "x must be a floating-point tensor"),
        ({"x": [1.0]}, "x must be a floating-point tensor .*got list"),
        (
            {"posterior": posterior(batch=2)},
            "posterior must hold a mean and logvar of one shape with x's batch 3",
        ),
    ],
)
def test_vae_loss_rejects_bad_input(change, message):
    args = {
        "x": torch.zeros(3, 3, 4, 4),
        "reconstruction": torch.zeros(3, 3, 4, 4),
        "posterior": posterior(),
        "kl_weight": 1e-6,
        **change,
    }
    with pytest.raises(ValueError, match=message):
        vae_loss(**args)


# ---------------------------------------------------------------- the scale factor
def test_scale_factor_gives_unit_variance_latents():
    latents = 5.0 * torch.randn(500, 4, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.1
    f = scale_factor(latents)
    assert abs(f - 0.2) < 0.002  # 1 / 5, within the sampling error of 128,000 numbers
    assert abs((latents * f).double().std().item() - 1.0) < 1e-6


@pytest.mark.parametrize(
    "latents, message",
    [
        (torch.ones(4, 3), "latents must have a finite, non-zero standard deviation, got 0.0"),
        (torch.zeros(1, 1), "latents must hold at least two numbers, got 1"),
        (torch.ones(4, 3, dtype=torch.int64), "latents must be a floating-point tensor"),
        (torch.tensor([[1.0, math.inf]]), "latents must have a finite, non-zero standard deviation"),
    ],
)
def test_scale_factor_rejects_bad_latents(latents, message):
    with pytest.raises(ValueError, match=message):
        scale_factor(latents)


# ---------------------------------------------------------------- the networks
@pytest.mark.parametrize(
    "mults, latent", [([1, 2, 2], (4, 8, 8)), ([1, 2], (4, 16, 16)), ([1, 2, 2, 2], (4, 4, 4))]
)
def test_autoencoder_shapes(mults, latent):
    model = AutoencoderKL(base_channels=8, channel_mults=mults)
    x = torch.randn(2, 3, 32, 32)
    q = model.encode(x)
    assert model.latent_shape == latent and q.mean.shape == q.logvar.shape == (2, *latent)
    x_hat, q2 = model(x, torch.Generator().manual_seed(0))
    assert x_hat.shape == x.shape and torch.equal(q2.mean, q.mean)
    assert model.decode(torch.zeros(5, *latent)).shape == (5, 3, 32, 32)


def test_autoencoder_rejects_bad_input():
    model = AutoencoderKL(**TINY)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 32, 32\), got \(2, 3, 16, 16\)"):
        model.encode(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 4, 8, 8\), got \(2, 4, 4, 4\)"):
        model.decode(torch.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match="z must have shape .*got ndarray"):
        model.decode(np.zeros((2, 4, 8, 8)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_size": 30}, r"image_size must be divisible by 4 for channel_mults \(1, 2, 2\), got 30"),
        ({"channel_mults": []}, "channel_mults must be a non-empty sequence of ints >= 1, got"),
        ({"channel_mults": [1, 0]}, "channel_mults must be a non-empty sequence of ints >= 1"),
        ({"latent_channels": 0}, "latent_channels must be an int >= 1, got 0"),
        ({"base_channels": True}, "base_channels must be an int >= 1, got True"),
        ({"num_res_blocks": 1.5}, "num_res_blocks must be an int >= 1, got 1.5"),
    ],
)
def test_autoencoder_rejects_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AutoencoderKL(**kwargs)


# ---------------------------------------------------------------- data, family and zoo entry
def test_scene_image_data_is_deterministic_and_checked():
    first = scene_image_data(n1=5, n2=3, seed=2)
    assert len(first) == 1 and first[0].shape == (8, 3, 32, 32)
    assert torch.equal(first[0], scene_image_data(n1=5, n2=3, seed=2)[0])
    assert first[0].min() >= -1 and first[0].max() <= 1
    for kwargs, message in (
        ({"n1": -1}, "n1 must be an int >= 0, got -1"),
        ({"n2": 1.0}, "n2 must be an int >= 0, got 1.0"),
        ({"n1": 0, "n2": 0}, "n1 \\+ n2 must be >= 1"),
    ):
        with pytest.raises(ValueError, match=message):
            scene_image_data(**kwargs)


def entry(spec, name="test-vae", **changes):
    return zoo.ZooEntry(
        name=name,
        description="a tiny VAE, for tests",
        family="vae",
        spec=spec,
        data=zoo.DataSpec.dataset("scene-images", n1=16, n2=16, seed=0),
        sample_shape=(3, 32, 32),
        train=changes.pop("train", TrainConfig(steps=3, batch_size=8, warmup_steps=1)),
        train_threads=1,
        chapter=12,
        **changes,
    )


@pytest.mark.parametrize(
    "spec, message",
    [
        (VAESpec(network=TINY, kl_weight=-1.0), "kl_weight must be a finite number >= 0, got -1.0"),
        (VAESpec(network=TINY, kl_weight="0"), "kl_weight must be a finite number >= 0, got '0'"),
        (VAESpec(network=[1]), r"network must be a dict of AutoencoderKL's keyword arguments, got \[1\]"),
        (VAESpec(network={**TINY, "depth": 3}), "a VAE spec's network has a key AutoencoderKL does not take"),
        (VAESpec(network={**TINY, "image_size": 30}), "image_size must be divisible by 4"),
    ],
)
def test_a_bad_vae_spec_is_refused_at_registration(spec, message):
    with pytest.raises(ValueError, match=message):
        zoo.register(entry(spec))


def test_a_tiny_vae_trains_through_the_zoo_and_encodes(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_SEED_SHIFT, raising=False)
    zoo.register(entry(VAESpec(network=TINY, kl_weight=1e-3)))
    try:
        loaded = zoo.load("test-vae", progress=False)
        losses = loaded.record["losses"]
        assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
        x = scene_image_data(n1=4, n2=0, seed=9)[0]
        q = loaded.model.encode(x)
        assert q.mean.shape == (4, 4, 8, 8) and loaded.model.decode(q.mean).shape == x.shape
        # the loss the family trains with is vae_loss of one posterior sample
        loss = autoencoder_loss(1e-3)(loaded.model, [x], torch.Generator().manual_seed(1))
        z = q.sample(torch.Generator().manual_seed(1))
        expected = vae_loss(x, loaded.model.decode(z), q, 1e-3).loss
        assert torch.allclose(loss, expected)
    finally:
        zoo.unregister("test-vae")


def test_the_vae_family_refuses_data_of_the_wrong_shape(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    wrong = replace(entry(VAESpec(network=TINY)), data=zoo.DataSpec.dataset("digits"))
    zoo.register(wrong)
    try:
        with pytest.raises(ValueError, match=r"a VAE trains on \[images \(N, 3, 32, 32\)\]; 'test-vae' got"):
            zoo.load("test-vae", progress=False)
    finally:
        zoo.unregister("test-vae")


def test_the_chapter_12_autoencoder_entry(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    real = zoo.entry("scenes-vae")
    assert real.family == "vae" and real.chapter == 12 and real.train_threads == 2
    assert real.data == zoo.DataSpec.dataset("scene-images", n1=10_000, n2=10_000, seed=0)
    zoo.register(replace(real, train=replace(real.train, steps=2, batch_size=4)))
    try:
        loaded = zoo.load("scenes-vae", progress=False)
        assert loaded.model.latent_shape == (4, 8, 8), "a downsampling factor of 4"
        assert len(loaded.record["losses"]) == 2
    finally:
        zoo.register(real)
