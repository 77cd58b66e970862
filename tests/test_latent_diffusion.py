"""The miniature Stable Diffusion of chapter 12: cross-attention against a hand computation, its
masking and shapes, the U-Net's text conditioning and scale-shift blocks, the text encoder's
token states, caption dropout, guidance over a prompt table, the latent-diffusion family
through the zoo (its dependencies, its scale factor), its command line and every user error."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from diffusion_lib import guidance, zoo
from diffusion_lib.__main__ import main
from diffusion_lib.clip import Tokenizer
from diffusion_lib.data import SCENE_ATTRIBUTES
from diffusion_lib.diffusion import GaussianDiffusion
from diffusion_lib.families.classifier import (
    ClassifierSpec,
    head_accuracy,
    multi_head_loss,
    predict_heads,
    split_logits,
)
from diffusion_lib.families.clip import CLIPSpec, build_clip
from diffusion_lib.families.latent_diffusion import (
    LatentDiffusionSpec,
    check_prompts,
    conditioned,
    drop_captions,
    empty_context,
    encode_images,
    generate,
    latent_diffusion_loss,
    read_prompts,
    text_context,
)
from diffusion_lib.families.vae import VAESpec
from diffusion_lib.nets.unet import Context, CrossAttention, ResBlock, UNet, pool_context
from diffusion_lib.schedules import get_beta_schedule
from diffusion_lib.seeds import ENV_SEED_SHIFT
from diffusion_lib.train import TrainConfig
from diffusion_lib.vae import scale_factor


def context(batch=2, length=5, dim=6, real=(3, 5), seed=0) -> Context:
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, length, dim, generator=g)
    mask = torch.arange(length)[None, :] < torch.tensor(real)[:, None]
    return Context(states, mask)


def randomised(module: torch.nn.Module, seed=0) -> torch.nn.Module:
    """Every parameter drawn afresh (the zero-initialised projections included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


# ---------------------------------------------------------------- cross-attention
def test_cross_attention_is_the_softmax_of_queries_against_the_tokens_by_hand():
    attention = randomised(CrossAttention(8, 6, num_heads=2))
    x = torch.randn(2, 8, 3, 3, generator=torch.Generator().manual_seed(1))
    c = context(dim=6)
    out = attention(x, c)
    # By hand, one head at a time: Q from the normalised image, K and V from the states.
    h = attention.norm(x)
    q = F.conv2d(h, attention.to_q.weight, attention.to_q.bias).flatten(2).transpose(1, 2)  # (B, 9, 8)
    kv = c.states @ attention.to_kv.weight.T + attention.to_kv.bias  # (B, L, 16)
    k, v = kv[..., :8], kv[..., 8:]
    heads = []
    for head in range(2):
        part = slice(4 * head, 4 * head + 4)
        scores = q[..., part] @ k[..., part].transpose(1, 2) / 2.0  # √d = 2
        scores = scores.masked_fill(~c.mask[:, None, :], float("-inf"))
        heads.append(scores.softmax(-1) @ v[..., part])
    mixed = torch.cat(heads, dim=-1).transpose(1, 2).reshape(2, 8, 3, 3)
    expected = x + F.conv2d(mixed, attention.proj.weight, attention.proj.bias)
    assert torch.allclose(out, expected, atol=1e-5)
    weights = attention.weights(x, c)
    assert weights.shape == (2, 2, 9, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 9))
    assert (weights[0, :, :, 3:] == 0).all() and (weights[0, :, :, :3] > 0).all(), "padding gets 0"


def test_cross_attention_ignores_the_states_at_padding_and_starts_as_the_identity():
    attention = CrossAttention(8, 6, num_heads=2)
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(attention(x, context(dim=6)), x), "the zero-initialised projection"
    randomised(attention)
    c = context(dim=6)
    changed = c.states.clone()
    changed[0, 3:] = 100.0  # padding of row 0
    assert torch.allclose(attention(x, c), attention(x, Context(changed, c.mask)), atol=1e-6)
    changed[0, 0] = 100.0  # a real token
    assert not torch.allclose(attention(x, c), attention(x, Context(changed, c.mask)), atol=1e-3)


