"""unCLIP's prior network: an MLP that denoises a CLIP image embedding given a text embedding.
Described in chapter 13, section "The prior".

DALL·E 2's prior (Ramesh et al., 2022, section 2.1) is a decoder-only Transformer over the
caption's tokens, the text embedding, the timestep, the noised image embedding and a final
query, which predicts the clean image embedding directly (x_0-prediction). For one-object scenes
whose caption the text embedding already summarises, a residual MLP over the concatenation
[noised embedding, text embedding, timestep] does the same job at a fraction of the cost.
"""

from __future__ import annotations

import torch
from torch import nn

from .embeddings import timestep_embedding

__all__ = ["PriorDenoiser"]


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


class PriorDenoiser(nn.Module):
    """f_θ(z_t, t, c) for embeddings z in R^D conditioned on c in R^D: x̂_0 (or ε̂), shape (B, D).

    [z_t, c] → linear, plus MLP(sinusoidal(t)) → residual blocks (LayerNorm, SiLU, linear) →
    LayerNorm → linear. The condition c = 0 is the "no text" condition that classifier-free
    guidance needs (the family drops texts to it in training).

    Args:
        embed_dim: D, the width of the embeddings (CLIP's ``embed_dim``).
        hidden: width of the hidden layers.
        num_layers: residual blocks.
        time_dim: size of the sinusoidal timestep embedding.
    """

    def __init__(self, embed_dim: int = 64, hidden: int = 512, num_layers: int = 4, time_dim: int = 64):
        super().__init__()
        for name, value in (
            ("embed_dim", embed_dim),
            ("hidden", hidden),
            ("num_layers", num_layers),
            ("time_dim", time_dim),
        ):
            _check_positive_int(name, value)
        self.embed_dim, self.time_dim = embed_dim, time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(2 * embed_dim, hidden)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(num_layers)
        )
        self.outp = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, embed_dim))

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The network's output for noised embeddings ``z`` (B, D) at timesteps ``t`` (B,)
        under conditions ``cond`` (B, D).

        Raises:
            ValueError: z or cond not of shape (B, D).
        """
        for name, value in (("z", z), ("cond", cond)):
            if not torch.is_tensor(value) or value.ndim != 2 or value.shape[1] != self.embed_dim:
                shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
                raise ValueError(f"{name} must have shape (B, {self.embed_dim}), got {shape}")
        if cond.shape[0] != z.shape[0]:
            raise ValueError(f"cond must have z's batch size {z.shape[0]}, got {cond.shape[0]}")
        h = self.inp(torch.cat([z, cond.to(z)], dim=1))
        h = h + self.time_mlp(timestep_embedding(t, self.time_dim).to(z.dtype))
        for layer in self.layers:
            h = h + layer(h)
        return self.outp(h)
