"""Continuous-time diffusion (chapter 8): the four Gaussian paths, exact scores, likelihoods, samplers.

Every process is checked against its closed-form marginal, a Monte-Carlo simulation of its
forward SDE and the Gaussian-path identity g² = dσ²/dt − 2 (d log α/dt) σ². Samplers and the
ODE likelihood run on data whose score is exact (Gaussians and Gaussian mixtures), so their
results have closed forms to meet. Statistical tolerances are in standard errors, on fixed seeds.
"""

import math

import pytest
import torch

from diffusion_lib import GaussianDiffusion, get_beta_schedule, sde

PROCESSES = {
    "vp": sde.VPSDE(),
    "subvp": sde.SubVPSDE(),
    "ve": sde.VESDE(),
    "flow": sde.FlowMatchingPath(),
}
F64 = torch.float64


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ring(radius: float = 2.0, std: float = 0.2, k: int = 8) -> sde.GaussianMixture:
    """k Gaussians on a circle: zero mean, so the VP prior N(0, I) is off by second-order terms only."""
    angles = torch.arange(k, dtype=F64) * 2 * math.pi / k
    return sde.GaussianMixture(radius * torch.stack([angles.cos(), angles.sin()], 1), torch.full((k,), std))


def high_dim_mixture(dim: int = 64) -> sde.GaussianMixture:
    g = generator(1)
    means = 0.3 * torch.randn(4, dim, generator=g, dtype=F64)
    return sde.GaussianMixture(means - means.mean(0), torch.tensor([0.3, 0.4, 0.5, 0.35]))  # mean zero


def component_posterior_mean(mix: sde.GaussianMixture, x, alpha, sigma):
    """E[x_0 | x_t] for the mixture, component by component (no score, no Tweedie):
    Σ_k p(k | x_t) (μ_k + α s_k²/(α² s_k² + σ²) (x_t − α μ_k))."""
    var = alpha**2 * mix.stds**2 + sigma**2
    diff = x[:, None, :] - alpha * mix.means[None]
    log_joint = (
        mix.weights.log() - 0.5 * (diff**2).sum(2) / var - 0.5 * mix.dim * torch.log(2 * math.pi * var)
    )
    resp = torch.softmax(log_joint, dim=1)
    means = mix.means[None] + (alpha * mix.stds**2 / var)[None, :, None] * diff
    return (resp[:, :, None] * means).sum(1)


# ----------------------------------------------------------------------------- marginals
def test_marginals_closed_forms():
    t = torch.tensor([0.0, 0.01, 0.3, 0.7, 0.99], dtype=F64)
    integral = 0.1 * t + 0.5 * (20.0 - 0.1) * t**2
    alpha, sigma = PROCESSES["vp"].marginal(t)
    torch.testing.assert_close(alpha, torch.exp(-0.5 * integral), rtol=1e-14, atol=0)
    torch.testing.assert_close(sigma, torch.sqrt(1 - torch.exp(-integral)), rtol=1e-12, atol=0)
    alpha, sigma = PROCESSES["subvp"].marginal(t)
    torch.testing.assert_close(sigma, 1 - torch.exp(-integral), rtol=1e-12, atol=0)
    alpha, sigma = PROCESSES["ve"].marginal(t)
    assert bool((alpha == 1).all())
    torch.testing.assert_close(sigma, torch.sqrt((0.01 * 5000.0**t) ** 2 - 0.01**2), rtol=1e-12, atol=0)
    torch.testing.assert_close(PROCESSES["ve"].sigma_v(t), 0.01 * 5000.0**t, rtol=1e-13, atol=0)
    alpha, sigma = PROCESSES["flow"].marginal(t)
    torch.testing.assert_close(alpha, 1 - t, rtol=0, atol=1e-15)
    torch.testing.assert_close(sigma, t, rtol=0, atol=0)
    torch.testing.assert_close(PROCESSES["vp"].beta(t), 0.1 + 19.9 * t)
    # small t: expm1 keeps sigma ≈ √(β_min t) with full precision (1 − exp would lose it)
    tiny = torch.tensor([1e-12], dtype=F64)
    assert PROCESSES["vp"].marginal(tiny)[1].item() == pytest.approx(math.sqrt(0.1e-12), rel=1e-9)


@pytest.mark.parametrize("name", PROCESSES)
def test_marginal_keeps_shape_and_dtype(name):
    t = torch.rand(3, 4, dtype=torch.float32) * 0.9
    alpha, sigma = PROCESSES[name].marginal(t)
    assert alpha.shape == sigma.shape == (3, 4) and alpha.dtype == sigma.dtype == torch.float32
    a64, s64 = PROCESSES[name].marginal(t.double())
    torch.testing.assert_close(alpha, a64.float())
    f, g = PROCESSES[name].sde(torch.ones(5, 2, 3), torch.full((5,), 0.4))
    assert f.shape == (5, 2, 3) and g.shape == (5,) and f.dtype == g.dtype == torch.float32


