# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Chapter 5: The reverse process and the variational bound
#
# Chapter 4 built the forward process, a fixed Markov chain that turns data into noise. A
# diffusion model is the other half: a learned Markov chain that runs the other way, from noise
# back to data. This chapter derives how such a chain is trained. It is the heart of the book:
# the chapters on training and fast sampling (6 and 7), and the later ones on guidance and
# latent diffusion, reuse the formulas derived here, and most of the mistakes found in popular
# write-ups are mistakes in exactly these few pages.
#
# **What you will learn.**
#
# - The reverse process $p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t) = \mathcal{N}(\boldsymbol{\mu}_\theta(\mathbf{x}_t, t), \sigma_t^2\mathbf{I})$
#   {cite}`sohl2015deep,ho2020ddpm`, and the variational lower bound (变分下界, VLB or ELBO)
#   on its log-likelihood, obtained from Jensen's inequality.
# - The rewrite of the bound into a prior term, a sum of KL divergences and a decoder term,
#   $L_T + \sum_{t>1} L_{t-1} + L_0$, one step per line {cite}`ho2020ddpm,luo2022understanding`.
# - The forward posterior $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)$ in closed form,
#   by completing the square, checked against Bayes' rule on a grid.
# - The KL divergence between Gaussians, the $\boldsymbol{\epsilon}$-parameterisation of the
#   model mean, the per-step weights $w_t$, and what exactly is dropped to obtain the
#   simple loss $L_{\text{simple}}$ that everybody trains with.
# - How large the true reverse variance is, and when it lies between the two standard choices
#   $\tilde\beta_t$ and $\beta_t$.
# - Bits per dimension, the discretised decoder and the prior term, computed on the digits.
# - A case where everything is exact: a one-dimensional Gaussian mixture for which the optimal
#   denoiser, the model's true likelihood and the bound can all be computed to many digits, so
#   that we can *see* $\text{VLB} \ge -\mathbb{E}\log p_\theta(\mathbf{x}_0) \ge H(q(\mathbf{x}_0))$
#   and watch the gaps close as $T$ grows.
#
# **What it assumes.** The forward process of {doc}`04_forward_process`: the step
# $q(\mathbf{x}_t \mid \mathbf{x}_{t-1}) = \mathcal{N}(\sqrt{\alpha_t}\,\mathbf{x}_{t-1}, \beta_t \mathbf{I})$,
# $\alpha_t = 1 - \beta_t$, $\bar\alpha_t = \prod_{s \le t} \alpha_s$, and the marginal
# $q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\,\mathbf{x}_0, (1-\bar\alpha_t)\mathbf{I})$
# of eq. {eq}`fwd-marginal`. From chapter 2: Gaussian densities, the KL divergence, Jensen's
# inequality. The notation is that of {doc}`../book/notation`; in the prose $t$ is always the
# paper's step $1, \dots, T$, while the library's arrays are indexed by $i = t - 1$.

# %% [markdown]
# ## Setup
#
# The first cell installs the book's library when it is missing (on Colab); elsewhere it does
# nothing. The whole chapter runs on a CPU in well under a minute: nothing is trained. Where a
# "model" is needed we use predictors that are known in closed form.

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
from scipy.special import logsumexp

from diffusion_lib import GaussianDiffusion, check, check_le, get_beta_schedule
from diffusion_lib.checks import glue
from diffusion_lib.data import digits, quantise
from diffusion_lib.diffusion import discretized_gaussian_log_likelihood, normal_kl
from diffusion_lib.schedules import snr

torch.manual_seed(0)
rng = np.random.default_rng(0)
chapter_start = time.perf_counter()

# The schedule used for most of the chapter: Ho et al.'s linear schedule with T = 1000.
T = 1000
diff = GaussianDiffusion(get_beta_schedule("linear", T), model_var_type="fixed_small")
betas, alphas, abar = (
    diff.betas,
    diff.alphas,
    diff.alphas_cumprod,
)  # float64, index i = t - 1
abar_prev = diff.alphas_cumprod_prev  # ᾱ_{t-1}; ᾱ_0 = 1
b_np, a_np, ab_np, abp_np = (
    v.numpy() for v in (betas, alphas, abar, abar_prev)
)  # NumPy views
print(diff)
print(f"β_1 = {betas[0]:.1e}, β_T = {betas[-1]:.2f}, ᾱ_T = {abar[-1]:.2e}")


# %% [markdown]
# ## The reverse process
#
# The forward process destroys a data point $\mathbf{x}_0$ in $T$ small steps. If we could run it
# backwards, drawing $\mathbf{x}_T \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$ and then
# $\mathbf{x}_{T-1}, \dots, \mathbf{x}_0$ from the true reverse transitions
# $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$, we would generate data. Those transitions are unknown
# (they depend on the whole data distribution), so we **learn** them. The generative model,
# the **reverse process** (反向过程), is a Markov chain running from $t = T$ down to $t = 0$
# {cite}`sohl2015deep,ho2020ddpm`:
#
# $$
# p_\theta(\mathbf{x}_{0:T}) = p(\mathbf{x}_T) \prod_{t=1}^{T} p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t),
# \qquad p(\mathbf{x}_T) = \mathcal{N}(\mathbf{x}_T; \mathbf{0}, \mathbf{I}),
# $$ (rev-model-joint)
#
# with Gaussian steps whose mean is computed by a neural network and whose variance is fixed:
#
# $$
# p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t) = \mathcal{N}\big(\mathbf{x}_{t-1};\ \boldsymbol{\mu}_\theta(\mathbf{x}_t, t),\ \sigma_t^2 \mathbf{I}\big).
# $$ (rev-reverse-step)
#
# Why should a Gaussian be a good model of the reverse step? When $\beta_t$ is small, the
# forward step moves $\mathbf{x}_{t-1}$ only a little, and the true reverse transition
# $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t) \propto q(\mathbf{x}_t \mid \mathbf{x}_{t-1})\, q(\mathbf{x}_{t-1})$
# is a narrow Gaussian multiplied by a density that is nearly constant (log-linear) over its
# width, which is again nearly Gaussian {cite}`sohl2015deep`. The approximation improves as the
# steps get smaller, which is one reason $T$ is large. The last section of this chapter measures
# exactly how much is lost for finite $T$.
#
# The model assigns to a data point the marginal likelihood
#
# $$
# p_\theta(\mathbf{x}_0) = \int p_\theta(\mathbf{x}_{0:T})\, d\mathbf{x}_{1:T},
# $$ (rev-marginal)
#
# an integral over $T \cdot D$ latent variables that cannot be computed for images. Training
# therefore minimises an upper bound on $-\log p_\theta(\mathbf{x}_0)$ instead.

# %% [markdown]
# ## A lower bound on the log-likelihood
#
# The derivation is the same as for the variational autoencoder {cite}`kingma2014vae`, with the
# forward process playing the role of the encoder. The only difference is that this "encoder"
# $q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)$ has no parameters. One step per line:
#
# $$
# \begin{aligned}
# \log p_\theta(\mathbf{x}_0)
# &\overset{(a)}{=} \log \int p_\theta(\mathbf{x}_{0:T})\, d\mathbf{x}_{1:T} \\
# &\overset{(b)}{=} \log \int q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)\,
#    \frac{p_\theta(\mathbf{x}_{0:T})}{q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)}\, d\mathbf{x}_{1:T} \\
# &\overset{(c)}{=} \log \mathbb{E}_{q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)}\!\left[\frac{p_\theta(\mathbf{x}_{0:T})}{q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)}\right] \\
# &\overset{(d)}{\ge} \mathbb{E}_{q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)}\!\left[\log \frac{p_\theta(\mathbf{x}_{0:T})}{q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)}\right].
# \end{aligned}
# $$ (rev-jensen)
#
# (a) is the definition {eq}`rev-marginal`; (b) multiplies and divides by the forward density,
# which is positive everywhere because it is a product of Gaussians; (c) is the definition of an
# expectation; (d) is Jensen's inequality, $\log \mathbb{E}[Y] \ge \mathbb{E}[\log Y]$ for a
# positive random variable $Y$, because $\log$ is concave. Changing signs, the quantity we
# minimise is
#
# $$
# L(\mathbf{x}_0) := \mathbb{E}_{q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)}\!\left[-\log \frac{p_\theta(\mathbf{x}_{0:T})}{q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)}\right]
# \;\ge\; -\log p_\theta(\mathbf{x}_0),
# \qquad L_{\text{VLB}} := \mathbb{E}_{q(\mathbf{x}_0)}\big[L(\mathbf{x}_0)\big].
# $$ (rev-elbo)
#
# How loose is the bound? Write $p_\theta(\mathbf{x}_{0:T}) = p_\theta(\mathbf{x}_0)\, p_\theta(\mathbf{x}_{1:T} \mid \mathbf{x}_0)$
# inside the logarithm of {eq}`rev-elbo`; the factor $p_\theta(\mathbf{x}_0)$ does not depend on
# $\mathbf{x}_{1:T}$ and comes out of the expectation, and what remains is a KL divergence:
#
# $$
# L(\mathbf{x}_0) = -\log p_\theta(\mathbf{x}_0)
# + D_{\mathrm{KL}}\big(q(\mathbf{x}_{1:T} \mid \mathbf{x}_0) \,\Vert\, p_\theta(\mathbf{x}_{1:T} \mid \mathbf{x}_0)\big).
# $$ (rev-elbo-gap)
#
# The gap is the mismatch between the forward process and the model's own posterior over the
# noisy path. Averaging over the data and using $-\mathbb{E}_{q}\log p_\theta(\mathbf{x}_0)
# = H(q(\mathbf{x}_0)) + D_{\mathrm{KL}}(q(\mathbf{x}_0) \,\Vert\, p_\theta(\mathbf{x}_0))$ gives a
# chain of two inequalities that the last section verifies numerically:
#
# $$
# L_{\text{VLB}} \;\ge\; -\mathbb{E}_{q(\mathbf{x}_0)}\big[\log p_\theta(\mathbf{x}_0)\big] \;\ge\; H\big(q(\mathbf{x}_0)\big).
# $$ (rev-bound-chain)

# %% [markdown]
# ### A small example we can solve exactly
#
# To test each formula of this chapter as soon as it is derived, we use a one-dimensional toy:
# a single data point $x_0 = 0.8$, $T = 20$ steps of the cosine schedule, and a reverse model
# whose mean is *linear*, $\mu_\theta(x_t, t) = k_t x_t$. With a linear mean every
# $p_\theta(x_t)$ is a zero-mean Gaussian, so the exact likelihood follows by propagating one
# variance backwards: $v_T = 1$, $v_{t-1} = k_t^2 v_t + \sigma_t^2$, and
# $-\log p_\theta(x_0) = \tfrac12\log(2\pi v_0) + x_0^2/(2 v_0)$. Any $k_t$ gives a valid model;
# we take $k_t = \frac{1}{\sqrt{\alpha_t}}\big(1 - \frac{\beta_t}{\bar\alpha_t s^2 + 1 - \bar\alpha_t}\big)$
# with $s^2 = 0.25$ (the section on the $\boldsymbol{\epsilon}$-parameterisation shows that this
# is the best mean for data drawn from $\mathcal{N}(0, s^2)$), and the library's
# "fixed_large" variances $\sigma_t^2$.
#
# The bound {eq}`rev-elbo` is an expectation over forward trajectories, so we estimate it by
# Monte Carlo: run the forward chain many times from $x_0$ and average the log-ratio.

# %%
toy = GaussianDiffusion(get_beta_schedule("cosine", 20), model_var_type="fixed_large")
Tt = toy.num_timesteps
tb, ta, tab = toy.betas.numpy(), toy.alphas.numpy(), toy.alphas_cumprod.numpy()
tsig2 = torch.exp(
    toy.model_log_variance
).numpy()  # σ_t², index t - 1 (see the note below)
s2_toy, x0_toy = 0.25, 0.8
k_toy = (1 - tb / (tab * s2_toy + 1 - tab)) / np.sqrt(ta)  # μ_θ(x, t) = k_t x


def log_normal(x, mean, var):
    """log N(x; mean, var), elementwise."""
    return -0.5 * np.log(2 * np.pi * var) - (x - mean) ** 2 / (2 * var)


# Exact model likelihood: propagate the variance of p_θ(x_t) from t = T down to t = 0.
v = 1.0
for i in reversed(range(Tt)):
    v = k_toy[i] ** 2 * v + tsig2[i]
nll_toy = -log_normal(x0_toy, 0.0, v)

# Monte Carlo over forward trajectories: x[:, t] holds x_t, t = 0..T.
n_paths = 200_000
x = np.empty((n_paths, Tt + 1))
x[:, 0] = x0_toy
for t in range(1, Tt + 1):
    x[:, t] = np.sqrt(ta[t - 1]) * x[:, t - 1] + np.sqrt(
        tb[t - 1]
    ) * rng.standard_normal(n_paths)
log_p_path = log_normal(x[:, Tt], 0.0, 1.0) + sum(
    log_normal(x[:, t - 1], k_toy[t - 1] * x[:, t], tsig2[t - 1])
    for t in range(1, Tt + 1)
)
log_q_path = sum(
    log_normal(x[:, t], np.sqrt(ta[t - 1]) * x[:, t - 1], tb[t - 1])
    for t in range(1, Tt + 1)
)
integrand = -(log_p_path - log_q_path)  # the quantity averaged in eq. (rev-elbo)
vlb_mc, vlb_se = integrand.mean(), integrand.std() / np.sqrt(n_paths)
print(f"toy: exact -log p(x0) = {nll_toy:.4f} nats")
print(f"     VLB (Monte Carlo) = {vlb_mc:.4f} ± {vlb_se:.4f} nats")
_ = check_le(
    "toy: the negative log-likelihood is below the bound, eq. (rev-elbo)",
    nll_toy,
    vlb_mc - 5 * vlb_se,
)
glue("ch5_toy_gap", vlb_mc - nll_toy)
glue("ch5_toy_gap_se", (vlb_mc - nll_toy) / vlb_se)

# %% [markdown]
# The bound holds with a gap of {glue:text}`ch5_toy_gap:.2f` nats, some
# {glue:text}`ch5_toy_gap_se:.0f` standard errors.
# (A note on `model_log_variance`: it is the library's array of $\log\sigma_t^2$, indexed like
# every other buffer. We read it directly here; later we check it against the public
# `p_mean_variance`.)

# %% [markdown]
# ## Rewriting the bound as a sum of KL divergences
#
# Monte Carlo over whole trajectories is noisy: the log-ratio in {eq}`rev-elbo` is a sum of
# $2T$ random terms. The decisive step of {cite:t}`ho2020ddpm` (following
# {cite:t}`sohl2015deep`; see {cite:t}`luo2022understanding` for a long-form derivation) is to
# rewrite the bound as a sum of terms that each involve one pair $(\mathbf{x}_{t-1}, \mathbf{x}_t)$
# and can be computed in closed form. All expectations below are over
# $q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)$, written $\mathbb{E}_q$. Every step, one per line:
#
# $$
# \begin{aligned}
# L(\mathbf{x}_0)
# &\overset{(a)}{=} \mathbb{E}_q\!\left[-\log \frac{p(\mathbf{x}_T) \prod_{t=1}^{T} p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)}{\prod_{t=1}^{T} q(\mathbf{x}_t \mid \mathbf{x}_{t-1})}\right] \\
# &\overset{(b)}{=} \mathbb{E}_q\!\left[-\log p(\mathbf{x}_T) - \sum_{t=1}^{T} \log \frac{p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)}{q(\mathbf{x}_t \mid \mathbf{x}_{t-1})}\right] \\
# &\overset{(c)}{=} \mathbb{E}_q\bigg[-\log p(\mathbf{x}_T) - \sum_{t=2}^{T} \log \frac{p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)}{q(\mathbf{x}_t \mid \mathbf{x}_{t-1})}
#    - \log \frac{p_\theta(\mathbf{x}_0 \mid \mathbf{x}_1)}{q(\mathbf{x}_1 \mid \mathbf{x}_0)}\bigg] \\
# &\overset{(d)}{=} \mathbb{E}_q\bigg[-\log p(\mathbf{x}_T) - \sum_{t=2}^{T} \log \frac{p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)}{q(\mathbf{x}_t \mid \mathbf{x}_{t-1}, \mathbf{x}_0)}
#    - \log \frac{p_\theta(\mathbf{x}_0 \mid \mathbf{x}_1)}{q(\mathbf{x}_1 \mid \mathbf{x}_0)}\bigg] \\
# &\overset{(e)}{=} \mathbb{E}_q\bigg[-\log p(\mathbf{x}_T) - \sum_{t=2}^{T} \log \frac{p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)\, q(\mathbf{x}_{t-1} \mid \mathbf{x}_0)}{q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)\, q(\mathbf{x}_t \mid \mathbf{x}_0)}
#    - \log \frac{p_\theta(\mathbf{x}_0 \mid \mathbf{x}_1)}{q(\mathbf{x}_1 \mid \mathbf{x}_0)}\bigg] \\
# &\overset{(f)}{=} \mathbb{E}_q\bigg[-\log p(\mathbf{x}_T) - \sum_{t=2}^{T} \log \frac{p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)}{q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)}
#    - \sum_{t=2}^{T} \log \frac{q(\mathbf{x}_{t-1} \mid \mathbf{x}_0)}{q(\mathbf{x}_t \mid \mathbf{x}_0)}
#    - \log \frac{p_\theta(\mathbf{x}_0 \mid \mathbf{x}_1)}{q(\mathbf{x}_1 \mid \mathbf{x}_0)}\bigg] \\
# &\overset{(g)}{=} \mathbb{E}_q\bigg[-\log p(\mathbf{x}_T) - \sum_{t=2}^{T} \log \frac{p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)}{q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)}
#    - \log \frac{q(\mathbf{x}_1 \mid \mathbf{x}_0)}{q(\mathbf{x}_T \mid \mathbf{x}_0)}
#    - \log \frac{p_\theta(\mathbf{x}_0 \mid \mathbf{x}_1)}{q(\mathbf{x}_1 \mid \mathbf{x}_0)}\bigg] \\
# &\overset{(h)}{=} \mathbb{E}_q\bigg[-\log \frac{p(\mathbf{x}_T)}{q(\mathbf{x}_T \mid \mathbf{x}_0)} - \sum_{t=2}^{T} \log \frac{p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)}{q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)} - \log p_\theta(\mathbf{x}_0 \mid \mathbf{x}_1)\bigg] \\
# &\overset{(i)}{=} \underbrace{D_{\mathrm{KL}}\big(q(\mathbf{x}_T \mid \mathbf{x}_0) \,\Vert\, p(\mathbf{x}_T)\big)}_{L_T}
# + \sum_{t=2}^{T} \underbrace{\mathbb{E}_{q(\mathbf{x}_t \mid \mathbf{x}_0)}\Big[D_{\mathrm{KL}}\big(q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0) \,\Vert\, p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)\big)\Big]}_{L_{t-1}} \\
# &\phantom{\overset{(i)}{=}}\; \underbrace{- \,\mathbb{E}_{q(\mathbf{x}_1 \mid \mathbf{x}_0)}\big[\log p_\theta(\mathbf{x}_0 \mid \mathbf{x}_1)\big]}_{L_0}.
# \end{aligned}
# $$ (rev-vlb-split)
#
# The justification of each line:
#
# - (a) Factorise both joints: the model by {eq}`rev-model-joint`, the forward process as the
#   Markov chain $q(\mathbf{x}_{1:T} \mid \mathbf{x}_0) = \prod_{t=1}^{T} q(\mathbf{x}_t \mid \mathbf{x}_{t-1})$ of chapter 4.
# - (b) The logarithm of a product is the sum of the logarithms; pair the $t$-th factors.
# - (c) Split off the $t = 1$ term of the sum; it is treated differently below.
# - (d) **Markov property.** Given $\mathbf{x}_{t-1}$, the forward step does not look at
#   $\mathbf{x}_0$: $q(\mathbf{x}_t \mid \mathbf{x}_{t-1}) = q(\mathbf{x}_t \mid \mathbf{x}_{t-1}, \mathbf{x}_0)$.
#   Conditioning on $\mathbf{x}_0$ changes nothing, but it is what makes the next line possible.
# - (e) **Bayes' rule** inside the distribution conditioned on $\mathbf{x}_0$:
#   $q(\mathbf{x}_t \mid \mathbf{x}_{t-1}, \mathbf{x}_0) = q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)\, q(\mathbf{x}_t \mid \mathbf{x}_0) / q(\mathbf{x}_{t-1} \mid \mathbf{x}_0)$,
#   valid for $t \ge 2$ (for $t = 1$ the "posterior" $q(\mathbf{x}_0 \mid \mathbf{x}_1, \mathbf{x}_0)$ would be a point mass, which is why (c) set $t = 1$ aside).
# - (f) Split the logarithm of the fraction into two sums.
# - (g) **Telescoping.** $\sum_{t=2}^{T} \log\frac{q(\mathbf{x}_{t-1} \mid \mathbf{x}_0)}{q(\mathbf{x}_t \mid \mathbf{x}_0)}
#   = \log\prod_{t=2}^{T}\frac{q(\mathbf{x}_{t-1} \mid \mathbf{x}_0)}{q(\mathbf{x}_t \mid \mathbf{x}_0)}
#   = \log \frac{q(\mathbf{x}_1 \mid \mathbf{x}_0)}{q(\mathbf{x}_T \mid \mathbf{x}_0)}$:
#   every numerator except the first cancels the denominator of the previous factor.
# - (h) The $q(\mathbf{x}_1 \mid \mathbf{x}_0)$ of (g) cancels the one of the decoder term;
#   $q(\mathbf{x}_T \mid \mathbf{x}_0)$ joins the prior.
# - (i) **Grouping into KLs.** Each term depends on only one or two of the variables, so the
#   others integrate out. The first depends on $\mathbf{x}_T$ only, whose marginal under
#   $q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)$ is $q(\mathbf{x}_T \mid \mathbf{x}_0)$, so it is the
#   KL divergence $\mathbb{E}_{q(\mathbf{x}_T \mid \mathbf{x}_0)}[\log q(\mathbf{x}_T \mid \mathbf{x}_0) - \log p(\mathbf{x}_T)]$.
#   The $t$-th term depends on $(\mathbf{x}_{t-1}, \mathbf{x}_t)$, whose joint law is
#   $q(\mathbf{x}_t \mid \mathbf{x}_0)\, q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)$;
#   the inner expectation over $\mathbf{x}_{t-1}$ is a KL divergence, the outer one is over $\mathbf{x}_t$.
#
# Three kinds of terms remain. $L_T$ has no parameters: the forward process fixes it, and
# chapter 4 showed it is about $2 \times 10^{-5}$ bits per dimension for the digits with the
# linear schedule and $T = 1000$ (we compute it again below). Each $L_{t-1}$ asks the model's
# step to match the **forward posterior** $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)$,
# a distribution that is known in closed form (next section), unlike the true reverse step
# $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$. $L_0$ is the **decoder** term, the likelihood of the
# data given the last noisy step. Nothing has been approximated yet: {eq}`rev-vlb-split` is
# an identity.
#
# In fact the rewrite holds trajectory by trajectory, not only in expectation: lines (a) to (h)
# only rearrange logarithms. We check that on the toy's 200,000 forward paths, computing
# $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)$ from Bayes' rule (e) with forward
# densities only, so that the check tests the bookkeeping and not a closed form we have yet to
# derive.


