"""GaussianDiffusion: closed forms against Monte Carlo and Gaussian algebra, golden values,
determinism, dtypes, and every bad input."""

import math

import pytest
import torch

from diffusion_lib import GaussianDiffusion, get_beta_schedule
from diffusion_lib.diffusion import (
    discretized_gaussian_log_likelihood,
    mean_flat,
    normal_kl,
)


@pytest.fixture(scope="module")
def linear():
    return GaussianDiffusion(get_beta_schedule("linear", 1000))


@pytest.fixture(scope="module")
def cosine():
    return GaussianDiffusion(get_beta_schedule("cosine", 100), model_var_type="fixed_large")


def exact_eps_for_point_mass(diffusion, c):
    """The optimal ε-predictor when the data are the single point c: ε = (x_t − √ᾱ_t c)/√(1−ᾱ_t)."""

    def model(x_t, t):
        x0 = torch.full_like(x_t, c)
        return diffusion.predict_eps_from_x0(x_t, t, x0)

    return model


# ----------------------------------------------------------------------------- buffers
def test_buffers_are_float64_and_consistent(linear):
    for name in (
        "betas",
        "alphas_cumprod",
        "alphas_cumprod_prev",
        "posterior_variance",
        "posterior_log_variance_clipped",
        "posterior_mean_coef1",
        "posterior_mean_coef2",
    ):
        buffer = getattr(linear, name)
        assert buffer.dtype == torch.float64, name
        assert buffer.shape == (1000,), name
    assert linear.num_timesteps == 1000
    assert linear.alphas_cumprod_prev[0].item() == 1.0
    assert torch.equal(linear.alphas_cumprod_prev[1:], linear.alphas_cumprod[:-1])
    assert linear.alphas_cumprod[-1].item() == pytest.approx(4.0358e-05, abs=5e-10)
    assert torch.allclose(linear.alphas_cumprod, torch.cumprod(1 - linear.betas, 0), rtol=0, atol=0)


def test_betas_given_as_float32_are_stored_as_float64():
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 100).float())
    assert diffusion.betas.dtype == torch.float64


def test_single_step_diffusion_is_valid():
    diffusion = GaussianDiffusion(get_beta_schedule("cosine", 1))
    assert torch.isfinite(diffusion.posterior_log_variance_clipped).all()
    assert diffusion.alphas_cumprod_prev[0].item() == 1.0


# ----------------------------------------------------------------------------- forward process
def test_q_sample_matches_closed_form_by_monte_carlo(linear):
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.full((n, 1), 0.7, dtype=torch.float64)
    for i in (0, 99, 499, 999):
        x_t = linear.q_sample(x0, i, generator=gen)
        mean, variance, log_variance = linear.q_mean_variance(x0[:1], i)
        se_mean = math.sqrt(variance.item() / n)
        se_var = variance.item() * math.sqrt(2.0 / n)
        assert abs(x_t.mean().item() - mean.item()) < 5 * se_mean
        assert abs(x_t.var().item() - variance.item()) < 5 * se_var
        assert log_variance.item() == pytest.approx(math.log(variance.item()), rel=1e-12)


def test_q_sample_equals_iterating_the_chain_in_distribution(cosine):
    # Iterate x_t = √(1−β_t) x_{t−1} + √β_t z from x_0 and compare with the one-shot marginal.
    gen = torch.Generator().manual_seed(1)
    n = 100_000
    x = torch.full((n,), -0.3, dtype=torch.float64)
    for i in range(60):
        x = torch.sqrt(1 - cosine.betas[i]) * x + torch.sqrt(cosine.betas[i]) * torch.randn(
            n, generator=gen, dtype=torch.float64
        )
    mean, variance, _ = cosine.q_mean_variance(torch.full((1,), -0.3, dtype=torch.float64), 59)
    assert abs(x.mean().item() - mean.item()) < 5 * math.sqrt(variance.item() / n)
    assert abs(x.var().item() - variance.item()) < 5 * variance.item() * math.sqrt(2 / n)


