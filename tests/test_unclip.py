"""The miniature DALL·E 2 of chapter 13: the prior's network, the two losses against hand
computations (the x_0 and ε targets, the dropped conditions), guidance on embeddings with the zero
vector as the null condition, the embedding-space moves (√D, slerp, text differences), the three
unCLIP families through the zoo on tiny models, the chapter's entries, and the command line's
``sample scenes-unclip`` with its user errors, refused before anything trains."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from diffusion_lib import zoo
from diffusion_lib.__main__ import main
from diffusion_lib.clip import Tokenizer, prompts_from
from diffusion_lib.data import training_tensors
from diffusion_lib.diffusion import GaussianDiffusion
from diffusion_lib.families import unclip
from diffusion_lib.families.clip import CLIPSpec, build_clip
from diffusion_lib.families.unclip import (
    DecoderSpec,
    PriorSpec,
    UnclipSpec,
    decode,
    decoder_loss,
    drop_conditions,
    embed_images,
    embed_tokens,
    embedding_context,
    embedding_scale,
    generate,
    prior_loss,
    sample_prior,
    slerp,
    text_difference,
    vary,
)
from diffusion_lib.families.vae import VAESpec
from diffusion_lib.family import families
from diffusion_lib.nets.prior import PriorDenoiser
from diffusion_lib.nets.unet import Context, UNet
from diffusion_lib.schedules import get_beta_schedule
from diffusion_lib.seeds import ENV_SEED_SHIFT
from diffusion_lib.train import TrainConfig
from diffusion_lib.vae import encode_images, scale_factor

RED = "a small red 3 in the top left"
BLUE = "a large blue 7 in the bottom right"


def randomised(module: nn.Module, seed=0, scale=0.3) -> nn.Module:
    """Every parameter drawn afresh (the zero-initialised projections included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module


def rows(n, d, seed) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def q_sample_by_hand(diffusion, x0, t, eps) -> torch.Tensor:
    ab = diffusion.alphas_cumprod[t].float().reshape(-1, *([1] * (x0.ndim - 1)))
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


# ---------------------------------------------------------------- the prior's network
def test_the_prior_network_maps_embeddings_to_embeddings_and_reads_all_three_inputs():
    torch.manual_seed(0)
    net = PriorDenoiser(embed_dim=6, hidden=16, num_layers=2, time_dim=8)
    z, c, t = rows(5, 6, 1), rows(5, 6, 2), torch.tensor([0, 3, 7, 10, 19])
    out = net(z, t, c)
    assert out.shape == (5, 6) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert not torch.allclose(out, net(z, t, torch.zeros_like(c)), atol=1e-4), "the condition matters"
    assert not torch.allclose(out, net(z, t + 1, c), atol=1e-4), "the timestep matters"
    assert not torch.allclose(out, net(rows(5, 6, 3), t, c), atol=1e-4), "the noised input matters"
    # each row on its own: a batch is its rows' outputs stacked
    assert torch.allclose(net(z[:2], t[:2], c[:2]), out[:2], atol=1e-6)
    assert len(net.layers) == 2 and net.embed_dim == 6 and net.time_dim == 8


@pytest.mark.parametrize(
    "z, t, cond, message",
    [
        (torch.zeros(5, 7), torch.zeros(5), torch.zeros(5, 6), r"z must have shape \(B, 6\), got \(5, 7\)"),
        (torch.zeros(5), torch.zeros(5), torch.zeros(5, 6), r"z must have shape \(B, 6\), got \(5,\)"),
        ([[0.0] * 6], torch.zeros(1), torch.zeros(1, 6), r"z must have shape \(B, 6\), got list"),
        (torch.zeros(5, 6), torch.zeros(5), torch.zeros(5, 6, 1), r"cond must have shape \(B, 6\)"),
        (torch.zeros(5, 6), torch.zeros(5), torch.zeros(5, 5), r"cond must have shape \(B, 6\)"),
        (torch.zeros(5, 6), torch.zeros(5), torch.zeros(4, 6), "cond must have z's batch size 5, got 4"),
    ],
)
def test_the_prior_network_refuses_bad_shapes_naming_the_argument(z, t, cond, message):
    with pytest.raises(ValueError, match=message):
        PriorDenoiser(embed_dim=6, hidden=8, num_layers=1, time_dim=4)(z, t, cond)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"embed_dim": 0}, "embed_dim must be an int >= 1, got 0"),
        ({"hidden": 2.5}, "hidden must be an int >= 1, got 2.5"),
        ({"num_layers": True}, "num_layers must be an int >= 1, got True"),
        ({"time_dim": -1}, "time_dim must be an int >= 1, got -1"),
    ],
)
def test_the_prior_network_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PriorDenoiser(**kwargs)


# ---------------------------------------------------------------- √D and dropping conditions
def test_the_embedding_scale_is_the_square_root_of_the_width():
    assert embedding_scale(64) == 8.0 and embedding_scale(1) == 1.0 and embedding_scale(2) == math.sqrt(2)
    z = F.normalize(rows(1000, 64, 0), dim=1) * embedding_scale(64)
    assert torch.allclose(z.pow(2).mean(dim=1), torch.ones(1000), atol=1e-5), "unit mean square"
    for bad in (0, -4, 2.5, True, "64", None):
        with pytest.raises(ValueError, match="dim must be an int >= 1"):
            embedding_scale(bad)


def test_dropping_conditions_zeroes_the_rows_its_uniforms_pick():
    cond = rows(64, 5, 0) + 3.0
    dropped = drop_conditions(cond, 0.3, torch.Generator().manual_seed(4))
    picked = torch.rand(64, generator=torch.Generator().manual_seed(4)) < 0.3
    assert 0 < picked.sum() < 64
    assert (dropped[picked] == 0).all() and torch.equal(dropped[~picked], cond[~picked])
    assert torch.equal(drop_conditions(cond, 0.0, torch.Generator()), cond)
    share = (drop_conditions(rows(20_000, 2, 1) + 3, 0.1, torch.Generator().manual_seed(0)) == 0).all(1)
    assert abs(share.double().mean() - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 20_000)
    for bad in (1, 1.0, -0.1, float("nan"), True, "0.1"):
        with pytest.raises(ValueError, match=r"probability must be a number in \[0, 1\)"):
            drop_conditions(cond, bad, torch.Generator())


def test_the_decoders_condition_is_one_kept_token_per_row():
    cond = rows(3, 5, 0)
    context = embedding_context(cond)
    assert isinstance(context, Context)
    assert context.states.shape == (3, 1, 5) and torch.equal(context.states[:, 0], cond)
    assert context.mask.dtype == torch.bool and context.mask.shape == (3, 1) and context.mask.all()


