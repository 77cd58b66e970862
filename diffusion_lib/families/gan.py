"""The GAN family: an MLP generator and discriminator trained adversarially (chapter 3), sampled
in one generator pass; compared with the diffusion models in chapter 9."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .. import gan
from ..family import Family, Trained, as_arrays, register_family

__all__ = ["GANSpec", "GANFamily"]


@dataclass(frozen=True)
class GANSpec:
    """A GAN: the kwargs of :class:`~diffusion_lib.gan.MLPGenerator` and
    :class:`~diffusion_lib.gan.MLPDiscriminator` (less ``sample_shape``, the entry's), and the
    adversarial game (:class:`~diffusion_lib.gan.GANConfig`)."""

    generator: dict
    discriminator: dict
    gan: gan.GANConfig = field(default_factory=gan.GANConfig)


class GANFamily(Family):
    """GANs (chapter 3). The cache holds the generator's EMA; the discriminator is not kept."""

    name = "gan"
    spec_type = GANSpec
    sample_arrays = {
        "images": "float32 (N, C, H, W) in [0, 1], for image models",
        "points": "float32 (N, D) in data units, for models of points",
    }
    outputs = {"samples": "G(z) for n draws of z ~ N(0, I) (kwargs: n, seed)"}

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        for part in ("generator", "discriminator"):
            if not isinstance(getattr(spec, part), dict):
                raise ValueError(f"{part} must be a dict of constructor kwargs, got {getattr(spec, part)!r}")
        if not isinstance(spec.gan, gan.GANConfig):
            raise ValueError(f"gan must be a GANConfig, got {type(spec.gan).__name__}")

    def networks(self, entry) -> tuple[nn.Module, nn.Module]:
        """The generator and the discriminator, initialised from ``init_seed`` (in that order)."""
        torch.manual_seed(entry.init_seed)
        shape = tuple(entry.sample_shape)
        generator = gan.MLPGenerator(sample_shape=shape, **entry.spec.generator)
        discriminator = gan.MLPDiscriminator(sample_shape=shape, **entry.spec.discriminator)
        return generator, discriminator

    def build(self, entry) -> nn.Module:
        return self.networks(entry)[0]  # the generator only: the cache keeps its EMA

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        generator, discriminator = self.networks(entry)
        result = gan.train_gan(
            generator,
            discriminator,
            data[0],
            entry.train,
            entry.spec.gan,
            checkpoint=checkpoint,
            progress=progress,
            description=entry.name,
            device=device,
        )
        return Trained(result.ema, {"losses": result.losses, "d_losses": result.d_losses})

    def sampling_options(self, entry, given) -> dict:
        return {}

    def sample(self, loaded, n, *, batch_size, generator, options) -> dict:
        batches = [
            gan.sample(loaded.model, min(batch_size, n - first), generator=generator).to("cpu", torch.float32)
            for first in range(0, n, batch_size)
        ]  # z ~ N(0, I) drawn batch after batch
        return as_arrays(torch.cat(batches))

    def describe(self, entry, options) -> str:
        return "one generator pass"

    def output(self, loaded, name, *, progress=True, **kwargs) -> dict:
        if name != "samples":
            return super().output(loaded, name, progress=progress, **kwargs)
        n, seed = kwargs.get("n"), kwargs.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        with torch.no_grad():
            return {"samples": gan.sample(loaded.model, n, generator=torch.Generator().manual_seed(seed))}


register_family(GANFamily())
