"""Speed and quality of the zoo's `digits-ddpm`, measured as the DDPM issue asks.

    python benchmarks/ddpm_digits.py [--samples 1000] [--retrain]

Prints: training time and steps/s (from a fresh training run with --retrain, otherwise from the
cached model's record), DDPM sampling speed (images/s), and sample quality next to the
real-data floor: the digits classifier's mean top-class probability (samples vs held-out test
digits), the class histogram of the samples, and Fréchet distances in pixel space and in the
classifier's feature space (samples vs test digits, and the train-vs-test floor).
Nothing here is a timed test; the README reports what this prints.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from diffusion_lib import metrics, samplers, zoo
from diffusion_lib.data import digits


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="number of samples to draw")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--retrain", action="store_true", help="train digits-ddpm afresh and time it")
    args = parser.parse_args(argv)

    model = zoo.load("digits-ddpm", retrain=args.retrain, progress=False)
    steps = model.entry.train.steps
    seconds = model.record["train_seconds"]
    print(
        f"training: {steps} steps in {seconds:.0f} s ({steps / seconds:.1f} steps/s, "
        f"batch {model.entry.train.batch_size}, {torch.get_num_threads()} threads)"
    )
    classifier = zoo.load("digits-classifier", progress=False).model

    start = time.perf_counter()
    batches = []
    for k in range(0, args.samples, args.batch_size):
        n = min(args.batch_size, args.samples - k)
        generator = torch.Generator().manual_seed(k)
        batches.append(
            samplers.ddpm(model.model, model.diffusion, (n, 1, 8, 8), generator=generator, progress=False)
        )
    samples = torch.cat(batches)
    seconds = time.perf_counter() - start
    print(
        f"sampling: {args.samples} images, {model.diffusion.num_timesteps} DDPM steps, {seconds:.0f} s "
        f"({args.samples / seconds:.2f} images/s)"
    )

    train, test = digits("train").images, digits("test").images
    fake, real = metrics.classifier_scores(samples, classifier), metrics.classifier_scores(test, classifier)
    ratio = fake["mean_top_prob"] / real["mean_top_prob"]
    hist = fake["class_histogram"]
    print(
        f"mean top-class probability: samples {fake['mean_top_prob']:.3f}, test digits "
        f"{real['mean_top_prob']:.3f} (ratio {ratio:.3f}; target ≥ 0.90)"
    )
    print(
        "class histogram of the samples: "
        + " ".join(f"{c}:{h:.3f}" for c, h in enumerate(hist))
        + f" (min {hist.min():.3f}, max {hist.max():.3f}; target each in [0.05, 0.15])"
    )
    ratios = {}
    for space, fid in (
        ("pixels", metrics.fid_pixels),
        ("classifier features", lambda a, b: metrics.fid_features(a, b, classifier)),
    ):
        fake_fid, floor = fid(samples, test), fid(train, test)
        ratios[space] = fake_fid / floor
        print(
            f"Fréchet distance in {space}: samples vs test {fake_fid:.2f}, train vs test (floor) "
            f"{floor:.2f}, ratio {ratios[space]:.2f} (target ≤ 2)"
        )
    met = ratio >= 0.9 and hist.min() >= 0.05 and hist.max() <= 0.15 and max(ratios.values()) <= 2
    print(f"all quality targets met: {met}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