# ---------------------------------------------------------------- the two losses by hand
def test_the_prior_loss_is_l_simple_with_an_x0_target_and_the_dropped_text():
    diffusion = GaussianDiffusion(get_beta_schedule("cosine", 20))
    net = randomised(PriorDenoiser(embed_dim=6, hidden=16, num_layers=1, time_dim=8), seed=1)
    z, cond = rows(32, 6, 1), rows(32, 6, 2)
    seen = []

    def model(x, t, c):
        seen.append(c)
        return net(x, t, c)

    loss = prior_loss(diffusion, 0.3)(model, [z, cond], torch.Generator().manual_seed(3))
    # By hand, with the same draws in the same order: the dropout's uniforms, t, then ε.
    g = torch.Generator().manual_seed(3)
    picked = torch.rand(32, generator=g) < 0.3
    t = torch.randint(0, 20, (32,), generator=g)
    eps = torch.randn(32, 6, generator=g)
    c = torch.where(picked[:, None], torch.zeros_like(cond), cond)
    expected = (net(q_sample_by_hand(diffusion, z, t, eps), t, c) - z).pow(2).mean()
    assert 0 < picked.sum() < 32
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.equal(seen[0], c), "the network sees the text with the dropped rows zeroed"
    # the ε target, when asked for
    eps_loss = prior_loss(diffusion, 0.3, "epsilon")(net, [z, cond], torch.Generator().manual_seed(3))
    by_hand = (net(q_sample_by_hand(diffusion, z, t, eps), t, c) - eps).pow(2).mean()
    assert torch.allclose(eps_loss, by_hand, atol=1e-6) and not torch.allclose(eps_loss, loss, atol=1e-3)
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_the_prior_loss_draws_nothing_for_a_dropout_of_zero():
    diffusion = GaussianDiffusion(get_beta_schedule("cosine", 20))
    net = randomised(PriorDenoiser(embed_dim=6, hidden=16, num_layers=1, time_dim=8), seed=1)
    z, cond = rows(16, 6, 1), rows(16, 6, 2)
    loss = prior_loss(diffusion, 0.0)(net, [z, cond], torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 20, (16,), generator=g)
    eps = torch.randn(16, 6, generator=g)
    assert torch.allclose(loss, (net(q_sample_by_hand(diffusion, z, t, eps), t, cond) - z).pow(2).mean())


@pytest.mark.parametrize("make", [prior_loss, decoder_loss])
@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), True])
def test_the_losses_refuse_a_bad_dropout_naming_it(make, bad):
    name = "text_dropout" if make is prior_loss else "embedding_dropout"
    diffusion = GaussianDiffusion(get_beta_schedule("cosine", 20))
    with pytest.raises(ValueError, match=rf"{name} must be a number in \[0, 1\)"):
        make(diffusion, bad)


def test_the_prior_loss_refuses_an_unknown_prediction_type():
    with pytest.raises(ValueError, match="prediction_type"):
        prior_loss(GaussianDiffusion(get_beta_schedule("cosine", 20)), 0.1, "noise")


DECODER_UNET = {
    "in_channels": 4,
    "image_size": 8,
    "base_channels": 8,
    "channel_mults": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [4],
    "num_heads": 2,
    "context_dim": 8,
    "scale_shift": True,
    "pooled_context": True,
}


