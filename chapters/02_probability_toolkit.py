# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Chapter 2: The probability toolkit
#
# Every generative model in this book is a probability distribution that we can sample from, and
# most of them are trained by maximising a bound on a log-likelihood. The derivations of the later
# chapters therefore keep coming back to the same handful of facts about probability
# distributions: what a Gaussian density is, what happens when Gaussians are multiplied and
# conditioned, how far apart two distributions are (the KL divergence), why a bound holds
# (Jensen's inequality), how to differentiate through random sampling, and how densities change
# when the variable is transformed. This chapter collects these facts, derives each one step by
# step, and checks each one numerically right after it is derived.
#
# **What you will learn.**
#
# - The univariate and multivariate Gaussian density, how to sample from it, and what linear maps
#   do to it.
# - Products of Gaussian densities by **completing the square** (配方), and the two faces of the
#   same result: Bayes' rule for a linear-Gaussian model, and the conditional of a joint Gaussian.
#   The forward-process posterior of chapter 5 is one instance.
# - Entropy, the **Kullback–Leibler divergence** (KL 散度) {cite}`kullback1951information` and its
#   closed form between two Gaussians (univariate, diagonal and full covariance), checked against
#   Monte Carlo, against `torch.distributions` and against the library's `normal_kl`.
# - **Jensen's inequality** {cite}`jensen1906fonctions` and the non-negativity of the KL divergence.
# - Latent-variable models, the **evidence lower bound** (ELBO, 证据下界) and its gap, which is
#   exactly a KL divergence {cite}`kingma2014vae,blei2017variational`.
# - The **reparameterisation trick** (重参数化技巧) {cite}`kingma2014vae,rezende2014stochastic`
#   and the score-function estimator {cite}`williams1992simple`, with their gradient variances
#   computed in closed form and measured.
# - The **change-of-variables formula** (变量替换公式) for densities, the basis of normalizing
#   flows {cite}`dinh2017realnvp,papamakarios2021normalizing`.
# - The **discretised Gaussian likelihood** that turns a density into probabilities of 8-bit pixel
#   values {cite}`ho2020ddpm`, and the library functions `standard_normal_cdf`,
#   `discretized_gaussian_log_likelihood` and `normal_kl`.
#
# **What it assumes.** Random variables, expectations and variances; Bayes' rule; derivatives,
# integrals, matrix products, inverses and determinants at the level of a first university course.
# Good companions are {cite:t}`bishop2006prml` (chapters 1, 2 and 10) and {cite:t}`murphy2023pml2`.
# The notation is that of {doc}`../book/notation`: bold lower case for vectors, $D$ for a
# dimension, $\log$ for the natural logarithm (nats) and $\log_2$ for bits.
#
# **Where the tools are used.** The sum of independent Gaussians gives the closed form of the
# forward process in {doc}`04_forward_process`; completing the square gives the posterior
# {eq}`rev-posterior-var` of {doc}`05_reverse_process_vlb`; the Gaussian KL, Jensen's inequality,
# the ELBO and the discretised likelihood are the bound {eq}`rev-elbo`, its KL terms
# {eq}`rev-kl-gauss` and its decoder {eq}`rev-decoder`; the reparameterisation trick is
# {eq}`fwd-reparam`, the one line that makes training cheap in {doc}`06_training_ddpm`.

# %% [markdown]
# ## Setup
#
# The first cell installs the book's library when it is missing (on Colab); elsewhere it does
# nothing. The chapter trains nothing and runs in a few seconds on a laptop CPU. We compute in
# float64 throughout, so that exact identities can be checked to about twelve digits.

# %%
# Colab and other fresh environments: install the book's library if it is missing.
import importlib.util, subprocess, sys

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

import matplotlib.pyplot as plt
import torch
from torch import distributions as dist

from diffusion_lib import GaussianDiffusion, check, check_le, get_beta_schedule
from diffusion_lib.diffusion import (
    discretized_gaussian_log_likelihood,
    normal_kl,
    standard_normal_cdf,
)

torch.set_default_dtype(
    torch.float64
)  # every tensor below is float64 unless it says otherwise
torch.manual_seed(0)  # for the few draws that use the global generator
g = torch.Generator().manual_seed(
    0
)  # one generator, so every random number is reproducible


def randn(*shape):
    """Standard normal draws from the chapter's generator."""
    return torch.randn(*shape, generator=g)


def zscores(estimate, exact, standard_error):
    """How many standard errors a Monte Carlo estimate is away from the exact value."""
    return (torch.as_tensor(estimate) - torch.as_tensor(exact)) / torch.as_tensor(
        standard_error
    )


# %% [markdown]
# Two conventions for the numerical checks. An **exact identity** (two formulas that must agree
# algebraically) is checked to a tolerance near rounding error, typically $10^{-12}$. A **Monte
# Carlo estimate** is random, so we compare it with the exact value in units of its standard error
# and accept it within five standard errors: a standard normal exceeds 5 in absolute value with
# probability $5.7 \times 10^{-7}$, so for one estimate a false alarm happens less than once in a
# million checks (a check of $k$ estimates at once fails by chance with probability at most $k$
# times that). `zscores` above computes the ratio.

# %%
_ = check(
    "P(|Z| > 5) = erfc(5/√2) ≈ 5.7e-7 for a standard normal Z",
    math.erfc(5 / math.sqrt(2)),
    5.7e-7,
    atol=5e-9,
)

# %% [markdown]
# ## Gaussian densities
#
# A real random variable $x$ is **Gaussian** (normal, 正态分布) with mean $\mu$ and variance
# $\sigma^2 > 0$, written $x \sim \mathcal{N}(\mu, \sigma^2)$, when it has the density
#
# $$
# \mathcal{N}(x; \mu, \sigma^2) = \frac{1}{\sqrt{2\pi\sigma^2}} \exp\!\Big(-\frac{(x-\mu)^2}{2\sigma^2}\Big),
# \qquad
# \log \mathcal{N}(x; \mu, \sigma^2) = -\tfrac12\log(2\pi\sigma^2) - \frac{(x-\mu)^2}{2\sigma^2} .
# $$ (prob-gauss-1d)
#
# The second parameter is always the **variance**; code that takes a standard deviation (such as
# `torch.distributions.Normal(loc, scale)` or `torch.normal(mean, std)`) is given $\sigma$, not
# $\sigma^2$. Why the constant is $1/\sqrt{2\pi\sigma^2}$: let $I = \int e^{-u^2/2}\,du$. Then
# $I^2 = \iint e^{-(u^2 + v^2)/2}\,du\,dv = \int_0^{2\pi}\!\int_0^\infty e^{-r^2/2}\, r\,dr\,d\vartheta = 2\pi$
# in polar coordinates, so $I = \sqrt{2\pi}$; substituting $u = (x-\mu)/\sigma$, $dx = \sigma\,du$,
# gives $\int e^{-(x-\mu)^2/(2\sigma^2)}dx = \sigma\sqrt{2\pi}$.
#
# A vector $\mathbf{x} \in \mathbb{R}^D$ is Gaussian with mean $\boldsymbol{\mu}$ and a symmetric
# positive-definite covariance $\boldsymbol{\Sigma}$ when
#
# $$
# \log \mathcal{N}(\mathbf{x}; \boldsymbol{\mu}, \boldsymbol{\Sigma})
# = -\tfrac12\Big(D\log 2\pi + \log\det\boldsymbol{\Sigma}
# + (\mathbf{x}-\boldsymbol{\mu})^\top \boldsymbol{\Sigma}^{-1} (\mathbf{x}-\boldsymbol{\mu})\Big) .
# $$ (prob-gauss-nd)
#
# The quadratic form is the squared **Mahalanobis distance**. With the Cholesky factorisation
# $\boldsymbol{\Sigma} = \mathbf{L}\mathbf{L}^\top$ ($\mathbf{L}$ lower triangular with a positive
# diagonal) it is $\lVert\mathbf{u}\rVert^2$ for $\mathbf{u} = \mathbf{L}^{-1}(\mathbf{x}-\boldsymbol{\mu})$,
# and $\log\det\boldsymbol{\Sigma} = 2\sum_d \log L_{dd}$, which is how it is computed stably.
# When $\boldsymbol{\Sigma} = \operatorname{diag}(\sigma_1^2, \dots, \sigma_D^2)$ is diagonal, the
# determinant is the product of the $\sigma_d^2$ and the quadratic form is a sum, so the density
# factorises into $D$ univariate ones: the coordinates are independent. The diffusion chapters
# use the isotropic case $\boldsymbol{\Sigma} = \sigma^2\mathbf{I}$ almost exclusively.
#
# First the univariate density: it must integrate to one and have mean $\mu$ and variance
# $\sigma^2$. We integrate with the trapezoidal rule on a fine grid of $\pm 12\sigma$.


# %%
def log_normal(x, mean, var):
    """Eq. (prob-gauss-1d): log N(x; mean, var), elementwise. var is a variance."""
    var = torch.as_tensor(var)
    return -0.5 * torch.log(2 * math.pi * var) - (x - mean) ** 2 / (2 * var)


params_1d = [(0.0, 1.0), (1.5, 0.04), (-3.0, 9.0)]  # (μ, σ²)
moments = []
for mu, var in params_1d:
    x = torch.linspace(mu - 12 * math.sqrt(var), mu + 12 * math.sqrt(var), 20_001)
    p = log_normal(x, mu, var).exp()
    mass = torch.trapezoid(p, x)
    mean = torch.trapezoid(x * p, x)
    moments.append(
        [mass.item(), mean.item(), torch.trapezoid((x - mean) ** 2 * p, x).item()]
    )
check(
    "eq. (prob-gauss-1d) integrates to 1, with mean μ and variance σ² (quadrature)",
    torch.tensor(moments),
    torch.tensor([[1.0, mu, var] for mu, var in params_1d]),
    atol=1e-10,
)
_ = check(
    "log N(x; μ, σ²) equals torch.distributions.Normal(μ, σ).log_prob (σ, not σ²!)",
    log_normal(x, -3.0, 9.0),
    dist.Normal(-3.0, 3.0).log_prob(x),
    atol=1e-12,
)

# %% [markdown]
# Now the multivariate density {eq}`prob-gauss-nd`, built by hand from the Cholesky factor and
# compared with `torch.distributions.MultivariateNormal` for a random covariance in $D = 3$; then
# the diagonal case against a product of univariate densities; then a correlated two-dimensional
# Gaussian, integrated numerically over the plane.


# %%
def log_normal_nd(x, mean, cov):
    """Eq. (prob-gauss-nd) for rows x of shape (N, D), via a Cholesky factor of cov."""
    D = mean.shape[-1]
    L = torch.linalg.cholesky(cov)
    u = torch.linalg.solve_triangular(
        L, (x - mean).T, upper=False
    ).T  # u = L⁻¹(x − μ), (N, D)
    log_det = 2 * torch.log(torch.diagonal(L)).sum()
    return -0.5 * (D * math.log(2 * math.pi) + log_det + (u**2).sum(-1))


def random_cov(D, jitter=0.5):
    """A random symmetric positive-definite D×D matrix."""
    A = randn(D, D)
    return A @ A.T + jitter * torch.eye(D)


D = 3
mu3, Sigma3 = randn(D), random_cov(D)
x3 = randn(1000, D) * 2
check(
    "eq. (prob-gauss-nd) by hand equals MultivariateNormal.log_prob (D = 3)",
    log_normal_nd(x3, mu3, Sigma3),
    dist.MultivariateNormal(mu3, Sigma3).log_prob(x3),
    atol=1e-12,
)

var_diag = torch.tensor([0.5, 2.0, 0.1])
check(
    "diagonal Σ: the density is the product of the univariate densities",
    log_normal_nd(x3, mu3, torch.diag(var_diag)),
    log_normal(x3, mu3, var_diag).sum(-1),
    atol=1e-12,
)

mu2, Sigma2 = (
    torch.tensor([0.5, -0.3]),
    torch.tensor([[1.0, 0.8], [0.8, 1.0]]),
)  # correlation 0.8
grid = torch.linspace(-8, 8, 801)
g1, g2 = torch.meshgrid(grid, grid, indexing="ij")
density2 = (
    log_normal_nd(torch.stack([g1.flatten(), g2.flatten()], -1), mu2, Sigma2)
    .exp()
    .reshape(g1.shape)
)
_ = check(
    "a correlated 2-D Gaussian integrates to 1 over the plane (quadrature)",
    torch.trapezoid(torch.trapezoid(density2, grid, dim=1), grid),
    1.0,
    atol=1e-9,
)

