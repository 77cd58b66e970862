"""Denoiser networks: a U-Net for images, an MLP for 2-D points, and timestep embeddings."""

from .embeddings import timestep_embedding
from .mlp import MLPDenoiser
from .unet import UNet

__all__ = ["MLPDenoiser", "UNet", "timestep_embedding"]
