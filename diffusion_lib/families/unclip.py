"""The unCLIP families: a miniature DALL·E 2 (chapter 13). A *prior* generates a CLIP image
embedding from a caption's CLIP text embedding; a *decoder* generates an image from a CLIP image
embedding; the *pipeline* chains them (Ramesh et al., 2022, "Hierarchical Text-Conditional Image
Generation with CLIP Latents").

- ``"clip-prior"``: diffusion in the embedding space. The image embeddings of a frozen zoo CLIP
  model, L2-normalised and multiplied by √D (so that each coordinate has unit mean square, as
  the Gaussian noise does), are denoised by a :class:`~diffusion_lib.nets.prior.PriorDenoiser`
  conditioned on the caption's text embedding; like DALL·E 2's prior it predicts the clean
  embedding (x_0), and the text is dropped to the zero vector some of the time, so that it can
  be guided without a classifier.
- ``"unclip-decoder"``: latent diffusion (chapter 12's U-Net on a zoo autoencoder's latents)
  conditioned on the image embedding: the scaled embedding is the one token its cross-attention
  reads and, pooled, what it adds to the timestep embedding (DALL·E 2 projects it into four
  tokens and the timestep embedding); the embedding is dropped to zero some of the time.
- ``"unclip"``: the pipeline, which trains nothing: caption → prior → decoder → image. It is
  what ``sample scenes-unclip --prompt …`` runs; :func:`vary` makes variations of images.

Every function here that a chapter derives says where.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import guidance, zoo
from ..clip import check_prompts
from ..diffusion import GaussianDiffusion, check_prediction_type
from ..family import Family, Trained, register_family
from ..nets.prior import PriorDenoiser
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
    "PriorSpec",
    "DecoderSpec",
    "UnclipSpec",
    "PriorFamily",
    "DecoderFamily",
    "UnclipFamily",
    "embed_images",
    "embed_tokens",
    "embedding_scale",
    "drop_conditions",
    "embedding_context",
    "prior_loss",
    "decoder_loss",
    "sample_prior",
    "decode",
    "slerp",
    "text_difference",
    "Unclipped",
    "generate",
    "vary",
]

# How many images (captions) the frozen CLIP encoders take per forward pass when a training set
# is embedded: a few MB of activations, and few enough calls that their overhead vanishes.
EMBED_BATCH = 1000


def _number_in(name: str, value, low: float, high: float, *, high_open: bool = False) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value < low or (value >= high if high_open else value > high):
        interval = f"[{low:g}, {high:g})" if high_open else f"[{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def _int_at_least(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _unit_rows(name: str, z, dim: Optional[int] = None) -> torch.Tensor:
    """``z`` checked as a float tensor (N, D) (D = ``dim`` if given) and L2-normalised."""
    if (
        not torch.is_tensor(z)
        or not z.is_floating_point()
        or z.ndim != 2
        or (dim is not None and z.shape[1] != dim)
    ):
        shape = f"{tuple(z.shape)} {z.dtype}" if torch.is_tensor(z) else type(z).__name__
        raise ValueError(f"{name} must be a float tensor (N, {dim if dim else 'D'}), got {shape}")
    if not torch.isfinite(z).all() or (z.norm(dim=1) == 0).any():
        raise ValueError(f"{name} must be finite with no zero row")
    return F.normalize(z.float(), dim=1)


# ---------------------------------------------------------------- embeddings
@torch.no_grad()
def embed_images(clip_model: nn.Module, images: torch.Tensor, batch_size: int = EMBED_BATCH) -> torch.Tensor:
    """The L2-normalised CLIP image embeddings z_i (N, D) of ``images`` (N, 3, 32, 32) in [-1, 1]."""
    clip_model = clip_model.eval()
    return torch.cat(
        [clip_model.encode_image(images[k : k + batch_size]) for k in range(0, len(images), batch_size)]
    )


@torch.no_grad()
def embed_tokens(clip_model: nn.Module, tokens: torch.Tensor, batch_size: int = EMBED_BATCH) -> torch.Tensor:
    """The L2-normalised CLIP text embeddings z_t (N, D) of token ids (N, context_length)."""
    clip_model = clip_model.eval()
    return torch.cat(
        [
            clip_model.encode_tokens(tokens[k : k + batch_size])
            for k in range(0, max(len(tokens), 1), batch_size)
        ]
    )


def embedding_scale(dim: int) -> float:
    """√D: what a unit-norm embedding of D numbers is multiplied by so that the mean square of
    its coordinates is 1, that of the diffusion's Gaussian noise.

    Derived in chapter 13, eq. (unclip-scale).
    """
    return math.sqrt(_int_at_least("dim", dim, 1))


def drop_conditions(cond: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Each row of ``cond`` (B, D) replaced by zeros with ``probability`` (one uniform number per
    row, drawn from ``generator`` on its device): the null condition of classifier-free guidance,
    as DALL·E 2 drops its CLIP embeddings (Ramesh et al., 2022, section 2.1).

    Raises:
        ValueError: probability outside [0, 1).
    """
    _number_in("probability", probability, 0.0, 1.0, high_open=True)
    dropped = torch.rand(cond.shape[0], generator=generator, device=generator.device) < probability
    return torch.where(dropped.to(cond.device)[:, None], torch.zeros_like(cond), cond)


