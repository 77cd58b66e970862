"""The bundled digits: shapes, range, a fixed stratified split, and bad input."""

import pytest
import torch

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
