"""Guidance (chapter 11): the combination, classifier-free and classifier guidance, and the exact
class posteriors of a Gaussian mixture.

The guidance functions are checked on fake networks whose outputs and gradients have closed forms
(a model linear in its label, a linear classifier); the mixture's class posteriors against Bayes'
rule computed component by component with SciPy, and against autograd. The last tests show the
chapter's key fact on a mixture: the guided score is the score of the tilted marginal
p_t(x | y)^s p_t(x)^{1−s} at every t, but that is not the noised tilted data density, whose score
is computed here by quadrature.
"""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from diffusion_lib import GaussianDiffusion, get_beta_schedule, guidance, sde

F64 = torch.float64
SCALE_ERROR = r"guidance_scale must be a number >= 0 \(0 unconditional, 1 conditional, > 1 guided\), got"


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- combine
def test_combine_is_exactly_uncond_at_zero_and_cond_at_one():
    g = generator(0)
    uncond, cond = torch.randn(64, 5, generator=g), 1e3 * torch.randn(64, 5, generator=g)
    # the naive formula rounds: uncond + 1·(cond − uncond) is not cond bit for bit here
    assert not torch.equal(uncond + 1.0 * (cond - uncond), cond)
    assert torch.equal(guidance.combine(uncond, cond, 0), uncond)
    assert torch.equal(guidance.combine(uncond, cond, 1.0), cond)
    assert torch.equal(guidance.combine(uncond, cond, np.float32(1.0)), cond)


def test_combine_is_linear_in_the_scale():
    g = generator(1)
    uncond, cond = torch.randn(8, 3, dtype=F64, generator=g), torch.randn(8, 3, dtype=F64, generator=g)
    for s in (0.25, 2.0, 7.5):
        torch.testing.assert_close(guidance.combine(uncond, cond, s), uncond + s * (cond - uncond))
    # affine in s: the combination at a·s1 + (1 − a)·s2 is the same combination of the two
    a, s1, s2 = 0.3, 1.5, 6.0
    both = a * guidance.combine(uncond, cond, s1) + (1 - a) * guidance.combine(uncond, cond, s2)
    torch.testing.assert_close(guidance.combine(uncond, cond, a * s1 + (1 - a) * s2), both)


def test_w_and_scale_conventions_agree():
    g = generator(2)
    uncond, cond = torch.randn(4, 6, dtype=F64, generator=g), torch.randn(4, 6, dtype=F64, generator=g)
    for w in (-1.0, -0.5, 0.0, 0.3, 2.0, 6.5):
        s = guidance.scale_from_w(w)
        assert s == 1.0 + w
        assert guidance.w_from_scale(s) == pytest.approx(w, abs=1e-15)
        ho_salimans = (1 + w) * cond - w * uncond
        torch.testing.assert_close(guidance.combine(uncond, cond, s), ho_salimans, rtol=1e-12, atol=1e-12)
    assert guidance.w_from_scale(0) == -1.0 and guidance.w_from_scale(3) == 2.0


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan"), float("inf"), "2", None, True, torch.tensor(2.0)])
def test_combine_rejects_a_bad_scale(bad):
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=SCALE_ERROR):
        guidance.combine(x, x, bad)


def test_scale_error_message_names_the_value():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=SCALE_ERROR + " -1$"):
        guidance.combine(x, x, -1)


def test_combine_rejects_mismatched_or_non_tensors():
    with pytest.raises(ValueError, match=r"cond must have the shape of uncond \(2, 3\), got \(2, 4\)"):
        guidance.combine(torch.zeros(2, 3), torch.zeros(2, 4), 2.0)
    with pytest.raises(ValueError, match="uncond must be a floating-point tensor, got list"):
        guidance.combine([0.0], torch.zeros(1), 2.0)
    with pytest.raises(ValueError, match="cond must be a floating-point tensor, got dtype torch.int64"):
        guidance.combine(torch.zeros(1), torch.zeros(1, dtype=torch.long), 2.0)


def test_w_conversions_reject_bad_values():
    with pytest.raises(ValueError, match=r"w must be a number >= -1 \(so that s = 1 \+ w >= 0\), got -2"):
        guidance.scale_from_w(-2)
    with pytest.raises(ValueError, match="w must be a number >= -1"):
        guidance.scale_from_w(float("nan"))
    with pytest.raises(ValueError, match=SCALE_ERROR):
        guidance.w_from_scale(-0.5)