def test_the_decoder_loss_is_l_simple_with_an_eps_target_and_the_dropped_embedding():
    diffusion = GaussianDiffusion(get_beta_schedule("ldm", 20))
    net = randomised(UNet(**DECODER_UNET), scale=0.2)
    z, cond = torch.randn(8, 4, 8, 8, generator=torch.Generator().manual_seed(1)), rows(8, 8, 2)
    seen = []

    def model(x, t, context=None):
        seen.append(context)
        return net(x, t, context=context)

    loss = decoder_loss(diffusion, 0.5)(model, [z, cond], torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    picked = torch.rand(8, generator=g) < 0.5
    t = torch.randint(0, 20, (8,), generator=g)
    eps = torch.randn(8, 4, 8, 8, generator=g)
    c = torch.where(picked[:, None], torch.zeros_like(cond), cond)
    context = Context(c[:, None, :], torch.ones(8, 1, dtype=torch.bool))
    expected = (net(q_sample_by_hand(diffusion, z, t, eps), t, context=context) - eps).pow(2).mean()
    assert 0 < picked.sum() < 8
    assert torch.allclose(loss, expected, atol=1e-5)
    (got,) = seen
    assert torch.equal(got.states, c[:, None, :]) and got.mask.dtype == torch.bool and got.mask.all()
    # the same without dropout draws t first
    kept = decoder_loss(diffusion, 0.0)(net, [z, cond], torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t, eps = torch.randint(0, 20, (8,), generator=g), torch.randn(8, 4, 8, 8, generator=g)
    full = Context(cond[:, None, :], torch.ones(8, 1, dtype=torch.bool))
    by_hand = (net(q_sample_by_hand(diffusion, z, t, eps), t, context=full) - eps).pow(2).mean()
    assert torch.allclose(kept, by_hand, atol=1e-5)


# ---------------------------------------------------------------- the prior's sampling and its guidance
PRIOR_NETWORK = {"embed_dim": 8, "hidden": 16, "num_layers": 1, "time_dim": 8}
TINY_TRAIN = TrainConfig(steps=3, batch_size=8, warmup_steps=1)
CAPTIONS = zoo.DataSpec.dataset("scene-captions", n1=24, n2=8, seed=0)


class Recording(nn.Module):
    """A prior network that records the conditions of every call."""

    def __init__(self, net):
        super().__init__()
        self.net, self.embed_dim, self.conds = net, net.embed_dim, []

    def forward(self, z, t, cond):
        self.conds.append(cond.clone())
        return self.net(z, t, cond)


def stub_prior(guidance_scale=2.0, model=None) -> zoo.ZooModel:
    """A loaded prior that nothing trained: a randomised network, never registered."""
    spec = PriorSpec(network=PRIOR_NETWORK, clip="test-unclip-clip", num_timesteps=20,
                     guidance_scale=guidance_scale)  # fmt: skip
    entry = zoo.ZooEntry(name="test-stub-prior", description="a stub", family="clip-prior", spec=spec,
                         data=CAPTIONS, sample_shape=(8,), train=TINY_TRAIN, train_threads=1, chapter=13,
                         depends_on=("test-unclip-clip",))  # fmt: skip
    if model is None:
        model = randomised(PriorDenoiser(**PRIOR_NETWORK), seed=2)
    return zoo.ZooModel(entry, model, GaussianDiffusion(get_beta_schedule("cosine", 20)), {})


@pytest.mark.parametrize("s", [0.0, 1.0, 2.5])
def test_one_ddim_step_of_the_prior_is_the_guided_x0_by_hand(s):
    loaded = stub_prior()
    net = loaded.model
    text = rows(3, 8, 5) * 4.0  # not normalised: sample_prior normalises
    out = sample_prior(loaded, text, guidance_scale=s, steps=1, spacing="trailing",
                       generator=torch.Generator().manual_seed(7))  # fmt: skip
    # By hand: z_T from the generator; one DDIM step from t = T − 1 to x_0 returns x̂_0, which
    # for an x_0-predictor is the guided output; the text is scaled to √D on the unit sphere.
    z_T = torch.randn(3, 8, generator=torch.Generator().manual_seed(7))
    t = torch.full((3,), 19)
    cond = net(z_T, t, F.normalize(text, dim=1) * math.sqrt(8))
    uncond = net(z_T, t, torch.zeros(3, 8))
    expected = F.normalize(uncond + s * (cond - uncond), dim=1)
    assert out.shape == (3, 8) and out.dtype == torch.float32
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)


def test_the_prior_guides_with_the_zero_vector_as_the_null_condition():
    text = rows(3, 8, 5)
    calls = {}
    for s in (0.0, 1.0, 2.5):
        recording = Recording(stub_prior().model)
        sample_prior(stub_prior(model=recording), text, guidance_scale=s, steps=2,
                     generator=torch.Generator().manual_seed(1))  # fmt: skip
        calls[s] = recording.conds
    scaled = F.normalize(text, dim=1) * math.sqrt(8)
    assert len(calls[1.0]) == 2 and all(torch.allclose(c, scaled) for c in calls[1.0]), "s = 1: no null call"
    assert len(calls[0.0]) == 2 and all((c == 0).all() for c in calls[0.0]), "s = 0: only the null call"
    for c in calls[2.5]:  # one batched call: the null half first
        assert c.shape == (6, 8) and (c[:3] == 0).all() and torch.allclose(c[3:], scaled)
    # s = 0 ignores the text; s = 1 does not
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    loaded = stub_prior()
    a = sample_prior(loaded, text, guidance_scale=0, steps=3, generator=g())
    b = sample_prior(loaded, rows(3, 8, 6), guidance_scale=0, steps=3, generator=g())
    assert torch.equal(a, b)
    c = sample_prior(loaded, rows(3, 8, 6), guidance_scale=1, steps=3, generator=g())
    assert not torch.allclose(a, c, atol=1e-3)


def test_the_prior_samples_with_its_specs_scale_by_default_and_is_deterministic():
    loaded, text = stub_prior(guidance_scale=2.0), rows(4, 8, 5)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    default = sample_prior(loaded, text, steps=3, generator=g())
    assert torch.equal(default, sample_prior(loaded, text, guidance_scale=2.0, steps=3, generator=g()))
    assert not torch.allclose(default, sample_prior(loaded, text, guidance_scale=1.0, steps=3, generator=g()))
    other = sample_prior(loaded, text, steps=3, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(default, other, atol=1e-3), "the seed matters"
    # with the default generator (seeded 0) and default options
    assert torch.equal(
        sample_prior(loaded, text, steps=3), sample_prior(loaded, text, steps=3, generator=g().manual_seed(0))
    )
    for sampler in ("ddpm", "dpm-solver++"):
        steps = None if sampler == "ddpm" else 3
        out = sample_prior(loaded, text, sampler=sampler, steps=steps, generator=g())
        assert out.shape == (4, 8) and torch.allclose(out.norm(dim=1), torch.ones(4), atol=1e-6)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((torch.zeros(2, 8),), {}, "text_embeddings must be finite with no zero row"),
        ((rows(2, 7, 0),), {}, r"text_embeddings must be a float tensor \(N, 8\), got \(2, 7\)"),
        ((rows(2, 8, 0)[0],), {}, r"text_embeddings must be a float tensor \(N, 8\)"),
        ((torch.ones(2, 8, dtype=torch.long),), {}, r"text_embeddings must be a float tensor \(N, 8\)"),
        ((rows(2, 8, 0),), {"guidance_scale": -1}, r"guidance_scale must be a number in \[0, inf\]"),
        ((rows(2, 8, 0),), {"sampler": "euler"}, "sampler must be one of ddpm, ddim, dpm-solver"),
        ((rows(2, 8, 0),), {"steps": 21}, "at most the model's 20 training steps, got 21"),
        ((rows(2, 8, 0),), {"sampler": "dpm-solver++", "eta": 0.5}, "--eta applies to ddim only"),
        ((rows(2, 8, 0),), {"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
    ],
)
def test_the_prior_refuses_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_prior(stub_prior(), *args, **kwargs)


# ---------------------------------------------------------------- moving in embedding space
def test_slerp_keeps_to_the_sphere_and_moves_by_the_angle():
    a, b = rows(5, 8, 0) * 3.0, rows(5, 8, 1)
    a_hat, b_hat = F.normalize(a, dim=1), F.normalize(b, dim=1)
    theta = torch.acos((a_hat * b_hat).sum(1))
    assert torch.allclose(slerp(a, b, 0.0), a_hat, atol=1e-6)
    assert torch.allclose(slerp(a, b, 1.0), b_hat, atol=1e-6)
    assert torch.allclose(slerp(a, b, 1), b_hat, atol=1e-6), "an int weight"
    for w in (0.1, 0.25, 0.5, 0.8):
        mid = slerp(a, b, w)
        assert mid.shape == (5, 8)
        assert torch.allclose(mid.norm(dim=1), torch.ones(5), atol=1e-6)
        assert torch.allclose(torch.acos((mid * a_hat).sum(1).clamp(-1, 1)), w * theta, atol=2e-4)
        assert torch.allclose(torch.acos((mid * b_hat).sum(1).clamp(-1, 1)), (1 - w) * theta, atol=2e-4)
        # in the plane of a and b: the formula's coefficients
        by_hand = (
            torch.sin((1 - w) * theta)[:, None] * a_hat + torch.sin(w * theta)[:, None] * b_hat
        ) / torch.sin(theta)[:, None]
        assert torch.allclose(mid, by_hand, atol=1e-5)
    # not the renormalised linear interpolation (they differ between the ends)
    assert not torch.allclose(slerp(a, b, 0.25), F.normalize(0.75 * a_hat + 0.25 * b_hat, dim=1), atol=1e-3)


def test_slerp_of_nearly_parallel_rows_is_finite_and_on_the_sphere():
    a = rows(3, 8, 0)
    for b in (a.clone(), a + 1e-6 * rows(3, 8, 1), 2.0 * a):
        for w in (0.0, 0.3, 1.0):
            out = slerp(a, b, w)
            assert torch.isfinite(out).all() and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)
            assert torch.allclose(out, F.normalize(a, dim=1), atol=1e-4)


@pytest.mark.parametrize(
    "a, b, w, message",
    [
        (rows(2, 8, 0), rows(2, 8, 1), -0.1, r"weight must be a number in \[0, 1\], got -0.1"),
        (rows(2, 8, 0), rows(2, 8, 1), 1.5, r"weight must be a number in \[0, 1\]"),
        (rows(2, 8, 0), rows(2, 8, 1), float("nan"), r"weight must be a number in \[0, 1\]"),
        (rows(2, 8, 0), rows(2, 8, 1), True, r"weight must be a number in \[0, 1\]"),
        (rows(2, 8, 0), rows(3, 8, 1), 0.5, r"b must have a's shape \(2, 8\), got \(3, 8\)"),
        (rows(2, 8, 0), rows(2, 7, 1), 0.5, r"b must be a float tensor \(N, 8\)"),
        (torch.zeros(2, 8), rows(2, 8, 1), 0.5, "a must be finite with no zero row"),
        (rows(2, 8, 0), torch.full((2, 8), float("nan")), 0.5, "b must be finite with no zero row"),
        (rows(2, 8, 0)[0], rows(2, 8, 1), 0.5, r"a must be a float tensor \(N, D\)"),
        (torch.ones(2, 8, dtype=torch.long), rows(2, 8, 1), 0.5, r"a must be a float tensor"),
        ([[1.0, 0.0]], rows(1, 2, 1), 0.5, r"a must be a float tensor \(N, D\), got list"),
        (rows(2, 8, 0), -rows(2, 8, 0), 0.5, "a and b must not be antipodal rows"),
    ],
)
def test_slerp_refuses_bad_inputs(a, b, w, message):
    with pytest.raises(ValueError, match=message):
        slerp(a, b, w)


def test_a_text_difference_moves_the_image_embedding_along_the_texts():
    z, old, new = rows(3, 8, 0) * 2.0, rows(3, 8, 1), rows(3, 8, 2) * 5.0
    unit = lambda x: F.normalize(x, dim=1)  # noqa: E731
    for w in (0.5, 1.0, 3.0):
        expected = unit(unit(z) + w * (unit(new) - unit(old)))
        out = text_difference(z, old, new, w)
        assert torch.allclose(out, expected, atol=1e-6)
        assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)
    assert torch.allclose(text_difference(z, old, new), unit(unit(z) + unit(new) - unit(old)), atol=1e-6)
    assert torch.allclose(text_difference(z, old, new, 0.0), unit(z), atol=1e-6)
    assert torch.allclose(text_difference(z, old, new, 0), unit(z), atol=1e-6)
    # one row of old and new applies to every image
    one_old, one_new = old[:1], new[:1]
    shared = text_difference(z, one_old, one_new, 0.7)
    assert torch.allclose(shared, unit(unit(z) + 0.7 * (unit(one_new) - unit(one_old))), atol=1e-6)
    assert torch.allclose(
        shared, text_difference(z, one_old.expand(3, 8), one_new.expand(3, 8), 0.7), atol=1e-6
    )


