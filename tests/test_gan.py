"""GANs (gan.py): losses at known points and their gradients, the gradient penalty, the optimal
discriminator, the networks, and the training loop's determinism and checkpoints."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_lib import gan
from diffusion_lib.gan import (
    GANConfig,
    MLPDiscriminator,
    MLPGenerator,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    optimal_discriminator,
    train_gan,
)
from diffusion_lib.train import TrainConfig, load_checkpoint

LOG2 = math.log(2.0)
POINTS = 0.5 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
CONFIG = TrainConfig(steps=10, batch_size=8, lr=1e-2, warmup_steps=3, ema_decay=0.9, checkpoint_every=5)


def tiny_gan(seed=0, shape=(2,)):
    torch.manual_seed(seed)
    return (
        MLPGenerator(z_dim=3, sample_shape=shape, hidden=8, num_layers=1),
        MLPDiscriminator(sample_shape=shape, hidden=8, num_layers=1),
    )


NON_SATURATING = GANConfig()


def run(config=CONFIG, gan_config=NON_SATURATING, *, seed=0, checkpoint=None):
    return train_gan(*tiny_gan(seed), POINTS, config, gan_config, checkpoint=checkpoint, progress=False)


def assert_same_weights(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def weights_differ(a: nn.Module, b: nn.Module) -> bool:
    return any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


# ---------------------------------------------------------------- losses at known points
def test_losses_at_logit_zero():
    """D = σ(0) = 1/2: −log D = −log(1 − D) = log 2."""
    zero = torch.zeros(5, dtype=torch.float64)
    for loss in ("minimax", "non-saturating"):
        assert float(discriminator_loss(zero, zero, loss)) == pytest.approx(2 * LOG2, rel=1e-15)
    assert float(generator_loss(zero, "minimax")) == pytest.approx(-LOG2, rel=1e-15)  # log(1 − 1/2)
    assert float(generator_loss(zero, "non-saturating")) == pytest.approx(LOG2, rel=1e-15)  # −log(1/2)
    assert float(discriminator_loss(zero, zero, "hinge")) == 2.0
    assert float(generator_loss(zero, "hinge")) == 0.0
    assert float(discriminator_loss(zero, zero, "wgan-gp")) == 0.0
    assert float(generator_loss(zero, "wgan-gp")) == 0.0


def test_losses_are_the_value_function_written_with_d():
    """With D = σ(ℓ): the formulas of chapter 3 computed naively, on moderate logits."""
    real, fake = t(-2.0, -0.3, 0.0, 1.5, 4.0), t(-3.0, -1.0, 0.2, 0.7, 2.5)
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected_d = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    for loss in ("minimax", "non-saturating"):
        assert float(discriminator_loss(real, fake, loss)) == pytest.approx(float(expected_d), rel=1e-12)
    assert float(generator_loss(fake, "minimax")) == pytest.approx(
        float(torch.log(1 - d_fake).mean()), rel=1e-12
    )
    assert float(generator_loss(fake, "non-saturating")) == pytest.approx(
        float(-torch.log(d_fake).mean()), rel=1e-12
    )


def test_losses_stay_finite_where_the_naive_formula_overflows():
    # σ(−800) underflows to 0 in float64, so −log D(G(z)) naively is inf; softplus gives 800.
    far = t(-800.0)
    assert float(generator_loss(far, "non-saturating")) == pytest.approx(800.0)
    assert float(generator_loss(far, "minimax")) == pytest.approx(0.0, abs=1e-300)
    assert float(discriminator_loss(t(800.0), far)) == pytest.approx(0.0, abs=1e-300)


def test_hinge_and_wasserstein_losses_by_hand():
    real, fake = t(2.0, 0.5, -1.0), t(-2.0, 0.0, 0.5)
    # max(0, 1 − ℓ_real) = (0, 0.5, 2), max(0, 1 + ℓ_fake) = (0, 1, 1.5): means 5/6 and 5/6
    assert float(discriminator_loss(real, fake, "hinge")) == pytest.approx(5 / 3, rel=1e-15)
    assert float(generator_loss(fake, "hinge")) == pytest.approx(0.5, rel=1e-15)  # −mean(−2, 0, 0.5)
    # E[ℓ_fake] − E[ℓ_real] = −0.5 − 0.5
    assert float(discriminator_loss(real, fake, "wgan-gp")) == pytest.approx(-1.0, rel=1e-15)
    assert float(generator_loss(fake, "wgan-gp")) == pytest.approx(0.5, rel=1e-15)
    # Logits beyond the margin contribute nothing: the hinge only pushes misclassified or
    # barely classified samples.
    assert float(discriminator_loss(t(1.0, 3.0), t(-1.0, -5.0), "hinge")) == 0.0


def test_losses_accept_any_shape():
    logits = torch.randn(6, 1, generator=torch.Generator().manual_seed(0))
    for loss in gan.LOSSES:
        assert torch.equal(generator_loss(logits, loss), generator_loss(logits.flatten(), loss))
        assert discriminator_loss(logits, logits[:3], loss).ndim == 0


@pytest.mark.parametrize(
    "loss, expected",
    [("minimax", -1 / (1 + math.exp(10.0))), ("non-saturating", -1 / (1 + math.exp(-10.0)))],
)
def test_saturating_versus_non_saturating_gradient(loss, expected):
    """When D confidently rejects the fakes (ℓ = −10, D = 4.5e-5), d loss / d ℓ is −σ(ℓ) ≈ 0
    for the minimax generator loss but −σ(−ℓ) ≈ −1 for the non-saturating one."""
    logit = t(-10.0).requires_grad_(True)
    generator_loss(logit, loss).backward()
    assert float(logit.grad) == pytest.approx(expected, rel=1e-12)
    assert abs(float(logit.grad)) < 1e-4 if loss == "minimax" else float(logit.grad) < -0.9999


def test_both_generator_losses_have_the_same_fixed_point_direction():
    """Both decrease as D(G(z)) grows: the two games push G the same way, at different speeds."""
    logits = torch.linspace(-6, 6, 25, dtype=torch.float64)
    for loss in ("minimax", "non-saturating"):
        values = torch.stack([generator_loss(v.reshape(1), loss) for v in logits])
        assert (values.diff() < 0).all()


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: generator_loss(torch.zeros(2), "wasserstein"),
            "loss must be one of minimax, non-saturating, hinge, wgan-gp, got 'wasserstein'",
        ),
        (lambda: discriminator_loss(torch.zeros(2), torch.zeros(2), None), "loss must be one of .* got None"),
        (
            lambda: generator_loss([0.0, 1.0]),
            "fake_logits must be a non-empty floating-point tensor, got list",
        ),
        (
            lambda: generator_loss(torch.zeros(0)),
            r"fake_logits must be .*, got dtype torch.float32, shape \(0,\)",
        ),
        (
            lambda: discriminator_loss(torch.zeros(2, dtype=torch.long), torch.zeros(2)),
            "real_logits must be .* torch.int64",
        ),
        (
            lambda: discriminator_loss(torch.zeros(2), 0.0),
            "fake_logits must be a non-empty floating-point tensor, got float",
        ),
    ],
)
def test_losses_reject_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------- gradient penalty
def linear_critic(weight, in_shape=(2,)):
    critic = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), 1, dtype=torch.float64))
    with torch.no_grad():
        critic[1].weight.copy_(torch.as_tensor(weight, dtype=torch.float64).reshape(1, -1))
        critic[1].bias.fill_(0.3)
    return lambda x: critic(x).squeeze(1), critic


def test_gradient_penalty_of_linear_critics():
    real = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fake = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    unit, _ = linear_critic([0.6, 0.8])  # ‖w‖ = 1: 1-Lipschitz, gradient norm exactly 1
    assert float(gradient_penalty(unit, real, fake).detach()) == pytest.approx(0.0, abs=1e-15)
    double, module = linear_critic([1.2, 1.6])  # ‖w‖ = 2: (2 − 1)² = 1 at every x̂
    penalty = gradient_penalty(double, real, fake)
    assert float(penalty.detach()) == pytest.approx(1.0, rel=1e-12)
    penalty.backward()  # differentiable with respect to the critic: d/dw (‖w‖ − 1)² = 2(‖w‖ − 1) w/‖w‖
    assert torch.allclose(module[1].weight.grad, t(1.2, 1.6).reshape(1, 2), rtol=1e-12)
    image_critic, _ = linear_critic(torch.full((64,), 1 / 8.0), in_shape=(1, 8, 8))  # ‖w‖ = 1
    images = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    assert float(gradient_penalty(image_critic, images, -images).detach()) == pytest.approx(0.0, abs=1e-14)


def test_gradient_penalty_of_a_quadratic_critic_and_its_interpolation():
    # ℓ(x) = ‖x‖²/2 has gradient x̂; with real = fake, x̂ = x whatever ε, so the penalty is
    # mean((‖x‖ − 1)²): norms 0.5, 1, 3 give (0.25 + 0 + 4)/3.
    def critic(x):
        return 0.5 * (x**2).sum(1)

    x = t(0.3, 0.4, 1.0, 0.0, 0.0, 3.0).reshape(3, 2)
    assert float(gradient_penalty(critic, x, x.clone()).detach()) == pytest.approx(4.25 / 3, rel=1e-12)
    # real = +a, fake = −a: x̂ = (2ε − 1) a, so the penalty follows the seeded ε ~ U[0, 1].
    a = t(1.0, 0.0).reshape(1, 2).repeat(5, 1)
    eps = torch.rand(5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = ((2 * eps - 1).abs() - 1) ** 2
    got = gradient_penalty(critic, a, -a, generator=torch.Generator().manual_seed(3))
    assert float(got.detach()) == pytest.approx(float(expected.mean()), rel=1e-12)


def test_gradient_penalty_rejects_bad_input():
    critic, _ = linear_critic([0.6, 0.8])
    with pytest.raises(
        ValueError, match=r"real and fake must have the same shape, got \(3, 2\) and \(4, 2\)"
    ):
        gradient_penalty(critic, torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(
        ValueError, match=r"real must be a floating-point tensor \(B, ...\) with B >= 1, got \(3,\)"
    ):
        gradient_penalty(critic, torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="fake must be a floating-point tensor .* got list"):
        gradient_penalty(critic, torch.zeros(1, 2), [[0.0, 0.0]])


# ---------------------------------------------------------------- the optimal discriminator
def test_optimal_discriminator_values():
    assert optimal_discriminator(1.0, 1.0) == 0.5
    assert optimal_discriminator(3.0, 1.0) == 0.75
    assert optimal_discriminator(0.0, 2.0) == 0.0 and optimal_discriminator(2.0, 0.0) == 1.0
    np.testing.assert_allclose(optimal_discriminator(np.array([1.0, 2.0]), np.array([3.0, 2.0])), [0.25, 0.5])
    assert torch.is_tensor(optimal_discriminator(torch.tensor([1.0]), 1.0))
    for bad in ((0.0, 0.0), (-1.0, 2.0), (1.0, math.inf), (np.array([1.0, 0.0]), np.array([1.0, 0.0]))):
        with pytest.raises(ValueError, match="p_data and p_g must be finite, >= 0, with p_data \\+ p_g > 0"):
            optimal_discriminator(*bad)


def test_minimising_the_discriminator_loss_finds_the_optimal_discriminator():
    """A discriminator free to take any logit at each of 4 points, trained on samples in the
    proportions p_data = (1, 2, 3, 4)/10 and p_g = (4, 3, 2, 1)/10, converges to D* = p_data/(p_data + p_g).
    """
    counts_data, counts_g = torch.tensor([1, 2, 3, 4]), torch.tensor([4, 3, 2, 1])
    p, q = counts_data.double() / 10.0, counts_g.double() / 10.0
    real, fake = torch.arange(4).repeat_interleave(counts_data), torch.arange(4).repeat_interleave(counts_g)
    logits = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [logits], lr=1.0, max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-15
    )

    def closure():
        optimizer.zero_grad()
        loss = discriminator_loss(logits[real], logits[fake])
        loss.backward()
        return loss

    optimizer.step(closure)
    expected = optimal_discriminator(p, q)
    assert torch.allclose(torch.sigmoid(logits.detach()), expected, atol=1e-6)
    # At D*, −loss = V(D*, G) = −log 4 + 2 JSD(p_data ‖ p_g) (chapter 3, eq. (gan-jsd)).
    m = (p + q) / 2
    jsd = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
    value = -float(discriminator_loss(logits[real], logits[fake]).detach())
    assert value == pytest.approx(-math.log(4) + 2 * float(jsd), abs=1e-9)


# ---------------------------------------------------------------- networks
def test_networks_shapes_and_ranges():
    g, d = tiny_gan(shape=(2,))
    z = torch.randn(5, 3)
    assert g(z).shape == (5, 2) and d(g(z)).shape == (5,)
    torch.manual_seed(0)
    images = MLPGenerator(z_dim=4, sample_shape=(1, 8, 8), hidden=16, num_layers=2, output="tanh")
    x = images(100 * torch.randn(7, 4))
    assert x.shape == (7, 1, 8, 8) and x.abs().max() <= 1.0
    assert MLPDiscriminator(sample_shape=(1, 8, 8), hidden=16)(x).shape == (7,)


def test_a_packed_discriminator_judges_groups_of_samples_together():
    torch.manual_seed(0)
    packed = MLPDiscriminator(sample_shape=(2,), hidden=8, num_layers=1, pack=3)
    plain = MLPDiscriminator(sample_shape=(6,), hidden=8, num_layers=1)
    plain.load_state_dict(packed.state_dict())  # the same MLP, on 3 samples × 2 coordinates
    x = torch.randn(12, 2)
    logits = packed(x)
    assert logits.shape == (4,)
    assert torch.equal(logits, plain(x.reshape(4, 6)))
    # Only the group matters: permuting samples inside one group changes its logit only.
    swapped = x.clone()
    swapped[[0, 1]] = x[[1, 0]]
    changed = packed(swapped) != logits
    assert changed.tolist() == [True, False, False, False]
    # The penalty interpolates sample by sample; a packed critic is accepted.
    assert torch.isfinite(gradient_penalty(packed, x, torch.randn(12, 2)))
    with pytest.raises(ValueError, match="the batch size must be a multiple of pack = 3, got 4"):
        packed(x[:4])
    with pytest.raises(ValueError, match="pack must be an int >= 1, got 0"):
        MLPDiscriminator(pack=0)


def test_training_with_a_packed_discriminator():
    torch.manual_seed(0)
    g = MLPGenerator(z_dim=3, sample_shape=(2,), hidden=8, num_layers=1)
    d = MLPDiscriminator(sample_shape=(2,), hidden=8, num_layers=1, pack=4)
    result = train_gan(g, d, POINTS, CONFIG, GANConfig(), progress=False)
    assert len(result.losses) == CONFIG.steps and all(map(math.isfinite, result.d_losses))


def test_the_callback_sees_every_step_and_does_not_change_training():
    seen = []

    def record(step, generator_net, ema):
        seen.append((step, generator_net.training, ema is not generator_net))
        with torch.no_grad():
            gan.sample(generator_net, 4, generator=torch.Generator().manual_seed(5))

    with_callback = train_gan(*tiny_gan(), POINTS, CONFIG, NON_SATURATING, progress=False, callback=record)
    assert seen == [(step, True, True) for step in range(1, CONFIG.steps + 1)]
    assert_same_weights(with_callback.ema, run().ema)
    with pytest.raises(TypeError, match="callback must be callable or None, got int"):
        train_gan(*tiny_gan(), POINTS, CONFIG, NON_SATURATING, progress=False, callback=3)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: MLPGenerator(z_dim=0), "z_dim must be an int >= 1, got 0"),
        (lambda: MLPGenerator(hidden=2.5), "hidden must be an int >= 1, got 2.5"),
        (lambda: MLPGenerator(num_layers=0), "num_layers must be an int >= 1, got 0"),
        (lambda: MLPGenerator(output="sigmoid"), "output must be one of linear, tanh, got 'sigmoid'"),
        (
            lambda: MLPGenerator(sample_shape=()),
            r"sample_shape must be a non-empty tuple of ints >= 1, got \(\)",
        ),
        (lambda: MLPDiscriminator(sample_shape=(0, 2)), r"sample_shape must be .*, got \(0, 2\)"),
        (lambda: MLPDiscriminator(num_layers=True), "num_layers must be an int >= 1, got True"),
        (lambda: tiny_gan()[0](torch.zeros(2, 4)), r"z must have shape \(B, 3\), got \(2, 4\)"),
        (lambda: tiny_gan()[1](torch.zeros(2, 3)), r"x must have shape \(B, 2\), got \(2, 3\)"),
    ],
)
def test_networks_reject_bad_input(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# ---------------------------------------------------------------- GANConfig
@pytest.mark.parametrize(
    "change, message",
    [
        ({"loss": "bce"}, "loss must be one of minimax, non-saturating, hinge, wgan-gp, got 'bce'"),
        ({"d_steps": 0}, "d_steps must be an int >= 1, got 0"),
        ({"gp_weight": -1.0}, "gp_weight must be a finite number >= 0, got -1.0"),
        ({"gp_weight": math.nan}, "gp_weight must be a finite number >= 0, got nan"),
        ({"d_lr": 0.0}, "d_lr must be None or a finite number > 0, got 0.0"),
        ({"beta1": 1.0}, r"beta1 must be in \[0, 1\), got 1.0"),
        ({"beta2": -0.1}, r"beta2 must be in \[0, 1\), got -0.1"),
    ],
)
def test_gan_config_rejects_bad_values(change, message):
    with pytest.raises(ValueError, match=message):
        GANConfig(**change)


# ---------------------------------------------------------------- training
@pytest.mark.parametrize(
    "gan_config",
    [
        GANConfig(),
        GANConfig(loss="minimax"),
        GANConfig(loss="hinge"),
        GANConfig(loss="wgan-gp", d_steps=2, d_lr=5e-3),
    ],
    ids=["non-saturating", "minimax", "hinge", "wgan-gp"],
)
def test_training_is_deterministic(gan_config):
    a, b, c = run(gan_config=gan_config), run(gan_config=gan_config), run(replace(CONFIG, seed=1), gan_config)
    for x, y in ((a.generator, b.generator), (a.discriminator, b.discriminator), (a.ema, b.ema)):
        assert_same_weights(x, y)
    assert (
        a.losses == b.losses and a.d_losses == b.d_losses and len(a.losses) == len(a.d_losses) == CONFIG.steps
    )
    assert all(math.isfinite(v) for v in a.losses + a.d_losses)
    assert weights_differ(a.generator, c.generator) and a.losses != c.losses
    assert weights_differ(a.generator, a.ema), "the EMA is an average, not a copy"
    assert not a.ema.training and not any(p.requires_grad for p in a.ema.parameters())
    assert all(p.requires_grad for p in a.discriminator.parameters())


def test_training_works_when_the_caller_switched_gradients_off():
    with torch.no_grad():
        quiet = run()
        assert not torch.is_grad_enabled(), "the caller's mode is restored after training"
    reference = run()
    assert_same_weights(quiet.ema, reference.ema)
    assert quiet.losses == reference.losses


def test_the_discriminator_step_comes_first():
    """Step 1's generator loss is computed with the discriminator after its first update."""
    result = run(replace(CONFIG, steps=1))
    g, d = tiny_gan()
    assert weights_differ(result.discriminator, d) and weights_differ(result.generator, g)