# %%
def log_q_marg(x, i):
    """log q(x_t | x0_toy) for the toy, index i = t - 1 (chapter 4's marginal)."""
    return log_normal(x, np.sqrt(tab[i]) * x0_toy, 1 - tab[i])


def log_q_step(x_t, x_prev, i):
    """log q(x_t | x_{t-1}), index i = t - 1."""
    return log_normal(x_t, np.sqrt(ta[i]) * x_prev, tb[i])


rewritten = -(
    log_normal(x[:, Tt], 0.0, 1.0) - log_q_marg(x[:, Tt], Tt - 1)
)  # prior term
for t in range(2, Tt + 1):
    log_post = (
        log_q_step(x[:, t], x[:, t - 1], t - 1)
        + log_q_marg(x[:, t - 1], t - 2)
        - log_q_marg(x[:, t], t - 1)
    )  # Bayes' rule, line (e)
    rewritten -= (
        log_normal(x[:, t - 1], k_toy[t - 1] * x[:, t], tsig2[t - 1]) - log_post
    )
rewritten -= log_normal(x[:, 0], k_toy[0] * x[:, 1], tsig2[0])  # decoder term
_ = check(
    "eq. (rev-vlb-split) lines (a)-(h) hold on every forward path",
    rewritten,
    integrand,
    atol=1e-9,
)

# %% [markdown]
# ## The forward posterior, by completing the square
#
# Every $L_{t-1}$ needs the forward posterior (前向后验) $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)$. All the
# distributions involved are isotropic Gaussians, so the coordinates are independent and it is
# enough to work with one coordinate; write $x_{t-1}, x_t, x_0$ for scalars. One step per line:
#
# $$
# \begin{aligned}
# q(x_{t-1} \mid x_t, x_0)
# &\overset{(a)}{=} \frac{q(x_t \mid x_{t-1}, x_0)\, q(x_{t-1} \mid x_0)}{q(x_t \mid x_0)} \\
# &\overset{(b)}{=} \frac{q(x_t \mid x_{t-1})\, q(x_{t-1} \mid x_0)}{q(x_t \mid x_0)} \\
# &\overset{(c)}{\propto} \exp\!\left(-\frac{(x_t - \sqrt{\alpha_t}\, x_{t-1})^2}{2\beta_t}\right)
#    \exp\!\left(-\frac{(x_{t-1} - \sqrt{\bar\alpha_{t-1}}\, x_0)^2}{2(1 - \bar\alpha_{t-1})}\right) \\
# &\overset{(d)}{=} \exp\!\left(-\frac12\left[\Big(\frac{\alpha_t}{\beta_t} + \frac{1}{1 - \bar\alpha_{t-1}}\Big) x_{t-1}^2
#    - 2\Big(\frac{\sqrt{\alpha_t}}{\beta_t}\, x_t + \frac{\sqrt{\bar\alpha_{t-1}}}{1 - \bar\alpha_{t-1}}\, x_0\Big) x_{t-1}
#    + C(x_t, x_0)\right]\right) \\
# &\overset{(e)}{\propto} \exp\!\left(-\frac{(x_{t-1} - \tilde\mu_t)^2}{2\tilde\beta_t}\right),
# \qquad \frac{1}{\tilde\beta_t} = \frac{\alpha_t}{\beta_t} + \frac{1}{1 - \bar\alpha_{t-1}},
# \quad \frac{\tilde\mu_t}{\tilde\beta_t} = \frac{\sqrt{\alpha_t}}{\beta_t}\, x_t + \frac{\sqrt{\bar\alpha_{t-1}}}{1 - \bar\alpha_{t-1}}\, x_0 .
# \end{aligned}
# $$ (rev-posterior-bayes)
#
# (a) is Bayes' rule with everything conditioned on $x_0$; (b) is the Markov property again;
# (c) inserts the forward step and the marginal {eq}`fwd-marginal` at $t - 1$, and drops the
# normalising constants and the denominator, which do not depend on $x_{t-1}$; (d) expands both
# squares and collects powers of $x_{t-1}$, putting everything free of $x_{t-1}$ into
# $C(x_t, x_0)$; (e) **completes the square**: an exponent $-\frac12(a x^2 - 2 b x + c)$ with
# $a > 0$ is, up to a constant factor, the Gaussian $\mathcal{N}(b/a, 1/a)$, because
# $a x^2 - 2bx = a(x - b/a)^2 - b^2/a$. So the posterior is Gaussian with precision $a$ and
# mean $b/a$. It remains to simplify. The precision, over a common denominator:
#
# $$
# \frac{1}{\tilde\beta_t}
# = \frac{\alpha_t (1 - \bar\alpha_{t-1}) + \beta_t}{\beta_t (1 - \bar\alpha_{t-1})}
# = \frac{\alpha_t - \bar\alpha_t + 1 - \alpha_t}{\beta_t (1 - \bar\alpha_{t-1})}
# = \frac{1 - \bar\alpha_t}{\beta_t (1 - \bar\alpha_{t-1})},
# $$
#
# using $\alpha_t \bar\alpha_{t-1} = \bar\alpha_t$ and $\beta_t = 1 - \alpha_t$. Hence the
# **posterior variance**
#
# $$
# \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\, \beta_t ,
# $$ (rev-posterior-var)
#
# and, multiplying $\tilde\mu_t/\tilde\beta_t$ by $\tilde\beta_t$ term by term, the
# **posterior mean**
#
# $$
# \tilde{\boldsymbol{\mu}}_t(\mathbf{x}_t, \mathbf{x}_0)
# = \frac{\sqrt{\bar\alpha_{t-1}}\, \beta_t}{1 - \bar\alpha_t}\, \mathbf{x}_0
# + \frac{\sqrt{\alpha_t}\, (1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\, \mathbf{x}_t ,
# \qquad
# q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0) = \mathcal{N}\big(\tilde{\boldsymbol{\mu}}_t(\mathbf{x}_t, \mathbf{x}_0),\ \tilde\beta_t \mathbf{I}\big).
# $$ (rev-posterior-mean)
#
# The mean is a weighted combination of where the chain came from ($\mathbf{x}_0$, pulled
# forward by $\sqrt{\bar\alpha_{t-1}}$) and where it is ($\mathbf{x}_t$, pulled back by
# $\sqrt{\alpha_t}$). At $t = 1$, $\bar\alpha_0 = 1$ gives $\tilde\beta_1 = 0$ and
# $\tilde{\boldsymbol{\mu}}_1 = \mathbf{x}_0$: knowing $\mathbf{x}_0$, there is nothing left to
# infer, which is why the bound treats $t = 1$ separately.
#
# **Check against Bayes' rule on a grid.** For a few steps $t$ we fix $x_0$ and $x_t$, multiply
# the two forward densities of line (b) on a fine grid of $x_{t-1}$ values, normalise
# numerically, and compare the resulting density, its mean and its variance with
# {eq}`rev-posterior-mean` and {eq}`rev-posterior-var`.


# %%
def posterior_by_hand(x0, x_t, i):
    """Eqs. (rev-posterior-mean) and (rev-posterior-var), index i = t - 1 (float64)."""
    b, a, ab, abp = b_np[i], a_np[i], ab_np[i], abp_np[i]
    mean = np.sqrt(abp) * b / (1 - ab) * x0 + np.sqrt(a) * (1 - abp) / (1 - ab) * x_t
    var = (1 - abp) / (1 - ab) * b
    return mean, var


grid = np.linspace(-3, 3, 600_001)  # x_{t-1} values; spacing 1e-5
dg = grid[1] - grid[0]
x0_1d = 0.3
errors = {"mean": [], "var": [], "density": []}
for t in (2, 3, 10, 100, 500, 1000):
    i = t - 1
    x_t = np.sqrt(ab_np[i]) * x0_1d + np.sqrt(1 - ab_np[i]) * rng.standard_normal()
    # line (b): q(x_t | x_{t-1}) q(x_{t-1} | x0) as a function of x_{t-1},
    # normalised on the grid
    log_unnorm = log_normal(x_t, np.sqrt(a_np[i]) * grid, b_np[i]) + log_normal(
        grid, np.sqrt(abp_np[i]) * x0_1d, 1 - abp_np[i]
    )
    dens = np.exp(log_unnorm - log_unnorm.max())
    dens /= dens.sum() * dg
    grid_mean = (grid * dens).sum() * dg
    grid_var = ((grid - grid_mean) ** 2 * dens).sum() * dg
    mean, var = posterior_by_hand(x0_1d, x_t, i)
    errors["mean"].append(grid_mean - mean)
    errors["var"].append(grid_var / var - 1)
    errors["density"].append(
        np.max(np.abs(dens - np.exp(log_normal(grid, mean, var)))) / dens.max()
    )
    if t == 3:
        example = (t, grid.copy(), dens, mean, var, log_unnorm, x_t)
check(
    "posterior mean (rev-posterior-mean) equals the mean of Bayes' rule on a grid",
    errors["mean"],
    0.0,
    atol=1e-9,
)
check(
    "posterior variance (rev-posterior-var) = the variance of Bayes' rule (relative)",
    errors["var"],
    0.0,
    atol=1e-7,
)
_ = check(
    "closed-form posterior density = Bayes' rule on the grid (relative to the peak)",
    errors["density"],
    0.0,
    atol=1e-7,
)

# %%
t_ex, g_ex, dens_ex, mean_ex, var_ex, _, xt_ex = example
i = t_ex - 1
sd = math.sqrt(var_ex)
sel = np.abs(g_ex - mean_ex) < 12 * sd
fig, ax = plt.subplots(figsize=(7, 3.8))
lik = np.exp(log_normal(xt_ex, np.sqrt(a_np[i]) * g_ex[sel], b_np[i]))
prior = np.exp(log_normal(g_ex[sel], np.sqrt(abp_np[i]) * x0_1d, 1 - abp_np[i]))
ax.plot(
    g_ex[sel],
    lik / (lik.sum() * dg),
    color="C0",
    ls="--",
    label=r"$q(x_t \mid x_{t-1})$ as a function of $x_{t-1}$ (normalised)",
)
ax.plot(
    g_ex[sel],
    prior / (prior.sum() * dg),
    color="C1",
    ls="--",
    label=r"$q(x_{t-1} \mid x_0)$",
)
ax.plot(
    g_ex[sel],
    dens_ex[sel],
    color="k",
    lw=4,
    alpha=0.3,
    label="product, normalised on the grid",
)
ax.plot(
    g_ex[sel],
    np.exp(log_normal(g_ex[sel], mean_ex, var_ex)),
    color="C3",
    label=r"closed form $\mathcal{N}(\tilde\mu_t, \tilde\beta_t)$",
)
ax.set(
    xlabel=r"$x_{t-1}$",
    ylabel="density",
    title=f"Forward posterior at t = {t_ex} (linear schedule, T = 1000, x0 = {x0_1d})",
)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: the two factors of Bayes' rule at $t = 3$ (dashed), their normalised product
# computed on a grid (thick grey) and the closed-form posterior (red), which lies exactly on
# it.* At this early step the two factors have similar widths, and the posterior is narrower
# than either: it combines two independent pieces of evidence about $x_{t-1}$, and their
# precisions add, $1/\tilde\beta_t = \alpha_t/\beta_t + 1/(1-\bar\alpha_{t-1})$. At later steps
# $q(x_{t-1} \mid x_0)$ is much wider and the posterior is dominated by $x_t$.
#
# The library stores the two coefficients of {eq}`rev-posterior-mean` as `posterior_mean_coef1`
# (of $\mathbf{x}_0$) and `posterior_mean_coef2` (of $\mathbf{x}_t$), and $\tilde\beta_t$ as
# `posterior_variance`. We compare `q_posterior_mean_variance` with the formulas above, for every
# step and for images.

# %%
x0_img = digits("test").images[:8].double()  # (8, 1, 8, 8) in [-1, 1]
t_all = torch.arange(T)  # every index 0..T-1
x0_rep = x0_img[torch.arange(T) % 8]  # one digit per step
noise = torch.randn(x0_rep.shape, dtype=torch.float64)
x_t_rep = diff.q_sample(x0_rep, t_all, noise)
mean_lib, var_lib, logvar_lib = diff.q_posterior_mean_variance(x0_rep, x_t_rep, t_all)
c1 = (torch.sqrt(abar_prev) * betas / (1 - abar)).view(-1, 1, 1, 1)
c2 = (torch.sqrt(alphas) * (1 - abar_prev) / (1 - abar)).view(-1, 1, 1, 1)
check(
    "q_posterior_mean_variance mean equals eq. (rev-posterior-mean)",
    mean_lib,
    c1 * x0_rep + c2 * x_t_rep,
    atol=1e-12,
)
check(
    "q_posterior_mean_variance variance equals eq. (rev-posterior-var)",
    var_lib.flatten(),
    (1 - abar_prev) / (1 - abar) * betas,
    atol=1e-15,
)
print(f"β̃_1 = {diff.posterior_variance[0]:.1f} (x_0 is known);")
print(
    "the library's clipped log-variance at t = 1 is log β̃_2 = "
    f"{diff.posterior_log_variance_clipped[0]:.3f}"
)

# %% [markdown]
# ## The KL divergence between two Gaussians
#
# Each $L_{t-1}$ is a KL divergence between two Gaussians with diagonal covariances, which is a
# sum over coordinates of the one-dimensional KL. For one coordinate, with
# $x \sim \mathcal{N}(\mu_1, \sigma_1^2)$:
#
# $$
# \begin{aligned}
# D_{\mathrm{KL}}\big(\mathcal{N}(\mu_1, \sigma_1^2) \,\Vert\, \mathcal{N}(\mu_2, \sigma_2^2)\big)
# &\overset{(a)}{=} \mathbb{E}\big[\log \mathcal{N}(x; \mu_1, \sigma_1^2) - \log \mathcal{N}(x; \mu_2, \sigma_2^2)\big] \\
# &\overset{(b)}{=} \mathbb{E}\!\left[-\tfrac12 \log(2\pi\sigma_1^2) - \frac{(x - \mu_1)^2}{2\sigma_1^2}
#    + \tfrac12 \log(2\pi\sigma_2^2) + \frac{(x - \mu_2)^2}{2\sigma_2^2}\right] \\
# &\overset{(c)}{=} \tfrac12 \log\frac{\sigma_2^2}{\sigma_1^2} - \frac12 + \frac{\mathbb{E}[(x - \mu_2)^2]}{2\sigma_2^2} \\
# &\overset{(d)}{=} \tfrac12 \log\frac{\sigma_2^2}{\sigma_1^2} - \frac12 + \frac{\sigma_1^2 + (\mu_1 - \mu_2)^2}{2\sigma_2^2} .
# \end{aligned}
# $$ (rev-kl-gauss)
#
# (a) is the definition of the KL divergence; (b) writes out the two log-densities; (c) uses
# $\mathbb{E}[(x - \mu_1)^2] = \sigma_1^2$; (d) uses
# $\mathbb{E}[(x - \mu_2)^2] = \mathbb{E}[(x - \mu_1 + \mu_1 - \mu_2)^2] = \sigma_1^2 + (\mu_1 - \mu_2)^2$
# (the cross term has mean zero). In $D$ dimensions with covariances $\sigma_1^2\mathbf{I}$ and
# $\sigma_2^2\mathbf{I}$, the KL is the sum over coordinates:
# $\frac{D}{2}\big(\log\frac{\sigma_2^2}{\sigma_1^2} - 1 + \frac{\sigma_1^2}{\sigma_2^2}\big) + \frac{\lVert\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2\rVert^2}{2\sigma_2^2}$.
#
# We check {eq}`rev-kl-gauss` against a direct numerical integration of (a), then against the
# library's `normal_kl` (which takes log-variances).


# %%
def kl_gauss(m1, v1, m2, v2):
    """Eq. (rev-kl-gauss): KL(N(m1, v1) || N(m2, v2)) in nats, elementwise."""
    return 0.5 * np.log(v2 / v1) - 0.5 + (v1 + (m1 - m2) ** 2) / (2 * v2)


pairs = [
    (0.0, 1.0, 0.0, 1.0),
    (0.3, 0.5, -0.2, 2.0),
    (1.0, 0.01, 0.9, 0.02),
    (-2.0, 3.0, 1.0, 0.5),
]
by_quadrature = []
for m1, v1, m2, v2 in pairs:
    xs = np.linspace(m1 - 14 * np.sqrt(v1), m1 + 14 * np.sqrt(v1), 200_001)
    p1 = np.exp(log_normal(xs, m1, v1))
    by_quadrature.append(
        np.sum(p1 * (log_normal(xs, m1, v1) - log_normal(xs, m2, v2))) * (xs[1] - xs[0])
    )
