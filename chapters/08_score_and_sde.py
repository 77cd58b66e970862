# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Chapter 8: Scores, SDEs and flows
#
# Chapters 4 to 7 treated diffusion as a Markov chain of $T = 1000$ discrete steps. This chapter
# takes the limit $T \to \infty$ and finds the other half of the field: the **score**
# $\nabla_{\mathbf{x}} \log p(\mathbf{x})$ (得分函数), which a denoiser estimates; **stochastic
# differential equations** (随机微分方程) that noise data continuously, and their reversal
# {cite}`song2021sde`; the **probability-flow ODE**, a deterministic map from noise to data that
# gives the model an *exact* likelihood; the **EDM** view of sampling {cite}`karras2022edm`; and
# **flow matching** {cite}`lipman2023flow,liu2023flow`, the objective that trains today's
# largest text-to-image models. Every step is checked on a Gaussian mixture, whose score is
# known in closed form at every noise level, before it is run on the trained digits model.
#
# **What you will learn.**
#
# - The score, Tweedie's formula {cite}`efron2011tweedie`, and denoising score matching
#   {cite}`vincent2011connection`: why the ε-network of chapter 5 *is* a score model,
#   $\mathbf{s} = -\boldsymbol{\epsilon}/\sigma$.
# - Langevin dynamics, and why sampling with it fails on a mixture unless the noise is annealed
#   {cite}`song2019generative` (the weights of the modes come out wrong).
# - The VE, VP and sub-VP SDEs; DDPM's chain as the VP SDE discretised, with the map between
#   $\beta_t$ and $\beta(t)$; Anderson's reverse-time SDE {cite}`anderson1982reverse`;
#   Euler–Maruyama and predictor–corrector samplers.
# - The probability-flow ODE and the instantaneous change of variables
#   {cite}`chen2018neural,grathwohl2019ffjord`: log-likelihood by integrating a divergence,
#   exactly by automatic differentiation or by the Skilling–Hutchinson estimator
#   {cite}`skilling1989eigenvalues,hutchinson1989stochastic`; dequantisation; the bits per
#   dimension of `digits-ddpm` read as a continuous-time model, next to its discrete bound.
# - EDM: the $\sigma$-parameterisation, preconditioning, Heun's sampler and its step schedule,
#   run on the same `digits-ddpm`.
# - Flow matching and rectified flow: the conditional objective, its relation to
#   $\mathbf{v}$-prediction and to the probability-flow ODE; flow models trained on the ring and
#   on the digits, measured against the diffusion model at equal cost.
#
# **What it assumes.** Chapters 4 to 7: the forward marginal {eq}`fwd-reparam`, the loss
# {eq}`rev-l-simple`, the bound in bits per dimension {eq}`rev-bpd`, the trained `digits-ddpm`
# and `digits-classifier` (chapter 6), and the probability-flow ODE's first appearance and the
# Fréchet distance with its bootstrap spread (chapter 7). Some calculus of several variables:
# gradients, divergences, the chain rule.

# %% [markdown]
# ## Setup
#
# The first cell installs the book's library when it is missing (on Colab). The diffusion models
# come from the zoo (chapter 6 trains them); this chapter adds two flow models, `ring-flow` and
# `digits-flow`, trained on first use (a few minutes on two CPU cores) and cached.

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
from scipy.integrate import solve_ivp

from diffusion_lib import (
    GaussianDiffusion,
    check,
    check_le,
    check_outcome,
    data,
    get_beta_schedule,
    metrics,
    samplers,
    sde,
    zoo,
)
from diffusion_lib.checks import glue
from diffusion_lib.families.diffusion import reference_samples

torch.manual_seed(0)
chapter_start = time.perf_counter()
T = 1000
diff = GaussianDiffusion(get_beta_schedule("linear", T))  # digits-ddpm's process
abar = diff.alphas_cumprod  # float64; abar[i] is ᾱ at index i (paper step i + 1)
# The zoo's flow models, loaded (on a first run, trained) before anything else runs:
# each in a cell of its own, so that a slow first training stays within the book's
# per-cell time limit.
ring_flow = zoo.load("ring-flow").model.eval()

# %%
# A few minutes on 2 cores the first time.
digits_flow = zoo.load("digits-flow").model.eval()

# %% [markdown]
# (sde-score-section)=
# ## The score
#
# The **score** of a density $p$ on $\mathbb{R}^D$ is the gradient of its logarithm,
#
# $$
# \mathbf{s}(\mathbf{x}) = \nabla_{\mathbf{x}} \log p(\mathbf{x}).
# $$ (sde-score)
#
# It points towards higher density, and it does not depend on the normalising constant: if
# $p = \tilde p / Z$, then $\nabla \log p = \nabla \log \tilde p - \nabla \log Z = \nabla \log
# \tilde p$, because $Z$ does not depend on $\mathbf{x}$. A model of the score needs no
# partition function, which is what makes it attractive {cite}`hyvarinen2005estimation`.
#
# Our test bench is a **Gaussian mixture** $p_0(\mathbf{x}) = \sum_k w_k\,
# \mathcal{N}(\mathbf{x}; \boldsymbol{\mu}_k, s_k^2\mathbf{I})$. Its noised versions stay
# mixtures: if $\mathbf{x}_t = \alpha\mathbf{x}_0 + \sigma\boldsymbol{\epsilon}$ (the form of every
# process in this chapter, with $\alpha = \sqrt{\bar\alpha_t}$, $\sigma = \sqrt{1 - \bar\alpha_t}$
# for DDPM), each component becomes $\mathcal{N}(\alpha\boldsymbol{\mu}_k, (\alpha^2 s_k^2 +
# \sigma^2)\mathbf{I})$ with the same weight. So we know $\log p_t$ and its score in closed form at
# every noise level: with responsibilities $r_k(\mathbf{x}) = w_k\mathcal{N}_k(\mathbf{x}) /
# \sum_j w_j \mathcal{N}_j(\mathbf{x})$ and component variances $v_k = \alpha^2 s_k^2 + \sigma^2$,
#
# $$
# \nabla \log p_t(\mathbf{x}) = \sum_k r_k(\mathbf{x})\,\frac{\alpha\boldsymbol{\mu}_k - \mathbf{x}}{v_k}.
# $$ (sde-mixture-score)
#
# `sde.GaussianMixture` implements it. We check it against automatic differentiation of its own
# log-density, on a ring of eight Gaussians like chapter 3's, with unequal weights:

# %%
ring_means = data.ring_modes(8, 2.0).double()
ring_weights = torch.arange(1.0, 9.0, dtype=torch.float64) / 36  # 1/36, …, 8/36
mixture = sde.GaussianMixture(
    ring_means, torch.full((8,), 0.2, dtype=torch.float64), ring_weights
)
x = mixture.sample(256, generator=torch.Generator().manual_seed(0)).double()
x_noisy = 0.8 * x + 0.6 * torch.randn(
    x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64
)
noisy = mixture.perturbed(0.8, 0.6)  # the mixture of 0.8·x_0 + 0.6·ε
x_req = x_noisy.clone().requires_grad_(True)
autograd_score = torch.autograd.grad(noisy.log_prob(x_req).sum(), x_req)[0]
check(
    "mixture score, eq. (sde-mixture-score) = autograd of log p_t",
    noisy.score(x_noisy),
    autograd_score,
    atol=1e-12,
)

# %% [markdown]
# ### Tweedie's formula
#
# The score of the *noised* density knows the best denoiser. Write $p_t(\mathbf{x}) = \int
# p_0(\mathbf{x}_0)\,\mathcal{N}(\mathbf{x}; \alpha\mathbf{x}_0, \sigma^2\mathbf{I})\,
# d\mathbf{x}_0$ and differentiate under the integral:
#
# 1. The Gaussian's gradient is itself times $(\alpha\mathbf{x}_0 - \mathbf{x})/\sigma^2$, so
#    $\nabla p_t(\mathbf{x}) = \int p_0(\mathbf{x}_0)\,\mathcal{N}(\mathbf{x}; \alpha\mathbf{x}_0,
#    \sigma^2\mathbf{I})\,(\alpha\mathbf{x}_0 - \mathbf{x})/\sigma^2\,d\mathbf{x}_0$.
# 2. Divide by $p_t(\mathbf{x})$: by Bayes' rule $p_0(\mathbf{x}_0)\mathcal{N}(\cdot)/p_t(\mathbf{x})
#    = p(\mathbf{x}_0 \mid \mathbf{x}_t = \mathbf{x})$, so
#    $\nabla \log p_t(\mathbf{x}) = (\alpha\,\mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}] - \mathbf{x})/\sigma^2$.
# 3. Solve for the posterior mean:
#
# $$
# \mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}_t] = \frac{\mathbf{x}_t + \sigma^2\,\nabla\log p_t(\mathbf{x}_t)}{\alpha}.
# $$ (sde-tweedie)
#
# 4. And since $\boldsymbol{\epsilon} = (\mathbf{x}_t - \alpha\mathbf{x}_0)/\sigma$, taking
#    conditional expectations gives the noise the best ε-predictor outputs:
#
# $$
# \mathbb{E}[\boldsymbol{\epsilon} \mid \mathbf{x}_t] = -\sigma\,\nabla \log p_t(\mathbf{x}_t).
# $$ (sde-tweedie-eps)
#
# This is Tweedie's formula {cite}`efron2011tweedie`. For the mixture the posterior mean can be
# computed another way, without the score: given the component $k$, $\mathbf{x}_0$ and
# $\mathbf{x}_t$ are jointly Gaussian, so $\mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}_t, k] =
# \boldsymbol{\mu}_k + (\alpha s_k^2 / v_k)(\mathbf{x}_t - \alpha\boldsymbol{\mu}_k)$, and
# averaging over $k$ with the responsibilities gives $\mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}_t]$.
# The two must agree:

# %%
a_, s_ = 0.8, 0.6
var_k = a_**2 * 0.2**2 + s_**2  # v_k, the same for every component here
log_resp = torch.log(ring_weights) - ((x_noisy[:, None, :] - a_ * ring_means) ** 2).sum(
    -1
) / (2 * var_k)
resp = torch.softmax(log_resp, dim=1)  # r_k(x_t), (B, K)
post_k = ring_means + (a_ * 0.2**2 / var_k) * (x_noisy[:, None, :] - a_ * ring_means)
by_components = (resp[..., None] * post_k).sum(1)
check(
    "Tweedie, eq. (sde-tweedie): (x + σ² score)/α = E[x_0 | x_t] by components",
    (x_noisy + s_**2 * noisy.score(x_noisy)) / a_,
    by_components,
    atol=1e-12,
)
check(
    "the library's posterior mean is Tweedie's",
    mixture.posterior_mean(x_noisy, a_, s_),
    by_components,
    atol=1e-12,
)

# %% [markdown]
# ### Denoising score matching is the ε-loss
#
# We cannot regress a network on $\nabla\log p_t$: we do not know it. {cite:t}`vincent2011connection`
# showed that regressing on the score of the *conditional* $q(\mathbf{x}_t \mid \mathbf{x}_0)$,
# which we do know, has the same minimiser. Write the explicit and the denoising objectives,
#
# $$
# J_{\text{ESM}}(\mathbf{s}) = \tfrac12\,\mathbb{E}_{p_t}\lVert \mathbf{s}(\mathbf{x}_t) - \nabla\log p_t(\mathbf{x}_t)\rVert^2,
# \qquad
# J_{\text{DSM}}(\mathbf{s}) = \tfrac12\,\mathbb{E}_{\mathbf{x}_0, \mathbf{x}_t}\lVert \mathbf{s}(\mathbf{x}_t) - \nabla_{\mathbf{x}_t}\log q(\mathbf{x}_t \mid \mathbf{x}_0)\rVert^2 .
# $$ (sde-dsm)
#
# 1. Expand both squares. The terms $\tfrac12\mathbb{E}\lVert\mathbf{s}\rVert^2$ are the same
#    (both average over the marginal of $\mathbf{x}_t$); the terms without $\mathbf{s}$ are
#    constants.
# 2. The cross terms are equal too:
#    $\mathbb{E}_{p_t}[\mathbf{s}^\top\nabla\log p_t] = \int \mathbf{s}^\top \nabla p_t\,d\mathbf{x}
#    = \iint p_0(\mathbf{x}_0)\,\mathbf{s}^\top\nabla_{\mathbf{x}} q(\mathbf{x} \mid \mathbf{x}_0)\,d\mathbf{x}_0\,d\mathbf{x}
#    = \mathbb{E}_{\mathbf{x}_0,\mathbf{x}_t}[\mathbf{s}^\top\nabla\log q(\mathbf{x}_t \mid \mathbf{x}_0)]$
#    (differentiate $p_t = \int p_0\,q\,d\mathbf{x}_0$ under the integral, then $\nabla q = q\nabla\log q$).
# 3. So $J_{\text{DSM}}(\mathbf{s}) = J_{\text{ESM}}(\mathbf{s}) + C$ with $C$ free of $\mathbf{s}$:
#    the same minimiser, $\mathbf{s}^* = \nabla \log p_t$.
# 4. The conditional score is $\nabla_{\mathbf{x}_t}\log q(\mathbf{x}_t \mid \mathbf{x}_0) =
#    -(\mathbf{x}_t - \alpha\mathbf{x}_0)/\sigma^2 = -\boldsymbol{\epsilon}/\sigma$.
# 5. Parameterise the score by a noise predictor, $\mathbf{s}_\theta = -\boldsymbol{\epsilon}_\theta/\sigma$. Then
#
# $$
# \lVert \mathbf{s}_\theta(\mathbf{x}_t) + \boldsymbol{\epsilon}/\sigma\rVert^2 = \frac{1}{\sigma^2}\,\lVert\boldsymbol{\epsilon}_\theta(\mathbf{x}_t) - \boldsymbol{\epsilon}\rVert^2 ,
# $$ (sde-dsm-eps)
#
# so $L_{\text{simple}}$ {eq}`rev-l-simple` is denoising score matching at every noise level,
# weighted by $\sigma_t^2$; the trained ε-network of chapter 6 is a score model through
# $\mathbf{s} = -\boldsymbol{\epsilon}_\theta/\sigma$, and its optimum is eq. {eq}`sde-tweedie-eps`.
#
# A numerical check of step 3: for two score functions $\mathbf{s}_1, \mathbf{s}_2$, the
# difference $J_{\text{DSM}}(\mathbf{s}_1) - J_{\text{DSM}}(\mathbf{s}_2)$ must equal
# $J_{\text{ESM}}(\mathbf{s}_1) - J_{\text{ESM}}(\mathbf{s}_2)$. Both are Monte Carlo averages over
# the same draws; their gap has expectation zero, and we require it within four standard errors.