# %% [markdown]
# **Sampling.** To draw $\mathbf{x} \sim \mathcal{N}(\boldsymbol{\mu}, \boldsymbol{\Sigma})$, draw
# a standard normal vector $\boldsymbol{\epsilon} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$ (its $D$
# coordinates independent) and set $\mathbf{x} = \boldsymbol{\mu} + \mathbf{L}\boldsymbol{\epsilon}$.
# Why this works is the subject of the next section; it is also the reparameterisation trick, met
# again later in this chapter. The figure shows univariate densities, and samples drawn this way
# over the contours of the correlated two-dimensional density.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
xs = torch.linspace(-6, 4, 1001)
for mu, var in params_1d:
    axes[0].plot(
        xs, log_normal(xs, mu, var).exp(), label=rf"$\mu = {mu}$, $\sigma^2 = {var}$"
    )
axes[0].set(
    xlabel="$x$",
    ylabel=r"$\mathcal{N}(x; \mu, \sigma^2)$",
    title="Univariate Gaussian densities",
)
axes[0].legend()
axes[0].grid(alpha=0.3)
samples2 = (
    mu2 + randn(2000, 2) @ torch.linalg.cholesky(Sigma2).T
)  # x = μ + L ε, one row per sample
axes[1].contour(g1, g2, density2, levels=8, cmap="viridis")
axes[1].scatter(samples2[:, 0], samples2[:, 1], s=2, color="k", alpha=0.3)
axes[1].set(
    xlim=(-3.5, 4),
    ylim=(-4, 3.5),
    aspect="equal",
    xlabel="$x_1$",
    ylabel="$x_2$",
    title=r"$\mathcal{N}(\boldsymbol{\mu}, \boldsymbol{\Sigma})$, correlation 0.8",
)
fig.tight_layout()
plt.show()
_ = check(
    "the peak of N(1.5, 0.04) is 1/√(2π · 0.04) ≈ 2: a density can exceed 1",
    log_normal(torch.tensor(1.5), 1.5, 0.04).exp(),
    2.0,
    atol=0.01,
)

# %% [markdown]
# *Figure: left, three univariate Gaussian densities; right, the contours of a two-dimensional
# Gaussian with correlation 0.8 and 2,000 samples $\boldsymbol{\mu} + \mathbf{L}\boldsymbol{\epsilon}$.*
# Note the narrow density in the left panel: with $\sigma^2 = 0.04$ its peak is
# $1/\sqrt{2\pi \cdot 0.04} \approx 2$. A density is not a probability and can exceed one; its
# negative logarithm can be negative. This matters when we report likelihoods of images, in the
# last section.

# %% [markdown]
# ## Linear maps of Gaussians
#
# Let $\mathbf{x} \sim \mathcal{N}(\boldsymbol{\mu}, \boldsymbol{\Sigma})$ in $\mathbb{R}^D$, and
# let $\mathbf{A}$ be a $K \times D$ matrix and $\mathbf{b} \in \mathbb{R}^K$. Then
#
# $$
# \mathbf{y} = \mathbf{A}\mathbf{x} + \mathbf{b} \sim \mathcal{N}\big(\mathbf{A}\boldsymbol{\mu} + \mathbf{b},\ \mathbf{A}\boldsymbol{\Sigma}\mathbf{A}^\top\big)
# \quad (\text{when } \mathbf{A}\boldsymbol{\Sigma}\mathbf{A}^\top \text{ is invertible}).
# $$ (prob-gauss-linear)
#
# *Proof, one step per line.* (i) By linearity of expectation,
# $\mathbb{E}[\mathbf{y}] = \mathbf{A}\,\mathbb{E}[\mathbf{x}] + \mathbf{b} = \mathbf{A}\boldsymbol{\mu} + \mathbf{b}$.
# (ii) The covariance is
# $\mathbb{E}[(\mathbf{y} - \mathbb{E}\mathbf{y})(\mathbf{y} - \mathbb{E}\mathbf{y})^\top]
# = \mathbf{A}\,\mathbb{E}[(\mathbf{x}-\boldsymbol{\mu})(\mathbf{x}-\boldsymbol{\mu})^\top]\,\mathbf{A}^\top
# = \mathbf{A}\boldsymbol{\Sigma}\mathbf{A}^\top$. (iii) That $\mathbf{y}$ is Gaussian follows from
# the characteristic function: $\mathbb{E}[e^{i\mathbf{s}^\top\mathbf{x}}] =
# \exp(i\mathbf{s}^\top\boldsymbol{\mu} - \tfrac12\mathbf{s}^\top\boldsymbol{\Sigma}\mathbf{s})$ for a
# Gaussian, so $\mathbb{E}[e^{i\mathbf{s}^\top\mathbf{y}}] = e^{i\mathbf{s}^\top\mathbf{b}}\,
# \mathbb{E}[e^{i(\mathbf{A}^\top\mathbf{s})^\top\mathbf{x}}] = \exp\big(i\mathbf{s}^\top(\mathbf{A}\boldsymbol{\mu} +
# \mathbf{b}) - \tfrac12\mathbf{s}^\top\mathbf{A}\boldsymbol{\Sigma}\mathbf{A}^\top\mathbf{s}\big)$,
# the characteristic function of the Gaussian on the right of {eq}`prob-gauss-linear`. $\square$
#
# Two special cases are used constantly. With $\mathbf{x} = \boldsymbol{\epsilon} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$,
# $\mathbf{A} = \mathbf{L}$ and $\mathbf{b} = \boldsymbol{\mu}$, it says that
# $\boldsymbol{\mu} + \mathbf{L}\boldsymbol{\epsilon} \sim \mathcal{N}(\boldsymbol{\mu}, \mathbf{L}\mathbf{L}^\top)$:
# the sampling recipe above. With $\mathbf{x} = (\mathbf{u}, \mathbf{w})$ stacked from two
# independent Gaussians and $\mathbf{A} = [c\,\mathbf{I}\ \ \mathbf{I}]$, it gives the
# sum-of-Gaussians lemma {eq}`fwd-sum-gauss` on which the closed form of the forward process rests.
# The check draws 200,000 samples and compares their mean and covariance with
# {eq}`prob-gauss-linear` in units of the standard errors (for a Gaussian, the sample covariance
# entry $\hat S_{ij}$ has standard error $\sqrt{(S_{ii}S_{jj} + S_{ij}^2)/N}$).

# %%
N = 200_000
A_lin, b_lin = randn(2, D), torch.tensor([1.0, -2.0])
x_samples = mu3 + randn(N, D) @ torch.linalg.cholesky(Sigma3).T  # x ~ N(μ, Σ), D = 3
y_samples = x_samples @ A_lin.T + b_lin  # y = A x + b, K = 2
mean_y, cov_y = A_lin @ mu3 + b_lin, A_lin @ Sigma3 @ A_lin.T  # eq. (prob-gauss-linear)
se_mean = (torch.diagonal(cov_y) / N).sqrt()
se_cov = (
    (torch.diagonal(cov_y)[:, None] * torch.diagonal(cov_y)[None, :] + cov_y**2) / N
).sqrt()
check(
    "mean of A x + b is A μ + b (Monte Carlo, within 5 standard errors)",
    zscores(y_samples.mean(0), mean_y, se_mean),
    0.0,
    atol=5,
)
_ = check(
    "covariance of A x + b is A Σ Aᵀ (Monte Carlo, within 5 standard errors)",
    zscores(torch.cov(y_samples.T), cov_y, se_cov),
    0.0,
    atol=5,
)

# %% [markdown]
# ## Products of Gaussians: completing the square
#
# Bayes' rule multiplies a likelihood by a prior. When both are Gaussian in the same variable the
# product is again Gaussian, up to a constant, and the constant is itself a Gaussian density. In
# one dimension, for means $a, b$ and variances $A, B$:
#
# $$
# \mathcal{N}(x; a, A)\,\mathcal{N}(x; b, B) = \mathcal{N}(a; b, A + B)\;\mathcal{N}(x; c, C),
# \qquad
# \frac{1}{C} = \frac{1}{A} + \frac{1}{B},
# \qquad
# c = C\Big(\frac{a}{A} + \frac{b}{B}\Big) .
# $$ (prob-gauss-product)
#
# **Precisions add, and the mean is the precision-weighted average of the means.** The derivation
# completes the square in the exponent. One step per line:
#
# $$
# \begin{aligned}
# \frac{(x-a)^2}{A} + \frac{(x-b)^2}{B}
# &\overset{(a)}{=} x^2\Big(\frac1A + \frac1B\Big) - 2x\Big(\frac aA + \frac bB\Big) + \frac{a^2}{A} + \frac{b^2}{B} \\
# &\overset{(b)}{=} \frac{x^2}{C} - \frac{2xc}{C} + \frac{a^2}{A} + \frac{b^2}{B} \\
# &\overset{(c)}{=} \frac{(x - c)^2}{C} + \Big(\frac{a^2}{A} + \frac{b^2}{B} - \frac{c^2}{C}\Big) \\
# &\overset{(d)}{=} \frac{(x - c)^2}{C} + \frac{(a - b)^2}{A + B} .
# \end{aligned}
# $$ (prob-complete-square)
#
# (a) expands both squares and collects powers of $x$; (b) names the coefficients with the
# definitions of $C$ and $c$ in {eq}`prob-gauss-product`; (c) adds and subtracts $c^2/C$ to
# complete the square; (d) is algebra: with $C = AB/(A+B)$, $\;c^2/C = (aB + bA)^2/(AB(A+B))$, and
# $\frac{a^2}{A} + \frac{b^2}{B} - \frac{c^2}{C} = \frac{(a^2B + b^2A)(A+B) - (aB+bA)^2}{AB(A+B)}
# = \frac{AB(a - b)^2}{AB(A+B)}$. The normalising constants match too:
# $\frac{1}{\sqrt{2\pi A}}\frac{1}{\sqrt{2\pi B}} = \frac{1}{\sqrt{2\pi(A+B)}}\frac{1}{\sqrt{2\pi C}}$
# because $AB = (A+B)\,C$. Multiplying by $-\tfrac12$ and exponentiating gives
# {eq}`prob-gauss-product`.
#
# In $D$ dimensions the same steps, with matrices, give
# $\mathcal{N}(\mathbf{x}; \mathbf{a}, \mathbf{A})\,\mathcal{N}(\mathbf{x}; \mathbf{b}, \mathbf{B})
# = \mathcal{N}(\mathbf{a}; \mathbf{b}, \mathbf{A} + \mathbf{B})\,\mathcal{N}(\mathbf{x}; \mathbf{c}, \mathbf{C})$
# with $\mathbf{C}^{-1} = \mathbf{A}^{-1} + \mathbf{B}^{-1}$ and
# $\mathbf{c} = \mathbf{C}(\mathbf{A}^{-1}\mathbf{a} + \mathbf{B}^{-1}\mathbf{b})$ {cite}`bishop2006prml`.
# We check both versions pointwise, and that integrating the product over $x$ leaves
# $\mathcal{N}(a; b, A+B)$.

# %%
a_, A_, b_, B_ = 0.7, 0.5, -1.2, 2.0
C_ = 1 / (1 / A_ + 1 / B_)
c_ = C_ * (a_ / A_ + b_ / B_)
xs = torch.linspace(-6, 6, 2001)
lhs = log_normal(xs, a_, A_) + log_normal(xs, b_, B_)
rhs = log_normal(torch.tensor(a_), b_, A_ + B_) + log_normal(xs, c_, C_)
check(
    "eq. (prob-gauss-product): N(x; a, A) N(x; b, B) = N(a; b, A + B) N(x; c, C), grid",
    lhs,
    rhs,
    atol=1e-12,
)
check(
    "∫ N(x; a, A) N(x; b, B) dx = N(a; b, A + B) (quadrature)",
    torch.trapezoid(lhs.exp(), xs),
    log_normal(torch.tensor(a_), b_, A_ + B_).exp(),
    atol=1e-12,
)

Am, Bm, am, bm = random_cov(D), random_cov(D), randn(D), randn(D)
Cm = torch.linalg.inv(torch.linalg.inv(Am) + torch.linalg.inv(Bm))
cm = Cm @ (torch.linalg.solve(Am, am) + torch.linalg.solve(Bm, bm))
_ = check(
    "the same in D = 3 dimensions: precisions add, means are precision-weighted",
    log_normal_nd(x3, am, Am) + log_normal_nd(x3, bm, Bm),
    log_normal_nd(am[None], bm, Am + Bm) + log_normal_nd(x3, cm, Cm),
    atol=1e-10,
)

