"""A small U-Net ε-predictor for images, and its encoder half as a noise-aware classifier.

Described in chapter 6, section "The denoiser". The shape follows Ho et al. (2020) and
improved-diffusion, cut down for 8×8 digits on a CPU: residual blocks with GroupNorm and SiLU, a
sinusoidal timestep embedding passed through an MLP and added inside every block, self-attention
at low resolution, skip connections by concatenation, and optional class conditioning added to
the timestep embedding, with an optional learned "no label" for classifier-free guidance
(chapter 11). :class:`EncoderClassifier` is the U-Net's downsampling half and middle block
followed by a pooled linear head: ADM's classifier p_φ(y | x_t, t) for classifier guidance
(Dhariwal & Nichol, 2021; chapter 11).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Optional

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings import timestep_embedding

__all__ = [
    "UNet",
    "EncoderClassifier",
    "ResBlock",
    "SelfAttention",
    "CrossAttention",
    "Context",
    "check_context",
    "pool_context",
]


def _zero(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters, so a residual branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _groups(channels: int) -> int:
    return next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """x + f(x, emb): two 3×3 convolutions, the embedding added between them.

    Derived in chapter 6, eq. (train-resblock). With ``scale_shift`` the embedding instead
    gives a scale and a shift applied after the second normalisation,
    ``norm(h) · (1 + scale) + shift`` (ADM's ``use_scale_shift_norm``, Dhariwal & Nichol, 2021).
    Chapter 12 says why its latent denoiser takes it: added before a GroupNorm whose groups hold
    one channel each (32 groups of 32 channels), a per-channel constant is subtracted again by
    the normalisation, so the plain block loses the embedding there; after the normalisation it
    survives at any width.

    Args:
        in_channels, out_channels: channels of x and of the output.
        emb_dim: width of the embedding.
        dropout: dropout before the second convolution.
        scale_shift: apply the embedding as a scale and a shift after the normalisation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        dropout: float = 0.0,
        scale_shift: bool = False,
    ):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, (2 if scale_shift else 1) * out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb(F.silu(emb))[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1.0 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
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


class Context(NamedTuple):
    """What a text-conditioned U-Net attends to: token states and which of them are real.

    Attributes:
        states: (B, L, D) float, one vector per token (a text encoder's last hidden states).
        mask: (B, L) bool, True for a token to attend to, False for padding; every row needs
            at least one True.
    """

    states: torch.Tensor
    mask: torch.Tensor


def check_context(context, batch: int, dim: int) -> None:
    """Raise ValueError unless ``context`` is a :class:`Context` of ``batch`` rows of ``dim``-wide
    states with a boolean mask of the same (B, L) and a real token in every row."""
    if not isinstance(context, Context):
        raise ValueError(f"context must be a Context(states, mask), got {type(context).__name__}")
    states, mask = context
    if not torch.is_tensor(states) or states.ndim != 3 or states.shape[0] != batch or states.shape[2] != dim:
        found = tuple(states.shape) if torch.is_tensor(states) else type(states).__name__
        raise ValueError(f"context states must have shape ({batch}, L, {dim}), got {found}")
    if not torch.is_tensor(mask) or mask.dtype != torch.bool or tuple(mask.shape) != tuple(states.shape[:2]):
        found = (tuple(mask.shape), mask.dtype) if torch.is_tensor(mask) else type(mask).__name__
        raise ValueError(f"context mask must be a bool tensor {tuple(states.shape[:2])}, got {found}")
    if not bool(mask.any(dim=1).all()):
        raise ValueError("context mask must keep at least one token in every row, got a row of padding only")


def pool_context(context: Context) -> torch.Tensor:
    """The state at each row's last kept token, (B, D): with a CLIP text encoder's states and
    ``mask = tokens != pad``, the ``<eos>`` state that CLIP itself pools (before its projection).

    Derived in chapter 12, eq. (ldm-pooled): what a text-conditional :class:`UNet` with
    ``pooled_context`` adds, through a linear map, to its timestep embedding.

    Raises:
        ValueError: ``context`` not a :class:`Context` with a kept token in every row.
    """
    if not isinstance(context, Context) or not torch.is_tensor(context.states) or context.states.ndim != 3:
        raise ValueError(f"context must be a Context with (B, L, D) states, got {type(context).__name__}")
    states, mask = context
    check_context(context, states.shape[0], states.shape[2])
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = torch.where(mask, positions, -1).max(dim=1).values
    return states[torch.arange(states.shape[0], device=states.device), last]


class CrossAttention(nn.Module):
    """Multi-head attention from the pixels of a feature map to a sequence of token states, as a
    residual branch: the text conditioning of latent diffusion (Rombach et al., 2022, eq. (3)).

    Derived in chapter 12, eq. (ldm-cross-attention). The queries come from the image,
    Q = W_Q · GroupNorm(h) at each of the H·W pixels; the keys and values from the text,
    K = W_K · c and V = W_V · c at each of the L tokens. Pixel i receives
    Σ_j softmax_j(q_i · k_j / √d) v_j, the softmax over the tokens that ``mask`` keeps (padding
    gets weight 0), and the output projection, zero-initialised as in :class:`SelfAttention`,
    adds it to h: the block starts as the identity.

    Args:
        channels: C, the feature map's channels (a multiple of ``num_heads``).
        context_dim: D, the width of the token states.
        num_heads: attention heads; each has C / num_heads dimensions.
    """

    def __init__(self, channels: int, context_dim: int, num_heads: int = 4):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads must divide channels ({channels}), got {num_heads}")
        self.num_heads, self.context_dim = num_heads, context_dim
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.to_q = nn.Conv2d(channels, channels, 1)
        self.to_kv = nn.Linear(context_dim, 2 * channels)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def _qkv(self, x: torch.Tensor, context: Context) -> tuple:
        """Queries (B, heads, H·W, d), keys and values (B, heads, L, d), the mask (B, 1, 1, L)."""
        check_context(context, x.shape[0], self.context_dim)
        b, c, h, w = x.shape
        d = c // self.num_heads
        q = self.to_q(self.norm(x)).reshape(b, self.num_heads, d, h * w).transpose(-1, -2)
        kv = self.to_kv(context.states.to(x.dtype))  # (B, L, 2C)
        k, v = kv.reshape(b, -1, 2, self.num_heads, d).permute(2, 0, 3, 1, 4)
        return q, k, v, context.mask[:, None, None, :]

    def weights(self, x: torch.Tensor, context: Context) -> torch.Tensor:
        """The attention weights (B, heads, H·W, L): each pixel's distribution over the tokens
        (rows sum to 1; padding gets 0). What chapter 12's attention maps show.

        Raises:
            ValueError: a context that does not fit (see :func:`check_context`).
        """
        q, k, _, keep = self._qkv(x, context)
        scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
        return scores.masked_fill(~keep, float("-inf")).softmax(dim=-1)

    def forward(self, x: torch.Tensor, context: Context) -> torch.Tensor:
        """x + proj(attention of x's pixels to the context's tokens), of x's shape.

        Raises:
            ValueError: a context that does not fit (see :func:`check_context`).
        """
        b, c, h, w = x.shape
        q, k, v, keep = self._qkv(x, context)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # (B, heads, H·W, d)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


def _check_image_size(image_size: int, channel_mults: Sequence[int]) -> None:
    if image_size % 2 ** (len(channel_mults) - 1):
        raise ValueError(
            f"image_size must be divisible by 2^{len(channel_mults) - 1} for channel_mults "
            f"{tuple(channel_mults)}, got {image_size}"
        )


def _time_mlp(base_channels: int, emb_dim: int) -> nn.Sequential:
    """The MLP that turns the sinusoidal embedding of t (``base_channels`` wide) into the vector
    added inside every block (``emb_dim`` wide)."""
    return nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))


