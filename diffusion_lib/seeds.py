"""The book-wide training-seed shift: run every chapter with other trained models.

A trained model is one draw from a distribution over training runs: another training seed,
another processor or another torch build gives another model. A claim about a trained model
(“the GAN hits all 8 modes”, “DDIM with 50 steps is within … of DDPM”) must therefore hold for
other draws too. Setting the environment variable ``DIFFUSION_LIB_SEED_SHIFT`` to a whole number
``k >= 0`` moves every training seed and initialisation seed in the book by ``k * SEED_STRIDE``:
the zoo's models (their cache key changes with them, so nothing reuses the default model) and
the models a chapter trains itself, which take their seeds through :func:`shifted`.
``benchmarks/robustness.py`` executes the chapters under shifts 0, 1 and 2.

Sampling seeds and data seeds are not shifted: the shift is about the training run.
"""

from __future__ import annotations

import os

__all__ = ["ENV_SEED_SHIFT", "SEED_STRIDE", "seed_shift", "shifted"]

ENV_SEED_SHIFT = "DIFFUSION_LIB_SEED_SHIFT"
# Seeds a chapter uses itself are small (0, 1, 2, …); a stride of 1000 keeps the seeds of
# shift k, {1000 k, 1000 k + 1, …}, disjoint from those of every other shift.
SEED_STRIDE = 1000


def seed_shift() -> int:
    """The shift ``k`` from ``$DIFFUSION_LIB_SEED_SHIFT`` (0 when unset or empty).

    Raises:
        ValueError: the variable is set to something other than a whole number >= 0.
    """
    raw = os.environ.get(ENV_SEED_SHIFT, "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise ValueError(f"{ENV_SEED_SHIFT} must be a whole number >= 0, got {raw!r}")
    return int(raw)


def shifted(seed: int) -> int:
    """``seed + SEED_STRIDE * seed_shift()``: a training or initialisation seed under the shift.

    Seeds below ``SEED_STRIDE`` (all the book uses) never coincide across shifts.

    Raises:
        ValueError: ``seed`` is not an int >= 0, or the shift is invalid.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return seed + SEED_STRIDE * seed_shift()
