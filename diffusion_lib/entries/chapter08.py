"""The zoo models chapter 8 introduces: flow-matching (rectified flow) models of the ring and the
digits, on the same networks, data and training budget as chapter 6's DDPMs, so that the two
families can be compared like for like."""

from ..families.flow import FlowSpec
from ..train import TrainConfig
from ..zoo import DataSpec, ZooEntry, register

register(
    ZooEntry(
        name="ring-flow",
        description="flow matching on a 2-D ring of 8 Gaussians (MLP, as ring-ddpm); chapter 8",
        family="flow",
        spec=FlowSpec(network={"type": "mlp", "data_dim": 2, "hidden": 128, "num_layers": 3, "time_dim": 32}),
        data=DataSpec.dataset("ring", n=8000, seed=0),
        sample_shape=(2,),
        # ring-ddpm's steps, batch, learning rate and EMA: the same budget for the same network.
        # About 60 s on one thread, as ring-ddpm. With Heun, 10 steps (20 network evaluations):
        # 8 of 8 modes, 88% of 4000 samples within 3σ of a mode (ring-ddpm, DPM-Solver++ 20: 74%).
        train=TrainConfig(steps=6000, batch_size=256, lr=2e-3, warmup_steps=100, ema_decay=0.999),
        train_threads=1,  # a small MLP: one thread, as for ring-ddpm
        chapter=8,
    )
)
register(
    ZooEntry(
        name="digits-flow",
        description="flow matching on the 8×8 digits (U-Net as digits-ddpm); chapter 8",
        family="flow",
        spec=FlowSpec(
            network={
                "type": "unet",
                "in_channels": 1,
                "image_size": 8,
                "base_channels": 32,
                "channel_mults": [1, 2],
                "num_res_blocks": 1,
                "attention_resolutions": [4],
            }
        ),
        data=DataSpec.dataset("digits"),
        sample_shape=(1, 8, 8),
        # digits-ddpm's steps, batch, learning rate and EMA: the same budget for the same network,
        # at the same cost per step (side by side, 150 steps: 32.7 s against digits-ddpm's 31.9 s),
        # so about its 220 s on 2 free cores (598 s measured on a busy host). Fréchet distance in
        # the digits classifier's features, 500 samples to the 360 test digits: 6.9 with Heun,
        # 10 steps (20 network evaluations); 7.0 with Euler, 20 steps; digits-ddpm's 1000-step
        # DDPM samples 9.8, its DPM-Solver++ with 20 steps 8.6; 500 training digits 6.8.
        train=TrainConfig(steps=1800, batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.999),
        train_threads=2,  # fixed, as for digits-ddpm: the thread count changes the rounding
        chapter=8,
    )
)