def test_q_sample_is_deterministic_given_a_generator(linear):
    x0 = torch.zeros(4, 1, 8, 8)
    a = linear.q_sample(x0, 500, generator=torch.Generator().manual_seed(3))
    b = linear.q_sample(x0, 500, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_dtype_is_preserved(linear):
    for dtype in (torch.float32, torch.float64):
        x0 = torch.zeros(2, 3, dtype=dtype)
        assert linear.q_sample(x0, 5).dtype == dtype
        assert linear.q_posterior_mean_variance(x0, x0, 5).mean.dtype == dtype


# ----------------------------------------------------------------------------- posterior
@pytest.mark.parametrize("fixture", ["linear", "cosine"])
def test_posterior_equals_gaussian_conditioning_of_the_joint(fixture, request):
    diffusion = request.getfixturevalue(fixture)
    T = diffusion.num_timesteps
    t = torch.arange(T)
    x0 = torch.full((T, 1), 0.4, dtype=torch.float64)
    x_t = torch.linspace(-2, 2, T, dtype=torch.float64)[:, None]
    # (x_{t−1}, x_t) | x_0 is jointly Gaussian: x_{t−1} = √ᾱ_{t−1}x_0 + √(1−ᾱ_{t−1})u,
    # x_t = √α_t x_{t−1} + √β_t v, so Cov(x_{t−1}, x_t) = √α_t (1 − ᾱ_{t−1}).
    a_prev, a_bar, alpha = diffusion.alphas_cumprod_prev, diffusion.alphas_cumprod, diffusion.alphas
    var_prev, var_t = 1 - a_prev, 1 - a_bar
    cov = torch.sqrt(alpha) * var_prev
    cond_var = var_prev - cov**2 / var_t
    cond_mean = torch.sqrt(a_prev)[:, None] * x0 + (cov / var_t)[:, None] * (
        x_t - torch.sqrt(a_bar)[:, None] * x0
    )
    mean, variance, log_variance = diffusion.q_posterior_mean_variance(x0, x_t, t)
    assert torch.allclose(variance[:, 0], cond_var, rtol=1e-9, atol=1e-15)
    assert torch.allclose(mean, cond_mean, rtol=1e-9, atol=1e-12)
    assert variance[0].item() == 0.0
    assert torch.isfinite(log_variance).all()
    assert torch.allclose(log_variance[1:, 0], torch.log(cond_var[1:]), rtol=1e-9)


def test_posterior_at_first_step_returns_x0(linear):
    x0 = torch.randn(5, 2, dtype=torch.float64)
    x_t = linear.q_sample(x0, 0)
    mean, _, log_variance = linear.q_posterior_mean_variance(x0, x_t, 0)
    assert torch.allclose(mean, x0, atol=1e-12)
    assert log_variance[0].item() == pytest.approx(math.log(linear.posterior_variance[1].item()))


def test_eps_x0_round_trip(linear):
    gen = torch.Generator().manual_seed(2)
    x0 = torch.rand(64, 3, generator=gen, dtype=torch.float64) * 2 - 1
    eps = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 1000, (64,), generator=gen)
    x_t = linear.q_sample(x0, t, eps)
    assert torch.allclose(linear.predict_x0_from_eps(x_t, t, eps), x0, atol=1e-9)
    assert torch.allclose(linear.predict_eps_from_x0(x_t, t, x0), eps, atol=1e-9)


# ----------------------------------------------------------------------------- KL and decoder
def test_normal_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(4)
    m1, m2 = (
        torch.randn(100, generator=gen, dtype=torch.float64),
        torch.randn(100, generator=gen, dtype=torch.float64),
    )
    lv1, lv2 = (
        torch.randn(100, generator=gen, dtype=torch.float64),
        torch.randn(100, generator=gen, dtype=torch.float64),
    )
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, torch.exp(0.5 * lv1)),
        torch.distributions.Normal(m2, torch.exp(0.5 * lv2)),
    )
    assert torch.allclose(normal_kl(m1, lv1, m2, lv2), expected, rtol=1e-10, atol=1e-12)
    assert normal_kl(m1, lv1, m1, lv1).abs().max().item() < 1e-12
    assert normal_kl(torch.tensor(1.0), 0.0, 0.0, 0.0).item() == pytest.approx(0.5)


@pytest.mark.parametrize(
    "mean, log_scale",
    [
        (0.0, math.log(0.3)),
        (0.93, math.log(0.01)),
        (-1.2, 0.5),
        (0.2, math.log(1e-4)),
        (0.99, math.log(1e-3)),
    ],
)
def test_discretized_decoder_probabilities_sum_to_one(mean, log_scale):
    grid = -1 + 2 * torch.arange(256, dtype=torch.float64) / 255
    log_probs = discretized_gaussian_log_likelihood(
        grid, means=torch.full_like(grid, mean), log_scales=torch.full_like(grid, log_scale)
    )
    assert torch.exp(log_probs).sum().item() == pytest.approx(1.0, abs=1e-9)


