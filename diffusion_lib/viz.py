"""Pictures of images and processes: grids, and animations that work offline; and sound.

Animations are GIFs embedded in an ``<img>`` tag as base64, so they play in Jupyter, Colab and
the Jupyter Book HTML alike, with no JavaScript and no network. Sound is the same: WAV files
embedded in ``<audio>`` tags (:func:`audio_html`).
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np
import torch

from .audio import wav_bytes
from .files import atomic_write_bytes

__all__ = ["image_grid", "show_images", "animation_html", "save_gif", "audio_html"]

Frames = Union[torch.Tensor, Sequence[torch.Tensor]]


def _check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    images = torch.as_tensor(images)
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels, got {images.shape[1]}")
    if images.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one image, got 0")
    return images


def image_grid(images: torch.Tensor, *, nrow: Optional[int] = None, pad: int = 1) -> np.ndarray:
    """Tile a batch of images in [-1, 1] into one picture in [0, 1].

    Args:
        images: (N, C, H, W) with C = 1 or 3, values in [-1, 1] (clipped outside).
        nrow: images per row; default ⌈√N⌉.
        pad: pixels of white between images.

    Returns:
        float array (H', W') for one channel or (H', W', 3) for three.
    """
    images = _check_images(images).detach().to("cpu", torch.float32)
    n, c, h, w = images.shape
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be an int >= 1, got {nrow!r}")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be an int >= 0, got {pad!r}")
    ncol = min(nrow, n)
    rows = math.ceil(n / ncol)
    grid = np.ones((c, rows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    pixels = ((images.clamp(-1, 1) + 1) / 2).numpy()
    for k in range(n):
        r, q = divmod(k, ncol)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = pixels[k]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def show_images(images: torch.Tensor, *, nrow: Optional[int] = None, ax=None, title: Optional[str] = None):
    """Draw :func:`image_grid` on matplotlib axes (new ones if ``ax`` is None), without ticks."""
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow=nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title)
    return ax


def _frames_to_gif(
    frames: Frames, *, titles: Optional[Sequence[str]], fps: float, scale: int, nrow: Optional[int] = None
) -> bytes:
    from PIL import Image, ImageDraw

    if isinstance(frames, torch.Tensor):
        if frames.ndim != 5:
            raise ValueError(f"frames as a tensor must have shape (F, N, C, H, W), got {tuple(frames.shape)}")
        frames = list(frames)
    frames = list(frames)
    if not frames:
        raise ValueError("frames must hold at least one frame, got 0")
    if titles is not None and len(titles) != len(frames):
        raise ValueError(f"titles must have one entry per frame ({len(frames)}), got {len(titles)}")
    if not (isinstance(fps, (int, float)) and 0 < fps <= 100):
        raise ValueError(f"fps must be in (0, 100], got {fps!r}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an int >= 1, got {scale!r}")
    pictures = []
    for k, frame in enumerate(frames):
        grid = image_grid(_check_images(frame, f"frames[{k}]"), nrow=nrow)
        picture = Image.fromarray(np.round(grid * 255).astype(np.uint8))
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
        if titles is not None:
            band = Image.new(
                picture.mode, (picture.width, 14), color=255 if picture.mode == "L" else (255,) * 3
            )
            ImageDraw.Draw(band).text((2, 1), str(titles[k]), fill=0 if picture.mode == "L" else (0,) * 3)
            both = Image.new(picture.mode, (picture.width, picture.height + 14))
            both.paste(band, (0, 0))
            both.paste(picture, (0, 14))
            picture = both
        pictures.append(picture.convert("P") if picture.mode == "RGB" else picture)
    buffer = io.BytesIO()
    pictures[0].save(
        buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=int(1000 / fps), loop=0
    )
    return buffer.getvalue()


def animation_html(
    frames: Frames,
    *,
    titles: Optional[Sequence[str]] = None,
    fps: float = 8,
    scale: int = 8,
    nrow: Optional[int] = None,
):
    """An animation of image batches as an ``IPython.display.HTML`` holding a base64 GIF.

    Used in chapter 4 (the forward process) and later for the reverse process.

    Args:
        frames: a list of batches (N, C, H, W) in [-1, 1], each shown as a grid, or a tensor
            (F, N, C, H, W).
        titles: one caption per frame, drawn above it (e.g. "t = 250").
        fps: frames per second.
        scale: integer upscaling, so 8×8 digits are visible.
        nrow: images per row of each frame's grid (default ⌈√N⌉).
    """
    from IPython.display import HTML

    gif = _frames_to_gif(frames, titles=titles, fps=fps, scale=scale, nrow=nrow)
    encoded = base64.b64encode(gif).decode("ascii")
    return HTML(
        f'<img src="data:image/gif;base64,{encoded}" alt="animation" style="image-rendering: pixelated"/>'
    )


def save_gif(
    frames: Frames,
    path: Union[str, os.PathLike],
    *,
    titles: Optional[Sequence[str]] = None,
    fps: float = 8,
    scale: int = 8,
    nrow: Optional[int] = None,
) -> None:
    """Write the same animation as :func:`animation_html` to a GIF file, atomically."""
    atomic_write_bytes(path, _frames_to_gif(frames, titles=titles, fps=fps, scale=scale, nrow=nrow))


def audio_html(clips, sample_rate: int, *, titles: Optional[Sequence[str]] = None):
    """Players for audio clips as an ``IPython.display.HTML``: one ``<audio controls>`` per clip.

    Used in chapter 15 to listen to the data and to samples. Each clip is a 16-bit PCM mono WAV
    (``audio.wav_bytes``) embedded as a base64 ``data:audio/wav`` URI, so it plays offline in
    Jupyter, Colab and the book's HTML. The players sit side by side, each with its title as a
    small caption underneath.

    Args:
        clips: (N, L), (N, 1, L) or one clip (L,), numpy or torch, values in [-1, 1].
        sample_rate: the rate in Hz, an int in [1, 384000].
        titles: one caption per clip (HTML-escaped), or None.

    Raises:
        ValueError: clips of another shape, no clip, or values that ``audio.wav_bytes`` refuses;
            a bad ``sample_rate``; not one title per clip.
    """
    import html

    from IPython.display import HTML

    array = clips.detach().cpu().numpy() if torch.is_tensor(clips) else np.asarray(clips)
    if array.ndim == 3 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 1:
        array = array[None]
    elif array.ndim != 2:
        raise ValueError(f"clips must have shape (N, L), (N, 1, L) or (L,), got {array.shape}")
    if array.shape[0] < 1:
        raise ValueError("clips must hold at least one clip, got 0")
    if titles is not None:
        titles = list(titles)
        if len(titles) != len(array):
            raise ValueError(f"titles must have one entry per clip ({len(array)}), got {len(titles)}")
    players = []
    for k, clip in enumerate(array):
        encoded = base64.b64encode(wav_bytes(clip, sample_rate)).decode("ascii")
        caption = (
            ""
            if titles is None
            else f'<figcaption style="font-size: 80%">{html.escape(str(titles[k]))}</figcaption>'
        )
        players.append(
            '<figure style="display: inline-block; margin: 0 8px 8px 0; text-align: center">'
            f'<audio controls preload="metadata" src="data:audio/wav;base64,{encoded}"></audio>'
            f"{caption}</figure>"
        )
    return HTML('<div class="audio-clips">' + "".join(players) + "</div>")
