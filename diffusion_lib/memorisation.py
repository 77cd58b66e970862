"""Nearest neighbours of generated samples among the training images: the measurements of
memorisation in chapter 16 (after Carlini et al., 2023, and Somepalli et al., 2023)."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["Neighbours", "nearest_neighbours", "copy_share"]


class Neighbours(NamedTuple):
    """The k nearest reference points of each query: Euclidean distances (N, k), float64,
    ascending, and their indices into the reference set (N, k), int64."""

    distances: torch.Tensor
    indices: torch.Tensor


def _rows(name: str, value, min_rows: int) -> torch.Tensor:
    if not torch.is_tensor(value) or not value.is_floating_point():
        what = f"dtype {value.dtype}" if torch.is_tensor(value) else type(value).__name__
        raise ValueError(f"{name} must be a floating-point tensor, got {what}")
    if value.ndim < 1 or value.shape[0] < min_rows:
        raise ValueError(f"{name} must hold at least {min_rows} rows, got shape {tuple(value.shape)}")
    flat = value.detach().to("cpu", torch.float64).reshape(value.shape[0], -1)
    if not bool(torch.isfinite(flat).all()):
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return flat


def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, k: int = 1) -> Neighbours:
    """The ``k`` nearest rows of ``reference`` to each row of ``queries``, in L2 on flattened rows.

    Derived in chapter 16, eq. (trend-nn): d_j(x) = the j-th smallest ‖x − y‖ over the
    reference set; computed exactly (all pairs, float64), in blocks of queries.

    Args:
        queries: (N, ...) floating-point, N >= 1.
        reference: (M, ...) floating-point with the same trailing size, M >= k.
        k: how many neighbours, an int in [1, M].

    Raises:
        ValueError: non-float or non-finite inputs, different sizes per row, k outside [1, M].
    """
    q = _rows("queries", queries, 1)
    r = _rows("reference", reference, 1)
    if q.shape[1] != r.shape[1]:
        raise ValueError(
            f"queries and reference must have rows of one size, got {q.shape[1]} and {r.shape[1]}"
        )
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= r.shape[0]:
        raise ValueError(f"k must be an int in [1, {r.shape[0]}] (the reference size), got {k!r}")
    distances, indices = [], []
    for first in range(0, q.shape[0], 1024):
        d = torch.cdist(q[first : first + 1024], r)
        top = d.topk(k, dim=1, largest=False, sorted=True)
        distances.append(top.values)
        indices.append(top.indices)
    return Neighbours(torch.cat(distances), torch.cat(indices))


def copy_share(queries: torch.Tensor, reference: torch.Tensor, ratio: float = 1 / 3) -> float:
    """The share of queries whose nearest reference point is much nearer than the second.

    Derived in chapter 16, eq. (trend-copy): a query x counts as a copy of its nearest
    neighbour when d_1(x) < ratio · d_2(x), a relative test in the spirit of Carlini et al.
    (2023, Sec. 5), who compare the distance to the nearest training image with the distances
    to the next ones, so that "close" means closer than the data's own spacing there.

    Raises:
        ValueError: ratio not in (0, 1]; a reference of fewer than 2 rows; the errors of
            :func:`nearest_neighbours`.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ValueError(f"ratio must be a number in (0, 1], got {ratio!r}")
    if torch.is_tensor(reference) and reference.ndim >= 1 and reference.shape[0] < 2:
        raise ValueError(f"reference must hold at least 2 rows, got shape {tuple(reference.shape)}")
    d = nearest_neighbours(queries, reference, k=2).distances
    return float((d[:, 0] < ratio * d[:, 1]).double().mean())