# ----------------------------------------------------------------------------- classifier-free
NULL = 10  # the fake model's null label: classes 0..9


class FakeConditional:
    """model(x, t, y) = x + y + 0.1·t, recording each call's batch size, t and labels."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, y):
        self.calls.append((x.shape[0], t, y.clone()))
        t_term = t.to(x.dtype)[:, None] if torch.is_tensor(t) and t.ndim else float(t)
        return x + y.to(x.dtype)[:, None] + 0.1 * t_term


def test_classifier_free_matches_the_hand_formula_in_one_call():
    x = torch.randn(5, 3, dtype=F64, generator=generator(3))
    t = torch.tensor([0, 3, 7, 7, 9])
    y = torch.tensor([1, 0, 9, 4, 4])
    uncond = x + NULL + 0.1 * t.to(F64)[:, None]  # the model by hand, label "none"
    cond = x + y.to(F64)[:, None] + 0.1 * t.to(F64)[:, None]
    for s in (0.5, 2.0, 3.5, 7.0):
        model = FakeConditional()
        out = guidance.classifier_free(model, y, s, NULL)(x, t)
        torch.testing.assert_close(out, uncond + s * (cond - uncond), rtol=1e-12, atol=1e-12)
        w = s - 1
        torch.testing.assert_close(out, (1 + w) * cond - w * uncond, rtol=1e-12, atol=1e-12)
        assert len(model.calls) == 1, "both branches in one batched call"
        batch, t_seen, labels = model.calls[0]
        assert batch == 10
        assert torch.equal(t_seen, torch.cat([t, t]))
        assert torch.equal(labels, torch.cat([torch.full((5,), NULL), y])), "null label: unconditional half"


def test_classifier_free_calls_one_branch_at_zero_and_one():
    x = torch.randn(4, 2, dtype=F64, generator=generator(4))
    t = torch.tensor([5, 5, 1, 0])
    model = FakeConditional()
    out = guidance.classifier_free(model, 3, 0, NULL)(x, t)
    assert len(model.calls) == 1 and model.calls[0][0] == 4
    assert torch.equal(model.calls[0][2], torch.full((4,), NULL))
    assert torch.equal(out, x + NULL + 0.1 * t.to(F64)[:, None])
    model = FakeConditional()
    out = guidance.classifier_free(model, 3, 1, NULL)(x, t)
    assert len(model.calls) == 1 and model.calls[0][0] == 4
    assert torch.equal(model.calls[0][2], torch.full((4,), 3))
    assert torch.equal(out, x + 3 + 0.1 * t.to(F64)[:, None])


def test_classifier_free_broadcasts_an_int_label_and_a_scalar_time():
    x = torch.randn(3, 2, dtype=F64, generator=generator(5))
    model = FakeConditional()
    net = guidance.classifier_free(model, 7, 2.0, NULL)
    out = net(x, 4)
    assert model.calls[0][1] == 4, "a number is passed once, not doubled"
    assert torch.equal(model.calls[0][2], torch.tensor([NULL] * 3 + [7] * 3))
    torch.testing.assert_close(out, x + 0.4 + NULL + 2.0 * (7 - NULL))
    assert net.guidance_scale == 2.0 and net.null_label == NULL


def test_classifier_free_rejects_bad_input():
    model = FakeConditional()
    with pytest.raises(ValueError, match=r"y must be class labels in \[0, 10\) \(null_label = 10 means no"):
        guidance.classifier_free(model, 10, 2.0, NULL)
    with pytest.raises(ValueError, match=r"y must be class labels in \[0, 10\).*got -1"):
        guidance.classifier_free(model, torch.tensor([0, -1]), 2.0, NULL)
    with pytest.raises(ValueError, match="y must be an int or an integer tensor .* got a tensor of dtype"):
        guidance.classifier_free(model, torch.tensor([0.0, 1.0]), 2.0, NULL)
    with pytest.raises(ValueError, match=r"y must be an int or an integer tensor of shape \(B,\)"):
        guidance.classifier_free(model, torch.zeros(2, 2, dtype=torch.long), 2.0, NULL)
    with pytest.raises(ValueError, match="null_label must be an int >= 1, got 0"):
        guidance.classifier_free(model, 0, 2.0, 0)
    with pytest.raises(ValueError, match=SCALE_ERROR):
        guidance.classifier_free(model, 0, -3, NULL)
    net = guidance.classifier_free(model, torch.tensor([1, 2, 3]), 2.0, NULL)
    with pytest.raises(ValueError, match=r"y must have one label per example, shape \(2,\), got \(3,\)"):
        net(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    halved = guidance.classifier_free(lambda x, t, y: x[: x.shape[0] // 2], 1, 2.0, NULL)
    with pytest.raises(ValueError, match="model must return a tensor with batch size 4"):
        halved(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="model must be callable"):
        guidance.classifier_free("unet", 0, 2.0, NULL)


# ----------------------------------------------------------------------------- classifier guidance
D, C = 3, 4  # the fake classifier's input dimension and classes
W = torch.randn(D, C, dtype=F64, generator=generator(6))  # its weights: logits = x @ W


class LinearClassifier:
    """logits = x @ W, recording the timesteps it is called with."""

    def __init__(self):
        self.times = []

    def __call__(self, x, t):
        self.times.append(t)
        return x @ W


def linear_gradient(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇_x log softmax(x W)_y = W[:, y] − Σ_k p_k W[:, k], in closed form."""
    p = torch.softmax(x @ W, dim=1)
    return W[:, y].T - p @ W.T


