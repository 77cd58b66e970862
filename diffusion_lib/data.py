"""Datasets that need no download (DESIGN §4).

``digits`` is scikit-learn's bundled copy of the UCI 8×8 handwritten digits: 1,797 images of
10 classes, pixel values 0..16, shipped inside the scikit-learn package.

The 2-D toy sets (:func:`ring`, :func:`two_moons`, :func:`swiss_roll`, :func:`checkerboard`)
are generated in code from a seeded ``torch.Generator``, so the same seed gives the same points.

Captioned scenes (:func:`scenes`, chapters 10–13: CLIP, guidance, text-to-image) are generated
in code too: 32×32 RGB images of one or two coloured digits — glyphs of the 8×8 digits, resized
and tinted — on a black canvas, each with a caption from a small grammar ("a small red 3 in the
top left", "a red 3 left of a blue 7") and the attribute indices it was drawn from. A fixed 20%
of the attribute combinations is held out (:func:`heldout_combinations`): the ``"heldout"``
split shows only those, drawn with the digits' test handwriting, to test composition.

Chapter 15's audio and video are generated in code too: :func:`waveforms`, short notes of eight
instruments (a fundamental, its harmonics, an envelope) at 3 kHz, and :func:`moving_digits`,
clips of one 8×8 digit moving at constant velocity and bouncing off the walls of a 16×16
frame (:func:`bounce`), with each frame's glyph position.

MNIST is optional: :func:`mnist` reads the standard IDX files (:func:`read_idx`) from a local
folder that the reader filled; this module never downloads anything.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from functools import cache
from pathlib import Path
from typing import Callable, NamedTuple, Union

import numpy as np
import torch

__all__ = [
    "Dataset",
    "DIGITS_SPLITS",
    "digits",
    "quantise",
    "ring",
    "ring_modes",
    "two_moons",
    "swiss_roll",
    "checkerboard",
    "TOY_SETS",
    "register_dataset",
    "datasets",
    "training_tensors",
    "read_idx",
    "mnist",
    "MNIST_SPLITS",
    "SCENE_ATTRIBUTES",
    "SCENE_RELATIONS",
    "SCENE_WORDS",
    "SCENE_SPLITS",
    "SCENE_GLYPH_PIXELS",
    "Scenes",
    "scenes",
    "scene_mix",
    "scene_caption",
    "parse_scene_caption",
    "scene_captions",
    "heldout_combinations",
    "WaveformClass",
    "WAVEFORM_SAMPLE_RATE",
    "WAVEFORM_LENGTH",
    "WAVEFORM_CLASSES",
    "WAVEFORM_SPLITS",
    "Waveforms",
    "waveforms",
    "MOVING_DIGITS_SPLITS",
    "MOVING_DIGITS_GLYPH",
    "MOVING_DIGITS_VELOCITIES",
    "Videos",
    "bounce",
    "moving_digits",
]

DIGITS_SPLITS = ("train", "test", "all")
_TEST_FRACTION = 0.2
_SPLIT_SEED = 0


class Dataset(NamedTuple):
    """Images (N, C, H, W) float32 in [-1, 1] and their integer labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor


@cache
def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0) * 2.0 - 1.0  # 0..16 → [-1, 1]
    labels = bunch.target.astype(np.int64)
    train_idx, _ = train_test_split(
        np.arange(len(labels)), test_size=_TEST_FRACTION, stratify=labels, random_state=_SPLIT_SEED
    )
    is_train = np.zeros(len(labels), dtype=bool)
    is_train[train_idx] = True
    return images[:, None], labels, is_train


def digits(split: str = "train") -> Dataset:
    """The 8×8 digits scaled to [-1, 1], with a fixed stratified 80/20 train/test split.

    Args:
        split: ``"train"`` (1,437 images), ``"test"`` (360) or ``"all"`` (1,797).

    Returns:
        ``Dataset(images, labels)``: images float32 (N, 1, 8, 8) in [-1, 1], labels int64 (N,).
        Fresh tensors each call, so callers may modify them.
    """
    if split not in DIGITS_SPLITS:
        raise ValueError(f"split must be one of {', '.join(DIGITS_SPLITS)}, got {split!r}")
    images, labels, is_train = _digits_arrays()
    keep = {"train": is_train, "test": ~is_train, "all": np.ones_like(is_train)}[split]
    return Dataset(torch.from_numpy(images[keep].copy()), torch.from_numpy(labels[keep].copy()))


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Round values in [-1, 1] to the nearest of the 256 levels −1 + 2k/255, k = 0, …, 255.

    Defined in chapter 5 (before eq. (rev-decoder) is applied to the digits) and used in
    chapters 6 and 9: the grid of an 8-bit image scaled to [-1, 1], on which the discretised
    decoder and bits per dimension are defined. The digits' 17 grey levels are multiples of 1/8
    and move by at most 1/255. Ties round half to even (``torch.round``); the dtype is kept.

    Args:
        x: a floating-point tensor with values in [-1, 1].

    Returns:
        A new tensor of the same shape and dtype.
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        what = f"dtype {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"x must be a floating-point tensor, got {what}")
    if x.numel() and not bool(((x >= -1) & (x <= 1)).all()):
        if bool(x.isnan().any()):
            raise ValueError("x must lie in [-1, 1], got NaN")
        raise ValueError(
            f"x must lie in [-1, 1], got values from {x.min().item():.4g} to {x.max().item():.4g}"
        )
    return torch.round((x + 1) * 127.5) / 127.5 - 1


# ---------------------------------------------------------------- 2-D toy sets
def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_float(name: str, value, *, positive: bool) -> None:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def ring_modes(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """The centres of the :func:`ring` mixture: ``radius · (cos 2πk/modes, sin 2πk/modes)``.

    Used in chapters 3, 6 and 9 (mode coverage of GANs and diffusion models).

    Args:
        modes: the number of Gaussians, >= 1.
        radius: the circle's radius, > 0.

    Returns:
        float32 tensor (modes, 2), mode k at angle 2πk/modes.
    """
    _check_int("modes", modes, 1)
    _check_float("radius", radius, positive=True)
    angles = 2.0 * math.pi * torch.arange(int(modes), dtype=torch.float64) / modes
    return (float(radius) * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)).float()


def ring(
    n: int = 8000, *, modes: int = 8, radius: float = 2.0, std: float = 0.05, seed: int = 0
) -> torch.Tensor:
    """Samples of a ring of Gaussians: ``modes`` equally weighted N(μ_k, std² I), μ_k on a circle.

    The standard 2-D test of mode coverage (Metz et al., 2017). Used in chapter 3 (mode
    collapse of a GAN), chapter 6 (a DDPM on 2-D data) and chapter 9 (mode coverage).

    Each sample picks a mode k uniformly at random, then adds isotropic Gaussian noise to its
    centre ``ring_modes(modes, radius)[k]``.

    Args:
        n: the number of points, >= 1.
        modes: the number of Gaussians, >= 1.
        radius: the radius of the circle of centres, > 0.
        std: each Gaussian's standard deviation per coordinate, >= 0.
        seed: seed of the generator; the same seed gives the same points.

    Returns:
        float32 tensor (n, 2).
    """
    _check_int("n", n, 1)
    _check_int("modes", modes, 1)
    _check_float("radius", radius, positive=True)
    _check_float("std", std, positive=False)
    _check_seed(seed)
    generator = _generator(seed)
    centres = ring_modes(modes, radius).double()
    k = torch.randint(0, int(modes), (int(n),), generator=generator)
    noise = torch.randn(int(n), 2, generator=generator, dtype=torch.float64)
    return (centres[k] + float(std) * noise).float()


