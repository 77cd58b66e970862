"""Progressive distillation (diffusion_lib.distill, chapter 16): the nested grids, the target
that makes one student step land on two teacher steps, and the loss, with an exact teacher."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_lib import GaussianDiffusion, distill, get_beta_schedule, samplers

DIFF = GaussianDiffusion(get_beta_schedule("linear", 1000))
S2 = 0.25  # data N(0, s² I)


def gaussian_eps(x, t):
    """The exact E[ε | x_t] of data N(0, s² I), one timestep per example (chapter 5)."""
    a = DIFF.alphas_cumprod[t.cpu()].to(x).reshape(-1, *(1,) * (x.ndim - 1))
    return (1 - a).sqrt() * x / (a * S2 + 1 - a)


def test_teacher_steps_nest_the_trailing_grids():
    for n in (1, 2, 4, 8, 16, 25):
        pairs = distill.teacher_steps(1000, n)
        student = samplers.timesteps(1000, n, "trailing").tolist()
        teacher = samplers.timesteps(1000, 2 * n, "trailing").tolist()
        assert [p.start for p in pairs] == student
        assert [p.middle for p in pairs] == teacher[1::2]
        assert [p.end for p in pairs] == student[1:] + [None]
    assert distill.teacher_steps(1000, 1) == [distill.StepPair(999, 499, None)]


def test_student_target_makes_one_ddim_step_land_on_the_teacher():
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64)
    x_end = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64)
    for a_t, a_end in ((0.01, 0.3), (0.5, 0.9), (0.3, 1.0), (4e-5, 0.02)):
        x_tilde, eps = distill.student_target(x_t, x_end, a_t, a_end)
        # the DDIM step (η = 0) of chapter 7 with this ε lands on x_end …
        x0_hat = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        step = math.sqrt(a_end) * x0_hat + math.sqrt(1 - a_end) * eps
        assert torch.allclose(step, x_end, atol=1e-9 / math.sqrt(a_t))
        assert torch.allclose(x0_hat, x_tilde, atol=1e-9 / math.sqrt(a_t))
    x_tilde, _ = distill.student_target(x_t, x_end, 0.3, 1.0)
    assert torch.equal(x_tilde, x_end)  # the last step returns x̂_0 itself


def test_an_exact_teacher_is_its_own_perfect_student_on_gaussian_data():
    # With the exact ε of Gaussian data, the ODE is linear, and the loss vanishes only for a
    # student that takes the two steps at once; the teacher itself is not that student.
    model = gaussian_eps
    pairs = distill.teacher_steps(1000, 4)
    x0 = 0.5 * torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss_teacher = distill.distillation_loss(
        model, model, DIFF, x0, pairs, torch.Generator().manual_seed(2), clip=False
    )
    assert loss_teacher > 1e-6  # two DDIM steps are not one

    def perfect(x, t):  # the ε̃ of eq. (trend-pd-target), computed per example
        out = torch.empty_like(x)
        for i, ti in enumerate(t.tolist()):
            pair = next(p for p in pairs if p.start == ti)
            a = DIFF.alphas_cumprod[ti].item()
            a_end = 1.0 if pair.end is None else DIFF.alphas_cumprod[pair.end].item()
            x_end = distill.teacher_two_steps(model, DIFF, x[i : i + 1], pair, clip=False)
            out[i] = distill.student_target(x[i : i + 1], x_end, a, a_end)[1][0]
        return out

    loss = distill.distillation_loss(
        perfect, model, DIFF, x0, pairs, torch.Generator().manual_seed(2), clip=False
    )
    assert loss < 1e-20


def test_teacher_two_steps_are_two_ddim_steps():
    model = gaussian_eps
    x_T = torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    by_two = x_T
    for pair in distill.teacher_steps(1000, 4):
        by_two = distill.teacher_two_steps(model, DIFF, by_two, pair, clip=True)
    ddim = samplers.ddim(model, DIFF, x_T.shape, steps=8, spacing="trailing", x_T=x_T,
                         dtype=torch.float64, progress=False)  # fmt: skip
    assert torch.allclose(by_two, ddim, atol=1e-10)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: distill.teacher_steps(1000, 0), "student_steps must be an int >= 1, got 0"),
        (lambda: distill.teacher_steps(1000, 501), "student_steps must be at most T / 2 = 500"),
        (
            lambda: distill.student_target(torch.zeros(1), torch.zeros(1), 0.5, 0.4),
            "alpha_bar_t must be below",
        ),
        (
            lambda: distill.student_target(torch.zeros(1), torch.zeros(1), 0.0, 0.4),
            "alpha_bar_t must be a number in (0, 1]",
        ),
        (
            lambda: distill.distillation_loss(None, None, DIFF, torch.zeros(2, 1), [], torch.Generator()),
            "pairs must hold at least one StepPair",
        ),
        (
            lambda: distill.teacher_two_steps(
                None, DIFF, torch.zeros(3, 1), [distill.StepPair(999, 499, None)]
            ),
            "pairs must be one StepPair or one per example (3), got 1",
        ),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