@pytest.mark.parametrize(
    "z, old, new, w, message",
    [
        (rows(3, 8, 0), rows(2, 8, 1), rows(3, 8, 2), 1.0, "old must have 1 or 3 rows, got 2"),
        (rows(3, 8, 0), rows(3, 8, 1), rows(2, 8, 2), 1.0, "new must have 1 or 3 rows, got 2"),
        (rows(3, 8, 0), rows(3, 7, 1), rows(3, 8, 2), 1.0, r"old must be a float tensor \(N, 8\)"),
        (rows(3, 8, 0), rows(3, 8, 1), torch.zeros(1, 8), 1.0, "new must be finite with no zero row"),
        (torch.zeros(3, 8), rows(3, 8, 1), rows(3, 8, 2), 1.0, "image_embeddings must be finite"),
        (rows(3, 8, 0)[0], rows(3, 8, 1), rows(3, 8, 2), 1.0, "image_embeddings must be a float tensor"),
        (rows(3, 8, 0), rows(3, 8, 1), rows(3, 8, 2), -1.0, r"weight must be a number in \[0, inf\]"),
        (rows(3, 8, 0), rows(3, 8, 1), rows(3, 8, 2), math.inf, r"weight must be a number in \[0, inf\]"),
        (rows(3, 8, 0), rows(3, 8, 1), rows(3, 8, 2), "1", r"weight must be a number in \[0, inf\]"),
    ],
)
def test_a_text_difference_refuses_bad_inputs(z, old, new, w, message):
    with pytest.raises(ValueError, match=message):
        text_difference(z, old, new, w)


def test_a_text_difference_that_cancels_the_embedding_is_refused():
    e1 = torch.eye(8)[:1]
    with pytest.raises(ValueError, match="the edited embedding vanished: choose a smaller weight"):
        text_difference(e1, e1, -e1, 0.5)  # e1 + 0.5 (−e1 − e1) = 0


# ---------------------------------------------------------------- the CLIP encoders in batches
TINY_CLIP = CLIPSpec(
    image={"width": 4, "feature_dim": 8}, text={"width": 6, "layers": 1, "heads": 2}, embed_dim=8
)


