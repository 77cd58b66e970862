"""How close the training loop and the samplers get to the machine: steps/s and FLOP/s.

    python benchmarks/throughput.py [--steps 60] [--threads N] [--samples 256]

Measures, in one run on one machine:

- the peak: achieved FLOP/s of a large float32 matrix multiply (2·n³ FLOPs, best of several),
  the most this machine's torch can do with these threads;
- training: `digits-ddpm`'s configuration (network, batch size, optimiser, EMA) through
  `diffusion_lib.train.train` for ``--steps`` steps from scratch (after a short warm-up run),
  as steps/s, and the FLOPs of one training step counted by ``torch.utils.flop_counter``
  (forward and backward of the network; the optimiser's elementwise work is not counted), so
  achieved FLOP/s and their ratio to the peak;
- the loop's own cost: the same steps with the network's forward and backward alone (no
  optimiser, EMA, clipping or minibatch sampling), whose time the loop cannot go below;
- sampling: images/s of DDIM with 50 steps, with the untrained network (a trained one costs
  the same).

Nothing here is a timed test; the README reports what this prints.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusion_lib import samplers, train, zoo
from diffusion_lib.data import digits


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the best of ``repeats`` float32 n×n matrix multiplies."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up: thread pool, caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps to time")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the zoo's)")
    parser.add_argument("--samples", type=int, default=256, help="DDIM-50 samples to time")
    args = parser.parse_args(argv)

    entry = zoo.entry("digits-ddpm")
    threads = args.threads or entry.train_threads
    torch.set_num_threads(threads)
    peak = matmul_peak()
    print(f"peak: float32 matmul 2048², {peak / 1e9:.1f} GFLOP/s on {threads} thread(s)")

    data = [digits("train").images, digits("train").labels]
    family = zoo.family_of(entry)
    diffusion = family.process(entry)

    def network():
        return family.build(entry)  # the U-Net, initialised from the entry's init_seed

    def loss_fn(model, batch, generator):
        return diffusion.training_losses(model, batch[0], generator=generator)["loss"].mean()

    # FLOPs of one step: forward and backward of the network on one minibatch.
    net = network()
    batch = data[0][: entry.train.batch_size]
    with FlopCounterMode(display=False) as counter:
        loss_fn(net, [batch], torch.Generator().manual_seed(0)).backward()
    flops_per_step = counter.get_total_flops()

    config = replace(entry.train, steps=args.steps, checkpoint_every=10**9)
    train.train(network(), loss_fn, data, replace(config, steps=5), progress=False)  # warm-up
    start = time.perf_counter()
    train.train(network(), loss_fn, data, config, progress=False)
    loop_seconds = (time.perf_counter() - start) / args.steps

    net = network()
    generator = torch.Generator().manual_seed(0)
    size = (entry.train.batch_size,)
    batches = [data[0][torch.randint(0, len(data[0]), size, generator=generator)] for _ in range(args.steps)]
    start = time.perf_counter()
    for x0 in batches:
        net.zero_grad(set_to_none=True)
        loss_fn(net, [x0], generator).backward()
    bare_seconds = (time.perf_counter() - start) / args.steps

    achieved = flops_per_step / loop_seconds
    print(
        f"training digits-ddpm (batch {entry.train.batch_size}): {1 / loop_seconds:.2f} steps/s, "
        f"{flops_per_step / 1e9:.2f} GFLOP per step (forward + backward), "
        f"{achieved / 1e9:.2f} GFLOP/s = {achieved / peak:.1%} of the matmul peak"
    )
    print(
        f"forward + backward alone: {1 / bare_seconds:.2f} steps/s; the loop's own share "
        f"(optimiser, EMA, clipping, minibatches): {1 - bare_seconds / loop_seconds:.1%} of a step"
    )

    net = network().eval()
    shape = (args.samples, *entry.sample_shape)
    start = time.perf_counter()
    samplers.ddim(net, diffusion, shape, steps=50, generator=torch.Generator().manual_seed(0), progress=False)
    seconds = time.perf_counter() - start
    print(
        f"sampling: DDIM with 50 steps, {args.samples} images in one batch: "
        f"{args.samples / seconds:.1f} images/s"
    )


if __name__ == "__main__":
    main()