m1, v1, m2, v2 = (np.array(c) for c in zip(*pairs))
check(
    "eq. (rev-kl-gauss) equals numerical integration of the KL",
    kl_gauss(m1, v1, m2, v2),
    by_quadrature,
    atol=1e-9,
)
_ = check(
    "eq. (rev-kl-gauss) equals diffusion_lib's normal_kl",
    kl_gauss(m1, v1, m2, v2),
    normal_kl(
        torch.tensor(m1),
        torch.tensor(np.log(v1)),
        torch.tensor(m2),
        torch.tensor(np.log(v2)),
    ),
    atol=1e-14,
)

# %% [markdown]
# ### Equal variances turn the KL into a squared error
#
# In $L_{t-1}$ the first Gaussian is the posterior, with variance $\tilde\beta_t$, and the second
# is the model step {eq}`rev-reverse-step`, with a variance $\sigma_t^2$ that is *fixed*, not
# learned. The two standard choices {cite}`ho2020ddpm` are
#
# $$
# \sigma_t^2 = \tilde\beta_t \quad(\text{fixed small})
# \qquad\text{or}\qquad
# \sigma_t^2 = \beta_t \quad(\text{fixed large}).
# $$ (rev-sigma-choices)
#
# In the library they are `model_var_type="fixed_small"` and `"fixed_large"`. $\tilde\beta_t$ is
# the exact reverse variance when the data are a single point (then
# $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t) = q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)$),
# and $\beta_t$ is exact when the data are $\mathcal{N}(\mathbf{0}, \mathbf{I})$ (exercise 3).
# {cite:t}`ho2020ddpm` (Sec. 3.2) call them the two extreme choices for data with
# coordinatewise unit variance; the end of this section shows in what sense the true reverse
# variance lies between them, and that this needs every coordinate of the data to have variance
# at most 1. {cite:t}`ho2020ddpm` found similar sample quality with both.
#
# At $t = 1$ the library uses $\tilde\beta_2$ for both choices, because $\tilde\beta_1 = 0$ would
# give a degenerate decoder (a Gaussian of zero width, whose log-variance is $-\infty$). This is
# also what the code released with {cite:t}`ho2020ddpm` evaluates, for both choices: its
# `fixedsmall` replaces $\log\tilde\beta_1$ by $\log\tilde\beta_2$, and its `fixedlarge` uses the
# log-variances $\log\tilde\beta_2, \log\beta_2, \dots, \log\beta_T$ ("to get a better decoder
# log likelihood", says its comment), and only the log-variance enters its sampler, its KL terms
# and its decoder. improved-diffusion {cite}`nichol2021improved` copies both. So
# $\sigma_1^2 = \beta_1$, the paper's formula taken literally, is not what the published "fixed
# large" models use at $t = 1$.
#
# With $\sigma_t^2$ fixed, insert $\sigma_1^2 = \tilde\beta_t$ and $\sigma_2^2 = \sigma_t^2$ into the
# $D$-dimensional form of {eq}`rev-kl-gauss`:
#
# $$
# D_{\mathrm{KL}}\big(q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0) \,\Vert\, p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)\big)
# = \frac{\lVert \tilde{\boldsymbol{\mu}}_t(\mathbf{x}_t, \mathbf{x}_0) - \boldsymbol{\mu}_\theta(\mathbf{x}_t, t) \rVert^2}{2\sigma_t^2} + C_t,
# \qquad
# C_t = \frac{D}{2}\left(\frac{\tilde\beta_t}{\sigma_t^2} - 1 - \log\frac{\tilde\beta_t}{\sigma_t^2}\right) \ge 0 .
# $$ (rev-kl-equal-var)
#
# $C_t$ does not depend on $\theta$, and it is zero for $\sigma_t^2 = \tilde\beta_t$. So training
# $\boldsymbol{\mu}_\theta$ to minimise the KL is the same as regressing it onto the posterior mean,
# with weight $1/(2\sigma_t^2)$. The check draws random model means and confirms that
# KL minus the weighted squared error is the same constant $C_t$ for all of them, for both choices.

# %%
D = 64
t = 300
i = t - 1
mu_post = torch.randn(200, D, dtype=torch.float64)  # stand-ins for μ̃_t
mu_model = mu_post + 0.3 * torch.randn(200, D, dtype=torch.float64)
for var_type in ("fixed_small", "fixed_large"):
    sig2 = (diff.posterior_variance if var_type == "fixed_small" else betas)[i]
    kl = normal_kl(
        mu_post, torch.log(diff.posterior_variance[i]), mu_model, torch.log(sig2)
    ).sum(1)
    r = diff.posterior_variance[i] / sig2
    C_t = D / 2 * (r - 1 - torch.log(r))
    check(
        f"{var_type}: KL = ‖μ̃ − μ_θ‖²/(2σ_t²) + C_t, eq. (rev-kl-equal-var), "
        f"C_t = {C_t:.2e}",
        kl,
        ((mu_post - mu_model) ** 2).sum(1) / (2 * sig2) + C_t,
        atol=1e-10,
    )

# %% [markdown]
# With the posterior and the Gaussian KL in closed form, the toy's bound can be computed without
# sampling trajectories. For the linear toy model, $\tilde\mu_t - \mu_\theta = c_1(t)\, x_0 + (c_2(t) - k_t)\, x_t$
# is linear in $x_t \sim \mathcal{N}(\sqrt{\bar\alpha_t}\, x_0, 1 - \bar\alpha_t)$, so its mean
# square is (mean)$^2$ + variance; the decoder term is a Gaussian log-density averaged the same way,
# and $L_T$ is {eq}`rev-kl-gauss` with the prior. The sum must agree with the Monte Carlo estimate
# of the original bound {eq}`rev-elbo` within its standard error.


# %%
def toy_vlb_closed_form():
    """L_T + Σ_{t≥2} L_{t-1} + L_0 of eq. (rev-vlb-split) for the toy, closed form."""
    abp = np.append(1.0, tab[:-1])
    c1_, c2_ = np.sqrt(abp) * tb / (1 - tab), np.sqrt(ta) * (1 - abp) / (1 - tab)
    bt_ = (1 - abp) / (1 - tab) * tb
    mean_xt, var_xt = np.sqrt(tab) * x0_toy, 1 - tab  # q(x_t | x0)
    a_, b_ = c2_ - k_toy, c1_ * x0_toy  # μ̃ − μ_θ = a x_t + b
    msq = (a_ * mean_xt + b_) ** 2 + a_**2 * var_xt  # E[(μ̃ − μ_θ)²]
    L_mid = np.sum(
        0.5 * np.log(tsig2[1:] / bt_[1:]) - 0.5 + (bt_[1:] + msq[1:]) / (2 * tsig2[1:])
    )
    L_T = kl_gauss(mean_xt[-1], var_xt[-1], 0.0, 1.0)
    e_sq = (x0_toy - k_toy[0] * mean_xt[0]) ** 2 + k_toy[0] ** 2 * var_xt[
        0
    ]  # E[(x0 − k_1 x_1)²]
    L_0 = 0.5 * np.log(2 * np.pi * tsig2[0]) + e_sq / (2 * tsig2[0])
    return L_T + L_mid + L_0, (L_T, L_mid, L_0)


vlb_toy, (LT_toy, Lmid_toy, L0_toy) = toy_vlb_closed_form()
print(
    f"toy: L_T = {LT_toy:.5f}, Σ L_(t-1) = {Lmid_toy:.4f}, L_0 = {L0_toy:.4f}; "
    f"total {vlb_toy:.4f} nats"
)
check(
    "toy: closed-form terms of eq. (rev-vlb-split) = the Monte Carlo bound (4 s.e.)",
    vlb_toy,
    vlb_mc,
    atol=4 * vlb_se,
)
_ = check_le("toy: exact -log p(x0) ≤ closed-form VLB", nll_toy, vlb_toy)

# %% [markdown]
# ### How large is the true reverse variance?
#
# The model step has a fixed variance, but the step it imitates, the true reverse transition
# $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$, has a variance that depends on the data. Take one
# coordinate $x_{t-1}$ of $\mathbf{x}_{t-1}$ (and $x_0$ of $\mathbf{x}_0$), write $c_1(t)$ and
# $c_2(t)$ for the coefficients of $\mathbf{x}_0$ and $\mathbf{x}_t$ in {eq}`rev-posterior-mean`,
# and bring $\mathbf{x}_0$ in by conditioning, one step per line:
#
# $$
# \begin{aligned}
# \operatorname{Var}(x_{t-1} \mid \mathbf{x}_t)
# &\overset{(a)}{=} \mathbb{E}\big[\operatorname{Var}(x_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0) \,\big|\, \mathbf{x}_t\big]
#    + \operatorname{Var}\big(\mathbb{E}[x_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0] \,\big|\, \mathbf{x}_t\big) \\
# &\overset{(b)}{=} \tilde\beta_t + \operatorname{Var}\big(c_1(t)\, x_0 + c_2(t)\, x_t \,\big|\, \mathbf{x}_t\big) \\
# &\overset{(c)}{=} \tilde\beta_t + c_1(t)^2 \operatorname{Var}(x_0 \mid \mathbf{x}_t) .
# \end{aligned}
# $$ (rev-true-var)
#
# (a) is the law of total variance; (b) inserts the forward posterior, whose variance
# $\tilde\beta_t$ {eq}`rev-posterior-var` does not depend on $\mathbf{x}_0$ and whose mean
# {eq}`rev-posterior-mean` is linear in it; (c) holds because $c_2(t)\, x_t$ is fixed once
# $\mathbf{x}_t$ is given. So the true reverse variance is never below $\tilde\beta_t$, and it
# equals $\tilde\beta_t$ when $\mathbf{x}_t$ leaves no doubt about $x_0$, as for a single data point.
#
# The upper end needs a condition on the data. Average {eq}`rev-true-var` over $\mathbf{x}_t$.
# $\mathbb{E}[\operatorname{Var}(x_0 \mid \mathbf{x}_t)]$ is the mean squared error of the best
# estimate of $x_0$ from $\mathbf{x}_t$, so it is at most the error of the best *linear* estimate
# from the one coordinate $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$. If
# $x_0$ has variance $s^2$, then $\operatorname{Cov}(x_0, x_t) = \sqrt{\bar\alpha_t}\, s^2$ and
# $\operatorname{Var}(x_t) = \bar\alpha_t s^2 + 1 - \bar\alpha_t$, and that error is
# $s^2 - \bar\alpha_t s^4/(\bar\alpha_t s^2 + 1 - \bar\alpha_t) = s^2(1-\bar\alpha_t)/(\bar\alpha_t s^2 + 1 - \bar\alpha_t)$.
# The factor in front is
# $c_1(t)^2 (1 - \bar\alpha_t) = \frac{\bar\alpha_{t-1}\beta_t^2}{1-\bar\alpha_t}
# = \beta_t\,\frac{\bar\alpha_{t-1} - \bar\alpha_t}{1-\bar\alpha_t}
# = \beta_t - \tilde\beta_t$
# (using $\bar\alpha_{t-1}\beta_t = \bar\alpha_{t-1} - \bar\alpha_t$, then {eq}`rev-posterior-var`).
# Together:
#
# $$
# \tilde\beta_t \;\le\; \mathbb{E}_{\mathbf{x}_t}\big[\operatorname{Var}(x_{t-1} \mid \mathbf{x}_t)\big]
# \;\le\; \tilde\beta_t + (\beta_t - \tilde\beta_t)\, \frac{s^2}{\bar\alpha_t s^2 + 1 - \bar\alpha_t} .
# $$ (rev-true-var-bounds)
#
# The fraction is at most 1 exactly when $s^2 \le 1$, because
# $\bar\alpha_t s^2 + 1 - \bar\alpha_t - s^2 = (1 - \bar\alpha_t)(1 - s^2)$. For Gaussian data with
# independent coordinates the best estimate *is* linear and uses only its own coordinate, so the
# right-hand side is attained: the reverse variance is then
# $\beta_t$ for $s^2 = 1$ (exercise 3) and **larger than $\beta_t$** at every $t \ge 2$ when
# $s^2 > 1$. So the statement "$\tilde\beta_t$ and $\beta_t$ are the two extremes of the true
# reverse variance" holds, on average over $\mathbf{x}_t$, for data whose every coordinate has
# variance at most 1, which is the condition of {cite:t}`ho2020ddpm`'s remark. Data scaled to
# $[-1, 1]$ always meet it ($\operatorname{Var}(x_0) \le \mathbb{E}[x_0^2] \le 1$); data on another
# scale need not. And it is a statement about the average: at a particular $\mathbf{x}_t$ between
# two distant data points, $\operatorname{Var}(x_0 \mid \mathbf{x}_t)$ is large and the true
# reverse variance exceeds $\beta_t$ even for data in $[-1, 1]$.
#
# The check computes the reverse variance of Gaussian data $\mathcal{N}(0, s^2)$ in two
# independent ways. The first is Gaussian conditioning on the pair $(x_{t-1}, x_t)$: with
# $V_t := \bar\alpha_t s^2 + 1 - \bar\alpha_t = \alpha_t V_{t-1} + \beta_t$ the variance of $x_t$, and
# $\sqrt{\alpha_t}\, V_{t-1}$ the covariance of the pair, it gives
# $V_{t-1} - \alpha_t V_{t-1}^2/V_t = \beta_t V_{t-1}/V_t$. The second is the right-hand side of
# {eq}`rev-true-var-bounds`; then it tests both bounds for $s^2 \le 1$ and their failure for
# $s^2 = 4$. For the pointwise caveat it takes the two data points $\pm 1$ (variance 1), for which
# $\mathbb{E}[x_0 \mid x_t] = \tanh\big(\sqrt{\bar\alpha_t}\, x_t/(1-\bar\alpha_t)\big)$ and
# $\operatorname{Var}(x_0 \mid x_t) = 1 - \tanh^2(\cdot)$.

# %%
bt_np = diff.posterior_variance.numpy()
c1_np = (
    np.sqrt(abp_np) * b_np / (1 - ab_np)
)  # coefficient of x0 in eq. (rev-posterior-mean)
check(
    "c_1(t)² (1 − ᾱ_t) = β_t − β̃_t",
    c1_np**2 * (1 - ab_np),
    b_np - bt_np,
    atol=1e-17,
    rtol=1e-12,
)
rev_var = {}
for s2 in (0.0, 0.25, 1.0, 4.0):
    V, V_prev = ab_np * s2 + 1 - ab_np, abp_np * s2 + 1 - abp_np
    rev_var[s2] = b_np * V_prev / V  # Gaussian conditioning on (x_{t-1}, x_t)
    check(
        f"s² = {s2}: β_t V_(t-1)/V_t equals the bound (rev-true-var-bounds), attained",
        rev_var[s2],
        bt_np + (b_np - bt_np) * s2 / (ab_np * s2 + 1 - ab_np),
        atol=1e-17,
        rtol=1e-12,
    )
check(
    "s² = 0 (a point mass): the reverse variance is β̃_t",
    rev_var[0.0],
    bt_np,
    rtol=1e-12,
)
check(
    "s² = 1: the reverse variance is β_t (exercise 3)", rev_var[1.0], b_np, rtol=1e-12
)
check_le("s² = 1/4: β̃_t ≤ reverse variance", bt_np[1:], rev_var[0.25][1:])
check_le("s² = 1/4: reverse variance ≤ β_t", rev_var[0.25][1:], b_np[1:])
excess = rev_var[4.0][1:] / b_np[1:] - 1
check_le("s² = 4: the reverse variance exceeds β_t at every t ≥ 2", 1e-7, excess)
print(f"s² = 4: the reverse variance is up to {excess.max():.2%} above β_t")

# Two data points ±1: Var(x0 | x_t) = 1 − tanh²(√ᾱ_t x_t / (1 − ᾱ_t)).
xs_2pt = np.linspace(-6, 6, 24_001)  # x_t grid for the average over q(x_t)
avg_ratio, at_zero_ratio = [], []
for i in (1, 9, 99, 299):  # t = 2, 10, 100, 300
    q_xt = 0.5 * (
        np.exp(log_normal(xs_2pt, np.sqrt(ab_np[i]), 1 - ab_np[i]))
        + np.exp(log_normal(xs_2pt, -np.sqrt(ab_np[i]), 1 - ab_np[i]))
    )
    var_x0 = 1 - np.tanh(np.sqrt(ab_np[i]) * xs_2pt / (1 - ab_np[i])) ** 2
    avg = bt_np[i] + c1_np[i] ** 2 * np.sum(q_xt * var_x0) * (xs_2pt[1] - xs_2pt[0])
    avg_ratio.append(avg / b_np[i])
    at_zero_ratio.append(
        (bt_np[i] + c1_np[i] ** 2) / b_np[i]
    )  # x_t = 0: Var(x0|x_t) = 1
check_le("±1 data: the average reverse variance is at most β_t", avg_ratio, 1.0)
check_le("±1 data: at x_t = 0 it exceeds β_t", 1.0 + 1e-3, at_zero_ratio)
check(
    "±1 data: at t = 2 the average is β̃_2 (0.1%)",
    avg_ratio[0] * b_np[1],
    bt_np[1],
    rtol=1e-3,
)
print(
    "±1 data, t = 2, 10, 100, 300: average reverse variance / β_t: "
    + ", ".join(f"{r:.3f}" for r in avg_ratio)
)
print(
    "    reverse variance / β_t at x_t = 0: "
    + ", ".join(f"{r:.4g}" for r in at_zero_ratio)
)
glue("ch5_gauss4_excess", excess.max())
glue("ch5_two_point_avg_t2", avg_ratio[0])
glue("ch5_two_point_zero_t2", at_zero_ratio[0])

# %% [markdown]
# For Gaussian data with $s^2 = 4$ the excess over $\beta_t$ is small here (at most
# {glue:text}`ch5_gauss4_excess:.2%` with this schedule), but it is there at every step. For the
# two points $\pm 1$ the average reverse variance at $t = 2$ is only
# {glue:text}`ch5_two_point_avg_t2:.3f` $\beta_2$, essentially $\tilde\beta_2$: at that noise level
# $\mathbf{x}_t$ almost always tells which point it came from. At $x_t = 0$, halfway between them,
# it is {glue:text}`ch5_two_point_zero_t2:.0f` times $\beta_2$; such $x_t$ are so rare at small
# $t$ that the average stays below $\beta_t$.

