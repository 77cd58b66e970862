"""Tree-Ring watermarks (diffusion_lib.watermark, chapter 16): the transform, the key, planting,
detection, and the detection statistics, each against a closed form or a direct computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion_lib import watermark as wm


def key(seed=0, size=8, r_min=1.0, r_max=2.0):
    return wm.ring_key(size, r_min, r_max, generator=torch.Generator().manual_seed(seed))


def test_centred_fft_is_unitary_and_inverted():
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = wm.centred_fft(x)
    assert torch.allclose(f.abs().pow(2).sum((-2, -1)), x.pow(2).sum((-2, -1)))  # Parseval
    assert torch.allclose(wm.centred_ifft(f).real, x)
    assert torch.allclose(f[..., 4, 4].real, x.sum((-2, -1)) / 8)  # the centre is k = 0


def test_white_noise_has_unit_power_at_every_frequency():
    x = torch.randn(20000, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    power = wm.centred_fft(x).abs().pow(2).mean(0)
    assert torch.allclose(power, torch.ones(8, 8, dtype=torch.float64), atol=0.05)


def test_frequency_radius():
    r = wm.frequency_radius(8)
    assert r[4, 4] == 0 and r[4, 5] == 1 and r[3, 3] == pytest.approx(math.sqrt(2))
    assert r[0, 0] == pytest.approx(math.sqrt(32))


def test_ring_key_is_constant_on_rings_and_rotation_invariant():
    k = key()
    assert int(k.mask.sum()) == 12  # |k| = 1, √2, 2: four frequencies each
    assert len(torch.unique(k.values[k.mask])) == 3
    assert torch.equal(torch.rot90(k.values[1:, 1:], 1), k.values[1:, 1:])
    assert torch.equal(torch.flip(k.values[1:, 1:], (0, 1)), k.values[1:, 1:])  # Hermitian
    assert torch.equal(k.values[~k.mask], torch.zeros(int((~k.mask).sum()), dtype=torch.float64))


def test_ring_key_depends_on_the_generator_only():
    assert torch.equal(key(3).values, key(3).values)
    assert not torch.equal(key(3).values, key(4).values)


def test_planted_noise_is_real_carries_the_key_and_keeps_the_rest():
    k = key()
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    marked = wm.plant(x, k)
    assert marked.dtype == x.dtype and marked.shape == x.shape
    f_marked, f_x = wm.centred_fft(marked.double()), wm.centred_fft(x.double())
    assert torch.allclose(f_marked[..., k.mask], k.values[k.mask].to(f_marked.dtype), atol=1e-6)
    assert torch.allclose(f_marked[..., ~k.mask], f_x[..., ~k.mask], atol=1e-6)
    # exact in float64: the key is Hermitian, so nothing was lost to the imaginary part
    f = torch.where(k.mask, k.values.to(torch.complex128), wm.centred_fft(x.double()))
    assert wm.centred_ifft(f).imag.abs().max() < 1e-12


def test_key_distance_is_zero_on_the_key_and_large_without_it():
    k = key()
    x = torch.randn(400, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert wm.key_distance(wm.plant(x, k), k).abs().max() < 1e-12
    d = wm.key_distance(x, k)
    assert d.shape == (400,)
    # closed form of the mean for |N(0,1)-complex − c|: at least E|F| ≥ √π/2 · (1 − …) > 0.5
    assert d.min() > 0.2 and d.mean() > 0.8


def test_key_distance_is_the_mean_l1_gap_by_hand():
    k = key(5)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    f = np.fft.fftshift(np.fft.fft2(x.numpy(), norm="ortho"), axes=(-2, -1))
    by_hand = np.abs(f[:, 0][:, k.mask.numpy()] - k.values.numpy()[k.mask.numpy()]).mean(-1)
    assert np.allclose(wm.key_distance(x, k).numpy(), by_hand)


def test_threshold_at_fpr_flags_at_most_that_share():
    null = torch.arange(100, dtype=torch.float64)
    assert wm.threshold_at_fpr(null, 0.01) == 1.0  # only the score 0 is below 1
    assert wm.threshold_at_fpr(null, 0.05) == 5.0
    rng = np.random.default_rng(0)
    scores = rng.standard_normal(1000)
    for fpr in (0.001, 0.01, 0.1, 0.5):
        tau = wm.threshold_at_fpr(scores, fpr)
        assert (scores < tau).mean() <= fpr


def test_roc_auc_matches_the_rank_statistic_and_known_cases():
    assert wm.roc_auc([0.0, 0.1], [1.0, 2.0]) == 1.0
    assert wm.roc_auc([1.0, 2.0], [0.0, 0.1]) == 0.0
    assert wm.roc_auc([1.0], [1.0]) == 0.5
    rng = np.random.default_rng(1)
    marked, null = rng.normal(0, 1, 300), rng.normal(1, 1, 400)
    # for two normals of unit variance one apart, AUC = Φ(1/√2) ≈ 0.760
    assert wm.roc_auc(marked, null) == pytest.approx(0.760, abs=0.04)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    labels = np.r_[np.ones(300), np.zeros(400)]
    expected = sklearn_metrics.roc_auc_score(labels, -np.r_[marked, null])
    assert wm.roc_auc(marked, null) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: wm.ring_key(1, 0, 0), "size must be an int >= 2, got 1"),
        (lambda: wm.ring_key(8, 2, 1), "r_min and r_max must satisfy 0 <= r_min <= r_max < 4"),
        (lambda: wm.ring_key(8, 1, 4), "r_max=4"),
        (lambda: wm.ring_key(8, 0.2, 0.5), "contains no frequency"),
        (lambda: wm.ring_key(8, float("nan"), 1), "r_min must be a finite number"),
        (lambda: wm.plant(torch.zeros(2, 1, 6, 6), key()), "must be 8×8 images"),
        (lambda: wm.plant(torch.zeros(2, 8, 8, dtype=torch.long), key()), "real floating-point"),
        (lambda: wm.plant(torch.zeros(2, 8, 6), key()), "square (H, W)"),
        (lambda: wm.key_distance(torch.zeros(2, 1, 8, 8), "key"), "key must be a RingKey"),
        (lambda: wm.threshold_at_fpr([1.0, 2.0], 0.1), "fpr must be a number in [1/n, 1)"),
        (lambda: wm.threshold_at_fpr([1.0, 2.0], 1.0), "got 1.0"),
        (lambda: wm.threshold_at_fpr([], 0.5), "null_scores must be a non-empty"),
        (lambda: wm.roc_auc([float("nan")], [1.0]), "marked_scores must be"),
        (lambda: wm.centred_ifft(torch.zeros(8, 8)), "f must be a complex tensor"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=None) as err:
        call()
    assert message in str(err.value)
