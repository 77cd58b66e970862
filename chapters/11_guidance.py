# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Chapter 11: Guidance
#
# A diffusion model that takes a label — or, in the next chapters, a caption — does not follow
# it as firmly as we would like. Asked for a 3, the conditional model of this chapter draws
# something that the digits classifier calls a 3 most of the time, and something else the rest.
# **Guidance** trades diversity for fidelity: it pushes each sampling step towards images that
# are more typical of the condition. Two forms exist. **Classifier guidance**
# {cite}`dhariwal2021beat` adds the gradient of a classifier trained on noisy images;
# **classifier-free guidance** {cite}`ho2022classifierfree` needs no classifier: one network
# trained with and without the label extrapolates from its unconditional prediction through its
# conditional one. Every text-to-image system since GLIDE {cite}`nichol2022glide` — DALL·E 2,
# Imagen, Stable Diffusion — samples with the second.
#
# **What you will learn.**
#
# - How to condition a diffusion model on a label, with a learned **null label** and
#   **conditioning dropout**, so that one network models both $p(\mathbf{x} \mid y)$ and
#   $p(\mathbf{x})$.
# - Classifier guidance, derived from Bayes' rule on scores, with a noise-aware classifier.
# - Classifier-free guidance, derived as an *implicit* classifier; the two conventions for its
#   scale in the literature, and the map between them.
# - On a 2-D mixture where every score and every classifier is exact: the two guidances agree,
#   and guided sampling does **not** sample the "tilted" density $p(\mathbf{x} \mid y)^s\,
#   p(\mathbf{x})^{1-s}$ that it is often said to sample {cite}`chidambaram2024guidance`.
# - On the digits: the guidance scale's trade-off between class accuracy, Fréchet distance,
#   precision and recall, and saturation, with its spread over sampling seeds; classifier
#   guidance and classifier-free guidance compared at matched accuracy.
#
# **What it assumes.** Chapters 6 and 7 (training a DDPM, DPM-Solver++), chapter 8's score and
# Tweedie's formula $\boldsymbol{\epsilon} = -\sigma\nabla\log p_t$ {eq}`sde-tweedie-eps`, and
# chapter 9's metrics.

# %% [markdown]
# ## Setup
#
# The first cell installs the book's library when it is missing (on Colab). This chapter adds two
# zoo models, trained on first use and cached: `digits-cond-ddpm`, the U-Net of `digits-ddpm`
# with a class embedding, and `digits-noisy-classifier`, a classifier of noisy digits.

# %%
# Colab and other fresh environments: install the book's library if it is missing.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("diffusion_lib") is None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "git+https://github.com/aigc-book/aigc-principles-and-code",
        ],
        check=True,
    )

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from diffusion_lib import (
    check,
    check_le,
    check_outcome,
    data,
    guidance,
    metrics,
    samplers,
    sde,
    zoo,
)
from diffusion_lib.checks import glue

torch.manual_seed(0)
chapter_start = time.perf_counter()
judge = zoo.load("digits-classifier").model.eval()  # chapter 6's classifier: the judge

# %%
# A few minutes on 2 cores the first time; then read from the cache.
cond = zoo.load("digits-cond-ddpm")
net, diffusion = cond.model.eval(), cond.diffusion
NULL = net.num_classes  # the learned null label: "no label"

# %%
# About a minute on 2 cores the first time.
noisy_classifier = zoo.load("digits-noisy-classifier").model.eval()

# %% [markdown]
# (guid-conditioning-section)=
# ## Conditioning a diffusion model
#
# A class-conditional denoiser $\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t, y)$ is chapter 6's
# U-Net with one more input: a learned vector for each label $y$, added to the timestep
# embedding, so that every residual block sees it. Training is $L_{\text{simple}}$ on labelled
# pairs. One more row of the embedding table, a **null label** $\varnothing$, stands for "no
# label": during training each label is replaced by $\varnothing$ with probability $p_{\text{drop}}$
# (**conditioning dropout**), so the same network also learns the unconditional denoiser
# $\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t, \varnothing)$. We read the model's settings and
# draw from both halves — the same starting noise for both grids:

# %%
spec = cond.entry.spec
print(
    f"classes: {net.num_classes}, null label: {NULL}, dropout p = {spec.label_dropout}"
)
labels = torch.arange(50) % 10
x_T = torch.randn(50, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def draw(eps_net, x_T: torch.Tensor, steps: int = 50) -> torch.Tensor:
    """Deterministic DDIM (chapter 7), `steps` evenly spaced steps from x_T; in [-1, 1].

    DDIM rather than DPM-Solver++: with 20 DPM-Solver++ steps, guidance reached a lower
    accuracy at the same scale in benchmarks/guidance.py (the README gives both).
    """
    with torch.no_grad():
        return samplers.ddim(
            eps_net, diffusion, x_T.shape, steps=steps, spacing="linspace", x_T=x_T,
            clip_denoised=True, progress=False,
        )  # fmt: skip


conditional = draw(lambda x, t: net(x, t, labels), x_T)
unconditional = draw(lambda x, t: net(x, t, torch.full_like(labels, NULL)), x_T)
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
for ax, images, title in zip(
    axes,
    (conditional, unconditional),
    ("conditional: columns 0–9", "unconditional (null label)"),
):
    grid = images.reshape(5, 10, 8, 8).permute(0, 2, 1, 3).reshape(40, 80)
    ax.imshow(grid.numpy(), cmap="gray", vmin=-1, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("digits-cond-ddpm, 50 DDIM steps, the same 50 noises", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# (guid-classifier-section)=
# ## Classifier guidance
#
# Bayes' rule connects the conditional density of a noisy image with the unconditional one:
# $p_t(\mathbf{x} \mid y) = p_t(y \mid \mathbf{x})\,p_t(\mathbf{x}) / p(y)$. Take logarithms and
# gradients in $\mathbf{x}$; $p(y)$ does not depend on $\mathbf{x}$ and drops out:
#
# $$
# \nabla_{\mathbf{x}} \log p_t(\mathbf{x} \mid y) = \nabla_{\mathbf{x}} \log p_t(\mathbf{x})
# + \nabla_{\mathbf{x}} \log p_t(y \mid \mathbf{x}).
# $$ (guid-bayes)
#
# The conditional score is the unconditional score plus the gradient of a classifier of *noisy*
# images — $p_t(y \mid \mathbf{x}_t)$, not $p(y \mid \mathbf{x}_0)$: a classifier trained on clean
# digits has no idea what to say about $\mathbf{x}_t$ at large $t$. {cite:t}`dhariwal2021beat`
# train one on $\mathbf{x}_t$ for random $t$, and scale its gradient by a **guidance scale**
# $s \ge 0$:
#
# $$
# \nabla_{\mathbf{x}} \log p_t(\mathbf{x}) + s\,\nabla_{\mathbf{x}} \log p_\phi(y \mid \mathbf{x})
# = \nabla_{\mathbf{x}} \log \frac{p_t(\mathbf{x})\,p_\phi(y \mid \mathbf{x})^s}{Z_t}.
# $$ (guid-tilt)
#
# With $s = 1$ it is {eq}`guid-bayes`; $s > 1$ sharpens the classifier, $p^s$ being a more
# confident distribution over labels. A diffusion model predicts noise, not scores; Tweedie's
# formula {eq}`sde-tweedie-eps` converts, $\boldsymbol{\epsilon} = -\sigma_t\nabla\log p_t$ with
# $\sigma_t = \sqrt{1 - \bar\alpha_t}$, so multiplying {eq}`guid-tilt` by $-\sigma_t$ gives the
# guided noise prediction
#
# $$
# \hat{\boldsymbol{\epsilon}}(\mathbf{x}_t, t) = \boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)
# - s\,\sqrt{1 - \bar\alpha_t}\;\nabla_{\mathbf{x}_t} \log p_\phi(y \mid \mathbf{x}_t, t),
# $$ (guid-classifier)
#
# which any sampler of chapters 6–7 can use in place of $\boldsymbol{\epsilon}_\theta$
# (`guidance.classifier_guided`). We check it on a tiny case where the gradient is known in
# closed form: a linear classifier, logits $W\mathbf{x}$, whose log-softmax has gradient
# $W_y - \sum_k p_k W_k$.

# %%
gen = torch.Generator().manual_seed(2)
W = torch.randn(3, 4, generator=gen, dtype=torch.float64)
x_lin = torch.randn(5, 4, generator=gen, dtype=torch.float64)
y_lin = torch.tensor([0, 1, 2, 1, 0])
t_lin = torch.full((5,), 400)
eps_lin = torch.randn(5, 4, generator=gen, dtype=torch.float64)
guided_lin = guidance.classifier_guided(
    lambda x, t: eps_lin, lambda x, t: x @ W.T, diffusion, y_lin, 2.5
)(x_lin, t_lin)
p_lin = torch.softmax(x_lin @ W.T, dim=1)
grad_lin = W[y_lin] - p_lin @ W
sigma_400 = math.sqrt(1 - diffusion.alphas_cumprod[400].item())
check(
    "classifier guidance, eq. (guid-classifier), with a linear classifier's gradient",
    guided_lin,
    eps_lin - 2.5 * sigma_400 * grad_lin,
    atol=1e-10,
)

# %% [markdown]
# (guid-cfg-section)=
# ## Classifier-free guidance
#
# A noise-aware classifier is one more network to train, and its gradients are those of a
# classifier: they can point at whatever fools it rather than at better images. Bayes' rule,
# read the other way round, gives the classifier's gradient *from the diffusion model itself*
# — an **implicit classifier**:
#
# $$
# \nabla_{\mathbf{x}} \log p_t(y \mid \mathbf{x}) = \nabla_{\mathbf{x}} \log p_t(\mathbf{x} \mid y)
# - \nabla_{\mathbf{x}} \log p_t(\mathbf{x}).
# $$ (guid-implicit)
#
# Substitute it into the left side of {eq}`guid-tilt`, step by step:
#
# 1. $\nabla\log p_t(\mathbf{x}) + s\,[\nabla\log p_t(\mathbf{x} \mid y) - \nabla\log p_t(\mathbf{x})]$;
# 2. multiply by $-\sigma_t$ and use {eq}`sde-tweedie-eps` for each score, with the two halves of
#    one network: $\boldsymbol{\epsilon}_u = \boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t, \varnothing)$
#    and $\boldsymbol{\epsilon}_c = \boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t, y)$:
#
# $$
# \hat{\boldsymbol{\epsilon}} = \boldsymbol{\epsilon}_u + s\,(\boldsymbol{\epsilon}_c - \boldsymbol{\epsilon}_u).
# $$ (guid-cfg)
#
# $s = 0$ is the unconditional model, $s = 1$ the conditional one, and $s > 1$ extrapolates
# *beyond* the conditional prediction, away from the unconditional one. This is the convention of
# diffusers and of this library (`guidance_scale`). {cite:t}`ho2022classifierfree` write the
# same thing with a weight $w$: $\hat{\boldsymbol{\epsilon}} = (1 + w)\,\boldsymbol{\epsilon}_c -
# w\,\boldsymbol{\epsilon}_u$, which is {eq}`guid-cfg` with $s = 1 + w$: their $w = 0$ is plain
# conditional sampling, and a paper's "guidance 3" may mean either $s = 3$ or $s = 4$. The
# library's `guidance.classifier_free` evaluates both halves in one batch of twice the size;
# we check it, and the map between conventions:

# %%
x_c = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(3))
t_c = torch.full((10,), 300)
y_c = torch.arange(10)
with torch.no_grad():
    eps_u = net(x_c, t_c, torch.full_like(y_c, NULL))
    eps_c = net(x_c, t_c, y_c)
    for s in (0.0, 1.0, 3.0):
        out = guidance.classifier_free(net, y_c, s, NULL)(x_c, t_c)
        check(f"CFG, eq. (guid-cfg), s = {s:g}: the batched call", out,
              eps_u + s * (eps_c - eps_u), atol=1e-5)  # fmt: skip
w = guidance.w_from_scale(3.0)
check(
    "Ho & Salimans' (1 + w)ε_c − wε_u with w = s − 1 is the same prediction",
    (1 + w) * eps_c - w * eps_u,
    guidance.combine(eps_u, eps_c, 3.0),
    atol=1e-5,
)
check("s = 0 is exactly the unconditional half", guidance.combine(eps_u, eps_c, 0.0),
      eps_u, atol=0)  # fmt: skip
check("s = 1 is exactly the conditional half", guidance.combine(eps_u, eps_c, 1.0),
      eps_c, atol=0)  # fmt: skip

# %% [markdown]
# (guid-exact-section)=
# ## Where everything is exact: a 2-D mixture
#
# On the digits, every quantity above is a network's estimate. On a Gaussian mixture (chapter 8),
# all of them are exact at every noise level: the scores $\nabla\log p_t(\mathbf{x})$ and
# $\nabla\log p_t(\mathbf{x} \mid y)$, and the classifier $p_t(y \mid \mathbf{x})$, which is the
# sum of the responsibilities of class $y$'s components. We take eight Gaussians on a circle,
# wide enough to overlap, and give alternate ones to two classes:

# %%
means = data.ring_modes(8, 2.0).double()
stds = torch.full((8,), 0.45, dtype=torch.float64)
mixture = sde.GaussianMixture(means, stds)
classes = torch.arange(8) % 2  # class 0: modes 0, 2, 4, 6; class 1: modes 1, 3, 5, 7
vp = sde.VPSDE()
y_star = 0
conditional_mix = mixture.conditional(classes, y_star)
pts = mixture.sample(400, generator=torch.Generator().manual_seed(4)).double()
for t in (0.1, 0.5, 0.9):
    tt = torch.full((400,), t, dtype=torch.float64)
    implicit = conditional_mix.score_fn(vp)(pts, tt) - mixture.score_fn(vp)(pts, tt)
    check(
        f"t = {t}: implicit classifier, eq. (guid-implicit) = exact ∇log p_t(y|x)",
        implicit,
        mixture.class_score(pts, classes, y_star, process=vp, t=tt),
        atol=1e-9,
    )

# %% [markdown]
# So classifier guidance with the exact classifier and classifier-free guidance with the exact
# scores are *the same* vector field, at every $s$; on real models they differ only through their
# networks' errors. Which distribution does that field sample? At each $t$, the guided score
# {eq}`guid-tilt` is the score of the tilted density $\tilde p_t \propto p_t(\mathbf{x} \mid y)^s\,
# p_t(\mathbf{x})^{1-s}$. It is tempting to conclude that the sampler ends at $\tilde p_0 \propto
# p_0(\mathbf{x} \mid y)^s p_0(\mathbf{x})^{1-s}$. It does not: the family $\tilde p_t$ is *not* the
# forward process applied to $\tilde p_0$ (noising a product is not the product of the noised
# factors), so the reverse-time dynamics built from its scores need not end at $\tilde p_0$
# {cite}`chidambaram2024guidance`. We sample the guided probability-flow ODE with exact scores,
# from 2,000 starting noises, at $s = 1$ and at $s = 4$, and compare with $\tilde p_0$, which we
# compute on a fine grid. The statistic is the angle between a point and the nearest mean of
# class $y$, seen from the centre: how tightly the samples hug the modes' rays.


# %%
def angular_offset(points: torch.Tensor) -> torch.Tensor:
    """|angle| between each point and the nearest mean of class 0 (at 0°, 90°, …)."""
    angle = torch.atan2(points[:, 1], points[:, 0])
    return (torch.remainder(angle + math.pi / 4, math.pi / 2) - math.pi / 4).abs()


axis = torch.linspace(-4.5, 4.5, 361, dtype=torch.float64)
gx, gy = torch.meshgrid(axis, axis, indexing="xy")
grid = torch.stack([gx.flatten(), gy.flatten()], dim=1)
x_start = vp.prior_sample(
    (2000, 2), generator=torch.Generator().manual_seed(5)
).double()
exact_rows = {}
for s_exact in (1.0, 4.0):

    def guided_score(x: torch.Tensor, t: torch.Tensor, s=s_exact) -> torch.Tensor:
        """The exact CFG field, eq. (guid-cfg) in score form."""
        return guidance.combine(
            mixture.score_fn(vp)(x, t), conditional_mix.score_fn(vp)(x, t), s
        )

    guided_pts = sde.probability_flow_sample(guided_score, vp, x_start)["x0"]
    # the tilted density on the grid, normalised numerically: p(x|y)^s p(x)^(1−s)
    log_tilted = s_exact * conditional_mix.log_prob(grid) + (
        1 - s_exact
    ) * mixture.log_prob(grid)
    cell_probs = torch.softmax(log_tilted, dim=0)
    offsets = angular_offset(guided_pts)
    exact_rows[s_exact] = {
        "tilted": (cell_probs * angular_offset(grid)).sum().item(),
        "guided": offsets.mean().item(),
        "se": offsets.std().item() / math.sqrt(len(offsets)),
        "points": guided_pts,
        "density": log_tilted.exp().reshape(gx.shape),
    }
print(f"{'s':>3}{'tilted p̃_0':>14}{'guided ODE':>14}{'± s.e.':>9}   (mean angle, rad)")
for s_exact, row in exact_rows.items():
    print(f"{s_exact:>3g}{row['tilted']:>14.4f}{row['guided']:>14.4f}{row['se']:>9.4f}")
one, four = exact_rows[1.0], exact_rows[4.0]
check(
    "s = 1: the guided ODE samples p(x|y) itself (within 3 s.e.)",
    one["guided"],
    one["tilted"],
    atol=3 * one["se"],
)
check_le(
    "s = 4: the guided ODE misses the tilted density by more than 10 s.e.",
    10 * four["se"],
    four["tilted"] - four["guided"],
)
glue("ch11_angle_tilted", four["tilted"])
glue("ch11_angle_guided", four["guided"])

fig, axes = plt.subplots(1, 2, figsize=(9, 4.3), sharex=True, sharey=True)
axes[0].contourf(
    gx.numpy(), gy.numpy(), four["density"].numpy(), levels=20, cmap="Blues"
)
axes[0].set_title(r"tilted $p(x|y)^4\,p(x)^{-3}$ (grid)", fontsize=9)
axes[1].scatter(four["points"][:, 0], four["points"][:, 1], s=2, alpha=0.5)
axes[1].set_title("guided probability-flow ODE, exact scores, $s = 4$", fontsize=9)
for ax in axes:
    colours = ["C3" if c == y_star else "k" for c in classes]
    ax.scatter(means[:, 0], means[:, 1], c=colours, marker="x", s=40)
    ax.set_xlabel("$x_1$")
    ax.set_aspect("equal")
axes[0].set_ylabel("$x_2$")
fig.suptitle(
    "Guidance does not sample the tilted density (red ×: class y's means)", fontsize=10
)
plt.tight_layout()
plt.show()

# %% [markdown]
# At $s = 1$ the sampler returns the conditional density, as it must. At $s = 4$ its samples hug
# the rays of class $y$'s modes — a mean angle of {glue:text}`ch11_angle_guided:.3f` rad — four
# times more tightly than the tilted density would, {glue:text}`ch11_angle_tilted:.3f` rad. Early
# in sampling, when $\mathbf{x}_t$ is noisy, the classes overlap and the implicit classifier's
# gradient points away from the other class's modes on either side; the ODE carries that push
# all the way to $t = 0$. Guidance is a useful heuristic for "more like $y$", not a sampler of a
# named distribution.

# (guid-digits-section)=
# ## The guidance scale on the digits
#
# Now the real models. We sample `digits-cond-ddpm` with classifier-free guidance at scales
# $s \in \{0, 1, 1.25, 1.5, 3, 8\}$, labels cycling through 0–9, and measure (the README's
# table, from `benchmarks/guidance.py`, adds $s = 2$ and $5$ and five times the samples):
#
# - **class accuracy**: the share of samples that the digits classifier of chapter 6 assigns to
#   the label asked for (fidelity to the condition);
# - the **Fréchet distance** to the test digits in the classifier's features, and **precision**
#   and **recall** (chapter 9): quality and diversity against real data;
# - **saturation**: the share of pixels at $\pm 1$. Large $s$ extrapolates past anything the
#   network saw, and the clipping of chapter 6 catches it; Imagen's dynamic thresholding
#   {cite}`saharia2022imagen` exists for this.
#
# Three sampling seeds give the spread. The 4,200 samples of this section take minutes to draw, so
# the zoo draws them once, with `draw`'s sampler, and caches them beside the model (its output
# `"ddim_samples"`); the cell checks twenty of them against `draw` by hand.

# %%
N_SWEEP, STEPS = 200, 50  # samples per scale and seed; DDIM steps
SCALES = (0.0, 1.0, 1.25, 1.5, 3.0, 8.0)
SEEDS = (0, 1, 2)
sweep_labels = torch.arange(N_SWEEP) % 10
real = data.digits("test").images
real_features = judge.features(real).detach()


def measure(images: torch.Tensor) -> dict:
    """Class accuracy, Fréchet distance, precision, recall and saturation of samples."""
    with torch.no_grad():
        predicted = judge(images).argmax(1)
        features = judge.features(images)
    pr = metrics.precision_recall(real_features, features)
    return {
        "accuracy": (predicted == sweep_labels).float().mean().item(),
        "fd": metrics.frechet_distance(real_features.numpy(), features.numpy()),
        "precision": pr["precision"],
        "recall": pr["recall"],
        "saturation": (images.abs() >= 0.999).float().mean().item(),
    }


def noise(seed: int) -> torch.Tensor:
    """The starting noise of sampling seed `seed` (the zoo's samples start from it)."""
    return torch.randn(
        N_SWEEP, 1, 8, 8, generator=torch.Generator().manual_seed(100 + seed)
    )


def samples(seed: int, **guide) -> torch.Tensor:
    """Seed `seed`'s samples: `draw`'s sampler from `noise(seed)`, guided as `guide`
    says, computed once by the zoo and then read from its cache ("ddim_samples")."""
    out = zoo.outputs(
        "digits-cond-ddpm", "ddim_samples", n=N_SWEEP, seed=100 + seed, steps=STEPS,
        spacing="linspace", progress=False, **guide,
    )  # fmt: skip
    return out.tensors["x0"]


def sweep_point(**guide) -> dict:
    """Each seed's samples, measured apart."""
    return {seed: measure(samples(seed, **guide)) for seed in SEEDS}


cfg = {}
for s in SCALES:
    cfg.update({(s, seed): m for seed, m in sweep_point(guidance_scale=s).items()})

# The zoo's samples are `draw`'s: twenty of them drawn again here, by hand.
by_hand = draw(
    guidance.classifier_free(net, sweep_labels[:20], 1.5, NULL), noise(0)[:20], STEPS
)
check(
    "the zoo's samples at s = 1.5 = draw() by hand",
    samples(0, guidance_scale=1.5)[:20],
    by_hand,
    atol=1e-4,
)


def summary(results: dict, s: float, key: str) -> tuple:
    values = np.array([results[(s, seed)][key] for seed in SEEDS])
    return values.mean(), values.std(ddof=1)


columns = ("accuracy", "Fréchet", "precision", "recall", "saturation")
print(f"{'s':>4}" + "".join(f"{k:>16}" for k in columns))
for s in SCALES:
    cells = [
        summary(cfg, s, k)
        for k in ("accuracy", "fd", "precision", "recall", "saturation")
    ]
    print(f"{s:>4g}" + "".join(f"{m:>9.3f} ±{sd:.3f}" for m, sd in cells))

# %% [markdown]
# The trade-off as a figure: accuracy against Fréchet distance, one point per scale, with the
# seeds' spread as error bars.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
acc = [summary(cfg, s, "accuracy") for s in SCALES]
fd = [summary(cfg, s, "fd") for s in SCALES]
axes[0].errorbar([m for m, _ in fd], [m for m, _ in acc], xerr=[sd for _, sd in fd],
                 yerr=[sd for _, sd in acc], marker="o", capsize=3)  # fmt: skip
for s, (a, _), (f, _) in zip(SCALES, acc, fd):
    axes[0].annotate(f"s={s:g}", (f, a), textcoords="offset points", xytext=(5, -10),
                     fontsize=8)  # fmt: skip
axes[0].set_xlabel("Fréchet distance to test digits (lower is better)")
axes[0].set_ylabel("class accuracy")
axes[0].set_title("Fidelity against quality", fontsize=9)
for key, label in (("precision", "precision"), ("recall", "recall"),
                   ("saturation", "saturated pixels")):  # fmt: skip
    axes[1].plot(
        SCALES, [summary(cfg, s, key)[0] for s in SCALES], marker="o", label=label
    )
axes[1].set_xlabel("guidance scale s")
axes[1].set_ylabel("share")
axes[1].set_title("Precision, recall and saturated pixels", fontsize=9)
axes[1].legend(fontsize=8)
fig.suptitle(
    f"Classifier-free guidance on digits-cond-ddpm ({N_SWEEP} samples × 3 seeds)",
    fontsize=10,
)
plt.tight_layout()
plt.show()

# %%
acc_by_s, fd_by_s, recall_by_s, sat_by_s = (
    {s: summary(cfg, s, key)[0] for s in SCALES}
    for key in ("accuracy", "fd", "recall", "saturation")
)
for name, s in (
    ("0", 0.0),
    ("1", 1.0),
    ("125", 1.25),
    ("15", 1.5),
    ("3", 3.0),
    ("8", 8.0),
):
    glue(f"ch11_acc_{name}", acc_by_s[s])
    glue(f"ch11_fd_{name}", fd_by_s[s])
    glue(f"ch11_recall_{name}", recall_by_s[s])
    glue(f"ch11_sat_{name}", sat_by_s[s])
glue("ch11_fd_ratio_125", fd_by_s[1.25] / fd_by_s[1.0])
glue("ch11_sat_real", (real.abs() >= 0.999).float().mean().item())
check_outcome("CFG: class accuracy at s = 1.5", acc_by_s[1.5], at_least=0.97)
check_outcome(
    "CFG: accuracy gain from s = 1 to s = 1.5",
    acc_by_s[1.5] - acc_by_s[1.0],
    at_least=0.01,
)
check_outcome(
    "CFG: Fréchet distance at s = 1.25 relative to s = 1", fd_by_s[1.25] / fd_by_s[1.0],
    at_most=2.0,
)  # fmt: skip
check_outcome(
    "CFG: Fréchet distance at s = 8 relative to s = 1", fd_by_s[8.0] / fd_by_s[1.0],
    at_least=3.0,
)  # fmt: skip
check_outcome(
    "CFG: recall lost from s = 1 to s = 8",
    recall_by_s[1.0] - recall_by_s[8.0],
    at_least=0.2,
)
check_outcome(
    "CFG: saturated share falls from s = 1 to s = 8",
    sat_by_s[1.0] - sat_by_s[8.0],
    at_least=0.01,
)

# %% [markdown]
# Guidance does what it promises on the first axis, and quickly: class accuracy rises from
# {glue:text}`ch11_acc_1:.1%` at $s = 1$ to {glue:text}`ch11_acc_125:.1%` at $s = 1.25$ and
# {glue:text}`ch11_acc_15:.1%` at $s = 1.5$ (the unconditional model, $s = 0$, is right by
# chance only, {glue:text}`ch11_acc_0:.1%`). The price comes at once too: the Fréchet distance
# grows from {glue:text}`ch11_fd_1:.1f` at $s = 1$ by a factor of
# {glue:text}`ch11_fd_ratio_125:.2f` at $s = 1.25$, to {glue:text}`ch11_fd_3:.1f` at $s = 3$ and
# {glue:text}`ch11_fd_8:.1f` at $s = 8$, while recall falls from {glue:text}`ch11_recall_1:.2f` to {glue:text}`ch11_recall_8:.2f`: each
# class collapses towards its most typical strokes. On these small digits the sweet spot is a
# scale barely above 1 — far below the 3–8 that text-to-image systems use, whose conditions
# (captions) are much weaker than a class label. `benchmarks/guidance.py` repeats this sweep
# with 1,000 samples per seed; the README gives its table.
#
# Saturation is not where guidance shows its damage here: the share of pixels at $\pm 1$ is
# {glue:text}`ch11_sat_1:.3f` at $s = 1$ and {glue:text}`ch11_sat_8:.3f` at $s = 8$ (the test
# digits, whose background is $-1$: {glue:text}`ch11_sat_real:.3f`). Guidance does push the
# denoised prediction $\hat{\mathbf{x}}_0$ out of $[-1, 1]$ (exercise 3), and every DDIM step
# clips it, but on these digits the share of pixels that *end* at $\pm 1$ falls at large $s$
# rather than rising; the damage shows in the Fréchet distance and in recall instead. (On
# photographs at high resolution it does show as saturated colours, which is what Imagen's
# dynamic thresholding addresses.)

# %% [markdown]
# ## Classifier guidance against classifier-free guidance
#
# For classifier guidance we use the unconditional half of the same network, $\boldsymbol{\epsilon}_\theta(\cdot,
# \varnothing)$, and the gradient of `digits-noisy-classifier` {eq}`guid-classifier`. Its scale
# means something else, so we compare the two methods at **matched accuracy**: for each
# classifier-guidance scale, the Fréchet distance of CFG at the same accuracy, read off the CFG
# curve ($s \ge 1$) by linear interpolation (below the accuracy of $s = 1$: the distance of
# $s = 1$).

# %%
CG_SCALES = (4.0,)
# Classifier guidance on the unconditional branch (CFG scale 0) of the same network:
CG = {"guidance_scale": 0.0, "classifier": "digits-noisy-classifier"}
cg = {}
for s in CG_SCALES:
    per_seed = sweep_point(**CG, classifier_scale=s)
    cg.update({(s, seed): m for seed, m in per_seed.items()})
uncond_net = lambda x, t: net(x, t, torch.full((x.shape[0],), NULL))  # noqa: E731
by_hand = draw(
    guidance.classifier_guided(
        uncond_net, noisy_classifier, diffusion, sweep_labels[:20], 4.0
    ),
    noise(0)[:20],
    STEPS,
)
check(
    "the zoo's classifier-guided samples (s = 4) = draw() by hand",
    samples(0, **CG, classifier_scale=4.0)[:20],
    by_hand,
    atol=1e-4,
)
curve = [s for s in SCALES if s >= 1.0]
cfg_acc = np.maximum.accumulate(
    [acc_by_s[s] for s in curve]
)  # accuracy rises with s here
cfg_fd = np.array([fd_by_s[s] for s in curve])
print(
    f"{'classifier s':>12}{'accuracy':>10}{'Fréchet':>9}{'CFG Fréchet, same acc.':>24}"
)
matched = {}
for s in CG_SCALES:
    a, f = summary(cg, s, "accuracy")[0], summary(cg, s, "fd")[0]
    matched[s] = (a, f, float(np.interp(a, cfg_acc, cfg_fd)))
    print(f"{s:>12g}{a:>10.3f}{f:>9.2f}{matched[s][2]:>24.2f}")
glue("ch11_cg_acc_4", matched[4.0][0])
glue("ch11_cg_fd_4", matched[4.0][1])
glue("ch11_cg_cfg_fd_4", matched[4.0][2])
check_outcome(
    "classifier guidance (s = 4): its Fréchet distance over CFG's at the same accuracy",
    matched[4.0][1] / matched[4.0][2],
    at_least=1.2,
)

# %% [markdown]
# At the same class accuracy, classifier-free guidance keeps its samples closer to the data: at
# $s = 4$ classifier guidance is right for {glue:text}`ch11_cg_acc_4:.1%` of samples with a
# Fréchet distance of {glue:text}`ch11_cg_fd_4:.1f`, where classifier-free guidance at the same
# accuracy has {glue:text}`ch11_cg_cfg_fd_4:.1f`. This is Ho & Salimans' finding
# {cite}`ho2022classifierfree` at our scale. We did not isolate the cause. Classifier guidance
# leans on a separate small network: on test digits noised to step 750 it names the right digit
# for {glue:text}`ch11_noisy_acc_750:.1%` of them (on clean ones,
# {glue:text}`ch11_noisy_acc_0:.1%`), so over much of the trajectory its gradient carries little
# class information, and what it carries is a classifier's gradient, which need not point
# towards typical images. The implicit classifier of CFG is the denoiser itself.

# %%
test_digits = data.digits("test")
noisy_acc = {}
for t in (0, 750):
    t_batch = torch.full((len(test_digits.images),), t)
    draws = torch.randn(
        test_digits.images.shape, generator=torch.Generator().manual_seed(12)
    )
    x_t = diffusion.q_sample(test_digits.images, t_batch, noise=draws)
    with torch.no_grad():
        predicted = noisy_classifier(x_t, t_batch).argmax(1)
    noisy_acc[t] = (predicted == test_digits.labels).float().mean().item()
    glue(f"ch11_noisy_acc_{t}", noisy_acc[t])
print(f"noisy classifier: t = 0 {noisy_acc[0]:.3f}, t = 750 {noisy_acc[750]:.3f}")
check_outcome("the noisy classifier on clean test digits", noisy_acc[0], at_least=0.9)
check_outcome("... and at t = 750, near chance (0.1)", noisy_acc[750], at_most=0.25)

# %% [markdown]
# ## Summary
#
# - A class-conditional denoiser with a learned **null label**, trained with **conditioning
#   dropout**, models $p(\mathbf{x} \mid y)$ and $p(\mathbf{x})$ in one network.
# - **Classifier guidance** {eq}`guid-classifier` adds $s$ times a noise-aware classifier's
#   gradient, from Bayes' rule on scores {eq}`guid-bayes`; **classifier-free guidance**
#   {eq}`guid-cfg` replaces the classifier by the difference of the model's two halves
#   {eq}`guid-implicit`. Scale conventions: $s = 1 + w$.
# - With exact scores the two are one vector field, but guided sampling does not sample the
#   tilted density $p(\mathbf{x} \mid y)^s p(\mathbf{x})^{1-s}$.
# - On the digits, raising $s$ buys class accuracy with diversity: accuracy rose from
#   {glue:text}`ch11_acc_1:.1%` to {glue:text}`ch11_acc_15:.1%` between $s = 1$ and $1.5$,
#   while recall fell and the Fréchet distance grew, slowly at first and then steeply.
# - At matched accuracy, classifier-free guidance had the lower Fréchet distance.
#
# ## Exercises
#
# **1. The scales of the two conventions.** Stable Diffusion's default "guidance scale 7.5" is in
# diffusers' convention. What is it in Ho & Salimans' $w$? What does $w = 0$ mean?
#
# ````{dropdown} Solution
# $w = s - 1 = 6.5$. $w = 0$ is $s = 1$: plain conditional sampling, no guidance at all — not the
# unconditional model, which is $s = 0$, i.e. $w = -1$.
# ````
#
# **2. Guidance on one Gaussian.** Let $p(\mathbf{x} \mid y) = \mathcal{N}(\boldsymbol{\mu}, \mathbf{I})$
# and $p(\mathbf{x}) = \mathcal{N}(\mathbf{0}, \mathbf{I})$ (data variance 1, so with the VP process
# every $p_t$ has variance 1 too). Show that the guided score at scale $s$ is the score of
# $\mathcal{N}(s\sqrt{\bar\alpha_t}\boldsymbol{\mu}, \mathbf{I})$, and that here guided sampling
# *does* end at the tilted density. Where does the mixture case break this?
#
# ````{dropdown} Solution
# $p_t(\mathbf{x} \mid y) = \mathcal{N}(\sqrt{\bar\alpha_t}\boldsymbol{\mu}, \mathbf{I})$ and $p_t = \mathcal{N}(\mathbf{0}, \mathbf{I})$,
# so the guided score is $-\mathbf{x} + s\sqrt{\bar\alpha_t}\boldsymbol{\mu}$, the score of
# $\mathcal{N}(s\sqrt{\bar\alpha_t}\boldsymbol{\mu}, \mathbf{I})$ — exactly the forward marginal of
# $\mathcal{N}(s\boldsymbol{\mu}, \mathbf{I}) = \tilde p_0$. For Gaussians with equal covariances,
# tilting commutes with noising; for a mixture the responsibilities change with $t$, and it does
# not. The cell below checks the Gaussian case.
# ````
#
# **3. Why clip $\hat{\mathbf{x}}_0$?** Explain with {eq}`guid-cfg` why the denoised prediction
# $\hat{\mathbf{x}}_0$ of a guided step leaves $[-1, 1]$ as $s$ grows.
#
# ````{dropdown} Solution
# $\hat{\mathbf{x}}_0 = (\mathbf{x}_t - \sigma_t\hat{\boldsymbol{\epsilon}})/\sqrt{\bar\alpha_t}$ is affine in
# $\hat{\boldsymbol{\epsilon}}$, hence $\hat{\mathbf{x}}_0 = \hat{\mathbf{x}}_0^u + s(\hat{\mathbf{x}}_0^c - \hat{\mathbf{x}}_0^u)$:
# a linear extrapolation that grows without bound in $s$ wherever the two predictions differ.
# Clipping then flattens those pixels to $\pm1$; dynamic thresholding rescales instead.
# ````

# %% [markdown]
# The figures the solutions quote, computed (run this cell after trying the exercises):

# %%
check("exercise 1: diffusers' 7.5 is w = 6.5", guidance.w_from_scale(7.5), 6.5, atol=0)
mu_e = torch.tensor([[1.5, -0.5]], dtype=torch.float64)
one_c = sde.GaussianMixture(mu_e, torch.ones(1, dtype=torch.float64))
one_u = sde.GaussianMixture(torch.zeros(1, 2, dtype=torch.float64),
                            torch.ones(1, dtype=torch.float64))  # fmt: skip
x_e = torch.randn(7, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
t_e = torch.full((7,), 0.3, dtype=torch.float64)
alpha_e = vp.marginal(t_e)[0][:, None]
check(
    "exercise 2: the guided score of two unit Gaussians is that of N(s·α·μ, I)",
    guidance.combine(one_u.score_fn(vp)(x_e, t_e), one_c.score_fn(vp)(x_e, t_e), 3.0),
    -(x_e - 3.0 * alpha_e * mu_e),
    atol=1e-10,
)
x_3 = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(10))
t_3, y_3 = torch.full((10,), 600), torch.arange(10)
with torch.no_grad():
    eps_u3, eps_c3 = net(x_3, t_3, torch.full_like(y_3, NULL)), net(x_3, t_3, y_3)
x0_u3, x0_c3 = (diffusion.predict_x0_from_eps(x_3, t_3, e) for e in (eps_u3, eps_c3))
check(
    "exercise 3: x̂_0 of the guided ε is x̂_0^u + s(x̂_0^c − x̂_0^u), here at s = 8",
    diffusion.predict_x0_from_eps(x_3, t_3, guidance.combine(eps_u3, eps_c3, 8.0)),
    x0_u3 + 8.0 * (x0_c3 - x0_u3),
    atol=1e-4,
)
print(f"chapter run time: {time.perf_counter() - chapter_start:.0f} s")