def _finish_toy(curve: torch.Tensor, mean: tuple, scale: float, noise: float, generator) -> torch.Tensor:
    """Centre and scale a noise-free curve with its exact moments, then add N(0, noise²) noise."""
    standard = (curve - torch.tensor(mean, dtype=torch.float64)) / scale
    return (standard + noise * torch.randn(curve.shape, generator=generator, dtype=torch.float64)).float()


# Two moons: outer (cos θ, sin θ) and inner (1 − cos θ, ½ − sin θ), θ ~ U[0, π], half the points
# each (as scikit-learn's make_moons). Exact moments: mean (½, ¼); variances ¾ and 9/16 − 1/π.
_MOONS_MEAN = (0.5, 0.25)
_MOONS_SCALE = math.sqrt((0.75 + 9.0 / 16.0 - 1.0 / math.pi) / 2.0)


def two_moons(n: int = 8000, *, noise: float = 0.05, seed: int = 0) -> torch.Tensor:
    """Two interleaving half circles, as scikit-learn's ``make_moons``, at unit scale.

    Used in chapter 8 (score matching and exact likelihood on 2-D data).

    The noise-free curve is centred and divided by one scale factor (so its shape is kept) that
    makes the average variance per coordinate 1, both computed exactly; then Gaussian noise of
    standard deviation ``noise`` is added, in those unit-scale coordinates.

    Args:
        n: the number of points, >= 1; ``n // 2`` lie on the upper moon, the rest on the lower.
        noise: standard deviation of the added noise, >= 0.
        seed: seed of the generator; the same seed gives the same points.

    Returns:
        float32 tensor (n, 2), in shuffled order.
    """
    _check_int("n", n, 1)
    _check_float("noise", noise, positive=False)
    _check_seed(seed)
    generator = _generator(seed)
    n = int(n)
    theta = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    lower = torch.arange(n) >= n // 2
    x = torch.where(lower, 1.0 - torch.cos(theta), torch.cos(theta))
    y = torch.where(lower, 0.5 - torch.sin(theta), torch.sin(theta))
    curve = torch.stack([x, y], dim=1)[torch.randperm(n, generator=generator)]
    return _finish_toy(curve, _MOONS_MEAN, _MOONS_SCALE, float(noise), generator)


# Swiss roll in 2-D: (t cos t, t sin t), t ~ U[3π/2, 9π/2] (scikit-learn's make_swiss_roll without
# its height axis). Exact moments: E[t cos t] = 2, E[t sin t] = 2/(3π), E[t²] = 39π²/4.
_ROLL_LOW, _ROLL_HIGH = 1.5 * math.pi, 4.5 * math.pi
_ROLL_MEAN = (2.0, 2.0 / (3.0 * math.pi))
_ROLL_SCALE = math.sqrt((39.0 * math.pi**2 / 4.0 - _ROLL_MEAN[0] ** 2 - _ROLL_MEAN[1] ** 2) / 2.0)


def swiss_roll(n: int = 8000, *, noise: float = 0.1, seed: int = 0) -> torch.Tensor:
    """A 2-D swiss roll (a spiral of one and a half turns) at unit scale.

    Used in chapter 8 (score matching and exact likelihood on 2-D data).

    Points ``(t cos t, t sin t)`` with t uniform on [3π/2, 9π/2], as scikit-learn's
    ``make_swiss_roll`` without its height axis; centred and divided by one scale factor that
    makes the average variance per coordinate 1 (both exact), then Gaussian noise of standard
    deviation ``noise`` is added in those unit-scale coordinates.

    Args:
        n: the number of points, >= 1.
        noise: standard deviation of the added noise, >= 0.
        seed: seed of the generator; the same seed gives the same points.

    Returns:
        float32 tensor (n, 2).
    """
    _check_int("n", n, 1)
    _check_float("noise", noise, positive=False)
    _check_seed(seed)
    generator = _generator(seed)
    t = _ROLL_LOW + (_ROLL_HIGH - _ROLL_LOW) * torch.rand(int(n), generator=generator, dtype=torch.float64)
    curve = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
    return _finish_toy(curve, _ROLL_MEAN, _ROLL_SCALE, float(noise), generator)


_CHECKER_SCALE = math.sqrt(4.0 / 3.0)  # the standard deviation of U[-2, 2]


def checkerboard(n: int = 8000, *, seed: int = 0) -> torch.Tensor:
    """Uniform points on the black squares of a 4×4 checkerboard, at unit scale.

    Used in chapter 8 (a density with sharp edges). The board is [-2, 2]² (the FFJORD toy set,
    halved) divided by √(4/3), so each coordinate has mean 0 and variance exactly 1 and the
    points lie in [-√3, √3]². Square (i, j) of the unit grid is filled when ⌊x⌋ + ⌊y⌋ is even.

    Args:
        n: the number of points, >= 1.
        seed: seed of the generator; the same seed gives the same points.

    Returns:
        float32 tensor (n, 2).
    """
    _check_int("n", n, 1)
    _check_seed(seed)
    generator = _generator(seed)
    n = int(n)
    x = 4.0 * torch.rand(n, generator=generator, dtype=torch.float64) - 2.0
    row = torch.rand(n, generator=generator, dtype=torch.float64)  # within a unit square, [0, 1)
    band = 2.0 * torch.randint(0, 2, (n,), generator=generator).double() - 2.0  # -2 or 0
    y = row + band + torch.remainder(torch.floor(x), 2.0)  # parity of the column shifts the row
    return (torch.stack([x, y], dim=1) / _CHECKER_SCALE).float()


TOY_SETS: dict[str, Callable[..., torch.Tensor]] = {
    "ring": ring,
    "two_moons": two_moons,
    "swiss_roll": swiss_roll,
    "checkerboard": checkerboard,
}
"""The 2-D toy sets by name; each is called as ``TOY_SETS[name](n, seed=...)`` → (n, 2) float32."""


# ---------------------------------------------------------------- training data by name
_DATASETS: dict[str, Callable[..., list]] = {}