# %%
gen = torch.Generator().manual_seed(2)
x0_mc = mixture.sample(200_000, generator=gen).double()
eps_mc = torch.randn(x0_mc.shape, generator=gen, dtype=torch.float64)
xt_mc = a_ * x0_mc + s_ * eps_mc
true_score = noisy.score(xt_mc)
cond_score = -eps_mc / s_  # eq. (sde-dsm-eps)
s1 = -xt_mc / (a_**2 + s_**2)  # the score of a unit Gaussian noised: a poor model
s2 = true_score + 0.3 * torch.tanh(xt_mc)  # the truth, perturbed


def half_sq(a, b):
    return 0.5 * ((a - b) ** 2).sum(1)


gap = (half_sq(s1, cond_score) - half_sq(s2, cond_score)) - (
    half_sq(s1, true_score) - half_sq(s2, true_score)
)
check(
    "J_DSM(s1) − J_DSM(s2) = J_ESM(s1) − J_ESM(s2), eq. (sde-dsm) (0 ± 4 s.e.)",
    gap.mean(),
    0.0,
    atol=4 * gap.std().item() / math.sqrt(len(gap)),
)
check(
    "the DSM optimum: E[ε | x_t] = −σ·score, eq. (sde-tweedie-eps), by components",
    -s_ * noisy.score(x_noisy),
    (x_noisy - a_ * by_components) / s_,
    atol=1e-12,
)

# %% [markdown]
# ## Langevin dynamics
#
# A score is enough to sample. The **Langevin diffusion** $d\mathbf{x} = \tfrac12\nabla\log
# p(\mathbf{x})\,dt + d\mathbf{w}$ has $p$ as its stationary density: its Fokker–Planck equation
# $\partial_t q = -\nabla\cdot(\tfrac12 q\nabla\log p) + \tfrac12\Delta q$ vanishes at $q = p$,
# because $p\nabla\log p = \nabla p$ and $-\tfrac12\nabla\cdot\nabla p + \tfrac12\Delta p = 0$.
# Its Euler–Maruyama discretisation with step $\eta$ is the (unadjusted) Langevin algorithm,
#
# $$
# \mathbf{x}_{k+1} = \mathbf{x}_k + \frac{\eta}{2}\,\nabla\log p(\mathbf{x}_k) + \sqrt{\eta}\,\mathbf{z}_k, \qquad \mathbf{z}_k \sim \mathcal{N}(\mathbf{0}, \mathbf{I}),
# $$ (sde-langevin)
#
# exact as $\eta \to 0$ and $k\eta \to \infty$. The catch {cite}`song2019generative`: the
# score says nothing about regions the chain never visits, and between two well-separated modes
# the chain almost never crosses. Start the chains spread out, and each runs to the mode of its
# own basin: the *shape* of each mode comes out right and the *weights* of the modes do not.
#
# The cure is to anneal: run Langevin first on $p$ smoothed with a large noise $\sigma_1$
# (where the modes overlap and chains cross freely), then on smaller and smaller
# $\sigma_i$, with steps $\eta_i = \varepsilon\,\sigma_i^2/\sigma_L^2$ scaled to each level:
#
# $$
# \mathbf{x} \leftarrow \mathbf{x} + \frac{\eta_i}{2}\,\nabla\log p_{\sigma_i}(\mathbf{x}) + \sqrt{\eta_i}\,\mathbf{z}, \qquad i = 1, \dots, L,
# $$ (sde-annealed)
#
# where $p_\sigma$ is $p$ convolved with $\mathcal{N}(\mathbf{0}, \sigma^2\mathbf{I})$ (for a
# mixture: the same mixture with every component's variance increased by $\sigma^2$). The experiment of {cite:t}`song2019generative`: two modes at
# $\pm(5, 5)$ with weights $\tfrac15$ and $\tfrac45$, chains started uniformly on
# $[-8, 8]^2$. We measure the share of samples in the heavy mode, and the Kullback–Leibler
# divergence of a 2-D histogram of the samples from the true density on a grid, next to the same
# histogram made from exact samples (the floor that a finite sample sets).

# %%
two_modes = sde.GaussianMixture(
    torch.tensor([[-5.0, -5.0], [5.0, 5.0]], dtype=torch.float64),
    torch.ones(2, dtype=torch.float64),
    torch.tensor([0.2, 0.8], dtype=torch.float64),
)
n_chains = 4000
start = (
    16
    * torch.rand(
        n_chains, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    - 8
)
edges = torch.linspace(
    -9, 9, 37, dtype=torch.float64
)  # a 36 × 36 grid of 0.5 × 0.5 cells
centres = (edges[1:] + edges[:-1]) / 2
grid = torch.stack(torch.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2)
p_grid = two_modes.log_prob(grid).exp()
p_grid = p_grid / p_grid.sum()  # the true cell probabilities (to the grid's resolution)


def grid_kl(points):
    """KL(true ‖ histogram) on the grid; half a count added to every cell."""
    hist = (
        torch.histogramdd(points.double(), bins=[edges, edges]).hist.reshape(-1) + 0.5
    )
    hist = hist / hist.sum()
    return float((p_grid * (p_grid.log() - hist.log())).sum())


def heavy_share(points):
    return float((points.sum(1) > 0).double().mean())


exact_kl = grid_kl(
    two_modes.sample(n_chains, generator=torch.Generator().manual_seed(4))
)
plain = sde.langevin(
    two_modes.score,
    start.clone(),
    step_size=0.1,
    steps=1000,
    generator=torch.Generator().manual_seed(5),
)
noise_levels = torch.logspace(1, -1, 10, dtype=torch.float64)  # σ_1 = 10 … σ_L = 0.1


def smoothed_score(x, sigma):
    """∇ log p_σ: the two modes convolved with N(0, σ² I) (one σ per call)."""
    return two_modes.perturbed(1.0, float(sigma[0])).score(x)


annealed = sde.annealed_langevin(
    smoothed_score,
    noise_levels,
    start.clone(),
    steps_per_level=100,
    eps=2e-3,  # η_L = 2e-3 at σ_L = 0.1; η_1 = 20 at σ_1 = 10
    generator=torch.Generator().manual_seed(5),
)
print(f"{'':<22}{'heavy-mode share':>17}{'grid KL':>10}")
for name, pts in (
    ("exact samples", None),
    ("Langevin", plain),
    ("annealed Langevin", annealed),
):
    share = 0.8 if pts is None else heavy_share(pts)
    kl = exact_kl if pts is None else grid_kl(pts)
    print(f"{name:<22}{share:>17.3f}{kl:>10.3f}")
check(
    "plain Langevin keeps each chain in its starting basin: heavy share ≈ the "
    "basin's 0.5",
    heavy_share(plain),
    heavy_share(start),
    atol=0.03,
)
check(
    "annealed Langevin recovers the weights: heavy share 0.8 ± 4 s.e.",
    heavy_share(annealed),
    0.8,
    atol=4 * math.sqrt(0.8 * 0.2 / n_chains),
)
check_le(
    "... and its grid KL is within 0.05 nats of exact samples'",
    grid_kl(annealed),
    exact_kl + 0.05,
)
glue("ch8_plain_share", heavy_share(plain))
glue("ch8_annealed_share", heavy_share(annealed))

fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), sharex=True, sharey=True)
panels = (
    (
        "exact samples",
        two_modes.sample(1000, generator=torch.Generator().manual_seed(4)),
    ),
    ("Langevin, 1,000 steps", plain[:1000]),
    ("annealed Langevin, 10 levels", annealed[:1000]),
)
for ax, (title, pts) in zip(axes, panels):
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4)
    ax.set_title(f"{title}\nheavy mode: {heavy_share(pts):.2f}", fontsize=9)
    ax.set_xlabel("$x_1$")
    ax.set_xlim(-9, 9)
    ax.set_ylim(-9, 9)
axes[0].set_ylabel("$x_2$")
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: 1,000 points each. The modes at $(-5, -5)$ (weight 0.2) and $(5, 5)$ (weight 0.8):
# plain Langevin with the exact score gets each mode's shape right and their weights wrong;
# annealing the noise gets both right.*

# %% [markdown]
# The printed table and the checks say it: plain Langevin finds both modes but gives the heavy one
# the share of its *basin* ({glue:text}`ch8_plain_share:.2f` of the chains started nearer to
# it), annealing gives it its weight ({glue:text}`ch8_annealed_share:.2f` against 0.8). The
# noise levels are what the rest of the chapter makes continuous.

# %% [markdown]
# (sde-sde-section)=
# ## The SDE view
#
# ### Forward SDEs and their marginals
#
# Let the noise grow continuously over $t \in [0, 1]$. An Itô stochastic differential equation
#
# $$
# d\mathbf{x} = \mathbf{f}(\mathbf{x}, t)\,dt + g(t)\,d\mathbf{w}
# $$ (sde-forward)
#
# says: over a short time $dt$, move by the drift $\mathbf{f}\,dt$ and add Gaussian noise of
# variance $g^2\,dt$ per coordinate ($\mathbf{w}$ is a Brownian motion). {cite:t}`song2021sde`
# name three, all with a drift linear in $\mathbf{x}$, $\mathbf{f} = a(t)\mathbf{x}$, so that the
# marginals are Gaussian: $\mathbf{x}_t = \alpha(t)\mathbf{x}_0 + \sigma(t)\boldsymbol{\epsilon}$.
# For such an SDE, the mean $m$ and variance $v$ of one coordinate given $\mathbf{x}_0$ obey two
# ordinary differential equations: taking expectations of $dx = a x\,dt + g\,dw$ gives
# $\dot m = a\,m$, and Itô's rule for $x^2$ gives $d(x^2) = (2a x^2 + g^2)\,dt + 2xg\,dw$, so
# $\dot v = 2a\,v + g^2$. With $B(t) = \int_0^t \beta(s)\,ds = \beta_{\min} t +
# \tfrac12(\beta_{\max} - \beta_{\min})t^2$:
#
# - **VP** (variance preserving), DDPM's limit:
#
# $$
# d\mathbf{x} = -\tfrac12\beta(t)\,\mathbf{x}\,dt + \sqrt{\beta(t)}\,d\mathbf{w},\qquad \beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min}).
# $$ (sde-vp)
#
#   The moment equations $\dot m = -\tfrac12\beta m$, $\dot v = -\beta v + \beta$ integrate to
#
# $$
# \alpha(t) = e^{-B(t)/2}, \qquad \sigma(t)^2 = 1 - e^{-B(t)} = 1 - \alpha(t)^2 .
# $$ (sde-vp-marginal)
#
#   The variance of $\mathbf{x}_t$ stays 1 if that of $\mathbf{x}_0$ is 1: hence the name.
# - **sub-VP**, the same drift with less noise, $g(t)^2 = \beta(t)\,(1 - e^{-2B(t)})$:
#
# $$
# d\mathbf{x} = -\tfrac12\beta(t)\,\mathbf{x}\,dt + \sqrt{\beta(t)\,(1 - e^{-2B(t)})}\,d\mathbf{w}, \qquad \alpha(t) = e^{-B(t)/2},\ \ \sigma(t) = 1 - e^{-B(t)} .
# $$ (sde-subvp)
#
#   (Check: $v = (1 - e^{-B})^2$ gives $\dot v = 2(1 - e^{-B})e^{-B}\beta$, and
#   $-\beta v + \beta(1 - e^{-2B}) = \beta(1 - e^{-B})\big(-(1 - e^{-B}) + (1 + e^{-B})\big)$, the same.)
# - **VE** (variance exploding), the limit of the noise-conditional score networks of
#   {cite:t}`song2019generative`: no drift, geometric noise levels
#   $\sigma_v(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t$,
#
# $$
# d\mathbf{x} = \sqrt{\frac{d\,\sigma_v(t)^2}{dt}}\,d\mathbf{w}, \qquad \alpha(t) = 1,\ \ \sigma(t)^2 = \sigma_v(t)^2 - \sigma_v(0)^2 .
# $$ (sde-ve)
#
# The check integrates the two moment equations numerically (SciPy's adaptive Runge–Kutta) with
# each process's own drift and $g$, and compares with the library's closed-form marginals:

