"""Editing with a diffusion model (chapter 14): masks, RePaint's path, inpainting, SDEdit, DDRM.

Most checks use data from a Gaussian N(μ, Σ), whose exact ε-predictor (``gaussian_eps_model``)
stands in for a perfectly trained network: then the only errors are the method's own, and the
exact answers (``gaussian_conditional``, ``wiener``) say what the methods should find. The
exact answers are checked against closed forms and simulations first.
"""

import math

import numpy as np
import pytest
import torch

from diffusion_lib import GaussianDiffusion, editing, get_beta_schedule, samplers
from diffusion_lib.editing import (
    Measurement,
    average_pool_matrix,
    check_mask,
    ddrm,
    denoise_from,
    gaussian_conditional,
    gaussian_eps_model,
    hole_mask,
    inpaint,
    repaint_path,
    sdedit,
    wiener,
)

T = 100

# A 4-D Gaussian whose entries 0, 1 (the top row of a (1, 2, 2) image) are strongly correlated with
# entries 2, 3 (the bottom row): correlations 0.92 and 0.75 between entries 0, 1 and entry 2.
MEAN = torch.tensor([0.3, -0.2, 0.1, 0.0], dtype=torch.float64)
_L = torch.tensor(
    [[1.0, 0, 0, 0], [0.5, 0.8, 0, 0], [0.9, 0.3, 0.25, 0], [-0.6, 0.7, 0.1, 0.3]], dtype=torch.float64
)
COV = _L @ _L.T
# The top row known, far from its mean, so that conditioning on it moves the bottom row a lot.
KNOWN = torch.tensor([1.5, -1.0, 0.0, 0.0], dtype=torch.float64).reshape(1, 1, 2, 2)


@pytest.fixture(scope="module")
def cosine():
    return GaussianDiffusion(get_beta_schedule("cosine", T))


@pytest.fixture(scope="module")
def exact(cosine):
    return gaussian_eps_model(MEAN, COV, cosine)


def wiggly_eps(x, t):
    """A smooth nonlinear ε-predictor (a stand-in for a network) whose x̂_0 leaves [-1, 1]."""
    s = (t.to(x.dtype) / T).reshape(-1, *(1,) * (x.ndim - 1))
    return torch.tanh(2.0 * x) * (0.5 + s) + 0.3 * torch.sin(3.0 * x)


def mixing_model(diffusion):
    """A nonlinear ε-predictor like a trained one: for data near N(0, I), ε̂ ≈ √(1 − ᾱ) x_t, so
    x̂_0 stays of order 1 at every level; plus a wiggle in which every pixel's ε̂ depends on the
    image's mean, so that the filled-in pixels see the known ones (and x̂_0 leaves [-1, 1])."""

    def eps(x, t):
        a = diffusion.alphas_cumprod[t].to(x.dtype).reshape(-1, *(1,) * (x.ndim - 1))
        mean = x.flatten(1).mean(1).reshape(-1, *(1,) * (x.ndim - 1))
        return (1 - a).sqrt() * x + a.sqrt() * wiggly_eps(x + mean, t)

    return eps


