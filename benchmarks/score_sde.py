"""Chapter 8's targets, measured: probability-flow likelihoods, Hutchinson, EDM and flow matching.

    python benchmarks/score_sde.py likelihood [--digits 64] [--probes 20000]
    python benchmarks/score_sde.py quality [--samples 500] [--draws 3] [--bootstrap 100]
    python benchmarks/score_sde.py times

``likelihood``

- ``sde.ode_log_likelihood`` with the exact score of two centred Gaussian mixtures (the 2-D ring
  of eight and a 64-D mixture of four), under the VP SDE, against the closed-form log p_{t_min}:
  the largest error per point, the network evaluations and the time, at several tolerances. The
  target is ≤ 1e-3 nats per point with the exact divergence.
- The Skilling–Hutchinson estimator at a point between two modes of the 64-D mixture: the mean
  of ``--probes`` single-probe estimates against the exact divergence (in standard errors), the
  variance against the closed form 2 Σ_{i≠j} A_ij² (Rademacher), and P × variance of the mean of
  P probes for P = 1, 4, 16, 64 (constant if the variance falls as 1/P).
- Bits per dimension on the first ``--digits`` held-out digits: `digits-ddpm` through the
  probability-flow ODE of its VP SDE (uniformly dequantised, Hutchinson with one probe) and
  through its discrete VLB (on the 8-bit grid), paired; `digits-flow` through its ODE.

``quality``

Fréchet distance in the digits classifier's features to the test digits, for `digits-ddpm`
sampled by DDPM (all 1,000 steps, the zoo's cached reference), DDIM (η = 0, "linspace"),
DPM-Solver++ and EDM's Heun sampler (ρ = 7 schedule between the model's σ range), and for
`digits-flow` with Euler and Heun, at matched network evaluations (NFE). Every row of a draw
starts from the same noise x_T. The spread is measured twice: across ``--draws`` independent
noise draws (each with its own cached DDPM-1000 reference), and by a paired bootstrap within
each draw; each row's z is its difference from DDPM-1000 over the larger of the two spreads of
that difference. The targets: EDM Heun at ≤ 35 NFE, and `digits-flow` at ≤ 20 NFE, within the
spread of DDPM-1000 (z ≤ 2).

``times``

The training time of each zoo model, from its cache record (`train_seconds`), for the models
chapter 8 uses: the flow models must train in no more time than their diffusion counterparts.
The spread between training seeds is in the README's robustness table
(``benchmarks/robustness.py --chapters 08``), which runs chapter 8's own checks under other
training seeds.

Nothing here is a timed test; the README reports what this prints.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from diffusion_lib import GaussianDiffusion, data, get_beta_schedule, metrics, samplers, sde, zoo
from diffusion_lib.families.diffusion import reference_samples

T = 1000


def mixtures() -> dict:
    """The two centred test mixtures of chapter 8: the 2-D ring and a 64-D mixture of four."""
    ring = sde.GaussianMixture(data.ring_modes(8, 2.0).double(), torch.full((8,), 0.2, dtype=torch.float64))
    means = 0.5 * torch.randn(4, 64, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    high = sde.GaussianMixture(means - means.mean(0), torch.tensor([0.5, 0.4, 0.6, 0.3], dtype=torch.float64))
    return {"ring, 2-D": ring, "mixture, 64-D": high}


def likelihood(args) -> None:
    vp = sde.VPSDE()
    print("Exact score, exact divergence, VP SDE, t_min = 1e-5: largest |error| per point (nats)")
    print(f"{'data':<15}{'rtol = atol':>12}{'error':>11}{'NFE':>6}{'seconds':>9}")
    for name, mix in mixtures().items():
        pts = mix.sample(16, generator=torch.Generator().manual_seed(10)).double()
        exact = mix.log_prob_fn(vp)(pts, torch.full((16,), 1e-5, dtype=torch.float64))
        for tol in (1e-5, 1e-6, 1e-7):
            start = time.perf_counter()
            out = sde.ode_log_likelihood(mix.score_fn(vp), vp, pts, rtol=tol, atol=tol)
            err = (out["log_likelihood"] - exact).abs().max().item()
            print(f"{name:<15}{tol:>12.0e}{err:>11.2e}{out['nfe']:>6}{time.perf_counter() - start:>9.1f}")

    high = mixtures()["mixture, 64-D"]
    t = torch.tensor([0.3], dtype=torch.float64)
    alpha, _ = vp.marginal(t)
    x = alpha * (high.means[0] + high.means[1])[None] / 2
    score = high.score_fn(vp)

    def drift(y, tt):
        return vp.probability_flow_drift(y, tt, score(y, tt))

    exact = sde.divergence(drift, x, t).item()
    probes = (
        torch.randint(0, 2, (args.probes, 1, 64), generator=torch.Generator().manual_seed(12)).double() * 2
        - 1
    )
    est = sde.divergence(drift, x, t, method="hutchinson", probes=probes, per_probe=True)[:, 0]
    J = torch.autograd.functional.jacobian(lambda y: drift(y[None], t)[0], x[0])
    A = (J + J.T) / 2
    predicted = 2 * ((A**2).sum() - (A.diag() ** 2).sum()).item()
    se = est.std().item() / math.sqrt(len(est))
    print(
        f"\nHutchinson (Rademacher, {args.probes} probes): mean − exact = {est.mean().item() - exact:+.4f} "
        f"({(est.mean().item() - exact) / se:+.2f} s.e.); variance {est.var().item():.2f}, "
        f"closed form {predicted:.2f}"
    )
    for P in (1, 4, 16, 64):
        means = est[: (len(est) // P) * P].reshape(-1, P).mean(1)
        print(
            f"  P = {P:>2}: variance of the P-probe mean {means.var().item():8.3f}, "
            f"× P = {P * means.var().item():8.2f}"
        )

    diffusion = GaussianDiffusion(get_beta_schedule("linear", T))
    ddpm = zoo.load("digits-ddpm", progress=False).model.eval()
    flow_net = zoo.load("digits-flow", progress=False).model.eval()
    for net in (ddpm, flow_net):
        for p in net.parameters():
            p.requires_grad_(False)
    x_q = data.quantise(data.digits("test").images[: args.digits])
    x_deq = x_q + (torch.rand(x_q.shape, generator=torch.Generator().manual_seed(13)) - 0.5) * (2 / 255)
    dims = x_q[0].numel()

    def bpd(log_likelihood):
        return -log_likelihood / (dims * math.log(2)) + math.log2(255 / 2)  # chapter 8, eq. (sde-dequant)

    rows = {}
    for name, score_fn, process in (
        (
            "digits-ddpm, probability-flow ODE",
            sde.score_from_eps(ddpm, diffusion),
            sde.VPSDE.from_diffusion(diffusion),
        ),
        (
            "digits-flow, probability-flow ODE",
            sde.score_from_velocity(flow_net, sde.FlowMatchingPath()),
            sde.FlowMatchingPath(),
        ),
    ):
        start = time.perf_counter()
        out = sde.ode_log_likelihood(
            score_fn, process, x_deq, divergence="hutchinson", rtol=1e-4, atol=1e-4,
            generator=torch.Generator().manual_seed(14),
        )  # fmt: skip
        rows[name] = (bpd(out["log_likelihood"]), out["nfe"], time.perf_counter() - start)
    start = time.perf_counter()
    with torch.no_grad():
        vlb = diffusion.bits_per_dim(ddpm, x_q, generator=torch.Generator().manual_seed(0))["total"].double()
    rows["digits-ddpm, discrete VLB"] = (vlb, T, time.perf_counter() - start)
    print(f"\nBits per dimension on {args.digits} held-out digits (± standard error):")
    for name, (values, nfe, seconds) in rows.items():
        print(
            f"  {name:<36}{values.mean():7.3f} ± {values.std() / math.sqrt(len(values)):.3f}  "
            f"({nfe} NFE, {seconds:.0f} s)"
        )
    gap = vlb - rows["digits-ddpm, probability-flow ODE"][0]
    print(f"  VLB − ODE for digits-ddpm, paired: {gap.mean():.3f} ± {gap.std() / math.sqrt(len(gap)):.3f}")


def quality(args) -> None:
    loaded = zoo.load("digits-ddpm", progress=False)
    net, diffusion = loaded.model, loaded.diffusion
    flow_net = zoo.load("digits-flow", progress=False).model.eval()
    classifier = zoo.load("digits-classifier", progress=False).model
    test = classifier.features(data.digits("test").images).double()
    lo, hi = samplers.vp_sigma_range(diffusion)
    clipped = samplers.vp_denoiser(net, diffusion, clip_denoised=True)

    def edm(n):
        return lambda x: samplers.edm_heun(clipped, samplers.edm_sigmas((n + 1) // 2, lo, hi), x.shape, x_T=x)

    def ddim(n):
        return lambda x: samplers.ddim(
            net, diffusion, x.shape, steps=n, spacing="linspace", x_T=x, progress=False
        )

    def dpm(n):
        return lambda x: samplers.dpm_solver_pp(
            net, diffusion, x.shape, steps=n, spacing="linspace", x_T=x, clip_denoised=True, progress=False
        )

    def euler(n):
        return lambda x: samplers.flow_euler(flow_net, x.shape, steps=n, x_T=x)

    def heun(n):
        return lambda x: samplers.flow_heun(flow_net, x.shape, steps=n // 2, x_T=x)  # 2 NFE a step

    plan = {("EDM Heun", n): edm(n) for n in args.edm_nfe}
    for name, make in (("DDIM η=0", ddim), ("DPM-Solver++", dpm), ("flow Euler", euler), ("flow Heun", heun)):
        plan.update({(name, n): make(n) for n in args.nfe})

    def score(images, resamples):
        """Fréchet distance to the test digits, and its bootstrap replicates."""
        f = classifier.features(images.float().clamp(-1, 1)).double()
        boot = [metrics.frechet_distance(f[r], test) for r in resamples]
        return metrics.frechet_distance(f, test), np.array(boot)

    seeds = [args.seed + 10 * k for k in range(args.draws)]
    print(
        f"{args.samples} samples per row; noise draws {seeds}; bootstrap {args.bootstrap}; "
        f"{torch.get_num_threads()} threads"
    )
    draws = []
    for seed in seeds:
        ref = reference_samples("digits-ddpm", args.samples, seed=seed, progress=False)
        resamples = torch.randint(
            0, args.samples, (args.bootstrap, args.samples), generator=torch.Generator().manual_seed(seed)
        )
        rows = {("DDPM", T): score(ref.x0, resamples)}
        with torch.no_grad():
            for key, run in plan.items():
                rows[key] = score(run(ref.x_T), resamples)
        draws.append(rows)
    ref_key = ("DDPM", T)
    print(f"\n{'sampler':<14}{'NFE':>5}{'FD':>8}{'±draws':>8}{'±boot':>7}{'z vs DDPM':>11}")
    for key in draws[0]:
        v = np.array([d[key][0] for d in draws])
        diff = v - np.array([d[ref_key][0] for d in draws])
        boot = float(
            np.mean([np.std(d[key][1] - (0 if key == ref_key else d[ref_key][1]), ddof=1) for d in draws])
        )
        across = float(np.std(diff, ddof=1)) if len(draws) > 1 else 0.0
        spread = max(boot, across)
        z = 0.0 if key == ref_key else diff.mean() / spread
        sd = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
        print(f"{key[0]:<14}{key[1]:>5}{v.mean():>8.2f}{sd:>8.2f}{boot:>7.2f}{z:>11.1f}")


def times(args) -> None:
    home = zoo.cache_dir()
    print(f"{'model':<20}{'train_seconds':>14}  record")
    for name in ("ring-ddpm", "ring-flow", "digits-ddpm", "digits-flow", "digits-classifier"):
        record = zoo.paths(zoo.entry(name))[1]
        if record.exists():
            seconds = json.loads(record.read_text())["train_seconds"]
            print(f"{name:<20}{seconds:>14.1f}  {record.relative_to(home)}")
        else:
            print(f"{name:<20}{'not trained':>14}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "likelihood", help="exact-score likelihoods, Hutchinson, bits/dim of the digits models"
    )
    p.add_argument("--digits", type=int, default=64, help="held-out digits for bits/dim (default 64)")
    p.add_argument(
        "--probes", type=int, default=20_000, help="single-probe Hutchinson estimates (default 20000)"
    )
    p = sub.add_parser("quality", help="Fréchet distance against NFE: EDM, DDIM, DPM-Solver++, flow")
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--draws", type=int, default=3, help="independent noise draws (default 3)")
    p.add_argument("--seed", type=int, default=0, help="first draw's seed; the others add 10, 20, …")
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--nfe", type=int, nargs="+", default=[10, 20])
    p.add_argument(
        "--edm-nfe", type=int, nargs="+", default=[9, 19, 35], help="odd: n Heun steps cost 2n − 1"
    )
    sub.add_parser("times", help="training times of the models chapter 8 uses, from the zoo's records")
    args = parser.parse_args()
    {"likelihood": likelihood, "quality": quality, "times": times}[args.command](args)


if __name__ == "__main__":
    main()