def embedding_context(cond: torch.Tensor) -> Context:
    """The decoder's condition: each row of ``cond`` (B, D) as one token (B, 1, D), kept."""
    return Context(cond[:, None, :], torch.ones(cond.shape[0], 1, dtype=torch.bool, device=cond.device))


def prior_loss(diffusion: GaussianDiffusion, text_dropout: float, prediction_type: str = "x0"):
    """``loss(model, batch, generator)`` of a batch ``[image embeddings, text embeddings]``, both
    scaled by :func:`embedding_scale`: L_simple with an x_0 target (DALL·E 2's prior predicts
    the clean embedding), the text dropped to zero with probability ``text_dropout``.

    Derived in chapter 13, eq. (unclip-prior-loss).

    Raises:
        ValueError: text_dropout outside [0, 1); an unknown prediction type.
    """
    _number_in("text_dropout", text_dropout, 0.0, 1.0, high_open=True)
    check_prediction_type(prediction_type)

    def loss(model: nn.Module, batch: list, generator: torch.Generator) -> torch.Tensor:
        z_i, cond = batch[0], batch[1]
        if text_dropout > 0:  # no draw at 0
            cond = drop_conditions(cond, text_dropout, generator)
        net = lambda x, t: model(x, t, cond)  # noqa: E731
        return diffusion.training_losses(net, z_i, generator=generator, prediction_type=prediction_type)[
            "loss"
        ].mean()

    return loss


def decoder_loss(diffusion: GaussianDiffusion, embedding_dropout: float):
    """``loss(model, batch, generator)`` of a batch ``[latents, image embeddings]`` (the latents
    scaled by the autoencoder's scale factor, the embeddings by :func:`embedding_scale`): L_simple
    of the U-Net conditioned on :func:`embedding_context`, the embedding dropped to zero with
    probability ``embedding_dropout``.

    Derived in chapter 13, eq. (unclip-decoder-loss).

    Raises:
        ValueError: embedding_dropout outside [0, 1).
    """
    _number_in("embedding_dropout", embedding_dropout, 0.0, 1.0, high_open=True)

    def loss(model: nn.Module, batch: list, generator: torch.Generator) -> torch.Tensor:
        z, cond = batch[0], batch[1]
        if embedding_dropout > 0:
            cond = drop_conditions(cond, embedding_dropout, generator)
        context = embedding_context(cond)
        net = lambda x, t: model(x, t, context=context)  # noqa: E731
        return diffusion.training_losses(net, z, generator=generator)["loss"].mean()

    return loss


def _table_net(model, table: torch.Tensor, call):
    """``net(x, t, y)`` with row y of ``table`` (its last row zeros, the null label) as the
    condition: condition vectors as labels, so that :func:`diffusion_lib.guidance.classifier_free`
    guides the network unchanged (chapter 12's trick for prompts)."""

    def net(x: torch.Tensor, t, y: torch.Tensor) -> torch.Tensor:
        return call(model, x, t, table[y.to(table.device)].to(x))

    return net


