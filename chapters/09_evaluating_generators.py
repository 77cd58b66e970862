# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Chapter 9: Evaluating generators
#
# A generative model is good when its samples look like the data (**quality**, or fidelity,
# 保真度), when they cover all of the data and not a few favourite kinds (**diversity**, 多样性),
# and when it has learned the distribution rather than memorised the training set
# (**generalisation**, 泛化). No single number sees all three. This chapter derives the numbers the
# literature uses, checks every identity numerically, and then breaks each number with a
# counterexample computed here, so that you know what it can and cannot see. It ends by measuring
# a GAN and a diffusion model, trained on the same data, with all of them.
#
# **What you will learn.**
#
# - The Fréchet distance (弗雷歇距离) between two Gaussians is their 2-Wasserstein distance: we prove
#   that no coupling moves one onto the other more cheaply, and build the coupling that attains
#   it. FID {cite}`heusel2017gans` is this distance between Gaussians fitted to network features;
#   in this book the network is a small digits classifier, not Inception-v3.
# - Why the Fréchet distance computed from $n$ samples is biased upwards by about $c/n$: the
#   leading term derived for Gaussians and checked by Monte Carlo, measured on the digits, and
#   extrapolated to $n \to \infty$ {cite}`chong2020effectively`.
# - Precision and recall (精确率与召回率) with $k$-nearest-neighbour manifolds
#   {cite}`kynkaanniemi2019improved`, built by hand; how sampling the noise at a lower
#   temperature, and BigGAN's truncation trick, trade one for the other; how a single outlier
#   breaks precision.
# - The Inception Score (IS) {cite}`salimans2016improved` as a mutual information, its range
#   $[1, K]$, and a ten-image "generator" that scores almost the maximum.
# - Bits per dimension (每维比特数) from a density, derived; what a likelihood sees (a model
#   that copies its training set) and what it cannot see (a model whose samples are 99 % noise)
#   {cite}`theis2016note`; and why a GAN has no likelihood to report.
# - GAN against diffusion on the same data, seeds and sample sizes, in one table: mode coverage,
#   quality, precision and recall, the spread over seeds, training time and the cost of a sample.
#
# **What it assumes.** Chapter 2 ({doc}`02_probability_toolkit`): Gaussians, entropy, KL
# divergence. Chapter 3 ({doc}`03_gans`): GANs and the ring of Gaussians. Chapters 5 and 6
# ({doc}`05_reverse_process_vlb`, {doc}`06_training_ddpm`): bits per dimension and the zoo's
# `digits-ddpm`; chapter 7 ({doc}`07_fast_sampling`) drew the 500 reference samples of
# `digits-ddpm` that this chapter reuses.

# %% [markdown]
# ## Setup
#
# The first cell installs the book's library when it is missing (on Colab). The models come from
# the zoo. Besides the models of chapters 3, 6 and 7, this chapter trains two more seeds of each
# of `ring-gan`, `ring-ddpm` and `digits-gan` on first use (their training times are in the
# tables at the end); afterwards the whole chapter runs in under a minute (its last cell prints
# the time).
#
# Every claim below about what a *trained* model does is a `check_outcome`: a range measured
# over training runs, not one run's value. The book can be executed with every model trained
# from other seeds (the environment variable `DIFFUSION_LIB_SEED_SHIFT`, see the README), and
# the ranges hold for the three runs of seeds that `benchmarks/robustness.py` executes. The
# numbers in the text come from the run you are reading.

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
from scipy import linalg

from diffusion_lib import check, check_le, check_outcome, data, gan, metrics, samplers
from diffusion_lib import viz, zoo
from diffusion_lib.checks import glue
from diffusion_lib.families.diffusion import reference_samples

torch.manual_seed(0)
torch.set_grad_enabled(False)  # evaluation only: no gradients in this chapter
chapter_start = time.perf_counter()
rng = np.random.default_rng(0)

# the feature network of "FID" in this book
classifier = zoo.load("digits-classifier").model
train_set, test_set = data.digits("train"), data.digits("test")
D = 64  # pixels per digit


def features(images):
    """The digits classifier's penultimate layer (64 features), float64 (N, 64)."""
    return classifier.features(images.float()).double().numpy()


f_train, f_test = features(train_set.images), features(test_set.images)
print(
    f"{len(f_train)} training and {len(f_test)} test digits; "
    f"features of dimension {f_train.shape[1]}"
)

# %% [markdown]
# (eval-frechet)=
# ## The Fréchet distance between two Gaussians
#
# How far apart are two distributions $P_1$ and $P_2$ on $\mathbb{R}^d$? One answer is the cost
# of moving one onto the other. A **coupling** $\pi$ of $P_1$ and $P_2$ is a joint distribution of
# pairs $(\mathbf{x}_1, \mathbf{x}_2)$ whose marginals are $P_1$ and $P_2$: a plan that says where
# each bit of mass goes. The squared **2-Wasserstein distance** (Wasserstein 距离) is the cost of the
# cheapest plan:
#
# $$
# W_2^2(P_1, P_2) = \inf_{\pi \in \Pi(P_1, P_2)} \mathbb{E}_{(\mathbf{x}_1, \mathbf{x}_2) \sim \pi}\, \|\mathbf{x}_1 - \mathbf{x}_2\|^2 .
# $$ (eval-w2)
#
# For two Gaussians $\mathcal{N}(\boldsymbol{\mu}_1, \Sigma_1)$ and $\mathcal{N}(\boldsymbol{\mu}_2, \Sigma_2)$
# it has a closed form, the **Fréchet distance** {cite}`dowson1982frechet,olkin1982distance`:
#
# $$
# d_F^2 = \|\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2\|^2 + \operatorname{Tr}\!\Big(\Sigma_1 + \Sigma_2 - 2\,(\Sigma_1\Sigma_2)^{1/2}\Big).
# $$ (fid)
#
# We prove it for positive definite $\Sigma_1, \Sigma_2$ in two halves: no coupling costs less
# than {eq}`fid`, and one coupling costs exactly that.
#
# **Step 1: the cost of a coupling depends only on its cross-covariance**
# $C = \mathbb{E}_\pi[(\mathbf{x}_1 - \boldsymbol{\mu}_1)(\mathbf{x}_2 - \boldsymbol{\mu}_2)^\top]$.
# Write $\mathbf{u} = \mathbf{x}_1 - \boldsymbol{\mu}_1$ and $\mathbf{v} = \mathbf{x}_2 - \boldsymbol{\mu}_2$, both of mean zero.
#
# 1. $\mathbf{x}_1 - \mathbf{x}_2 = (\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2) + (\mathbf{u} - \mathbf{v})$ (add and subtract the means).
# 2. $\mathbb{E}\|\mathbf{x}_1 - \mathbf{x}_2\|^2 = \|\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2\|^2 + \mathbb{E}\|\mathbf{u} - \mathbf{v}\|^2$: the cross term $2(\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2)^\top\mathbb{E}[\mathbf{u} - \mathbf{v}]$ is zero.
# 3. $\mathbb{E}\|\mathbf{u} - \mathbf{v}\|^2 = \mathbb{E}[\mathbf{u}^\top\mathbf{u}] + \mathbb{E}[\mathbf{v}^\top\mathbf{v}] - 2\,\mathbb{E}[\mathbf{u}^\top\mathbf{v}]$ (expand the square).
# 4. $\mathbb{E}[\mathbf{u}^\top\mathbf{u}] = \operatorname{Tr}\mathbb{E}[\mathbf{u}\mathbf{u}^\top] = \operatorname{Tr}\Sigma_1$, likewise $\operatorname{Tr}\Sigma_2$, and $\mathbb{E}[\mathbf{u}^\top\mathbf{v}] = \operatorname{Tr}\mathbb{E}[\mathbf{u}\mathbf{v}^\top] = \operatorname{Tr} C$ (a scalar is its own trace, and the trace is cyclic).
#
# $$
# \mathbb{E}_\pi\|\mathbf{x}_1 - \mathbf{x}_2\|^2 = \|\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2\|^2 + \operatorname{Tr}\Sigma_1 + \operatorname{Tr}\Sigma_2 - 2\operatorname{Tr} C .
# $$ (eval-coupling-cost)
#
# The cheapest coupling is the one with the largest $\operatorname{Tr} C$. Nothing in this step
# used that the distributions are Gaussian.
#
# **Step 2: how large can $\operatorname{Tr} C$ be?**
#
# 1. The covariance of the pair, $\begin{pmatrix}\Sigma_1 & C \\ C^\top & \Sigma_2\end{pmatrix}$, is positive semi-definite, as every covariance matrix is.
# 2. Let $K = \Sigma_1^{-1/2} C\, \Sigma_2^{-1/2}$. Multiplying the block matrix on both sides by the symmetric $\operatorname{diag}(\Sigma_1^{-1/2}, \Sigma_2^{-1/2})$ keeps it positive semi-definite, and gives $\begin{pmatrix} I & K \\ K^\top & I\end{pmatrix} \succeq 0$.
# 3. For unit vectors $\mathbf{a}, \mathbf{b}$, the quadratic form at $(\mathbf{a}, -\mathbf{b})$ is $\mathbf{a}^\top\mathbf{a} + \mathbf{b}^\top\mathbf{b} - 2\mathbf{a}^\top K\mathbf{b} = 2 - 2\mathbf{a}^\top K \mathbf{b} \ge 0$. So $\mathbf{a}^\top K\mathbf{b} \le 1$: every singular value of $K$ is at most 1 ($K$ is a *contraction*).
# 4. $C = \Sigma_1^{1/2} K \Sigma_2^{1/2}$, so $\operatorname{Tr} C = \operatorname{Tr}(K B)$ with $B = \Sigma_2^{1/2}\Sigma_1^{1/2}$ (cyclic trace).
# 5. With the singular value decomposition $B = U S V^\top$, $\operatorname{Tr}(KB) = \operatorname{Tr}(V^\top K U\, S) = \sum_i (V^\top K U)_{ii}\, s_i$.
# 6. $W = V^\top K U$ is a contraction too (orthogonal factors do not change singular values), and a diagonal entry $\mathbf{e}_i^\top W \mathbf{e}_i$ is at most 1 by step 3. As $s_i \ge 0$: $\operatorname{Tr} C \le \sum_i s_i$.
# 7. The $s_i$ are the square roots of the eigenvalues of $B^\top B = \Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}$, so $\sum_i s_i = \operatorname{Tr}\big(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\big)^{1/2}$.
#
# $$
# \operatorname{Tr} C \le \operatorname{Tr} M, \qquad M = \big(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\big)^{1/2} .
# $$ (eval-trace-bound)
#
# **Step 3: a coupling that attains the bound.** Draw $\mathbf{x}_1 \sim \mathcal{N}(\boldsymbol{\mu}_1, \Sigma_1)$
# and map it linearly:
#
# $$
# \mathbf{x}_2 = \boldsymbol{\mu}_2 + A(\mathbf{x}_1 - \boldsymbol{\mu}_1), \qquad A = \Sigma_1^{-1/2} M\, \Sigma_1^{-1/2} .
# $$ (eval-coupling-map)
#
# 1. $A$ is symmetric positive definite, since $M$ is.
# 2. $\mathbf{x}_2$ is an affine function of a Gaussian, so it is Gaussian, with mean $\boldsymbol{\mu}_2$.
# 3. Its covariance is $A\Sigma_1A^\top = \Sigma_1^{-1/2}M\Sigma_1^{-1/2}\,\Sigma_1\,\Sigma_1^{-1/2}M\Sigma_1^{-1/2} = \Sigma_1^{-1/2}M^2\Sigma_1^{-1/2} = \Sigma_1^{-1/2}\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\Sigma_1^{-1/2} = \Sigma_2$. So the pair is a coupling of the two Gaussians.
# 4. Its cross-covariance is $C = \mathbb{E}[\mathbf{u}\mathbf{u}^\top A] = \Sigma_1 A$, and $\operatorname{Tr}(\Sigma_1 A) = \operatorname{Tr}(\Sigma_1^{1/2} M \Sigma_1^{-1/2}) = \operatorname{Tr} M$: the bound {eq}`eval-trace-bound` with equality.
#
# Steps 1 to 3 together: $W_2^2 = \|\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2\|^2 + \operatorname{Tr}\Sigma_1 + \operatorname{Tr}\Sigma_2 - 2\operatorname{Tr} M$.
#
# **Step 4: $\operatorname{Tr} M = \operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2}$**, which is how {eq}`fid` is usually
# written and computed (one matrix product, one square root).
#
# 1. $\Sigma_1\Sigma_2 = \Sigma_1^{1/2}\,\big(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\big)\,\Sigma_1^{-1/2} = \Sigma_1^{1/2} M^2\, \Sigma_1^{-1/2}$: the product is *similar* to $M^2$, so it has the same eigenvalues $\lambda_i > 0$, although it is not symmetric.
# 2. $R = \Sigma_1^{1/2} M \Sigma_1^{-1/2}$ satisfies $R^2 = \Sigma_1^{1/2} M^2\Sigma_1^{-1/2} = \Sigma_1\Sigma_2$, and its eigenvalues are those of $M$, namely $\sqrt{\lambda_i} > 0$. So $R$ is the principal square root $(\Sigma_1\Sigma_2)^{1/2}$.
# 3. Similar matrices have equal traces: $\operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2} = \operatorname{Tr} M = \sum_i \sqrt{\lambda_i}$. $\square$
#
# **What is proved here and what is cited.** The steps above prove {eq}`fid` for positive
# definite covariances, both that the linear coupling attains it and that nothing does better.
# Singular covariances (for instance, fewer samples than features) follow by continuity; the
# result is due to {cite:t}`dowson1982frechet` and {cite:t}`olkin1982distance`. Steps 1 and 2 never
# used Gaussianity, so for *any* two distributions with these means and covariances, $d_F \le W_2$:
# the Fréchet distance of fitted Gaussians is a lower bound on the transport distance between the
# real distributions, and it is blind to everything beyond second moments.
#
# The checks, for random $5 \times 5$ covariances: the map, the traces, the library, a Monte Carlo
# estimate of the coupling's cost, and the bound against random couplings of the form of step 2
# (every contraction $K$ gives a valid joint covariance).


