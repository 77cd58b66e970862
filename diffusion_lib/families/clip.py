"""The CLIP family: an image encoder and a text encoder trained together with the symmetric
InfoNCE loss on (scene, caption) pairs (chapter 10). It cannot be sampled; a loaded model embeds
images (``encode_image``) and captions (``encode_text``, with the scene tokenizer attached).

The module also registers the training data, ``"scene-captions"``: one-object and two-object
scenes of :func:`diffusion_lib.data.scenes` (the "train" split) with their captions as tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .. import data, distributed
from ..clip import Tokenizer, info_nce
from ..family import Family, Trained, register_family
from ..nets.clip import CLIP, IMAGE_SHAPE

__all__ = ["CLIPSpec", "ClipFamily", "clip_loss", "scene_caption_data", "build_clip"]

# The keys of a spec's ``text`` that come from the tokenizer, not from the spec: the network
# must fit the vocabulary and the context of Tokenizer.for_scenes(), so the family sets them.
TOKENIZER_KEYS = ("vocab_size", "context_length", "pad_id")


@dataclass(frozen=True)
class CLIPSpec:
    """A CLIP model: its two encoders and the temperature (:class:`diffusion_lib.nets.clip.CLIP`).

    Attributes:
        image: keyword arguments of the image encoder (``width``, ``feature_dim``).
        text: keyword arguments of the text encoder (``width``, ``layers``, ``heads``); its
            vocabulary and context come from :meth:`diffusion_lib.clip.Tokenizer.for_scenes`.
        embed_dim: the size of the joint embedding.
        init_temperature: the initial temperature (CLIP: 0.07).
        max_logit_scale: the cap on the learned logit scale (CLIP: 100).

    The data mix (how many one-object and two-object scenes) is the data spec's, not the
    model's: ``DataSpec.dataset("scene-captions", n1=..., n2=..., seed=...)``.
    """

    image: dict = field(default_factory=lambda: {"width": 16, "feature_dim": 256})
    text: dict = field(default_factory=lambda: {"width": 64, "layers": 2, "heads": 4})
    embed_dim: int = 64
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0


def build_clip(spec: CLIPSpec, tokenizer: Tokenizer) -> CLIP:
    """The network of ``spec`` for ``tokenizer``'s vocabulary and context, with the tokenizer
    attached (so that ``encode_text`` works), freshly initialised from torch's global seed.

    Raises:
        ValueError: a spec the networks refuse (the message names the key).
    """
    text = {
        **spec.text,
        "vocab_size": tokenizer.vocab_size,
        "context_length": tokenizer.context_length,
        "pad_id": tokenizer.pad_id,
    }
    return CLIP(
        dict(spec.image),
        text,
        embed_dim=spec.embed_dim,
        init_temperature=spec.init_temperature,
        max_logit_scale=spec.max_logit_scale,
        tokenizer=tokenizer,
    )


def clip_loss(model: CLIP, batch: list, generator: torch.Generator) -> torch.Tensor:
    """The symmetric InfoNCE loss of a batch ``[images, tokens]`` of matching pairs, at the
    model's learned logit scale (:func:`diffusion_lib.clip.info_nce`).

    When several ranks train (chapter 16), each holds a shard of the batch: the features of
    every rank are gathered with their gradients (:func:`diffusion_lib.distributed.gather_with_grad`)
    before the loss, so each pair is scored against the negatives of the whole batch and the loss
    equals the single-process loss of the concatenated batch, gradients included."""
    image_features, text_features = model(batch[0], batch[1])
    image_features = distributed.gather_with_grad(image_features)
    text_features = distributed.gather_with_grad(text_features)
    return info_nce(image_features, text_features, model.logit_scale).loss


def scene_caption_data(n1: int = 10_000, n2: int = 10_000, seed: int = 0) -> list:
    """The training pairs of CLIP: ``n1`` one-object and ``n2`` two-object scenes of the "train"
    split (:func:`diffusion_lib.data.scenes`), as ``[images (n1 + n2, 3, 32, 32), tokens
    (n1 + n2, context_length)]``; the tokens are ``Tokenizer.for_scenes()``'s.

    Registered as the dataset ``"scene-captions"``.

    Raises:
        ValueError: counts that are not ints >= 0 or that sum to 0; ``data.scenes``'s errors.
    """
    parts = data.scene_mix(n1, n2, seed=seed)
    tokens = Tokenizer.for_scenes().encode([c for part in parts for c in part.captions])
    return [torch.cat([part.images for part in parts]), tokens]


data.register_dataset("scene-captions", scene_caption_data)


class ClipFamily(Family):
    """CLIP models (chapter 10), trained on ``[images, tokens]``. The cache holds the EMA model;
    :meth:`build` attaches the scene tokenizer, so a loaded model's ``encode_text`` works."""

    name = "clip"
    spec_type = CLIPSpec

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        for name in ("image", "text"):
            value = getattr(spec, name)
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be a dict of the encoder's keyword arguments, got {value!r}")
        given = sorted(set(TOKENIZER_KEYS) & set(spec.text))
        if given:
            raise ValueError(
                f"text must not set {', '.join(given)}: the family takes them from Tokenizer.for_scenes()"
            )
        tokenizer = Tokenizer.for_scenes()
        with torch.device("meta"):  # builds the networks without allocating their weights
            try:
                build_clip(spec, tokenizer)
            except TypeError as err:  # an unknown keyword argument
                raise ValueError(
                    f"a CLIP spec's image or text has a key the encoder does not take: {err}"
                ) from None

    def build(self, entry) -> nn.Module:
        torch.manual_seed(entry.init_seed)
        return build_clip(entry.spec, Tokenizer.for_scenes())

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        context = Tokenizer.for_scenes().context_length
        if (
            len(data) < 2
            or tuple(data[0].shape[1:]) != IMAGE_SHAPE
            or data[1].dtype != torch.int64
            or tuple(data[1].shape[1:]) != (context,)
        ):
            raise ValueError(
                f"a CLIP model trains on [images (N, 3, 32, 32), tokens (N, {context}) int64]; "
                f"{entry.name!r} got {[(tuple(d.shape), str(d.dtype)) for d in data]}"
            )
        return self.train_network(
            entry, clip_loss, data, checkpoint=checkpoint, progress=progress, device=device
        )


register_family(ClipFamily())