def fake_eps(x, t):
    return 0.5 * x + 0.01 * t.to(x.dtype)[:, None]


DIFFUSION = GaussianDiffusion(get_beta_schedule("linear", 50))


def test_classifier_guided_matches_the_formula_under_no_grad():
    x = torch.randn(6, D, dtype=F64, generator=generator(7))
    t = torch.tensor([0, 5, 17, 30, 49, 49])
    y = torch.tensor([0, 1, 2, 3, 2, 0])
    std = torch.sqrt(1.0 - DIFFUSION.alphas_cumprod[t])[:, None]  # √(1 − ᾱ_t), by hand
    for s in (0.5, 1.0, 4.0):
        classifier = LinearClassifier()
        with torch.no_grad():
            out = guidance.classifier_guided(fake_eps, classifier, DIFFUSION, y, s)(x, t)
        expected = fake_eps(x, t) - s * std * linear_gradient(x, y)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
        assert not out.requires_grad
        assert len(classifier.times) == 1 and torch.equal(classifier.times[0], t)


def test_classifier_guided_at_zero_scale_is_the_model_and_calls_no_classifier():
    x = torch.randn(4, D, dtype=F64, generator=generator(8))
    t = torch.tensor([1, 2, 3, 4])
    classifier = LinearClassifier()
    out = guidance.classifier_guided(fake_eps, classifier, DIFFUSION, 2, 0.0)(x, t)
    assert torch.equal(out, fake_eps(x, t)) and not classifier.times


def test_classifier_guided_reads_fractional_timesteps_as_noise_levels():
    x = torch.randn(3, D, dtype=F64, generator=generator(9))
    whole = torch.tensor([4, 20, 49])
    net = guidance.classifier_guided(fake_eps, LinearClassifier(), DIFFUSION, 1, 3.0)
    # integral float indices read the same levels as the integer ones
    torch.testing.assert_close(net(x, whole.to(F64)), net(x, whole), rtol=1e-12, atol=1e-12)
    # a noise level between two steps, mapped to its fractional index, is read back
    alpha_bar = torch.tensor([0.9, 0.5, 0.05], dtype=F64)
    index = DIFFUSION.fractional_timestep(alpha_bar)
    assert not torch.equal(index, index.round())
    y = torch.ones(3, dtype=torch.long)
    expected = fake_eps(x, index) - 3.0 * torch.sqrt(1 - alpha_bar)[:, None] * linear_gradient(x, y)
    torch.testing.assert_close(net(x, index), expected, rtol=1e-10, atol=1e-10)