class Recorder:
    """Wraps a model and records the timestep of every call."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, x, t):
        assert bool((t == t[0]).all())
        self.calls.append(int(t[0]))
        return self.model(x, t)


# ----------------------------------------------------------------------------- hole_mask
def zeros_at(mask: torch.Tensor) -> list:
    """The (row, column) of every 0 of a (1, H, W) mask."""
    return [tuple(p) for p in (mask[0] == 0).nonzero().tolist()]


def block(rows, cols) -> list:
    return [(r, c) for r in rows for c in cols]


@pytest.mark.parametrize(
    "name, shape, hole",
    [
        ("top", (1, 8, 8), block(range(0, 4), range(8))),
        ("bottom", (1, 8, 8), block(range(4, 8), range(8))),
        ("left", (1, 8, 8), block(range(8), range(0, 4))),
        ("right", (1, 8, 8), block(range(8), range(4, 8))),
        ("centre", (1, 8, 8), block(range(2, 6), range(2, 6))),
        # H = 5, W = 7: a half is the larger half (3 rows, 4 columns); the centre is 2 × 3.
        ("top", (1, 5, 7), block(range(0, 3), range(7))),
        ("bottom", (1, 5, 7), block(range(2, 5), range(7))),
        ("left", (1, 5, 7), block(range(5), range(0, 4))),
        ("right", (1, 5, 7), block(range(5), range(3, 7))),
        ("centre", (1, 5, 7), block(range(1, 3), range(2, 5))),
        ("centre", (1, 2, 2), [(0, 0)]),  # (H − h) // 2 = 0: the top-left of the four
    ],
)
def test_hole_mask_by_hand(name, shape, hole):
    mask = hole_mask(name, shape)
    assert mask.shape == shape and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert zeros_at(mask) == hole


def test_hole_mask_bottom_keeps_the_top_half_in_every_channel():
    mask = hole_mask("bottom", (3, 4, 6))
    assert mask.shape == (3, 4, 6)
    assert bool((mask[:, :2] == 1).all()) and bool((mask[:, 2:] == 0).all())
    assert torch.equal(hole_mask("top", (2, 6, 4)), 1 - hole_mask("bottom", (2, 6, 4)))
    assert torch.equal(hole_mask("left", (2, 4, 6)), 1 - hole_mask("right", (2, 4, 6)))


@pytest.mark.parametrize(
    "name, shape, message",
    [
        ("middle", (1, 8, 8), "mask must be one of top, bottom, left, right, centre, got 'middle'"),
        ("bottom", (8, 8), r"shape must be \(C, H, W\)"),
        ("bottom", (1, 1, 8, 8), r"shape must be \(C, H, W\)"),
        ("bottom", (0, 8, 8), r"shape must be \(C, H, W\)"),
        ("bottom", (1, 8.0, 8), r"shape must be \(C, H, W\)"),
        ("bottom", (True, 8, 8), r"shape must be \(C, H, W\)"),
        ("bottom", (1, 1, 8), "H, W >= 2"),
        ("left", (1, 8, 1), "H, W >= 2"),
    ],
)
def test_hole_mask_bad_input(name, shape, message):
    with pytest.raises(ValueError, match=message):
        hole_mask(name, shape)


# ----------------------------------------------------------------------------- check_mask
@pytest.mark.parametrize(
    "known_shape, mask_shape",
    [
        ((3, 3, 4, 4), (3, 4, 4)),  # one mask for all
        ((3, 3, 4, 4), (1, 3, 4, 4)),
        ((3, 3, 4, 4), (3, 3, 4, 4)),  # one per example
        ((3, 3, 4, 4), (1, 4, 4)),  # one channel for the three
        ((3, 3, 4, 4), (1, 1, 4, 4)),
        ((3, 3, 4, 4), (3, 1, 4, 4)),
        ((2, 1, 4, 4), (1, 4, 4)),
        ((5, 4), (4,)),  # points (B, D)
        ((5, 4), (1, 4)),
        ((5, 4), (5, 4)),
    ],
)
def test_check_mask_accepts_every_shape_that_broadcasts(known_shape, mask_shape):
    known = torch.zeros(known_shape, dtype=torch.float64)
    mask = torch.ones(mask_shape, dtype=torch.bool)
    mask.view(-1)[0] = False
    checked = check_mask(mask, known)
    assert checked.dtype == torch.float64 and checked.device == known.device
    assert (checked * known).shape == known.shape
    assert checked.flatten()[0] == 0 and bool((checked.flatten()[1:] == 1).all())


@pytest.mark.parametrize(
    "known_shape, mask, message",
    [
        ((3, 3, 4, 4), torch.zeros(2, 3, 4, 4), r"mask must have shape \(3, 4, 4\)"),  # batch 2 of 3
        ((3, 3, 4, 4), torch.zeros(2, 4, 4), r"mask must have shape"),  # two channels of three
        ((3, 3, 4, 4), torch.zeros(3, 4, 5), r"mask must have shape"),
        ((3, 3, 4, 4), torch.zeros(4, 4), r"mask must have shape"),
        ((3, 3, 4, 4), torch.zeros(1, 1, 1, 4, 4), r"mask must have shape"),
        ((5, 4), torch.zeros(1), r"mask must have shape \(4,\)"),  # no channel rule for points
        ((5, 4), torch.zeros(3, 4), r"mask must have shape"),
        ((1, 1, 2, 2), torch.tensor([[[0.0, 0.5], [1.0, 1.0]]]), "only 0 .fill in. and 1 .known."),
        ((1, 1, 2, 2), torch.tensor([[[0.0, -1.0], [1.0, 1.0]]]), "only 0 .fill in. and 1 .known."),
        ((1, 1, 2, 2), torch.tensor([[[0.0, math.nan], [1.0, 1.0]]]), "only 0 .fill in. and 1 .known."),
        ((1, 1, 2, 2), torch.ones(1, 2, 2), "mask must leave something to fill in"),
        ((2, 4), torch.ones(2, 4), "mask must leave something to fill in"),
        ((1, 1, 2, 2), np.zeros((1, 2, 2)), "mask must be a tensor of 0s and 1s, got ndarray"),
        ((1, 1, 2, 2), [[[0, 1], [1, 1]]], "mask must be a tensor of 0s and 1s, got list"),
    ],
)
def test_check_mask_bad_input(known_shape, mask, message):
    with pytest.raises(ValueError, match=message):
        check_mask(mask, torch.zeros(known_shape))


# ----------------------------------------------------------------------------- repaint_path
def down_steps(path) -> int:
    return sum(b > a for a, b in zip(path, path[1:]))


def test_repaint_path_without_resampling_goes_straight_down():
    for steps in (1, 2, 7, 50):
        for jump in (1, 3, 100):
            assert repaint_path(steps, 1, jump) == list(range(steps + 1))


def test_repaint_path_by_hand():
    # Down one level at a time; at a position n >= j, n < steps, with steps - 1 - n a multiple of
    # j (as in Lugmayr et al.'s code: the stretch just before x_0 is resampled, the first one
    # from pure noise is not), back up j levels, until the stretch has been run r times.
    assert repaint_path(4, 2, 2) == [0, 1, 2, 3, 1, 2, 3, 4]
    assert repaint_path(6, 3, 2) == [0, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 5, 3, 4, 5, 3, 4, 5, 6]
    assert repaint_path(3, 2, 1) == [0, 1, 0, 1, 2, 1, 2, 3]
    assert repaint_path(5, 3, 5) == [0, 1, 2, 3, 4, 5], "no stretch below the first"
    assert repaint_path(2, 4, 1) == [0, 1, 0, 1, 0, 1, 0, 1, 2]


@pytest.mark.parametrize(
    "steps, resample, jump", [(1, 5, 1), (10, 3, 2), (25, 10, 10), (250, 10, 10), (50, 20, 2)]
)
def test_repaint_path_runs_each_stretch_r_times(steps, resample, jump):
    path = repaint_path(steps, resample, jump)
    assert path[0] == 0 and path[-1] == steps and min(path) == 0 and max(path) == steps
    moves = [b - a for a, b in zip(path, path[1:])]
    assert set(moves) <= {1, -jump}, "down one level, or back up a whole jump"
    jumps_back = (steps - 1) // jump  # turning points steps - 1, steps - 1 - j, ... >= j
    assert moves.count(-jump) == jumps_back * (resample - 1)
    assert down_steps(path) == steps + jumps_back * (resample - 1) * jump
    # "about r × steps": short of it by at most one stretch's (r − 1) j resampled steps
    assert resample * steps - (resample - 1) * jump <= down_steps(path) <= resample * steps
    if (steps, resample, jump) == (250, 10, 10):
        assert down_steps(path) == 2410  # Lugmayr et al.'s settings: 24 stretches resampled


@pytest.mark.parametrize(
    "args, message",
    [
        ((0, 1, 1), "steps must be an int >= 1, got 0"),
        ((5, 0, 1), "resample must be an int >= 1, got 0"),
        ((5, 2, 0), "jump must be an int >= 1, got 0"),
        ((5.0, 2, 1), "steps must be an int >= 1, got 5.0"),
        ((5, True, 1), "resample must be an int >= 1, got True"),
    ],
)
def test_repaint_path_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        repaint_path(*args)


# ----------------------------------------------------------------------------- the exact ε-predictor
def test_gaussian_eps_model_of_a_1d_gaussian_by_hand(cosine):
    m, s = 0.7, 1.3
    model = gaussian_eps_model(
        torch.tensor([m], dtype=torch.float64), torch.tensor([[s**2]], dtype=torch.float64), cosine
    )
    x_t = torch.linspace(-3, 3, 13, dtype=torch.float64).reshape(-1, 1)
    for t in (0, 10, 50, 99):
        a = float(cosine.alphas_cumprod[t])
        by_hand = math.sqrt(1 - a) * (x_t - math.sqrt(a) * m) / (a * s**2 + 1 - a)
        out = model(x_t, torch.full((13,), t))
        assert out.dtype == torch.float64 and out.shape == x_t.shape
        assert torch.allclose(out, by_hand, rtol=1e-12, atol=1e-12)
    assert torch.allclose(model(x_t, 10), model(x_t, torch.full((13,), 10))), "an int t as well"


def test_gaussian_eps_model_is_affine_and_reads_any_item_shape(cosine, exact):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    t = torch.full((5,), 40)
    assert torch.allclose(exact(x + y, t) + exact(0 * x, t), exact(x, t) + exact(y, t), atol=1e-12)
    a = float(cosine.alphas_cumprod[40])
    at_mean = math.sqrt(a) * MEAN.expand(5, 4)
    assert torch.allclose(exact(at_mean, t), torch.zeros(5, 4, dtype=torch.float64), atol=1e-12)
    images = exact(x.reshape(5, 1, 2, 2), t)
    assert images.shape == (5, 1, 2, 2) and torch.allclose(images.flatten(1), exact(x, t))
    assert exact(x.float(), t).dtype == torch.float32


def test_gaussian_eps_model_is_the_regression_of_eps_on_x_t(cosine):
    """Simulated (x_0, ε): the least-squares fit of ε on (x_t, 1) is E[ε | x_t], linear for Gaussians."""
    mean = torch.tensor([0.5, -1.0, 0.2], dtype=torch.float64)
    root = torch.tensor([[1.0, 0, 0], [0.8, 0.6, 0], [-0.5, 0.4, 0.3]], dtype=torch.float64)
    cov = root @ root.T
    model = gaussian_eps_model(mean, cov, cosine)
    g = torch.Generator().manual_seed(1)
    n = 200_000
    x0 = mean + torch.randn(n, 3, generator=g, dtype=torch.float64) @ root.T
    eps = torch.randn(n, 3, generator=g, dtype=torch.float64)
    for t in (20, 60):
        a = float(cosine.alphas_cumprod[t])
        x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
        design = torch.cat([x_t, torch.ones(n, 1, dtype=torch.float64)], 1)
        fit = torch.linalg.lstsq(design, eps).solution  # (4, 3): gain transposed, then intercept
        ts = torch.full((4,), t)
        probe = torch.cat([torch.eye(3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64)])
        out = model(probe, ts)
        gain, intercept = (out[:3] - out[3]).T, out[3]
        # standard errors of the fitted coefficients are about 1/√n ≈ 0.002 (measured error < 0.006)
        assert torch.allclose(fit[:3].T, gain, atol=0.015), (fit[:3].T, gain)
        assert torch.allclose(fit[3], intercept, atol=0.015)
        residual = eps - model(x_t, torch.full((n,), t))
        assert float((residual.T @ x_t / n).abs().max()) < 0.01, "the error is uncorrelated with x_t"


@pytest.mark.parametrize(
    "mean, cov, message",
    [
        (torch.zeros(2, 1), torch.eye(2), r"mean must be a 1-D tensor"),
        ([0.0, 0.0], torch.eye(2), r"mean must be a 1-D tensor"),
        (torch.zeros(2), torch.eye(3), r"cov must be a \(2, 2\) tensor"),
        (torch.zeros(2), np.eye(2), r"cov must be a \(2, 2\) tensor"),
        (torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]), "symmetric positive definite"),
        (torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]), "symmetric positive definite"),
        (torch.zeros(2), torch.zeros(2, 2), "symmetric positive definite"),
    ],
)
def test_gaussian_helpers_bad_input(cosine, mean, cov, message):
    with pytest.raises(ValueError, match=message):
        gaussian_eps_model(mean, cov, cosine)
    with pytest.raises(ValueError, match=message):
        gaussian_conditional(mean, cov, torch.zeros(2), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=message):
        wiener(mean, cov, Measurement.of(torch.eye(2)), torch.zeros(1, 2))


# ----------------------------------------------------------------------------- gaussian_conditional
def test_gaussian_conditional_in_2d_by_hand():
    mu_k, mu_u, s_k, s_u, rho = 0.4, -0.3, 1.5, 0.7, 0.8
    cov = torch.tensor([[s_k**2, rho * s_k * s_u], [rho * s_k * s_u, s_u**2]], dtype=torch.float64)
    x_k, mean = 2.0, torch.tensor([mu_k, mu_u], dtype=torch.float64)
    m, C = gaussian_conditional(mean, cov, torch.tensor([x_k, 99.0]), torch.tensor([1, 0]))
    assert m.dtype == C.dtype == torch.float64 and m.shape == (1,) and C.shape == (1, 1)
    assert float(m) == pytest.approx(mu_u + rho * s_u / s_k * (x_k - mu_k), rel=1e-12)
    assert float(C) == pytest.approx(s_u**2 * (1 - rho**2), rel=1e-12)
    # the other way round: the second entry known
    m, C = gaussian_conditional(mean, cov, torch.tensor([99.0, 1.0]), torch.tensor([0, 1]))
    assert float(m) == pytest.approx(mu_k + rho * s_k / s_u * (1.0 - mu_u), rel=1e-12)
    assert float(C) == pytest.approx(s_k**2 * (1 - rho**2), rel=1e-12)


def test_gaussian_conditional_by_the_precision_matrix():
    """Another route: with Λ = Σ⁻¹, C = Λ_uu⁻¹ and m = μ_u − Λ_uu⁻¹ Λ_uk (x_k − μ_k)."""
    rng = np.random.default_rng(2)
    D = 6
    root = rng.normal(size=(D, D))
    cov = root @ root.T + 0.5 * np.eye(D)
    mean = rng.normal(size=D)
    known = rng.normal(size=(2, 3))  # any shape holding D numbers
    mask = np.array([1, 0, 0, 1, 1, 0])
    k, u = mask == 1, mask == 0
    precision = np.linalg.inv(cov)
    C = np.linalg.inv(precision[np.ix_(u, u)])
    m = mean[u] - C @ precision[np.ix_(u, k)] @ (known.ravel()[k] - mean[k])
    got_m, got_C = gaussian_conditional(
        torch.from_numpy(mean),
        torch.from_numpy(cov),
        torch.from_numpy(known),
        torch.from_numpy(mask).reshape(1, 2, 3),
    )
    assert np.allclose(got_m.numpy(), m, atol=1e-10) and np.allclose(got_C.numpy(), C, atol=1e-10)


def test_gaussian_conditional_bad_input():
    with pytest.raises(ValueError, match="known and mask must hold D = 4 numbers each, got 4 and 3"):
        gaussian_conditional(MEAN, COV, torch.zeros(4), torch.tensor([1, 0, 1]))
    with pytest.raises(ValueError, match="known and mask must hold D = 4 numbers each, got 5 and 4"):
        gaussian_conditional(MEAN, COV, torch.zeros(5), torch.tensor([1, 0, 1, 0]))


# ----------------------------------------------------------------------------- Measurement
def test_measurement_svd_reconstructs_a():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(3, 6, generator=g)
    meas = Measurement.of(A, 0.25)
    assert meas.A.dtype == torch.float64 and torch.equal(meas.A, A.double()) and meas.sigma_y == 0.25
    assert meas.U.shape == (3, 3) and meas.s.shape == (6,) and meas.V.shape == (6, 6)
    assert torch.allclose(meas.U @ torch.diag(meas.s[:3]) @ meas.V[:, :3].T, A.double(), atol=1e-12)
    eye = torch.eye(6, dtype=torch.float64)
    assert torch.allclose(meas.V.T @ meas.V, eye, atol=1e-12)
    assert torch.allclose(meas.U.T @ meas.U, eye[:3, :3], atol=1e-12)
    assert bool((meas.s[:3] > 0).all()) and bool((meas.s[:-1] >= meas.s[1:]).all())
    assert bool((meas.s[3:] == 0).all()), "zero beyond the rank: the null space"
    # A deficient rank: the third row is the sum of the first two.
    A = A.double()
    B = torch.cat([A[:2], A[:1] + A[1:2]])
    deficient = Measurement.of(B)
    assert bool((deficient.s[:2] > 0).all()) and bool((deficient.s[2:] == 0).all())
    assert torch.allclose(deficient.U @ torch.diag(deficient.s[:3]) @ deficient.V[:, :3].T, B, atol=1e-12)


def test_measurement_adds_noise_only_if_sigma_y_is_positive():
    g = torch.Generator().manual_seed(4)
    A = torch.randn(3, 4, generator=g, dtype=torch.float64)
    x = torch.randn(4000, 1, 2, 2, generator=g)
    exact_y = x.flatten(1).double() @ A.T
    clean = Measurement.of(A)
    generator = torch.Generator().manual_seed(5)
    state = generator.get_state()
    y = clean(x, generator)
    assert y.shape == (4000, 3) and y.dtype == torch.float32
    assert torch.equal(y, exact_y.float()) and torch.equal(generator.get_state(), state), "no draw"
    noisy = Measurement.of(A, 0.5)
    y1 = noisy(x, torch.Generator().manual_seed(6))
    y2 = noisy(x, torch.Generator().manual_seed(6))
    assert torch.equal(y1, y2)
    noise = y1.double() - exact_y
    # 12000 draws of N(0, 0.25): the standard error of the std is 0.5/√24000 ≈ 0.003
    assert float(noise.std()) == pytest.approx(0.5, abs=0.015) and abs(float(noise.mean())) < 0.02
    assert noisy(x.double()).dtype == torch.float64


@pytest.mark.parametrize(
    "A, sigma_y, message",
    [
        (torch.ones(4), 0.0, r"A must be a floating-point matrix \(M, D\) with M <= D, got shape \(4,\)"),
        (torch.ones(4, 3), 0.0, r"with M <= D, got shape \(4, 3\)"),
        (torch.ones(2, 3, dtype=torch.long), 0.0, "A must be a floating-point matrix"),
        (np.ones((2, 3)), 0.0, "A must be a floating-point matrix .* got ndarray"),
        (torch.ones(2, 3), -0.1, r"sigma_y must be a number in \[0, inf\], got -0.1"),
        (torch.ones(2, 3), math.nan, "sigma_y must be a number"),
        (torch.ones(2, 3), "0.1", "sigma_y must be a number"),
        (torch.ones(2, 3), True, "sigma_y must be a number"),
        (torch.ones(2, 3), math.inf, "sigma_y must be a finite number >= 0, got inf"),
    ],
)
def test_measurement_bad_input(A, sigma_y, message):
    with pytest.raises(ValueError, match=message):
        Measurement.of(A, sigma_y)


def test_measurement_rank_of_a_float32_matrix():
    # Rank 2 in exact arithmetic; built in float32, its third singular value is rounding (~1e-8),
    # which the tolerance max(M, D) * eps(float32) * s_max calls zero, as numpy's matrix_rank does.
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.3, 0.1, 0.7, 0.9]])
    A = torch.stack([a[0], a[1], 0.1 * a[0] + 0.7 * a[1]])
    s = Measurement.of(A).s
    assert int((s > 0).sum()) == 2 == np.linalg.matrix_rank(A.numpy())
    assert int((Measurement.of(A.double() + torch.eye(3, 4, dtype=torch.float64)).s > 0).sum()) == 3


# ----------------------------------------------------------------------------- average_pool_matrix
@pytest.mark.parametrize("channels, size, factor", [(1, 4, 2), (3, 4, 2), (3, 6, 3), (2, 6, 2), (1, 8, 4)])
def test_average_pool_matrix_is_avg_pool2d(channels, size, factor):
    A = average_pool_matrix(channels, size, factor)
    small = size // factor
    assert A.shape == (channels * small**2, channels * size**2) and A.dtype == torch.float64
    x = torch.randn(5, channels, size, size, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    pooled = torch.nn.functional.avg_pool2d(x, factor).flatten(1)
    assert torch.allclose(x.flatten(1) @ A.T, pooled, atol=1e-12)
    # orthogonal rows of norm 1/f: A Aᵀ = I / f², the singular values of ×f super-resolution
    assert torch.allclose(A @ A.T, torch.eye(len(A), dtype=torch.float64) / factor**2, atol=1e-12)
    assert torch.allclose(
        Measurement.of(A).s[: len(A)], torch.full((len(A),), 1.0 / factor, dtype=torch.float64)
    )


def test_average_pool_matrix_by_hand():
    A = average_pool_matrix(1, 4, 2)
    first = torch.zeros(16, dtype=torch.float64)
    first[[0, 1, 4, 5]] = 0.25  # the top-left 2 × 2 block of the 4 × 4 image
    assert torch.equal(A[0], first)
    last = torch.zeros(16, dtype=torch.float64)
    last[[10, 11, 14, 15]] = 0.25
    assert torch.equal(A[3], last)
    assert torch.equal(average_pool_matrix(2, 3, 1), torch.eye(18, dtype=torch.float64))


@pytest.mark.parametrize(
    "args, message",
    [
        ((1, 4, 3), "factor must divide size 4, got 3"),
        ((0, 4, 2), "channels must be an int >= 1, got 0"),
        ((1, 0, 1), "size must be an int >= 1, got 0"),
        ((1, 4, 0), "factor must be an int >= 1, got 0"),
        ((1, 4.0, 2), "size must be an int >= 1, got 4.0"),
        ((True, 4, 2), "channels must be an int >= 1, got True"),
    ],
)
def test_average_pool_matrix_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        average_pool_matrix(*args)


# ----------------------------------------------------------------------------- wiener
def test_wiener_with_a_perfect_identity_measurement_returns_y():
    y = torch.randn(3, 4, generator=torch.Generator().manual_seed(8))
    est = wiener(MEAN, COV, Measurement.of(torch.eye(4)), y)
    assert est.dtype == torch.float64 and torch.allclose(est, y.double(), atol=1e-12)


@pytest.mark.parametrize(
    "A, sigma_y",
    [
        (average_pool_matrix(1, 2, 2), 0.1),
        (average_pool_matrix(1, 2, 2), 0.0),
        (torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]), 0.0),
        (torch.eye(4), 0.5),
        (torch.tensor([[0.3, -1.0, 2.0, 0.5], [1.0, 1.0, 0.0, -0.4]]), 0.3),
    ],
)
def test_wiener_is_the_conditional_mean_of_x_given_y(A, sigma_y):
    """x ~ N(μ, Σ), y = A x + σ_y n: (x, y) is Gaussian, and E[x | y] is its conditional."""
    A = A.double()
    M = len(A)
    joint_mean = torch.cat([MEAN, A @ MEAN])
    joint_cov = torch.cat(
        [torch.cat([COV, COV @ A.T], 1), torch.cat([A @ COV, A @ COV @ A.T + sigma_y**2 * torch.eye(M)], 1)]
    )
    if sigma_y == 0:  # y determines A x: keep the joint covariance invertible with a whisper of noise
        joint_cov[4:, 4:] += 1e-9 * torch.eye(M, dtype=torch.float64)
    y = torch.randn(3, M, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    mask = torch.cat([torch.zeros(4), torch.ones(M)])
    est = wiener(MEAN, COV, Measurement.of(A, sigma_y), y)
    assert est.shape == (3, 4)
    for b in range(3):
        m, _ = gaussian_conditional(joint_mean, joint_cov, torch.cat([torch.zeros(4), y[b]]), mask)
        assert torch.allclose(est[b], m, atol=1e-6), (est[b], m)
    if sigma_y == 0:
        assert torch.allclose(est @ A.T, y, atol=1e-10), "a noiseless measurement is met exactly"


def test_wiener_of_a_very_noisy_measurement_is_the_prior_mean():
    est = wiener(MEAN, COV, Measurement.of(torch.eye(4), 1e6), torch.ones(2, 4))
    assert torch.allclose(est, MEAN.expand(2, 4), atol=1e-9)


# ----------------------------------------------------------------------------- inpaint
def test_inpaint_keeps_the_known_pixels_exactly(cosine, exact):
    g = torch.Generator().manual_seed(10)
    images = torch.rand(3, 1, 2, 2, generator=g) * 2 - 1
    per_example = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 1]]).reshape(3, 1, 2, 2)
    for method, r in (("replacement", 1), ("repaint", 3)):
        for mask in (hole_mask("left", (1, 2, 2)), per_example):
            out = inpaint(
                exact, cosine, images, mask, method=method, resample=r, jump=2, steps=10, generator=g
            )
            known = mask.expand_as(out).bool()
            assert out.shape == images.shape and out.dtype == images.dtype
            assert torch.equal(out[known], images[known]), "exactly, not just closely"
            assert bool((out[~known] != images[~known]).all())
    # points (B, D) as well, with one mask for all
    points = torch.randn(5, 4, generator=g, dtype=torch.float64)
    out = inpaint(
        exact,
        cosine,
        points,
        torch.tensor([0, 1, 1, 0]),
        steps=20,
        resample=2,
        jump=2,
        generator=g,
        clip_denoised=False,
    )
    assert out.dtype == torch.float64 and torch.equal(out[:, 1:3], points[:, 1:3])


def test_inpaint_calls_the_model_along_repaints_path(cosine):
    model = Recorder(wiggly_eps)
    steps, r, j = 10, 3, 2
    inpaint(
        model,
        cosine,
        torch.zeros(2, 1, 2, 2),
        hole_mask("bottom", (1, 2, 2)),
        resample=r,
        jump=j,
        steps=steps,
        generator=torch.Generator().manual_seed(0),
    )
    ts = samplers.timesteps(T, steps, "trailing").tolist()
    path = repaint_path(steps, r, j)
    assert model.calls == [ts[a] for a, b in zip(path, path[1:]) if b > a]
    assert len(model.calls) == down_steps(path) == 10 + 4 * 2 * 2
    model.calls.clear()
    inpaint(
        model,
        cosine,
        torch.zeros(2, 4),
        torch.tensor([1, 0, 0, 0]),
        method="replacement",
        generator=torch.Generator().manual_seed(0),
    )
    assert model.calls == list(range(T - 1, -1, -1)), "by default every timestep, once"
    model.calls.clear()
    inpaint(
        model, cosine, torch.zeros(2, 4), torch.tensor([1, 0, 0, 0]), steps=30, generator=torch.Generator()
    )
    assert len(model.calls) == 30 + 2 * 9 * 10, "RePaint's defaults: r = 10, j = 10"


def inpaint_with_unit_draws(model, diffusion, known, mask, steps, resample, jump, clip):
    """Chapter 14's inpainting step by step, from the docstring, with every N(0, 1) draw replaced by
    1: start from noise with the known pixels noised to the first level; down: a DDPM posterior
    step (DDIM, η = 1) of the whole image, then the known pixels noised afresh to the new level
    (exactly ``known`` at the end); up: the forward process over the jump."""
    ts = samplers.timesteps(diffusion.num_timesteps, steps, "trailing").tolist()
    levels = [float(diffusion.alphas_cumprod[t]) for t in ts] + [1.0]
    one = torch.ones_like(known)

    def noised(level):
        return math.sqrt(level) * known + math.sqrt(1 - level) * one

    x = mask * noised(levels[0]) + (1 - mask) * one
    path = repaint_path(steps, resample, jump)
    for here, there in zip(path, path[1:]):
        a, b = levels[here], levels[there]
        if there < here:
            x = math.sqrt(b / a) * x + math.sqrt(1 - b / a) * one
            continue
        eps = model(x, torch.full((len(x),), ts[here]))
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        sigma = math.sqrt((1 - b) / (1 - a) * (1 - a / b))  # the DDPM posterior's, √β̃
        unknown = math.sqrt(b) * x0 + math.sqrt(1 - b - sigma**2) * eps + sigma * one
        x = mask * (known if there == steps else noised(b)) + (1 - mask) * unknown
    return x


@pytest.mark.parametrize(
    "method, resample, clip", [("replacement", 1, False), ("repaint", 3, False), ("repaint", 2, True)]
)
def test_inpaint_step_by_step_with_unit_draws(cosine, monkeypatch, method, resample, clip):
    known = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(31), dtype=torch.float64) * 2 - 1
    mask = hole_mask("centre", (1, 3, 3)) * hole_mask("right", (1, 3, 3))
    for module in (editing, samplers):  # samplers.ddim_step draws the reverse step's noise
        monkeypatch.setattr(module, "randn_like_on", lambda like, generator: torch.ones_like(like))
    model = mixing_model(cosine)
    ours = inpaint(
        model, cosine, known, mask, method=method, resample=resample, jump=2, steps=7, clip_denoised=clip
    )
    theirs = inpaint_with_unit_draws(model, cosine, known, mask.double(), 7, resample, 2, clip)
    assert float(theirs.abs().max()) < 5, "of order 1: a tolerance in absolute terms means something"
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12), (ours - theirs).abs().max()


def test_repaint_with_one_pass_is_the_replacement_method(cosine, exact):
    known = KNOWN.float().expand(6, 1, 2, 2)
    mask = hole_mask("bottom", (1, 2, 2))
    kwargs = {"steps": 30, "clip_denoised": False}
    a = inpaint(
        exact,
        cosine,
        known,
        mask,
        method="repaint",
        resample=1,
        jump=3,
        generator=torch.Generator().manual_seed(1),
        **kwargs,
    )
    b = inpaint(
        exact, cosine, known, mask, method="replacement", generator=torch.Generator().manual_seed(1), **kwargs
    )
    assert torch.equal(a, b)


def test_repaint_finds_the_gaussian_conditional_and_replacement_does_not(cosine, exact):
    """The top row known, the bottom row filled in, 4000 times: the mean and covariance of the
    filled-in rows against the exact conditional N(m, C).

    Measured (5 seeds): the replacement method misses m by 0.77-0.79 in the second entry (its
    bias: the unknown pixels see the known ones only through the network, not enough) and C by
    0.15; RePaint with 50 levels, r = 20, j = 2 misses m by 0.073-0.078 (its own bias, which
    shrinks as r grows: 0.18-0.20 with r = 5) and C by at most 0.011. The Monte Carlo standard
    errors are 0.005 for a mean and 0.002-0.003 for a covariance entry, so the tolerances (0.12
    for the mean, 0.025 for C) leave room for other seeds and platforms, while an error of the
    method (the replacement method's, or a wrong step) is many times larger.
    """
    n = 4000
    known = KNOWN.expand(n, 1, 2, 2)
    mask = hole_mask("bottom", (1, 2, 2))
    m, C = gaussian_conditional(MEAN, COV, KNOWN, mask)
    assert torch.allclose(m, torch.tensor([0.655, -1.945], dtype=torch.float64), atol=1e-12)

    def filled(method, **kwargs):
        out = inpaint(
            exact,
            cosine,
            known,
            mask,
            method=method,
            steps=50,
            generator=torch.Generator().manual_seed(0),
            clip_denoised=False,
            **kwargs,
        )
        assert torch.equal(out[:, :, 0], known[:, :, 0])
        return out[:, 0, 1]  # the bottom row, (n, 2)

    repaint = filled("repaint", resample=20, jump=2)
    replacement = filled("replacement")
    repaint_error = (repaint.mean(0) - m).abs()
    replacement_error = (replacement.mean(0) - m).abs()
    assert float(repaint_error.max()) < 0.12, repaint_error
    assert float(replacement_error.max()) > 0.6, replacement_error
    assert float(repaint_error.max()) < 0.2 * float(replacement_error.max())
    assert float((torch.cov(repaint.T) - C).abs().max()) < 0.025, torch.cov(repaint.T)
    assert float((torch.cov(replacement.T) - C).abs().max()) > 0.1, (
        "the replacement method's spread is off too"
    )
    # fewer resamplings, more bias: r = 5 lies between (measured 0.18-0.20)
    fewer = (filled("repaint", resample=5, jump=2).mean(0) - m).abs().max()
    assert float(repaint_error.max()) < float(fewer) < float(replacement_error.max())


def test_inpaint_reads_the_model_by_its_prediction_type(cosine, exact):
    def x0_model(x, t):
        a = cosine.alphas_cumprod[t].to(x.dtype).reshape(-1, *(1,) * (x.ndim - 1))
        return (x - (1 - a).sqrt() * exact(x, t)) / a.sqrt()

    known, mask = KNOWN.expand(8, 1, 2, 2), hole_mask("right", (1, 2, 2))
    kwargs = {"steps": 20, "resample": 3, "jump": 2, "clip_denoised": False}
    a = inpaint(exact, cosine, known, mask, generator=torch.Generator().manual_seed(2), **kwargs)
    b = inpaint(
        x0_model,
        cosine,
        known,
        mask,
        generator=torch.Generator().manual_seed(2),
        prediction_type="x0",
        **kwargs,
    )
    assert torch.allclose(a, b, atol=1e-8)


def test_inpaint_is_deterministic_given_the_generator(cosine):
    images = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(3)) * 2 - 1
    mask = hole_mask("centre", (1, 4, 4))

    def run(seed):
        return inpaint(
            wiggly_eps,
            cosine,
            images,
            mask,
            steps=10,
            resample=2,
            jump=2,
            generator=torch.Generator().manual_seed(seed),
        )

    assert torch.equal(run(4), run(4)) and not torch.equal(run(4), run(5))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "blend"}, "method must be one of replacement, repaint, got 'blend'"),
        ({"method": "replacement", "resample": 2}, "resample must be 1 for the replacement method, got 2"),
        ({"resample": 0}, "resample must be an int >= 1, got 0"),
        ({"jump": 0}, "jump must be an int >= 1, got 0"),
        ({"resample": 2.0}, "resample must be an int >= 1"),
        ({"steps": 0}, r"steps must be an int in \[1, 100\], got 0"),
        ({"steps": 101}, r"steps must be an int in \[1, 100\], got 101"),
        ({"mask": torch.ones(1, 2, 2)}, "mask must leave something to fill in"),
        ({"mask": torch.zeros(2, 2)}, r"mask must have shape \(1, 2, 2\)"),
        ({"mask": torch.full((1, 2, 2), 0.5)}, "only 0"),
        ({"known": torch.zeros(2, 1, 2, 2, dtype=torch.long)}, "known must be a floating-point tensor"),
        ({"known": torch.zeros(4)}, "known must be a floating-point tensor"),
        ({"known": torch.full((2, 1, 2, 2), math.inf)}, "known must be finite"),
        ({"prediction_type": "eps"}, "prediction_type must be one of"),
    ],
)
def test_inpaint_bad_input(cosine, kwargs, message):
    args = {"known": torch.zeros(2, 1, 2, 2), "mask": hole_mask("top", (1, 2, 2)), **kwargs}
    with pytest.raises(ValueError, match=message):
        inpaint(wiggly_eps, cosine, args.pop("known"), args.pop("mask"), **args)


# ----------------------------------------------------------------------------- SDEdit
def test_denoise_from_with_one_step_returns_x0_hat(cosine):
    x_t = 1.5 * torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    for t0 in (0, 37, 99):
        a = float(cosine.alphas_cumprod[t0])
        by_hand = (x_t - math.sqrt(1 - a) * wiggly_eps(x_t, torch.full((3,), t0))) / math.sqrt(a)
        out = denoise_from(wiggly_eps, cosine, x_t, t0, steps=1, clip_denoised=False)
        assert torch.allclose(out, by_hand, atol=1e-12)
        x0, _ = samplers.denoise(wiggly_eps, x_t, t0, a)
        assert torch.allclose(out, x0, atol=1e-12)
        clipped = denoise_from(wiggly_eps, cosine, x_t, t0, steps=1, eta=1.0)  # σ = 0 to x_0: no draw
        assert torch.allclose(clipped, by_hand.clamp(-1, 1), atol=1e-12)
    assert float(by_hand.abs().max()) > 1, "so that clipping mattered"


def test_denoise_from_visits_t0_and_the_trailing_timesteps_below(cosine):
    model = Recorder(wiggly_eps)
    denoise_from(model, cosine, torch.zeros(2, 3), 49, steps=5)
    assert model.calls == [49, 39, 29, 19, 9]
    model.calls.clear()
    denoise_from(model, cosine, torch.zeros(2, 3), 4, steps=5)
    assert model.calls == [4, 3, 2, 1, 0]


@pytest.mark.parametrize("eta", [0.0, 0.6])
def test_denoise_from_the_last_timestep_is_ddim(cosine, eta):
    x_T = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(12))
    ours = denoise_from(
        wiggly_eps, cosine, x_T, T - 1, steps=7, eta=eta, generator=torch.Generator().manual_seed(13)
    )
    theirs = samplers.ddim(
        wiggly_eps,
        cosine,
        x_T.shape,
        steps=7,
        eta=eta,
        spacing="trailing",
        x_T=x_T,
        generator=torch.Generator().manual_seed(13),
        progress=False,
    )
    assert torch.equal(ours, theirs)


def test_sdedit_at_t0_zero_is_the_noised_guide_denoised_once(cosine):
    guide = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(14)) * 2 - 1
    out = sdedit(wiggly_eps, cosine, guide, t0=0, steps=1, generator=torch.Generator().manual_seed(15))
    x_t = cosine.q_sample(guide, 0, generator=torch.Generator().manual_seed(15))
    x0, _ = samplers.denoise(wiggly_eps, x_t, 0, float(cosine.alphas_cumprod[0]), clip=True)
    assert torch.equal(out, x0)
    assert float((out - guide).abs().max()) < 0.1, "at t = 0 the guide is barely noised"


def test_sdedit_small_t0_keeps_the_guide_and_the_last_forgets_it(cosine, exact):
    """Exact model: from t0 = T − 1 the samples are the data distribution's whatever the guide
    (√ᾱ_99 = 0.0005); from a small t0 they stay by the guide."""
    n = 4000
    guide = torch.tensor([2.0, -2.0, 1.0, 1.5], dtype=torch.float64).expand(n, 4)

    def edit(g, t0, steps, eta=0.0):
        return sdedit(
            exact,
            cosine,
            g,
            t0=t0,
            steps=steps,
            eta=eta,
            generator=torch.Generator().manual_seed(16),
            clip_denoised=False,
        )

    near, near_other = edit(guide, 2, 3), edit(-guide, 2, 3)
    # measured 0.14 and 0.17: x̂_0 leans towards the data distribution
    assert float((near.mean(0) - guide[0]).abs().max()) < 0.3
    assert float((near_other.mean(0) + guide[0]).abs().max()) < 0.3
    assert float(near.std(0).max()) < 0.1
    for eta in (0.0, 1.0):
        far, far_other = edit(guide, T - 1, 20, eta), edit(-guide, T - 1, 20, eta)
        # the same noise: the outputs differ by an affine map of √ᾱ_99 (guide − other) (measured 8e-4)
        assert float((far - far_other).abs().max()) < 0.005
        # the mean is μ to Monte Carlo error (standard error 0.015; measured at most 0.036)
        assert float((far.mean(0) - MEAN).abs().max()) < 0.075
        assert float((torch.cov(far.T) - COV).abs().max()) < 0.3  # measured 0.11 (η = 0), 0.19 (η = 1)


def test_sdedit_is_deterministic_given_the_generator(cosine):
    guide = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(17)) * 2 - 1

    def run(seed, eta=0.0):
        return sdedit(
            wiggly_eps, cosine, guide, t0=60, steps=6, eta=eta, generator=torch.Generator().manual_seed(seed)
        )

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))
    assert torch.equal(run(1, 0.5), run(1, 0.5)) and not torch.equal(run(1, 0.5), run(1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"t0": -1}, r"t0 must be an int in \[0, 99\], got -1"),
        ({"t0": 100}, r"t0 must be an int in \[0, 99\], got 100"),
        ({"t0": 5.0}, r"t0 must be an int in \[0, 99\]"),
        ({"t0": 5, "steps": 7}, r"steps must be an int in \[1, 6\], got 7"),
        ({"steps": 0}, r"steps must be an int in \[1, 51\], got 0"),
        ({"eta": -0.1}, r"eta must be a number in \[0, 1\], got -0.1"),
        ({"eta": 1.5}, r"eta must be a number in \[0, 1\], got 1.5"),
        ({"eta": math.nan}, r"eta must be a number in \[0, 1\]"),
        ({"prediction_type": "noise"}, "prediction_type must be one of"),
    ],
)
def test_sdedit_and_denoise_from_bad_input(cosine, kwargs, message):
    args = {"t0": 50, "steps": 5, **kwargs}
    x = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match=message):
        sdedit(wiggly_eps, cosine, x, **args)
    t0 = args.pop("t0")
    with pytest.raises(ValueError, match=message):
        denoise_from(wiggly_eps, cosine, x, t0, **args)


def test_sdedit_bad_guide(cosine):
    with pytest.raises(ValueError, match="guide must be a floating-point tensor"):
        sdedit(wiggly_eps, cosine, torch.zeros(2, 4, dtype=torch.long), t0=5, steps=2)
    with pytest.raises(ValueError, match="guide must be finite"):
        sdedit(wiggly_eps, cosine, torch.full((2, 4), math.nan), t0=5, steps=2)
    with pytest.raises(ValueError, match="x_t must be a floating-point tensor"):
        denoise_from(wiggly_eps, cosine, [[0.0]], 5, steps=2)


# ----------------------------------------------------------------------------- DDRM
def measured(A, x, sigma_y=0.0):
    meas = Measurement.of(A, sigma_y)
    return meas, meas(x, torch.Generator().manual_seed(18))


def test_ddrm_without_noise_meets_the_measurement(cosine):
    """σ_y = 0, η_b = 1: the row space is ȳ at the end, so A x = y, whatever the model."""
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(19)) * 2 - 1
    for A in (average_pool_matrix(1, 4, 2), torch.randn(5, 16, generator=torch.Generator().manual_seed(20))):
        meas, y = measured(A, x)
        for eta in (0.85, 0.0, 1.0):
            out = ddrm(
                wiggly_eps,
                cosine,
                y,
                meas,
                (1, 4, 4),
                steps=8,
                eta=eta,
                eta_b=1.0,
                generator=torch.Generator().manual_seed(21),
            )
            assert out.shape == (3, 1, 4, 4) and out.dtype == torch.float32
            assert float((meas(out) - y).abs().max()) < 1e-5
            assert not torch.allclose(out, x, atol=1e-2), "the null space is the model's"
        # Unclipped, the null space keeps the wiggly model's huge x̂_0 (|x| ~ σ_T = 2000): float64.
        meas64, y64 = measured(A, x.double())
        out = ddrm(
            wiggly_eps,
            cosine,
            y64,
            meas64,
            (1, 4, 4),
            steps=8,
            eta=0.0,
            generator=torch.Generator().manual_seed(21),
            clip_denoised=False,
        )
        assert out.dtype == torch.float64 and float((meas64(out) - y64).abs().max()) < 1e-9
    # With η_b < 1 the measurement is only leaned towards.
    out = ddrm(
        wiggly_eps,
        cosine,
        y,
        meas,
        (1, 4, 4),
        steps=8,
        eta_b=0.5,
        generator=torch.Generator().manual_seed(21),
    )
    assert float((meas(out) - y).abs().max()) > 1e-3


def test_ddrm_with_a_perfect_identity_measurement_returns_y(cosine):
    x = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(22)) * 2 - 1
    meas, y = measured(torch.eye(9), x)
    out = ddrm(wiggly_eps, cosine, y, meas, (1, 3, 3), steps=5, generator=torch.Generator().manual_seed(23))
    assert torch.allclose(out.flatten(1), y, atol=1e-6) and torch.allclose(out, x, atol=1e-6)


def test_ddrm_inpainting_keeps_the_known_entries(cosine, exact):
    """A selects the top row: the samples' top row is y, their bottom row the model's."""
    A = torch.eye(4)[:2]
    known = KNOWN.float().expand(500, 1, 2, 2)
    meas, y = measured(A, known)
    out = ddrm(
        exact,
        cosine,
        y,
        meas,
        (1, 2, 2),
        steps=20,
        generator=torch.Generator().manual_seed(24),
        clip_denoised=False,
    )
    assert torch.allclose(out[:, 0, 0], known[:, 0, 0], atol=1e-6)
    assert float(out[:, 0, 1].std(0).min()) > 0.1, "the bottom row is drawn"


def ddrm_with_unit_draws(model, diffusion, y, meas, shape, steps, eta, eta_b):
    """Kawar et al. (2022), eqs. (7)-(8), coordinate by coordinate in numpy, with every N(0, 1) draw
    replaced by 1 so that the result is a number to compare, not a distribution. The SVD is the
    measurement's (checked above): with draws of 1 the signs of its vectors matter."""
    U, V, y = meas.U.numpy(), meas.V.numpy(), y.double().numpy()
    M, D = meas.A.shape
    s, sigma_y = meas.s.numpy(), meas.sigma_y
    y_bar = np.zeros((len(y), D))
    y_bar[:, :M] = (y @ U) / s[:M]
    ts = samplers.timesteps(diffusion.num_timesteps, steps, "trailing").tolist()
    alphas = [float(diffusion.alphas_cumprod[t]) for t in ts] + [1.0]
    sigmas = [math.sqrt((1 - a) / a) for a in alphas]
    x = np.zeros((len(y), D))
    for i in range(D):  # eq. (7)
        if s[i] == 0:
            x[:, i] = sigmas[0] * 1.0
        else:
            x[:, i] = y_bar[:, i] + math.sqrt(sigmas[0] ** 2 - (sigma_y / s[i]) ** 2) * 1.0
    for k, t in enumerate(ts):
        a, sigma, sigma_next = alphas[k], sigmas[k], sigmas[k + 1]
        x_t = math.sqrt(a) * x @ V.T
        eps = model(torch.from_numpy(x_t).reshape(len(y), *shape), torch.full((len(y),), t))
        theta = ((x_t - math.sqrt(1 - a) * eps.numpy().reshape(len(y), D)) / math.sqrt(a)) @ V
        new = np.zeros_like(x)
        for i in range(D):  # eq. (8)
            if s[i] == 0:
                new[:, i] = (
                    theta[:, i]
                    + math.sqrt(1 - eta**2) * sigma_next * (x[:, i] - theta[:, i]) / sigma
                    + eta * sigma_next * 1.0
                )
            elif sigma_next < sigma_y / s[i]:
                new[:, i] = (
                    theta[:, i]
                    + math.sqrt(1 - eta**2) * sigma_next * (y_bar[:, i] - theta[:, i]) / (sigma_y / s[i])
                    + eta * sigma_next * 1.0
                )
            else:
                new[:, i] = (
                    (1 - eta_b) * theta[:, i]
                    + eta_b * y_bar[:, i]
                    + math.sqrt(sigma_next**2 - eta_b**2 * (sigma_y / s[i]) ** 2) * 1.0
                )
        x = new
    return torch.from_numpy(x @ V.T).reshape(len(y), *shape)


@pytest.mark.parametrize("eta, eta_b", [(0.85, 1.0), (0.3, 0.6), (0.0, 1.0), (1.0, 0.0)])
def test_ddrm_step_by_step_with_unit_draws(cosine, monkeypatch, eta, eta_b):
    """Every branch of eq. (8): singular values 4, 1, 0.3, 0.05 with σ_y = 0.2 give σ_y/s_i = 0.05,
    0.2, 0.67, 4, crossed by the levels at different steps, and a two-dimensional null space."""
    rng = np.random.default_rng(25)
    left, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    right, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    A = torch.from_numpy(left @ np.diag([4.0, 1.0, 0.3, 0.05]) @ right[:, :4].T)
    x = torch.from_numpy(rng.uniform(-1, 1, size=(3, 1, 2, 3)))
    meas, y = measured(A, x, 0.2)
    assert torch.allclose(meas.s, torch.tensor([4.0, 1.0, 0.3, 0.05, 0.0, 0.0], dtype=torch.float64))
    monkeypatch.setattr(editing, "randn_like_on", lambda like, generator: torch.ones_like(like))
    steps = 12
    sigmas = [math.sqrt((1 - a) / a) for a in cosine.alphas_cumprod[samplers.timesteps(T, steps, "trailing")]]
    assert max(sigmas) > 4 and min(sigmas) < 0.2, "σ_y/s_i = 4, 0.67, 0.2 are crossed on the way"
    model = mixing_model(cosine)
    ours = ddrm(model, cosine, y, meas, (1, 2, 3), steps=steps, eta=eta, eta_b=eta_b, clip_denoised=False)
    theirs = ddrm_with_unit_draws(model, cosine, y, meas, (1, 2, 3), steps, eta, eta_b)
    assert ours.dtype == torch.float64 and float(theirs.abs().max()) < 10
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-10), (ours - theirs).abs().max()


