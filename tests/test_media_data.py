"""Chapter 15's generated data: the waveforms (notes of eight instruments) and the moving digits."""

import numpy as np
import pytest
import torch

from diffusion_lib import audio, data
from diffusion_lib.data import WAVEFORM_CLASSES, bounce, digits, moving_digits, waveforms


# ---------------------------------------------------------------- waveforms
def test_waveforms_shapes_range_and_labels():
    clips = waveforms(400, seed=0)
    assert clips.audio.shape == (400, 1, data.WAVEFORM_LENGTH) and clips.audio.dtype == torch.float32
    assert clips.labels.shape == (400,) and clips.labels.dtype == torch.int64
    assert clips.sample_rate == data.WAVEFORM_SAMPLE_RATE
    assert clips.audio.abs().max() <= 1.0 and clips.audio.abs().amax(dim=(1, 2)).min() > 0.4
    assert set(clips.labels.tolist()) == set(range(len(WAVEFORM_CLASSES))), "every class is drawn"
    assert (waveforms(5, label=3).labels == 3).all()


def test_waveforms_are_seeded_and_splits_differ():
    first, again = waveforms(32, seed=5), waveforms(32, seed=5)
    assert torch.equal(first.audio, again.audio) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.audio, waveforms(32, seed=6).audio)
    assert not torch.equal(first.audio, waveforms(32, seed=5, split="test").audio), "another stream"


@pytest.mark.parametrize("label", range(len(WAVEFORM_CLASSES)))
def test_each_class_has_its_pitch_and_no_dc(label):
    clips = waveforms(24, seed=1, label=label)
    f0 = audio.fundamental_frequency(clips.audio, clips.sample_rate)
    assert np.abs(f0 / WAVEFORM_CLASSES[label].frequency - 1).max() < 0.01, f0
    assert np.abs(audio.dc_offset(clips.audio)).max() < 0.05
    assert audio.clipped_fraction(clips.audio).max() == 0.0


def test_waveforms_dataset_is_registered():
    tensors = data.training_tensors("waveforms", n=6, seed=2)
    assert len(tensors) == 2 and torch.equal(tensors[0], waveforms(6, seed=2).audio)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "n must be an int >= 1, got 0"),
        (dict(n=2.0), "n must be an int >= 1, got 2.0"),
        (dict(seed=-1), "seed must be an int >= 0, got -1"),
        (dict(split="valid"), "split must be one of train, test, got 'valid'"),
        (dict(label=8), r"label must be None or an int in \[0, 7\], got 8"),
        (dict(label=True), "got True"),
    ],
)
def test_waveforms_refuse_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        waveforms(**{"n": 4, **kwargs})


# ---------------------------------------------------------------- moving digits
def test_bounce_is_the_reflected_path():
    assert bounce(0, 2, 8, 8).tolist() == [0, 2, 4, 6, 8, 6, 4, 2]
    assert bounce(3, -1, 6, 4).tolist() == [3, 2, 1, 0, 1, 2]
    assert bounce(7, 2, 4, 8).tolist() == [7, 7, 5, 3], "reflected at 9 → 7"
    path = bounce(torch.tensor([[0.5, 2.0]]), torch.tensor([[1.25, -0.75]]), 5, 3.0)
    assert path.shape == (1, 2, 5) and path.dtype == torch.float32
    assert torch.allclose(path[0, 0], torch.tensor([0.5, 1.75, 3 - 0.0, 1.75, 0.5]))
    assert torch.allclose(path[0, 1], torch.tensor([2.0, 1.25, 0.5, 0.25, 1.0]))
    many = bounce(np.linspace(0, 5, 7), np.linspace(-3, 3, 7), 50, 5.0)
    assert many.shape == (7, 50) and many.min() >= 0 and many.max() <= 5
    steps = np.abs(np.diff(many, axis=1))
    assert (steps <= np.abs(np.linspace(-3, 3, 7))[:, None] + 1e-12).all(), "never faster than v"
    for kwargs, message in [
        (dict(frames=0), "frames must be an int >= 1, got 0"),
        (dict(wall=0), "wall must be a finite number > 0, got 0"),
        (dict(wall=float("nan")), "wall must be a finite number > 0, got nan"),
    ]:
        with pytest.raises(ValueError, match=message):
            bounce(0, 1, **{"frames": 4, "wall": 3.0, **kwargs})


@pytest.fixture(scope="module")
def clips():
    return moving_digits(300, seed=3)