# %% [markdown]
# ## Bayes' rule for Gaussians
#
# Consider the simplest **latent-variable model** (潜变量模型): a hidden $z$ with a Gaussian prior
# and an observation $x$ that is a noisy multiple of it,
#
# $$
# z \sim \mathcal{N}(\mu_0, \sigma_0^2), \qquad x \mid z \sim \mathcal{N}(w z, \sigma_x^2) .
# $$ (prob-lin-gauss)
#
# What do we learn about $z$ from $x$, and how probable is $x$? As a function of $z$, the
# likelihood is a Gaussian in $z$: $(x - wz)^2/\sigma_x^2 = (z - x/w)^2/(\sigma_x^2/w^2)$, so
# $\mathcal{N}(x; wz, \sigma_x^2) = \frac{1}{|w|}\mathcal{N}(z; x/w, \sigma_x^2/w^2)$. Multiplying by the prior and
# applying {eq}`prob-gauss-product` with $a = x/w$, $A = \sigma_x^2/w^2$, $b = \mu_0$, $B = \sigma_0^2$:
#
# $$
# p(z \mid x) = \mathcal{N}\big(z;\ \mu_{z|x},\ \sigma_{z|x}^2\big),
# \qquad
# \frac{1}{\sigma_{z|x}^2} = \frac{1}{\sigma_0^2} + \frac{w^2}{\sigma_x^2},
# \qquad
# \mu_{z|x} = \sigma_{z|x}^2\Big(\frac{\mu_0}{\sigma_0^2} + \frac{w\,x}{\sigma_x^2}\Big),
# $$ (prob-lin-gauss-posterior)
#
# and the leftover constant $\frac{1}{|w|}\mathcal{N}(x/w; \mu_0, \sigma_0^2 + \sigma_x^2/w^2)$ is the **evidence**
# (marginal likelihood), which rewrites as
#
# $$
# p(x) = \int p(x \mid z)\, p(z)\, dz = \mathcal{N}\big(x;\ w \mu_0,\ w^2 \sigma_0^2 + \sigma_x^2\big) .
# $$ (prob-lin-gauss-evidence)
#
# (The evidence also follows from {eq}`prob-gauss-linear`: $x = wz + \sigma_x\epsilon$ is a linear
# map of the independent Gaussians $z$ and $\epsilon$.) The check computes Bayes' rule by brute
# force on a fine grid of $z$: multiply, integrate, divide.

# %%
mu0, var0, w_, var_x, x_obs = 0.5, 2.0, 1.5, 0.3, 2.0
post_var = 1 / (1 / var0 + w_**2 / var_x)  # eq. (prob-lin-gauss-posterior)
post_mean = post_var * (mu0 / var0 + w_ * x_obs / var_x)
evidence = log_normal(
    torch.tensor(x_obs), w_ * mu0, w_**2 * var0 + var_x
).exp()  # eq. (prob-lin-gauss-evidence)

z = torch.linspace(mu0 - 20, mu0 + 20, 400_001)
joint = (
    log_normal(torch.tensor(x_obs), w_ * z, var_x) + log_normal(z, mu0, var0)
).exp()  # p(x | z) p(z)
evidence_grid = torch.trapezoid(joint, z)
posterior_grid = joint / evidence_grid  # Bayes' rule
mean_grid = torch.trapezoid(z * posterior_grid, z)
var_grid = torch.trapezoid((z - mean_grid) ** 2 * posterior_grid, z)
check(
    "evidence p(x) by quadrature equals eq. (prob-lin-gauss-evidence)",
    evidence_grid,
    evidence,
    atol=1e-12,
)
_ = check(
    "posterior mean, variance by Bayes' rule on a grid: eq. (prob-lin-gauss-posterior)",
    torch.stack([mean_grid, var_grid]),
    [post_mean, post_var],
    atol=1e-10,
)

# %% [markdown]
# ### The conditional of a joint Gaussian
#
# The same result in another guise. Let $(\mathbf{x}_1, \mathbf{x}_2)$ be jointly Gaussian with
# means $\boldsymbol{\mu}_1, \boldsymbol{\mu}_2$ and covariance blocks
# $\boldsymbol{\Sigma}_{11}, \boldsymbol{\Sigma}_{12} = \boldsymbol{\Sigma}_{21}^\top, \boldsymbol{\Sigma}_{22}$. Then
#
# $$
# \mathbf{x}_1 \mid \mathbf{x}_2 \sim \mathcal{N}\Big(\boldsymbol{\mu}_1 + \boldsymbol{\Sigma}_{12}\boldsymbol{\Sigma}_{22}^{-1}(\mathbf{x}_2 - \boldsymbol{\mu}_2),\ \
# \boldsymbol{\Sigma}_{11} - \boldsymbol{\Sigma}_{12}\boldsymbol{\Sigma}_{22}^{-1}\boldsymbol{\Sigma}_{21}\Big) .
# $$ (prob-gauss-conditional)
#
# *Proof.* Let $\mathbf{K} = \boldsymbol{\Sigma}_{12}\boldsymbol{\Sigma}_{22}^{-1}$ and
# $\mathbf{r} = \mathbf{x}_1 - \mathbf{K}\mathbf{x}_2$. (i) $(\mathbf{r}, \mathbf{x}_2)$ is a linear
# map of $(\mathbf{x}_1, \mathbf{x}_2)$, hence jointly Gaussian by {eq}`prob-gauss-linear`.
# (ii) $\operatorname{Cov}(\mathbf{r}, \mathbf{x}_2) = \boldsymbol{\Sigma}_{12} - \mathbf{K}\boldsymbol{\Sigma}_{22} = \mathbf{0}$,
# and jointly Gaussian variables that are uncorrelated are independent (the joint density
# factorises), so conditioning on $\mathbf{x}_2$ does not change the distribution of $\mathbf{r}$.
# (iii) Hence, given $\mathbf{x}_2$, $\mathbf{x}_1 = \mathbf{r} + \mathbf{K}\mathbf{x}_2$ has mean
# $\mathbb{E}[\mathbf{r}] + \mathbf{K}\mathbf{x}_2 = \boldsymbol{\mu}_1 + \mathbf{K}(\mathbf{x}_2 - \boldsymbol{\mu}_2)$
# and covariance $\operatorname{Cov}(\mathbf{r}) = \boldsymbol{\Sigma}_{11} - \mathbf{K}\boldsymbol{\Sigma}_{21}$
# (expand $\operatorname{Cov}(\mathbf{x}_1 - \mathbf{K}\mathbf{x}_2)$ and use
# $\mathbf{K}\boldsymbol{\Sigma}_{22}\mathbf{K}^\top = \mathbf{K}\boldsymbol{\Sigma}_{21}$). $\square$
#
# Two checks. First, the model {eq}`prob-lin-gauss` makes $(z, x)$ jointly Gaussian with
# $\operatorname{Var}(z) = \sigma_0^2$, $\operatorname{Cov}(z, x) = w \sigma_0^2$, $\operatorname{Var}(x) = w^2 \sigma_0^2 + \sigma_x^2$;
# {eq}`prob-gauss-conditional` must give the posterior {eq}`prob-lin-gauss-posterior` again. Second,
# a preview of chapter 5. Given $\mathbf{x}_0$, the forward process of {doc}`04_forward_process`
# makes $x_{t-1} \sim \mathcal{N}(\sqrt{\bar\alpha_{t-1}}x_0, 1 - \bar\alpha_{t-1})$ and
# $x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon$ jointly Gaussian, with
# $\operatorname{Cov}(x_{t-1}, x_t) = \sqrt{\alpha_t}(1-\bar\alpha_{t-1})$ and
# $\operatorname{Var}(x_t) = 1 - \bar\alpha_t$. So {eq}`prob-gauss-conditional` gives the posterior
# $q(x_{t-1} \mid x_t, x_0)$ in two lines, and it must agree with the library's
# `q_posterior_mean_variance`, which implements the formulas {eq}`rev-posterior-mean` and
# {eq}`rev-posterior-var` that chapter 5 derives by completing the square.


# %%
def gauss_condition(mu1, mu2, S11, S12, S22, x2):
    """Eq. (prob-gauss-conditional): mean and variance of x1 | x2.

    For scalars, or elementwise for tensors.
    """
    K = S12 / S22
    return mu1 + K * (x2 - mu2), S11 - K * S12


cond_mean, cond_var = gauss_condition(
    mu0, w_ * mu0, var0, w_ * var0, w_**2 * var0 + var_x, x_obs
)
check(
    "the joint-Gaussian conditional equals the linear-Gaussian model's Bayes posterior",
    [float(cond_mean), float(cond_var)],
    [post_mean, post_var],
    atol=1e-12,
)

diff = GaussianDiffusion(get_beta_schedule("linear", 1000))
t_idx = torch.arange(1, 1000)  # library indices 1..T−1, i.e. paper steps t = 2..T
ab, ab_prev, al = (
    diff.alphas_cumprod[t_idx],
    diff.alphas_cumprod_prev[t_idx],
    diff.alphas[t_idx],
)
x0_, xt_ = (
    0.6 * torch.ones(len(t_idx)),
    randn(len(t_idx)),
)  # a data value and a noisy value for each t
mean_q, var_q = gauss_condition(
    ab_prev.sqrt() * x0_,
    ab.sqrt() * x0_,
    1 - ab_prev,
    al.sqrt() * (1 - ab_prev),
    1 - ab,
    xt_,
)
post = diff.q_posterior_mean_variance(x0_[:, None], xt_[:, None], t_idx)
_ = check(
    "conditioning the joint Gaussian (x_(t−1), x_t) gives the library's posterior",
    torch.stack([mean_q, var_q]),
    torch.stack([post.mean[:, 0], post.variance[:, 0]]),
    atol=1e-11,
)

# %% [markdown]
# ## Entropy and the KL divergence
#
# The **entropy** (熵) of a distribution with density $p$ is $H(p) = -\mathbb{E}_{p}[\log p(\mathbf{x})]$
# (in nats), and the **Kullback–Leibler divergence** from $p$ to $q$ is
#
# $$
# D_{\mathrm{KL}}(q \,\Vert\, p) = \mathbb{E}_{\mathbf{x} \sim q}\big[\log q(\mathbf{x}) - \log p(\mathbf{x})\big] .
# $$ (prob-kl)
#
# It measures how many extra nats a code built for $p$ wastes on data from $q$
# {cite}`kullback1951information,cover2006elements`. It is not symmetric, and it is not a
# distance, but it is never negative and it is zero only when $q = p$ (proved with Jensen's
# inequality in the next section). The expectation is under the **first** argument.
#
# **The Gaussian entropy.** Take the expectation of minus {eq}`prob-gauss-nd` under the same
# Gaussian. The quadratic form has expectation $\mathbb{E}[(\mathbf{x}-\boldsymbol{\mu})^\top\boldsymbol{\Sigma}^{-1}(\mathbf{x}-\boldsymbol{\mu})]
# = \operatorname{tr}\big(\boldsymbol{\Sigma}^{-1}\mathbb{E}[(\mathbf{x}-\boldsymbol{\mu})(\mathbf{x}-\boldsymbol{\mu})^\top]\big)
# = \operatorname{tr}(\mathbf{I}) = D$ (a scalar equals its trace, and the trace is linear and
# cyclic), so
#
# $$
# H\big(\mathcal{N}(\boldsymbol{\mu}, \boldsymbol{\Sigma})\big) = \tfrac12\big(D\log(2\pi e) + \log\det\boldsymbol{\Sigma}\big) .
# $$ (prob-gauss-entropy)
#
# **The KL divergence between two Gaussians.** Let $q = \mathcal{N}(\boldsymbol{\mu}_1, \boldsymbol{\Sigma}_1)$
# and $p = \mathcal{N}(\boldsymbol{\mu}_2, \boldsymbol{\Sigma}_2)$. We need the expectation of a
# quadratic form under $q$: writing $\mathbf{x} - \boldsymbol{\mu}_2 = (\mathbf{x} - \boldsymbol{\mu}_1) + (\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2)$,
# the cross term has mean zero and
# $\mathbb{E}_q[(\mathbf{x}-\boldsymbol{\mu}_2)^\top\boldsymbol{\Sigma}_2^{-1}(\mathbf{x}-\boldsymbol{\mu}_2)]
# = \operatorname{tr}(\boldsymbol{\Sigma}_2^{-1}\boldsymbol{\Sigma}_1) + (\boldsymbol{\mu}_1-\boldsymbol{\mu}_2)^\top\boldsymbol{\Sigma}_2^{-1}(\boldsymbol{\mu}_1-\boldsymbol{\mu}_2)$.
# Then, one step per line,
#
# $$
# \begin{aligned}
# D_{\mathrm{KL}}(q \,\Vert\, p)
# &\overset{(a)}{=} \mathbb{E}_q\big[\log\mathcal{N}(\mathbf{x}; \boldsymbol{\mu}_1, \boldsymbol{\Sigma}_1)\big] - \mathbb{E}_q\big[\log\mathcal{N}(\mathbf{x}; \boldsymbol{\mu}_2, \boldsymbol{\Sigma}_2)\big] \\
# &\overset{(b)}{=} -\tfrac12\big(D\log 2\pi + \log\det\boldsymbol{\Sigma}_1 + D\big)
#   + \tfrac12\big(D\log 2\pi + \log\det\boldsymbol{\Sigma}_2 + \operatorname{tr}(\boldsymbol{\Sigma}_2^{-1}\boldsymbol{\Sigma}_1)
#   + (\boldsymbol{\mu}_1-\boldsymbol{\mu}_2)^\top\boldsymbol{\Sigma}_2^{-1}(\boldsymbol{\mu}_1-\boldsymbol{\mu}_2)\big) \\
# &\overset{(c)}{=} \tfrac12\Big(\operatorname{tr}(\boldsymbol{\Sigma}_2^{-1}\boldsymbol{\Sigma}_1)
#   + (\boldsymbol{\mu}_2-\boldsymbol{\mu}_1)^\top\boldsymbol{\Sigma}_2^{-1}(\boldsymbol{\mu}_2-\boldsymbol{\mu}_1)
#   - D + \log\frac{\det\boldsymbol{\Sigma}_2}{\det\boldsymbol{\Sigma}_1}\Big) .
# \end{aligned}
# $$ (prob-kl-gauss-nd)
#
# (a) is the definition {eq}`prob-kl`; (b) inserts {eq}`prob-gauss-nd` twice, using
# $\mathbb{E}_q[\text{quadratic form}] = D$ for the first term (as for the entropy) and the
# expectation just computed for the second; (c) collects terms. In one dimension this is
#
# $$
# D_{\mathrm{KL}}\big(\mathcal{N}(\mu_1, \sigma_1^2) \,\Vert\, \mathcal{N}(\mu_2, \sigma_2^2)\big)
# = \frac12\Big(\frac{\sigma_1^2}{\sigma_2^2} + \frac{(\mu_1 - \mu_2)^2}{\sigma_2^2} - 1 + \log\frac{\sigma_2^2}{\sigma_1^2}\Big),
# $$ (prob-kl-gauss-1d)
#
# and for **diagonal** covariances the trace, the quadratic form and the log-determinant are all
# sums over coordinates, so the KL is the sum of $D$ univariate terms {eq}`prob-kl-gauss-1d`:
#
# $$
# D_{\mathrm{KL}}\big(\mathcal{N}(\boldsymbol{\mu}_1, \operatorname{diag}\boldsymbol{\sigma}_1^2) \,\Vert\, \mathcal{N}(\boldsymbol{\mu}_2, \operatorname{diag}\boldsymbol{\sigma}_2^2)\big)
# = \sum_{d=1}^{D} D_{\mathrm{KL}}\big(\mathcal{N}(\mu_{1,d}, \sigma_{1,d}^2) \,\Vert\, \mathcal{N}(\mu_{2,d}, \sigma_{2,d}^2)\big) .
# $$ (prob-kl-gauss-diag)
#
# This is the form used for the terms $L_{t-1}$ of the diffusion bound ({eq}`rev-kl-gauss`) and for
# the KL term of a variational autoencoder. The library's `normal_kl(mean1, logvar1, mean2, logvar2)`
# computes {eq}`prob-kl-gauss-1d` elementwise from **log-variances**. The checks: the entropy
# against `torch.distributions` and Monte Carlo; the univariate KL against Monte Carlo, against
# `torch.distributions.kl_divergence` and against `normal_kl`; the full-covariance KL against
# `torch.distributions` and Monte Carlo; the diagonal case against a sum of `normal_kl` terms.


