"""The generated 2-D toy sets, the IDX reader and the MNIST loader (on files the tests write)."""

import gzip
import inspect
import math

import numpy as np
import pytest
import torch

from diffusion_lib import data
from diffusion_lib.data import (
    MNIST_SPLITS,
    TOY_SETS,
    checkerboard,
    mnist,
    read_idx,
    ring,
    ring_modes,
    swiss_roll,
    two_moons,
)


# ---------------------------------------------------------------- ring
def test_ring_modes_lie_on_the_circle_at_equal_angles():
    centres = ring_modes(8, 2.0)
    assert centres.shape == (8, 2) and centres.dtype == torch.float32
    angles = 2 * math.pi * np.arange(8) / 8
    expected = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    np.testing.assert_allclose(centres.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(ring_modes(3, 0.5).norm(dim=1).numpy(), 0.5, rtol=1e-6)


def test_ring_shape_dtype_and_statistics():
    n, modes, radius, std = 40_000, 8, 2.0, 0.05
    x = ring(n, modes=modes, radius=radius, std=std, seed=0)
    assert x.shape == (n, 2) and x.dtype == torch.float32
    centres = ring_modes(modes, radius).double()
    nearest = torch.cdist(x.double(), centres).argmin(dim=1)
    counts = torch.bincount(nearest, minlength=modes).double()
    p = 1 / modes
    assert (counts - n * p).abs().max() < 4 * math.sqrt(n * p * (1 - p)), "modes are equally weighted"
    for k in range(modes):
        points = x[nearest == k].double()
        se = std / math.sqrt(points.shape[0])
        assert (points.mean(dim=0) - centres[k]).abs().max() < 3 * se, f"mode {k}'s mean is its centre"
        assert abs(points.std(dim=0).mean().item() - std) < 0.05 * std, f"mode {k}'s std is {std}"


def test_ring_is_deterministic_per_seed_and_seeds_differ():
    assert torch.equal(ring(500, seed=3), ring(500, seed=3))
    assert not torch.equal(ring(500, seed=3), ring(500, seed=4))
    assert torch.equal(ring(5, seed=0), ring(5, seed=0))


def test_ring_with_zero_std_is_exactly_the_centres():
    x = ring(100, modes=5, radius=1.5, std=0.0, seed=1)
    distances = torch.cdist(x.double(), ring_modes(5, 1.5).double()).min(dim=1).values
    assert distances.max() < 1e-6


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, r"n must be an int >= 1, got 0"),
        ({"n": 2.5}, r"n must be an int >= 1, got 2.5"),
        ({"n": True}, r"n must be an int >= 1, got True"),
        ({"modes": 0}, r"modes must be an int >= 1, got 0"),
        ({"radius": 0.0}, r"radius must be a finite number > 0, got 0.0"),
        ({"radius": float("nan")}, r"radius must be a finite number > 0, got nan"),
        ({"std": -0.1}, r"std must be a finite number >= 0, got -0.1"),
        ({"std": float("inf")}, r"std must be a finite number >= 0, got inf"),
    ],
)
def test_ring_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ring(**{"n": 10, **kwargs})


def test_ring_modes_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"modes must be an int >= 1, got -1"):
        ring_modes(-1)
    with pytest.raises(ValueError, match=r"radius must be a finite number > 0, got -2"):
        ring_modes(4, -2)


# ---------------------------------------------------------------- toy sets
def test_toy_sets_registry():
    assert TOY_SETS == {
        "ring": ring,
        "two_moons": two_moons,
        "swiss_roll": swiss_roll,
        "checkerboard": checkerboard,
    }