def _guided_sample(model, diffusion, cond, shape, s, options, generator, batch_size, call, **common):
    """Samples of ``model`` conditioned on the rows of ``cond`` (N, D), guided at scale ``s``
    (zero the null condition), batch by batch."""
    table = torch.cat([cond, torch.zeros_like(cond[:1])])
    null = len(cond)
    net_y = _table_net(model, table, call)
    run = SAMPLERS[options["sampler"]].run
    out = []
    for first in range(0, len(cond), batch_size):
        y = torch.arange(first, min(first + batch_size, len(cond)))
        net = guidance.classifier_free(net_y, y, s, null_label=null)
        out.append(
            run(net, diffusion, (len(y), *shape), generator=generator, steps=options["steps"],
                eta=options["eta"], spacing=options["spacing"], **common)
        )  # fmt: skip
    return torch.cat(out)


def _options(entry, sampler: str, steps, eta: float, spacing) -> dict:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    return sampler_options(
        {"sampler": sampler, "steps": steps, "eta": None if eta == 0.0 else eta, "spacing": spacing},
        entry.spec.num_timesteps,
    )


def sample_prior(
    loaded,
    text_embeddings: torch.Tensor,
    *,
    guidance_scale: Optional[float] = None,
    sampler: str = "ddim",
    steps: Optional[int] = None,
    eta: float = 0.0,
    spacing: Optional[str] = None,
    generator: Optional[torch.Generator] = None,
    batch_size: int = 1000,
    progress: bool = False,
) -> torch.Tensor:
    """One image embedding per text embedding from a loaded prior (``zoo.load(NAME)``).

    Chapter 13, section "The prior": z_T ~ N(0, I) integrated by the sampler with the guided
    network, then divided by √D and renormalised to the unit sphere, where CLIP's embeddings live.

    Args:
        loaded: the :class:`~diffusion_lib.zoo.ZooModel` of a ``clip-prior`` entry.
        text_embeddings: float (N, D), L2-normalised here (rows of
            ``clip_model.encode_text``).
        guidance_scale: s >= 0 on the text (0: unconditional, 1: conditional); None: the spec's.
        sampler, steps, eta, spacing: as ``sample``'s options; steps and spacing default to the
            sampler's.
        generator: the source of z_T and of the sampler's noise (default: seeded 0).
        batch_size: embeddings integrated at once.

    Returns:
        float32 (N, D), unit rows.

    Raises:
        ValueError: not a prior, text embeddings that are not (N, D) with finite non-zero rows, a
            bad option.
    """
    spec = loaded.entry.spec
    if not isinstance(spec, PriorSpec):
        raise ValueError(f"model {loaded.entry.name!r} is a {loaded.entry.family}, not a clip-prior")
    dim = loaded.model.embed_dim
    cond = _unit_rows("text_embeddings", text_embeddings, dim) * embedding_scale(dim)
    options = _options(loaded.entry, sampler, steps, eta, spacing)
    s = _number_in(
        "guidance_scale", spec.guidance_scale if guidance_scale is None else guidance_scale, 0, math.inf
    )
    _int_at_least("batch_size", batch_size, 1)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    z = _guided_sample(
        loaded.model.eval(), loaded.diffusion, cond, (dim,), s, options, generator, batch_size,
        lambda m, x, t, c: m(x, t, c), clip_denoised=False, prediction_type=spec.prediction_type,
        progress=progress,
    )  # fmt: skip
    return F.normalize(z.float(), dim=1)


