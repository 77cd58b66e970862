"""An MLP ε-predictor for 2-D toy data. Described in chapter 6, section "The same on a ring"."""

from __future__ import annotations

import torch
from torch import nn

from .embeddings import timestep_embedding

__all__ = ["MLPDenoiser"]


class MLPDenoiser(nn.Module):
    """ε_θ(x_t, t) for points in R^d: [x_t, MLP(sinusoidal(t))] → residual MLP → ε.

    Args:
        data_dim: d, the dimension of the points.
        hidden: width of the hidden layers.
        num_layers: hidden residual layers.
        time_dim: size of the sinusoidal timestep embedding.
    """

    def __init__(self, data_dim: int = 2, hidden: int = 128, num_layers: int = 3, time_dim: int = 32):
        super().__init__()
        if data_dim < 1 or hidden < 1 or num_layers < 1 or time_dim < 1:
            raise ValueError(
                f"data_dim, hidden, num_layers and time_dim must be >= 1, got "
                f"{data_dim}, {hidden}, {num_layers}, {time_dim}"
            )
        self.data_dim, self.time_dim = data_dim, time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(data_dim, hidden)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(num_layers)
        )
        self.outp = nn.Sequential(nn.SiLU(), nn.Linear(hidden, data_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"x must have shape (B, {self.data_dim}), got {tuple(x.shape)}")
        h = self.inp(x) + self.time_mlp(timestep_embedding(t, self.time_dim).to(x.dtype))
        for layer in self.layers:
            h = h + layer(h)
        return self.outp(h)