def _run_blocks(
    blocks: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor, context: Optional[Context] = None
) -> torch.Tensor:
    """Apply one level's blocks in order; residual and attention blocks also take ``emb``,
    cross-attention blocks the ``context``."""
    for block in blocks:
        if isinstance(block, CrossAttention):
            h = block(h, context)
        elif isinstance(block, (ResBlock, SelfAttention)):
            h = block(h, emb)
        else:
            h = block(h)
    return h


def _attention(channels: int, num_heads: int, context_dim: Optional[int]) -> list:
    """Self-attention, followed by cross-attention to a context ``context_dim`` wide if given."""
    blocks: list = [SelfAttention(channels, num_heads)]
    if context_dim is not None:
        blocks.append(CrossAttention(channels, context_dim, num_heads))
    return blocks


class _DownPath(NamedTuple):
    """The U-Net's downsampling half and middle block, as :func:`_down_path` builds them."""

    conv_in: nn.Conv2d
    down: nn.ModuleList
    middle: nn.ModuleList
    skip_channels: list  # the channels of every feature map the up path receives, in order
    channels: int  # channels at the bottom
    resolution: int  # resolution at the bottom


def _down_path(
    in_channels: int,
    image_size: int,
    base_channels: int,
    channel_mults: Sequence[int],
    num_res_blocks: int,
    attention_resolutions: Sequence[int],
    emb_dim: int,
    dropout: float,
    num_heads: int,
    context_dim: Optional[int] = None,
    scale_shift: bool = False,
) -> _DownPath:
    """The input convolution, the levels on the way down (residual blocks, attention at the
    resolutions asked, a strided convolution between levels) and the middle block (residual,
    attention, residual): the part the U-Net and the encoder classifier share. With
    ``context_dim``, cross-attention to the context follows every self-attention."""
    conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
    down = nn.ModuleList()
    skip_channels = [base_channels]
    channels, resolution = base_channels, image_size
    for level, mult in enumerate(channel_mults):
        for _ in range(num_res_blocks):
            blocks = [ResBlock(channels, base_channels * mult, emb_dim, dropout, scale_shift)]
            channels = base_channels * mult
            if resolution in attention_resolutions:
                blocks += _attention(channels, num_heads, context_dim)
            down.append(nn.ModuleList(blocks))
            skip_channels.append(channels)
        if level != len(channel_mults) - 1:
            down.append(nn.ModuleList([nn.Conv2d(channels, channels, 3, stride=2, padding=1)]))
            skip_channels.append(channels)
            resolution //= 2
    middle = nn.ModuleList(
        [
            ResBlock(channels, channels, emb_dim, dropout, scale_shift),
            *_attention(channels, num_heads, context_dim),
            ResBlock(channels, channels, emb_dim, dropout, scale_shift),
        ]
    )
    return _DownPath(conv_in, down, middle, skip_channels, channels, resolution)