def test_classifier_gradient_closed_form_and_rows_independent():
    x = torch.randn(7, D, dtype=F64, generator=generator(10))
    y = torch.tensor([0, 3, 1, 1, 2, 0, 3])
    grad = guidance.classifier_gradient(LinearClassifier(), x, torch.zeros(7), y)
    torch.testing.assert_close(grad, linear_gradient(x, y), rtol=1e-12, atol=1e-12)
    # a nonlinear classifier: each row of the batch's gradient is that example's own gradient
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(D, 16), torch.nn.Tanh(), torch.nn.Linear(16, C)).double().eval()

    def classifier(xt, t):
        return net(xt * (1 + 0.01 * t.to(xt.dtype)[:, None]))

    t = torch.arange(7)
    with torch.no_grad():
        batch = guidance.classifier_gradient(classifier, x, t, y)
    for i in range(7):
        alone = guidance.classifier_gradient(classifier, x[i : i + 1], t[i : i + 1], y[i : i + 1])
        torch.testing.assert_close(batch[i : i + 1], alone, rtol=1e-12, atol=1e-14)
    assert batch.abs().min() > 0
    # an int label is broadcast to the batch
    torch.testing.assert_close(
        guidance.classifier_gradient(classifier, x, t, 2),
        guidance.classifier_gradient(classifier, x, t, torch.full((7,), 2)),
    )


def test_classifier_gradient_upcasts_half_precision():
    x = torch.randn(5, D, generator=generator(11)).to(torch.bfloat16)
    seen = []

    def classifier(xt, t):
        seen.append(xt.dtype)
        return xt @ W.float()

    grad = guidance.classifier_gradient(classifier, x, None, 1)
    assert seen == [torch.float32] and grad.dtype == torch.bfloat16


def test_classifier_guidance_rejects_bad_input():
    classifier = LinearClassifier()
    with pytest.raises(TypeError, match="diffusion must be a GaussianDiffusion, got VPSDE"):
        guidance.classifier_guided(fake_eps, classifier, sde.VPSDE(), 0, 2.0)
    with pytest.raises(ValueError, match="y must be class labels >= 0, got -1"):
        guidance.classifier_guided(fake_eps, classifier, DIFFUSION, -1, 2.0)
    with pytest.raises(ValueError, match=SCALE_ERROR):
        guidance.classifier_guided(fake_eps, classifier, DIFFUSION, 0, float("nan"))
    x, t = torch.zeros(2, D, dtype=F64), torch.tensor([3, 4])
    with pytest.raises(ValueError, match=r"y must be class labels in \[0, 4\) \(the classifier returns 4"):
        guidance.classifier_guided(fake_eps, classifier, DIFFUSION, 4, 2.0)(x, t)
    with pytest.raises(ValueError, match=r"t must be step indices in \[0, 49\], got 50"):
        guidance.classifier_guided(fake_eps, classifier, DIFFUSION, 0, 2.0)(x, torch.tensor([3, 50]))
    with pytest.raises(ValueError, match=r"t must have shape \(2,\) to match the batch, got \(3,\)"):
        guidance.classifier_guided(lambda x, t: x, classifier, DIFFUSION, 0, 2.0)(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"model must return ε of x's shape \(2, 3\), got \(2, 1\)"):
        guidance.classifier_guided(lambda x, t: x[:, :1], classifier, DIFFUSION, 0, 2.0)(x, t)
    with pytest.raises(ValueError, match=r"classifier must return logits of shape \(2, C\), got \(2,\)"):
        guidance.classifier_gradient(lambda x, t: x.sum(1), x, t, 0)
    with pytest.raises(ValueError, match="classifier's logits do not depend on x through autograd"):
        guidance.classifier_gradient(lambda x, t: (x @ W).detach(), x, t, 0)


# ----------------------------------------------------------------------------- mixture posteriors
CLASSES = torch.tensor([0, 1, 1, 2])  # the 2-D mixture's component classes: class 1 has two components


def mixture() -> sde.GaussianMixture:
    means = torch.tensor([[-2.0, 0.0], [0.0, 1.5], [1.0, -0.5], [2.5, 1.0]])
    return sde.GaussianMixture(means, torch.tensor([0.4, 0.6, 0.3, 0.8]), torch.tensor([0.1, 0.3, 0.2, 0.4]))


def bayes_by_hand(mix, x, alpha, sigma) -> np.ndarray:
    """p(k | x_t) (N, K) with SciPy's densities, point by point and component by component."""
    out = np.zeros((x.shape[0], mix.num_components))
    for n in range(x.shape[0]):
        joint = [
            float(mix.weights[k])
            * multivariate_normal.pdf(
                x[n].numpy(),
                mean=(alpha[n] * mix.means[k]).numpy(),
                cov=float(alpha[n] ** 2 * mix.stds[k] ** 2 + sigma[n] ** 2) * np.eye(mix.dim),
            )
            for k in range(mix.num_components)
        ]
        out[n] = np.array(joint) / sum(joint)
    return out


