"""The reverse-process samplers by name, as the command line's ``sample`` offers them: what the
families that integrate a diffusion model's reverse process share (pixel-space diffusion,
chapters 6–7 and 11; latent diffusion, chapter 12; unCLIP, chapter 13). Each sampler is one of
:mod:`diffusion_lib.samplers`' pure functions; this module only names them, declares their
command-line options once, and checks and completes the options a user gives. The text-to-image
families (chapters 12 and 13) also share their prompt options and arrays from here.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch

from . import samplers
from .clip import prompts_from
from .family import SampleOption, int_in, number_in, sample_in_batches

__all__ = [
    "SamplerSpec",
    "SAMPLERS",
    "STEPS_HELP",
    "SAMPLER_OPTIONS",
    "GUIDANCE_OPTION",
    "LABEL_OPTION",
    "check_label",
    "sample_reverse_process",
    "sampler_options",
    "describe_sampler",
    "PROMPT_OPTIONS",
    "TEXT_TO_IMAGE_ARRAYS",
    "text_to_image_options",
    "text_to_image_arrays",
    "describe_text_to_image",
]


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

# The help of --steps: the flow family declares --steps with this same text (the command line
# refuses a flag that two families declare differently), so it names no family's defaults.
STEPS_HELP = "number of sampling steps (default: the sampler's; the summary line says how many)"

# The options of the samplers, declared once for every family that offers them.
SAMPLER_OPTIONS = (
    SampleOption(
        "--sampler",
        {
            "choices": list(SAMPLERS),
            "help": "the sampler of a diffusion model (default: ddpm, all T steps, in pixel space; "
            "ddim in latent space); --steps for ddim: default 50, dpm-solver++: default 20, at most T",
        },
    ),
    SampleOption("--steps", {"type": int_in(1), "help": STEPS_HELP}),
    SampleOption(
        "--eta",
        {
            "type": number_in(0.0, 1.0),
            "help": "ddim's noise scale η in [0, 1] (default 0, deterministic; 1 for audio and video)",
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
# The class of every sample, for the families of class-conditional models.
LABEL_OPTION = SampleOption(
    "--label",
    {
        "type": int_in(0),
        "help": "a class-conditional model's class for every sample, in [0, classes − 1] "
        "(default: the classes in turn, 0, 1, …)",
    },
)


def check_label(name: str, label, num_classes) -> None:
    """``--label`` checked against the model ``name`` with ``num_classes`` classes (None:
    unconditional).

    Raises:
        ValueError: a label for an unconditional model, or outside [0, num_classes − 1]; one line.
    """
    if label is None:
        return
    if num_classes is None:
        raise ValueError(f"--label applies to class-conditional models; {name!r} is unconditional")
    if not 0 <= label < num_classes:
        raise ValueError(
            f"--label must be an int in [0, {num_classes - 1}] for {name!r} ({num_classes} classes), "
            f"got {label}"
        )


def sample_reverse_process(
    loaded, n: int, *, batch_size: int, generator: torch.Generator, options: dict
) -> dict:
    """``n`` samples of a loaded zoo model whose network ``model(x, t[, y])`` has a
    ``GaussianDiffusion``, drawn by the sampler of ``options`` (:func:`sampler_options`' keys,
    and ``label`` for a class-conditional network) with x̂_0 clipped to [-1, 1], ``batch_size``
    at a time, as :func:`~diffusion_lib.family.sample_in_batches` returns them (``"points"``
    for samples that are not images, ``"labels"``). The network's output is read as the spec's
    ``prediction_type`` (ε where the spec has none). What the waveform and video families'
    ``sample`` share."""
    entry = loaded.entry
    run = SAMPLERS[options["sampler"]].run
    prediction_type = getattr(entry.spec, "prediction_type", "epsilon")  # a spec without one: ε

    def draw(net, size):
        return run(
            net, loaded.diffusion, (size, *entry.sample_shape), generator=generator, clip_denoised=True,
            steps=options["steps"], eta=options["eta"], spacing=options["spacing"],
            prediction_type=prediction_type,
        )  # fmt: skip

    return sample_in_batches(
        loaded.model.eval(), n, batch_size, entry.spec.network.get("num_classes"), draw,
        label=options.get("label"),
    )  # fmt: skip


GUIDANCE_OPTION = SampleOption(
    "--guidance",
    {
        "type": number_in(0.0, math.inf),
        "help": "the classifier-free guidance scale s >= 0 of a model trained with conditioning dropout: "
        "0 unconditional, 1 conditional, > 1 guided (default: the model's, 1 for a class-conditional "
        "one); see chapters 11 and 12",
    },
)


def sampler_options(given: dict, num_timesteps: int, default: str = "ddpm", default_eta: float = 0.0) -> dict:
    """The sampler options ``given`` (``sampler``, ``steps``, ``eta``, ``spacing``; None where not
    given) checked against a model of ``num_timesteps`` steps and completed with the sampler's
    defaults (``default`` when no sampler is given; ``default_eta`` for ddim's η when none is).

    Returns:
        ``{"sampler", "steps" (None: all T), "eta", "spacing"}``.

    Raises:
        ValueError: --steps or --spacing for ddpm, --eta for another sampler than ddim, or
            more steps than the model's T; one line, naming the option.
    """
    sampler = given.get("sampler") or default
    spec = SAMPLERS[sampler]
    T = num_timesteps
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
        "eta": eta if eta is not None else (default_eta if spec.takes_eta else 0.0),
        "spacing": spacing or spec.default_spacing,
    }


def describe_sampler(options: dict, num_timesteps: int) -> str:
    """The sampler of ``options`` (:func:`sampler_options`'), for a summary line: e.g.
    'ddim (50 steps, eta 0, linspace)' or 'ddpm (1000 steps)'."""
    sampler = options["sampler"]
    if options["steps"] is None:
        return f"{sampler} ({num_timesteps} steps)"
    eta = f", eta {options['eta']:g}" if SAMPLERS[sampler].takes_eta else ""
    return f"{sampler} ({options['steps']} steps{eta}, {options['spacing']})"


# ---------------------------------------------------------------- text to image (chapters 12 and 13)
PROMPT_OPTIONS = (
    SampleOption(
        "--prompt",
        {"metavar": "TEXT", "help": "one prompt: --n images of it (a caption in the model's vocabulary)"},
    ),
    SampleOption(
        "--prompts",
        {"metavar": "FILE", "help": "a text file of prompts, one per line: --n images of each"},
    ),
)
TEXT_TO_IMAGE_ARRAYS = {
    "images": "float32 (N, C, H, W) in [0, 1], for image models",
    "prompts": "str (N,), the prompt of each image, for text-to-image models",
}


def text_to_image_options(name: str, given: dict, num_timesteps: int, guidance_scale: float) -> dict:
    """The options of ``sample`` for the text-to-image model ``name``: its prompts (``--prompt``
    or ``--prompts``, checked against the scenes' vocabulary before anything is loaded), the
    sampler's (:func:`sampler_options`, ddim by default) and the guidance scale (the model's
    ``guidance_scale`` unless given).

    Raises:
        ValueError: :func:`diffusion_lib.clip.prompts_from`'s and :func:`sampler_options`' errors.
    """
    prompts = prompts_from(name, given.get("prompt"), given.get("prompts"))
    options = sampler_options(given, num_timesteps, default="ddim")
    scale = given.get("guidance")
    return {**options, "prompts": prompts, "guidance": guidance_scale if scale is None else scale}


def text_to_image_arrays(images: torch.Tensor, prompts: list) -> dict:
    """Images in [-1, 1] and their prompts as ``sample`` writes them: ``images`` float32 in [0, 1]
    and ``prompts`` a plain unicode array (no pickles to read it back)."""
    images = ((images.to(torch.float32) + 1.0) / 2.0).clamp(0.0, 1.0).numpy()
    return {"images": images.astype(np.float32), "prompts": np.array(prompts, dtype=np.str_)}


def describe_text_to_image(options: dict, num_timesteps: int, scale_name: str = "guidance scale") -> str:
    """The summary line's account of a text-to-image run, e.g. 'ddim (50 steps, eta 0, leading),
    guidance scale 5, 2 prompts'."""
    count = len(options["prompts"])
    what = f"{count} prompt{'s' if count != 1 else ''}"
    return f"{describe_sampler(options, num_timesteps)}, {scale_name} {options['guidance']:g}, {what}"
