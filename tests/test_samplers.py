"""Fast samplers: timestep lists, DDIM, its inversion, DPM-Solver++ and the prediction types.

Identities from chapter 7 (DDIM η = 1 with every step is DDPM; DDIM η = 0 is first-order
DPM-Solver++), single steps against hand computations, golden values published with diffusers'
scheduler tests, determinism and every bad input. The live comparisons with diffusers are in
``test_samplers_diffusers.py``.
"""

import math

import pytest
import torch

from diffusion_lib import GaussianDiffusion, get_beta_schedule, samplers
from diffusion_lib.samplers import ddim_sigma, timesteps

T = 1000


@pytest.fixture(scope="module")
def linear():
    return GaussianDiffusion(get_beta_schedule("linear", T))


def deterministic_sample(dtype=torch.float32):
    """diffusers' test fixture: arange(768) in a (3, 8, 8, 4) block, scaled and permuted to (4, 3, 8, 8)."""
    return (torch.arange(768).reshape(3, 8, 8, 4) / 768).permute(3, 0, 1, 2).to(dtype)


def dummy_model(x, t):
    """diffusers' test model: x · t/(t + 1)."""
    t = t.reshape(-1, *(1,) * (x.ndim - 1)).to(x.dtype)
    return x * t / (t + 1)


def wiggly_eps(x, t):
    """A smooth ε-predictor whose x̂_0 leaves [-1, 1] at large t, so clipping matters."""
    s = (t.to(x.dtype) / T).reshape(-1, *(1,) * (x.ndim - 1))
    return torch.tanh(2.0 * x) * (0.5 + s) + 0.3 * torch.sin(3.0 * x)


