"""Nearest neighbours and the copy test (diffusion_lib.memorisation, chapter 16)."""

from __future__ import annotations

import pytest
import torch

from diffusion_lib import memorisation as mem


def test_nearest_neighbours_by_brute_force():
    g = torch.Generator().manual_seed(0)
    q, r = torch.randn(50, 1, 8, 8, generator=g), torch.randn(70, 1, 8, 8, generator=g)
    nn = mem.nearest_neighbours(q, r, k=3)
    d = ((q.double().flatten(1)[:, None] - r.double().flatten(1)[None]) ** 2).sum(-1).sqrt()
    expected = d.sort(dim=1)
    assert torch.allclose(nn.distances, expected.values[:, :3])
    assert torch.equal(nn.indices, expected.indices[:, :3])
    assert nn.distances.dtype == torch.float64


def test_a_training_image_is_its_own_nearest_neighbour_and_a_copy():
    r = torch.randn(20, 64, generator=torch.Generator().manual_seed(1))
    nn = mem.nearest_neighbours(r[:5], r, k=2)
    assert torch.equal(nn.indices[:, 0], torch.arange(5))
    assert torch.all(nn.distances[:, 0] == 0) and torch.all(nn.distances[:, 1] > 0)
    assert mem.copy_share(r[:5], r) == 1.0
    assert mem.copy_share(r[:5] + 0.01, r) == 1.0
    fresh = torch.randn(200, 64, generator=torch.Generator().manual_seed(2))
    assert mem.copy_share(fresh, r) == 0.0  # in 64 dimensions no fresh point is that close


def test_copy_share_threshold():
    r = torch.tensor([[0.0], [10.0]])
    q = torch.tensor([[2.0], [4.0]])  # d1/d2 = 2/8 and 4/6
    assert mem.copy_share(q, r, ratio=1 / 3) == 0.5
    assert mem.copy_share(q, r, ratio=0.7) == 1.0
    assert mem.copy_share(q, r, ratio=0.2) == 0.0


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: mem.nearest_neighbours(torch.zeros(2, 3), torch.zeros(4, 3), k=5),
            "k must be an int in [1, 4]",
        ),
        (
            lambda: mem.nearest_neighbours(torch.zeros(2, 3), torch.zeros(4, 2)),
            "rows of one size, got 3 and 2",
        ),
        (
            lambda: mem.nearest_neighbours(torch.zeros(2, 3, dtype=torch.long), torch.zeros(4, 3)),
            "floating-point",
        ),
        (lambda: mem.nearest_neighbours(torch.zeros(0, 3), torch.zeros(4, 3)), "at least 1 rows"),
        (lambda: mem.nearest_neighbours(torch.full((1, 3), float("nan")), torch.zeros(4, 3)), "finite"),
        (
            lambda: mem.copy_share(torch.zeros(2, 3), torch.zeros(4, 3), ratio=0),
            "ratio must be a number in (0, 1]",
        ),
        (lambda: mem.copy_share(torch.zeros(2, 3), torch.zeros(1, 3)), "reference must hold at least 2 rows"),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
