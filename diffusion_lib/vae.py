"""The KL-regularised autoencoder of latent diffusion (chapter 12, section "The autoencoder"):
the diagonal-Gaussian posterior q(z | x), its KL divergence to N(0, I), the loss, and the
latent scale factor.

Rombach et al. (2022), "High-Resolution Image Synthesis with Latent Diffusion Models", train an
autoencoder whose encoder outputs a mean and a log-variance per latent number, with a KL term
weighted so lightly (10⁻⁶ in their KL-f8 model) that the latents are nearly deterministic and
far from unit variance; before diffusion they are multiplied by a scale factor, 1 / (the
latents' standard deviation), 0.18215 for Stable Diffusion's autoencoder. This module holds
that mathematics; :mod:`diffusion_lib.nets.vae` the networks.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch

__all__ = ["DiagonalGaussian", "VAELoss", "vae_loss", "scale_factor", "encode_images"]

# How many images a frozen encoder takes per forward pass when a training set is encoded: a few
# MB of activations, and few enough calls that their overhead vanishes.
ENCODE_BATCH = 1000


def _check_tensor(name: str, value) -> torch.Tensor:
    if not torch.is_tensor(value) or not value.is_floating_point() or value.ndim < 2:
        what = (
            f"a {value.dtype} tensor of shape {tuple(value.shape)}"
            if torch.is_tensor(value)
            else type(value).__name__
        )
        raise ValueError(f"{name} must be a floating-point tensor (B, ...), got {what}")
    return value


class DiagonalGaussian(NamedTuple):
    """q(z | x) = N(mean, diag(exp(logvar))), one per example: what the encoder outputs.

    Derived in chapter 12, eq. (ldm-elbo) (Kingma & Welling, 2014). ``logvar`` is
    clamped to [−30, 20] where it is used (as in Rombach et al.'s
    ``DiagonalGaussianDistribution``), so that exp never overflows or underflows to a zero
    standard deviation.
    """

    mean: torch.Tensor
    logvar: torch.Tensor

    def _logvar(self) -> torch.Tensor:
        return self.logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        """The standard deviations exp(logvar / 2), clamped as the class says."""
        return torch.exp(0.5 * self._logvar())

    def sample(self, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """z = mean + std · ε with ε ~ N(0, I) from ``generator`` (the reparameterisation
        trick: z is differentiable in mean and logvar)."""
        eps = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * eps

    def kl(self) -> torch.Tensor:
        """KL(q(z | x) ‖ N(0, I)) of each example, summed over its latent numbers: (B,).

        Derived in chapter 12, eq. (ldm-kl) (Kingma & Welling, 2014, appendix B):
        ½ Σ (μ² + σ² − 1 − log σ²).
        """
        logvar = self._logvar()
        return 0.5 * (self.mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


class VAELoss(NamedTuple):
    """The autoencoder's loss and its parts, each averaged over the batch (per example)."""

    loss: torch.Tensor  # reconstruction + kl_weight · kl
    reconstruction: torch.Tensor  # Σ over the pixels of (x − x̂)²
    kl: torch.Tensor  # KL(q(z | x) ‖ N(0, I)), summed over the latent numbers


def vae_loss(
    x: torch.Tensor, reconstruction: torch.Tensor, posterior: DiagonalGaussian, kl_weight: float
) -> VAELoss:
    """The β-weighted negative ELBO of a batch: Σ_pixels (x − x̂)² + kl_weight · KL, per example.

    Derived in chapter 12, eq. (ldm-vae-loss). With a Gaussian decoder p(x | z) = N(x̂, σ² I),
    −log p(x | z) = Σ (x − x̂)² / (2σ²) + const, so the loss is 2σ² times the negative ELBO with
    kl_weight = 2σ²: a tiny kl_weight is a decoder trusted to a tiny σ. (Rombach et al. use an
    L1 and a perceptual reconstruction term instead of the squared error, and a GAN loss.)

    Args:
        x: the images (B, ...).
        reconstruction: the decoder's output for a sample of ``posterior``, x's shape.
        posterior: the encoder's q(z | x).
        kl_weight: the weight of the KL term, a finite number >= 0.

    Returns:
        :class:`VAELoss`, each part averaged over the batch.

    Raises:
        ValueError: tensors of mismatched shapes or not floating point; a bad kl_weight.
    """
    _check_tensor("x", x)
    _check_tensor("reconstruction", reconstruction)
    if reconstruction.shape != x.shape:
        raise ValueError(
            f"reconstruction must have x's shape {tuple(x.shape)}, got {tuple(reconstruction.shape)}"
        )
    if posterior.mean.shape[0] != x.shape[0] or posterior.logvar.shape != posterior.mean.shape:
        raise ValueError(
            f"posterior must hold a mean and logvar of one shape with x's batch {x.shape[0]}, got "
            f"{tuple(posterior.mean.shape)} and {tuple(posterior.logvar.shape)}"
        )
    number = isinstance(kl_weight, (int, float)) and not isinstance(kl_weight, bool)
    if not number or not math.isfinite(kl_weight) or kl_weight < 0:
        raise ValueError(f"kl_weight must be a finite number >= 0, got {kl_weight!r}")
    rec = (x - reconstruction).pow(2).flatten(1).sum(1).mean()
    kl = posterior.kl().mean()
    return VAELoss(rec + kl_weight * kl, rec, kl)


def scale_factor(latents: torch.Tensor) -> float:
    """1 / (the standard deviation of all the numbers in ``latents``): what latent diffusion
    multiplies the autoencoder's latents by, so that they have unit variance like the noise.

    Derived in chapter 12, eq. (ldm-scale). Rombach et al. compute it on the first batch of
    latents; 0.18215 for Stable Diffusion's autoencoder. The standard deviation is taken about
    the latents' mean (the mean is not removed from the latents; it is near 0 in practice).

    Raises:
        ValueError: latents not a floating-point tensor (B, ...) with at least two numbers, or
            with zero or non-finite spread.
    """
    _check_tensor("latents", latents)
    if latents.numel() < 2:
        raise ValueError(f"latents must hold at least two numbers, got {latents.numel()}")
    std = latents.double().std().item()
    if not math.isfinite(std) or std <= 0:
        raise ValueError(f"latents must have a finite, non-zero standard deviation, got {std}")
    return 1.0 / std


@torch.no_grad()
def encode_images(
    autoencoder: torch.nn.Module, images: torch.Tensor, batch_size: int = ENCODE_BATCH
) -> torch.Tensor:
    """The means of q(z | x) of ``images`` under ``autoencoder`` (an
    :class:`~diffusion_lib.nets.vae.AutoencoderKL`), unscaled, in batches; (N, *latent_shape).

    Chapter 12 (section "The autoencoder") measures why: with the autoencoder's tiny KL weight
    the posterior's standard deviation is small beside the spread of its means, so a model of the
    means loses little that a sample of q(z | x) would add. The latent diffusion and the unCLIP
    decoder families both train on them.
    """
    autoencoder = autoencoder.eval()
    return torch.cat(
        [autoencoder.encode(images[k : k + batch_size]).mean for k in range(0, len(images), batch_size)]
    )