# %%
def kl_gauss(m1, v1, m2, v2):
    """Eq. (prob-kl-gauss-1d): KL(N(m1, v1) ‖ N(m2, v2)) in nats, elementwise.

    v1 and v2 are variances.
    """
    return 0.5 * (v1 / v2 + (m1 - m2) ** 2 / v2 - 1 + torch.log(v2 / v1))


def kl_gauss_nd(mu1, S1, mu2, S2):
    """Eq. (prob-kl-gauss-nd): KL(N(mu1, S1) ‖ N(mu2, S2)) in nats, full covariances."""
    d = mu2 - mu1
    return 0.5 * (
        torch.trace(torch.linalg.solve(S2, S1))
        + d @ torch.linalg.solve(S2, d)
        - mu1.shape[-1]
        + torch.logdet(S2)
        - torch.logdet(S1)
    )


# The entropy, eq. (prob-gauss-entropy).
entropy_hand = 0.5 * (D * math.log(2 * math.pi * math.e) + torch.logdet(Sigma3))
check(
    "eq. (prob-gauss-entropy) equals MultivariateNormal.entropy()",
    entropy_hand,
    dist.MultivariateNormal(mu3, Sigma3).entropy(),
    atol=1e-12,
)
neg_log_p = -log_normal_nd(
    x_samples, mu3, Sigma3
)  # the 200,000 samples of N(μ, Σ) drawn above
check(
    "entropy = E[−log p(x)] (Monte Carlo, within 5 standard errors)",
    zscores(neg_log_p.mean(), entropy_hand, neg_log_p.std() / math.sqrt(N)),
    0.0,
    atol=5,
)

# Univariate pairs (μ1, σ1², μ2, σ2²), among them the pair of equal distributions.
pairs = torch.tensor(
    [
        [0.0, 1.0, 0.0, 1.0],
        [0.3, 0.5, -0.2, 2.0],
        [1.0, 0.01, 0.9, 0.02],
        [-2.0, 3.0, 1.0, 0.5],
    ]
)
m1, v1, m2, v2 = pairs.T
kl_1d = kl_gauss(m1, v1, m2, v2)
x_q = m1 + v1.sqrt() * randn(400_000, 4)  # 400,000 draws from each q = N(μ1, σ1²)
log_ratio = log_normal(x_q, m1, v1) - log_normal(x_q, m2, v2)
check(
    "eq. (prob-kl-gauss-1d) = E_q[log q − log p] (Monte Carlo, within 5 std. errors)",
    zscores(log_ratio.mean(0), kl_1d, log_ratio.std(0) / math.sqrt(len(x_q)) + 1e-300),
    0.0,
    atol=5,
)
check(
    "eq. (prob-kl-gauss-1d) equals torch.distributions.kl_divergence(Normal, Normal)",
    kl_1d,
    dist.kl_divergence(dist.Normal(m1, v1.sqrt()), dist.Normal(m2, v2.sqrt())),
    atol=1e-14,
)
check(
    "eq. (prob-kl-gauss-1d) equals diffusion_lib's normal_kl (it takes log-variances)",
    kl_1d,
    normal_kl(m1, v1.log(), m2, v2.log()),
    atol=1e-14,
)
check("KL(p ‖ p) = 0", kl_1d[0], 0.0, atol=0.0)

# Full covariances in D = 3.
mu_b, Sigma_b = randn(D), random_cov(D)
kl_full = kl_gauss_nd(mu3, Sigma3, mu_b, Sigma_b)
lr_full = log_normal_nd(x_samples, mu3, Sigma3) - log_normal_nd(
    x_samples, mu_b, Sigma_b
)
check(
    "eq. (prob-kl-gauss-nd) equals torch's kl_divergence of two MultivariateNormal",
    kl_full,
    dist.kl_divergence(
        dist.MultivariateNormal(mu3, Sigma3), dist.MultivariateNormal(mu_b, Sigma_b)
    ),
    atol=1e-12,
)
check(
    "eq. (prob-kl-gauss-nd) = E_q[log q − log p] (Monte Carlo, within 5 std. errors)",
    zscores(lr_full.mean(), kl_full, lr_full.std() / math.sqrt(N)),
    0.0,
    atol=5,
)

# Diagonal covariances in D = 64 (the size of a digit): the full formula, the sum of
# 1-D terms, and normal_kl.
mu_p, mu_q, var_p, var_q = (
    randn(64),
    randn(64),
    torch.rand(64, generator=g) + 0.1,
    torch.rand(64, generator=g) + 0.1,
)
_ = check(
    "diagonal Σ: eq. (prob-kl-gauss-nd) = Σ_d eq. (prob-kl-gauss-1d) = Σ_d normal_kl",
    [
        kl_gauss_nd(mu_q, torch.diag(var_q), mu_p, torch.diag(var_p)),
        kl_gauss(mu_q, var_q, mu_p, var_p).sum(),
    ],
    normal_kl(mu_q, var_q.log(), mu_p, var_p.log()).sum(),
    atol=1e-11,
)

# %% [markdown]
# Two consequences are worth seeing in numbers. When the two variances are **equal**, the log and
# the ratio terms cancel and the KL is a scaled squared distance between the means,
# $\lVert\boldsymbol{\mu}_1 - \boldsymbol{\mu}_2\rVert^2 / (2\sigma^2)$: this is how the diffusion
# bound becomes a mean-squared error in chapter 5 ({eq}`rev-kl-equal-var`). When they differ, the
# KL is **asymmetric**. Below, $q = \mathcal{N}(0, 1)$ and $p = \mathcal{N}(1, 4)$. Measured against
# the wide $p$, the narrow $q$ costs little; measured against the narrow $q$, the wide $p$ costs
# much more, because $D_{\mathrm{KL}}(\cdot \,\Vert\, r)$ is large wherever the first argument
# puts mass that $r$ considers unlikely.

# %%
sigma2 = 0.3
check(
    "equal variances: KL = ‖μ1 − μ2‖² / (2σ²)",
    normal_kl(mu_q, math.log(sigma2), mu_p, math.log(sigma2)).sum(),
    ((mu_q - mu_p) ** 2).sum() / (2 * sigma2),
    atol=1e-11,
)
kl_qp = kl_gauss(
    torch.tensor(0.0), torch.tensor(1.0), torch.tensor(1.0), torch.tensor(4.0)
)
kl_pq = kl_gauss(
    torch.tensor(1.0), torch.tensor(4.0), torch.tensor(0.0), torch.tensor(1.0)
)
print(
    f"KL(N(0, 1) ‖ N(1, 4)) = {kl_qp:.4f} nats, "
    f"KL(N(1, 4) ‖ N(0, 1)) = {kl_pq:.4f} nats"
)
_ = check_le(
    "the KL divergence is not symmetric (the directions differ by more than 0.5 nats)",
    0.5,
    (kl_pq - kl_qp).abs(),
)

# %% [markdown]
# ## Jensen's inequality
#
# A function $f$ is **convex** when it lies below its chords, and then also above each of its
# tangents: for every point $m$ there is a slope $k$ with $f(x) \ge f(m) + k\,(x - m)$ for all $x$.
# Put $m = \mathbb{E}[X]$ and take the expectation of both sides; the linear term has mean zero:
#
# $$
# f\big(\mathbb{E}[X]\big) \le \mathbb{E}\big[f(X)\big] \quad (f \text{ convex}),
# \qquad
# \log \mathbb{E}[Y] \ge \mathbb{E}[\log Y] \quad (Y > 0) .
# $$ (prob-jensen)
#
# The second form is the first applied to the convex function $-\log$. For a strictly convex $f$,
# equality holds only when $X$ is constant (almost surely). This is **Jensen's inequality**
# {cite}`jensen1906fonctions`. Its most important consequence for us is **Gibbs' inequality**,
# $D_{\mathrm{KL}}(q \,\Vert\, p) \ge 0$:
#
# $$
# -D_{\mathrm{KL}}(q \,\Vert\, p) = \mathbb{E}_q\Big[\log\frac{p(\mathbf{x})}{q(\mathbf{x})}\Big]
# \le \log \mathbb{E}_q\Big[\frac{p(\mathbf{x})}{q(\mathbf{x})}\Big] = \log\int p(\mathbf{x})\,d\mathbf{x} = \log 1 = 0,
# $$ (prob-gibbs)
#
# with equality only when $p/q$ is constant, that is $p = q$. (The integral runs over the region
# where $q > 0$, so it is at most 1, which only strengthens the inequality.)
#
# Two checks. The log-normal variable $Y = e^X$, $X \sim \mathcal{N}(\mu, \sigma^2)$, has
# $\mathbb{E}[\log Y] = \mu$ and $\log\mathbb{E}[Y] = \mu + \sigma^2/2$ (the moment generating
# function of a Gaussian), so the Jensen gap is exactly $\sigma^2/2$; we estimate both sides by
# Monte Carlo. (That the estimated gap is positive proves nothing: a sample is a distribution
# too, and Jensen's inequality holds for it whatever the formula. What can fail is its size, so
# we compare the estimated gap with $\sigma^2/2$, in units of its standard error, from the delta
# method: $\log\bar Y - \overline{\log Y}$ varies like the mean of $Y_i/\mathbb{E}[Y] - \log Y_i$.)
# Then we draw 100,000 random pairs of distributions on five points and confirm that
# none has a negative KL divergence.