@pytest.mark.parametrize("name, t_end", [("vp", 1.0), ("subvp", 1.0), ("ve", 1.0), ("flow", 0.9)])
def test_marginal_matches_a_simulation_of_the_forward_sde(name, t_end):
    """20,000 Euler–Maruyama paths from x_0 = 1.5: mean α x_0 and variance σ² at t_end, within 4 SE."""
    process, n, steps, x0 = PROCESSES[name], 20_000, 400, 1.5
    g = generator(0)
    x = torch.full((n, 1), x0, dtype=F64)
    dt = t_end / steps
    for k in range(steps):
        t = torch.full((n,), (k + 0.5) * dt, dtype=F64)  # coefficients at the interval's midpoint
        f, gt = process.sde(x, t)
        x = x + f * dt + gt[:, None] * math.sqrt(dt) * torch.randn(n, 1, generator=g, dtype=F64)
    alpha, sigma = (v.item() for v in process.marginal(torch.tensor(t_end, dtype=F64)))
    mean, var = x.mean().item(), x.var().item()
    assert abs(mean - alpha * x0) <= 4 * sigma / math.sqrt(n), (mean, alpha * x0)
    assert abs(var - sigma**2) <= 4 * sigma**2 * math.sqrt(2 / (n - 1)), (var, sigma**2)


@pytest.mark.parametrize("name", PROCESSES)
def test_gaussian_path_identity_by_finite_differences(name):
    """g² = dσ²/dt − 2 (d log α/dt) σ² and f = (d log α/dt) x, derivatives by central differences."""
    process = PROCESSES[name]
    t = torch.linspace(0.05, 0.95, 19, dtype=F64)
    h = 1e-6
    (a_plus, s_plus), (a_minus, s_minus) = process.marginal(t + h), process.marginal(t - h)
    dlog_alpha = (a_plus.log() - a_minus.log()) / (2 * h)
    dvar = (s_plus**2 - s_minus**2) / (2 * h)
    _, sigma = process.marginal(t)
    x = torch.randn(19, 3, generator=generator(0), dtype=F64)
    f, g = process.sde(x, t)
    torch.testing.assert_close(g**2, dvar - 2 * dlog_alpha * sigma**2, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(f, dlog_alpha[:, None] * x, rtol=1e-7, atol=1e-9)


def test_drifts_of_the_reverse_sde_and_the_probability_flow():
    process = PROCESSES["vp"]
    x, score = torch.randn(4, 3, dtype=F64), torch.randn(4, 3, dtype=F64)
    t = torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=F64)
    f, g = process.sde(x, t)
    torch.testing.assert_close(process.reverse_drift(x, t, score), f - g[:, None] ** 2 * score)
    torch.testing.assert_close(process.probability_flow_drift(x, t, score), f - 0.5 * g[:, None] ** 2 * score)


@pytest.mark.parametrize("name, std", [("vp", 1.0), ("flow", 1.0), ("ve", 50.0)])
def test_prior(name, std):
    process = PROCESSES[name]
    z = process.prior_sample((20_000, 2), generator=generator(0), dtype=F64)
    assert z.shape == (20_000, 2) and z.dtype == F64
    assert z.std().item() == pytest.approx(std, rel=0.02)
    want = torch.distributions.Normal(0.0, std).log_prob(z[:5]).sum(1)
    torch.testing.assert_close(process.prior_log_prob(z[:5]), want)
    assert process.t_end == (1 - 1e-3 if name == "flow" else 1.0)
    again = process.prior_sample((20_000, 2), generator=generator(0), dtype=F64)
    assert torch.equal(z, again)


# ----------------------------------------------------------------------------- DDPM as a VP SDE
def test_discrete_betas_are_the_linear_schedule():
    assert torch.equal(sde.VPSDE().discrete_betas(1000), get_beta_schedule("linear", 1000))


def test_from_diffusion_round_trip():
    vp = sde.VPSDE(beta_min=0.2, beta_max=15.0)
    back = sde.VPSDE.from_diffusion(GaussianDiffusion(vp.discrete_betas(500)))
    assert back.beta_min == pytest.approx(0.2, rel=1e-12) and back.beta_max == pytest.approx(15.0, rel=1e-12)
    # the linear schedule of any length is the same SDE: Nichol & Dhariwal's 1000/T scaling
    for steps in (100, 1000, 4000):
        same = sde.VPSDE.from_diffusion(GaussianDiffusion(get_beta_schedule("linear", steps)))
        assert (same.beta_min, same.beta_max) == pytest.approx((0.1, 20.0), rel=1e-12)


def test_from_diffusion_rejects_other_schedules():
    with pytest.raises(ValueError, match="diffusion's schedule must be the linear one"):
        sde.VPSDE.from_diffusion(GaussianDiffusion(get_beta_schedule("cosine", 1000)))
    with pytest.raises(ValueError, match="linear"):
        sde.VPSDE.from_diffusion(GaussianDiffusion(get_beta_schedule("quadratic", 1000)))
    with pytest.raises(TypeError, match="diffusion must be a GaussianDiffusion"):
        sde.VPSDE.from_diffusion(sde.VPSDE())


def test_step_index_of_the_continuous_time():
    """The chain reaches alpha(t)² at a step index near N t − 1 (within 4 of 1000 steps: the
    discrete ᾱ_i = Π(1 − β_j) decays slightly faster than exp(−Σ β_j))."""
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000))
    vp = sde.VPSDE.from_diffusion(diffusion)
    t = torch.linspace(0.002, 1.0, 500, dtype=F64)
    index = diffusion.fractional_timestep(vp.marginal(t)[0] ** 2)
    assert (index - (1000 * t - 1)).abs().max().item() < 4
    assert bool((index[1:] > index[:-1]).all())


