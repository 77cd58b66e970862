"""Fast sampling on the zoo's `digits-ddpm`: quality against network evaluations, and loop overhead.

    python benchmarks/fast_sampling.py quality [--samples 2000] [--batch-size 500]
    python benchmarks/fast_sampling.py overhead [--steps 1000] [--repeats 5]

``quality`` draws the same starting noise x_T for every sampler (common random numbers, so the
differences between rows are not sampling noise of x_T) and prints one row per (sampler, NFE):
the Fréchet distance to the held-out test digits in the classifier's feature space and in
pixels, each also as a ratio to DDPM with all 1,000 steps, the classifier's mean top-class
probability, the smallest and largest class share, and the wall time per sample. The targets of
the fast-sampling issue: DPM-Solver++ with 20 NFE within 10% of DDPM-1000's Fréchet distance,
DDIM with 50 within 15%.

``overhead`` times the sampler loop alone: the library's DDIM against diffusers'
``DDIMScheduler`` doing the same work (η = 0, no clipping, the same model calls) on a trivial
model, so the time is the loop's own cost. It prints both and their ratio (library/diffusers;
at most 1 is the target). diffusers is a test-only dependency (requirements-dev.txt).

Nothing here is a timed test; the README and chapter 7 report what this prints.
"""

from __future__ import annotations

import argparse
import time

import torch

from diffusion_lib import metrics, samplers, zoo
from diffusion_lib.data import digits

# (label, sampler, NFE list, keyword arguments); DDPM-1000 first: it is the reference.
CONFIGS = [
    ("DDPM", "ddpm", [1000], {}),
    ("DDIM η=0", "ddim", [5, 10, 20, 50, 100], {"eta": 0.0}),
    ("DDIM η=1", "ddim", [5, 10, 20, 50, 100], {"eta": 1.0}),
    ("DPM-Solver++(2M)", "dpm_solver_pp", [5, 10, 20, 50], {}),
]


def draw(sampler: str, model, diffusion, x_T: torch.Tensor, nfe: int, seed: int, **kwargs) -> torch.Tensor:
    """Samples from x_T with one of the library's samplers (clipping x̂_0 to [-1, 1], as images need)."""
    generator = torch.Generator().manual_seed(seed)
    common = dict(x_T=x_T, generator=generator, progress=False)
    if sampler == "ddpm":
        return samplers.ddpm(model, diffusion, x_T.shape, **common)
    if sampler == "ddim":
        return samplers.ddim(model, diffusion, x_T.shape, steps=nfe, **common, **kwargs)
    return samplers.dpm_solver_pp(
        model, diffusion, x_T.shape, steps=nfe, clip_denoised=True, **common, **kwargs
    )


def quality(args) -> None:
    loaded = zoo.load("digits-ddpm", progress=False)
    classifier = zoo.load("digits-classifier", progress=False).model
    test = digits("test").images
    # DDPM-1000 is the reference: cached by the zoo (chapter 7 uses the same 500 samples).
    reference = zoo.reference_samples("digits-ddpm", args.samples, seed=args.seed, batch_size=args.batch_size)
    x_T = reference.x_T
    threads = torch.get_num_threads()
    print(f"{args.samples} samples per row from the same x_T (seed {args.seed}); {threads} threads")
    header = (
        f"{'sampler':<18} {'NFE':>5} {'FD feat':>8} {'ratio':>6} {'FD pix':>7} {'ratio':>6} {'top-p':>6} "
        f"{'classes':>11} {'ms/sample':>9}"
    )
    print(header)
    reference_fd = None
    for label, sampler, nfes, kwargs in CONFIGS:
        for nfe in nfes:
            start = time.perf_counter()
            if sampler == "ddpm":
                out, ms = reference.x0, 1000 * reference.seconds_per_sample
            else:
                out = torch.cat(
                    [
                        draw(
                            sampler,
                            loaded.model,
                            loaded.diffusion,
                            x_T[k : k + args.batch_size],
                            nfe,
                            k,
                            **kwargs,
                        )
                        for k in range(0, args.samples, args.batch_size)
                    ]
                )
                ms = 1000 * (time.perf_counter() - start) / args.samples
            fd_feat = metrics.fid_features(out, test, classifier)
            fd_pix = metrics.fid_pixels(out, test)
            scores = metrics.classifier_scores(out, classifier)
            if reference_fd is None:
                reference_fd = (fd_feat, fd_pix)
            hist = scores["class_histogram"]
            print(
                f"{label:<18} {nfe:>5} {fd_feat:>8.2f} {fd_feat / reference_fd[0]:>6.2f} {fd_pix:>7.3f} "
                f"{fd_pix / reference_fd[1]:>6.2f} {scores['mean_top_prob']:>6.3f} "
                f"{hist.min():>5.3f}-{hist.max():.3f} {ms:>9.2f}",
                flush=True,
            )
    print("(DDPM's ms/sample: measured when the cached reference samples were drawn)")


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
    q.add_argument("--seed", type=int, default=0)
    o = commands.add_parser("overhead", help="the DDIM loop's own cost, library vs diffusers")
    o.add_argument("--steps", type=int, default=1000)
    o.add_argument("--batch", type=int, default=16)
    o.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    {"quality": quality, "overhead": overhead}[args.command](args)


if __name__ == "__main__":
    main()
