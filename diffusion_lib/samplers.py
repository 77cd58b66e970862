"""Samplers: each a short function from noise to data, in the style of k-diffusion.

Every sampler takes the starting noise ``x_T`` and a ``torch.Generator`` so results are
reproducible, shows a progress bar on request, and can return its whole trajectory.

The fast samplers (chapter 7) visit a subsequence of the training timesteps chosen by
:func:`timesteps`; each step goes from one entry of that list to the *next entry*, and the last
step goes to ᾱ = 1, the clean data x_0. Schedule quantities are taken from the diffusion's
float64 buffers and cast to the sample's dtype only when they multiply a tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Callable, Optional

import numpy as np
import torch

from .diffusion import GaussianDiffusion, check_prediction_type, randn_like_on, split_prediction

__all__ = ["ddpm", "ddim", "ddim_invert", "dpm_solver_pp", "timesteps", "SPACINGS"]

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


def _denoise(model, x, t: int, alpha_bar: float, prediction_type: str, clip: bool, rederive_eps: bool):
    """(x̂_0, ε̂) from one network call at timestep index ``t`` (noise level ``alpha_bar``).

    x̂_0 is clipped to [-1, 1] if asked; then, with ``rederive_eps``, ε̂ is recomputed so that
    (x̂_0, ε̂) still satisfy x_t = √ᾱ_t x̂_0 + √(1 − ᾱ_t) ε̂ (chapter 7, eq. (fast-ddim-clip)).
    Scalar coefficients, not per-example buffers: all examples share the step, and the loop
    should cost little next to the network.
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
        x0, eps = _denoise(model, x, int(ts[k]), a, prediction_type, clip_denoised, rederive_eps)
        sigma = ddim_sigma(a, a_next, eta)
        x = math.sqrt(a_next) * x0 + math.sqrt(max(1.0 - a_next - sigma**2, 0.0)) * eps
        if sigma > 0.0:
            x = x + sigma * randn_like_on(x, generator)
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
        _, eps = _denoise(model, x, int(ts[k]), a, prediction_type, False, False)
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
        x0, _ = _denoise(model, x, int(ts[k]), levels[k], prediction_type, clip_denoised, False)
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