def test_discretized_decoder_interior_bin_matches_normal_cdf():
    normal = torch.distributions.Normal(
        torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.05, dtype=torch.float64)
    )
    x = torch.tensor([-1 + 2 * 140 / 255], dtype=torch.float64)
    expected = normal.cdf(x + 1 / 255) - normal.cdf(x - 1 / 255)
    got = discretized_gaussian_log_likelihood(
        x,
        means=torch.tensor(0.1, dtype=torch.float64),
        log_scales=torch.tensor(math.log(0.05), dtype=torch.float64),
    )
    assert got.item() == pytest.approx(math.log(expected.item()), rel=1e-10)


def test_discretized_decoder_is_accurate_in_the_upper_tail():
    # Six standard deviations above the mean, Φ(u) − Φ(l) would keep only ~7 of 16 digits.
    mean, sigma, x = 0.2, 0.01, 0.26 + 1 / 255
    got = discretized_gaussian_log_likelihood(
        torch.tensor([x], dtype=torch.float64),
        means=torch.tensor(mean, dtype=torch.float64),
        log_scales=torch.tensor(math.log(sigma), dtype=torch.float64),
    )
    survival = lambda z: 0.5 * math.erfc(z / math.sqrt(2))  # noqa: E731
    expected = survival((x - 1 / 255 - mean) / sigma) - survival((x + 1 / 255 - mean) / sigma)
    assert got.item() == pytest.approx(math.log(expected), rel=1e-12)
    # Far in the tail the probability is floored at 1e-12, so the loss stays finite.
    far = discretized_gaussian_log_likelihood(
        torch.tensor([0.9], dtype=torch.float64),
        means=torch.tensor(0.0, dtype=torch.float64),
        log_scales=torch.tensor(math.log(0.01), dtype=torch.float64),
    )
    assert far.item() == pytest.approx(math.log(1e-12))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        discretized_gaussian_log_likelihood(torch.tensor([1]), means=0.0, log_scales=0.0)


# ----------------------------------------------------------------------------- reverse process and losses
def test_p_mean_variance_equals_the_eps_form_of_the_mean(linear):
    gen = torch.Generator().manual_seed(5)
    x_t = torch.randn(16, 4, generator=gen, dtype=torch.float64)
    t = torch.randint(1, 1000, (16,), generator=gen)
    eps = torch.randn(16, 4, generator=gen, dtype=torch.float64)
    out = linear.p_mean_variance(lambda x, s: eps, x_t, t, clip_denoised=False)
    a, ab, b = (buf[t][:, None] for buf in (linear.alphas, linear.alphas_cumprod, linear.betas))
    expected = (x_t - b / torch.sqrt(1 - ab) * eps) / torch.sqrt(a)
    assert torch.allclose(out["mean"], expected, atol=1e-10)
    assert torch.allclose(out["variance"][:, 0], linear.posterior_variance[t], rtol=1e-12)


def test_fixed_large_uses_beta(cosine):
    x_t = torch.zeros(3, 2, dtype=torch.float64)
    out = cosine.p_mean_variance(lambda x, s: torch.zeros_like(x), x_t, torch.tensor([0, 1, 50]))
    assert torch.allclose(
        out["variance"][:, 0], torch.stack([cosine.posterior_variance[1], cosine.betas[1], cosine.betas[50]])
    )