def test_ddrm_is_deterministic_given_the_generator(cosine):
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(26)) * 2 - 1
    meas, y = measured(average_pool_matrix(1, 4, 2), x, 0.05)

    def run(seed):
        return ddrm(
            wiggly_eps, cosine, y, meas, (1, 4, 4), steps=6, generator=torch.Generator().manual_seed(seed)
        )

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shape": (1, 4, 3)}, r"shape must hold D = 16 numbers \(A's columns\), got \(1, 4, 3\)"),
        ({"y": torch.zeros(2, 5)}, r"y must have shape \(B, 4\) for this measurement, got \(2, 5\)"),
        ({"y": torch.zeros(4)}, "y must be a floating-point tensor"),
        ({"y": torch.zeros(2, 1, 4)}, r"y must have shape \(B, 4\)"),
        ({"y": torch.zeros(2, 4, dtype=torch.long)}, "y must be a floating-point tensor"),
        ({"y": torch.full((2, 4), math.nan)}, "y must be finite"),
        ({"steps": 0}, r"steps must be an int in \[1, 100\], got 0"),
        ({"steps": 101}, r"steps must be an int in \[1, 100\], got 101"),
        ({"eta": 1.2}, r"eta must be a number in \[0, 1\], got 1.2"),
        ({"eta": -0.5}, r"eta must be a number in \[0, 1\], got -0.5"),
        ({"eta_b": 2.0}, r"eta_b must be a number in \[0, 1\], got 2.0"),
        ({"eta_b": "1"}, r"eta_b must be a number in \[0, 1\]"),
        ({"prediction_type": "score"}, "prediction_type must be one of"),
    ],
)
def test_ddrm_bad_input(cosine, kwargs, message):
    args = {"y": torch.zeros(2, 4), "shape": (1, 4, 4), **kwargs}
    with pytest.raises(ValueError, match=message):
        ddrm(
            wiggly_eps,
            cosine,
            args.pop("y"),
            Measurement.of(average_pool_matrix(1, 4, 2)),
            args.pop("shape"),
            **args,
        )