def test_training_learns_a_point_mass():
    """A generator with enough steps moves its samples to the data: here all at (1, −1)."""
    data = torch.tensor([[1.0, -1.0]]).repeat(32, 1)
    config = TrainConfig(steps=300, batch_size=16, lr=1e-2, warmup_steps=10, ema_decay=0.9)
    result = train_gan(*tiny_gan(), data, config, GANConfig(loss="hinge"), progress=False)
    samples = gan.sample(result.ema, 200, generator=torch.Generator().manual_seed(0))
    assert (samples - data[0]).norm(dim=1).median() < 0.3


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    straight = run()
    prefix = tmp_path / "partial"
    real_loss, calls = gan.generator_loss, []

    def crash_at_step_8(*args, **kwargs):
        calls.append(1)
        if len(calls) == 8:
            raise Interrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(gan, "generator_loss", crash_at_step_8)
    with pytest.raises(Interrupt):
        run(checkpoint=prefix)
    tensors, meta = load_checkpoint(prefix)
    assert meta["step"] == 5 and len(meta["losses"]) == len(meta["d_losses"]) == 5
    assert {k.split(".")[0] for k in tensors} >= {
        "generator",
        "discriminator",
        "ema",
        "g_optimizer",
        "d_optimizer",
    }

    calls.clear()
    monkeypatch.setattr(gan, "generator_loss", lambda *a, **k: calls.append(1) or real_loss(*a, **k))
    resumed = run(seed=123, checkpoint=prefix)  # other initial weights: overwritten
    assert len(calls) == 5, "only steps 5..9 are run again"
    for x, y in ((resumed.generator, straight.generator), (resumed.discriminator, straight.discriminator)):
        assert_same_weights(x, y)
    assert_same_weights(resumed.ema, straight.ema)
    assert resumed.losses == straight.losses and resumed.d_losses == straight.d_losses
    assert load_checkpoint(prefix)[1]["step"] == CONFIG.steps


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path):
    prefix = tmp_path / "partial"
    run(checkpoint=prefix)
    hinge = GANConfig(loss="hinge")
    assert_same_weights(run(gan_config=hinge, checkpoint=prefix).generator, run(gan_config=hinge).generator)
    other = replace(CONFIG, lr=5e-3)
    assert_same_weights(run(other, checkpoint=prefix).generator, run(other).generator)