def test_moving_digits_shapes_range_and_labels(clips):
    assert clips.videos.shape == (300, 8, 1, 16, 16) and clips.videos.dtype == torch.float32
    assert clips.labels.shape == (300,) and clips.labels.dtype == torch.int64
    assert clips.positions.shape == (300, 8, 2) and clips.positions.dtype == torch.int64
    assert clips.videos.min() == -1.0 and clips.videos.max() == 1.0
    assert set(clips.labels.tolist()) == set(range(10))
    other = moving_digits(3, frames=5, size=20, seed=0, split="test")
    assert other.videos.shape == (3, 5, 1, 20, 20) and other.positions.max() <= 12


def test_moving_digits_move_by_bounces(clips):
    p = clips.positions
    assert p.min() >= 0 and p.max() <= 8, "the glyph stays inside the frame"
    p0 = p[:, 0]
    assert set(p0.flatten().tolist()) == set(range(9)), "starts cover [0, size - 8]"
    # every axis of every clip follows bounce(p0, v) for one of the velocities ±1, ±2
    speeds = torch.tensor(data.MOVING_DIGITS_VELOCITIES)
    candidates = bounce(p0[:, :, None], speeds, 8, 8)  # (N, 2, 4, F)
    follows = (candidates == p.permute(0, 2, 1)[:, :, None].double()).all(-1)  # (N, 2, 4)
    assert follows.any(-1).all()
    assert not (candidates[:, :, :, 1:] == candidates[:, :, :, :1]).all(-1).any(), "no velocity stands still"
    steps = (p[:, 1:] - p[:, :-1]).abs()
    assert steps.max() <= 2 and (p[:, 1:] != p[:, :-1]).any(1).all(), "|v| <= 2, and the glyph moves"
    assert (steps.sum(1) > 0).all(), "both axes move"


def test_moving_digits_show_the_split_s_glyphs_at_their_positions(clips):
    train_glyphs = digits("train").images[:, 0]
    for k in range(0, 300, 7):
        r, c = clips.positions[k, 0].tolist()
        glyph = clips.videos[k, 0, 0, r : r + 8, c : c + 8]
        matches = (train_glyphs == glyph).flatten(1).all(1)
        assert matches.any(), "the glyph is one of digits('train')"
        assert (digits("train").labels[matches] == clips.labels[k]).any(), "labelled with its digit"
        for f in range(8):
            r, c = clips.positions[k, f].tolist()
            frame = clips.videos[k, f, 0]
            assert torch.equal(frame[r : r + 8, c : c + 8], glyph), "the same glyph in every frame"
            outside = frame.clone()
            outside[r : r + 8, c : c + 8] = -1.0
            assert (outside == -1).all(), "black elsewhere"


def test_moving_digits_splits_use_different_glyphs():
    def glyph_set(split):
        clips = moving_digits(200, seed=0, split=split)
        tiles = [
            tuple(clips.videos[k, 0, 0, r : r + 8, c : c + 8].flatten().tolist())
            for k, (r, c) in enumerate(clips.positions[:, 0].tolist())
        ]
        return set(tiles)

    train, test = glyph_set("train"), glyph_set("test")
    test_images = {tuple(x.flatten().tolist()) for x in digits("test").images}
    assert test <= test_images and not (train & test)


def test_moving_digits_are_seeded_and_take_a_label():
    first, again = moving_digits(16, seed=9), moving_digits(16, seed=9)
    assert all(torch.equal(a, b) for a, b in zip(first, again)), "bit for bit"
    assert not torch.equal(first.videos, moving_digits(16, seed=10).videos)
    sevens = moving_digits(20, seed=1, label=7, split="test")
    assert (sevens.labels == 7).all()
    assert moving_digits(4, label=np.int64(0)).labels.tolist() == [0] * 4


def test_moving_digits_dataset_is_registered():
    assert "moving_digits" in data.datasets()
    videos, labels = data.training_tensors("moving_digits", n=5, seed=4)
    assert torch.equal(videos, moving_digits(5, seed=4).videos) and labels.shape == (5,)
    videos, labels = data.training_tensors("moving_digits", n=2, frames=4, size=12, split="test")
    assert videos.shape == (2, 4, 1, 12, 12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "n must be an int >= 1, got 0"),
        (dict(n=True), "n must be an int >= 1, got True"),
        (dict(frames=1), "frames must be an int >= 2, got 1"),
        (dict(size=8), "size must be an int >= 9, got 8"),
        (dict(size=16.0), "size must be an int >= 9, got 16.0"),
        (dict(seed=-1), "seed must be an int >= 0, got -1"),
        (dict(split="all"), "split must be one of train, test, got 'all'"),
        (dict(label=10), r"label must be None or an int in \[0, 9\], got 10"),
        (dict(label=-1), "got -1"),
        (dict(label="3"), "got '3'"),
    ],
)
def test_moving_digits_refuse_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        moving_digits(**{"n": 2, **kwargs})