# %% [markdown]
# ## Predicting the noise: the $\boldsymbol{\epsilon}$-parameterisation
#
# The model could output $\boldsymbol{\mu}_\theta$ directly. {cite:t}`ho2020ddpm` instead let the
# network predict the **noise** that was added, and build the mean from it. The idea: the
# posterior mean {eq}`rev-posterior-mean` needs $\mathbf{x}_0$, which the model does not have at
# sampling time, but $\mathbf{x}_0$ and the noise $\boldsymbol{\epsilon}$ are tied by the forward
# reparameterisation $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol{\epsilon}$
# (chapter 4), which solved for $\mathbf{x}_0$ reads
#
# $$
# \mathbf{x}_0 = \frac{1}{\sqrt{\bar\alpha_t}}\big(\mathbf{x}_t - \sqrt{1 - \bar\alpha_t}\, \boldsymbol{\epsilon}\big).
# $$ (rev-x0-from-eps)
#
# Substitute this into {eq}`rev-posterior-mean`, one step per line:
#
# $$
# \begin{aligned}
# \tilde{\boldsymbol{\mu}}_t
# &\overset{(a)}{=} \frac{\sqrt{\bar\alpha_{t-1}}\, \beta_t}{1 - \bar\alpha_t} \cdot \frac{\mathbf{x}_t - \sqrt{1 - \bar\alpha_t}\, \boldsymbol{\epsilon}}{\sqrt{\bar\alpha_t}}
#    + \frac{\sqrt{\alpha_t}\, (1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\, \mathbf{x}_t \\
# &\overset{(b)}{=} \frac{\beta_t}{\sqrt{\alpha_t}\,(1 - \bar\alpha_t)} \big(\mathbf{x}_t - \sqrt{1 - \bar\alpha_t}\, \boldsymbol{\epsilon}\big)
#    + \frac{\sqrt{\alpha_t}\, (1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\, \mathbf{x}_t \\
# &\overset{(c)}{=} \frac{\beta_t + \alpha_t (1 - \bar\alpha_{t-1})}{\sqrt{\alpha_t}\,(1 - \bar\alpha_t)}\, \mathbf{x}_t
#    - \frac{\beta_t}{\sqrt{\alpha_t}\, \sqrt{1 - \bar\alpha_t}}\, \boldsymbol{\epsilon} \\
# &\overset{(d)}{=} \frac{1}{\sqrt{\alpha_t}} \left(\mathbf{x}_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\, \boldsymbol{\epsilon}\right).
# \end{aligned}
# $$ (rev-mu-tilde-eps)
#
# (a) substitutes {eq}`rev-x0-from-eps`; (b) uses $\sqrt{\bar\alpha_{t-1}}/\sqrt{\bar\alpha_t} = 1/\sqrt{\alpha_t}$;
# (c) collects the terms in $\mathbf{x}_t$ over the common denominator
# $\sqrt{\alpha_t}(1 - \bar\alpha_t)$ (the second fraction is multiplied by
# $\sqrt{\alpha_t}/\sqrt{\alpha_t}$) and cancels $\sqrt{1-\bar\alpha_t}$ in the noise term;
# (d) uses $\beta_t + \alpha_t - \alpha_t\bar\alpha_{t-1} = 1 - \bar\alpha_t$, so the coefficient
# of $\mathbf{x}_t$ is $1/\sqrt{\alpha_t}$. Note where the factor $1/\sqrt{\alpha_t}$ sits: it
# multiplies the **whole bracket**.
#
# The posterior mean is therefore "$\mathbf{x}_t$ minus a scaled copy of the noise that produced
# it, then rescaled". The model copies this form, with the unknown $\boldsymbol{\epsilon}$
# replaced by a network's prediction $\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)$:
#
# $$
# \boldsymbol{\mu}_\theta(\mathbf{x}_t, t) = \frac{1}{\sqrt{\alpha_t}} \left(\mathbf{x}_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\, \boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)\right).
# $$ (rev-mu-eps)
#
# Equivalently, $\boldsymbol{\mu}_\theta = \tilde{\boldsymbol{\mu}}_t(\mathbf{x}_t, \hat{\mathbf{x}}_0)$ with the
# predicted clean image $\hat{\mathbf{x}}_0 = (\mathbf{x}_t - \sqrt{1-\bar\alpha_t}\,\boldsymbol{\epsilon}_\theta)/\sqrt{\bar\alpha_t}$;
# this is how the library computes it (`predict_x0_from_eps`, then `q_posterior_mean_variance`),
# because it allows clipping $\hat{\mathbf{x}}_0$ to $[-1, 1]$. Without clipping the two are equal,
# which is what we check, first for the posterior itself, then for a model.


# %%
def mu_from_eps(x_t, t_index, eps):
    """Eq. (rev-mu-eps) / (rev-mu-tilde-eps) by hand; t_index: library index (B,)."""
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    a, ab = alphas[t_index].view(shape), abar[t_index].view(shape)
    return (x_t - (1 - a) / torch.sqrt(1 - ab) * eps) / torch.sqrt(a)


check(
    "μ̃ written through ε, eq. (rev-mu-tilde-eps), equals the posterior mean",
    mu_from_eps(x_t_rep, t_all, noise),
    mean_lib,
    atol=1e-11,
)


def toy_net(x_t, t):
    """An arbitrary ε-predictor (not trained): any function of (x_t, t) will do here."""
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    return torch.tanh(2 * x_t) * (t.view(shape) + 1) / T + 0.1 * torch.roll(
        x_t, 1, dims=-1
    )


out = diff.p_mean_variance(toy_net, x_t_rep, t_all, clip_denoised=False)
check(
    "p_mean_variance mean equals eq. (rev-mu-eps)",
    out["mean"],
    mu_from_eps(x_t_rep, t_all, toy_net(x_t_rep, t_all)),
    atol=1e-11,
)
sigma2 = {
    "fixed_small": torch.cat(
        [diff.posterior_variance[1:2], diff.posterior_variance[1:]]
    ),
    "fixed_large": torch.cat([diff.posterior_variance[1:2], betas[1:]]),
}  # σ_t², eq. (rev-sigma-choices)
diff_large = GaussianDiffusion(betas, model_var_type="fixed_large")
for var_type, d_ in (("fixed_small", diff), ("fixed_large", diff_large)):
    v_ = d_.p_mean_variance(toy_net, x_t_rep, t_all, clip_denoised=False)[
        "variance"
    ].flatten()
    check(
        f"p_mean_variance variance is σ_t² of eq. (rev-sigma-choices), {var_type} "
        "(β̃_2 at t = 1)",
        v_,
        sigma2[var_type],
        atol=1e-15,
    )

# %% [markdown]
# ### A first closed-form predictor: Gaussian data
#
# What is the *best* possible $\boldsymbol{\epsilon}_\theta$? For a squared error the best
# predictor of $\boldsymbol{\epsilon}$ from $\mathbf{x}_t$ is the conditional mean
# $\mathbb{E}[\boldsymbol{\epsilon} \mid \mathbf{x}_t]$. When the data are Gaussian,
# $\mathbf{x}_0 \sim \mathcal{N}(\mathbf{m}, \boldsymbol{\Sigma})$, the pair $(\boldsymbol{\epsilon}, \mathbf{x}_t)$
# is jointly Gaussian with $\operatorname{Cov}(\boldsymbol{\epsilon}, \mathbf{x}_t) = \sqrt{1-\bar\alpha_t}\,\mathbf{I}$ and
# $\operatorname{Cov}(\mathbf{x}_t) = \bar\alpha_t \boldsymbol{\Sigma} + (1-\bar\alpha_t)\mathbf{I}$, and
# Gaussian conditioning gives
#
# $$
# \boldsymbol{\epsilon}^*(\mathbf{x}_t, t) = \mathbb{E}[\boldsymbol{\epsilon} \mid \mathbf{x}_t]
# = \sqrt{1 - \bar\alpha_t}\, \big(\bar\alpha_t \boldsymbol{\Sigma} + (1 - \bar\alpha_t)\mathbf{I}\big)^{-1} \big(\mathbf{x}_t - \sqrt{\bar\alpha_t}\, \mathbf{m}\big).
# $$ (rev-eps-gauss)
#
# In one dimension with $\mathbf{m} = 0$, $\boldsymbol{\Sigma} = s^2$, inserting this into
# {eq}`rev-mu-eps` gives $\mu^*(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\big(1 - \frac{\beta_t}{\bar\alpha_t s^2 + 1 - \bar\alpha_t}\big)x_t$:
# the linear mean $k_t x_t$ of the toy model. The library computes the same mean from the
# $\boldsymbol{\epsilon}$-predictor:


# %%
def eps_gauss_1d(x_t, t):
    """Eq. (rev-eps-gauss) in 1-D with m = 0, Σ = s2_toy, for the toy's schedule."""
    ab = toy.alphas_cumprod[t].view(-1, 1)
    return torch.sqrt(1 - ab) * x_t / (ab * s2_toy + 1 - ab)


xs_toy = (
    torch.linspace(-2, 2, 5, dtype=torch.float64).repeat(Tt).view(-1, 1)
)  # 5 points per step
ts_toy = torch.arange(Tt).repeat_interleave(5)
mean_toy = toy.p_mean_variance(eps_gauss_1d, xs_toy, ts_toy, clip_denoised=False)[
    "mean"
]
check(
    "the toy's linear mean k_t x equals p_mean_variance of the Gaussian ε*",
    mean_toy,
    torch.from_numpy(k_toy)[ts_toy].view(-1, 1) * xs_toy,
    atol=1e-13,
)
# the toy's "fixed_large" σ_t² by hand: β̃_2 = β_2 (1 − ᾱ_1)/(1 − ᾱ_2) at t = 1,
# then β_t
sig2_toy_hand = np.append(tb[1] * (1 - tab[0]) / (1 - tab[1]), tb[1:])
check(
    "the toy's σ_t² (model_log_variance) is β̃_2, β_2, ..., β_T (fixed_large)",
    tsig2,
    sig2_toy_hand,
    atol=1e-15,
)
_ = check(
    "p_mean_variance's variance is that σ_t² at every step of the toy",
    toy.p_mean_variance(eps_gauss_1d, xs_toy, ts_toy)["variance"].flatten(),
    torch.from_numpy(sig2_toy_hand)[ts_toy],
    atol=1e-15,
)

# %% [markdown]
# ### The weights $w_t$
#
# Put the two $\boldsymbol{\epsilon}$-forms into the squared error of {eq}`rev-kl-equal-var`. The
# $\mathbf{x}_t$ terms cancel:
#
# $$
# \tilde{\boldsymbol{\mu}}_t - \boldsymbol{\mu}_\theta
# = \frac{1}{\sqrt{\alpha_t}}\left(\mathbf{x}_t - \frac{\beta_t\, \boldsymbol{\epsilon}}{\sqrt{1 - \bar\alpha_t}}\right)
#   - \frac{1}{\sqrt{\alpha_t}}\left(\mathbf{x}_t - \frac{\beta_t\, \boldsymbol{\epsilon}_\theta}{\sqrt{1 - \bar\alpha_t}}\right)
# = \frac{\beta_t}{\sqrt{\alpha_t}\,\sqrt{1 - \bar\alpha_t}}\, \big(\boldsymbol{\epsilon}_\theta - \boldsymbol{\epsilon}\big),
# $$
#
# and squaring, dividing by $2\sigma_t^2$ and averaging over $\mathbf{x}_0$ and
# $\boldsymbol{\epsilon}$ (which determine $\mathbf{x}_t$) gives the denoising term of the bound as
# a weighted noise-prediction error:
#
# $$
# L_{t-1} = w_t\, \mathbb{E}_{\mathbf{x}_0, \boldsymbol{\epsilon}}\Big[\big\lVert \boldsymbol{\epsilon} - \boldsymbol{\epsilon}_\theta\big(\sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol{\epsilon},\ t\big)\big\rVert^2\Big] + C_t,
# \qquad
# w_t = \frac{\beta_t^2}{2\sigma_t^2\, \alpha_t\, (1 - \bar\alpha_t)} .
# $$ (rev-lambda)
#
# (We write the weight $w_t$: $\lambda_t$ is the log-SNR of chapter 4 throughout the book.)
#
# The decoder term has the same form if we use a *continuous* Gaussian decoder
# $p_\theta(\mathbf{x}_0 \mid \mathbf{x}_1) = \mathcal{N}(\boldsymbol{\mu}_\theta(\mathbf{x}_1, 1), \sigma_1^2\mathbf{I})$:
# then $\mathbf{x}_0 - \boldsymbol{\mu}_\theta(\mathbf{x}_1, 1) = \frac{\sqrt{\beta_1}}{\sqrt{\alpha_1}}(\boldsymbol{\epsilon}_\theta - \boldsymbol{\epsilon})$
# (use {eq}`rev-x0-from-eps` with $1 - \bar\alpha_1 = \beta_1$), so
#
# $$
# L_0 = \frac{D}{2}\log(2\pi\sigma_1^2) + w_1\, \mathbb{E}\big\lVert \boldsymbol{\epsilon} - \boldsymbol{\epsilon}_\theta(\mathbf{x}_1, 1)\big\rVert^2 .
# $$ (rev-l0-continuous)
#
# For $\sigma_t^2 = \tilde\beta_t$ the weight has a telling form. Insert {eq}`rev-posterior-var`:
# $w_t = \frac{\beta_t}{2\alpha_t(1-\bar\alpha_{t-1})}$. With $\mathrm{SNR}(t) = \bar\alpha_t/(1-\bar\alpha_t)$,
# $\frac{\mathrm{SNR}(t-1)}{\mathrm{SNR}(t)} - 1 = \frac{1 - \bar\alpha_t}{\alpha_t(1-\bar\alpha_{t-1})} - 1
# = \frac{1 - \bar\alpha_t - \alpha_t + \bar\alpha_t}{\alpha_t(1-\bar\alpha_{t-1})} = \frac{\beta_t}{\alpha_t(1-\bar\alpha_{t-1})}$, so
#
# $$
# w_t\big|_{\sigma_t^2 = \tilde\beta_t} = \frac12\left(\frac{\mathrm{SNR}(t-1)}{\mathrm{SNR}(t)} - 1\right)
# \approx \frac12\big(\lambda_{t-1} - \lambda_t\big), \qquad t \ge 2 :
# $$ (rev-lambda-snr)
#
# with $\lambda_t = \log\mathrm{SNR}(t)$, the bound weighs each step by how much log-SNR it
# removes (the approximation is $x - 1 \approx \log x$ for $x$ near 1), the discrete form of the
# continuous-time result of {cite:t}`kingma2021vdm`. We check {eq}`rev-lambda` against a direct
# computation of the KL, for every $t \ge 2$ at once and for both variance choices, then against
# the library's `vlb_weights`, then {eq}`rev-lambda-snr`.

# %%
D_img = x0_rep[0].numel()
eps_net = toy_net(x_t_rep, t_all)
sq_err = ((noise - eps_net) ** 2).flatten(1).sum(1)  # ‖ε − ε_θ‖², one per step
w_vlb = {}
for var_type, d_ in (("fixed_small", diff), ("fixed_large", diff_large)):
    out = d_.p_mean_variance(toy_net, x_t_rep, t_all, clip_denoised=False)
    kl_direct = (
        normal_kl(mean_lib, logvar_lib, out["mean"], out["log_variance"])
        .flatten(1)
        .sum(1)
    )
    w_vlb[var_type] = betas**2 / (
        2 * sigma2[var_type] * alphas * (1 - abar)
    )  # eq. (rev-lambda)
    r = diff.posterior_variance / sigma2[var_type]
    C_t = D_img / 2 * (r - 1 - torch.log(r))
    check(
        f"{var_type}: KL = w_t ‖ε − ε_θ‖² + C_t for every t ≥ 2, eq. (rev-lambda)",
        kl_direct[1:],
        w_vlb[var_type][1:] * sq_err[1:] + C_t[1:],
        rtol=1e-9,
        atol=1e-12,
    )
    check(
        f"{var_type}: w_t equals diff.vlb_weights",
        d_.vlb_weights,
        w_vlb[var_type],
        atol=0.0,
        rtol=1e-12,
    )
s_ = snr(abar)
_ = check(
    "fixed_small: w_t = ½(SNR(t−1)/SNR(t) − 1) for t ≥ 2, eq. (rev-lambda-snr)",
    w_vlb["fixed_small"][1:],
    0.5 * (s_[:-1] / s_[1:] - 1),
    atol=0.0,
    rtol=1e-10,
)

# %% [markdown]
# ### Sampling: one reverse step
#
# Drawing from {eq}`rev-reverse-step` with the mean {eq}`rev-mu-eps` gives the ancestral sampler
# of {cite:t}`ho2020ddpm` (their Algorithm 2): start from $\mathbf{x}_T \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$ and for $t = T, \dots, 1$
#
# $$
# \mathbf{x}_{t-1} = \frac{1}{\sqrt{\alpha_t}}\left(\mathbf{x}_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\, \boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)\right) + \sigma_t \mathbf{z},
# \qquad \mathbf{z} \sim \mathcal{N}(\mathbf{0}, \mathbf{I}) \text{ for } t > 1,\ \mathbf{z} = \mathbf{0} \text{ for } t = 1 .
# $$ (rev-ancestral-step)
#
# Chapter 6 runs this loop with a trained network; here we only check one step of the library's
# `p_sample` against it.

# %%
z = torch.randn(x_t_rep.shape, dtype=torch.float64)
step = diff.p_sample(toy_net, x_t_rep, t_all, noise=z, clip_denoised=False)["sample"]
no_noise_at_t1 = (t_all > 0).double().view(-1, 1, 1, 1)
by_hand = (
    mu_from_eps(x_t_rep, t_all, toy_net(x_t_rep, t_all))
    + no_noise_at_t1 * torch.sqrt(sigma2["fixed_small"]).view(-1, 1, 1, 1) * z
)
check("p_sample equals eq. (rev-ancestral-step)", step, by_hand, atol=1e-11)
wrong = (
    x_t_rep / torch.sqrt(alphas).view(-1, 1, 1, 1)
    - ((1 - alphas) / torch.sqrt(1 - abar)).view(-1, 1, 1, 1) * eps_net
    + no_noise_at_t1 * torch.sqrt(sigma2["fixed_small"]).view(-1, 1, 1, 1) * z
)
print(
    "with 1/√α_t applied to x_t only, one step is off by up to "
    f"{(wrong - step).abs().max():.1e}"
)
print("(see the box of common mistakes below)")

# %% [markdown]
# ## Dropping the weights: $L_{\text{simple}}$
#
# Put {eq}`rev-lambda` and {eq}`rev-l0-continuous` back into {eq}`rev-vlb-split`. Up to terms that
# do not depend on $\theta$, the bound is a **weighted** sum of noise-prediction errors,
# $\sum_{t=1}^{T} w_t\, \mathbb{E}\lVert\boldsymbol{\epsilon} - \boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)\rVert^2$.
# {cite:t}`ho2020ddpm` found that samples are better when the weights are simply dropped. With
# $t$ drawn uniformly, the loss they train is
#
# $$
# L_{\text{simple}}(\theta) = \mathbb{E}_{t \sim \mathcal{U}\{1, \dots, T\},\ \mathbf{x}_0 \sim q(\mathbf{x}_0),\ \boldsymbol{\epsilon} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})}
# \Big[\big\lVert \boldsymbol{\epsilon} - \boldsymbol{\epsilon}_\theta\big(\sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1 - \bar\alpha_t}\,\boldsymbol{\epsilon},\ t\big)\big\rVert^2\Big].
# $$ (rev-l-simple)
#
# **What exactly is dropped.**
#
# - The per-step weights $w_t$, and with them the **relative weighting across $t$**. The
#   figure below shows how much $w_t$ varies with $t$.
# - The constants: $L_T$ (no parameters, fixed by the forward process), the $C_t$ of
#   {eq}`rev-kl-equal-var` (zero for $\sigma_t^2 = \tilde\beta_t$), and the normaliser
#   $\frac{D}{2}\log(2\pi\sigma_1^2)$ of the decoder. None of these changes a gradient.
# - The discretisation of $L_0$. The bound's decoder is the discretised Gaussian of the next
#   section; $L_{\text{simple}}$ replaces it by its $t = 1$ noise-prediction error, that is, by
#   the Gaussian density times the bin width, ignoring $\sigma_1^2$ and the edge bins
#   ({cite:t}`ho2020ddpm`, Sec. 3.4). $L_0$ is *folded into* the $t = 1$ term, not ignored.
#
# Nothing else changes: the target is still the noise $\boldsymbol{\epsilon}$ that made
# $\mathbf{x}_t$, and the input is still $\mathbf{x}_t$ built with $\bar\alpha_t$.
# (The library's `training_losses` averages over the $D$ dimensions instead of summing, which
# only rescales the loss.)

# %%
x0_b = x0_img.repeat(4, 1, 1, 1)  # 32 digits
t_b = torch.randint(0, T, (32,), generator=torch.Generator().manual_seed(1))
eps_b = torch.randn(
    x0_b.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
)
x_t_b = (
    torch.sqrt(abar[t_b]).view(-1, 1, 1, 1) * x0_b
    + torch.sqrt(1 - abar[t_b]).view(-1, 1, 1, 1) * eps_b
)
l_simple_hand = (
    ((eps_b - toy_net(x_t_b, t_b)) ** 2).flatten(1).mean(1)
)  # eq. (rev-l-simple), per example
_ = check(
    "training_losses equals eq. (rev-l-simple) (mean over pixels)",
    diff.training_losses(toy_net, x0_b, t_b, eps_b)["loss"],
    l_simple_hand,
    atol=1e-14,
)

