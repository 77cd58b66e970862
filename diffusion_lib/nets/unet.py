"""A small U-Net ε-predictor for images. Described in chapter 6, section "The denoiser".

The shape follows Ho et al. (2020) and improved-diffusion, cut down for 8×8 digits on a CPU:
residual blocks with GroupNorm and SiLU, a sinusoidal timestep embedding passed through an MLP
and added inside every block, self-attention at low resolution, skip connections by
concatenation, and optional class conditioning added to the timestep embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings import timestep_embedding

__all__ = ["UNet", "ResBlock", "SelfAttention"]


def _zero(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters, so a residual branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _groups(channels: int) -> int:
    return next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """x + f(x, emb): two 3×3 convolutions, the embedding added between them.

    Derived in chapter 6, eq. (train-resblock)."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, as a residual branch."""

    def __init__(self, channels: int, num_heads: int = 4):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads must divide channels ({channels}), got {num_heads}")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, emb: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """ε_θ(x_t, t[, y]) for images of shape (C, H, W).

    Args:
        in_channels: image channels.
        image_size: H = W; must be divisible by 2^(len(channel_mults) − 1).
        base_channels: channels at full resolution.
        channel_mults: channels per resolution level, as multiples of ``base_channels``; each
            level after the first halves the resolution.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention_resolutions: resolutions (in pixels) that get self-attention.
        num_classes: if set, the model is class-conditional and takes labels ``y`` in
            [0, num_classes − 1].
        dropout: dropout inside the residual blocks.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        base_channels: int = 64,
        channel_mults: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        attention_resolutions: Sequence[int] = (4,),
        num_classes: Optional[int] = None,
        dropout: float = 0.0,
        num_heads: int = 4,
    ):
        super().__init__()
        if image_size % 2 ** (len(channel_mults) - 1):
            raise ValueError(
                f"image_size must be divisible by 2^{len(channel_mults) - 1} for channel_mults "
                f"{tuple(channel_mults)}, got {image_size}"
            )
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"num_classes must be None or >= 1, got {num_classes}")
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        self.base_channels = base_channels
        emb_dim = 4 * base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.class_emb = nn.Embedding(num_classes, emb_dim) if num_classes is not None else None

        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skip_channels = [base_channels]
        channels, resolution = base_channels, image_size
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                blocks = [ResBlock(channels, base_channels * mult, emb_dim, dropout)]
                channels = base_channels * mult
                if resolution in attention_resolutions:
                    blocks.append(SelfAttention(channels, num_heads))
                self.down.append(nn.ModuleList(blocks))
                skip_channels.append(channels)
            if level != len(channel_mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(channels, channels, 3, stride=2, padding=1)]))
                skip_channels.append(channels)
                resolution //= 2
        self.middle = nn.ModuleList(
            [
                ResBlock(channels, channels, emb_dim, dropout),
                SelfAttention(channels, num_heads),
                ResBlock(channels, channels, emb_dim, dropout),
            ]
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for i in range(num_res_blocks + 1):
                blocks = [ResBlock(channels + skip_channels.pop(), base_channels * mult, emb_dim, dropout)]
                channels = base_channels * mult
                if resolution in attention_resolutions:
                    blocks.append(SelfAttention(channels, num_heads))
                if level != 0 and i == num_res_blocks:
                    blocks.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    blocks.append(nn.Conv2d(channels, channels, 3, padding=1))
                    resolution *= 2
                self.up.append(nn.ModuleList(blocks))
        self.out = nn.Sequential(
            nn.GroupNorm(_groups(channels), channels),
            nn.SiLU(),
            _zero(nn.Conv2d(channels, in_channels, 3, padding=1)),
        )

    def embed(self, t: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        """The vector added inside every block: MLP(sinusoidal(t)) [+ class embedding(y)]."""
        emb = self.time_mlp(timestep_embedding(t, self.base_channels).to(self.conv_in.weight.dtype))
        if self.class_emb is not None:
            if y is None:
                raise ValueError("y (class labels) is required: this UNet is class-conditional")
            emb = emb + self.class_emb(y)
        elif y is not None:
            raise ValueError("y was given but this UNet is unconditional (num_classes=None)")
        return emb

    @staticmethod
    def _run_blocks(blocks: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            h = block(h, emb) if isinstance(block, (ResBlock, SelfAttention)) else block(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        emb = self.embed(t, y)
        h = self.conv_in(x)
        skips = [h]
        for blocks in self.down:
            h = self._run_blocks(blocks, h, emb)
            skips.append(h)
        h = self._run_blocks(self.middle, h, emb)
        for blocks in self.up:
            h = self._run_blocks(blocks, torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)
