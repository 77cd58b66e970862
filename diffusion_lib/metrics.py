"""How good are the samples? Fréchet distance, precision/recall, classifier scores, mode coverage.

Used in chapter 9 (evaluating generators), and in chapters 3, 6 and 7 to measure the models they
train. Every function accepts torch tensors (any float dtype, any device) or NumPy arrays, and
computes in float64. Images are (N, C, H, W) in [-1, 1].

The image metrics of the literature use Inception-v3 trained on ImageNet; for 8×8 digits the
book uses its own small classifier (:class:`diffusion_lib.nets.classifier.DigitsClassifier`,
the zoo's ``"digits-classifier"``) in the same roles: its penultimate layer is the feature space
of the Fréchet distance ("FID"), its class probabilities give the Inception-Score analogue.
"""

from __future__ import annotations

import math
import warnings
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

__all__ = [
    "gaussian_stats",
    "frechet_distance_from_stats",
    "frechet_distance",
    "fid_pixels",
    "fid_features",
    "classifier_scores",
    "precision_recall",
    "mode_coverage",
    "psnr",
]

ArrayLike = Union[torch.Tensor, np.ndarray]
_CHUNK = 1024  # rows of a distance matrix computed at once
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


# ---------------------------------------------------------------- input handling
def _as_float64(name: str, value, ndim: int) -> np.ndarray:
    """A float64 NumPy copy of a tensor or array with ``ndim`` dimensions and finite values."""
    if torch.is_tensor(value):
        if value.is_complex() or not (value.is_floating_point() or value.dtype in _INT_DTYPES):
            raise TypeError(f"{name} must be a real tensor, got dtype {value.dtype}")
        array = value.detach().to("cpu", torch.float64).numpy()
    elif isinstance(value, np.ndarray):
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise TypeError(f"{name} must be a real array, got dtype {value.dtype}")
        array = value.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got {int((~np.isfinite(array)).sum())} NaN or inf values")
    return array


def _features(name: str, value, min_rows: int = 2) -> np.ndarray:
    array = _as_float64(name, value, 2)
    if array.shape[0] < min_rows or array.shape[1] < 1:
        raise ValueError(
            f"{name} must have shape (N, F) with N >= {min_rows} and F >= 1, got {tuple(array.shape)}"
        )
    return array


def _images(name: str, value, min_images: int = 1) -> torch.Tensor:
    """Images as a float64 CPU tensor (N, C, H, W), N >= min_images, finite."""
    array = _as_float64(name, value, 4)
    if array.shape[0] < min_images:
        raise ValueError(
            f"{name} must hold at least {min_images} images (N, C, H, W), got {tuple(array.shape)}"
        )
    return torch.from_numpy(array)


def _image_pair(images_a, images_b) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _images("images_a", images_a, 2), _images("images_b", images_b, 2)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            "images_a and images_b must have the same (C, H, W), "
            f"got {tuple(a.shape[1:])} and {tuple(b.shape[1:])}"
        )
    return a, b


def _check_classifier(classifier, *, needs_features: bool) -> nn.Module:
    if classifier is None:
        from . import zoo  # lazily: zoo imports the training code, which metrics does not need

        return zoo.load("digits-classifier").model
    if not callable(classifier):
        raise TypeError(f"classifier must be an nn.Module (or callable), got {type(classifier).__name__}")
    if needs_features and not callable(getattr(classifier, "features", None)):
        raise TypeError(
            "classifier must have a features(x) method returning (B, F), "
            f"{type(classifier).__name__} has none"
        )
    return classifier


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")


@torch.no_grad()
def _apply(fn, module, images: torch.Tensor, batch_size: int, what: str, width: str) -> torch.Tensor:
    """``fn(batch)`` over ``images`` in batches, in eval mode, on the device and in the dtype of the
    module's parameters (float64 if it has none); the result as float64 on the CPU."""
    params = list(module.parameters()) if isinstance(module, nn.Module) else []
    device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float64
    was_training = module.training if isinstance(module, nn.Module) else None
    if was_training:
        module.eval()
    try:
        outputs = [
            fn(images[i : i + batch_size].to(device, dtype)).to("cpu", torch.float64)
            for i in range(0, images.shape[0], batch_size)
        ]
    finally:
        if was_training:
            module.train()
    out = torch.cat(outputs)
    if out.ndim != 2 or out.shape[0] != images.shape[0]:
        raise ValueError(f"the classifier's {what} must have shape (B, {width}), got {tuple(out.shape)}")
    return out


