"""Video (chapter 15): the glyph's centroid path, its fit by a bouncing constant-velocity path,
crops for the digits classifier, and class consistency."""

import math
import time

import numpy as np
import pytest
import torch

from diffusion_lib import data, video

WALL = 8  # the moving digits' wall: a 16-px frame less the 8-px glyph


@pytest.fixture(scope="module")
def clips():
    return data.moving_digits(512, seed=1)


def tile_centroid(glyph: torch.Tensor) -> np.ndarray:
    ink = ((glyph[0].double() + 1) / 2).numpy()
    rows, cols = np.indices(ink.shape)
    return np.array([(ink * rows).sum(), (ink * cols).sum()]) / ink.sum()


# ---------------------------------------------------------------- positions
def test_glyph_positions_are_the_tile_centroid_plus_the_top_left(clips):
    positions = video.glyph_positions(clips.videos)
    assert positions.shape == (512, 8, 2) and positions.dtype == np.float64
    for k in range(0, 512, 37):
        glyph = clips.videos[k, 0, :, clips.positions[k, 0, 0] :, clips.positions[k, 0, 1] :][:, :8, :8]
        expected = tile_centroid(glyph) + clips.positions[k].numpy()
        assert np.allclose(positions[k], expected, atol=1e-9)
    assert np.allclose(video.glyph_positions(clips.videos[:3].numpy()), positions[:3])


def test_glyph_positions_of_constructed_frames():
    frames = torch.full((1, 2, 1, 5, 6), -1.0)
    frames[0, 0, 0, 1, 2] = 1.0  # one full pixel
    frames[0, 1, 0, 0, 0] = 0.0  # half ink at (0, 0) ...
    frames[0, 1, 0, 4, 5] = 1.0  # ... and full ink at (4, 5): centroid 2/3 of the way
    assert np.allclose(video.glyph_positions(frames)[0], [[1, 2], [8 / 3, 10 / 3]])
    frames[0, 1] = -1.0
    assert np.isnan(video.glyph_positions(frames)[0, 1]).all(), "a frame without ink: NaN"
    frames[0, 0, 0, 1, 2] = 3.0  # clipped to 1
    assert np.allclose(video.glyph_positions(frames)[0, 0], [1, 2])


@pytest.mark.parametrize("function", [video.glyph_positions, video.glyph_windows, video.glyph_crops])
@pytest.mark.parametrize(
    "videos, message",
    [
        (torch.zeros(2, 8, 16, 16), r"videos must have shape \(N, F, 1, H, W\).*got \(2, 8, 16, 16\)"),
        (torch.zeros(2, 8, 3, 16, 16), r"got \(2, 8, 3, 16, 16\)"),
        (torch.zeros(0, 8, 1, 16, 16), "no empty dimension"),
        (torch.full((1, 2, 1, 4, 4), math.nan), "videos must be finite, got 32 NaN"),
        (np.array([["a"]]), "videos must be an array of real numbers"),
        (torch.zeros(1, 2, 1, 4, 4, dtype=torch.complex64), "videos must hold real numbers"),
    ],
)
def test_video_functions_refuse_bad_videos(function, videos, message):
    with pytest.raises(ValueError, match=message):
        function(videos)


# ---------------------------------------------------------------- trajectory
def test_the_data_fits_a_bouncing_path_exactly_and_fast(clips):
    positions = video.glyph_positions(clips.videos)
    start = time.perf_counter()
    residual = video.trajectory_residual(positions, wall=WALL)
    seconds = time.perf_counter() - start
    assert residual.shape == (512,) and residual.max() < 1e-6, residual.max()
    assert seconds < 3.0, f"512 clips of 8 frames took {seconds:.2f} s"
    small = data.moving_digits(64, frames=12, size=12, seed=2)
    assert video.trajectory_residual(video.glyph_positions(small.videos), wall=4).max() < 1e-6
    assert video.trajectory_residual(torch.from_numpy(positions[:4]), wall=WALL).max() < 1e-6


def test_random_and_jittered_paths_do_not_fit(clips):
    generator = torch.Generator().manual_seed(0)
    random = torch.rand(512, 8, 2, generator=generator, dtype=torch.float64) * 8 + 3.5
    residual = video.trajectory_residual(random, wall=WALL)
    assert residual.mean() > 1.5 and (residual > 1.0).mean() > 0.95, (residual.mean(), residual.min())
    positions = video.glyph_positions(clips.videos)
    # a frame out of order: the glyph jumps back and forth
    swapped = positions.copy()
    swapped[:, [3, 5]] = swapped[:, [5, 3]]
    moved = np.abs(positions[:, 3] - positions[:, 5]).sum(1) >= 4
    assert (video.trajectory_residual(swapped, wall=WALL)[moved] > 0.5).all()


def test_gaussian_noise_leaves_its_share(clips):
    # σ = 0.5 px per axis around a true path: the true parameters leave sqrt(2 σ² (1 - 1/F))
    # (0.66 px); the fit has three parameters per axis, so it leaves about sqrt(2 σ² (1 - 3/F))
    # (0.56 px) and never more than the truth.
    positions = video.glyph_positions(clips.videos)
    noise = np.random.default_rng(0).normal(0.0, 0.5, positions.shape)
    residual = video.trajectory_residual(positions + noise, wall=WALL)
    truth = np.sqrt(np.square(noise - noise.mean(1, keepdims=True)).sum((1, 2)) / 8)
    assert 0.2 < residual.mean() < 0.6, residual.mean()
    assert (residual <= truth + 1e-9).all(), "the fit is at least as good as the true path"