@pytest.mark.parametrize(
    "bad, message",
    [
        ((torch.zeros(2, 5, 6), torch.ones(2, 5, dtype=torch.bool)), "context must be a Context"),
        (Context(torch.zeros(3, 5, 6), torch.ones(3, 5, dtype=torch.bool)), r"shape \(2, L, 6\)"),
        (Context(torch.zeros(2, 5, 7), torch.ones(2, 5, dtype=torch.bool)), r"shape \(2, L, 6\)"),
        (Context(torch.zeros(2, 5, 6), torch.ones(2, 5)), "mask must be a bool tensor"),
        (Context(torch.zeros(2, 5, 6), torch.ones(2, 4, dtype=torch.bool)), "mask must be a bool tensor"),
        (Context(torch.zeros(2, 5, 6), torch.zeros(2, 5, dtype=torch.bool)), "at least one token"),
    ],
)
def test_cross_attention_refuses_a_context_that_does_not_fit(bad, message):
    with pytest.raises(ValueError, match=message):
        CrossAttention(8, 6, num_heads=2)(torch.zeros(2, 8, 2, 2), bad)


# ---------------------------------------------------------------- the text-conditional U-Net
TEXT_UNET = {
    "in_channels": 4,
    "image_size": 8,
    "base_channels": 8,
    "channel_mults": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [8, 4],
    "num_heads": 2,
    "context_dim": 6,
    "scale_shift": True,
}


def test_the_text_unet_attends_to_its_context_at_every_attention_resolution():
    net = UNet(**TEXT_UNET)
    crosses = [m for m in net.modules() if isinstance(m, CrossAttention)]
    # down at 8 and 4 (one block each), the middle, up at 4 and 8 (two blocks each)
    assert len(crosses) == 7 and all(m.context_dim == 6 for m in crosses)
    randomised(net)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([3, 700])
    c = context(dim=6)
    out = net(x, t, context=c)
    assert out.shape == x.shape
    other = Context(context(dim=6, seed=5).states, c.mask)
    assert not torch.allclose(out, net(x, t, context=other), atol=1e-4), "the text reaches the output"
    with pytest.raises(ValueError, match="context .* is required: this UNet is text-conditional"):
        net(x, t)
    with pytest.raises(ValueError, match=r"context states must have shape \(2, L, 6\)"):
        net(x, t, context=context(dim=5))
    with pytest.raises(ValueError, match=r"context was given but this UNet has no cross-attention"):
        UNet(in_channels=4, base_channels=8)(x, t, context=c)
    with pytest.raises(ValueError, match="context_dim must be None or an int >= 1, got 0"):
        UNet(context_dim=0)
    with pytest.raises(ValueError, match="scale_shift must be True or False, got 1"):
        UNet(scale_shift=1)


def test_the_earlier_unets_are_unchanged():
    # No new parameters without context_dim and scale_shift, so the cached networks still load.
    names = {name for name, _ in UNet(base_channels=8).named_parameters()}
    assert not any("to_q" in n or "to_kv" in n for n in names)
    block = ResBlock(8, 8, emb_dim=16)
    assert block.emb.out_features == 8 and not block.scale_shift


def test_a_scale_shift_block_keeps_the_embedding_where_the_plain_block_loses_it():
    torch.manual_seed(0)
    x = torch.randn(3, 32, 4, 4)
    emb_a, emb_b = torch.randn(3, 16), torch.randn(3, 16)
    plain = randomised(ResBlock(32, 32, emb_dim=16))
    # 32 groups of one channel: a per-channel constant added before the norm is removed by it.
    assert torch.allclose(plain(x, emb_a), plain(x, emb_b), atol=1e-5)
    shifted = randomised(ResBlock(32, 32, emb_dim=16, scale_shift=True))
    assert shifted.emb.out_features == 64
    assert not torch.allclose(shifted(x, emb_a), shifted(x, emb_b), atol=1e-3)
    # By hand: conv2(silu(norm2(conv1(silu(norm1(x)))) · (1 + scale) + shift)) + x.
    e = shifted.emb(F.silu(emb_a))[:, :, None, None]
    h = shifted.norm2(shifted.conv1(F.silu(shifted.norm1(x)))) * (1 + e[:, :32]) + e[:, 32:]
    assert torch.allclose(shifted(x, emb_a), x + shifted.conv2(F.silu(h)), atol=1e-5)


