"""The zoo models chapter 11 introduces: a class-conditional digits DDPM with a learned null
label (classifier-free guidance) and a noise-aware digits classifier (classifier guidance)."""

from ..families.classifier import ClassifierSpec
from ..families.diffusion import DiffusionSpec
from ..train import TrainConfig
from ..zoo import DataSpec, ZooEntry, register

register(
    ZooEntry(
        name="digits-cond-ddpm",
        description="class-conditional DDPM on the 8×8 digits with a learned null label (U-Net as "
        "digits-ddpm), for classifier-free guidance; chapter 11",
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
                "num_classes": 10,
                "null_label": True,  # the label 10: "no label"
            },
            schedule="linear",
            num_timesteps=1000,
            # MEASURED: placeholder
            label_dropout=0.2,
        ),
        data=DataSpec.dataset("digits"),
        sample_shape=(1, 8, 8),
        # digits-ddpm's steps, batch, learning rate and EMA: the same budget for the same network
        # (the class embedding adds one vector per step). MEASURED: placeholder
        train=TrainConfig(steps=1800, batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.999),
        train_threads=2,  # fixed, as for digits-ddpm: the thread count changes the rounding
        chapter=11,
    )
)
register(
    ZooEntry(
        name="digits-noisy-classifier",
        description="noise-aware classifier p(y | x_t, t) of the 8×8 digits (the U-Net's encoder half), "
        "for classifier guidance; chapter 11",
        family="classifier",
        spec=ClassifierSpec(
            network={
                "type": "unet_encoder",
                "in_channels": 1,
                "image_size": 8,
                "base_channels": 32,
                "channel_mults": [1, 2],
                "num_res_blocks": 1,
                "attention_resolutions": [4],
                "num_classes": 10,
            },
            noise={"schedule": "linear", "num_timesteps": 1000},  # digits-(cond-)ddpm's process
        ),
        data=DataSpec.dataset("digits"),
        sample_shape=(1, 8, 8),
        # MEASURED: placeholder
        train=TrainConfig(steps=1000, batch_size=128, lr=2e-3, warmup_steps=50, ema_decay=0.999),
        train_threads=2,  # fixed, as for digits-classifier
        chapter=11,
    )
)
