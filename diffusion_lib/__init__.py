"""diffusion_lib: the tested library behind "AIGC: Principles and Code" (《AIGC原理与代码实例讲解》).

Modules, dependencies pointing one way (each uses only those above it):

- :mod:`diffusion_lib.checks`     ``check`` / ``check_le`` / ``check_outcome``: checks that can fail
- :mod:`diffusion_lib.seeds`      the book-wide training-seed shift (``$DIFFUSION_LIB_SEED_SHIFT``)
- :mod:`diffusion_lib.files`      atomic file writes
- :mod:`diffusion_lib.schedules`  β schedules and SNR helpers (chapter 4)
- :mod:`diffusion_lib.diffusion`  ``GaussianDiffusion``: forward process, posterior, losses,
                                  bits/dim (chapters 4–5)
- :mod:`diffusion_lib.flow`       the flow-matching path and loss (chapter 8)
- :mod:`diffusion_lib.samplers`   DDPM, DDIM, DPM-Solver++, EDM's Heun and the flow samplers
                                  (chapters 5–8)
- :mod:`diffusion_lib.sde`        VP/VE/sub-VP SDEs, Langevin and SDE samplers, probability-flow
                                  likelihood (chapter 8)
- :mod:`diffusion_lib.nets`       U-Net, MLP denoiser, timestep embeddings, digits classifier,
                                  the noise-aware classifier of guidance, CLIP's encoders
- :mod:`diffusion_lib.clip`       CLIP's tokenizer, InfoNCE loss, zero-shot and retrieval (chapter 10)
- :mod:`diffusion_lib.guidance`   classifier and classifier-free guidance (chapter 11)
- :mod:`diffusion_lib.editing`    inpainting (replacement, RePaint), SDEdit, DDRM restoration,
                                  and exact answers for Gaussian data (chapter 14)
- :mod:`diffusion_lib.data`       bundled and generated datasets (nothing is downloaded)
- :mod:`diffusion_lib.train`      the one training loop: AdamW, EMA, checkpoints (chapter 6)
- :mod:`diffusion_lib.gan`        GAN networks, losses and training loop (chapter 3)
- :mod:`diffusion_lib.family`     the model-family interface and its registry
- :mod:`diffusion_lib.vae`        the KL autoencoder's posterior, loss and scale factor (chapter 12)
- :mod:`diffusion_lib.sampling`   the reverse-process samplers by name and their command-line
                                  options, shared by the diffusion families
- :mod:`diffusion_lib.zoo`        named models of every family, trained on first use and cached
- ``diffusion_lib.families``      the book's families: diffusion, gan, classifier, flow, clip,
                                  vae, latent-diffusion
- ``diffusion_lib.entries``       the book's zoo entries, one module per chapter
- :mod:`diffusion_lib.metrics`    Fréchet distance, classifier scores, precision/recall, PSNR
- :mod:`diffusion_lib.viz`        image grids and animations
- ``python -m diffusion_lib``     the command line: list, train, sample, edit
"""

from .checks import check, check_le, check_outcome
from .diffusion import GaussianDiffusion
from .schedules import get_beta_schedule

__version__ = "0.1.0"

__all__ = [
    "GaussianDiffusion",
    "check",
    "check_le",
    "check_outcome",
    "get_beta_schedule",
    "__version__",
]
