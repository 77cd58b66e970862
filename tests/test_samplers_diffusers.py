"""Agreement with diffusers' schedulers where the algorithms coincide, and the places they differ.

diffusers is a test-only dependency (requirements-dev.txt); without it this module is skipped.
Fixtures are diffusers' own: the sample ``arange(768)`` in a (3, 8, 8, 4) block permuted to
(4, 3, 8, 8), and the model x · t/(t + 1). Agreement is to float32 precision: diffusers keeps
its schedule in float32, the library in float64.
"""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from diffusion_lib import GaussianDiffusion, get_beta_schedule, samplers  # noqa: E402

T = 1000
ATOL = 2e-5  # float32 schedule arithmetic over a full loop; samples are O(1)


def deterministic_sample():
    return (torch.arange(768).reshape(3, 8, 8, 4) / 768).permute(3, 0, 1, 2)


def dummy_model(x, t):
    t = t.reshape(-1, *(1,) * (x.ndim - 1)).to(x.dtype)
    return x * t / (t + 1)


def scheduler_config(**overrides):
    config = dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    config.update(overrides)
    return config


def run_loop(scheduler, model, x, **step_kwargs):
    """The usual diffusers loop: one model call and one ``step`` per listed timestep."""
    for t in scheduler.timesteps:
        output = model(x, t.reshape(1).expand(x.shape[0]))
        x = scheduler.step(output, t, x, **step_kwargs).prev_sample
    return x


@pytest.fixture(scope="module")
def linear():
    return GaussianDiffusion(get_beta_schedule("linear", T))


