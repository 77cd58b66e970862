# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Chapter 4: The forward process
#
# A diffusion model learns to turn noise into data by learning to *undo* a fixed process that
# turns data into noise. This chapter is about that fixed process, the **forward process**
# (前向过程, also called the diffusion or noising process). It has no parameters and nothing
# is learned in it, yet almost every formula of the later chapters (the training loss, the
# sampler, the likelihood bound) is built from the few quantities defined here.
#
# **What you will learn.**
#
# - The forward process as a Markov chain that adds a little Gaussian noise at each of $T$
#   steps {cite}`sohl2015deep,ho2020ddpm`, and why each step also shrinks the signal by
#   $\sqrt{1-\beta_t}$ (the variance-preserving property).
# - The closed form $q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\,\mathbf{x}_0,
#   (1-\bar\alpha_t)\mathbf{I})$, derived by induction one step per line, and checked against
#   a simulation of the chain with tolerances set by the standard error.
# - Noise schedules (linear, quadratic, sigmoid and cosine {cite}`nichol2021improved`), the
#   signal-to-noise ratio and the log-SNR that make them comparable.
# - Why $\mathbf{x}_T$ is, for practical purposes, a standard normal: we measure the gap
#   $D_{\mathrm{KL}}(q(\mathbf{x}_T \mid \mathbf{x}_0) \,\Vert\, \mathcal{N}(\mathbf{0}, \mathbf{I}))$
#   in bits.
# - How the paper's step $t = 1, \dots, T$ maps to the code's index $0, \dots, T-1$, and the
#   library functions `get_beta_schedule`, `GaussianDiffusion.q_sample` and
#   `GaussianDiffusion.q_mean_variance`.
#
# **What it assumes.** Multivariate Gaussians, their means and variances, the KL divergence,
# and the reparameterisation trick $z = \mu + \sigma\epsilon$, $\epsilon \sim \mathcal{N}(0, 1)$
# (all in chapter 2). The notation follows {doc}`../book/notation`: bold lower case for vectors,
# $D$ for the data dimension ($D = 64$ for our $8 \times 8$ digits), $\log$ for the natural
# logarithm (nats) and $\log_2$ for bits. The next chapter, {doc}`05_reverse_process_vlb`, uses
# the results of this one to build the reverse process and its training objective.

# %% [markdown]
# ## Setup
#
# The first cell installs the book's library when it is missing (on Colab); elsewhere it does
# nothing. The whole chapter runs on a laptop CPU in well under a minute.

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
from statistics import NormalDist

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from diffusion_lib import GaussianDiffusion, check, check_le, get_beta_schedule, viz
from diffusion_lib.data import digits
from diffusion_lib.diffusion import normal_kl
from diffusion_lib.schedules import alphas_cumprod_from_betas, log_snr

torch.manual_seed(0)
train = digits("train")
test = digits("test")
print(
    f"{len(train.images)} training digits of shape {tuple(train.images.shape[1:])}, "
    f"pixel range [{train.images.min():.0f}, {train.images.max():.0f}]"
)

# %% [markdown]
# ## The forward Markov chain
#
# Start from a data point $\mathbf{x}_0 \sim q(\mathbf{x}_0)$, here an $8 \times 8$ digit
# flattened to a vector of $D = 64$ pixels in $[-1, 1]$. Fix a number of steps $T$ and a
# **variance schedule** (方差调度) $\beta_1, \dots, \beta_T \in (0, 1)$. The forward process
# produces $\mathbf{x}_1, \mathbf{x}_2, \dots, \mathbf{x}_T$ one after the other, each from the
# previous one only, by the Gaussian transition of {cite:t}`ho2020ddpm` (their eq. (2)):
#
# $$
# q(\mathbf{x}_t \mid \mathbf{x}_{t-1}) = \mathcal{N}\big(\mathbf{x}_t;\ \sqrt{1-\beta_t}\,\mathbf{x}_{t-1},\ \beta_t \mathbf{I}\big),
# \qquad t = 1, \dots, T .
# $$ (fwd-step)
#
# Because each $\mathbf{x}_t$ depends on the past only through $\mathbf{x}_{t-1}$ (the Markov
# property), the joint distribution of the whole trajectory is the product of the transitions:
#
# $$
# q(\mathbf{x}_{1:T} \mid \mathbf{x}_0) = \prod_{t=1}^{T} q(\mathbf{x}_t \mid \mathbf{x}_{t-1}) .
# $$ (fwd-chain)
#
# Two remarks on {eq}`fwd-step`. First, $\beta_t$ is a **variance**, not a standard deviation:
# the noise added at step $t$ has standard deviation $\sqrt{\beta_t}$. Second, by the
# reparameterisation trick, drawing from {eq}`fwd-step` is the same as computing
#
# $$
# \mathbf{x}_t = \sqrt{1-\beta_t}\,\mathbf{x}_{t-1} + \sqrt{\beta_t}\,\boldsymbol{\epsilon}_t,
# \qquad \boldsymbol{\epsilon}_t \sim \mathcal{N}(\mathbf{0}, \mathbf{I}),
# $$ (fwd-step-reparam)
#
# where the fresh noise $\boldsymbol{\epsilon}_t$ is independent of $\mathbf{x}_0, \dots,
# \mathbf{x}_{t-1}$ and of the noises of all other steps. So each step does two things: it
# **shrinks** the current point towards the origin by the factor $\sqrt{1-\beta_t} < 1$, and it
# **adds** isotropic Gaussian noise of variance $\beta_t$. The idea of destroying structure
# slowly with such a chain, and learning to reverse it, is due to {cite:t}`sohl2015deep`.
#
# Two abbreviations make everything that follows shorter. Write $\alpha_t$ for the fraction of
# the variance kept by **one** step, and $\bar\alpha_t$ ("alpha bar") for the product of these
# fractions over the first $t$ steps:
#
# $$
# \alpha_t := 1 - \beta_t, \qquad
# \bar\alpha_t := \prod_{s=1}^{t} \alpha_s = \alpha_1 \alpha_2 \cdots \alpha_t, \qquad
# \bar\alpha_0 := 1 .
# $$ (fwd-alpha-bar)
#
# The convention $\bar\alpha_0 = 1$ is the empty product; it says that $\mathbf{x}_0$ carries
# all of the signal and none of the noise. Since every $\alpha_t \in (0, 1)$, the sequence
# $\bar\alpha_t$ decreases strictly from $1$ towards $0$, and it obeys the one-line recursion
# $\bar\alpha_t = \alpha_t\,\bar\alpha_{t-1}$, which drives every derivation below.

# %% [markdown]
# ## A schedule built by hand
#
# The schedule of {cite:t}`ho2020ddpm` uses $T = 1000$ steps with $\beta_t$ rising linearly from
# $\beta_1 = 10^{-4}$ to $\beta_T = 0.02$. The library follows improved-diffusion
# {cite}`nichol2021improved` for other $T$: both endpoints are multiplied by $1000/T$, so that the
# total amount of noise, roughly $\sum_t \beta_t$, does not depend on $T$ (exercise 1 explains why
# that keeps $\bar\alpha_T$ nearly fixed). Written out,
#
# $$
# \beta_t = \frac{1000}{T}\Big(10^{-4} + \frac{t-1}{T-1}\,(0.02 - 10^{-4})\Big), \qquad t = 1, \dots, T .
# $$ (fwd-linear)
#
# Computing $\bar\alpha_t$ from the $\beta_t$ is one cumulative product, {eq}`fwd-alpha-bar`. In
# code, arrays start at 0, so **entry `i` of every array holds step $t = i + 1$**: `betas[0]`
# is $\beta_1$ and `abar[T - 1]` is $\bar\alpha_T$. We work in float64 because $\bar\alpha_t$
# falls to about $4 \times 10^{-5}$ and, for the cosine schedule below, to a few times
# $10^{-9}$.

# %%
T = 1000
scale = 1000 / T
t_steps = torch.arange(1, T + 1, dtype=torch.float64)  # the paper's steps t = 1, ..., T
betas = scale * (1e-4 + (t_steps - 1) / (T - 1) * (0.02 - 1e-4))  # eq. (fwd-linear)
alphas = 1 - betas  # α_t = 1 − β_t
abar = torch.cumprod(alphas, dim=0)  # ᾱ_t, eq. (fwd-alpha-bar)
print(
    f"β_1 = {betas[0]:.1e}, β_T = {betas[-1]:.3f}, ᾱ_1 = {abar[0]:.6f}, "
    f"ᾱ_500 = {abar[499]:.4f}, ᾱ_T = {abar[-1]:.5e}"
)

# %% [markdown]
# The library's `get_beta_schedule("linear", T)` must give the same $\beta$'s, and its
# `alphas_cumprod_from_betas` the same $\bar\alpha$'s. The library also takes a cumulative
# product, so we compare it with the same product computed another way, as the exponential of
# a sum of logarithms, $\bar\alpha_t = \exp\sum_{s \le t}\log(1 - \beta_s)$ (exercise 1 uses
# this form). For $T = 1000$ the last value is pinned in the book at
# $\bar\alpha_T \approx 4.0358 \times 10^{-5}$ (five significant figures, so we allow half a
# unit in the last place, $5 \times 10^{-10}$).