# %%
t_axis = np.arange(2, T + 1)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for var_type, style in (("fixed_small", "-"), ("fixed_large", "--")):
    w = w_vlb[var_type][1:].numpy()
    name = r"\tilde\beta_t" if var_type == "fixed_small" else r"\beta_t"
    axes[0].plot(t_axis, w, style, label=rf"$\sigma_t^2 = {name}$ ({var_type})")
    axes[1].plot(
        t_axis / T,
        np.cumsum(w) / w.sum(),
        style,
        label=rf"VLB weights $w_t$, {var_type}",
    )
axes[1].plot(
    t_axis / T,
    (t_axis - 1) / (T - 1),
    ":",
    color="k",
    label=r"$L_{\mathrm{simple}}$ (uniform)",
)
axes[0].set(
    yscale="log",
    xscale="log",
    xlabel="step t",
    ylabel=r"$w_t$ (nats per unit squared error)",
    title="VLB weights, linear schedule, T = 1000",
)
axes[1].set(
    xlabel="t / T",
    ylabel="cumulative share of the total weight",
    title="Where the VLB puts its weight",
)
for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
share = {k: float(v[1:101].sum() / v[1:].sum()) for k, v in w_vlb.items()}
print("share of the weight on the first 10% of the steps t = 2..T:")
print(
    f"  VLB {share['fixed_small']:.0%} (fixed_small), "
    f"{share['fixed_large']:.0%} (fixed_large); L_simple 10%"
)
w_small = w_vlb["fixed_small"].numpy()
print(
    f"fixed_small: w_2 = {w_small[1]:.3f}, w_T = {w_small[-1]:.4f}, "
    f"max/min over t ≥ 2 = {w_small[1:].max() / w_small[1:].min():.0f}"
)
glue("ch5_share_small", share["fixed_small"])
glue("ch5_w2", w_small[1])
glue("ch5_wT", w_small[-1])
glue("ch5_w2_over_wT", w_small[1] / w_small[-1])
glue("ch5_w_range", w_small[1:].max() / w_small[1:].min())

# %% [markdown]
# *Figure: left, the weights $w_t$ of {eq}`rev-lambda` against $t$ (log-log) for the two
# variance choices; right, the cumulative share of the total weight, compared with the uniform
# weighting of $L_{\text{simple}}$ (dotted).* The weights vary by a factor of
# {glue:text}`ch5_w_range:.0f` over $t = 2, \dots, T$ (for $\sigma_t^2 = \tilde\beta_t$), and the VLB
# puts {glue:text}`ch5_share_small:.0%` of its weight on the first tenth of the steps, the
# low-noise steps where $\mathbf{x}_t$ is almost the clean image, against 10% for
# $L_{\text{simple}}$. $w_2 \approx$ {glue:text}`ch5_w2:.2f` while
# $w_{1000} \approx$ {glue:text}`ch5_wT:.3f`: the first steps weigh some
# {glue:text}`ch5_w2_over_wT:.0f` times more than the last ones.
#
# **Why $L_{\text{simple}}$ still trains well.** It is not a different objective but a
# *reweighted* bound: every term has its minimum at the same place, the conditional mean
# $\boldsymbol{\epsilon}^* = \mathbb{E}[\boldsymbol{\epsilon} \mid \mathbf{x}_t]$, so with a flexible
# enough network both losses have the same optimum. They differ in how a finite network spends
# its capacity. The low-noise steps that dominate the VLB are the *easy* ones: predicting a
# tiny amount of noise on an almost clean image is a local operation whose error matters little
# for how samples look. Dropping $w_t$ moves weight to larger $t$, where the network must
# decide the global structure of the image, and this is what improves sample quality
# {cite}`ho2020ddpm`.
#
# There is a second way to read {eq}`rev-l-simple`. The score of the forward marginal is
# $\nabla_{\mathbf{x}_t}\log q(\mathbf{x}_t \mid \mathbf{x}_0) = -(\mathbf{x}_t - \sqrt{\bar\alpha_t}\,\mathbf{x}_0)/(1-\bar\alpha_t) = -\boldsymbol{\epsilon}/\sqrt{1-\bar\alpha_t}$.
# Define a score model by $\mathbf{s}_\theta(\mathbf{x}_t, t) := -\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)/\sqrt{1-\bar\alpha_t}$; then
#
# $$
# \big\lVert \boldsymbol{\epsilon} - \boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t) \big\rVert^2
# = (1 - \bar\alpha_t)\, \big\lVert \mathbf{s}_\theta(\mathbf{x}_t, t) - \nabla_{\mathbf{x}_t} \log q(\mathbf{x}_t \mid \mathbf{x}_0) \big\rVert^2 ,
# $$ (rev-dsm)
#
# so $L_{\text{simple}}$ is **denoising score matching** with weight $1 - \bar\alpha_t$ (the noise
# variance), the weighting that {cite:t}`song2021sde` use, and the VLB is the same with weight
# $w_t(1-\bar\alpha_t)$. {cite:t}`kingma2021vdm` make this precise in continuous time: the
# bound, $L_{\text{simple}}$ and the other common losses are all integrals over log-SNR of the
# same denoising error, with different weighting functions; by {eq}`rev-lambda-snr` the bound's
# weight is uniform in log-SNR, while uniform $t$ spends fewer samples per unit of log-SNR where
# the schedule moves fast, at small $t$. {doc}`08_score_and_sde` returns to
# scores.
#
# The price of $L_{\text{simple}}$ is likelihood: a model trained with it has a worse bound in
# bits/dim. {cite:t}`nichol2021improved` improve the likelihood while keeping the samples good by
# learning the variances $\sigma_t^2$ (interpolating between $\tilde\beta_t$ and $\beta_t$ in the
# log domain) with the **hybrid loss**
# $L_{\text{hybrid}} = L_{\text{simple}} + 0.001\, L_{\text{VLB}}$, in which the VLB term trains only
# the variances (the gradient to the mean is stopped) and $t$ is drawn uniformly. Their best
# likelihoods come from training on $L_{\text{VLB}}$ **alone**, at some cost in sample quality.
# That objective's gradient is very noisy, because the terms $L_t$ differ in size by orders of
# magnitude, and for it (and only for it) they **importance-sample** $t$, with probabilities
# proportional to the root mean square of each $L_t$ over its recent values. They report that
# importance sampling does not help the less noisy hybrid loss.

# %%
score_model = -toy_net(x_t_b, t_b) / torch.sqrt(1 - abar[t_b]).view(-1, 1, 1, 1)
score_q = -(x_t_b - torch.sqrt(abar[t_b]).view(-1, 1, 1, 1) * x0_b) / (
    1 - abar[t_b]
).view(-1, 1, 1, 1)
dsm = (1 - abar[t_b]) * ((score_model - score_q) ** 2).flatten(1).mean(1)
_ = check(
    "ε-prediction error = (1 − ᾱ_t) × denoising-score-matching error, eq. (rev-dsm)",
    l_simple_hand,
    dsm,
    atol=1e-12,
)

# %% [markdown]
# ```{admonition} Common mistakes
# :class: warning
#
# These errors appear in widely read blog posts, lecture notes and code. The book's
# {doc}`../book/errata` lists more, each with its correct form and a check.
#
# 1. **A circular training target.** One finds the "target"
#    $\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t) \approx \mathbf{x}_t - \frac{1}{\sqrt{\alpha_t}}\Big(\frac{\mathbf{x}_t - \sqrt{1-\alpha_t}\,\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)}{\sqrt{\alpha_t}}\Big)$.
#    It has the network's own output on both sides, so it is not a regression target at all, and
#    it uses $\alpha_t$ where $\bar\alpha_t$ belongs. The correct target is the noise that was
#    actually drawn, $\boldsymbol{\epsilon}$, with the input built from $\bar\alpha_t$: the loss is
#    $\lVert \boldsymbol{\epsilon} - \boldsymbol{\epsilon}_\theta(\sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol{\epsilon}, t)\rVert^2$,
#    eq. {eq}`rev-l-simple`.
# 2. **"Assume $p(\mathbf{x}_T)$ is a standard normal and ignore the $p(\mathbf{x}_0)$ term."**
#    $p(\mathbf{x}_T) = \mathcal{N}(\mathbf{0}, \mathbf{I})$ is part of the model's definition, not an
#    assumption made to drop something. $L_T$ is left out of the *training* loss because it has no
#    trainable parameters, not because it is zero (chapter 4 computes it). The decoder term $L_0$
#    is not ignored: it is kept in the bound (the discretised decoder below) and, in
#    $L_{\text{simple}}$, folded into the $t = 1$ term.
# 3. **$1/\sqrt{\alpha_t}$ inside the bracket.** The sampling step is
#    $\mathbf{x}_{t-1} = \frac{1}{\sqrt{\alpha_t}}\big(\mathbf{x}_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\boldsymbol{\epsilon}_\theta\big) + \sigma_t\mathbf{z}$,
#    eq. {eq}`rev-ancestral-step`: the factor multiplies the whole bracket, noise prediction
#    included, as derivation {eq}`rev-mu-tilde-eps` shows. Writing
#    $\frac{1}{\sqrt{\alpha_t}}\mathbf{x}_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\boldsymbol{\epsilon}_\theta$
#    changes every step (the check above measured the difference) and matters most when there are
#    few, large steps.
# 4. **$\alpha_t$ for $\bar\alpha_t$ in the marginal.** $q(\mathbf{x}_t \mid \mathbf{x}_0)$ has
#    mean $\sqrt{\bar\alpha_t}\,\mathbf{x}_0$ and variance $1 - \bar\alpha_t$; the one-step
#    quantities $\alpha_t, \beta_t$ appear only in $q(\mathbf{x}_t \mid \mathbf{x}_{t-1})$ and in the
#    coefficients of {eq}`rev-mu-eps`.
# 5. **"$L_{\text{simple}}$ is the negative log-likelihood."** It is a reweighted bound; its value
#    is not a likelihood, and bits/dim must be computed from the full bound, as below.
# ```

# %% [markdown]
# ## Bits per dimension: the decoder and the prior
#
# Likelihoods of images are reported in **bits per dimension**: the bound in nats, converted to
# bits and divided by the number of pixels,
#
# $$
# \text{bpd}(\mathbf{x}_0) = \frac{L(\mathbf{x}_0)}{D \ln 2}, \qquad L(\mathbf{x}_0) = L_T + \sum_{t=2}^{T} L_{t-1} + L_0 .
# $$ (rev-bpd)
#
# A number in bits/dim is an average code length: an 8-bit image stored raw costs 8 bits per
# dimension, and a likelihood model compresses it to the bpd value. (Data that use fewer levels
# have a lower reference: the digits below use 17 grey levels, and a code that knows only which
# 17 values occur, each equally likely, costs $\log_2 17 \approx 4.09$ bits per dimension.)
# For a bpd value to mean anything
# the model must assign **probabilities** to the 256 discrete pixel values, not densities: a
# density can exceed 1, and its negative log can be made arbitrarily small by shrinking the
# variance. So the decoder of {cite:t}`ho2020ddpm` (their eq. (13)) integrates the Gaussian over
# the bin of each pixel value. Pixel values $x \in \{-1, -1 + \frac{2}{255}, \dots, 1\}$ own the
# interval of width $\frac{2}{255}$ around them, and the two edge values own everything beyond:
#
# $$
# p_\theta(\mathbf{x}_0 \mid \mathbf{x}_1) = \prod_{d=1}^{D} \int_{\delta_-(x_0^d)}^{\delta_+(x_0^d)}
# \mathcal{N}\big(x;\ \mu_\theta^d(\mathbf{x}_1, 1),\ \sigma_1^2\big)\, dx,
# \qquad
# \delta_+(x) = \begin{cases} +\infty & x = 1 \\ x + \frac{1}{255} & x < 1 \end{cases},
# \quad
# \delta_-(x) = \begin{cases} -\infty & x = -1 \\ x - \frac{1}{255} & x > -1 \end{cases}.
# $$ (rev-decoder)
#
# With the standard normal CDF $\Phi$, each factor is $\Phi\big((\delta_+ - \mu)/\sigma_1\big) - \Phi\big((\delta_- - \mu)/\sigma_1\big)$.
# Because the 256 intervals tile the real line, the probabilities of the 256 values sum to one
# for any $\mu$ and $\sigma_1$: the decoder is a proper distribution on 8-bit images. We write it
# by hand, compare it with the library's `discretized_gaussian_log_likelihood` (whose argument
# `log_scales` is $\log\sigma$, half the log-variance), and sum over the bins.

# %%
levels = -1 + 2 * torch.arange(256, dtype=torch.float64) / 255  # the 256 pixel values


def decoder_log_prob(x, mean, sigma):
    """Eq. (rev-decoder) for one coordinate, by hand, with Φ from the error function."""
    Phi = lambda u: 0.5 * (1 + torch.erf(u / math.sqrt(2)))  # noqa: E731
    upper = torch.where(
        x > 1 - 1e-6, torch.tensor(float("inf"), dtype=x.dtype), x + 1 / 255
    )
    lower = torch.where(
        x < -1 + 1e-6, torch.tensor(float("-inf"), dtype=x.dtype), x - 1 / 255
    )
    return torch.log(Phi((upper - mean) / sigma) - Phi((lower - mean) / sigma))


cases = [(0.0, 0.05), (0.5, 0.01), (0.98, 0.02), (-1.0, 0.003), (0.3, 1.0)]  # (μ, σ)
totals, max_err = [], 0.0
for mu_, sd_ in cases:
    lib = discretized_gaussian_log_likelihood(
        levels,
        means=torch.tensor(mu_, dtype=torch.float64),
        log_scales=torch.tensor(math.log(sd_), dtype=torch.float64),
    )
    p_hand = torch.exp(decoder_log_prob(levels, mu_, sd_))
    ok = p_hand > 1e-12  # the library floors probabilities at 1e-12 to keep log finite
    max_err = max(max_err, float((torch.exp(lib[ok]) - p_hand[ok]).abs().max()))
    totals.append(float(torch.exp(lib).sum()))
check(
    "discretized_gaussian_log_likelihood = eq. (rev-decoder) by hand (bin masses)",
    max_err,
    0.0,
    atol=1e-12,
)
_ = check(
    "the 256 bin probabilities sum to 1 for every (μ, σ) (up to a 1e-12 floor per bin)",
    totals,
    1.0,
    atol=256e-12,
)

# %% [markdown]
# The digits of scikit-learn have 17 grey levels (0 to 16), which scaled to $[-1, 1]$ are
# $k/8 - 1$, $k = 0, \dots, 16$, and do not lie on the 256-level grid. To use the 8-bit decoder
# we round them to the nearest of the 256 levels (a change of less than half a bin, $1/255$),
# exactly as an 8-bit image file would store them. The check compares the largest change with
# the distance from each $k/8 - 1$ to its nearest grid point, found by searching all 256 levels,
# and counts the distinct values after rounding.
#
# The prior term is {eq}`rev-kl-gauss` with $q(\mathbf{x}_T \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_T}\,\mathbf{x}_0, (1-\bar\alpha_T)\mathbf{I})$
# and $p(\mathbf{x}_T) = \mathcal{N}(\mathbf{0}, \mathbf{I})$, summed over pixels and converted to
# bits/dim; `diff.prior_bpd` computes the same.


# %%
def quantise_by_hand(x):
    """Round data in [-1, 1] to the nearest of the 256 levels -1 + 2k/255."""
    return torch.round((x + 1) * 127.5) / 127.5 - 1


all_digits = digits("all").images.double()
check(
    "quantise by hand = the library's data.quantise (used from now on, and in chapters "
    "6 and 9)",
    quantise_by_hand(all_digits),
    quantise(all_digits),
    atol=0,
)
grey = torch.arange(17, dtype=torch.float64) / 8 - 1  # the 17 grey levels, k/8 − 1
nearest = (grey[:, None] - levels[None, :]).abs().min(1).values  # search all 256 levels
check(
    "the largest rounding change = the largest distance of a grey level to the grid",
    (quantise(all_digits) - all_digits).abs().max(),
    nearest.max(),
    atol=1e-12,
)
check_le("... which is below half a bin, 1/255", nearest.max(), 1 / 255)
n_levels = len(torch.unique(quantise(all_digits)))
check("the rounded digits take 17 distinct values", n_levels, 17, atol=0)
check("log₂ 17 ≈ 4.09 bits/dim, as the text says", math.log2(n_levels), 4.09, atol=5e-3)
train_q = quantise(digits("train").images.double())
test_q = quantise(digits("test").images.double())
D = test_q[0].numel()
prior_hand = kl_gauss(
    np.sqrt(ab_np[-1]) * test_q.numpy(), 1 - ab_np[-1], 0.0, 1.0
).reshape(len(test_q), -1).sum(1) / (D * math.log(2))
check(
    "L_T in bits/dim by hand (rev-kl-gauss) equals diff.prior_bpd",
    prior_hand,
    diff.prior_bpd(test_q),
    atol=1e-15,
)
print(f"L_T = {prior_hand.mean():.1e} bits/dim on average over the test digits")
_ = check(
    "L_T is about 2e-5 bits/dim, as chapter 4 found and the text says",
    prior_hand.mean(),
    2e-5,
    atol=0.5e-5,
)

# %% [markdown]
# ### Two predictors with known answers
#
# To compute a whole bound without training anything, we use two closed-form predictors.
#
# **A point mass.** If the "data set" is a single image $\mathbf{x}^\star$, the noise is known
# exactly from $\mathbf{x}_t$: $\boldsymbol{\epsilon}^*(\mathbf{x}_t, t) = (\mathbf{x}_t - \sqrt{\bar\alpha_t}\,\mathbf{x}^\star)/\sqrt{1-\bar\alpha_t}$.
# Then $\boldsymbol{\mu}_\theta = \tilde{\boldsymbol{\mu}}_t$ exactly, and with $\sigma_t^2 = \tilde\beta_t$
# every KL term vanishes. What is left is the prior and the decoder, whose mean is exactly
# $\mathbf{x}^\star$ with standard deviation $\sigma_1 = \sqrt{\tilde\beta_2}$; each interior pixel
# then costs $-\log_2\big(2\Phi(\tfrac{1}{255\sigma_1}) - 1\big)$ bits and each edge pixel
# $-\log_2\Phi(\tfrac{1}{255\sigma_1})$.
#
# **A Gaussian fitted to the digits.** Fit $\mathbf{m}$ and $\boldsymbol{\Sigma}$ to the training
# digits and use the optimal predictor {eq}`rev-eps-gauss` for that Gaussian, computed through the
# eigendecomposition $\boldsymbol{\Sigma} = \mathbf{U}\operatorname{diag}(s_k)\mathbf{U}^\top$, so that
# $(\bar\alpha_t\boldsymbol{\Sigma} + (1-\bar\alpha_t)\mathbf{I})^{-1} = \mathbf{U}\operatorname{diag}\big(1/(\bar\alpha_t s_k + 1 - \bar\alpha_t)\big)\mathbf{U}^\top$.
# This is the best a *linear* denoiser can do; chapter 6 trains a network that does better.
#
# `diff.bits_per_dim` evaluates {eq}`rev-bpd` with one draw of $\mathbf{x}_t$ per step (an
# unbiased estimate of the bound), returning the prior, the $T$ terms and the total.

# %%
x_star = test_q[:1]  # one digit


def eps_point_mass(x_t, t):
    ab = abar[t].view(-1, 1, 1, 1)
    return (x_t - torch.sqrt(ab) * x_star) / torch.sqrt(1 - ab)


