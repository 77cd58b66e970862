"""GAN against diffusion on the digits over several training seeds, beyond what chapter 9 runs.

    python benchmarks/gan_vs_diffusion.py [--seeds 0 1 2] [--samples 500] [--steps 50]

Chapter 9 compares `digits-gan` over three seeds with `digits-ddpm` over one, because each
`digits-ddpm` seed trains for minutes. This script trains (or loads) both for every seed given
and prints, per seed and as mean ± standard deviation: the Fréchet distance in the digits
classifier's features, k-NN precision and recall (k = 3) and the classifier's Inception Score,
all for ``--samples`` samples against the 360 test digits, as in chapter 9, and the training
time from each model's record. `digits-ddpm` samples with DDIM (η = 0, ``--steps`` steps;
chapter 7 compares DDIM with DDPM on this model), so that several seeds cost minutes, not hours.

Then, as chapter 9 does, it calls one family better on a measure only where the two families'
ranges over seeds are apart by more than two standard errors of sampling noise (a bootstrap over
the samples for FD and IS; binomial for precision and recall), and says "no difference"
otherwise. The book-wide seed shift (``DIFFUSION_LIB_SEED_SHIFT``, see the README) applies: under
shift k, seed s is the training seed 1000 k + s. Nothing here is a timed test; the README reports
what this prints.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from diffusion_lib import gan, metrics, samplers, zoo
from diffusion_lib.data import digits
from diffusion_lib.seeds import seed_shift

# measure: (higher is better, standard error kind)
MEASURES = {
    "FD": (False, "bootstrap"),
    "precision": (True, "binomial"),
    "recall": (True, "binomial"),
    "IS": (True, "bootstrap"),
}


def bootstrap_se(fake: np.ndarray, probs: np.ndarray, real: np.ndarray, repeats: int = 100) -> dict:
    """Standard errors of FD and IS over resamples (with replacement) of one model's samples."""
    rng = np.random.default_rng(9)
    values = {"FD": [], "IS": []}
    for _ in range(repeats):
        i = rng.integers(0, len(fake), len(fake))
        values["FD"].append(metrics.frechet_distance(fake[i], real))
        p = probs[i]
        p_y = p.mean(axis=0)
        values["IS"].append(math.exp(np.mean(np.sum(p * np.log(p / p_y), axis=1))))
    return {key: float(np.std(v, ddof=1)) for key, v in values.items()}


def verdict(gan_values, ddpm_values, higher_is_better: bool, se: float) -> str:
    """Which family is better on every seed by more than 2 s.e., or 'no difference'."""
    sign = 1.0 if higher_is_better else -1.0
    g, d = sign * np.asarray(gan_values), sign * np.asarray(ddpm_values)
    if d.min() - g.max() > 2 * se:
        return "digits-ddpm better"
    if g.min() - d.max() > 2 * se:
        return "digits-gan better"
    return "no difference"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--samples", type=int, default=500, help="samples per model")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps for digits-ddpm")
    args = parser.parse_args(argv)

    classifier = zoo.load("digits-classifier", progress=False).model
    with torch.no_grad():
        real = classifier.features(digits("test").images).double().numpy()
    rows = {"digits-gan": [], "digits-ddpm": []}
    standard_errors = {"FD": 0.0, "IS": 0.0}
    print(f"seed shift {seed_shift()} (training seeds {[1000 * seed_shift() + s for s in args.seeds]})")
    for seed in args.seeds:
        for name in rows:
            model = zoo.load(name, seed=seed, progress=False)
            generator = torch.Generator().manual_seed(1000 + seed)
            with torch.no_grad():
                if model.entry.family == "gan":
                    images = gan.sample(model.model, args.samples, generator=generator)
                else:
                    shape = (args.samples, *model.entry.sample_shape)
                    images = samplers.ddim(
                        model.model,
                        model.diffusion,
                        shape,
                        steps=args.steps,
                        generator=generator,
                        progress=False,
                    )
                fake = classifier.features(images.float()).double().numpy()
                probs = torch.softmax(classifier(images.float()).double(), dim=1).numpy()
            pr = metrics.precision_recall(real, fake, k=3)
            row = {
                "FD": metrics.frechet_distance(fake, real),
                "precision": pr["precision"],
                "recall": pr["recall"],
                "IS": metrics.classifier_scores(images, classifier)["inception_score"],
                "train s": model.record["train_seconds"],
            }
            rows[name].append(row)
            for key, se in bootstrap_se(fake, probs, real).items():
                standard_errors[key] = max(standard_errors[key], se)
            cells = "  ".join(f"{key} {value:.3f}" for key, value in row.items())
            print(f"{name:12s} seed {seed}: {cells}", flush=True)
    sampler = f"DDIM η = 0, {args.steps} steps"
    print(f"\nmean ± std over seeds {args.seeds} ({args.samples} samples; digits-ddpm with {sampler}):")
    for name, results in rows.items():
        cells = []
        for key in results[0]:
            values = np.array([r[key] for r in results])
            spread = values.std(ddof=1) if len(values) > 1 else float("nan")
            cells.append(f"{key} {values.mean():.3f} ± {spread:.3f}")
        print(f"{name:12s} " + "  ".join(cells))

    print("\nbetter on every seed by more than 2 standard errors of sampling noise:")
    for key, (higher_is_better, kind) in MEASURES.items():
        gan_values = [r[key] for r in rows["digits-gan"]]
        ddpm_values = [r[key] for r in rows["digits-ddpm"]]
        if kind == "binomial":
            p = max(max(gan_values), max(ddpm_values))
            se = math.sqrt(p * (1 - p) / args.samples)
        else:
            se = standard_errors[key]
        print(
            f"  {key:10s} digits-gan {min(gan_values):.3f}–{max(gan_values):.3f}, "
            f"digits-ddpm {min(ddpm_values):.3f}–{max(ddpm_values):.3f}, 2 s.e. {2 * se:.3f}: "
            f"{verdict(gan_values, ddpm_values, higher_is_better, se)}"
        )


if __name__ == "__main__":
    main()
