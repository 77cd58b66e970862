"""Fast sampling on the zoo's `digits-ddpm`: quality against network evaluations, and loop overhead.

    python benchmarks/fast_sampling.py quality [--samples 500] [--draws 3] [--spacing linspace]
    python benchmarks/fast_sampling.py overhead [--steps 1000] [--repeats 5]

``quality`` compares the samplers on equal terms. Every row of one draw starts from the same
noise x_T (common random numbers), and the solvers (DDIM with η = 0 and 1, DPM-Solver++(2M))
visit the same timesteps: one ``--spacing`` for all of them. (The library's ``ddim`` defaults to
"leading" and ``dpm_solver_pp`` to "linspace"; comparing the two at their defaults mixes the
solver with the timesteps it visits.) The spacing's own effect is a second table: each
deterministic solver at the same NFE under "leading", "trailing" and "linspace".

The score is the Fréchet distance to the held-out test digits in the classifier's feature space
(our FID; lower is better), also as a ratio to DDPM with all 1,000 steps. How much of a
difference is sampling noise is measured twice:

- ``--draws`` independent noise draws (x_T from seeds ``seed``, ``seed + 10``, …, each with its
  own cached DDPM-1000 reference from the zoo, whose step noise is seeded ``seed + 1``): the
  spread of each row and of each difference between rows across draws;
- a paired bootstrap within each draw (``--bootstrap`` resamples of the starting noises, the
  same resample for every row): the standard deviation of each difference, as chapter 7
  computes it from one draw.

A difference is called a ranking ("A < B") only when its mean over the draws exceeds twice the
larger of the two spreads (the standard deviation across draws, the mean bootstrap standard
deviation); otherwise the table says "tie". With one draw only the bootstrap is used.

The targets of the fast-sampling issue: DPM-Solver++ with 20 NFE within 10% of DDPM-1000's
Fréchet distance, DDIM with 50 within 15%; both are printed with their spread.

``overhead`` times the sampler loop alone: the library's DDIM against diffusers'
``DDIMScheduler`` doing the same work (η = 0, no clipping, the same model calls) on a trivial
model, so the time is the loop's own cost. It prints both and their ratio (library/diffusers;
at most 1 is the target). diffusers is a test-only dependency (requirements-dev.txt).

Nothing here is a timed test; the README and chapter 7 report what this prints.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from diffusion_lib import metrics, samplers, zoo
from diffusion_lib.data import digits
from diffusion_lib.families.diffusion import reference_samples

SOLVERS = {  # label: (sampler, keyword arguments); every one clips x̂_0 to [-1, 1]
    "DDIM η=0": ("ddim", {"eta": 0.0}),
    "DDIM η=1": ("ddim", {"eta": 1.0}),
    "DPM-Solver++(2M)": ("dpm_solver_pp", {"clip_denoised": True}),
}
DETERMINISTIC = ["DDIM η=0", "DPM-Solver++(2M)"]
REFERENCE = ("DDPM", "every step", 1000)


def draw(sampler: str, model, diffusion, x_T: torch.Tensor, nfe: int, spacing: str, seed: int, **kwargs):
    """Samples from x_T with one of the library's samplers on the given timesteps."""
    generator = torch.Generator().manual_seed(seed)  # the step noise of η > 0
    fn = samplers.ddim if sampler == "ddim" else samplers.dpm_solver_pp
    return fn(
        model, diffusion, x_T.shape, steps=nfe, spacing=spacing, x_T=x_T, generator=generator,
        progress=False, **kwargs,
    )  # fmt: skip


class FrechetToTest:
    """The Fréchet distance of feature sets to one fixed set (the test digits), fast.

    ``Tr((Σ Σ_t)^½)`` is the sum of the square roots of the eigenvalues of ``Σ_t^½ Σ Σ_t^½``
    (similar matrices, and this one is symmetric), so one ``eigvalsh`` replaces ``sqrtm``;
    :meth:`__call__` agrees with ``metrics.frechet_distance`` (checked in ``quality``).
    """

    def __init__(self, test_features: np.ndarray):
        self.mu, self.cov = metrics.gaussian_stats(test_features)
        evals, evecs = np.linalg.eigh(self.cov)
        self.root = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T

    def __call__(self, features: np.ndarray) -> float:
        mu, cov = features.mean(axis=0), np.cov(features, rowvar=False)
        lam = np.clip(np.linalg.eigvalsh(self.root @ cov @ self.root), 0, None)
        value = ((mu - self.mu) ** 2).sum() + np.trace(cov) + np.trace(self.cov) - 2 * np.sqrt(lam).sum()
        return max(float(value), 0.0)