# ----------------------------------------------------------------------------- Gaussian mixtures
def test_mixture_score_is_the_gradient_of_log_prob():
    mix = ring()
    x = (3 * torch.randn(32, 2, generator=generator(0), dtype=F64)).requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob(x).sum(), x)
    torch.testing.assert_close(mix.score(x.detach()), grad, rtol=1e-10, atol=1e-10)


def test_mixture_log_prob_is_normalised():
    mix = sde.GaussianMixture([[-1.0], [2.0]], [0.5, 0.8], [0.3, 0.7])
    grid = torch.linspace(-8, 10, 20_001, dtype=F64)[:, None]
    mass = torch.trapezoid(mix.log_prob(grid).exp(), grid[:, 0]).item()
    assert mass == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", PROCESSES)
def test_mixture_score_fn_is_the_gradient_of_log_prob_fn(name):
    mix, process = ring(), PROCESSES[name]
    t = 0.02 + 0.95 * torch.rand(32, generator=generator(1), dtype=F64)  # one time per example
    x = (2 * torch.randn(32, 2, generator=generator(0), dtype=F64)).requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob_fn(process)(x, t).sum(), x)
    torch.testing.assert_close(mix.score_fn(process)(x.detach(), t), grad, rtol=1e-10, atol=1e-10)
    # per-example levels agree with the mixture perturbed at each one
    alpha, sigma = process.marginal(t)
    for i in (0, 17):
        perturbed = mix.perturbed(alpha[i].item(), sigma[i].item())
        got = mix.log_prob_fn(process)(x[i : i + 1].detach(), t[i : i + 1])
        torch.testing.assert_close(got, perturbed.log_prob(x[i : i + 1].detach()), rtol=1e-12, atol=1e-12)


def test_mixture_samples_have_its_moments():
    mix = sde.GaussianMixture([[-1.0, 0.0], [2.0, 1.0]], [0.5, 0.8], [0.3, 0.7])
    n = 40_000
    x = mix.sample(n, generator=generator(0), dtype=F64)
    mean = (mix.weights[:, None] * mix.means).sum(0)
    second = (mix.weights * (mix.stds**2)).sum() + (mix.weights[:, None] * (mix.means - mean) ** 2).sum(0)
    assert ((x.mean(0) - mean).abs() <= 4 * second.sqrt() / math.sqrt(n)).all()
    assert ((x.var(0) - second).abs() <= 0.03 * second).all()


def test_posterior_mean_is_tweedie_and_the_closed_form():
    mix = ring()
    x = 2 * torch.randn(16, 2, generator=generator(0), dtype=F64)
    for alpha, sigma in ((0.9, 0.3), (0.3, 0.95), (1.0, 2.0)):
        want = component_posterior_mean(mix, x, alpha, sigma)
        torch.testing.assert_close(mix.posterior_mean(x, alpha, sigma), want, rtol=1e-10, atol=1e-10)
    # per-example levels
    alpha, sigma = torch.tensor([0.9] * 8 + [0.3] * 8, dtype=F64), torch.tensor([0.3] * 8 + [0.95] * 8)
    got = mix.posterior_mean(x, alpha, sigma.double())
    torch.testing.assert_close(got[:8], component_posterior_mean(mix, x[:8], 0.9, 0.3))
    torch.testing.assert_close(got[8:], component_posterior_mean(mix, x[8:], 0.3, 0.95))


def test_posterior_mean_against_monte_carlo():
    """E[(x_0 − m(x_t)) h(x_t)] = 0 for every h characterises m = E[x_0 | x_t]: checked for four
    h within 4 standard errors; the naive m(x_t) = x_t/α fails the same test."""
    mix = sde.GaussianMixture([[-2.0], [1.5]], [0.4, 0.7], [0.35, 0.65])
    alpha, sigma, n = 0.8, 0.6, 40_000
    g = generator(3)
    x0 = mix.sample(n, generator=g, dtype=F64)
    xt = alpha * x0 + sigma * torch.randn(n, 1, generator=g, dtype=F64)
    tests = [torch.ones_like(xt), xt, torch.tanh(xt), torch.sin(2 * xt)]

    def worst(estimate):
        residual = x0 - estimate
        return max(
            abs((residual * h).mean().item()) / ((residual * h).std().item() / math.sqrt(n)) for h in tests
        )

    assert worst(mix.posterior_mean(xt, alpha, sigma)) < 4
    assert worst(xt / alpha) > 10


# ----------------------------------------------------------------------------- divergence
def coupled(x, t):
    """A nonlinear field with a non-symmetric Jacobian."""
    return torch.tanh(x.roll(1, dims=1) * x) + t[:, None] * x**2


def test_exact_divergence_is_the_jacobian_trace():
    x = torch.randn(3, 5, generator=generator(0), dtype=F64)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    got = sde.divergence(coupled, x, t)
    for b in range(3):
        jac = torch.autograd.functional.jacobian(lambda y, b=b: coupled(y[None], t[b : b + 1])[0], x[b])
        assert got[b].item() == pytest.approx(jac.trace().item(), rel=1e-12)
    # any trailing shape: (B, 2, 3)
    y = torch.randn(2, 2, 3, generator=generator(1), dtype=F64)
    got = sde.divergence(lambda a, _: a**3, y, None)
    torch.testing.assert_close(got, (3 * y**2).sum((1, 2)))


