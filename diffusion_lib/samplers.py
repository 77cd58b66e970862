"""Samplers: each a short function from noise to data, in the style of k-diffusion.

Every sampler takes the starting noise ``x_T`` and a ``torch.Generator`` so results are
reproducible, shows a progress bar on request, and can return its whole trajectory.

The fast samplers (chapter 7) visit a subsequence of the training timesteps chosen by
:func:`timesteps`; each step goes from one entry of that list to the *next entry*, and the last
step goes to ᾱ = 1, the clean data x_0. Schedule quantities are taken from the diffusion's
float64 buffers and cast to the sample's dtype only when they multiply a tensor.

Chapter 8 adds the continuous-time view: EDM's Heun sampler (Karras et al., 2022) on a trained
DDPM through the change of variable x = x_t/√ᾱ, σ = √((1 − ᾱ)/ᾱ), and the Euler and Heun
integrators of a flow-matching model's ODE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Callable, Optional

import numpy as np
import torch

from .diffusion import GaussianDiffusion, check_prediction_type, randn_like_on, split_prediction

__all__ = [
    "ddpm",
    "ddim",
    "ddim_step",
    "ddim_invert",
    "denoise",
    "dpm_solver_pp",
    "timesteps",
    "SPACINGS",
    "edm_sigmas",
    "vp_sigma_range",
    "vp_denoiser",
    "edm_heun",
    "flow_euler",
    "flow_heun",
]

SPACINGS = ("leading", "trailing", "linspace")

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _initial_noise(shape, x_T, generator, device, dtype) -> torch.Tensor:
    shape = tuple(shape)
    if not shape or any((not isinstance(s, int)) or isinstance(s, bool) or s < 1 for s in shape):
        raise ValueError(f"shape must be a tuple of ints >= 1, got {shape!r}")
    if x_T is None:
        return randn_like_on(torch.empty(shape, device=device, dtype=dtype), generator)
    if not torch.is_tensor(x_T) or tuple(x_T.shape) != shape:
        got = tuple(x_T.shape) if torch.is_tensor(x_T) else type(x_T).__name__
        raise ValueError(f"x_T must have shape {shape}, got {got}")
    return x_T


@torch.no_grad()
def ddpm(
    model: Model,
    diffusion: GaussianDiffusion,
    shape: Sequence[int],
    *,
    x_T: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    clip_denoised: bool = True,
    progress: bool = True,
    return_trajectory: bool = False,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
    prediction_type: str = "epsilon",
):
    """Ancestral sampling (Ho et al., 2020, Algorithm 2): x_T ~ N(0, I), then x_{t−1} ~ p_θ(· | x_t).

    Derived in chapter 5, eq. (rev-ancestral-step); used in chapter 6.

    Args:
        model: ``model(x_t, t)``; its output is read according to ``prediction_type``.
        diffusion: the process the model was trained with.
        shape: the batch shape (B, ...).
        x_T: starting noise of that shape; drawn with ``generator`` if None.
        generator: random generator for x_T and every step's noise.
        clip_denoised: clamp x̂_0 to [-1, 1] at each step.
        progress: show a tqdm bar on stderr.
        return_trajectory: also return the list [x_T, x_{T−1}, …, x_0].
        device, dtype: where to draw the noise when ``x_T`` is None (default CPU float32).
        prediction_type: ``"epsilon"``, ``"x0"`` or ``"v"``, as for :func:`ddim`.

    Returns:
        x_0, or ``(x_0, trajectory)`` when ``return_trajectory``.
    """
    from tqdm.auto import tqdm

    check_prediction_type(prediction_type)
    x = _initial_noise(shape, x_T, generator, device or "cpu", dtype)
    trajectory = [x] if return_trajectory else None
    steps = range(diffusion.num_timesteps - 1, -1, -1)
    for i in tqdm(steps, desc="DDPM sampling", disable=not progress, leave=False, mininterval=1.0):
        noise = randn_like_on(x, generator)
        x = diffusion.p_sample(  # t as an int: checked on the host, no synchronisation per step
            model, x, i, noise=noise, clip_denoised=clip_denoised, prediction_type=prediction_type
        )["sample"]
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


# ---------------------------------------------------------------- timestep lists
def _check_int(name: str, value, minimum: int, maximum: Optional[int] = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < minimum or (maximum is not None and value > maximum):
        allowed = f"an int >= {minimum}" if maximum is None else f"an int in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def timesteps(num_timesteps: int, steps: int, spacing: str = "leading", offset: int = 0) -> torch.Tensor:
    """The training timesteps (indices 0..T−1) a fast sampler visits, in descending order.

    Derived in chapter 7, eq. (fast-spacings); the names are those of Lin et al. (2024), Table 2,
    and of diffusers' ``timestep_spacing``. With T = ``num_timesteps`` and N = ``steps``:

    - ``"leading"``: k·⌊T/N⌋ + offset for k = 0..N−1 (DDIM's original choice; the largest entry
      can fall well short of T − 1, so sampling starts from a not quite pure-noise level);
    - ``"trailing"``: round(T − k·T/N) − 1 + offset (always starts at T − 1);
    - ``"linspace"``: round of N evenly spaced points from 0 to T − 1, + offset.

    ``offset`` shifts every entry (diffusers' ``steps_offset``, 1 in Stable Diffusion); diffusers
    applies it to ``"leading"`` only. Every list has N distinct entries in [0, T−1].

    Returns:
        int64 tensor of shape (N,), descending.
    """
    T = _check_int("num_timesteps", num_timesteps, 1)
    N = _check_int("steps", steps, 1, T)
    offset = _check_int("offset", offset, 0)
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}")
    k = np.arange(N)
    if spacing == "leading":
        ts = k * (T // N)
    elif spacing == "trailing":
        ts = np.round(T - k * (T / N)).astype(np.int64) - 1
    else:
        ts = np.linspace(0, T - 1, N).round().astype(np.int64)
    ts = np.sort(ts)[::-1] + offset
    if ts[0] > T - 1:
        raise ValueError(
            f"offset must keep the timesteps in [0, {T - 1}]: with spacing={spacing!r} and steps={N} "
            f"the largest is {ts[0] - offset}, so offset <= {T - 1 - (ts[0] - offset)}, got {offset}"
        )
    return torch.from_numpy(ts.copy()).long()


def _levels(diffusion: GaussianDiffusion, ts: torch.Tensor) -> list[float]:
    """ᾱ at each visited timestep, then 1.0 for x_0: the noise levels a fast sampler moves through."""
    return diffusion.alphas_cumprod[ts].tolist() + [1.0]


def denoise(
    model: Model,
    x: torch.Tensor,
    t: int,
    alpha_bar: float,
    prediction_type: str = "epsilon",
    clip: bool = False,
    rederive_eps: bool = False,
):
    """(x̂_0, ε̂) from one network call at timestep index ``t`` (noise level ``alpha_bar``).

    x̂_0 is clipped to [-1, 1] if asked; then, with ``rederive_eps``, ε̂ is recomputed so that
    (x̂_0, ε̂) still satisfy x_t = √ᾱ_t x̂_0 + √(1 − ᾱ_t) ε̂ (chapter 7, eq. (fast-ddim-clip)).
    Scalar coefficients, not per-example buffers: all examples share the step, and the loop
    should cost little next to the network. The samplers here and the editing methods
    (:mod:`diffusion_lib.editing`) all read the network through it.

    Returns:
        :class:`~diffusion_lib.diffusion.Prediction` ``(x0, eps)``.

    Raises:
        ValueError: the model's output does not have the shape of ``x``.
    """
    alpha, sigma = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
    output = model(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
    if not torch.is_tensor(output) or output.shape != x.shape:
        shape = tuple(output.shape) if torch.is_tensor(output) else type(output).__name__
        raise ValueError(f"model output must have the shape of x_t {tuple(x.shape)}, got {shape}")
    x0, eps = split_prediction(x, output, alpha, sigma, prediction_type)
    if clip:
        x0 = x0.clamp(-1.0, 1.0)
        if rederive_eps:
            eps = (x - alpha * x0) / sigma
    return x0, eps


def _progress(iterable, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, disable=not progress, leave=False, mininterval=1.0)


# ---------------------------------------------------------------- DDIM
def _check_eta(eta) -> float:
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
    return float(eta)


def ddim_sigma(alpha_bar: float, alpha_bar_next: float, eta: float) -> float:
    """σ of a DDIM step from level ᾱ to level ᾱ' (Song et al., 2021, eq. (16)).

    Derived in chapter 7, eq. (fast-ddim-sigma): σ = η √((1 − ᾱ')/(1 − ᾱ)) √(1 − ᾱ/ᾱ'); with
    η = 1 and ᾱ' = ᾱ_{t−1} this is the DDPM posterior standard deviation √β̃_t.
    """
    return eta * math.sqrt((1.0 - alpha_bar_next) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_next))


def ddim_step(
    x0: torch.Tensor,
    eps: torch.Tensor,
    alpha_bar_next: float,
    sigma: float,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """One DDIM step's result: x_{t'} = √ᾱ' x̂_0 + √(1 − ᾱ' − σ²) ε̂ + σ z, z ~ N(0, I).

    Derived in chapter 7, eq. (fast-ddim-step); σ from :func:`ddim_sigma` (no draw when σ = 0).
    """
    x = math.sqrt(alpha_bar_next) * x0 + math.sqrt(max(1.0 - alpha_bar_next - sigma**2, 0.0)) * eps
    return x + sigma * randn_like_on(x, generator) if sigma > 0.0 else x


@torch.no_grad()
def ddim(
    model: Model,
    diffusion: GaussianDiffusion,
    shape: Sequence[int],
    *,
    steps: int,
    eta: float = 0.0,
    spacing: str = "leading",
    offset: int = 0,
    x_T: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    clip_denoised: bool = True,
    rederive_eps: bool = True,
    prediction_type: str = "epsilon",
    progress: bool = True,
    return_trajectory: bool = False,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
):
    """DDIM (Song et al., 2021): x_{t'} = √ᾱ' x̂_0 + √(1 − ᾱ' − σ²) ε̂ + σ z, over ``steps`` timesteps.

    Derived in chapter 7, eq. (fast-ddim-step). η = 0 is deterministic (the probability-flow ODE
    solved by an exponential integrator, = first-order DPM-Solver++); η = 1 with every timestep
    is ancestral DDPM sampling.

    Args:
        model: ``model(x_t, t)``; its output is read according to ``prediction_type``.
        diffusion: the process the model was trained with.
        shape: the batch shape (B, ...).
        steps: number of network evaluations, 1..T.
        eta: the noise scale η in [0, 1].
        spacing, offset: which timesteps to visit; see :func:`timesteps`.
        x_T: starting noise of that shape; drawn with ``generator`` if None.
        generator: random generator for x_T and (η > 0) every step's noise.
        clip_denoised: clamp x̂_0 to [-1, 1] at each step.
        rederive_eps: after clipping, recompute ε̂ from the clipped x̂_0 (default True, as in the
            DDIM authors' code and improved-diffusion). The pair (x̂_0, ε̂) then still explains
            x_t, and η = 1 reproduces the DDPM step exactly. diffusers' ``DDIMScheduler`` keeps
            the unclipped ε̂ unless ``use_clipped_model_output=True``, which moves x_{t'} off the
            plane of x_t and x̂_0; chapter 7 measures the difference.
        prediction_type: ``"epsilon"``, ``"x0"`` or ``"v"``.
        progress: show a tqdm bar on stderr.
        return_trajectory: also return [x_T, …, x_0] (steps + 1 tensors).
        device, dtype: where to draw the noise when ``x_T`` is None (default CPU float32).

    Returns:
        x_0, or ``(x_0, trajectory)`` when ``return_trajectory``.
    """
    eta = _check_eta(eta)
    check_prediction_type(prediction_type)
    ts = timesteps(diffusion.num_timesteps, steps, spacing, offset)
    levels = _levels(diffusion, ts)
    x = _initial_noise(shape, x_T, generator, device or "cpu", dtype)
    trajectory = [x] if return_trajectory else None
    for k in _progress(range(len(ts)), "DDIM sampling", progress):
        a, a_next = levels[k], levels[k + 1]
        x0, eps = denoise(model, x, int(ts[k]), a, prediction_type, clip_denoised, rederive_eps)
        x = ddim_step(x0, eps, a_next, ddim_sigma(a, a_next, eta), generator)
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


@torch.no_grad()
def ddim_invert(
    model: Model,
    diffusion: GaussianDiffusion,
    x0: torch.Tensor,
    *,
    steps: int,
    spacing: str = "leading",
    offset: int = 0,
    prediction_type: str = "epsilon",
    progress: bool = True,
    return_trajectory: bool = False,
):
    """Deterministic DDIM inversion x_0 → x_T: the η = 0 steps of :func:`ddim`, run backwards.

    Derived in chapter 7, eq. (fast-ddim-inversion). It visits the same timesteps as
    ``ddim(..., steps, spacing, offset)`` in ascending order. The step from level s to level t
    needs ε̂ at the unknown x_t; it uses the network at the known point x_s with timestep t,
    the usual approximation (it is exact when x̂_0 does not change along the path), so decoding
    the result with ``ddim(eta=0, clip_denoised=False)`` returns x_0 up to that error.

    Returns:
        x_T, or ``(x_T, trajectory)`` with [x_0, …, x_T] when ``return_trajectory``.
    """
    check_prediction_type(prediction_type)
    diffusion._check_x("x0", x0)
    ts = timesteps(diffusion.num_timesteps, steps, spacing, offset).flip(0)
    levels = [1.0] + diffusion.alphas_cumprod[ts].tolist()
    x = x0
    trajectory = [x] if return_trajectory else None
    for k in _progress(range(len(ts)), "DDIM inversion", progress):
        a_prev, a = levels[k], levels[k + 1]
        _, eps = denoise(model, x, int(ts[k]), a, prediction_type, False, False)
        x0_hat = (x - math.sqrt(1.0 - a_prev) * eps) / math.sqrt(a_prev)
        x = math.sqrt(a) * x0_hat + math.sqrt(1.0 - a) * eps
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


# ---------------------------------------------------------------- DPM-Solver++
@torch.no_grad()
def dpm_solver_pp(
    model: Model,
    diffusion: GaussianDiffusion,
    shape: Sequence[int],
    *,
    steps: int,
    order: int = 2,
    spacing: str = "linspace",
    offset: int = 0,
    x_T: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    clip_denoised: bool = False,
    prediction_type: str = "epsilon",
    progress: bool = True,
    return_trajectory: bool = False,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
):
    """Multistep DPM-Solver++ (Lu et al., 2022, Algorithm 2, "2M"), of order 1 or 2.

    Derived in chapter 7, eqs. (fast-dpm-1) and (fast-dpm-2). In ℓ = log(a/b), with a = √ᾱ and
    b = √(1 − ᾱ) (ℓ is half the log-SNR; the paper's λ), the probability-flow ODE has the exact
    solution x_t = (b_t/b_s) x_s + b_t ∫ e^ℓ x̂_0 dℓ; order 1 holds x̂_0 constant over the step
    (this is DDIM with η = 0), order 2 extrapolates it linearly from the previous step's x̂_0:
    D = (1 + 1/(2r)) x̂_0(t_k) − 1/(2r) x̂_0(t_{k−1}), r = h_{k−1}/h_k. The first step has no
    history and is first order; so is the last, to b = 0, where h = ∞ and the step returns x̂_0
    (diffusers' ``lower_order_final`` with ``final_sigmas_type="zero"`` does the same).

    Args:
        steps: number of network evaluations, 1..T; see :func:`timesteps` for ``spacing``.
        order: 1 or 2.
        clip_denoised: clamp x̂_0 to [-1, 1] (off by default, as in diffusers).
        Other arguments as in :func:`ddim`; there is no noise after x_T.

    Returns:
        x_0, or ``(x_0, trajectory)`` with [x_T, …, x_0] when ``return_trajectory``.
    """
    if order not in (1, 2) or isinstance(order, bool):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    check_prediction_type(prediction_type)
    ts = timesteps(diffusion.num_timesteps, steps, spacing, offset)
    levels = _levels(diffusion, ts)
    alpha = [math.sqrt(a) for a in levels]
    sigma = [math.sqrt(1.0 - a) for a in levels]
    lam = [math.log(al) - math.log(si) if si > 0.0 else math.inf for al, si in zip(alpha, sigma)]
    x = _initial_noise(shape, x_T, generator, device or "cpu", dtype)
    trajectory = [x] if return_trajectory else None
    x0_prev = None
    for k in _progress(range(len(ts)), "DPM-Solver++", progress):
        x0, _ = denoise(model, x, int(ts[k]), levels[k], prediction_type, clip_denoised, False)
        if k == len(ts) - 1:  # to σ = 0: the first-order step with h = ∞ returns x̂_0
            x = x0
        else:
            h = lam[k + 1] - lam[k]
            D = x0
            if order == 2 and x0_prev is not None:
                r = (lam[k] - lam[k - 1]) / h
                D = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
            x = (sigma[k + 1] / sigma[k]) * x - alpha[k + 1] * math.expm1(-h) * D
        x0_prev = x0
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


# ---------------------------------------------------------------- EDM (Karras et al., 2022)
def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def edm_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """The noise levels of EDM's sampler (Karras et al., 2022, eq. (5)), then a final 0.

    Derived in chapter 8, eq. (sde-edm-schedule):
    σ_i = (σ_max^(1/ρ) + i/(n − 1) (σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ for i = 0..n − 1, and σ_n = 0.
    ρ = 7 spends more of the steps at low noise; ρ = 1 is a linear grid; ρ → ∞ is geometric.

    Args:
        n: the number of steps, >= 1 (n = 1 gives [σ_max, 0]).
        sigma_min, sigma_max: the last and first nonzero levels, 0 < sigma_min < sigma_max.
        rho: the warping ρ > 0.

    Returns:
        float64 tensor (n + 1,), descending, ending with 0.
    """
    n = _check_int("n", n, 1)
    sigma_min = _check_positive("sigma_min", sigma_min)
    sigma_max = _check_positive("sigma_max", sigma_max)
    rho = _check_positive("rho", rho)
    if not sigma_max > sigma_min:
        raise ValueError(f"sigma_max must be > sigma_min = {sigma_min:g}, got {sigma_max!r}")
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    sigmas[0] = sigma_max  # the endpoints exactly, not through the powers' rounding
    if n > 1:
        sigmas[-1] = sigma_min
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)])


def vp_sigma_range(diffusion: GaussianDiffusion) -> tuple[float, float]:
    """EDM's σ at a discrete DDPM's first and last step: σ_i = √((1 − ᾱ_i)/ᾱ_i).

    Derived in chapter 8, eq. (sde-edm-vp). For the linear schedule with T = 1000 this is about
    (0.01, 157): the range a trained DDPM's network has seen.
    """
    a = diffusion.alphas_cumprod
    sigma = torch.sqrt((1.0 - a) / a)
    return float(sigma[0]), float(sigma[-1])


def vp_denoiser(
    model: Model,
    diffusion: GaussianDiffusion,
    *,
    prediction_type: str = "epsilon",
    clip_denoised: bool = False,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A DDPM's network as EDM's denoiser D(x; σ) ≈ E[x_0 | x], for x = x_0 + σ ε.

    Derived in chapter 8, eq. (sde-edm-vp). The VP state x_t = √ᾱ x_0 + √(1 − ᾱ) ε divided by
    √ᾱ is x = x_0 + σ ε with σ² = (1 − ᾱ)/ᾱ; so at level σ the network sees x·√ᾱ, ᾱ = 1/(1 + σ²),
    at the fractional step index :meth:`GaussianDiffusion.fractional_timestep` (ᾱ), and
    D = x − σ ε̂ (= x̂_0 for any prediction type).

    Args:
        model: ``model(x_t, t)`` with t a float tensor (B,) of fractional step indices.
        diffusion: the process the model was trained with.
        prediction_type: ``"epsilon"``, ``"x0"`` or ``"v"``.
        clip_denoised: clamp D to [-1, 1] (for images).

    Returns:
        ``denoiser(x, sigma)`` with x (B, ...) and sigma a tensor (B,) of levels > 0.
    """
    check_prediction_type(prediction_type)

    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(sigma) or tuple(sigma.shape) != (x.shape[0],):
            got = tuple(sigma.shape) if torch.is_tensor(sigma) else type(sigma).__name__
            raise ValueError(f"sigma must be a tensor of shape ({x.shape[0]},), got {got}")
        s = sigma.detach().to(x.device, torch.float64)
        alpha_bar = 1.0 / (1.0 + s**2)
        t = diffusion.fractional_timestep(alpha_bar).to(x.dtype)
        view = (-1, *(1,) * (x.ndim - 1))
        a = alpha_bar.sqrt().to(x.dtype).reshape(view)
        b = (1.0 - alpha_bar).sqrt().to(x.dtype).reshape(view)
        x_t = a * x
        output = model(x_t, t)
        if not torch.is_tensor(output) or output.shape != x.shape:
            shape = tuple(output.shape) if torch.is_tensor(output) else type(output).__name__
            raise ValueError(f"model output must have the shape of x_t {tuple(x.shape)}, got {shape}")
        _, eps = split_prediction(x_t, output, a, b, prediction_type)
        denoised = x - s.to(x.dtype).reshape(view) * eps
        return denoised.clamp(-1.0, 1.0) if clip_denoised else denoised

    return denoiser


def _check_sigmas(sigmas) -> list[float]:
    if not torch.is_tensor(sigmas) or sigmas.ndim != 1 or sigmas.numel() < 2:
        got = tuple(sigmas.shape) if torch.is_tensor(sigmas) else type(sigmas).__name__
        raise ValueError(f"sigmas must be a 1-D tensor of at least 2 levels, got {got}")
    levels = sigmas.detach().to("cpu", torch.float64).tolist()
    ok = all(math.isfinite(s) for s in levels) and levels[-1] >= 0.0
    if not ok or any(a <= b for a, b in zip(levels, levels[1:])):
        raise ValueError(f"sigmas must be finite, >= 0 and strictly decreasing, got {levels}")
    return levels


@torch.no_grad()
def edm_heun(
    denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    sigmas: torch.Tensor,
    shape: Sequence[int],
    *,
    x_T: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
    return_trajectory: bool = False,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
):
    """EDM's deterministic sampler (Karras et al., 2022, Algorithm 1 with S_churn = 0).

    Derived in chapter 8, eqs. (sde-edm-ode) and (sde-edm-heun). It integrates the probability
    flow ODE dx/dσ = (x − D(x; σ))/σ from σ_0 = ``sigmas[0]`` down the listed levels: at each
    step the slope d = (x − D)/σ_i gives an Euler step to σ_{i+1}, corrected by the average with
    the slope there (Heun, second order) unless σ_{i+1} = 0, where the last step stays Euler.
    With n steps to a final 0 that is 2n − 1 denoiser evaluations.

    Args:
        denoiser: ``denoiser(x, sigma)`` ≈ E[x_0 | x], sigma a tensor (B,) (e.g. :func:`vp_denoiser`).
        sigmas: the levels, 1-D, strictly decreasing, >= 0 (e.g. :func:`edm_sigmas`).
        shape: the batch shape (B, ...).
        x_T: standard normal noise of that shape (scaled by sigmas[0] here); drawn with
            ``generator`` if None.
        generator: random generator for x_T.
        progress: show a tqdm bar on stderr.
        return_trajectory: also return [x at σ_0, …, x at the last level].
        device, dtype: where to draw the noise when ``x_T`` is None (default CPU float32).

    Returns:
        x_0, or ``(x_0, trajectory)`` when ``return_trajectory``.
    """
    levels = _check_sigmas(sigmas)
    x = levels[0] * _initial_noise(shape, x_T, generator, device or "cpu", dtype)
    trajectory = [x] if return_trajectory else None

    def slope(x, sigma):
        return (x - denoiser(x, torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device))) / sigma

    for i in _progress(range(len(levels) - 1), "EDM Heun", progress):
        sigma, sigma_next = levels[i], levels[i + 1]
        d = slope(x, sigma)
        x_next = x + (sigma_next - sigma) * d
        if sigma_next > 0.0:
            x_next = x + (sigma_next - sigma) * 0.5 * (d + slope(x_next, sigma_next))
        x = x_next
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


# ---------------------------------------------------------------- flow matching
def _velocity(model, x: torch.Tensor, t: float) -> torch.Tensor:
    output = model(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
    if not torch.is_tensor(output) or output.shape != x.shape:
        shape = tuple(output.shape) if torch.is_tensor(output) else type(output).__name__
        raise ValueError(f"model output must have the shape of x {tuple(x.shape)}, got {shape}")
    return output


def _flow_times(steps: int) -> list[float]:
    """The uniform grid t_k = 1 − k/steps, k = 0..steps, from the noise (t = 1) to the data (t = 0)."""
    steps = _check_int("steps", steps, 1)
    return [(steps - k) / steps for k in range(steps + 1)]


@torch.no_grad()
def flow_euler(
    model: Model,
    shape: Sequence[int],
    *,
    steps: int,
    x_T: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
    return_trajectory: bool = False,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
):
    """Euler's method for a flow-matching model's ODE dx/dt = v_θ(x, t), from t = 1 to t = 0.

    Derived in chapter 8, eq. (sde-fm-path): x_1 ~ N(0, I), then x ← x + (t_{k+1} − t_k) v_θ(x, t_k)
    on the uniform grid t_k = 1 − k/steps; ``steps`` network evaluations, first order.

    Args:
        model: ``model(x, t)`` with t a float tensor (B,) in [0, 1]; returns the velocity.
        shape: the batch shape (B, ...).
        steps: the number of steps, >= 1.
        x_T: the starting noise x_1 of that shape; drawn with ``generator`` if None.
        generator: random generator for x_T.
        progress: show a tqdm bar on stderr.
        return_trajectory: also return [x_1, …, x_0] (steps + 1 tensors).
        device, dtype: where to draw the noise when ``x_T`` is None (default CPU float32).

    Returns:
        x_0, or ``(x_0, trajectory)`` when ``return_trajectory``.
    """
    times = _flow_times(steps)
    x = _initial_noise(shape, x_T, generator, device or "cpu", dtype)
    trajectory = [x] if return_trajectory else None
    for k in _progress(range(len(times) - 1), "flow Euler", progress):
        x = x + (times[k + 1] - times[k]) * _velocity(model, x, times[k])
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


@torch.no_grad()
def flow_heun(
    model: Model,
    shape: Sequence[int],
    *,
    steps: int,
    x_T: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
    return_trajectory: bool = False,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
):
    """Heun's method for a flow-matching model's ODE dx/dt = v_θ(x, t), from t = 1 to t = 0.

    Derived in chapter 8, eq. (sde-fm-path): on the uniform grid t_k = 1 − k/steps, an Euler
    step with v_k = v_θ(x, t_k) to x̃, then x ← x + h (v_k + v_θ(x̃, t_{k+1}))/2 with
    h = t_{k+1} − t_k. Every step is corrected, the last one too (the velocity is finite at
    t = 0, unlike EDM's slope at σ = 0): 2·``steps`` network evaluations, second order.

    Arguments and return value as for :func:`flow_euler`.
    """
    times = _flow_times(steps)
    x = _initial_noise(shape, x_T, generator, device or "cpu", dtype)
    trajectory = [x] if return_trajectory else None
    for k in _progress(range(len(times) - 1), "flow Heun", progress):
        h = times[k + 1] - times[k]
        v = _velocity(model, x, times[k])
        x_euler = x + h * v
        x = x + h * 0.5 * (v + _velocity(model, x_euler, times[k + 1]))
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x