def one_draw(args, loaded, classifier, fd, seed: int) -> dict:
    """Every row for the noise draw ``seed``: {(label, spacing, nfe): (FD, bootstrap FDs, ms)}."""
    reference = reference_samples(
        "digits-ddpm", args.samples, seed=seed, batch_size=args.batch_size, progress=False
    )
    x_T = reference.x_T
    resamples = np.random.default_rng(seed).integers(0, args.samples, size=(args.bootstrap, args.samples))
    rows = {}

    def add(key, images, ms):
        features = classifier.features(images).double().numpy()
        rows[key] = (fd(features), np.array([fd(features[i]) for i in resamples]), ms)

    add(REFERENCE, reference.x0, 1000 * reference.seconds_per_sample)
    plan = [(label, args.spacing, nfe) for label in SOLVERS for nfe in args.nfe]
    plan += [
        (label, spacing, nfe)
        for label in DETERMINISTIC
        for spacing in samplers.SPACINGS
        for nfe in args.spacing_nfe
        if spacing != args.spacing
    ]
    for label, spacing, nfe in plan:
        sampler, kwargs = SOLVERS[label]
        start = time.perf_counter()
        out = torch.cat(
            [
                draw(sampler, loaded.model, loaded.diffusion, x_T[k : k + args.batch_size], nfe, spacing,
                     10_000 + seed + k, **kwargs)
                for k in range(0, args.samples, args.batch_size)
            ]
        )  # fmt: skip
        add((label, spacing, nfe), out, 1000 * (time.perf_counter() - start) / args.samples)
    return rows


def _name(key) -> str:
    return f"{key[0]} {key[1]} {key[2]}"


def quality(args) -> None:
    loaded = zoo.load("digits-ddpm", progress=False)
    classifier = zoo.load("digits-classifier", progress=False).model
    test = digits("test").images
    fd = FrechetToTest(classifier.features(test).double().numpy())
    seeds = [args.seed + 10 * k for k in range(args.draws)]
    print(
        f"{args.samples} samples per row; {args.draws} noise draws (seeds {seeds}); paired bootstrap "
        f"of {args.bootstrap}; solvers compared on {args.spacing!r}; {torch.get_num_threads()} threads"
    )
    draws = []
    for seed in seeds:
        draws.append(one_draw(args, loaded, classifier, fd, seed))
        if seed == seeds[0]:  # the fast distance is the library's
            ref = reference_samples(
                "digits-ddpm", args.samples, seed=seed, batch_size=args.batch_size, progress=False
            )
            library = metrics.fid_features(ref.x0, test, classifier)
            fast = draws[0][REFERENCE][0]
            assert abs(library - fast) <= 1e-6 * max(1.0, library), (library, fast)
    keys = list(draws[0])

    def values(key):
        return np.array([d[key][0] for d in draws])

    def boot_sd(key_a, key_b=None):
        """Mean over draws of the bootstrap standard deviation of a row, or of a difference a − b."""
        return float(np.mean([
            np.std(d[key_a][1] - (d[key_b][1] if key_b else 0.0), ddof=1) for d in draws
        ]))  # fmt: skip

    def across_sd(x):
        return float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")

    ref_fd = values(REFERENCE)
    print(
        f"\n{'sampler':<17} {'spacing':<10} {'NFE':>4} {'FD':>7} {'±draws':>7} {'±boot':>6} "
        f"{'/DDPM':>6} {'ms/sample':>9}"
    )
    for key in keys:
        label, spacing, nfe = key
        v = values(key)
        ms = np.mean([d[key][2] for d in draws])
        print(
            f"{label:<17} {spacing:<10} {nfe:>4} {v.mean():>7.2f} {across_sd(v):>7.2f} "
            f"{boot_sd(key):>6.2f} {np.mean(v / ref_fd):>6.2f} {ms:>9.2f}"
        )
    print("(DDPM's ms/sample: measured when the cached reference samples were drawn)")

    def compare(title, pairs):
        print(f"\n{title}\n{'A':<32} {'B':<32} {'A − B':>7} {'±draws':>7} {'±boot':>6}  verdict")
        for a, b in pairs:
            d = values(a) - values(b)
            spread = max(np.nan_to_num(across_sd(d)), boot_sd(a, b))
            verdict = "tie" if abs(d.mean()) <= 2 * spread else ("A < B" if d.mean() < 0 else "A > B")
            print(
                f"{_name(a):<32} {_name(b):<32} {d.mean():>+7.2f} {across_sd(d):>7.2f} "
                f"{boot_sd(a, b):>6.2f}  {verdict}"
            )

    solver_pairs = []
    for nfe in args.nfe:
        row = {label: (label, args.spacing, nfe) for label in SOLVERS}
        solver_pairs += [
            (row["DPM-Solver++(2M)"], row["DDIM η=0"]),
            (row["DDIM η=1"], row["DDIM η=0"]),
        ]
    compare(f"Solvers on the same timesteps ({args.spacing!r}), FD differences:", solver_pairs)
    spacing_pairs = [
        ((label, spacing, nfe), (label, args.spacing, nfe))
        for label in DETERMINISTIC
        for nfe in args.spacing_nfe
        for spacing in samplers.SPACINGS
        if spacing != args.spacing
    ]
    compare("The spacing at a fixed solver and NFE, FD differences:", spacing_pairs)
    compare(
        "Against DDPM-1000:",
        [((label, args.spacing, nfe), REFERENCE) for label in SOLVERS for nfe in args.nfe],
    )
    for label, nfe, target in (("DPM-Solver++(2M)", 20, 1.10), ("DDIM η=0", 50, 1.15)):
        key = (label, args.spacing, nfe)
        if key in draws[0]:
            ratio = values(key) / ref_fd
            print(
                f"target: {label} with {nfe} NFE within {target:.2f}× DDPM-1000: "
                f"ratios {', '.join(f'{r:.2f}' for r in ratio)} (mean {ratio.mean():.2f})"
            )