def test_component_log_posterior_is_bayes_rule():
    mix = mixture()
    x = 1.5 * torch.randn(6, 2, dtype=F64, generator=generator(12))
    ones, zeros = torch.ones(6, dtype=F64), torch.zeros(6, dtype=F64)
    got = mix.component_log_posterior(x).exp().numpy()
    np.testing.assert_allclose(got, bayes_by_hand(mix, x, ones, zeros), rtol=1e-10, atol=1e-14)
    for process, t in ((sde.VPSDE(), 0.3), (sde.VESDE(), 0.5), (sde.VPSDE(), torch.linspace(0.05, 0.9, 6))):
        alpha, sigma = process.marginal(torch.as_tensor(t, dtype=F64).expand(6))
        got = mix.component_log_posterior(x, process, t)
        assert got.dtype == F64 and got.shape == (6, 4)
        np.testing.assert_allclose(
            got.exp().numpy(), bayes_by_hand(mix, x, alpha, sigma), rtol=1e-10, atol=1e-14
        )


def test_class_log_posterior_sums_components_and_normalises():
    mix = mixture()
    x = 1.5 * torch.randn(9, 2, dtype=F64, generator=generator(13))
    for process, t in ((None, None), (sde.VPSDE(), 0.4), (sde.SubVPSDE(), 0.7)):
        log_resp = mix.component_log_posterior(x, process, t)
        got = mix.class_log_posterior(x, CLASSES, process, t)
        assert got.shape == (9, 3)
        torch.testing.assert_close(got.exp().sum(1), torch.ones(9, dtype=F64), rtol=0, atol=1e-12)
        by_hand = torch.stack([log_resp[:, 0], torch.logsumexp(log_resp[:, 1:3], 1), log_resp[:, 3]], 1)
        torch.testing.assert_close(got, by_hand, rtol=1e-12, atol=1e-12)
    # far noise (alpha(1) = 0.0066): the class posterior is near the class prior (0.1, 0.5, 0.4),
    # within about 1 % at these points (the means' shadows alpha·μ_k are 0.02 apart)
    far = mix.class_log_posterior(x, [0, 1, 1, 2], sde.VPSDE(), 1.0).exp()
    torch.testing.assert_close(
        far, torch.tensor([[0.1, 0.5, 0.4]], dtype=F64).expand(9, 3), atol=0.02, rtol=0
    )


def test_conditional_keeps_the_class_components_renormalised():
    cond = mixture().conditional(CLASSES, 1)
    torch.testing.assert_close(cond.means, torch.tensor([[0.0, 1.5], [1.0, -0.5]], dtype=F64))
    torch.testing.assert_close(cond.stds, torch.tensor([0.6, 0.3], dtype=F64))
    torch.testing.assert_close(cond.weights, torch.tensor([0.6, 0.4], dtype=F64))


@pytest.mark.parametrize("t", [0.01, 0.2, 0.5, 0.9])
def test_class_score_is_conditional_minus_unconditional_score_and_autograd(t):
    mix, vp = mixture(), sde.VPSDE()
    x = 1.5 * torch.randn(8, 2, dtype=F64, generator=generator(14))
    for y in range(3):
        cond = mix.conditional(CLASSES, y)
        got = mix.class_score(x, CLASSES, y, vp, t)
        torch.testing.assert_close(
            got, cond.score_fn(vp)(x, t) - mix.score_fn(vp)(x, t), rtol=1e-9, atol=1e-9
        )
        # ∇ log p_t(y | x) by autograd, two ways: through the class posterior, and Bayes' rule
        # on the two mixtures' log densities (log p(y) is a constant)
        xr = x.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(mix.class_log_posterior(xr, CLASSES, vp, t)[:, y].sum(), xr)
        torch.testing.assert_close(got, auto, rtol=1e-9, atol=1e-9)
        log_ratio = cond.log_prob_fn(vp)(xr, t) - mix.log_prob_fn(vp)(xr, t)
        (bayes,) = torch.autograd.grad(log_ratio.sum(), xr)
        torch.testing.assert_close(got, bayes, rtol=1e-9, atol=1e-9)