# %%
check(
    "eq. (fwd-linear), written out, equals get_beta_schedule('linear', 1000)",
    betas,
    get_beta_schedule("linear", T),
    atol=1e-15,
)
check(
    "exp(Σ_{s≤t} log(1 − β_s)) equals alphas_cumprod_from_betas (relative error)",
    torch.exp(torch.cumsum(torch.log1p(-betas), dim=0)),
    alphas_cumprod_from_betas(betas),
    atol=0.0,
    rtol=1e-12,
)
_ = check(
    "linear schedule, T = 1000: ᾱ_T ≈ 4.0358e-05", abar[-1], 4.0358e-05, atol=5e-10
)

# %% [markdown]
# ## Why the signal is shrunk by $\sqrt{1-\beta_t}$: variance preservation
#
# Why not simply add noise, $\mathbf{x}_t = \mathbf{x}_{t-1} + \sqrt{\beta_t}\,\boldsymbol{\epsilon}_t$?
# Look at one pixel and its variance over both the data and the noise, $v_t := \mathrm{Var}[x_t]$.
# Suppose a step scales the previous point by some factor $a_t > 0$ before adding the noise,
# $x_t = a_t x_{t-1} + \sqrt{\beta_t}\,\epsilon_t$. Because $\epsilon_t$ is independent of
# $x_{t-1}$, variances add, and a constant factor comes out squared:
#
# $$
# v_t = a_t^2\, v_{t-1} + \beta_t .
# $$ (fwd-var-step)
#
# If the data are standardised, $v_{t-1} = 1$, then $v_t = 1$ holds exactly when
# $a_t^2 + \beta_t = 1$, that is $a_t = \sqrt{1-\beta_t}$. This is the choice in {eq}`fwd-step`:
# it is the only scaling under which a unit-variance input stays at unit variance after the step,
# whatever $\beta_t$ is. The process is called **variance preserving** for this reason
# {cite}`song2021sde`. With $a_t = 1$ instead, the variance grows to $v_0 + \sum_t \beta_t$ and
# the end point depends on how much noise was added in total (for the linear schedule below,
# $\sum_t \beta_t = 1000 \cdot (10^{-4} + 0.02)/2 = 10.05$, so unit-variance data end with
# variance $11.05$); that "variance exploding" family is the other classic design, met again in
# {doc}`08_score_and_sde` (the VE SDE).
#
# With $a_t = \sqrt{\alpha_t}$, the recursion {eq}`fwd-var-step` reads $v_t = \alpha_t v_{t-1} + 1 -
# \alpha_t$. Subtract $1$ from both sides to get $v_t - 1 = \alpha_t (v_{t-1} - 1)$: the distance
# of the variance from $1$ is multiplied by $\alpha_t$ at every step. Applying this $t$ times and
# collecting the factors with {eq}`fwd-alpha-bar`,
#
# $$
# \mathrm{Var}[x_t] - 1 = \bar\alpha_t \big(\mathrm{Var}[x_0] - 1\big),
# \qquad\text{i.e.}\qquad
# \mathrm{Var}[x_t] = \bar\alpha_t\,\mathrm{Var}[x_0] + (1 - \bar\alpha_t) .
# $$ (fwd-var-closed)
#
# So whatever the variance of the data, the variance of $x_t$ is pulled towards $1$, and the pull
# is complete once $\bar\alpha_t \approx 0$. (The same argument for the mean gives
# $\mathbb{E}[x_t] = \sqrt{\bar\alpha_t}\,\mathbb{E}[x_0] \to 0$.) The next cell iterates the
# recursion for several starting variances and compares with {eq}`fwd-var-closed`, then iterates
# it once more with $a_t = 1$.

# %%
v0 = torch.tensor(
    [0.0, 0.25, 1.0, 4.0], dtype=torch.float64
)  # Var[x_0] for four data sets
v = v0.clone()
v_iterated = []
for beta in betas:  # v_t = α_t v_{t-1} + β_t, eq. (fwd-var-step)
    v = (1 - beta) * v + beta
    v_iterated.append(v)
v_iterated = torch.stack(v_iterated)  # (T, 4): row i is step t = i + 1
v_closed = abar[:, None] * v0 + (1 - abar[:, None])
check(
    "iterated recursion equals ᾱ_t Var[x_0] + 1 − ᾱ_t for all t (Var[x_0] = 1 stays 1)",
    v_iterated,
    v_closed,
    atol=1e-12,
)
v_exploding = torch.ones((), dtype=torch.float64)
for beta in betas:  # eq. (fwd-var-step) with a_t = 1: only noise is added
    v_exploding = v_exploding + beta
check(
    "a_t = 1: Var[x_T] = 1 + Σ β_t = 1 + 1000 (1e-4 + 0.02)/2 = 11.05 (it explodes)",
    v_exploding,
    11.05,
    atol=1e-9,
)
pixel_var = train.images.flatten(1).var(dim=0).mean().item()
print(
    f"the digits have average per-pixel variance {pixel_var:.3f};\n"
    f"at t = 500 the forward process has moved it to "
    f"{abar[499] * pixel_var + 1 - abar[499]:.3f}"
)

