"""Datasets that need no download (DESIGN §4).

``digits`` is scikit-learn's bundled copy of the UCI 8×8 handwritten digits: 1,797 images of
10 classes, pixel values 0..16, shipped inside the scikit-learn package.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["Dataset", "DIGITS_SPLITS", "digits"]

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