def _check_input(x: torch.Tensor, in_channels: int, image_size: int) -> None:
    expected = (in_channels, image_size, image_size)
    if not torch.is_tensor(x) or x.ndim != 4 or tuple(x.shape[1:]) != expected:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {shape}")


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
        num_heads: attention heads; must divide the channels of every attention layer.
        null_label: with ``num_classes``, add one learned class embedding, the label
            ``num_classes``, meaning "no label": trained by replacing some training labels with
            it (conditioning dropout), it lets one network give both ε(x_t, t, y) and
            ε(x_t, t, ∅) for classifier-free guidance (Ho & Salimans, 2022; chapter 11). Without
            it the network is as before (the same parameters, so earlier weights load).
        context_dim: if set, the model is text-conditional (chapter 12): every self-attention
            layer is followed by a :class:`CrossAttention` to a :class:`Context` of token states
            this wide, which ``forward`` then requires.
        scale_shift: residual blocks apply the embedding as a scale and shift after their
            normalisation (:class:`ResBlock`); False keeps the book's earlier networks.
        pooled_context: with ``context_dim``, also add a linear map of the context's pooled
            state (:func:`pool_context`, the state at each row's last kept token: a CLIP text
            encoder's ``<eos>``) to the timestep embedding, as Imagen (Saharia et al., 2022) and
            SDXL (Podell et al., 2023) do: the text then reaches every residual block, besides the
            pixels' cross-attention. Zero-initialised, so the network starts as without it.

    Raises:
        ValueError: an image size the levels cannot halve, ``num_classes`` < 1,
            ``null_label`` without ``num_classes``, or ``context_dim`` not None or an int >= 1.
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
        null_label: bool = False,
        context_dim: Optional[int] = None,
        scale_shift: bool = False,
        pooled_context: bool = False,
    ):
        super().__init__()
        _check_image_size(image_size, channel_mults)
        if context_dim is not None and (
            isinstance(context_dim, bool) or not isinstance(context_dim, int) or context_dim < 1
        ):
            raise ValueError(f"context_dim must be None or an int >= 1, got {context_dim!r}")
        if not isinstance(scale_shift, bool):
            raise ValueError(f"scale_shift must be True or False, got {scale_shift!r}")
        if not isinstance(pooled_context, bool):
            raise ValueError(f"pooled_context must be True or False, got {pooled_context!r}")
        if pooled_context and context_dim is None:
            raise ValueError("pooled_context=True needs context_dim (a text-conditional UNet), got None")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
        ):
            raise ValueError(f"num_classes must be None or an int >= 1, got {num_classes!r}")
        if not isinstance(null_label, bool):
            raise ValueError(f"null_label must be True or False, got {null_label!r}")
        if null_label and num_classes is None:
            raise ValueError("null_label=True needs num_classes (a class-conditional UNet), got None")
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        self.base_channels, self.null_label = base_channels, null_label
        self.context_dim = context_dim
        emb_dim = 4 * base_channels
        self.time_mlp = _time_mlp(base_channels, emb_dim)
        # One more row with a null label: the label num_classes, "no label".
        self.class_emb = (
            nn.Embedding(num_classes + int(null_label), emb_dim) if num_classes is not None else None
        )
        self.context_emb = _zero(nn.Linear(context_dim, emb_dim)) if pooled_context else None

        path = _down_path(
            in_channels, image_size, base_channels, channel_mults, num_res_blocks,
            attention_resolutions, emb_dim, dropout, num_heads, context_dim, scale_shift,
        )  # fmt: skip
        self.conv_in, self.down, self.middle = path.conv_in, path.down, path.middle
        skip_channels, channels, resolution = path.skip_channels, path.channels, path.resolution
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for i in range(num_res_blocks + 1):
                skip = skip_channels.pop()
                blocks = [ResBlock(channels + skip, base_channels * mult, emb_dim, dropout, scale_shift)]
                channels = base_channels * mult
                if resolution in attention_resolutions:
                    blocks += _attention(channels, num_heads, context_dim)
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

    @property
    def label_range(self) -> Optional[tuple[int, int]]:
        """The labels ``y`` this network takes, (lowest, highest): (0, num_classes − 1), or
        (0, num_classes) with a null label (the label num_classes); None if unconditional."""
        if self.num_classes is None:
            return None
        return 0, self.num_classes - 1 + int(self.null_label)

    def embed(self, t: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        """The vector added inside every block: MLP(sinusoidal(t)) [+ class embedding(y)].

        Args:
            t: timesteps (B,).
            y: integer labels (B,) in :attr:`label_range` for a class-conditional network (the
                label ``num_classes`` is the null label, if the network has one), else None.

        Raises:
            ValueError: y missing for a conditional network or given to an unconditional one;
                y not an integer tensor of shape (B,); a label outside the allowed range.
        """
        emb = self.time_mlp(timestep_embedding(t, self.base_channels).to(self.conv_in.weight.dtype))
        if self.class_emb is not None:
            if y is None:
                raise ValueError("y (class labels) is required: this UNet is class-conditional")
            if (
                not torch.is_tensor(y)
                or y.dtype.is_floating_point
                or y.dtype.is_complex
                or y.shape != t.shape
            ):
                what = f"{y.dtype} {tuple(y.shape)}" if torch.is_tensor(y) else type(y).__name__
                raise ValueError(f"y must be an integer tensor of shape {tuple(t.shape)}, got {what}")
            low, high = self.label_range
            if y.numel():
                lowest, highest = int(y.min()), int(y.max())
                if lowest < low or highest > high:
                    null = f" ({high} is the null label)" if self.null_label else ""
                    raise ValueError(
                        f"y must hold labels in [{low}, {high}]{null}, got values in [{lowest}, {highest}]"
                    )
            emb = emb + self.class_emb(y)
        elif y is not None:
            raise ValueError("y was given but this UNet is unconditional (num_classes=None)")
        return emb

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: Optional[torch.Tensor] = None,
        context: Optional[Context] = None,
    ) -> torch.Tensor:
        """ε_θ(x_t, t[, y][, context]), of x's shape.

        Args:
            x: (B, C, H, W) inputs.
            t: timesteps (B,).
            y: labels (B,) for a class-conditional network (see :meth:`embed`).
            context: a :class:`Context` of B rows of ``context_dim``-wide token states, for a
                text-conditional network (``context_dim`` set); None otherwise.

        Raises:
            ValueError: x of the wrong shape; the label errors of :meth:`embed`; a context
                missing, given to a network without ``context_dim``, or of the wrong shape.
        """
        _check_input(x, self.in_channels, self.image_size)
        if self.context_dim is None and context is not None:
            raise ValueError("context was given but this UNet has no cross-attention (context_dim=None)")
        if self.context_dim is not None:
            if context is None:
                raise ValueError("context (token states) is required: this UNet is text-conditional")
            check_context(context, x.shape[0], self.context_dim)
        emb = self.embed(t, y)
        if self.context_emb is not None:
            emb = emb + self.context_emb(pool_context(context).to(emb.dtype))
        h = self.conv_in(x)
        skips = [h]
        for blocks in self.down:
            h = _run_blocks(blocks, h, emb, context)
            skips.append(h)
        h = _run_blocks(self.middle, h, emb, context)
        for blocks in self.up:
            h = _run_blocks(blocks, torch.cat([h, skips.pop()], dim=1), emb, context)
        return self.out(h)


