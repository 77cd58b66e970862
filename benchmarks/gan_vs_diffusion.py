"""GAN against diffusion on the digits over several training seeds, beyond what chapter 9 runs.

    python benchmarks/gan_vs_diffusion.py [--seeds 0 1 2] [--samples 500] [--steps 50]

Chapter 9 compares `digits-gan` over three seeds with `digits-ddpm` over one, because each
`digits-ddpm` seed trains for about four minutes. This script trains (or loads) both for every
seed given and prints, per seed and as mean ± standard deviation: the Fréchet distance in the
digits classifier's features, k-NN precision and recall (k = 3) and the classifier's Inception
Score, all for ``--samples`` samples against the 360 test digits, as in chapter 9, and the
training time from each model's record. `digits-ddpm` samples with DDIM (η = 0, ``--steps``
steps; chapter 7 measured DDIM-50 within 15 % of DDPM-1000 on this model), so that several
seeds cost minutes, not hours. Nothing here is a timed test; the README reports what this prints.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from diffusion_lib import gan, metrics, samplers, zoo
from diffusion_lib.data import digits


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
    for seed in args.seeds:
        for name in rows:
            model = zoo.load(name, seed=seed, progress=False)
            generator = torch.Generator().manual_seed(1000 + seed)
            with torch.no_grad():
                if model.entry.kind == "gan":
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
            pr = metrics.precision_recall(real, fake, k=3)
            row = {
                "FD": metrics.frechet_distance(fake, real),
                "precision": pr["precision"],
                "recall": pr["recall"],
                "IS": metrics.classifier_scores(images, classifier)["inception_score"],
                "train s": model.record["train_seconds"],
            }
            rows[name].append(row)
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


if __name__ == "__main__":
    main()
