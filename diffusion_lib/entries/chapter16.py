"""The zoo models chapter 16 introduces: small MLP denoisers of the flattened digits for the
scaling and memorisation measurements, and the rounds of progressive distillation of
digits-ddpm.

Measured on a 2-core CPU (2 threads): the three widths train 3,600 steps in about 5, 8 and
17 s (the scaling section also loads 400 and 1,200 steps of each, through the zoo's ``steps``
override: about 30 s more); the three subsets about 8 s each; a distillation round of 400
steps of 64 digits about 20 s.
"""

from typing import Optional

import torch

from ..data import digits, register_dataset
from ..families.diffusion import DiffusionSpec
from ..families.distill import DistillSpec
from ..train import TrainConfig
from ..zoo import DataSpec, ZooEntry, register

# The widths of the scaling section, and the subset sizes of the memorisation section.
MLP_WIDTHS = (96, 192, 384)
MLP_STEPS = (400, 1200, 3600)
SUBSET_SIZES = (32, 128, 360)
MEMORISATION_WIDTH = 192
# The student steps of the distillation rounds; the first teacher (digits-ddpm) takes 16.
DISTILL_STEPS = (8, 4, 2, 1)


def digits_flat(n: Optional[int] = None, seed: int = 0) -> list:
    """The training digits flattened to (N, 64) in [-1, 1]; with ``n``, the first n of a fixed
    permutation drawn from ``seed`` (a data seed: the seed shift leaves it alone).

    Raises:
        ValueError: n not None or an int in [2, 1437]; seed not an int >= 0.
    """
    images = digits("train").images.flatten(1)
    if n is None:
        return [images]
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= len(images):
        raise ValueError(f"n must be None or an int in [2, {len(images)}], got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return [images[order[:n]]]


register_dataset("digits-flat", digits_flat)


def _mlp_entry(name: str, width: int, data: DataSpec, description: str) -> ZooEntry:
    return ZooEntry(
        name=name,
        description=description,
        family="diffusion",
        spec=DiffusionSpec(
            network={"type": "mlp", "data_dim": 64, "hidden": width, "num_layers": 2, "time_dim": 32},
            schedule="linear",
            num_timesteps=1000,
        ),
        data=data,
        sample_shape=(64,),
        train=TrainConfig(steps=MLP_STEPS[-1], batch_size=128, lr=2e-3, warmup_steps=50, ema_decay=0.995),
        train_threads=1,  # a small MLP, as ring-ddpm: one thread (immune to a busy second core)
        chapter=16,
    )


for _width in MLP_WIDTHS:
    register(
        _mlp_entry(
            f"digits-mlp-{_width}",
            _width,
            DataSpec.dataset("digits-flat"),
            f"MLP denoiser of width {_width} on the flattened 8×8 digits (linear schedule, "
            "T = 1000); chapter 16's scaling measurements",
        )
    )
for _n in SUBSET_SIZES:
    register(
        _mlp_entry(
            f"digits-mlp-{MEMORISATION_WIDTH}-n{_n}",
            MEMORISATION_WIDTH,
            DataSpec.dataset("digits-flat", n=_n, seed=0),
            f"digits-mlp-{MEMORISATION_WIDTH} trained on only {_n} training digits; chapter 16's "
            "memorisation measurements",
        )
    )
for _teacher, _steps in zip(("digits-ddpm",) + tuple(f"digits-pd-{s}" for s in DISTILL_STEPS), DISTILL_STEPS):
    register(
        ZooEntry(
            name=f"digits-pd-{_steps}",
            description=f"progressive distillation of digits-ddpm: {_steps} DDIM step"
            f"{'s' if _steps > 1 else ''} doing the work of {_teacher}'s {2 * _steps}; chapter 16",
            family="progressive-distillation",
            spec=DistillSpec(teacher=_teacher, student_steps=_steps),
            data=DataSpec.dataset("digits"),
            sample_shape=(1, 8, 8),
            train=TrainConfig(steps=400, batch_size=64, lr=2e-4, warmup_steps=20, ema_decay=0.99),
            train_threads=2,
            chapter=16,
            depends_on=(_teacher,),
        )
    )