def decode(
    loaded,
    image_embeddings: torch.Tensor,
    *,
    guidance_scale: Optional[float] = None,
    sampler: str = "ddim",
    steps: Optional[int] = None,
    eta: float = 0.0,
    spacing: Optional[str] = None,
    generator: Optional[torch.Generator] = None,
    batch_size: int = 256,
    progress: bool = False,
) -> torch.Tensor:
    """One image per image embedding from a loaded decoder (``zoo.load(NAME)``): images in
    [-1, 1] (N, C, H, W).

    Chapter 13, section "The decoder": latents z_T ~ N(0, I) integrated by the sampler with the
    network guided on the embedding, divided by the scale factor, decoded by the autoencoder and
    clipped to [-1, 1].

    Raises:
        ValueError: not a decoder, embeddings that are not (N, D) with finite non-zero rows, a bad
            option.
    """
    spec = loaded.entry.spec
    if not isinstance(spec, DecoderSpec):
        raise ValueError(f"model {loaded.entry.name!r} is a {loaded.entry.family}, not an unclip-decoder")
    dim = spec.network["context_dim"]
    cond = _unit_rows("image_embeddings", image_embeddings, dim) * embedding_scale(dim)
    options = _options(loaded.entry, sampler, steps, eta, spacing)
    s = _number_in(
        "guidance_scale", spec.guidance_scale if guidance_scale is None else guidance_scale, 0, math.inf
    )
    _int_at_least("batch_size", batch_size, 1)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    autoencoder = zoo.load(spec.autoencoder, progress=progress).model
    model = loaded.model.eval()
    shape = (model.in_channels, model.image_size, model.image_size)
    z = _guided_sample(
        model, loaded.diffusion, cond, shape, s, options, generator, batch_size,
        lambda m, x, t, c: m(x, t, context=embedding_context(c)), clip_denoised=False, progress=progress,
    )  # fmt: skip
    z = z / loaded.record["scale_factor"]
    with torch.no_grad():
        images = torch.cat([autoencoder.decode(z[k : k + batch_size]) for k in range(0, len(z), batch_size)])
    return images.clamp(-1.0, 1.0)


# ---------------------------------------------------------------- moving in embedding space
def slerp(a: torch.Tensor, b: torch.Tensor, weight: float) -> torch.Tensor:
    """Spherical interpolation between unit rows ``a`` and ``b`` (N, D) (normalised here):
    sin((1 − w)θ)/sin θ · a + sin(wθ)/sin θ · b, θ the angle between them; a at w = 0, b at w = 1,
    on the unit sphere throughout (DALL·E 2's interpolations, section 3.2).

    Derived in chapter 13, eq. (unclip-slerp).

    Raises:
        ValueError: rows that are not (N, D) alike with finite non-zero rows; antipodal rows;
            w not in [0, 1].
    """
    w = _number_in("weight", weight, 0.0, 1.0)
    a, b = _unit_rows("a", a), _unit_rows("b", b, a.shape[1])
    if a.shape != b.shape:
        raise ValueError(f"b must have a's shape {tuple(a.shape)}, got {tuple(b.shape)}")
    cos = (a * b).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    if (cos < -1.0 + 1e-6).any():  # antipodal: every great circle joins them (chapter 13, exercise 3)
        raise ValueError("a and b must not be antipodal rows (cosine -1): the path is undefined")
    theta = torch.acos(cos)
    small = theta < 1e-4  # nearly parallel: the linear interpolation, renormalised
    sin = torch.sin(theta).clamp_min(1e-12)
    mixed = (torch.sin((1 - w) * theta) * a + torch.sin(w * theta) * b) / sin
    linear = F.normalize((1 - w) * a + w * b, dim=1)
    return torch.where(small, linear, mixed)


def text_difference(
    image_embeddings: torch.Tensor, old: torch.Tensor, new: torch.Tensor, weight: float = 1.0
) -> torch.Tensor:
    """An edit by text: z_i + w (z_t(new) − z_t(old)), renormalised to the unit sphere
    (DALL·E 2's "text diffs", section 3.3, move z_i towards the normalised difference by slerp;
    the sum is its first-order form).

    Derived in chapter 13, eq. (unclip-text-diff).

    Raises:
        ValueError: embeddings that are not (N, D) with finite non-zero rows (``old`` and ``new``
            may have one row, shared); w not a finite number >= 0.
    """
    w = _number_in("weight", weight, 0.0, math.inf)
    z = _unit_rows("image_embeddings", image_embeddings)
    old = _unit_rows("old", old, z.shape[1])
    new = _unit_rows("new", new, z.shape[1])
    for name, value in (("old", old), ("new", new)):
        if len(value) not in (1, len(z)):
            raise ValueError(f"{name} must have 1 or {len(z)} rows, got {len(value)}")
    moved = z + w * (new - old)
    if (moved.norm(dim=1) < 1e-6).any():
        raise ValueError("the edited embedding vanished: choose a smaller weight")
    return F.normalize(moved, dim=1)