# ---------------------------------------------------------------- Fréchet distance
def gaussian_stats(x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The mean and covariance of a set of feature vectors, in float64.

    Derived in chapter 9, eq. (fid): the Fréchet distance fits a Gaussian to each set.

    Args:
        x: (N, F) features, N >= 2.

    Returns:
        ``(mu, sigma)``: mean (F,) and the unbiased covariance (F, F) (divisor N − 1, as
        ``numpy.cov`` and pytorch-fid).
    """
    x = _features("x", x)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _stats(name: str, mu, sigma) -> tuple[np.ndarray, np.ndarray]:
    mu = _as_float64(f"mu{name}", mu, 1)
    sigma = _as_float64(f"sigma{name}", sigma, 2)
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"sigma{name} must have shape ({mu.shape[0]}, {mu.shape[0]}) to match mu{name}, "
            f"got {tuple(sigma.shape)}"
        )
    return mu, sigma


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2, *, eps: float = 1e-6) -> float:
    """The Fréchet (2-Wasserstein) distance² between N(μ1, Σ1) and N(μ2, Σ2).

    Derived in chapter 9, eq. (fid): ``‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2})``. Computed in
    float64 with ``scipy.linalg.sqrtm`` as pytorch-fid does: when the product is singular enough
    that its square root is not finite, ``eps · I`` is added to both covariances; an imaginary
    part left by rounding is dropped if the diagonal's is below 1e-3 (otherwise ValueError).
    Rounding can make the result a hair below zero; it is clamped at 0.

    Args:
        mu1, sigma1: mean (F,) and covariance (F, F) of the first Gaussian.
        mu2, sigma2: the same for the second.
        eps: the diagonal offset of the singular fallback, > 0.

    Returns:
        The distance, a float >= 0 (in squared feature units, as FID).
    """
    from scipy import linalg

    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    mu1, sigma1 = _stats("1", mu1, sigma1)
    mu2, sigma2 = _stats("2", mu2, sigma2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must have the same size F, got {mu1.shape[0]} and {mu2.shape[0]}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product makes sqrtm warn; the check below handles it
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"the square root of sigma1 @ sigma2 has an imaginary component of "
                f"{np.max(np.abs(covmean.imag)):.3g}: are both covariances positive semi-definite?"
            )
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return max(float(value), 0.0)


def frechet_distance(x: ArrayLike, y: ArrayLike, *, eps: float = 1e-6) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of feature vectors.

    Derived in chapter 9, eq. (fid). ``frechet_distance(x, y)`` is
    ``frechet_distance_from_stats(*gaussian_stats(x), *gaussian_stats(y))``.

    Args:
        x: (N, F) features, N >= 2.
        y: (M, F) features, M >= 2, the same F.
        eps: see :func:`frechet_distance_from_stats`.
    """
    x, y = _features("x", x), _features("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same number of features F, got {x.shape[1]} and {y.shape[1]}"
        )
    return frechet_distance_from_stats(*gaussian_stats(x), *gaussian_stats(y), eps=eps)


def fid_pixels(images_a: ArrayLike, images_b: ArrayLike) -> float:
    """The Fréchet distance between two image sets, on their flattened pixels.

    Used in chapter 9 as the simplest baseline: no feature network, so it sees colour and
    position statistics but little of shape.

    Args:
        images_a: (N, C, H, W) images in [-1, 1], N >= 2.
        images_b: (M, C, H, W) images in [-1, 1], M >= 2, the same (C, H, W).
    """
    a, b = _image_pair(images_a, images_b)
    return frechet_distance(a.flatten(1), b.flatten(1))


def fid_features(
    images_a: ArrayLike,
    images_b: ArrayLike,
    classifier: Optional[nn.Module] = None,
    *,
    batch_size: int = 512,
) -> float:
    """FID for the digits: the Fréchet distance between classifier features of two image sets.

    Derived in chapter 9, eq. (fid), with the digits classifier in Inception-v3's role. Values
    are comparable only between runs that use the same classifier and similar set sizes (the
    estimate is biased upwards for small sets).

    Args:
        images_a: (N, 1, 8, 8) images in [-1, 1], N >= 2.
        images_b: (M, 1, 8, 8) images in [-1, 1], M >= 2.
        classifier: any module with ``features(x) -> (B, F)``; default the zoo's
            ``"digits-classifier"`` (trained on first use, about 15 s).
        batch_size: images per forward pass.
    """
    _check_batch_size(batch_size)
    a, b = _image_pair(images_a, images_b)
    classifier = _check_classifier(classifier, needs_features=True)
    fa = _apply(classifier.features, classifier, a, batch_size, "features", "F")
    fb = _apply(classifier.features, classifier, b, batch_size, "features", "F")
    return frechet_distance(fa, fb)