# %%
processes = {
    "VP": sde.VPSDE(beta_min=0.1, beta_max=20.0),
    "sub-VP": sde.SubVPSDE(beta_min=0.1, beta_max=20.0),
    "VE": sde.VESDE(sigma_min=0.01, sigma_max=50.0),
}
t_grid = np.linspace(0.0, 1.0, 11)
for name, process in processes.items():

    def moments(t, mv, process=process):
        tt = torch.tensor([t], dtype=torch.float64)
        drift, g = process.sde(torch.ones(1, 1, dtype=torch.float64), tt)
        a = drift.item()  # f = a(t)·x, read at x = 1
        return [a * mv[0], 2 * a * mv[1] + g.item() ** 2]

    sol = solve_ivp(
        moments, (0.0, 1.0), [1.0, 0.0], t_eval=t_grid, rtol=1e-10, atol=1e-12
    )
    alpha, sigma = process.marginal(torch.tensor(t_grid))
    check(
        f"{name}: the moment ODEs give the closed-form α(t) and σ(t)²",
        np.stack([sol.y[0], sol.y[1]]),
        torch.stack([alpha, sigma**2]),
        rtol=1e-7,
        atol=1e-9,
    )

# %% [markdown]
# ### DDPM's chain is the VP SDE, discretised
#
# Take $N$ steps of size $\Delta t = 1/N$ and set $\beta_i = \beta(t_i)\,\Delta t$. DDPM's step
# {eq}`fwd-reparam`, one step at a time, is
# $\mathbf{x}_i = \sqrt{1 - \beta_i}\,\mathbf{x}_{i-1} + \sqrt{\beta_i}\,\mathbf{z}$, and
#
# 1. $\sqrt{1 - \beta(t_i)\Delta t} = 1 - \tfrac12\beta(t_i)\Delta t + O(\Delta t^2)$ (Taylor);
# 2. so $\mathbf{x}_i - \mathbf{x}_{i-1} = -\tfrac12\beta(t_i)\,\mathbf{x}_{i-1}\Delta t + \sqrt{\beta(t_i)}\,\sqrt{\Delta t}\,\mathbf{z} + O(\Delta t^2)$,
# 3. which is one Euler–Maruyama step of {eq}`sde-vp` (the noise of a Brownian increment over
#    $\Delta t$ is $\sqrt{\Delta t}\,\mathbf{z}$). So
#
# $$
# \beta_i = \frac{\beta(t_i)}{N}, \qquad \beta_{\min} = N\beta_1, \quad \beta_{\max} = N\beta_N ,
# $$ (sde-ddpm-map)
#
# and DDPM's linear schedule ($\beta_1 = 10^{-4}$, $\beta_N = 0.02$, $N = 1000$) is the VP SDE with
# $\beta_{\min} = 0.1$ and $\beta_{\max} = 20$, the values {cite:t}`song2021sde` use. The chain's
# $\bar\alpha_i$ and the SDE's $\alpha(t)^2$ then agree to $O(1/N)$: $\log\bar\alpha_i =
# \sum_{j \le i}\log(1 - \beta_j) = -\sum_{j \le i}\beta_j - \tfrac12\sum_{j \le i}\beta_j^2 - \dots$,
# a Riemann sum of $-B(t_i)$ plus a term of order $N \cdot (1/N)^2$. The next cell measures both.
#
# To use a network trained on the chain at a continuous time we need the step at which the chain
# has the same noise level. Both are indexed by the log signal-to-noise ratio
# $\lambda = \log(\alpha^2/\sigma^2)$, which decreases along both; the fractional index
# $\tau(t)$ interpolates linearly in $\lambda$ between the two neighbouring steps:
#
# $$
# \tau(t) = i + \frac{\lambda_i - \lambda(t)}{\lambda_i - \lambda_{i+1}}, \qquad \lambda_{i+1} \le \lambda(t) \le \lambda_i ,
# $$ (sde-vp-index)
#
# with $\lambda_i = \log(\bar\alpha_i / (1 - \bar\alpha_i))$ (`GaussianDiffusion.fractional_timestep`).
# The network's time embedding (chapter 6) is a smooth function of its input, so a fractional
# index is a valid input, between two that it was trained on.

# %%
vp = sde.VPSDE.from_diffusion(diff)
check(
    "eq. (sde-ddpm-map): the linear schedule is the VP SDE's β(t_i)/N (β_min 0.1, "
    "β_max 20)",
    [vp.beta_min, vp.beta_max],
    [0.1, 20.0],
    atol=1e-12,
)
check(
    "... the VP SDE discretised with N = 1000 is DDPM's schedule",
    vp.discrete_betas(T),
    diff.betas,
    atol=1e-18,
)
t_steps = torch.arange(1, T + 1, dtype=torch.float64) / T  # t_i = i/N for paper step i
alpha_c, _ = vp.marginal(t_steps)
log_gap = (torch.log(abar) - torch.log(alpha_c**2)).abs()
print(
    f"|log ᾱ_i − log α(i/N)²|: largest {log_gap.max():.3g} (at the last step, where "
    "log ᾱ = "
    f"{torch.log(abar[-1]):.2f})"
)
check(
    "Σ β_i = B(1): the linear schedule's sum is the integral of β(t) exactly",
    diff.betas.sum(),
    vp.beta_min + (vp.beta_max - vp.beta_min) / 2,
    rtol=1e-12,
)
check(
    "... so the gap at the last step is the log's next term, ½Σβ_i² ≈ (β_max² + "
    "β_max β_min + "
    "β_min²)/(6N): O(1/N)",
    log_gap[-1],
    (vp.beta_max**2 + vp.beta_max * vp.beta_min + vp.beta_min**2) / (6 * T),
    rtol=0.02,
)
tau = diff.fractional_timestep(alpha_c**2)
print(
    f"τ(t_i) − (i − 1): from {(tau - torch.arange(T)).min():.2f} "
    f"to {(tau - torch.arange(T)).max():.2f} steps"
)
check(
    "eq. (sde-vp-index) at the chain's own levels returns the integer steps",
    diff.fractional_timestep(abar),
    torch.arange(T, dtype=torch.float64),
    atol=1e-9,
)

# %% [markdown]
# (sde-reverse-section)=
# ### Reversing an SDE
#
# To sample we run the noising backwards. {cite:t}`anderson1982reverse` showed that the reverse of
# {eq}`sde-forward` is again a diffusion, with the same $g$ and a drift corrected by the score:
#
# $$
# d\mathbf{x} = \big[\mathbf{f}(\mathbf{x}, t) - g(t)^2\,\nabla_{\mathbf{x}}\log p_t(\mathbf{x})\big]\,dt + g(t)\,d\bar{\mathbf{w}},
# $$ (sde-reverse)
#
# run from $t = 1$ down to $0$ ($dt < 0$, $\bar{\mathbf{w}}$ a Brownian motion in reversed time).
# A derivation through the Fokker–Planck equation, which says how the density of
# {eq}`sde-forward` evolves, $\partial_t p = -\nabla\cdot(\mathbf{f}p) + \tfrac12 g^2\Delta p$:
#
# 1. Write the diffusion term as a flux: $\tfrac12 g^2\Delta p = \nabla\cdot(\tfrac12 g^2\,p\,\nabla\log p)$,
#    because $p\nabla\log p = \nabla p$. So
#    $\partial_t p = -\nabla\cdot\big[(\mathbf{f} - \tfrac12 g^2\nabla\log p)\,p\big]$.
# 2. In reversed time $s = 1 - t$, the density $q_s = p_{1-s}$ obeys
#    $\partial_s q = +\nabla\cdot\big[(\mathbf{f} - \tfrac12 g^2\nabla\log q)\,q\big]$.
# 3. Add and subtract $\tfrac12 g^2\Delta q = \nabla\cdot(\tfrac12 g^2 q\nabla\log q)$:
#    $\partial_s q = -\nabla\cdot\big[(-\mathbf{f} + g^2\nabla\log q)\,q\big] + \tfrac12 g^2\Delta q$.
# 4. That is the Fokker–Planck equation of the SDE $d\mathbf{x} = (-\mathbf{f} + g^2\nabla\log q)\,ds + g\,d\mathbf{w}$
#    in $s$; written in $t$ ($ds = -dt$) it is {eq}`sde-reverse`.
#
# The Euler–Maruyama discretisation from $t$ to $t - \Delta t$,
#
# $$
# \mathbf{x}_{t - \Delta t} = \mathbf{x}_t - \big[\mathbf{f}(\mathbf{x}_t, t) - g(t)^2\,\mathbf{s}(\mathbf{x}_t, t)\big]\Delta t + g(t)\sqrt{\Delta t}\,\mathbf{z},
# $$ (sde-em)
#
# is the simplest sampler (`sde.euler_maruyama`); for the VP SDE it is DDPM's ancestral step up
# to $O(\Delta t^2)$ {cite}`song2021sde`. A **predictor–corrector** sampler (`sde.predictor_corrector`)
# follows each such step (the predictor) with a few Langevin steps {eq}`sde-langevin` at the new
# time (the corrector), which pull the samples back towards $p_t$ and so correct the predictor's
# discretisation error; the corrector's step is set by a target signal-to-noise ratio $r$,
# $\eta = 2\alpha_i\,(r\,\lVert\mathbf{z}\rVert / \lVert\mathbf{s}\rVert)^2$, as in
# {cite:t}`song2021sde`'s code:
#
# $$
# \text{predictor: eq. (sde-em)}, \qquad \text{corrector: } \mathbf{x} \leftarrow \mathbf{x} + \tfrac{\eta}{2}\,\mathbf{s}(\mathbf{x}, t) + \sqrt{\eta}\,\mathbf{z}.
# $$ (sde-pc)
#
# On the ring mixture with its exact score under the VP SDE both should reproduce the unequal
# weights of the eight modes, and each mode's spread (0.2). We measure the total variation between
# the sampled shares and the weights, and the spread, against the same figures for exact samples:

# %%
ring_score = mixture.score_fn(vp)  # the exact ∇ log p_t of the ring under the VP SDE


def mode_stats(points):
    """(total variation of the mode shares from the weights, mean within-mode std)."""
    nearest = torch.cdist(points.double(), ring_means).argmin(1)
    shares = torch.bincount(nearest, minlength=8).double() / len(points)
    spread = (points.double() - ring_means[nearest]).std().item()
    return 0.5 * (shares - ring_weights).abs().sum().item(), spread


n_ring = 4000
sde_rows = {
    "exact samples": mode_stats(
        mixture.sample(n_ring, generator=torch.Generator().manual_seed(6))
    )
}
for steps in (100, 1000):
    for name, sampler in (
        ("Euler–Maruyama", sde.euler_maruyama),
        ("predictor–corrector", sde.predictor_corrector),
    ):
        pts = sampler(
            ring_score,
            vp,
            (n_ring, 2),
            steps=steps,
            generator=torch.Generator().manual_seed(7),
            dtype=torch.float64,
        )
        sde_rows[f"{name}, {steps} steps"] = mode_stats(pts)
print(f"{'':<34}{'TV of shares':>13}{'spread':>8}")
for name, (tv, spread) in sde_rows.items():
    print(f"{name:<34}{tv:>13.3f}{spread:>8.3f}")
tv_exact = sde_rows["exact samples"][0]
for name, (tv, spread) in sde_rows.items():
    if name.endswith("1000 steps"):
        check_le(
            f"{name}: mode shares as close to the weights as exact samples' (+0.02)",
            tv,
            tv_exact + 0.02,
        )
        check(f"{name}: within-mode spread 0.2", spread, 0.2, atol=0.01)

