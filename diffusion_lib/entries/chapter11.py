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
            # A fifth of the labels replaced by the null label. Against 0.1 (benchmarks/guidance.py,
            # DDIM 50 steps, 1,000 samples, seed 0, the same noise): the unconditional branch
            # (s = 0) has a Fréchet distance of 12.6 instead of 18.9, and the guided scales a lower
            # or equal one (s = 1.25: 5.98 both, 99.7 % and 99.8 % accurate; s = 1.5: 10.2
            # against 10.8; s = 2: 18.7 against 20.4), the conditional model (s = 1) about the same
            # (96.9 % and FD 4.34 against 97.4 % and 4.07), so the target ratio FD(s)/FD(1) at
            # s = 1.25 is 1.38 against 1.47. DPM-Solver++ 20 steps, 500 samples: the same ranking.
            label_dropout=0.2,
        ),
        data=DataSpec.dataset("digits"),
        sample_shape=(1, 8, 8),
        # digits-ddpm's batch, learning rate, warm-up and EMA, and 1500 of its 1800 steps: a
        # step costs what digits-ddpm's does (199 ms against 198 ms side by side), and 1800 of
        # them took 297.8 and 299.0 s in fresh clones, 306–384 s elsewhere, at the 300-s budget.
        # 1500 steps: 242 s here (2026-12-04). benchmarks/guidance.py (DDIM, 50 steps, 3 ×
        # 1,000 samples): 96.1 % of the conditional model's samples (s = 1) are classified as
        # their label, 99.2 % at guidance scale 1.25 with a Fréchet distance 1.19 × that of
        # s = 1 (1800 steps: 96.6 %, 99.3 % and 1.38 ×).
        train=TrainConfig(steps=1500, batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.999),
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
        # 1000 steps: 83 ms a step side by side with digits-ddpm's 198 ms (0.42 × its cost), so
        # about 90 s here (89.8 s measured). Accuracy on the 360 test digits noised to step t
        # (3 noise draws): 97.8 % at t = 0, 79.4 % at 250, 26.0 % at 500, 13.9 % at 750 (chance:
        # 10 %); 1500 steps gave 98.5, 79.3, 25.6 and 12.9 % for 1.5 × the time.
        # digits-classifier's EMA decay is 0.99; 0.999 here, as the diffusion models'.
        train=TrainConfig(steps=1000, batch_size=128, lr=2e-3, warmup_steps=50, ema_decay=0.999),
        train_threads=2,  # fixed, as for digits-classifier
        chapter=11,
    )
)