gen = torch.Generator().manual_seed(0)
bpd_point = diff.bits_per_dim(eps_point_mass, x_star, generator=gen)
check(
    "point mass: every KL term L_(t-1), t ≥ 2, is zero",
    bpd_point["terms"][:, 1:],
    0.0,
    atol=1e-9,
)
sigma_1 = math.sqrt(diff.posterior_variance[1])
Phi = lambda u: 0.5 * (1 + math.erf(u / math.sqrt(2)))  # noqa: E731
n_edge = int((x_star.abs() > 0.999).sum())
decoder_bits = (
    n_edge * -math.log2(Phi(1 / (255 * sigma_1)))
    + (D - n_edge) * -math.log2(2 * Phi(1 / (255 * sigma_1)) - 1)
) / D
check(
    "point mass: total bits/dim = L_T + decoder bits computed by hand",
    bpd_point["total"],
    float(diff.prior_bpd(x_star)) + decoder_bits,
    atol=1e-9,
)
print(
    f"point mass: {bpd_point['total'].item():.3f} bits/dim ({n_edge} of {D} pixels in "
    f"edge bins, σ_1 = {sigma_1:.4f})"
)

# %%
flat = train_q.flatten(1)
m_fit = flat.mean(0)
evals, U = torch.linalg.eigh(torch.cov(flat.T))
evals = evals.clamp(min=0.0)


def eps_gauss(x_t, t):
    """Eq. (rev-eps-gauss) for the Gaussian fitted to the training digits."""
    ab = abar[t].view(-1, 1)
    centred = x_t.flatten(1) - torch.sqrt(ab) * m_fit
    coeff = torch.sqrt(1 - ab) / (ab * evals + 1 - ab)  # (B, D) in the eigenbasis
    return (((centred @ U) * coeff) @ U.T).view_as(x_t)


x_eval = test_q[:64]
bpd_gauss = diff.bits_per_dim(
    eps_gauss, x_eval, generator=torch.Generator().manual_seed(0)
)
# The whole bound by hand, with the same draws of x_t (the generator is used from t = T
# down to 1, as in bits_per_dim): w_t of eq. (rev-lambda) for t ≥ 2 (C_t = 0 for
# fixed_small), the decoder (rev-decoder) by hand at t = 1, the prior (rev-kl-gauss).
gen = torch.Generator().manual_seed(0)
nats_hand = (
    torch.from_numpy(
        kl_gauss(np.sqrt(ab_np[-1]) * x_eval.numpy(), 1 - ab_np[-1], 0.0, 1.0)
    )
    .flatten(1)
    .sum(1)
)
for i in reversed(range(T)):
    noise_i = torch.randn(x_eval.shape, generator=gen, dtype=torch.float64)
    t_i = torch.full((len(x_eval),), i)
    x_t_i = torch.sqrt(abar[i]) * x_eval + torch.sqrt(1 - abar[i]) * noise_i
    eps_i = eps_gauss(x_t_i, t_i)
    if i > 0:
        nats_hand += w_vlb["fixed_small"][i] * ((noise_i - eps_i) ** 2).flatten(1).sum(
            1
        )
    else:
        mean_1 = mu_from_eps(x_t_i, t_i, eps_i)
        # the library's floor of 1e-12 on a bin's probability matters here: one
        # pixel of one test digit lies 17 σ_1 from the decoder's mean, where the
        # bin's mass underflows to 0
        p_bin = torch.exp(decoder_log_prob(x_eval, mean_1, sigma_1)).clamp(min=1e-12)
        nats_hand -= torch.log(p_bin).flatten(1).sum(1)
