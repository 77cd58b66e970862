"""The zoo models of chapter 12: a miniature Stable Diffusion of the
captioned scenes (its KL autoencoder and its text-conditional latent denoiser), and the judge of
prompt following, a classifier of the four attributes of a one-object scene."""

from ..data import SCENE_ATTRIBUTES
from ..families.classifier import ClassifierSpec
from ..families.latent_diffusion import LatentDiffusionSpec
from ..families.vae import VAESpec
from ..train import TrainConfig
from ..zoo import DataSpec, ZooEntry, register

register(
    ZooEntry(
        name="scenes-vae",
        description="KL autoencoder of the 32×32 scenes to 4 × 8 × 8 latents (downsampling factor 4); "
        "chapter 12",
        family="vae",
        spec=VAESpec(
            network={
                "in_channels": 3,
                "image_size": 32,
                # 16 → 32 → 32 channels at 32, 16 and 8 pixels: 235 ms a step of 64 scenes here,
                # against 695 ms for base 32 (a 5-minute budget allows about 1,000 steps).
                "base_channels": 16,
                "channel_mults": [1, 2, 2],  # 32 → 16 → 8 pixels: a downsampling factor of 4
                "num_res_blocks": 1,
                "latent_channels": 4,  # 4 × 8 × 8 = 256 numbers for the 3 × 32 × 32 = 3,072 pixels
            },
            kl_weight=1e-6,  # Rombach et al.'s order: the latents are nearly deterministic
        ),
        data=DataSpec.dataset("scene-images", n1=10_000, n2=10_000, seed=0),
        sample_shape=(3, 32, 32),
        # 800 steps: 204 s here (2 threads), held-out PSNR 35.3 dB against 28.5 dB for PCA with
        # the same 256 numbers (benchmarks/vae_scenes.py).
        train=TrainConfig(steps=800, batch_size=64, lr=2e-3, warmup_steps=100, ema_decay=0.999),
        train_threads=2,  # fixed, as for the other models: the thread count changes the rounding
        chapter=12,
    )
)
register(
    ZooEntry(
        name="scenes-ldm",
        description="text-to-image latent diffusion on the scenes: a U-Net on scenes-vae's 4 × 8 × 8 "
        "latents with cross-attention to scenes-clip's token states; chapter 12",
        family="latent-diffusion",
        spec=LatentDiffusionSpec(
            network={
                "in_channels": 4,  # scenes-vae's latents: 4 × 8 × 8
                "image_size": 8,
                "base_channels": 32,
                "channel_mults": [1, 2],  # 8 → 4
                "num_res_blocks": 1,
                # Self- and cross-attention at 4 × 4, where a cell is an 8-pixel square of the
                # scene: 176 ms a training step of 128 here, against 271 ms with attention at
                # 8 × 8 as well, 451 ms at base 48 and 649 ms at base 64 (2 threads, this machine).
                "attention_resolutions": [4],
                "context_dim": 64,  # scenes-clip's text width
                "scale_shift": True,  # the embedding survives the GroupNorm (nets.unet.ResBlock)
                "pooled_context": True,  # the <eos> state added to the timestep embedding (Imagen)
            },
            autoencoder="scenes-vae",
            text_encoder="scenes-clip",
            # Stable Diffusion's schedule. With the linear one (ᾱ_T = 4e-5) deterministic DDIM and
            # DPM-Solver++ drove 45% of the latents off to a spread of about 5 (decoded: coloured
            # noise), whatever the step count, while stochastic sampling did not; here none does.
            schedule="ldm",
            caption_dropout=0.1,  # Ho & Salimans's and Stable Diffusion's rate
            # s = 5: the digit (the hardest attribute) right in 95.8% / 89.6% of images of training /
            # held-out prompts (benchmarks/latent_diffusion.py, shift 0), where s = 3 gave 90.6 / 84.4%;
            # chapter 12's larger sample reads 79.7-83.9% held out under shifts 0-2 (README).
            guidance_scale=5.0,
        ),
        depends_on=("scenes-vae", "scenes-clip"),
        data=DataSpec.dataset("scene-captions", n1=20_000, n2=0, seed=1),
        sample_shape=(3, 32, 32),
        # 1500 steps of 128: 259–274 s here (2 threads; shifts 0 and 1, benchmarks/latent_diffusion.py).
        train=TrainConfig(steps=1500, batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.999),
        train_threads=2,  # fixed, as for the other models: the thread count changes the rounding
        chapter=12,
    )
)
register(
    ZooEntry(
        name="scenes-pixel-dm",
        description="the pixel-space counterpart of scenes-ldm: the same family without the autoencoder, "
        "denoising the 3 × 32 × 32 scenes; chapter 12's cost comparison",
        family="latent-diffusion",
        spec=LatentDiffusionSpec(
            network={
                "in_channels": 3,
                "image_size": 32,
                "base_channels": 16,
                "channel_mults": [1, 2, 2, 2],  # 32 → 16 → 8 → 4
                # attention at 8 and 4 (as coarse as scenes-ldm's): 701 ms a training step of
                # 128 here, against 2,079 ms for base 32 with three levels
                "attention_resolutions": [8, 4],
                "num_res_blocks": 1,
                "context_dim": 64,  # scenes-clip's text width
                "scale_shift": True,
                "pooled_context": True,
            },
            autoencoder=None,
            text_encoder="scenes-clip",
            schedule="ldm",  # as scenes-ldm: the two differ only in what they denoise
            caption_dropout=0.1,
            guidance_scale=5.0,
        ),
        depends_on=("scenes-clip",),
        data=DataSpec.dataset("scene-captions", n1=20_000, n2=0, seed=1),
        sample_shape=(3, 32, 32),
        # 375 steps: about scenes-ldm's training time (equal compute). 400 steps took 285 and 293 s
        # under shifts 0 and 1, against scenes-ldm's 274 and 272 s, too near the 300-s budget.
        train=TrainConfig(steps=375, batch_size=128, lr=2e-3, warmup_steps=50, ema_decay=0.99),
        train_threads=2,
        chapter=12,
    )
)
register(
    ZooEntry(
        name="scenes-judge",
        description="classifier of a one-object scene's digit, colour, position and size (four heads), "
        "the judge of prompt following; chapter 12",
        family="classifier",
        spec=ClassifierSpec(
            # CLIP's image encoder (the ink channel, max pooling, a flattened 4×4 map that keeps
            # where the object is), its 22 outputs read as the four heads' logits.
            network={"type": "scene_encoder", "width": 16, "feature_dim": 256, "embed_dim": 22},
            heads={name: len(values) for name, values in SCENE_ATTRIBUTES.items()},
        ),
        data=DataSpec.dataset("scenes", n=20_000, seed=2, split="train"),
        sample_shape=(3, 32, 32),
        # 2400 steps (78–92 s here): the digit read right on 99.1% of real training scenes and 91.2% of
        # held-out ones (unseen handwriting); 800 steps gave 96.9% and 79.2%.
        train=TrainConfig(steps=2400, batch_size=128, lr=2e-3, warmup_steps=50, ema_decay=0.999),
        train_threads=2,  # fixed, as for the other models: the thread count changes the rounding
        chapter=12,
    )
)