# ----------------------------------------------------------------------------- samplers.ddim_step
def test_ddim_step_by_hand():
    g = torch.Generator().manual_seed(27)
    x0, eps = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    a_next, sigma = 0.7, 0.3
    z = torch.randn(3, 5, generator=torch.Generator().manual_seed(28), dtype=torch.float64)
    out = samplers.ddim_step(x0, eps, a_next, sigma, torch.Generator().manual_seed(28))
    by_hand = math.sqrt(a_next) * x0 + math.sqrt(1 - a_next - sigma**2) * eps + sigma * z
    assert torch.allclose(out, by_hand, atol=1e-14)
    # σ = 0: deterministic, and no draw from the generator
    generator = torch.Generator().manual_seed(29)
    state = generator.get_state()
    out = samplers.ddim_step(x0, eps, a_next, 0.0, generator)
    assert torch.allclose(out, math.sqrt(a_next) * x0 + math.sqrt(1 - a_next) * eps, atol=1e-14)
    assert torch.equal(generator.get_state(), state)
    # to x_0 (ᾱ' = 1): x̂_0 itself
    assert torch.equal(samplers.ddim_step(x0, eps, 1.0, 0.0), x0)
    # σ² > 1 − ᾱ': the ε̂ term is clamped to zero, not a NaN
    out = samplers.ddim_step(x0, eps, 0.9, 0.5, torch.Generator().manual_seed(28))
    assert torch.allclose(out, math.sqrt(0.9) * x0 + 0.5 * z, atol=1e-14)


def test_ddim_is_denoise_then_ddim_step(cosine):
    """samplers.ddim after its refactoring: the loop of denoise and ddim_step, by hand."""
    x_T = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(30), dtype=torch.float64)
    eta, steps = 0.4, 5
    out = samplers.ddim(
        wiggly_eps,
        cosine,
        x_T.shape,
        steps=steps,
        eta=eta,
        x_T=x_T,
        generator=torch.Generator().manual_seed(31),
        progress=False,
        dtype=torch.float64,
    )
    g = torch.Generator().manual_seed(31)
    ts = samplers.timesteps(T, steps).tolist()
    levels = [float(cosine.alphas_cumprod[t]) for t in ts] + [1.0]
    x = x_T
    for k, t in enumerate(ts):
        a, a_next = levels[k], levels[k + 1]
        eps = wiggly_eps(x, torch.full((3,), t))
        x0 = ((x - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(-1, 1)
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        sigma = eta * math.sqrt((1 - a_next) / (1 - a) * (1 - a / a_next))
        x = math.sqrt(a_next) * x0 + math.sqrt(max(1 - a_next - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)
    assert torch.allclose(out, x, atol=1e-12)