@pytest.mark.parametrize("name", sorted(TOY_SETS))
def test_toy_set_shape_dtype_determinism(name):
    make = TOY_SETS[name]
    x = make(1000, seed=7)
    assert x.shape == (1000, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert torch.equal(x, make(1000, seed=7)), "the same seed gives the same points"
    assert not torch.equal(x, make(1000, seed=8)), "another seed gives other points"
    assert make(1, seed=0).shape == (1, 2)


@pytest.mark.parametrize("name", ["two_moons", "swiss_roll", "checkerboard"])
def test_toy_sets_are_standardised(name):
    x = TOY_SETS[name](40_000, seed=0).double()
    noise = {"two_moons": 0.05, "swiss_roll": 0.1, "checkerboard": 0.0}[name]
    assert x.mean(dim=0).abs().max() < 0.03, "centred"
    assert abs(x.var(dim=0).mean().item() - (1 + noise**2)) < 0.03, "unit average variance (+ noise²)"


def test_two_moons_without_noise_lies_on_two_half_circles():
    n = 1001
    x = two_moons(n, noise=0.0, seed=2).double()
    p = x * data._MOONS_SCALE + torch.tensor(data._MOONS_MEAN, dtype=torch.float64)  # original units
    upper = (p.norm(dim=1) - 1).abs() < 1e-5
    lower = ((p - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1) - 1).abs() < 1e-5
    assert (upper | lower).all()
    assert upper.sum().item() == n // 2 and lower.sum().item() == n - n // 2
    assert (p[upper, 1] >= -1e-6).all() and (p[lower, 1] <= 0.5 + 1e-6).all()


def test_swiss_roll_without_noise_is_the_spiral():
    x = swiss_roll(2000, noise=0.0, seed=0).double()
    p = x * data._ROLL_SCALE + torch.tensor(data._ROLL_MEAN, dtype=torch.float64)
    t = p.norm(dim=1)  # (t cos t, t sin t) has norm t
    assert t.min() >= 1.5 * math.pi - 1e-4 and t.max() <= 4.5 * math.pi + 1e-4
    spiral = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
    assert (spiral - p).abs().max() < 1e-3


def test_checkerboard_fills_the_black_squares_evenly():
    x = checkerboard(16_000, seed=0).double() * math.sqrt(4 / 3)  # back to [-2, 2]²
    assert x.abs().max() <= 2.0
    cells = torch.floor(x).long()
    assert ((cells[:, 0] + cells[:, 1]) % 2 == 0).all(), "only the black squares"
    index = (cells[:, 0] + 2) * 4 + (cells[:, 1] + 2)
    counts = torch.bincount(index, minlength=16)
    filled = counts[counts > 0]
    assert filled.numel() == 8 and (filled - 2000).abs().max() < 4 * math.sqrt(2000)


@pytest.mark.parametrize("make", [two_moons, swiss_roll])
def test_noisy_toy_sets_reject_bad_noise(make):
    with pytest.raises(ValueError, match=r"noise must be a finite number >= 0, got -1"):
        make(10, noise=-1)


@pytest.mark.parametrize("make", [two_moons, swiss_roll, checkerboard, ring])
def test_toy_sets_reject_bad_n_and_seed(make):
    with pytest.raises(ValueError, match=r"n must be an int >= 1, got -5"):
        make(-5)
    with pytest.raises(TypeError, match=r"seed must be an int, got 1.5"):
        make(10, seed=1.5)


# ---------------------------------------------------------------- IDX files
IDX_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def idx_bytes(array: np.ndarray, code: int = None) -> bytes:
    code = IDX_CODES[array.dtype.type] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, *, gz=False, code=None):
    blob = idx_bytes(array, code)
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_images_and_labels(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    suffix = ".gz" if gz else ""
    got_images = read_idx(write_idx(tmp_path / f"img{suffix}", images, gz=gz))
    got_labels = read_idx(write_idx(tmp_path / f"lab{suffix}", labels, gz=gz))
    assert got_images.dtype == np.uint8 and got_images.shape == (5, 28, 28)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    got_images[0, 0, 0] = 7  # a writable copy


@pytest.mark.parametrize("dtype", list(IDX_CODES))
def test_read_idx_every_type_code_big_endian(tmp_path, dtype):
    values = (np.arange(24).reshape(2, 3, 4) - 10).astype(dtype) * (3 if dtype != np.int8 else 1)
    if np.issubdtype(dtype, np.unsignedinteger):
        values = np.arange(24, dtype=dtype).reshape(2, 3, 4) * 10
    got = read_idx(write_idx(tmp_path / "f.idx", values))
    assert got.dtype == np.dtype(dtype) and got.dtype.byteorder in ("=", "|")
    np.testing.assert_array_equal(got, values)


def test_read_idx_recognises_gzip_by_magic_not_name(tmp_path):
    values = np.arange(6, dtype=np.int16).reshape(2, 3) - 3
    path = tmp_path / "train-images-idx3-ubyte"  # no .gz suffix, gzip contents
    write_idx(path, values, gz=True)
    np.testing.assert_array_equal(read_idx(path), values)
    write_idx(tmp_path / "plain.gz", values)  # .gz suffix, plain contents
    np.testing.assert_array_equal(read_idx(str(tmp_path / "plain.gz")), values)


def test_read_idx_header_is_big_endian(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]))
    np.testing.assert_array_equal(read_idx(path), np.array([258, -2], dtype=np.int16))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b[:-1], r"is truncated: shape \(5, 4\) of uint8 needs 32 bytes, the file has 31"),
        (lambda b: b + b"\x00", r"is longer than its header says"),
        (lambda b: b[:6], r"is truncated: its header needs 12 bytes for 2 dimensions, the file has 6"),
        (lambda b: b[:3], r"is truncated: 3 bytes"),
        (lambda b: b"\x01" + b[1:], r"has a bad magic number 01000802: it must start with two zero bytes"),
        (lambda b: b[:1] + b"\x07" + b[2:], r"bad magic number"),
        (lambda b: b[:2] + b"\x0a" + b[3:], r"has unknown type code 0x0A; known codes are 0x08, 0x09, 0x0B"),
        (lambda b: gzip.compress(b)[:-6], r"is not a valid gzip stream"),
        (lambda b: b"\x1f\x8b" + b"garbage" * 3, r"is not a valid gzip stream"),
    ],
)
def test_read_idx_rejects_corrupt_files_naming_them(tmp_path, mutate, match):
    path = tmp_path / "broken-idx"
    path.write_bytes(mutate(idx_bytes(np.zeros((5, 4), dtype=np.uint8))))
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert "broken-idx" in str(info.value)