# ---------------------------------------------------------------- the text encoder's states
TINY_CLIP = CLIPSpec(
    image={"width": 4, "feature_dim": 8}, text={"width": 6, "layers": 1, "heads": 2}, embed_dim=8
)


def tiny_clip():
    torch.manual_seed(0)
    return build_clip(TINY_CLIP, Tokenizer.for_scenes()).eval()


def test_token_states_pooled_at_eos_are_the_text_embedding():
    clip_model = tiny_clip()
    tokens = clip_model.tokenizer.encode(["a small red 3 in the top left", "a blue 7 left of a red 2", ""])
    c = text_context(clip_model, tokens)
    assert c.states.shape == (3, tokens.shape[1], 6) and torch.equal(c.mask, tokens != 0)
    last = c.mask.long().cumsum(1).argmax(1)  # the <eos> of each row
    pooled = clip_model.text_encoder.projection(c.states[torch.arange(3), last])
    assert torch.allclose(pooled, clip_model.text_encoder(tokens), atol=1e-6)
    empty = empty_context(clip_model)
    assert empty.mask.sum() == 2 and torch.allclose(empty.states, c.states[2:], atol=1e-6)


def test_pool_context_is_the_state_at_each_rows_last_kept_token():
    c = context(batch=3, length=5, dim=6, real=(3, 5, 1))
    assert torch.equal(pool_context(c), c.states[[0, 1, 2], [2, 4, 0]])
    # with a text encoder's states, what CLIP projects to the caption's embedding
    clip_model = tiny_clip()
    tokens = clip_model.tokenizer.encode(["a small red 3 in the top left", "a green 1", ""])
    states = text_context(clip_model, tokens)
    pooled = clip_model.text_encoder.projection(pool_context(states))
    assert torch.allclose(pooled, clip_model.text_encoder(tokens), atol=1e-6)
    with pytest.raises(ValueError, match="context must be a Context with .B, L, D. states, got tuple"):
        pool_context((c.states, c.mask))
    with pytest.raises(ValueError, match="context mask must keep at least one token in every row"):
        pool_context(Context(c.states, torch.zeros(3, 5, dtype=torch.bool)))


def test_the_pooled_context_reaches_the_timestep_embedding_and_starts_at_zero():
    plain = randomised(UNet(**TEXT_UNET))
    pooled = UNet(**TEXT_UNET, pooled_context=True)
    missing, unexpected = pooled.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["context_emb.bias", "context_emb.weight"] and not unexpected
    x, t, c = torch.randn(2, 4, 8, 8), torch.tensor([3, 700]), context(dim=6)
    # zero-initialised: the network is the one without it
    assert torch.allclose(pooled(x, t, context=c), plain(x, t, context=c), atol=1e-6)
    randomised(pooled.context_emb, seed=3)
    # By hand: the embedding is MLP(sinusoidal(t)) + W · pool_context(c) + b; feed that sum to the
    # plain network through its time MLP's output and the two agree.
    extra = pooled.context_emb(pool_context(c))
    hook = plain.time_mlp.register_forward_hook(lambda module, args, out: out + extra)
    try:
        assert torch.allclose(pooled(x, t, context=c), plain(x, t, context=c), atol=1e-5)
    finally:
        hook.remove()
    assert not torch.allclose(pooled(x, t, context=c), plain(x, t, context=c), atol=1e-4)
    with pytest.raises(ValueError, match="pooled_context=True needs context_dim"):
        UNet(pooled_context=True)
    with pytest.raises(ValueError, match="pooled_context must be True or False, got 1"):
        UNet(context_dim=6, pooled_context=1)