def test_a_known_path_with_a_fractional_start_and_speed():
    p0, v = np.array([[1.3, 6.9]]), np.array([[2.7, -0.45]])
    path = data.bounce(p0, v, 10, WALL)[0].T + np.array([3.2, 4.1])  # (F, 2)
    assert video.trajectory_residual(path[None], wall=WALL)[0] < 0.01
    bent = path.copy()
    bent[5:, 0] += 2.0  # a jump of 2 px halfway
    assert video.trajectory_residual(bent[None], wall=WALL)[0] > 0.3


def test_trajectory_residual_of_missing_frames_and_bad_input():
    positions = np.zeros((2, 4, 2))
    positions[1, 2] = np.nan
    residual = video.trajectory_residual(positions, wall=WALL)
    assert residual[0] < 1e-9 and np.isnan(residual[1])
    for bad, message in [
        (np.zeros((2, 4)), r"positions must have shape \(N, F, 2\) with N >= 1 and F >= 2, got \(2, 4\)"),
        (np.zeros((2, 1, 2)), r"got \(2, 1, 2\)"),
        (np.zeros((2, 4, 3)), r"got \(2, 4, 3\)"),
        (np.zeros((0, 4, 2)), r"got \(0, 4, 2\)"),
        (np.full((1, 4, 2), np.inf), "positions must be finite or NaN"),
        (np.zeros((1, 4, 2), dtype=bool), "positions must hold real numbers"),
    ]:
        with pytest.raises(ValueError, match=message):
            video.trajectory_residual(bad, wall=WALL)
    for wall in (0, -1.0, math.inf, None, True):
        with pytest.raises(ValueError, match=f"wall must be a finite number > 0, got {wall!r}"):
            video.trajectory_residual(positions, wall=wall)


# ---------------------------------------------------------------- crops and classes
def test_glyph_crops_hold_the_pasted_glyphs(clips):
    videos, positions = clips.videos, clips.positions.numpy()
    windows = video.glyph_windows(videos)
    crops = video.glyph_crops(videos)
    assert crops.shape == (512, 8, 1, 8, 8) and crops.dtype == torch.float32
    assert windows.shape == (512, 8, 2) and windows.dtype == np.int64
    ink = (videos + 1) / 2
    assert torch.allclose(((crops + 1) / 2).sum((2, 3, 4)), ink.sum((2, 3, 4))), (
        "every crop holds all the ink"
    )
    assert (windows[..., 0] == positions[..., 0]).all(), "the digits fill their rows: the row is unique"
    exact = (windows == positions).all(-1)
    assert exact.mean() > 0.85, exact.mean()
    pasted = torch.stack(
        [
            torch.stack([videos[k, f, 0, r : r + 8, c : c + 8] for f, (r, c) in enumerate(positions[k])])
            for k in range(len(videos))
        ]
    )[:, :, None]
    assert torch.equal(crops[torch.from_numpy(exact)], pasted[torch.from_numpy(exact)])
    # elsewhere the window is off by one column across a blank margin column of the glyph
    shift = windows[..., 1] - positions[..., 1]
    assert set(np.unique(shift[~exact]).tolist()) <= {-1, 1}
    for k, f in zip(*np.nonzero(~exact)):
        glyph, crop = pasted[k, f, 0], crops[k, f, 0]
        if shift[k, f] == 1:
            assert torch.equal(crop[:, :7], glyph[:, 1:]) and (glyph[:, 0] == -1).all()
        else:
            assert torch.equal(crop[:, 1:], glyph[:, :7]) and (glyph[:, 7] == -1).all()


def test_glyph_crops_on_constructed_frames_and_other_sizes():
    frames = torch.full((1, 1, 1, 6, 7), -1.0, dtype=torch.float64)
    frames[0, 0, 0, 3:5, 4:6] = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    assert video.glyph_windows(frames, glyph=2).tolist() == [[[3, 4]]]
    crop = video.glyph_crops(frames, glyph=2)
    assert crop.dtype == torch.float64 and torch.equal(crop[0, 0, 0], frames[0, 0, 0, 3:5, 4:6])
    assert video.glyph_crops(frames.numpy().astype(np.float32), glyph=2).dtype == torch.float32
    assert video.glyph_windows(torch.full((1, 1, 1, 6, 7), -1.0), glyph=3).tolist() == [[[0, 0]]]
    for glyph in (0, 7, 2.0, True):
        with pytest.raises(ValueError, match=rf"glyph must be an int in \[1, 6\].*got {glyph!r}"):
            video.glyph_crops(frames, glyph=glyph)


def test_class_consistency():
    predicted = torch.tensor([[3, 3, 3], [3, 5, 3], [0, 0, 0]])
    assert video.class_consistency(predicted).tolist() == [True, False, True]
    assert video.class_consistency(np.array([[7]])).tolist() == [True]
    for bad, message in [
        (np.zeros((2, 3)), "predicted must hold integer classes, got dtype float64"),
        (np.zeros((2, 3), dtype=bool), "got dtype bool"),
        (np.zeros(3, dtype=int), r"predicted must have shape \(N, F\) with N, F >= 1, got \(3,\)"),
        (np.zeros((2, 0), dtype=int), r"got \(2, 0\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            video.class_consistency(bad)