# %% [markdown]
# ## The marginal $q(\mathbf{x}_t \mid \mathbf{x}_0)$ in closed form
#
# To train a model we shall need $\mathbf{x}_t$ for a random $t$ and a data point $\mathbf{x}_0$.
# Running the chain $t$ steps every time would cost up to $T = 1000$ Gaussian draws per example.
# Fortunately the marginal of $\mathbf{x}_t$ given $\mathbf{x}_0$ has a closed form (eq. (4) of
# {cite:t}`ho2020ddpm`):
#
# $$
# q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}\big(\mathbf{x}_t;\ \sqrt{\bar\alpha_t}\,\mathbf{x}_0,\ (1-\bar\alpha_t)\,\mathbf{I}\big) .
# $$ (fwd-marginal)
#
# Note the bar: the mean coefficient is $\sqrt{\bar\alpha_t}$, the product over all steps so far,
# not the one-step $\sqrt{\alpha_t}$. We prove {eq}`fwd-marginal` by induction on $t$, merging
# one Gaussian step at a time. The only tool needed is a fact about Gaussians.
#
# ### A lemma: sums of independent Gaussians
#
# Let $\mathbf{u} \sim \mathcal{N}(\boldsymbol{\mu}_1, \sigma_1^2 \mathbf{I})$ and
# $\mathbf{w} \sim \mathcal{N}(\boldsymbol{\mu}_2, \sigma_2^2 \mathbf{I})$ be **independent**, and
# $c$ a constant. Then
#
# $$
# c\,\mathbf{u} + \mathbf{w} \sim \mathcal{N}\big(c\,\boldsymbol{\mu}_1 + \boldsymbol{\mu}_2,\ (c^2\sigma_1^2 + \sigma_2^2)\,\mathbf{I}\big) .
# $$ (fwd-sum-gauss)
#
# *Proof.* The covariances are multiples of $\mathbf{I}$, so the coordinates are independent and
# it suffices to look at one coordinate. The moment generating function of
# $\mathcal{N}(\mu, \sigma^2)$ is $M(s) = \exp(\mu s + \tfrac12 \sigma^2 s^2)$. Scaling by $c$
# replaces $s$ by $cs$, giving $\exp(c\mu_1 s + \tfrac12 c^2\sigma_1^2 s^2)$. The MGF of a sum of
# independent variables is the product of their MGFs, so that of $cu + w$ is
# $\exp\big((c\mu_1 + \mu_2)s + \tfrac12(c^2\sigma_1^2 + \sigma_2^2)s^2\big)$, which is the MGF of
# the Gaussian on the right of {eq}`fwd-sum-gauss`; an MGF that exists near $0$ determines the
# distribution. $\square$
#
# In words: means add (linearity of expectation), variances add (independence), and the result is
# still Gaussian (that is the part that needs the MGF).
#
# ### The induction
#
# **Base case, $t = 1$.** By {eq}`fwd-step`, $q(\mathbf{x}_1 \mid \mathbf{x}_0) =
# \mathcal{N}(\sqrt{\alpha_1}\,\mathbf{x}_0, (1-\alpha_1)\mathbf{I})$, and $\bar\alpha_1 = \alpha_1$
# by {eq}`fwd-alpha-bar`. That is {eq}`fwd-marginal` for $t = 1$.
#
# **Inductive step.** Assume {eq}`fwd-marginal` holds for $t - 1$ (for some $t \ge 2$). By the
# reparameterisation trick we may then write, given $\mathbf{x}_0$,
# $\mathbf{x}_{t-1} = \sqrt{\bar\alpha_{t-1}}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_{t-1}}\,\bar{\boldsymbol{\epsilon}}$
# with $\bar{\boldsymbol{\epsilon}} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$. The noise
# $\bar{\boldsymbol{\epsilon}}$ is a function of $\mathbf{x}_0$ and $\mathbf{x}_{t-1}$ only, so the
# fresh noise $\boldsymbol{\epsilon}_t$ of step $t$ is independent of it. Now:
#
# $$
# \begin{aligned}
# \mathbf{x}_t
# &= \sqrt{\alpha_t}\,\mathbf{x}_{t-1} + \sqrt{1-\alpha_t}\,\boldsymbol{\epsilon}_t
#   && \text{(i) one step of the chain} \\
# &= \sqrt{\alpha_t}\,\big(\sqrt{\bar\alpha_{t-1}}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_{t-1}}\,\bar{\boldsymbol{\epsilon}}\big) + \sqrt{1-\alpha_t}\,\boldsymbol{\epsilon}_t
#   && \text{(ii) induction hypothesis} \\
# &= \sqrt{\alpha_t\bar\alpha_{t-1}}\,\mathbf{x}_0 + \sqrt{\alpha_t(1-\bar\alpha_{t-1})}\,\bar{\boldsymbol{\epsilon}} + \sqrt{1-\alpha_t}\,\boldsymbol{\epsilon}_t
#   && \text{(iii) distribute } \sqrt{\alpha_t} \\
# &= \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \underbrace{\sqrt{\alpha_t-\bar\alpha_t}\,\bar{\boldsymbol{\epsilon}} + \sqrt{1-\alpha_t}\,\boldsymbol{\epsilon}_t}_{\text{two independent Gaussians}}
#   && \text{(iv) } \alpha_t\bar\alpha_{t-1} = \bar\alpha_t \\
# &\sim \mathcal{N}\big(\sqrt{\bar\alpha_t}\,\mathbf{x}_0,\ \big[(\alpha_t-\bar\alpha_t) + (1-\alpha_t)\big]\mathbf{I}\big)
#   && \text{(v) lemma, both means } \mathbf{0} \\
# &= \mathcal{N}\big(\sqrt{\bar\alpha_t}\,\mathbf{x}_0,\ (1-\bar\alpha_t)\,\mathbf{I}\big)
#   && \text{(vi) } \alpha_t \text{ cancels}
# \end{aligned}
# $$ (fwd-induction)
#
# The steps in words:
#
# 1. (i) is the reparameterised transition {eq}`fwd-step-reparam`, with $\beta_t = 1 - \alpha_t$.
# 2. (ii) substitutes the induction hypothesis for $\mathbf{x}_{t-1}$.
# 3. (iii) multiplies out; a product of square roots of non-negative numbers is the square root of
#    the product.
# 4. (iv) uses $\alpha_t\bar\alpha_{t-1} = \bar\alpha_t$ twice: once for the coefficient of
#    $\mathbf{x}_0$, and once inside $\alpha_t(1-\bar\alpha_{t-1}) = \alpha_t - \bar\alpha_t$.
#    Given $\mathbf{x}_0$, the first term is a constant; the other two are independent zero-mean
#    Gaussians with variances $\alpha_t - \bar\alpha_t$ and $1 - \alpha_t$.
# 5. (v) applies the lemma {eq}`fwd-sum-gauss` to those two Gaussians (with $c = 1$) and then
#    shifts the result by the constant $\sqrt{\bar\alpha_t}\,\mathbf{x}_0$.
# 6. (vi) simplifies the variance: $\alpha_t - \bar\alpha_t + 1 - \alpha_t = 1 - \bar\alpha_t$.
#
# This is {eq}`fwd-marginal` for $t$, which completes the induction. $\square$
#
# Read through the reparameterisation trick once more, the result says that $\mathbf{x}_t$ can be
# drawn **in one step** from $\mathbf{x}_0$:
#
# $$
# \mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol{\epsilon},
# \qquad \boldsymbol{\epsilon} \sim \mathcal{N}(\mathbf{0}, \mathbf{I}) .
# $$ (fwd-reparam)
#
# This single line is the workhorse of diffusion training: chapter 6 draws a random $t$, a random
# $\boldsymbol{\epsilon}$, forms $\mathbf{x}_t$ by {eq}`fwd-reparam`, and asks a network to
# recover $\boldsymbol{\epsilon}$. The coefficients satisfy $(\sqrt{\bar\alpha_t})^2 +
# (\sqrt{1-\bar\alpha_t})^2 = 1$: a unit-variance $\mathbf{x}_0$ gives a unit-variance
# $\mathbf{x}_t$, which is {eq}`fwd-var-closed` again.

# %% [markdown]
# ### Unrolling the chain: where the variance $1 - \bar\alpha_t$ comes from
#
# The induction hides where the noise comes from. Unrolling {eq}`fwd-step-reparam` instead,
# $\mathbf{x}_t = \sqrt{\alpha_t}\,\mathbf{x}_{t-1} + \sqrt{\beta_t}\,\boldsymbol{\epsilon}_t$,
# then substituting the same formula for $\mathbf{x}_{t-1}$, and so on down to $\mathbf{x}_0$,
# every noise $\boldsymbol{\epsilon}_s$ ($s \le t$) is added at step $s$ with weight
# $\sqrt{\beta_s}$ and then shrunk by $\sqrt{\alpha_{s+1}\cdots\alpha_t} =
# \sqrt{\bar\alpha_t/\bar\alpha_s}$ in the later steps:
#
# $$
# \mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sum_{s=1}^{t} \sqrt{\frac{\bar\alpha_t}{\bar\alpha_s}\,\beta_s}\;\boldsymbol{\epsilon}_s .
# $$ (fwd-unrolled)
#
# The $\boldsymbol{\epsilon}_s$ are independent, so the total noise variance is
# $\sum_{s=1}^t (\bar\alpha_t/\bar\alpha_s)\beta_s$, and {eq}`fwd-marginal` claims this equals
# $1 - \bar\alpha_t$. It does, because the sum telescopes: with $\beta_s = 1 - \alpha_s$ and
# $\bar\alpha_s = \alpha_s\bar\alpha_{s-1}$, each term is
# $\frac{\bar\alpha_t}{\bar\alpha_s}(1-\alpha_s) = \frac{\bar\alpha_t}{\bar\alpha_s} - \frac{\bar\alpha_t}{\bar\alpha_{s-1}}$,
# and the sum collapses to $\frac{\bar\alpha_t}{\bar\alpha_t} - \frac{\bar\alpha_t}{\bar\alpha_0} = 1 - \bar\alpha_t$.
# The next cell evaluates the sum for every $t$ (as $\bar\alpha_t$ times a cumulative sum of
# $\beta_s/\bar\alpha_s$) and compares.

# %%
noise_var_sum = abar * torch.cumsum(
    betas / abar, dim=0
)  # Σ_{s≤t} (ᾱ_t/ᾱ_s) β_s, for every t
_ = check(
    "Σ_{s≤t} (ᾱ_t/ᾱ_s) β_s = 1 − ᾱ_t (telescoping), all t",
    noise_var_sum,
    1 - abar,
    atol=1e-12,
)

# %% [markdown]
# ### Checking the closed form against the chain by Monte Carlo
#
# The derivation could still hide a slip, so we test {eq}`fwd-marginal` against the process it
# summarises. Take one digit $\mathbf{x}_0$, make $N$ copies of it, and run the chain
# {eq}`fwd-step-reparam` on all copies for $T = 1000$ steps with independent noise, recording the
# copies at a few times $t$. For each pixel $d$ and recorded $t$, compare the sample mean
# $\hat m_{t,d}$ and the sample variance $\hat v_{t,d}$ across the $N$ copies with the claimed
# $\sqrt{\bar\alpha_t}\,x_{0,d}$ and $1 - \bar\alpha_t$.
#
# **How close is close enough?** For $N$ independent draws from $\mathcal{N}(m, v)$, the sample
# mean has standard error $\sqrt{v/N}$ and the sample variance has standard error
# $v\sqrt{2/(N-1)}$. So we standardise the errors into $z$-scores,
#
# $$
# z^{\text{mean}}_{t,d} = \frac{\hat m_{t,d} - \sqrt{\bar\alpha_t}\,x_{0,d}}{\sqrt{(1-\bar\alpha_t)/N}},
# \qquad
# z^{\text{var}}_{t,d} = \frac{\hat v_{t,d} - (1-\bar\alpha_t)}{(1-\bar\alpha_t)\sqrt{2/(N-1)}},
# $$ (fwd-zscores)
#
# which are approximately standard normal if the closed form is right, and require
# $|z| \le 5$. A single standard normal exceeds 5 in absolute value with probability
# $5.7 \times 10^{-7}$; we test $2 \times 64 \times 6 = 768$ $z$-scores, so by the union bound the
# check fails by bad luck with probability below $5 \times 10^{-4}$, for any seed. A wrong formula,
# on the other hand, misses by many standard errors, as the last line of the cell shows.


# %%
def forward_chain(x0, betas, record_at, generator):
    """Run the chain x_t = √(1−β_t) x_{t−1} + √β_t ε_t from x0.

    Returns {t: x_t} for the steps t in record_at.

    ``betas[i]`` is β_{i+1}: the loop runs over the paper's steps t = 1, ..., T.
    """
    x = x0.clone()
    recorded = {0: x0.clone()} if 0 in record_at else {}
    for t, beta in enumerate(betas.tolist(), start=1):
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * torch.randn(
            x.shape, generator=generator, dtype=x.dtype
        )
        if t in record_at:
            recorded[t] = x.clone()
    return recorded