# ---------------------------------------------------------------- caption dropout and guidance
def test_caption_dropout_replaces_the_rows_its_uniforms_pick():
    c = context(batch=64, real=[3] * 64)
    empty = Context(torch.full((1, 5, 6), 9.0), torch.tensor([[True, True, False, False, False]]))
    dropped = drop_captions(c, empty, 0.3, torch.Generator().manual_seed(4))
    picked = torch.rand(64, generator=torch.Generator().manual_seed(4)) < 0.3
    assert 0 < picked.sum() < 64
    assert torch.equal(dropped.states[picked], empty.states.expand(int(picked.sum()), 5, 6))
    assert torch.equal(dropped.mask[picked], empty.mask.expand(int(picked.sum()), 5))
    assert torch.equal(dropped.states[~picked], c.states[~picked])
    assert torch.equal(dropped.mask[~picked], c.mask[~picked])
    kept = drop_captions(c, empty, 0.0, torch.Generator().manual_seed(4))
    assert torch.equal(kept.states, c.states)
    with pytest.raises(ValueError, match=r"probability must be a number in \[0, 1\), got 1"):
        drop_captions(c, empty, 1, torch.Generator())
    with pytest.raises(ValueError, match=r"empty must be one row of states \(5, 6\)"):
        drop_captions(c, context(batch=2), 0.1, torch.Generator())


def test_the_dropout_rate_is_the_share_of_empty_captions():
    c = context(batch=20_000, real=[4] * 20_000)
    empty = Context(torch.zeros(1, 5, 6), torch.tensor([[True, False, False, False, False]]))
    share = (drop_captions(c, empty, 0.1, torch.Generator().manual_seed(0)).mask.sum(1) == 1).double().mean()
    assert abs(share - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 20_000)


def test_guidance_over_a_prompt_table_is_the_combination_by_hand():
    net = randomised(UNet(**TEXT_UNET))
    table = context(batch=3, real=(3, 4, 2))  # two prompts, then the empty one
    model = conditioned(net, table)
    x, t, y = torch.randn(4, 4, 8, 8), torch.tensor([10, 10, 500, 500]), torch.tensor([0, 1, 1, 0])
    guided = guidance.classifier_free(model, y, 2.5, null_label=2)(x, t)
    cond = net(x, t, context=Context(table.states[y], table.mask[y]))
    uncond = net(x, t, context=Context(table.states[[2, 2, 2, 2]], table.mask[[2, 2, 2, 2]]))
    assert torch.allclose(guided, uncond + 2.5 * (cond - uncond), atol=1e-5)


def test_the_loss_is_l_simple_with_the_dropped_context():
    net = randomised(UNet(**TEXT_UNET))
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 50))
    z, c = torch.randn(4, 4, 8, 8), context(batch=4, real=(3, 5, 1, 2))
    empty = Context(torch.zeros(1, 5, 6), torch.tensor([[True, True, False, False, False]]))
    loss = latent_diffusion_loss(diffusion, empty, 0.5)(
        net, [z, c.states, c.mask], torch.Generator().manual_seed(3)
    )
    g = torch.Generator().manual_seed(3)
    dropped = drop_captions(c, empty, 0.5, g)
    expected = diffusion.training_losses(lambda x, t: net(x, t, context=dropped), z, generator=g)[
        "loss"
    ].mean()
    assert torch.allclose(loss, expected)
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


