"""Flow matching on the straight path from data to noise (rectified flow).

Derived in chapter 8. The convention is that of rectified flow (Liu et al., 2023) and Stable
Diffusion 3 (Esser et al., 2024): noise at t = 1,

    x_t = (1 − t) x_0 + t ε,    t ∈ [0, 1],    ε ~ N(0, I),

whose velocity along each path is u = dx_t/dt = ε − x_0. A network v_θ(x_t, t) regressed on u
(the conditional flow-matching loss) learns E[ε − x_0 | x_t], the velocity of an ODE that carries
N(0, I) at t = 1 to the data at t = 0; sampling integrates it from t = 1 down to t = 0
(``samplers.flow_euler``, ``samplers.flow_heun``). Lipman et al. (2023) run time the other way
(data at t = 1, noise at t = 0, velocity x_1 − ε); the two are the same model under t ↦ 1 − t
and v ↦ −v.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from .diffusion import randn_like_on

__all__ = ["interpolate", "velocity_target", "training_losses", "TimeScaled", "TIME_SCALE"]

# The book's denoisers (UNet, MLPDenoiser) embed their time input with sinusoids whose
# frequencies were chosen for DDPM's step indices 0..999 (T = 1000); a flow's t ∈ [0, 1] is fed
# to them as t · 999 so that the same networks, unchanged, see the same range of inputs.
TIME_SCALE = 999.0


def _check_pair(x0: torch.Tensor, noise: torch.Tensor) -> None:
    for name, x in (("x0", x0), ("noise", noise)):
        if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 1:
            what = f"a {x.dtype} tensor of shape {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"{name} must be a floating-point tensor (B, ...), got {what}")
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")


def _batch_times(t, like: torch.Tensor) -> torch.Tensor:
    """t as a (B, 1, …, 1) tensor in like's dtype and device; a float or a (B,) tensor in [0, 1]."""
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        t = torch.full((like.shape[0],), float(t), dtype=like.dtype, device=like.device)
    if not torch.is_tensor(t) or tuple(t.shape) != (like.shape[0],):
        got = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
        raise ValueError(f"t must be a number or a tensor of shape ({like.shape[0]},), got {got}")
    if t.numel() and not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(
            f"t must lie in [0, 1], got values from {t.min().item():.6g} to {t.max().item():.6g}"
        )
    return t.to(like.device, like.dtype).reshape(-1, *(1,) * (like.ndim - 1))


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
    """The point x_t = (1 − t) x_0 + t ε of the straight path from the data to the noise.

    Derived in chapter 8, eq. (sde-fm-path).

    Args:
        x0: data (B, ...).
        noise: ε of the same shape.
        t: a number in [0, 1] or a tensor (B,) of them (one time per example).
    """
    _check_pair(x0, noise)
    t = _batch_times(t, x0)
    return (1.0 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The velocity u = dx_t/dt = ε − x_0 of the path, whatever t: the regression target.

    Derived in chapter 8, eqs. (sde-fm-path) and (sde-fm-v): chapter 7's v-prediction target
    √ᾱ ε − √(1 − ᾱ) x_0 is the same velocity on the quarter circle (α, σ) = (cos φ, sin φ), with
    the angle φ as time; flow matching is v-prediction on the straight line.
    """
    _check_pair(x0, noise)
    return noise - x0


def _rand_times(n: int, like: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    # drawn on the generator's device and moved, as diffusion.randn_like_on draws the noise
    device = generator.device if generator is not None else like.device
    return torch.rand(n, generator=generator, device=device, dtype=like.dtype).to(like.device)


def training_losses(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    generator: Optional[torch.Generator] = None,
) -> dict:
    """The conditional flow-matching loss ‖v_θ(x_t, t) − (ε − x_0)‖² per example.

    Derived in chapter 8, eq. (sde-fm-loss). Each example gets its own t ~ U(0, 1) and ε ~ N(0, I),
    both drawn from ``generator`` (times first, then the noise). Stable Diffusion 3 samples t from
    a logit-normal that favours the middle of the path; the book keeps the uniform.

    Args:
        model: ``model(x_t, t)`` with t a float tensor (B,) in [0, 1]; returns the velocity.
        x0: a batch of data (B, ...).
        generator: random generator for t and ε.

    Returns:
        dict with ``"loss"`` (B,), the squared error averaged over the non-batch dimensions, and
        ``"t"`` (B,), the times drawn.
    """
    if not torch.is_tensor(x0) or not x0.is_floating_point() or x0.ndim < 1 or x0.shape[0] < 1:
        what = f"a {x0.dtype} tensor of shape {tuple(x0.shape)}" if torch.is_tensor(x0) else type(x0).__name__
        raise ValueError(f"x0 must be a floating-point tensor (B, ...) with B >= 1, got {what}")
    t = _rand_times(x0.shape[0], x0, generator)
    noise = randn_like_on(x0, generator)
    x_t = interpolate(x0, noise, t)
    output = model(x_t, t)
    if not torch.is_tensor(output) or output.shape != x0.shape:
        shape = tuple(output.shape) if torch.is_tensor(output) else type(output).__name__
        raise ValueError(f"model output must have the shape of x_t {tuple(x0.shape)}, got {shape}")
    error = (output - velocity_target(x0, noise)) ** 2
    loss = error.mean(dim=tuple(range(1, error.ndim))) if error.ndim > 1 else error
    return {"loss": loss, "t": t}


class TimeScaled(nn.Module):
    """A denoising network of the book (UNet, MLPDenoiser) as a velocity field v(x, t), t ∈ [0, 1].

    The network sees the time as t · :data:`TIME_SCALE`, the range of DDPM's step indices its
    sinusoidal embedding was designed for; otherwise it is unchanged (the same architecture
    learns ε for a diffusion model and the velocity ε − x_0 of chapter 8, eq. (sde-fm-path), here).

    Args:
        network: ``network(x, t)`` or, class-conditional, ``network(x, t, y)``.
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        if not isinstance(network, nn.Module):
            raise ValueError(f"network must be a torch.nn.Module, got {type(network).__name__}")
        self.network = network

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        scaled = t * TIME_SCALE
        return self.network(x, scaled) if y is None else self.network(x, scaled, y)