# ---------------------------------------------------------------- the pipeline
class Unclipped(NamedTuple):
    """What :func:`generate` and :func:`vary` return: images in [-1, 1] (N, C, H, W), the prompt
    of each image (prompt-major; for :func:`vary`, empty), the image embeddings they were decoded
    from (unit rows) and the text embeddings of the prompts (for :func:`vary`, the image
    embeddings of the originals), one row per image."""

    images: torch.Tensor
    prompts: list
    image_embeddings: torch.Tensor
    conditions: torch.Tensor


def _parts(loaded) -> UnclipSpec:
    """The pipeline's spec, or a ValueError for another kind of model."""
    spec = loaded.entry.spec
    if not isinstance(spec, UnclipSpec):
        raise ValueError(f"model {loaded.entry.name!r} is a {loaded.entry.family}, not an unclip pipeline")
    return spec


def generate(
    loaded,
    prompts: list,
    n: int,
    *,
    guidance_scale: Optional[float] = None,
    prior_guidance_scale: Optional[float] = None,
    sampler: str = "ddim",
    steps: Optional[int] = None,
    eta: float = 0.0,
    spacing: Optional[str] = None,
    generator: Optional[torch.Generator] = None,
    batch_size: int = 256,
    progress: bool = False,
) -> Unclipped:
    """``n`` images for each prompt from a loaded unCLIP pipeline (``zoo.load("scenes-unclip")``).

    Chapter 13, eq. (unclip-factorisation): the prompts' CLIP text embeddings z_t; one image
    embedding z_i per image from the prior (:func:`sample_prior`); one image per z_i from the
    decoder (:func:`decode`). The sampler options apply to both stages; the two guidance scales
    are the decoder's (``guidance_scale``) and the prior's.

    Raises:
        ValueError: not a pipeline; bad prompts (:func:`~diffusion_lib.clip.check_prompts`), n not
            an int >= 1, a bad guidance scale or sampler option.
    """
    spec = _parts(loaded)
    _int_at_least("n", n, 1)
    prior = zoo.load(spec.prior, progress=progress)
    decoder = zoo.load(spec.decoder, progress=progress)
    clip_model = zoo.load(prior.entry.spec.clip, progress=progress).model
    prompts = check_prompts(prompts, clip_model.tokenizer)
    with torch.no_grad():
        z_t = clip_model.eval().encode_text(prompts).repeat_interleave(n, dim=0)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    common = {"sampler": sampler, "steps": steps, "eta": eta, "spacing": spacing, "generator": generator}
    z_i = sample_prior(
        prior,
        z_t,
        guidance_scale=prior_guidance_scale,
        batch_size=batch_size,
        progress=progress,
        **common,
    )
    images = decode(
        decoder, z_i, guidance_scale=guidance_scale, batch_size=batch_size, progress=progress, **common
    )
    return Unclipped(images, [p for p in prompts for _ in range(n)], z_i, z_t)