def test_p_sample_adds_no_noise_at_the_last_step_and_is_reproducible(linear):
    model = lambda x, t: torch.zeros_like(x)  # noqa: E731
    x_t = torch.full((2, 3), 0.5, dtype=torch.float64)
    final = linear.p_sample(model, x_t, 0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(final["sample"], linear.p_mean_variance(model, x_t, 0)["mean"])
    a = linear.p_sample(model, x_t, 500, generator=torch.Generator().manual_seed(1))["sample"]
    b = linear.p_sample(model, x_t, 500, generator=torch.Generator().manual_seed(1))["sample"]
    assert torch.equal(a, b) and not torch.allclose(a, linear.p_mean_variance(model, x_t, 500)["mean"])


def test_training_loss_is_zero_for_the_exact_predictor_and_mse_otherwise(linear):
    x0 = torch.full((8, 1, 4, 4), 0.25, dtype=torch.float64)
    gen = torch.Generator().manual_seed(6)
    out = linear.training_losses(exact_eps_for_point_mass(linear, 0.25), x0, generator=gen)
    assert out["loss"].shape == (8,)
    assert out["loss"].max().item() < 1e-12
    out = linear.training_losses(lambda x, t: torch.zeros_like(x), x0, generator=gen)
    assert torch.allclose(out["loss"], mean_flat(out["noise"] ** 2))


def test_vlb_weights_turn_eps_error_into_the_kl(linear):
    gen = torch.Generator().manual_seed(7)
    x0 = torch.rand(32, 6, generator=gen, dtype=torch.float64) * 2 - 1
    noise = torch.randn(32, 6, generator=gen, dtype=torch.float64)
    eps_model = torch.randn(32, 6, generator=gen, dtype=torch.float64)
    t = torch.randint(1, 1000, (32,), generator=gen)
    x_t = linear.q_sample(x0, t, noise)
    kl_bits = linear.vlb_terms(lambda x, s: eps_model, x0, x_t, t)["output"]
    kl_nats_summed = kl_bits * math.log(2) * 6
    expected = linear.vlb_weights[t] * ((noise - eps_model) ** 2).sum(dim=1)
    assert torch.allclose(kl_nats_summed, expected, rtol=1e-8)


def test_point_mass_with_exact_predictor_leaves_only_prior_and_decoder(linear):
    c = -1 + 2 * 191 / 255  # a point on the 256-level grid
    x0 = torch.full((3, 1, 2, 2), c, dtype=torch.float64)
    out = linear.bits_per_dim(
        exact_eps_for_point_mass(linear, c), x0, generator=torch.Generator().manual_seed(8)
    )
    assert out["terms"].shape == (3, 1000)
    assert out["terms"][:, 1:].abs().max().item() < 1e-9, "every KL term vanishes"
    assert out["mse"].max().item() < 1e-12
    # L_0: the decoder is centred on c with σ² = exp(clipped log β̃), so it is the bin's mass.
    sigma = math.exp(0.5 * linear.posterior_log_variance_clipped[0].item())
    z = (1 / 255) / sigma
    decoder_bits = -math.log2(math.erf(z / math.sqrt(2)))
    assert out["terms"][:, 0] == pytest.approx([decoder_bits] * 3, rel=1e-9)
    prior = (
        0.5
        * (
            -1
            - math.log(1 - 4.0358297653756754e-05)
            + (1 - 4.0358297653756754e-05)
            + 4.0358297653756754e-05 * c**2
        )
        / math.log(2)
    )
    assert out["prior"] == pytest.approx([prior] * 3, rel=1e-6)
    assert torch.allclose(out["total"], out["prior"] + out["terms"][:, 0], rtol=1e-9)


def test_bits_per_dim_total_is_the_sum_of_its_parts(cosine):
    x0 = torch.rand(4, 5, dtype=torch.float64) * 2 - 1
    out = cosine.bits_per_dim(
        lambda x, t: torch.zeros_like(x), x0, generator=torch.Generator().manual_seed(9)
    )
    assert torch.allclose(out["total"], out["terms"].sum(1) + out["prior"])
    assert (out["terms"][:, 1:] >= 0).all(), "KL terms are non-negative"


def test_prior_bpd_is_small_for_long_schedules(linear):
    x0 = torch.ones(2, 3, dtype=torch.float64)
    assert linear.prior_bpd(x0).max().item() < 1e-4


# ----------------------------------------------------------------------------- bad input
def test_model_var_type_must_be_known():
    with pytest.raises(
        ValueError, match=r"model_var_type must be one of fixed_small, fixed_large, got 'learned'"
    ):
        GaussianDiffusion(get_beta_schedule("linear", 100), model_var_type="learned")


@pytest.mark.parametrize(
    "betas, error, message",
    [
        (torch.tensor([0.1, 1.0]), ValueError, r"betas must all lie in \(0, 1\), got a value 1.0"),
        (torch.tensor([0.0, 0.1]), ValueError, r"betas must all lie in \(0, 1\), got a value 0.0"),
        (torch.zeros(2, 2) + 0.1, ValueError, r"betas must be a non-empty 1-D tensor, got shape \(2, 2\)"),
        (torch.tensor([], dtype=torch.float64), ValueError, "betas must be a non-empty 1-D tensor"),
        (torch.tensor([1, 2]), TypeError, "betas must be floating point"),
    ],
)
def test_bad_betas(betas, error, message):
    with pytest.raises(error, match=message):
        GaussianDiffusion(betas)


@pytest.mark.parametrize(
    "t, error, message",
    [
        (torch.tensor([1000]), ValueError, r"t must be in \[0, 999\], got 1000"),
        (torch.tensor([-1]), ValueError, r"t must be in \[0, 999\], got -1"),
        (1000, ValueError, r"t must be in \[0, 999\], got 1000"),
        (torch.tensor([1.0]), TypeError, "t must be an integer tensor, got dtype torch.float32"),
        (torch.tensor([1, 2]), ValueError, r"t must have shape \(1,\) to match the batch, got \(2,\)"),
        (2.0, TypeError, "t must be an int64 tensor of shape"),
        (True, TypeError, "got bool"),
    ],
)
def test_bad_timesteps(linear, t, error, message):
    with pytest.raises(error, match=message):
        linear.q_sample(torch.zeros(1, 3), t)


def test_noise_shape_must_match_x0(linear):
    with pytest.raises(ValueError, match=r"noise must have the shape of x0 \(2, 3\), got \(2, 4\)"):
        linear.q_sample(torch.zeros(2, 3), 1, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"x_t must have the shape of x0"):
        linear.q_posterior_mean_variance(torch.zeros(2, 3), torch.zeros(3, 3), 1)


def test_x0_must_be_floating(linear):
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor, got dtype torch.int64"):
        linear.q_sample(torch.zeros(2, 3, dtype=torch.long), 1)
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor, got list"):
        linear.q_mean_variance([0.0, 1.0], 1)


def test_model_output_shape_is_checked(linear):
    with pytest.raises(ValueError, match=r"model output must have the shape of x_t \(2, 3\), got \(2,\)"):
        linear.p_mean_variance(lambda x, t: x[:, 0], torch.zeros(2, 3), 1)
    with pytest.raises(ValueError, match="model output must have the shape of x_t"):
        linear.training_losses(lambda x, t: x.sum(), torch.zeros(2, 3))


def test_sample_timesteps_range_and_bad_batch(linear):
    t = linear.sample_timesteps(10_000, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and t.min().item() >= 0 and t.max().item() <= 999
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        linear.sample_timesteps(0)


def test_vlb_terms_mixes_decoder_and_kl_rows_in_one_batch(linear):
    gen = torch.Generator().manual_seed(10)
    x0 = torch.rand(6, 5, generator=gen, dtype=torch.float64) * 2 - 1
    t = torch.tensor([0, 5, 0, 999, 1, 0])
    x_t = linear.q_sample(x0, t, generator=gen)
    model = lambda x, s: torch.full_like(x, 0.3)  # noqa: E731
    mixed = linear.vlb_terms(model, x0, x_t, t)["output"]
    for row in range(6):
        alone = linear.vlb_terms(model, x0[row : row + 1], x_t[row : row + 1], t[row : row + 1])["output"]
        assert mixed[row].item() == pytest.approx(alone.item(), rel=1e-12)
    out = linear.p_mean_variance(model, x_t[:1], t[:1], clip_denoised=False)
    decoder = -discretized_gaussian_log_likelihood(
        x0[:1], means=out["mean"], log_scales=0.5 * out["log_variance"]
    ).mean() / math.log(2)
    assert mixed[0].item() == pytest.approx(decoder.item(), rel=1e-12)


# ---------------------------------------------------------------- devices and validation
def test_an_ancestral_step_never_reads_back_to_the_host():
    """On the meta device any read of a value (int(), .item(), indexing on the CPU) raises, so a
    DDPM step with an int t (as samplers.ddpm takes it) runs without a host round trip: the
    buffers are read from a copy on the tensor's device, the nested methods do not re-check."""
    d = GaussianDiffusion(get_beta_schedule("cosine", 10))
    x = torch.empty(4, 1, 8, 8, device="meta")
    out = d.p_sample(lambda x_t, t: torch.zeros_like(x_t), x, 5, noise=torch.empty_like(x))
    assert out["sample"].device.type == "meta" and out["sample"].shape == x.shape
    mean, variance, _ = d.q_mean_variance(x, 9)
    assert mean.device.type == variance.device.type == "meta" and variance.dtype == torch.float32


def test_buffers_read_on_another_device_or_dtype_are_the_cpu_values():
    d = GaussianDiffusion(get_beta_schedule("cosine", 10))
    x64, t = torch.ones(3, 2, dtype=torch.float64), torch.tensor([0, 4, 9])
    assert torch.equal(d.q_mean_variance(x64, t).variance.flatten(), 1.0 - d.alphas_cumprod[t])
    x32 = x64.float()
    assert torch.equal(d.q_mean_variance(x32, t).variance.flatten(), (1.0 - d.alphas_cumprod[t]).float())


def test_noise_is_drawn_where_the_generator_is():
    from diffusion_lib.diffusion import randn_like_on

    like = torch.empty(2, 3, device="meta")
    assert randn_like_on(like, torch.Generator().manual_seed(0)).device.type == "meta"
    cpu = randn_like_on(torch.empty(2, 3), torch.Generator().manual_seed(0))
    assert torch.equal(cpu, torch.randn(2, 3, generator=torch.Generator().manual_seed(0)))


def test_a_public_method_checks_its_inputs_once(monkeypatch):
    """training_losses checks t, then q_sample (which it calls) does not check it again."""
    d = GaussianDiffusion(get_beta_schedule("cosine", 10))
    reads = []
    real_min = torch.Tensor.min

    def counted_min(self, *args, **kwargs):
        reads.append(1)
        return real_min(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "min", counted_min)
    d.training_losses(lambda x, t: torch.zeros_like(x), torch.zeros(4, 2), torch.tensor([1, 2, 3, 4]))
    assert len(reads) == 1, "t's range read once, by the entry point"
    d.q_sample(torch.zeros(4, 2), torch.tensor([1, 2, 3, 4]))
    assert len(reads) == 2, "a public method called directly checks its inputs"
    with pytest.raises(ValueError, match=r"t must be in \[0, 9\], got 10"):
        d.q_sample(torch.zeros(4, 2), torch.tensor([1, 2, 3, 10]))
    with pytest.raises(ValueError, match=r"t must be in \[0, 9\], got -1"):
        d.p_sample(lambda x, t: x, torch.zeros(4, 2), -1)


def test_the_bits_per_dim_loop_never_reads_back_to_the_host():
    """Every one of bits_per_dim's T steps (q_sample, vlb_terms with the decoder at t = 0) runs on
    the meta device, where any read of a value raises."""
    d = GaussianDiffusion(get_beta_schedule("cosine", 4))
    x = torch.empty(2, 1, 4, 4, device="meta")
    out = d.bits_per_dim(lambda x_t, t: torch.zeros_like(x_t), x)
    assert out["terms"].shape == (2, 4) and out["total"].device.type == "meta"


def test_vlb_terms_at_an_int_t_equal_those_at_a_tensor_t():
    d = GaussianDiffusion(get_beta_schedule("linear", 100))
    g = torch.Generator().manual_seed(0)
    x0, x_t = torch.rand(5, 1, 8, 8, generator=g) * 2 - 1, torch.randn(5, 1, 8, 8, generator=g)
    model = lambda x, t: 0.3 * x  # noqa: E731
    for t in (0, 5, 99):
        by_int = d.vlb_terms(model, x0, x_t, t)["output"]
        assert torch.equal(by_int, d.vlb_terms(model, x0, x_t, torch.full((5,), t))["output"])
    mixed = d.vlb_terms(model, x0, x_t, torch.tensor([0, 3, 0, 7, 1]))["output"]
    assert torch.equal(mixed[[0, 2]], d.vlb_terms(model, x0, x_t, 0)["output"][[0, 2]])


def test_alpha_bar_at_inverts_fractional_timestep():
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000))
    levels = torch.linspace(0.02, 0.99, 57, dtype=torch.float64)
    index = diffusion.fractional_timestep(levels)
    assert torch.allclose(diffusion.alpha_bar_at(index), levels, rtol=1e-12, atol=0)
    steps = torch.tensor([0, 17, 999])
    assert torch.equal(diffusion.alpha_bar_at(steps), diffusion.alphas_cumprod[steps])
    # halfway between two steps in index is halfway in log-SNR, not in ᾱ
    lam = torch.log(diffusion.alphas_cumprod) - torch.log1p(-diffusion.alphas_cumprod)
    half = torch.sigmoid((lam[500] + lam[501]) / 2)
    assert torch.allclose(diffusion.alpha_bar_at(torch.tensor([500.5])), half[None], rtol=1e-12)
    with pytest.raises(ValueError, match=r"index must lie in \[0, 999\], got 1000"):
        diffusion.alpha_bar_at(torch.tensor([1000.0]))
    with pytest.raises(ValueError, match="index must be a real tensor"):
        diffusion.alpha_bar_at(3)
