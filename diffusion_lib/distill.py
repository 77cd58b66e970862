"""Progressive distillation (Salimans & Ho, 2022): a student learns to take one deterministic
DDIM step where its teacher takes two, halving the number of sampling steps per round
(chapter 16).

The grids are the "trailing" spacing of chapter 7 (:func:`diffusion_lib.samplers.timesteps`):
for T = 1000 and N steps, indices round(T − kT/N) − 1, which for N and 2N nest (every other
entry of the 2N grid is the N grid), and the last step of either goes to ᾱ = 1 (x̂_0 itself).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from .diffusion import GaussianDiffusion
from .samplers import timesteps

__all__ = ["StepPair", "teacher_steps", "student_target", "teacher_two_steps", "distillation_loss"]

SPACING = "trailing"


class StepPair(NamedTuple):
    """One student step and the two teacher steps it replaces, as timestep indices; ``end`` is
    None when the step ends at ᾱ = 1 (the clean image)."""

    start: int
    middle: int
    end: int | None


def _check_steps(name: str, value, num_timesteps: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if 2 * value > num_timesteps:
        raise ValueError(
            f"{name} must be at most T / 2 = {num_timesteps // 2} (2 × {name} teacher steps), got {value}"
        )
    return value


def teacher_steps(num_timesteps: int, student_steps: int) -> list:
    """The student's N steps, each as a :class:`StepPair` of the teacher's 2N trailing steps.

    Derived in chapter 16, eq. (trend-pd-grid): entry 2k of the 2N grid, round(T − 2kT/(2N)) − 1,
    is entry k of the N grid, so the student's steps start where every other teacher step does.

    Raises:
        ValueError: student_steps not an int in [1, T / 2].
    """
    student_steps = _check_steps("student_steps", student_steps, num_timesteps)
    student = timesteps(num_timesteps, student_steps, SPACING).tolist()
    teacher = timesteps(num_timesteps, 2 * student_steps, SPACING).tolist()
    if teacher[::2] != student:
        raise ValueError(
            f"the trailing grids of {student_steps} and {2 * student_steps} steps do not nest for "
            f"T = {num_timesteps}: {student} vs {teacher[::2]}"
        )
    ends = teacher[2::2] + [None]
    return [StepPair(s, m, e) for s, m, e in zip(teacher[::2], teacher[1::2], ends)]


def student_target(x_t: torch.Tensor, x_end: torch.Tensor, alpha_bar_t: float, alpha_bar_end: float) -> tuple:
    """The (x̃, ε̃) with which one DDIM step (η = 0) from x_t lands exactly on x_end.

    Derived in chapter 16, eq. (trend-pd-target): Salimans & Ho (2022), Algorithm 2,
    x̃ = (x_end − (σ_end/σ_t) x_t) / (α_end − (σ_end/σ_t) α_t) with α = √ᾱ, σ = √(1 − ᾱ), and
    the matching noise ε̃ = (x_t − α_t x̃)/σ_t. At ᾱ_end = 1 the step returns x̂_0, and x̃ = x_end.

    Raises:
        ValueError: levels outside 0 < ᾱ_t < ᾱ_end <= 1 (the step must remove noise).
    """
    for name, value in (("alpha_bar_t", alpha_bar_t), ("alpha_bar_end", alpha_bar_end)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    if not alpha_bar_t < alpha_bar_end:
        raise ValueError(
            "alpha_bar_t must be below alpha_bar_end (a step towards less noise), "
            f"got {alpha_bar_t} >= {alpha_bar_end}"
        )
    a_t, s_t = math.sqrt(alpha_bar_t), math.sqrt(1.0 - alpha_bar_t)
    a_e, s_e = math.sqrt(alpha_bar_end), math.sqrt(1.0 - alpha_bar_end)
    x_tilde = (x_end - (s_e / s_t) * x_t) / (a_e - (s_e / s_t) * a_t)
    return x_tilde, (x_t - a_t * x_tilde) / s_t


def _levels(diffusion: GaussianDiffusion, indices: torch.Tensor) -> torch.Tensor:
    """ᾱ at each timestep index, float64; index −1 stands for ᾱ = 1 (the clean image)."""
    table = torch.cat([diffusion.alphas_cumprod.double(), torch.ones(1, dtype=torch.float64)])
    return table[indices.cpu()]


@torch.no_grad()
def teacher_two_steps(
    teacher: Callable,
    diffusion: GaussianDiffusion,
    x_t: torch.Tensor,
    pairs: StepPair | list,
    *,
    clip: bool = True,
) -> torch.Tensor:
    """The teacher's two deterministic DDIM steps start → middle → end from x_t.

    Derived in chapter 7, eq. (fast-ddim-step) with η = 0; with ``clip`` x̂_0 is clipped to
    [-1, 1] and ε̂ re-derived (chapter 7, eq. (fast-ddim-clip)), as :func:`samplers.ddim` does.
    ``pairs`` is one :class:`StepPair` for the whole batch, or one per example (a list as long
    as the batch), so that a batch mixing several steps costs two network calls.

    Raises:
        ValueError: a list of pairs that is not as long as the batch.
    """
    if isinstance(pairs, StepPair):
        pairs = [pairs] * x_t.shape[0]
    if len(pairs) != x_t.shape[0]:
        raise ValueError(f"pairs must be one StepPair or one per example ({x_t.shape[0]}), got {len(pairs)}")
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    x = x_t
    for first, second in ((0, 1), (1, 2)):
        t = torch.tensor([p[first] for p in pairs], dtype=torch.long)
        nxt = torch.tensor([-1 if p[second] is None else p[second] for p in pairs], dtype=torch.long)
        a = _levels(diffusion, t).to(x).reshape(shape)
        a_next = _levels(diffusion, nxt).to(x).reshape(shape)
        eps = teacher(x, t.to(x.device))
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return x


def distillation_loss(
    student: Callable,
    teacher: Callable,
    diffusion: GaussianDiffusion,
    x0: torch.Tensor,
    pairs: list,
    generator: torch.Generator,
    *,
    clip: bool = True,
) -> torch.Tensor:
    """One progressive-distillation loss: ‖ε_student(x_t, t) − ε̃‖², averaged over pixels.

    Derived in chapter 16, eq. (trend-pd-loss) (Salimans & Ho, 2022, Algorithm 2, written for
    an ε-network): each example draws one of the student's steps ``pairs``
    (:func:`teacher_steps`) and noise, forms x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, runs the teacher's
    two steps (:func:`teacher_two_steps`) and regresses the ε̃ of :func:`student_target`.
    Random draws come from ``generator`` (on its device; moved to x0's).

    Raises:
        ValueError: an empty ``pairs`` list.
    """
    if not pairs:
        raise ValueError("pairs must hold at least one StepPair, got none")
    n, device = x0.shape[0], generator.device
    which = torch.randint(len(pairs), (n,), generator=generator, device=device).cpu()
    noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype).to(x0.device)
    chosen = [pairs[k] for k in which.tolist()]
    shape = (-1,) + (1,) * (x0.ndim - 1)
    t = torch.tensor([p.start for p in chosen], dtype=torch.long)
    end = torch.tensor([-1 if p.end is None else p.end for p in chosen], dtype=torch.long)
    a_t = _levels(diffusion, t).to(x0).reshape(shape)
    a_end = _levels(diffusion, end).to(x0).reshape(shape)
    x_t = a_t.sqrt() * x0 + (1 - a_t).sqrt() * noise
    x_end = teacher_two_steps(teacher, diffusion, x_t, chosen, clip=clip)
    # eq. (trend-pd-target), per example
    s_ratio = ((1 - a_end) / (1 - a_t)).sqrt()
    x_tilde = (x_end - s_ratio * x_t) / (a_end.sqrt() - s_ratio * a_t.sqrt())
    eps_target = (x_t - a_t.sqrt() * x_tilde) / (1 - a_t).sqrt()
    return (student(x_t, t.to(x0.device)) - eps_target).pow(2).mean()