def vary(
    loaded,
    images: torch.Tensor,
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
) -> Unclipped:
    """``n`` variations of each image: its CLIP image embedding decoded ``n`` times from fresh
    noise (DALL·E 2, section 3.1), image-major (the first image's ``n`` variations first).

    Chapter 13, section "Variations, interpolations and text edits".

    Args:
        loaded: the unCLIP pipeline.
        images: float (N, 3, 32, 32) in [-1, 1].
        n: variations per image, >= 1.

    Raises:
        ValueError: not a pipeline; images that are not a float tensor (N, 3, H, W) in [-1, 1];
            n not an int >= 1; a bad guidance scale or sampler option.
    """
    spec = _parts(loaded)
    _int_at_least("n", n, 1)
    if not torch.is_tensor(images) or not images.is_floating_point() or images.ndim != 4 or len(images) < 1:
        shape = f"{tuple(images.shape)} {images.dtype}" if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"images must be a float tensor (N, 3, H, W), got {shape}")
    if not torch.isfinite(images).all() or images.min() < -1 or images.max() > 1:
        raise ValueError("images must be finite and in [-1, 1]")
    decoder = zoo.load(spec.decoder, progress=progress)
    clip_model = zoo.load(decoder.entry.spec.clip, progress=progress).model
    z_i = embed_images(clip_model, images).repeat_interleave(n, dim=0)
    out = decode(
        decoder, z_i, guidance_scale=guidance_scale, sampler=sampler, steps=steps, eta=eta, spacing=spacing,
        generator=generator, batch_size=batch_size, progress=progress,
    )  # fmt: skip
    return Unclipped(out, [], z_i, z_i)


def _samples(
    loaded,
    *,
    prompts: list,
    n: int,
    guidance_scale: Optional[float] = None,
    prior_guidance_scale: Optional[float] = None,
    steps: int = 50,
    spacing: str = "linspace",
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
) -> dict:
    """The ``"samples"`` output: :func:`generate` with deterministic DDIM and a generator seeded
    ``seed``, as tensors ``{"images", "image_embeddings"}`` (the prompts are the kwargs').

    Raises:
        ValueError: seed not an int >= 0; :func:`generate`'s errors.
    """
    _int_at_least("seed", seed, 0)
    out = generate(
        loaded, prompts, n, guidance_scale=guidance_scale, prior_guidance_scale=prior_guidance_scale,
        sampler="ddim", steps=steps, spacing=spacing, generator=torch.Generator().manual_seed(seed),
        batch_size=batch_size, progress=progress,
    )  # fmt: skip
    return {"images": out.images, "image_embeddings": out.image_embeddings}


# ---------------------------------------------------------------- specs
@dataclass(frozen=True)
class PriorSpec:
    """A diffusion prior over a CLIP model's image embeddings.

    Attributes:
        network: keyword arguments of :class:`~diffusion_lib.nets.prior.PriorDenoiser`; its
            ``embed_dim`` must be the CLIP model's (checked when it trains).
        clip: the zoo CLIP model whose embeddings it models (in the entry's ``depends_on``).
        schedule, num_timesteps: the β schedule.
        prediction_type: what the network predicts (DALL·E 2's: ``"x0"``).
        text_dropout: the probability, in [0, 1), that a training text embedding is zeroed.
        guidance_scale: the classifier-free guidance scale on the text when none is given.
    """

    network: dict
    clip: str = "scenes-clip"
    schedule: str = "cosine"
    num_timesteps: int = 1000
    prediction_type: str = "x0"
    text_dropout: float = 0.1
    guidance_scale: float = 1.0


@dataclass(frozen=True)
class DecoderSpec:
    """A latent diffusion decoder conditioned on a CLIP model's image embeddings.

    Attributes:
        network: keyword arguments of :class:`~diffusion_lib.nets.unet.UNet`: a conditional U-Net
            (``context_dim`` the CLIP model's ``embed_dim``) on the autoencoder's latents
            (checked when it trains).
        autoencoder: the zoo VAE whose latents it denoises (in the entry's ``depends_on``).
        clip: the zoo CLIP model whose image embeddings it is conditioned on (ditto).
        schedule, num_timesteps: the β schedule.
        embedding_dropout: the probability, in [0, 1), that a training embedding is zeroed.
        guidance_scale: the classifier-free guidance scale on the embedding when none is given.
    """

    network: dict
    autoencoder: str = "scenes-vae"
    clip: str = "scenes-clip"
    schedule: str = "ldm"
    num_timesteps: int = 1000
    embedding_dropout: float = 0.1
    guidance_scale: float = 3.0


@dataclass(frozen=True)
class UnclipSpec:
    """The pipeline: the zoo names of its prior and its decoder (both in ``depends_on``)."""

    prior: str = "scenes-unclip-prior"
    decoder: str = "scenes-unclip-decoder"