def overhead(args) -> None:
    from diffusers import DDIMScheduler

    from diffusion_lib import GaussianDiffusion, get_beta_schedule

    def trivial(x, t):  # as cheap as a model can be: the loop's own work dominates
        return x

    diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000))
    scheduler = DDIMScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", clip_sample=False
    )
    x_T = torch.randn(args.batch, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    def ours():
        return samplers.ddim(
            trivial, diffusion, x_T.shape, steps=args.steps, x_T=x_T, clip_denoised=False, progress=False
        )

    def theirs():
        scheduler.set_timesteps(args.steps)
        x = x_T
        for t in scheduler.timesteps:
            x = scheduler.step(trivial(x, t.expand(x.shape[0])), t, x, eta=0.0).prev_sample
        return x

    assert torch.allclose(ours(), theirs(), atol=1e-4), "the two loops must do the same work"
    times = {}
    for name, loop in (("library", ours), ("diffusers", theirs)):
        loop()  # warm up
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            loop()
            runs.append(time.perf_counter() - start)
        times[name] = min(runs)
        print(
            f"{name:>9} DDIM loop: {args.steps} steps, batch {args.batch}: {times[name] * 1e3:.1f} ms "
            f"({times[name] / args.steps * 1e6:.0f} µs per step; best of {args.repeats})"
        )
    print(f"ratio library/diffusers: {times['library'] / times['diffusers']:.2f} (target ≤ 1)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser("quality", help="sample quality against NFE on digits-ddpm")
    q.add_argument("--samples", type=int, default=500)
    q.add_argument("--batch-size", type=int, default=500)
    q.add_argument("--seed", type=int, default=0, help="the first noise draw's seed")
    q.add_argument("--draws", type=int, default=3, help="independent noise draws (seeds seed, seed+10, …)")
    q.add_argument("--bootstrap", type=int, default=200, help="paired bootstrap resamples per draw")
    q.add_argument("--spacing", default="linspace", choices=samplers.SPACINGS, help="the solvers' timesteps")
    q.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20, 50])
    q.add_argument("--spacing-nfe", type=int, nargs="+", default=[5, 10], help="NFE of the spacing table")
    o = commands.add_parser("overhead", help="the DDIM loop's own cost, library vs diffusers")
    o.add_argument("--steps", type=int, default=1000)
    o.add_argument("--batch", type=int, default=16)
    o.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    {"quality": quality, "overhead": overhead}[args.command](args)


if __name__ == "__main__":
    main()