def test_hutchinson_is_unbiased_with_the_predicted_variance():
    """Mean of 4,000 Rademacher estimates within 3 SE of the trace; their variance matches
    Var[vᵀJv] = Σ_{i<j} (J_ij + J_ji)²; averaging 4 probes divides it by about 4."""
    x = torch.randn(4, 8, generator=generator(0), dtype=F64)
    t = torch.full((4,), 0.5, dtype=F64)
    n = 4000
    probes = 2.0 * torch.randint(0, 2, (n, 4, 8), generator=generator(1)).double() - 1.0
    single = sde.divergence(coupled, x, t, method="hutchinson", probes=probes, per_probe=True)
    assert single.shape == (n, 4)
    exact = sde.divergence(coupled, x, t)
    assert ((single.mean(0) - exact).abs() <= 3 * single.std(0) / math.sqrt(n)).all()
    for b in range(4):
        jac = torch.autograd.functional.jacobian(lambda y: coupled(y[None], t[:1])[0], x[b])
        predicted = torch.triu((jac + jac.T) ** 2, diagonal=1).sum().item()
        assert single[:, b].var().item() == pytest.approx(predicted, rel=0.12)
    four = single.reshape(n // 4, 4, 4).mean(1)
    ratio = single.var(0) / four.var(0)
    assert bool(((ratio > 2.5) & (ratio < 6)).all()), ratio
    # the mean of the P estimates is what method="hutchinson" returns
    torch.testing.assert_close(
        sde.divergence(coupled, x, t, method="hutchinson", probes=probes[:7]), single[:7].mean(0)
    )


# ----------------------------------------------------------------------------- likelihood
@pytest.mark.parametrize("name", PROCESSES)
def test_ode_log_likelihood_of_a_2d_mixture(name):
    """Against log p_{t_min}: to 2e-4 nats per point when the prior is replaced by the exact
    p_{t_end} (the ODE's own error: about 2e-5 at tolerances 1e-6; at the defaults 1e-5 it reaches
    1.5e-3 on some seeds); with the N(0, σ_T² I) prior, to 1e-3 for VP and sub-VP, whose p_1 is
    N(0, I) to second order, and 1e-2 for VE (σ_max = 50 is not quite infinite) and flow
    (t_end = 1 − 1e-3). log p_{t_min} is within 3e-4 of the data's log p_0."""
    mix, process = ring(), PROCESSES[name]
    x = mix.sample(16, generator=generator(0), dtype=F64)
    calls = []

    def score_fn(xt, t):
        calls.append(t)
        assert xt.dtype == F64 and t.shape == (16,) and bool((t >= 1e-5).all() and (t <= process.t_end).all())
        return mix.score_fn(process)(xt, t)

    out = sde.ode_log_likelihood(score_fn, process, x, rtol=1e-6, atol=1e-6)
    assert out["nfe"] == len(calls) and isinstance(out["nfe"], int)
    assert out["log_likelihood"].dtype == F64 and out["log_likelihood"].shape == (16,)
    torch.testing.assert_close(out["log_likelihood"], out["prior"] + out["delta"])
    log_p = mix.log_prob_fn(process)(x, 1e-5)
    with_exact_prior = mix.log_prob_fn(process)(out["z"], process.t_end) + out["delta"]
    assert (with_exact_prior - log_p).abs().max().item() <= 2e-4
    tolerance = 1e-3 if name in ("vp", "subvp") else 1e-2
    assert (out["log_likelihood"] - log_p).abs().max().item() <= tolerance
    assert (log_p - mix.log_prob(x)).abs().max().item() <= 3e-4


def test_ode_log_likelihood_of_a_64d_mixture():
    """64 dimensions, exact divergence (64 backward passes per call); the tolerances 1e-7 keep the
    solver's error (1e-3 nats at 1e-5) well below the 5e-4 the N(0, I) prior costs."""
    mix, process = high_dim_mixture(), PROCESSES["vp"]
    x = mix.sample(4, generator=generator(0), dtype=F64)
    out = sde.ode_log_likelihood(mix.score_fn(process), process, x, rtol=1e-7, atol=1e-7)
    log_p = mix.log_prob_fn(process)(x, 1e-5)
    assert (out["log_likelihood"] - log_p).abs().max().item() <= 1e-3
    assert (out["log_likelihood"] - mix.log_prob(x)).abs().max().item() <= 1e-3


def test_ode_log_likelihood_with_hutchinson():
    """Probes fixed per solve: one probe is off by about a nat (RMS over 16 points), sixteen by
    about a quarter (measured 0.17 to 0.28 on several seeds)."""
    mix, process = ring(), PROCESSES["vp"]
    x = mix.sample(16, generator=generator(0), dtype=F64)
    exact = sde.ode_log_likelihood(mix.score_fn(process), process, x)["log_likelihood"]
    errors = {}
    for probes in (1, 16):
        out = sde.ode_log_likelihood(
            mix.score_fn(process),
            process,
            x,
            divergence="hutchinson",
            num_probes=probes,
            generator=generator(1),
        )
        errors[probes] = out["log_likelihood"] - exact
    rms = {p: e.pow(2).mean().sqrt().item() for p, e in errors.items()}
    assert rms[16] < 0.4 and rms[1] > 2 * rms[16], rms
    again = sde.ode_log_likelihood(
        mix.score_fn(process), process, x, divergence="hutchinson", num_probes=16, generator=generator(1)
    )
    assert torch.equal(again["log_likelihood"], errors[16] + exact)


# ----------------------------------------------------------------------------- networks as scores
def test_score_from_eps_of_a_ddpm_calls_the_network_at_the_fractional_index():
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000))
    seen = []

    def fake(x, index):
        seen.append(index)
        return torch.sin(x) + index[:, None] / 1000

    score_fn = sde.score_from_eps(fake, diffusion)
    assert isinstance(score_fn.process, sde.VPSDE) and score_fn.process.beta_max == pytest.approx(20.0)
    x = torch.randn(5, 3)
    t = torch.tensor([0.01, 0.2, 0.5, 0.8, 1.0])
    score = score_fn(x, t)
    alpha, sigma = sde.VPSDE().marginal(t.double())
    index = diffusion.fractional_timestep(alpha**2)
    assert seen[0].dtype == torch.float32 and seen[0].shape == (5,)
    torch.testing.assert_close(seen[0], index.float())
    torch.testing.assert_close(score, -fake(x, index.float()) / sigma.float()[:, None])