def _check_process(spec) -> None:
    _int_at_least("num_timesteps", spec.num_timesteps, 1)
    get_beta_schedule(spec.schedule, spec.num_timesteps)  # its own errors


def _depends(entry, names) -> None:
    for name in names:
        if name not in entry.depends_on:
            raise ValueError(
                f"{entry.name!r} builds on {name!r}, which must be in its depends_on, "
                f"got {tuple(entry.depends_on)}"
            )


def _check_images_tokens(entry, data) -> None:
    if len(data) < 2 or data[0].ndim != 4 or data[1].dtype != torch.int64 or data[1].ndim != 2:
        raise ValueError(
            f"{entry.name!r} trains on [images, tokens]; got {[(tuple(d.shape), str(d.dtype)) for d in data]}"
        )


class PriorFamily(Family):
    """Diffusion priors over CLIP image embeddings (chapter 13). The cache holds the EMA
    network. Sampled through the pipeline (:func:`generate`) or :func:`sample_prior`."""

    name = "clip-prior"
    spec_type = PriorSpec

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        if not isinstance(spec.network, dict):
            raise ValueError(
                f"network must be a dict of PriorDenoiser's keyword arguments, got {spec.network!r}"
            )
        if not isinstance(spec.clip, str):
            raise ValueError(f"clip must name a zoo model, got {spec.clip!r}")
        if "embed_dim" not in spec.network:
            raise ValueError("network must set embed_dim (the CLIP embedding's width), got none")
        _check_process(spec)
        check_prediction_type(spec.prediction_type)
        _number_in("text_dropout", spec.text_dropout, 0.0, 1.0, high_open=True)
        _number_in("guidance_scale", spec.guidance_scale, 0.0, math.inf)
        try:
            PriorDenoiser(**spec.network)
        except TypeError as err:
            raise ValueError(f"a prior spec's network has a key PriorDenoiser does not take: {err}") from None

    def build(self, entry) -> nn.Module:
        torch.manual_seed(entry.init_seed)
        return PriorDenoiser(**entry.spec.network)

    def process(self, entry) -> GaussianDiffusion:
        return GaussianDiffusion(get_beta_schedule(entry.spec.schedule, entry.spec.num_timesteps))

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        spec = entry.spec
        _depends(entry, (spec.clip,))
        _check_images_tokens(entry, data)
        clip_model = dependencies[spec.clip].model
        dim = clip_model.embed_dim
        if spec.network["embed_dim"] != dim:
            raise ValueError(
                f"network embed_dim must be {spec.clip!r}'s embedding width {dim}, "
                f"got {spec.network['embed_dim']}"
            )
        scale = embedding_scale(dim)
        z_i, z_t = embed_images(clip_model, data[0]) * scale, embed_tokens(clip_model, data[1]) * scale
        loss = prior_loss(self.process(entry), spec.text_dropout, spec.prediction_type)
        return self.train_network(
            entry, loss, [z_i, z_t], checkpoint=checkpoint, progress=progress, device=device
        )


