"""Tree-Ring watermarks: a key planted in the Fourier transform of the starting noise x_T of a
diffusion sampler, detected by inverting the sampler (chapter 16).

Wen et al. (2023), "Tree-Ring Watermarks: Fingerprints for Diffusion Images that are Invisible
and Robust", replace the Fourier coefficients of x_T inside a disc by a key that is constant
on each ring (their "Tree-Ring_rings" pattern), sample with DDIM, and detect by DDIM inversion
(chapter 7): the watermark is present when the inverted noise's coefficients in the disc lie
close to the key. Here the transform is the orthonormal 2-D DFT, centred (``fftshift``), so that
white Gaussian noise N(0, I) has coefficients of mean square 1 at every frequency.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch

__all__ = [
    "RingKey",
    "centred_fft",
    "centred_ifft",
    "frequency_radius",
    "ring_key",
    "plant",
    "key_distance",
    "threshold_at_fpr",
    "roc_auc",
]


class RingKey(NamedTuple):
    """A Tree-Ring key: where it lives and what it holds.

    Attributes:
        mask: bool (H, W), the centred frequencies the key replaces.
        values: float64 (H, W), the key's (real) coefficient at each masked frequency, one value
            per ring (distinct radius); 0 outside the mask.
    """

    mask: torch.Tensor
    values: torch.Tensor


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an int >= 2, got {size!r}")
    return size


def _check_images(name: str, x, size: Optional[int] = None) -> torch.Tensor:
    if not torch.is_tensor(x) or not x.is_floating_point() or x.is_complex():
        what = f"dtype {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be a real floating-point tensor, got {what}")
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name} must end in square (H, W) images, got shape {tuple(x.shape)}")
    if size is not None and x.shape[-1] != size:
        raise ValueError(f"{name} must be {size}×{size} images (the key's size), got {tuple(x.shape)}")
    return x


def centred_fft(x: torch.Tensor) -> torch.Tensor:
    """The orthonormal 2-D DFT of the last two axes, zero frequency moved to the centre.

    Derived in chapter 16, eq. (trend-dft). With ``norm="ortho"`` the transform is unitary, so
    N(0, I) noise has coefficients with E|F_k|² = 1 (complex, except at the self-conjugate
    frequencies, where they are real N(0, 1)).

    Raises:
        ValueError: x is not a real floating-point tensor of square images.
    """
    x = _check_images("x", x)
    return torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1))


def centred_ifft(f: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`centred_fft` (complex result; real when ``f`` is Hermitian).

    Derived in chapter 16, eq. (trend-dft).

    Raises:
        ValueError: f is not a complex tensor ending in square (H, W).
    """
    if not torch.is_tensor(f) or not f.is_complex() or f.ndim < 2 or f.shape[-1] != f.shape[-2]:
        raise ValueError(f"f must be a complex tensor ending in square (H, W), got {f!r:.60}")
    return torch.fft.ifft2(torch.fft.ifftshift(f, dim=(-2, -1)), norm="ortho")


def frequency_radius(size: int) -> torch.Tensor:
    """|k| of every centred frequency of a size × size DFT, float64 (size, size).

    Derived in chapter 16, eq. (trend-dft): after ``fftshift`` the integer frequencies run
    from −⌊size/2⌋ to ⌈size/2⌉ − 1 on each axis, and the centre (size // 2, size // 2) is k = 0.

    Raises:
        ValueError: size is not an int >= 2.
    """
    size = _check_size(size)
    k = torch.fft.fftshift(torch.fft.fftfreq(size, dtype=torch.float64) * size)
    return (k[:, None] ** 2 + k[None, :] ** 2).sqrt()