class Recorder:
    """Wraps a model and records the timestep of every call."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, x, t):
        assert bool((t == t[0]).all())
        self.calls.append(int(t[0]))
        return self.model(x, t)


# ----------------------------------------------------------------------------- timesteps
def test_timesteps_golden_values():
    # diffusers' DDIM test: leading spacing, steps_offset = 1, 5 steps.
    assert timesteps(1000, 5, "leading", offset=1).tolist() == [801, 601, 401, 201, 1]
    assert timesteps(1000, 10).tolist() == list(range(900, -1, -100))
    assert timesteps(1000, 3, "trailing").tolist() == [999, 666, 332]
    assert timesteps(1000, 4, "linspace").tolist() == [999, 666, 333, 0]
    assert timesteps(1000, 1, "trailing").tolist() == [999]
    assert timesteps(1000, 1, "leading").tolist() == [0]
    assert timesteps(1000, 1000, "linspace").tolist() == list(range(999, -1, -1))
    assert timesteps(1000, 10).dtype == torch.int64


@pytest.mark.parametrize("spacing", samplers.SPACINGS)
@pytest.mark.parametrize("num_timesteps", [1, 7, 37, 1000])
def test_timesteps_are_distinct_descending_and_in_range(spacing, num_timesteps):
    for steps in range(1, num_timesteps + 1):
        ts = timesteps(num_timesteps, steps, spacing)
        assert ts.shape == (steps,)
        assert bool((ts[:-1] > ts[1:]).all()), (spacing, num_timesteps, steps)
        assert 0 <= int(ts.min()) and int(ts.max()) <= num_timesteps - 1
        if spacing == "trailing":
            assert int(ts[0]) == num_timesteps - 1
        if spacing == "linspace":
            assert int(ts[-1]) == 0 and (steps == 1 or int(ts[0]) == num_timesteps - 1)
        if spacing == "leading":
            assert int(ts[-1]) == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_timesteps": 0, "steps": 1}, "num_timesteps must be an int >= 1, got 0"),
        ({"num_timesteps": 10.0, "steps": 1}, "num_timesteps must be an int >= 1, got 10.0"),
        ({"num_timesteps": 10, "steps": 0}, r"steps must be an int in \[1, 10\], got 0"),
        ({"num_timesteps": 10, "steps": 11}, r"steps must be an int in \[1, 10\], got 11"),
        ({"num_timesteps": 10, "steps": True}, r"steps must be an int in \[1, 10\], got True"),
        ({"num_timesteps": 10, "steps": 2.5}, r"steps must be an int in \[1, 10\], got 2.5"),
        ({"num_timesteps": 10, "steps": 2, "spacing": "uniform"}, "spacing must be one of leading"),
        ({"num_timesteps": 10, "steps": 2, "offset": -1}, "offset must be an int >= 0, got -1"),
        ({"num_timesteps": 10, "steps": 2, "spacing": "trailing", "offset": 1}, "offset <= 0, got 1"),
        ({"num_timesteps": 1000, "steps": 5, "offset": 200}, "offset <= 199, got 200"),
    ],
)
def test_timesteps_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        timesteps(**kwargs)


# ----------------------------------------------------------------------------- schedule of a step
def test_ddim_sigma_golden_values(linear):
    # diffusers' DDIMScheduler._get_variance (= σ² at η = 1), published in its tests.
    a = linear.alphas_cumprod
    for (t, prev), expected in {
        (420, 400): 0.14771,
        (980, 960): 0.32460,
        (487, 486): 0.00979,
        (999, 998): 0.02,
    }.items():
        assert ddim_sigma(a[t].item(), a[prev].item(), 1.0) ** 2 == pytest.approx(expected, abs=1e-5)
    # One DDPM step: σ² = β̃_t, the posterior variance.
    for t in (1, 10, 500, 999):
        assert ddim_sigma(a[t].item(), a[t - 1].item(), 1.0) ** 2 == pytest.approx(
            linear.posterior_variance[t].item(), rel=1e-12
        )
    assert ddim_sigma(a[5].item(), 1.0, 1.0) == 0.0
    assert ddim_sigma(a[500].item(), a[400].item(), 0.5) == pytest.approx(
        0.5 * ddim_sigma(a[500].item(), a[400].item(), 1.0), rel=1e-15
    )


# ----------------------------------------------------------------------------- the visited timesteps
@pytest.mark.parametrize("spacing", samplers.SPACINGS)
@pytest.mark.parametrize("steps", [1, 3, 7, 50])
def test_samplers_call_the_model_at_each_listed_timestep_and_end_at_x0(linear, spacing, steps):
    c = 0.37
    x0_model = Recorder(lambda x, t: torch.full_like(x, c))
    ts = timesteps(T, steps, spacing).tolist()
    shape = (2, 3)
    for run in (
        lambda: samplers.ddim(
            x0_model, linear, shape, steps=steps, spacing=spacing, prediction_type="x0", progress=False
        ),
        lambda: samplers.dpm_solver_pp(
            x0_model, linear, shape, steps=steps, spacing=spacing, prediction_type="x0", progress=False
        ),
    ):
        x0_model.calls.clear()
        x = run()
        assert x0_model.calls == ts
        # The last step goes to ᾱ = 1: the result is the final x̂_0 itself.
        assert torch.allclose(x, torch.full(shape, c), atol=1e-6)


def test_a_step_goes_to_the_next_entry_not_t_minus_T_over_N(linear):
    # linspace with 4 steps visits 999, 666, 333, 0; with an x0-predictor that returns a constant,
    # DDIM η = 0 keeps ε̂ fixed, so each state is √ᾱ_next c + √(1 − ᾱ_next) ε exactly.
    c, eps = 0.2, torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = linear.alphas_cumprod
    x_T = a[999].sqrt() * c + (1 - a[999]).sqrt() * eps
    _, traj = samplers.ddim(
        lambda x, t: torch.full_like(x, c),
        linear,
        x_T.shape,
        steps=4,
        spacing="linspace",
        x_T=x_T,
        prediction_type="x0",
        progress=False,
        return_trajectory=True,
    )
    assert len(traj) == 5
    for state, t in zip(traj[1:4], (666, 333, 0)):
        assert torch.allclose(state, a[t].sqrt() * c + (1 - a[t]).sqrt() * eps, atol=1e-12)
    # The defect computes t − T//N = 999 − 250 = 749 instead of 666: a visibly different state.
    wrong = a[749].sqrt() * c + (1 - a[749]).sqrt() * eps
    assert (traj[1] - wrong).abs().max() > 1e-2


# ----------------------------------------------------------------------------- identities
def test_ddim_eta1_every_step_equals_ddpm(linear):
    x_T = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ddpm = samplers.ddpm(
        wiggly_eps, linear, x_T.shape, x_T=x_T, generator=torch.Generator().manual_seed(5), progress=False
    )
    ddim = samplers.ddim(
        wiggly_eps,
        linear,
        x_T.shape,
        steps=T,
        eta=1.0,
        x_T=x_T,
        generator=torch.Generator().manual_seed(5),
        progress=False,
    )
    assert torch.allclose(ddim, ddpm, atol=1e-9, rtol=0)
    # The identity needs ε̂ re-derived from the clipped x̂_0; keeping the raw ε̂ (diffusers' default)
    # breaks it wherever clipping was active.
    raw = samplers.ddim(
        wiggly_eps,
        linear,
        x_T.shape,
        steps=T,
        eta=1.0,
        x_T=x_T,
        generator=torch.Generator().manual_seed(5),
        rederive_eps=False,
        progress=False,
    )
    assert (raw - ddpm).abs().max() > 1e-2


@pytest.mark.parametrize("spacing", samplers.SPACINGS)
@pytest.mark.parametrize("clip", [False, True])
def test_ddim_eta0_equals_first_order_dpm_solver_pp(linear, spacing, clip):
    x_T = torch.randn(3, 2, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    kwargs = dict(steps=13, spacing=spacing, x_T=x_T, clip_denoised=clip, progress=False)
    a = samplers.ddim(wiggly_eps, linear, x_T.shape, eta=0.0, **kwargs)
    b = samplers.dpm_solver_pp(wiggly_eps, linear, x_T.shape, order=1, **kwargs)
    assert torch.allclose(a, b, atol=1e-12, rtol=0)


def test_one_ddim_step_by_hand(linear):
    g = torch.Generator().manual_seed(3)
    x_T = torch.randn(2, 6, generator=g, dtype=torch.float64)
    z = torch.randn(2, 6, generator=g, dtype=torch.float64)  # the next draw: the first step's noise
    eta = 0.6
    g = torch.Generator().manual_seed(3)
    torch.randn(2, 6, generator=g, dtype=torch.float64)  # skip x_T: the sampler's first draw is z
    _, traj = samplers.ddim(
        dummy_model,
        linear,
        x_T.shape,
        steps=3,
        eta=eta,
        spacing="trailing",
        x_T=x_T,
        generator=g,
        clip_denoised=False,
        progress=False,
        return_trajectory=True,
    )
    a, a_next = linear.alphas_cumprod[999].item(), linear.alphas_cumprod[666].item()
    eps = x_T * 999 / 1000
    x0 = (x_T - math.sqrt(1 - a) * eps) / math.sqrt(a)
    sigma = eta * math.sqrt((1 - a_next) / (1 - a)) * math.sqrt(1 - a / a_next)
    by_hand = math.sqrt(a_next) * x0 + math.sqrt(1 - a_next - sigma**2) * eps + sigma * z
    assert torch.allclose(traj[1], by_hand, atol=1e-12, rtol=0)


def test_one_second_order_dpm_solver_pp_step_by_hand(linear):
    x_T = torch.randn(2, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    _, traj = samplers.dpm_solver_pp(
        dummy_model,
        linear,
        x_T.shape,
        steps=4,
        spacing="linspace",
        x_T=x_T,
        progress=False,
        return_trajectory=True,
    )
    ts = [999, 666, 333]
    ab = [linear.alphas_cumprod[t].item() for t in ts]
    alpha = [math.sqrt(v) for v in ab]
    sigma = [math.sqrt(1 - v) for v in ab]
    lam = [math.log(al / si) for al, si in zip(alpha, sigma)]

    def x0_hat(x, t, k):
        return (x - sigma[k] * x * t / (t + 1)) / alpha[k]

    # Step 1 (no history): first order, x_1 = (σ_1/σ_0) x_0 − α_1 (e^{−h} − 1) x̂_0.
    d0 = x0_hat(x_T, 999, 0)
    h0 = lam[1] - lam[0]
    x1 = sigma[1] / sigma[0] * x_T - alpha[1] * (math.exp(-h0) - 1) * d0
    assert torch.allclose(traj[1], x1, atol=1e-12, rtol=0)
    # Step 2: second order, D = (1 + 1/(2r)) x̂_0(t_1) − 1/(2r) x̂_0(t_0), r = h_0/h_1.
    d1 = x0_hat(x1, 666, 1)
    h1 = lam[2] - lam[1]
    r = h0 / h1
    D = (1 + 1 / (2 * r)) * d1 - 1 / (2 * r) * d0
    x2 = sigma[2] / sigma[1] * x1 - alpha[2] * (math.exp(-h1) - 1) * D
    assert torch.allclose(traj[2], x2, atol=1e-12, rtol=0)


def test_dpm_solver_pp_is_second_order_accurate(linear):
    """On data whose probability-flow ODE has a closed form, order 2 converges faster than order 1.

    (For a point mass both orders are exact, since x̂_0 never changes.) For data N(0, s² I) the
    optimal x̂_0 = √ᾱ s² x/(ᾱ s² + 1 − ᾱ), and the flow is linear: x_t = x_T · std_t/std_T with
    std_t² = ᾱ_t s² + 1 − ᾱ_t. Compared at the last listed timestep: the final jump to σ = 0
    returns x̂_0, the posterior mean, which is not the ODE's end point.
    """
    s2 = 0.25

    def x0_model(x, t):
        a = linear.alphas_cumprod[t].to(x.dtype).reshape(-1, *(1,) * (x.ndim - 1))
        return a.sqrt() * s2 * x / (a * s2 + 1 - a)

    def std(t):
        a = linear.alphas_cumprod[t].item()
        return math.sqrt(a * s2 + 1 - a)

    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    errors = {}
    for order in (1, 2):
        for steps in (40, 80, 160):
            _, traj = samplers.dpm_solver_pp(
                x0_model, linear, x_T.shape, steps=steps, order=order, spacing="linspace", x_T=x_T,
                prediction_type="x0", progress=False, return_trajectory=True,
            )  # fmt: skip
            exact = x_T * std(0) / std(999)  # linspace ends at t = 0
            errors[order, steps] = (traj[-2] - exact).abs().max().item()
    # Doubling the steps: the first-order error halves, the second-order error shrinks ~4× (with
    # linspace the steps in λ are very uneven, so at 10–20 steps order 2 is not yet better).
    assert errors[1, 80] / errors[1, 160] == pytest.approx(2.0, rel=0.1)
    assert errors[2, 80] / errors[2, 160] == pytest.approx(4.0, rel=0.15)
    assert errors[2, 160] < errors[1, 160] / 3


# ----------------------------------------------------------------------------- prediction types
def as_prediction_type(diffusion, eps_model, prediction_type):
    """The same denoiser re-expressed as an x_0- or v-predictor."""

    def model(x, t):
        x0, eps = diffusion.split_model_output(x, t, eps_model(x, t), "epsilon")
        if prediction_type == "x0":
            return x0
        return diffusion.v_target(x0, t, eps)

    return model


@pytest.mark.parametrize("prediction_type", ["x0", "v"])
def test_samplers_agree_across_prediction_types(linear, prediction_type):
    x_T = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    other = as_prediction_type(linear, wiggly_eps, prediction_type)
    for sampler, kwargs in (
        (samplers.ddim, {"steps": 20, "eta": 0.5, "generator": torch.Generator().manual_seed(1)}),
        (samplers.dpm_solver_pp, {"steps": 15}),
    ):
        g_kwargs = dict(kwargs)
        a = sampler(wiggly_eps, linear, x_T.shape, x_T=x_T, progress=False, **g_kwargs)
        if "generator" in kwargs:
            g_kwargs["generator"] = torch.Generator().manual_seed(1)
        b = sampler(
            other, linear, x_T.shape, x_T=x_T, progress=False, prediction_type=prediction_type, **g_kwargs
        )
        assert torch.allclose(a, b, atol=1e-9, rtol=0)
    a = samplers.ddpm(
        wiggly_eps, linear, x_T.shape, x_T=x_T, generator=torch.Generator().manual_seed(2), progress=False
    )
    b = samplers.ddpm(
        other, linear, x_T.shape, x_T=x_T, generator=torch.Generator().manual_seed(2), progress=False,
        prediction_type=prediction_type,
    )  # fmt: skip
    assert torch.allclose(a, b, atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        samplers.ddpm(other, linear, x_T.shape, x_T=x_T, progress=False, prediction_type="score")


@pytest.mark.parametrize("prediction_type", ["x0", "v"])
def test_the_bound_is_the_same_whatever_the_model_predicts(linear, prediction_type):
    # The VLB's terms depend only on μ_θ: an x_0- or v-predictor that implies the same x̂_0 as an
    # ε-predictor has the same terms, decoder term included, and the same bits/dim.
    g = torch.Generator().manual_seed(3)
    x0 = (torch.randint(0, 256, (4, 1, 4, 4), generator=g) / 127.5 - 1).double()
    other = as_prediction_type(linear, wiggly_eps, prediction_type)
    t = torch.tensor([0, 1, T // 2, T - 1])
    x_t = linear.q_sample(x0, t, torch.randn(x0.shape, generator=g, dtype=x0.dtype))
    a = linear.vlb_terms(wiggly_eps, x0, x_t, t)
    b = linear.vlb_terms(other, x0, x_t, t, prediction_type=prediction_type)
    assert torch.allclose(a["output"], b["output"], atol=1e-9, rtol=1e-9)
    assert torch.allclose(a["eps"], b["eps"], atol=1e-9)
    wrong = linear.vlb_terms(other, x0, x_t, t)  # read as ε: another bound
    assert (wrong["output"] - a["output"]).abs().max() > 1e-3
    bpd_a = linear.bits_per_dim(wiggly_eps, x0, generator=torch.Generator().manual_seed(4))
    bpd_b = linear.bits_per_dim(
        other, x0, generator=torch.Generator().manual_seed(4), prediction_type=prediction_type
    )
    for key in ("total", "terms", "mse"):
        assert torch.allclose(bpd_a[key], bpd_b[key], atol=1e-9, rtol=1e-9), key
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        linear.bits_per_dim(other, x0, prediction_type="score")


def test_v_is_a_rotation_of_x0_and_eps(linear):
    g = torch.Generator().manual_seed(8)
    x0 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 10, 300, 700, 999])
    x_t = linear.q_sample(x0, t, eps)
    v = linear.v_target(x0, t, eps)
    a = linear.sqrt_alphas_cumprod[t].unsqueeze(1)
    s = linear.sqrt_one_minus_alphas_cumprod[t].unsqueeze(1)
    assert torch.allclose(v, a * eps - s * x0, atol=1e-15)
    # A rotation keeps lengths: ‖x_t‖² + ‖v‖² = ‖x_0‖² + ‖ε‖² for each row.
    assert torch.allclose((x_t**2 + v**2).sum(1), (x0**2 + eps**2).sum(1), atol=1e-12)
    for prediction_type, output in (("epsilon", eps), ("x0", x0), ("v", v)):
        got = linear.split_model_output(x_t, t, output, prediction_type)
        assert torch.allclose(got.x0, x0, atol=1e-10) and torch.allclose(got.eps, eps, atol=1e-10)


@pytest.mark.parametrize("prediction_type", ["epsilon", "x0", "v"])
def test_training_losses_regress_on_the_matching_target(linear, prediction_type):
    g = torch.Generator().manual_seed(9)
    x0 = torch.randn(4, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(4, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 50, 500, 999])
    target = {"epsilon": noise, "x0": x0, "v": linear.v_target(x0, t, noise)}[prediction_type]
    perfect = linear.training_losses(lambda x, tt: target, x0, t, noise, prediction_type=prediction_type)
    assert torch.equal(perfect["loss"], torch.zeros(4, dtype=torch.float64))
    off = linear.training_losses(lambda x, tt: target + 0.5, x0, t, noise, prediction_type=prediction_type)
    assert torch.allclose(off["loss"], torch.full((4,), 0.25, dtype=torch.float64))


# ----------------------------------------------------------------------------- inversion
def test_ddim_inversion_is_exact_when_x0_hat_is_constant(linear):
    c = torch.tensor([[0.3, -0.7, 0.1]], dtype=torch.float64).repeat(4, 1)
    x0 = c + 0.0

    def model(x, t):
        return c

    for spacing in samplers.SPACINGS:
        x_T, traj = samplers.ddim_invert(
            model,
            linear,
            x0,
            steps=10,
            spacing=spacing,
            prediction_type="x0",
            progress=False,
            return_trajectory=True,
        )
        assert len(traj) == 11 and traj[0] is x0
        back = samplers.ddim(
            model,
            linear,
            x_T.shape,
            steps=10,
            spacing=spacing,
            x_T=x_T,
            clip_denoised=False,
            prediction_type="x0",
            progress=False,
        )
        assert torch.allclose(back, x0, atol=1e-12)


def test_ddim_inversion_round_trip_of_a_smooth_model(linear):
    x0 = deterministic_sample(torch.float64) * 2 - 1
    errors = []
    for steps in (10, 100):
        x_T = samplers.ddim_invert(dummy_model, linear, x0, steps=steps, spacing="trailing", progress=False)
        back = samplers.ddim(
            dummy_model,
            linear,
            x0.shape,
            steps=steps,
            spacing="trailing",
            x_T=x_T,
            clip_denoised=False,
            progress=False,
        )
        errors.append((back - x0).abs().max().item())
    # The inversion's approximation ε̂(x_s, t) ≈ ε̂(x_t, t) shrinks with the step size.
    assert errors[1] < errors[0] / 3
    assert errors[1] < 0.05


# ----------------------------------------------------------------------------- determinism, shapes, errors
def test_samplers_are_deterministic_given_the_generator(linear):
    for sampler, kwargs in ((samplers.ddim, {"eta": 0.5}), (samplers.dpm_solver_pp, {})):
        runs = [
            sampler(
                wiggly_eps,
                linear,
                (2, 3),
                steps=8,
                generator=torch.Generator().manual_seed(11),
                progress=False,
                **kwargs,
            )
            for _ in range(2)
        ]
        assert torch.equal(runs[0], runs[1])
        other = sampler(
            wiggly_eps,
            linear,
            (2, 3),
            steps=8,
            generator=torch.Generator().manual_seed(12),
            progress=False,
            **kwargs,
        )
        assert not torch.equal(runs[0], other)


def test_trajectories_have_one_state_per_step(linear):
    for sampler in (samplers.ddim, samplers.dpm_solver_pp):
        x, traj = sampler(wiggly_eps, linear, (2, 3), steps=6, progress=False, return_trajectory=True)
        assert len(traj) == 7 and traj[-1] is x and traj[0].shape == (2, 3)


def test_dtype_and_device_of_drawn_noise(linear):
    x = samplers.ddim(wiggly_eps, linear, (2, 3), steps=3, dtype=torch.float64, progress=False)
    assert x.dtype == torch.float64
    x = samplers.dpm_solver_pp(wiggly_eps, linear, (2, 3), steps=3, progress=False)
    assert x.dtype == torch.float32


@pytest.mark.parametrize(
    "sampler, kwargs, error, message",
    [
        (samplers.ddim, {"steps": 5, "eta": -0.1}, ValueError, r"eta must be a number in \[0, 1\], got -0.1"),
        (samplers.ddim, {"steps": 5, "eta": 1.5}, ValueError, r"eta must be a number in \[0, 1\], got 1.5"),
        (samplers.ddim, {"steps": 5, "eta": True}, ValueError, "eta must be a number"),
        (samplers.ddim, {"steps": 5, "eta": "0"}, ValueError, "eta must be a number"),
        (samplers.ddim, {"steps": 0}, ValueError, r"steps must be an int in \[1, 1000\], got 0"),
        (samplers.ddim, {"steps": 5, "spacing": "cosine"}, ValueError, "spacing must be one of"),
        (
            samplers.ddim,
            {"steps": 5, "prediction_type": "sample"},
            ValueError,
            "prediction_type must be one of epsilon, x0, v",
        ),
        (samplers.ddim, {"steps": 5, "x_T": torch.zeros(3, 3)}, ValueError, r"x_T must have shape \(2, 3\)"),
        (samplers.dpm_solver_pp, {"steps": 5, "order": 3}, ValueError, "order must be 1 or 2, got 3"),
        (samplers.dpm_solver_pp, {"steps": 1001}, ValueError, r"steps must be an int in \[1, 1000\]"),
        (
            samplers.dpm_solver_pp,
            {"steps": 5, "prediction_type": "v_prediction"},
            ValueError,
            "prediction_type",
        ),
    ],
)
def test_sampler_bad_input(linear, sampler, kwargs, error, message):
    with pytest.raises(error, match=message):
        sampler(wiggly_eps, linear, (2, 3), progress=False, **kwargs)


def test_inversion_bad_input(linear):
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor"):
        samplers.ddim_invert(wiggly_eps, linear, [0.0, 1.0], steps=3, progress=False)
    with pytest.raises(ValueError, match="steps must be"):
        samplers.ddim_invert(wiggly_eps, linear, torch.zeros(2, 3), steps=0, progress=False)
    with pytest.raises(ValueError, match="prediction_type"):
        samplers.ddim_invert(
            wiggly_eps, linear, torch.zeros(2, 3), steps=3, prediction_type="eps", progress=False
        )


def test_model_output_of_the_wrong_shape_is_named(linear):
    with pytest.raises(ValueError, match=r"model output must have the shape of x_t \(2, 3\), got \(2,\)"):
        samplers.ddim(lambda x, t: x[:, 0], linear, (2, 3), steps=3, progress=False)


# ----------------------------------------------------------------------------- EDM (chapter 8)
# Gaussian data N(MU, S²) per coordinate: every denoiser and ODE of chapter 8 has a closed form.
MU, S = 0.7, 0.5


def test_edm_sigmas_endpoints_order_and_rho():
    sigmas = samplers.edm_sigmas(18, 0.002, 80.0)
    assert sigmas.dtype == torch.float64 and sigmas.shape == (19,)
    assert sigmas[0].item() == 80.0 and sigmas[-2].item() == 0.002 and sigmas[-1].item() == 0.0
    assert bool((sigmas[:-1] > sigmas[1:]).all())
    # ρ = 1 is a linear grid; ρ = 7 (Karras et al.) puts more levels near σ_min.
    linear = samplers.edm_sigmas(5, 1.0, 9.0, rho=1.0)
    assert torch.allclose(linear, torch.tensor([9.0, 7.0, 5.0, 3.0, 1.0, 0.0], dtype=torch.float64))
    assert (sigmas[:-1] < 1.0).sum() > (torch.linspace(80, 0.002, 18) < 1.0).sum() + 5
    # Karras et al., eq. (5), at i = 1 of n = 18: by hand.
    by_hand = (80 ** (1 / 7) + (0.002 ** (1 / 7) - 80 ** (1 / 7)) / 17) ** 7
    assert sigmas[1].item() == pytest.approx(by_hand, rel=1e-12)
    assert samplers.edm_sigmas(1, 0.1, 2.0).tolist() == [2.0, 0.0]


def test_vp_sigma_range_reads_the_buffers(linear):
    lo, hi = samplers.vp_sigma_range(linear)
    a = linear.alphas_cumprod
    assert lo == pytest.approx(math.sqrt((1 - a[0].item()) / a[0].item()), rel=1e-12)
    assert hi == pytest.approx(math.sqrt((1 - a[-1].item()) / a[-1].item()), rel=1e-12)
    assert 0.009 < lo < 0.011 and 150 < hi < 160  # linear schedule, T = 1000: β_1 = 1e-4


def gaussian_eps_oracle(diffusion, prediction_type="epsilon"):
    """The exact predictor for data N(MU, S²) at a fractional step index: E[ε | x_t], or the x_0
    or v it implies.

    ᾱ at a fractional index t: linear in λ = log(ᾱ/(1 − ᾱ)) between the neighbouring steps (by
    hand here); at an integer index, the buffer. E[ε | x_t] = √(1 − ᾱ)(x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ).
    """
    grid = diffusion.alphas_cumprod
    lam = torch.log(grid / (1 - grid))

    def model(x_t, t):
        t = t.to(torch.float64)
        lo = t.floor().long().clamp(0, len(grid) - 2)
        frac = t - lo
        a = torch.sigmoid(lam[lo] + frac * (lam[lo + 1] - lam[lo])).reshape(-1, *(1,) * (x_t.ndim - 1))
        eps = (1 - a).sqrt() * (x_t - a.sqrt() * MU) / (a * S**2 + 1 - a)
        x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
        return {"epsilon": eps, "x0": x0, "v": a.sqrt() * eps - (1 - a).sqrt() * x0}[prediction_type]

    return model


def posterior_mean(x, sigma):
    """E[x_0 | x] for x = x_0 + σ ε, x_0 ~ N(MU, S²): the exact EDM denoiser."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *(1,) * (x.ndim - 1))
    return MU + S**2 / (S**2 + sigma**2) * (x - MU)


