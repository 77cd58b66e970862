"""One rank of the multi-process tests (tests/test_distributed.py), started by torchrun:

    torchrun --standalone --nproc_per_node=N tests/distributed_worker.py SCENARIO OUT

Each scenario writes what the test compares to OUT/rank{RANK}.safetensors. The single-process
references are computed by the same functions (``regression_run``, ``clip_batch``…) in the
test's own process, so both sides run the same code on the same inputs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from diffusion_lib import distributed
from diffusion_lib.train import TrainConfig, train

# The equivalence run: 20 steps of global batch 16 (8 rows per rank with two ranks).
STEPS = 20
BATCH = 16


def regression_data() -> list:
    """64 fixed (x, y) pairs of a noiseless nonlinear regression."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, generator=g)
    return [x, torch.sin(x @ torch.tensor([[1.0], [-2.0], [0.5]]))]


def regression_model() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))


def regression_loss(model, batch, generator):
    """Mean squared error: no randomness of its own (the generator is not used)."""
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def regression_config(steps: int = STEPS) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=BATCH, lr=1e-2, warmup_steps=5, ema_decay=0.9, seed=3)


def regression_run(**kwargs):
    """The equivalence run; the same call in one process and on every rank."""
    return train(
        regression_model(), regression_loss, regression_data(), regression_config(), progress=False, **kwargs
    )


def clip_batch():
    """A tiny CLIP and a batch of 8 (image, tokens) pairs."""
    from diffusion_lib.clip import Tokenizer
    from diffusion_lib.nets.clip import CLIP

    tokenizer = Tokenizer.for_scenes()
    torch.manual_seed(0)
    text = {"width": 16, "layers": 1, "heads": 2, "vocab_size": tokenizer.vocab_size}
    text["context_length"] = tokenizer.context_length
    model = CLIP({"width": 4, "feature_dim": 16}, text, embed_dim=8, tokenizer=tokenizer)
    g = torch.Generator().manual_seed(4)
    images = torch.rand(8, 3, 32, 32, generator=g) * 2 - 1
    captions = [
        f"a {colour} {digit}" for colour, digit in zip(["red", "blue", "green", "cyan"] * 2, "01234567")
    ]
    tokens = tokenizer.encode(captions)
    return model, [images, tokens]


class TinyGenerator(nn.Module):
    """G for the GAN scenarios: 2-D noise to 2-D points."""

    z_dim = 2

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, z):
        return self.net(z)


def gan_run(loss: str, steps: int = STEPS):
    """A GAN on 2-D points; its only randomness (minibatches, z; ε of the penalty) comes from the
    run's generator, so with the non-saturating loss two ranks reproduce one process."""
    from diffusion_lib.gan import GANConfig, train_gan

    torch.manual_seed(5)
    g, d = (
        TinyGenerator(),
        nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1), nn.Flatten(0)),
    )
    points = torch.randn(64, 2, generator=torch.Generator().manual_seed(6)) * 0.5 + 1.0
    return train_gan(g, d, points, regression_config(steps), GANConfig(loss=loss), progress=False)


def _named(module: nn.Module, prefix: str) -> dict:
    return {f"{prefix}.{k}": v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def main(scenario: str, out: Path) -> None:
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    if scenario == "regression":
        result = regression_run(checkpoint=out / "run")
        tensors = {**_named(result.model, "model"), **_named(result.ema, "ema")}
        tensors["losses"] = torch.tensor(result.losses, dtype=torch.float64)
    elif scenario.startswith("gan-"):
        result = gan_run(scenario[4:])
        tensors = {**_named(result.generator, "generator"), **_named(result.discriminator, "discriminator")}
        tensors.update(_named(result.ema, "ema"))
        tensors["losses"] = torch.tensor(result.losses, dtype=torch.float64)
        tensors["d_losses"] = torch.tensor(result.d_losses, dtype=torch.float64)
    elif scenario == "clip":
        from diffusion_lib.families.clip import clip_loss

        distributed.setup()
        model, batch = clip_batch()
        objective = distributed.replicate(model, clip_loss)
        rows = distributed.shard(8)
        loss = objective([b[rows] for b in batch], torch.Generator())
        loss.backward()
        tensors = {"loss": loss.detach().reshape(1).double()}
        tensors.update(
            {f"grad.{k}": p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        )
    elif scenario in ("dies", "hangs"):

        def loss_fn(model, batch, generator):
            if rank == 1 and stepped[0] == 3:
                if scenario == "dies":
                    os._exit(3)
                time.sleep(600)
            stepped[0] += 1
            return regression_loss(model, batch, generator)

        stepped = [0]
        started = time.perf_counter()
        try:
            train(regression_model(), loss_fn, regression_data(), regression_config(50), progress=False)
        except distributed.RankFailure as err:
            print(f"rank {rank} failed after {time.perf_counter() - started:.1f} s: {err}", file=sys.stderr)
            raise
        tensors = {}
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    save_file(tensors, str(out / f"rank{rank}.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