def test_embedding_in_batches_is_embedding_at_once():
    torch.manual_seed(0)
    clip_model = build_clip(TINY_CLIP, Tokenizer.for_scenes())
    images = torch.rand(7, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    tokens = clip_model.tokenizer.encode([RED, BLUE, "a green 1", "a red 3", "a blue 7", RED, BLUE])
    z_i = embed_images(clip_model, images, batch_size=3)
    z_t = embed_tokens(clip_model, tokens, batch_size=3)
    with torch.no_grad():
        assert torch.allclose(z_i, clip_model.encode_image(images), atol=1e-6)
        assert torch.allclose(z_t, clip_model.encode_tokens(tokens), atol=1e-6)
    assert not clip_model.training, "the frozen encoders run in eval mode"
    assert torch.allclose(z_i.norm(dim=1), torch.ones(7), atol=1e-6) and z_t.shape == (7, 8)


# ---------------------------------------------------------------- prompts of the command line
def test_prompts_come_from_one_prompt_or_one_file(tmp_path):
    assert prompts_from("m", "  a small  red 3 ", None) == ["a small red 3"]
    listed = tmp_path / "prompts.txt"
    listed.write_text(f"{RED}\n\n  {BLUE} \n", encoding="utf-8")
    assert prompts_from("m", None, listed) == [RED, BLUE]
    assert prompts_from("m", None, str(listed)) == [RED, BLUE]
    for prompt, path, message in [
        ("a red 3", listed, "'m' needs one of --prompt TEXT or --prompts FILE, got both"),
        (None, None, "'m' needs one of --prompt TEXT or --prompts FILE, got neither"),
        ("a purple 3", None, "unknown word 'purple'"),
        ("", None, "a prompt must be a non-empty str"),
        (None, tmp_path / "missing.txt", "no such file"),
    ]:
        with pytest.raises(ValueError, match=message):
            prompts_from("m", prompt, path)
    (tmp_path / "bad.txt").write_text("a red 3\na purple 7\n")
    with pytest.raises(ValueError, match="unknown word 'purple'"):
        prompts_from("m", None, tmp_path / "bad.txt")


# ---------------------------------------------------------------- the families through the zoo
TINY_VAE = {"base_channels": 8, "channel_mults": [1, 2, 2], "num_res_blocks": 1, "latent_channels": 4}
COMMON = {"train": TINY_TRAIN, "train_threads": 1, "chapter": 13}


def tiny_entries():
    return [
        zoo.ZooEntry(name="test-unclip-vae", description="a tiny VAE", family="vae",
                     spec=VAESpec(network=TINY_VAE), data=zoo.DataSpec.dataset("scene-images", n1=16, n2=0),
                     sample_shape=(3, 32, 32), **COMMON),
        zoo.ZooEntry(name="test-unclip-clip", description="a tiny CLIP", family="clip", spec=TINY_CLIP,
                     data=CAPTIONS, sample_shape=(3, 32, 32), **COMMON),
        zoo.ZooEntry(name="test-unclip-prior", description="a tiny prior", family="clip-prior",
                     spec=PriorSpec(network=PRIOR_NETWORK, clip="test-unclip-clip", num_timesteps=20,
                                    guidance_scale=1.5),
                     depends_on=("test-unclip-clip",), data=CAPTIONS, sample_shape=(8,), **COMMON),
        zoo.ZooEntry(name="test-unclip-decoder", description="a tiny decoder", family="unclip-decoder",
                     spec=DecoderSpec(network=DECODER_UNET, autoencoder="test-unclip-vae",
                                      clip="test-unclip-clip", schedule="ldm", num_timesteps=20,
                                      guidance_scale=2.0),
                     depends_on=("test-unclip-vae", "test-unclip-clip"), data=CAPTIONS,
                     sample_shape=(3, 32, 32), **COMMON),
        zoo.ZooEntry(name="test-unclip", description="a tiny unCLIP pipeline", family="unclip",
                     spec=UnclipSpec(prior="test-unclip-prior", decoder="test-unclip-decoder"),
                     depends_on=("test-unclip-prior", "test-unclip-decoder"),
                     data=zoo.DataSpec.dataset("scene-captions", n1=1, n2=0, seed=1),
                     sample_shape=(3, 32, 32), **COMMON),
    ]  # fmt: skip


def entry_named(name: str) -> zoo.ZooEntry:
    return next(e for e in tiny_entries() if e.name == name)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny entries registered, trained once into a cache of this module's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(zoo.ENV_HOME, str(tmp_path_factory.mktemp("unclip") / "cache"))
        patch.delenv(ENV_SEED_SHIFT, raising=False)
        entries = tiny_entries()
        for e in entries:
            zoo.register(e)
        try:
            yield {name: zoo.load(name, progress=False) for name in [e.name for e in entries]}
        finally:
            for e in entries:
                zoo.unregister(e.name)


@pytest.fixture
def restored(tiny):
    """Entries a test replaces are registered again afterwards."""
    yield
    for e in tiny_entries():
        zoo.register(e)


def test_the_tiny_prior_and_decoder_train_on_the_clip_embeddings(tiny):
    prior, decoder = tiny["test-unclip-prior"], tiny["test-unclip-decoder"]
    assert isinstance(prior.model, PriorDenoiser) and prior.model.embed_dim == 8
    assert len(prior.record["losses"]) == 3 and len(decoder.record["losses"]) == 3
    assert set(prior.entry.config()["dependency_keys"]) == {"test-unclip-clip"}
    assert set(decoder.entry.config()["dependency_keys"]) == {"test-unclip-vae", "test-unclip-clip"}
    assert prior.diffusion.num_timesteps == 20 and decoder.diffusion.num_timesteps == 20
    assert torch.allclose(prior.diffusion.betas, get_beta_schedule("cosine", 20).double())
    assert torch.allclose(decoder.diffusion.betas, get_beta_schedule("ldm", 20).double())
    # the decoder's scale factor, from the latents of its training images
    vae = tiny["test-unclip-vae"].model
    latents = encode_images(vae, training_tensors(CAPTIONS.name, **CAPTIONS.kwargs)[0])
    assert decoder.record["scale_factor"] == pytest.approx(scale_factor(latents), rel=1e-9)
    assert tiny["test-unclip"].record.get("losses") is None, "the pipeline trains nothing"
    assert list(tiny["test-unclip"].model.state_dict()) == []


def test_the_prior_trains_on_scaled_clip_embeddings(tiny, monkeypatch):
    """What train hands the loss: the CLIP embeddings of the images and the captions times √D."""
    seen = []

    def spy(self, entry, loss, data, **kwargs):
        seen.append(data)
        raise RuntimeError("stop")

    monkeypatch.setattr(unclip.PriorFamily, "train_network", spy)
    images, tokens = training_tensors(CAPTIONS.name, **CAPTIONS.kwargs)[:2]
    family, clip = zoo.family_of(entry_named("test-unclip-prior")), tiny["test-unclip-clip"]
    with pytest.raises(RuntimeError, match="stop"):
        family.train(zoo.resolve("test-unclip-prior"), [images, tokens],
                     dependencies={"test-unclip-clip": clip},
                     checkpoint=None, progress=False, device=torch.device("cpu"))  # fmt: skip
    z_i, z_t = seen[0]
    with torch.no_grad():
        assert torch.allclose(z_i, clip.model.encode_image(images) * math.sqrt(8), atol=1e-5)
        assert torch.allclose(z_t, clip.model.encode_tokens(tokens) * math.sqrt(8), atol=1e-5)


def test_the_decoder_trains_on_scaled_latents_and_scaled_image_embeddings(tiny, monkeypatch):
    seen = []

    def spy(self, entry, loss, data, **kwargs):
        seen.append(data)
        raise RuntimeError("stop")

    monkeypatch.setattr(unclip.DecoderFamily, "train_network", spy)
    images, tokens = training_tensors(CAPTIONS.name, **CAPTIONS.kwargs)[:2]
    vae, clip = tiny["test-unclip-vae"], tiny["test-unclip-clip"]
    family = zoo.family_of(entry_named("test-unclip-decoder"))
    with pytest.raises(RuntimeError, match="stop"):
        family.train(zoo.resolve("test-unclip-decoder"), [images, tokens],
                     dependencies={"test-unclip-vae": vae, "test-unclip-clip": clip},
                     checkpoint=None, progress=False, device=torch.device("cpu"))  # fmt: skip
    latents, cond = seen[0]
    expected = encode_images(vae.model, images)
    assert torch.allclose(latents, expected * tiny["test-unclip-decoder"].record["scale_factor"], atol=1e-5)
    assert float(latents.std()) == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        assert torch.allclose(cond, clip.model.encode_image(images) * math.sqrt(8), atol=1e-5)


@pytest.mark.parametrize(
    "name, changes, message",
    [
        (
            "test-unclip-prior",
            {"depends_on": ()},
            "builds on 'test-unclip-clip', which must be in its depends_on",
        ),
        (
            "test-unclip-prior",
            {"network": {**PRIOR_NETWORK, "embed_dim": 6}},
            "network embed_dim must be 'test-unclip-clip''s embedding width 8, got 6",
        ),
        (
            "test-unclip-prior",
            {"data": zoo.DataSpec.dataset("scene-images", n1=16, n2=0)},
            r"'test-unclip-prior' trains on \[images, tokens\]",
        ),
        (
            "test-unclip-decoder",
            {"depends_on": ("test-unclip-clip",)},
            "builds on 'test-unclip-vae', which must be in its depends_on",
        ),
        (
            "test-unclip-decoder",
            {"depends_on": ("test-unclip-vae",)},
            "builds on 'test-unclip-clip', which must be in its depends_on",
        ),
        (
            "test-unclip-decoder",
            {"network": {**DECODER_UNET, "context_dim": 6}},
            "network context_dim must be 'test-unclip-clip''s embedding width 8, got 6",
        ),
        (
            "test-unclip-decoder",
            {"network": {**DECODER_UNET, "in_channels": 3}},
            r"must fit 'test-unclip-vae''s latents \(4, 8, 8\), got \(3, 8, 8\)",
        ),
        (
            "test-unclip-decoder",
            {"network": {**DECODER_UNET, "image_size": 16}},
            r"must fit 'test-unclip-vae''s latents \(4, 8, 8\), got \(4, 16, 16\)",
        ),
        ("test-unclip", {"depends_on": ("test-unclip-prior",)}, "builds on 'test-unclip-decoder'"),
        (
            "test-unclip",
            {
                "spec": UnclipSpec(prior="test-unclip-decoder", decoder="test-unclip-decoder"),
                "depends_on": ("test-unclip-decoder",),
            },
            "'test-unclip-decoder' must be a clip-prior, got a unclip-decoder",
        ),  # fmt: skip
        (
            "test-unclip",
            {
                "spec": UnclipSpec(prior="test-unclip-prior", decoder="test-unclip-prior"),
                "depends_on": ("test-unclip-prior",),
            },
            "'test-unclip-prior' must be a unclip-decoder, got a clip-prior",
        ),  # fmt: skip
    ],
)
def test_training_refuses_what_does_not_fit_its_dependencies(tiny, restored, name, changes, message):
    entry = entry_named(name)
    if "network" in changes:
        changes = {"spec": replace(entry.spec, network=changes["network"])}
    zoo.register(replace(entry, **changes))
    with pytest.raises(ValueError, match=message):
        zoo.load(name, progress=False)


def test_the_pipeline_generates_n_images_per_prompt(tiny):
    loaded, clip = tiny["test-unclip"], tiny["test-unclip-clip"].model
    prompts = [RED, f"  {BLUE} "]
    out = generate(loaded, prompts, 3, steps=3, generator=torch.Generator().manual_seed(1))
    assert out.images.shape == (6, 3, 32, 32) and out.images.dtype == torch.float32
    assert float(out.images.min()) >= -1.0 and float(out.images.max()) <= 1.0
    assert out.prompts == [RED] * 3 + [BLUE] * 3
    assert out.image_embeddings.shape == (6, 8)
    assert torch.allclose(out.image_embeddings.norm(dim=1), torch.ones(6), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(
            out.conditions, clip.encode_text([RED, BLUE]).repeat_interleave(3, dim=0), atol=1e-6
        )
    again = generate(loaded, prompts, 3, steps=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.images, out.images), "the same seed, the same images"
    other = generate(loaded, prompts, 3, steps=3, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(other.images, out.images, atol=1e-3)


def test_the_pipeline_is_the_prior_then_the_decoder_each_with_its_own_scale(tiny):
    loaded = tiny["test-unclip"]
    prior, decoder, clip = (
        tiny["test-unclip-prior"],
        tiny["test-unclip-decoder"],
        tiny["test-unclip-clip"].model,
    )
    out = generate(loaded, [RED, BLUE], 2, guidance_scale=2.5, prior_guidance_scale=1.5, steps=3,
                   generator=torch.Generator().manual_seed(4))  # fmt: skip
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        z_t = clip.encode_text([RED, BLUE]).repeat_interleave(2, dim=0)
    z_i = sample_prior(prior, z_t, guidance_scale=1.5, steps=3, generator=g)
    images = decode(decoder, z_i, guidance_scale=2.5, steps=3, generator=g)
    assert torch.allclose(out.image_embeddings, z_i, atol=1e-6) and torch.allclose(
        out.images, images, atol=1e-5
    )
    # the defaults are the prior's and the decoder's specs' scales (1.5 and 2)
    default = generate(loaded, [RED], 1, steps=2, generator=torch.Generator().manual_seed(4))
    given = generate(loaded, [RED], 1, guidance_scale=2.0, prior_guidance_scale=1.5, steps=2,
                     generator=torch.Generator().manual_seed(4))  # fmt: skip
    assert torch.equal(default.images, given.images)
    swapped = generate(loaded, [RED], 1, guidance_scale=1.5, prior_guidance_scale=2.0, steps=2,
                       generator=torch.Generator().manual_seed(4))  # fmt: skip
    assert not torch.allclose(swapped.images, given.images, atol=1e-4)


def test_one_ddim_step_of_the_decoder_is_the_guided_latent_decoded_by_hand(tiny):
    trained, vae = tiny["test-unclip-decoder"], tiny["test-unclip-vae"].model
    # its weights drawn afresh, so that the embedding's zero-initialised paths carry it
    network = randomised(UNet(**DECODER_UNET), seed=3, scale=0.1)
    decoder = zoo.ZooModel(trained.entry, network, trained.diffusion, trained.record)
    z_i, s = rows(2, 8, 3), 2.5
    out = decode(decoder, z_i, guidance_scale=s, steps=1, generator=torch.Generator().manual_seed(5))
    # By hand: latent noise; one DDIM step from t = 0 gives x̂_0 = (x − √(1−ᾱ) ε̂)/√ᾱ of the
    # guided ε̂; divided by the scale factor, decoded, clipped.
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    t = torch.zeros(2, dtype=torch.long)
    net = decoder.model

    def eps(cond):
        return net(x, t, context=Context(cond[:, None, :], torch.ones(2, 1, dtype=torch.bool)))

    with torch.no_grad():
        cond, uncond = eps(F.normalize(z_i, dim=1) * math.sqrt(8)), eps(torch.zeros(2, 8))
        guided = uncond + s * (cond - uncond)
        ab = float(decoder.diffusion.alphas_cumprod[0])
        x0 = (x - math.sqrt(1 - ab) * guided) / math.sqrt(ab)
        expected = vae.decode(x0 / decoder.record["scale_factor"]).clamp(-1, 1)
    assert out.shape == (2, 3, 32, 32) and torch.allclose(out, expected, atol=1e-4)
    assert float((expected.abs() < 1).float().mean()) > 0.5, "not merely clipped"
    assert decoder.record["scale_factor"] != pytest.approx(1.0, abs=0.05)
    unguided = decode(decoder, z_i, guidance_scale=0, steps=1, generator=torch.Generator().manual_seed(5))
    assert not torch.allclose(unguided, out, atol=1e-4), "the embedding reaches the image"


def test_variations_decode_each_images_embedding_n_times(tiny):
    loaded, decoder, clip = tiny["test-unclip"], tiny["test-unclip-decoder"], tiny["test-unclip-clip"].model
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = vary(loaded, images, 3, steps=2, generator=torch.Generator().manual_seed(6))
    assert out.images.shape == (6, 3, 32, 32) and out.prompts == []
    assert float(out.images.abs().max()) <= 1.0
    with torch.no_grad():
        z_i = clip.encode_image(images).repeat_interleave(3, dim=0)
    assert torch.allclose(out.image_embeddings, z_i, atol=1e-6) and torch.equal(
        out.conditions, out.image_embeddings
    )
    by_hand = decode(decoder, z_i, steps=2, generator=torch.Generator().manual_seed(6))
    assert torch.allclose(out.images, by_hand, atol=1e-5)
    assert not torch.allclose(out.images[0], out.images[1], atol=1e-3), "fresh noise for each variation"


@pytest.mark.parametrize(
    "images, n, message",
    [
        (torch.full((2, 3, 32, 32), 1.5), 1, r"images must be finite and in \[-1, 1\]"),
        (torch.full((2, 3, 32, 32), -1.01), 1, r"images must be finite and in \[-1, 1\]"),
        (torch.full((2, 3, 32, 32), float("nan")), 1, r"images must be finite and in \[-1, 1\]"),
        (torch.zeros(3, 32, 32), 1, r"images must be a float tensor \(N, 3, H, W\), got \(3, 32, 32\)"),
        (torch.zeros(0, 3, 32, 32), 1, r"images must be a float tensor \(N, 3, H, W\)"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.long), 1, r"images must be a float tensor"),
        (
            np.zeros((2, 3, 32, 32), np.float32),
            1,
            r"images must be a float tensor \(N, 3, H, W\), got ndarray",
        ),
        (torch.zeros(2, 3, 32, 32), 0, "n must be an int >= 1, got 0"),
        (torch.zeros(2, 3, 32, 32), 1.0, "n must be an int >= 1, got 1.0"),
    ],
)
def test_variations_refuse_bad_inputs(tiny, images, n, message):
    with pytest.raises(ValueError, match=message):
        vary(tiny["test-unclip"], images, n, steps=1)


@pytest.mark.parametrize(
    "function, model, message",
    [
        (
            "generate",
            "test-unclip-prior",
            "model 'test-unclip-prior' is a clip-prior, not an unclip pipeline",
        ),
        (
            "vary",
            "test-unclip-decoder",
            "model 'test-unclip-decoder' is a unclip-decoder, not an unclip pipeline",
        ),
        ("sample_prior", "test-unclip-decoder", "is a unclip-decoder, not a clip-prior"),
        ("decode", "test-unclip-prior", "is a clip-prior, not an unclip-decoder"),
        ("decode", "test-unclip", "is a unclip, not an unclip-decoder"),
    ],
)
def test_each_stage_refuses_another_kind_of_model(tiny, function, model, message):
    calls = {
        "generate": lambda m: generate(m, [RED], 1),
        "vary": lambda m: vary(m, torch.zeros(1, 3, 32, 32), 1),
        "sample_prior": lambda m: sample_prior(m, rows(1, 8, 0)),
        "decode": lambda m: decode(m, rows(1, 8, 0)),
    }
    with pytest.raises(ValueError, match=message):
        calls[function](tiny[model])


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (([RED], 0), {}, "n must be an int >= 1, got 0"),
        (("a red 3", 1), {}, "prompts must be a non-empty list of str"),
        ((["a purple 3"], 1), {}, "unknown word 'purple'"),
        (([RED], 1), {"guidance_scale": -1}, r"guidance_scale must be a number in \[0, inf\]"),
        (([RED], 1), {"prior_guidance_scale": math.nan}, r"guidance_scale must be a number in \[0, inf\]"),
        (([RED], 1), {"steps": 21}, "at most the model's 20 training steps"),
        (([RED], 1), {"sampler": "ddpm", "steps": 3}, "--steps applies to ddim and dpm-solver"),
    ],
)
def test_the_pipeline_refuses_bad_arguments(tiny, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(tiny["test-unclip"], *args, **kwargs)


def test_the_samples_output_is_generate_by_deterministic_ddim(tiny):
    prompts = [RED, BLUE]
    out = zoo.outputs("test-unclip", "samples", progress=False, prompts=prompts, n=2, steps=3, seed=4)
    by_hand = generate(tiny["test-unclip"], prompts, 2, sampler="ddim", steps=3, spacing="linspace",
                       generator=torch.Generator().manual_seed(4))  # fmt: skip
    assert set(out.tensors) == {"images", "image_embeddings"}
    assert torch.allclose(out.tensors["images"], by_hand.images, atol=1e-5)
    assert torch.allclose(out.tensors["image_embeddings"], by_hand.image_embeddings, atol=1e-6)
    scaled = zoo.outputs("test-unclip", "samples", progress=False, prompts=prompts, n=2, steps=3, seed=4,
                         guidance_scale=4.0, prior_guidance_scale=0.0)  # fmt: skip
    by_hand = generate(tiny["test-unclip"], prompts, 2, guidance_scale=4.0, prior_guidance_scale=0.0, steps=3,
                       spacing="linspace", generator=torch.Generator().manual_seed(4))  # fmt: skip
    assert torch.allclose(scaled.tensors["images"], by_hand.images, atol=1e-5)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        zoo.outputs("test-unclip", "samples", progress=False, prompts=prompts, n=1, seed=-1)
    with pytest.raises(ValueError, match="output must be one of 'samples'"):
        zoo.outputs("test-unclip", "latents", progress=False)


# ---------------------------------------------------------------- the specs
def registered(name: str, spec):
    zoo.register(replace(entry_named(name), spec=spec))


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            PriorSpec(network=[("embed_dim", 8)]),
            "network must be a dict of PriorDenoiser's keyword arguments",
        ),
        (PriorSpec(network={"hidden": 16}), "network must set embed_dim"),
        (PriorSpec(network={**PRIOR_NETWORK, "depth": 2}), "has a key PriorDenoiser does not take"),
        (PriorSpec(network={**PRIOR_NETWORK, "embed_dim": 0}), "embed_dim must be an int >= 1, got 0"),
        (PriorSpec(network=PRIOR_NETWORK, clip=3), "clip must name a zoo model, got 3"),
        (PriorSpec(network=PRIOR_NETWORK, schedule="square"), "must be one of linear, cosine"),
        (PriorSpec(network=PRIOR_NETWORK, num_timesteps=0), "num_timesteps must be an int >= 1, got 0"),
        (PriorSpec(network=PRIOR_NETWORK, prediction_type="noise"), "prediction_type"),
        (PriorSpec(network=PRIOR_NETWORK, text_dropout=1.0), r"text_dropout must be a number in \[0, 1\)"),
        (PriorSpec(network=PRIOR_NETWORK, text_dropout=-0.1), r"text_dropout must be a number in \[0, 1\)"),
        (
            PriorSpec(network=PRIOR_NETWORK, guidance_scale=-1),
            r"guidance_scale must be a number in \[0, inf\]",
        ),
        (PriorSpec(network=PRIOR_NETWORK, guidance_scale=math.nan), r"guidance_scale must be a number"),
        (
            DecoderSpec(network=DECODER_UNET),
            "spec must be a PriorSpec for family 'clip-prior', got DecoderSpec",
        ),
    ],
)
def test_a_bad_prior_spec_is_refused_at_registration(spec, message):
    with pytest.raises(ValueError, match=message):
        registered("test-unclip-prior", spec)


