"""The KL autoencoder of latent diffusion (chapter 12): a convolutional encoder to a
diagonal-Gaussian posterior over a small latent image, and a decoder back to pixels.

The layout follows Rombach et al.'s (2022) ``Encoder``/``Decoder`` at a much smaller size:
residual blocks at each level, a strided convolution between levels on the way down and a
nearest-neighbour upsampling with a convolution on the way up, no attention. With
``channel_mults`` of length L the latents are ``image_size / 2^(L − 1)`` wide.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..vae import DiagonalGaussian

__all__ = ["AutoencoderKL"]


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups (groups of several channels each at the book's widths)."""
    return nn.GroupNorm(next(g for g in (8, 4, 2, 1) if channels % g == 0), channels)


class _Block(nn.Module):
    """x + conv(SiLU(norm(conv(SiLU(norm(x)))))), with a 1×1 convolution on the skip path when
    the channels change."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(in_channels), nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2, self.conv2 = _norm(out_channels), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class AutoencoderKL(nn.Module):
    """Encoder x → q(z | x) = N(μ, σ²) and decoder z → x̂, for images (C, H, H) in [−1, 1].

    Args:
        in_channels: image channels.
        image_size: H = W; divisible by 2^(len(channel_mults) − 1).
        base_channels: channels at full resolution.
        channel_mults: channels per level as multiples of ``base_channels``; each level after the
            first halves the resolution (two more levels: a downsampling factor of 4).
        num_res_blocks: residual blocks per level (the decoder has one more, as in Rombach et al.).
        latent_channels: channels of the latent image.

    Raises:
        ValueError: a size that is not a positive int, empty ``channel_mults``, or an image size
            the levels cannot halve.
    """

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        latent_channels: int = 4,
    ):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels), ("image_size", image_size), ("base_channels", base_channels),
            ("num_res_blocks", num_res_blocks), ("latent_channels", latent_channels),
        ):  # fmt: skip
            _check_int(name, value, 1)
        mults = list(channel_mults)
        if not mults or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in mults):
            raise ValueError(
                f"channel_mults must be a non-empty sequence of ints >= 1, got {channel_mults!r}"
            )
        factor = 2 ** (len(mults) - 1)
        if image_size % factor:
            raise ValueError(
                f"image_size must be divisible by {factor} for channel_mults {tuple(mults)}, got {image_size}"
            )
        self.in_channels, self.image_size, self.latent_channels = in_channels, image_size, latent_channels
        self.latent_size = image_size // factor

        widths = [base_channels * m for m in mults]
        down = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        channels = widths[0]
        for level, width in enumerate(widths):
            for _ in range(num_res_blocks):
                down.append(_Block(channels, width))
                channels = width
            if level != len(widths) - 1:
                down.append(nn.Conv2d(channels, channels, 3, stride=2, padding=1))
        down += [
            _Block(channels, channels),
            _norm(channels),
            nn.SiLU(),
            nn.Conv2d(channels, 2 * latent_channels, 3, padding=1),
        ]
        self.encoder = nn.Sequential(*down)

        up = [nn.Conv2d(latent_channels, channels, 3, padding=1), _Block(channels, channels)]
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(num_res_blocks + 1):
                up.append(_Block(channels, width))
                channels = width
            if level != 0:
                up += [
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(channels, channels, 3, padding=1),
                ]
        up += [_norm(channels), nn.SiLU(), nn.Conv2d(channels, in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*up)

    @property
    def latent_shape(self) -> tuple:
        """The shape of one latent image, (latent_channels, H / f, H / f)."""
        return (self.latent_channels, self.latent_size, self.latent_size)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """q(z | x): the mean and log-variance of each latent number, each (B, *latent_shape).

        Raises:
            ValueError: x not of shape (B, in_channels, image_size, image_size).
        """
        expected = (self.in_channels, self.image_size, self.image_size)
        if not torch.is_tensor(x) or x.ndim != 4 or tuple(x.shape[1:]) != expected:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {shape}")
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x̂ for latents z (B, *latent_shape), unscaled (not multiplied by a scale factor).

        Raises:
            ValueError: z not of shape (B, *latent_shape).
        """
        if not torch.is_tensor(z) or z.ndim != 4 or tuple(z.shape[1:]) != self.latent_shape:
            shape = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"z must have shape (B, {', '.join(map(str, self.latent_shape))}), got {shape}")
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator=None) -> tuple:
        """(x̂, q(z | x)): the decoding of one sample z ~ q(z | x), and the posterior."""
        posterior = self.encode(x)
        return self.decode(posterior.sample(generator)), posterior