def ring_key(size: int, r_min: float, r_max: float, generator: Optional[torch.Generator] = None) -> RingKey:
    """A Tree-Ring key on the frequencies with r_min <= |k| <= r_max: one N(0, 1) value per ring.

    Derived in chapter 16, eq. (trend-ring-key), after Wen et al. (2023), whose "Tree-Ring_rings"
    key is constant on each ring of a disc. Real values on rings that the map k → −k preserves
    make the key Hermitian, so the planted noise stays real (:func:`plant`). The rings are the
    distinct radii inside the band, drawn in increasing order of radius.

    Args:
        size: the images' side.
        r_min, r_max: the band of radii, 0 <= r_min <= r_max < size / 2 (so that no ring reaches
            the unpaired Nyquist row and column of an even size).
        generator: for the key's values (the key is secret: its seed is).

    Raises:
        ValueError: size not an int >= 2; radii outside that range; a band with no frequency.
    """
    size = _check_size(size)
    for name, value in (("r_min", r_min), ("r_max", r_max)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not 0 <= r_min <= r_max < size / 2:
        raise ValueError(
            f"r_min and r_max must satisfy 0 <= r_min <= r_max < {size / 2:g} (size / 2), "
            f"got r_min={r_min!r}, r_max={r_max!r}"
        )
    radius = frequency_radius(size)
    mask = (radius >= r_min - 1e-9) & (radius <= r_max + 1e-9)
    if not bool(mask.any()):
        raise ValueError(f"the band [{r_min}, {r_max}] contains no frequency of a {size}×{size} DFT")
    values = torch.zeros(size, size, dtype=torch.float64)
    rings = torch.unique(radius[mask].round(decimals=9))
    draws = torch.randn(len(rings), generator=generator, dtype=torch.float64)
    for ring, value in zip(rings, draws):
        values[mask & ((radius - ring).abs() < 1e-6)] = value
    return RingKey(mask, values)


def _check_key(key) -> RingKey:
    if not isinstance(key, RingKey):
        raise ValueError(f"key must be a RingKey (from ring_key), got {type(key).__name__}")
    return key


def plant(x_T: torch.Tensor, key: RingKey) -> torch.Tensor:
    """x_T with its centred Fourier coefficients inside the key's mask replaced by the key.

    Derived in chapter 16, eq. (trend-plant) (Wen et al., 2023, Sec. 3). Every other coefficient
    is kept, so the images keep their own noise outside the key's band. The key is Hermitian
    (:func:`ring_key`), so the result is real up to rounding; its real part is returned, in
    ``x_T``'s dtype.

    Raises:
        ValueError: x_T is not real floating-point images of the key's size; key not a RingKey.
    """
    key = _check_key(key)
    x_T = _check_images("x_T", x_T, key.mask.shape[-1])
    f = centred_fft(x_T.double())
    f = torch.where(key.mask, key.values.to(f.dtype), f)
    return centred_ifft(f).real.to(x_T.dtype)


def key_distance(x_T: torch.Tensor, key: RingKey) -> torch.Tensor:
    """Mean |F(x_T)_k − key_k| over the key's frequencies: one score per image, float64 (N,).

    Derived in chapter 16, eq. (trend-detect), the L1 distance of Wen et al. (2023, Sec. 3):
    small when x_T carries the key. ``x_T`` is (..., H, W); every leading index is one image
    (the channel axis included: pass (N, 1, H, W) for one channel, and get N scores).

    Raises:
        ValueError: x_T is not real floating-point images of the key's size; key not a RingKey.
    """
    key = _check_key(key)
    x_T = _check_images("x_T", x_T, key.mask.shape[-1])
    f = centred_fft(x_T.double())
    gap = (f - key.values.to(f.dtype))[..., key.mask].abs().mean(-1)
    return gap.reshape(-1) if x_T.ndim <= 3 else gap.reshape(x_T.shape[0], -1).mean(-1)


def _scores(name: str, value) -> torch.Tensor:
    scores = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if scores.numel() < 1 or not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{name} must be a non-empty set of finite numbers, got {scores.numel()} values")
    return scores


def threshold_at_fpr(null_scores, fpr: float) -> float:
    """The largest threshold τ that flags at most a fraction ``fpr`` of unmarked images.

    Derived in chapter 16, eq. (trend-threshold): an image is declared watermarked when its
    score (:func:`key_distance`) is below τ; with the n null scores sorted, s_(1) <= … <= s_(n),
    τ = s_(m+1) with m = ⌊fpr · n⌋, so that at most m of them fall strictly below it. An
    empirical false-positive rate below 1/n cannot be certified: fpr must be at least 1/n.

    Args:
        null_scores: scores of images without the watermark.
        fpr: the allowed false-positive rate, in [1/n, 1).

    Raises:
        ValueError: no or non-finite scores; fpr outside [1/n, 1).
    """
    scores = _scores("null_scores", null_scores)
    n = scores.numel()
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 1.0 / n <= fpr < 1.0:
        raise ValueError(
            f"fpr must be a number in [1/n, 1) = [{1.0 / n:.3g}, 1) for {n} null scores, got {fpr!r}"
        )
    m = math.floor(fpr * n + 1e-12)
    return float(scores.sort().values[m])


def roc_auc(marked_scores, null_scores) -> float:
    """The area under the ROC curve of "score below τ means watermarked".

    Derived in chapter 16, eq. (trend-auc): the probability that a marked image scores below an
    unmarked one, ties counting one half (the Mann–Whitney statistic divided by n_1 n_0).
    1 separates perfectly; 0.5 is chance.

    Raises:
        ValueError: either set empty or not finite.
    """
    marked = _scores("marked_scores", marked_scores)
    null = _scores("null_scores", null_scores)
    below = (marked[:, None] < null[None, :]).double().mean()
    ties = (marked[:, None] == null[None, :]).double().mean()
    return float(below + 0.5 * ties)