def test_score_from_eps_with_an_oracle_network_is_the_exact_score():
    """ε̂(x, i) = −σ_i ∇ log p at the chain's noise level of the fractional index i (log-SNR
    interpolation, the inverse of fractional_timestep): the score function recovers the exact
    score of the continuous VP SDE."""
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000))
    mix = ring()
    lam = torch.log(diffusion.alphas_cumprod) - torch.log1p(-diffusion.alphas_cumprod)

    def oracle(x, index):
        lo = index.floor().long().clamp(max=998)
        frac = index - lo
        alpha_bar = torch.sigmoid(lam[lo] * (1 - frac) + lam[lo + 1] * frac)
        alpha, sigma = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
        score = torch.stack(
            [
                mix.perturbed(a.item(), s.item()).score(x[i : i + 1])[0]
                for i, (a, s) in enumerate(zip(alpha, sigma))
            ]
        )
        return -sigma[:, None] * score

    x = 2 * torch.randn(6, 2, generator=generator(0), dtype=F64)
    t = torch.tensor([0.003, 0.05, 0.2, 0.5, 0.7, 0.95], dtype=F64)
    got = sde.score_from_eps(oracle, diffusion)(x, t)
    torch.testing.assert_close(got, mix.score_fn(sde.VPSDE())(x, t), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", PROCESSES)
def test_score_from_eps_of_an_sde(name):
    process, mix = PROCESSES[name], ring()
    x = 2 * torch.randn(8, 2, generator=generator(0), dtype=F64)
    t = torch.linspace(0.05, 0.95, 8, dtype=F64)

    def oracle(x, t_seen):
        assert torch.equal(t_seen, t)
        return -process.marginal(t_seen)[1][:, None] * mix.score_fn(process)(x, t_seen)

    score_fn = sde.score_from_eps(oracle, process)
    assert score_fn.process is process
    torch.testing.assert_close(score_fn(x, t), mix.score_fn(process)(x, t), rtol=1e-12, atol=1e-12)


def test_flow_velocity_is_the_probability_flow_drift_and_gives_the_score():
    path, mix = PROCESSES["flow"], ring()
    x = 1.5 * torch.randn(16, 2, generator=generator(0), dtype=F64)
    t = 0.02 + 0.95 * torch.rand(16, generator=generator(1), dtype=F64)

    def velocity(x, t):  # E[ε − x_0 | x_t] in closed form, with E[ε | x_t] = (x_t − (1 − t) E[x_0 | x_t]) / t
        x0 = torch.stack(
            [component_posterior_mean(mix, x[i : i + 1], 1 - t[i], t[i])[0] for i in range(len(t))]
        )
        eps = (x - (1 - t[:, None]) * x0) / t[:, None]
        return eps - x0

    exact_score = mix.score_fn(path)(x, t)
    torch.testing.assert_close(
        path.probability_flow_drift(x, t, exact_score), velocity(x, t), rtol=1e-9, atol=1e-9
    )
    torch.testing.assert_close(
        sde.score_from_velocity(velocity, path)(x, t), exact_score, rtol=1e-9, atol=1e-9
    )


# ----------------------------------------------------------------------------- samplers
MU, STD = torch.tensor([1.0, -0.5], dtype=F64), 0.5
GAUSS = sde.GaussianMixture(MU[None], [STD])


def assert_gaussian_moments(x, mean, std, z=4.0):
    n = x.shape[0]
    assert ((x.mean(0) - mean).abs() <= z * std / math.sqrt(n)).all(), x.mean(0)
    assert ((x.var(0) - std**2).abs() <= z * std**2 * math.sqrt(2 / (n - 1))).all(), x.var(0)


@pytest.mark.parametrize("name", ["vp", "ve"])
def test_euler_maruyama_samples_the_data(name):
    process = PROCESSES[name]
    x = sde.euler_maruyama(
        GAUSS.score_fn(process), process, (4000, 2), steps=300, generator=generator(0), dtype=F64
    )
    assert_gaussian_moments(x, MU, STD)


def test_predictor_corrector_samples_the_data():
    process = PROCESSES["vp"]
    x = sde.predictor_corrector(
        GAUSS.score_fn(process), process, (4000, 2), steps=150, generator=generator(0), dtype=F64
    )
    assert_gaussian_moments(x, MU, STD)


def test_predictor_corrector_with_per_example_norms_in_64_dimensions():
    """Each example's own ‖z‖/‖s‖ (samples independent of their batch) works where the norms
    concentrate; it inflates the variance by a few percent (measured 9% at 250 steps)."""
    process = PROCESSES["flow"]
    mean = torch.linspace(-1, 1, 64, dtype=F64)
    gauss = sde.GaussianMixture(mean[None], [STD])
    x = sde.predictor_corrector(
        gauss.score_fn(process),
        process,
        (300, 64),
        steps=100,
        norms="example",
        generator=generator(0),
        dtype=F64,
    )
    assert (x.mean(0) - mean).abs().mean().item() <= 2 * STD / math.sqrt(300)
    assert x.var(0).mean().item() == pytest.approx(STD**2, rel=0.15)


@pytest.mark.parametrize("name", PROCESSES)
def test_probability_flow_sample_is_the_affine_gaussian_map(name):
    """For data N(μ, s² I) every marginal is N(α μ, v I) with v = α² s² + σ², and the ODE maps
    x_T ↦ α μ + √(v/v_T) (x_T − α_T μ): a monotone map between Gaussians."""
    process = PROCESSES[name]
    x_T = process.prior_sample((32, 2), generator=generator(0), dtype=F64)
    out = sde.probability_flow_sample(GAUSS.score_fn(process), process, x_T, t_min=1e-3)
    (a0, s0), (a1, s1) = (process.marginal(torch.tensor(t, dtype=F64)) for t in (1e-3, process.t_end))
    v0, v1 = a0**2 * STD**2 + s0**2, a1**2 * STD**2 + s1**2
    want = a0 * MU + (v0 / v1).sqrt() * (x_T - a1 * MU)
    torch.testing.assert_close(out["x0"], want, rtol=0, atol=2e-4 * process.prior_std)
    assert isinstance(out["nfe"], int) and out["nfe"] > 10
    # the likelihood ODE runs the same map forwards
    back = sde.ode_log_likelihood(GAUSS.score_fn(process), process, out["x0"], t_min=1e-3)["z"]
    torch.testing.assert_close(back, x_T, rtol=0, atol=1e-3 * process.prior_std)


def test_samplers_are_reproducible_and_return_trajectories():
    process = PROCESSES["vp"]
    for sampler in (sde.euler_maruyama, sde.predictor_corrector):
        x, trajectory = sampler(
            GAUSS.score_fn(process), process, (8, 2), steps=5, generator=generator(0), return_trajectory=True
        )
        assert len(trajectory) == 6 and torch.equal(trajectory[-1], x) and x.dtype == torch.float32
        again = sampler(GAUSS.score_fn(process), process, (8, 2), steps=5, generator=generator(0))
        assert torch.equal(x, again)
    x_T = torch.zeros(8, 2)
    x = sde.euler_maruyama(GAUSS.score_fn(process), process, (8, 2), steps=1, x_T=x_T)
    # one step, no noise: the mean of the reverse step from t_end
    t = torch.full((8,), 1.0)
    want = x_T - process.reverse_drift(x_T, t, GAUSS.score_fn(process)(x_T, t)) * (1 - 1e-3)
    torch.testing.assert_close(x, want)


def test_langevin_reaches_its_stationary_law():
    """Unadjusted Langevin on N(μ, s²) is the AR(1) chain with stationary variance s²/(1 − h/(4s²)):
    at h = s²/2 that is 8/7 s², which the samples meet (and do not confuse with s²)."""
    step, n = STD**2 / 2, 20_000
    x = sde.langevin(
        GAUSS.score, torch.zeros(n, 2, dtype=F64), step_size=step, steps=100, generator=generator(0)
    )
    biased = STD / math.sqrt(1 - step / (4 * STD**2))
    assert_gaussian_moments(x, MU, biased)
    assert abs(x.var().item() - STD**2) > 10 * STD**2 * math.sqrt(2 / n)
    n = 5000
    x = sde.langevin(
        GAUSS.score, torch.zeros(n, 2, dtype=F64), step_size=0.01, steps=400, generator=generator(1)
    )
    assert_gaussian_moments(x, MU, STD / math.sqrt(1 - 0.01 / (4 * STD**2)))


def test_annealed_langevin_recovers_the_mode_weights():
    """Modes at ±5 with weights 0.2 and 0.8 and no mass between them: Langevin on the data keeps
    the start's 50/50 split; annealing from σ = 10 moves the mass across."""
    mix = sde.GaussianMixture([[-5.0], [5.0]], [1.0, 1.0], [0.2, 0.8])
    n = 2000
    start = 16 * torch.rand(n, 1, generator=generator(0), dtype=F64) - 8
    plain = sde.langevin(mix.score, start, step_size=0.05, steps=400, generator=generator(1))

    def score_fn(x, sigma):
        return mix.perturbed(1.0, sigma[0].item()).score(x)

    sigmas = torch.logspace(1, math.log10(0.5), 10)
    annealed, trajectory = sde.annealed_langevin(
        score_fn, sigmas, start, steps_per_level=100, eps=0.02, generator=generator(1), return_trajectory=True
    )
    assert len(trajectory) == 11
    right = lambda x: (x > 0).double().mean().item()  # noqa: E731
    assert abs(right(annealed) - 0.8) < 0.04
    assert abs(right(plain) - 0.5) < 0.04


# ----------------------------------------------------------------------------- bad input
def score_zero(x, t):
    return torch.zeros_like(x)


BAD = [
    (lambda: sde.VPSDE(beta_min=0.0), ValueError, "beta_min must be a finite number > 0, got 0.0"),
    (lambda: sde.VPSDE(beta_min=float("nan")), ValueError, "beta_min"),
    (
        lambda: sde.VPSDE(beta_min=1.0, beta_max=1.0),
        ValueError,
        r"beta_max must be a finite number > beta_min = 1.0",
    ),
    (lambda: sde.SubVPSDE(beta_max=float("inf")), ValueError, "beta_max"),
    (lambda: sde.VESDE(sigma_min=-1.0), ValueError, "sigma_min must be a finite number > 0"),
    (
        lambda: sde.VESDE(sigma_min=1.0, sigma_max=0.5),
        ValueError,
        "sigma_max must be a finite number > sigma_min",
    ),
    (lambda: sde.VPSDE(beta_min="0.1"), ValueError, "beta_min"),
    (lambda: sde.VPSDE().discrete_betas(1), ValueError, "num_steps must be an int >= 2, got 1"),
    (lambda: sde.VPSDE().marginal(torch.tensor([1, 2])), TypeError, "t must be a floating-point tensor"),
    (
        lambda: sde.VPSDE().sde(torch.ones(3, 2), torch.ones(4)),
        ValueError,
        r"t must be a number or a tensor of shape \(3,\)",
    ),
    (
        lambda: sde.VPSDE().reverse_drift(torch.ones(3, 2), 0.5, torch.ones(3, 3)),
        ValueError,
        "score must be a tensor of x's shape",
    ),
    (lambda: sde.VPSDE().prior_sample((0, 2)), ValueError, "shape must be a tuple"),
    (lambda: sde.VPSDE().prior_log_prob(torch.ones(3)), ValueError, r"z must have shape \(B, ...\)"),
    (lambda: sde.GaussianMixture(torch.ones(3), [1.0]), ValueError, r"means must have shape \(K, D\)"),
    (lambda: sde.GaussianMixture(torch.ones(2, 1), [1.0, 0.0]), ValueError, "stds must be a"),
    (lambda: sde.GaussianMixture(torch.ones(2, 1), [1.0, 1.0], [0.5, 0.6]), ValueError, "weights must be a"),
    (lambda: ring().score(torch.ones(3, 3)), ValueError, r"x must have shape \(B, 2\)"),
    (lambda: ring().score_fn("vp"), TypeError, "process must be an SDE"),
    (lambda: ring().perturbed(0.0, 1.0), ValueError, "alpha must be a finite number > 0"),
    (lambda: ring().perturbed(1.0, -1.0), ValueError, "sigma must be a finite number >= 0"),
    (lambda: ring().sample(0), ValueError, "n must be an int >= 1"),
    (
        lambda: ring().posterior_mean(torch.ones(3, 2), torch.ones(2), 0.5),
        ValueError,
        r"alpha must be a number or a tensor of shape \(3,\)",
    ),
]
X = torch.ones(4, 2, dtype=F64)
VP = PROCESSES["vp"]
BAD += [
    (
        lambda: sde.ode_log_likelihood(score_zero, VP, X, divergence="hutch"),
        ValueError,
        "divergence must be one of exact, hutchinson, got 'hutch'",
    ),
    (
        lambda: sde.ode_log_likelihood(score_zero, VP, X, divergence="hutchinson", num_probes=0),
        ValueError,
        "num_probes must be an int >= 1, got 0",
    ),
    (lambda: sde.ode_log_likelihood(score_zero, VP, X, num_probes=2.0), ValueError, "num_probes"),
    (lambda: sde.ode_log_likelihood(score_zero, VP, X, t_min=0.0), ValueError, "t_min must be a number in"),
    (lambda: sde.ode_log_likelihood(score_zero, VP, X, t_min=1.0), ValueError, "t_min"),
    (
        lambda: sde.ode_log_likelihood(score_zero, PROCESSES["flow"], X, t_min=0.9995),
        ValueError,
        "t_end = 0.999",
    ),
    (
        lambda: sde.ode_log_likelihood(score_zero, VP, X, rtol=0),
        ValueError,
        "rtol must be a finite number > 0, got 0",
    ),
    (lambda: sde.ode_log_likelihood(score_zero, VP, X, atol=-1e-3), ValueError, "atol must be"),
    (
        lambda: sde.ode_log_likelihood(score_zero, VP, torch.ones(4, 2, dtype=torch.long)),
        TypeError,
        "x must be a floating-point tensor",
    ),
    (
        lambda: sde.ode_log_likelihood(score_zero, VP, torch.ones(4)),
        ValueError,
        r"x must have shape \(B, ...\)",
    ),
    (
        lambda: sde.ode_log_likelihood(lambda x, t: x[:, :1], VP, X),
        ValueError,
        r"score_fn must return a tensor of shape \(4, 2\), got \(4, 1\)",
    ),
    (
        lambda: sde.ode_log_likelihood(score_zero, "vp", X),
        TypeError,
        "process must be an SDE of diffusion_lib.sde",
    ),
    (
        lambda: sde.ode_log_likelihood(score_zero, GaussianDiffusion(get_beta_schedule("linear", 100)), X),
        TypeError,
        "process must be an SDE",
    ),
    (
        lambda: sde.divergence(coupled, X, X[:, 0], method="approx"),
        ValueError,
        "method must be one of exact, hutchinson",
    ),
    (
        lambda: sde.divergence(coupled, X, X[:, 0], method="hutchinson"),
        ValueError,
        r"probes must be a tensor of shape \(P, 4, 2\), got NoneType",
    ),
    (
        lambda: sde.divergence(coupled, X, X[:, 0], probes=X[None]),
        ValueError,
        "probes must be None with method='exact'",
    ),
    (lambda: sde.divergence(lambda x, t: x.detach(), X, None), ValueError, "output does not depend on x"),
    (
        lambda: sde.score_from_eps(score_zero, "ddpm"),
        TypeError,
        "process must be an SDE of diffusion_lib.sde or a GaussianDiffusion",
    ),
    (
        lambda: sde.score_from_eps(score_zero, GaussianDiffusion(get_beta_schedule("cosine", 100))),
        ValueError,
        "linear",
    ),
    (
        lambda: sde.score_from_eps(lambda x, t: x[:, :1], VP)(X, 0.5),
        ValueError,
        r"eps_model must return a tensor of shape \(4, 2\)",
    ),
    (
        lambda: sde.score_from_velocity(score_zero, VP),
        TypeError,
        "path must be a FlowMatchingPath, got VPSDE",
    ),
    (
        lambda: sde.langevin(score_zero, X, step_size=0.0, steps=1),
        ValueError,
        "step_size must be a finite number > 0",
    ),
    (
        lambda: sde.langevin(lambda x: x, X, step_size=0.1, steps=0),
        ValueError,
        "steps must be an int >= 1, got 0",
    ),
    (
        lambda: sde.langevin(lambda x: x, X.long(), step_size=0.1, steps=1),
        TypeError,
        "x must be a floating-point tensor",
    ),
    (
        lambda: sde.annealed_langevin(score_zero, [0.1, 1.0], X),
        ValueError,
        "sigmas must be finite values > 0 in descending order",
    ),
    (
        lambda: sde.annealed_langevin(score_zero, [1.0, 0.1], X, steps_per_level=0),
        ValueError,
        "steps_per_level must be an int >= 1",
    ),
    (
        lambda: sde.annealed_langevin(score_zero, [1.0, 0.1], X, eps=0),
        ValueError,
        "eps must be a finite number > 0",
    ),
    (
        lambda: sde.euler_maruyama(score_zero, VP, (4, 2), steps=0),
        ValueError,
        "steps must be an int >= 1, got 0",
    ),
    (
        lambda: sde.euler_maruyama(score_zero, VP, (4, 2), steps=2, t_min=1.5),
        ValueError,
        "t_min must be a number in",
    ),
    (
        lambda: sde.euler_maruyama(score_zero, VP, (4, 2), steps=2, x_T=torch.ones(3, 2)),
        ValueError,
        r"x_T must be a floating-point tensor of shape \(4, 2\)",
    ),
    (lambda: sde.euler_maruyama(score_zero, VP, (4,), steps=2), ValueError, "shape must be a tuple"),
    (lambda: sde.euler_maruyama(score_zero, "vp", (4, 2), steps=2), TypeError, "process must be an SDE"),
    (
        lambda: sde.euler_maruyama(lambda x, t: x[:, :1], VP, (4, 2), steps=2),
        ValueError,
        "score_fn must return a tensor of shape",
    ),
    (
        lambda: sde.predictor_corrector(score_zero, VP, (4, 2), steps=2, snr=0),
        ValueError,
        "snr must be a finite number > 0",
    ),
    (
        lambda: sde.predictor_corrector(score_zero, VP, (4, 2), steps=2, corrector_steps=-1),
        ValueError,
        "corrector_steps must be an int >= 0",
    ),
    (
        lambda: sde.predictor_corrector(score_zero, VP, (4, 2), steps=2, norms="mean"),
        ValueError,
        "norms must be one of batch, example, got 'mean'",
    ),
    (
        lambda: sde.probability_flow_sample(score_zero, VP, torch.ones(4)),
        ValueError,
        r"x_T must have shape \(B, ...\)",
    ),
    (
        lambda: sde.probability_flow_sample(score_zero, VP, X, rtol=float("nan")),
        ValueError,
        "rtol must be a finite number > 0",
    ),
]


@pytest.mark.parametrize("call, error, match", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