@pytest.mark.parametrize("prediction_type", ["epsilon", "x0", "v"])
def test_vp_denoiser_of_the_exact_eps_predictor_is_the_posterior_mean(linear, prediction_type):
    oracle = gaussian_eps_oracle(linear, prediction_type)
    denoiser = samplers.vp_denoiser(oracle, linear, prediction_type=prediction_type)
    a = linear.alphas_cumprod
    x = 3.0 * torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for i in (0, 1, 250, 999):  # σ on the grid: the network is called at step i
        sigma = torch.full((6,), math.sqrt((1 - a[i].item()) / a[i].item()), dtype=torch.float64)
        assert torch.allclose(denoiser(x, sigma), posterior_mean(x, sigma), atol=1e-6, rtol=0), i
    # between grid points too: the oracle knows ᾱ at a fractional index
    sigma = torch.tensor([0.05, 0.3, 1.0, 2.0, 10.0, 100.0], dtype=torch.float64)
    assert torch.allclose(denoiser(x, sigma), posterior_mean(x, sigma), atol=1e-6, rtol=0)


def test_vp_denoiser_feeds_the_fractional_index_and_clips(linear):
    seen = []

    def model(x_t, t):
        seen.append((x_t.clone(), t.clone()))
        return torch.zeros_like(x_t)

    x = torch.full((2, 3), 4.0, dtype=torch.float64)
    a = linear.alphas_cumprod[[10, 500]]
    sigma = ((1 - a) / a).sqrt()
    out = samplers.vp_denoiser(model, linear, clip_denoised=True)(x, sigma)
    x_t, t = seen[0]
    assert torch.allclose(t, torch.tensor([10.0, 500.0], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(x_t, 4.0 * a.sqrt()[:, None].expand(2, 3))
    assert torch.equal(out, torch.ones(2, 3, dtype=torch.float64)), "ε̂ = 0: D = x, clipped to 1"


def test_edm_heun_is_a_second_order_solver_of_the_ode():
    """dx/dσ = (x − D)/σ with the exact D keeps (x − μ)/√(s² + σ²) constant: x(σ) is known."""
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sigma_max, sigma_min = 80.0, 0.002
    calls = []

    def denoiser(x, sigma):
        calls.append(sigma[0].item())
        return posterior_mean(x, sigma)

    def exact(sigma):
        return MU + (sigma_max * x_T - MU) * math.sqrt(S**2 + sigma**2) / math.sqrt(S**2 + sigma_max**2)

    errors = {}
    for n in (20, 40, 80):
        calls.clear()
        sigmas = samplers.edm_sigmas(n, sigma_min, sigma_max)
        x0, trajectory = samplers.edm_heun(denoiser, sigmas, x_T.shape, x_T=x_T, return_trajectory=True)
        assert len(calls) == 2 * n - 1 and len(trajectory) == n + 1
        assert trajectory[0].equal(sigma_max * x_T)
        errors[n] = (trajectory[-2] - exact(sigma_min)).abs().max().item()  # at σ_min, before the Euler step
        # the last step, Euler to 0, returns D(x; σ_min), within O(σ_min²) of x(0)
        assert (x0 - exact(0.0)).abs().max().item() < errors[n] + 1e-4
    # Second order: doubling n divides the error by about 4 (measured 4.5 and 4.2; 5.0 from 10 to
    # 20 steps, still outside the asymptotic regime), where Euler's would halve.
    assert errors[20] / errors[40] == pytest.approx(4.0, rel=0.2), errors
    assert errors[40] / errors[80] == pytest.approx(4.0, rel=0.2), errors
    assert errors[80] < 5e-3


def test_edm_heun_on_a_ddpm_network_reaches_the_data_distribution(linear):
    """The whole chapter 8 route: an ε-network of a discrete DDPM, read as D, sampled by EDM."""
    lo, hi = samplers.vp_sigma_range(linear)
    denoiser = samplers.vp_denoiser(gaussian_eps_oracle(linear), linear)
    x_T = torch.randn(4000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x0 = samplers.edm_heun(denoiser, samplers.edm_sigmas(40, lo, hi), x_T.shape, x_T=x_T)
    exact = MU + (hi * x_T - MU) * S / math.sqrt(S**2 + hi**2)
    assert (x0 - exact).abs().max().item() < 0.03  # measured 0.023: Heun's error with 40 levels
    assert x0.mean().item() == pytest.approx(MU, abs=0.03) and x0.std().item() == pytest.approx(S, rel=0.03)


def test_edm_heun_draws_its_noise_from_the_generator():
    sigmas = samplers.edm_sigmas(3, 0.1, 5.0)
    a = samplers.edm_heun(posterior_mean, sigmas, (4, 2), generator=torch.Generator().manual_seed(3))
    b = samplers.edm_heun(posterior_mean, sigmas, (4, 2), generator=torch.Generator().manual_seed(3))
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(3))
    c = samplers.edm_heun(posterior_mean, sigmas, (4, 2), x_T=x_T)
    assert a.dtype == torch.float32 and torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0}, r"n must be an int >= 1, got 0"),
        ({"n": 2.0}, r"n must be an int >= 1, got 2.0"),
        ({"sigma_min": 0.0}, r"sigma_min must be a finite number > 0, got 0.0"),
        ({"sigma_min": -1.0}, r"sigma_min must be a finite number > 0, got -1.0"),
        ({"sigma_max": 0.002}, r"sigma_max must be > sigma_min = 0.002, got 0.002"),
        ({"sigma_max": math.inf}, r"sigma_max must be a finite number > 0, got inf"),
        ({"rho": 0.0}, r"rho must be a finite number > 0, got 0.0"),
    ],
)
def test_edm_sigmas_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        samplers.edm_sigmas(**{"n": 10, "sigma_min": 0.002, "sigma_max": 80.0, **kwargs})