# %%
mu_x, var_x = 0.3, 0.64
Y = (mu_x + math.sqrt(var_x) * randn(400_000)).exp()
log_mean_Y, mean_log_Y = Y.mean().log(), Y.log().mean()
se_log_mean = Y.std() / (
    Y.mean() * math.sqrt(len(Y))
)  # delta method: se(log Ȳ) ≈ se(Ȳ)/Ȳ
check(
    "log E[Y] = μ + σ²/2 for log-normal Y (Monte Carlo, within 5 standard errors)",
    zscores(log_mean_Y, mu_x + var_x / 2, se_log_mean),
    0.0,
    atol=5,
)
check(
    "E[log Y] = μ (Monte Carlo, within 5 standard errors)",
    zscores(mean_log_Y, mu_x, Y.log().std() / math.sqrt(len(Y))),
    0.0,
    atol=5,
)
jensen_gap = log_mean_Y - mean_log_Y
se_gap = (Y / Y.mean() - Y.log()).std() / math.sqrt(len(Y))  # delta method
print(f"Jensen gap log E[Y] − E[log Y] = {jensen_gap:.4f} (σ²/2 = {var_x / 2:.4f})")
check(
    "Jensen, eq. (prob-jensen): the gap log E[Y] − E[log Y] is σ²/2 (5 std. errors)",
    zscores(jensen_gap, var_x / 2, se_gap),
    0.0,
    atol=5,
)

q_disc = torch.distributions.Dirichlet(torch.ones(5)).sample((100_000,))
p_disc = torch.distributions.Dirichlet(torch.full((5,), 0.3)).sample((100_000,))
kl_disc = (q_disc * (q_disc.log() - p_disc.log())).sum(-1)
print(
    f"smallest KL among 100,000 random pairs: {kl_disc.min():.2e} nats; "
    f"largest: {kl_disc.max():.1f} nats"
)
_ = check_le(
    "Gibbs' inequality, eq. (prob-gibbs): KL(q ‖ p) ≥ 0 for every pair",
    0.0,
    kl_disc.min(),
)

# %% [markdown]
# ## Latent-variable models and the evidence lower bound
#
# A **latent-variable model** (潜变量模型) explains an observation $\mathbf{x}$ through an
# unobserved $\mathbf{z}$: a prior $p(\mathbf{z})$ and a likelihood (or decoder)
# $p_\theta(\mathbf{x} \mid \mathbf{z})$, whose marginal is the model of the data,
#
# $$
# p_\theta(\mathbf{x}) = \int p_\theta(\mathbf{x} \mid \mathbf{z})\, p(\mathbf{z})\, d\mathbf{z} .
# $$ (prob-latent-marginal)
#
# A variational autoencoder has a neural network in $p_\theta(\mathbf{x} \mid \mathbf{z})$
# {cite}`kingma2014vae,rezende2014stochastic`; a diffusion model is a latent-variable model whose
# latents are the noisy images $\mathbf{z} = \mathbf{x}_{1:T}$ (chapter 5). The integral is
# intractable in general, and so is the posterior $p_\theta(\mathbf{z} \mid \mathbf{x})$. The way
# out is to pick any distribution $q(\mathbf{z} \mid \mathbf{x})$ that is easy to sample (the
# **variational distribution**, or encoder) and bound the log-likelihood from below:
#
# $$
# \begin{aligned}
# \log p_\theta(\mathbf{x})
# &\overset{(a)}{=} \log \int q(\mathbf{z} \mid \mathbf{x})\, \frac{p_\theta(\mathbf{x}, \mathbf{z})}{q(\mathbf{z} \mid \mathbf{x})}\, d\mathbf{z}
#  = \log \mathbb{E}_{q(\mathbf{z} \mid \mathbf{x})}\Big[\frac{p_\theta(\mathbf{x}, \mathbf{z})}{q(\mathbf{z} \mid \mathbf{x})}\Big] \\
# &\overset{(b)}{\ge} \mathbb{E}_{q(\mathbf{z} \mid \mathbf{x})}\big[\log p_\theta(\mathbf{x}, \mathbf{z}) - \log q(\mathbf{z} \mid \mathbf{x})\big]
#  =: \operatorname{ELBO}(\mathbf{x}; q) .
# \end{aligned}
# $$ (prob-elbo)
#
# (a) multiplies and divides by $q$ inside {eq}`prob-latent-marginal`, with
# $p_\theta(\mathbf{x}, \mathbf{z}) = p_\theta(\mathbf{x} \mid \mathbf{z})\,p(\mathbf{z})$; (b) is
# Jensen's inequality {eq}`prob-jensen`. Splitting the joint into likelihood and prior gives the
# form a VAE optimises, a reconstruction term minus a KL that keeps $q$ near the prior:
#
# $$
# \operatorname{ELBO}(\mathbf{x}; q) = \mathbb{E}_{q(\mathbf{z} \mid \mathbf{x})}\big[\log p_\theta(\mathbf{x} \mid \mathbf{z})\big]
# - D_{\mathrm{KL}}\big(q(\mathbf{z} \mid \mathbf{x}) \,\Vert\, p(\mathbf{z})\big) .
# $$ (prob-elbo-recon-kl)
#
# **The gap is a KL divergence.** Jensen tells us that the bound holds, not how loose it is. An
# exact identity does: write $p_\theta(\mathbf{x}, \mathbf{z}) = p_\theta(\mathbf{z} \mid \mathbf{x})\,p_\theta(\mathbf{x})$
# inside the ELBO; $\log p_\theta(\mathbf{x})$ does not depend on $\mathbf{z}$ and leaves the
# expectation, and what remains is minus a KL divergence:
#
# $$
# \log p_\theta(\mathbf{x}) = \operatorname{ELBO}(\mathbf{x}; q)
# + D_{\mathrm{KL}}\big(q(\mathbf{z} \mid \mathbf{x}) \,\Vert\, p_\theta(\mathbf{z} \mid \mathbf{x})\big) .
# $$ (prob-elbo-gap)
#
# So maximising the ELBO over $q$ is the same as making $q$ close to the true posterior, and the
# bound is tight exactly when $q(\mathbf{z} \mid \mathbf{x}) = p_\theta(\mathbf{z} \mid \mathbf{x})$.
# Gibbs' inequality applied to {eq}`prob-elbo-gap` proves {eq}`prob-elbo` a second time. For
# diffusion models {eq}`prob-elbo-gap` becomes {eq}`rev-elbo-gap`, where $q$ is the fixed forward
# process.
#
# The linear-Gaussian model {eq}`prob-lin-gauss` lets us compute everything exactly. Take
# $p(z) = \mathcal{N}(0, 1)$ and $p(x \mid z) = \mathcal{N}(x; wz + b, \sigma_x^2)$ (the model
# {eq}`prob-lin-gauss` with $\mu_0 = 0$, $\sigma_0^2 = 1$, shifted by $b$), so
# $p(x) = \mathcal{N}(x; b, w^2 + \sigma_x^2)$ and the posterior follows from
# {eq}`prob-lin-gauss-posterior` with $x - b$ in place of $x$. For a Gaussian
# $q(z \mid x) = \mathcal{N}(\mu_q, \sigma_q^2)$ both terms of {eq}`prob-elbo-recon-kl` have closed
# forms: $\mathbb{E}_q[(x - wz - b)^2] = (x - w\mu_q - b)^2 + w^2\sigma_q^2$ in the first, and
# {eq}`prob-kl-gauss-1d` in the second. We check the Monte Carlo ELBO against the closed form, and
# the gap identity {eq}`prob-elbo-gap` over a whole grid of variational distributions. The gap is a
# KL divergence, so on that grid the ELBO stays below $\log p(x)$. Then we do what variational
# inference does: maximise the ELBO over $(\mu_q, \sigma_q^2)$ numerically, starting far from the
# posterior. The maximiser must be the posterior {eq}`prob-lin-gauss-posterior`, and the maximum
# $\log p(x)$.

# %%
w, b, var_x, x_obs = 2.0, 0.5, 0.5, 3.0
log_px = log_normal(
    torch.tensor(x_obs), b, w**2 + var_x
)  # log p(x), eq. (prob-lin-gauss-evidence)
var_post = 1 / (1 + w**2 / var_x)  # eq. (prob-lin-gauss-posterior), μ_0 = 0, σ_0² = 1
mean_post = var_post * w * (x_obs - b) / var_x


def elbo_closed(mq, vq):
    """Eq. (prob-elbo-recon-kl), closed form: linear-Gaussian model, q = N(mq, vq)."""
    recon = -0.5 * math.log(2 * math.pi * var_x) - (
        (x_obs - w * mq - b) ** 2 + w**2 * vq
    ) / (2 * var_x)
    return recon - kl_gauss(mq, vq, torch.tensor(0.0), torch.tensor(1.0))


mq, vq = (
    torch.tensor(0.4),
    torch.tensor(0.3),
)  # some variational distribution, not the posterior
zq = mq + vq.sqrt() * randn(400_000)
integrand = (
    log_normal(torch.tensor(x_obs), w * zq + b, var_x)
    + log_normal(zq, 0.0, 1.0)
    - log_normal(zq, mq, vq)
)
check(
    "the ELBO by Monte Carlo, eq. (prob-elbo), equals its closed form (5 std. errors)",
    zscores(
        integrand.mean(), elbo_closed(mq, vq), integrand.std() / math.sqrt(len(zq))
    ),
    0.0,
    atol=5,
)

mq_grid, vq_grid = torch.meshgrid(
    torch.linspace(-1, 2, 61), torch.logspace(-2, 0.5, 51), indexing="ij"
)
elbo_grid = elbo_closed(mq_grid, vq_grid)
gap = kl_gauss(mq_grid, vq_grid, torch.tensor(mean_post), torch.tensor(var_post))
check(
    f"eq. (prob-elbo-gap): log p(x) = ELBO(q) + KL(q ‖ p(z | x)), {gap.numel():,} q's",
    elbo_grid + gap,
    log_px,
    atol=1e-11,
)
check(
    "the bound is tight at q = p(z | x)",
    elbo_closed(torch.tensor(mean_post), torch.tensor(var_post)),
    log_px,
    atol=1e-12,
)

# Variational inference: maximise the ELBO over (μ_q, log σ_q²) from (−1, log 3).
q_params = torch.tensor([-1.0, math.log(3.0)], requires_grad=True)
opt = torch.optim.LBFGS(
    [q_params],
    max_iter=200,
    tolerance_grad=1e-12,
    tolerance_change=0.0,
    line_search_fn="strong_wolfe",
)


def negative_elbo():
    opt.zero_grad()
    loss = -elbo_closed(q_params[0], q_params[1].exp())
    loss.backward()
    return loss


opt.step(negative_elbo)
mq_best, vq_best = q_params[0].detach(), q_params[1].detach().exp()
elbo_best = elbo_closed(mq_best, vq_best)
print(
    f"maximiser μ_q = {mq_best:.6f}, σ_q² = {vq_best:.6f}; max ELBO = {elbo_best:.6f}"
)
_ = check(
    "the ELBO's maximiser is p(z | x), eq. (prob-lin-gauss-posterior); max = log p(x)",
    [mq_best, vq_best, elbo_best],
    [mean_post, var_post, log_px],
    atol=1e-10,
)

# %%
fig, ax = plt.subplots(figsize=(7, 4))
mq_line = torch.linspace(-0.6, 2.8, 341)
for factor in (1.0, 0.3, 3.0):
    ax.plot(
        mq_line,
        elbo_closed(mq_line, torch.tensor(factor * var_post)),
        label=rf"ELBO, $\sigma_q^2 = {factor}\,\sigma_{{z|x}}^2$",
    )
ax.axhline(log_px, color="k", ls="--", lw=1, label=r"$\log p(x)$")
ax.axvline(mean_post, color="grey", ls=":", lw=1)
ax.text(mean_post + 0.03, log_px - 2.6, r"$\mu_{z|x}$", color="grey")
ax.set(
    xlabel=r"mean $\mu_q$ of $q(z \mid x)$",
    ylabel="nats",
    ylim=(log_px - 5, log_px + 0.5),
    title="The ELBO is below log p(x), with equality at the posterior",
)
ax.legend(loc="lower center", fontsize=9)
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: the ELBO of the linear-Gaussian model as a function of the mean of $q(z \mid x)$, for
# three variances of $q$, against the exact $\log p(x)$ (dashed).* Only the curve with the
# posterior's variance touches the dashed line, and it does so at the posterior mean: there, and
# only there, the gap $D_{\mathrm{KL}}(q \,\Vert\, p(z \mid x))$ vanishes.