def test_read_idx_missing_file_and_bad_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no IDX file at .*nothing-here"):
        read_idx(tmp_path / "nothing-here")
    with pytest.raises(TypeError, match=r"path must be a str or os.PathLike, got int"):
        read_idx(3)


# ---------------------------------------------------------------- MNIST from a local folder
def fake_mnist(folder, *, n=5, gz=True, prefix="train", labels=None, images=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    if images is None:
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0] = 0
        images[1] = 255
    if labels is None:
        labels = (np.arange(len(images)) % 10).astype(np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz=gz)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz=gz)
    return images, labels


@pytest.mark.parametrize("split, prefix, gz", [("train", "train", True), ("test", "t10k", False)])
def test_mnist_reads_a_local_folder(tmp_path, split, prefix, gz):
    images, labels = fake_mnist(tmp_path, prefix=prefix, gz=gz)
    got = mnist(tmp_path, split)
    assert isinstance(got, data.Dataset)
    assert got.images.shape == (5, 1, 28, 28) and got.images.dtype == torch.float32
    assert got.labels.dtype == torch.int64 and got.labels.tolist() == labels.tolist()
    expected = images.astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(got.images[:, 0].numpy(), expected, atol=1e-6)
    assert got.images[0].eq(-1).all() and got.images[1].eq(1).all(), "0 → -1 and 255 → 1"


def test_mnist_resizes_to_size(tmp_path):
    fake_mnist(tmp_path)
    got = mnist(str(tmp_path), size=14)
    assert got.images.shape == (5, 1, 14, 14)
    assert got.images.min() >= -1 and got.images.max() <= 1
    assert got.images[0].eq(-1).all() and torch.allclose(got.images[1], torch.tensor(1.0)), "flat stays flat"
    full = mnist(tmp_path).images
    blocks = full.reshape(5, 1, 14, 2, 14, 2).mean(dim=(3, 5))
    assert torch.allclose(got.images, blocks, atol=1e-6), "each pixel is the mean of a 2×2 block"
    bigger = mnist(tmp_path, size=32).images
    assert bigger.shape == (5, 1, 32, 32) and bigger.min() >= -1 and bigger.max() <= 1


def test_mnist_missing_folder_or_files_names_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MNIST folder .*absent.* does not exist") as info:
        mnist(tmp_path / "absent")
    assert "train-images-idx3-ubyte" in str(info.value) and "train-labels-idx1-ubyte" in str(info.value)
    fake_mnist(tmp_path)  # train files only
    expected = r"t10k-images-idx3-ubyte \(or t10k-images-idx3-ubyte.gz\) not found in folder"
    with pytest.raises(FileNotFoundError, match=expected) as info:
        mnist(tmp_path, "test")
    assert str(tmp_path) in str(info.value)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"train-labels-idx1-ubyte"):
        mnist(tmp_path)


def test_mnist_rejects_mismatched_or_wrong_files(tmp_path):
    fake_mnist(tmp_path / "a", labels=np.arange(4, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"must hold 5 uint8 labels \(one per image\), got uint8 \(4,\)"):
        mnist(tmp_path / "a")
    fake_mnist(tmp_path / "b", images=np.zeros((3, 28, 28), dtype=np.int32))
    with pytest.raises(ValueError, match=r"must hold uint8 images \(N, H, W\), got int32"):
        mnist(tmp_path / "b")
    fake_mnist(tmp_path / "c", images=np.zeros((3, 784), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"must hold uint8 images \(N, H, W\), got uint8 \(3, 784\)"):
        mnist(tmp_path / "c")


def test_mnist_rejects_bad_arguments(tmp_path):
    fake_mnist(tmp_path)
    with pytest.raises(ValueError, match=r"split must be one of train, test, got 'validation'"):
        mnist(tmp_path, "validation")
    with pytest.raises(ValueError, match=r"size must be an int >= 1, got 0"):
        mnist(tmp_path, size=0)
    with pytest.raises(TypeError, match=r"folder must be a str or os.PathLike, got NoneType"):
        mnist(None)
    assert MNIST_SPLITS == ("train", "test")


def test_data_module_has_no_download_code():
    source = inspect.getsource(data)
    for word in ("urllib", "requests", "urlretrieve", "http://", "https://", "download("):
        assert word not in source