@pytest.mark.parametrize(
    "spec, message",
    [
        (DecoderSpec(network=None), "network must be a dict of UNet's keyword arguments, got None"),
        (DecoderSpec(network={**DECODER_UNET, "context_dim": None}), "network must set context_dim"),
        (
            DecoderSpec(network={k: v for k, v in DECODER_UNET.items() if k != "context_dim"}),
            "must set context_dim",
        ),
        (DecoderSpec(network={**DECODER_UNET, "num_classes": 10}), "network must not set num_classes"),
        (DecoderSpec(network={**DECODER_UNET, "null_label": True}), "network must not set null_label"),
        (DecoderSpec(network={**DECODER_UNET, "depth": 2}), "has a key UNet does not take"),
        (DecoderSpec(network=DECODER_UNET, autoencoder=None), "autoencoder must name a zoo model, got None"),
        (DecoderSpec(network=DECODER_UNET, clip=("scenes-clip",)), "clip must name a zoo model"),
        (DecoderSpec(network=DECODER_UNET, schedule="square"), "must be one of linear, cosine"),
        (DecoderSpec(network=DECODER_UNET, num_timesteps=2.5), "num_timesteps must be an int >= 1"),
        (
            DecoderSpec(network=DECODER_UNET, embedding_dropout=1),
            r"embedding_dropout must be a number in \[0, 1\)",
        ),
        (
            DecoderSpec(network=DECODER_UNET, guidance_scale=-0.5),
            r"guidance_scale must be a number in \[0, inf\]",
        ),
        (PriorSpec(network=PRIOR_NETWORK), "spec must be a DecoderSpec for family 'unclip-decoder'"),
    ],
)
def test_a_bad_decoder_spec_is_refused_at_registration(spec, message):
    with pytest.raises(ValueError, match=message):
        registered("test-unclip-decoder", spec)