def test_class_score_at_the_data_and_with_a_label_per_point():
    mix = mixture()
    x = torch.randn(5, 2, dtype=F64, generator=generator(15))
    y = torch.tensor([0, 2, 1, 1, 0])
    got = mix.class_score(x, CLASSES, y)
    for i in range(5):
        row = mix.conditional(CLASSES, int(y[i])).score(x[i : i + 1]) - mix.score(x[i : i + 1])
        torch.testing.assert_close(got[i : i + 1], row, rtol=1e-10, atol=1e-10)
    assert mix.class_score(x.float(), CLASSES, 1).dtype == torch.float32


# ----------------------------------------------------------------------------- the chapter's key fact
@pytest.mark.parametrize("t", [0.02, 0.3, 0.8])
def test_guided_score_is_the_score_of_the_tilted_marginal_at_every_t(t):
    mix, vp = mixture(), sde.VPSDE()
    x = 1.5 * torch.randn(6, 2, dtype=F64, generator=generator(16))
    y = 2
    cond = mix.conditional(CLASSES, y)
    score_u, score_c = mix.score_fn(vp)(x, t), cond.score_fn(vp)(x, t)
    class_score = mix.class_score(x, CLASSES, y, vp, t)
    # s = 1: the unconditional score plus the exact classifier's gradient is the conditional score
    torch.testing.assert_close(score_u + class_score, score_c, rtol=1e-10, atol=1e-10)
    for s in (0.0, 0.5, 3.0):
        guided = guidance.combine(score_u, score_c, s)
        # classifier guidance with the exact classifier = classifier-free guidance, at every s
        torch.testing.assert_close(score_u + s * class_score, guided, rtol=1e-9, atol=1e-9)
        # and both are the score of p_t(x | y)^s p_t(x)^(1 − s), by autograd
        xr = x.clone().requires_grad_(True)
        log_tilted = s * cond.log_prob_fn(vp)(xr, t) + (1 - s) * mix.log_prob_fn(vp)(xr, t)
        (auto,) = torch.autograd.grad(log_tilted.sum(), xr)
        torch.testing.assert_close(guided, auto, rtol=1e-9, atol=1e-9)


# A 1-D mixture of two classes, one component each: N(−1, 0.5²) and N(1, 0.5²), equal weights.
# Guiding towards y = 1 with s = 3 targets the tilted data density q_0 ∝ p_0(x | 1)³ p_0(x)^(−2)
# (normalisable: its log falls like −(x − 1)²/(2 · 0.5²) on the right and −x²/0.5² · … on the
# left); its noised marginal q_t = q_0 pushed through the VP process is computed by quadrature.
GRID = torch.linspace(-6.0, 6.0, 12001, dtype=F64)[:, None]  # x_0 grid, step 1e-3 (σ_t >= 3e-3)


def two_classes():
    mix = sde.GaussianMixture(torch.tensor([[-1.0], [1.0]]), torch.tensor([0.5, 0.5]))
    return mix, mix.conditional(torch.tensor([0, 1]), 1)


def noised_tilted_score(mix, cond, s, x, alpha, sigma):
    """∇ log q_t(x) for q_0 ∝ p_0(x|y)^s p_0(x)^(1−s) and x_t = alpha x_0 + sigma ε, by quadrature:
    E_{q(x_0 | x_t)}[−(x_t − alpha x_0)]/sigma²."""
    log_q0 = s * cond.log_prob(GRID) + (1 - s) * mix.log_prob(GRID)
    diff = x[:, None] - alpha * GRID[:, 0][None]
    posterior = torch.softmax(log_q0[None] - 0.5 * diff**2 / sigma**2, dim=1)
    return -(posterior * diff).sum(1) / sigma**2


