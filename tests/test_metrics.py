"""Sample-quality metrics against closed forms, hand-computed values and brute force.

No test trains the zoo's classifier: the classifier-based metrics run on small stub modules.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_lib import metrics
from diffusion_lib.data import ring, ring_modes
from diffusion_lib.metrics import (
    classifier_scores,
    fid_features,
    fid_pixels,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    mode_coverage,
    precision_recall,
)


def diagonal_closed_form(mu1, var1, mu2, var2):
    """‖μ1 − μ2‖² + Σ_i (√σ1_i − √σ2_i)², the Fréchet distance of diagonal Gaussians."""
    mu1, var1, mu2, var2 = (np.asarray(a, dtype=np.float64) for a in (mu1, var1, mu2, var2))
    return float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum())


# ---------------------------------------------------------------- Gaussian statistics
def test_gaussian_stats_match_numpy_and_accept_tensors():
    x = np.random.default_rng(0).normal(size=(50, 4))
    mu, sigma = gaussian_stats(x)
    np.testing.assert_allclose(mu, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-12)
    mu32, sigma32 = gaussian_stats(torch.from_numpy(x).float())
    assert mu32.dtype == np.float64 and sigma32.dtype == np.float64
    np.testing.assert_allclose(sigma32, sigma, rtol=1e-5)
    mu1, sigma1 = gaussian_stats(x[:, :1])
    assert mu1.shape == (1,) and sigma1.shape == (1, 1)


# ---------------------------------------------------------------- Fréchet distance
def test_frechet_from_stats_equals_the_diagonal_closed_form():
    mu1, var1 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 4.0, 0.25])
    mu2, var2 = np.array([1.0, 1.0, 0.5]), np.array([9.0, 1.0, 0.25])
    got = frechet_distance_from_stats(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(diagonal_closed_form(mu1, var1, mu2, var2), rel=1e-12)
    assert got == pytest.approx(1 + 6.25 + 4 + 1, rel=1e-12)  # by hand: 7.25 + (1 − 3)² + (2 − 1)²


def test_frechet_on_large_samples_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    mu1, var1 = np.array([0.0, 1.0, -1.0]), np.array([1.0, 2.0, 0.5])
    mu2, var2 = np.array([0.5, 0.0, -1.0]), np.array([0.5, 2.0, 2.0])
    x = mu1 + np.sqrt(var1) * rng.normal(size=(40_000, 3))
    y = mu2 + np.sqrt(var2) * rng.normal(size=(40_000, 3))
    expected = diagonal_closed_form(mu1, var1, mu2, var2)
    assert frechet_distance(x, y) == pytest.approx(expected, abs=0.03)


def test_frechet_of_a_set_with_itself_is_zero_and_the_distance_is_symmetric():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    y = rng.normal(size=(200, 16)) + 0.3
    assert abs(frechet_distance(x, x)) < 1e-6
    low_rank = rng.normal(size=(30, 3)) @ rng.normal(size=(3, 12))  # singular covariance
    assert abs(frechet_distance(low_rank, low_rank)) < 1e-6
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-8)
    assert frechet_distance(x, y) > 1.0


def test_frechet_full_covariance_by_hand():
    # Σ1 = diag(4, 1), Σ2 = [[2, 1], [1, 2]]: Σ1Σ2 = [[8, 4], [1, 2]] has trace 10 and determinant 12,
    # and a 2×2 matrix with positive eigenvalues has Tr √M = √(Tr M + 2 √det M).
    s1, s2 = np.diag([4.0, 1.0]), np.array([[2.0, 1.0], [1.0, 2.0]])
    mu1, mu2 = np.zeros(2), np.array([1.0, 2.0])
    expected = 5.0 + 5.0 + 4.0 - 2.0 * math.sqrt(10.0 + 2.0 * math.sqrt(12.0))
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)
    # commuting covariances: [[2, 1], [1, 2]] [[2, −1], [−1, 2]] = 3 I, so the answer is 8 − 4√3
    s3 = np.array([[2.0, -1.0], [-1.0, 2.0]])
    assert frechet_distance_from_stats(mu1, s2, mu1, s3) == pytest.approx(8 - 4 * math.sqrt(3), rel=1e-12)


def test_frechet_singular_fallback_adds_eps(monkeypatch):
    from scipy import linalg

    calls = []
    real_sqrtm = linalg.sqrtm

    def flaky_sqrtm(a):
        calls.append(a.copy())
        return np.full_like(a, np.inf) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(linalg, "sqrtm", flaky_sqrtm)
    s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 4.0])
    got = frechet_distance_from_stats(np.zeros(2), s1, np.zeros(2), s2, eps=1e-3)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + 1e-3 * np.eye(2)) @ (s2 + 1e-3 * np.eye(2)))
    assert got == pytest.approx(1.0, abs=1e-2)  # (√1 − √4)² + 0, shifted slightly by eps


def test_frechet_rejects_a_complex_square_root():
    with pytest.raises(ValueError, match=r"imaginary component of 1: are both covariances positive"):
        frechet_distance_from_stats(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))


def test_frechet_accepts_every_float_dtype_and_numpy():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(100, 4)), rng.normal(size=(80, 4)) + 1
    reference = frechet_distance(x, y)
    assert frechet_distance(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(reference, rel=1e-12)
    assert frechet_distance(torch.from_numpy(x).float(), y.astype(np.float32)) == pytest.approx(
        reference, rel=1e-5
    )
    assert frechet_distance(torch.from_numpy(x).half(), torch.from_numpy(y).half()) == pytest.approx(
        reference, rel=1e-2
    )


@pytest.mark.parametrize(
    "x, y, error, match",
    [
        (np.zeros(5), np.zeros((5, 2)), ValueError, r"x must have 2 dimensions, got shape \(5,\)"),
        (np.zeros((1, 2)), np.zeros((5, 2)), ValueError, r"x must have shape \(N, F\) with N >= 2"),
        (
            np.zeros((5, 2)),
            np.zeros((5, 0)),
            ValueError,
            r"y must have shape \(N, F\) with N >= 2 and F >= 1",
        ),
        (np.zeros((5, 2)), np.zeros((5, 3)), ValueError, r"same number of features F, got 2 and 3"),
        ([[0.0, 1.0], [1.0, 0.0]], np.zeros((5, 2)), TypeError, r"x must be a torch.Tensor or numpy.ndarray"),
        (np.array([[0.0, np.nan], [1, 2]]), np.zeros((5, 2)), ValueError, r"x must be finite, got 1 NaN"),
        (np.zeros((5, 2), dtype=complex), np.zeros((5, 2)), TypeError, r"x must be a real array"),
        (torch.zeros(5, 2, dtype=torch.complex64), np.zeros((5, 2)), TypeError, r"x must be a real tensor"),
    ],
)
def test_frechet_distance_rejects_bad_input(x, y, error, match):
    with pytest.raises(error, match=match):
        frechet_distance(x, y)


def test_frechet_from_stats_rejects_bad_input():
    mu, sigma = np.zeros(2), np.eye(2)
    with pytest.raises(ValueError, match=r"sigma1 must have shape \(2, 2\) to match mu1, got \(3, 3\)"):
        frechet_distance_from_stats(mu, np.eye(3), mu, sigma)
    with pytest.raises(ValueError, match=r"mu1 and mu2 must have the same size F, got 2 and 3"):
        frechet_distance_from_stats(mu, sigma, np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match=r"mu2 must have 1 dimensions"):
        frechet_distance_from_stats(mu, sigma, sigma, sigma)
    with pytest.raises(ValueError, match=r"eps must be a finite number > 0, got 0"):
        frechet_distance_from_stats(mu, sigma, mu, sigma, eps=0)


# ---------------------------------------------------------------- image FIDs with a stub classifier
class StubClassifier(nn.Module):
    """features = a fixed linear map of the pixels; logits = a fixed linear map of the features."""

    def __init__(self, pixels=64, features=5, classes=10):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.embed = nn.Linear(pixels, features)
        self.out = nn.Linear(features, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))
        self.modes_seen = []

    def features(self, x):
        self.modes_seen.append(self.training)
        return self.embed(x.flatten(1))

    def forward(self, x):
        return self.out(self.features(x))


def test_fid_pixels_is_the_frechet_distance_of_flattened_images():
    rng = np.random.default_rng(4)
    a = rng.uniform(-1, 1, size=(40, 1, 4, 4))
    b = np.clip(a[:30] + 0.3 * rng.normal(size=(30, 1, 4, 4)), -1, 1)
    assert fid_pixels(a, b) == pytest.approx(
        frechet_distance(a.reshape(40, -1), b.reshape(30, -1)), rel=1e-12
    )
    assert fid_pixels(torch.from_numpy(a).float(), torch.from_numpy(a).float()) < 1e-6
    assert fid_pixels(a, b) > 0.01


def test_fid_features_uses_the_classifier_features_in_eval_mode():
    rng = np.random.default_rng(5)
    a = torch.from_numpy(rng.uniform(-1, 1, size=(30, 1, 8, 8))).float()
    b = torch.from_numpy(rng.uniform(-1, 1, size=(25, 1, 8, 8))).float() * 0.5
    clf = StubClassifier().train()
    with torch.no_grad():
        expected = frechet_distance(clf.embed(a.flatten(1)), clf.embed(b.flatten(1)))
    got = fid_features(a, b, clf, batch_size=7)  # several batches
    assert got == pytest.approx(expected, rel=1e-6)
    assert fid_features(a.numpy(), a.numpy(), clf) < 1e-6
    assert clf.training and not any(clf.modes_seen), "evaluated in eval mode, then restored"


def test_fid_features_defaults_to_the_zoo_classifier(monkeypatch):
    from diffusion_lib import zoo

    clf = StubClassifier()
    asked = []

    class Loaded:
        model = clf

    def fake_load(name, **kwargs):
        asked.append(name)
        return Loaded()

    monkeypatch.setattr(zoo, "load", fake_load)
    a = torch.rand(10, 1, 8, 8) * 2 - 1
    assert fid_features(a, a) < 1e-6
    classifier_scores(a)
    assert asked == ["digits-classifier", "digits-classifier"]


@pytest.mark.parametrize(
    "a, b, error, match",
    [
        (torch.zeros(4, 64), torch.zeros(4, 1, 8, 8), ValueError, r"images_a must have 4 dimensions"),
        (
            torch.zeros(1, 1, 8, 8),
            torch.zeros(4, 1, 8, 8),
            ValueError,
            r"images_a must hold at least 2 images",
        ),
        (torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 4, 4), ValueError, r"same \(C, H, W\), got \(1, 8, 8\)"),
        (torch.zeros(4, 1, 8, 8), [[0.0]], TypeError, r"images_b must be a torch.Tensor or numpy.ndarray"),
    ],
)
def test_image_fids_reject_bad_images(a, b, error, match):
    with pytest.raises(error, match=match):
        fid_pixels(a, b)
    with pytest.raises(error, match=match):
        fid_features(a, b, StubClassifier())


def test_fid_features_rejects_bad_classifier_and_batch_size():
    a = torch.zeros(4, 1, 8, 8)
    with pytest.raises(TypeError, match=r"classifier must have a features\(x\) method .*Linear has none"):
        fid_features(a, a, nn.Linear(64, 10))
    with pytest.raises(TypeError, match=r"classifier must be an nn.Module \(or callable\), got str"):
        fid_features(a, a, "inception")
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0"):
        fid_features(a, a, StubClassifier(), batch_size=0)

    class Flat(StubClassifier):
        def features(self, x):
            return x.flatten()

    with pytest.raises(ValueError, match=r"the classifier's features must have shape \(B, F\), got \(256,\)"):
        fid_features(a, a, Flat())


# ---------------------------------------------------------------- classifier scores
class LogitsAreThePixels(nn.Module):
    """A stub whose logits are 2 × the pixels of a (N, 1, 1, K) image: known logits by construction."""

    def forward(self, x):
        return 2.0 * x.flatten(1)


def logits_as_images(logits):
    logits = torch.as_tensor(logits, dtype=torch.float64)
    return (logits / 2.0)[:, None, None, :]


def test_classifier_scores_by_hand():
    ln2, ln3 = math.log(2), math.log(3)
    # p(y|x): (3/4, 1/4), (1/3, 2/3), (1/4, 3/4); p(y) = (4/9, 5/9)
    scores = classifier_scores(logits_as_images([[ln3, 0.0], [0.0, ln2], [0.0, ln3]]), LogitsAreThePixels())
    p = np.array([[3 / 4, 1 / 4], [1 / 3, 2 / 3], [1 / 4, 3 / 4]])
    marginal = np.array([4 / 9, 5 / 9])
    kl = [sum(pi * math.log(pi / mi) for pi, mi in zip(row, marginal)) for row in p]
    assert scores["mean_top_prob"] == pytest.approx((3 / 4 + 2 / 3 + 3 / 4) / 3, rel=1e-12)
    np.testing.assert_allclose(scores["class_histogram"], [1 / 3, 2 / 3], rtol=1e-12)
    assert scores["class_histogram"].dtype == np.float64 and scores["class_histogram"].shape == (2,)
    assert scores["predicted"].dtype == torch.int64 and scores["predicted"].tolist() == [0, 1, 1]
    assert scores["inception_score"] == pytest.approx(math.exp(sum(kl) / 3), rel=1e-12)


def test_inception_score_is_the_number_of_classes_for_confident_uniform_predictions():
    scores = classifier_scores(logits_as_images(60.0 * torch.eye(10).repeat(3, 1)), LogitsAreThePixels())
    assert scores["inception_score"] == pytest.approx(10.0, rel=1e-9)
    assert scores["mean_top_prob"] == pytest.approx(1.0, rel=1e-9)
    np.testing.assert_allclose(scores["class_histogram"], np.full(10, 0.1))
    assert scores["predicted"].tolist() == list(range(10)) * 3


def test_inception_score_is_one_for_identical_predictions():
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.0]]).repeat(6, 1)
    scores = classifier_scores(logits_as_images(logits).numpy(), LogitsAreThePixels())
    assert scores["inception_score"] == pytest.approx(1.0, abs=1e-12)
    assert scores["predicted"].tolist() == [2] * 6
    np.testing.assert_allclose(scores["class_histogram"], [0, 0, 1, 0])
    assert scores["mean_top_prob"] == pytest.approx(
        torch.softmax(logits[0].double(), 0).max().item(), rel=1e-6
    )


def test_classifier_scores_batches_and_restores_training_mode():
    clf = StubClassifier().train()
    x = torch.rand(23, 1, 8, 8) * 2 - 1
    one = classifier_scores(x, clf, batch_size=512)
    many = classifier_scores(x, clf, batch_size=4)
    assert one["inception_score"] == pytest.approx(many["inception_score"], rel=1e-6)
    assert torch.equal(one["predicted"], many["predicted"])
    assert clf.training and not any(clf.modes_seen)


def test_classifier_scores_reject_bad_input():
    clf = LogitsAreThePixels()
    with pytest.raises(ValueError, match=r"images must hold at least 1 images"):
        classifier_scores(torch.zeros(0, 1, 1, 3), clf)
    with pytest.raises(ValueError, match=r"images must have 4 dimensions"):
        classifier_scores(torch.zeros(3, 8, 8), clf)
    with pytest.raises(ValueError, match=r"images must be finite"):
        classifier_scores(torch.full((2, 1, 1, 3), float("nan")), clf)
    with pytest.raises(
        ValueError, match=r"the classifier's logits must have shape \(B, K\), got \(2, 1, 1, 3\)"
    ):
        classifier_scores(torch.zeros(2, 1, 1, 3), nn.Identity())
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 1.5"):
        classifier_scores(torch.zeros(2, 1, 1, 3), clf, batch_size=1.5)


# ---------------------------------------------------------------- precision and recall
def brute_force_precision_recall(real, fake, k):
    def radii(x):
        return [sorted(abs_distance(a, b) for b in x)[k] for a in x]  # [0] is the point itself

    def abs_distance(a, b):
        return float(np.sqrt(((a - b) ** 2).sum()))

    real_r, fake_r = radii(real), radii(fake)
    precision = np.mean([any(abs_distance(f, r) <= rr for r, rr in zip(real, real_r)) for f in fake])
    recall = np.mean([any(abs_distance(r, f) <= fr for f, fr in zip(fake, fake_r)) for r in real])
    return precision, recall


def test_precision_recall_by_hand():
    # real radii (k = 1): 1, 1, 1, 1, 7; fake radii: 0.25, 0.25, 0.25, 1.75, 17.25.
    # fake 20 is 10 from real 10 (> 7); real 0 is 0.5 from fake 0.5 (> 0.25) and 2.75 from 2.75 (> 1.75).
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    fake = np.array([[0.5], [0.75], [1.0], [2.75], [20.0]])
    assert precision_recall(real, fake, k=1) == {"precision": 0.8, "recall": 0.8}
    assert brute_force_precision_recall(real, fake, 1) == (0.8, 0.8)


def test_precision_recall_matches_brute_force():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(40, 3))
    fake = rng.normal(size=(35, 3)) * 1.5 + 0.5
    for k in (1, 3, 5):
        got = precision_recall(torch.from_numpy(real).float(), fake, k=k)
        expected = brute_force_precision_recall(real.astype(np.float32).astype(np.float64), fake, k)
        assert (got["precision"], got["recall"]) == pytest.approx(expected)


def test_precision_recall_identical_and_far_apart_sets():
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}
    assert precision_recall(x, x + 100.0) == {"precision": 0.0, "recall": 0.0}
    collapsed = precision_recall(x, x[:10].repeat(20, 1))  # mode collapse: good samples, low recall
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.5


@pytest.mark.parametrize(
    "real, fake, k, match",
    [
        (np.zeros((5, 2)), np.zeros((5, 3)), 1, r"same F, got 2 and 3"),
        (np.zeros((3, 2)), np.zeros((10, 2)), 3, r"k must be < the number of samples in each set \(3 real"),
        (np.zeros((10, 2)), np.zeros((2, 2)), 2, r"\(10 real, 2 fake\), got 2"),
        (np.zeros((10, 2)), np.zeros((10, 2)), 0, r"k must be an int >= 1, got 0"),
        (np.zeros((10, 2)), np.zeros((10, 2)), 2.0, r"k must be an int >= 1, got 2.0"),
        (np.zeros(10), np.zeros((10, 2)), 1, r"real_features must have 2 dimensions"),
    ],
)
def test_precision_recall_rejects_bad_input(real, fake, k, match):
    with pytest.raises(ValueError, match=match):
        precision_recall(real, fake, k=k)


# ---------------------------------------------------------------- mode coverage
def test_mode_coverage_by_hand():
    centres = ring_modes(4, 1.0)  # (1, 0), (0, 1), (−1, 0), (0, −1)
    samples = torch.tensor([[1.1, 0.0], [0.95, 0.05], [0.0, 0.8], [0.0, 0.0], [5.0, 5.0], [-0.5, 0.0]])
    got = mode_coverage(samples, centres, std=0.1, threshold=3.0)
    assert got["modes_hit"] == 2
    assert got["high_quality_fraction"] == pytest.approx(3 / 6)
    assert got["per_mode_counts"].tolist() == [2, 1, 0, 0] and got["per_mode_counts"].dtype == np.int64
    wider = mode_coverage(samples.numpy(), centres.numpy(), std=0.1, threshold=6.0)  # (−0.5, 0) now counts
    assert wider["modes_hit"] == 3 and wider["per_mode_counts"].tolist() == [2, 1, 1, 0]
    # at distances 0.299, 0.301 and 0.299 from their nearest centres: just inside, outside, inside
    edge = torch.tensor([[0.0, -0.701], [0.0, -1.301], [-1.0, 0.299]], dtype=torch.float64)
    got = mode_coverage(edge, centres, std=0.1, threshold=3.0)
    assert got["per_mode_counts"].tolist() == [0, 0, 1, 1]
    assert got["high_quality_fraction"] == pytest.approx(2 / 3)


def test_mode_coverage_all_modes_and_ring_statistics():
    centres = ring_modes(8, 2.0)
    assert mode_coverage(centres, centres, std=0.05)["modes_hit"] == 8
    x = ring(20_000, std=0.05, seed=1)
    got = mode_coverage(x, centres, std=0.05, threshold=3.0)
    assert got["modes_hit"] == 8 and got["per_mode_counts"].sum() == round(
        got["high_quality_fraction"] * 20_000
    )
    p = 1 - math.exp(-9 / 2)  # P(‖z‖ ≤ 3) for a 2-D standard normal
    assert abs(got["high_quality_fraction"] - p) < 4 * math.sqrt(p * (1 - p) / 20_000)
    collapsed = mode_coverage(x[torch.cdist(x, centres).argmin(1) < 3], centres, std=0.05)
    assert collapsed["modes_hit"] == 3


def test_mode_coverage_min_fraction_and_effective_modes_by_hand():
    centres = ring_modes(4, 1.0)
    # 6 samples at mode 0, 3 at mode 1, 1 at mode 2 (all exactly on a centre), none at mode 3
    samples = centres[[0] * 6 + [1] * 3 + [2]]
    got = mode_coverage(samples, centres, std=0.1)
    assert got["modes_hit"] == 3
    q = np.array([0.6, 0.3, 0.1])
    assert got["effective_modes"] == pytest.approx(math.exp(-(q * np.log(q)).sum()), rel=1e-12)
    assert mode_coverage(samples, centres, std=0.1, min_fraction=0.2)["modes_hit"] == 2  # 1/10 < 0.2
    assert mode_coverage(samples, centres, std=0.1, min_fraction=0.3)["modes_hit"] == 2  # 3/10 counts
    assert mode_coverage(samples, centres, std=0.1, min_fraction=1.0)["modes_hit"] == 0
    # the effective number counts every sample, good or not; the hit count only good ones
    far = centres[[0, 1, 2, 3]] * 1.5  # each 0.5 from its nearest centre: not high quality
    spread = mode_coverage(far, centres, std=0.1)
    assert spread["effective_modes"] == pytest.approx(4.0) and spread["modes_hit"] == 0
    assert mode_coverage(centres[[2] * 5], centres, std=0.1)["effective_modes"] == pytest.approx(1.0)


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), True, "0.1"])
def test_mode_coverage_rejects_a_bad_min_fraction(value):
    with pytest.raises(ValueError, match=r"min_fraction must be a number in \[0, 1\], got "):
        mode_coverage(np.zeros((3, 2)), np.zeros((2, 2)), std=0.1, min_fraction=value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"std": 0.0}, r"std must be a finite number > 0, got 0.0"),
        ({"std": float("nan")}, r"std must be a finite number > 0, got nan"),
        ({"std": 0.1, "threshold": -1}, r"threshold must be a finite number > 0, got -1"),
        ({"std": 0.1, "centres": np.zeros((4, 3))}, r"same dimension D, got 2 and 3"),
        ({"std": 0.1, "samples": np.zeros(2)}, r"samples must have 2 dimensions"),
    ],
)
def test_mode_coverage_rejects_bad_input(kwargs, match):
    args = {"samples": np.zeros((5, 2)), "centres": np.zeros((4, 2)), **kwargs}
    with pytest.raises(ValueError, match=match):
        mode_coverage(args.pop("samples"), args.pop("centres"), **args)


def test_every_public_metric_is_tested_here():
    assert set(metrics.__all__) == {
        "gaussian_stats",
        "frechet_distance_from_stats",
        "frechet_distance",
        "fid_pixels",
        "fid_features",
        "classifier_scores",
        "precision_recall",
        "mode_coverage",
        "psnr",
    }


# ---------------------------------------------------------------- the digits classifier (untrained here)
def test_digits_classifier_shapes_and_use_as_feature_extractor():
    from diffusion_lib.nets.classifier import DigitsClassifier

    torch.manual_seed(0)
    clf = DigitsClassifier().eval()
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    assert clf(x).shape == (6, 10) and clf.features(x).shape == (6, 64)
    assert DigitsClassifier(width=8, feature_dim=16, num_classes=3).features(x).shape == (6, 16)
    with torch.no_grad():
        assert torch.allclose(clf(x), clf.head(clf.features(x))), "logits are a layer on the features"
    assert fid_features(x, x, clf) < 1e-6
    assert classifier_scores(x, clf)["class_histogram"].shape == (10,)


def test_digits_classifier_rejects_bad_input():
    from diffusion_lib.nets.classifier import DigitsClassifier

    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(B, 1, 8, 8\), got \(2, 1, 28, 28\)"):
        DigitsClassifier()(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"width must be an int >= 1, got 0"):
        DigitsClassifier(width=0)
    with pytest.raises(ValueError, match=r"feature_dim must be an int >= 1, got 2.5"):
        DigitsClassifier(feature_dim=2.5)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1"):
        DigitsClassifier(dropout=1)


def test_psnr_by_hand_and_its_errors():
    images = torch.linspace(-1, 1, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    noisy = images + 0.1 * torch.tensor([1.0, -2.0])[:, None, None, None]
    # MSE 0.01 and 0.04 except where clipping to [-1, 1] shortens the error (pixels near ±1)
    clipped = noisy.clamp(-1, 1)
    mse = (clipped - images).pow(2).flatten(1).mean(1).double()
    assert torch.allclose(metrics.psnr(images, noisy), 10 * torch.log10(4 / mse))
    assert metrics.psnr(images, images + 0.1)[0] < metrics.psnr(images, images + 0.05)[0]
    assert float(metrics.psnr(images[:1] * 0.5, images[:1] * 0.5 + 0.02)) == pytest.approx(
        10 * math.log10(4 / 4e-4)
    )
    assert torch.isinf(metrics.psnr(images, images)).all()
    with pytest.raises(ValueError, match="images and reconstructions must have the same shape"):
        metrics.psnr(images, images[:1])
