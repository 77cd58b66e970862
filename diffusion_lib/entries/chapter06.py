"""The zoo models chapter 6 introduces: the digits and ring DDPMs, and the digits classifier
that the metrics use as their feature network."""

from ..families.classifier import ClassifierSpec
from ..families.diffusion import DiffusionSpec
from ..train import TrainConfig
from ..zoo import DataSpec, ZooEntry, register

register(
    ZooEntry(
        name="digits-ddpm",
        description="unconditional DDPM on the 8×8 digits (U-Net, linear schedule, T = 1000); chapter 6",
        family="diffusion",
        spec=DiffusionSpec(
            network={
                "type": "unet",
                "in_channels": 1,
                "image_size": 8,
                "base_channels": 32,
                "channel_mults": [1, 2],
                "num_res_blocks": 1,
                "attention_resolutions": [4],
            },
            schedule="linear",
            num_timesteps=1000,
        ),
        data=DataSpec.dataset("digits"),
        sample_shape=(1, 8, 8),
        train=TrainConfig(steps=1800, batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.999),
        # Two threads, whichever process trains it (a chapter, the CLI, a test run pinned to
        # one thread): the thread count changes the rounding, so it is part of the model.
        # About 220 s on 2 cores (one thread: about 340 s).
        train_threads=2,
        chapter=6,
    )
)
register(
    ZooEntry(
        name="ring-ddpm",
        description="DDPM on a 2-D ring of 8 Gaussians (MLP denoiser, linear schedule, T = 1000); chapter 6",
        family="diffusion",
        spec=DiffusionSpec(
            network={"type": "mlp", "data_dim": 2, "hidden": 128, "num_layers": 3, "time_dim": 32},
            schedule="linear",
            num_timesteps=1000,
        ),
        data=DataSpec.dataset("ring", n=8000, seed=0),
        sample_shape=(2,),
        train=TrainConfig(steps=6000, batch_size=256, lr=2e-3, warmup_steps=100, ema_decay=0.999),
        # A small MLP: one thread is faster than two (and immune to a busy second core).
        train_threads=1,
        chapter=6,
    )
)
register(
    ZooEntry(
        name="digits-classifier",
        description="small CNN classifier of the 8×8 digits, the feature extractor of metrics; chapter 6",
        family="classifier",
        spec=ClassifierSpec(network={"type": "digits_classifier"}),
        data=DataSpec.dataset("digits"),
        sample_shape=(1, 8, 8),
        train=TrainConfig(steps=1500, batch_size=128, lr=2e-3, warmup_steps=50, ema_decay=0.99),
        train_threads=2,  # fixed, as for digits-ddpm
        chapter=6,
    )
)