class DecoderFamily(Family):
    """Latent diffusion decoders conditioned on CLIP image embeddings (chapter 13). The cache
    holds the EMA U-Net; the record holds the latents' scale factor. Sampled through the pipeline
    (:func:`generate`, :func:`vary`) or :func:`decode`."""

    name = "unclip-decoder"
    spec_type = DecoderSpec

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        if not isinstance(spec.network, dict):
            raise ValueError(f"network must be a dict of UNet's keyword arguments, got {spec.network!r}")
        if spec.network.get("context_dim") is None:
            raise ValueError("network must set context_dim (the CLIP embedding's width), got none")
        for key in ("num_classes", "null_label"):
            if key in spec.network:
                raise ValueError(f"network must not set {key}: a decoder is conditioned on an embedding")
        for name in ("autoencoder", "clip"):
            if not isinstance(getattr(spec, name), str):
                raise ValueError(f"{name} must name a zoo model, got {getattr(spec, name)!r}")
        _check_process(spec)
        _number_in("embedding_dropout", spec.embedding_dropout, 0.0, 1.0, high_open=True)
        _number_in("guidance_scale", spec.guidance_scale, 0.0, math.inf)
        with torch.device("meta"):  # builds the network without allocating its weights
            try:
                UNet(**spec.network)
            except TypeError as err:
                raise ValueError(f"a decoder spec's network has a key UNet does not take: {err}") from None

    def build(self, entry) -> nn.Module:
        torch.manual_seed(entry.init_seed)
        return UNet(**entry.spec.network)

    def process(self, entry) -> GaussianDiffusion:
        return GaussianDiffusion(get_beta_schedule(entry.spec.schedule, entry.spec.num_timesteps))

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        spec = entry.spec
        _depends(entry, (spec.autoencoder, spec.clip))
        _check_images_tokens(entry, data)
        autoencoder, clip_model = dependencies[spec.autoencoder].model, dependencies[spec.clip].model
        network = spec.network
        inputs = (network.get("in_channels"), network.get("image_size"), network.get("image_size"))
        if tuple(autoencoder.latent_shape) != inputs:
            raise ValueError(
                f"network in_channels and image_size must fit {spec.autoencoder!r}'s latents "
                f"{tuple(autoencoder.latent_shape)}, got {inputs}"
            )
        dim = clip_model.embed_dim
        if network["context_dim"] != dim:
            raise ValueError(
                f"network context_dim must be {spec.clip!r}'s embedding width {dim}, "
                f"got {network['context_dim']}"
            )
        latents = encode_images(autoencoder, data[0])
        scale = scale_factor(latents)
        cond = embed_images(clip_model, data[0]) * embedding_scale(dim)
        loss = decoder_loss(self.process(entry), spec.embedding_dropout)
        trained = self.train_network(
            entry, loss, [latents * scale, cond], checkpoint=checkpoint, progress=progress, device=device
        )
        return Trained(trained.model, {**trained.series, "scale_factor": scale})


class UnclipFamily(Family):
    """The unCLIP pipeline (chapter 13): a prior and a decoder of the zoo, chained. It holds no
    weights of its own (its cache entry is empty); its key holds theirs, through ``depends_on``."""

    name = "unclip"
    spec_type = UnclipSpec
    sample_options = (*PROMPT_OPTIONS, *SAMPLER_OPTIONS, GUIDANCE_OPTION)
    sample_arrays = TEXT_TO_IMAGE_ARRAYS
    outputs = {
        "samples": "n images per prompt, prior and decoder by deterministic DDIM (η = 0), the first "
        "prompt's first, and the image embeddings they were decoded from (kwargs: prompts, n, "
        "guidance_scale, prior_guidance_scale, steps, spacing, seed, batch_size); chapter 13",
    }

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        for name in ("prior", "decoder"):
            if not isinstance(getattr(spec, name), str):
                raise ValueError(f"{name} must name a zoo model, got {getattr(spec, name)!r}")

    def build(self, entry) -> nn.Module:
        return nn.Module()  # no weights: the prior's and the decoder's are their own entries'

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        spec = entry.spec
        _depends(entry, (spec.prior, spec.decoder))
        for name, family in ((spec.prior, PriorFamily), (spec.decoder, DecoderFamily)):
            if not isinstance(dependencies[name].entry.spec, family.spec_type):
                raise ValueError(f"{name!r} must be a {family.name}, got a {dependencies[name].entry.family}")
        return Trained(nn.Module(), {})

    def _decoder_entry(self, entry):
        return zoo.entry(entry.spec.decoder)

    def sampling_options(self, entry, given: dict) -> dict:
        decoder = self._decoder_entry(entry).spec
        return text_to_image_options(entry.name, given, decoder.num_timesteps, decoder.guidance_scale)

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
        steps = self._decoder_entry(entry).spec.num_timesteps
        return "prior and decoder by " + describe_text_to_image(options, steps, "decoder guidance scale")


register_family(PriorFamily())
register_family(DecoderFamily())
register_family(UnclipFamily())
