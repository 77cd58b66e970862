"""DiffWave's denoiser for waveforms: a stack of non-causal dilated residual layers.

Described in chapter 15, section "DiffWave". After Kong et al. (2021), "DiffWave: A Versatile
Diffusion Model for Audio Synthesis", cut down for 0.26-s clips on a CPU. Each residual layer
adds a projection of the diffusion-step embedding to its input, applies a dilated convolution of
width 3 (dilation 2^(i mod cycle)) to 2C channels, adds the conditioner (a class embedding, or a
mel spectrogram upsampled to the waveform's rate), gates with tanh · sigmoid (WaveNet's gated
unit), and splits a 1×1 convolution into a residual (added to the input, scaled by 1/√2) and a
skip; the skips of all layers are summed, scaled by 1/√layers, and mapped to ε. No causality:
each output sample sees as far into the future as into the past, which is what a denoiser of a
whole clip needs (WaveNet's causal convolutions were for autoregressive generation).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings import timestep_embedding

__all__ = ["DiffWave", "receptive_field"]


def receptive_field(
    num_layers: int, dilation_cycle: int, kernel_size: int = 3, dilation_base: int = 2
) -> int:
    """The number of input samples one output sample of :class:`DiffWave` depends on.

    Derived in chapter 15, eq. (wave-receptive): a convolution of width k and dilation d widens
    the field by (k − 1)·d, so ``1 + (k − 1) Σ_i b^(i mod cycle)`` over the layers, b the
    dilation base.
    """
    return 1 + (kernel_size - 1) * sum(dilation_base ** (i % dilation_cycle) for i in range(num_layers))


class _ResidualLayer(nn.Module):
    """One gated, dilated residual layer; returns (residual output, skip)."""

    def __init__(self, channels: int, dilation: int, emb_dim: int, cond_channels: Optional[int]):
        super().__init__()
        self.dilated = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.step = nn.Linear(emb_dim, channels)
        # A global (class) or a local (mel) conditioner, both as 1×1 maps to the 2C gate inputs.
        self.cond = nn.Conv1d(cond_channels, 2 * channels, 1) if cond_channels else None
        self.out = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x, step, cond):
        h = self.dilated(x + self.step(step)[:, :, None])
        if self.cond is not None:
            h = h + self.cond(cond)
        gate, filt = h.chunk(2, dim=1)
        h = torch.sigmoid(gate) * torch.tanh(filt)
        residual, skip = self.out(h).chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class DiffWave(nn.Module):
    """ε_θ(x_t, t[, y]) or ε_θ(x_t, t, mel) for waveforms (B, 1, L).

    Args:
        length: L, the clip length in samples (checked on input).
        residual_channels: C, the width of every layer.
        num_layers: the residual layers.
        dilation_cycle: dilations 1, b, b², …, b^(cycle − 1), repeated (b = ``dilation_base``).
        num_classes: if set, the model is class-conditional (a global conditioner: a learned
            embedding of y added, through each layer's 1×1 map, to its gate inputs).
        n_mels, hop: if set, the model is a vocoder conditioned on a mel spectrogram
            (B, n_mels, frames) with ``hop`` samples per frame, upsampled to the waveform's rate by
            two transposed convolutions, each stretching time by √hop (DiffWave's upsampler);
            hop must be a square of an int >= 2.
        step_dim: the width of the diffusion-step embedding (sinusoidal, then a two-layer MLP).
        dilation_base: b; DiffWave's is 2. With b = 3 = the kernel width the dilated
            convolutions tile the input without overlap, and n layers see 3^n samples.

    Raises:
        ValueError: sizes that are not positive ints, both conditioners, or a hop that is not a
            square.
    """

    def __init__(
        self,
        length: int,
        residual_channels: int = 32,
        num_layers: int = 10,
        dilation_cycle: int = 10,
        num_classes: Optional[int] = None,
        n_mels: Optional[int] = None,
        hop: Optional[int] = None,
        step_dim: int = 64,
        dilation_base: int = 2,
    ):
        super().__init__()
        for name, value in (
            ("length", length),
            ("residual_channels", residual_channels),
            ("num_layers", num_layers),
            ("dilation_cycle", dilation_cycle),
            ("step_dim", step_dim),
            ("dilation_base", dilation_base),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
        ):
            raise ValueError(f"num_classes must be None or an int >= 1, got {num_classes!r}")
        if (n_mels is None) != (hop is None):
            raise ValueError(f"n_mels and hop go together, got n_mels={n_mels!r}, hop={hop!r}")
        if n_mels is not None and num_classes is not None:
            raise ValueError("a DiffWave takes one conditioner: num_classes or n_mels, not both")
        if hop is not None:
            root = math.isqrt(hop) if isinstance(hop, int) and not isinstance(hop, bool) and hop > 0 else 0
            if root < 2 or root * root != hop:
                raise ValueError(f"hop must be the square of an int >= 2 (4, 9, 16, …), got {hop!r}")
            if isinstance(n_mels, bool) or not isinstance(n_mels, int) or n_mels < 1:
                raise ValueError(f"n_mels must be an int >= 1, got {n_mels!r}")
        self.length, self.num_classes, self.n_mels, self.hop = length, num_classes, n_mels, hop
        self.num_layers, self.dilation_cycle, self.dilation_base = num_layers, dilation_cycle, dilation_base
        self.step_dim = step_dim
        emb_dim = 4 * step_dim
        self.step_mlp = nn.Sequential(
            nn.Linear(step_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim), nn.SiLU()
        )
        cond_channels = None
        if num_classes is not None:
            self.class_emb = nn.Embedding(num_classes, emb_dim)
            cond_channels = emb_dim
        if n_mels is not None:
            stretch = math.isqrt(hop)
            self.upsample = nn.ModuleList(
                nn.ConvTranspose2d(1, 1, (3, 2 * stretch), stride=(1, stretch), padding=(1, stretch // 2))
                for _ in range(2)
            )
            cond_channels = n_mels
        self.conv_in = nn.Conv1d(1, residual_channels, 1)
        self.layers = nn.ModuleList(
            _ResidualLayer(residual_channels, dilation_base ** (i % dilation_cycle), emb_dim, cond_channels)
            for i in range(num_layers)
        )
        self.skip_out = nn.Conv1d(residual_channels, residual_channels, 1)
        self.conv_out = nn.Conv1d(residual_channels, 1, 1)
        nn.init.zeros_(self.conv_out.weight)  # the network starts by predicting ε = 0
        nn.init.zeros_(self.conv_out.bias)

    @property
    def receptive_field(self) -> int:
        """Input samples seen by one output sample (:func:`receptive_field`)."""
        return receptive_field(self.num_layers, self.dilation_cycle, dilation_base=self.dilation_base)

    def upsample_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """The mel spectrogram (B, n_mels, frames) stretched to (B, n_mels, L): two transposed
        convolutions, each stretching time by √hop, with leaky ReLUs (slope 0.4), cut to L."""
        h = mel[:, None]
        for layer in self.upsample:
            h = F.leaky_relu(layer(h), 0.4)
        return h[:, 0, :, : self.length]

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: Optional[torch.Tensor] = None,
        mel: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """ε_θ(x_t, t, ·), of x's shape (B, 1, L).

        Args:
            x: noisy clips (B, 1, L).
            t: diffusion steps (B,) (integers, or fractional ones: the embedding is sinusoidal).
            y: labels (B,) in [0, num_classes − 1] for a class-conditional network, else None.
            mel: a mel spectrogram (B, n_mels, frames) with frames·hop >= L for a vocoder, else None.

        Raises:
            ValueError: x of the wrong shape, or a conditioner missing, unexpected or misshapen.
        """
        if x.ndim != 3 or x.shape[1] != 1 or x.shape[2] != self.length:
            raise ValueError(f"x must have shape (B, 1, {self.length}), got {tuple(x.shape)}")
        batch = x.shape[0]
        step = self.step_mlp(timestep_embedding(t, self.step_dim).to(x.dtype))
        cond = None
        if self.num_classes is not None:
            if y is None or not torch.is_tensor(y) or y.dtype.is_floating_point or y.shape != (batch,):
                raise ValueError(
                    f"y must be an integer tensor of shape ({batch},) for a class-conditional DiffWave"
                )
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(
                    f"y must hold labels in [0, {self.num_classes - 1}], got values in "
                    f"[{int(y.min())}, {int(y.max())}]"
                )
            cond = self.class_emb(y)[:, :, None]
        elif y is not None:
            raise ValueError("y was given but this DiffWave is not class-conditional (num_classes=None)")
        if self.n_mels is not None:
            frames = -(-self.length // self.hop)
            if mel is None or mel.ndim != 3 or mel.shape[0] != batch or mel.shape[1] != self.n_mels:
                got = tuple(mel.shape) if torch.is_tensor(mel) else mel
                raise ValueError(f"mel must have shape ({batch}, {self.n_mels}, frames), got {got}")
            if mel.shape[2] < frames:
                raise ValueError(
                    f"mel must have at least {frames} frames for {self.length} samples, got {mel.shape[2]}"
                )
            cond = self.upsample_mel(mel.to(x.dtype))
        elif mel is not None:
            raise ValueError("mel was given but this DiffWave is not a vocoder (n_mels=None)")
        h = F.relu(self.conv_in(x))
        skips = 0.0
        for layer in self.layers:
            h, skip = layer(h, step, cond)
            skips = skips + skip
        h = F.relu(self.skip_out(skips / math.sqrt(self.num_layers)))
        return self.conv_out(h)