check(
    "bits_per_dim total equals the bound (rev-bpd) computed by hand, term by term",
    bpd_gauss["total"],
    nats_hand / (D * math.log(2)),
    atol=1e-9,
)
check(
    "bits_per_dim: each KL term is w_t × (mean squared ε error) / ln 2, (rev-lambda)",
    bpd_gauss["terms"][:, 1:],
    diff.vlb_weights[1:] * bpd_gauss["mse"][:, 1:] / math.log(2),
    rtol=1e-9,
    atol=1e-12,
)
terms_mean = bpd_gauss["terms"].mean(0).numpy()
bpd_gauss_total = float(bpd_gauss["total"].mean())
print(
    f"Gaussian predictor on {len(x_eval)} test digits: {bpd_gauss_total:.2f} bits/dim"
)
print(
    f"  decoder L_0 {terms_mean[0]:.2f}, KL terms {terms_mean[1:].sum():.2f}, "
    f"prior {bpd_gauss['prior'].mean():.1e}"
)
print(f"  uniform code over the 17 grey levels: log₂ 17 = {math.log2(17):.2f} bits/dim")
check_le(
    "the Gaussian predictor's bound is above log₂ 17 bits/dim",
    math.log2(17),
    bpd_gauss_total,
)
glue("ch5_bpd_gauss", bpd_gauss_total)
glue("ch5_bpd_gauss_L0", terms_mean[0])
glue("ch5_bpd_gauss_kl", terms_mean[1:].sum())
glue("ch5_log2_17", math.log2(17))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].plot(np.arange(2, T + 1), terms_mean[1:], lw=1)
axes[0].set(
    xscale="log",
    yscale="log",
    xlabel="step t",
    ylabel=r"$L_{t-1}$ (bits/dim)",
    title="VLB terms of the Gaussian predictor (64 test digits)",
)
cum = np.cumsum(terms_mean[1:]) / terms_mean[1:].sum()
print(f"share of Σ KL terms in the first 10% of the steps: {cum[T // 10 - 2]:.0%}")
glue("ch5_kl_share_first_tenth", cum[T // 10 - 2])
axes[1].plot(np.arange(2, T + 1) / T, cum)
axes[1].set(
    xlabel="t / T",
    ylabel="cumulative share of Σ KL terms",
    title="Where the bits are spent",
)
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left, the KL terms $L_{t-1}$ of the bound for the Gaussian predictor, in bits/dim,
# against $t$ (log-log); right, their cumulative share.* {glue:text}`ch5_kl_share_first_tenth:.0%`
# of the KL terms are spent in the first tenth of the steps: the same concentration at small $t$
# as in the weights $w_t$. This is why a likelihood-trained model must be good at the low-noise
# end, and why {cite:t}`nichol2021improved` importance-sample $t$ when they train on the bound
# alone.
#
# **How good is {glue:text}`ch5_bpd_gauss:.2f` bits/dim?** It is below the 8 bits/dim of storing
# the digits as raw 8-bit images, but that is the wrong reference for these data. The digits use
# only 17 of the 256 levels, and a code that knows just that, giving each of the 17 values the
# probability $1/17$ at every pixel, costs $\log_2 17 =$ {glue:text}`ch5_log2_17:.2f` bits/dim.
# The Gaussian predictor's bound is *above* that: at every noise level it treats the digits as
# Gaussian, blind to the 17 levels, and its decoder term alone costs
# {glue:text}`ch5_bpd_gauss_L0:.2f` bits/dim, its KL terms {glue:text}`ch5_bpd_gauss_kl:.2f`. A
# bits/dim figure for these digits must be read against $\log_2 17 \approx 4.09$, not against 8;
# the same holds for the trained network of chapter 6.

# %% [markdown]
# ## Where everything is exact: a one-dimensional Gaussian mixture
#
# For images, neither the model's likelihood $p_\theta(\mathbf{x}_0)$ nor the best possible
# denoiser can be computed, so the two inequalities of {eq}`rev-bound-chain` can only be taken on
# trust. In one dimension we can compute everything. Take as data distribution a mixture of
# three Gaussians,
#
# $$
# q(x_0) = \sum_{k=1}^{3} \pi_k\, \mathcal{N}(x_0;\ m_k,\ s_k^2).
# $$ (rev-mix-data)
#
# Since $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ adds independent
# Gaussian noise within each component, every noisy marginal is again a mixture:
#
# $$
# q(x_t) = \sum_{k=1}^{3} \pi_k\, \mathcal{N}\big(x_t;\ \sqrt{\bar\alpha_t}\, m_k,\ v_{k,t}\big),
# \qquad v_{k,t} = \bar\alpha_t s_k^2 + 1 - \bar\alpha_t .
# $$ (rev-mix-marginal)
#
# **The optimal noise predictor is the score.** The best $\epsilon_\theta$ in squared error is
# $\epsilon^*(x_t, t) = \mathbb{E}[\epsilon \mid x_t]$, and it is tied to the score
# $\nabla \log q(x_t)$ (Tweedie's formula). Differentiate
# $q(x_t) = \int q(x_t \mid x_0)\, q(x_0)\, dx_0$ under the integral, using
# $\nabla_{x_t} q(x_t \mid x_0) = -\frac{x_t - \sqrt{\bar\alpha_t}x_0}{1-\bar\alpha_t}\, q(x_t \mid x_0) = -\frac{\epsilon}{\sqrt{1-\bar\alpha_t}}\, q(x_t \mid x_0)$:
#
# $$
# \nabla \log q(x_t) = \frac{1}{q(x_t)} \int -\frac{\epsilon(x_0, x_t)}{\sqrt{1-\bar\alpha_t}}\, q(x_t \mid x_0)\, q(x_0)\, dx_0
# = -\frac{\mathbb{E}[\epsilon \mid x_t]}{\sqrt{1-\bar\alpha_t}},
# \qquad\text{so}\qquad
# \epsilon^*(x_t, t) = -\sqrt{1-\bar\alpha_t}\, \nabla \log q(x_t) .
# $$ (rev-eps-star)
#
# For the mixture the score is explicit. With the responsibilities
# $r_k(x_t) = \pi_k \mathcal{N}(x_t; \sqrt{\bar\alpha_t} m_k, v_{k,t}) / q(x_t)$,
#
# $$
# \epsilon^*(x_t, t) = \sqrt{1 - \bar\alpha_t}\, \sum_{k=1}^{3} r_k(x_t)\, \frac{x_t - \sqrt{\bar\alpha_t}\, m_k}{v_{k,t}} ,
# $$ (rev-eps-star-mix)
#
# a responsibility-weighted version of {eq}`rev-eps-gauss`. Inserted into {eq}`rev-mu-eps` it
# gives the model mean $\mu^*(x_t, t)$, which is the *true* reverse mean $\mathbb{E}_q[x_{t-1} \mid x_t]$
# (the posterior mean {eq}`rev-mu-tilde-eps` is linear in $\epsilon$, so averaging it over
# $q(x_0 \mid x_t)$ replaces $\epsilon$ by $\epsilon^*$). This is the best a Gaussian reverse step
# can do for its mean; all that remains imperfect is that the step is Gaussian with a fixed
# variance.
#
# We check {eq}`rev-eps-star-mix` twice: against $\mathbb{E}[\epsilon \mid x_t]$ computed by
# integrating over $x_0$ on a grid (Bayes' rule again), and against $-\sqrt{1-\bar\alpha_t}$ times a
# finite-difference derivative of $\log q(x_t)$.

# %%
PI = np.array([0.3, 0.5, 0.2])  # mixture weights π_k
M = np.array([-0.6, 0.05, 0.65])  # means m_k
S = np.array([0.10, 0.15, 0.06])  # standard deviations s_k
DATA = (PI, M, S)


def mix_log_density(x, ab, mix=DATA):
    """log q(x_t) of eq. (rev-mix-marginal); ab = ᾱ_t broadcasts against x.

    ab = 1 gives the data density.
    """
    pi, m, s = mix
    ab = np.asarray(ab)[..., None]
    v = ab * s**2 + 1 - ab
    return logsumexp(
        np.log(pi) + log_normal(np.asarray(x)[..., None], np.sqrt(ab) * m, v), axis=-1
    )


def eps_star(x, ab, mix=DATA):
    """The optimal ε-predictor of eq. (rev-eps-star-mix) for the mixture `mix`."""
    pi, m, s = mix
    ab = np.asarray(ab)[..., None]
    v = ab * s**2 + 1 - ab
    x = np.asarray(x)[..., None]
    log_joint = np.log(pi) + log_normal(x, np.sqrt(ab) * m, v)
    resp = np.exp(log_joint - logsumexp(log_joint, axis=-1, keepdims=True))
    return np.sqrt(1 - ab[..., 0]) * np.sum(resp * (x - np.sqrt(ab) * m) / v, axis=-1)


ab_test = 0.7  # an intermediate noise level
xt_pts = np.linspace(-2, 2, 9)
x0_grid = np.linspace(-2.5, 2.5, 200_001)
log_w = mix_log_density(x0_grid, 1.0)[None, :] + log_normal(
    xt_pts[:, None], np.sqrt(ab_test) * x0_grid, 1 - ab_test
)
w_post = np.exp(log_w - log_w.max(1, keepdims=True))
w_post /= w_post.sum(1, keepdims=True)  # q(x0 | x_t) on the grid, one row per x_t
eps_of_x0 = (xt_pts[:, None] - np.sqrt(ab_test) * x0_grid) / np.sqrt(1 - ab_test)
check(
    "ε* of eq. (rev-eps-star-mix) equals E[ε | x_t] integrated over x0 on a grid",
    eps_star(xt_pts, ab_test),
    (w_post * eps_of_x0).sum(1),
    atol=1e-9,
)
h = 1e-5
fd_score = (
    mix_log_density(xt_pts + h, ab_test) - mix_log_density(xt_pts - h, ab_test)
) / (2 * h)
_ = check(
    "ε* = −√(1−ᾱ_t) ∇log q(x_t), eq. (rev-eps-star), with a finite-difference score",
    eps_star(xt_pts, ab_test),
    -np.sqrt(1 - ab_test) * fd_score,
    atol=1e-8,
)

# %% [markdown]
# ### The bound with the optimal predictor
#
# With $\epsilon_\theta = \epsilon^*$, each term {eq}`rev-lambda` needs the expected squared error
# $\mathbb{E}[(\epsilon - \epsilon^*(x_t, t))^2]$ over $x_0$ and $\epsilon$. Because $\epsilon^*$ is
# the conditional mean, the cross term equals the square, $\mathbb{E}[\epsilon\,\epsilon^*] = \mathbb{E}[\mathbb{E}[\epsilon \mid x_t]\,\epsilon^*] = \mathbb{E}[\epsilon^{*2}]$,
# and the error reduces to a one-dimensional integral over $x_t$, the **minimum mean squared
# error**:
#
# $$
# \mathrm{mmse}_t := \mathbb{E}\big[(\epsilon - \epsilon^*(x_t, t))^2\big] = 1 - \int q(x_t)\, \epsilon^*(x_t, t)^2\, dx_t .
# $$ (rev-mmse)
#
# Collecting {eq}`rev-vlb-split`, {eq}`rev-lambda`, {eq}`rev-l0-continuous` and
# {eq}`rev-kl-gauss` for $L_T$, the bound of the optimal model, averaged over the data, is
#
# $$
# L_{\text{VLB}} = \underbrace{\tfrac12\big(\bar\alpha_T\, \mathbb{E}[x_0^2] - \bar\alpha_T - \log(1-\bar\alpha_T)\big)}_{L_T}
# + \sum_{t=2}^{T} \big(w_t\, \mathrm{mmse}_t + C_t\big)
# + \underbrace{\tfrac12 \log(2\pi\sigma_1^2) + w_1\, \mathrm{mmse}_1}_{L_0} .
# $$ (rev-vlb-mmse)
#
# Here the decoder is the *continuous* Gaussian $p_\theta(x_0 \mid x_1) = \mathcal{N}(\mu^*(x_1, 1), \sigma_1^2)$,
# so that all likelihoods are densities and can be compared with the differential entropy of the
# data. For the variances we compare two choices, and this matters:
#
# - $\sigma_t^2 = \beta_t$ for **all** $t$, including the decoder, $\sigma_1^2 = \beta_1$: the
#   paper's "fixed large" taken literally. (The code released with {cite:t}`ho2020ddpm`, like the
#   library's `fixed_large`, uses $\tilde\beta_2$ at $t = 1$, a choice made for the discretised
#   decoder; with this continuous decoder it would cost about 0.13 nats at $T = 1000$, since
#   $\beta_1/\tilde\beta_2 \approx 1.9$ there and $\frac12(r - 1 - \log r) \approx 0.13$ for
#   $r = 1.9$, as the last cell of this section checks);
# - $\sigma_t^2 = \tilde\beta_t$ for $t \ge 2$ and $\sigma_1^2 = \tilde\beta_2$ (the library's
#   `fixed_small`).
#
# We use the cosine schedule, whose $\bar\alpha$ is defined for any $T$, so that changing $T$
# discretises the same continuous process more or less finely. First a check of {eq}`rev-mmse`:
# for one step we integrate the closed-form KL {eq}`rev-kl-gauss` between the posterior and the
# model step over $x_0$ and $x_t$ on a two-dimensional grid, and compare with
# $w_t\,\mathrm{mmse}_t + C_t$.


# %%
def schedule_1d(T_, choice):
    """NumPy float64 schedule arrays (index i = t − 1) and σ_t² for `choice`.

    `choice` is "beta" or "beta_tilde".
    """
    d_ = GaussianDiffusion(
        get_beta_schedule("cosine", T_), model_var_type="fixed_small"
    )
    b, a, ab, abp, bt = (
        v.numpy()
        for v in (
            d_.betas,
            d_.alphas,
            d_.alphas_cumprod,
            d_.alphas_cumprod_prev,
            d_.posterior_variance,
        )
    )
    if choice == "beta":
        sig2 = b.copy()  # σ_t² = β_t, also at t = 1
    else:
        sig2 = (
            d_.p_mean_variance(
                lambda x_, t_: x_,
                torch.zeros(T_, 1, dtype=torch.float64),
                torch.arange(T_),
            )["variance"]
            .flatten()
            .numpy()
        )  # β̃_t, β̃_2 at t = 1
    return b, a, ab, abp, bt, sig2


def vlb_optimal(T_, choice, mix=DATA, n=801):
    """Eq. (rev-vlb-mmse): the optimal-mean model's bound (nats) and the mmse per t."""
    pi, m, s = mix
    b, a, ab, abp, bt, sig2 = schedule_1d(T_, choice)
    sd = np.sqrt(ab * s.max() ** 2 + 1 - ab)
    lo, hi = np.sqrt(ab) * m.min() - 10 * sd, np.sqrt(ab) * m.max() + 10 * sd
    xg = lo[:, None] + (hi - lo)[:, None] * np.linspace(
        0, 1, n
    )  # one x_t grid per step
    dx = (hi - lo) / (n - 1)
    mmse = (
        1
        - np.sum(
            np.exp(mix_log_density(xg, ab[:, None], mix))
            * eps_star(xg, ab[:, None], mix) ** 2,
            axis=1,
        )
        * dx
    )
    w_ = b**2 / (2 * sig2 * a * (1 - ab))
    ratio = bt[1:] / sig2[1:]
    C = 0.5 * (ratio - 1 - np.log(ratio))
    ex2 = np.sum(pi * (m**2 + s**2))
    L_T = 0.5 * (ab[-1] * ex2 - ab[-1] - np.log1p(-ab[-1]))
    L_0 = 0.5 * np.log(2 * np.pi * sig2[0]) + w_[0] * mmse[0]
    return L_T + np.sum(w_[1:] * mmse[1:] + C) + L_0, mmse


T_chk, t_chk = 50, 5
for choice in ("beta", "beta_tilde"):
    b, a, ab, abp, bt, sig2 = schedule_1d(T_chk, choice)
    i = t_chk - 1
    _, mmse_chk = vlb_optimal(T_chk, choice)
    x0_g = np.linspace(-1.6, 1.6, 1601)[:, None]
    xt_g = np.linspace(-1.9, 1.9, 1901)[None, :]
    weight = np.exp(
        mix_log_density(x0_g, 1.0) + log_normal(xt_g, np.sqrt(ab[i]) * x0_g, 1 - ab[i])
    )
    mu_post_g = (
        np.sqrt(abp[i]) * b[i] / (1 - ab[i]) * x0_g
        + np.sqrt(a[i]) * (1 - abp[i]) / (1 - ab[i]) * xt_g
    )
    mu_star_g = (xt_g - b[i] / np.sqrt(1 - ab[i]) * eps_star(xt_g, ab[i])) / np.sqrt(
        a[i]
    )
    kl_2d = (
        np.sum(weight * kl_gauss(mu_post_g, bt[i], mu_star_g, sig2[i])) * 0.002 * 0.002
    )
    w_i = b[i] ** 2 / (2 * sig2[i] * a[i] * (1 - ab[i]))
    C_i = 0.5 * (bt[i] / sig2[i] - 1 - np.log(bt[i] / sig2[i]))
    check(
        f"σ² = {choice}: L_(t-1) at t = {t_chk} by 2-D quadrature equals "
        "w_t mmse_t + C_t, eq. (rev-mmse)",
        kl_2d,
        w_i * mmse_chk[i] + C_i,
        atol=1e-7,
    )

# %% [markdown]
# And a check of the whole of {eq}`rev-vlb-mmse` against its definition {eq}`rev-elbo`: for
# $T = 20$ we sample 200,000 data points and their forward trajectories, average the log-ratio
# of the optimal model's path density to the forward path density, and compare.

# %%
T_mc = 20
b, a, ab, abp, bt, sig2 = schedule_1d(T_mc, "beta")
comp = rng.choice(3, size=n_paths, p=PI)
xp = np.empty((n_paths, T_mc + 1))
xp[:, 0] = M[comp] + S[comp] * rng.standard_normal(n_paths)
for t in range(1, T_mc + 1):
    xp[:, t] = np.sqrt(a[t - 1]) * xp[:, t - 1] + np.sqrt(
        b[t - 1]
    ) * rng.standard_normal(n_paths)
log_ratio = log_normal(xp[:, T_mc], 0.0, 1.0)
for t in range(1, T_mc + 1):
    i = t - 1
    mu_star = (
        xp[:, t] - b[i] / np.sqrt(1 - ab[i]) * eps_star(xp[:, t], ab[i])
    ) / np.sqrt(a[i])
    log_ratio += log_normal(xp[:, t - 1], mu_star, sig2[i]) - log_normal(
        xp[:, t], np.sqrt(a[i]) * xp[:, t - 1], b[i]
    )
vlb_mc_mix, vlb_se_mix = -log_ratio.mean(), log_ratio.std() / np.sqrt(n_paths)
_ = check(
    f"T = {T_mc}: eq. (rev-vlb-mmse) equals the Monte Carlo bound over whole "
    "trajectories (4 s.e.)",
    vlb_optimal(T_mc, "beta")[0],
    vlb_mc_mix,
    atol=4 * vlb_se_mix,
)

# %% [markdown]
# ### The model's exact likelihood, by propagating densities on a grid
#
# The model's marginal density obeys a backward recursion: start from $p(x_T) = \mathcal{N}(0, 1)$
# and push it through each Gaussian step,
#
# $$
# p_\theta(x_{t-1}) = \int \mathcal{N}\big(x_{t-1};\ \mu^*(x_t, t),\ \sigma_t^2\big)\, p_\theta(x_t)\, dx_t ,
# \qquad t = T, \dots, 1 .
# $$ (rev-density-recursion)
#
# On a uniform grid this is a matrix-vector product with the kernel matrix
# $K_{ij} = \mathcal{N}(y_i; \mu^*(x_j, t), \sigma_t^2)\,\Delta x$. The integrand is a smooth
# Gaussian bump of width $\sigma_t$, and the trapezoidal rule is then accurate to many digits
# as long as the grid spacing is a fraction of $\sigma_t$; we use $\Delta x = \sigma_t/3$ and let
# each step have its own grid, covering $q(x_t)$ by ten standard deviations on either side.
# For $T = 1000$ the first step has $\sigma_1 \approx 0.006$ ($\sigma_1^2 = \beta_1$) or $0.005$
# ($\sigma_1^2 = \tilde\beta_2$), so the finest grids have about 2000 and 2700 points. A dense
# kernel matrix would then cost millions of entries per step, but a Gaussian is
# zero to double precision beyond nine standard deviations, so each source point feeds only the
# ~55 target points near $\mu^*(x_j, t)$; `np.bincount` adds up those contributions. After the
# last step we evaluate $p_\theta(x_0)$ on a fine grid of data values and compute
# $-\mathbb{E}_q\log p_\theta(x_0)$ and $H(q(x_0))$ by quadrature.
#
# Before trusting the numbers we validate the method where the answer is known in closed form:
# Gaussian data $\mathcal{N}(0.2, 0.3^2)$. Then $\mu^*$ is linear, $\mu^*(x) = c_t x + d_t$, every
# $p_\theta(x_t) = \mathcal{N}(a_t, v_t)$ is Gaussian, and
# $a_{t-1} = c_t a_t + d_t$, $v_{t-1} = c_t^2 v_t + \sigma_t^2$.


# %%
def gauss_kernel_matvec(y, x, mu, p, sigma):
    """p_out(y_i) = Σ_j N(y_i; mu_j, σ²) p_j Δx on uniform grids x (source), y (target).

    Only the targets within 9σ of each mu_j are visited (the rest is < 1e-17 relative).
    """
    dx, dy = x[1] - x[0], y[1] - y[0]
    width = int(np.ceil(18 * sigma / dy)) + 2
    first = np.floor((mu - 9 * sigma - y[0]) / dy).astype(np.int64)
    target = first[:, None] + np.arange(width)  # (n_source, width)
    inside = (target >= 0) & (target < len(y))
    target = np.clip(target, 0, len(y) - 1)
    contrib = np.exp(log_normal(y[target], mu[:, None], sigma**2)) * (p * dx)[:, None]
    return np.bincount(target[inside], weights=contrib[inside], minlength=len(y))


X0_GRID = np.linspace(
    -1.6, 1.6, 3201
)  # data values where p_θ(x0) and q(x0) are evaluated
DX0 = X0_GRID[1] - X0_GRID[0]


def model_density_x0(T_, choice, mix=DATA, points_per_sigma=3.0, reach=10.0):
    """p_θ(x0) on X0_GRID for the optimal-mean model, by (rev-density-recursion)."""
    pi, m, s = mix
    b, a, ab, abp, bt, sig2 = schedule_1d(T_, choice)

    def grid_for(i, sigma):  # grid for x_t (index i), spacing σ / points_per_sigma
        sd = np.sqrt(ab[i] * s.max() ** 2 + 1 - ab[i])
        lo, hi = (
            np.sqrt(ab[i]) * m.min() - reach * sd,
            np.sqrt(ab[i]) * m.max() + reach * sd,
        )
        return np.linspace(
            lo, hi, int(np.ceil((hi - lo) * points_per_sigma / sigma)) + 1
        )

    x_ = grid_for(T_ - 1, np.sqrt(sig2[T_ - 1]))
    p = np.exp(log_normal(x_, 0.0, 1.0))  # p(x_T) = N(0, 1)
    for i in reversed(range(T_)):  # step t = i + 1: x_t -> x_{t-1}
        mu_star = (x_ - b[i] / np.sqrt(1 - ab[i]) * eps_star(x_, ab[i], mix)) / np.sqrt(
            a[i]
        )
        y_ = grid_for(i - 1, np.sqrt(sig2[i - 1])) if i > 0 else X0_GRID
        p = gauss_kernel_matvec(y_, x_, mu_star, p, np.sqrt(sig2[i]))
        x_ = y_
    return p


for choice, sig_text, n_text in (("beta", 0.006, 2000), ("beta_tilde", 0.005, 2700)):
    # the finest grid, at t = 1, for T = 1000; the text's figures: sig_text, n_text
    ab_1, sig_1 = (
        schedule_1d(1000, choice)[2][0],
        np.sqrt(schedule_1d(1000, choice)[5][0]),
    )
    sd_1 = np.sqrt(ab_1 * S.max() ** 2 + 1 - ab_1)
    width_1 = np.sqrt(ab_1) * (M.max() - M.min()) + 20 * sd_1  # ten sd on either side
    n_1 = int(np.ceil(width_1 * 3 / sig_1)) + 1
    print(f"σ² = {choice}, T = 1000: σ_1 = {sig_1:.4f}, finest grid {n_1} points")
    check(f"σ² = {choice}: σ_1 ≈ {sig_text}", sig_1, sig_text, atol=0.0005)
    check(f"σ² = {choice}: about {n_text} grid points", n_1, n_text, atol=100)

gauss_data = (np.array([1.0]), np.array([0.2]), np.array([0.3]))
for choice in ("beta", "beta_tilde"):
    T_val = 100
    b, a, ab, abp, bt, sig2 = schedule_1d(T_val, choice)
    mean_, var_ = 0.0, 1.0
    for i in reversed(range(T_val)):
        v_ = ab[i] * 0.3**2 + 1 - ab[i]
        c_ = (1 - b[i] / v_) / np.sqrt(a[i])
        d_ = b[i] * np.sqrt(ab[i]) * 0.2 / (v_ * np.sqrt(a[i]))
        mean_, var_ = c_ * mean_ + d_, c_**2 * var_ + sig2[i]
    p0 = model_density_x0(T_val, choice, gauss_data)
    check(
        f"σ² = {choice}: grid recursion = closed-form Gaussian p_θ(x0) (T = {T_val})",
        p0,
        np.exp(log_normal(X0_GRID, mean_, var_)),
        atol=1e-10,
    )

# %% [markdown]
# The grid method reproduces the closed form to better than $10^{-10}$. Now the mixture, for
# $T \in \{10, 20, 50, 100, 200, 500, 1000\}$ and both variance choices.

# %%
log_q0 = mix_log_density(X0_GRID, 1.0)
q0 = np.exp(log_q0)
entropy = -np.sum(q0 * log_q0) * DX0  # H(q(x0)), differential entropy in nats
Ts = [10, 20, 50, 100, 200, 500, 1000]
results = {c: {"vlb": [], "nll": [], "mass": []} for c in ("beta", "beta_tilde")}
densities = {}
t_sweep = time.perf_counter()
for choice in results:
    for T_ in Ts:
        p0 = model_density_x0(T_, choice)
        results[choice]["vlb"].append(vlb_optimal(T_, choice)[0])
        results[choice]["nll"].append(-np.sum(q0 * np.log(p0)) * DX0)
        results[choice]["mass"].append(np.sum(p0) * DX0)
        densities[choice, T_] = p0
print(f"(sweep took {time.perf_counter() - t_sweep:.1f} s)")
print(f"H(q(x0)) = {entropy:.5f} nats\n")
print("      |     σ_t² = β_t  (σ_1² = β_1)     |    σ_t² = β̃_t  (σ_1² = β̃_2)")
print(
    f"{'T':>5} | {'VLB':>9} {'NLL':>9} {'NLL − H':>10} "
    f"| {'VLB':>9} {'NLL':>9} {'NLL − H':>10}"
)
for k, T_ in enumerate(Ts):
    rb, rt = (results[c] for c in ("beta", "beta_tilde"))
    print(
        f"{T_:5d} | {rb['vlb'][k]:9.5f} {rb['nll'][k]:9.5f} "
        f"{rb['nll'][k] - entropy:10.2e} | "
        f"{rt['vlb'][k]:9.5f} {rt['nll'][k]:9.5f} {rt['nll'][k] - entropy:10.2e}"
    )
res = {c: {k: np.array(v) for k, v in r.items()} for c, r in results.items()}

# %%
for choice, label in (("beta", "σ² = β"), ("beta_tilde", "σ² = β̃")):
    check(
        f"{label}: every p_θ(x0) integrates to 1 on the grid",
        res[choice]["mass"],
        1.0,
        atol=1e-6,
    )
    check_le(
        f"{label}: NLL ≤ VLB for every T, eq. (rev-bound-chain)",
        res[choice]["nll"],
        res[choice]["vlb"],
    )
    check_le(
        f"{label}: H(q) ≤ NLL for every T, eq. (rev-bound-chain)",
        entropy,
        res[choice]["nll"],
    )
    check_le(f"{label}: NLL − H shrinks as T grows", np.diff(res[choice]["nll"]), 0.0)
check_le(
    "σ² = β: VLB − NLL shrinks as T grows from 20 on",
    np.diff(res["beta"]["vlb"] - res["beta"]["nll"])[1:],
    0.0,
)
# The figures quoted below the plot:
nll_gap = {c: res[c]["nll"] - entropy for c in res}  # NLL − H, per T
check(
    "NLL − H ≈ 0.25 nats at T = 10, for either variance",
    [nll_gap["beta"][0], nll_gap["beta_tilde"][0]],
    0.25,
    atol=0.015,
)
check_le(
    "NLL − H < 1e-3 nats at T = 1000, for either variance",
    [nll_gap["beta"][-1], nll_gap["beta_tilde"][-1]],
    1e-3,
)
vlb_gap = {c: res[c]["vlb"] - res[c]["nll"] for c in res}  # VLB − NLL, per T
slope = np.log(vlb_gap["beta"][-1] / vlb_gap["beta"][3]) / np.log(Ts[-1] / Ts[3])
check(
    "σ² = β: VLB − NLL falls like 1/T from T = 100 to 1000 (log-log slope)",
    slope,
    -1,
    atol=0.1,
)
_ = check(
    "σ² = β̃: VLB − NLL is still about half a nat at T = 1000",
    vlb_gap["beta_tilde"][-1],
    0.5,
    atol=0.05,
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.9))
axes[0].plot(X0_GRID, q0, color="k", lw=3, alpha=0.35, label="data q(x0)")
for T_, style in ((10, "--"), (50, "-."), (1000, "-")):
    axes[0].plot(
        X0_GRID, densities["beta", T_], style, lw=1.2, label=f"model p_θ(x0), T = {T_}"
    )
axes[0].set(
    xlabel=r"$x_0$",
    ylabel="density",
    title=r"Data and optimal-mean model ($\sigma_t^2 = \beta_t$)",
    ylim=(0, 1.75),
)
axes[0].legend(fontsize=8, loc="upper left")
for choice, color in (("beta", "C0"), ("beta_tilde", "C3")):
    name = r"\beta_t" if choice == "beta" else r"\tilde\beta_t"
    axes[1].plot(
        Ts,
        res[choice]["vlb"] - entropy,
        "o-",
        color=color,
        label=rf"VLB $-$ H, $\sigma_t^2 = {name}$",
    )
    axes[1].plot(
        Ts,
        res[choice]["nll"] - entropy,
        "s--",
        color=color,
        label=rf"NLL $-$ H, $\sigma_t^2 = {name}$",
    )
axes[1].set(
    xscale="log",
    yscale="log",
    xlabel="number of steps T",
    ylabel="nats above the data entropy",
    title="Gaps of the bound chain (cosine schedule)",
)
axes[1].grid(alpha=0.3, which="both")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left, the data density and the density of the optimal-mean model for three values of
# $T$; right, the excess of the bound (circles) and of the true negative log-likelihood (squares)
# over the data entropy, against $T$, for both variance choices (log-log).*
#
# What the table and the figure show:
#
# - **Both inequalities hold** for every $T$ and both variance choices: the bound is above the
#   model's true negative log-likelihood, which is above the entropy of the data.
# - **The model itself converges.** $\text{NLL} - H = D_{\mathrm{KL}}(q(x_0) \,\Vert\, p_\theta(x_0))$
#   falls from about $0.25$ nats at $T = 10$ (the left panel shows the model blurring the modes)
#   to below $10^{-3}$ at $T = 1000$, for either variance: with the optimal mean, a Gaussian
#   reverse step is an excellent model once the steps are small, exactly the argument of
#   {cite:t}`sohl2015deep`.
# - **With $\sigma_t^2 = \beta_t$ the bound converges too**: $\text{VLB} - \text{NLL}$, the KL of
#   {eq}`rev-elbo-gap`, shrinks steadily from $T = 20$ on, roughly like $1/T$ from $T = 100$ on.
# - **With $\sigma_t^2 = \tilde\beta_t$ it does not**: the bound stays about half a nat above the
#   likelihood even at $T = 1000$, although that model's likelihood is just as good.
#
# Why the difference? Subtracting the entropy from the bound gives
# $L_{\text{VLB}} - H(q(x_0)) = \mathbb{E}_q\big[\log q(x_{0:T}) - \log p_\theta(x_{0:T})\big] = D_{\mathrm{KL}}\big(q(x_{0:T}) \,\Vert\, p_\theta(x_{0:T})\big)$,
# and factorising $q(x_{0:T}) = q(x_T)\prod_t q(x_{t-1} \mid x_t)$ (the forward chain read backwards)
# splits this into the prior mismatch plus, at every step, the expected KL between the **true**
# reverse step $q(x_{t-1} \mid x_t)$ and the model step. At the first steps the noise is far
# smaller than the width of the mixture components, the data look locally like a smooth
# density, and the true reverse variance is close to $\beta_t$ (on average it lies between
# $\tilde\beta_t$ and $\beta_t$ by {eq}`rev-true-var-bounds`, since the mixture's variance, about
# 0.21, is below 1; the next cell prints it). The ratio $\beta_t/\tilde\beta_t = (1-\bar\alpha_t)/(1-\bar\alpha_{t-1})$
# is then far from 1: it is the factor by which step $t$ multiplies the noise variance
# $1 - \bar\alpha_{t-1}$, roughly $t/(t-1)$ for small $t$ and large $T$ ($2, 1.5, 1.33, \dots$), and it does
# **not** approach 1 as $T$ grows: making the steps smaller makes the first noise level smaller
# too, and the first few steps still double, then add half to, the noise variance. Each such step
# costs about $\frac12(r - 1 - \log r)$ nats, and these costs add up to a constant that does
# not vanish as $T$ grows. $\tilde\beta_t$ is the right variance when the data look like
# isolated points at the current noise level, which for 8-bit images with 256 well separated levels
# and a discretised decoder is the case at the smallest noise levels; this is why both choices are
# in use, and why {cite:t}`nichol2021improved` learn $\sigma_t^2$ between the two and obtain much
# better bounds (exercise 4 computes the best fixed variance for this example). The next cell
# prints the ratio for the first steps and the sum of the per-step costs; the decoder's
# $\sigma_1^2 = \tilde\beta_2$, about half of $\beta_1$ at $T = 1000$ ($\beta_1/\tilde\beta_2 \approx 1.9$),
# adds about 0.13 nats more than $\sigma_1^2 = \beta_1$ would.

# %%
for T_ in (50, 1000):
    b, a, ab, abp, bt, sig2 = schedule_1d(T_, "beta_tilde")
    r_first = b[1:5] / bt[1:5]
    cost_sum = np.sum(0.5 * (b[1:] / bt[1:] - 1 - np.log(b[1:] / bt[1:])))
    ratios_text = ", ".join(f"{r:.3f}" for r in r_first)
    print(f"T = {T_:4d}: β_t/β̃_t for t = 2..5 = {ratios_text}")
    print(f"           Σ_(t≥2) ½(r − 1 − log r) = {cost_sum:.3f} nats")
check(
    "T = 1000: β_t/β̃_t ≈ t/(t − 1) for t = 2..5 (within 10%)",
    r_first,
    np.arange(2, 6) / np.arange(1, 5),
    rtol=0.1,
)
# The average true reverse variance of the mixture, eq. (rev-true-var): β̃_t + e_t, with
# e_t = c_1(t)² E[Var(x0 | x_t)] = β_t² mmse_t / (α_t (1 − ᾱ_t)) (arrays of T = 1000).
e_mix = b**2 / (a * (1 - ab)) * vlb_optimal(1000, "beta")[1]
var_mix = np.sum(PI * (M**2 + S**2)) - np.sum(PI * M) ** 2
check("the mixture's variance is about 0.21, below 1", var_mix, 0.21, atol=0.005)
check_le(
    "T = 1000: so its average reverse variance β̃_t + e_t is at most β_t "
    "(rev-true-var-bounds)",
    bt[1:] + e_mix[1:],
    b[1:],
)
print(
    "average reverse variance / β_t for t = 2..5: "
    + ", ".join(f"{v:.4f}" for v in (bt[1:5] + e_mix[1:5]) / b[1:5])
)
# The decoder: σ_1² = β̃_2 against σ_1² = β_1, with
# L_0 = ½ log(2π σ_1²) + e_1 / (2σ_1²).
L0_of = lambda s2: 0.5 * np.log(2 * np.pi * s2) + e_mix[0] / (2 * s2)  # noqa: E731
decoder_cost = L0_of(bt[1]) - L0_of(b[0])
print(
    f"T = 1000: β_1/β̃_2 = {b[0] / bt[1]:.3f}; the decoder with σ_1² = β̃_2 costs "
    f"{decoder_cost:.3f} nats"
)
print("           more than with σ_1² = β_1")
check("β_1/β̃_2 ≈ 1.9 at T = 1000, as the text says", b[0] / bt[1], 1.9, atol=0.05)
check(
    "the decoder's extra cost ≈ 0.13 nats, as the text says",
    decoder_cost,
    0.13,
    atol=0.01,
)

# %% [markdown]
# ## Summary
#
# - The reverse process is a Markov chain of Gaussian steps
#   $p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t) = \mathcal{N}(\boldsymbol{\mu}_\theta(\mathbf{x}_t, t), \sigma_t^2\mathbf{I})$
#   started at $p(\mathbf{x}_T) = \mathcal{N}(\mathbf{0}, \mathbf{I})$, {eq}`rev-model-joint`.
# - Jensen's inequality gives the bound {eq}`rev-elbo`; its gap is the KL {eq}`rev-elbo-gap`
#   between the forward process and the model's posterior over noisy paths.
# - The Markov property, Bayes' rule and a telescoping product turn the bound into
#   $L_T + \sum_{t=2}^{T} L_{t-1} + L_0$, {eq}`rev-vlb-split`: a parameter-free prior term, KLs to the
#   forward posterior, and a decoder term. The rewrite holds path by path.
# - The forward posterior is Gaussian, with mean {eq}`rev-posterior-mean` and variance
#   {eq}`rev-posterior-var`, by completing the square; checked against Bayes' rule on a grid.
# - With fixed variances the KL between Gaussians {eq}`rev-kl-gauss` is a weighted squared error
#   of the means plus a constant, {eq}`rev-kl-equal-var`. Writing the mean through the predicted
#   noise, {eq}`rev-mu-eps`, turns each term into $w_t\,\mathbb{E}\lVert\boldsymbol{\epsilon} - \boldsymbol{\epsilon}_\theta\rVert^2$
#   with $w_t = \beta_t^2/(2\sigma_t^2\alpha_t(1-\bar\alpha_t))$, {eq}`rev-lambda`; for
#   $\sigma_t^2 = \tilde\beta_t$, $w_t = \frac12(\mathrm{SNR}(t-1)/\mathrm{SNR}(t) - 1)$.
# - The true reverse variance is $\tilde\beta_t + c_1(t)^2\operatorname{Var}(x_0 \mid \mathbf{x}_t)$,
#   {eq}`rev-true-var`: never below $\tilde\beta_t$, and on average over $\mathbf{x}_t$ at most
#   $\beta_t$ when every coordinate of the data has variance at most 1
#   {eq}`rev-true-var-bounds`; Gaussian data with a larger variance exceed $\beta_t$.
# - $L_{\text{simple}}$, {eq}`rev-l-simple`, drops the $w_t$ (and the constants, and the
#   discretisation of $L_0$). It moves weight from the easy low-noise steps to the harder ones, is a
#   weighted denoising score matching loss {eq}`rev-dsm`, trains better samplers and gives worse
#   likelihoods. Learned variances with the hybrid loss improve them; the best bounds come from
#   training on $L_{\text{VLB}}$ alone, with importance-sampled $t$ {cite}`nichol2021improved`.
# - Likelihoods are reported in bits/dim {eq}`rev-bpd` with a discretised decoder {eq}`rev-decoder`
#   whose 256 bin probabilities sum to one. A Gaussian fitted to the digits, used as a denoiser,
#   costs {glue:text}`ch5_bpd_gauss:.1f` bits/dim, most of it spent at the first steps. For these
#   digits, which use 17 grey levels, that must be read against $\log_2 17 \approx 4.09$ bits/dim
#   (a uniform code over the 17 levels), not against the 8 bits/dim of raw 8-bit storage: the
#   Gaussian predictor does worse than that uniform code.
# - On a 1-D mixture, with the optimal predictor $\epsilon^* = -\sqrt{1-\bar\alpha_t}\,\nabla\log q(x_t)$,
#   everything is computable: $\text{VLB} \ge \text{NLL} \ge H$ holds, the model converges to the data
#   as $T$ grows, and the bound becomes tight with $\sigma_t^2 = \beta_t$ but keeps a gap of half
#   a nat with $\sigma_t^2 = \tilde\beta_t$, because the first steps never become small in log-SNR.
#
# Chapter 6 trains a network $\boldsymbol{\epsilon}_\theta$ on the digits with $L_{\text{simple}}$,
# samples with {eq}`rev-ancestral-step`, and measures its bits/dim with the bound derived here.

# %% [markdown]
# ## Exercises
#
# **1. The posterior variance.** Show that $0 \le \tilde\beta_t \le \beta_t$ for every $t$, with
# $\tilde\beta_1 = 0$. Compute $\tilde\beta_2/\beta_2$ for the linear schedule with $T = 1000$
# and check it against `diff.posterior_variance`.
#
# ````{dropdown} Solution
# By {eq}`rev-posterior-var`, $\tilde\beta_t/\beta_t = (1-\bar\alpha_{t-1})/(1-\bar\alpha_t)$.
# Since $\bar\alpha_t = \alpha_t\bar\alpha_{t-1} < \bar\alpha_{t-1}$, the denominator is larger than
# the numerator, so the ratio lies in $[0, 1)$; at $t = 1$ the numerator is $1 - \bar\alpha_0 = 0$.
# For the linear schedule, $1 - \bar\alpha_1 = \beta_1 = 10^{-4}$ and
# $1 - \bar\alpha_2 = 1 - (1 - \beta_1)(1 - \beta_2) \approx \beta_1 + \beta_2 \approx 2.2 \times 10^{-4}$,
# so $\tilde\beta_2/\beta_2 \approx 0.455$:
#
# ```python
# print(diff.posterior_variance[1] / diff.betas[1])   # tensor(0.4547, dtype=torch.float64)
# ```
#
# At the first steps the two variance choices differ by a factor of about 2; for large $t$,
# $\bar\alpha_{t-1} \approx \bar\alpha_t \approx 0$ and they coincide.
# ````
#
# **2. Predicting $\mathbf{x}_0$ instead of $\boldsymbol{\epsilon}$.** A network can also output
# $\hat{\mathbf{x}}_0$ and set $\boldsymbol{\mu}_\theta = \tilde{\boldsymbol{\mu}}_t(\mathbf{x}_t, \hat{\mathbf{x}}_0)$.
# Show that then $L_{t-1} = \rho_t\, \mathbb{E}\lVert \mathbf{x}_0 - \hat{\mathbf{x}}_0 \rVert^2 + C_t$ with
# $\rho_t = \bar\alpha_{t-1}\beta_t^2 / \big(2\sigma_t^2 (1-\bar\alpha_t)^2\big)$, and that for
# $\sigma_t^2 = \tilde\beta_t$ this is $\rho_t = \frac12\big(\mathrm{SNR}(t-1) - \mathrm{SNR}(t)\big)$.
#
# ````{dropdown} Solution
# In $\tilde{\boldsymbol{\mu}}_t(\mathbf{x}_t, \mathbf{x}_0) - \tilde{\boldsymbol{\mu}}_t(\mathbf{x}_t, \hat{\mathbf{x}}_0)$
# the $\mathbf{x}_t$ terms cancel and what remains is
# $\frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}(\mathbf{x}_0 - \hat{\mathbf{x}}_0)$; squaring and
# dividing by $2\sigma_t^2$ as in {eq}`rev-kl-equal-var` gives $\rho_t$. With
# $\sigma_t^2 = \tilde\beta_t = \frac{(1-\bar\alpha_{t-1})\beta_t}{1-\bar\alpha_t}$,
# $\rho_t = \frac{\bar\alpha_{t-1}\beta_t}{2(1-\bar\alpha_{t-1})(1-\bar\alpha_t)}$. On the other hand
#
# $$
# \mathrm{SNR}(t-1) - \mathrm{SNR}(t) = \frac{\bar\alpha_{t-1}(1-\bar\alpha_t) - \bar\alpha_t(1-\bar\alpha_{t-1})}{(1-\bar\alpha_{t-1})(1-\bar\alpha_t)}
# = \frac{\bar\alpha_{t-1} - \bar\alpha_t}{(1-\bar\alpha_{t-1})(1-\bar\alpha_t)}
# = \frac{\bar\alpha_{t-1}\beta_t}{(1-\bar\alpha_{t-1})(1-\bar\alpha_t)} ,
# $$
#
# which is $2\rho_t$. This is the discrete-time loss of {cite:t}`kingma2021vdm`. Since
# $\lVert\mathbf{x}_0 - \hat{\mathbf{x}}_0\rVert^2 = \lVert\boldsymbol{\epsilon} - \boldsymbol{\epsilon}_\theta\rVert^2/\mathrm{SNR}(t)$,
# $\rho_t = w_t\,\mathrm{SNR}(t)$: it agrees with {eq}`rev-lambda-snr`.
# ````
#
# **3. When is each variance exact?** (a) If the data are a single point, $q(\mathbf{x}_0) = \delta(\mathbf{x}_0 - \mathbf{a})$,
# show that the true reverse step is $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t) = \mathcal{N}(\tilde{\boldsymbol{\mu}}_t(\mathbf{x}_t, \mathbf{a}), \tilde\beta_t\mathbf{I})$.
# (b) If $q(\mathbf{x}_0) = \mathcal{N}(\mathbf{0}, \mathbf{I})$, show that
# $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t) = \mathcal{N}(\sqrt{\alpha_t}\,\mathbf{x}_t, \beta_t\mathbf{I})$.
#
# ````{dropdown} Solution
# (a) $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t) = \int q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)\, q(\mathbf{x}_0 \mid \mathbf{x}_t)\, d\mathbf{x}_0$,
# and $q(\mathbf{x}_0 \mid \mathbf{x}_t) = \delta(\mathbf{x}_0 - \mathbf{a})$ whatever $\mathbf{x}_t$ is, so
# the true reverse step is the forward posterior with $\mathbf{x}_0 = \mathbf{a}$: variance
# $\tilde\beta_t$. This is the point-mass experiment on the digits, where every KL term was zero.
#
# (b) By {eq}`fwd-marginal`, $q(\mathbf{x}_{t-1}) = \mathcal{N}(\mathbf{0}, \bar\alpha_{t-1}\mathbf{I} + (1-\bar\alpha_{t-1})\mathbf{I}) = \mathcal{N}(\mathbf{0}, \mathbf{I})$.
# With $\mathbf{x}_t = \sqrt{\alpha_t}\,\mathbf{x}_{t-1} + \sqrt{\beta_t}\,\boldsymbol{\epsilon}$, the pair is jointly
# Gaussian with $\operatorname{Cov}(\mathbf{x}_{t-1}, \mathbf{x}_t) = \sqrt{\alpha_t}\mathbf{I}$ and
# $\operatorname{Cov}(\mathbf{x}_t) = \mathbf{I}$, so Gaussian conditioning gives mean $\sqrt{\alpha_t}\,\mathbf{x}_t$ and
# covariance $(1 - \alpha_t)\mathbf{I} = \beta_t\mathbf{I}$. Between these two extremes lies, on
# average over $\mathbf{x}_t$, the reverse variance of any data whose coordinates have variance at
# most 1, such as data in $[-1, 1]$ (eq. {eq}`rev-true-var-bounds`); data with a larger variance
# push it above $\beta_t$.
# ````
#
# **4. The best fixed variance.** With the optimal mean, the $t$-th term of the bound as a function
# of $\sigma_t^2$ is $\frac{\lVert\text{mean error}\rVert^2}{2\sigma_t^2} + \frac12\big(\frac{\tilde\beta_t}{\sigma_t^2} - 1 - \log\frac{\tilde\beta_t}{\sigma_t^2}\big)$.
# Show that it is minimised by $\sigma_t^2 = \tilde\beta_t + \frac{\beta_t^2}{\alpha_t(1-\bar\alpha_t)}\,\mathrm{mmse}_t$
# (and the decoder by $\sigma_1^2 = \beta_1\,\mathrm{mmse}_1/\alpha_1$), and compute the bound of the
# 1-D mixture with these variances for $T = 100$ and $T = 1000$, using `schedule_1d` and the
# `mmse` returned by `vlb_optimal`.
#
# ````{dropdown} Solution
# The expected squared mean error is $e_t = \frac{\beta_t^2}{\alpha_t(1-\bar\alpha_t)}\mathrm{mmse}_t$. Writing
# $u = 1/\sigma_t^2$, the term is $\frac{u}{2}(e_t + \tilde\beta_t) - \frac12 - \frac12\log(\tilde\beta_t u)$, whose
# derivative $\frac12(e_t + \tilde\beta_t) - \frac{1}{2u}$ vanishes at $\sigma_t^2 = \tilde\beta_t + e_t$:
# the best variance is the posterior variance plus the variance of the mean error, which is the
# true reverse variance. For the decoder, $\frac12\log(2\pi\sigma_1^2) + e_1/(2\sigma_1^2)$ is minimised
# at $\sigma_1^2 = e_1 = \beta_1\mathrm{mmse}_1/\alpha_1$.
#
# ```python
# for T_ in (100, 1000):
#     b, a, ab, abp, bt, _ = schedule_1d(T_, "beta")
#     _, mmse = vlb_optimal(T_, "beta")
#     e = b**2 / (a * (1 - ab)) * mmse                 # expected squared mean error per step
#     sig2_opt = bt + e
#     ratio = bt[1:] / sig2_opt[1:]
#     kl_terms = e[1:] / (2 * sig2_opt[1:]) + 0.5 * (ratio - 1 - np.log(ratio))
#     L_0 = 0.5 * np.log(2 * np.pi * e[0]) + 0.5
#     ex2 = np.sum(PI * (M**2 + S**2))
#     L_T = 0.5 * (ab[-1] * ex2 - ab[-1] - np.log1p(-ab[-1]))
#     print(T_, L_T + kl_terms.sum() + L_0, vlb_optimal(T_, "beta")[0])
# ```
#
# The bound drops from 0.2916 to 0.2689 nats at $T = 100$ and from 0.2374 to 0.2349 at
# $T = 1000$ (the entropy is 0.2310): the best fixed variance is close to $\beta_t$ at the first
# steps, where the data look smooth, and close to $\tilde\beta_t$ at intermediate noise levels,
# where they look like three points. A learned $\boldsymbol{\Sigma}_\theta$ {cite}`nichol2021improved`
# does this per input.
# ````
#
# **5. The weights and the log-SNR.** Using {eq}`rev-lambda-snr` and $x - 1 \ge \log x$, show that,
# for $\sigma_t^2 = \tilde\beta_t$, $\sum_{t=2}^{T}w_t \ge \frac12\big(\log\mathrm{SNR}(1) - \log\mathrm{SNR}(T)\big)$,
# with near equality when every ratio $\mathrm{SNR}(t-1)/\mathrm{SNR}(t)$ is close to 1. Compute
# both sides with `diff.vlb_weights` and `log_snr` for the linear and the cosine schedule
# ($T = 1000$). Which step makes the cosine schedule's sum so large?
#
# ````{dropdown} Solution
# Each $w_t = \frac12(r_t - 1) \ge \frac12\log r_t$ with $r_t = \mathrm{SNR}(t-1)/\mathrm{SNR}(t)$, and
# the logs telescope to $\frac12(\log\mathrm{SNR}(1) - \log\mathrm{SNR}(T))$.
#
# ```python
# from diffusion_lib.schedules import log_snr
# for name in ("linear", "cosine"):
#     d_ = GaussianDiffusion(get_beta_schedule(name, 1000))
#     ls = log_snr(d_.alphas_cumprod)
#     print(name, float(d_.vlb_weights[1:].sum()), float(0.5 * (ls[0] - ls[-1])), float(d_.vlb_weights[-1]))
# ```
#
# Linear: 10.17 against 9.66; the difference comes from the first steps, where $r_t \approx 2, 1.5, \dots$
# is not close to 1. Cosine: 512.8 against 15.0, and $w_T \approx 499.5$ alone accounts for it:
# the cosine schedule's last $\beta_T$ is clipped at 0.999, so its last step divides the SNR by
# about a thousand, a single huge log-SNR jump where $r - 1 \gg \log r$. This is one reason
# likelihood-oriented work prefers continuous time or schedules with small steps at both ends.
# ````

# %% [markdown]
# The figures quoted in the solutions, recomputed:

# %%
check("ex. 1: 1 − ᾱ_2 ≈ 2.2e-4", 1 - abar[1], 2.2e-4, atol=0.05e-4)
check(
    "ex. 1: β̃_2/β_2 ≈ 0.4547", diff.posterior_variance[1] / betas[1], 0.4547, atol=5e-5
)
T_ex = {}
for T_ in (100, 1000):  # exercise 4, the solution's code
    b, a, ab, abp, bt, _ = schedule_1d(T_, "beta")
    vlb_beta, mmse = vlb_optimal(T_, "beta")
    e = b**2 / (a * (1 - ab)) * mmse
    sig2_opt = bt + e
    ratio = bt[1:] / sig2_opt[1:]
    kl_terms = e[1:] / (2 * sig2_opt[1:]) + 0.5 * (ratio - 1 - np.log(ratio))
    L_0 = 0.5 * np.log(2 * np.pi * e[0]) + 0.5
    ex2 = np.sum(PI * (M**2 + S**2))
    L_T = 0.5 * (ab[-1] * ex2 - ab[-1] - np.log1p(-ab[-1]))
    T_ex[T_] = (vlb_beta, L_T + kl_terms.sum() + L_0)
    print(
        f"ex. 4, T = {T_}: bound {T_ex[T_][0]:.4f} nats, "
        f"with the best variances {T_ex[T_][1]:.4f}"
    )
check(
    "ex. 4: the bounds at T = 100, σ² = β and best",
    T_ex[100],
    [0.2916, 0.2689],
    atol=5e-5,
)
check(
    "ex. 4: the bounds at T = 1000, σ² = β and best",
    T_ex[1000],
    [0.2374, 0.2349],
    atol=5e-5,
)
check("ex. 4: the entropy of the mixture", entropy, 0.2310, atol=5e-5)
from diffusion_lib.schedules import log_snr  # noqa: E402

ex5 = {}
for name in ("linear", "cosine"):  # exercise 5, the solution's code
    d_ = GaussianDiffusion(get_beta_schedule(name, 1000))
    ls = log_snr(d_.alphas_cumprod)
    ex5[name] = (float(d_.vlb_weights[1:].sum()), float(0.5 * (ls[0] - ls[-1])))
    print(
        f"ex. 5, {name}: Σ w_t = {ex5[name][0]:.2f}, "
        f"½ log-SNR range = {ex5[name][1]:.2f}"
    )
check("ex. 5, linear: 10.17 against 9.66", ex5["linear"], [10.17, 9.66], atol=5e-3)
check("ex. 5, cosine: 512.8 against 15.0", ex5["cosine"], [512.8, 15.0], atol=0.05)
check("ex. 5, cosine: w_T ≈ 499.5", float(d_.vlb_weights[-1]), 499.5, atol=0.05)
_ = check(
    "ex. 5, cosine: SNR(T−1)/SNR(T) = 2 w_T + 1 ≈ 1000",
    float(2 * d_.vlb_weights[-1] + 1),
    1000,
    atol=5,
)
print(f"\nwhole chapter: {time.perf_counter() - chapter_start:.1f} s")