def test_edm_bad_input(linear):
    sigmas = samplers.edm_sigmas(3, 0.1, 5.0)
    with pytest.raises(ValueError, match=r"x_T must have shape \(2, 3\), got \(3, 2\)"):
        samplers.edm_heun(posterior_mean, sigmas, (2, 3), x_T=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="sigmas must be finite, >= 0 and strictly decreasing"):
        samplers.edm_heun(posterior_mean, sigmas.flip(0), (2, 3))
    with pytest.raises(ValueError, match=r"sigmas must be a 1-D tensor of at least 2 levels, got \(1,\)"):
        samplers.edm_heun(posterior_mean, sigmas[:1], (2, 3))
    with pytest.raises(ValueError, match="prediction_type must be one of epsilon, x0, v"):
        samplers.vp_denoiser(wiggly_eps, linear, prediction_type="eps")
    with pytest.raises(ValueError, match=r"sigma must be a tensor of shape \(2,\), got float"):
        samplers.vp_denoiser(wiggly_eps, linear)(torch.zeros(2, 3), 0.5)


# ----------------------------------------------------------------------------- flow matching (chapter 8)
def gaussian_velocity(x, t):
    """The exact velocity E[ε − x_0 | x_t] for data N(MU, S²) on x_t = (1 − t) x_0 + t ε.

    x_t ~ N((1 − t) μ, V_t), V_t = (1 − t)² s² + t²; Cov(ε − x_0, x_t) = t − (1 − t) s², so
    v(x, t) = −μ + (t − (1 − t) s²)/V_t · (x − (1 − t) μ), and the ODE keeps (x − (1 − t)μ)/√V_t fixed:
    from t = 1 (V = 1) it maps x_1 to x_0 = μ + s x_1.
    """
    t = t.to(x.dtype).reshape(-1, *(1,) * (x.ndim - 1))
    variance = (1 - t) ** 2 * S**2 + t**2
    return -MU + (t - (1 - t) * S**2) / variance * (x - (1 - t) * MU)