# %% [markdown]
# (sde-pf-section)=
# ## The probability-flow ODE and exact likelihood
#
# Step 1 of the reversal already contains a second way back. The density of {eq}`sde-forward`
# obeys $\partial_t p = -\nabla\cdot[(\mathbf{f} - \tfrac12 g^2\nabla\log p_t)\,p]$: a continuity
# equation with no diffusion term, the equation of a density carried by the deterministic flow
#
# $$
# \frac{d\mathbf{x}}{dt} = \mathbf{f}(\mathbf{x}, t) - \tfrac12\,g(t)^2\,\nabla_{\mathbf{x}}\log p_t(\mathbf{x}) .
# $$ (sde-pf-ode)
#
# Points moved by this **probability-flow ODE** {cite}`song2021sde` have, at every $t$, the same
# marginals as the SDE. Chapter 7 met it from the other side: DDIM with $\eta = 0$ is its Euler
# method. Run backwards it is a deterministic map from noise to data; run forwards, an invertible
# map from data to noise: a continuous normalising flow {cite}`chen2018neural`, whose
# likelihood we can compute.
#
# **For Gaussian data it is an affine map.** If $\mathbf{x}_0 \sim \mathcal{N}(\boldsymbol{\mu},
# s^2\mathbf{I})$, then $p_t = \mathcal{N}(\alpha\boldsymbol{\mu}, (\alpha^2s^2 + \sigma^2)\mathbf{I})$,
# and the flow keeps the standardised coordinate $(\mathbf{x} - \alpha\boldsymbol{\mu})/\sqrt{\alpha^2 s^2 + \sigma^2}$
# constant (differentiate it along {eq}`sde-pf-ode` with $\mathbf{f} = \dot\alpha/\alpha\,\mathbf{x}$ and
# $g^2 = d\sigma^2/dt - 2(\dot\alpha/\alpha)\sigma^2$: the derivative vanishes). The library's ODE
# sampler must reproduce that map:

