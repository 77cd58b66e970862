"""Video for chapter 15: where the glyph of a moving-digit clip is, and whether it moves like one.

A generated clip of :func:`diffusion_lib.data.moving_digits` should show one digit that keeps
its shape and class in every frame and moves at constant velocity, bouncing off the walls.
:func:`glyph_positions` measures the glyph's position in each frame (its ink's centroid);
:func:`trajectory_residual` says how far that path is from the best bouncing constant-velocity
path (:func:`diffusion_lib.data.bounce`); :func:`glyph_crops` cuts each frame's glyph out so
that the 8×8 digits classifier can read it, and :func:`class_consistency` says whether it
reads the same digit in every frame.

Videos are (N, F, 1, H, W) in [-1, 1] (black background -1), numpy or torch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .data import bounce

__all__ = [
    "MAX_SPEED",
    "glyph_positions",
    "trajectory_residual",
    "glyph_windows",
    "glyph_crops",
    "class_consistency",
]

MAX_SPEED = 3.0  # the fit's velocities, px per frame: in [-3, 3], above the data's 2
# The fit's grid: starts every 1/8 px and velocities every 1/16 px per frame, then two rounds
# of a 9 × 9 grid of a quarter of the step around the best (final steps 1/128 px and 1/256 px
# per frame). The data's integer starts and velocities lie on the first grid, so their fit is
# exact; elsewhere the last step costs well under 0.01 px of residual.
_START_STEP = 1 / 8
_SPEED_STEP = 1 / 16
_REFINE_POINTS = 9
_REFINE_ROUNDS = 2
_CHUNK = 256  # series scored against the whole first grid at a time (~13 MB of float64 scores)


def _videos(videos, name: str = "videos") -> torch.Tensor:
    """``videos`` as a float64 CPU tensor (N, F, 1, H, W), checked, clamped to [-1, 1]."""
    if torch.is_tensor(videos):
        x = videos.detach()
    else:
        array = np.asarray(videos)
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise ValueError(f"{name} must be an array of real numbers, got dtype {array.dtype}")
        x = torch.from_numpy(np.array(array))
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if x.ndim != 5 or x.shape[2] != 1 or min(x.shape) < 1:
        raise ValueError(
            f"{name} must have shape (N, F, 1, H, W) with no empty dimension, got {tuple(x.shape)}"
        )
    x = x.to("cpu", torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"{name} must be finite, got {int((~torch.isfinite(x)).sum())} NaN or infinite values"
        )
    return x.clamp(-1.0, 1.0)


def _ink(x: torch.Tensor) -> torch.Tensor:
    """Ink (N, F, H, W) in [0, 1] of checked videos: (x + 1) / 2, 0 on the black background."""
    return (x[:, :, 0] + 1.0) / 2.0


def _centroids(ink: torch.Tensor) -> torch.Tensor:
    """The ink-weighted centroid (row, col) of each frame (N, F, 2); NaN where a frame has no ink."""
    total = ink.sum(dim=(2, 3))
    rows = torch.arange(ink.shape[2], dtype=ink.dtype)
    cols = torch.arange(ink.shape[3], dtype=ink.dtype)
    row = (ink.sum(dim=3) * rows).sum(dim=2)
    col = (ink.sum(dim=2) * cols).sum(dim=2)
    centroid = torch.stack([row, col], dim=-1) / total[..., None]
    return torch.where(total[..., None] > 0, centroid, math.nan)


def glyph_positions(videos) -> np.ndarray:
    """The ink-weighted centroid (row, col) of each frame, in pixels (chapter 15).

    Ink is (x + 1) / 2 for frames in [-1, 1] (values outside are clipped first): 0 on the black
    background, 1 on full strokes. A glyph that only moves by whole pixels keeps its centroid
    relative to its top-left, so the centroids follow its path exactly. Measured on every pixel,
    so a generated frame's faint background noise pulls the centroid a little toward the frame's
    centre.

    Args:
        videos: (N, F, 1, H, W), numpy or torch, finite.

    Returns:
        float64 (N, F, 2): (row, col), from the top-left pixel's centre; NaN for a frame with no ink.

    Raises:
        ValueError: not of shape (N, F, 1, H, W), or not finite.
    """
    return _centroids(_ink(_videos(videos))).numpy()


def _grid_sse(series: torch.Tensor, paths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The least squares error (S,) of each series (S, F) by its best path of ``paths`` (G, F) plus
    a constant, and that path's index (S,)."""
    centred = series - series.mean(dim=1, keepdim=True)
    shapes = paths - paths.mean(dim=1, keepdim=True)
    norms = shapes.square().sum(dim=1)
    errors, best = torch.empty(len(series), dtype=series.dtype), torch.empty(len(series), dtype=torch.long)
    for lo in range(0, len(series), _CHUNK):
        # |y_c - b_c|² = |y_c|² - 2 y_c · b_c + |b_c|², the best offset being mean(y) - mean(b)
        errors[lo : lo + _CHUNK], best[lo : lo + _CHUNK] = (
            norms - 2 * centred[lo : lo + _CHUNK] @ shapes.T
        ).min(1)
    return (errors + centred.square().sum(dim=1)).clamp(min=0.0), best