# %%
def random_spd(d, rng):
    """A random symmetric positive definite d×d matrix."""
    g = rng.standard_normal((d, d))
    return g @ g.T / d + 0.1 * np.eye(d)


def sqrtm_psd(s):
    """The symmetric square root of a symmetric positive semi-definite matrix (eigh)."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


d = 5
S1, S2 = random_spd(d, rng), random_spd(d, rng)
mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
R1 = sqrtm_psd(S1)
R1_inv = np.linalg.inv(R1)
M = sqrtm_psd(R1 @ S2 @ R1)
A = R1_inv @ M @ R1_inv
check("A is symmetric", A, A.T, atol=1e-12)
check(
    "A Σ₁ A = Σ₂: the linear map is a coupling, eq. (eval-coupling-map)",
    A @ S1 @ A,
    S2,
    atol=1e-10,
)
check(
    "Tr(Σ₁A) = Tr M: it attains the bound (eval-trace-bound)",
    np.trace(S1 @ A),
    np.trace(M),
    atol=1e-10,
)
check(
    "Tr (Σ₁Σ₂)^½ (scipy sqrtm) = Tr M",
    np.trace(linalg.sqrtm(S1 @ S2)).real,
    np.trace(M),
    atol=1e-10,
)
check(
    "Tr M = Σᵢ √λᵢ(Σ₁Σ₂) (similar matrices)",
    np.sqrt(np.linalg.eigvals(S1 @ S2).real).sum(),
    np.trace(M),
)
fd_by_hand = np.sum((mu1 - mu2) ** 2) + np.trace(S1) + np.trace(S2) - 2 * np.trace(M)
check(
    "eq. (fid) by hand = metrics.frechet_distance_from_stats",
    metrics.frechet_distance_from_stats(mu1, S1, mu2, S2),
    fd_by_hand,
    atol=1e-9,
)

n_mc = 200_000
x1 = mu1 + rng.standard_normal((n_mc, d)) @ R1  # covariance R1ᵀR1 = Σ₁
x2 = mu2 + (x1 - mu1) @ A  # eq. (eval-coupling-map); A is symmetric
cost = ((x1 - x2) ** 2).sum(axis=1)
check(
    "Monte Carlo E‖x₁ − x₂‖² of the coupling = eq. (fid), 5 s.e.",
    cost.mean(),
    fd_by_hand,
    atol=5 * cost.std() / math.sqrt(n_mc),
)

# every contraction K gives a coupling with C = Σ₁^½ K Σ₂^½: none beats the bound
R2 = sqrtm_psd(S2)
K_best = (
    R1 @ A @ np.linalg.inv(R2)
)  # the K of the linear coupling: C = Σ₁A = Σ₁^½ K Σ₂^½
check(
    "the optimal coupling's K is orthogonal (all singular values 1)",
    K_best @ K_best.T,
    np.eye(d),
    atol=1e-10,
)
traces = []
for _ in range(1000):
    g = rng.standard_normal((d, d))
    traces.append(
        np.trace(R1 @ (rng.uniform() * g / np.linalg.norm(g, 2)) @ R2)
    )  # spectral norm ≤ 1
    skew = 0.1 * (g - g.T)
    traces.append(
        np.trace(R1 @ K_best @ linalg.expm(skew) @ R2)
    )  # K_best times a small rotation
check_le(
    "Tr C ≤ Tr M for 2,000 random couplings, eq. (eval-trace-bound)",
    max(traces),
    np.trace(M),
)
print(f"largest Tr C among them: {max(traces):.4f}; the bound Tr M = {np.trace(M):.4f}")

# %% [markdown]
# Two special cases with simpler closed forms. With diagonal covariances
# $\Sigma_k = \operatorname{diag}(\sigma_{k1}^2, \dots, \sigma_{kd}^2)$ the product is diagonal,
# $(\Sigma_1\Sigma_2)^{1/2} = \operatorname{diag}(\sigma_{1i}\sigma_{2i})$, and {eq}`fid` becomes
# $\|\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2\|^2 + \sum_i (\sigma_{1i}^2 + \sigma_{2i}^2 - 2\sigma_{1i}\sigma_{2i}) = \|\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2\|^2 + \sum_i (\sigma_{1i} - \sigma_{2i})^2$.
# In one dimension the map {eq}`eval-coupling-map` is $x_2 = \mu_2 + (\sigma_2/\sigma_1)(x_1 - \mu_1)$:
# increasing, so it pairs the $q$-quantile of one distribution with the $q$-quantile of the other.
# With samples, that is the coupling that sorts both samples and pairs them in order.

# %%
s1, s2 = rng.uniform(0.2, 2.0, d), rng.uniform(0.2, 2.0, d)
check(
    "diagonal covariances: eq. (fid) = ‖Δμ‖² + Σᵢ(σ₁ᵢ − σ₂ᵢ)²",
    metrics.frechet_distance_from_stats(mu1, np.diag(s1**2), mu2, np.diag(s2**2)),
    np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2),
    atol=1e-9,
)
(m_a, sd_a), (m_b, sd_b) = (0.3, 1.2), (-0.5, 0.7)
a_sorted = np.sort(m_a + sd_a * rng.standard_normal(n_mc))
b_sorted = np.sort(m_b + sd_b * rng.standard_normal(n_mc))
check(
    "1-D: the sorted-sample (quantile) coupling's cost = (μ₁ − μ₂)² + (σ₁ − σ₂)²",
    np.mean((a_sorted - b_sorted) ** 2),
    (m_a - m_b) ** 2 + (sd_a - sd_b) ** 2,
    rtol=0.02,
)

# %% [markdown]
# ## From the Fréchet distance to FID
#
# Images are not Gaussian, and their pixels are a poor space to compare them in (a digit shifted
# by one pixel is far from itself). {cite:t}`heusel2017gans` therefore compare **features**: pass
# real images and generated images through a fixed network $\phi$, fit a Gaussian to each set of
# feature vectors (the sample mean and the sample covariance, `metrics.gaussian_stats`), and report
# {eq}`fid` between the two Gaussians. That is the **Fréchet Inception Distance**, FID; lower is
# better, and 0 means that the two feature distributions have the same mean and covariance.
#
# In the literature $\phi$ is the 2,048-dimensional pool layer of Inception-v3 trained on
# ImageNet. **This book uses a different network**: the zoo's `digits-classifier`, a small CNN
# trained on the 8×8 digits, whose 64-dimensional penultimate layer plays Inception's role
# (`metrics.fid_features`). The formula is the same, but the numbers live on another scale and
# **cannot be compared with published FIDs**, nor with FIDs computed with any other feature
# network. In this chapter "FD" means the Fréchet distance in these classifier features, unless
# it says pixels.
#
# By hand, and with the library, for the real training digits against the real test digits:

# %%
mu_tr, S_tr = metrics.gaussian_stats(f_train)
mu_te, S_te = metrics.gaussian_stats(f_test)
check(
    "gaussian_stats: the unbiased covariance (divisor N − 1), as numpy.cov",
    S_tr,
    np.cov(f_train.T),
)
fd_train_test = metrics.frechet_distance_from_stats(mu_tr, S_tr, mu_te, S_te)
check(
    "FD of the features by hand = metrics.fid_features(train, test)",
    fd_train_test,
    metrics.fid_features(train_set.images, test_set.images, classifier),
    rtol=1e-5,
)
fd_pixels = metrics.fid_pixels(train_set.images, test_set.images)
print(
    f"train vs test digits: FD in classifier features {fd_train_test:.3f}, "
    f"in pixels {fd_pixels:.3f}"
)

# %% [markdown]
# Two sets of *real* digits, yet the distance is not 0. Part of it is real (the test digits were
# written by other people), and part of it is the subject of the next section.
#
# (eval-bias)=
# ## The bias of the Fréchet distance with few samples
#
# FID plugs *estimates* $\hat{\boldsymbol{\mu}}, \hat\Sigma$ into a nonlinear formula, so it
# inherits their noise as a bias. The cleanest case is two independent samples of size $n$ from the
# **same** distribution, $\mathcal{N}(\boldsymbol{\mu}, I_d)$, whose true distance is 0. Every
# estimate is $\ge 0$, so the average is positive. How positive?
#
# 1. **The means.** $\hat{\boldsymbol{\mu}}_1 - \hat{\boldsymbol{\mu}}_2 \sim \mathcal{N}(\mathbf{0}, \tfrac{2}{n} I_d)$ (each mean has covariance $I/n$; they are independent), so $\mathbb{E}\|\hat{\boldsymbol{\mu}}_1 - \hat{\boldsymbol{\mu}}_2\|^2 = 2d/n$ exactly.
# 2. **The covariances.** Write $\hat\Sigma_k = I + \Delta_k$ with $\mathbb{E}\Delta_k = 0$, $\Delta_1, \Delta_2$ independent and of size $O(n^{-1/2})$. For Gaussian data the sample mean and covariance are independent, so the two parts can be averaged separately.
# 3. $\hat\Sigma_1^{1/2} = I + \tfrac12\Delta_1 + O(\Delta^2)$, so $\hat\Sigma_1^{1/2}\hat\Sigma_2\hat\Sigma_1^{1/2} = \hat\Sigma_1 + \hat\Sigma_1^{1/2}\Delta_2\hat\Sigma_1^{1/2} = I + E$ with $E = \Delta_1 + \Delta_2 + \tfrac12(\Delta_1\Delta_2 + \Delta_2\Delta_1) + O(\Delta^3)$.
# 4. The Taylor series $(I + E)^{1/2} = I + \tfrac12 E - \tfrac18 E^2 + O(E^3)$, with $E^2 = (\Delta_1 + \Delta_2)^2 + O(\Delta^3)$, gives $\operatorname{Tr} M = d + \tfrac12\operatorname{Tr}(\Delta_1 + \Delta_2) + \tfrac12\operatorname{Tr}(\Delta_1\Delta_2) - \tfrac18\operatorname{Tr}(\Delta_1 + \Delta_2)^2 + O(\Delta^3)$ (using $\operatorname{Tr}\Delta_1\Delta_2 = \operatorname{Tr}\Delta_2\Delta_1$).
# 5. Subtract twice that from $\operatorname{Tr}(\hat\Sigma_1 + \hat\Sigma_2) = 2d + \operatorname{Tr}(\Delta_1 + \Delta_2)$: the terms of order 0 and 1 cancel, and $\tfrac14\operatorname{Tr}(\Delta_1 + \Delta_2)^2 - \operatorname{Tr}(\Delta_1\Delta_2) = \tfrac14\operatorname{Tr}(\Delta_1 - \Delta_2)^2 = \tfrac14\|\Delta_1 - \Delta_2\|_F^2$ remains.
# 6. Independence and zero means give $\mathbb{E}\|\Delta_1 - \Delta_2\|_F^2 = 2\,\mathbb{E}\|\Delta\|_F^2 = 2\sum_{j,l}\operatorname{Var}(\hat\Sigma_{jl})$.
# 7. For the unbiased sample covariance of $\mathcal{N}(\mathbf{0}, I)$ data (a scaled Wishart matrix), $\operatorname{Var}(\hat\Sigma_{jj}) = 2/(n-1)$ and $\operatorname{Var}(\hat\Sigma_{jl}) = 1/(n-1)$ for $j \neq l$; the sum over the $d$ diagonal and $d(d-1)$ off-diagonal entries is $d(d+1)/(n-1)$.
# 8. The cubic remainder has expectation $O(n^{-2})$. Altogether:
#
# $$
# \mathbb{E}\big[\widehat{\mathrm{FD}}_n\big] = \frac{2d}{n} + \frac{d(d+1)}{2(n-1)} + O(n^{-2}) .
# $$ (eval-fd-bias)
#
# The bias falls like $1/n$, and its coefficient grows like $d^2/2$: for 64 whitened features it
# would be about 2,200/n (the first cell below pins that figure). We check step 5 on small
# deterministic perturbations (the error of the quadratic approximation must shrink like the
# cube of their size) and {eq}`eval-fd-bias` by Monte Carlo:


# %%
check(
    "eq. (eval-fd-bias) for d = 64: 2d + d(d + 1)/2 = 2208, i.e. about 2,200/n",
    2 * 64 + 64 * 65 / 2,
    2200,
    atol=50,
)


def fd_estimate(x, y):
    return metrics.frechet_distance(x, y)


def trace_term(s1, s2):
    return np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2)).real


d = 4
sym = [(g + g.T) / 2 for g in rng.standard_normal((2, d, d))]
for eps in (1e-2, 1e-3):
    d1, d2 = eps * sym[0], eps * sym[1]
    exact, quadratic = (
        trace_term(np.eye(d) + d1, np.eye(d) + d2),
        0.25 * np.sum((d1 - d2) ** 2),
    )
    check(
        f"step 5 at size {eps:g}: trace term = ¼‖Δ₁ − Δ₂‖²_F up to O(size³)",
        exact,
        quadratic,
        atol=10 * eps**3,
    )

for n, repeats in ((200, 400), (1000, 400)):
    values = np.array(
        [
            fd_estimate(rng.standard_normal((n, d)), rng.standard_normal((n, d)))
            for _ in range(repeats)
        ]
    )
    predicted = 2 * d / n + d * (d + 1) / (2 * (n - 1))
    check(
        f"d = {d}, n = {n}: mean FD of two samples of one Gaussian "
        "= eq. (eval-fd-bias), 5 s.e.",
        values.mean(),
        predicted,
        atol=5 * values.std() / math.sqrt(repeats),
    )

# %% [markdown]
# The same law on the digits. We split all 1,797 real digits into two disjoint halves and compute
# the Fréchet distance between $n$ digits of one half and $n$ of the other (the same distribution,
# so the truth is close to 0), and between $n$ samples of `digits-gan` and $n$ real digits, for
# several $n$ with a few repeats each. Then we fit $\mathrm{FD}_n \approx \mathrm{FD}_\infty + c/n$
# by least squares and read off the intercept $\mathrm{FD}_\infty$, the extrapolation of
# {cite:t}`chong2020effectively` (they fit the same line in $1/n$ to FID computed at several $n$).

# %%
f_all = features(data.digits("all").images)
check("all 1,797 digits", len(f_all), 1797, atol=0)
gan_digits = zoo.load("digits-gan")  # seed 0; chapter 3 trains it
f_gan_big = features(
    gan.sample(gan_digits.model, 1500, generator=torch.Generator().manual_seed(0))
)
perm = rng.permutation(len(f_all))
half_a, half_b = f_all[perm[: len(f_all) // 2]], f_all[perm[len(f_all) // 2 :]]
ns, repeats = np.array([50, 100, 200, 400, 800]), 4
labels = {"real": "real vs real (disjoint halves)", "gan": "digits-gan vs real"}
curves = {"real": [], "gan": []}
for n in ns:
    rr, gr = [], []
    for _ in range(repeats):
        rr.append(
            fd_estimate(
                half_a[rng.choice(len(half_a), n, replace=False)],
                half_b[rng.choice(len(half_b), n, replace=False)],
            )
        )
        gr.append(
            fd_estimate(
                f_gan_big[rng.choice(len(f_gan_big), n, replace=False)],
                f_all[rng.choice(len(f_all), n, replace=False)],
            )
        )
    curves["real"].append(rr)
    curves["gan"].append(gr)

fig, ax = plt.subplots(figsize=(7, 4))
fits = {}
for (key, values), colour in zip(curves.items(), ("C0", "C3")):
    values = np.array(values)  # (len(ns), repeats)
    x_fit = np.repeat(1 / ns, repeats)
    slope, intercept = np.polyfit(x_fit, values.ravel(), 1)
    fits[key] = (intercept, slope)
    ax.plot(x_fit, values.ravel(), "o", color=colour, alpha=0.5, ms=4)
    grid_x = np.linspace(0, 1 / ns.min(), 50)
    ax.plot(grid_x, intercept + slope * grid_x, "-", color=colour,
            label=f"{labels[key]}: FD∞ ≈ {intercept:.2f}, c ≈ {slope:.0f}")  # fmt: skip
    print(
        f"{labels[key]}: mean FD {values[0].mean():.2f} at n = {ns[0]}, "
        f"{values[-1].mean():.2f} at n = {ns[-1]}"
    )
    print(f"    fit: FD∞ = {intercept:.2f}, c = {slope:.1f}")  # fmt: skip
    glue(f"ch9_fd50_{key}", float(values[0].mean()))
    glue(f"ch9_fd800_{key}", float(values[-1].mean()))
    glue(f"ch9_fdinf_{key}", float(intercept))
    glue(f"ch9_fdc_{key}", float(slope))
ax.set_xlabel("1 / n")
ax.set_ylabel("Fréchet distance, classifier features")
ax.set_xlim(left=0)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
top = ax.secondary_xaxis(
    "top",
    functions=(lambda u: 1 / np.maximum(u, 1e-9), lambda v: 1 / np.maximum(v, 1e-9)),
)
top.set_xticks([50, 100, 200, 400, 800])
top.set_xlabel("n")
plt.show()
(real_inf, real_c), (gan_inf, gan_c) = fits["real"], fits["gan"]
# the share of the GAN's fitted FD at n = 500 that the c/n term makes up
bias_share_500 = (gan_c / 500) / (gan_inf + gan_c / 500)
glue("ch9_bias_share_500", float(100 * bias_share_500))


def r_squared(key):
    """The share of the variance of the mean FD per n that the fitted line explains."""
    means = np.array(curves[key]).mean(axis=1)  # the same line fits the means
    intercept, slope = fits[key]
    predicted = intercept + slope / ns
    return 1 - np.sum((means - predicted) ** 2) / np.sum((means - means.mean()) ** 2)


# Margins measured under seed shifts 0/1/2 (classifier, digits-gan seeds 0, 1000, 2000).
# R² of the fits to the means, real: 0.995 / 0.984 / 0.996;
# digits-gan: 0.974 / 0.943 / 0.959
for key, at_least in (("real", 0.95), ("gan", 0.85)):
    check_outcome(
        f"{labels[key]}: a straight line in 1/n explains the mean FD per n (R²)",
        r_squared(key),
        at_least=at_least,
    )
    glue(f"ch9_r2_{key}", float(r_squared(key)))
# mean FD at n = 50 over mean FD at n = 800, real vs real: 19.3 / 22.1 / 18.3
check_outcome(
    "real vs real: the FD at n = 50 is many times the FD at n = 800 (ratio)",
    np.mean(curves["real"][0]) / np.mean(curves["real"][-1]),
    at_least=8.0,
)
# real FD∞ as a share of the real FD at n = 800: −0.047 / −0.068 / −0.092
check_outcome(
    "real vs real: the fitted FD∞ is near 0 (as a share of the FD at n = 800)",
    real_inf / np.mean(curves["real"][-1]),
    at_least=-0.3,
    at_most=0.3,
)
# digits-gan's FD∞ minus the real data's: 28.4 / 48.2 / 20.8
check_outcome(
    "digits-gan's line lies above: its FD∞ minus the real data's",
    gan_inf - real_inf,
    at_least=10.0,
)
# share of digits-gan's fitted FD at n = 500 that is c/n: 0.230 / 0.184 / 0.287
check_outcome(
    "digits-gan: the c/n term's share of the fitted FD at n = 500",
    bias_share_500,
    at_least=0.1,
)

# %% [markdown]
# *Figure: the Fréchet distance in classifier features against $1/n$ (dots: repeats with fresh
# subsets; lines: least-squares fits of $\mathrm{FD}_\infty + c/n$, extended to $1/n = 0$).* The
# mean distances per $n$ fall close to straight lines in $1/n$, as {eq}`eval-fd-bias` predicts
# for Gaussians: the lines explain a share $R^2 =$ {glue:text}`ch9_r2_real:.3f` (real) and
# {glue:text}`ch9_r2_gan:.3f` (`digits-gan`) of their variance.
# The distance between two halves of the *same* real data is far from 0 at small $n$ (a mean of
# {glue:text}`ch9_fd50_real:.2f` at $n = 50$, {glue:text}`ch9_fd800_real:.2f` at $n = 800$) and
# its line extrapolates to an intercept near 0 ({glue:text}`ch9_fdinf_real:.2f`). The
# generator's line lies above it: from {glue:text}`ch9_fd50_gan:.1f` at $n = 50$ to
# {glue:text}`ch9_fd800_gan:.1f` at $n = 800$, with intercept
# $\mathrm{FD}_\infty \approx$ {glue:text}`ch9_fdinf_gan:.1f`, the distance that infinitely
# many samples would give. Both lines have large slopes ($c \approx$
# {glue:text}`ch9_fdc_real:.0f` and {glue:text}`ch9_fdc_gan:.0f`): for two sets of real
# digits nearly all of the distance at these sizes is bias, and even for the generator the
# $c/n$ term makes up {glue:text}`ch9_bias_share_500:.0f` % of the fitted distance at
# $n = 500$.
#
# The practical rule: **compare Fréchet distances only at the same $n$** (and the same feature
# network, and the same reference set), or extrapolate each to $\mathrm{FD}_\infty$ first. A
# change of $n$ alone moves the number more than many a change of model. All comparisons in this
# chapter use 500 generated images against the 360 test digits, except where said.
#
# (eval-precision-recall-section)=
# ## Precision and recall with $k$-nearest-neighbour manifolds
#
# One number cannot say *how* two distributions differ. A generator can fail by making bad samples
# (low quality) or by missing parts of the data (low diversity, mode dropping), and FID mixes the
# two. {cite:t}`sajjadi2018assessing` proposed to measure them separately as precision and recall;
# {cite:t}`kynkaanniemi2019improved` gave the simple estimator used today. Estimate the support
# of each distribution by a union of balls: around each feature vector $\boldsymbol{\phi}$ of a set
# $\Phi$, a ball whose radius is the distance to its $k$-th nearest neighbour in $\Phi$,
#
# $$
# \operatorname{manifold}(\Phi) = \bigcup_{\boldsymbol{\phi} \in \Phi} B\big(\boldsymbol{\phi},\, \|\boldsymbol{\phi} - \mathrm{NN}_k(\boldsymbol{\phi}, \Phi)\|\big),
# $$ (eval-knn-manifold)
#
# and count how much of one set falls inside the other's manifold:
#
# $$
# \text{precision} = \frac{1}{M}\sum_{j=1}^{M} \mathbf{1}\big[\mathbf{g}_j \in \operatorname{manifold}(\Phi_r)\big], \qquad
# \text{recall} = \frac{1}{N}\sum_{i=1}^{N} \mathbf{1}\big[\mathbf{r}_i \in \operatorname{manifold}(\Phi_g)\big],
# $$ (eval-precision-recall)
#
# with $\Phi_r = \{\mathbf{r}_i\}$ the $N$ real and $\Phi_g = \{\mathbf{g}_j\}$ the $M$ generated
# feature vectors. Precision is the fraction of generated samples that look real (quality);
# recall is the fraction of real data that the generator reaches (coverage). $k = 3$ as in the
# paper. By hand, in a few lines, on the 2-D ring of chapter 3 (its coordinates are the features):


# %%
def precision_recall_by_hand(real, fake, k=3):
    """Eqs. (eval-knn-manifold) and (eval-precision-recall) in NumPy, point by point.

    Independent of the library (which uses torch.cdist in chunks): distances by
    subtracting and summing squares, the k-th neighbour by sorting."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)

    def distances(a, b):  # ‖aᵢ − bⱼ‖ for one row aᵢ at a time
        return [np.sqrt(((b - row) ** 2).sum(axis=1)) for row in a]

    # the k-th nearest neighbour: index k of the sorted distances (0: the point itself)
    r_real = np.array([np.sort(d)[k] for d in distances(real, real)])
    r_fake = np.array([np.sort(d)[k] for d in distances(fake, fake)])
    precision = np.mean([np.any(d <= r_real) for d in distances(fake, real)])
    recall = np.mean([np.any(d <= r_fake) for d in distances(real, fake)])
    return {"precision": float(precision), "recall": float(recall)}


