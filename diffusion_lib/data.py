"""Datasets that need no download (DESIGN §4).

``digits`` is scikit-learn's bundled copy of the UCI 8×8 handwritten digits: 1,797 images of
10 classes, pixel values 0..16, shipped inside the scikit-learn package.

The 2-D toy sets (:func:`ring`, :func:`two_moons`, :func:`swiss_roll`, :func:`checkerboard`)
are generated in code from a seeded ``torch.Generator``, so the same seed gives the same points.

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
    each of :data:`TOY_SETS` → ``[points]`` (kwargs: the generator's, e.g. ``n``, ``seed``).

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
