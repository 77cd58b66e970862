"""Chapter 14's targets (issue 18), measured with more samples than the chapter.

Inpainting with an exact network on Gaussian data, inpainting the digits, and ×2
super-resolution by DDRM:

    python benchmarks/editing.py [--samples 4000] [--seeds 0 1 2]
                                 [--skip-gaussian] [--skip-digits] [--skip-sr]

1. **The exact Gaussian case.** Data N(μ, Σ): the mean and covariance of the 1,437 training
   digits (flattened) plus 0.05 I, the chapter's. The network is its exact ε-predictor
   (:func:`diffusion_lib.editing.gaussian_eps_model`) on digits-ddpm's process (linear schedule,
   T = 1000), so every error is the method's own. For each of test digits 0, 1, 2 the bottom
   half (32 pixels) is inpainted ``--samples`` times (N = 4,000) on 250 levels, without
   clipping x̂_0, by the replacement method and by RePaint with (r, j) = (5, 2), (10, 2),
   (20, 2), (40, 2), (10, 10). Columns: network calls per completion; max and RMS |mean error|
   over the missing pixels against the true conditional mean
   (:func:`diffusion_lib.editing.gaussian_conditional`); the KL divergence per missing pixel of
   the Gaussian fitted to the completions (their mean m̂ and covariance Ĉ) to the true
   conditional N(m, C), 0.5 [tr(C⁻¹Ĉ) + (m − m̂)ᵀC⁻¹(m − m̂) − d + log det C − log det Ĉ] / d; the
   seconds. The "exact samples" row is the Monte Carlo floor: the same statistics of N draws
   from N(m, C) itself, what a perfect sampler would read at this N (asymptotically a KL of
   (d + 3)/(4N) per pixel: (d + 1)/(4N) from Ĉ, 1/(2N) from m̂).

2. **Digits, top half known** (the hole "bottom"): the 360 test digits inpainted by
   `digits-ddpm` on 50 levels ("trailing"), by the replacement method and by RePaint (r = 10,
   j = 1), once per seed of ``--seeds`` (default 0). Columns, mean ± standard deviation over
   the seeds: class kept (`digits-classifier`'s argmax equals the label), the largest change of
   a known pixel (0 by construction), the seconds. For reference: the classifier's accuracy on
   the originals, and the ceiling an exact sampler of p(x | top half) would reach,
   E[p(true class | top half)], estimated with a 10-nearest-neighbour classifier
   (scikit-learn's, ``predict_proba``) on the training digits' top halves, beside that
   classifier's MAP accuracy, as in the chapter.

3. **×2 super-resolution** of the 360 test digits: y = A x with A the 2 × 2 average pooling
   (:func:`diffusion_lib.editing.average_pool_matrix`), σ_y = 0. Estimates: bicubic upsampling
   of the 4 × 4 image (``F.interpolate``, ``align_corners=False``), the least-squares solution
   A⁺y, the Wiener filter with the training digits' mean and covariance + 1e-3 I
   (:func:`diffusion_lib.editing.wiener`), and DDRM (:func:`diffusion_lib.editing.ddrm`,
   `digits-ddpm`, 20 steps, η = 0.85, η_b = 1): one sample, and the mean of 8 samples per digit,
   once per seed. Columns: PSNR (:func:`diffusion_lib.metrics.psnr`, estimates clamped to
   [-1, 1]) and class kept.

The defaults take about 6.5 minutes on 2 CPU threads (the Gaussian part about 5, RePaint on the
digits 1). Nothing here is a timed test; the chapter and the README report what this prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.neighbors import KNeighborsClassifier

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffusion_lib import GaussianDiffusion, data, editing, get_beta_schedule, metrics, zoo  # noqa: E402

MODEL, CLASSIFIER = "digits-ddpm", "digits-classifier"
THREADS = 2  # the CI machine's cores
RIDGE = 0.05  # added to the digits' covariance for the Gaussian of part 1 (the chapter's)
WIENER_RIDGE = 1e-3  # added to it for the Wiener filter of part 3 (the chapter's)
SHAPE = (1, 8, 8)
GAUSS_DIGITS, GAUSS_LEVELS = (0, 1, 2), 250
GAUSS_METHODS = [  # (label, method, r, j)
    ("replacement", "replacement", 1, 1),
    ("RePaint r=5, j=2", "repaint", 5, 2),
    ("RePaint r=10, j=2", "repaint", 10, 2),
    ("RePaint r=20, j=2", "repaint", 20, 2),
    ("RePaint r=40, j=2", "repaint", 40, 2),
    ("RePaint r=10, j=10", "repaint", 10, 10),
]
DIGIT_LEVELS = 50
DIGIT_METHODS = [("replacement", "replacement", 1, 1), ("RePaint r=10, j=1", "repaint", 10, 1)]
SR_STEPS, SR_SAMPLES = 20, 8
NEIGHBOURS = 10


def digits_gaussian(ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The training digits' mean and covariance (flattened, float64), plus ``ridge`` · I."""
    flat = data.digits("train").images.flatten(1).double()
    return flat.mean(0), torch.cov(flat.T) + ridge * torch.eye(flat.shape[1], dtype=torch.float64)


