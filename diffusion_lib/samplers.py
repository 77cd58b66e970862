"""Samplers: each a short function from noise to data, in the style of k-diffusion.

Every sampler takes the starting noise ``x_T`` and a ``torch.Generator`` so results are
reproducible, shows a progress bar on request, and can return its whole trajectory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable, Optional

import torch

from .diffusion import GaussianDiffusion

__all__ = ["ddpm"]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _initial_noise(shape, x_T, generator, device, dtype) -> torch.Tensor:
    shape = tuple(shape)
    if not shape or any((not isinstance(s, int)) or isinstance(s, bool) or s < 1 for s in shape):
        raise ValueError(f"shape must be a tuple of ints >= 1, got {shape!r}")
    if x_T is None:
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
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
):
    """Ancestral sampling (Ho et al., 2020, Algorithm 2): x_T ~ N(0, I), then x_{t−1} ~ p_θ(· | x_t).

    Derived in chapter 5, eq. (rev-ancestral-step); used in chapter 6.

    Args:
        model: ``model(x_t, t)`` returning ε_θ.
        diffusion: the process the model was trained with.
        shape: the batch shape (B, ...).
        x_T: starting noise of that shape; drawn with ``generator`` if None.
        generator: random generator for x_T and every step's noise.
        clip_denoised: clamp x̂_0 to [-1, 1] at each step.
        progress: show a tqdm bar on stderr.
        return_trajectory: also return the list [x_T, x_{T−1}, …, x_0].
        device, dtype: where to draw the noise when ``x_T`` is None (default CPU float32).

    Returns:
        x_0, or ``(x_0, trajectory)`` when ``return_trajectory``.
    """
    from tqdm.auto import tqdm

    x = _initial_noise(shape, x_T, generator, device or "cpu", dtype)
    trajectory = [x] if return_trajectory else None
    steps = range(diffusion.num_timesteps - 1, -1, -1)
    for i in tqdm(steps, desc="DDPM sampling", disable=not progress, leave=False, mininterval=1.0):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = diffusion.p_sample(model, x, t, noise=noise, clip_denoised=clip_denoised)["sample"]
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x
