"""The flow-matching family: a denoising network (U-Net or MLP) trained as a velocity field on the
straight path from data to noise (rectified flow, chapter 8), sampled by integrating its ODE
from t = 1 to t = 0 with Euler's or Heun's method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import nn

from .. import flow, samplers
from ..family import Family, SampleOption, Trained, int_in, register_family, sample_in_batches
from ..nets import DENOISERS
from ..sampling import STEPS_HELP

__all__ = ["FlowSpec", "FlowFamily", "SOLVERS", "NETWORKS"]

# The networks a spec's ``network["type"]`` may name: the diffusion family's denoisers.
NETWORKS = DENOISERS


class Solver(NamedTuple):
    """An ODE solver of `sample --solver NAME`: the function and its number of steps by default."""

    run: Callable[..., torch.Tensor]
    default_steps: int
    evaluations_per_step: int


# The solvers `sample --solver` accepts. Defaults: Heun with 10 steps (20 network evaluations)
# and Euler with 20 (the same 20 evaluations): on digits-flow both are within 0.2 of the
# Fréchet distance of the training digits themselves (diffusion_lib/entries/chapter08.py).
SOLVERS: dict[str, Solver] = {
    "heun": Solver(samplers.flow_heun, 10, 2),
    "euler": Solver(samplers.flow_euler, 20, 1),
}


@dataclass(frozen=True)
class FlowSpec:
    """A flow-matching model: its network.

    Attributes:
        network: ``{"type": "unet" | "mlp", **constructor kwargs}`` (see :data:`NETWORKS`),
            wrapped in :class:`~diffusion_lib.flow.TimeScaled` so that it takes t ∈ [0, 1]; a
            ``num_classes`` makes it class-conditional, trained on the data's labels.
    """

    network: dict


class FlowFamily(Family):
    """Flow-matching models (chapter 8). The cache holds the EMA velocity network."""

    name = "flow"
    spec_type = FlowSpec
    sample_options = (
        SampleOption(
            "--solver",
            {"choices": list(SOLVERS), "help": "a flow model's ODE solver (default: heun)"},
        ),
        SampleOption("--steps", {"type": int_in(1), "help": STEPS_HELP}),
    )
    sample_arrays = {
        "images": "float32 (N, C, H, W) in [0, 1], for image models",
        "points": "float32 (N, D) in data units, for models of points",
        "labels": "int64 (N,), cycling through the classes, for class-conditional models",
    }

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        kind = spec.network.get("type") if isinstance(spec.network, dict) else None
        if kind not in NETWORKS:
            raise ValueError(
                f"network type must be one of {', '.join(map(repr, NETWORKS))} for a flow model, got {kind!r}"
            )

    def build(self, entry) -> nn.Module:
        spec = dict(entry.spec.network)
        kind = spec.pop("type")
        torch.manual_seed(entry.init_seed)
        return flow.TimeScaled(NETWORKS[kind](**spec))

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        conditional = entry.spec.network.get("num_classes") is not None

        def flow_loss(model, batch, generator):
            net = (lambda x, t: model(x, t, batch[1])) if conditional else model
            return flow.training_losses(net, batch[0], generator=generator)["loss"].mean()

        return self.train_network(
            entry, flow_loss, data, checkpoint=checkpoint, progress=progress, device=device
        )

    # ------------------------------------------------------------ sampling
    def sampling_options(self, entry, given: dict) -> dict:
        solver = given.get("solver") or "heun"
        steps = given.get("steps")
        return {"solver": solver, "steps": steps if steps is not None else SOLVERS[solver].default_steps}

    def sample(self, loaded, n, *, batch_size, generator, options) -> dict:
        entry = loaded.entry
        run = SOLVERS[options["solver"]].run

        def draw(net, size):
            x0 = run(net, (size, *entry.sample_shape), steps=options["steps"], generator=generator)
            return x0.clamp(-1.0, 1.0) if len(entry.sample_shape) > 1 else x0  # images in [-1, 1]

        return sample_in_batches(loaded.model, n, batch_size, entry.spec.network.get("num_classes"), draw)

    def describe(self, entry, options) -> str:
        solver, steps = options["solver"], options["steps"]
        evaluations = steps * SOLVERS[solver].evaluations_per_step
        return f"{solver} ({steps} steps, {evaluations} network evaluations)"


register_family(FlowFamily())