def _local_sse(series: torch.Tensor, start, speed, wall: float) -> torch.Tensor:
    """The error (S, K) of each series (S, F) by its own K paths, starts and speeds (S, K)."""
    paths = bounce(start, speed, series.shape[1], wall)  # (S, K, F)
    centred = series - series.mean(dim=1, keepdim=True)
    shapes = paths - paths.mean(dim=2, keepdim=True)
    return (centred[:, None, :] - shapes).square().sum(dim=2)


def trajectory_residual(positions, *, wall: float) -> np.ndarray:
    """How far each clip's glyph path is from moving at constant velocity with bounces (chapter 15).

    Per axis, the path is fitted by least squares with c + ``data.bounce``(p0, v, F, wall): an
    offset c (where the measured point, e.g. the ink's centroid, sits in the glyph's tile; found
    in closed form), a start p0 in [0, wall] and a velocity v in [-3, 3] px per frame (both
    continuous: a grid of starts every 1/8 px and velocities every 1/16 px per frame, then two
    rounds of a finer 9 × 9 grid around the best, to 1/128 px and 1/256 px per frame; the
    error is piecewise quadratic in (p0, v), with kinks at the bounces, so no gradient method is
    needed). The residual is the root mean square distance in pixels between the path and the
    fit, both axes together: sqrt((SSE_row + SSE_col) / F).

    A clip of :func:`diffusion_lib.data.moving_digits` fits exactly (residual below 1e-6 px, its
    integer starts and velocities lie on the first grid when the wall is an integer). A fit has
    three parameters per axis, so noise of σ px per axis around a true path leaves about
    σ sqrt(2 (1 − 3 / F)) (0.56 px for σ = 0.5, F = 8), and random positions leave pixels.

    Args:
        positions: (N, F, 2) (row, col) per frame, F >= 2, e.g. :func:`glyph_positions`; numpy or
            torch. NaN (a frame without ink) gives that clip NaN; infinities are refused.
        wall: the far wall W > 0 of the glyph's top-left (``size − 8`` for the moving digits).

    Returns:
        float64 (N,), in pixels.

    Raises:
        ValueError: positions not (N, F, 2) with N >= 1 and F >= 2, or infinite; wall not a finite
            number > 0.
    """
    ok = isinstance(wall, (int, float, np.integer, np.floating)) and not isinstance(wall, bool)
    if not ok or not (math.isfinite(wall) and wall > 0):
        raise ValueError(f"wall must be a finite number > 0, got {wall!r}")
    wall = float(wall)
    p = torch.as_tensor(np.asarray(positions.detach().cpu() if torch.is_tensor(positions) else positions))
    if p.is_complex() or not (p.is_floating_point() or p.dtype in (torch.int32, torch.int64, torch.int16)):
        raise ValueError(f"positions must hold real numbers, got dtype {p.dtype}")
    if p.ndim != 3 or p.shape[2] != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise ValueError(f"positions must have shape (N, F, 2) with N >= 1 and F >= 2, got {tuple(p.shape)}")
    p = p.to(torch.float64)
    if bool(torch.isinf(p).any()):
        raise ValueError("positions must be finite or NaN (a frame without ink), got an infinite value")
    n, frames, _ = p.shape
    missing = torch.isnan(p).any(dim=2).any(dim=1)  # (N,)
    series = torch.nan_to_num(p).permute(0, 2, 1).reshape(2 * n, frames)  # row and col series of each clip
    starts = torch.linspace(0.0, wall, round(wall / _START_STEP) + 1, dtype=torch.float64)
    speeds = torch.linspace(
        -MAX_SPEED, MAX_SPEED, round(2 * MAX_SPEED / _SPEED_STEP) + 1, dtype=torch.float64
    )
    start_step, speed_step = (
        float(starts[1] - starts[0]) if len(starts) > 1 else wall,
        float(speeds[1] - speeds[0]),
    )
    paths = bounce(starts[:, None], speeds[None, :], frames, wall).reshape(-1, frames)  # (G, F)
    sse, best = _grid_sse(series, paths)
    start, speed = starts[best // len(speeds)], speeds[best % len(speeds)]
    offsets = torch.linspace(-1.0, 1.0, _REFINE_POINTS, dtype=torch.float64)
    for _ in range(_REFINE_ROUNDS):
        trial_start = (start[:, None, None] + start_step * offsets[None, :, None]).clamp(0.0, wall)
        trial_speed = (speed[:, None, None] + speed_step * offsets[None, None, :]).clamp(
            -MAX_SPEED, MAX_SPEED
        )
        trial_start, trial_speed = torch.broadcast_tensors(trial_start, trial_speed)
        trial_start, trial_speed = trial_start.reshape(2 * n, -1), trial_speed.reshape(2 * n, -1)
        scores = _local_sse(series, trial_start, trial_speed, wall)
        local, pick = scores.min(dim=1)
        better = local < sse  # keep the previous best when the finer grid does not improve on it
        sse = torch.where(better, local, sse)
        start = torch.where(better, trial_start.gather(1, pick[:, None])[:, 0], start)
        speed = torch.where(better, trial_speed.gather(1, pick[:, None])[:, 0], speed)
        start_step, speed_step = start_step / 4, speed_step / 4
    residual = torch.sqrt(sse.view(n, 2).sum(dim=1) / frames)
    return torch.where(missing, math.nan, residual).numpy()


def _check_glyph(glyph, height: int, width: int) -> int:
    if (
        isinstance(glyph, bool)
        or not isinstance(glyph, (int, np.integer))
        or not 1 <= glyph <= min(height, width)
    ):
        raise ValueError(
            f"glyph must be an int in [1, {min(height, width)}] (the frame's side), got {glyph!r}"
        )
    return int(glyph)


def glyph_windows(videos, *, glyph: int = 8) -> np.ndarray:
    """The top-left (row, col) of each frame's ``glyph`` × ``glyph`` window with the most ink.

    Used in chapter 15 by :func:`glyph_crops`. Ink is (x + 1) / 2 (as :func:`glyph_positions`).
    Windows whose ink is within 1e-9 of the most (exact ties: a digit with a blank margin
    column fits in several windows) are equal candidates; among them the one whose centre is
    nearest the frame's ink centroid wins (then the first in row-major order). The digits are
    centred in their 8×8 tiles to within half a pixel for about 90% of them, so on
    :func:`diffusion_lib.data.moving_digits` this finds the pasted tile's top-left for about
    nine frames in ten, and otherwise a window one column off that holds the same ink. A frame
    with no ink gives (0, 0).

    Args:
        videos: (N, F, 1, H, W), numpy or torch, finite.
        glyph: the window's side, an int in [1, min(H, W)].

    Returns:
        int64 (N, F, 2).

    Raises:
        ValueError: bad videos (as :func:`glyph_positions`), a bad ``glyph``.
    """
    x = _videos(videos)
    n, frames, _, height, width = x.shape
    glyph = _check_glyph(glyph, height, width)
    ink = _ink(x)
    sums = torch.nn.functional.avg_pool2d(ink.reshape(n * frames, 1, height, width), glyph, stride=1)
    sums = sums[:, 0] * glyph * glyph  # (NF, H - g + 1, W - g + 1)
    most = sums.amax(dim=(1, 2), keepdim=True)
    centroid = torch.nan_to_num(_centroids(ink).reshape(n * frames, 2, 1, 1), nan=0.0)
    rows = torch.arange(sums.shape[1], dtype=torch.float64)[None, :, None] + (glyph - 1) / 2
    cols = torch.arange(sums.shape[2], dtype=torch.float64)[None, None, :] + (glyph - 1) / 2
    distance = (rows - centroid[:, 0]).square() + (cols - centroid[:, 1]).square()
    distance = torch.where(sums >= most - 1e-9, distance, math.inf).reshape(n * frames, -1)
    flat = distance.argmin(dim=1)  # the first of equal minima
    corner = torch.stack([flat // sums.shape[2], flat % sums.shape[2]], dim=1)
    return corner.reshape(n, frames, 2).numpy()


def glyph_crops(videos, *, glyph: int = 8) -> torch.Tensor:
    """Each frame's ``glyph`` × ``glyph`` window with the most ink (:func:`glyph_windows`).

    Used in chapter 15 so that the 8×8 digits classifier (the zoo's ``"digits-classifier"``,
    input (B, 1, 8, 8) in [-1, 1]) reads every frame of a generated clip:
    ``classifier(crops.flatten(0, 1)).argmax(1).view(N, F)``, then :func:`class_consistency`.

    Args:
        videos: (N, F, 1, H, W), numpy or torch, finite.
        glyph: the window's side, an int in [1, min(H, W)].

    Returns:
        (N, F, 1, glyph, glyph): the frames' pixels, in ``videos``' dtype for a floating tensor,
        else float32 (not clipped).

    Raises:
        ValueError: as :func:`glyph_windows`.
    """
    corner = torch.from_numpy(glyph_windows(videos, glyph=glyph))
    source = videos.detach().cpu() if torch.is_tensor(videos) else torch.from_numpy(np.array(videos))
    if not source.is_floating_point():
        source = source.to(torch.float32)
    n, frames = corner.shape[:2]
    offsets = torch.arange(glyph)
    rows = (corner[:, :, 0, None] + offsets)[:, :, :, None]
    cols = (corner[:, :, 1, None] + offsets)[:, :, None, :]
    clip = torch.arange(n)[:, None, None, None]
    frame = torch.arange(frames)[None, :, None, None]
    return source[:, :, 0][clip, frame, rows, cols][:, :, None].contiguous()


def class_consistency(predicted) -> np.ndarray:
    """Whether every frame of each clip is given the same class (chapter 15).

    Args:
        predicted: integer classes (N, F), N, F >= 1, numpy or torch.

    Returns:
        bool (N,).

    Raises:
        ValueError: not two-dimensional, empty, or not integers.
    """
    array = predicted.detach().cpu().numpy() if torch.is_tensor(predicted) else np.asarray(predicted)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"predicted must hold integer classes, got dtype {array.dtype}")
    if array.ndim != 2 or min(array.shape) < 1:
        raise ValueError(f"predicted must have shape (N, F) with N, F >= 1, got {array.shape}")
    return (array == array[:, :1]).all(axis=1)