# %% [markdown]
# ## The reparameterisation trick
#
# Training a VAE, and many other models, needs the gradient of an expectation whose distribution
# depends on the parameters: $\nabla_\phi\,\mathbb{E}_{z \sim q_\phi}[f(z)]$. The gradient cannot
# simply be moved inside, because the samples themselves depend on $\phi$. There are two standard
# ways out {cite}`mohamed2020monte`. Here $q_\phi = \mathcal{N}(\mu, \sigma^2)$ with $\phi = (\mu, \sigma)$.
#
# **The score-function estimator** (REINFORCE, likelihood ratio) {cite}`williams1992simple`
# differentiates the density instead of the samples, using $\nabla_\phi q_\phi = q_\phi\,\nabla_\phi\log q_\phi$:
#
# $$
# \nabla_\phi\,\mathbb{E}_{q_\phi}[f(z)] = \int f(z)\,\nabla_\phi q_\phi(z)\,dz
# = \mathbb{E}_{q_\phi}\big[f(z)\,\nabla_\phi \log q_\phi(z)\big],
# \qquad
# \frac{\partial \log q_\phi}{\partial\mu} = \frac{z - \mu}{\sigma^2},\quad
# \frac{\partial \log q_\phi}{\partial\sigma} = \frac{(z - \mu)^2 - \sigma^2}{\sigma^3} .
# $$ (prob-score-function)
#
# It needs only $f(z)$, not its derivative, so it works for discrete $z$ and non-differentiable $f$.
#
# **The reparameterisation trick** {cite}`kingma2014vae,rezende2014stochastic` writes the sample as a
# differentiable function of the parameters and of noise that does not depend on them,
# $z = \mu + \sigma\epsilon$ with $\epsilon \sim \mathcal{N}(0, 1)$ (this is
# {eq}`prob-gauss-linear` once more). The expectation is then over $\epsilon$, and the gradient
# moves inside by the chain rule:
#
# $$
# \nabla_\phi\,\mathbb{E}_{q_\phi}[f(z)] = \mathbb{E}_{\epsilon}\big[\nabla_\phi f(\mu + \sigma\epsilon)\big],
# \qquad
# \frac{\partial}{\partial\mu} f(\mu + \sigma\epsilon) = f'(z),\quad
# \frac{\partial}{\partial\sigma} f(\mu + \sigma\epsilon) = f'(z)\,\epsilon .
# $$ (prob-reparam-grad)
#
# Both are unbiased; they differ in **variance**. For $f(z) = z^2$ the objective is
# $\mathbb{E}[z^2] = \mu^2 + \sigma^2$, so the exact gradient is $(2\mu, 2\sigma)$, and the variances
# of the single-sample $\mu$-gradients can be computed exactly. The reparameterised one is
# $2z = 2\mu + 2\sigma\epsilon$, with variance $4\sigma^2$. The score-function one is
# $g = z^2 (z-\mu)/\sigma^2 = \mu^2\epsilon/\sigma + 2\mu\epsilon^2 + \sigma\epsilon^3$; with the
# Gaussian moments $\mathbb{E}[\epsilon^2] = 1$, $\mathbb{E}[\epsilon^4] = 3$, $\mathbb{E}[\epsilon^6] = 15$
# and the odd moments zero, $\mathbb{E}[g^2] = \mu^4/\sigma^2 + 4\mu^2 \cdot 3 + \sigma^2 \cdot 15 + 2 \cdot 2\mu^2 \cdot 3$,
# and subtracting $(\mathbb{E} g)^2 = 4\mu^2$:
#
# $$
# \operatorname{Var}\big[\hat g_\mu^{\text{reparam}}\big] = 4\sigma^2,
# \qquad
# \operatorname{Var}\big[\hat g_\mu^{\text{score}}\big] = \frac{\mu^4}{\sigma^2} + 14\mu^2 + 15\sigma^2 .
# $$ (prob-grad-variances)
#
# Even at $\mu = 0$ the score-function estimator has 3.75 times the variance, which grows like
# $\mu^4/\sigma^2$ away from zero. We check unbiasedness and the variances with a million samples,
# and that automatic differentiation through $z = \mu + \sigma\epsilon$ computes exactly
# {eq}`prob-reparam-grad`.

# %%
mu_r, sigma_r, n_grad = 1.0, 0.5, 1_000_000
eps = randn(n_grad)
z_r = mu_r + sigma_r * eps
score_mu = z_r**2 * (z_r - mu_r) / sigma_r**2  # eq. (prob-score-function)
score_sigma = z_r**2 * ((z_r - mu_r) ** 2 - sigma_r**2) / sigma_r**3
reparam_mu, reparam_sigma = (
    2 * z_r,
    2 * z_r * eps,
)  # eq. (prob-reparam-grad) with f'(z) = 2z
exact = torch.tensor([2 * mu_r, 2 * sigma_r])
for name, gm, gs in (
    ("score-function", score_mu, score_sigma),
    ("reparameterisation", reparam_mu, reparam_sigma),
):
    est = torch.stack([gm.mean(), gs.mean()])
    se = torch.stack([gm.std(), gs.std()]) / math.sqrt(n_grad)
    check(
        f"the {name} estimator is unbiased for ∇(μ² + σ²) = (2μ, 2σ) (5 std. errors)",
        zscores(est, exact, se),
        0.0,
        atol=5,
    )


def var_and_se(g_):
    """Sample variance of single-sample gradients, and its standard error."""
    sq = (g_ - g_.mean()) ** 2
    return sq.mean(), sq.std() / math.sqrt(len(g_))


def var_score(mu, sigma=sigma_r):
    """Eq. (prob-grad-variances): variance of one score-function μ-gradient."""
    return mu**4 / sigma**2 + 14 * mu**2 + 15 * sigma**2


check(
    "at μ = 0 the variance ratio is 15σ²/(4σ²) = 3.75",
    var_score(0.0) / (4 * sigma_r**2),
    3.75,
    atol=1e-12,
)
for name, g_, formula in (
    ("score-function", score_mu, var_score(mu_r)),
    ("reparameterisation", reparam_mu, 4 * sigma_r**2),
):
    var_mc, se_var = var_and_se(g_)
    print(f"{name:>18}: Var of the μ-gradient = {var_mc:.3f} (formula {formula:.3f})")
    check(
        f"eq. (prob-grad-variances), {name} (within 5 standard errors)",
        zscores(var_mc, formula, se_var),
        0.0,
        atol=5,
    )

mu_t = torch.tensor(mu_r, requires_grad=True)
sigma_t = torch.tensor(sigma_r, requires_grad=True)
((mu_t + sigma_t * eps) ** 2).mean().backward()  # autograd through z = μ + σ ε
_ = check(
    "autograd through z = μ + σε computes eq. (prob-reparam-grad) exactly",
    [mu_t.grad, sigma_t.grad],
    [reparam_mu.mean(), reparam_sigma.mean()],
    atol=1e-12,
)

# %%
mus = torch.linspace(-3, 3, 121)
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(
    mus,
    mus**4 / sigma_r**2 + 14 * mus**2 + 15 * sigma_r**2,
    label="score function (formula)",
)
ax.plot(mus, torch.full_like(mus, 4 * sigma_r**2), label="reparameterisation (formula)")
mc_mus, mc_vars = [-2.0, -1.0, 0.0, 1.0, 2.0], []
for m0 in mc_mus:
    z0 = m0 + sigma_r * eps[:100_000]
    mc_vars.append([(z0**2 * (z0 - m0) / sigma_r**2).var(), (2 * z0).var()])
mc_vars = torch.tensor(mc_vars)
ax.scatter(
    mc_mus, mc_vars[:, 0], color="C0", zorder=3, label="Monte Carlo (100,000 samples)"
)
ax.scatter(mc_mus, mc_vars[:, 1], color="C1", zorder=3)
ax.set(
    yscale="log",
    xlabel=r"$\mu$",
    ylabel=r"variance of the single-sample $\partial/\partial\mu$ estimate",
    title=r"Gradient variance of $\mathbb{E}[z^2]$, $z \sim \mathcal{N}(\mu, 0.25)$",
)
ax.legend()
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
plt.show()
check_le(
    "the reparameterised gradient has the smaller variance at every μ (Monte Carlo)",
    mc_vars[:, 1],
    mc_vars[:, 0],
)
check(
    "variance ratio (samples needed) at μ = 1: 21.75",
    var_score(1.0) / (4 * sigma_r**2),
    21.75,
    atol=1e-12,
)
_ = check(
    "variance ratio at μ = 3: about 454",
    var_score(3.0) / (4 * sigma_r**2),
    454,
    atol=0.5,
)

# %% [markdown]
# *Figure: variance of the two single-sample estimators of $\partial\,\mathbb{E}[z^2]/\partial\mu$
# for $\sigma = 0.5$, as a function of $\mu$ (log scale): the formulas {eq}`prob-grad-variances`
# as lines, Monte Carlo estimates as dots.* With the score-function estimator, many more samples
# are needed for the same accuracy: $21.75/1 \approx 22$ times more at $\mu = 1$, and about
# 454 times more at $\mu = 3$. Diffusion models use the trick in its simplest form: the training
# input $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol{\epsilon}$
# of {eq}`fwd-reparam` is a reparameterised sample, and the network is asked to predict the noise
# $\boldsymbol{\epsilon}$ that produced it.

# %% [markdown]
# ## Change of variables
#
# Let $\mathbf{x}$ have density $p_X$ on $\mathbb{R}^D$ and let $\mathbf{y} = g(\mathbf{x})$ for an
# invertible, differentiable $g$ with a differentiable inverse. In one dimension, for an
# increasing $g$, the distribution function is $P(Y \le y) = P(X \le g^{-1}(y))$; differentiating
# in $y$ gives $p_Y(y) = p_X(g^{-1}(y))\,\frac{d}{dy}g^{-1}(y)$, and for a decreasing $g$ the
# derivative is negative and the inequality flips, which the absolute value covers. In $D$
# dimensions a small box around $\mathbf{x}$ is mapped to a parallelepiped whose volume is
# $|\det \mathbf{J}_g(\mathbf{x})|$ times larger, where $\mathbf{J}_g = \partial g/\partial\mathbf{x}$
# is the Jacobian; probability is conserved, so density is divided by that factor:
#
# $$
# p_Y(\mathbf{y}) = p_X(\mathbf{x})\,\big|\det \mathbf{J}_g(\mathbf{x})\big|^{-1},
# \qquad
# \log p_Y(\mathbf{y}) = \log p_X(\mathbf{x}) - \log\big|\det \mathbf{J}_g(\mathbf{x})\big|,
# \qquad \mathbf{x} = g^{-1}(\mathbf{y}) .
# $$ (prob-change-of-variables)
#
# Normalizing flows {cite}`dinh2015nice,rezende2015variational,dinh2017realnvp,papamakarios2021normalizing`
# build $g$ from layers whose Jacobian determinants are cheap, and compute exact likelihoods with
# {eq}`prob-change-of-variables`; the probability-flow ODE of {doc}`08_score_and_sde` does the same
# for a diffusion model. Three checks. (1) $y = e^x$ with $x \sim \mathcal{N}(\mu, \sigma^2)$:
# $\log p_Y(y) = \log\mathcal{N}(\log y; \mu, \sigma^2) - \log y$ must be the log-normal density.
# (2) An affine map in three dimensions must reproduce {eq}`prob-gauss-linear`. (3) A nonlinear
# **coupling layer** in the style of RealNVP {cite}`dinh2017realnvp`,
# $y_1 = x_1$, $y_2 = x_2\,e^{\kappa(x_1)} + \nu(x_1)$ (RealNVP calls the two functions $s$ and $t$;
# in this book $t$ is time), whose Jacobian is triangular with determinant $e^{\kappa(x_1)}$,
# applied to $\mathbf{x} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$; its density must
# integrate to one, automatic differentiation must confirm the determinant, and the mean of $y_2$
# must match: $\mathbb{E}[y_2] = \mathbb{E}[x_2]\,\mathbb{E}[e^{\kappa(x_1)}] + \mathbb{E}[x_1^2 - 1] = 0$
# for $\nu(u) = u^2 - 1$.

# %%
# (1) The log-normal distribution.
mu_ln, sd_ln = 0.2, 0.6
y = torch.logspace(-4, 2, 20_001)
log_p_y = (
    log_normal(y.log(), mu_ln, sd_ln**2) - y.log()
)  # eq. (prob-change-of-variables), g = exp
check(
    "y = exp(x): change of variables gives torch's LogNormal.log_prob",
    log_p_y,
    dist.LogNormal(mu_ln, sd_ln).log_prob(y),
    atol=1e-12,
)
check(
    "the transformed density integrates to 1 (quadrature)",
    torch.trapezoid(log_p_y.exp(), y),
    1.0,
    atol=1e-6,
)

# (2) An invertible affine map in D = 3.
A_sq, b_sq = randn(D, D) + 2 * torch.eye(D), randn(D)
y3 = x3 @ A_sq.T + b_sq
log_p_affine = (
    log_normal_nd(torch.linalg.solve(A_sq, (y3 - b_sq).T).T, mu3, Sigma3)
    - torch.linalg.slogdet(A_sq)[1]
)
check(
    "y = A x + b: change of variables gives N(A μ + b, A Σ Aᵀ), (prob-gauss-linear)",
    log_p_affine,
    dist.MultivariateNormal(A_sq @ mu3 + b_sq, A_sq @ Sigma3 @ A_sq.T).log_prob(y3),
    atol=1e-10,
)


