"""Sinusoidal timestep embeddings. Derived in chapter 6, eq. (train-time-embedding)."""

from __future__ import annotations

import math

import torch

__all__ = ["timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Embed timesteps as [cos(t·ω_0), …, cos(t·ω_{h−1}), sin(t·ω_0), …, sin(t·ω_{h−1})].

    Derived in chapter 6, eq. (train-time-embedding).

    The frequencies ω_k = max_period^(−k/h), h = ⌊dim/2⌋, run geometrically from 1 down to
    1/max_period, as in the Transformer's positional encoding (Vaswani et al., 2017) and
    improved-diffusion. For odd ``dim`` the last entry is a zero.

    Args:
        t: timesteps, shape (B,), integer or real.
        dim: embedding size, >= 1.
        max_period: the longest wavelength, > 1.

    Returns:
        float32 tensor (B, dim) on t's device.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be an int >= 1, got {dim!r}")
    if not max_period > 1:
        raise ValueError(f"max_period must be > 1, got {max_period!r}")
    if not torch.is_tensor(t) or t.ndim != 1:
        shape = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
        raise ValueError(f"t must be a 1-D tensor of timesteps, got {shape}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, embedding.new_zeros(embedding.shape[0], 1)], dim=-1)
    return embedding