N = 1000
t_checked = [1, 10, 100, 250, 500, 1000]  # paper steps
x0_digit = train.images[0].flatten().double()  # one digit, D = 64 pixels
copies = x0_digit.expand(N, -1).clone()
gen = torch.Generator().manual_seed(1)
chain = forward_chain(copies, betas, set(t_checked), gen)

z_mean, z_var, z_wrong = [], [], []
for t in t_checked:
    xt = chain[t]  # (N, 64)
    ab = abar[t - 1]  # ᾱ_t lives at index t − 1
    z_mean.append((xt.mean(0) - ab.sqrt() * x0_digit) / ((1 - ab) / N).sqrt())
    z_var.append((xt.var(0) - (1 - ab)) / ((1 - ab) * math.sqrt(2 / (N - 1))))
    # the classic slip: one-step α_t in place of ᾱ_t in the mean
    z_wrong.append(
        (xt.mean(0) - alphas[t - 1].sqrt() * x0_digit) / ((1 - ab) / N).sqrt()
    )
z_mean, z_var, z_wrong = torch.stack(z_mean), torch.stack(z_var), torch.stack(z_wrong)
print("largest |z| per recorded t (mean, variance):")
for t, zm, zv in zip(t_checked, z_mean.abs().amax(1), z_var.abs().amax(1)):
    print(f"  t = {t:4d}:  {zm:.2f}  {zv:.2f}")
check("chain sample means match √ᾱ_t x_0 (z-scores)", z_mean, 0.0, atol=5.0)
check("chain sample variances match 1 − ᾱ_t (z-scores)", z_var, 0.0, atol=5.0)
print(f"the wrong mean √α_t x_0: largest |z| = {z_wrong.abs().max():.1f}")
check_le(
    "the wrong mean √α_t x_0 is off by dozens of standard errors (max |z| ≥ 24)",
    24.0,
    z_wrong.abs().max(),
)
check(
    "at t = 500: √α_t ≈ 0.995 (one step) against √ᾱ_t ≈ 0.28 (the marginal)",
    [alphas[499].sqrt(), abar[499].sqrt()],
    [0.995, 0.28],
    atol=0.0005,
)

# The numbers of the text: the false-alarm probability and the cost of the simulation.
p_single = math.erfc(5 / math.sqrt(2))  # P(|Z| > 5) for one standard normal Z
n_z = z_mean.numel() + z_var.numel()
check("P(|Z| > 5) = erfc(5/√2) ≈ 5.7e-7", p_single, 5.7e-7, atol=5e-9)
check("the check tests 2 × 64 × 6 = 768 z-scores", n_z, 768, atol=0)
check_le("union bound: 768 · P(|Z| > 5) < 5e-4", n_z * p_single, 5e-4)
# the median of the largest of 768 |Z|: solve (1 − 2(1 − Φ(x)))^768 = 1/2 for x
u_med = 1 - (1 - 0.5 ** (1 / n_z)) / 2
median_max_z = NormalDist().inv_cdf(u_med)
check("the largest of 768 |z| has median ≈ 3.3", median_max_z, 3.3, atol=0.05)
_ = check(
    "the simulation drew T × N × D = 6.4e7 random numbers",
    T * N * x0_digit.numel(),
    6.4e7,
    atol=0,
)

# %% [markdown]
# All $z$-scores are of order one, as they should be if {eq}`fwd-marginal` holds (the largest of
# 768 standard normals in absolute value has median about 3.3); the wrong mean
# $\sqrt{\alpha_t}\,\mathbf{x}_0$ is off by dozens of standard errors. Note that the simulation
# needed $T \times N \times D = 6.4 \times 10^7$ random numbers, while {eq}`fwd-reparam` gives a
# draw of $\mathbf{x}_t$ for any $t$ with $D = 64$.

# %% [markdown]
# ## The library version and the index convention
#
# `diffusion_lib` implements {eq}`fwd-reparam` as `GaussianDiffusion.q_sample` and the mean and
# variance of {eq}`fwd-marginal` as `GaussianDiffusion.q_mean_variance`. Like improved-diffusion,
# the library's methods take a timestep **index** $i \in \{0, \dots, T-1\}$, not the paper's step:
#
# - index $i$ is the paper's step $t = i + 1$, so index 0 produces $\mathbf{x}_1$ (one step of
#   noise, not "no noise") and index $T - 1$ produces $\mathbf{x}_T$;
# - `diff.alphas_cumprod[i]` holds $\bar\alpha_{i+1}$, and `diff.alphas_cumprod_prev[i]` holds
#   $\bar\alpha_i$, so `alphas_cumprod_prev[0]` $= \bar\alpha_0 = 1$, the empty product.
#
# So when the text says "step $t$", the code passes `t - 1`. The next cell draws $\mathbf{x}_t$ by
# hand with {eq}`fwd-reparam` for a batch of digits at the paper's steps $t = 1, 10, 100, 500,
# 1000$, then asks the library for the same draws (same $\boldsymbol{\epsilon}$) at the indices
# $t - 1$.

# %%
diff = GaussianDiffusion(get_beta_schedule("linear", T))
x0 = train.images[:5].double()  # (5, 1, 8, 8), one per step below
t_paper = torch.tensor([1, 10, 100, 500, 1000])
t_index = t_paper - 1  # the library's index convention
eps = torch.randn(
    x0.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64
)

ab = abar[t_paper - 1].view(-1, 1, 1, 1)  # ᾱ_t, shaped to broadcast over pixels
xt_hand = ab.sqrt() * x0 + (1 - ab).sqrt() * eps  # eq. (fwd-reparam)
check(
    "diff.q_sample(x0, t − 1, ε) equals √ᾱ_t x_0 + √(1−ᾱ_t) ε",
    diff.q_sample(x0, t_index, noise=eps),
    xt_hand,
    atol=1e-12,
)

mean, var, log_var = diff.q_mean_variance(x0, t_index)
check("q_mean_variance mean equals √ᾱ_t x_0", mean, ab.sqrt() * x0, atol=1e-12)
check("q_mean_variance variance equals 1 − ᾱ_t", var, 1 - ab, atol=1e-12)
check(
    "q_mean_variance log-variance equals log(1 − ᾱ_t)",
    log_var,
    torch.log1p(-ab),
    atol=1e-12,
)
check(
    "alphas_cumprod_prev[0] = ᾱ_0 = 1 and alphas_cumprod_prev[i] = ᾱ_i",
    diff.alphas_cumprod_prev,
    torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]]),
    atol=1e-15,
)
_ = check(
    "index 0 is already one noisy step: q_sample(x0, 0, ε) = √(1−β_1) x_0 + √β_1 ε",
    diff.q_sample(x0, 0, noise=eps),
    (1 - betas[0]).sqrt() * x0 + betas[0].sqrt() * eps,
    atol=1e-12,
)

# %% [markdown]
# ## Noise schedules and the signal-to-noise ratio
#
# The forward process is fixed by the choice of $T$ and $\beta_1, \dots, \beta_T$. Everything in
# {eq}`fwd-marginal` depends on the schedule only through $\bar\alpha_t$, so it is natural to
# describe a schedule by its curve $\bar\alpha_t$ and to ask how fast it destroys the signal.
#
# ### Signal-to-noise ratio
#
# In {eq}`fwd-reparam`, $\mathbf{x}_t$ is a signal $\sqrt{\bar\alpha_t}\,\mathbf{x}_0$ plus noise
# of variance $1 - \bar\alpha_t$ per pixel. The ratio of the signal's power (per unit data
# variance) to the noise's is the **signal-to-noise ratio** {cite}`kingma2021vdm`, and its
# logarithm is the **log-SNR**:
#
# $$
# \mathrm{SNR}(t) := \frac{\bar\alpha_t}{1-\bar\alpha_t}, \qquad
# \lambda_t := \log \mathrm{SNR}(t) = \log \bar\alpha_t - \log(1-\bar\alpha_t) .
# $$ (fwd-snr)
#
# Since $\bar\alpha_t$ decreases strictly, so does $\mathrm{SNR}(t)$. Conversely, $\bar\alpha_t =
# \mathrm{SNR}/(1+\mathrm{SNR}) = \operatorname{sigmoid}(\lambda_t)$, so the log-SNR carries the
# same information as $\bar\alpha_t$, on a scale that spreads out both ends: near $t = 0$ where
# $\bar\alpha_t \approx 1$, and near $t = T$ where $\bar\alpha_t \approx 0$. Two schedules with the
# same endpoints $\lambda_1, \lambda_T$ differ only in how they spend their steps between them,
# which is why schedules are best compared as curves $\lambda_t$ against $t/T$ {cite}`kingma2021vdm,chen2023importance`.
#
# For $\lambda_t$ the library computes $\log\bar\alpha_t - \log(1-\bar\alpha_t)$, the second
# logarithm with `log1p`, which keeps full precision when $\bar\alpha_t$ is tiny. Our hand-written
# version takes the logarithm of the ratio as it is defined; the two must agree to rounding.

