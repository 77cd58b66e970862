"""The bundled digits: shapes, range, a fixed stratified split, bad input; and the 8-bit grid (quantise)."""

import pytest
import torch

from diffusion_lib import data
from diffusion_lib.data import DIGITS_SPLITS, digits


def test_digits_shapes_and_range():
    train, test, every = digits("train"), digits("test"), digits("all")
    assert every.images.shape == (1797, 1, 8, 8)
    assert train.images.shape[0] + test.images.shape[0] == 1797
    assert test.images.shape[0] == 360
    for split in (train, test, every):
        assert split.images.dtype == torch.float32 and split.labels.dtype == torch.int64
        assert split.images.min().item() == -1.0 and split.images.max().item() == 1.0
        assert set(split.labels.tolist()) == set(range(10))


def test_digits_split_is_fixed_disjoint_and_stratified():
    train, test = digits("train"), digits("test")
    assert torch.equal(train.images, digits("train").images), "the split is the same every call"
    train_rows = {tuple(row) for row in train.images.flatten(1).tolist()}
    test_rows = {tuple(row) for row in test.images.flatten(1).tolist()}
    every_rows = [tuple(row) for row in digits("all").images.flatten(1).tolist()]
    assert len(train_rows | test_rows) == len(set(every_rows)), "together they are the whole set"
    counts = torch.bincount(test.labels, minlength=10)
    assert counts.min().item() >= 35 and counts.max().item() <= 37, "each class is ~20% of the test set"


def test_digits_returns_fresh_tensors():
    first = digits("test")
    first.images.zero_()
    assert digits("test").images.abs().sum().item() > 0


@pytest.mark.parametrize("split", ["validation", "", None])
def test_digits_rejects_unknown_split(split):
    with pytest.raises(ValueError, match=r"split must be one of train, test, all, got"):
        digits(split)
    assert DIGITS_SPLITS == ("train", "test", "all")


def test_quantise_rounds_to_the_256_levels_of_an_8_bit_image():
    levels = torch.arange(256, dtype=torch.float64) * 2 / 255 - 1
    assert torch.equal(data.quantise(levels), levels), "grid points stay where they are"
    half_bin = 1 / 255
    jittered = levels[1:-1] + 0.9 * half_bin * torch.tensor([1.0, -1.0]).repeat(127)
    assert torch.allclose(data.quantise(jittered), levels[1:-1], atol=1e-12), "nearest level"
    images = data.digits("test").images  # float32, 17 grey levels
    q = data.quantise(images)
    assert q.dtype == torch.float32 and q.shape == images.shape
    assert (q - images).abs().max() <= half_bin + 1e-6, "the digits move by at most half a bin"
    k = (q.double() + 1) * 127.5
    assert torch.allclose(k, k.round(), atol=1e-4) and k.min() >= 0 and k.max() <= 255
    assert torch.equal(data.quantise(q), q), "idempotent"
    assert data.quantise(torch.empty(0)).shape == (0,)


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.tensor([0.0, 1.5]), r"x must lie in \[-1, 1\], got values from 0 to 1.5"),
        (torch.tensor([-1.01, 0.0]), r"x must lie in \[-1, 1\], got values from -1.01 to 0"),
        (torch.tensor([0.0, float("nan")]), r"x must lie in \[-1, 1\], got NaN"),
        (torch.tensor([0, 1]), r"x must be a floating-point tensor, got dtype torch.int64"),
        ([0.0, 0.5], r"x must be a floating-point tensor, got list"),
    ],
)
def test_quantise_rejects_bad_input(x, match):
    with pytest.raises(ValueError, match=match):
        data.quantise(x)