real_ring = data.ring(2000, seed=1)
ring_gan = zoo.load("ring-gan")
fake_ring = gan.sample(ring_gan.model, 2000, generator=torch.Generator().manual_seed(0))
by_hand = precision_recall_by_hand(real_ring, fake_ring)
library = metrics.precision_recall(real_ring, fake_ring, k=3)
print("ring-gan vs the ring:")
print(
    f"  by hand: precision {by_hand['precision']:.4f}, recall {by_hand['recall']:.4f}"
)
print(
    f"  library: precision {library['precision']:.4f}, recall {library['recall']:.4f}"
)
check(
    "precision by hand = metrics.precision_recall",
    by_hand["precision"],
    library["precision"],
    atol=0,
)
check(
    "recall by hand = metrics.precision_recall",
    by_hand["recall"],
    library["recall"],
    atol=0,
)
pr_digits_hand = precision_recall_by_hand(f_test, f_gan_big[:500])
pr_digits = metrics.precision_recall(f_test, f_gan_big[:500])
check(
    "the same in the 64 classifier features of the digits",
    list(pr_digits_hand.values()),
    list(pr_digits.values()),
    atol=0,
)

# %% [markdown]
# **Quality against diversity: temperature and truncation.** A GAN's generator maps noise
# $\mathbf{z} \sim \mathcal{N}(\mathbf{0}, I)$ to an image. Keeping $\mathbf{z}$ near the centre
# of its distribution, where the generator was trained most and its samples are most typical,
# trades diversity for quality. Two different ways to do it are often given one name; they are
# not the same operation:
#
# - **A lower temperature.** Feed $\psi\mathbf{z}$ with $\psi < 1$, i.e. draw the noise from the
#   narrower prior $\mathcal{N}(\mathbf{0}, \psi^2 I)$. Glow {cite}`kingma2018glow` calls
#   multiplying the prior's standard deviation by $T < 1$ sampling at a reduced temperature $T$.
#   Nothing is truncated: every $\mathbf{z}$ can still occur, only the tails are rarer.
# - **BigGAN's truncation trick** {cite}`brock2019large`. Draw $\mathbf{z}$ from a *truncated*
#   normal: every component with $|z_i| > \tau$ is resampled until it falls in $[-\tau, \tau]$.
#   Each component then has the density of $\mathcal{N}(0, 1)$ conditioned on $|z_i| \le \tau$:
#   unchanged inside the interval (up to normalisation), zero outside.
#
# StyleGAN's truncation {cite}`karras2019stylegan` is a third, and acts on another variable: the
# output $\mathbf{w} = f(\mathbf{z})$ of StyleGAN's mapping network, which is pulled towards its
# mean $\bar{\mathbf{w}} = \mathbb{E}_{\mathbf{z}}\, f(\mathbf{z})$ as
# $\mathbf{w}' = \bar{\mathbf{w}} + \psi(\mathbf{w} - \bar{\mathbf{w}})$. Applied to
# $\mathbf{z}$, whose mean is $\mathbf{0}$, the same formula would be $\psi\mathbf{z}$, the lower
# temperature; applied in $\mathcal{W}$, a learned space whose distribution is not Gaussian, it
# is not. Our MLP generators have no mapping network, so we compare the first two.
#
# How narrow is the truncated noise? For one component $z \sim \mathcal{N}(0, 1)$ with density
# $\varphi$ and distribution function $\Phi$:
#
# 1. $P(|z| \le \tau) = 2\Phi(\tau) - 1$.
# 2. $\int_{-\tau}^{\tau} z^2 \varphi(z)\, dz = \big[-z\varphi(z)\big]_{-\tau}^{\tau} + \int_{-\tau}^{\tau} \varphi(z)\, dz = -2\tau\varphi(\tau) + 2\Phi(\tau) - 1$ (integrate by parts with $z\varphi(z) = -\varphi'(z)$).
# 3. The conditional mean is 0 by symmetry, so the variance is step 2 divided by step 1:
#
# $$
# \operatorname{Var}\big(z \mid |z| \le \tau\big) = 1 - \frac{2\tau\varphi(\tau)}{2\Phi(\tau) - 1} .
# $$ (eval-truncated-variance)
#
# For $\tau = 1$ that is a standard deviation of about 0.54, so $\tau = 1$ is about as narrow as
# $\psi = 0.54$, but with another shape: no tails at all, and a flat top. The code checks the
# resampling against {eq}`eval-truncated-variance` (a clamp to $[-\tau, \tau]$, a common mistake,
# would give a larger variance), then sends the same 500 noise vectors, scaled or truncated,
# through `digits-gan` and measures the samples against the test digits in classifier features:


# %%
def truncated_noise(n, dim, tau, generator):
    """BigGAN's truncation: N(0, I) noise, components with |z_i| > tau redrawn."""
    z = torch.randn(n, dim, generator=generator)
    outside = z.abs() > tau
    while outside.any():
        z[outside] = torch.randn(int(outside.sum()), generator=generator)
        outside = z.abs() > tau
    return z


def truncated_std(tau):
    """The standard deviation of eq. (eval-truncated-variance)."""
    phi = math.exp(-(tau**2) / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(tau / math.sqrt(2))  # 2Φ(τ) − 1
    return math.sqrt(1 - 2 * tau * phi / mass)


z_dim = gan_digits.model.z_dim
check(
    "eq. (eval-truncated-variance) at τ = 1: a standard deviation of about 0.54",
    truncated_std(1.0),
    0.54,
    atol=5e-3,
)
z_big = truncated_noise(20_000, 1, 1.0, torch.Generator().manual_seed(7)).double()
check(
    "20,000 resampled draws, τ = 1: variance = eq. (eval-truncated-variance), 5 s.e.",
    z_big.var(),
    truncated_std(1.0) ** 2,
    atol=5 * (z_big**2).std().item() / math.sqrt(len(z_big)),
)

z = torch.randn(500, z_dim, generator=torch.Generator().manual_seed(1))
settings = [("temperature", psi, psi * z) for psi in (1.0, 0.75, 0.5, 0.25)]
settings += [
    (
        "truncation",
        tau,
        truncated_noise(500, z_dim, tau, torch.Generator().manual_seed(8)),
    )
    for tau in (2.0, 1.0, 0.5, 0.25)
]
trunc = []
print(
    f"{'noise':>12}{'ψ or τ':>8}{'std zᵢ':>8}{'precision':>11}{'recall':>8}{'FD':>8}"
    f"{'top-p':>8}{'classes':>9}"
)
for kind, param, noise in settings:
    images = gan_digits.model(noise)
    f = features(images)
    scores = metrics.classifier_scores(images, classifier)
    std = param if kind == "temperature" else truncated_std(param)
    row = {"kind": kind, "param": param, "std": std,
           **metrics.precision_recall(f_test, f),
           "fd": metrics.frechet_distance(f, f_test), "top": scores["mean_top_prob"],
           "hit": int((scores["class_histogram"] > 0).sum())}  # fmt: skip
    trunc.append(row)
    print(
        f"{kind:>12}{param:>8}{std:>8.2f}{row['precision']:>11.3f}{row['recall']:>8.3f}"
        f"{row['fd']:>8.2f}{row['top']:>8.3f}{row['hit']:>9}"
    )
temp = {r["param"]: r for r in trunc if r["kind"] == "temperature"}
cut = {r["param"]: r for r in trunc if r["kind"] == "truncation"}
for key in ("precision", "recall", "fd"):
    glue(f"ch9_temp1_{key}", float(temp[1.0][key]))
    glue(f"ch9_temp025_{key}", float(temp[0.25][key]))
best_psi = max(temp, key=lambda psi: temp[psi]["precision"])
glue("ch9_temp_best_precision", float(temp[best_psi]["precision"]))
glue("ch9_temp_best_psi", float(best_psi))
glue("ch9_cut025_recall", float(cut[0.25]["recall"]))

# Margins measured under seed shifts 0/1/2 (digits-gan seeds 0, 1000, 2000).
# recall at ψ = 0.25 minus recall at ψ = 1: −0.744 / −0.714 / −0.811
check_outcome(
    "a lower temperature costs recall: recall at ψ = 0.25 minus at ψ = 1",
    temp[0.25]["recall"] - temp[1.0]["recall"],
    at_most=-0.4,
)
# precision at ψ = 0.75 minus at ψ = 1: 0.076 / 0.066 / 0.082
check_outcome(
    "precision rises at first: precision at ψ = 0.75 minus at ψ = 1",
    temp[0.75]["precision"] - temp[1.0]["precision"],
    at_least=0.03,
)
# precision at ψ = 0.25 minus at ψ = 0.5: −0.066 / −0.086 / −0.024
check_outcome(
    "then stops rising: precision at ψ = 0.25 minus at ψ = 0.5",
    temp[0.25]["precision"] - temp[0.5]["precision"],
    at_most=0.0,
)
# smallest rise of FD between neighbouring ψ: 17.2 / 25.8 / 18.0
check_outcome(
    "the FD grows at every step ψ = 1 → 0.75 → 0.5 → 0.25 (smallest rise)",
    min(
        temp[b]["fd"] - temp[a]["fd"]
        for a, b in ((1.0, 0.75), (0.75, 0.5), (0.5, 0.25))
    ),
    at_least=5.0,
)
# recall at τ = 0.25 minus recall at ψ = 1: −0.883 / −0.836 / −0.889
check_outcome(
    "truncation costs recall too: recall at τ = 0.25 minus at ψ = 1",
    cut[0.25]["recall"] - temp[1.0]["recall"],
    at_most=-0.5,
)
# smallest rise of FD between neighbouring τ: 53.3 / 84.3 / 58.8
check_outcome(
    "the FD grows at every step τ = 2 → 1 → 0.5 → 0.25 (smallest rise)",
    min(cut[b]["fd"] - cut[a]["fd"] for a, b in ((2.0, 1.0), (1.0, 0.5), (0.5, 0.25))),
    at_least=10.0,
)
# τ = 1 (std 0.54) against ψ = 0.5, |difference in precision|: 0.024 / 0.000 / 0.014
# (recall differed by 0.019 / −0.058 / 0.158, FD by −11.5 / −4.8 / −14.9: no claim)
check_outcome(
    "about equal width, τ = 1 and ψ = 0.5: |difference in precision|",
    abs(cut[1.0]["precision"] - temp[0.5]["precision"]),
    at_most=0.05,
)
glue(
    "ch9_cut1_temp05_precision",
    float(abs(cut[1.0]["precision"] - temp[0.5]["precision"])),
)

fig, axes = plt.subplots(
    1, 4, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1.4, 1, 1, 1]}
)
for kind, marker in (("temperature", "o-"), ("truncation", "s--")):
    rows = [r for r in trunc if r["kind"] == kind]
    symbol = "ψ" if kind == "temperature" else "τ"
    axes[0].plot([r["recall"] for r in rows], [r["precision"] for r in rows], marker,
                 label=f"{kind} ({symbol} as labelled)")  # fmt: skip
    for r in rows:
        axes[0].annotate(f"{r['param']:g}", (r["recall"], r["precision"]), fontsize=7,
                         xytext=(3, 3), textcoords="offset points")  # fmt: skip
axes[0].set(xlabel="recall", ylabel="precision")
axes[0].legend(fontsize=7)
axes[0].grid(alpha=0.3)
viz.show_images(gan_digits.model(z[:25]), nrow=5, ax=axes[1], title="ψ = 1")
viz.show_images(gan_digits.model(0.25 * z[:25]), nrow=5, ax=axes[2], title="ψ = 0.25")
z_cut = truncated_noise(25, z_dim, 0.5, torch.Generator().manual_seed(8))
viz.show_images(gan_digits.model(z_cut), nrow=5, ax=axes[3], title="truncation τ = 0.5")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left, precision against recall of `digits-gan` on the test digits, as the noise is
# narrowed by a lower temperature $\psi$ (circles) or by BigGAN's truncation at $\tau$
# (squares); right, 25 samples each at $\psi = 1$, $\psi = 0.25$ and $\tau = 0.5$.* Narrowing
# the noise moves every sample towards the generator's "average" outputs. Recall falls: from
# {glue:text}`ch9_temp1_recall:.3f` at $\psi = 1$ to {glue:text}`ch9_temp025_recall:.3f` at
# $\psi = 0.25$, as fewer and fewer real digits have a generated sample nearby. Precision rises
# at first, from {glue:text}`ch9_temp1_precision:.3f` at $\psi = 1$ to at most
# {glue:text}`ch9_temp_best_precision:.3f` (at $\psi =$ {glue:text}`ch9_temp_best_psi` in this
# run), as the samples concentrate where the generator is most reliable, then stops rising, and
# the Fréchet distance grows at every step, from {glue:text}`ch9_temp1_fd:.1f` to
# {glue:text}`ch9_temp025_fd:.1f`. BigGAN's truncation trades the same way: as $\tau$ falls,
# recall falls and the Fréchet distance grows at every step, and $\tau = 0.25$ leaves a recall
# of {glue:text}`ch9_cut025_recall:.3f`. Which of the two trades better these runs do not
# settle: at about equal width ($\tau = 1$, standard deviation 0.54, against $\psi = 0.5$) the
# precisions agree within a few hundredths in every training run measured
# ({glue:text}`ch9_cut1_temp05_precision:.3f` apart in this one), but the recalls and Fréchet
# distances differ by amounts that change from one training run to the next. That
# grey, blurred averages can keep a fair precision is a warning about the feature space rather
# than praise for the samples: the classifier was trained to tell digits apart, and a blurred 3
# still looks like a 3 to it. FID, which mixes quality and coverage in one number, cannot say
# which of the two was lost.
#
# **A failure case: one outlier.** The real manifold is a union of balls, one per real point, and
# an isolated real point has a *huge* ball, because its $k$-th neighbour is far away. Take the ring
# data and add one real point at the centre, where the ring has no mass. Its ball reaches almost to
# the ring, and a "generator" that scatters points uniformly over a disc inside the ring, which
# covers no mode at all, suddenly has perfect precision:

# %%
disc = (
    torch.rand(2000, generator=torch.Generator().manual_seed(2)).sqrt() * 1.5
)  # radius, uniform in area
angle = torch.rand(2000, generator=torch.Generator().manual_seed(3)) * 2 * math.pi
bad_generator = torch.stack([disc * torch.cos(angle), disc * torch.sin(angle)], dim=1)
with_outlier = torch.cat([real_ring, torch.zeros(1, 2)])
clean = metrics.precision_recall(real_ring, bad_generator)
spoilt = metrics.precision_recall(with_outlier, bad_generator)
outlier_radius = torch.cdist(torch.zeros(1, 2), real_ring).kthvalue(3).values.item()
print(f"disc 'generator': precision {clean['precision']:.3f} against the ring,")
print(f"{'':18s}precision {spoilt['precision']:.3f} against the ring + one outlier")
print(f"the outlier's k-NN radius: {outlier_radius:.2f}")
check(
    "against the ring alone, the disc's precision is 0", clean["precision"], 0.0, atol=0
)
check_le(
    "the outlier's ball (radius to its 3rd neighbour) covers the disc of radius 1.5",
    1.5,
    outlier_radius,
)
check(
    "so every disc point counts as 'real': precision 1",
    spoilt["precision"],
    1.0,
    atol=0,
)

# %% [markdown]
# The estimator trusts every real point. {cite:t}`kynkaanniemi2019improved` discuss this
# sensitivity; a common remedy is to measure the real manifold with more data, drop the largest
# balls, or use the "density and coverage" variants that count *how many* balls contain a sample.
# Outliers in the *generated* set inflate recall in the same way.
#
# (eval-inception-score)=
# ## The classifier score (Inception Score)
#
# A classifier $p(y \mid \mathbf{x})$ over $K$ classes gives another view of a set of generated
# images. Good images should be classified confidently (each $p(y \mid \mathbf{x})$ peaked), and
# diverse ones should spread over all classes (the average $p(y) = \mathbb{E}_{\mathbf{x}}\,p(y \mid \mathbf{x})$
# flat). {cite:t}`salimans2016improved` combined both in the **Inception Score**:
#
# $$
# \mathrm{IS} = \exp\Big(\mathbb{E}_{\mathbf{x} \sim p_g}\, \mathrm{KL}\big(p(y \mid \mathbf{x}) \,\big\|\, p(y)\big)\Big), \qquad p(y) = \mathbb{E}_{\mathbf{x} \sim p_g}\, p(y \mid \mathbf{x}) .
# $$ (inception-score)
#
# With Inception-v3 and ImageNet's 1,000 classes it is the IS of the literature; with our digits
# classifier ($K = 10$) it is the book's analogue (`metrics.classifier_scores`), again not
# comparable with published values. What does it measure?
#
# 1. $\mathrm{KL}(p(y \mid \mathbf{x}) \,\|\, p(y)) = \sum_y p(y \mid \mathbf{x}) \log p(y \mid \mathbf{x}) - \sum_y p(y \mid \mathbf{x}) \log p(y) = -H(y \mid \mathbf{x}) - \sum_y p(y \mid \mathbf{x}) \log p(y)$, by the definition of KL and of the entropy of the distribution $p(\cdot \mid \mathbf{x})$.
# 2. Average over $\mathbf{x}$. In the last term only $p(y \mid \mathbf{x})$ depends on $\mathbf{x}$, and its average is $p(y)$: $\mathbb{E}_{\mathbf{x}}\sum_y p(y \mid \mathbf{x}) \log p(y) = \sum_y p(y)\log p(y) = -H(y)$.
# 3. So $\mathbb{E}_{\mathbf{x}}\,\mathrm{KL} = H(y) - \mathbb{E}_{\mathbf{x}} H(y \mid \mathbf{x})$, the entropy of the labels minus their average conditional entropy: the **mutual information** between a generated image and its predicted label, under the joint $p_g(\mathbf{x})\,p(y \mid \mathbf{x})$.
#
# $$
# \log \mathrm{IS} = H(y) - \mathbb{E}_{\mathbf{x}}\, H(y \mid \mathbf{x}) = I(\mathbf{x}; y) .
# $$ (eval-is-mi)
#
# **Its range.** A KL divergence is $\ge 0$, so $\mathrm{IS} \ge 1$, with equality when every image
# gets the same $p(y \mid \mathbf{x})$. An entropy is $\ge 0$ and $H(y) \le \log K$ (the uniform
# distribution has the largest entropy), so $\log\mathrm{IS} \le \log K$: $1 \le \mathrm{IS} \le K$,
# with $K$ reached exactly when every $p(y \mid \mathbf{x})$ is one-hot and the classes are equally
# frequent. The three forms, computed from the classifier's probabilities on the test digits and on
# `digits-gan` samples, against the library:


# %%
def probabilities(images):
    return torch.softmax(classifier(images.float()).double(), dim=1).numpy()


def entropy(p):
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


gan_500 = gan.sample(gan_digits.model, 500, generator=torch.Generator().manual_seed(0))
for label, images in (("test digits", test_set.images), ("digits-gan", gan_500)):
    p = probabilities(images)
    p_y = p.mean(axis=0)
    kl_form = math.exp(np.mean(np.sum(p * (np.log(p) - np.log(p_y)), axis=1)))
    entropy_form = math.exp(entropy(p_y) - entropy(p).mean())
    library_is = metrics.classifier_scores(images, classifier)["inception_score"]
    check(
        f"{label}: eq. (inception-score) = exp(H(y) − E H(y|x)), eq. (eval-is-mi)",
        entropy_form,
        kl_form,
        rtol=1e-9,
    )
    check(
        f"{label}: by hand = metrics.classifier_scores", library_is, kl_form, rtol=1e-5
    )
    check_le(f"{label}: 1 ≤ IS ≤ K = 10", [1.0, kl_form], [kl_form, 10.0])
    print(
        f"  IS = {kl_form:.3f}: H(y) = {entropy(p_y):.3f} nats "
        f"(log 10 = {math.log(10):.3f}), E H(y|x) = {entropy(p).mean():.3f} nats"
    )

# %% [markdown]
# **A failure case: ten perfect images.** The score looks only at the classifier's outputs. A
# "generator" that knows ten images, the most confidently classified training digit of each class,
# and outputs them over and over, in equal numbers, makes every $p(y \mid \mathbf{x})$ nearly one-hot
# and $p(y)$ uniform: it scores almost the maximum, 10, although it has no diversity within a class
# at all. FID and recall see through it: ten points have a tiny covariance, and each of the
# generated points' $k$-NN balls has radius 0 (its three nearest neighbours are copies of itself),
# so no real digit is inside the generated manifold.

# %%
p_train = probabilities(train_set.images)
prototypes = torch.stack([
    train_set.images[np.flatnonzero(train_set.labels.numpy() == c)[
        np.argmax(p_train[train_set.labels.numpy() == c, c])]] for c in range(10)
])  # fmt: skip
repeated = prototypes.repeat(50, 1, 1, 1)  # 500 images, 50 copies of each prototype
candidates = {
    "test digits (360)": test_set.images,
    "digits-gan (500)": gan_500,
    "10 prototypes × 50": repeated,
}
print(f"{'':22s}{'IS':>7}{'top-p':>8}{'FD':>8}{'precision':>11}{'recall':>8}")
proto_scores = {}
for label, images in candidates.items():
    scores = metrics.classifier_scores(images, classifier)
    f = features(images)
    pr = (
        metrics.precision_recall(f_test, f)
        if label != "test digits (360)"
        else {"precision": 1.0, "recall": 1.0}
    )
    fd = metrics.frechet_distance(f, f_test) if label != "test digits (360)" else 0.0
    proto_scores[label] = {"is": scores["inception_score"], "fd": fd, **pr}
    print(
        f"{label:22s}{scores['inception_score']:>7.3f}{scores['mean_top_prob']:>8.3f}"
        f"{fd:>8.2f}{pr['precision']:>11.3f}{pr['recall']:>8.3f}"
    )
proto = proto_scores["10 prototypes × 50"]
glue("ch9_proto_is", float(proto["is"]))
glue("ch9_test_is", float(proto_scores["test digits (360)"]["is"]))
# Margins measured under seed shifts 0/1/2 (classifier, digits-gan seeds 0, 1000, 2000).
# IS of the prototypes: 10.00 / 10.00 / 10.00
check_outcome(
    "ten prototypes × 50 score almost the maximum IS, K = 10",
    proto["is"],
    at_least=9.9,
)
# their IS minus the test digits': 0.165 / 0.162 / 0.165
check_outcome(
    "the prototypes' IS beats the real test digits' (difference)",
    proto["is"] - proto_scores["test digits (360)"]["is"],
    at_least=0.05,
)
check(
    "the prototypes' recall is 0 (every generated k-NN ball has radius 0)",
    proto["recall"],
    0.0,
    atol=0,
)
# their FD over digits-gan's: 4.41 / 3.01 / 5.33
check_outcome(
    "and their FD is larger than digits-gan's (ratio)",
    proto["fd"] / proto_scores["digits-gan (500)"]["fd"],
    at_least=1.5,
)
print("(the test digits' own row is a reference: FD 0 and precision = recall = 1")
print(" by definition)")

# %% [markdown]
# A score of {glue:text}`ch9_proto_is:.2f` for ten images, above the
# {glue:text}`ch9_test_is:.2f` of the real test digits. IS rewards confident, class-balanced outputs and sees
# nothing else: not diversity within a class, not whether the images resemble the data set at all
# (it never looks at real data), not memorisation. It also depends entirely on the classifier's
# classes: a generator of *letters* would be judged by how confidently they look like digits.
#
# (eval-bits-per-dim)=
# ## Bits per dimension: what a likelihood sees, and what it cannot see
#
# The third family of metrics asks the model itself: how probable are held-out real images? In
# bits per dimension (chapter 5, eq. {eq}`rev-bpd`) this is the average code length per pixel of an
# ideal compressor built from the model. Diffusion models give a bound on it (chapters 5 and 6);
# here we use models whose likelihood is exact and cheap, so that each failure can be computed in
# a second.
#
# **From a density to bits per dimension.** Images are stored as 8-bit integers, so a pixel value
# $x$ in $[-1, 1]$ stands for one of 256 levels $-1 + 2j/255$, $j = 0, \dots, 255$. A continuous
# density $p$ must be turned into the probability of a bin.
#
# 1. The levels are $\Delta = 2/255$ apart; the value $x_d$ stands for the interval $[x_d - \Delta/2,\, x_d + \Delta/2]$ (the two edge bins are extended to $\pm\infty$, as the decoder of chapter 5 does, so the probabilities sum to 1).
# 2. The probability of the image's bin is the integral of the density over a $D$-dimensional box: $P(\mathbf{x}) = \int_{\text{box}(\mathbf{x})} p(\mathbf{u})\, d\mathbf{u}$.
# 3. If $p$ hardly changes across a box, $P(\mathbf{x}) \approx p(\mathbf{x})\,\Delta^D$ (density times volume).
# 4. The code length is $-\log_2 P(\mathbf{x}) \approx -\log_2 p(\mathbf{x}) - D\log_2\Delta$ bits.
# 5. Per dimension:
#
# $$
# \text{bits/dim}(\mathbf{x}) = -\frac{\log_2 P(\mathbf{x})}{D} \approx -\frac{\log_2 p(\mathbf{x})}{D} - \log_2\Delta = -\frac{\log_2 p(\mathbf{x})}{D} + \log_2 127.5 .
# $$ (eval-bpd)
#
# Sanity check: the uniform density $2^{-D}$ on $[-1, 1]^D$ gives $1 + \log_2 127.5 = \log_2 255 \approx 7.99$
# bits per dimension, the 8 bits of raw storage (the 256 bins span $256\Delta$, slightly more than
# 2). Step 3 is an approximation: it fails when the density varies within a bin, and then only the
# integral of step 2 is right. For a mixture of isotropic Gaussians the integral is exact, since the
# box probability of $\mathcal{N}(\mathbf{c}, h^2 I)$ is a product of one-dimensional differences
# $\Phi\big(\tfrac{x_d + \Delta/2 - c_d}{h}\big) - \Phi\big(\tfrac{x_d - \Delta/2 - c_d}{h}\big)$.
#
# Three exact-likelihood models of the training digits:
#
# - **Gaussian**: $\mathcal{N}(\hat{\boldsymbol{\mu}}, \hat\Sigma + s^2 I)$ with the training mean and covariance (the added $s^2$ is needed: a few border pixels are $-1$ in every digit, a variance of 0).
# - **KDE**: a kernel density estimate $p_h(\mathbf{x}) = \frac1N\sum_i \mathcal{N}(\mathbf{x};\, \mathbf{x}_i, h^2 I)$ on the $N$ training digits. Sampling it means: pick a training digit, add noise of scale $h$.
# - **Copier**: the same KDE with $h = 0.001$, smaller than half a bin. Its samples *are* training digits.
#
# $s$ and $h$ are chosen on a validation split of the training set (never on the test set). First
# the bin probabilities, exact against approximate:


# %%
BIN = 2 / 255  # Δ; data.quantise (chapter 5) rounds to the levels −1 + 2j/255


def log_bin_probability(lo, hi):
    """log(Φ(hi) − Φ(lo)) for lo < hi, stable in both tails."""
    flip = lo > 0  # in the upper tail use Φ(−lo) − Φ(−hi), which does not cancel
    a, b = torch.where(flip, -hi, lo), torch.where(flip, -lo, hi)
    log_b, log_a = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    return log_b + torch.log1p(-torch.exp(log_a - log_b))


def kde_log2_prob_exact(x, centres, h, *, edge_bins=False, chunk=16):
    """log₂ P(x) of the bins of x under the KDE with bandwidth h: step 2, exactly.

    Every bin has width Δ; with edge_bins=True the bins of −1 and +1 extend to ∓∞."""
    x, centres = x.flatten(1).double(), centres.flatten(1).double()
    out = []
    for i in range(0, len(x), chunk):
        xi = x[i : i + chunk, None, :]
        lo, hi = (xi - BIN / 2 - centres) / h, (xi + BIN / 2 - centres) / h
        if edge_bins:
            lo, hi = (
                torch.where(xi <= -1 + 1e-9, -math.inf, lo),
                torch.where(xi >= 1 - 1e-9, math.inf, hi),
            )
        per_centre = log_bin_probability(lo, hi).sum(dim=2)  # (chunk, N)
        out.append(torch.logsumexp(per_centre, dim=1) - math.log(len(centres)))
    return torch.cat(out) / math.log(2)