# %%
lam_hand = torch.log(abar / (1 - abar))  # eq. (fwd-snr): λ_t = log SNR(t)
check("library log_snr equals log(ᾱ / (1 − ᾱ))", log_snr(abar), lam_hand, atol=1e-12)
check("ᾱ_t = sigmoid(λ_t)", torch.sigmoid(lam_hand), abar, atol=1e-15)
_ = check_le("log-SNR decreases: λ_{t+1} ≤ λ_t for all t", lam_hand[1:], lam_hand[:-1])

# %% [markdown]
# ### Linear, quadratic and sigmoid schedules
#
# These three are defined directly on $\beta_t$, between the same endpoints $10^{-4} \cdot
# 1000/T$ and $0.02 \cdot 1000/T$:
#
# - **linear** {cite}`ho2020ddpm`, eq. {eq}`fwd-linear`;
# - **quadratic**: $\sqrt{\beta_t}$ is linear in $t$, so $\beta_t$ stays small for longer and rises
#   at the end (the "scaled linear" schedule of latent diffusion {cite}`rombach2022ldm`);
# - **sigmoid**: $\beta_t = \beta_{\min} + (\beta_{\max} - \beta_{\min})\,\operatorname{sigmoid}(u_t)$
#   with $u_t$ running linearly from $-6$ to $6$, an S-shaped rise.
#
# Since $\beta_T = 20/T$, they need $T > 20$; the library refuses smaller $T$.
#
# ### The cosine schedule
#
# {cite:t}`nichol2021improved` observed that with the linear schedule, the last part of the chain
# is nearly pure noise for small images, so those steps teach the model little. They proposed to
# specify $\bar\alpha_t$ directly (their eq. (17)):
#
# $$
# \bar\alpha_t = \frac{f(t)}{f(0)}, \qquad f(t) = \cos^2\!\Big(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\Big),
# \qquad s = 0.008 ,
# $$ (fwd-cosine)
#
# and to recover the $\beta_t$ from consecutive ratios, which follows from $\bar\alpha_t =
# \alpha_t \bar\alpha_{t-1}$ in {eq}`fwd-alpha-bar`:
#
# $$
# \beta_t = 1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}}, \qquad \text{then clipped: } \beta_t \leftarrow \min(\beta_t, 0.999) .
# $$ (fwd-beta-from-abar)
#
# The offset $s$ keeps $\beta_1$ from being vanishingly small: {cite:t}`nichol2021improved`
# chose $s$ so that $\sqrt{\beta_1}$ is slightly smaller than the width $1/127.5$ of a pixel bin
# (exercise 4). The clip matters at the very end: $f(T) = \cos^2(\pi/2) = 0$, so without it
# $\bar\alpha_T = 0$ and $\beta_T = 1$, a step that erases the last of the signal completely and
# makes the reverse process divide by $\sqrt{\alpha_T} = 0$ (see the common mistakes below). With
# the clip, $\bar\alpha_T = 0.001\,\bar\alpha_{T-1}$ instead. Here is the schedule by hand:


# %%
def cosine_betas(T, s=0.008, max_beta=0.999):
    """β_t from ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2).

    Each β_t is clipped at max_beta, eq. (fwd-beta-from-abar).
    """
    t = torch.arange(T + 1, dtype=torch.float64)  # paper steps 0, 1, ..., T
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    abar_cos = f / f[0]  # eq. (fwd-cosine), ᾱ_0 = 1
    return (1 - abar_cos[1:] / abar_cos[:-1]).clamp(
        max=max_beta
    )  # eq. (fwd-beta-from-abar)


betas_cos = cosine_betas(T)
abar_cos = alphas_cumprod_from_betas(betas_cos)
check(
    "hand-built cosine β equal get_beta_schedule('cosine', 1000)",
    betas_cos,
    get_beta_schedule("cosine", T),
    atol=1e-12,
)
t_grid = torch.arange(1, T + 1, dtype=torch.float64)  # paper steps 1, ..., T
f = (
    torch.cos(
        (torch.cat([torch.zeros(1, dtype=torch.float64), t_grid]) / T + 0.008)
        / 1.008
        * math.pi
        / 2
    )
    ** 2
)
check(
    "cumprod of the clipped β reproduces f(t)/f(0) for t < T",
    abar_cos[:-1],
    f[1:-1] / f[0],
    atol=0.0,
    rtol=1e-10,
)
check(
    "the clip acts only at the last step: β_T = 0.999, so ᾱ_T = 0.001 ᾱ_{T−1}",
    abar_cos[-1],
    0.001 * abar_cos[-2],
    atol=0.0,
    rtol=1e-12,
)
print(
    f"cosine: β_1 = {betas_cos[0]:.3e}, β_T−1 = {betas_cos[-2]:.3f}, "
    f"β_T = {betas_cos[-1]:.3f}, ᾱ_T = {abar_cos[-1]:.2e}; "
    f"steps clipped: {(betas_cos >= 0.999).sum().item()}"
)
_ = check("cosine, T = 1000: ᾱ_T ≈ 2.4e-9", abar_cos[-1], 2.4e-9, atol=5e-11)

# %% [markdown]
# ### Comparing the schedules
#
# The figure plots, for the four schedules at $T = 1000$, the per-step variance $\beta_t$, the
# cumulative signal $\bar\alpha_t$ and the log-SNR $\lambda_t$ against the fraction of the chain
# $t/T$.

# %%
schedules = {
    name: get_beta_schedule(name, T)
    for name in ("linear", "cosine", "quadratic", "sigmoid")
}
frac = t_grid / T
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for name, b in schedules.items():
    a = alphas_cumprod_from_betas(b)
    axes[0].plot(frac, b, label=name)
    axes[1].plot(frac, a, label=name)
    axes[2].plot(frac, log_snr(a), label=name)
axes[0].set(
    yscale="log",
    xlabel="t / T",
    ylabel=r"$\beta_t$ (log scale)",
    title=r"per-step noise variance $\beta_t$",
)
axes[1].set(
    xlabel="t / T", ylabel=r"$\bar\alpha_t$", title=r"signal kept, $\bar\alpha_t$"
)
axes[2].set(
    xlabel="t / T",
    ylabel=r"$\lambda_t = \log\,\mathrm{SNR}(t)$",
    title="log signal-to-noise ratio",
)
axes[2].axhline(0, color="grey", lw=0.8, ls=":")
for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle("Four noise schedules at T = 1000")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: per-step variance $\beta_t$ (left, log scale), signal fraction $\bar\alpha_t$ (middle)
# and log-SNR $\lambda_t$ (right) against $t/T$ for the linear, cosine, quadratic and sigmoid
# schedules, $T = 1000$.* The linear schedule drives $\bar\alpha_t$ close to $0$ by about
# $t/T = 0.6$ ($\bar\alpha_{600} \approx 0.026$); the cosine schedule's $\bar\alpha_t$ falls
# almost linearly in the middle and its log-SNR is close to a straight line there, spending steps
# evenly across noise levels. The quadratic and sigmoid schedules keep more signal early and then
# destroy it quickly. The cosine log-SNR plunges at the very end, where the clip of $\beta_T$
# sets $\bar\alpha_T \approx 2.4 \times 10^{-9}$. The next cell puts a number on "the last part
# of the chain is nearly pure noise".

# %%
share_low_snr = {}
print(
    f"{'schedule':>9} {'λ_1':>6} {'λ_T':>7}   share of steps with SNR < 0.01 (λ < −4.6)"
)
for name, b in schedules.items():
    lam = log_snr(alphas_cumprod_from_betas(b))
    share_low_snr[name] = (lam < math.log(0.01)).double().mean().item()
    print(f"{name:>9} {lam[0]:6.2f} {lam[-1]:7.2f}   {share_low_snr[name]:.3f}")
check("linear: ᾱ_600 ≈ 0.026", abar[599], 0.026, atol=5e-4)
check(
    "linear: about a third of the steps have SNR < 0.01",
    share_low_snr["linear"],
    1 / 3,
    atol=0.01,
)
_ = check(
    "cosine: about 6% of the steps have SNR < 0.01",
    share_low_snr["cosine"],
    0.06,
    atol=0.005,
)

# %% [markdown]
# With the linear schedule, about a third of the steps have an SNR below $0.01$, where the
# noise's standard deviation is ten times the signal's; the cosine schedule spends only about 6%
# of its steps there.