def test_guidance_does_not_noise_the_tilted_data_density():
    mix, cond = two_classes()
    vp = sde.VPSDE()
    x = torch.linspace(-3.0, 3.0, 13, dtype=F64)[:, None]
    # the quadrature is exact where the answer is known: s = 1, q_t = p_t(x | y)
    for t in (1e-4, 0.1, 0.5):
        alpha, sigma = (float(v) for v in vp.marginal(t))
        torch.testing.assert_close(
            noised_tilted_score(mix, cond, 1.0, x[:, 0], alpha, sigma),
            cond.score_fn(vp)(x, t)[:, 0],
            rtol=1e-9,
            atol=1e-9,
        )
    # at t → 0 the s = 3 guided score meets the tilted data density's score ...
    alpha, sigma = (float(v) for v in vp.marginal(1e-4))
    guided = guidance.combine(mix.score_fn(vp)(x, 1e-4), cond.score_fn(vp)(x, 1e-4), 3.0)[:, 0]
    pushed = noised_tilted_score(mix, cond, 3.0, x[:, 0], alpha, sigma)
    assert float(((guided - pushed).abs() / (1 + guided.abs())).max()) < 1e-3
    # ... but at t > 0 it is not the score of the tilted density noised: p_t(x|y)^3 p_t(x)^(−2) is
    # not (p_0(x|y)^3 p_0(x)^(−2)) pushed through the process. Measured gaps (max over x in
    # [−3, 3]): 8.5 at t = 0.1, 5.6 at t = 0.2, 3.3 at t = 0.3, against scores of size 5–25.
    for t in (0.1, 0.2, 0.3):
        alpha, sigma = (float(v) for v in vp.marginal(t))
        guided = guidance.combine(mix.score_fn(vp)(x, t), cond.score_fn(vp)(x, t), 3.0)[:, 0]
        pushed = noised_tilted_score(mix, cond, 3.0, x[:, 0], alpha, sigma)
        assert float((guided - pushed).abs().max()) > 2.0, t
        # they agree far on the guided side, where class 1's component alone matters
        torch.testing.assert_close(guided[-1], pushed[-1], rtol=1e-2, atol=1e-2)


# ----------------------------------------------------------------------------- mixture bad input
def test_class_posteriors_reject_bad_input():
    mix = mixture()
    x = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"classes must be a \(4,\) integer tensor .*got shape \(3,\)"):
        mix.class_log_posterior(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"classes must be a \(4,\) integer tensor, got dtype torch.float32"):
        mix.class_score(x, torch.tensor([0.0, 1.0, 1.0, 2.0]), 0)
    with pytest.raises(ValueError, match=r"classes must be a \(4,\) integer tensor, got dtype torch.bool"):
        mix.conditional(torch.tensor([True, False, True, False]), 0)
    with pytest.raises(ValueError, match=r"classes must be a \(4,\) integer tensor, got str"):
        mix.conditional("0112", 0)
    with pytest.raises(ValueError, match="classes must be class indices >= 0"):
        mix.conditional(torch.tensor([0, -1, 1, 2]), 0)
    with pytest.raises(ValueError, match=r"class 1 has none: \[0, 2, 2, 3\]"):
        mix.class_log_posterior(x, torch.tensor([0, 2, 2, 3]))
    with pytest.raises(ValueError, match=r"y must be a class in \[0, 3\), got 3"):
        mix.conditional(CLASSES, 3)
    with pytest.raises(ValueError, match=r"y must be a class in \[0, 3\), got -1"):
        mix.class_score(x, CLASSES, -1)
    with pytest.raises(ValueError, match=r"y must be an int: a class in \[0, 3\), got True"):
        mix.conditional(CLASSES, True)
    with pytest.raises(ValueError, match=r"y must be an int: a class in \[0, 3\), got a tensor"):
        mix.conditional(CLASSES, torch.tensor([1]))
    with pytest.raises(ValueError, match=r"y must be a class in \[0, 3\), got 5"):
        mix.class_score(x, CLASSES, torch.tensor([0, 5, 1]))
    with pytest.raises(
        ValueError, match=r"y must be an int or an integer tensor of shape \(3,\), got \(2,\)"
    ):
        mix.class_score(x, CLASSES, torch.tensor([0, 1]))
    with pytest.raises(
        ValueError, match=r"y must be an int or an integer tensor \(B,\): .*dtype torch.float32"
    ):
        mix.class_score(x, CLASSES, torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="t must be None when process is None"):
        mix.component_log_posterior(x, None, 0.5)
    with pytest.raises(ValueError, match="t must be given with a process"):
        mix.class_score(x, CLASSES, 0, sde.VPSDE())
    with pytest.raises(TypeError, match="process must be an SDE"):
        mix.class_log_posterior(x, CLASSES, DIFFUSION, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\), got \(3, 3\)"):
        mix.component_log_posterior(torch.zeros(3, 3))
    zero_weight = sde.GaussianMixture(mix.means, mix.stds, torch.tensor([0.0, 0.5, 0.5, 0.0]))
    with pytest.raises(ValueError, match="y = 0 has components of total weight 0"):
        zero_weight.conditional(CLASSES, 0)
    assert math.isinf(float(zero_weight.class_log_posterior(x, CLASSES)[0, 0]))
