"""The diffusion family: a denoising network (U-Net or MLP) with its GaussianDiffusion, trained
with L_simple (chapters 5–6) and sampled by DDPM, DDIM or DPM-Solver++ (chapters 6–7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import torch
from torch import nn

from .. import samplers, zoo
from ..diffusion import MODEL_VAR_TYPES, GaussianDiffusion, check_prediction_type
from ..family import (
    Family,
    SampleOption,
    Trained,
    int_in,
    number_in,
    register_family,
    sample_in_batches,
)
from ..nets import DENOISERS
from ..schedules import get_beta_schedule

__all__ = [
    "DiffusionSpec",
    "DiffusionFamily",
    "SAMPLERS",
    "NETWORKS",
    "STEPS_HELP",
    "ReferenceSamples",
    "reference_samples",
]

# The denoising networks a spec's ``network["type"]`` may name (shared with the flow family).
NETWORKS = DENOISERS


@dataclass(frozen=True)
class DiffusionSpec:
    """A diffusion model: its network and its process.

    Attributes:
        network: ``{"type": "unet" | "mlp", **constructor kwargs}`` (see :data:`NETWORKS`); a
            ``num_classes`` makes it class-conditional, trained on the data's labels.
        schedule, num_timesteps: the β schedule (:func:`~diffusion_lib.schedules.get_beta_schedule`).
        model_var_type: the reverse variance (:class:`~diffusion_lib.diffusion.GaussianDiffusion`).
        prediction_type: what the network predicts, ``"epsilon"``, ``"x0"`` or ``"v"``; the
            loss, the samplers and the likelihood read its output accordingly.
    """

    network: dict
    schedule: str = "linear"
    num_timesteps: int = 1000
    model_var_type: str = "fixed_small"
    prediction_type: str = "epsilon"


# The help of --steps: the flow family declares --steps with this same text (the command line
# refuses a flag that two families declare differently), so it names no family's defaults.
STEPS_HELP = "number of sampling steps (default: the sampler's; the summary line says how many)"


class SamplerSpec(NamedTuple):
    """How `sample --sampler NAME` runs: the function, its defaults, the options it takes."""

    run: Callable[..., torch.Tensor]
    default_steps: Optional[int]  # None: every training step (T)
    default_spacing: Optional[str]
    takes_eta: bool


def _ddpm(model, diffusion, shape, *, steps, eta, spacing, **common) -> torch.Tensor:
    return samplers.ddpm(model, diffusion, shape, **common)


def _ddim(model, diffusion, shape, *, steps, eta, spacing, **common) -> torch.Tensor:
    return samplers.ddim(model, diffusion, shape, steps=steps, eta=eta, spacing=spacing, **common)


def _dpm_solver_pp(model, diffusion, shape, *, steps, eta, spacing, **common) -> torch.Tensor:
    return samplers.dpm_solver_pp(model, diffusion, shape, steps=steps, spacing=spacing, **common)


# The samplers `sample --sampler` accepts, in one place. Defaults: chapter 7's measurements.
SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(_ddpm, None, None, False),
    "ddim": SamplerSpec(_ddim, 50, "leading", True),
    "dpm-solver++": SamplerSpec(_dpm_solver_pp, 20, "linspace", False),
}


class ReferenceSamples(NamedTuple):
    """DDPM samples of a zoo model with every step, and the noise they started from."""

    x_T: torch.Tensor
    x0: torch.Tensor
    seconds_per_sample: float


class DiffusionFamily(Family):
    """Diffusion models (chapters 5–7). The cache holds the EMA denoiser."""

    name = "diffusion"
    spec_type = DiffusionSpec
    sample_options = (
        SampleOption(
            "--sampler",
            {
                "choices": list(SAMPLERS),
                "help": "a diffusion model's sampler (default: ddpm, all T steps; --steps for ddim: "
                "default 50, dpm-solver++: default 20, at most T)",
            },
        ),
        SampleOption("--steps", {"type": int_in(1), "help": STEPS_HELP}),
        SampleOption(
            "--eta",
            {
                "type": number_in(0.0, 1.0),
                "help": "ddim's noise scale η in [0, 1] (default 0: deterministic)",
            },
        ),
        SampleOption(
            "--spacing",
            {
                "choices": list(samplers.SPACINGS),
                "help": "which timesteps ddim and dpm-solver++ visit (default: leading for ddim, linspace "
                "for dpm-solver++); see chapter 7",
            },
        ),
    )
    sample_arrays = {
        "images": "float32 (N, C, H, W) in [0, 1], for image models",
        "points": "float32 (N, D) in data units, for models of points",
        "labels": "int64 (N,), cycling through the classes, for class-conditional models",
    }
    outputs = {
        "ddpm_samples": "ancestral samples with all T steps, and the noise x_T they started from "
        "(kwargs: n, seed, batch_size)",
    }

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        kind = spec.network.get("type") if isinstance(spec.network, dict) else None
        if kind not in NETWORKS:
            raise ValueError(
                f"network type must be one of {', '.join(map(repr, NETWORKS))} for a diffusion model, "
                f"got {kind!r}"
            )
        if spec.model_var_type not in MODEL_VAR_TYPES:
            raise ValueError(
                f"model_var_type must be one of {', '.join(MODEL_VAR_TYPES)}, got {spec.model_var_type!r}"
            )
        check_prediction_type(spec.prediction_type)

    def build(self, entry) -> nn.Module:
        spec = dict(entry.spec.network)
        kind = spec.pop("type")
        torch.manual_seed(entry.init_seed)
        return NETWORKS[kind](**spec)

    def process(self, entry) -> GaussianDiffusion:
        spec = entry.spec
        return GaussianDiffusion(
            get_beta_schedule(spec.schedule, spec.num_timesteps), model_var_type=spec.model_var_type
        )

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        diffusion = self.process(entry)
        prediction_type = entry.spec.prediction_type
        conditional = entry.spec.network.get("num_classes") is not None

        def diffusion_loss(model, batch, generator):
            net = (lambda x, t: model(x, t, batch[1])) if conditional else model
            return diffusion.training_losses(
                net, batch[0], generator=generator, prediction_type=prediction_type
            )["loss"].mean()

        return self.train_network(
            entry, diffusion_loss, data, checkpoint=checkpoint, progress=progress, device=device
        )

    # ------------------------------------------------------------ sampling
    def sampling_options(self, entry, given: dict) -> dict:
        sampler = given.get("sampler") or "ddpm"
        spec = SAMPLERS[sampler]
        T = entry.spec.num_timesteps
        steps, eta, spacing = given.get("steps"), given.get("eta"), given.get("spacing")
        if spec.default_steps is None:
            for option, value in (("--steps", steps), ("--spacing", spacing)):
                if value is not None:
                    raise ValueError(f"{option} applies to ddim and dpm-solver++; ddpm takes all {T} steps")
        if eta is not None and not spec.takes_eta:
            raise ValueError(f"--eta applies to ddim only, not to {sampler}")
        if steps is not None and steps > T:
            raise ValueError(f"--steps must be at most the model's {T} training steps, got {steps}")
        steps = steps if steps is not None else spec.default_steps
        return {
            "sampler": sampler,
            "steps": min(steps, T) if steps is not None else None,  # a default is capped at T
            "eta": eta if eta is not None else 0.0,
            "spacing": spacing or spec.default_spacing,
        }

    def sample(self, loaded, n, *, batch_size, generator, options) -> dict:
        entry = loaded.entry
        run = SAMPLERS[options["sampler"]].run

        def draw(net, size):
            return run(
                net,
                loaded.diffusion,
                (size, *entry.sample_shape),
                generator=generator,
                clip_denoised=len(entry.sample_shape) > 1,  # images live in [-1, 1]; points do not
                prediction_type=entry.spec.prediction_type,
                steps=options["steps"],
                eta=options["eta"],
                spacing=options["spacing"],
            )

        return sample_in_batches(loaded.model, n, batch_size, entry.spec.network.get("num_classes"), draw)

    def describe(self, entry, options) -> str:
        sampler = options["sampler"]
        if options["steps"] is None:
            return f"{sampler} ({entry.spec.num_timesteps} steps)"
        eta = f", eta {options['eta']:g}" if SAMPLERS[sampler].takes_eta else ""
        return f"{sampler} ({options['steps']} steps{eta}, {options['spacing']})"

    # ------------------------------------------------------------ outputs
    def output(self, loaded, name, *, progress=True, **kwargs) -> dict:
        if name != "ddpm_samples":
            return super().output(loaded, name, progress=progress, **kwargs)
        n, seed, batch_size = _check_sample_kwargs(**kwargs)
        shape = (n, *loaded.entry.sample_shape)
        x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        noise = torch.Generator().manual_seed(seed + 1)
        clip = len(loaded.entry.sample_shape) > 1
        batches = [
            samplers.ddpm(loaded.model, loaded.diffusion, x_T[k : k + batch_size].shape,
                          x_T=x_T[k : k + batch_size], generator=noise, clip_denoised=clip,
                          progress=progress, prediction_type=loaded.entry.spec.prediction_type)
            for k in range(0, n, batch_size)
        ]  # fmt: skip
        return {"x_T": x_T, "x0": torch.cat(batches)}


register_family(DiffusionFamily())


def _check_sample_kwargs(*, n: int, seed: int = 0, batch_size: int = 500) -> tuple[int, int, int]:
    """The kwargs of the ``"ddpm_samples"`` output, checked: n, batch_size ints >= 1, seed >= 0."""
    for arg, value, low in (("n", n, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{arg} must be an int >= {low}, got {value!r}")
    return n, seed, batch_size


def reference_samples(
    name: str, n: int, *, seed: int = 0, batch_size: int = 500, progress: bool = True
) -> ReferenceSamples:
    """``n`` ancestral samples (all T steps) of a zoo diffusion model, computed once and cached.

    The reference against which chapter 7 measures the fast samplers, which then start from the
    same ``x_T`` (common random numbers). x_T is ``randn((n, *sample_shape))`` from a generator
    seeded with ``seed``; the steps' noise comes from a second generator seeded ``seed + 1``,
    batch after batch. Cached beside the model (:func:`diffusion_lib.zoo.outputs`, output
    ``"ddpm_samples"``), so retraining the model makes new samples. Images are clipped to
    [-1, 1] at each step; 2-D points are not.

    Raises:
        ValueError: n or batch_size not an int >= 1, seed not an int >= 0, or a model that is not
            a diffusion model.
    """
    _check_sample_kwargs(n=n, seed=seed, batch_size=batch_size)
    family = zoo.entry(name).family
    if family != DiffusionFamily.name:
        raise ValueError(f"model {name!r} is a {family}; reference samples need a diffusion model")
    out = zoo.outputs(name, "ddpm_samples", progress=progress, n=n, seed=seed, batch_size=batch_size)
    return ReferenceSamples(out.tensors["x_T"], out.tensors["x0"], out.seconds / n)