# %% [markdown]
# ## Why $\mathbf{x}_T$ is (almost) pure noise: the prior KL in bits
#
# The reverse process of {doc}`05_reverse_process_vlb` starts from $p(\mathbf{x}_T) =
# \mathcal{N}(\mathbf{0}, \mathbf{I})$. That is only legitimate if $q(\mathbf{x}_T \mid
# \mathbf{x}_0)$ is close to $\mathcal{N}(\mathbf{0}, \mathbf{I})$ for every data point: the gap
# appears in the model's likelihood bound as the prior term $L_T$. By {eq}`fwd-marginal` both are
# Gaussians with diagonal covariance, so the KL divergence is a sum over pixels of the
# one-dimensional Gaussian KL (derived in chapter 2 and again in {doc}`05_reverse_process_vlb`):
#
# $$
# D_{\mathrm{KL}}\big(\mathcal{N}(\mu_1, \sigma_1^2) \,\Vert\, \mathcal{N}(\mu_2, \sigma_2^2)\big)
# = \log\frac{\sigma_2}{\sigma_1} + \frac{\sigma_1^2 + (\mu_1 - \mu_2)^2}{2\sigma_2^2} - \frac12 .
# $$ (fwd-kl-gauss)
#
# Put $\mu_1 = \sqrt{\bar\alpha_T}\,x_{0,d}$, $\sigma_1^2 = 1 - \bar\alpha_T$, $\mu_2 = 0$ and
# $\sigma_2^2 = 1$, then sum over the $D$ pixels:
#
# $$
# L_T(\mathbf{x}_0) := D_{\mathrm{KL}}\big(q(\mathbf{x}_T \mid \mathbf{x}_0) \,\Vert\, \mathcal{N}(\mathbf{0}, \mathbf{I})\big)
# = \frac12 \sum_{d=1}^{D} \Big[\bar\alpha_T\, x_{0,d}^2 - \bar\alpha_T - \log(1 - \bar\alpha_T)\Big]
# \quad\text{nats}.
# $$ (fwd-prior-kl)
#
# Each bracket is non-negative, because $-\log(1-a) \ge a$ for $a \in [0, 1)$. For small
# $\bar\alpha_T$, $-\log(1 - \bar\alpha_T) = \bar\alpha_T + \bar\alpha_T^2/2 + \dots$, so
# $L_T \approx \tfrac12\bar\alpha_T \lVert \mathbf{x}_0 \rVert^2$: the KL is proportional to
# $\bar\alpha_T$, and the forward process is "long enough" exactly when $\bar\alpha_T$ is small.
# Dividing by $\ln 2$ converts nats to bits; dividing further by $D$ gives bits per dimension,
# the unit of `diff.prior_bpd`. We write {eq}`fwd-prior-kl` by hand and compare it with the
# library's elementwise `normal_kl` and with `diff.prior_bpd`, on the whole test set, and check
# the approximation $\tfrac12\bar\alpha_T\lVert\mathbf{x}_0\rVert^2$: its relative error is
# about $D\bar\alpha_T/(2\lVert\mathbf{x}_0\rVert^2)$, a few times $10^{-5}$ here.


# %%
def prior_kl_nats(x0, abar_T):
    """Eq. (fwd-prior-kl) per pixel: KL(N(√ᾱ_T x0, 1 − ᾱ_T) ‖ N(0, 1)) in nats."""
    return 0.5 * (abar_T * x0**2 - abar_T - torch.log1p(-abar_T))


x0_test = test.images.double()  # (N_test, 1, 8, 8)
D = x0_test[0].numel()
kl_hand = prior_kl_nats(x0_test, abar[-1])  # per pixel, nats
m, _, lv = diff.q_mean_variance(x0_test, T - 1)  # index T − 1 is step T
check(
    "eq. (fwd-prior-kl) equals normal_kl(√ᾱ_T x0, log(1−ᾱ_T), 0, 0) per pixel",
    kl_hand,
    normal_kl(m, lv, 0.0, 0.0),
    atol=1e-15,
)
bpd_hand = kl_hand.flatten(1).sum(1) / (
    D * math.log(2)
)  # bits per dimension, per digit
check(
    "summed KL / (D ln 2) equals diff.prior_bpd",
    bpd_hand,
    diff.prior_bpd(x0_test),
    atol=1e-15,
)
check(
    "L_T ≈ ½ ᾱ_T ‖x_0‖² nats for every test digit (relative error below 1e-4)",
    kl_hand.flatten(1).sum(1),
    0.5 * abar[-1] * (x0_test.flatten(1) ** 2).sum(1),
    atol=0.0,
    rtol=1e-4,
)
L_T_bits_per_digit = bpd_hand.mean().item() * D
print(
    f"linear, T = 1000: L_T = {bpd_hand.mean():.2e} bits/dim on average, "
    f"{L_T_bits_per_digit:.2e} bits per digit"
)
check("L_T ≈ 1.3e-3 bits per digit", L_T_bits_per_digit, 1.3e-3, atol=5e-5)
_ = check("L_T ≈ 2e-5 bits per dimension", bpd_hand.mean(), 2e-5, atol=5e-6)

# %% [markdown]
# About $1.3 \times 10^{-3}$ bits for a whole digit: a thousandth of a bit, or $2 \times 10^{-5}$
# bits per dimension. To see how this depends on the schedule and on $T$, the next cell
# tabulates $\bar\alpha_T$ and $L_T$ (averaged over the test digits) for several $T$.
# The last row is a cautionary example: the linear schedule's endpoints $10^{-4}$ and $0.02$ used
# with $T = 100$ **without** the $1000/T$ rescaling.

# %%
rows = []
for T_ in (50, 100, 250, 1000, 4000):
    for name in ("linear", "cosine"):
        rows.append((name, T_, get_beta_schedule(name, T_)))
rows.append(
    ("linear, unscaled", 100, torch.linspace(1e-4, 0.02, 100, dtype=torch.float64))
)

print(f"{'schedule':>17} {'T':>5} {'ᾱ_T':>10} {'bits/dim':>10} {'bits/digit':>11}")
bpd_by_hand, bpd_library, table = [], [], {}
for name, T_, b in rows:
    abar_T = alphas_cumprod_from_betas(b)[-1]
    bpd = prior_kl_nats(x0_test, abar_T).flatten(1).sum(1) / (D * math.log(2))
    bpd_by_hand.append(bpd)
    table[name, T_] = abar_T.item(), bpd.mean().item()  # ᾱ_T and bits/dim
    bpd_library.append(GaussianDiffusion(b).prior_bpd(x0_test))
    print(
        f"{name:>17} {T_:5d} {abar_T:10.2e} {bpd.mean():10.2e} {bpd.mean() * D:11.2e}"
    )
check(
    "eq. (fwd-prior-kl) equals diff.prior_bpd for every row of the table",
    torch.stack(bpd_by_hand),
    torch.stack(bpd_library),
    atol=1e-15,
)
# The numbers the text quotes from the table.
lin = [table["linear", T_] for T_ in (50, 4000)]  # the ends of the range of T
cos = [table["cosine", T_] for T_ in (50, 100, 250, 1000, 4000)]
unscaled = table["linear, unscaled", 100]
check(
    "linear: ᾱ_T ≈ 7.7e-6 at T = 50 and 4.2e-5 at T = 4000",
    [lin[0][0] / 1e-6, lin[1][0] / 1e-5],
    [7.7, 4.2],
    atol=0.05,
)
check(
    "linear: L_T ≈ 2.6e-4 bits/digit at T = 50, 1.4e-3 at T = 4000",
    [lin[0][1] * D / 1e-4, lin[1][1] * D / 1e-3],
    [2.6, 1.4],
    atol=0.05,
)
check_le("cosine: ᾱ_T ≤ 1e-6 for every T", max(a for a, _ in cos), 1e-6)
check("cosine, T = 4000: ᾱ_T ≈ 1.5e-10", cos[-1][0], 1.5e-10, atol=5e-12)
check_le(
    "cosine: L_T ≤ 3.3e-5 bits/digit for every T", max(b for _, b in cos) * D, 3.3e-5
)
check(
    "unscaled linear, T = 100: ᾱ_T ≈ 0.36, and L_T ≈ 0.25 bits/dim",
    [unscaled[0], unscaled[1]],
    [0.36, 0.25],
    atol=0.005,
)
_ = check(
    "unscaled linear, T = 100: L_T ≈ 16 bits/digit", unscaled[1] * D, 16, atol=0.5
)

# %% [markdown]
# The table shows three things.
#
# - With the $1000/T$ rescaling, the linear schedule's $\bar\alpha_T$ stays between about
#   $7.7 \times 10^{-6}$ ($T = 50$) and $4.2 \times 10^{-5}$ ($T = 4000$), and the prior KL
#   between about $2.6 \times 10^{-4}$ and $1.4 \times 10^{-3}$ bits per digit (exercise 1
#   explains why the rescaling has this effect).
# - The cosine schedule ends far closer to $\mathcal{N}(\mathbf{0}, \mathbf{I})$
#   ($\bar\alpha_T$ below $10^{-6}$ at $T = 50$, down to $1.5 \times 10^{-10}$ at $T = 4000$,
#   because of the clipped last step), with a prior KL of at most $3.3 \times 10^{-5}$ bits per
#   digit: negligible for every $T$.
# - Without the rescaling, a linear schedule with $T = 100$ keeps $\bar\alpha_T \approx 0.36$
#   of the signal: $\mathbf{x}_T$ is far from pure noise, and the mismatch costs about 0.25
#   bits per pixel, some 16 bits per digit, before any model is trained.
#
# For comparison, a good diffusion model needs a few bits per dimension in total to describe the
# 8-bit digits; a prior term of $2 \times 10^{-5}$ bits/dim is invisible in that total. This is the
# quantitative meaning of "$\mathbf{x}_T \approx \mathcal{N}(\mathbf{0}, \mathbf{I})$". The
# same formula with $T$ replaced by $t$ measures how far each $\mathbf{x}_t$ is from pure noise
# along the way:

# %%
kl_t = {}
for name in ("linear", "cosine"):
    a = alphas_cumprod_from_betas(schedules[name])[:, None]  # (T, 1)
    sq_norm = (x0_test.flatten(1) ** 2).mean(0)  # E over digits of x_{0,d}^2, (D,)
    kl_t[name] = (0.5 * (a * sq_norm - a - torch.log1p(-a))).sum(1) / math.log(
        2
    )  # bits per digit
fig, ax = plt.subplots(figsize=(7, 3.8))
for name, k in kl_t.items():
    ax.plot(frac, k, label=name)
ax.axhline(1.0, color="grey", ls=":", lw=0.8)
ax.text(0.02, 1.3, "1 bit", color="grey")
ax.set(
    yscale="log",
    xlabel="t / T",
    ylabel=r"$D_{\mathrm{KL}}(q(\mathbf{x}_t|\mathbf{x}_0)\,\Vert\,"
    r"\mathcal{N}(\mathbf{0},\mathbf{I}))$ (bits per digit)",
    title="How far x_t is from pure noise (T = 1000, average over test digits)",
)
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()
# the first step from which x_t is within one bit of pure noise (the KL decreases in t)
within_1_bit = {n: (torch.nonzero(k < 1)[0, 0].item() + 1) / T for n, k in kl_t.items()}
print(
    "within one bit of N(0, I) from t/T = "
    + ", ".join(f"{t_T:.3f} ({n})" for n, t_T in within_1_bit.items())
)
_ = check(
    "within one bit from t/T ≈ 0.6 (linear) and ≈ 0.9 (cosine)",
    [within_1_bit["linear"], within_1_bit["cosine"]],
    [0.6, 0.9],
    atol=0.015,
)

# %% [markdown]
# *Figure: the KL divergence from $q(\mathbf{x}_t \mid \mathbf{x}_0)$ to the standard normal, in
# bits per digit (log scale), against $t/T$, for the linear and cosine schedules, averaged over
# the test digits.* Under the linear schedule, $\mathbf{x}_t$ is within one bit of pure noise
# from about $t/T \approx 0.6$ onwards; under the cosine schedule that happens only near
# $t/T \approx 0.9$, which is the "less wasted steps" argument of {cite:t}`nichol2021improved` in
# one number.

# %% [markdown]
# ## The forward process on a digit
#
# Finally, let us watch the process. We run the chain {eq}`fwd-step-reparam` from ten test
# digits (one per class), with the **same** noises $\boldsymbol{\epsilon}_1, \dots,
# \boldsymbol{\epsilon}_T$ for the linear and the cosine schedule, so that the two rows differ
# only by the schedule. Each image is one trajectory of the Markov chain.

# %%
first_of_class = torch.stack([torch.nonzero(test.labels == c)[0, 0] for c in range(10)])
x0_show = test.images[first_of_class].double()  # (10, 1, 8, 8), digits 0..9
t_frames = list(range(0, T + 1, 50))  # t = 0, 50, ..., 1000
traj = {
    name: forward_chain(
        x0_show, schedules[name], set(t_frames), torch.Generator().manual_seed(3)
    )
    for name in ("linear", "cosine")
}

