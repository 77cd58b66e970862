"""A space–time U-Net for short videos: spatial layers per frame, attention across frames.

Described in chapter 15, section "Video". After Ho et al. (2022), "Video Diffusion Models": the
image U-Net's 2-D residual blocks and spatial self-attention run on every frame alone (the
frames folded into the batch), and after each of them a temporal attention layer lets every
pixel position attend to the same position in the other frames (a learned embedding of the
frame index tells it which frame is which). Without the temporal layers (``temporal=False``)
the same network denoises each frame independently: the baseline that generates frames one by
one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings import timestep_embedding
from .unet import ResBlock, SelfAttention

__all__ = ["SpaceTimeUNet", "TemporalAttention"]


def _zeroed(module: nn.Module) -> nn.Module:
    """The layer with its parameters zeroed, so that a residual branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class TemporalAttention(nn.Module):
    """Multi-head self-attention across the frames, as a residual branch: at each pixel position
    (factorised), or over every pixel of every frame of a clip at once (``joint``).

    Derived in chapter 15, eq. (video-temporal). Input (B·F, C, H, W) with the frames of a clip
    consecutive. Factorised, each of the B·H·W positions is a sequence of F tokens of C channels:
    a pixel sees its own position in the other frames only. Joint, each clip is one sequence of
    F·H·W tokens: a moving object can be found wherever it is in another frame, at (F·H·W)²
    rather than F²·H·W pairs, so it is affordable only on the coarsest feature maps. A learned
    embedding of the frame index tells the tokens which frame they come from.
    """

    def __init__(self, channels: int, frames: int, num_heads: int = 4, joint: bool = False):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads must divide channels ({channels}), got {num_heads}")
        self.frames, self.num_heads, self.joint = frames, num_heads, joint
        self.norm = nn.LayerNorm(channels)
        self.position = nn.Parameter(torch.zeros(frames, channels))
        nn.init.normal_(self.position, std=0.02)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = _zeroed(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x plus the attention over the frames, of x's shape (B·F, C, H, W)."""
        bf, c, h, w = x.shape
        f = self.frames
        tokens = x.view(bf // f, f, c, h * w).permute(0, 3, 1, 2)  # (B, H·W, F, C)
        tokens = self.norm(tokens) + self.position
        length = h * w * f if self.joint else f  # one sequence per clip, or per pixel position
        q, k, v = (
            self.qkv(tokens.reshape(-1, length, c))
            .view(-1, length, 3, self.num_heads, c // self.num_heads)
            .unbind(2)
        )
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = self.proj(out.transpose(1, 2).reshape(-1, length, c))
        return x + out.view(bf // f, h * w, f, c).permute(0, 2, 3, 1).reshape(bf, c, h, w)


class SpaceTimeUNet(nn.Module):
    """ε_θ(x_t, t[, y]) for videos (B, F, C, H, W).

    Args:
        frames: F, the frames of a clip.
        in_channels: C.
        image_size: H = W, divisible by 2^(len(channel_mults) − 1).
        base_channels: channels at full resolution (a multiple of ``num_heads``).
        channel_mults: channels per level, as multiples of ``base_channels``; each level after
            the first halves the resolution.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention_resolutions: resolutions (pixels) with spatial self-attention.
        temporal: add a :class:`TemporalAttention` after every residual block and spatial
            attention; False gives the independent-frame baseline.
        temporal_resolutions: with ``temporal``, the resolutions (pixels) that get temporal
            attention; None: every resolution.
        joint_resolutions: with ``temporal``, the resolutions whose temporal attention is joint
            over space and time (every pixel of every frame; :class:`TemporalAttention`), not
            per pixel position.
        num_classes: if set, the model is class-conditional (one label per clip).
        num_heads: attention heads.
        patch_size: p; the network works on p × p patches folded into channels
            (``pixel_unshuffle``: (C, H, W) → (p²C, H/p, W/p)) and unfolds its output again, so
            its first level runs at H/p pixels, p² times cheaper; the resolutions above count
            those coarser pixels. 1: on the pixels themselves.

    Raises:
        ValueError: sizes that are not positive ints, or an image size the levels cannot halve.
    """

    def __init__(
        self,
        frames: int = 8,
        in_channels: int = 1,
        image_size: int = 16,
        base_channels: int = 16,
        channel_mults: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention_resolutions: Sequence[int] = (4,),
        temporal: bool = True,
        temporal_resolutions: Optional[Sequence[int]] = None,
        joint_resolutions: Sequence[int] = (),
        num_classes: Optional[int] = None,
        num_heads: int = 4,
        patch_size: int = 1,
    ):
        super().__init__()
        for name, value in (
            ("frames", frames),
            ("in_channels", in_channels),
            ("image_size", image_size),
            ("base_channels", base_channels),
            ("num_res_blocks", num_res_blocks),
            ("patch_size", patch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if image_size % (patch_size * 2 ** (len(channel_mults) - 1)):
            raise ValueError(
                f"image_size must be divisible by patch_size · 2^{len(channel_mults) - 1} = "
                f"{patch_size * 2 ** (len(channel_mults) - 1)} for channel_mults {tuple(channel_mults)}, "
                f"got {image_size}"
            )
        if not isinstance(temporal, bool):
            raise ValueError(f"temporal must be True or False, got {temporal!r}")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
        ):
            raise ValueError(f"num_classes must be None or an int >= 1, got {num_classes!r}")
        self.frames, self.in_channels, self.image_size = frames, in_channels, image_size
        self.patch_size = patch_size
        folded = in_channels * patch_size**2  # the channels of a p × p patch
        self.base_channels, self.num_classes, self.temporal = base_channels, num_classes, temporal
        emb_dim = 4 * base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.class_emb = nn.Embedding(num_classes, emb_dim) if num_classes is not None else None

        def attention(channels: int, resolution: int) -> list:
            layers = [SelfAttention(channels, num_heads)] if resolution in attention_resolutions else []
            across = temporal and (temporal_resolutions is None or resolution in temporal_resolutions)
            joint = resolution in joint_resolutions
            return layers + ([TemporalAttention(channels, frames, num_heads, joint)] if across else [])

        self.conv_in = nn.Conv2d(folded, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, channels, resolution = [base_channels], base_channels, image_size // patch_size
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                blocks = [ResBlock(channels, base_channels * mult, emb_dim, scale_shift=True)]
                channels = base_channels * mult
                self.down.append(nn.ModuleList(blocks + attention(channels, resolution)))
                skips.append(channels)
            if level != len(channel_mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(channels, channels, 3, stride=2, padding=1)]))
                skips.append(channels)
                resolution //= 2
        self.middle = nn.ModuleList(
            [
                ResBlock(channels, channels, emb_dim, scale_shift=True),
                *attention(channels, resolution),
                ResBlock(channels, channels, emb_dim, scale_shift=True),
            ]
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for i in range(num_res_blocks + 1):
                blocks = [ResBlock(channels + skips.pop(), base_channels * mult, emb_dim, scale_shift=True)]
                channels = base_channels * mult
                blocks += attention(channels, resolution)
                if level != 0 and i == num_res_blocks:
                    blocks += [
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv2d(channels, channels, 3, padding=1),
                    ]
                    resolution *= 2
                self.up.append(nn.ModuleList(blocks))
        self.out = nn.Sequential(
            nn.GroupNorm(math.gcd(32, channels), channels),
            nn.SiLU(),
            _zeroed(nn.Conv2d(channels, folded, 3, padding=1)),
        )

    @staticmethod
    def _run(blocks: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            h = block(h, emb) if isinstance(block, ResBlock) else block(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """ε_θ(x_t, t[, y]), of x's shape (B, F, C, H, W).

        Raises:
            ValueError: x of the wrong shape; labels missing, unexpected or out of range.
        """
        want = (self.frames, self.in_channels, self.image_size, self.image_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != want:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, want))}), got {tuple(x.shape)}")
        b, f = x.shape[:2]
        emb = self.time_mlp(timestep_embedding(t, self.base_channels).to(x.dtype))
        if self.class_emb is not None:
            if y is None or not torch.is_tensor(y) or y.dtype.is_floating_point or y.shape != (b,):
                raise ValueError(
                    f"y must be an integer tensor of shape ({b},) for a class-conditional network"
                )
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(
                    f"y must hold labels in [0, {self.num_classes - 1}], got values in "
                    f"[{int(y.min())}, {int(y.max())}]"
                )
            emb = emb + self.class_emb(y)
        elif y is not None:
            raise ValueError("y was given but this network is unconditional (num_classes=None)")
        emb = emb.repeat_interleave(f, dim=0)  # one embedding per frame, the clip's
        h = self.conv_in(F.pixel_unshuffle(x.reshape(b * f, *x.shape[2:]), self.patch_size))
        skips = [h]
        for blocks in self.down:
            h = self._run(blocks, h, emb)
            skips.append(h)
        h = self._run(self.middle, h, emb)
        for blocks in self.up:
            h = self._run(blocks, torch.cat([h, skips.pop()], dim=1), emb)
        return F.pixel_shuffle(self.out(h), self.patch_size).view(b, f, *x.shape[2:])