# ---------------------------------------------------------------- prompts
def test_prompts_are_checked_against_the_vocabulary():
    tokenizer = Tokenizer.for_scenes()
    assert check_prompts(["a  small red 3 in the top left "], tokenizer) == ["a small red 3 in the top left"]
    for bad, message in [
        ("a red 3", "prompts must be a non-empty list of str"),
        ([], "prompts must be a non-empty list of str"),
        (["  "], "a prompt must be a non-empty str"),
        (["a purple 3"], "unknown word 'purple'"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_prompts(bad, tokenizer)


def test_read_prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a red 3 in the top left\n\n  a blue 7 left of a green 1 \n", encoding="utf-8")
    assert read_prompts(path) == ["a red 3 in the top left", "a blue 7 left of a green 1"]
    with pytest.raises(ValueError, match="no such file"):
        read_prompts(tmp_path / "missing.txt")
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="holds no prompt"):
        read_prompts(tmp_path / "blank.txt")


# ---------------------------------------------------------------- the family through the zoo
TINY_VAE = {"base_channels": 8, "channel_mults": [1, 2, 2], "num_res_blocks": 1, "latent_channels": 4}
TINY_TRAIN = TrainConfig(steps=3, batch_size=8, warmup_steps=1)
LDM_NETWORK = {**TEXT_UNET, "attention_resolutions": [4]}


def tiny_entries(**ldm_changes):
    common = {"train": TINY_TRAIN, "train_threads": 1, "chapter": 12, "sample_shape": (3, 32, 32)}
    captions = zoo.DataSpec.dataset("scene-captions", n1=24, n2=8, seed=0)
    return [
        zoo.ZooEntry(name="test-ldm-vae", description="a tiny VAE", family="vae",
                     spec=VAESpec(network=TINY_VAE), data=zoo.DataSpec.dataset("scene-images", n1=16, n2=0),
                     **common),
        zoo.ZooEntry(name="test-ldm-clip", description="a tiny CLIP", family="clip", spec=TINY_CLIP,
                     data=captions, **common),
        zoo.ZooEntry(name="test-ldm", description="a tiny latent diffusion model", family="latent-diffusion",
                     spec=LatentDiffusionSpec(network=LDM_NETWORK, autoencoder="test-ldm-vae",
                                              text_encoder="test-ldm-clip", num_timesteps=20,
                                              schedule="cosine", guidance_scale=2.0),
                     depends_on=("test-ldm-vae", "test-ldm-clip"), data=captions,
                     **{**common, **ldm_changes}),
    ]  # fmt: skip


@pytest.fixture
def tiny_ldm(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_SEED_SHIFT, raising=False)
    entries = tiny_entries()
    for e in entries:
        zoo.register(e)
    yield entries
    for e in entries:
        zoo.unregister(e.name)


def test_a_tiny_ldm_trains_on_scaled_latents_and_generates(tiny_ldm):
    loaded = zoo.load("test-ldm", progress=False)
    assert len(loaded.record["losses"]) == 3
    config = loaded.entry.config()
    assert set(config["dependency_keys"]) == {"test-ldm-vae", "test-ldm-clip"}
    # the scale factor, from the latents of the training images
    vae = zoo.load("test-ldm-vae", progress=False).model
    images = zoo.DataSpec.dataset("scene-captions", n1=24, n2=8, seed=0)
    from diffusion_lib.data import training_tensors

    latents = encode_images(vae, training_tensors(images.name, **images.kwargs)[0])
    assert loaded.record["scale_factor"] == pytest.approx(scale_factor(latents), rel=1e-9)
    assert float((latents * loaded.record["scale_factor"]).std()) == pytest.approx(1.0, abs=1e-6)
    out = generate(loaded, ["a small red 3 in the top left", "a large blue 7 in the bottom right"], 3,
                   steps=4, generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert out.images.shape == (6, 3, 32, 32) and float(out.images.abs().max()) <= 1.0
    assert out.prompts == ["a small red 3 in the top left"] * 3 + ["a large blue 7 in the bottom right"] * 3
    assert torch.allclose(vae.decode(out.latents).clamp(-1, 1), out.images, atol=1e-5)
    again = generate(
        loaded, ["a small red 3 in the top left"], 3, steps=4, generator=torch.Generator().manual_seed(1)
    )
    assert torch.allclose(again.images, out.images[:3], atol=1e-5), (
        "a prompt's images do not depend on the others"
    )
    with pytest.raises(ValueError, match="unknown word 'purple'"):
        generate(loaded, ["a purple 3"], 1, steps=2)
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        generate(loaded, ["a red 3"], 0)
    with pytest.raises(ValueError, match=r"guidance_scale must be a number in \[0, inf\]"):
        generate(loaded, ["a red 3"], 1, guidance_scale=-1)


def test_without_an_autoencoder_it_denoises_the_pixels(tiny_ldm):
    pixel_network = {**LDM_NETWORK, "in_channels": 3, "image_size": 32, "attention_resolutions": [16]}
    ldm = tiny_entries()[2]
    spec = replace(ldm.spec, autoencoder=None, network=pixel_network)
    pixel = replace(ldm, name="test-pixel-dm", spec=spec, depends_on=("test-ldm-clip",))
    zoo.register(pixel)
    try:
        loaded = zoo.load("test-pixel-dm", progress=False)
        assert (
            loaded.record["scale_factor"] == 1.0
            and "test-ldm-vae" not in loaded.entry.config()["dependency_keys"]
        )
        out = generate(loaded, ["a red 3 in the top left"], 2, steps=3)
        assert out.images.shape == (2, 3, 32, 32) and torch.equal(out.images, out.latents)
        assert float(out.images.abs().max()) <= 1.0
        zoo.register(replace(pixel, spec=replace(pixel.spec, network={**pixel_network, "image_size": 16})))
        with pytest.raises(ValueError, match=r"must fit the images \(3, 32, 32\) of a pixel-space model"):
            zoo.load("test-pixel-dm", progress=False)
    finally:
        zoo.unregister("test-pixel-dm")


def test_the_samples_output_is_generate_and_is_cached(tiny_ldm):
    prompts = ["a small red 3 in the top left", "a blue 7 left of a green 1"]
    out = zoo.outputs(
        "test-ldm", "samples", progress=False, prompts=prompts, n=2, guidance_scale=3.0, steps=4
    )
    loaded = zoo.load("test-ldm", progress=False)
    by_hand = generate(loaded, prompts, 2, guidance_scale=3.0, steps=4, spacing="linspace",
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.allclose(out.tensors["images"], by_hand.images, atol=1e-5)
    assert torch.allclose(out.tensors["latents"], by_hand.latents, atol=1e-5)
    again = zoo.outputs(
        "test-ldm", "samples", progress=False, prompts=prompts, n=2, guidance_scale=3.0, steps=4
    )
    assert again.seconds == out.seconds, "read from the cache"
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        zoo.outputs("test-ldm", "samples", progress=False, prompts=prompts, n=1, seed=-1)


def test_retraining_the_autoencoder_changes_the_ldm_key(tiny_ldm):
    before = zoo.entry("test-ldm").key()
    vae = zoo.entry("test-ldm-vae")
    zoo.register(replace(vae, train=replace(vae.train, steps=4)))
    assert zoo.entry("test-ldm").key() != before


def test_the_family_checks_what_it_builds_on(tiny_ldm, tmp_path):
    for changes, message in [
        ({"depends_on": ("test-ldm-clip",)}, "builds on 'test-ldm-vae', which must be in its depends_on"),
        ({"network": {**LDM_NETWORK, "in_channels": 3}}, r"must fit 'test-ldm-vae''s latents \(4, 8, 8\)"),
        (
            {"network": {**LDM_NETWORK, "context_dim": 8}},
            "context_dim must be 'test-ldm-clip''s text width 6",
        ),
    ]:
        entry = tiny_entries()[2]
        spec_changes = {k: v for k, v in changes.items() if k == "network"}
        entry = replace(
            entry,
            spec=replace(entry.spec, **spec_changes),
            **{k: v for k, v in changes.items() if k != "network"},
        )
        zoo.register(entry)
        with pytest.raises(ValueError, match=message):
            zoo.load("test-ldm", progress=False)


@pytest.mark.parametrize(
    "spec, message",
    [
        (LatentDiffusionSpec(network={**LDM_NETWORK, "context_dim": None}), "network must set context_dim"),
        (LatentDiffusionSpec(network={**LDM_NETWORK, "num_classes": 10}), "must not set num_classes"),
        (
            LatentDiffusionSpec(network=LDM_NETWORK, caption_dropout=1.0),
            r"caption_dropout must be a number in \[0, 1\)",
        ),
        (LatentDiffusionSpec(network=LDM_NETWORK, guidance_scale=-1), "guidance_scale must be a number"),
        (LatentDiffusionSpec(network=LDM_NETWORK, autoencoder=3), "autoencoder must name a zoo model"),
        (LatentDiffusionSpec(network={**LDM_NETWORK, "depth": 2}), "has a key UNet does not take"),
        (LatentDiffusionSpec(network=LDM_NETWORK, schedule="square"), "must be one of linear, cosine"),
    ],
)
def test_a_bad_ldm_spec_is_refused_at_registration(spec, message):
    with pytest.raises(ValueError, match=message):
        zoo.register(replace(tiny_entries()[2], spec=spec))


# ---------------------------------------------------------------- the command line
def test_sample_with_a_prompt_and_a_prompts_file(tiny_ldm, tmp_path, capsys):
    out = tmp_path / "one.npz"
    assert main(["sample", "test-ldm", "--prompt", "a small red 3 in the top left", "--n", "2",
                 "--steps", "3", "--out", str(out)]) == 0  # fmt: skip
    line = capsys.readouterr().out
    assert (
        "sampled 2 images from test-ldm with ddim (3 steps, eta 0, leading), guidance scale 2, 1 prompt"
        in line
    )
    with np.load(out, allow_pickle=False) as arrays:
        images, prompts = arrays["images"], arrays["prompts"]
        assert set(arrays.files) == {"images", "prompts"}
    assert images.dtype == np.float32 and images.shape == (2, 3, 32, 32)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert prompts.dtype.kind == "U" and prompts.tolist() == ["a small red 3 in the top left"] * 2
    listed = tmp_path / "prompts.txt"
    listed.write_text("a red 3 in the top left\na blue 7 left of a green 1\n")
    out = tmp_path / "two.npz"
    assert main(["sample", "test-ldm", "--prompts", str(listed), "--n", "2", "--sampler", "dpm-solver++",
                 "--steps", "3", "--guidance", "4", "--out", str(out)]) == 0  # fmt: skip
    assert "sampled 4 images" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as arrays:
        assert arrays["images"].shape == (4, 3, 32, 32)
        assert (
            arrays["prompts"].tolist() == ["a red 3 in the top left"] * 2 + ["a blue 7 left of a green 1"] * 2
        )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prompt", "a purple 3"], "unknown word 'purple' in caption 'a purple 3'"),
        (["--prompt", ""], "a prompt must be a non-empty str"),
        (["--prompts", "MISSING"], "no such file"),
        ([], "needs one of --prompt TEXT or --prompts FILE, got neither"),
        (["--prompt", "a red 3", "--prompts", "MISSING"], "got both"),
        (
            ["--prompt", "a red 3", "--label", "3"],
            "--label applies to diffusion, diffwave and video-diffusion models",
        ),
        (
            ["--prompt", "a red 3", "--sampler", "ddpm", "--steps", "3"],
            "--steps applies to ddim and dpm-solver",
        ),
        (["--prompt", "a red 3", "--steps", "21"], "at most the model's 20 training steps"),
    ],
)
def test_sample_user_errors_are_one_line_and_exit_2(tiny_ldm, tmp_path, capsys, args, message):
    args = [str(tmp_path / a) if a == "MISSING" else a for a in args]
    assert main(["sample", "test-ldm", "--n", "1", "--out", str(tmp_path / "x.npz"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not (tmp_path / "x.npz").exists()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("test-ldm-*")), (
        "nothing trained"
    )


# ---------------------------------------------------------------- the chapter's entry
def test_the_chapter_12_ldm_entry():
    real = zoo.entry("scenes-ldm")
    assert real.family == "latent-diffusion" and real.chapter == 12 and real.train_threads == 2
    assert set(real.depends_on) == {"scenes-vae", "scenes-clip"}
    spec = real.spec
    assert (spec.autoencoder, spec.text_encoder) == ("scenes-vae", "scenes-clip")
    vae = zoo.entry("scenes-vae").spec.network
    clip = zoo.entry("scenes-clip").spec.text
    assert spec.network["in_channels"] == vae["latent_channels"] and spec.network["image_size"] == 8
    assert spec.network["context_dim"] == clip["width"] and spec.network["scale_shift"] is True
    assert 0 < spec.caption_dropout < 1 and spec.guidance_scale >= 1
    # The schedule whose ᾱ_T keeps deterministic sampling of these latents from diverging; the
    # pixel-space counterpart differs only in what it denoises.
    pixel = zoo.entry("scenes-pixel-dm").spec
    assert spec.schedule == pixel.schedule == "ldm" and pixel.autoencoder is None
    assert spec.guidance_scale == pixel.guidance_scale and spec.caption_dropout == pixel.caption_dropout


# ---------------------------------------------------------------- the attribute judge
HEADS = {"digit": 10, "colour": 6, "position": 4, "size": 2}
JUDGE = {"type": "scene_encoder", "width": 4, "feature_dim": 8, "embed_dim": 22}


def test_split_logits_and_the_multi_head_loss_by_hand():
    logits = torch.randn(5, 22, generator=torch.Generator().manual_seed(0))
    parts = split_logits(logits, HEADS)
    assert list(parts) == list(HEADS) and [p.shape[1] for p in parts.values()] == [10, 6, 4, 2]
    assert torch.equal(torch.cat(list(parts.values()), dim=1), logits)
    labels = [torch.tensor([0, 9, 3, 3, 1]), torch.tensor([5, 0, 1, 2, 3]), torch.tensor([0, 3, 2, 1, 0]),
              torch.tensor([1, 0, 1, 0, 1])]  # fmt: skip
    model = lambda x: logits  # noqa: E731
    by_hand = sum(F.cross_entropy(p, y) for p, y in zip(parts.values(), labels)) / 4
    assert torch.allclose(multi_head_loss(HEADS)(model, [None, *labels], None), by_hand)
    with pytest.raises(ValueError, match=r"logits must have shape \(N, 22\)"):
        split_logits(torch.zeros(5, 21), HEADS)
    predicted = predict_heads(lambda rows: logits[rows], torch.arange(5), HEADS, batch_size=2)
    assert all(torch.equal(predicted[name], parts[name].argmax(1)) for name in HEADS)


def test_head_accuracy_counts_each_head_and_all_four_by_hand():
    logits = torch.randn(5, 22, generator=torch.Generator().manual_seed(0))
    argmax = {name: part.argmax(1) for name, part in split_logits(logits, HEADS).items()}
    truth = {name: argmax[name].clone() for name in HEADS}
    truth["digit"][[0, 1]] = (truth["digit"][[0, 1]] + 1) % 10  # rows 0, 1: digit wrong
    truth["size"][1] = 1 - truth["size"][1]  # row 1: size wrong too
    truth["colour"][4] = (truth["colour"][4] + 1) % 6  # row 4: colour wrong
    shares = head_accuracy(lambda rows: logits[rows], torch.arange(5), HEADS, truth)
    assert shares == {"digit": 0.6, "colour": 0.8, "position": 1.0, "size": 0.8, "all": 0.4}
    model = lambda rows: logits[rows]  # noqa: E731
    heads_named = r"truth must have the heads \['colour', 'digit', 'position', 'size'\], got \['digit'\]"
    with pytest.raises(ValueError, match=heads_named):
        head_accuracy(model, torch.arange(5), HEADS, {"digit": truth["digit"]})
    with pytest.raises(ValueError, match=r"truth\['size'\] must be a tensor of 5 labels, got \(4,\)"):
        head_accuracy(model, torch.arange(5), HEADS, {**truth, "size": truth["size"][:4]})


def judge_entry(**changes):
    return zoo.ZooEntry(
        name="test-judge",
        description="a tiny attribute judge",
        family="classifier",
        spec=ClassifierSpec(network=changes.pop("network", JUDGE), heads=changes.pop("heads", HEADS)),
        data=changes.pop("data", zoo.DataSpec.dataset("scenes", n=32, seed=0)),
        sample_shape=(3, 32, 32),
        train=TINY_TRAIN,
        train_threads=1,
        chapter=12,
        **changes,
    )


def test_a_tiny_judge_trains_through_the_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    zoo.register(judge_entry())
    try:
        loaded = zoo.load("test-judge", progress=False)
        assert len(loaded.record["losses"]) == 3
        assert loaded.record["losses"][0] == pytest.approx(
            (math.log(10) + math.log(6) + math.log(4) + math.log(2)) / 4, rel=0.2
        ), "about chance at the start"
        zoo.register(judge_entry(data=zoo.DataSpec.dataset("digits")))
        with pytest.raises(ValueError, match="trains on \\[inputs, one label tensor per head\\]"):
            zoo.load("test-judge", progress=False)
    finally:
        zoo.unregister("test-judge")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"heads": {"digit": 10}}, "network embed_dim must be the heads' total, 10, got 22"),
        ({"heads": {"digit": 1, "colour": 21}}, "heads must be None or a dict of names to class counts >= 2"),
        ({"heads": {}}, "heads must be None or a dict"),
    ],
)
def test_a_bad_judge_spec_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        zoo.register(judge_entry(**changes))


def test_the_chapter_12_judge_entry():
    real = zoo.entry("scenes-judge")
    assert real.family == "classifier" and real.chapter == 12
    assert real.spec.heads == {name: len(v) for name, v in SCENE_ATTRIBUTES.items()}
    assert real.data.name == "scenes" and real.data.kwargs.get("split") == "train"
