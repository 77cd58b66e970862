"""The latent-diffusion family: a miniature Stable Diffusion (chapter 12). A text-conditional
U-Net denoises the latents of a zoo autoencoder (the VAE family), scaled to unit variance, and
attends by cross-attention to the token states of a zoo CLIP model's text encoder, which stays
frozen; captions are dropped some of the time in training, so that the one network is also
unconditional and can be guided without a classifier (Rombach et al., 2022; Ho & Salimans,
2022).

The entry's ``spec`` names the two models it builds on (``autoencoder``, ``text_encoder``), and
its ``depends_on`` must list them, so their keys are in its key: retraining either retrains it.
It trains on ``[images, tokens]`` (the dataset ``"scene-captions"``): the images are encoded once
to the means of q(z | x), the captions once to their token states. The scale factor of the
latents is computed from those latents and kept in the model's record (``"scale_factor"``).
With ``autoencoder=None`` the same model denoises the pixels themselves (scale factor 1): the
pixel-space baseline that chapter 12 sets beside the latent one.

Sampling: :func:`generate` in Python, ``sample NAME --prompt … | --prompts FILE`` on the
command line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import nn

from .. import guidance, zoo
from ..clip import check_prompts, read_prompts
from ..diffusion import GaussianDiffusion
from ..family import Family, Trained, register_family
from ..nets.unet import Context, UNet
from ..sampling import (
    GUIDANCE_OPTION,
    PROMPT_OPTIONS,
    SAMPLER_OPTIONS,
    SAMPLERS,
    TEXT_TO_IMAGE_ARRAYS,
    describe_text_to_image,
    sampler_options,
    text_to_image_arrays,
    text_to_image_options,
)
from ..schedules import get_beta_schedule
from ..vae import encode_images, scale_factor

__all__ = [
    "LatentDiffusionSpec",
    "LatentDiffusionFamily",
    "TextToImage",
    "encode_images",  # diffusion_lib.vae's, re-exported: chapter 12 names it here
    "text_context",
    "empty_context",
    "drop_captions",
    "conditioned",
    "latent_diffusion_loss",
    "check_prompts",  # diffusion_lib.clip's, re-exported
    "read_prompts",
    "generate",
]

# How many captions the frozen text encoder takes per forward pass when the training data is
# encoded: a few MB of activations, and few enough calls that their overhead vanishes.
ENCODE_BATCH = 1000


@dataclass(frozen=True)
class LatentDiffusionSpec:
    """A latent diffusion model: its denoiser, the models it builds on, its process.

    Attributes:
        network: keyword arguments of :class:`diffusion_lib.nets.unet.UNet`, which must make a
            text-conditional network (``context_dim`` set) whose inputs are the autoencoder's
            latents (``in_channels`` and ``image_size`` those of its ``latent_shape``) and whose
            ``context_dim`` is the text encoder's width; the last two are checked when it trains.
        autoencoder: the zoo VAE whose latents it denoises (in the entry's ``depends_on``), or
            None to denoise the images themselves (``in_channels`` and ``image_size`` those of the
            entry's ``sample_shape``).
        text_encoder: the zoo CLIP model whose text encoder's token states it attends to (in the
            entry's ``depends_on``).
        schedule, num_timesteps: the β schedule (:func:`~diffusion_lib.schedules.get_beta_schedule`).
        caption_dropout: the probability, in [0, 1), that a training caption is replaced by the
            empty caption (whose token states are the "no text" condition).
        guidance_scale: the classifier-free guidance scale used when none is given, >= 0.
    """

    network: dict
    autoencoder: Optional[str] = "scenes-vae"
    text_encoder: str = "scenes-clip"
    schedule: str = "linear"
    num_timesteps: int = 1000
    caption_dropout: float = 0.1
    guidance_scale: float = 3.0


class TextToImage(NamedTuple):
    """What :func:`generate` returns: images in [-1, 1] (N, C, H, W), the prompt of each image
    (prompt-major: the first prompt's n images first), and the latents before decoding (unscaled:
    what the autoencoder's decoder took; the images themselves, unclipped, in pixel space)."""

    images: torch.Tensor
    prompts: list
    latents: torch.Tensor


def _number_in(name: str, value, low: float, high: float, *, high_open: bool = False) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value < low or (value >= high if high_open else value > high):
        interval = f"[{low:g}, {high:g})" if high_open else f"[{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


# ---------------------------------------------------------------- the conditioning
@torch.no_grad()
def text_context(clip_model: nn.Module, tokens: torch.Tensor, batch_size: int = ENCODE_BATCH) -> Context:
    """The token states of captions' ids under a CLIP model's text encoder, and their mask
    (True at every token that is not ``<pad>``): what the denoiser's cross-attention reads.

    Raises:
        ValueError: tokens the text encoder refuses (see ``TextEncoder.check_tokens``).
    """
    encoder = clip_model.text_encoder.eval()
    states = torch.cat(
        [encoder.states(tokens[k : k + batch_size]) for k in range(0, max(len(tokens), 1), batch_size)]
    )
    return Context(states, tokens != encoder.pad_id)


def empty_context(clip_model: nn.Module) -> Context:
    """The "no text" condition: the token states of the empty caption, ``<bos> <eos>``, one row.

    As in Stable Diffusion, which trains and guides with the encoding of the empty prompt.
    """
    return text_context(clip_model, clip_model.tokenizer.encode([""]))


def drop_captions(
    context: Context, empty: Context, probability: float, generator: torch.Generator
) -> Context:
    """Caption dropout: each row of ``context`` replaced by the one row of ``empty`` with
    ``probability`` (one uniform number per row, drawn from ``generator`` on its device).

    Chapter 12, section "Text to image" (Ho & Salimans, 2022, Algorithm 1, with the
    empty caption as the null condition, as in Stable Diffusion's training).

    Raises:
        ValueError: probability outside [0, 1), or an ``empty`` that is not one row as wide and
            as long as ``context``.
    """
    _number_in("probability", probability, 0.0, 1.0, high_open=True)
    if empty.states.shape[0] != 1 or empty.states.shape[1:] != context.states.shape[1:]:
        raise ValueError(
            f"empty must be one row of states {tuple(context.states.shape[1:])}, got "
            f"{tuple(empty.states.shape)}"
        )
    batch = context.states.shape[0]
    dropped = (torch.rand(batch, generator=generator, device=generator.device) < probability).to(
        context.states.device
    )
    states = torch.where(dropped[:, None, None], empty.states.to(context.states), context.states)
    mask = torch.where(dropped[:, None], empty.mask.to(context.mask.device), context.mask)
    return Context(states, mask)


def conditioned(model: nn.Module, table: Context):
    """``net(x, t, y)``: the text-conditional ``model`` with prompt *indices* y, row y of
    ``table`` its condition. Numbering the prompts turns text into labels, so that
    :func:`diffusion_lib.guidance.classifier_free` guides it unchanged: with the empty prompt as
    the table's last row, its index is the null label."""

    def net(x: torch.Tensor, t, y: torch.Tensor) -> torch.Tensor:
        rows = y.to(table.states.device)
        return model(x, t, context=Context(table.states[rows].to(x), table.mask[rows].to(x.device)))

    return net


def latent_diffusion_loss(diffusion: GaussianDiffusion, empty: Context, caption_dropout: float):
    """``loss(model, batch, generator)`` of a batch ``[latents, states, mask]``: L_simple of the
    denoiser on the (scaled) latents, conditioned on the token states, each caption replaced by
    the empty one with probability ``caption_dropout`` (:func:`drop_captions`)."""

    def loss(model: nn.Module, batch: list, generator: torch.Generator) -> torch.Tensor:
        z, context = batch[0], Context(batch[1], batch[2])
        if caption_dropout > 0:  # no draw at 0
            context = drop_captions(context, empty, caption_dropout, generator)
        net = lambda x, t: model(x, t, context=context)  # noqa: E731
        return diffusion.training_losses(net, z, generator=generator)["loss"].mean()

    return loss


# ---------------------------------------------------------------- sampling
def generate(
    loaded,
    prompts: list,
    n: int,
    *,
    guidance_scale: Optional[float] = None,
    sampler: str = "ddim",
    steps: Optional[int] = None,
    eta: float = 0.0,
    spacing: Optional[str] = None,
    generator: Optional[torch.Generator] = None,
    batch_size: int = 256,
    progress: bool = False,
) -> TextToImage:
    """``n`` images for each prompt from a loaded latent diffusion model (``zoo.load(NAME)``).

    Chapter 12, section "Text to image": the prompts are encoded by the text encoder
    (and the empty prompt beside them), the latents z_T ~ N(0, I) integrated by the sampler with
    the guided network (:func:`diffusion_lib.guidance.classifier_free` on :func:`conditioned`),
    divided by the scale factor and decoded by the autoencoder, then clipped to [-1, 1].

    Args:
        loaded: the :class:`~diffusion_lib.zoo.ZooModel` of a latent diffusion entry.
        prompts: a list of non-empty captions in the text encoder's vocabulary.
        n: images per prompt, >= 1.
        guidance_scale: s >= 0 (0: unconditional, 1: conditional); None: the spec's.
        sampler, steps, eta, spacing: as ``sample``'s options (:data:`diffusion_lib.sampling.SAMPLERS`);
            steps and spacing default to the sampler's.
        generator: the source of z_T and of the samplers' noise (default: seeded 0).
        batch_size: images integrated at once.
        progress: show the sampler's progress bar.

    Returns:
        :class:`TextToImage`, the first prompt's ``n`` images first.

    Raises:
        ValueError: not a latent diffusion model; bad prompts (:func:`check_prompts`), n or
            batch_size not ints >= 1, a bad guidance scale or sampler option.
    """
    entry = loaded.entry
    if not isinstance(entry.spec, LatentDiffusionSpec):
        raise ValueError(f"model {entry.name!r} is a {entry.family}, not a latent diffusion model")
    for name, value in (("n", n), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    options = sampler_options(
        {"sampler": sampler, "steps": steps, "eta": None if eta == 0.0 else eta, "spacing": spacing},
        entry.spec.num_timesteps,
    )
    s = entry.spec.guidance_scale if guidance_scale is None else guidance_scale
    s = _number_in("guidance_scale", s, 0.0, math.inf)
    autoencoder = None
    if entry.spec.autoencoder is not None:
        autoencoder = zoo.load(entry.spec.autoencoder, progress=progress).model
    clip_model = zoo.load(entry.spec.text_encoder, progress=progress).model
    prompts = check_prompts(prompts, clip_model.tokenizer)
    table = text_context(clip_model, clip_model.tokenizer.encode([*prompts, ""]))
    null = len(prompts)  # the empty prompt's row: the null label
    labels = torch.arange(len(prompts)).repeat_interleave(n)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    model = conditioned(loaded.model.eval(), table)
    run = SAMPLERS[options["sampler"]].run
    shape = (loaded.model.in_channels, loaded.model.image_size, loaded.model.image_size)
    latents = []
    for first in range(0, len(labels), batch_size):
        y = labels[first : first + batch_size]
        net = guidance.classifier_free(model, y, s, null_label=null)
        latents.append(
            run(net, loaded.diffusion, (len(y), *shape), generator=generator,
                clip_denoised=autoencoder is None,
                progress=progress, steps=options["steps"], eta=options["eta"], spacing=options["spacing"])
        )  # fmt: skip
    z = torch.cat(latents) / loaded.record["scale_factor"]
    with torch.no_grad():
        images = z if autoencoder is None else torch.cat(
            [autoencoder.decode(z[k : k + batch_size]) for k in range(0, len(z), batch_size)]
        )  # fmt: skip
    images = images.clamp(-1.0, 1.0)
    return TextToImage(images, [prompts[i] for i in labels.tolist()], z)


def _samples(
    loaded,
    *,
    prompts: list,
    n: int,
    guidance_scale: Optional[float] = None,
    steps: int = 50,
    spacing: str = "linspace",
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
) -> dict:
    """The ``"samples"`` output: :func:`generate` with deterministic DDIM and a generator seeded
    ``seed``, as tensors ``{"images", "latents"}`` (the prompts are the kwargs').

    Raises:
        ValueError: seed not an int >= 0; :func:`generate`'s errors.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    out = generate(
        loaded, prompts, n, guidance_scale=guidance_scale, sampler="ddim", steps=steps, spacing=spacing,
        generator=torch.Generator().manual_seed(seed), batch_size=batch_size, progress=progress,
    )  # fmt: skip
    return {"images": out.images, "latents": out.latents}


class LatentDiffusionFamily(Family):
    """Latent diffusion models (chapter 12). The cache holds the EMA denoiser; the record holds
    the latents' scale factor."""

    name = "latent-diffusion"
    spec_type = LatentDiffusionSpec
    sample_options = (*PROMPT_OPTIONS, *SAMPLER_OPTIONS, GUIDANCE_OPTION)
    sample_arrays = TEXT_TO_IMAGE_ARRAYS
    outputs = {
        "samples": "n images per prompt by deterministic DDIM (η = 0) at one guidance scale, the first "
        "prompt's first, and their unscaled latents (kwargs: prompts, n, guidance_scale, steps, spacing, "
        "seed, batch_size); chapter 12",
    }

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        if not isinstance(spec.network, dict):
            raise ValueError(f"network must be a dict of UNet's keyword arguments, got {spec.network!r}")
        if spec.network.get("context_dim") is None:
            raise ValueError("network must set context_dim (a text-conditional UNet), got none")
        for key in ("num_classes", "null_label"):
            if key in spec.network:
                raise ValueError(
                    f"network must not set {key}: a latent diffusion model is conditioned on text"
                )
        if spec.autoencoder is not None and not isinstance(spec.autoencoder, str):
            raise ValueError(f"autoencoder must name a zoo model or be None, got {spec.autoencoder!r}")
        if not isinstance(spec.text_encoder, str):
            raise ValueError(f"text_encoder must name a zoo model, got {spec.text_encoder!r}")
        _number_in("caption_dropout", spec.caption_dropout, 0.0, 1.0, high_open=True)
        _number_in("guidance_scale", spec.guidance_scale, 0.0, math.inf)
        get_beta_schedule(spec.schedule, spec.num_timesteps)  # its own errors
        with torch.device("meta"):  # builds the network without allocating its weights
            try:
                UNet(**spec.network)
            except TypeError as err:  # an unknown keyword argument
                raise ValueError(
                    f"a latent diffusion spec's network has a key UNet does not take: {err}"
                ) from None

    def build(self, entry) -> nn.Module:
        torch.manual_seed(entry.init_seed)
        return UNet(**entry.spec.network)

    def process(self, entry) -> GaussianDiffusion:
        return GaussianDiffusion(get_beta_schedule(entry.spec.schedule, entry.spec.num_timesteps))

    def _builds_on(self, entry, dependencies: dict) -> tuple:
        """The autoencoder (None in pixel space) and the CLIP model of ``dependencies``, checked
        against the spec."""
        spec = entry.spec
        for name in (spec.autoencoder, spec.text_encoder):
            if name is not None and name not in dependencies:
                raise ValueError(
                    f"{entry.name!r} builds on {name!r}, which must be in its depends_on, got "
                    f"{tuple(entry.depends_on)}"
                )
        autoencoder = None if spec.autoencoder is None else dependencies[spec.autoencoder].model
        clip_model = dependencies[spec.text_encoder].model
        network = spec.network
        inputs = (network.get("in_channels"), network.get("image_size"), network.get("image_size"))
        if autoencoder is None:
            if tuple(entry.sample_shape) != inputs:
                raise ValueError(
                    f"network in_channels and image_size must fit the images {tuple(entry.sample_shape)} "
                    f"of a pixel-space model, got {inputs}"
                )
        elif tuple(autoencoder.latent_shape) != inputs:
            raise ValueError(
                f"network in_channels and image_size must fit {spec.autoencoder!r}'s latents "
                f"{tuple(autoencoder.latent_shape)}, got {inputs}"
            )
        width = clip_model.text_encoder.width
        if network["context_dim"] != width:
            raise ValueError(
                f"network context_dim must be {spec.text_encoder!r}'s text width {width}, got "
                f"{network['context_dim']}"
            )
        return autoencoder, clip_model

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        autoencoder, clip_model = self._builds_on(entry, dependencies)
        if len(data) < 2 or data[0].ndim != 4 or data[1].dtype != torch.int64 or data[1].ndim != 2:
            raise ValueError(
                f"a latent diffusion model trains on [images, tokens]; {entry.name!r} got "
                f"{[(tuple(d.shape), str(d.dtype)) for d in data]}"
            )
        if autoencoder is None:  # pixel space: the images, already in [-1, 1]
            latents, scale = data[0], 1.0
        else:
            latents = encode_images(autoencoder, data[0])
            scale = scale_factor(latents)
        context = text_context(clip_model, data[1])
        loss = latent_diffusion_loss(
            self.process(entry), empty_context(clip_model), entry.spec.caption_dropout
        )
        trained = self.train_network(
            entry, loss, [latents * scale, context.states, context.mask], checkpoint=checkpoint,
            progress=progress, device=device,
        )  # fmt: skip
        return Trained(trained.model, {**trained.series, "scale_factor": scale})

    # ------------------------------------------------------------ sampling (the command line)
    def sampling_options(self, entry, given: dict) -> dict:
        spec = entry.spec
        return text_to_image_options(entry.name, given, spec.num_timesteps, spec.guidance_scale)

    def sample(self, loaded, n, *, batch_size, generator, options) -> dict:
        out = generate(
            loaded, options["prompts"], n, guidance_scale=options["guidance"], sampler=options["sampler"],
            steps=options["steps"], eta=options["eta"], spacing=options["spacing"], generator=generator,
            batch_size=batch_size, progress=True,
        )  # fmt: skip
        return text_to_image_arrays(out.images, out.prompts)

    def output(self, loaded, name, *, progress=True, **kwargs) -> dict:
        if name != "samples":
            return super().output(loaded, name, progress=progress, **kwargs)
        return _samples(loaded, progress=progress, **kwargs)

    def describe(self, entry, options) -> str:
        return describe_text_to_image(options, entry.spec.num_timesteps)


register_family(LatentDiffusionFamily())
