"""Schedules: golden values from the papers and peer libraries, shapes, dtypes and bad input."""

import math

import pytest
import torch

from diffusion_lib.schedules import (
    SCHEDULE_NAMES,
    alphas_cumprod_from_betas,
    betas_for_alpha_bar,
    get_beta_schedule,
    log_snr,
    snr,
)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("T", [50, 1000, 4000])
def test_every_schedule_is_float64_increasing_and_in_unit_interval(name, T):
    betas = get_beta_schedule(name, T)
    assert betas.dtype == torch.float64
    assert betas.shape == (T,)
    assert bool(((betas > 0) & (betas < 1)).all())
    assert bool((betas[1:] >= betas[:-1] - 1e-15).all()), "β must not decrease"


def test_linear_matches_ho_et_al():
    betas = get_beta_schedule("linear", 1000)
    assert betas[0].item() == pytest.approx(1e-4, rel=1e-12)
    assert betas[-1].item() == pytest.approx(0.02, rel=1e-12)
    alphas_cumprod = alphas_cumprod_from_betas(betas)
    # The value the foundation issue pins (and that improved-diffusion and diffusers give).
    assert alphas_cumprod[-1].item() == pytest.approx(4.0358e-05, abs=5e-10)


def test_linear_endpoints_scale_with_T():
    betas = get_beta_schedule("linear", 250)
    assert betas[0].item() == pytest.approx(4e-4, rel=1e-12)
    assert betas[-1].item() == pytest.approx(0.08, rel=1e-12)


def test_cosine_matches_squaredcos_cap_v2_golden_values():
    # diffusers' "squaredcos_cap_v2" (= improved-diffusion's "cosine"), T = 1000, computed in
    # float64 from ᾱ(u) = cos²((u + 0.008)/1.008 · π/2) with β clipped at 0.999.
    betas = get_beta_schedule("cosine", 1000)
    assert betas[0].item() == pytest.approx(4.128422482196914e-05, rel=1e-9)
    assert betas[499].item() == pytest.approx(0.0031458862304780677, rel=1e-9)
    assert betas[998].item() == pytest.approx(0.7499993929011166, rel=1e-9)
    assert betas[999].item() == 0.999
    alphas_cumprod = alphas_cumprod_from_betas(betas)
    assert alphas_cumprod[499].item() == pytest.approx(0.4938435904406382, rel=1e-9)


def test_cosine_alpha_bar_follows_the_continuous_curve_before_the_clip():
    T = 1000
    alphas_cumprod = alphas_cumprod_from_betas(get_beta_schedule("cosine", T))
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for i in (0, 100, 500, 900, 990):
        assert alphas_cumprod[i].item() == pytest.approx(f((i + 1) / T) / f(0), rel=1e-9)


def test_cosine_works_for_few_steps():
    betas = get_beta_schedule("cosine", 1)
    assert betas.shape == (1,) and betas[0].item() == 0.999


def test_quadratic_and_sigmoid_endpoints():
    quad = get_beta_schedule("quadratic", 1000)
    assert quad[0].item() == pytest.approx(1e-4, rel=1e-12)
    assert quad[-1].item() == pytest.approx(0.02, rel=1e-12)
    assert math.sqrt(quad[500].item()) == pytest.approx(
        math.sqrt(1e-4) + (math.sqrt(0.02) - math.sqrt(1e-4)) * 500 / 999, rel=1e-12
    )
    sig = get_beta_schedule("sigmoid", 1000)
    s = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert sig[0].item() == pytest.approx(1e-4 + (0.02 - 1e-4) * s(-6), rel=1e-12)
    assert sig[-1].item() == pytest.approx(1e-4 + (0.02 - 1e-4) * s(6), rel=1e-12)


def test_ldm_matches_stable_diffusion():
    # Rombach et al.'s configs: β linear in √β from 0.00085 to 0.012 over T = 1000. Lin et al.
    # (2024, "Common diffusion noise schedules and sample steps are flawed", Table 1) give
    # Stable Diffusion's √ᾱ_T as 0.068265 (its terminal SNR is not zero).
    betas = get_beta_schedule("ldm", 1000)
    assert betas[0].item() == pytest.approx(0.00085, rel=1e-12)
    assert betas[-1].item() == pytest.approx(0.012, rel=1e-12)
    assert math.sqrt(betas[400].item()) == pytest.approx(
        math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) * 400 / 999, rel=1e-12
    )
    assert math.sqrt(alphas_cumprod_from_betas(betas)[-1].item()) == pytest.approx(0.068265, abs=5e-7)
    assert get_beta_schedule("ldm", 250)[-1].item() == pytest.approx(0.048, rel=1e-12)  # scaled by 1000/T
    with pytest.raises(ValueError, match=r"num_timesteps must be > 12 .* got 12"):
        get_beta_schedule("ldm", 12)


def test_snr_and_log_snr():
    alphas_cumprod = alphas_cumprod_from_betas(get_beta_schedule("linear", 1000))
    ratio = alphas_cumprod / (1 - alphas_cumprod)
    assert torch.allclose(snr(alphas_cumprod), ratio, rtol=1e-12)
    assert torch.allclose(log_snr(alphas_cumprod), torch.log(ratio), rtol=1e-10)
    assert bool((log_snr(alphas_cumprod)[1:] < log_snr(alphas_cumprod)[:-1]).all()), "SNR decreases"


@pytest.mark.parametrize("name", ["", "Linear", "cos", None])
def test_unknown_schedule_name_is_rejected(name):
    with pytest.raises(ValueError, match=r"name must be one of linear, cosine, sigmoid, quadratic, ldm, got"):
        get_beta_schedule(name, 1000)


@pytest.mark.parametrize("T", [0, -5])
def test_num_timesteps_below_one_is_rejected(T):
    with pytest.raises(ValueError, match=rf"num_timesteps must be >= 1, got {T}"):
        get_beta_schedule("cosine", T)


@pytest.mark.parametrize("T", [1.5, "1000", True])
def test_num_timesteps_must_be_int(T):
    with pytest.raises(TypeError, match="num_timesteps must be an int"):
        get_beta_schedule("linear", T)


@pytest.mark.parametrize("name", ["linear", "quadratic", "sigmoid"])
def test_linear_family_rejects_T_that_would_push_beta_to_one(name):
    with pytest.raises(ValueError, match=r"num_timesteps must be > 20 .* got 20"):
        get_beta_schedule(name, 20)
    assert get_beta_schedule(name, 21).max().item() < 1


def test_betas_for_alpha_bar_rejects_bad_clip():
    with pytest.raises(ValueError, match=r"max_beta must be in \(0, 1\), got 1.0"):
        betas_for_alpha_bar(10, lambda u: 1 - u, max_beta=1.0)
