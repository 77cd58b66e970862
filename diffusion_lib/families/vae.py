"""The VAE family: the KL-regularised autoencoder of latent diffusion (chapter 12), trained on
images with the β-weighted negative ELBO (:func:`diffusion_lib.vae.vae_loss`). It cannot be
sampled from the command line; a loaded model encodes (``encode``) and decodes (``decode``).

The module also registers the training data, ``"scene-images"``: one-object and two-object
scenes of :func:`diffusion_lib.data.scenes` (the "train" split), images only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import data
from ..family import Family, Trained, register_family
from ..nets.vae import AutoencoderKL
from ..vae import vae_loss

__all__ = ["VAESpec", "VAEFamily", "scene_image_data", "autoencoder_loss"]


@dataclass(frozen=True)
class VAESpec:
    """A KL autoencoder.

    Attributes:
        network: keyword arguments of :class:`diffusion_lib.nets.vae.AutoencoderKL`.
        kl_weight: the weight of the KL term against the summed squared error
            (:func:`diffusion_lib.vae.vae_loss`); Rombach et al.'s 10⁻⁶ is of this order.
    """

    network: dict = field(default_factory=dict)
    kl_weight: float = 1e-6


def autoencoder_loss(kl_weight: float):
    """``loss(model, batch, generator)``: :func:`~diffusion_lib.vae.vae_loss` of ``batch[0]``
    and the decoding of one z ~ q(z | x) drawn from ``generator``."""

    def loss(model: AutoencoderKL, batch: list, generator: torch.Generator) -> torch.Tensor:
        x = batch[0]
        posterior = model.encode(x)
        return vae_loss(x, model.decode(posterior.sample(generator)), posterior, kl_weight).loss

    return loss


def scene_image_data(n1: int = 10_000, n2: int = 10_000, seed: int = 0) -> list:
    """``[images (n1 + n2, 3, 32, 32)]``: ``n1`` one-object and ``n2`` two-object scenes of the
    "train" split (:func:`diffusion_lib.data.scenes`). Registered as the dataset ``"scene-images"``.

    Raises:
        ValueError: counts that are not ints >= 0 or that sum to 0; ``data.scenes``'s errors.
    """
    parts = [part.images for part in data.scene_mix(n1, n2, seed=seed)]
    return [torch.cat(parts)]


data.register_dataset("scene-images", scene_image_data)


class VAEFamily(Family):
    """KL autoencoders (chapter 12), trained on ``[images]``; the cache holds the EMA model."""

    name = "vae"
    spec_type = VAESpec

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        if not isinstance(spec.network, dict):
            raise ValueError(
                f"network must be a dict of AutoencoderKL's keyword arguments, got {spec.network!r}"
            )
        weight = spec.kl_weight
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise ValueError(f"kl_weight must be a finite number >= 0, got {weight!r}")
        with torch.device("meta"):  # builds the network without allocating its weights
            try:
                AutoencoderKL(**spec.network)
            except TypeError as err:  # an unknown keyword argument
                raise ValueError(
                    f"a VAE spec's network has a key AutoencoderKL does not take: {err}"
                ) from None

    def build(self, entry) -> nn.Module:
        torch.manual_seed(entry.init_seed)
        return AutoencoderKL(**entry.spec.network)

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        with torch.device("meta"):
            net = AutoencoderKL(**entry.spec.network)
        shape = (net.in_channels, net.image_size, net.image_size)
        if not data or data[0].ndim != 4 or tuple(data[0].shape[1:]) != shape:
            raise ValueError(
                f"a VAE trains on [images (N, {', '.join(map(str, shape))})]; {entry.name!r} got "
                f"{[tuple(d.shape) for d in data]}"
            )
        return self.train_network(
            entry, autoencoder_loss(entry.spec.kl_weight), data[:1], checkpoint=checkpoint,
            progress=progress, device=device,
        )  # fmt: skip


register_family(VAEFamily())