# (3) A RealNVP-style coupling layer on the standard normal in 2-D.
def kappa(u):
    return 0.5 * torch.tanh(u)  # log-scale of y_2


def nu(u):
    return u**2 - 1  # shift of y_2


def coupling(x):
    return torch.stack(
        [x[..., 0], x[..., 1] * kappa(x[..., 0]).exp() + nu(x[..., 0])], -1
    )


def coupling_inverse(y_):
    return torch.stack(
        [y_[..., 0], (y_[..., 1] - nu(y_[..., 0])) * (-kappa(y_[..., 0])).exp()], -1
    )


def coupling_log_density(y_):
    """Eq. (prob-change-of-variables): log N(x; 0, I) − log|det J| at x = g⁻¹(y_).

    For the coupling layer, log|det J| = κ(x_1).
    """
    x_ = coupling_inverse(y_)
    return log_normal(x_, 0.0, 1.0).sum(-1) - kappa(x_[..., 0])


pts = randn(5, 2)
logdet_autograd = torch.stack(
    [
        torch.linalg.slogdet(torch.autograd.functional.jacobian(coupling, p))[1]
        for p in pts
    ]
)
check(
    "the coupling layer's log|det J| is κ(x_1) (autograd Jacobian at five points)",
    logdet_autograd,
    kappa(pts[:, 0]),
    atol=1e-12,
)
check(
    "the inverse undoes the coupling layer",
    coupling_inverse(coupling(pts)),
    pts,
    atol=1e-12,
)
y1g, y2g = torch.linspace(-8, 8, 801), torch.linspace(-16, 80, 3841)
Y1, Y2 = torch.meshgrid(y1g, y2g, indexing="ij")
dens_y = coupling_log_density(torch.stack([Y1, Y2], -1)).exp()
mass_y = torch.trapezoid(torch.trapezoid(dens_y, y2g, dim=1), y1g)
mean_y2 = torch.trapezoid(torch.trapezoid(dens_y * Y2, y2g, dim=1), y1g)
y_mc = coupling(randn(400_000, 2))
check(
    "the coupling layer's density integrates to 1 (quadrature)", mass_y, 1.0, atol=1e-7
)
check("E[y_2] = 0 by quadrature of the transformed density", mean_y2, 0.0, atol=1e-7)
_ = check(
    "E[y_2] = 0 by Monte Carlo through the layer (within 5 standard errors)",
    zscores(y_mc[:, 1].mean(), 0.0, y_mc[:, 1].std() / math.sqrt(len(y_mc))),
    0.0,
    atol=5,
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].hist(
    torch.exp(mu_ln + sd_ln * randn(100_000)),
    bins=200,
    range=(0, 6),
    density=True,
    alpha=0.5,
    label="histogram of $e^x$, 100,000 samples",
)
axes[0].plot(y[y < 6], log_p_y[y < 6].exp(), color="k", label="change of variables")
axes[0].set(
    xlabel="$y$",
    ylabel="density $p_Y(y)$",
    title=r"$y = e^x$, $x \sim \mathcal{N}(0.2, 0.36)$",
)
axes[0].legend()
axes[1].contourf(Y1, Y2, dens_y, levels=12, cmap="viridis")
axes[1].scatter(y_mc[:1500, 0], y_mc[:1500, 1], s=1, color="w", alpha=0.5)
axes[1].set(
    xlim=(-3.5, 3.5),
    ylim=(-4, 10),
    xlabel="$y_1$",
    ylabel="$y_2$",
    title=r"coupling layer applied to $\mathcal{N}(\mathbf{0}, \mathbf{I})$",
)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left, the log-normal density obtained by the change of variables, over a histogram of
# samples; right, the density of the coupling layer's output (filled contours) and 1,500 samples
# pushed through the layer (white).* The standard normal is bent into a banana by
# $\nu(x_1) = x_1^2 - 1$ and stretched on one side by $e^{\kappa(x_1)}$; the formula accounts for both.

# %% [markdown]
# ## The discretised Gaussian likelihood
#
# Images are stored as integers: each pixel takes one of 256 values. Scaled to $[-1, 1]$ they are
# the levels $x_k = -1 + 2k/255$, $k = 0, \dots, 255$, a distance $2/255$ apart. A density cannot
# be a likelihood for such data: as the figure of the first section showed, a density can exceed
# one, and a model could make $-\log p$ arbitrarily small by shrinking its variance around the
# levels. A model of discrete data must give **probabilities** that sum to one over the 256
# values. The decoder of {cite:t}`ho2020ddpm` (their eq. (13)) does this by integrating a Gaussian
# $\mathcal{N}(\mu, \sigma^2)$ over the bin of each level: level $x_k$ owns the interval
# $[x_k - \delta, x_k + \delta]$ with $\delta = 1/255$, and the two edge levels own everything
# beyond, down to $-\infty$ and up to $+\infty$:
#
# $$
# P(x_k) = \Phi\Big(\frac{\delta_+(x_k) - \mu}{\sigma}\Big) - \Phi\Big(\frac{\delta_-(x_k) - \mu}{\sigma}\Big),
# \qquad
# \delta_+(x) = \begin{cases} +\infty & x = 1 \\ x + \delta & x < 1 \end{cases},
# \quad
# \delta_-(x) = \begin{cases} -\infty & x = -1 \\ x - \delta & x > -1 \end{cases},
# $$ (prob-disc-gauss)
#
# where $\Phi$ is the standard normal distribution function,
#
# $$
# \Phi(u) = \int_{-\infty}^{u} \mathcal{N}(s; 0, 1)\, ds = \tfrac12\Big(1 + \operatorname{erf}\big(u/\sqrt2\big)\Big)
# = \tfrac12\operatorname{erfc}\big(-u/\sqrt2\big) .
# $$ (prob-normal-cdf)
#
# **The probabilities sum to one.** The bins tile the real line: the upper edge of bin $k$ is the
# lower edge of bin $k+1$, so the sum over $k$ telescopes to $\Phi(+\infty) - \Phi(-\infty) = 1$,
# for every $\mu$ and $\sigma$. Without the two edge bins the mass beyond $\pm(1 + \delta)$ is
# lost, and the "probabilities" sum to less than one; that is the mistake the edge cases prevent.
# **Small bins.** When $\sigma \gg \delta$ the density is nearly constant over a bin and
# $P(x_k) \approx \mathcal{N}(x_k; \mu, \sigma^2)\cdot 2\delta$, so $-\log P$ is the negative
# log-density plus the constant $-\log(2\delta) = \log 127.5$: continuous and discrete likelihoods
# differ by the bin width. In pixels this is $\log_2 127.5 \approx 7$ bits per dimension, which is
# why likelihoods must say whether they are discrete.
#
# The library computes $\Phi$ with `erfc`, which stays accurate far in the lower tail where
# $1 + \operatorname{erf}$ would cancel, and `discretized_gaussian_log_likelihood` takes
# $\log\sigma$ (argument `log_scales`) and floors tiny probabilities of interior bins at
# $10^{-12}$ to keep the logarithm finite. The two edge bins need no floor: their probabilities
# are values of $\Phi$ itself, whose logarithm the library computes directly (`log_ndtr`), finite
# even where $\Phi$ underflows. We build {eq}`prob-disc-gauss` by hand and compare.

# %%
delta = 1 / 255
levels = -1 + 2 * torch.arange(256) / 255  # the 256 pixel values in [-1, 1]


def Phi(u):
    """Eq. (prob-normal-cdf), the erf form."""
    return 0.5 * (1 + torch.erf(u / math.sqrt(2)))


def disc_gauss_log_prob(x, mu, sigma, edges=True):
    """Eq. (prob-disc-gauss) by hand.

    edges=False forgets the two edge bins (a common mistake).
    """
    upper, lower = x + delta, x - delta
    if edges:
        upper = torch.where(x > 1 - delta, torch.tensor(math.inf), upper)
        lower = torch.where(x < -1 + delta, torch.tensor(-math.inf), lower)
    return torch.log(Phi((upper - mu) / sigma) - Phi((lower - mu) / sigma))


u = torch.linspace(-8, 8, 1601)
check(
    "Φ via erf, eq. (prob-normal-cdf), equals standard_normal_cdf and torch's ndtr",
    [Phi(u), torch.special.ndtr(u)],
    standard_normal_cdf(u),
    atol=1e-15,
)

cases = [
    (0.0, 0.05),
    (0.5, 0.01),
    (0.97, 0.03),
    (-1.0, 0.003),
    (0.3, 1.0),
    (2.0, 0.5),
]  # (μ, σ)
totals, totals_no_edges, max_err = [], [], 0.0
for mu, sd in cases:
    lp_hand = disc_gauss_log_prob(levels, mu, sd)
    lp_lib = discretized_gaussian_log_likelihood(
        levels, means=torch.tensor(mu), log_scales=torch.tensor(math.log(sd))
    )
    ok = lp_hand.exp() > 1e-12  # the library floors smaller probabilities at 1e-12
    max_err = max(max_err, (lp_lib[ok].exp() - lp_hand[ok].exp()).abs().max().item())
    totals.append(lp_hand.exp().sum())
    totals_no_edges.append(disc_gauss_log_prob(levels, mu, sd, edges=False).exp().sum())
check(
    "eq. (prob-disc-gauss) by hand = discretized_gaussian_log_likelihood (bin masses)",
    max_err,
    0.0,
    atol=1e-12,
)
check(
    "with the edge bins the 256 probabilities sum to 1 for every (μ, σ)",
    torch.stack(totals),
    1.0,
    atol=1e-12,
)
print("sums without the edge bins:", ", ".join(f"{s:.4f}" for s in totals_no_edges))
check_le(
    "without the edge bins mass is lost (μ = 0.97, σ = 0.03 keeps less than 90%)",
    totals_no_edges[2],
    0.9,
)
lp_far = discretized_gaussian_log_likelihood(
    levels[:2], means=torch.tensor(1.0), log_scales=torch.tensor(math.log(0.01))
)  # the two lowest levels under N(1, 0.01²): probabilities far below 1e-12
check(
    "an interior bin's probability is floored at 1e-12 (x = −1 + 2/255, N(1, 0.01²))",
    lp_far[1],
    math.log(1e-12),
    atol=1e-12,
)
z_edge = (-1 + delta - 1) / 0.01  # the edge bin x = −1 is (−∞, −1 + δ]: P = Φ(z_edge)
check(
    "the edge bin is not floored: log Φ(z) ≈ −z²/2 − log(−z √(2π)) for z = −199.6",
    lp_far[0],
    -(z_edge**2) / 2 - math.log(-z_edge * math.sqrt(2 * math.pi)),
    atol=1e-3,
)
check(
    "small bins cost log₂(1/(2δ)) = log₂ 127.5 ≈ 7 bits",
    math.log2(1 / (2 * delta)),
    7,
    atol=0.05,
)

sd_wide = 0.3
inner = levels[
    1:-1
]  # the approximation is for interior bins; the edge bins hold the tails
approx = log_normal(inner, 0.1, sd_wide**2) + math.log(2 * delta)
check(
    "σ ≫ bin width: log P ≈ log N(x; μ, σ²) + log(2/255) in the interior (P to 0.1%)",
    disc_gauss_log_prob(inner, 0.1, sd_wide),
    approx,
    atol=1e-3,
)
peak_density = log_normal(torch.tensor(0.5), 0.5, 0.01**2).exp()
p_narrow = disc_gauss_log_prob(levels, 0.5, 0.01).exp()
print(
    f"peak density of N(0.5, 0.01²): {peak_density:.1f}; "
    f"largest bin probability: {p_narrow.max():.3f}"
)
# A density can exceed 1, bin probabilities cannot: they are ≥ 0 and sum to 1
# (checked above for this (μ, σ) too). The density peaks at 1/(σ√(2π)); the largest
# bin is the one holding μ = 0.5, of mass Φ((x_k + δ − μ)/σ) − Φ((x_k − δ − μ)/σ)
# for the level x_k nearest μ.
k_near = torch.argmin((levels - 0.5).abs())
check(
    "N(0.5, 0.01²) peaks at 1/(0.01 √(2π)) ≈ 39.9, far above 1",
    peak_density,
    1 / (0.01 * math.sqrt(2 * math.pi)),
    atol=1e-12,
)
_ = check(
    "its largest bin probability is the mass of the bin around μ, well below 1",
    p_narrow.max(),
    torch.special.ndtr((levels[k_near] + delta - 0.5) / 0.01)
    - torch.special.ndtr((levels[k_near] - delta - 0.5) / 0.01),
    atol=1e-12,
)

