"""Noise schedules β_1..β_T and the quantities derived from them.

Everything here is float64 and free of ``torch.nn``: schedules are data, not models.
Derived in chapter 4 (the forward process), eqs. (fwd-alpha-bar) and (fwd-snr).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = [
    "SCHEDULE_NAMES",
    "get_beta_schedule",
    "check_schedule",
    "betas_for_alpha_bar",
    "alphas_cumprod_from_betas",
    "snr",
    "log_snr",
]

SCHEDULE_NAMES = ("linear", "cosine", "sigmoid", "quadratic", "ldm")

# Ho et al. (2020) use β from 1e-4 to 0.02 over T = 1000 steps.
_LINEAR_START = 1e-4
_LINEAR_END = 0.02
# Rombach et al. (2022) train their latent models, Stable Diffusion among them, with β linear in
# √β from 0.00085 to 0.012 at T = 1000 (their configs' linear_start and linear_end): ᾱ_T ≈ 0.0047,
# about a hundred times the linear schedule's 4.0e-5.
_LDM_START = 0.00085
_LDM_END = 0.012
_COSINE_OFFSET = 0.008  # s in Nichol & Dhariwal (2021), eq. (17)
_MAX_BETA = 0.999  # clip from Nichol & Dhariwal (2021): β_T → 1 would make the last step singular


def _check_num_timesteps(num_timesteps: int) -> int:
    if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int):
        raise TypeError(f"num_timesteps must be an int, got {type(num_timesteps).__name__}")
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    return num_timesteps


def get_beta_schedule(name: str, num_timesteps: int) -> torch.Tensor:
    """Return the variance schedule β_1..β_T as a float64 tensor of shape ``(T,)``.

    Derived in chapter 4, section "Schedules". Entry ``i`` is β_{i+1} in the paper's notation.

    - ``"linear"``: Ho et al. (2020), β rising linearly from 1e-4 to 0.02 at T = 1000; for other
      T both endpoints are scaled by 1000/T (Nichol & Dhariwal, 2021), which keeps ᾱ_T about the
      same. Needs T > 20, since β_T = 0.02·1000/T must stay below 1.
    - ``"cosine"``: Nichol & Dhariwal (2021), eq. (17): ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2) with
      s = 0.008, β_t = 1 − ᾱ(t)/ᾱ(t−1) clipped at 0.999. The same numbers as diffusers'
      ``"squaredcos_cap_v2"``. Works for any T >= 1.
    - ``"quadratic"``: β linear in √β between the linear schedule's endpoints
      (diffusers' ``"scaled_linear"``). Needs T > 20.
    - ``"sigmoid"``: β = start + (end − start)·sigmoid(linspace(−6, 6, T)), with the linear
      schedule's endpoints (as diffusers' ``"sigmoid"``). Needs T > 20.
    - ``"ldm"``: latent diffusion's (Rombach et al., 2022; Stable Diffusion's): β linear in √β
      from 0.00085 to 0.012 at T = 1000, both scaled by 1000/T as for ``"linear"`` (diffusers'
      ``"scaled_linear"`` with these endpoints). Its last ᾱ_T ≈ 0.0047 keeps some signal.
      Needs T > 12.

    Args:
        name: one of :data:`SCHEDULE_NAMES`.
        num_timesteps: T, the number of diffusion steps, >= 1.

    Raises:
        ValueError: unknown name, T < 1, or a T for which the schedule's β would reach 1.
        TypeError: T not an int.
    """
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"name must be one of {', '.join(SCHEDULE_NAMES)}, got {name!r}")
    T = _check_num_timesteps(num_timesteps)
    if name == "cosine":
        return betas_for_alpha_bar(
            T,
            lambda u: math.cos((u + _COSINE_OFFSET) / (1 + _COSINE_OFFSET) * math.pi / 2) ** 2,
        )
    scale = 1000.0 / T
    first, last = (_LDM_START, _LDM_END) if name == "ldm" else (_LINEAR_START, _LINEAR_END)
    start, end = scale * first, scale * last
    if end >= 1.0:
        raise ValueError(
            f"num_timesteps must be > {int(1000 * last)} for the {name!r} schedule (its last β is "
            f"{last:g}·1000/T = {end:g}, which must be < 1), got {T}; use 'cosine' for few steps"
        )
    if name == "linear":
        return torch.linspace(start, end, T, dtype=torch.float64)
    if name in ("quadratic", "ldm"):
        return torch.linspace(math.sqrt(start), math.sqrt(end), T, dtype=torch.float64) ** 2
    # sigmoid
    return start + (end - start) * torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64))


def check_schedule(name: str, num_timesteps: int) -> None:
    """Raise, with both values in the message, if :func:`get_beta_schedule` refuses them: what a
    model family checks when an entry is registered, rather than when it is trained.

    Raises:
        ValueError: "schedule NAME with num_timesteps T is refused: …".
    """
    try:
        get_beta_schedule(name, num_timesteps)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"schedule {name!r} with num_timesteps {num_timesteps!r} is refused: {err}"
        ) from None


def betas_for_alpha_bar(
    num_timesteps: int, alpha_bar: Callable[[float], float], max_beta: float = _MAX_BETA
) -> torch.Tensor:
    """Discretise a continuous ᾱ(u), u ∈ [0, 1], into β_t = min(1 − ᾱ(t/T)/ᾱ((t−1)/T), max_beta).

    Derived in chapter 4: since ᾱ_t = ∏_{s≤t}(1 − β_s), each β_t is one minus the ratio of
    consecutive ᾱ. The clip keeps the last steps away from β = 1.

    Args:
        num_timesteps: T >= 1.
        alpha_bar: a decreasing function on [0, 1] with alpha_bar(0) > 0.
        max_beta: upper clip, in (0, 1).
    """
    T = _check_num_timesteps(num_timesteps)
    if not 0.0 < max_beta < 1.0:
        raise ValueError(f"max_beta must be in (0, 1), got {max_beta!r}")
    betas = [min(1.0 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)]
    return torch.tensor(betas, dtype=torch.float64)


def alphas_cumprod_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = ∏_{s=1}^t (1 − β_s), in float64. Derived in chapter 4, eq. (fwd-alpha-bar)."""
    betas = torch.as_tensor(betas, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) of q(x_t | x_0). Chapter 4, eq. (fwd-snr)."""
    a = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
    return a / (1.0 - a)


def log_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """log SNR = log ᾱ_t − log(1 − ᾱ_t), computed stably. Chapter 4, eq. (fwd-snr)."""
    a = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
    return torch.log(a) - torch.log1p(-a)
