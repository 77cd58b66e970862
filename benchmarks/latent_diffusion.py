"""The targets of the miniature Stable Diffusion (chapter 12), measured on the zoo's models.

    python benchmarks/latent_diffusion.py [--seed-shift K] [--prompts 48] [--n 8]
                                          [--scales 1 2 3 5] [--steps 50] [--skip-pixel]

- the judge (`scenes-judge`): its accuracy per attribute on 2,000 one-object scenes of each
  split (the "heldout" split: combinations and handwriting it never saw in training);
- the autoencoder (`scenes-vae`): the judge's accuracy on 2,000 held-out one-object scenes and
  on their reconstructions (decoded from the posterior means), per attribute; target: the
  digit's accuracy within 2 points (the issue's "digits classifier on reconstructed glyphs":
  the judge's digit head reads the glyph in place);
- prompt following (`scenes-ldm`): ``--prompts`` one-object captions of each split (drawn once
  with a fixed seed), ``--n`` images each, DDIM (η = 0, ``--steps``, "linspace") at each
  guidance scale of ``--scales``; per attribute, the share of images whose judged value is the
  prompt's, the share with all four right, and `scenes-clip`'s caption accuracy (its zero-shot
  choice among the 480 one-object captions is the prompt). Targets at the model's own scale:
  each attribute ≥ 90 % (training combinations) and ≥ 80 % (held-out combinations);
- latent against pixel space (`scenes-pixel-dm`, the same family without the autoencoder): the
  same measurement at its own scale, and the cost of sampling: FLOPs of one denoiser call per
  image (torch's FlopCounterMode; a guided step calls it twice), of the decoder per image, and
  the wall time per image of the whole sampling (``--steps`` guided steps and the decoding),
  both measured here, one after the other, on 2 threads. Target: latent sampling ≥ 4× cheaper
  per image than the pixel model of similar prompt accuracy;
- training times from the zoo records (target ≤ 300 s each).

``--seed-shift K`` loads the models trained under the book-wide seed shift K (trained on first
use). Nothing here is a timed test; the README reports what this prints.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusion_lib import data, zoo
from diffusion_lib.clip import zero_shot
from diffusion_lib.families.classifier import head_accuracy
from diffusion_lib.families.latent_diffusion import encode_images, generate
from diffusion_lib.nets.unet import Context
from diffusion_lib.seeds import ENV_SEED_SHIFT

LDM, PIXEL, JUDGE, VAE, CLIP = "scenes-ldm", "scenes-pixel-dm", "scenes-judge", "scenes-vae", "scenes-clip"
SCENES_SEED, PROMPT_SEED, SAMPLE_SEED = 21, 3, 0  # data and sampling seeds, not shifted
ATTRIBUTES = tuple(data.SCENE_ATTRIBUTES)
TARGETS = {"train": 0.90, "heldout": 0.80, "digit_drop": 0.02, "cost_ratio": 4.0, "train_seconds": 300.0}
THREADS = 2  # the CI machine's cores


def prompt_truth(prompts: list) -> dict:
    """The attributes each one-object prompt asks for: name → int64 (N,)."""
    parsed = [data.parse_scene_caption(p) for p in prompts]
    return {name: torch.tensor([p[name] for p in parsed]) for name in ATTRIBUTES}


def pick_prompts(split: str, count: int) -> list:
    captions = data.scene_captions(1, split)[0]
    order = torch.randperm(len(captions), generator=torch.Generator().manual_seed(PROMPT_SEED))
    return [captions[i] for i in order[:count].tolist()]


def row(label: str, acc: dict, extra: str = "") -> str:
    cells = "  ".join(f"{100 * acc[name]:6.1f}" for name in (*ATTRIBUTES, "all"))
    return f"{label:<28}{cells}{extra}"


def header() -> str:
    return f"{'':<28}" + "  ".join(f"{name:>6}" for name in (*ATTRIBUTES, "all"))


def flops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return float(counter.get_total_flops())


def sampling_cost(loaded, vae, steps: int, batch: int = 50) -> dict:
    """FLOPs per image of one denoiser call and of the decoder, and seconds per image of guided
    DDIM sampling with ``steps`` steps plus decoding (the median of three runs of ``batch``)."""
    net = loaded.model
    shape = (net.in_channels, net.image_size, net.image_size)
    states = torch.zeros(1, 10, net.context_dim)
    context = Context(states, torch.ones(1, 10, dtype=torch.bool))
    x, t = torch.zeros(1, *shape), torch.tensor([500])
    denoiser = flops(lambda: net(x, t, context=context))
    decoder = 0.0 if vae is None else flops(lambda: vae.decode(torch.zeros(1, *vae.latent_shape)))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        generate(loaded, ["a small red 3 in the top left"], batch, steps=steps, spacing="linspace",
                 generator=torch.Generator().manual_seed(SAMPLE_SEED), batch_size=batch)  # fmt: skip
        times.append((time.perf_counter() - start) / batch)
    return {"denoiser": denoiser, "decoder": decoder, "seconds": sorted(times)[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed-shift", type=int, default=0, help="the book-wide training-seed shift K")
    parser.add_argument("--prompts", type=int, default=48, help="prompts of each split (default 48)")
    parser.add_argument("--n", type=int, default=8, help="images per prompt (default 8)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0])
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    parser.add_argument("--skip-pixel", action="store_true", help="leave out the pixel-space model")
    args = parser.parse_args()
    os.environ[ENV_SEED_SHIFT] = str(args.seed_shift)
    torch.set_num_threads(THREADS)

    judge_model = zoo.load(JUDGE)
    judge, heads = judge_model.model, judge_model.entry.spec.heads
    vae = zoo.load(VAE).model
    clip_model = zoo.load(CLIP).model
    one_object = data.scene_captions(1)[0]
    print(f"seed shift {args.seed_shift}; {THREADS} threads")
    print(f"\njudge ({JUDGE}, trained in {judge_model.record['train_seconds']:.0f} s), accuracy in %")
    print(header())
    for split in data.SCENE_SPLITS:
        scenes = data.scenes(2000, seed=SCENES_SEED, split=split)
        print(row(f"real scenes, {split}", head_accuracy(judge, scenes.images, heads, scenes.attributes)))
    heldout = data.scenes(2000, seed=SCENES_SEED, split="heldout")
    with torch.no_grad():
        rebuilt = torch.cat([vae.decode(z) for z in encode_images(vae, heldout.images).split(500)]).clamp(
            -1, 1
        )
    real = head_accuracy(judge, heldout.images, heads, heldout.attributes)
    recon = head_accuracy(judge, rebuilt, heads, heldout.attributes)
    print(row(f"{VAE} reconstructions", recon))
    drop = real["digit"] - recon["digit"]
    verdict = "met" if drop <= TARGETS["digit_drop"] else "MISSED"
    print(f"digit accuracy drop on reconstructions: {100 * drop:.1f} points "
          f"(target <= {100 * TARGETS['digit_drop']:.0f}): {verdict}")  # fmt: skip

    models = [LDM] + ([] if args.skip_pixel or PIXEL not in zoo.names() else [PIXEL])
    chosen = {}
    for name in models:
        loaded = zoo.load(name)
        own = loaded.entry.spec.guidance_scale
        scales = sorted(set(args.scales) | {own})
        print(f"\n{name}: trained in {loaded.record['train_seconds']:.0f} s; scale factor "
              f"{loaded.record['scale_factor']:.4f}; {args.prompts} prompts x {args.n} images per split; "
              f"DDIM {args.steps} steps")  # fmt: skip
        print(header() + "    clip")
        for split in data.SCENE_SPLITS:
            prompts = pick_prompts(split, args.prompts)
            for s in scales:
                out = generate(loaded, prompts, args.n, guidance_scale=s, steps=args.steps,
                               spacing="linspace", generator=torch.Generator().manual_seed(SAMPLE_SEED),
                               batch_size=192)  # fmt: skip
                acc = head_accuracy(judge, out.images, heads, prompt_truth(out.prompts))
                picked = zero_shot(clip_model, out.images, one_object)
                clip_acc = sum(one_object[i] == p for i, p in zip(picked.tolist(), out.prompts)) / len(
                    out.prompts
                )
                mark = " *" if s == own else ""
                print(row(f"{split}, s = {s:g}{mark}", acc, f"  {100 * clip_acc:6.1f}"))
                if s == own:
                    chosen[(name, split)] = acc
        for split in data.SCENE_SPLITS:
            worst = min(chosen[(name, split)][a] for a in ATTRIBUTES)
            ok = worst >= TARGETS[split]
            print(f"{name} at s = {own:g}, {split} prompts: worst attribute {100 * worst:.1f}% "
                  f"(target >= {100 * TARGETS[split]:.0f}%): {'met' if ok else 'MISSED'}")  # fmt: skip

    print(f"\nsampling cost per image (DDIM {args.steps} steps, guided: 2 denoiser calls a step)")
    costs = {}
    for name in models:
        loaded = zoo.load(name)
        cost = sampling_cost(loaded, vae if loaded.entry.spec.autoencoder else None, args.steps)
        costs[name] = cost
        total = 2 * args.steps * cost["denoiser"] + cost["decoder"]
        print(f"{name:<18} denoiser {cost['denoiser'] / 1e6:8.2f} MFLOP/call, decoder "
              f"{cost['decoder'] / 1e6:7.2f} MFLOP; {total / 1e9:6.2f} GFLOP and "
              f"{1000 * cost['seconds']:7.1f} ms per image")  # fmt: skip
    if PIXEL in costs:
        ratio = costs[PIXEL]["seconds"] / costs[LDM]["seconds"]
        verdict = "met" if ratio >= TARGETS["cost_ratio"] else "MISSED"
        print(f"latent sampling is {ratio:.1f}x cheaper per image in wall time "
              f"(target >= {TARGETS['cost_ratio']:g}x): {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