# %%
mu_edge, sd_edge = 0.97, 0.03
lp_edge = disc_gauss_log_prob(levels, mu_edge, sd_edge)
fig, ax = plt.subplots(figsize=(7, 3.8))
near = levels > 0.8
ax.bar(
    levels[near],
    lp_edge[near].exp(),
    width=1.6 * delta,
    label="bin probabilities $P(x_k)$, eq. (prob-disc-gauss)",
)
ax.plot(
    levels[near],
    (log_normal(levels[near], mu_edge, sd_edge**2) + math.log(2 * delta)).exp(),
    "k.",
    label=r"density $\times$ bin width",
)
ax.set(
    xlabel="pixel value $x_k$ (scaled to [-1, 1])",
    ylabel="probability",
    title=r"Discretised $\mathcal{N}(0.97, 0.03^2)$ near the upper edge",
)
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
print(
    f"P(x = 1) = {lp_edge[-1].exp():.3f}: the edge bin holds the mass above 1 − 1/255"
)
edge_ratio = (
    lp_edge[-1].exp()
    / (log_normal(levels[-1], mu_edge, sd_edge**2) + math.log(2 * delta)).exp()
)
_ = check("P(x = 1) is about 3.0 times density × bin width", edge_ratio, 3.0, atol=0.05)

# %% [markdown]
# *Figure: the probabilities of the pixel values above 0.8 under a discretised Gaussian with mean
# 0.97 and standard deviation 0.03 (bars), against the density times the bin width (dots).* In
# the interior the two agree; the last level, $x = 1$, owns the whole upper tail, so its
# probability is about 3.0 times the density approximation. Chapter 5 uses exactly this decoder
# for the term $L_0$ of the bound and reports likelihoods in bits per dimension ({eq}`rev-bpd`).

# %% [markdown]
# ```{admonition} Common mistakes
# :class: warning
#
# - **Standard deviation for variance.** $\mathcal{N}(\mu, \sigma^2)$ takes a variance;
#   `torch.distributions.Normal(loc, scale)` and `torch.normal(mean, std)` take a standard
#   deviation; `normal_kl` takes log-variances and `discretized_gaussian_log_likelihood` takes
#   $\log\sigma$. A KL written with $\sigma_1/\sigma_2$ where $\sigma_1^2/\sigma_2^2$ belongs
#   passes a test at $\sigma = 1$ and fails everywhere else. (The {doc}`../book/errata` checks this one.)
# - **The KL the wrong way round.** $D_{\mathrm{KL}}(q \,\Vert\, p)$ averages over $q$, the first
#   argument. The VAE's term is $D_{\mathrm{KL}}(q(\mathbf{z} \mid \mathbf{x}) \,\Vert\, p(\mathbf{z}))$,
#   and the diffusion bound's terms put the forward posterior first.
# - **Dropping the $\tfrac12$ or the $-1$** in {eq}`prob-kl-gauss-1d`. The check $D_{\mathrm{KL}}(p \,\Vert\, p) = 0$
#   catches the $-1$; comparing with `torch.distributions.kl_divergence` catches the rest.
# - **A Jacobian on the wrong side.** In {eq}`prob-change-of-variables` the density of $\mathbf{y}$
#   is divided by $|\det\partial\mathbf{y}/\partial\mathbf{x}|$, or equivalently multiplied by
#   $|\det\partial\mathbf{x}/\partial\mathbf{y}|$; multiplying by the forward Jacobian gives a
#   "density" that does not integrate to one.
# - **Forgetting the edge bins** of the discretised likelihood: the probabilities then sum to less
#   than one, and the error is largest exactly where images have many pixels, at pure black and
#   pure white.
# ```

# %% [markdown]
# ## Summary
#
# - A Gaussian is fixed by its mean and covariance, {eq}`prob-gauss-1d` and {eq}`prob-gauss-nd`;
#   we sample it as $\boldsymbol{\mu} + \mathbf{L}\boldsymbol{\epsilon}$, and any linear map of a
#   Gaussian is Gaussian, {eq}`prob-gauss-linear`.
# - Multiplying Gaussian densities completes a square, {eq}`prob-complete-square`: precisions add
#   and means are precision-weighted, {eq}`prob-gauss-product`. Bayes' rule for a linear-Gaussian
#   model, {eq}`prob-lin-gauss-posterior` and {eq}`prob-lin-gauss-evidence`, and the conditional of
#   a joint Gaussian, {eq}`prob-gauss-conditional`, are the same computation; the latter reproduces
#   the diffusion posterior of chapter 5 in two lines.
# - The KL divergence {eq}`prob-kl` between Gaussians has the closed form {eq}`prob-kl-gauss-nd`;
#   in one dimension {eq}`prob-kl-gauss-1d`, and for diagonal covariances a sum of those,
#   {eq}`prob-kl-gauss-diag`, which is what `normal_kl` computes (from log-variances).
# - Jensen's inequality {eq}`prob-jensen` gives $D_{\mathrm{KL}} \ge 0$, {eq}`prob-gibbs`, and the
#   evidence lower bound {eq}`prob-elbo`, whose gap is exactly
#   $D_{\mathrm{KL}}(q(\mathbf{z} \mid \mathbf{x}) \,\Vert\, p(\mathbf{z} \mid \mathbf{x}))$,
#   {eq}`prob-elbo-gap`.
# - Gradients of expectations: the score-function estimator {eq}`prob-score-function` is general
#   but noisy; the reparameterisation trick {eq}`prob-reparam-grad` differentiates through
#   $z = \mu + \sigma\epsilon$ and, in our example, has variance $4\sigma^2$ against
#   $\mu^4/\sigma^2 + 14\mu^2 + 15\sigma^2$, {eq}`prob-grad-variances`.
# - Densities transform with the Jacobian determinant, {eq}`prob-change-of-variables`; discrete
#   data need probabilities, and the discretised Gaussian {eq}`prob-disc-gauss` with edge bins to
#   $\pm\infty$ provides them.
#
# Next: {doc}`03_gans` takes a route that needs none of these likelihoods, and
# {doc}`04_forward_process` starts the diffusion models, which need all of them.

# %% [markdown]
# ## Exercises
#
# **1. When is the KL symmetric?** Show that for two univariate Gaussians with equal variances,
# $D_{\mathrm{KL}}(q \,\Vert\, p) = D_{\mathrm{KL}}(p \,\Vert\, q)$, and that with unequal variances
# it is not symmetric even when the means agree. Compute both directions for $\mathcal{N}(0, 1)$
# and $\mathcal{N}(0, 4)$.
#
# ````{dropdown} Solution
# With $\sigma_1 = \sigma_2 = \sigma$, {eq}`prob-kl-gauss-1d` reduces to $(\mu_1 - \mu_2)^2/(2\sigma^2)$,
# symmetric in the means. With equal means and variances $v_1, v_2$ it is
# $\tfrac12(r - 1 - \log r)$ with $r = v_1/v_2$, and swapping the arguments replaces $r$ by $1/r$:
# $\tfrac12(1/r - 1 + \log r) \ne \tfrac12(r - 1 - \log r)$ unless $r = 1$. For $\mathcal{N}(0, 1)$
# and $\mathcal{N}(0, 4)$: $r = 1/4$ gives $\tfrac12(0.25 - 1 + \log 4) = 0.318$ nats, and $r = 4$
# gives $\tfrac12(4 - 1 - \log 4) = 0.807$ nats.
#
# ```python
# zero, one, four = torch.tensor(0.0), torch.tensor(1.0), torch.tensor(4.0)
# print(kl_gauss(zero, one, zero, four), kl_gauss(zero, four, zero, one))
# # tensor(0.3181) tensor(0.8069)
# ```
# ````
#
# **2. The VAE's KL term.** A VAE encoder outputs $\boldsymbol{\mu}$ and $\log\boldsymbol{\sigma}^2$
# for a diagonal $q(\mathbf{z} \mid \mathbf{x})$, and the prior is $\mathcal{N}(\mathbf{0}, \mathbf{I})$.
# Derive the familiar line of code `kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum()` from
# {eq}`prob-kl-gauss-diag`, and check it against `normal_kl`.
#
# ````{dropdown} Solution
# With $\mu_2 = 0$ and $\sigma_2^2 = 1$, each term of {eq}`prob-kl-gauss-diag` is
# $\tfrac12(\sigma_d^2 + \mu_d^2 - 1 - \log\sigma_d^2) = -\tfrac12(1 + \log\sigma_d^2 - \mu_d^2 - \sigma_d^2)$;
# sum over $d$.
#
# ```python
# mu, logvar = torch.randn(16), torch.randn(16)
# kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum()
# check("VAE KL term", kl, normal_kl(mu, logvar, 0.0, 0.0).sum(), atol=1e-12)
# ```
# ````
#
# **3. Jensen with a square.** Apply {eq}`prob-jensen` to $f(x) = x^2$. Which familiar fact do you
# get, and when is it an equality?
#
# ````{dropdown} Solution
# $\mathbb{E}[X]^2 \le \mathbb{E}[X^2]$, that is $\operatorname{Var}[X] = \mathbb{E}[X^2] - \mathbb{E}[X]^2 \ge 0$,
# with equality exactly when $X$ is constant: $x^2$ is strictly convex.
# ````
#
# **4. A Bernoulli latent.** Let $z \sim \operatorname{Bernoulli}(\pi)$ and $f(z) = (z - 0.4)^2$.
# Why does the reparameterisation trick not apply directly? Derive the score-function estimator
# of $\partial\,\mathbb{E}[f(z)]/\partial\pi$ and check that its mean is the exact derivative.
#
# ````{dropdown} Solution
# A sample of a Bernoulli is a step function of any continuous noise ($z = [u < \pi]$ for
# $u \sim \mathcal{U}(0, 1)$), whose derivative in $\pi$ is zero almost everywhere, so
# {eq}`prob-reparam-grad` would return zero. The exact derivative: $\mathbb{E}[f] = \pi f(1) + (1-\pi) f(0)$,
# so $\partial_\pi \mathbb{E}[f] = f(1) - f(0) = 0.36 - 0.16 = 0.2$. The score is
# $\partial_\pi \log p(z) = z/\pi - (1-z)/(1-\pi)$, and $\mathbb{E}[f(z)\,\partial_\pi\log p(z)] = \pi f(1)/\pi - (1-\pi) f(0)/(1-\pi) = f(1) - f(0)$.
#
# ```python
# pi = 0.3
# z = (torch.rand(1_000_000) < pi).double()
# est = (z - 0.4) ** 2 * (z / pi - (1 - z) / (1 - pi))
# print(est.mean(), est.std() / 1000)   # ≈ 0.200 ± 0.0007
# ```
# ````
#
# **5. Sampling with a full covariance.** Show that if $\boldsymbol{\Sigma} = \mathbf{L}\mathbf{L}^\top$
# then $\boldsymbol{\mu} + \mathbf{L}\boldsymbol{\epsilon}$ has covariance $\boldsymbol{\Sigma}$. Is the
# Cholesky factor the only choice? Try $\mathbf{L}' = \mathbf{L}\mathbf{R}$ for a rotation $\mathbf{R}$.
#
# ````{dropdown} Solution
# By {eq}`prob-gauss-linear` with $\mathbf{A} = \mathbf{L}$ the covariance is
# $\mathbf{L}\mathbf{I}\mathbf{L}^\top = \boldsymbol{\Sigma}$. Any square root works:
# $\mathbf{L}\mathbf{R}(\mathbf{L}\mathbf{R})^\top = \mathbf{L}\mathbf{R}\mathbf{R}^\top\mathbf{L}^\top = \boldsymbol{\Sigma}$
# because $\mathbf{R}\mathbf{R}^\top = \mathbf{I}$; so does the symmetric square root
# $\boldsymbol{\Sigma}^{1/2}$ from the eigendecomposition. The distribution of the samples is the
# same; only the pairing between a given $\boldsymbol{\epsilon}$ and its sample changes (which
# matters when the same noise is reused, as in chapter 7's deterministic samplers).
# ````
#
# **6. The digits are not 8-bit.** scikit-learn's digits have 17 grey levels. What is the largest
# number of bits per pixel that any model of them can need? How many bits per image does a model
# that puts the same probability on every possible image need, and how does that compare with
# $\log_2 127.5$ from the small-bin approximation?
#
# ````{dropdown} Solution
# The uniform distribution over 17 levels needs $\log_2 17 \approx 4.09$ bits per pixel, and any
# better model needs fewer; over $D = 64$ pixels that is $64 \log_2 17 \approx 261.6$ bits per image.
# If the same images are treated as 8-bit (256 levels), the uniform model needs 8 bits per pixel. The
# small-bin constant $\log_2 127.5 \approx 7.0$ bits is the difference between a continuous
# density on $[-1, 1]$ (uniform density $\tfrac12$, so $-\log_2\tfrac12 = 1$ bit) and the discrete
# model on the 256-level grid: $1 + 7 = 8$.
# ````
