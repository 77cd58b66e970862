"""Denoiser networks: a U-Net for images, an MLP for 2-D points, and timestep embeddings."""

from typing import Callable

from torch import nn

from .embeddings import timestep_embedding
from .mlp import MLPDenoiser
from .unet import UNet

__all__ = ["MLPDenoiser", "UNet", "timestep_embedding", "DENOISERS"]

# The denoising networks a family's spec may name by ``network["type"]`` (the diffusion and the
# flow family share them): each takes (x, t) — and y for a class-conditional U-Net.
DENOISERS: dict[str, Callable[..., nn.Module]] = {"unet": UNet, "mlp": MLPDenoiser}