@pytest.mark.parametrize(
    "spec, message",
    [
        (UnclipSpec(prior=3), "prior must name a zoo model, got 3"),
        (UnclipSpec(decoder=None), "decoder must name a zoo model, got None"),
        (PriorSpec(network=PRIOR_NETWORK), "spec must be a UnclipSpec for family 'unclip'"),
    ],
)
def test_a_bad_pipeline_spec_is_refused_at_registration(spec, message):
    with pytest.raises(ValueError, match=message):
        registered("test-unclip", spec)


# ---------------------------------------------------------------- the chapter's entries
def test_the_chapter_13_entries_fit_what_they_build_on():
    prior, decoder, pipeline = (
        zoo.entry(n) for n in ("scenes-unclip-prior", "scenes-unclip-decoder", "scenes-unclip")
    )
    assert (prior.family, decoder.family, pipeline.family) == ("clip-prior", "unclip-decoder", "unclip")
    assert all(e.chapter == 13 and e.train_threads == 2 for e in (prior, decoder, pipeline))
    clip = zoo.entry("scenes-clip").spec
    vae_entry = zoo.entry("scenes-vae")
    latent_shape = tuple(zoo.family_of(vae_entry).build(vae_entry).latent_shape)
    # the prior: scenes-clip's embeddings, DALL·E 2's choices
    assert prior.depends_on == ("scenes-clip",) and prior.spec.clip == "scenes-clip"
    assert prior.spec.network["embed_dim"] == clip.embed_dim and prior.sample_shape == (clip.embed_dim,)
    assert prior.spec.prediction_type == "x0" and prior.spec.text_dropout == 0.1
    # the decoder: scenes-vae's latents, conditioned on scenes-clip's image embedding
    assert set(decoder.depends_on) == {"scenes-vae", "scenes-clip"}
    assert (decoder.spec.autoencoder, decoder.spec.clip) == ("scenes-vae", "scenes-clip")
    network = decoder.spec.network
    assert (network["in_channels"], network["image_size"], network["image_size"]) == latent_shape
    assert network["context_dim"] == clip.embed_dim and network["pooled_context"] is True
    assert 0 < decoder.spec.embedding_dropout < 1 and decoder.spec.guidance_scale >= 1
    # both train on scenes-ldm's captioned scenes
    assert prior.data == decoder.data == zoo.entry("scenes-ldm").data
    # the pipeline: its two stages, in its depends_on (so their keys are in its key)
    assert (pipeline.spec.prior, pipeline.spec.decoder) == ("scenes-unclip-prior", "scenes-unclip-decoder")
    assert set(pipeline.depends_on) == {"scenes-unclip-prior", "scenes-unclip-decoder"}
    assert pipeline.sample_shape == (3, 32, 32)
    families = [zoo.family_of(e) for e in (prior, decoder, pipeline)]
    assert [f.samplable for f in families] == [False, False, True]