# ----------------------------------------------------------------------------- schedules and q
@pytest.mark.parametrize("ours, theirs", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_betas_and_alphas_cumprod(ours, theirs):
    diffusion = GaussianDiffusion(get_beta_schedule(ours, T))
    scheduler = diffusers.DDPMScheduler(**scheduler_config(beta_schedule=theirs))
    assert torch.allclose(diffusion.betas.float(), scheduler.betas, rtol=1e-6, atol=1e-9)
    assert torch.allclose(diffusion.alphas_cumprod.float(), scheduler.alphas_cumprod, rtol=1e-5, atol=1e-9)


def with_float64_schedule(scheduler, diffusion):
    """Give a diffusers scheduler the library's float64 schedule, so both do the same arithmetic."""
    scheduler.betas = diffusion.betas.clone()
    scheduler.alphas = diffusion.alphas.clone()
    scheduler.alphas_cumprod = diffusion.alphas_cumprod.clone()
    return scheduler


@pytest.mark.parametrize("float64", [False, True])
def test_add_noise_is_q_sample(linear, float64):
    scheduler = diffusers.DDPMScheduler(**scheduler_config())
    dtype = torch.float64 if float64 else torch.float32
    if float64:
        with_float64_schedule(scheduler, linear)
    x0 = (deterministic_sample() * 2 - 1).to(dtype)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    t = torch.tensor([0, 250, 600, 999])
    atol = 1e-12 if float64 else 1e-5  # float32: √ᾱ_t and √(1 − ᾱ_t) rounded in float32
    assert torch.allclose(linear.q_sample(x0, t, noise), scheduler.add_noise(x0, noise, t), atol=atol, rtol=0)


@pytest.mark.parametrize("float64", [False, True])
@pytest.mark.parametrize("t", [1, 10, 500, 999])
def test_ddpm_posterior_mean_and_variance(linear, t, float64):
    """DDPMScheduler.step = posterior mean with x̂_0 plugged in, plus √β̃_t noise.

    With diffusers' own float32 schedule the agreement is limited by its float32 rounding of
    β_t = 1 − ᾱ_t/ᾱ_{t−1}, a relative error of about 2⁻²⁴/β_t (5e-4 at t = 1); with the float64
    schedule the formulas agree to 1e-12.
    """
    scheduler = diffusers.DDPMScheduler(**scheduler_config(clip_sample=False, variance_type="fixed_small"))
    dtype = torch.float64 if float64 else torch.float32
    if float64:
        with_float64_schedule(scheduler, linear)
    x_t = (deterministic_sample() * 2 - 1).to(dtype)
    eps = dummy_model(x_t, torch.full((4,), t))
    out = scheduler.step(eps, t, x_t, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(3), dtype=dtype)
    ours = linear.p_mean_variance(lambda x, tt: eps, x_t, t, clip_denoised=False)
    variance = scheduler._get_variance(t)
    rtol, atol = (1e-12, 1e-12) if float64 else (2.0**-24 / linear.betas[t].item() * 4, 1e-4)
    assert variance.item() == pytest.approx(linear.posterior_variance[t].item(), rel=rtol)
    assert torch.allclose(out.pred_original_sample, ours["pred_x0"], atol=max(atol, 2e-5), rtol=0)
    assert torch.allclose(out.prev_sample - variance**0.5 * noise, ours["mean"], atol=atol, rtol=0)


# ----------------------------------------------------------------------------- DDIM
@pytest.mark.parametrize(
    "betas, prediction_type, total, mean",
    [
        (None, "epsilon", 172.0067, 0.223967),  # test_full_loop_no_noise
        (None, "v", 52.5302, 0.0684),  # test_full_loop_with_v_prediction
        ((0.01, 0.02), "epsilon", 149.8295, 0.1951),  # test_full_loop_with_set_alpha_to_one
    ],
)
def test_published_ddim_full_loop_values(linear, betas, prediction_type, total, mean):
    """Values published with diffusers' DDIMScheduler tests (10 steps, clip_sample=True, the raw ε
    kept after clipping), for its linear schedule or one with β from 0.01 to 0.02."""
    diffusion = linear if betas is None else GaussianDiffusion(torch.linspace(*betas, T, dtype=torch.float32))
    x = samplers.ddim(
        dummy_model, diffusion, (4, 3, 8, 8), steps=10, x_T=deterministic_sample(), rederive_eps=False,
        prediction_type=prediction_type, progress=False,
    )  # fmt: skip
    assert abs(x.abs().sum().item() - total) < 1e-2
    assert abs(x.abs().mean().item() - mean) < 1e-3


@pytest.mark.parametrize(
    "spacing, steps, offset",
    [
        ("leading", 10, 0),
        ("leading", 7, 0),
        ("leading", 50, 1),
        ("trailing", 10, 0),
        ("trailing", 50, 0),
        ("linspace", 1000, 0),
    ],
)
@pytest.mark.parametrize("prediction_type, theirs", [("epsilon", "epsilon"), ("v", "v_prediction")])
def test_ddim_eta0_full_loop_matches_ddim_scheduler(linear, spacing, steps, offset, prediction_type, theirs):
    """Where t − T//N is the next listed timestep, diffusers' DDIMScheduler walks the same path."""
    scheduler = diffusers.DDIMScheduler(
        **scheduler_config(
            clip_sample=False,
            timestep_spacing=spacing,
            steps_offset=offset,
            set_alpha_to_one=True,
            prediction_type=theirs,
        )
    )
    scheduler.set_timesteps(steps)
    ts = samplers.timesteps(T, steps, spacing, offset)
    assert torch.equal(scheduler.timesteps, ts)
    x = deterministic_sample()
    theirs_x0 = run_loop(scheduler, dummy_model, x, eta=0.0)
    ours = samplers.ddim(
        dummy_model, linear, x.shape, steps=steps, spacing=spacing, offset=offset, x_T=x, clip_denoised=False,
        prediction_type=prediction_type, progress=False,
    )  # fmt: skip
    assert torch.allclose(ours, theirs_x0, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "spacing, steps", [("linspace", 10), ("linspace", 50), ("trailing", 7), ("trailing", 30)]
)
def test_ddim_scheduler_steps_to_t_minus_T_over_N_and_the_library_does_not(linear, spacing, steps):
    """DDIMScheduler.step goes from t to t − T//N, which is not the next listed timestep for
    linspace (and trailing with N not dividing T). The library steps to the next entry, as
    DPMSolverMultistepScheduler of order 1 (the same update, written in λ) does."""
    x = deterministic_sample()
    ddim_scheduler = diffusers.DDIMScheduler(**scheduler_config(clip_sample=False, timestep_spacing=spacing))
    ddim_scheduler.set_timesteps(steps)
    ts = samplers.timesteps(T, steps, spacing)
    assert torch.equal(ddim_scheduler.timesteps, ts)
    gaps = (ts[:-1] - ts[1:]).tolist()
    assert any(gap != T // steps for gap in gaps)  # so t − T//N lands between listed timesteps

    ours = samplers.ddim(
        dummy_model, linear, x.shape, steps=steps, spacing=spacing, x_T=x, clip_denoised=False, progress=False
    )
    defect = run_loop(ddim_scheduler, dummy_model, x, eta=0.0)
    assert (ours - defect).abs().max() > 1e-3

    first_order = diffusers.DPMSolverMultistepScheduler(
        **scheduler_config(solver_order=1, algorithm_type="dpmsolver++", final_sigmas_type="zero")
    )
    first_order.set_timesteps(timesteps=ts.tolist())
    assert torch.allclose(ours, run_loop(first_order, dummy_model, x), atol=ATOL, rtol=0)


def test_clipping_rederived_eps_differs_from_ddim_scheduler_default(linear):
    """The library's default re-derives ε̂ from the clipped x̂_0 (use_clipped_model_output=True in
    diffusers); diffusers' default keeps the raw ε̂. Both are reproduced (in float64: the model
    below amplifies float32 rounding); they differ."""
    x = deterministic_sample().double() * 2 - 1

    def model(x, t):  # x̂_0 leaves [-1, 1] often, and not only at the last steps
        return torch.sin(3.0 * x)

    results = {}
    for rederive in (False, True):
        scheduler = with_float64_schedule(
            diffusers.DDIMScheduler(**scheduler_config(clip_sample=True)), linear
        )
        scheduler.set_timesteps(10)
        theirs = run_loop(scheduler, model, x, eta=0.0, use_clipped_model_output=rederive)
        ours = samplers.ddim(model, linear, x.shape, steps=10, x_T=x, rederive_eps=rederive, progress=False)
        assert torch.allclose(ours, theirs, atol=1e-10, rtol=0)
        results[rederive] = ours
    assert (results[True] - results[False]).abs().max() > 0.5


def test_ddim_eta1_matches_ddim_scheduler_given_the_same_noise(linear):
    scheduler = diffusers.DDIMScheduler(**scheduler_config(clip_sample=False))
    scheduler.set_timesteps(20)
    x = deterministic_sample()
    theirs = run_loop(scheduler, dummy_model, x, eta=1.0, generator=torch.Generator().manual_seed(0))
    ours = samplers.ddim(
        dummy_model, linear, x.shape, steps=20, eta=1.0, x_T=x, generator=torch.Generator().manual_seed(0),
        clip_denoised=False, progress=False,
    )  # fmt: skip
    # diffusers draws noise at the last step too (σ = 0 there); the draws before it coincide.
    assert torch.allclose(ours, theirs, atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------- DPM-Solver++
@pytest.mark.parametrize(
    "spacing, steps", [("linspace", 20), ("leading", 10), ("trailing", 15), ("trailing", 8)]
)
@pytest.mark.parametrize("order", [1, 2])
def test_dpm_solver_pp_full_loop_matches_dpm_solver_multistep(linear, spacing, steps, order):
    scheduler = diffusers.DPMSolverMultistepScheduler(
        **scheduler_config(
            solver_order=order, algorithm_type="dpmsolver++", solver_type="midpoint", lower_order_final=True,
            final_sigmas_type="zero",
        )
    )  # fmt: skip
    scheduler.set_timesteps(timesteps=samplers.timesteps(T, steps, spacing).tolist())
    x = deterministic_sample()
    ours = samplers.dpm_solver_pp(
        dummy_model, linear, x.shape, steps=steps, order=order, spacing=spacing, x_T=x, progress=False
    )
    assert torch.allclose(ours, run_loop(scheduler, dummy_model, x), atol=ATOL, rtol=0)


def test_dpm_solver_pp_trailing_matches_without_a_custom_list(linear):
    """diffusers' own "trailing" list for DPMSolverMultistepScheduler is the library's."""
    scheduler = diffusers.DPMSolverMultistepScheduler(
        **scheduler_config(
            solver_order=2,
            algorithm_type="dpmsolver++",
            final_sigmas_type="zero",
            timestep_spacing="trailing",
        )
    )
    scheduler.set_timesteps(20)
    assert torch.equal(scheduler.timesteps, samplers.timesteps(T, 20, "trailing"))
    x = deterministic_sample()
    ours = samplers.dpm_solver_pp(
        dummy_model, linear, x.shape, steps=20, spacing="trailing", x_T=x, progress=False
    )
    assert torch.allclose(ours, run_loop(scheduler, dummy_model, x), atol=ATOL, rtol=0)


def test_dpm_solver_multistep_linspace_is_a_different_list():
    """For DPMSolverMultistepScheduler, "linspace" means N + 1 points with t = 0 dropped; the
    library (and DDIMScheduler) keep N points ending at t = 0. Hence the custom lists above."""
    scheduler = diffusers.DPMSolverMultistepScheduler(**scheduler_config())
    scheduler.set_timesteps(20)
    ours = samplers.timesteps(T, 20, "linspace")
    assert int(scheduler.timesteps[-1]) > 0 and int(ours[-1]) == 0
    assert int(scheduler.timesteps[0]) == int(ours[0]) == T - 1