def kde_log2_density(x, centres, h):
    """log₂ p_h(x), the KDE's density."""
    x, centres = x.flatten(1).double(), centres.flatten(1).double()
    sq = torch.cdist(x, centres, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    log_p = (
        torch.logsumexp(-sq / (2 * h**2), dim=1)
        - math.log(len(centres))
        - D / 2 * math.log(2 * math.pi * h**2)
    )
    return log_p / math.log(2)


def bits_from_density(log2_p):
    return -log2_p / D + math.log2(127.5)  # eq. (eval-bpd)


check(
    "the uniform density 2^−D on [−1, 1]^D: eq. (eval-bpd) = log₂ 255 ≈ 7.99 bits/dim",
    [bits_from_density(torch.tensor(-float(D))).item(), math.log2(255)],
    [math.log2(255), 7.99],
    atol=5e-3,
)
train_q, test_q = data.quantise(train_set.images), data.quantise(test_set.images)
for h in (0.1, 0.001):
    exact = -kde_log2_prob_exact(test_q[:60], train_q, h).mean().item() / D
    with_edges = (
        -kde_log2_prob_exact(test_q[:60], train_q, h, edge_bins=True).mean().item() / D
    )
    approx = bits_from_density(kde_log2_density(test_q[:60], train_q, h)).mean().item()
    print(
        f"h = {h}: bits/dim of 60 test digits: exact {exact:.4f},\n"
        f"    with open edge bins {with_edges:.4f}, "
        f"density approximation (eval-bpd) {approx:.4f}"
    )
    if h > 10 * BIN:
        check(
            f"h = {h} ≫ Δ: eq. (eval-bpd) matches the exact bin probabilities "
            "to a few thousandths of a bit",
            approx,
            exact,
            atol=5e-3,
        )
    else:
        check_le(
            f"h = {h} < Δ/2: the approximation is off by more than 1 bit/dim",
            1.0,
            abs(approx - exact),
        )
check("h = 0.1 is about 13 bins wide", 0.1 / BIN, 13, atol=0.5)
background = (train_q <= -1 + 1e-9).double().mean().item()
glue("ch9_background_percent", float(100 * background))
print(f"{100 * background:.1f} % of the training digits' pixels are exactly −1")

# %% [markdown]
# With $h = 0.1$, about 13 bins wide, the density approximation and the exact bin probabilities
# agree to a few thousandths of a bit; with $h$ smaller than a bin the approximation is
# meaningless, and only exact bin probabilities may be used. Open edge bins change the count a
# lot here: nearly half of the digits' pixels
# ({glue:text}`ch9_background_percent:.0f` %) are background at exactly $-1$, and a kernel
# centred there puts half its mass below $-1$, which the open bin collects. That is a real gain for
# a model of clipped data (the decoder of chapter 5 takes it), but a convention that must be the
# same for every model compared. Below, every model uses bins of width $\Delta$ throughout.
#
# Now the three models, fitted on the training digits, evaluated on training digits and on the
# held-out test digits:

# %%
fit_part, val_part = train_q[:1150], train_q[1150:]


def gaussian_log2_density(x, mean, cov):
    mvn = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
    return mvn.log_prob(x.flatten(1).double()) / math.log(2)


def gaussian_fit(x, s):
    flat = x.flatten(1).double()
    return flat.mean(0), torch.cov(flat.T) + s**2 * torch.eye(D, dtype=torch.float64)


s_grid, h_grid = (0.03, 0.05, 0.1, 0.2), (0.1, 0.2, 0.3, 0.4, 0.5, 0.7)
s_best = min(
    s_grid,
    key=lambda s: bits_from_density(
        gaussian_log2_density(val_part, *gaussian_fit(fit_part, s))
    ).mean(),
)
h_best = min(
    h_grid,
    key=lambda h: bits_from_density(kde_log2_density(val_part, fit_part, h)).mean(),
)
print(
    f"chosen on the validation split: s = {s_best}, h = {h_best}, "
    f"i.e. {s_best / BIN:.1f}Δ and {h_best / BIN:.1f}Δ"
)
check(
    f"KDE, h = {h_best}: eq. (eval-bpd) matches the exact bin probabilities "
    "(60 test digits)",
    bits_from_density(kde_log2_density(test_q[:60], train_q, h_best)).mean(),
    -kde_log2_prob_exact(test_q[:60], train_q, h_best).mean() / D,
    atol=5e-3,
)

gauss = gaussian_fit(train_q, s_best)
# the exact KDE costs N × D per image: 200 training digits suffice
some_train = train_q[:200]
bits = {
    "Gaussian": [
        bits_from_density(gaussian_log2_density(x, *gauss)).mean().item()
        for x in (some_train, test_q)
    ],
    f"KDE, h = {h_best}": [
        bits_from_density(kde_log2_density(x, train_q, h_best)).mean().item()
        for x in (some_train, test_q)
    ],  # fmt: skip
    "copier (h = 0.001)": [
        (-kde_log2_prob_exact(x, train_q, 0.001) / D).mean().item()
        for x in (some_train, test_q)
    ],
}
print(f"{'bits/dim':20s}{'training digits':>17}{'test digits':>14}")
for label, (on_train, on_test) in bits.items():
    print(f"{label:20s}{on_train:>17.3f}{on_test:>14.3f}")
copier_train, copier_test = bits["copier (h = 0.001)"]
# A training digit's own kernel puts (2Φ(Δ/2h) − 1)^D on its bin, any other one ≈ 0:
# −log₂ P = log₂ N − D log₂(2Φ(Δ/2h) − 1), i.e. its index plus a tiny kernel cost.
own_bin = math.erf(BIN / 2 / 0.001 / math.sqrt(2))  # 2Φ(Δ/2h) − 1
check(
    "the copier codes a training digit in log₂(N)/D − log₂(2Φ(Δ/2h) − 1) bits/dim",
    copier_train,
    math.log2(len(train_q)) / D - math.log2(own_bin),
    atol=1e-8,
)
check("log₂(1437)/64 ≈ 0.16", math.log2(len(train_q)) / D, 0.16, atol=5e-3)
check_le("but held-out digits cost it more than raw 8-bit storage", 8.0, copier_test)
glue("ch9_copier_train", float(copier_train))
glue("ch9_copier_test", float(copier_test))

# %% [markdown]
# The copier is the best possible model of its training set, about $\log_2(1437)/64 \approx 0.16$
# bits per pixel (it measured {glue:text}`ch9_copier_train:.4f`), since to name a training digit
# it suffices to give its index. On digits it has not seen it is hopeless
# ({glue:text}`ch9_copier_test:.0f` bits per pixel): each test digit lies many bins away from
# every training digit in some pixels. **A held-out likelihood exposes memorisation.** The sample-based metrics do not: the
# copier's samples are real digits, so their Fréchet distance to the test digits is that of real
# data at this sample size, and their precision and recall are those of real data:

# %%
order = torch.randperm(
    len(train_set.images), generator=torch.Generator().manual_seed(4)
)
copies = train_set.images[order[:500]]
f_copies = features(copies)
copier_fd = metrics.frechet_distance(f_copies, f_test)
copier_pr = metrics.precision_recall(f_test, f_copies)
gan_fd = metrics.frechet_distance(features(gan_500), f_test)
print(
    f"copier (500 training digits): FD {copier_fd:.2f}, "
    f"precision {copier_pr['precision']:.3f}, recall {copier_pr['recall']:.3f}"
)
print(f"digits-gan (500 samples):     FD {gan_fd:.2f}")
# digits-gan's FD over the copier's, under seed shifts 0/1/2: 6.24 / 8.19 / 4.40
check_outcome(
    "the copier beats the GAN on FD (ratio GAN / copier)",
    gan_fd / copier_fd,
    at_least=2.0,
)

# %% [markdown]
# **What a likelihood cannot see** {cite}`theis2016note`. Take any model $p$ and mix it with
# noise: $p_{\text{mix}} = 0.01\,p + 0.99\,q$, where $q$ is uniform over all 8-bit images. Sampling
# it gives noise 99 % of the time. Its likelihood barely moves:
#
# 1. Both terms of the mixture are non-negative, so $P_{\text{mix}}(\mathbf{x}) \ge 0.01\,P(\mathbf{x})$.
# 2. Take $-\log_2$ (a decreasing function): $-\log_2 P_{\text{mix}}(\mathbf{x}) \le -\log_2 P(\mathbf{x}) + \log_2 100$.
# 3. Divide by $D$:
#
# $$
# \text{bits/dim}_{\text{mix}}(\mathbf{x}) \le \text{bits/dim}_p(\mathbf{x}) + \frac{\log_2 100}{D} .
# $$ (eval-mixture-bound)
#
# For the 64 pixels of a digit that is $\log_2(100)/64 \approx 0.10$ bits per dimension; for a
# $256 \times 256 \times 3$ image it is $3.4 \times 10^{-5}$, invisible. Step 1 drops the noise
# term $0.99\,q(\mathbf{x})$, so the bound is attained wherever that term is negligible next to
# $0.01\,P(\mathbf{x})$, and the mixture does *better* than the bound where $p$ is no better
# than noise. We compute both, image by image, with the KDE as $p$ (its exact bin
# probabilities), and draw 500 samples of the mixture:

# %%
check("log₂(100)/64 ≈ 0.10", math.log2(100) / 64, 0.10, atol=5e-3)
check(
    "log₂(100)/(256·256·3) ≈ 3.4e-5",
    math.log2(100) / (256 * 256 * 3),
    3.4e-5,
    atol=5e-7,
)
h_kde = h_best
log2_p = kde_log2_prob_exact(
    test_q, train_q, h_kde
)  # exact log₂ P(x) of the test digits
log2_q = -D * 8.0  # uniform over 256^64 images
log2_mix = torch.logaddexp2(
    math.log2(0.01) + log2_p, torch.full_like(log2_p, math.log2(0.99) + log2_q)
)
bits_p, bits_mix = -log2_p / D, -log2_mix / D
penalty = bits_mix - bits_p
# where 0.01 P(x) exceeds 0.99 q(x) by a factor 2^20 or more, the dropped term changes
# log₂ P_mix by less than 2^-20 / ln 2: the bound must then hold with equality
p_dominates = math.log2(0.01) + log2_p >= math.log2(0.99) + log2_q + 20
check_le("the comparison below is not empty", 1, int(p_dominates.sum()))
check(
    f"the {int(p_dominates.sum())} test digits where p dominates the noise: "
    "penalty = log₂(100)/64 exactly, eq. (eval-mixture-bound) attained",
    penalty[p_dominates],
    math.log2(100) / D,
    atol=2**-20 / math.log(2) / D,
)
print(
    f"test bits/dim: KDE {bits_p.mean():.3f}, "
    f"1 % KDE + 99 % noise {bits_mix.mean():.3f}; "
    f"the bound allows +{math.log2(100) / D:.3f}"
)
others = penalty[~p_dominates]
print(
    f"{len(others)} test digits on which the KDE is no better than noise: "
    f"penalty from {others.min():.3f} to {others.max():.3f}"
)
glue("ch9_mix_kde_bits", float(bits_p.mean().item()))
glue("ch9_mix_bits", float(bits_mix.mean().item()))
glue("ch9_mix_n_dominant", int(p_dominates.sum()))
glue("ch9_mix_n_other", int((~p_dominates).sum()))

g = torch.Generator().manual_seed(5)
from_p = torch.rand(500, generator=g) < 0.01
kde_samples = train_q[
    torch.randint(len(train_q), (500,), generator=g)
] + h_kde * torch.randn(500, 1, 8, 8, generator=g)
noise = torch.randint(0, 256, (500, 1, 8, 8), generator=g) / 127.5 - 1
mixture_samples = torch.where(
    from_p[:, None, None, None], kde_samples.clamp(-1, 1), noise
)
f_mix, f_kde = features(mixture_samples), features(kde_samples.clamp(-1, 1))
mix_fd, kde_fd = (
    metrics.frechet_distance(f_mix, f_test),
    metrics.frechet_distance(f_kde, f_test),
)
print(f"{int(from_p.sum())} of 500 mixture samples come from p.")
print(f"FD to the test digits: mixture {mix_fd:.1f}, KDE alone {kde_fd:.2f}")
glue("ch9_mix_from_p", int(from_p.sum()))
glue("ch9_mix_fd", float(mix_fd))
glue("ch9_kde_fd", float(kde_fd))
# the mixture's FD over the KDE's, measured under seed shifts 0/1/2 (the classifier's
# seeds 0, 1000, 2000): 22.5 / 23.9 / 22.2
check_outcome(
    "the samples see what the likelihood missed: mixture FD / KDE FD",
    mix_fd / kde_fd,
    at_least=5.0,
)

fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
viz.show_images(copies[:25], nrow=5, ax=axes[0], title="copier")
viz.show_images(
    kde_samples[:25].clamp(-1, 1), nrow=5, ax=axes[1], title=f"KDE, h = {h_kde}"
)
viz.show_images(mixture_samples[:25], nrow=5, ax=axes[2], title="1 % KDE + 99 % noise")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: 25 samples each from the copier (training digits), the KDE, and the noisy mixture.*
# The mixture's mean test likelihood, {glue:text}`ch9_mix_bits:.3f` bits per pixel against the
# KDE's {glue:text}`ch9_mix_kde_bits:.3f`, is within the bound's tenth of a bit: on the
# {glue:text}`ch9_mix_n_dominant` test digits that the KDE models well it pays exactly
# $\log_2(100)/64$, and on the other {glue:text}`ch9_mix_n_other` the noise even helps. Yet only
# {glue:text}`ch9_mix_from_p` of its 500 samples are digits, and its Fréchet distance to the
# test digits is {glue:text}`ch9_mix_fd:.0f` against the KDE's {glue:text}`ch9_kde_fd:.1f`. The two failure cases point in opposite directions: a likelihood on held-out
# data sees memorisation that sample metrics miss, and sample metrics see garbage samples that a
# likelihood forgives. {cite:t}`theis2016note` show more: a model can have excellent log-likelihood
# and poor samples, or excellent samples and poor (even infinite) log-likelihood, so the two must
# be measured separately.
#
# **A GAN has no likelihood to report.** `digits-gan` maps $\mathbf{z} \in \mathbb{R}^{32}$ to
# $\mathbb{R}^{64}$. Its samples lie on the image of a 32-dimensional input, a set of volume zero
# in $\mathbb{R}^{64}$ (a smooth, or merely Lipschitz, map cannot raise dimension), so $p_g$ has
# no density there at all; after quantisation its bin probabilities exist but would require
# integrating over $\mathbf{z}$, and a test digit that is not on the surface gets (almost)
# probability 0. That the surface has dimension *at most* 32 is a fact of the architecture. What
# training decides is whether it has dimension *exactly* 32 (a generator whose layers discard
# directions of $\mathbf{z}$, or whose LeakyReLUs stay on their flat side, has a lower-dimensional
# image). The rank of the generator's Jacobian $\partial G/\partial\mathbf{z}$, a $64 \times 32$
# matrix, measures it at a point: we check autograd's Jacobian against central differences,
# then take its numerical rank in float64 (the singular values above
# $\sigma_{\max} \cdot 64 \cdot 2.2 \times 10^{-16}$, PyTorch's and NumPy's default tolerance) at
# five random $\mathbf{z}$:

# %%
g_net = gan_digits.model.double()  # float64 for the finite differences; restored below
z_points = torch.randn(5, z_dim, generator=torch.Generator().manual_seed(6)).double()
with torch.enable_grad():
    jacobians = [
        torch.autograd.functional.jacobian(lambda v: g_net(v[None]).flatten(), z_i)
        for z_i in z_points
    ]
eps = 1e-5
basis = torch.eye(z_dim, dtype=torch.float64)
z0 = z_points[:1]
finite_diff = torch.stack(
    [(g_net(z0 + eps * e) - g_net(z0 - eps * e)).flatten() / (2 * eps) for e in basis],
    dim=1,
)
check(
    "autograd's Jacobian = central differences, at one z (64 × 32 entries)",
    jacobians[0],
    finite_diff,
    atol=1e-6,
)
ranks, conditions = [], []
for jac in jacobians:
    singular = torch.linalg.svdvals(jac)
    # the default tolerance: singular values above σ_max · max(64, 32) · eps(float64)
    ranks.append(int(torch.linalg.matrix_rank(jac)))
    conditions.append((singular[0] / singular[-1]).item())
gan_digits.model.float()
print(f"Jacobian of G: {tuple(jacobians[0].shape)}; numerical ranks at 5 z: {ranks}")
print(f"largest / smallest singular value: {', '.join(f'{c:.3g}' for c in conditions)}")
glue("ch9_jacobian_condition", float(max(conditions)))
# the smallest of the 5 ranks, measured under seed shifts 0/1/2 (digits-gan seeds 0,
# 1000, 2000): 32 / 32 / 32 (largest condition number 1.7e4 / 1.6e3 / 2.7e5, far from
# the tolerance's 1 / (64 · 2.2e-16) ≈ 7e13)
check_outcome(
    "the generator's image has full dimension z_dim = 32 (smallest rank of 5)",
    min(ranks),
    at_least=z_dim,
)

# %% [markdown]
# At every point tried the Jacobian has full rank 32, with singular values spread over a factor
# of at most {glue:text}`ch9_jacobian_condition:,.0f`, far from the tolerance: the samples of
# `digits-gan` fill a 32-dimensional surface in the 64-dimensional space of images, no more
# (the architecture) and no less (the trained weights), and a surface has no volume.
#
# This is why GAN papers report FID and precision/recall and diffusion papers report both those
# and bits per dimension (chapter 6 measured the bound for `digits-ddpm`). A diffusion model's
# number is an upper bound on its code length, so a comparison of likelihoods favours models with
# exact likelihoods, or tight bounds.
#
# (eval-gan-vs-diffusion)=
# ## GAN against diffusion, measured
#
# The claim usually made for diffusion models {cite}`dhariwal2021beat` is that they cover the
# data's modes better than GANs and train more stably, at the price of many network evaluations
# per sample. Here are our measurements on the two data sets, with the same metrics, the same
# sample sizes and the same reference data for both families.
#
# **The ring** (chapter 3): `ring-gan` (MLPs, hinge loss) against `ring-ddpm` (an MLP denoiser,
# $T = 1000$), each trained with three seeds, 2,000 samples each. Mode coverage
# (`metrics.mode_coverage`, the measure of {cite:t}`srivastava2017veegan`): a sample is high
# quality if it lies within $3\sigma$ of a mode's centre, and a mode is hit if at least one
# high-quality sample is nearest to it. "Smallest mode" is the share of the high-quality samples
# that the least-populated mode receives ($1/8 = 0.125$ when balanced). Precision and recall are
# computed in the plane against 2,000 fresh real points; a row of real data shows what a perfect
# generator would score. "NFE" is the number of network evaluations per sample, counted while
# sampling; "ms/sample" is the measured sampling time, noisy on a shared machine.


# %%
def format_table(rows, columns):
    """Print rows (dicts) as a fixed-width table; columns: (key, header, fmt, width)."""
    print("".join(f"{header:>{width}}" for _, header, _, width in columns))
    for row in rows:
        cells = []
        for key, _, fmt, width in columns:
            value = row.get(key, "")
            numeric = isinstance(value, (int, float, np.floating, np.integer))
            text = format(value, fmt) if numeric else str(value)
            cells.append(f"{text:>{width}}")
        print("".join(cells))


class CountCalls:
    """Counts a network's forward passes (one per network evaluation of a batch)."""

    def __init__(self, net):
        self.calls = 0
        self.handle = net.register_forward_hook(self.hook)

    def hook(self, module, inputs, output):
        self.calls += 1

    def remove(self):
        self.handle.remove()
        return self.calls


centres = data.ring_modes()
ring_rows, ring_samples, ring_records = [], {}, {}


def ring_row(model, seed, points, seconds, train_s, nfe):
    coverage = metrics.mode_coverage(points, centres, std=0.05)
    counts = coverage["per_mode_counts"]
    return {"model": model, "seed": seed, "modes": coverage["modes_hit"],
            "hq": coverage["high_quality_fraction"],
            "min_mode": counts.min() / max(counts.sum(), 1),
            **metrics.precision_recall(real_ring, points),
            "train_s": train_s, "nfe": nfe,
            "ms": 1000 * seconds / len(points)}  # fmt: skip


real_row = ring_row("real data", "-", data.ring(2000, seed=2), 0.0, "-", "-")
ring_rows.append({**real_row, "ms": "-"})
check("the real data row hits all 8 modes", ring_rows[0]["modes"], 8, atol=0)
for name in ("ring-gan", "ring-ddpm"):
    for seed in (0, 1, 2):
        m = zoo.load(name, seed=seed)
        g = torch.Generator().manual_seed(100 + seed)
        counter = CountCalls(m.model)
        start = time.perf_counter()
        if m.entry.family == "gan":
            points = gan.sample(m.model, 2000, generator=g)
        else:
            points = samplers.ddpm(m.model, m.diffusion, (2000, 2), generator=g,
                                   clip_denoised=False, progress=False)  # fmt: skip
        seconds = time.perf_counter() - start
        nfe = counter.remove()  # one batch of 2,000: forward passes = NFE per sample
        ring_samples[name, seed], ring_records[name, seed] = points, m.record
        ring_rows.append(
            ring_row(name, seed, points, seconds, m.record["train_seconds"], nfe)
        )
check(
    "NFE counted: 1 per GAN sample, T = 1000 per DDPM sample",
    [r["nfe"] for r in ring_rows[1:]],
    [1] * 3 + [1000] * 3,
    atol=0,
)

format_table(ring_rows, [("model", "model", "", 10), ("seed", "seed", "", 5),
                         ("modes", "modes hit", "d", 10),
                         ("hq", "high-quality", ".3f", 13),
                         ("min_mode", "smallest mode", ".3f", 14),
                         ("precision", "precision", ".3f", 10),
                         ("recall", "recall", ".3f", 8)])  # fmt: skip
print()
format_table(ring_rows[1:], [("model", "model", "", 10), ("seed", "seed", "", 5),
                             ("train_s", "train s", ".1f", 9), ("nfe", "NFE", "d", 6),
                             ("ms", "ms/sample", ".3f", 11)])  # fmt: skip

# %% [markdown]
# **The digits**: `digits-gan` (MLPs, non-saturating loss) with three seeds against `digits-ddpm`
# (the U-Net of chapter 6) with **one** seed: a `digits-ddpm` seed trains for minutes (its time
# is in the table below), too much for a chapter; `benchmarks/gan_vs_diffusion.py` in the
# repository trains and measures more seeds of both (its results are in the README). Under the
# book's seed shifts (see the setup) the one seed is another training run each time, so the
# claims checked below have been measured on three `digits-ddpm` runs in all. 500 samples each
# (for `digits-ddpm`, the 500 DDPM-1000 reference samples of chapter 7, whose sampling time was
# measured when they were drawn), all against the 360 test digits in classifier features. A
# row of 500 real training digits gives the floor.


# %%
def digits_row(model, seed, images, seconds_per_sample, train_s, nfe):
    f = features(images)
    scores = metrics.classifier_scores(images, classifier)
    return {"model": model, "seed": seed, "fd": metrics.frechet_distance(f, f_test),
            **metrics.precision_recall(f_test, f), "is": scores["inception_score"],
            "top": scores["mean_top_prob"],
            "cls_min": float(scores["class_histogram"].min()),
            "cls_max": float(scores["class_histogram"].max()), "train_s": train_s,
            "nfe": nfe, "ms": 1000 * seconds_per_sample, "features": f,
            "probs": probabilities(images)}  # fmt: skip


digit_rows = [{**digits_row("real (train)", "-", copies, 0.0, "-", "-"), "ms": "-"}]
digit_samples = {}
for seed in (0, 1, 2):
    m = zoo.load("digits-gan", seed=seed)
    start = time.perf_counter()
    images = gan.sample(
        m.model, 500, generator=torch.Generator().manual_seed(200 + seed)
    )
    seconds = (time.perf_counter() - start) / 500
    digit_samples["digits-gan", seed] = images
    digit_rows.append(
        digits_row("digits-gan", seed, images, seconds, m.record["train_seconds"], 1)
    )
ddpm_digits = zoo.load("digits-ddpm")
reference = reference_samples("digits-ddpm", 500, seed=0)
digit_samples["digits-ddpm", 0] = reference.x0
digit_rows.append(
    digits_row("digits-ddpm", 0, reference.x0, reference.seconds_per_sample,
               ddpm_digits.record["train_seconds"], ddpm_digits.diffusion.num_timesteps)
)  # fmt: skip
format_table(digit_rows, [("model", "model", "", 13), ("seed", "seed", "", 5),
                          ("fd", "FD n=500", ".2f", 9),
                          ("precision", "precision", ".3f", 10),
                          ("recall", "recall", ".3f", 7), ("is", "IS", ".2f", 6),
                          ("top", "top-p", ".3f", 7),
                          ("cls_min", "min class", ".3f", 10),
                          ("cls_max", "max class", ".3f", 10)])  # fmt: skip
print()
format_table(digit_rows[1:], [("model", "model", "", 13), ("seed", "seed", "", 5),
                              ("train_s", "train s", ".1f", 9), ("nfe", "NFE", "d", 6),
                              ("ms", "ms/sample", ".3f", 11)])  # fmt: skip

# %% [markdown]
# **When does one family beat the other?** Only when the difference is larger than what a
# change of training seed, or of the samples drawn, does to either. The cell below puts both
# families side by side, each as the range over its seeds, and calls a difference only where the
# two ranges are apart by more than two standard errors of sampling noise. For the fractions
# (high-quality share, precision, recall, class shares) the standard error is the binomial
# $\sqrt{p(1-p)/n}$, the largest over the values of both families; for the Fréchet distance,
# the Inception Score and the mean top-class probability it is a bootstrap over the 500
# samples (100 resamples), the larger of the two families'; for the counts of modes it is 0.


# %%
def bootstrap_se(row, repeats=100, seed=9):
    """Standard errors of FD, IS and top-p over resamples of one model's 500 samples."""
    g = np.random.default_rng(seed)
    f, p = row["features"], row["probs"]
    values = {"fd": [], "is": [], "top": []}
    for _ in range(repeats):
        i = g.integers(0, len(f), len(f))
        values["fd"].append(metrics.frechet_distance(f[i], f_test))
        p_y = p[i].mean(axis=0)
        values["is"].append(
            math.exp(np.mean(np.sum(p[i] * np.log(p[i] / p_y), axis=1)))
        )
        values["top"].append(p[i].max(axis=1).mean())
    return {key: float(np.std(v, ddof=1)) for key, v in values.items()}


def compare(rows, a, b, key, higher_is_better, n, se=None):
    """The range of models a and b over seeds, and which is better, if either."""
    va = np.array([r[key] for r in rows if r["model"] == a], dtype=float)
    vb = np.array([r[key] for r in rows if r["model"] == b], dtype=float)
    if se is None:  # binomial: the largest √(p(1 − p)/n) over the fractions of both
        p = np.concatenate([va, vb])
        se = float(np.sqrt(p * (1 - p) / n).max()) if key != "modes" else 0.0
    sign = 1 if higher_is_better else -1
    # how far b's worst seed is ahead of a's best (> 0: every b seed beats every a seed)
    b_ahead = min(sign * vb) - max(sign * va)
    a_ahead = min(sign * va) - max(sign * vb)
    if b_ahead > 2 * se:
        verdict = f"{b} better"
    elif a_ahead > 2 * se:
        verdict = f"{a} better"
    else:
        verdict = "no difference"
    return {
        "key": key,
        "a": va,
        "b": vb,
        "se": se,
        "b_ahead": b_ahead,
        "verdict": verdict,
    }


def show_comparison(title, results, a, b):
    print(title)
    print(
        f"{'metric':>15}{a + ' (range)':>20}{b + ' (range)':>20}{'2 s.e.':>8}  verdict"
    )
    for r in results:
        fmt = {"modes": ".0f", "fd": ".2f", "is": ".2f"}.get(r["key"], ".3f")
        cells = [
            f"{v.min():{fmt}}–{v.max():{fmt}}" if len(v) > 1 else f"{v[0]:{fmt}}"
            for v in (r["a"], r["b"])
        ]
        print(
            f"{r['key']:>15}{cells[0]:>20}{cells[1]:>20}{2 * r['se']:>8.3f}  "
            f"{r['verdict']}"
        )
    print()


ring_cmp = {
    key: compare(ring_rows, "ring-gan", "ring-ddpm", key, True, 2000)
    for key in ("modes", "hq", "min_mode", "precision", "recall")
}
boot = [bootstrap_se(row) for row in digit_rows[1:]]
digit_cmp = {}
for key in ("fd", "precision", "recall", "is", "top", "cls_min"):
    se = max(b[key] for b in boot) if key in ("fd", "is", "top") else None
    digit_cmp[key] = compare(
        digit_rows, "digits-gan", "digits-ddpm", key, key != "fd", 500, se
    )
show_comparison("The ring (3 seeds each):", ring_cmp.values(), "ring-gan", "ring-ddpm")
show_comparison("The digits:", digit_cmp.values(), "digits-gan", "digits-ddpm")


def lead(r):
    """How far the DDPM's worst seed is ahead of the GAN's best, beyond 2 s.e."""
    return r["b_ahead"] - 2 * r["se"]


# Margins measured under seed shifts 0/1/2 (seeds 0, 1, 2 / 1000, 1001, 1002 / 2000, …).
# fewest modes hit by a ring-gan seed: 8 / 8 / 8 (7 on another torch build, chapter 3)
check_outcome(
    "every ring-gan seed hits at least 7 of the 8 modes",
    min(r["modes"] for r in ring_rows if r["model"] == "ring-gan"),
    at_least=7,
)
# smallest mode's share, worst ring-ddpm seed: 0.110 / 0.109 / 0.112 (even: 0.125)
check_outcome(
    "every ring-ddpm seed fills all 8 modes nearly evenly (smallest mode's share)",
    min(r["min_mode"] for r in ring_rows if r["model"] == "ring-ddpm"),
    at_least=0.08,
)
# ring-ddpm's lead beyond 2 s.e.: hq 0.169 / 0.163 / 0.174,
# smallest mode 0.080 / 0.084 / 0.083, precision 0.154 / 0.136 / 0.162,
# recall 0.094 / 0.063 / 0.110
for key, at_least in (("hq", 0.08), ("min_mode", 0.04), ("precision", 0.07),
                      ("recall", 0.03)):  # fmt: skip
    check_outcome(
        f"ring: ring-ddpm's worst seed beats ring-gan's best beyond 2 s.e., {key}",
        lead(ring_cmp[key]),
        at_least=at_least,
    )
# digits-ddpm's lead beyond 2 s.e.: FD 7.3 / 32.7 / 6.3,
# precision 0.068 / 0.152 / 0.120, IS 0.75 / 1.26 / 0.67, top-p 0.022 / 0.017 / 0.025
# (recall −0.022 / 0.067 / −0.073, smallest class share −0.021 / 0.016 / −0.009:
# no claim)
for key, at_least in (("fd", 2.0), ("precision", 0.03), ("is", 0.3), ("top", 0.005)):
    check_outcome(
        f"digits: digits-ddpm beats digits-gan's best seed beyond 2 s.e., {key}",
        lead(digit_cmp[key]),
        at_least=at_least,
    )

glue("ch9_hq_ddpm_min", float(ring_cmp["hq"]["b"].min()))
glue("ch9_hq_gan_max", float(ring_cmp["hq"]["a"].max()))
glue("ch9_minmode_ddpm_min", float(ring_cmp["min_mode"]["b"].min()))
glue("ch9_minmode_gan_max", float(ring_cmp["min_mode"]["a"].max()))
glue("ch9_gan_min_modes", int(ring_cmp["modes"]["a"].min()))
glue("ch9_fd_ddpm", float(digit_cmp["fd"]["b"][0]))
glue("ch9_fd_gan_min", float(digit_cmp["fd"]["a"].min()))
glue("ch9_fd_gan_max", float(digit_cmp["fd"]["a"].max()))

# %%
fig, axes = plt.subplots(2, 4, figsize=(13, 6.4))
for row, name in enumerate(("ring-gan", "ring-ddpm")):
    for col, seed in enumerate((0, 1, 2)):
        ax = axes[row, col]
        pts = ring_samples[name, seed]
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4)
        ax.scatter(centres[:, 0], centres[:, 1], marker="x", color="k", s=30)
        ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", title=f"{name}, seed {seed}")
    ax = axes[row, 3]
    for seed in (0, 1, 2):
        record = ring_records[name, seed]
        curve = np.asarray(
            record["d_losses"] if name.endswith("gan") else record["losses"],
            dtype=float,
        )
        window = 100
        smooth = np.convolve(curve, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(smooth)) + window, smooth, lw=1, label=f"seed {seed}")
    ax.set(
        xlabel="training step",
        ylabel="discriminator loss" if name.endswith("gan") else "L_simple",
        title="training loss (moving average)",
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: top, 2,000 samples of `ring-gan` for each training seed, with the eight centres (×),
# and its discriminator's loss during training; bottom, the same for `ring-ddpm` and its
# $L_{\text{simple}}$.* Look at where the samples lie, not only at how many modes they reach. Both
# samplers are continuous functions of Gaussian noise, whose support is connected, so neither can
# put exactly zero mass between two modes; a diffusion model composes 1,000 small steps and can make
# the passage between modes steep, while one pass of a small MLP tends to spread samples along it.
# In these runs that shows as GAN samples along the arcs between the modes, which lowers its
# high-quality fraction and precision well below the diffusion model's without costing it
# more than a mode (none at all in the runs measured here).
#
# A diffusion model's loss is a regression loss that falls and flattens: it
# tells you when training has converged. A GAN's losses are the two sides of a game and do not
# fall to a minimum; they stay at a level set by the balance of the two networks, and they say
# little about sample quality. Monitoring a GAN therefore needs the sample metrics of this chapter
# during training.

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
for ax, key in zip(
    axes, [("digits-gan", 0), ("digits-gan", 1), ("digits-gan", 2), ("digits-ddpm", 0)]
):
    viz.show_images(
        digit_samples[key][:36], nrow=6, ax=ax, title=f"{key[0]}, seed {key[1]}"
    )
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: 36 samples of `digits-gan` for each of three seeds, and of `digits-ddpm` (seed 0).*
#
# The cost, in time, of a sample and of training, from the tables above:


# %%
def mean_of(rows, model, key):
    return float(np.mean([r[key] for r in rows if r["model"] == model]))


ring_ms = mean_of(ring_rows, "ring-ddpm", "ms") / mean_of(ring_rows, "ring-gan", "ms")
digit_ms = mean_of(digit_rows, "digits-ddpm", "ms") / mean_of(
    digit_rows, "digits-gan", "ms"
)
print(
    f"time per sample, DDPM / GAN: {ring_ms:.0f}× on the ring, "
    f"{digit_ms:.0f}× on the digits"
)
train_times = {
    "ring-gan": mean_of(ring_rows, "ring-gan", "train_s"),
    "ring-ddpm": mean_of(ring_rows, "ring-ddpm", "train_s"),
    "digits-gan": mean_of(digit_rows, "digits-gan", "train_s"),
    "digits-ddpm": mean_of(digit_rows, "digits-ddpm", "train_s"),
}
print("training time (mean over seeds):")
print("    " + ", ".join(f"{name} {sec:.0f} s" for name, sec in train_times.items()))
glue("ch9_ring_ms_ratio", float(ring_ms))
glue("ch9_digit_ms_ratio", float(digit_ms))
for name, seconds in train_times.items():
    glue(f"ch9_train_{name.replace('-', '_')}", float(seconds))

# %% [markdown]
# How to read these tables, on these models:
#
# - **Mode coverage on the ring.** The standard story says that GANs drop modes and diffusion
#   models do not. "Modes hit" counts a mode as covered as soon as a single good sample lands
#   near it, a weak test: here the worst `ring-gan` seed hit {glue:text}`ch9_gan_min_modes` of
#   the 8 modes, and every seed of either family measured for this book hit all 8, yet we claim
#   only 7 for the GAN, because a GAN trained on another torch build dropped one (chapter 3).
#   The high-quality fraction and the smallest mode's share are stricter: they say how many
#   samples land on the modes and how evenly the modes are filled. On both, `ring-ddpm`'s worst
#   seed beat `ring-gan`'s best by far more than two standard errors in each of the three
#   training runs checked above: in this run {glue:text}`ch9_hq_ddpm_min:.3f` of its samples
#   lie near a mode against at most {glue:text}`ch9_hq_gan_max:.3f` for the GAN, and its
#   emptiest mode holds {glue:text}`ch9_minmode_ddpm_min:.3f` of its good samples against at
#   most {glue:text}`ch9_minmode_gan_max:.3f` for the GAN (0.125 is even). A generator can
#   starve a mode down to a handful of samples without dropping it, which "modes hit" cannot
#   see and the smallest share can. How a GAN is trained matters as much as its family:
#   chapter 3 makes the same kind of GAN collapse onto a single mode just by letting its
#   generator learn much faster than its discriminator. Eight modes in two dimensions is an
#   easy test; real data sets have far more.
# - **Spread over seeds** is the closest thing to "stability" that three seeds can measure: the
#   ranges in the comparison tables. Three seeds give only a rough estimate of it, and part of
#   each range is sampling noise (compare the 2 s.e. column); a claim about stability needs
#   many more runs, and harder problems.
# - **The digits.** The Fréchet distances are comparable because all use $n = 500$ against the
#   same 360 test digits and the same classifier. In each of the three training runs,
#   `digits-ddpm` beat the best `digits-gan` seed by more than two standard errors on the
#   Fréchet distance, precision, the Inception Score and the mean top-class probability (the
#   checks above); in this run its distance is {glue:text}`ch9_fd_ddpm:.2f` against
#   {glue:text}`ch9_fd_gan_min:.2f` to {glue:text}`ch9_fd_gan_max:.2f` for the GAN's seeds.
#   Recall and the smallest class share did not separate the same way in every run, so we
#   claim nothing about them. Precision and recall separate the two ways to lose: a generator
#   with blurry or malformed digits loses precision, one that omits styles or classes loses
#   recall; the class shares show whether any digit is under-produced. One diffusion seed per
#   run against three GAN seeds cannot compare their variability.
# - **Cost.** The cost of a sample is not in doubt: one network evaluation against 1,000
#   (counted above; chapter 7 brings DDPM down to tens of steps). In time, a DDPM sample cost
#   {glue:text}`ch9_ring_ms_ratio:.0f` times a GAN sample on the ring and
#   {glue:text}`ch9_digit_ms_ratio:.0f` times on the digits, on this run's CPU (the digits
#   U-Net is far larger than the GAN's MLP). The training times recorded with the models were
#   {glue:text}`ch9_train_ring_gan:.0f` s (`ring-gan`), {glue:text}`ch9_train_ring_ddpm:.0f` s
#   (`ring-ddpm`), {glue:text}`ch9_train_digits_gan:.0f` s (`digits-gan`) and
#   {glue:text}`ch9_train_digits_ddpm:.0f` s (`digits-ddpm`), each on the machine and under the
#   load it was trained with. The networks differ in size and kind, so this compares these
#   models more than the two families.
#
# None of these numbers would transfer unchanged to large images: they use a 64-feature classifier,
# a few hundred samples, and small networks. What transfers is the method: the same $n$ for
# everyone, several seeds, more than one metric, and a look at the samples themselves.

# %% [markdown]
# ## Summary
#
# - The Fréchet distance {eq}`fid` is the 2-Wasserstein distance {eq}`eval-w2` between Gaussians:
#   every coupling's cost depends on its cross-covariance {eq}`eval-coupling-cost`, whose trace is
#   bounded by {eq}`eval-trace-bound`, and the linear coupling {eq}`eval-coupling-map` attains the
#   bound. $\operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2} = \operatorname{Tr}(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}$
#   because the two matrices are similar.
# - FID is {eq}`fid` between Gaussians fitted to network features. In this book the network is a
#   digits classifier, so the numbers are not comparable with published FIDs.
# - With $n$ samples the estimate is biased upwards by about $c/n$, with $c \approx d^2/2$ for
#   whitened Gaussian features {eq}`eval-fd-bias`: compare FIDs only at equal $n$, or extrapolate
#   to $\mathrm{FD}_\infty$.
# - Precision and recall with $k$-NN manifolds {eq}`eval-precision-recall` separate quality from
#   coverage; a lower temperature ($\psi\mathbf{z}$) and BigGAN's truncation (resampling
#   $|z_i| > \tau$) both trade recall for precision, up to a point; StyleGAN's truncation acts
#   in $\mathcal{W}$; one outlier can make precision meaningless.
# - The Inception Score {eq}`inception-score` is $\exp$ of the mutual information between image
#   and label {eq}`eval-is-mi`, between 1 and $K$; ten repeated prototypes score almost $K$.
# - Bits per dimension {eq}`eval-bpd` on held-out data exposes memorisation (the copier), but a
#   model that is 99 % noise loses at most $\log_2(100)/D$ bits per dimension {eq}`eval-mixture-bound`.
#   A GAN has no likelihood.
# - On the ring and the digits, in three training runs of each model family, the diffusion
#   models beat the GANs on sample quality, and on the ring also in recall and in how evenly
#   the modes are filled, by more than the spread over seeds and samples; they did not differ
#   in the modes hit, nor consistently on the digits in recall. The difference that holds by construction is the
#   cost of a sample: 1,000 network evaluations against 1.

# %%
print(f"whole chapter: {time.perf_counter() - chapter_start:.0f} s")

# %% [markdown]
# ## Exercises
#
# **1. Scaled covariances.** Compute {eq}`fid` between $\mathcal{N}(\mathbf{0}, a^2\Sigma)$ and
# $\mathcal{N}(\mathbf{0}, b^2\Sigma)$ for $a, b > 0$, and check it with
# `metrics.frechet_distance_from_stats`.
#
# ````{dropdown} Solution
# $(\Sigma_1\Sigma_2)^{1/2} = (a^2b^2\Sigma^2)^{1/2} = ab\,\Sigma$, so the distance is
# $\operatorname{Tr}(a^2\Sigma + b^2\Sigma - 2ab\,\Sigma) = (a - b)^2\operatorname{Tr}\Sigma$: the
# coupling of {eq}`eval-coupling-map` is $\mathbf{x}_2 = (b/a)\,\mathbf{x}_1$.
#
# ```python
# S = random_spd(4, rng)
# a, b = 2.0, 0.5
# print(metrics.frechet_distance_from_stats(np.zeros(4), a**2 * S, np.zeros(4), b**2 * S))
# print((a - b) ** 2 * np.trace(S))
# ```
# ````
#
# **2. An unbiased mean term.** Show that $\mathbb{E}\|\hat{\boldsymbol{\mu}}_1 - \hat{\boldsymbol{\mu}}_2\|^2 = \|\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2\|^2 + \operatorname{Tr}\Sigma_1/n_1 + \operatorname{Tr}\Sigma_2/n_2$
# for independent samples of sizes $n_1, n_2$, and write an unbiased estimate of
# $\|\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2\|^2$. Why is the covariance term harder?
#
# ````{dropdown} Solution
# $\hat{\boldsymbol{\mu}}_1 - \hat{\boldsymbol{\mu}}_2$ has mean $\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2$ and
# covariance $\Sigma_1/n_1 + \Sigma_2/n_2$; for any random vector $\mathbb{E}\|\mathbf{v}\|^2 = \|\mathbb{E}\mathbf{v}\|^2 + \operatorname{Tr}\operatorname{Cov}\mathbf{v}$.
# So $\|\hat{\boldsymbol{\mu}}_1 - \hat{\boldsymbol{\mu}}_2\|^2 - \operatorname{Tr}\hat\Sigma_1/n_1 - \operatorname{Tr}\hat\Sigma_2/n_2$
# is unbiased (the sample covariances are unbiased). The covariance term contains a matrix square
# root, a nonlinear function, and the expectation of a nonlinear function of an estimate is not
# the function of the expectation; only an expansion such as {eq}`eval-fd-bias`, or an
# extrapolation in $1/n$, removes its bias, and only approximately.
# ````
#
# **3. The score of a perfectly confident generator.** Every $p(y \mid \mathbf{x})$ is one-hot,
# and the classes occur with frequencies $\boldsymbol{\pi}$. Show that $\mathrm{IS} = \exp H(\boldsymbol{\pi})$.
# What is the IS of a generator that makes only 0s and 1s, half and half? Does relabelling the
# classes change the score?
#
# ````{dropdown} Solution
# One-hot predictions have $H(y \mid \mathbf{x}) = 0$, and $p(y) = \boldsymbol{\pi}$, so by
# {eq}`eval-is-mi` $\log\mathrm{IS} = H(\boldsymbol{\pi})$. Two classes, half and half: $\mathrm{IS} = \exp(\log 2) = 2$,
# whatever the quality of the images, as long as the classifier is confident. A permutation of the
# classes permutes the terms of both entropies and changes nothing: the score cannot tell which
# classes are produced, only how many and how evenly.
# ````
#
# **4. The neighbourhood size.** Recompute precision and recall of `digits-gan` against the test
# digits for $k = 1, 3, 5, 10$. Why do both rise with $k$, and what happens as $k$ approaches the
# number of samples?
#
# ````{dropdown} Solution
# ```python
# for k in (1, 3, 5, 10):
#     print(k, metrics.precision_recall(f_test, features(gan_500), k=k))
# ```
#
# The radius of each ball is the distance to the $k$-th neighbour, which grows with $k$; larger
# balls make a larger manifold, so more points fall inside both ways. As $k \to N - 1$ every ball
# contains the whole set, and both numbers tend to 1 for any generator whose samples are not far
# outside the data: the metric stops distinguishing anything. $k = 3$ is the paper's compromise
# between a manifold with holes (small $k$) and one that is too fat.
# ````
#
# **5. The mixture bound at scale.** For $256 \times 256$ RGB images, what mixture weight $\alpha$
# on the good model (the rest noise) keeps the bits/dim penalty {eq}`eval-mixture-bound` below
# 0.01? Which fraction of the samples is then noise?
#
# ````{dropdown} Solution
# The penalty is $\log_2(1/\alpha)/D$ with $D = 256 \cdot 256 \cdot 3 = 196{,}608$. Requiring
# $\log_2(1/\alpha) \le 0.01\,D \approx 1{,}966$ allows $\alpha$ as small as $2^{-1966}$: a model
# whose samples are noise with probability $1 - 2^{-1966}$, that is, always, would lose at most
# 0.01 bits per dimension. Likelihood and sample quality are different questions.
# ````