def test_the_pipelines_sampling_options_default_to_the_decoders():
    entry = zoo.entry("scenes-unclip")
    family = zoo.family_of(entry)
    given = {"prompt": "a  red 3", "prompts": None, "sampler": None, "steps": None, "eta": None,
             "spacing": None, "guidance": None}  # fmt: skip
    options = family.sampling_options(entry, given)
    assert options == {"sampler": "ddim", "steps": 50, "eta": 0.0, "spacing": "leading",
                       "prompts": ["a red 3"],
                       "guidance": zoo.entry("scenes-unclip-decoder").spec.guidance_scale}  # fmt: skip
    scale = zoo.entry("scenes-unclip-decoder").spec.guidance_scale
    assert family.describe(entry, options) == (
        f"prior and decoder by ddim (50 steps, eta 0, leading), decoder guidance scale {scale:g}, 1 prompt"
    )
    chosen = family.sampling_options(entry, {**given, "sampler": "dpm-solver++", "guidance": 0.0})
    assert chosen["steps"] == 20 and chosen["spacing"] == "linspace" and chosen["guidance"] == 0.0
    assert family.describe(entry, {**chosen, "prompts": ["a", "b"]}).endswith(
        "decoder guidance scale 0, 2 prompts"
    )


# ---------------------------------------------------------------- the command line
def test_sample_the_tiny_pipeline_writes_images_and_prompts(tiny, tmp_path, capsys):
    out = tmp_path / "one.npz"
    assert (
        main(["sample", "test-unclip", "--prompt", RED, "--n", "2", "--steps", "3", "--out", str(out)]) == 0
    )
    line = capsys.readouterr().out
    assert (
        "sampled 2 images from test-unclip with prior and decoder by ddim (3 steps, eta 0, leading), "
        "decoder guidance scale 2, 1 prompt (seed 0)" in line
    )
    with np.load(out, allow_pickle=False) as arrays:
        assert set(arrays.files) == {"images", "prompts"}
        images, prompts = arrays["images"], arrays["prompts"]
    assert images.dtype == np.float32 and images.shape == (2, 3, 32, 32)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert prompts.dtype.kind == "U" and prompts.tolist() == [RED] * 2
    by_hand = generate(tiny["test-unclip"], [RED], 2, steps=3, generator=torch.Generator().manual_seed(0))
    assert np.allclose(images, (by_hand.images.numpy() + 1) / 2, atol=1e-5)
    listed = tmp_path / "prompts.txt"
    listed.write_text(f"{RED}\n{BLUE}\n")
    out = tmp_path / "two.npz"
    assert main(["sample", "test-unclip", "--prompts", str(listed), "--n", "1", "--sampler", "dpm-solver++",
                 "--steps", "2", "--guidance", "0", "--seed", "3", "--out", str(out)]) == 0  # fmt: skip
    assert "sampled 2 images" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as arrays:
        assert arrays["images"].shape == (2, 3, 32, 32) and arrays["prompts"].tolist() == [RED, BLUE]
        by_hand = generate(tiny["test-unclip"], [RED, BLUE], 1, guidance_scale=0.0, sampler="dpm-solver++",
                           steps=2, generator=torch.Generator().manual_seed(3))  # fmt: skip
        assert np.allclose(arrays["images"], (by_hand.images.numpy() + 1) / 2, atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--prompt", RED, "--prompts", "{t}/MISSING"],
            "'scenes-unclip' needs one of --prompt TEXT or --prompts FILE, got both",
        ),
        ([], "'scenes-unclip' needs one of --prompt TEXT or --prompts FILE, got neither"),
        (["--prompt", "a purple 3"], "unknown word 'purple' in caption 'a purple 3'"),
        (["--prompt", " "], "a prompt must be a non-empty str"),
        (["--prompts", "{t}/MISSING"], "--prompts '{t}/MISSING': no such file"),
        (
            ["--prompt", RED, "--steps", "1001"],
            "--steps must be at most the model's 1000 training steps, got 1001",
        ),
        (
            ["--prompt", RED, "--sampler", "dpm-solver++", "--eta", "0.5"],
            "--eta applies to ddim only, not to dpm-solver++",
        ),
        (
            ["--prompt", RED, "--sampler", "ddpm", "--steps", "3"],
            "--steps applies to ddim and dpm-solver++; ddpm takes all 1000",
        ),
        (
            ["--prompt", RED, "--label", "3"],
            "--label applies to diffusion, diffwave and video-diffusion models; 'scenes-unclip' is a unclip "
            "model and takes --eta",
        ),
        (
            ["--prompt", RED, "--solver", "euler"],
            "--solver applies to flow models; 'scenes-unclip' is a unclip model",
        ),
        (
            ["--prompt", RED, "--guidance", "-1"],
            "argument --guidance: must be a number in [0, inf], got '-1'",
        ),
        (["--prompt", RED, "--out", "{t}/x.png"], "--out must be a .npz file, got '{t}/x.png'"),
    ],
)
def test_sample_scenes_unclip_user_errors_are_one_line_before_anything_trains(
    tmp_path, monkeypatch, capsys, args, message
):
    cache, work = tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv(zoo.ENV_HOME, str(cache))
    trained = []
    for family in families().values():
        monkeypatch.setattr(family, "train", lambda entry, *a, **k: trained.append(entry.name))
    args = [a.replace("{t}", str(work)) for a in args]
    out = [] if "--out" in args else ["--out", str(work / "x.npz")]
    assert main(["sample", "scenes-unclip", "--n", "1", *out, *args]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and err.startswith("error: ") and captured.out == ""
    assert message.replace("{t}", str(work)) in err
    assert list(work.iterdir()) == [], "nothing written"
    assert not cache.exists() and trained == [], "nothing trained"