t_cols = [0, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
digit = 3
fig, axes = plt.subplots(2, len(t_cols), figsize=(1.1 * len(t_cols), 2.9))
for r, name in enumerate(("linear", "cosine")):
    for c, t in enumerate(t_cols):
        axes[r, c].imshow(
            traj[name][t][digit, 0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1
        )
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
        if r == 0:
            axes[r, c].set_title(f"t = {t}", fontsize=9)
    axes[r, 0].set_ylabel(name, fontsize=10)
fig.suptitle(
    "One digit under the forward process (columns: step t; rows: schedule)", fontsize=11
)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: a test digit "3" after $t$ steps of the forward chain ($T = 1000$), with the linear
# schedule (top) and the cosine schedule (bottom), using the same noise in both rows; pixel
# values are clipped to $[-1, 1]$ for display.* With the linear schedule the digit is hard to make
# out by $t \approx 300$ and gone by $t \approx 500$; with the cosine schedule it is still visible
# at $t = 500$, faintly. The animation below runs all ten digits through the chain, one frame every 50
# steps: the top two rows use the linear schedule, the bottom two rows the cosine schedule (same
# digits, same noise).

# %%
frames = [
    torch.cat([traj["linear"][t], traj["cosine"][t]]).clamp(-1, 1).float()
    for t in t_frames
]
display(viz.animation_html(frames, titles=[f"t = {t}" for t in t_frames], fps=4))

# %% [markdown]
# *Animation: the forward process on ten test digits, $t = 0, 50, \dots, 1000$; rows 1–2 linear
# schedule, rows 3–4 cosine schedule.*

# %% [markdown]
# ```{admonition} Common mistakes
# :class: warning
#
# - **$\alpha_t$ instead of $\bar\alpha_t$ in $q(\mathbf{x}_t \mid \mathbf{x}_0)$.** The one-step
#   transition uses $\alpha_t = 1 - \beta_t$; the marginal uses the product $\bar\alpha_t$.
#   Writing $\mathbf{x}_t = \sqrt{\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\alpha_t}\,\boldsymbol{\epsilon}$
#   produces images that are barely noisy at any $t$ (at $t = 500$ of the linear schedule,
#   $\sqrt{\alpha_t} \approx 0.995$ against $\sqrt{\bar\alpha_t} \approx 0.28$); the Monte Carlo
#   check above rejects it by dozens of standard errors.
# - **Off-by-one indices.** Papers number steps $1, \dots, T$; arrays are indexed $0, \dots, T-1$.
#   `alphas_cumprod[i]` is $\bar\alpha_{i+1}$, `q_sample(x0, 0)` already adds the noise of step 1,
#   and $\bar\alpha_0 = 1$ lives in `alphas_cumprod_prev[0]`. Using `alphas_cumprod[t]` for the
#   paper's $\bar\alpha_t$ shifts every formula by one step, which is nearly invisible in samples
#   and shows up as a wrong likelihood.
# - **Variance versus standard deviation.** $\beta_t$ is a variance: the noise is
#   $\sqrt{\beta_t}\,\boldsymbol{\epsilon}$. `torch.normal(mean, std)` takes a standard deviation.
# - **Unclipped cosine $\beta_t$.** Without the clip, $\beta_T = 1$ and $\bar\alpha_T = 0$ exactly:
#   $\lambda_T = -\infty$, and the reverse mean's factor $1/\sqrt{\alpha_T}$ is infinite. Clip at
#   $0.999$ as {cite:t}`nichol2021improved` do; the library does.
# - **Sharing one $\boldsymbol{\epsilon}$ across steps when iterating the chain.** Each step needs
#   fresh, independent noise; reusing one $\boldsymbol{\epsilon}$ for all steps gives the wrong
#   variance. (Sharing noise *between two schedules*, as in our figure, is fine: each trajectory
#   still gets independent noise at every step.)
# ```

# %% [markdown]
# ## Summary
#
# - The forward process is a fixed Markov chain, {eq}`fwd-step`: each step shrinks the point by
#   $\sqrt{1-\beta_t}$ and adds Gaussian noise of variance $\beta_t$. The shrink factor is the one
#   that keeps unit-variance data at unit variance, {eq}`fwd-var-closed`.
# - With $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t}\alpha_s$, the marginal is
#   $q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\,\mathbf{x}_0, (1-\bar\alpha_t)\mathbf{I})$,
#   {eq}`fwd-marginal`, proved by induction with the sum-of-Gaussians lemma and confirmed against
#   a simulation of the chain with standard-error tolerances. Equivalently
#   $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol{\epsilon}$,
#   {eq}`fwd-reparam`: one draw instead of $t$.
# - A schedule is summarised by $\bar\alpha_t$, or by the log-SNR $\lambda_t = \log\bar\alpha_t -
#   \log(1-\bar\alpha_t)$, {eq}`fwd-snr`. The linear schedule (1e-4 to 0.02, scaled by $1000/T$)
#   destroys the signal early; the cosine schedule, {eq}`fwd-cosine` with $s = 0.008$ and $\beta$
#   clipped at 0.999, spreads it more evenly.
# - $\mathbf{x}_T \approx \mathcal{N}(\mathbf{0}, \mathbf{I})$ is quantified by the prior KL
#   {eq}`fwd-prior-kl`, about $\tfrac12\bar\alpha_T\lVert\mathbf{x}_0\rVert^2$ nats: about
#   $10^{-3}$ bits per digit for the linear schedule at $T = 1000$, far less for cosine.
# - In code, index $i$ is the paper's step $t = i + 1$, and `alphas_cumprod_prev[0]` $= \bar\alpha_0 = 1$.
#
# Next, {doc}`05_reverse_process_vlb` runs the chain backwards: it derives the posterior
# $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)$ and the variational bound in which $L_T$ is
# the first term.

# %% [markdown]
# ## Exercises
#
# **1. Why the $1000/T$ rescaling keeps $\bar\alpha_T$ nearly fixed.** Show that
# $\log\bar\alpha_T = \sum_t \log(1-\beta_t) \approx -\sum_t\beta_t - \tfrac12\sum_t\beta_t^2$, and
# that with {eq}`fwd-linear` the first sum equals $1000 \cdot (10^{-4} + 0.02)/2 = 10.05$ for every
# $T$. Compare $e^{-10.05}$, the second-order estimate and the exact $\bar\alpha_T$ for $T = 1000$.
# Why does $\bar\alpha_T$ drift downwards for small $T$?
#
# ````{dropdown} Solution
# Taylor expansion gives $\log(1-\beta) = -\beta - \beta^2/2 - \beta^3/3 - \dots$, and
# $\log\bar\alpha_T = \sum_{t=1}^T \log(1-\beta_t)$ by {eq}`fwd-alpha-bar`. The $\beta_t$ of
# {eq}`fwd-linear` are equally spaced, so their sum is $T$ times their average, the midpoint of
# the endpoints: $T \cdot \frac{1000}{T}\cdot\frac{10^{-4} + 0.02}{2} = 10.05$, independent of $T$.
# Hence $\bar\alpha_T \approx e^{-10.05} \approx 4.32\times10^{-5}$ to first order. The second-order
# term $\frac12\sum_t\beta_t^2$ is about $\frac12 T \cdot (1000/T)^2 \cdot 0.02^2/3 = 0.067$ for
# $T = 1000$, which brings the estimate to $4.04\times10^{-5}$, against the exact $4.0358\times10^{-5}$.
# The second-order term grows like $1/T$ (the individual $\beta_t$ are larger when $T$ is small),
# so $\bar\alpha_T$ falls for small $T$: about $7.7\times10^{-6}$ at $T = 50$.
#
# ```python
# b = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
# print(math.exp(-b.sum()), math.exp(-b.sum() - (b**2).sum() / 2), torch.prod(1 - b))
# # 4.3186e-05  4.0386e-05  4.0358e-05
# ```
# ````
#
# **2. Skipping steps.** Show that for $0 \le s < t$,
# $q(\mathbf{x}_t \mid \mathbf{x}_s) = \mathcal{N}\big(\sqrt{\bar\alpha_t/\bar\alpha_s}\,\mathbf{x}_s,\ (1 - \bar\alpha_t/\bar\alpha_s)\mathbf{I}\big)$.
# Which forward process does this describe when only the steps $s$ and $t$ are kept? (This is the
# basis of the fast samplers of chapter 7.)
#
# ````{dropdown} Solution
# The chain started at $\mathbf{x}_s$ is again a forward process, with schedule
# $\beta_{s+1}, \dots, \beta_t$. Its "alpha bar" after $t - s$ steps is
# $\alpha_{s+1}\cdots\alpha_t = \bar\alpha_t/\bar\alpha_s$ (divide the product defining
# $\bar\alpha_t$ by that defining $\bar\alpha_s$). Applying {eq}`fwd-marginal` to this shifted chain
# gives the claim; the induction of {eq}`fwd-induction` goes through word for word with
# $\bar\alpha_t$ replaced by $\bar\alpha_t/\bar\alpha_s$. Keeping only steps $s$ and $t$ gives a
# one-step forward process with $\beta = 1 - \bar\alpha_t/\bar\alpha_s$; for $s = 0$ it is
# {eq}`fwd-marginal` itself. A numerical check in the style of this chapter, starting the chain
# at a fixed $\mathbf{x}_s$ and running steps $s+1, \dots, t$ (that is `betas[s:t]`):
#
# ```python
# s, t = 200, 600
# ratio = abar[t - 1] / abar[s - 1]                   # ᾱ_t / ᾱ_s
# x_s = x0_digit.expand(4000, -1)                     # 4000 copies of a fixed x_s
# gen = torch.Generator().manual_seed(5)
# x_t = forward_chain(x_s, betas[s:t], {t - s}, gen)[t - s]
# print((x_t.mean(0) - ratio.sqrt() * x_s[0]).abs().max())  # 0.034: 2 std. errors
# print(x_t.var(0).mean(), 1 - ratio)                 # 0.9604 against 0.9607
# ```
# ````
#
# **3. Variance preserving versus variance exploding.** Let $\mathbf{x}_t$ follow
# {eq}`fwd-reparam` and define $\mathbf{y}_t := \mathbf{x}_t/\sqrt{\bar\alpha_t}$. Show that
# $\mathbf{y}_t = \mathbf{x}_0 + \bar\sigma_t\boldsymbol{\epsilon}$ with
# $\bar\sigma_t^2 = 1/\mathrm{SNR}(t)$ (the noise-to-signal ratio, written $\bar\sigma$ in
# {doc}`07_fast_sampling` too; the bar keeps it apart from the reverse step's standard deviation
# $\sigma_t$ of {doc}`05_reverse_process_vlb`), and that $\mathbf{y}_t$ is itself a Markov chain
# that only adds noise. What is the variance of $\mathbf{y}_T$ given $\mathbf{x}_0$ for the
# linear schedule at $T = 1000$?
#
# ````{dropdown} Solution
# Dividing {eq}`fwd-reparam` by $\sqrt{\bar\alpha_t}$ gives $\mathbf{y}_t = \mathbf{x}_0 +
# \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}\,\boldsymbol{\epsilon}$, and $(1-\bar\alpha_t)/\bar\alpha_t =
# 1/\mathrm{SNR}(t)$ by {eq}`fwd-snr`. Dividing one step {eq}`fwd-step-reparam` by
# $\sqrt{\bar\alpha_t} = \sqrt{\alpha_t}\sqrt{\bar\alpha_{t-1}}$ gives
# $\mathbf{y}_t = \mathbf{y}_{t-1} + \sqrt{\beta_t/\bar\alpha_t}\,\boldsymbol{\epsilon}_t$: the point
# is never shrunk, noise is only added, so this is a variance-exploding chain {cite}`song2021sde`,
# and the two families differ only by the rescaling $\sqrt{\bar\alpha_t}$. Consistently,
# $\sum_{s\le t}\beta_s/\bar\alpha_s = 1/\bar\alpha_t - 1$ (the telescoping sum of this chapter
# divided by $\bar\alpha_t$). For the linear schedule, $\bar\sigma_T^2 = 1/\mathrm{SNR}(T) =
# (1 - 4.0358\times10^{-5})/(4.0358\times10^{-5}) \approx 2.5\times10^4$, a standard deviation
# of about 157 for data in $[-1, 1]$.
# ````
#
# **4. The cosine offset.** For the cosine schedule with $T = 1000$, compute $\sqrt{\beta_1}$ for
# $s = 0.008$ and for $s = 0$, and compare with the width $1/127.5 \approx 0.0078$ of a pixel bin
# (256 levels spread over $[-1, 1]$). What goes wrong with $s = 0$?
#
# ````{dropdown} Solution
# With `cosine_betas` from this chapter:
#
# ```python
# for s in (0.008, 0.0):
#     print(s, cosine_betas(1000, s=s)[0].sqrt().item())
# # 0.008 -> 0.00643 ;  0.0 -> 0.00157
# ```
#
# With $s = 0.008$, $\sqrt{\beta_1} \approx 0.0064$, slightly below the bin width $0.0078$, which is
# how {cite:t}`nichol2021improved` chose $s$. With $s = 0$, $\beta_1 = 1 - \cos^2(\pi/2000) =
# \sin^2(\pi/2000)$, so $\sqrt{\beta_1} = \sin(\pi/2000) \approx 0.0016$, a fifth of a pixel bin.
# At such small noise levels the network must output
# $\boldsymbol{\epsilon} = (\mathbf{x}_1 - \sqrt{\bar\alpha_1}\,\mathbf{x}_0)/\sqrt{1-\bar\alpha_1}$,
# which magnifies any error in its implicit estimate of $\mathbf{x}_0$ by $1/\sqrt{\beta_1}$
# (about 640 for $s = 0$, against 156 for $s = 0.008$). {cite:t}`nichol2021improved` report that
# such tiny amounts of noise at the start made $\boldsymbol{\epsilon}$ hard to predict accurately
# enough, which is why they introduced the offset.
# ````
#
# **5. The prior term for standardised data.** Suppose each pixel of $\mathbf{x}_0$ has mean $0$
# and variance $1$ under the data distribution. Show that the average prior KL is
# $\mathbb{E}_{\mathbf{x}_0}[L_T] = -\tfrac{D}{2}\log(1-\bar\alpha_T)$ nats. How large may
# $\bar\alpha_T$ be if $L_T$ should stay below $10^{-3}$ bits per dimension?
#
# ````{dropdown} Solution
# Average {eq}`fwd-prior-kl` over $\mathbf{x}_0$: $\mathbb{E}[x_{0,d}^2] = 1$, so the bracket
# becomes $\bar\alpha_T - \bar\alpha_T - \log(1 - \bar\alpha_T) = -\log(1-\bar\alpha_T)$ for each
# pixel, and the sum gives $-\tfrac{D}{2}\log(1-\bar\alpha_T)$. Per dimension, in bits, this is
# $-\log_2(1-\bar\alpha_T)/2 \approx \bar\alpha_T/(2\ln 2)$. Requiring it to be at most $10^{-3}$
# gives $\bar\alpha_T \le 1 - 2^{-0.002} \approx 1.39\times10^{-3}$. Both the linear
# ($4\times10^{-5}$) and cosine ($2\times10^{-9}$) schedules at $T = 1000$ are far inside this.
# ````