# ---------------------------------------------------------------- classifier scores
def classifier_scores(
    images: ArrayLike, classifier: Optional[nn.Module] = None, *, batch_size: int = 512
) -> dict:
    """Scores of generated images read off a classifier's p(y | x).

    Derived in chapter 9, eq. (inception-score): the Inception Score (Salimans et al., 2016)
    ``IS = exp(E_x[KL(p(y|x) ‖ p(y))])`` with ``p(y) = E_x[p(y|x)]``; it lies between 1 (every
    image gets the same prediction) and K (confident predictions spread evenly over K classes).

    Args:
        images: (N, C, H, W) images in [-1, 1], N >= 1.
        classifier: a module returning logits (B, K); default the zoo's ``"digits-classifier"``.
        batch_size: images per forward pass.

    Returns:
        A dict: ``mean_top_prob`` (float, the mean of max_y p(y|x): confidence, a proxy for
        quality), ``class_histogram`` (float64 array (K,), the fraction of images predicted as
        each class: diversity), ``predicted`` (int64 tensor (N,), the argmax class) and
        ``inception_score`` (float).
    """
    _check_batch_size(batch_size)
    x = _images("images", images)
    classifier = _check_classifier(classifier, needs_features=False)
    logits = _apply(classifier, classifier, x, batch_size, "logits", "K")
    log_p = torch.log_softmax(logits, dim=1)
    p = log_p.exp()
    log_marginal = torch.log(p.mean(dim=0))
    kl_terms = torch.where(p > 0, p * (log_p - log_marginal), torch.zeros_like(p))
    predicted = p.argmax(dim=1)
    histogram = torch.bincount(predicted, minlength=p.shape[1]).double() / p.shape[0]
    return {
        "mean_top_prob": float(p.max(dim=1).values.mean()),
        "class_histogram": histogram.numpy(),
        "predicted": predicted,
        "inception_score": float(torch.exp(kl_terms.sum(dim=1).mean())),
    }


# ---------------------------------------------------------------- precision and recall
def _kth_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """The distance from each row of x to its k-th nearest other row."""
    radii = [
        torch.cdist(x[i : i + _CHUNK], x, compute_mode="donot_use_mm_for_euclid_dist")
        .kthvalue(k + 1, dim=1)
        .values
        for i in range(0, x.shape[0], _CHUNK)
    ]
    return torch.cat(radii)


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """For each point: does it lie within radii[j] of some centres[j]?"""
    inside = [
        (
            torch.cdist(points[i : i + _CHUNK], centres, compute_mode="donot_use_mm_for_euclid_dist") <= radii
        ).any(1)
        for i in range(0, points.shape[0], _CHUNK)
    ]
    return torch.cat(inside)


def precision_recall(real_features: ArrayLike, fake_features: ArrayLike, *, k: int = 3) -> dict:
    """Improved precision and recall (Kynkäänniemi et al., 2019) by k-nearest-neighbour manifolds.

    Derived in chapter 9, section on precision and recall. Each set's manifold is the union of
    balls around its points, each ball's radius the distance to that point's k-th nearest
    neighbour within the set. Precision is the fraction of fake samples inside the real
    manifold (quality); recall the fraction of real samples inside the fake manifold (coverage).
    Distances are Euclidean, in float64.

    Args:
        real_features: (N, F) features of real data.
        fake_features: (M, F) features of generated data, the same F.
        k: the neighbour that sets the radius, 1 <= k < min(N, M) (the paper uses 3).

    Returns:
        ``{"precision": float, "recall": float}``, each in [0, 1].
    """
    real = _features("real_features", real_features, min_rows=1)
    fake = _features("fake_features", fake_features, min_rows=1)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real_features and fake_features must have the same F, got {real.shape[1]} and {fake.shape[1]}"
        )
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    smallest = min(real.shape[0], fake.shape[0])
    if k >= smallest:
        raise ValueError(
            f"k must be < the number of samples in each set ({real.shape[0]} real, "
            f"{fake.shape[0]} fake), got {k}"
        )
    real_t, fake_t = torch.from_numpy(real), torch.from_numpy(fake)
    precision = _inside(fake_t, real_t, _kth_radii(real_t, k)).double().mean()
    recall = _inside(real_t, fake_t, _kth_radii(fake_t, k)).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