def test_a_checkpoint_that_fails_half_way_through_loading_is_ignored_whole(tmp_path):
    prefix = tmp_path / "partial"
    run(replace(CONFIG, steps=5), checkpoint=prefix)
    json_path = tmp_path / "partial.json"
    meta = json.loads(json_path.read_text())
    meta["config"]["train"]["steps"] = CONFIG.steps
    meta["d_optimizer"]["state"]["0"]["no_such_tensor"] = "tensor"  # networks load, then this fails
    json_path.write_text(json.dumps(meta))
    straight = run()
    again = run(checkpoint=prefix)
    assert_same_weights(again.generator, straight.generator)
    assert_same_weights(again.discriminator, straight.discriminator)
    assert again.losses == straight.losses


def test_a_corrupt_checkpoint_is_overwritten(tmp_path):
    prefix = tmp_path / "partial"
    (tmp_path / "partial.json").write_text("{not json")
    (tmp_path / "partial.safetensors").write_bytes(b"\x00garbage")
    assert_same_weights(run(checkpoint=prefix).generator, run().generator)
    assert load_checkpoint(prefix)[1]["step"] == CONFIG.steps


def test_train_gan_rejects_bad_input():
    g, d = tiny_gan()
    with pytest.raises(TypeError, match="config must be a TrainConfig, got dict"):
        train_gan(g, d, POINTS, {"steps": 1}, progress=False)
    with pytest.raises(TypeError, match="gan must be a GANConfig, got str"):
        train_gan(g, d, POINTS, CONFIG, "hinge", progress=False)
    with pytest.raises(ValueError, match="generator_net must have an int attribute z_dim >= 1, got None"):
        train_gan(nn.Linear(3, 2), d, POINTS, CONFIG, progress=False)
    with pytest.raises(TypeError, match="data must be a tensor or a sequence of tensors"):
        train_gan(g, d, [[1.0, 2.0]], CONFIG, progress=False)
    with pytest.raises(ValueError, match="data tensors must share a non-empty first dimension"):
        train_gan(g, d, torch.zeros(0, 2), CONFIG, progress=False)


def test_train_gan_accepts_data_with_labels():
    labels = torch.zeros(POINTS.shape[0], dtype=torch.long)
    with_labels = train_gan(*tiny_gan(), [POINTS, labels], CONFIG, progress=False)
    assert_same_weights(with_labels.generator, run().generator)


# ---------------------------------------------------------------- sampling
def test_sample_is_one_pass_from_seeded_noise():
    g, _ = tiny_gan()
    a = gan.sample(g, 6, generator=torch.Generator().manual_seed(4))
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(a, g(z))
    assert not a.requires_grad
    assert not torch.equal(a, gan.sample(g, 6, generator=torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        gan.sample(g, 0)
    with pytest.raises(ValueError, match="generator_net must have an int attribute z_dim >= 1"):
        gan.sample(nn.Linear(3, 2), 2)