class EncoderClassifier(nn.Module):
    """p_φ(y | x_t, t): a noise-aware classifier, the logits of a noisy image at timestep t.

    ADM's classifier (Dhariwal & Nichol, 2021, section 4 and their ``EncoderUNetModel`` with
    ``pool="adaptive"``): the U-Net's downsampling half and middle block, with the same timestep
    embedding added inside every block, then GroupNorm, SiLU, a global average pool and a linear
    layer to the logits (zero-initialised, as there: every class starts equally likely). Its
    gradient ∇_x log p_φ(y | x_t, t) steers a diffusion model's sampler towards class y
    (classifier guidance, chapter 11).

    Args:
        in_channels, image_size, base_channels, channel_mults, num_res_blocks,
            attention_resolutions, dropout, num_heads: as for :class:`UNet`, whose down path
            this is.
        num_classes: the number of logits, >= 2.

    Raises:
        ValueError: an image size the levels cannot halve, or ``num_classes`` < 2.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        attention_resolutions: Sequence[int] = (4,),
        num_classes: int = 10,
        dropout: float = 0.0,
        num_heads: int = 4,
    ):
        super().__init__()
        _check_image_size(image_size, channel_mults)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        self.base_channels = base_channels
        emb_dim = 4 * base_channels
        self.time_mlp = _time_mlp(base_channels, emb_dim)
        path = _down_path(
            in_channels, image_size, base_channels, channel_mults, num_res_blocks,
            attention_resolutions, emb_dim, dropout, num_heads,
        )  # fmt: skip
        self.conv_in, self.down, self.middle = path.conv_in, path.down, path.middle
        self.norm = nn.GroupNorm(_groups(path.channels), path.channels)
        self.head = _zero(nn.Linear(path.channels, num_classes))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The logits (B, num_classes) of x_t at timesteps t; softmax gives p_φ(y | x_t, t).

        Args:
            x: (B, C, H, W) noisy images x_t.
            t: timesteps (B,), integer or real (the sampler's).

        Raises:
            ValueError: x of the wrong shape, or t not a 1-D tensor.
        """
        _check_input(x, self.in_channels, self.image_size)
        emb = self.time_mlp(timestep_embedding(t, self.base_channels).to(self.conv_in.weight.dtype))
        h = self.conv_in(x)
        for blocks in self.down:
            h = _run_blocks(blocks, h, emb)
        h = _run_blocks(self.middle, h, emb)
        return self.head(F.silu(self.norm(h)).mean(dim=(2, 3)))