@pytest.mark.parametrize("sampler, order", [(samplers.flow_euler, 1), (samplers.flow_heun, 2)])
def test_flow_samplers_converge_at_their_order(sampler, order):
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    calls = []

    def model(x, t):
        calls.append(t[0].item())
        return gaussian_velocity(x, t)

    errors = {}
    for steps in (20, 40, 80):
        calls.clear()
        x0, trajectory = sampler(model, x_T.shape, steps=steps, x_T=x_T, return_trajectory=True)
        assert len(calls) == order * steps and len(trajectory) == steps + 1 and trajectory[0].equal(x_T)
        assert calls[0] == 1.0 and calls[-1] == (1.0 / steps if order == 1 else 0.0)
        errors[steps] = (x0 - (MU + S * x_T)).abs().max().item()
    # Doubling the steps halves Euler's error and quarters Heun's (measured: 2.0, 2.0; 3.7, 3.9).
    for coarse, fine in ((20, 40), (40, 80)):
        assert errors[coarse] / errors[fine] == pytest.approx(2.0**order, rel=0.12), errors


def test_flow_heun_samples_have_the_data_distribution():
    x0 = samplers.flow_heun(
        gaussian_velocity,
        (20000, 2),
        steps=10,
        generator=torch.Generator().manual_seed(5),
        dtype=torch.float64,
    )
    assert x0.mean().item() == pytest.approx(MU, abs=0.01) and x0.var().item() == pytest.approx(
        S**2, rel=0.03
    )


def test_flow_samplers_are_deterministic_given_the_generator():
    for sampler in (samplers.flow_euler, samplers.flow_heun):
        a = sampler(gaussian_velocity, (3, 2), steps=3, generator=torch.Generator().manual_seed(6))
        b = sampler(gaussian_velocity, (3, 2), steps=3, generator=torch.Generator().manual_seed(6))
        assert a.dtype == torch.float32 and torch.equal(a, b)


@pytest.mark.parametrize("sampler", [samplers.flow_euler, samplers.flow_heun])
def test_flow_sampler_bad_input(sampler):
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        sampler(gaussian_velocity, (2, 3), steps=0)
    with pytest.raises(ValueError, match=r"x_T must have shape \(2, 3\), got \(2, 2\)"):
        sampler(gaussian_velocity, (2, 3), steps=2, x_T=torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"model output must have the shape of x \(2, 3\), got \(2,\)"):
        sampler(lambda x, t: x[:, 0], (2, 3), steps=2)
