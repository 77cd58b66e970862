"""The zoo model chapter 10 introduces: a CLIP trained from scratch on captioned 32×32 scenes."""

from ..families.clip import CLIPSpec
from ..train import TrainConfig
from ..zoo import DataSpec, ZooEntry, register

register(
    ZooEntry(
        name="scenes-clip",
        description="CLIP (CNN + Transformer, InfoNCE) trained from scratch on captioned scenes; chapter 10",
        family="clip",
        spec=CLIPSpec(
            image={"width": 16, "feature_dim": 256},
            text={"width": 64, "layers": 2, "heads": 4},
            embed_dim=64,
        ),
        data=DataSpec.dataset("scene-captions", n1=10_000, n2=10_000, seed=0),
        sample_shape=(3, 32, 32),
        train=TrainConfig(steps=1500, batch_size=256, lr=3e-3, warmup_steps=100, ema_decay=0.999),
        train_threads=2,  # fixed, as for digits-ddpm: the thread count changes the rounding
        chapter=10,
    )
)