def gaussian_kl(m_hat, c_hat, m, c) -> float:
    """KL(N(m_hat, c_hat) || N(m, c)) in nats."""
    inv = torch.linalg.inv(c)
    diff = m - m_hat
    value = torch.trace(inv @ c_hat) + diff @ inv @ diff - len(m) + torch.logdet(c) - torch.logdet(c_hat)
    return 0.5 * float(value)


def fit_stats(samples: torch.Tensor, m: torch.Tensor, c: torch.Tensor) -> dict:
    """Max and RMS |mean error| and KL per pixel of the Gaussian fitted to ``samples`` (N, d)."""
    samples = samples.double()
    m_hat, c_hat = samples.mean(0), torch.cov(samples.T)
    error = m_hat - m
    return {
        "max": float(error.abs().max()),
        "rms": float(error.pow(2).mean().sqrt()),
        "kl": gaussian_kl(m_hat, c_hat, m, c) / len(m),
    }


def calls(method: str, r: int, j: int, steps: int) -> int:
    """Network calls of one completion: the steps down of RePaint's path."""
    path = editing.repaint_path(steps, r if method == "repaint" else 1, j)
    return sum(b > a for a, b in zip(path[:-1], path[1:]))


def gaussian_case(args) -> None:
    """Part 1: inpainting the bottom half under N(μ, Σ) with the exact ε-predictor."""
    mean, cov = digits_gaussian(RIDGE)
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000))  # digits-ddpm's process
    eps = editing.gaussian_eps_model(mean, cov, diffusion)
    test = data.digits("test")
    hole = editing.hole_mask("bottom", SHAPE)
    missing = ~hole.flatten().bool()
    d, n = int(missing.sum()), args.samples
    print(
        f"1. Gaussian data (training digits' mean and covariance + {RIDGE:g} I), exact ε-predictor, "
        f"linear schedule T = {diffusion.num_timesteps}, {GAUSS_LEVELS} levels, clip_denoised=False; "
        f"bottom half (d = {d} pixels) of test digits {', '.join(map(str, GAUSS_DIGITS))} inpainted "
        f"N = {n} times each"
    )
    print(f"   asymptotic floor of the KL per pixel at this N: (d + 3)/(4N) = {(d + 3) / (4 * n):.5f}")
    header = f"{'digit':>5}  {'method':<22}{'calls':>6}{'max |mean err|':>16}{'RMS mean err':>14}"
    print(f"\n{header}{'KL / pixel':>12}{'seconds':>9}")
    worst_known = 0.0
    for digit in GAUSS_DIGITS:
        y = test.images[digit : digit + 1]
        m, c = editing.gaussian_conditional(mean, cov, y, hole)
        known = y.float().expand(n, *SHAPE).contiguous()
        for label, method, r, j in GAUSS_METHODS:
            start = time.perf_counter()
            done = editing.inpaint(
                eps, diffusion, known, hole, method=method, resample=r, jump=j, steps=GAUSS_LEVELS,
                generator=torch.Generator().manual_seed(100 + digit), clip_denoised=False,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            worst_known = max(worst_known, float(((done - known) * hole).abs().max()))
            s = fit_stats(done.flatten(1)[:, missing], m, c)
            print(
                f"{digit:>5}  {label:<22}{calls(method, r, j, GAUSS_LEVELS):>6}{s['max']:>16.4f}"
                f"{s['rms']:>14.4f}{s['kl']:>12.5f}{seconds:>9.1f}"
            )
        draws = torch.randn(n, d, generator=torch.Generator().manual_seed(200 + digit), dtype=torch.float64)
        s = fit_stats(m + draws @ torch.linalg.cholesky(c).T, m, c)
        floor = "exact samples (floor)"
        print(f"{digit:>5}  {floor:<22}{'':>6}{s['max']:>16.4f}{s['rms']:>14.4f}{s['kl']:>12.5f}")
    print(f"largest change of a known pixel, every method: {worst_known:.1e}")


def spread(values, fmt: str = ".2f") -> str:
    """``mean ± sd`` over seeds (the sd only when there are several)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return f"{values.mean():{fmt}}"
    return f"{values.mean():{fmt}} ± {values.std(ddof=1):{fmt}}"


def percent(values) -> str:
    values = 100 * np.asarray(values, dtype=float)
    if len(values) < 2:
        return f"{values.mean():.1f}%"
    return f"{values.mean():.1f}% ± {values.std(ddof=1):.1f}"


def digits_inpainting(args, net, diffusion, classify, test) -> None:
    """Part 2: the top half of every test digit known; class kept against the ceiling."""
    x, labels = test.images, test.labels
    hole = editing.hole_mask("bottom", SHAPE)
    top = hole.flatten().bool()
    train = data.digits("train")
    knn = KNeighborsClassifier(n_neighbors=NEIGHBOURS).fit(
        train.images.flatten(1)[:, top].numpy(), train.labels.numpy()
    )
    posterior = knn.predict_proba(x.flatten(1)[:, top].numpy())
    truth = labels.numpy()
    ceiling = float(posterior[np.arange(len(truth)), truth].mean())
    map_acc = float((knn.classes_[posterior.argmax(1)] == truth).mean())

    print(
        f"\n2. {MODEL}: top half known (hole 'bottom'), all {len(labels)} test digits, "
        f"{DIGIT_LEVELS} levels; "
        f"seeds {args.seeds}"
    )
    header = f"{'method':<20}{'calls':>6}{'class kept':>18}{'known max change':>18}"
    print(f"\n{header}{'seconds':>16}")
    for label, method, r, j in DIGIT_METHODS:
        kept, changed, seconds = [], [], []
        for seed in args.seeds:
            start = time.perf_counter()
            out = editing.inpaint(
                net, diffusion, x, hole, method=method, resample=r, jump=j, steps=DIGIT_LEVELS,
                generator=torch.Generator().manual_seed(seed),
            )  # fmt: skip
            seconds.append(time.perf_counter() - start)
            kept.append(classify(out))
            changed.append(float(((out - x) * hole).abs().max()))
        print(
            f"{label:<20}{calls(method, r, j, DIGIT_LEVELS):>6}{percent(kept):>18}{max(changed):>18.1e}"
            f"{spread(seconds, '.1f'):>16}"
        )
    print(f"{'originals':<20}{'':>6}{percent([classify(x)]):>18}   ({CLASSIFIER}'s accuracy)")
    print(
        f"ceiling E[p(true class | top half)], {NEIGHBOURS}-NN estimate: {100 * ceiling:.1f}%; "
        f"its MAP accuracy from the top half: {100 * map_acc:.1f}%"
    )


def super_resolution(args, net, diffusion, classify, test) -> None:
    """Part 3: ×2 super-resolution by the baselines and by DDRM."""
    x = test.images
    n = len(x)
    A = editing.average_pool_matrix(*SHAPE[:2], 2)
    sr = editing.Measurement.of(A)
    y = sr(x)
    mean, cov = digits_gaussian(WIENER_RIDGE)
    fixed = {
        "bicubic": F.interpolate(y.reshape(n, 1, 4, 4), scale_factor=2, mode="bicubic", align_corners=False),
        "least squares A⁺y": (y.double() @ torch.linalg.pinv(A).T).float().reshape(n, *SHAPE),
        "Wiener": editing.wiener(mean, cov, sr, y).float().reshape(n, *SHAPE),
    }

    def psnr(images: torch.Tensor) -> float:
        return metrics.psnr(x, images.clamp(-1.0, 1.0)).mean().item()

    sampled = {"DDRM, one sample": ([], []), f"DDRM, mean of {SR_SAMPLES}": ([], [])}
    seconds, residual = [], 0.0
    for seed in args.seeds:
        start = time.perf_counter()
        samples = editing.ddrm(
            net, diffusion, y.repeat_interleave(SR_SAMPLES, 0), sr, SHAPE, steps=SR_STEPS,
            generator=torch.Generator().manual_seed(seed),
        ).reshape(n, SR_SAMPLES, *SHAPE)  # fmt: skip
        seconds.append(time.perf_counter() - start)
        residual = max(residual, float((samples.flatten(2).double() @ A.T - y.double()[:, None]).abs().max()))
        for name, images in zip(sampled, (samples[:, 0], samples.mean(1))):
            sampled[name][0].append(psnr(images))
            sampled[name][1].append(classify(images.clamp(-1.0, 1.0)))

    print(
        f"\n3. ×2 super-resolution (4×4 → 8×8, 2×2 average pooling, σ_y = 0) of all {n} test digits; "
        f"DDRM {SR_STEPS} steps, η = 0.85, η_b = 1, {SR_SAMPLES} samples per digit; seeds {args.seeds}"
    )
    print(f"\n{'estimate':<22}{'PSNR (dB)':>18}{'class kept':>18}")
    for name, images in fixed.items():
        print(f"{name:<22}{psnr(images):>18.2f}{percent([classify(images.clamp(-1.0, 1.0))]):>18}")
    for name, (psnrs, kept) in sampled.items():
        print(f"{name:<22}{spread(psnrs):>18}{percent(kept):>18}")
    print(f"{'originals':<22}{'':>18}{percent([classify(x)]):>18}")
    print(
        f"DDRM: {np.mean(seconds):.1f} s per seed ({n} × {SR_SAMPLES} samples); "
        f"largest |A x − y| of a sample: {residual:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--samples", type=int, default=4000, help="completions per digit in the Gaussian case (default 4000)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="sampling seeds of parts 2 and 3 (default 0)"
    )
    parser.add_argument("--skip-gaussian", action="store_true", help="leave out part 1 (the Gaussian case)")
    parser.add_argument("--skip-digits", action="store_true", help="leave out part 2 (inpainting the digits)")
    parser.add_argument("--skip-sr", action="store_true", help="leave out part 3 (super-resolution)")
    args = parser.parse_args()
    if args.samples < 2:
        parser.error(f"--samples must be at least 2, got {args.samples}")
    torch.set_num_threads(THREADS)
    print(f"{THREADS} threads")
    start = time.perf_counter()
    if not args.skip_gaussian:
        gaussian_case(args)
    if not (args.skip_digits and args.skip_sr):
        loaded = zoo.load(MODEL)
        net, diffusion = loaded.model.eval(), loaded.diffusion
        classifier = zoo.load(CLASSIFIER).model.eval()
        test = data.digits("test")

        def classify(images: torch.Tensor) -> float:
            """The share of images the classifier labels as the test digits."""
            with torch.no_grad():
                return (classifier(images).argmax(1) == test.labels).double().mean().item()

        if not args.skip_digits:
            digits_inpainting(args, net, diffusion, classify, test)
        if not args.skip_sr:
            super_resolution(args, net, diffusion, classify, test)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