def register_dataset(name: str, make: Callable[..., list]) -> None:
    """Make ``name`` usable as a zoo entry's training data: ``make(**kwargs)`` returns a list of
    tensors sharing their first dimension (e.g. ``[images, labels]``). Replaces one of that name.

    Raises:
        ValueError: ``name`` is not a non-empty str, or ``make`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    if not callable(make):
        raise ValueError(f"make must be callable, got {type(make).__name__}")
    _DATASETS[name] = make


def datasets() -> list[str]:
    """The names :func:`training_tensors` knows, sorted."""
    return sorted(_DATASETS)


def training_tensors(name: str, **kwargs) -> list:
    """The training tensors of the dataset ``name`` (see :func:`register_dataset`).

    The book's: ``"digits"`` → ``[images, labels]`` (kwargs: ``split``, default ``"train"``);
    each of :data:`TOY_SETS` → ``[points]`` (kwargs: the generator's, e.g. ``n``, ``seed``);
    ``"scenes"`` → ``[images, digit, colour, position, size]``, one-object :func:`scenes`
    (kwargs: ``n``, default 10,000, ``seed``, ``split``), so that a label-conditional model can
    train on the images and digit labels.

    Raises:
        ValueError: an unknown name (the message lists the known ones); the dataset's own
            errors for bad kwargs.
    """
    if name not in _DATASETS:
        raise ValueError(f"data must be one of {', '.join(map(repr, datasets()))}, got {name!r}")
    return list(_DATASETS[name](**kwargs))


register_dataset("digits", lambda split="train": list(digits(split)))
for _toy_name, _toy in TOY_SETS.items():
    register_dataset(_toy_name, lambda _make=_toy, **kwargs: [_make(**kwargs)])


# ---------------------------------------------------------------- IDX files and MNIST
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an IDX file (the format of MNIST), plain or gzip-compressed.

    Used in chapter 6 (optional MNIST). The format (LeCun et al.): a 4-byte magic number — two
    zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float,
    0x0E double) and the number of dimensions d — then d big-endian 32-bit sizes, then the data,
    big-endian, in C order. Gzip is recognised by its magic bytes, whatever the file's name.

    Args:
        path: the file.

    Returns:
        A NumPy array of the file's shape, in native byte order, of dtype uint8, int8, int16,
        int32, float32 or float64.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a corrupt gzip stream, a bad magic number, an unknown type code, or data
            shorter or longer than the header says; the message names the file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no IDX file at {str(path)!r}")
    raw = path.read_bytes()
    where = f"IDX file {str(path)!r}"
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{where} is not a valid gzip stream: {err}") from err
    if len(raw) < 4:
        raise ValueError(f"{where} is truncated: {len(raw)} bytes, shorter than its magic number")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{where} has a bad magic number {raw[:4].hex()}: it must start with two zero bytes")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{where} has unknown type code 0x{code:02X}; known codes are {known}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{where} is truncated: its header needs {header} bytes for {ndim} dimensions, "
            f"the file has {len(raw)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(
            f"{where} is {what}: shape {shape} of {dtype.name} needs {expected} bytes, "
            f"the file has {len(raw)}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a native-order, writable copy


MNIST_SPLITS = ("train", "test")
_MNIST_PREFIX = {"train": "train", "test": "t10k"}


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"MNIST file {stem} (or {stem}.gz) not found in folder {str(folder)!r}; MNIST is not bundled: "
        "download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz "
        "and t10k-labels-idx1-ubyte.gz into that folder"
    )


def mnist(folder: Union[str, os.PathLike], split: str = "train", *, size: int = 28) -> Dataset:
    """MNIST from the standard IDX files in a local folder, scaled to [-1, 1].

    Used in chapter 6 (optional, for readers online). Nothing is downloaded here: fetch the four
    files yourself (e.g. in Colab) into ``folder`` — ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
    plain or with a ``.gz`` suffix. Fashion-MNIST uses the same names and format.

    Args:
        folder: the folder holding the files.
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000, the ``t10k-`` files).
        size: the side of the returned images; 28 (the files' own) keeps them as they are. A
            smaller size averages over areas (14: each pixel the mean of a 2×2 block; e.g. for a
            fast CPU run), a larger one interpolates bilinearly.

    Returns:
        ``Dataset(images, labels)``: images float32 (N, 1, size, size) in [-1, 1] (pixel
        0..255 → −1..1), labels int64 (N,).

    Raises:
        FileNotFoundError: the folder or a file is missing; the message names the folder and the
            expected file names.
        ValueError: a bad ``split`` or ``size``, a corrupt file (see :func:`read_idx`), or images
            and labels that do not match.
    """
    if split not in MNIST_SPLITS:
        raise ValueError(f"split must be one of {', '.join(MNIST_SPLITS)}, got {split!r}")
    _check_int("size", size, 1)
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a str or os.PathLike, got {type(folder).__name__}")
    folder = Path(folder)
    prefix = _MNIST_PREFIX[split]
    if not folder.is_dir():
        raise FileNotFoundError(
            f"MNIST folder {str(folder)!r} does not exist; it must hold {prefix}-images-idx3-ubyte[.gz] "
            f"and {prefix}-labels-idx1-ubyte[.gz] (MNIST is not bundled; download the files there)"
        )
    images_path = _find_idx(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(folder, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{str(images_path)!r} must hold uint8 images (N, H, W), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{str(labels_path)!r} must hold {images.shape[0]} uint8 labels (one per image), "
            f"got {labels.dtype} {labels.shape}"
        )
    x = torch.from_numpy(images).float().div_(127.5).sub_(1.0)[:, None]
    if x.shape[-2:] != (size, size):
        shrink = size <= min(x.shape[-2:])
        x = torch.nn.functional.interpolate(
            x,
            size=(int(size), int(size)),
            mode="area" if shrink else "bilinear",
            align_corners=None if shrink else False,
        ).clamp_(-1.0, 1.0)
    return Dataset(x.contiguous(), torch.from_numpy(labels.astype(np.int64)))


# ---------------------------------------------------------------- captioned scenes (chapters 10–13)
SCENE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "digit": tuple(str(d) for d in range(10)),
    "colour": ("red", "green", "blue", "yellow", "magenta", "cyan"),
    "position": ("top left", "top right", "bottom left", "bottom right"),
    "size": ("small", "large"),
}
"""The words of each attribute of a one-object scene; an attribute's value is an index into its tuple."""

SCENE_RELATIONS: tuple[str, ...] = ("left of", "above")
"""How the first object of a two-object scene stands to the second (the first is the left / upper one)."""

SCENE_SPLITS = ("train", "heldout")
"""``"train"``: the combinations a model sees; ``"heldout"``: the 20% it never sees, in unseen handwriting."""

# Colour → RGB in [0, 1]³: pure primaries and secondaries, so a pixel's channel pattern names its
# colour (a red glyph leaves green and blue at the background's -1 exactly).
_SCENE_RGB = (
    (1.0, 0.0, 0.0),  # red
    (0.0, 1.0, 0.0),  # green
    (0.0, 0.0, 1.0),  # blue
    (1.0, 1.0, 0.0),  # yellow
    (1.0, 0.0, 1.0),  # magenta
    (0.0, 1.0, 1.0),  # cyan
)
_CANVAS = 32  # scenes are 32×32 RGB; a quadrant (or, for two objects, a half's square) is 16 px
_QUADRANT = _CANVAS // 2  # the side of a quadrant, and the width (height) of a half
SCENE_GLYPH_PIXELS: dict[str, int] = {"small": 10, "large": 16}
"""A glyph's side in pixels by size word. The 8×8 digits grow 1.25× (small) and 2× (large): large
fills a 16-px quadrant, small leaves a 3-px margin for the jitter; both sides are even, so a glyph
is centred exactly in its quadrant (or half) before the jitter."""
_JITTER = 2  # each object's placement moves by an integer in [-2, 2] px per axis, kept on the canvas
_HELDOUT_FRACTION = 0.2  # the share of attribute combinations that "train" never shows
# Seed of the permutation that picks the held-out combinations (NumPy's legacy RandomState, whose
# stream NumPy keeps fixed across versions, so the table never changes). With it every attribute
# value, and every pair of values of two attributes, still occurs in a train combination of one
# object (tests/test_scenes.py checks both; seeds 0 to 11 all do).
_HELDOUT_SEED = 0
_GLYPH_SPLIT = {"train": "train", "heldout": "test"}  # scene split → split of digits() for the glyphs
_RENDER_CHUNK = 8192  # scenes pasted per step: bounds the scatter's index memory (~50 MB)
_SCENES_N = 10_000  # the registered "scenes" dataset's default size


def _scene_words() -> tuple[str, ...]:
    words = {"a", "in", "the"}
    for values in (*SCENE_ATTRIBUTES.values(), SCENE_RELATIONS):
        for value in values:
            words.update(value.split())
    return tuple(sorted(words))


SCENE_WORDS: tuple[str, ...] = _scene_words()
"""Every word a scene caption can contain, sorted, without duplicates (a tokenizer's vocabulary)."""


class Scenes(NamedTuple):
    """Captioned scenes: images (n, 3, 32, 32) float32 in [-1, 1], n captions, attribute indices.

    ``attributes``: for one object, int64 (n,) tensors ``"digit"``, ``"colour"``, ``"position"``,
    ``"size"``; for two objects, ``"digit"`` (n, 2), ``"colour"`` (n, 2) and ``"relation"`` (n,).
    Each value indexes :data:`SCENE_ATTRIBUTES` (or :data:`SCENE_RELATIONS`).
    """

    images: torch.Tensor
    captions: list
    attributes: dict


def _check_objects(objects) -> None:
    if isinstance(objects, bool) or not isinstance(objects, (int, np.integer)) or objects not in (1, 2):
        raise ValueError(f"objects must be 1 or 2, got {objects!r}")


def _check_scene_split(split, *, optional: bool = False) -> None:
    if optional and split is None:
        return
    if not isinstance(split, str) or split not in SCENE_SPLITS:
        allowed = ", ".join(SCENE_SPLITS) + (" or None" if optional else "")
        raise ValueError(f"split must be one of {allowed}, got {split!r}")


def _one_caption(digit: int, colour: int, position: int, size: int) -> str:
    words = SCENE_ATTRIBUTES
    return (
        f"a {words['size'][size]} {words['colour'][colour]} {words['digit'][digit]} "
        f"in the {words['position'][position]}"
    )


def _two_caption(digit: tuple, colour: tuple, relation: int) -> str:
    d, c = SCENE_ATTRIBUTES["digit"], SCENE_ATTRIBUTES["colour"]
    return f"a {c[colour[0]]} {d[digit[0]]} {SCENE_RELATIONS[relation]} a {c[colour[1]]} {d[digit[1]]}"


@cache
def _scene_table(objects: int) -> tuple[tuple[str, ...], dict[str, torch.Tensor], torch.Tensor]:
    """Every combination of ``objects`` objects in index order: captions, attributes, held-out mask."""
    counts = {name: len(values) for name, values in SCENE_ATTRIBUTES.items()}
    if objects == 1:
        rows = [
            (d, c, p, s)
            for d in range(counts["digit"])
            for c in range(counts["colour"])
            for p in range(counts["position"])
            for s in range(counts["size"])
        ]
        captions = tuple(_one_caption(*row) for row in rows)
        table = torch.tensor(rows, dtype=torch.int64)
        attributes = {name: table[:, i].contiguous() for i, name in enumerate(SCENE_ATTRIBUTES)}
    else:
        rows = [
            (d1, d2, c1, c2, r)
            for d1 in range(counts["digit"])
            for d2 in range(counts["digit"])
            if d2 != d1
            for c1 in range(counts["colour"])
            for c2 in range(counts["colour"])
            if c2 != c1
            for r in range(len(SCENE_RELATIONS))
        ]
        captions = tuple(_two_caption((d1, d2), (c1, c2), r) for d1, d2, c1, c2, r in rows)
        table = torch.tensor(rows, dtype=torch.int64)
        attributes = {
            "digit": table[:, 0:2].contiguous(),
            "colour": table[:, 2:4].contiguous(),
            "relation": table[:, 4].contiguous(),
        }
    count = len(rows)
    chosen = np.random.RandomState(_HELDOUT_SEED).permutation(count)[: round(_HELDOUT_FRACTION * count)]
    heldout = torch.zeros(count, dtype=torch.bool)
    heldout[torch.from_numpy(chosen)] = True
    return captions, attributes, heldout


@cache
def _caption_index() -> dict[str, tuple[int, int]]:
    """Caption → (objects, row of :func:`_scene_table`), for both grammars."""
    return {caption: (objects, i) for objects in (1, 2) for i, caption in enumerate(_scene_table(objects)[0])}


def scene_captions(objects: int = 1, split: Union[str, None] = None) -> tuple[list, dict]:
    """Every caption the scene grammar produces, in a fixed index order, with its attributes.

    Defined in chapter 10 (zero-shot classification and retrieval score an image against every
    caption). One object: 10 digits · 6 colours · 4 positions · 2 sizes = 480 captions, the index
    ``((digit · 6 + colour) · 4 + position) · 2 + size``. Two objects: every ordered pair of
    different digits, every ordered pair of different colours and each relation, 10·9·6·5·2 =
    5,400 captions, in the order (first digit, second digit, first colour, second colour,
    relation).

    Args:
        objects: 1 or 2.
        split: ``None`` for every combination, or ``"train"`` / ``"heldout"`` for those of that
            split only (the order kept); the two splits partition the whole.

    Returns:
        ``(captions, attributes)``: a list of str and a dict of int64 tensors as in
        :class:`Scenes`, one row per caption. Fresh objects each call.

    Raises:
        ValueError: ``objects`` not 1 or 2, or an unknown ``split``.
    """
    _check_objects(objects)
    _check_scene_split(split, optional=True)
    captions, attributes, heldout = _scene_table(int(objects))
    if split is None:
        keep = torch.ones_like(heldout)
    else:
        keep = heldout if split == "heldout" else ~heldout
    rows = keep.nonzero().squeeze(1)
    return [captions[i] for i in rows.tolist()], {name: t[rows] for name, t in attributes.items()}


def heldout_combinations(objects: int = 1) -> torch.Tensor:
    """Which attribute combinations the ``"heldout"`` split keeps to itself.

    Defined in chapter 10. A fixed 20% of the combinations (96 of 480 for one object, 1,080 of
    5,400 for two), chosen once by a permutation with a constant seed; ``"train"`` scenes never
    show them and ``"heldout"`` scenes show only them, so a model is tested on new compositions of
    attribute values it has seen (every value, and every pair of values of two attributes, occurs
    in the one-object train combinations).

    Args:
        objects: 1 or 2.

    Returns:
        bool tensor aligned with ``scene_captions(objects)[0]``: True = held out. A fresh tensor.

    Raises:
        ValueError: ``objects`` not 1 or 2.
    """
    _check_objects(objects)
    return _scene_table(int(objects))[2].clone()


def _is_int(value) -> bool:
    if torch.is_tensor(value):
        return value.ndim == 0 and not value.is_floating_point() and value.dtype != torch.bool
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_pair(value) -> bool:
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        return value.ndim == 1 and len(value) == 2
    return isinstance(value, (tuple, list)) and len(value) == 2


def _scene_index(name: str, value, count: int, *, objects: int) -> int:
    allowed = f"an int in 0..{count - 1}"
    if objects == 1 and _is_pair(value):
        raise ValueError(f"{name} must be {allowed} for one object (digit is an int), got the pair {value!r}")
    if not _is_int(value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if not 0 <= int(value) < count:
        raise ValueError(f"{name} must be {allowed}, got {int(value)}")
    return int(value)


def _scene_pair(name: str, value, count: int) -> tuple[int, int]:
    allowed = f"a pair of different ints in 0..{count - 1} for two objects"
    if _is_int(value):
        raise ValueError(f"{name} must be {allowed} (digit is a pair), got the int {int(value)}")
    if not _is_pair(value) or not all(_is_int(v) for v in value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    first, second = (int(v) for v in value)
    if not (0 <= first < count and 0 <= second < count):
        raise ValueError(f"{name} must be {allowed}, got ({first}, {second})")
    if first == second:
        raise ValueError(
            f"{name} must be {allowed} (the two objects' {name}s differ), got ({first}, {second})"
        )
    return first, second


def scene_caption(digit, colour, position=None, size=None, relation=None) -> str:
    """The caption of one scene from its attribute indices (into :data:`SCENE_ATTRIBUTES`).

    Defined in chapter 10. One object (``digit`` an int): "a {size} {colour} {digit} in the
    {position}", e.g. ``scene_caption(digit=3, colour=0, position=0, size=0)`` →
    ``"a small red 3 in the top left"``. Two objects (``digit`` a pair): "a {colour} {digit}
    {relation} a {colour} {digit}", the first object the left / upper one, both small, e.g.
    ``scene_caption(digit=(3, 7), colour=(0, 2), relation=0)`` → ``"a red 3 left of a blue 7"``.
    Ints may be Python or NumPy ints or 0-d integer tensors; pairs tuples, lists or length-2
    tensors.

    Args:
        digit: 0..9, or a pair of different digits.
        colour: 0..5, or a pair of different colours (with a pair of digits).
        position: 0..3, one object only.
        size: 0..1, one object only.
        relation: 0..1 (index into :data:`SCENE_RELATIONS`), two objects only.

    Returns:
        The caption, a str of words from :data:`SCENE_WORDS`.

    Raises:
        ValueError: an index out of range (naming the attribute), a pair where an int is needed or
            an int where a pair is, a missing or superfluous attribute, or equal digits or colours
            of two objects.
    """
    counts = {name: len(values) for name, values in SCENE_ATTRIBUTES.items()}
    if _is_pair(digit):
        for name, value in (("position", position), ("size", size)):
            if value is not None:
                raise ValueError(
                    f"{name} must be None for two objects (digit is a pair; both are small and placed "
                    f"by relation), got {value!r}"
                )
        if relation is None:
            raise ValueError("relation must be an int in 0..1 for two objects (digit is a pair), got None")
        digits_ = _scene_pair("digit", digit, counts["digit"])
        colours = _scene_pair("colour", colour, counts["colour"])
        return _two_caption(
            digits_, colours, _scene_index("relation", relation, len(SCENE_RELATIONS), objects=2)
        )
    if not _is_int(digit):
        raise ValueError(
            f"digit must be an int in 0..9 (one object) or a pair of different ints in 0..9 (two objects), "
            f"got {digit!r}"
        )
    if relation is not None:
        raise ValueError(f"relation must be None for one object (digit is an int), got {relation!r}")
    indices = {}
    for name, value in (("digit", digit), ("colour", colour), ("position", position), ("size", size)):
        if value is None:
            raise ValueError(f"{name} must be an int in 0..{counts[name] - 1} for one object, got None")
        indices[name] = _scene_index(name, value, counts[name], objects=1)
    return _one_caption(**indices)


def parse_scene_caption(caption: str) -> dict:
    """The attribute indices of a scene caption: the inverse of :func:`scene_caption`.

    Defined in chapter 10. Exact: the caption must be one the grammar produces, word for word
    (lower case, single spaces).

    Args:
        caption: a caption such as ``"a small red 3 in the top left"`` or ``"a red 3 left of a blue 7"``.

    Returns:
        One object: ``{"digit": int, "colour": int, "position": int, "size": int}``; two objects:
        ``{"digit": (int, int), "colour": (int, int), "relation": int}``.

    Raises:
        ValueError: a caption the grammar cannot produce; the message names it.
    """
    if not isinstance(caption, str):
        raise ValueError(f"caption must be a str, got {type(caption).__name__}")
    found = _caption_index().get(caption)
    if found is None:
        raise ValueError(
            f"caption {caption!r} is not a scene caption: the grammar is 'a {{size}} {{colour}} {{digit}} "
            "in the {position}' or 'a {colour} {digit} {relation} a {colour} {digit}' (different digits, "
            f"different colours), with words from {', '.join(SCENE_WORDS)}"
        )
    objects, row = found
    attributes = _scene_table(objects)[1]
    if objects == 1:
        return {name: int(t[row]) for name, t in attributes.items()}
    return {
        "digit": tuple(attributes["digit"][row].tolist()),
        "colour": tuple(attributes["colour"][row].tolist()),
        "relation": int(attributes["relation"][row]),
    }


@cache
def _scene_glyphs(split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The split's digits as glyphs of both sizes, sorted by digit: (2, N, 16, 16), starts, counts.

    Glyph ``[s, i]`` is image i resized to size s's side, in the top-left corner of a zero 16×16 tile
    (so both sizes stack); intensity in [0, 1].
    """
    images, labels = digits(_GLYPH_SPLIT[split])
    order = torch.argsort(labels, stable=True)
    ink = (images[order] + 1.0) / 2.0  # [-1, 1] → [0, 1]
    side = SCENE_GLYPH_PIXELS["large"]
    tiles = torch.zeros(len(SCENE_ATTRIBUTES["size"]), len(order), side, side)
    for s, name in enumerate(SCENE_ATTRIBUTES["size"]):
        w = SCENE_GLYPH_PIXELS[name]
        # Bilinear upsampling (no antialiasing: it changes nothing when enlarging); a convex
        # combination of [0, 1] values, so the clamp only removes rounding.
        resized = torch.nn.functional.interpolate(ink, size=(w, w), mode="bilinear", align_corners=False)
        tiles[s, :, :w, :w] = resized[:, 0].clamp(0.0, 1.0)
    counts = torch.bincount(labels, minlength=10)
    starts = torch.cumsum(counts, 0) - counts
    return tiles, starts, counts


def _place(base: torch.Tensor, side: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``base`` plus a uniform integer jitter in [-2, 2], limited so the glyph stays on the canvas."""
    low = torch.clamp(-base, min=-_JITTER)
    high = torch.clamp(_CANVAS - side - base, max=_JITTER)
    u = torch.rand(base.shape, generator=generator, dtype=torch.float64)
    return base + low + (u * (high - low + 1)).long().minimum(high - low)


def _render_scenes(
    n: int, split: str, digit: torch.Tensor, colour: torch.Tensor, size: torch.Tensor, top, left, generator
) -> torch.Tensor:
    """Images (n, 3, 32, 32) of k objects; every argument (n, k): a glyph per object, pasted by max."""
    tiles, starts, counts = _scene_glyphs(split)
    u = torch.rand(digit.shape, generator=generator, dtype=torch.float64)
    glyph = starts[digit] + (u * counts[digit]).long().minimum(counts[digit] - 1)
    side = torch.tensor([SCENE_GLYPH_PIXELS[s] for s in SCENE_ATTRIBUTES["size"]])[size]
    top, left = _place(top, side, generator), _place(left, side, generator)
    rgb = torch.tensor(_SCENE_RGB)
    tile = tiles.shape[-1]
    offsets = torch.arange(tile)
    out = torch.full((n, 3, _CANVAS * _CANVAS), -1.0)  # the black background
    for lo in range(0, n, _RENDER_CHUNK):
        hi = min(n, lo + _RENDER_CHUNK)
        block = out[lo:hi]
        for k in range(digit.shape[1]):
            # A tile's zero padding may fall off the canvas: clamped onto pixel 31 it pastes -1, which
            # the max ignores; the glyph itself always lies inside.
            rows = (top[lo:hi, k, None] + offsets).clamp(max=_CANVAS - 1)
            cols = (left[lo:hi, k, None] + offsets).clamp(max=_CANVAS - 1)
            index = (rows[:, :, None] * _CANVAS + cols[:, None, :]).view(hi - lo, 1, tile * tile)
            ink = tiles[size[lo:hi, k], glyph[lo:hi, k]].view(hi - lo, 1, tile * tile)
            tinted = (2.0 * ink * rgb[colour[lo:hi, k]][:, :, None]).sub_(1.0)  # -1 + 2·g·rgb
            block.scatter_reduce_(2, index.expand(-1, 3, -1), tinted, reduce="amax", include_self=True)
    return out.view(n, 3, _CANVAS, _CANVAS)


def scenes(n: int, *, seed: int = 0, split: str = "train", objects: int = 1) -> Scenes:
    """Captioned 32×32 RGB scenes of coloured handwritten digits, generated in code.

    Defined in chapter 10 (CLIP) and used in chapters 11–13 (guidance, text-to-image). Each scene
    draws one combination of attributes uniformly among its split's (:func:`scene_captions`) and
    renders it. A glyph is one of the 8×8 digits — from ``digits("train")`` for ``"train"``, from
    ``digits("test")`` for ``"heldout"``, so held-out scenes also show unseen handwriting — drawn
    uniformly among that digit's images, mapped to intensity g in [0, 1], resized bilinearly to
    10 px (small) or 16 px (large), tinted to ``-1 + 2·g·rgb`` with its colour's pure RGB, and
    pasted (by a pixel-wise max) onto a black (-1) canvas. One object sits at its quadrant's
    centre; two small objects at the centres of the left and right halves ("left of") or the top
    and bottom halves ("above"), the first object left / upper. Each object then moves by an
    integer jitter of up to ±2 px per axis, limited so that it stays fully on the canvas.

    Args:
        n: the number of scenes, >= 1.
        seed: seed of the generator, an int >= 0; the same seed gives the same scenes bit for bit.
        split: ``"train"`` or ``"heldout"`` (:func:`heldout_combinations`).
        objects: 1 or 2.

    Returns:
        :class:`Scenes` ``(images, captions, attributes)``.

    Raises:
        ValueError: ``n`` or ``seed`` not an int >= 1 / >= 0, an unknown ``split``, or
            ``objects`` not 1 or 2.
    """
    _check_int("n", n, 1)
    _check_int("seed", seed, 0)
    _check_scene_split(split)
    _check_objects(objects)
    n, objects = int(n), int(objects)
    generator = _generator(seed)
    captions, attributes, heldout = _scene_table(objects)
    allowed = (heldout if split == "heldout" else ~heldout).nonzero().squeeze(1)
    rows = allowed[torch.randint(0, len(allowed), (n,), generator=generator)]
    chosen = {name: t[rows] for name, t in attributes.items()}
    if objects == 1:
        digit, colour, size = (chosen[name][:, None] for name in ("digit", "colour", "size"))
        side = torch.tensor([SCENE_GLYPH_PIXELS[s] for s in SCENE_ATTRIBUTES["size"]])[size]
        position = chosen["position"][:, None]  # 0 top left, 1 top right, 2 bottom left, 3 bottom right
        top = (position // 2) * _QUADRANT + (_QUADRANT - side) // 2
        left = (position % 2) * _QUADRANT + (_QUADRANT - side) // 2
    else:
        digit, colour = chosen["digit"], chosen["colour"]
        size = torch.zeros_like(digit)  # both small
        side = SCENE_GLYPH_PIXELS["small"]
        # Along the relation's axis each object is centred in its half; across it, on the canvas.
        across = torch.tensor([(_QUADRANT - side) // 2, _QUADRANT + (_QUADRANT - side) // 2])
        middle = torch.full((n, 2), (_CANVAS - side) // 2)
        is_left_of = (chosen["relation"] == SCENE_RELATIONS.index("left of"))[:, None]
        top = torch.where(is_left_of, middle, across.expand(n, 2))
        left = torch.where(is_left_of, across.expand(n, 2), middle)
    images = _render_scenes(n, split, digit, colour, size, top, left, generator)
    return Scenes(images, [captions[i] for i in rows.tolist()], chosen)


def scene_mix(n1: int, n2: int, *, seed: int = 0) -> list:
    """``n1`` one-object and ``n2`` two-object scenes of the "train" split (:func:`scenes`), as
    a list of :class:`Scenes` (a kind with count 0 left out): the training mix of the scenes'
    models (CLIP's captions, the autoencoder's images).

    Raises:
        ValueError: counts that are not ints >= 0 or that sum to 0; :func:`scenes`'s errors.
    """
    for name, value in (("n1", n1), ("n2", n2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if n1 + n2 < 1:
        raise ValueError(f"n1 + n2 must be >= 1, got n1={n1}, n2={n2}")
    return [
        scenes(n, seed=seed, split="train", objects=objects) for n, objects in ((n1, 1), (n2, 2)) if n > 0
    ]


def _scenes_tensors(n: int = _SCENES_N, seed: int = 0, split: str = "train") -> list:
    one = scenes(n, seed=seed, split=split)
    return [one.images, *(one.attributes[name] for name in SCENE_ATTRIBUTES)]


register_dataset("scenes", _scenes_tensors)


# ---------------------------------------------------------------- waveforms (chapter 15)
class WaveformClass(NamedTuple):
    """One class of :func:`waveforms`: a note and its timbre.

    Attributes:
        name: a short name, e.g. ``"A2 pure"``.
        frequency: the fundamental frequency f0 in Hz.
        harmonics: the amplitudes of harmonics 1, 2, … (harmonic k at k·f0), the first 1.
        attack: the rise time of the envelope in seconds (linear from 0 to 1).
        decay: the exponential decay rate of the envelope after the attack, per second.
    """

    name: str
    frequency: float
    harmonics: tuple
    attack: float
    decay: float


# The clips' sample rate and length: 3 kHz (browsers play 3 kHz and up) keeps frequencies up to
# 1.5 kHz, above every class's highest harmonic (C4 reed's fifth: 5 × 261.63 Hz × 1.008 at the
# most detuned = 1,319 Hz); 768 samples are 0.256 s (64 × 12, whole frames of chapter 15's
# spectrograms). At 4 kHz and 1,024 samples chapter 15's DiffWave took 333 s to train to 98% of
# its clips on pitch; at 3 kHz and 768 samples, 235 s to 100% (drafts/README.md).
WAVEFORM_SAMPLE_RATE = 3000
WAVEFORM_LENGTH = 768
# Eight notes of a pentatonic scale (A2 C3 D3 E3 G3 A3 C4 D4, equal temperament, A4 = 440 Hz):
# neighbours are at least a whole tone (12%) apart, four times the 3% a sample must hit; each
# with its own timbre (harmonic amplitudes, attack, decay), the fundamental always the strongest.
WAVEFORM_CLASSES = (
    WaveformClass("A2 pure", 110.00, (1.0, 0.10), 0.010, 1.0),
    WaveformClass("C3 clarinet", 130.81, (1.0, 0.0, 0.45, 0.0, 0.25), 0.030, 2.0),
    WaveformClass("D3 saw", 146.83, (1.0, 0.5, 0.33, 0.25, 0.2), 0.005, 4.0),
    WaveformClass("E3 horn", 164.81, (1.0, 0.7, 0.35, 0.1), 0.040, 1.0),
    WaveformClass("G3 pluck", 196.00, (1.0, 0.6, 0.4, 0.3, 0.2), 0.002, 8.0),
    WaveformClass("A3 flute", 220.00, (1.0, 0.25, 0.05), 0.060, 0.5),
    WaveformClass("C4 reed", 261.63, (1.0, 0.0, 0.6, 0.0, 0.4), 0.015, 3.0),
    WaveformClass("D4 bell", 293.66, (1.0, 0.3, 0.0, 0.3), 0.002, 6.0),
)
WAVEFORM_SPLITS = ("train", "test")
# Per-clip variation, drawn uniformly: the peak amplitude, the detuning of the whole note (±0.5%),
# a vibrato of 4–7 Hz and up to 0.3% depth, and white noise of standard deviation 0.005. The
# splits differ by their generator's stream (seed·2 and seed·2 + 1), not by their distribution.
_PEAK = (0.5, 0.9)
_DETUNE = 0.005
_VIBRATO_RATE = (4.0, 7.0)
_VIBRATO_DEPTH = 0.003
_NOISE = 0.005


class Waveforms(NamedTuple):
    """Clips of :func:`waveforms`: ``audio`` float32 (N, 1, L) in [-1, 1], ``labels`` int64 (N,)
    (indices into :data:`WAVEFORM_CLASSES`), and the ``sample_rate`` in Hz."""

    audio: torch.Tensor
    labels: torch.Tensor
    sample_rate: int


def waveforms(n: int, *, seed: int = 0, split: str = "train", label=None) -> Waveforms:
    """Short notes of eight instruments, generated in code (chapter 15's audio).

    Each clip draws a class uniformly (or takes ``label``) and renders, at
    :data:`WAVEFORM_SAMPLE_RATE` Hz for :data:`WAVEFORM_LENGTH` samples,

        x(t) = a · s(t) / max_t |s(t)| + noise,   s(t) = env(t) · Σ_k h_k sin(k φ(t)),
        φ(t) = φ_0 + 2π f0 (1 + δ) (t + d (1 − cos 2π r t) / (2π r)),

    so that the instantaneous frequency φ'(t) / 2π is f0 (1 + δ)(1 + d sin 2π r t): that is the
    class's harmonics h_k of a fundamental f0·(1 + δ) (a detuning δ within ±0.5%) with a
    vibrato of rate r (4–7 Hz) and depth d (≤ 0.3%), a random start phase φ_0, the class's envelope
    (a linear attack, then an exponential decay), normalised to a peak a in [0.5, 0.9], plus
    white noise (σ = 0.005), clipped to [-1, 1]. The instantaneous frequency stays within
    0.8% of f0, so the 3% target of chapter 15 measures the model, not the data.

    Args:
        n: the number of clips, >= 1.
        seed: an int >= 0; the same seed and split give the same clips bit for bit.
        split: ``"train"`` or ``"test"`` (another stream of the same distribution).
        label: None (classes drawn uniformly) or an int in [0, 7] for every clip.

    Returns:
        :class:`Waveforms` ``(audio, labels, sample_rate)``.

    Raises:
        ValueError: n or seed not an int >= 1 / >= 0, an unknown split, a label out of range.
    """
    _check_int("n", n, 1)
    _check_int("seed", seed, 0)
    if split not in WAVEFORM_SPLITS:
        raise ValueError(f"split must be one of {', '.join(WAVEFORM_SPLITS)}, got {split!r}")
    count = len(WAVEFORM_CLASSES)
    if label is not None and (
        isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < count
    ):
        raise ValueError(f"label must be None or an int in [0, {count - 1}], got {label!r}")
    n = int(n)
    generator = _generator(2 * int(seed) + WAVEFORM_SPLITS.index(split))
    if label is None:
        labels = torch.randint(0, count, (n,), generator=generator)
    else:
        labels = torch.full((n,), int(label), dtype=torch.int64)

    def uniform(low, high, shape=(n, 1)):
        return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)

    peak = uniform(*_PEAK)
    detune = uniform(-_DETUNE, _DETUNE)
    rate = uniform(*_VIBRATO_RATE)
    depth = uniform(0.0, _VIBRATO_DEPTH)
    phase0 = uniform(0.0, 2 * math.pi)
    noise = torch.randn((n, WAVEFORM_LENGTH), generator=generator, dtype=torch.float64) * _NOISE

    t = torch.arange(WAVEFORM_LENGTH, dtype=torch.float64) / WAVEFORM_SAMPLE_RATE
    table = WAVEFORM_CLASSES
    f0 = torch.tensor([c.frequency for c in table], dtype=torch.float64)[labels][:, None]
    width = max(len(c.harmonics) for c in table)
    h = torch.tensor(
        [list(c.harmonics) + [0.0] * (width - len(c.harmonics)) for c in table], dtype=torch.float64
    )
    attack = torch.tensor([c.attack for c in table], dtype=torch.float64)[labels][:, None]
    decay = torch.tensor([c.decay for c in table], dtype=torch.float64)[labels][:, None]
    # The phase integrates the instantaneous frequency f0 (1 + δ) (1 + d sin 2π r t).
    phase = phase0 + 2 * math.pi * f0 * (1 + detune) * (
        t + depth * (1 - torch.cos(2 * math.pi * rate * t)) / (2 * math.pi * rate)
    )
    k = torch.arange(1, width + 1, dtype=torch.float64)
    tone = (h[labels][:, :, None] * torch.sin(k[None, :, None] * phase[:, None, :])).sum(1)
    envelope = torch.clamp(t / attack, max=1.0) * torch.exp(-decay * torch.clamp(t - attack, min=0.0))
    tone = tone * envelope
    tone = tone / tone.abs().amax(dim=1, keepdim=True)
    audio = (peak * tone + noise).clamp(-1.0, 1.0).to(torch.float32)
    return Waveforms(audio[:, None, :], labels, WAVEFORM_SAMPLE_RATE)


def _waveform_tensors(n: int = 8192, seed: int = 0, split: str = "train") -> list:
    clips = waveforms(n, seed=seed, split=split)
    return [clips.audio, clips.labels]


register_dataset("waveforms", _waveform_tensors)


# ---------------------------------------------------------------- moving digits (chapter 15)
MOVING_DIGITS_SPLITS = ("train", "test")
MOVING_DIGITS_GLYPH = 8  # the glyph's side in pixels: one 8×8 digit of digits()
# The velocities a clip draws from, per axis, in pixels per frame: never 0, so every clip moves on
# both axes, and at most 2 px, so that an 8-frame clip of a 16-px frame bounces at most twice.
MOVING_DIGITS_VELOCITIES = (-2, -1, 1, 2)
_MOVING_DIGITS_N = 4096  # the registered "moving_digits" dataset's default size


class Videos(NamedTuple):
    """Clips of :func:`moving_digits`: ``videos`` float32 (N, F, 1, S, S) in [-1, 1], ``labels``
    int64 (N,) (the digit), and ``positions`` int64 (N, F, 2), the glyph's top-left (row, col)
    in each frame."""

    videos: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor


def bounce(p0, v, frames: int, wall: float):
    """The path of a point moving at constant velocity between two walls, reflected at each.

    Defined in chapter 15 (the moving digits and the trajectory test of generated videos): a
    point that starts at ``p0`` in [0, W] with velocity ``v`` (per frame) and bounces off 0 and
    W = ``wall`` by reflection follows the triangle wave

        p(t) = m if m <= W else 2W − m,   m = (p0 + v t) mod 2W,   t = 0, 1, …, frames − 1,

    which is continuous and 2W-periodic in p0 + v t. For integer p0, v and W the path is exact
    integers (in floating point).

    Args:
        p0: the start, a number, a numpy array or a torch tensor (float or int), in [0, W] (other
            values are folded into [0, W] by the same formula).
        v: the velocity per frame, broadcastable with ``p0``.
        frames: the number of frames, an int >= 1.
        wall: W > 0, the far wall (the near one is at 0).

    Returns:
        The positions, of shape ``broadcast(p0, v).shape + (frames,)`` (time last): a torch
        tensor (float64, or the inputs' floating dtype) if either input is a tensor, else a
        float64 numpy array.

    Raises:
        ValueError: ``frames`` not an int >= 1, ``wall`` not a finite number > 0.
    """
    _check_int("frames", frames, 1)
    _check_float("wall", wall, positive=True)
    if torch.is_tensor(p0) or torch.is_tensor(v):
        p0, v = torch.as_tensor(p0), torch.as_tensor(v)
        dtype = torch.promote_types(torch.promote_types(p0.dtype, v.dtype), torch.float32)
        dtype = torch.float64 if not (p0.is_floating_point() or v.is_floating_point()) else dtype
        t = torch.arange(int(frames), dtype=dtype, device=p0.device)
        p0, v = p0.to(dtype)[..., None], v.to(dtype)[..., None]
    else:
        t = np.arange(int(frames), dtype=np.float64)
        p0, v = np.asarray(p0, dtype=np.float64)[..., None], np.asarray(v, dtype=np.float64)[..., None]
    m = (p0 + v * t) % (2 * wall)  # Python's modulo on both: the result lies in [0, 2W)
    where = torch.where if torch.is_tensor(m) else np.where
    return where(m <= wall, m, 2 * wall - m)


def moving_digits(
    n: int, *, frames: int = 8, size: int = 16, seed: int = 0, split: str = "train", label=None
) -> Videos:
    """Videos of one handwritten digit moving and bouncing off the walls (chapter 15's video).

    Each clip draws one glyph of the 8×8 digits — from ``digits("train")`` for ``"train"``, from
    ``digits("test")`` for ``"test"`` (unseen handwriting) — uniformly among the split's images
    (or among those of the digit ``label``), an integer top-left start uniform in [0, W] per
    axis (W = ``size`` − 8) and an integer velocity per axis uniform in
    :data:`MOVING_DIGITS_VELOCITIES`. In frame t the glyph's top-left is :func:`bounce`
    ``(p0, v, frames, W)``: constant velocity, reflected at the walls, so the glyph always lies
    wholly inside the frame. The glyph, in [-1, 1] as :func:`digits` gives it, is pasted by a
    pixel-wise max onto a black (-1) frame.

    Args:
        n: the number of clips, >= 1.
        frames: frames per clip, an int >= 2.
        size: the frame's side in pixels, an int >= 9 (so that the glyph can move).
        seed: an int >= 0; the same seed, split and arguments give the same clips bit for bit.
        split: ``"train"`` or ``"test"`` (the digits' split the glyphs come from; also another
            random stream).
        label: None (any digit) or an int in [0, 9] for every clip.

    Returns:
        :class:`Videos` ``(videos, labels, positions)``.

    Raises:
        ValueError: ``n``, ``frames``, ``size`` or ``seed`` not an int >= 1, 2, 9 or 0, an unknown
            ``split``, a ``label`` that is not None or an int in [0, 9].
    """
    _check_int("n", n, 1)
    _check_int("frames", frames, 2)
    _check_int("size", size, MOVING_DIGITS_GLYPH + 1)
    _check_int("seed", seed, 0)
    if split not in MOVING_DIGITS_SPLITS:
        raise ValueError(f"split must be one of {', '.join(MOVING_DIGITS_SPLITS)}, got {split!r}")
    if label is not None and (
        isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label <= 9
    ):
        raise ValueError(f"label must be None or an int in [0, 9], got {label!r}")
    n, frames, size = int(n), int(frames), int(size)
    glyphs, glyph_labels = digits(split)
    pool = torch.arange(len(glyph_labels)) if label is None else (glyph_labels == int(label)).nonzero()[:, 0]
    generator = _generator(2 * int(seed) + MOVING_DIGITS_SPLITS.index(split))
    chosen = pool[torch.randint(0, len(pool), (n,), generator=generator)]
    wall = size - MOVING_DIGITS_GLYPH
    p0 = torch.randint(0, wall + 1, (n, 2), generator=generator)
    velocities = torch.tensor(MOVING_DIGITS_VELOCITIES)
    v = velocities[torch.randint(0, len(velocities), (n, 2), generator=generator)]
    # bounce is exact for integers in float64: the rounding only changes the dtype
    positions = torch.round(bounce(p0, v, frames, wall)).long().permute(0, 2, 1).contiguous()  # (n, F, 2)
    offsets = torch.arange(MOVING_DIGITS_GLYPH)
    rows = (positions[:, :, 0, None] + offsets)[:, :, :, None]  # (n, F, 8, 1)
    cols = (positions[:, :, 1, None] + offsets)[:, :, None, :]  # (n, F, 1, 8)
    clip = torch.arange(n)[:, None, None, None]
    frame = torch.arange(frames)[None, :, None, None]
    videos = torch.full((n, frames, size, size), -1.0)  # the black background
    ink = glyphs[chosen, 0][:, None]  # (n, 1, 8, 8), in [-1, 1]
    videos[clip, frame, rows, cols] = torch.maximum(videos[clip, frame, rows, cols], ink)
    return Videos(videos[:, :, None], glyph_labels[chosen], positions)


def _moving_digit_tensors(
    n: int = _MOVING_DIGITS_N, seed: int = 0, split: str = "train", frames: int = 8, size: int = 16
) -> list:
    clips = moving_digits(n, frames=frames, size=size, seed=seed, split=split)
    return [clips.videos, clips.labels]


register_dataset("moving_digits", _moving_digit_tensors)