# %%
mu_g, s_g = torch.tensor([0.5, -1.0], dtype=torch.float64), 0.3
gauss = sde.GaussianMixture(mu_g[None], torch.tensor([s_g], dtype=torch.float64))
z = torch.randn(16, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
t_lo = 1e-3
a_hi, sig_hi = vp.marginal(torch.tensor([vp.t_end], dtype=torch.float64))
a_lo, sig_lo = vp.marginal(torch.tensor([t_lo], dtype=torch.float64))
x_hi = (
    a_hi * mu_g + torch.sqrt(a_hi**2 * s_g**2 + sig_hi**2) * z
)  # a draw of p_1, standardised z
closed = a_lo * mu_g + torch.sqrt(a_lo**2 * s_g**2 + sig_lo**2) * z
ode = sde.probability_flow_sample(
    gauss.score_fn(vp), vp, x_hi, t_min=t_lo, rtol=1e-8, atol=1e-8
)
check(
    "the probability-flow ODE maps p_1 to p_t affinely (Gaussian data)",
    ode["x0"],
    closed,
    atol=1e-5,
)
print(f"({ode['nfe']} score evaluations)")

# %% [markdown]
# ### The instantaneous change of variables
#
# Let $\mathbf{x}(t)$ follow $d\mathbf{x}/dt = \mathbf{h}(\mathbf{x}, t)$ and let $p_t$ be the
# density it carries. Then:
#
# 1. The continuity equation: $\partial_t p_t = -\nabla\cdot(\mathbf{h}\,p_t) = -\mathbf{h}\cdot\nabla p_t - p_t\,\nabla\cdot\mathbf{h}$.
# 2. Along a path, the chain rule: $\frac{d}{dt}\log p_t(\mathbf{x}(t)) = \big(\partial_t p_t + \mathbf{h}\cdot\nabla p_t\big)/p_t$.
# 3. Substitute 1 into 2: the $\mathbf{h}\cdot\nabla p_t$ terms cancel, leaving
#
# $$
# \frac{d}{dt}\log p_t(\mathbf{x}(t)) = -\nabla\cdot\mathbf{h}(\mathbf{x}(t), t) .
# $$ (sde-cov)
#
# 4. Integrate from $t_{\min}$ to $1$ along the path that starts at the data point:
#
# $$
# \log p_{t_{\min}}(\mathbf{x}) = \log p_1(\mathbf{x}(1)) + \int_{t_{\min}}^{1}\nabla\cdot\mathbf{h}(\mathbf{x}(t), t)\,dt ,
# $$ (sde-likelihood)
#
# with $\mathbf{h}$ the drift of {eq}`sde-pf-ode` and $p_1$ the prior $\mathcal{N}(\mathbf{0}, \mathbf{I})$.
# This is the continuous version of a flow's change of variables $\log p(\mathbf{x}) = \log
# p(\mathbf{z}) + \log\lvert\det\partial\mathbf{z}/\partial\mathbf{x}\rvert$
# {cite}`chen2018neural,grathwohl2019ffjord`: the log-determinant becomes an integral of a trace
# (a divergence is the trace of the Jacobian). `sde.ode_log_likelihood` solves the ODE for
# $\mathbf{x}(t)$ and the integral together with SciPy's adaptive Runge–Kutta method (`solve_ivp`),
# and computes the divergence exactly by automatic differentiation, one backward pass per
# dimension. (We stop at $t_{\min} = 10^{-5}$ because the VP score diverges as $t \to 0$ for data
# on a lower-dimensional set; the answer is the density of the very slightly noised $p_{t_{\min}}$.)
#
# With the exact score of a mixture, the result must be the mixture's own log-density at
# $t_{\min}$, which we know: on the ring, and on a mixture in 64 dimensions (the size of a digit).
# One caveat is not numerical: the prior $\mathcal{N}(\mathbf{0}, \mathbf{I})$ is the VP SDE's
# $p_1$ only approximately, since $\alpha(1) = e^{-B(1)/2} \approx 0.0066$ leaves a trace of the
# data. For data with mean zero the mismatch is of order $\alpha(1)^2$, negligible; so we take
# both mixtures centred (the ring with equal weights). With the unequal weights of the ring above,
# whose mean is not zero, the error is about $10^{-2}$ nats (exercise 6).

# %%
gen = torch.Generator().manual_seed(9)
means_64 = 0.5 * torch.randn(4, 64, generator=gen, dtype=torch.float64)
means_64 = means_64 - means_64.mean(
    0
)  # centred: the prior N(0, I) is then p_1 up to α(1)² terms
mixture_64 = sde.GaussianMixture(
    means_64, torch.tensor([0.5, 0.4, 0.6, 0.3], dtype=torch.float64)
)
likelihood_rows = {}
alpha_1, _ = vp.marginal(torch.tensor([1.0], dtype=torch.float64))
check(
    "the VP prior's leftover signal: α(1) = exp(−B(1)/2) ≈ 0.0066",
    alpha_1,
    0.0066,
    atol=5e-5,
)
ring_even = sde.GaussianMixture(
    ring_means, torch.full((8,), 0.2, dtype=torch.float64)
)  # centred
for name, mix, n_pts in (
    ("ring, 2-D", ring_even, 64),
    ("mixture, 64-D", mixture_64, 16),
):
    pts = mix.sample(n_pts, generator=torch.Generator().manual_seed(10)).double()
    t0 = time.perf_counter()
    # tolerances well below the 1e-3 nats we require (the default 1e-5 leaves about 1e-3
    # in 64-D)
    out = sde.ode_log_likelihood(
        mix.score_fn(vp), vp, pts, divergence="exact", rtol=1e-7, atol=1e-7
    )
    seconds = time.perf_counter() - t0
    exact = mix.log_prob_fn(vp)(pts, torch.full((n_pts,), 1e-5, dtype=torch.float64))
    err = (out["log_likelihood"] - exact).abs().max().item()
    likelihood_rows[name] = (err, out["nfe"], seconds)
    print(
        f"{name}: largest error {err:.2e} nats per point ({out['nfe']} evaluations, "
        f"{seconds:.1f} s)"
    )
    check(
        f"{name}: probability-flow log-likelihood = closed form, ≤ 1e-3 nats",
        out["log_likelihood"],
        exact,
        atol=1e-3,
    )
glue("ch8_ll_err_2d", likelihood_rows["ring, 2-D"][0])
glue("ch8_ll_err_64d", likelihood_rows["mixture, 64-D"][0])

# %% [markdown]
# ### The Skilling–Hutchinson trace estimator
#
# One backward pass per dimension is fine for 64 numbers and hopeless for an image of 196,608.
# For any matrix $\mathbf{J}$ and a random probe $\mathbf{v}$ with $\mathbb{E}[\mathbf{v}\mathbf{v}^\top] = \mathbf{I}$
# (Rademacher signs $\pm1$, or standard normal),
#
# $$
# \mathbb{E}[\mathbf{v}^\top\mathbf{J}\mathbf{v}] = \mathbb{E}\Big[\sum_{ij} v_i J_{ij} v_j\Big] = \sum_{ij} J_{ij}\,\mathbb{E}[v_i v_j] = \sum_i J_{ii} = \operatorname{tr}\mathbf{J} ,
# $$ (sde-hutchinson)
#
# and $\mathbf{v}^\top\mathbf{J}\mathbf{v} = \mathbf{v}^\top\nabla(\mathbf{h}\cdot\mathbf{v})$ costs
# *one* backward pass whatever the dimension {cite}`skilling1989eigenvalues,hutchinson1989stochastic`.
# It is unbiased; its variance, for the symmetric part $\mathbf{A} = (\mathbf{J} + \mathbf{J}^\top)/2$,
# is $2\sum_{i \ne j} A_{ij}^2$ for Rademacher probes and $2\sum_{ij}A_{ij}^2$ for Gaussian ones
# (expand $\mathbb{E}[(\mathbf{v}^\top\mathbf{A}\mathbf{v})^2]$ with $\mathbb{E}[v_i^4] = 1$ or $3$);
# averaging $P$ probes divides it by $P$. Checked for the probability-flow drift of the 64-D
# mixture at $t = 0.3$, at a point halfway between two of its modes (inside one mode the Jacobian
# is nearly a multiple of $\mathbf{I}$, and Rademacher probes would have almost no variance):

# %%
t_pt = torch.tensor([0.3], dtype=torch.float64)
alpha_pt, _ = vp.marginal(t_pt)
x_pt = (
    alpha_pt * (means_64[0] + means_64[1])[None] / 2
)  # between two modes: a coupled Jacobian
score_64 = mixture_64.score_fn(vp)


def pf_drift(x, t):
    return vp.probability_flow_drift(x, t, score_64(x, t))


J = torch.autograd.functional.jacobian(lambda y: pf_drift(y[None], t_pt)[0], x_pt[0])
A = (J + J.T) / 2
n_probes = 20_000
gen = torch.Generator().manual_seed(12)
rademacher = torch.randint(0, 2, (n_probes, 1, 64), generator=gen).double() * 2 - 1
gaussian = torch.randn(n_probes, 1, 64, generator=gen, dtype=torch.float64)
per_probe = {
    "Rademacher": ((rademacher[:, 0] @ J) * rademacher[:, 0]).sum(
        1
    ),  # vᵀ J v, one per probe
    "Gaussian": ((gaussian[:, 0] @ J) * gaussian[:, 0]).sum(1),
}
predicted_var = {
    "Rademacher": 2 * ((A**2).sum() - (A.diag() ** 2).sum()),
    "Gaussian": 2 * (A**2).sum(),
}
trace = J.trace()
for name, est in per_probe.items():
    se = est.std().item() / math.sqrt(n_probes)
    print(
        f"{name:>10}: mean {est.mean():9.4f} (exact trace {trace:.4f}, s.e. "
        f"{se:.4f});\n"
        f"{'':>12}variance {est.var():8.3f}, predicted {predicted_var[name]:8.3f}"
    )
    check(
        f"{name} probes: unbiased, within 2 s.e. of the exact divergence",
        est.mean(),
        trace,
        atol=2 * se,
    )
    # the sample variance of 20,000 draws has a relative s.e. of about √(2/20000) ≈ 1%
    check(
        f"{name} probes: variance 2Σ A_ij² as derived (±5%)",
        est.var(),
        predicted_var[name],
        rtol=0.05,
    )
check(
    "sde.divergence with the same Rademacher probes = the mean of vᵀJv",
    sde.divergence(pf_drift, x_pt, t_pt, method="hutchinson", probes=rademacher[:200]),
    per_probe["Rademacher"][:200].mean(),
    rtol=1e-10,
)
check(
    "sde.divergence, exact = the trace of the autograd Jacobian",
    sde.divergence(pf_drift, x_pt, t_pt, method="exact"),
    trace,
    rtol=1e-10,
)
probe_counts = [1, 4, 16, 64]
variances = []
for P in probe_counts:
    means = per_probe["Rademacher"][: (n_probes // P) * P].reshape(-1, P).mean(1)
    variances.append(means.var().item())
print(
    "variance of the P-probe mean:",
    ", ".join(f"P={P}: {v:.3f}" for P, v in zip(probe_counts, variances)),
)
check(
    "variance ∝ 1/P: P·variance constant across P = 1, 4, 16, 64 (±15%)",
    np.array(variances) * np.array(probe_counts),
    variances[0],
    rtol=0.15,
)
glue("ch8_hutch_var1", variances[0])

# %% [markdown]
# ### Bits per dimension of `digits-ddpm`, read as a continuous-time model
#
# The network of chapter 6 is a score model, $\mathbf{s}(\mathbf{x}, t) =
# -\boldsymbol{\epsilon}_\theta(\mathbf{x}, \tau(t))/\sigma(t)$ with the index map
# {eq}`sde-vp-index` (`sde.score_from_eps`), and the probability-flow ODE of the VP SDE
# {eq}`sde-ddpm-map` turns it into a density. Two details before we compare it with the discrete
# bound {eq}`rev-bpd` of chapters 5 and 6.
#
# **Dequantisation.** The digits are discrete: on the 8-bit grid of chapter 5 each pixel takes one
# of the 256 values $-1 + 2k/255$, and a density says nothing about a point. The probability of
# the bin around $\mathbf{x}$ (width $\Delta = 2/255$ per pixel) is
# $P(\mathbf{x}) = \int_{\text{bin}} p(\mathbf{y})\,d\mathbf{y} = \Delta^D\,\mathbb{E}_{\mathbf{u}}[p(\mathbf{x} + \mathbf{u})]$,
# $\mathbf{u}$ uniform on $[-\Delta/2, \Delta/2]^D$, and Jensen's inequality gives
#
# $$
# -\frac{\log_2 P(\mathbf{x})}{D} \le \mathbb{E}_{\mathbf{u}}\!\left[-\frac{\log_2 p(\mathbf{x} + \mathbf{u})}{D}\right] + \log_2\frac{255}{2} .
# $$ (sde-dequant)
#
# The constant is the familiar "$\log 256$ per dimension" in this book's scaling: in pixel units
# ($0, 1, \dots, 255$, bins of width 1) it would be 0; the map to $[-1, 1]$ multiplies every
# coordinate by $2/255$, which divides the density by $(2/255)^D$ and adds
# $\log_2(255/2) \approx 6.99$ bits per dimension; papers that scale to $[0, 1]$ with bins of
# $1/256$ add $\log_2 256 = 8$ instead {cite}`theis2016note`. A check that the constant is right:
# the uniform density on the union of all bins, $[-1 - 1/255,\, 1 + 1/255]^D$, must come out at
# exactly 8 bits per dimension (256 equally likely levels).
#
# **Which time.** The ODE gives the density of $p_{t_{\min}}$, the data blurred by
# $\sigma(t_{\min}) \approx 10^{-3}$, a quarter of a bin: small enough not to matter at the
# resolution of the bins.

# %%
half_bin = 1 / 255
volume_per_dim = 2 + 2 * half_bin  # the union of the 256 bins of width 2/255
uniform_bits = -math.log2(1 / volume_per_dim) + math.log2(
    255 / 2
)  # eq. (sde-dequant), per dim
check(
    "the uniform density over all 256 bins costs log₂ 256 = 8 bits/dim",
    uniform_bits,
    8.0,
    atol=1e-12,
)

ddpm = zoo.load("digits-ddpm")
net = ddpm.model.eval()
for p in net.parameters():
    p.requires_grad_(False)
test_digits = data.digits("test").images
x_q = data.quantise(test_digits[:64])  # the 8-bit grid, as in chapter 6
u = (torch.rand(x_q.shape, generator=torch.Generator().manual_seed(13)) - 0.5) * (
    2 / 255
)
x_deq = x_q + u  # uniform dequantisation
score_ddpm = sde.score_from_eps(net, diff)
D_pix = x_q[0].numel()
nats_to_bpd = lambda ll: -ll / (D_pix * math.log(2)) + math.log2(255 / 2)  # noqa: E731
t0 = time.perf_counter()
ode_ddpm = sde.ode_log_likelihood(
    score_ddpm,
    vp,
    x_deq,
    divergence="hutchinson",  # exact: 64 backward passes per step, 64 times the cost
    num_probes=1,
    rtol=1e-4,  # the solver's error is then far below the spread between digits
    atol=1e-4,
    generator=torch.Generator().manual_seed(14),
)
ode_seconds = time.perf_counter() - t0
bpd_ode = nats_to_bpd(ode_ddpm["log_likelihood"])
t0 = time.perf_counter()
with torch.no_grad():
    vlb = diff.bits_per_dim(net, x_q, generator=torch.Generator().manual_seed(0))[
        "total"
    ]
vlb_seconds = time.perf_counter() - t0
paired = (vlb - bpd_ode).double()
print(
    f"64 test digits, bits/dim: probability-flow ODE {bpd_ode.mean():.3f} ± "
    f"{bpd_ode.std() / 8:.3f} "
    f"({ode_ddpm['nfe']} evaluations, {ode_seconds:.0f} s);\n"
    f"  discrete VLB (chapters 5–6) {vlb.mean():.3f} ± {vlb.std() / 8:.3f} "
    f"({vlb_seconds:.0f} s);\n"
    f"  VLB − ODE {paired.mean():.3f} ± {paired.std() / 8:.3f} (paired s.e.)"
)
glue("ch8_bpd_ode", bpd_ode.mean().item())
glue("ch8_bpd_vlb", vlb.mean().item())
glue("ch8_bpd_gap", paired.mean().item())
glue("ch8_bpd_gap_se", paired.std().item() / 8)
check_outcome(
    "digits-ddpm: the probability-flow bits/dim are below the discrete VLB (VLB − ODE)",
    paired.mean(),
    at_least=0.0,
)

# %% [markdown]
# On these 64 digits the continuous reading of the same network costs
# {glue:text}`ch8_bpd_ode:.3f` bits per dimension against the discrete bound's
# {glue:text}`ch8_bpd_vlb:.3f`: {glue:text}`ch8_bpd_gap:.2f` bits less, with a paired standard error of
# {glue:text}`ch8_bpd_gap_se:.2f` ({cite:t}`song2021sde` report the same direction on CIFAR-10).
# Why it can be smaller, although both describe one network:
#
# - They are codelengths of **two different models** built from it. The VLB is a bound on the
#   likelihood of the discrete chain, whose reverse steps are Gaussians with *fixed* variances
#   (chapter 5) and whose last step is a discretised decoder; the ODE is the exact likelihood of a
#   deterministic flow that uses the same $\boldsymbol{\epsilon}_\theta$ as a score.
# - The VLB carries a **variational gap**: the KL between the true posterior over the path
#   $\mathbf{x}_{1:T}$ and the forward process, which no choice of $\theta$ removes when the
#   reverse variances are fixed. The ODE has no latent path to marginalise, hence no such gap.
# - The ODE pays instead for **dequantisation** (the Jensen gap of {eq}`sde-dequant`): it spreads
#   each bin's probability over the bin's volume, which a model of continuous data does only
#   approximately. Both numbers are valid upper bounds on the discrete codelength of their model,
#   so the smaller one is the better code for the digits.
# %% [markdown]
# (sde-edm-section)=
# ## EDM: the design space of samplers
#
# {cite:t}`karras2022edm` ("Elucidating the Design space of diffusion Models") strip the processes
# above down to one variable: the noise level $\sigma$ of the *unscaled* data.
#
# **The $\sigma$-parameterisation.** Divide $\mathbf{x}_t = \alpha\mathbf{x}_0 + \sigma_t\boldsymbol{\epsilon}$
# by $\alpha$: $\tilde{\mathbf{x}} = \mathbf{x}_t/\alpha = \mathbf{x}_0 + (\sigma_t/\alpha)\,\boldsymbol{\epsilon}$.
# For the VP process, $\alpha^2 = \bar\alpha$ and $\sigma_t^2 = 1 - \bar\alpha$, so
#
# $$
# \tilde{\mathbf{x}} = \mathbf{x}_0 + \sigma\boldsymbol{\epsilon}, \qquad \sigma = \sqrt{\frac{1 - \bar\alpha}{\bar\alpha}}, \qquad \bar\alpha = \frac{1}{1 + \sigma^2}, \qquad \mathbf{x}_t = \frac{\tilde{\mathbf{x}}}{\sqrt{1 + \sigma^2}} .
# $$ (sde-edm-vp)
#
# For `digits-ddpm`, $\sigma$ runs from $\sqrt{\beta_1/(1-\beta_1)} = 0.01$ to about 157.
#
# **The ODE in $\sigma$.** $\tilde{\mathbf{x}}$ is a VE process (no drift, $g^2 = d\sigma^2/dt$),
# so by {eq}`sde-pf-ode` $d\tilde{\mathbf{x}}/dt = -\tfrac12\,(d\sigma^2/dt)\,\nabla\log p =
# -\sigma\dot\sigma\,\nabla\log p$. Change the variable to $\sigma$ and use Tweedie {eq}`sde-tweedie`
# with $\alpha = 1$, $\nabla \log p(\tilde{\mathbf{x}}; \sigma) = (D(\tilde{\mathbf{x}}; \sigma) - \tilde{\mathbf{x}})/\sigma^2$
# with the denoiser $D = \mathbb{E}[\mathbf{x}_0 \mid \tilde{\mathbf{x}}]$:
#
# $$
# \frac{d\tilde{\mathbf{x}}}{d\sigma} = -\sigma\,\nabla\log p(\tilde{\mathbf{x}}; \sigma) = \frac{\tilde{\mathbf{x}} - D(\tilde{\mathbf{x}}; \sigma)}{\sigma} .
# $$ (sde-edm-ode)
#
# Time has disappeared: only the sequence of $\sigma$s matters. The schedule, the scaling and the
# network's parameterisation, which the SDE view ties together, become separate choices.
#
# **Preconditioning.** EDM writes the denoiser as
# $D(\tilde{\mathbf{x}}; \sigma) = c_{\text{skip}}\tilde{\mathbf{x}} + c_{\text{out}}F_\theta(c_{\text{in}}\tilde{\mathbf{x}};\, c_{\text{noise}})$.
# Our ε-network read through {eq}`sde-edm-vp` is one instance, with $D = \tilde{\mathbf{x}} -
# \sigma\boldsymbol{\epsilon}_\theta(\tilde{\mathbf{x}}/\sqrt{1 + \sigma^2}, \tau)$:
#
# $$
# c_{\text{skip}} = 1,\quad c_{\text{out}} = -\sigma,\quad c_{\text{in}} = \frac{1}{\sqrt{1 + \sigma^2}},\quad c_{\text{noise}} = \tau(\sigma) \quad\text{(VP)};\qquad
# c_{\text{skip}} = \frac{\sigma_d^2}{\sigma^2 + \sigma_d^2},\quad c_{\text{out}} = \frac{\sigma\sigma_d}{\sqrt{\sigma^2 + \sigma_d^2}},\quad c_{\text{in}} = \frac{1}{\sqrt{\sigma^2 + \sigma_d^2}} \quad\text{(EDM)} .
# $$ (sde-edm-precond)
#
# EDM's own choice, for data of standard deviation $\sigma_d$, makes the network's input and its
# regression target $(\mathbf{x}_0 - c_{\text{skip}}\tilde{\mathbf{x}})/c_{\text{out}}$ both of unit
# variance at every $\sigma$, and $c_{\text{out}}$ as small as that allows: the target's variance is
# $\big((1 - c_{\text{skip}})^2\sigma_d^2 + c_{\text{skip}}^2\sigma^2\big)/c_{\text{out}}^2$, which the
# next cell evaluates. We keep the trained VP network here; training with EDM's preconditioning
# is exercise 4.
#
# **Heun's method and the schedule.** EDM integrates {eq}`sde-edm-ode` with Heun's second-order
# method: an Euler step, then the average of the slopes at both ends,
#
# $$
# \mathbf{d}_i = \frac{\tilde{\mathbf{x}}_i - D(\tilde{\mathbf{x}}_i; \sigma_i)}{\sigma_i},\quad
# \tilde{\mathbf{x}}' = \tilde{\mathbf{x}}_i + (\sigma_{i+1} - \sigma_i)\,\mathbf{d}_i,\quad
# \tilde{\mathbf{x}}_{i+1} = \tilde{\mathbf{x}}_i + (\sigma_{i+1} - \sigma_i)\,\frac{\mathbf{d}_i + \mathbf{d}'}{2},\quad
# \mathbf{d}' = \frac{\tilde{\mathbf{x}}' - D(\tilde{\mathbf{x}}'; \sigma_{i+1})}{\sigma_{i+1}},
# $$ (sde-edm-heun)
#
# except on the last step to $\sigma = 0$, which is Euler's ($\mathbf{d}'$ would divide by zero):
# $n$ steps cost $2n - 1$ network evaluations. The noise levels are spaced evenly in $\sigma^{1/\rho}$,
#
# $$
# \sigma_i = \Big(\sigma_{\max}^{1/\rho} + \tfrac{i}{n-1}\big(\sigma_{\min}^{1/\rho} - \sigma_{\max}^{1/\rho}\big)\Big)^{\rho}, \quad i = 0, \dots, n-1, \qquad \sigma_n = 0 ,
# $$ (sde-edm-schedule)
#
# with $\rho = 7$, which crowds the steps at low noise where the ODE bends most.
#
# Two checks. EDM's preconditioning has unit-variance targets; and Euler's method on
# {eq}`sde-edm-ode`, at the noise levels that DDIM visits, *is* DDIM with $\eta = 0$ (chapter 7's
# Euler step on the probability-flow ODE, now in $\sigma$). We take the Euler step by hand, with
# the library's VP denoiser {eq}`sde-edm-vp`:

# %%
sigma_d = 0.5
sig = torch.logspace(-2, 2, 9, dtype=torch.float64)
c_skip = sigma_d**2 / (sig**2 + sigma_d**2)
c_out = sig * sigma_d / torch.sqrt(sig**2 + sigma_d**2)
c_in = 1 / torch.sqrt(sig**2 + sigma_d**2)
check(
    "EDM preconditioning, eq. (sde-edm-precond): unit-variance input and target at "
    "every σ",
    torch.stack(
        [
            c_in**2 * (sigma_d**2 + sig**2),
            ((1 - c_skip) ** 2 * sigma_d**2 + c_skip**2 * sig**2) / c_out**2,
        ]
    ),
    1.0,
    atol=1e-12,
)

denoiser = samplers.vp_denoiser(
    net, diff
)  # unclipped: the exact identity with DDIM below
steps_ddim = 10
ts = samplers.timesteps(T, steps_ddim, "linspace")
sig_ddim = torch.sqrt((1 - abar[ts]) / abar[ts]).tolist() + [0.0]  # DDIM's levels as σ
x_T = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(15))
with torch.no_grad():
    x = x_T * math.sqrt(1 + sig_ddim[0] ** 2)  # x̃ = x_t / √ᾱ, eq. (sde-edm-vp)
    for s_now, s_next in zip(sig_ddim[:-1], sig_ddim[1:]):
        d = (x - denoiser(x, torch.full((len(x),), s_now))) / s_now  # eq. (sde-edm-ode)
        x = x + (s_next - s_now) * d  # an Euler step in σ
    x_ddim = samplers.ddim(
        net,
        diff,
        x_T.shape,
        steps=steps_ddim,
        spacing="linspace",
        eta=0.0,
        x_T=x_T,
        clip_denoised=False,
        progress=False,
    )
check(
    "Euler on the σ-ODE at DDIM's noise levels = DDIM with η = 0 (10 steps)",
    x,
    x_ddim,
    atol=1e-4,
)

# %% [markdown]
# ### Quality against the number of network evaluations
#
# Now the same `digits-ddpm`, sampled four ways from the **same** 500 starting noises
# $\mathbf{x}_T$ (common random numbers, as in chapter 7): DDIM ($\eta = 0$, "linspace"),
# DPM-Solver++ and EDM's Heun sampler on the schedule {eq}`sde-edm-schedule` between the model's
# smallest and largest $\sigma$, at matched numbers of network evaluations (NFE), against DDPM with
# all 1,000 steps. Quality is chapter 7's Fréchet distance in the features of `digits-classifier`
# to the test digits; the spread ("± s.d.") is a paired bootstrap over the 500 samples, and
# $z$ is a row's difference from DDPM-1000 in units of the difference's own spread.

# %%
classifier = zoo.load("digits-classifier").model
reference = reference_samples("digits-ddpm", 500, seed=0)
n_eval, n_boot = 500, 100
x_T = reference.x_T[:n_eval]
test_features = classifier.features(test_digits).double()
resamples = torch.randint(
    0, n_eval, (n_boot, n_eval), generator=torch.Generator().manual_seed(16)
)


def fd_row(images):
    """Fréchet distance to the test digits' features, and its bootstrap replicates."""
    f = classifier.features(images.float()).double()
    boot = [metrics.frechet_distance(f[r], test_features) for r in resamples]
    return metrics.frechet_distance(f, test_features), np.array(boot)


sig_lo, sig_hi = samplers.vp_sigma_range(diff)
check(
    "eq. (sde-edm-vp): digits-ddpm's σ runs from 0.01 to about 157",
    [sig_lo, sig_hi],
    [0.01, 157.0],
    rtol=0.005,
)
# Every sampler clips its estimate of x_0 to [-1, 1] at each step (DDIM's default,
# chapter 7).
clipped = samplers.vp_denoiser(net, diff, clip_denoised=True)
quality = {("DDPM", T): fd_row(reference.x0[:n_eval])}
samples_by_row = {}
with torch.no_grad():
    for nfe in (9, 19, 35):
        n_heun = (nfe + 1) // 2  # n steps cost 2n − 1 evaluations
        sigmas = samplers.edm_sigmas(n_heun, sig_lo, sig_hi, rho=7.0)
        samples_by_row[("EDM Heun", nfe)] = samplers.edm_heun(
            clipped, sigmas, x_T.shape, x_T=x_T
        ).clamp(-1, 1)
    for nfe in (10, 20, 35):
        samples_by_row[("DDIM η=0", nfe)] = samplers.ddim(
            net, diff, x_T.shape, steps=nfe, spacing="linspace", x_T=x_T, progress=False
        )
    for nfe in (10, 20):
        samples_by_row[("DPM-Solver++", nfe)] = samplers.dpm_solver_pp(
            net,
            diff,
            x_T.shape,
            steps=nfe,
            spacing="linspace",
            x_T=x_T,
            clip_denoised=True,
            progress=False,
        )
for key, images in samples_by_row.items():
    quality[key] = fd_row(images)
fd_ddpm, boot_ddpm = quality[("DDPM", T)]


def report(rows):
    print(f"{'sampler':<14}{'NFE':>5}{'FD':>8}{'± s.d.':>8}{'z vs DDPM':>11}")
    for (name, nfe), (fd, boot) in rows.items():
        z = 0.0 if name == "DDPM" else (fd - fd_ddpm) / (boot - boot_ddpm).std()
        print(f"{name:<14}{nfe:>5}{fd:>8.2f}{boot.std():>8.2f}{z:>11.1f}")


report(quality)


def z_vs_ddpm(key):
    fd, boot = quality[key]
    return (fd - fd_ddpm) / (boot - boot_ddpm).std()


glue("ch8_fd_ddpm", fd_ddpm)
glue("ch8_fd_edm35", quality[("EDM Heun", 35)][0])
glue("ch8_z_edm35", z_vs_ddpm(("EDM Heun", 35)))
glue("ch8_fd_edm9", quality[("EDM Heun", 9)][0])
check_outcome(
    "EDM Heun at 35 NFE reaches DDPM-1000's Fréchet distance: z (spreads worse) at "
    "most 2",
    z_vs_ddpm(("EDM Heun", 35)),
    at_most=2.0,
)

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, marker in (("EDM Heun", "o"), ("DDIM η=0", "s"), ("DPM-Solver++", "^")):
    keys = sorted(k for k in quality if k[0] == name)
    nfes = [k[1] for k in keys]
    ax.errorbar(
        nfes,
        [quality[k][0] for k in keys],
        yerr=[quality[k][1].std() for k in keys],
        marker=marker,
        capsize=3,
        label=name,
    )
ax.axhline(fd_ddpm, color="k", lw=1, label="DDPM, 1,000 steps")
ax.axhspan(fd_ddpm - boot_ddpm.std(), fd_ddpm + boot_ddpm.std(), color="k", alpha=0.1)
ax.set_xlabel("network evaluations (NFE)")
ax.set_ylabel("Fréchet distance (classifier features)")
ax.set_yscale("log")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: sample quality of `digits-ddpm` against the number of network evaluations, each
# point with its bootstrap spread; the line and grey band are DDPM with all 1,000 steps.*
#
# What the table says, on this model, metric and sample size: EDM's Heun sampler with 35
# evaluations reaches a Fréchet distance of {glue:text}`ch8_fd_edm35:.2f` against DDPM-1000's
# {glue:text}`ch8_fd_ddpm:.2f` ($z = $ {glue:text}`ch8_z_edm35:.1f`), at 3.5% of the cost; with 9
# evaluations it is at {glue:text}`ch8_fd_edm9:.2f`. The checks below the flow models' table
# state what holds across training seeds.

# %% [markdown]
# (sde-flow-section)=
# ## Flow matching and rectified flow
#
# The probability-flow ODE is a velocity field that carries noise to data. **Flow matching**
# {cite}`lipman2023flow,liu2023flow,albergo2023building` trains such a velocity field directly,
# without an SDE, a score or a noise schedule in sight. Pick the simplest path between a data
# point and a noise sample, a straight line,
#
# $$
# \mathbf{x}_t = (1 - t)\,\mathbf{x}_0 + t\,\boldsymbol{\epsilon}, \qquad \frac{d\mathbf{x}_t}{dt} = \boldsymbol{\epsilon} - \mathbf{x}_0, \qquad t \in [0, 1],
# $$ (sde-fm-path)
#
# the "conditional optimal-transport" path of {cite:t}`lipman2023flow` with $\sigma_{\min} = 0$,
# and the "rectified flow" of {cite:t}`liu2023flow`. (We put the noise at $t = 1$, as the SDEs
# above and Stable Diffusion 3 {cite}`esser2024scaling` do; Lipman et al. put it at $t = 0$.) In
# the notation of this chapter it is a Gaussian path with $\alpha(t) = 1 - t$ and $\sigma(t) = t$.
#
# **The marginal velocity.** Each pair $(\mathbf{x}_0, \boldsymbol{\epsilon})$ moves at constant
# velocity; the density $p_t$ of $\mathbf{x}_t$ moves with the *average* velocity of the pairs that
# pass through a point, $\mathbf{v}(\mathbf{x}, t) = \mathbb{E}[\boldsymbol{\epsilon} - \mathbf{x}_0 \mid \mathbf{x}_t = \mathbf{x}]$:
#
# 1. $p_t(\mathbf{x}) = \mathbb{E}[\delta(\mathbf{x} - \mathbf{x}_t)]$, so
#    $\partial_t p_t(\mathbf{x}) = \mathbb{E}[-\nabla\delta(\mathbf{x} - \mathbf{x}_t)\cdot\dot{\mathbf{x}}_t]$
#    (chain rule; $\nabla$ acts on $\mathbf{x}$).
# 2. Take $\nabla$ outside the expectation and condition on $\mathbf{x}_t$:
#    $\partial_t p_t = -\nabla\cdot\mathbb{E}[\delta(\mathbf{x} - \mathbf{x}_t)\,\dot{\mathbf{x}}_t]
#    = -\nabla\cdot\big(p_t(\mathbf{x})\,\mathbb{E}[\dot{\mathbf{x}}_t \mid \mathbf{x}_t = \mathbf{x}]\big)$.
# 3. That is the continuity equation of the ODE $d\mathbf{x}/dt = \mathbf{v}(\mathbf{x}, t)$: started
#    at $t = 1$ from $\mathcal{N}(\mathbf{0}, \mathbf{I})$ and run back to $t = 0$, it produces data.
#
# **The conditional loss.** $\mathbf{v}$ involves an intractable expectation, but the argument of
# {eq}`sde-dsm` applies word for word: with $\mathbf{u} = \boldsymbol{\epsilon} - \mathbf{x}_0$,
#
# $$
# L_{\text{CFM}}(\theta) = \mathbb{E}_{t, \mathbf{x}_0, \boldsymbol{\epsilon}}\lVert \mathbf{v}_\theta(\mathbf{x}_t, t) - (\boldsymbol{\epsilon} - \mathbf{x}_0)\rVert^2 = \mathbb{E}_{t, \mathbf{x}_t}\lVert\mathbf{v}_\theta(\mathbf{x}_t, t) - \mathbf{v}(\mathbf{x}_t, t)\rVert^2 + C ,
# $$ (sde-fm-loss)
#
# because the cross term $\mathbb{E}[\mathbf{v}_\theta^\top\mathbf{u}] = \mathbb{E}[\mathbf{v}_\theta^\top\,\mathbb{E}[\mathbf{u} \mid \mathbf{x}_t]]$.
# Training is regression on $\boldsymbol{\epsilon} - \mathbf{x}_0$, with $t \sim U(0, 1)$
# (`flow.training_losses`; SD3 samples $t$ from a logit-normal to spend more effort mid-path).
#
# **Relation to $\mathbf{v}$-prediction.** Chapter 7's $\mathbf{v} = \sqrt{\bar\alpha}\,\boldsymbol{\epsilon} - \sqrt{1 - \bar\alpha}\,\mathbf{x}_0$
# {cite}`salimans2022progressive` is a velocity too. A VP path has $\alpha^2 + \sigma^2 = 1$; write
# $\alpha = \cos\phi$, $\sigma = \sin\phi$. Then
#
# $$
# \frac{d\mathbf{x}_\phi}{d\phi} = -\sin\phi\,\mathbf{x}_0 + \cos\phi\,\boldsymbol{\epsilon} = \alpha\,\boldsymbol{\epsilon} - \sigma\,\mathbf{x}_0 = \mathbf{v}:
# $$ (sde-fm-v)
#
# $\mathbf{v}$-prediction is flow matching on the quarter circle, with the angle as time; flow
# matching is $\mathbf{v}$-prediction on the straight line.
#
# **Relation to the probability-flow ODE.** From $\mathbf{x} = (1-t)\,\mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}] + t\,\mathbb{E}[\boldsymbol{\epsilon} \mid \mathbf{x}]$
# and $\mathbf{v} = \mathbb{E}[\boldsymbol{\epsilon} \mid \mathbf{x}] - \mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}]$,
# eliminate $\mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}]$: $\mathbb{E}[\boldsymbol{\epsilon} \mid \mathbf{x}] = \mathbf{x} + (1 - t)\mathbf{v}$,
# and by {eq}`sde-tweedie-eps` with $\sigma = t$,
#
# $$
# \nabla\log p_t(\mathbf{x}) = -\frac{\mathbf{x} + (1 - t)\,\mathbf{v}(\mathbf{x}, t)}{t} .
# $$ (sde-fm-score)
#
# So a velocity model is a score model (`sde.score_from_velocity`), and the probability-flow ODE
# of the path, with $\mathbf{f} = (\dot\alpha/\alpha)\mathbf{x} = -\mathbf{x}/(1-t)$ and
# $g^2 = d\sigma^2/dt - 2(\dot\alpha/\alpha)\sigma^2 = 2t/(1 - t)$ (`sde.FlowMatchingPath`), is
# $d\mathbf{x}/dt = \mathbf{v}$: flow matching learns the probability-flow ODE of the straight
# path directly. The likelihood machinery above applies unchanged. Three checks on the ring
# mixture, whose $\mathbf{v}$ we compute from the components' posterior means:

# %%
path = sde.FlowMatchingPath()
x_fm = mixture.sample(256, generator=torch.Generator().manual_seed(17)).double()
t_mid = torch.full((len(x_fm),), 0.35, dtype=torch.float64)
x_mid = 0.65 * x_fm + 0.35 * torch.randn(
    x_fm.shape, generator=torch.Generator().manual_seed(17), dtype=torch.float64
)
a_m, s_m = 0.65, 0.35
var_m = a_m**2 * 0.2**2 + s_m**2
log_r = torch.log(ring_weights) - ((x_mid[:, None, :] - a_m * ring_means) ** 2).sum(
    -1
) / (2 * var_m)
post_x0 = (
    torch.softmax(log_r, 1)[..., None]
    * (ring_means + (a_m * 0.2**2 / var_m) * (x_mid[:, None, :] - a_m * ring_means))
).sum(1)
post_eps = (x_mid - a_m * post_x0) / s_m
v_exact = post_eps - post_x0  # E[ε − x_0 | x_t], by components
ring_flow_score = mixture.score_fn(path)
check(
    "eq. (sde-fm-score): −(x + (1 − t)v)/t = the mixture's score on the straight path",
    sde.score_from_velocity(lambda y, t: v_exact, path)(x_mid, t_mid),
    ring_flow_score(x_mid, t_mid),
    atol=1e-10,
)
check(
    "the straight path's probability-flow drift f − ½g²·score is the velocity v",
    path.probability_flow_drift(x_mid, t_mid, ring_flow_score(x_mid, t_mid)),
    v_exact,
    atol=1e-10,
)
i_v, h = 600, 1e-6
x0_d, eps_d = (
    test_digits[:4].double(),
    torch.randn(
        4, 1, 8, 8, generator=torch.Generator().manual_seed(18), dtype=torch.float64
    ),
)
phi = math.atan2(math.sqrt(1 - abar[i_v].item()), math.sqrt(abar[i_v].item()))
on_circle = lambda ph: math.cos(ph) * x0_d + math.sin(ph) * eps_d  # noqa: E731
check(
    "eq. (sde-fm-v): d x_φ / dφ on the quarter circle = chapter 7's v-target",
    (on_circle(phi + h) - on_circle(phi - h)) / (2 * h),
    diff.v_target(x0_d, i_v, eps_d),
    atol=1e-8,
)

# %% [markdown]
# ### Flow models on the ring and on the digits
#
# The zoo's `ring-flow` and `digits-flow` are the networks of `ring-ddpm` and `digits-ddpm` (same
# architecture, data and batch size, no more training steps), trained with
# {eq}`sde-fm-loss` instead of $L_{\text{simple}}$; the network reads $t \in [0, 1]$ as the step
# index $999\,t$ of the time embedding it was designed for (`flow.TimeScaled`). Sampling
# integrates $d\mathbf{x}/dt = \mathbf{v}_\theta$ from $t = 1$ to $0$ with Euler's method
# (`samplers.flow_euler`, one evaluation per step) or Heun's (`samplers.flow_heun`, two).
#
# First the ring, against `ring-ddpm` sampled by DDIM from the same starting points, by chapter
# 9's mode coverage (a sample is of high quality within three standard deviations of a mode):

# %%
ring_ddpm = zoo.load("ring-ddpm")
ring_start = torch.randn(2000, 2, generator=torch.Generator().manual_seed(19))
ring_table = {}
with torch.no_grad():
    for nfe in (5, 10, 50):
        ring_table[("flow, Euler", nfe)] = samplers.flow_euler(
            ring_flow, ring_start.shape, steps=nfe, x_T=ring_start
        )
        ring_table[("DDPM + DDIM", nfe)] = samplers.ddim(
            ring_ddpm.model,
            ring_ddpm.diffusion,
            ring_start.shape,
            steps=nfe,
            spacing="trailing",
            x_T=ring_start,
            clip_denoised=False,
            progress=False,
        )
print(
    f"{'model, sampler':<16}{'NFE':>5}{'high quality':>14}"
    f"{'modes hit':>11}{'smallest mode':>15}"
)
ring_cov = {}
for (name, nfe), pts in ring_table.items():
    cov = metrics.mode_coverage(pts, data.ring_modes(8, 2.0), std=0.05)
    smallest = cov["per_mode_counts"].min() / len(pts)  # share of high-quality samples
    ring_cov[(name, nfe)] = (cov["high_quality_fraction"], cov["modes_hit"], smallest)
    print(
        f"{name:<16}{nfe:>5}{cov['high_quality_fraction']:>14.3f}"
        f"{cov['modes_hit']:>11}{smallest:>15.3f}"
    )
check_outcome(
    "ring, 10 NFE: flow + Euler has more high-quality samples than DDPM + DDIM "
    "(difference)",
    ring_cov[("flow, Euler", 10)][0] - ring_cov[("DDPM + DDIM", 10)][0],
    at_least=0.1,
)
check_outcome(
    "ring, 50 NFE: flow + Euler hits all 8 modes",
    ring_cov[("flow, Euler", 50)][1],
    at_least=8,
)
glue("ch8_ring_flow10", ring_cov[("flow, Euler", 10)][0])
glue("ch8_ring_ddim10", ring_cov[("DDPM + DDIM", 10)][0])

# %% [markdown]
# With 10 evaluations, {glue:text}`ch8_ring_flow10:.2f` of the flow's samples land within three
# standard deviations of a mode, against {glue:text}`ch8_ring_ddim10:.2f` for the diffusion model
# sampled by DDIM; with 50 both are close to their limit. Part of the reason is the path: the
# VP probability-flow ODE of `ring-ddpm` spends most of its length at high noise, where the
# points barely move, and turns sharply at the end, while the straight path {eq}`sde-fm-path`
# spreads the work evenly over $t$, so a coarse uniform grid follows it better (exercise 5 shows
# that even its marginal paths are not quite straight).

# %% [markdown]
# Then the digits: `digits-flow` from the same 500 starting noises as the diffusion rows above,
# with Euler and with Heun, in the same table as `digits-ddpm`'s samplers.

# %%
with torch.no_grad():
    for nfe in (10, 20):
        samples_by_row[("flow Euler", nfe)] = samplers.flow_euler(
            digits_flow, x_T.shape, steps=nfe, x_T=x_T
        ).clamp(-1, 1)
        samples_by_row[("flow Heun", nfe)] = samplers.flow_heun(
            digits_flow, x_T.shape, steps=nfe // 2, x_T=x_T
        ).clamp(-1, 1)
for key in (
    ("flow Euler", 10),
    ("flow Euler", 20),
    ("flow Heun", 10),
    ("flow Heun", 20),
):
    quality[key] = fd_row(samples_by_row[key])
report(quality)
glue("ch8_fd_flow_heun20", quality[("flow Heun", 20)][0])
glue("ch8_z_flow_heun20", z_vs_ddpm(("flow Heun", 20)))
glue("ch8_fd_flow_euler10", quality[("flow Euler", 10)][0])
check_outcome(
    "digits-flow, Heun at 20 NFE, reaches DDPM-1000's Fréchet distance: z at most 2",
    z_vs_ddpm(("flow Heun", 20)),
    at_most=2.0,
)

fig, axes = plt.subplots(1, 4, figsize=(10, 2.9))
shown = [("DDPM", T), ("DDIM η=0", 10), ("EDM Heun", 9), ("flow Euler", 10)]
for ax, key in zip(axes, shown):
    images = reference.x0[:36] if key[0] == "DDPM" else samples_by_row[key][:36]
    grid = images.reshape(6, 6, 8, 8).permute(0, 2, 1, 3).reshape(48, 48)
    ax.imshow(grid.numpy(), cmap="gray", vmin=-1, vmax=1)
    ax.set_title(f"{key[0]}, {key[1]} NFE", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("The same 36 starting noises, four samplers (two models)", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# `digits-flow` with Heun's method and 20 evaluations scores {glue:text}`ch8_fd_flow_heun20:.2f`
# ($z = $ {glue:text}`ch8_z_flow_heun20:.1f` against DDPM-1000, whose 1,000 evaluations are 50 times
# as many), and with Euler's method and 10 evaluations {glue:text}`ch8_fd_flow_euler10:.2f`. The
# two models trained for the same number of steps on the same data; comparisons between them
# beyond "both reach DDPM-1000's quality" would need the spread over training seeds, which the
# robustness table in the README gives for the claims checked here.
#
# *Figure: samples from the same $\mathbf{x}_T$. DDPM, DDIM and EDM use `digits-ddpm`; the
# deterministic samplers map each noise to nearly the same digit, because they follow the same
# probability-flow ODE. `digits-flow` is another model, so its digits differ.*
#
# And the flow model's likelihood, by the same probability-flow machinery (its ODE is
# $d\mathbf{x}/dt = \mathbf{v}_\theta$, its score eq. {eq}`sde-fm-score`), on the same dequantised
# digits:

# %%
t0 = time.perf_counter()
ode_flow = sde.ode_log_likelihood(
    sde.score_from_velocity(digits_flow, path),
    path,
    x_deq,
    divergence="hutchinson",
    num_probes=1,
    rtol=1e-4,
    atol=1e-4,
    generator=torch.Generator().manual_seed(14),
)
bpd_flow = nats_to_bpd(ode_flow["log_likelihood"])
print(
    f"digits-flow: {bpd_flow.mean():.3f} ± {bpd_flow.std() / 8:.3f} bits/dim "
    f"({ode_flow['nfe']} evaluations, {time.perf_counter() - t0:.0f} s);\n"
    f"  digits-ddpm by the ODE {bpd_ode.mean():.3f}"
)
glue("ch8_bpd_flow", bpd_flow.mean().item())

# %% [markdown]
# ## Summary
#
# - The **score** $\nabla\log p$ needs no normalising constant. Tweedie's formula
#   {eq}`sde-tweedie` ties it to the best denoiser, $\mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}_t] =
#   (\mathbf{x}_t + \sigma^2\nabla\log p_t)/\alpha$, and **denoising score matching** {eq}`sde-dsm`
#   has the true score as its minimiser; with $\mathbf{s} = -\boldsymbol{\epsilon}_\theta/\sigma$ it is
#   $L_{\text{simple}}$ up to a weight {eq}`sde-dsm-eps`. Every ε-network is a score model.
# - **Langevin dynamics** {eq}`sde-langevin` samples from a score, but cannot weigh separated
#   modes; **annealing** the noise {eq}`sde-annealed` fixes the weights (measured: the heavy mode's
#   share went from about a half to its weight 0.8).
# - The VP, sub-VP and VE **SDEs** {eq}`sde-vp`–{eq}`sde-ve` noise data continuously; DDPM is the
#   VP SDE discretised, with $\beta_i = \beta(t_i)/N$ {eq}`sde-ddpm-map`. **Anderson's reverse SDE**
#   {eq}`sde-reverse` needs only the score; Euler–Maruyama and predictor–corrector samplers
#   discretise it.
# - The **probability-flow ODE** {eq}`sde-pf-ode` has the same marginals and is deterministic; the
#   **instantaneous change of variables** {eq}`sde-cov` turns it into an exact likelihood
#   {eq}`sde-likelihood` (checked to {glue:text}`ch8_ll_err_64d:.1e` nats in 64 dimensions with the exact
#   score), with the **Skilling–Hutchinson** estimator {eq}`sde-hutchinson` when the dimension is
#   large. With uniform dequantisation {eq}`sde-dequant`, `digits-ddpm` read as a continuous model
#   scores {glue:text}`ch8_bpd_ode:.2f` bits/dim on held-out digits, against its discrete bound's
#   {glue:text}`ch8_bpd_vlb:.2f`.
# - **EDM** reduces sampling to an ODE in the noise level, $d\tilde{\mathbf{x}}/d\sigma = (\tilde{\mathbf{x}} - D)/\sigma$
#   {eq}`sde-edm-ode`; DDIM is its Euler method, and Heun's method on the $\rho = 7$ schedule
#   gets close to DDPM-1000's quality from the same network in a few dozen evaluations.
# - **Flow matching** {eq}`sde-fm-loss` regresses the straight-line velocity $\boldsymbol{\epsilon} - \mathbf{x}_0$;
#   the learned field is the probability-flow ODE of that path {eq}`sde-fm-score`, and
#   $\mathbf{v}$-prediction is the same idea on the quarter circle {eq}`sde-fm-v`.
#
# ## Exercises
#
# **1. Tweedie for one Gaussian.** For $\mathbf{x}_0 \sim \mathcal{N}(\boldsymbol{\mu}, s^2\mathbf{I})$
# and $\mathbf{x}_t = \alpha\mathbf{x}_0 + \sigma\boldsymbol{\epsilon}$, compute
# $\mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}_t]$ from {eq}`sde-tweedie` and compare it with the
# conditional mean of two jointly Gaussian variables.
#
# ````{dropdown} Solution
# $p_t = \mathcal{N}(\alpha\boldsymbol{\mu}, (\alpha^2s^2 + \sigma^2)\mathbf{I})$, so
# $\nabla\log p_t = -(\mathbf{x}_t - \alpha\boldsymbol{\mu})/(\alpha^2s^2 + \sigma^2)$ and
# {eq}`sde-tweedie` gives
# $\big(\mathbf{x}_t - \sigma^2(\mathbf{x}_t - \alpha\boldsymbol{\mu})/(\alpha^2s^2+\sigma^2)\big)/\alpha
# = \boldsymbol{\mu} + \frac{\alpha s^2}{\alpha^2s^2 + \sigma^2}(\mathbf{x}_t - \alpha\boldsymbol{\mu})$,
# the Gaussian conditional mean $\boldsymbol{\mu} + \operatorname{Cov}(\mathbf{x}_0, \mathbf{x}_t)\operatorname{Var}(\mathbf{x}_t)^{-1}(\mathbf{x}_t - \mathbb{E}\mathbf{x}_t)$
# (the Wiener filter). The cell after the exercises checks it.
# ````
#
# **2. The step size's bias.** Run the Langevin algorithm {eq}`sde-langevin` on
# $p = \mathcal{N}(0, 1)$ with step $\eta$. What is its stationary variance? Why is the error
# called the bias of the *unadjusted* algorithm?
#
# ````{dropdown} Solution
# $x' = (1 - \eta/2)\,x + \sqrt{\eta}\,z$, so a stationary variance $v$ satisfies
# $v = (1 - \eta/2)^2 v + \eta$, i.e. $v = \eta/(\eta - \eta^2/4) = 1/(1 - \eta/4)$: too wide by
# about $\eta/4$. A Metropolis–Hastings accept/reject step (MALA) would remove it; without it the
# chain samples a slightly wrong distribution however long it runs, which is why the step must
# shrink, and why annealed Langevin scales it with $\sigma_i^2$.
# ````
#
# **3. How large must $\sigma_{\max}$ be?** {cite:t}`song2020improved` advise taking the VE
# SDE's $\sigma_{\max}$ as large as the largest distance between two training points. Compute that
# distance for the digits. Is the default $\sigma_{\max} = 50$ enough?
#
# ````{dropdown} Solution
# ```python
# train = data.digits("train").images.flatten(1).double()
# print(torch.cdist(train, train).max())
# ```
# About 9.6 (pixels in $[-1, 1]$, 64 of them; at most $2\sqrt{64} = 16$). With $\sigma_{\max} = 50$
# the noise swamps every difference between digits, so $p_1$ is close to $\mathcal{N}(\mathbf{0}, 50^2\mathbf{I})$
# whatever the data and sampling can start there. The rule matters for high-resolution images,
# where the largest distance is hundreds.
# ````
#
# **4. Loss weights.** EDM trains $D_\theta$ with the loss $\lambda(\sigma)\lVert D_\theta(\mathbf{x}_0 + \sigma\boldsymbol{\epsilon}; \sigma) - \mathbf{x}_0\rVert^2$,
# $\lambda = 1/c_{\text{out}}^2$. Which $\lambda(\sigma)$ does $L_{\text{simple}}$ correspond to,
# with the VP preconditioning of {eq}`sde-edm-precond`?
#
# ````{dropdown} Solution
# With $D = \tilde{\mathbf{x}} - \sigma\boldsymbol{\epsilon}_\theta$ and $\tilde{\mathbf{x}} = \mathbf{x}_0 + \sigma\boldsymbol{\epsilon}$,
# $D - \mathbf{x}_0 = -\sigma(\boldsymbol{\epsilon}_\theta - \boldsymbol{\epsilon})$, so
# $\lVert\boldsymbol{\epsilon}_\theta - \boldsymbol{\epsilon}\rVert^2 = \lVert D - \mathbf{x}_0\rVert^2/\sigma^2$:
# $L_{\text{simple}}$ is $\lambda(\sigma) = 1/\sigma^2 = 1/c_{\text{out}}^2$ of the VP column, with
# $\sigma$ drawn through the uniform timestep. EDM's $\lambda = (\sigma^2 + \sigma_d^2)/(\sigma\sigma_d)^2$
# is $1/\sigma^2$ times $1 + \sigma^2/\sigma_d^2$: the same as $L_{\text{simple}}$'s at small
# $\sigma$, and far larger at large $\sigma$, where the ε-loss gives the denoiser's error almost
# no weight (there $c_{\text{skip}} \to 0$ and EDM's network predicts $\mathbf{x}_0$ itself, with a
# target of unit variance). EDM also draws $\sigma$ from a log-normal rather than through a
# uniform $t$.
# ````
#
# **5. One Euler step of a flow.** For Gaussian data $\mathcal{N}(\boldsymbol{\mu}, s^2\mathbf{I})$,
# what does a single Euler step of $d\mathbf{x}/dt = \mathbf{v}$ from $t = 1$ to $t = 0$ return?
# Are the straight paths {eq}`sde-fm-path` of individual pairs also straight for the marginal ODE?
#
# ````{dropdown} Solution
# At $t = 1$, $\mathbf{x}_1 = \boldsymbol{\epsilon}$, so $\mathbb{E}[\boldsymbol{\epsilon} \mid \mathbf{x}_1] = \mathbf{x}_1$
# and $\mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}_1] = \boldsymbol{\mu}$ ($\mathbf{x}_0$ is independent of the
# noise): $\mathbf{v}(\mathbf{x}_1, 1) = \mathbf{x}_1 - \boldsymbol{\mu}$, and the Euler step
# $\mathbf{x}_1 - 1\cdot\mathbf{v}$ returns $\boldsymbol{\mu}$ for every sample: the mean, with no
# diversity at all. The marginal ODE keeps $(\mathbf{x} - (1-t)\boldsymbol{\mu})/\sqrt{(1-t)^2s^2 + t^2}$
# constant, so its paths are straight only if $\sqrt{(1-t)^2s^2 + t^2}$ is linear in $t$, which it is
# not for $s > 0$: conditional paths are straight, the marginal ones curve, and few-step samplers
# pay for the curvature. Rectified flow's "reflow" {cite}`liu2023flow` retrains on the model's own
# (noise, sample) pairs to straighten them.
# ````

#
# **6. A prior that is not $p_1$.** Run `sde.ode_log_likelihood` with the exact score of the
# *unequally* weighted ring of the first sections and compare with its closed-form
# $\log p_{t_{\min}}$. Explain the error, point by point.
#
# ````{dropdown} Solution
# ```python
# pts = mixture.sample(64, generator=torch.Generator().manual_seed(10)).double()
# out = sde.ode_log_likelihood(mixture.score_fn(vp), vp, pts, rtol=1e-7, atol=1e-7)
# exact = mixture.log_prob_fn(vp)(pts, torch.full((64,), 1e-5, dtype=torch.float64))
# print((out["log_likelihood"] - exact).abs().max())
# ```
# About $10^{-2}$ nats. The ODE is exact, but eq. {eq}`sde-likelihood` evaluates the prior
# $\mathcal{N}(\mathbf{0}, \mathbf{I})$ at the end point $\mathbf{z} = \mathbf{x}(1)$ where the truth
# is $p_1$, the mixture with means $\alpha(1)\boldsymbol{\mu}_k$; this ring's mean
# $\sum_k w_k\boldsymbol{\mu}_k$ is not zero, so $\log p_1(\mathbf{z}) - \log\mathcal{N}(\mathbf{z}; \mathbf{0}, \mathbf{I})$
# is of order $\alpha(1)\,\lVert\sum_k w_k\boldsymbol{\mu}_k\rVert\,\lVert\mathbf{z}\rVert$. Adding
# that difference back removes the error to the solver's tolerance (the cell below checks it). A
# model's likelihood is that of its own prior; a schedule with a smaller $\alpha(1)$ makes the gap
# smaller.
# ````

# %% [markdown]
# The figures the solutions quote, computed (run this cell after trying the exercises):

# %%
mu_e, s_e, a_e, sg_e = 0.7, 0.4, 0.6, 0.8
x_e = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
one = sde.GaussianMixture(
    torch.tensor([[mu_e]], dtype=torch.float64),
    torch.tensor([s_e], dtype=torch.float64),
)
wiener = mu_e + a_e * s_e**2 / (a_e**2 * s_e**2 + sg_e**2) * (x_e - a_e * mu_e)
check(
    "exercise 1: Tweedie for one Gaussian is the Wiener filter",
    one.posterior_mean(x_e, a_e, sg_e),
    wiener,
    atol=1e-12,
)
eta_e = 0.2
chain = sde.langevin(
    lambda y: -y,
    torch.zeros(200_000, 1, dtype=torch.float64),
    step_size=eta_e,
    steps=200,
    generator=torch.Generator().manual_seed(20),
)
check(
    "exercise 2: Langevin's stationary variance is 1/(1 − η/4) (±4 s.e.)",
    chain.var(),
    1 / (1 - eta_e / 4),
    atol=4 * math.sqrt(2 / 200_000) / (1 - eta_e / 4),
)
train_flat = data.digits("train").images.flatten(1).double()
largest = torch.cdist(train_flat, train_flat).max().item()
check(
    "exercise 3: the largest distance between training digits is about 9.6",
    largest,
    9.6,
    atol=0.05,
)
sig_e = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
check(
    "exercise 4: EDM's λ = 1/c_out² is 1/σ² (L_simple's) times 1 + σ²/σ_d²",
    1 / (sig_e * sigma_d / torch.sqrt(sig_e**2 + sigma_d**2)) ** 2,
    (1 / sig_e**2) * (1 + sig_e**2 / sigma_d**2),
    rtol=1e-12,
)
gauss_e = sde.GaussianMixture(
    torch.tensor([[0.5, -1.0]], dtype=torch.float64),
    torch.tensor([0.3], dtype=torch.float64),
)
x1_e = torch.randn(
    8, 2, generator=torch.Generator().manual_seed(21), dtype=torch.float64
)
t1_e = torch.ones(8, dtype=torch.float64) - 1e-9
score_1 = gauss_e.score_fn(path)(x1_e, t1_e)
v_1 = -(x1_e + t1_e[:, None] * score_1) / (
    1 - t1_e[:, None]
)  # v from eq. (sde-fm-score)
check(
    "exercise 5: one Euler step from t = 1 returns the data mean",
    x1_e - v_1,
    torch.tensor([[0.5, -1.0]]).double().expand(8, 2),
    atol=1e-6,
)
pts_e = mixture.sample(64, generator=torch.Generator().manual_seed(10)).double()
out_e = sde.ode_log_likelihood(mixture.score_fn(vp), vp, pts_e, rtol=1e-7, atol=1e-7)
exact_e = mixture.log_prob_fn(vp)(pts_e, torch.full((64,), 1e-5, dtype=torch.float64))
err_e = (out_e["log_likelihood"] - exact_e).abs().max().item()
check_le("exercise 6: with the uneven ring the error is above 3e-3 nats", 3e-3, err_e)
print(f"largest error with the uneven ring: {err_e:.2e} nats")
prior_gap = mixture.log_prob_fn(vp)(
    out_e["z"], torch.ones(64, dtype=torch.float64)
) - vp.prior_log_prob(out_e["z"])
check(
    "... and adding log p_1(z) − log N(z; 0, I) back removes it (≤ 1e-3 nats)",
    out_e["log_likelihood"] + prior_gap,
    exact_e,
    atol=1e-3,
)
print(f"whole chapter: {time.perf_counter() - chapter_start:.0f} s")