# ---------------------------------------------------------------- mode coverage
def mode_coverage(
    samples: ArrayLike, centres: ArrayLike, *, std: float, threshold: float = 3.0, min_fraction: float = 0.0
) -> dict:
    """Mode coverage of samples from a mixture of Gaussians, such as the ring of chapter 3.

    Used in chapters 3 and 9 (the GAN-versus-diffusion comparison; the measure of Srivastava
    et al., 2017). A sample is *high quality* if it lies within ``threshold · std`` of its
    nearest centre; a mode is *hit* if at least one high-quality sample is nearest to it (and at
    least ``min_fraction · N`` of them, when that is > 0). The *effective number of modes*
    exp(H), H the entropy of the histogram of all samples' nearest centres, is 1 when every
    sample sits nearest one mode and M when they spread evenly (chapter 3, mode collapse).

    Args:
        samples: (N, D) generated points, N >= 1 (D = 2 for the ring).
        centres: (M, D) the mixture's means, e.g. :func:`diffusion_lib.data.ring_modes`.
        std: the mixture components' standard deviation, > 0.
        threshold: the high-quality radius in units of ``std``, > 0.
        min_fraction: the share of the N samples a mode's high-quality count must reach to
            count as hit, in [0, 1]; 0 means one sample suffices.

    Returns:
        A dict: ``modes_hit`` (int, 0..M), ``high_quality_fraction`` (float in [0, 1]),
        ``per_mode_counts`` (int64 array (M,), the high-quality samples nearest each mode) and
        ``effective_modes`` (float in [1, M]).
    """
    x = _features("samples", samples, min_rows=1)
    c = _features("centres", centres, min_rows=1)
    if x.shape[1] != c.shape[1]:
        raise ValueError(
            f"samples and centres must have the same dimension D, got {x.shape[1]} and {c.shape[1]}"
        )
    for name, value in (("std", std), ("threshold", threshold)):
        ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    ok = isinstance(min_fraction, (int, float, np.floating)) and not isinstance(min_fraction, bool)
    if not ok or not 0 <= min_fraction <= 1:
        raise ValueError(f"min_fraction must be a number in [0, 1], got {min_fraction!r}")
    distances = torch.cdist(
        torch.from_numpy(x), torch.from_numpy(c), compute_mode="donot_use_mm_for_euclid_dist"
    )
    nearest_distance, nearest = distances.min(dim=1)
    good = nearest_distance <= threshold * std
    counts = torch.bincount(nearest[good], minlength=c.shape[0]).numpy().astype(np.int64)
    shares = torch.bincount(nearest, minlength=c.shape[0]).double() / x.shape[0]
    shares = shares[shares > 0]
    return {
        "modes_hit": int(((counts > 0) & (counts >= min_fraction * x.shape[0])).sum()),
        "high_quality_fraction": float(good.double().mean()),
        "per_mode_counts": counts,
        "effective_modes": math.exp(float(-(shares * shares.log()).sum())),
    }


# ---------------------------------------------------------------- reconstruction
def psnr(images: ArrayLike, reconstructions: ArrayLike) -> torch.Tensor:
    """The peak signal-to-noise ratio of each reconstruction, in dB: (N,) float64.

    Chapter 12 uses it for the autoencoder. For images in [-1, 1] the peak-to-peak range is 2,
    so PSNR = 10 log10(2² / MSE), the MSE over one image's numbers; reconstructions are first
    clipped to [-1, 1], as an image would be displayed. Identical images give +inf.

    Raises:
        ValueError: images that are not (N, C, H, W) or whose shapes differ.
    """
    a, b = _images("images", images), _images("reconstructions", reconstructions)
    if a.shape != b.shape:
        raise ValueError(
            f"images and reconstructions must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    mse = (b.double().clamp(-1.0, 1.0) - a.double()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(4.0 / mse)
