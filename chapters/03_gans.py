# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Chapter 3: Generative adversarial networks
#
# A generative adversarial network (GAN, 生成对抗网络) {cite}`goodfellow2014gan` learns to sample
# without ever writing down a density. A **generator** (生成器) $G$ turns noise
# $\mathbf{z} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$ into a sample $G(\mathbf{z})$ in one
# pass of a network; a **discriminator** (判别器) $D$ looks at a sample and says how likely it is
# to be real. The two are trained against each other: $D$ to tell real from fake, $G$ to fool
# $D$. This chapter derives what that game optimises, why the loss in the original paper is not
# the one people train with, and why GANs like to drop parts of the data (mode collapse, 模式崩溃),
# and it measures each of these on data small enough to train on a laptop CPU in seconds.
#
# **What you will learn.**
#
# - The minimax objective $V(D, G)$ and the alternating training algorithm.
# - The **optimal discriminator** $D^* = p_{\text{data}}/(p_{\text{data}} + p_g)$, derived
#   pointwise and checked on 1-D densities, both by quadrature and by training a small network.
# - What the generator then minimises: $-\log 4 + 2\,\mathrm{JSD}(p_{\text{data}} \,\|\, p_g)$,
#   the Jensen–Shannon divergence, minimal exactly at $p_g = p_{\text{data}}$; what the proof
#   assumes.
# - Why the generator's loss in the game **saturates** when the discriminator wins, and the
#   **non-saturating** loss that fixes it (same fixed point, different dynamics: against an
#   optimal discriminator its gradient is that of $\operatorname{KL}(p_g\,\|\,p_{\text{data}}) - 2\,\mathrm{JSD}$),
#   measured in a real training run, and what Adam does and does not undo.
# - The hinge loss {cite}`lim2017geometric,miyato2018spectral` and WGAN-GP
#   {cite}`arjovsky2017wasserstein,gulrajani2017improved` in brief: against an optimal
#   discriminator the hinge loss measures the total variation distance, which saturates as the
#   JSD does at $\log 2$; the Wasserstein distance does not.
# - Training on a 2-D ring of 8 Gaussians and on the 8×8 digits.
# - **Mode collapse** made visible and measured over training, across seeds, with Goodfellow's
#   explanation {cite}`goodfellow2016nips`, and one remedy, PacGAN {cite}`lin2018pacgan`: what it
#   fixes and what it does not.
#
# **What it assumes.** Chapter 2 ({doc}`02_probability_toolkit`): expectations, densities, the
# KL divergence {eq}`prob-kl` and its non-negativity. Gradient descent with Adam, and what a logit is:
# a real number $\ell$ with probability $\sigma(\ell) = 1/(1 + e^{-\ell})$.

# %% [markdown]
# ## Setup
#
# The first cell installs the book's library when it is missing (on Colab). The chapter trains
# eleven small GANs on the ring (a few seconds each on one CPU core; the times are printed) and
# loads two from the zoo: `ring-gan` and `digits-gan` (a minute or so each to train on first
# use, then cached).

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
from torch.nn import functional as F

from diffusion_lib import check, check_le, check_outcome, data, gan, metrics, viz, zoo
from diffusion_lib.checks import glue
from diffusion_lib.seeds import shifted
from diffusion_lib.train import TrainConfig

torch.manual_seed(0)
chapter_start = time.perf_counter()

# %% [markdown]
# ## The game
#
# Let $p_{\text{data}}$ be the data distribution and $p_{\mathbf{z}} = \mathcal{N}(\mathbf{0}, \mathbf{I})$
# the noise. The generator $G$ pushes $p_{\mathbf{z}}$ forward to a distribution $p_g$ of samples
# $G(\mathbf{z})$. The discriminator outputs $D(\mathbf{x}) \in (0, 1)$, its probability that
# $\mathbf{x}$ is real. {cite:t}`goodfellow2014gan` define the **value function**
#
# $$
# V(D, G) = \mathbb{E}_{\mathbf{x} \sim p_{\text{data}}}\big[\log D(\mathbf{x})\big]
#         + \mathbb{E}_{\mathbf{z} \sim p_{\mathbf{z}}}\big[\log\big(1 - D(G(\mathbf{z}))\big)\big],
# \qquad \min_G \max_D V(D, G) .
# $$ (gan-minimax)
#
# $V$ is the log-likelihood of a binary classifier that labels real samples 1 and generated
# ones 0, so $D$ maximising $V$ is plain logistic regression; $G$ minimises the same number.
# Training alternates: a gradient step on $D$ with a real and a generated minibatch, then a
# gradient step on $G$ with a fresh generated minibatch (Algorithm 1 of the paper;
# `gan.train_gan` in the library, which also warms up the learning rates, clips gradients and keeps
# an exponential moving average (EMA) of $G$).
#
# In code the discriminator outputs a **logit** $\ell(\mathbf{x})$, and $D = \sigma(\ell)$.
# Since $\log\sigma(\ell) = -\operatorname{softplus}(-\ell)$ and
# $\log(1 - \sigma(\ell)) = \log\sigma(-\ell) = -\operatorname{softplus}(\ell)$, with
# $\operatorname{softplus}(u) = \log(1 + e^u)$, the discriminator's loss $-V$ is
# $\mathbb{E}[\operatorname{softplus}(-\ell_{\text{real}})] + \mathbb{E}[\operatorname{softplus}(\ell_{\text{fake}})]$,
# computed without ever taking the log of 0. A first check of the library's
# `discriminator_loss` against $-V$ written with $\log D$:

# %%
g = torch.Generator().manual_seed(0)
real_logits = 3 * torch.randn(1000, generator=g, dtype=torch.float64)
fake_logits = 3 * torch.randn(1000, generator=g, dtype=torch.float64) - 1
D_real, D_fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
minus_V = -(torch.log(D_real).mean() + torch.log(1 - D_fake).mean())
check(
    "discriminator_loss = −V(D, G) of eq. (gan-minimax)",
    gan.discriminator_loss(real_logits, fake_logits, "minimax"),
    minus_V,
    atol=1e-12,
)
check(
    "with every logit 0 (D = 1/2) the loss is 2 log 2",
    gan.discriminator_loss(torch.zeros(5), torch.zeros(7), "minimax"),
    2 * math.log(2),
)

# %% [markdown]
# ## The optimal discriminator
#
# Fix $G$ and ask which $D$ maximises $V$. Assume that $p_g$ has a density (this is an
# assumption: a generator maps a low-dimensional $\mathbf{z}$ into a larger space, and then it
# need not).
#
# 1. The second expectation in {eq}`gan-minimax` is over $\mathbf{z}$ of a function of
#    $G(\mathbf{z})$, so it equals the expectation over $\mathbf{x} \sim p_g$ of the same
#    function (the law of the unconscious statistician):
#    $\mathbb{E}_{\mathbf{z}}[\log(1 - D(G(\mathbf{z})))] = \mathbb{E}_{\mathbf{x} \sim p_g}[\log(1 - D(\mathbf{x}))]$.
# 2. Write both expectations as integrals over the same $\mathbf{x}$:
#    $V(D, G) = \int \big[p_{\text{data}}(\mathbf{x})\log D(\mathbf{x}) + p_g(\mathbf{x})\log(1 - D(\mathbf{x}))\big]\,d\mathbf{x}$.
# 3. $D$ is an arbitrary function (we do not restrict it to a network), so its value at each
#    $\mathbf{x}$ can be chosen separately, and the integral is maximised by maximising the
#    integrand at every $\mathbf{x}$.
# 4. At one $\mathbf{x}$ the integrand is $f(y) = a\log y + b\log(1 - y)$ with $y = D(\mathbf{x})$,
#    $a = p_{\text{data}}(\mathbf{x}) \ge 0$ and $b = p_g(\mathbf{x}) \ge 0$, not both 0.
# 5. Its derivative is $f'(y) = a/y - b/(1 - y)$, which vanishes where $a(1 - y) = by$, that is at
#    $y = a/(a + b)$.
# 6. $f''(y) = -a/y^2 - b/(1 - y)^2 < 0$, so $f$ is strictly concave on $(0, 1)$ and this stationary
#    point is its maximum.
#
# Hence
#
# $$
# D^*_G(\mathbf{x}) = \frac{p_{\text{data}}(\mathbf{x})}{p_{\text{data}}(\mathbf{x}) + p_g(\mathbf{x})},
# \qquad \ell^*(\mathbf{x}) = \log\frac{p_{\text{data}}(\mathbf{x})}{p_g(\mathbf{x})} .
# $$ (optimal-discriminator)
#
# The second form is the same statement for the logit: since $D^* = \sigma(\ell^*)$, the optimal
# logit is the **log density ratio**. A discriminator is a density-ratio estimator.
#
# First the pointwise step: for a few pairs $(a, b)$, the maximiser of $f$ on a grid of a million
# points of $(0, 1)$ sits at $a/(a + b)$, to within the grid spacing.

# %%
y = torch.linspace(1e-6, 1 - 1e-6, 1_000_001, dtype=torch.float64)
pairs = [(1.0, 1.0), (0.3, 1.7), (2.0, 0.05), (0.01, 0.4)]
argmax = [y[(a * torch.log(y) + b * torch.log1p(-y)).argmax()].item() for a, b in pairs]
check(
    "a log y + b log(1 − y) is maximised at y = a/(a + b), step 5",
    argmax,
    [a / (a + b) for a, b in pairs],
    atol=2e-6,
)

# %% [markdown]
# Now a concrete pair of 1-D densities: the "data" is a mixture of two Gaussians,
# $p_{\text{data}} = \tfrac12\mathcal{N}(-1.5, 0.5^2) + \tfrac12\mathcal{N}(1.5, 0.5^2)$, and the
# "generator" has missed both bumps, $p_g = \mathcal{N}(0, 1.2^2)$. We work with log-densities on a
# fine grid and integrate with the trapezoidal rule, in float64. The check: $D^*$ of
# {eq}`optimal-discriminator` equals the library's `gan.optimal_discriminator`, and any other
# $D$ (here $D^*$ with its logit perturbed in five random ways) has a smaller $V$.

# %%
xg = torch.linspace(
    -12, 12, 48_001, dtype=torch.float64
)  # the quadrature grid, spacing 5e-4


def log_normal(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))


def log_p_data(x):
    """The 'data': ½ N(−1.5, 0.5²) + ½ N(1.5, 0.5²)."""
    parts = torch.stack([log_normal(x, -1.5, 0.5), log_normal(x, 1.5, 0.5)])
    return torch.logsumexp(parts, dim=0) - math.log(2)


def log_p_gen(x):
    """The 'generator': N(0, 1.2²)."""
    return log_normal(x, 0.0, 1.2)


def integrate(values):
    return torch.trapezoid(values, xg).item()


def value_V(log_pd, log_pg, logit):
    """V(D, G) by quadrature, eq. (gan-minimax) as in step 2, with D = σ(logit)."""
    integrand = log_pd.exp() * F.logsigmoid(logit) + log_pg.exp() * F.logsigmoid(-logit)
    return integrate(integrand)


lpd, lpg = log_p_data(xg), log_p_gen(xg)
check(
    "both densities integrate to 1",
    [integrate(lpd.exp()), integrate(lpg.exp())],
    1.0,
    atol=1e-10,
)
logit_star = lpd - lpg  # eq. (optimal-discriminator), second form
D_star = torch.sigmoid(logit_star)
check(
    "σ(log p_data/p_g) = gan.optimal_discriminator, eq. (optimal-discriminator)",
    D_star,
    gan.optimal_discriminator(lpd.exp(), lpg.exp()),
    atol=1e-12,
)
V_star = value_V(lpd, lpg, logit_star)
V_others = []
for k in range(5):
    bump = torch.randn(
        8, generator=torch.Generator().manual_seed(k), dtype=torch.float64
    )
    perturbation = (
        sum(c * torch.cos((j + 1) * xg / 2) for j, c in enumerate(bump)) * 0.3
    )
    V_others.append(value_V(lpd, lpg, logit_star + perturbation))
check_le("V(D, G) ≤ V(D*, G) for five perturbed discriminators", V_others, V_star)
print(f"V(D*, G) = {V_star:.5f};  perturbed: {', '.join(f'{v:.5f}' for v in V_others)}")

# %% [markdown]
# The derivation lets $D$ be any function. A real discriminator is a network trained by
# stochastic gradient descent on samples, and it only sees the densities through them. Does it
# find $D^*$? We train the library's `MLPDiscriminator` (two hidden layers of 64 units) with the
# library's `discriminator_loss` on fresh minibatches of 256 samples from each density, and
# compare its $D$ with $D^*$ where both densities have mass to learn from, $|x| \le 2$. Its
# seeds (initial weights, minibatches) are training seeds: they go through `shifted`, so that
# the book-wide seed shift of `diffusion_lib.seeds` gives another training run.

# %%
x_test = torch.linspace(-2, 2, 81)
D_exact = gan.optimal_discriminator(
    log_p_data(x_test.double()).exp(), log_p_gen(x_test.double()).exp()
)
torch.manual_seed(shifted(0))
D_net = gan.MLPDiscriminator(sample_shape=(1,), hidden=64, num_layers=2)
with torch.no_grad():
    gap_untrained = (torch.sigmoid(D_net(x_test[:, None])).double() - D_exact).abs()
optimizer = torch.optim.Adam(D_net.parameters(), lr=2e-3)
g = torch.Generator().manual_seed(shifted(0))
for _step in range(800):
    sign = torch.randint(0, 2, (256,), generator=g) * 2 - 1
    real = 1.5 * sign + 0.5 * torch.randn(256, generator=g)  # from p_data
    fake = 1.2 * torch.randn(256, generator=g)  # from p_g
    loss = gan.discriminator_loss(D_net(real[:, None]), D_net(fake[:, None]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
with torch.no_grad():
    D_learned = torch.sigmoid(D_net(x_test[:, None])).double()
gap = (D_learned - D_exact).abs()
print(
    f"|D − D*| on |x| ≤ 2: before training mean {gap_untrained.mean():.3f}, "
    f"max {gap_untrained.max():.3f};\n"
    f"  after, mean {gap.mean():.3f}, max {gap.max():.3f}"
)
# measured under seed shifts 0/1/2: 0.031 / 0.081 / 0.089 (untrained 0.42 / 0.44 / 0.52)
check_outcome(
    "a trained discriminator approximates D* on |x| ≤ 2: max |D − D*|",
    gap.max(),
    at_most=0.15,
)
glue("ch3_d_gap_mean", float(gap.mean()))
glue("ch3_d_gap_max", float(gap.max()))
glue("ch3_d_gap_untrained", float(gap_untrained.max()))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].plot(xg, lpd.exp(), label="$p_{data}$")
axes[0].plot(xg, lpg.exp(), label="$p_g$")
axes[0].set(xlim=(-4, 4), xlabel="x", ylabel="density", title="two densities")
axes[0].legend()
axes[1].plot(xg, D_star, "k", label="$D^*$ (eq. optimal-discriminator)")
axes[1].plot(x_test, D_learned, "r--", label="trained MLP discriminator")
axes[1].axhline(0.5, color="grey", lw=0.5)
axes[1].set(
    xlim=(-4, 4),
    ylim=(0, 1),
    xlabel="x",
    ylabel="D(x)",
    title="the optimal discriminator",
)
axes[1].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left, the 'data' density (two bumps) and the 'generator' density (one broad bump);
# right, the optimal discriminator $D^*$ and a trained network's $D$.* $D^*$ is close to 1 on the
# bumps, where the data has more mass than the generator, close to 0 in the middle and the tails,
# where the generator puts mass the data does not have, and exactly $1/2$ where the two densities
# cross. The network, trained on samples only, follows it where samples are plentiful (on
# $|x| \le 2$ its $D$ is within {glue:text}`ch3_d_gap_max:.3f` of $D^*$, and
# {glue:text}`ch3_d_gap_mean:.3f` on average; before training the largest gap was
# {glue:text}`ch3_d_gap_untrained:.2f`); it has no samples to learn from far out in the tails.
#
# ## What the generator minimises
#
# Put $D^*_G$ back into $V$. Call the result $C(G) = \max_D V(D, G) = V(D^*_G, G)$, and let
# $m = \tfrac12(p_{\text{data}} + p_g)$ be the mixture of the two.
#
# 1. By {eq}`optimal-discriminator` and step 1 above,
#    $C(G) = \mathbb{E}_{p_{\text{data}}}\Big[\log\frac{p_{\text{data}}}{p_{\text{data}} + p_g}\Big] + \mathbb{E}_{p_g}\Big[\log\frac{p_g}{p_{\text{data}} + p_g}\Big]$,
#    using $1 - D^* = p_g/(p_{\text{data}} + p_g)$.
# 2. Write each denominator as $p_{\text{data}} + p_g = 2m$, so each logarithm splits:
#    $\log\frac{p_{\text{data}}}{2m} = \log\frac{p_{\text{data}}}{m} - \log 2$, and likewise for $p_g$.
# 3. The constants $-\log 2$ come out of the expectations (each of total probability 1), giving
#    $C(G) = -2\log 2 + \mathbb{E}_{p_{\text{data}}}\big[\log\frac{p_{\text{data}}}{m}\big] + \mathbb{E}_{p_g}\big[\log\frac{p_g}{m}\big]$.
# 4. The two expectations are KL divergences (eq. {eq}`prob-kl`):
#    $C(G) = -\log 4 + \operatorname{KL}(p_{\text{data}} \,\|\, m) + \operatorname{KL}(p_g \,\|\, m)$.
# 5. By definition, the Jensen–Shannon divergence (JS 散度) is
#    $\operatorname{JSD}(p \,\|\, q) = \tfrac12\operatorname{KL}(p \,\|\, m) + \tfrac12\operatorname{KL}(q \,\|\, m)$, $m = \tfrac12(p + q)$. So
#
# $$
# C(G) = \max_D V(D, G) = -\log 4 + 2\,\operatorname{JSD}(p_{\text{data}} \,\|\, p_g) .
# $$ (gan-jsd)
#
# 6. A KL divergence is $\ge 0$, with equality only when its two arguments are equal (chapter 2),
#    so $\operatorname{JSD} \ge 0$, with equality only when $p_{\text{data}} = m = p_g$. Hence the
#    global minimum of $C$ is $-\log 4$, reached at $p_g = p_{\text{data}}$ and nowhere else. There
#    $D^* = 1/2$ everywhere: the discriminator can do no better than a coin.
#
# We check {eq}`gan-jsd` by quadrature on our two densities, computing the JSD from its
# definition (step 5) and $C(G)$ from $V$ (step 2) with $D = D^*$:


# %%
def kl_quad(log_p, log_q):
    """KL(p ‖ q) by quadrature, from log-densities on the grid."""
    return integrate(log_p.exp() * (log_p - log_q))


def jsd_quad(log_p, log_q):
    """The Jensen–Shannon divergence from its definition (step 5), by quadrature."""
    log_m = torch.logaddexp(log_p, log_q) - math.log(2)
    return 0.5 * kl_quad(log_p, log_m) + 0.5 * kl_quad(log_q, log_m)


jsd = jsd_quad(lpd, lpg)
check(
    "C(G) = V(D*, G) = −log 4 + 2 JSD(p_data ‖ p_g), eq. (gan-jsd)",
    V_star,
    -math.log(4) + 2 * jsd,
    atol=1e-10,
)
check(
    "with p_g = p_data, C(G) = −log 4 (and D* = 1/2)",
    value_V(lpd, lpd, lpd - lpd),
    -math.log(4),
    atol=1e-10,
)
print(f"JSD = {jsd:.5f} nats;  C(G) = {V_star:.5f};  −log 4 = {-math.log(4):.5f}")

# %% [markdown]
# To see the minimum, slide the generator: let $p_g$ be the data density shifted by $\mu$,
# $p_g(x) = p_{\text{data}}(x - \mu)$. At $\mu = 0$ the generator is perfect. As $\mu$ grows, $C$
# rises from $-\log 4$, and it never exceeds $0$: since $m \ge p/2$, $\operatorname{KL}(p \,\|\, m) \le \log 2$,
# so $\operatorname{JSD} \le \log 2$. Once the two densities no longer overlap, $C$ is stuck at
# (very nearly) $0$, whatever $\mu$. Near $\mu = 0$ it rises like a parabola:
#
# 1. For nearby densities, a second-order Taylor expansion of the logarithm gives
#    $\operatorname{KL}(p \,\|\, q) \approx \tfrac12\int (p - q)^2/q\,dx = \tfrac12\chi^2(p, q)$.
# 2. $p_g - m = \tfrac12(p_g - p_{\text{data}})$ and $p_{\text{data}} - m = -\tfrac12(p_g - p_{\text{data}})$,
#    so each KL in $2\operatorname{JSD} = \operatorname{KL}(p_{\text{data}} \,\|\, m) + \operatorname{KL}(p_g \,\|\, m)$
#    is about $\tfrac18\chi^2(p_g, p_{\text{data}})$, and $2\operatorname{JSD} \approx \tfrac14\chi^2(p_g, p_{\text{data}})$.
# 3. For a small shift, $p_g - p_{\text{data}} \approx -\mu\,p_{\text{data}}'$, so
#    $C(G) + \log 4 = 2\operatorname{JSD} \approx \tfrac14\mu^2 I$ with $I = \int p_{\text{data}}'^2/p_{\text{data}}\,dx$
#    (the Fisher information of the shift).

# %%
shifts = np.linspace(-8, 8, 81)
C_curve, W1_curve = [], []
F_data = torch.cumulative_trapezoid(lpd.exp(), xg, dim=0)
for mu in shifts:
    lpg_mu = log_p_data(xg - mu)
    C_curve.append(value_V(lpd, lpg_mu, lpd - lpg_mu))
    F_gen = torch.cumulative_trapezoid(lpg_mu.exp(), xg, dim=0)
    W1_curve.append(torch.trapezoid((F_data - F_gen).abs(), xg[1:]).item())
C_curve, W1_curve = np.array(C_curve), np.array(W1_curve)
check_le(
    "C(G) ≥ −log 4 for every shift (JSD ≥ 0)", -math.log(4), C_curve.min(), atol=1e-12
)
check_le("C(G) ≤ 0 for every shift (JSD ≤ log 2)", C_curve.max(), 0.0, atol=1e-12)
fisher = integrate(lpd.exp() * torch.gradient(lpd, spacing=(xg,))[0] ** 2)
smallest = np.abs(shifts - 0.2).argmin()  # the shift μ = 0.2
check(
    "C(G) + log 4 ≈ μ² I / 4 near the minimum (step 3), at μ = 0.2",
    C_curve[smallest] + math.log(4),
    0.2**2 * fisher / 4,
    rtol=0.03,  # the neglected terms are O(μ⁴)
)
far = np.abs(shifts) >= 6
print(
    f"C(G) for |μ| ≥ 6 lies in [{C_curve[far].min():.2e}, {C_curve[far].max():.2e}]: "
    "flat, no gradient"
)

# %% [markdown]
# The flat tails are a real problem. If the generator's samples and the data do not overlap (and
# early in training, with samples on thin manifolds in a high-dimensional space, they typically do
# not {cite}`arjovsky2017wasserstein`), then the JSD is $\log 2$, and a small change of the
# generator does not change it: the ideal game gives the generator no direction. The
# **Wasserstein-1 distance** $W_1$ behaves differently: for a shifted copy it is exactly $|\mu|$,
# growing linearly however far apart the two are. In 1-D it is the area between the two
# cumulative distribution functions, $W_1 = \int |F_{\text{data}}(x) - F_g(x)|\,dx$, which we
# computed alongside by quadrature:

# %%
check(
    "W1(p_data, p_data shifted by μ) = |μ| (area between the CDFs)",
    W1_curve,
    np.abs(shifts),
    atol=1e-5,
)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].plot(shifts, C_curve, "k")
axes[0].axhline(-math.log(4), color="C0", ls="--", label="−log 4 (the minimum)")
axes[0].axhline(0.0, color="C3", ls=":", label="0 (JSD = log 2)")
axes[0].set(
    xlabel="shift μ of the generator",
    ylabel="C(G) = max_D V(D, G)",
    title="eq. (gan-jsd)",
)
axes[0].legend()
axes[1].plot(shifts, W1_curve, "k")
axes[1].set(
    xlabel="shift μ of the generator", ylabel="$W_1$", title="Wasserstein-1 distance"
)
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left, the generator's objective against the optimal discriminator, $C(G)$, for a
# generator that is the data density shifted by $\mu$; right, the Wasserstein-1 distance for the
# same shifts.* $C$ has its unique minimum $-\log 4$ at $\mu = 0$ and goes flat at $0$ once the
# densities separate; $W_1$ keeps pointing the way home.
#
# **What the proof assumes.** {eq}`gan-jsd` is a statement about the game in *function space*:
# $D$ is any function and is optimal for the current $G$, $p_g$ is a density, and $G$ may be any
# distribution, so that the minimum over $G$ is the minimum over $p_g$. Training does none of
# this: $D$ and $G$ are networks of fixed size, $D$ gets one gradient step (not a full
# maximisation) per generator step, and both see minibatches. {cite:t}`goodfellow2014gan`'s
# convergence argument (their Proposition 2) also needs $p_g$ to be updated directly, in the space
# of densities where $C$ is convex, not through the weights of a network. The theory says what
# the game is aiming at; it does not promise that alternating gradient steps get there.
#
# ## The saturating loss and the non-saturating one
#
# Look at the generator's term of {eq}`gan-minimax` on the logit $\ell = \ell(G(\mathbf{z}))$
# of one generated sample, with $D = \sigma(\ell)$:
#
# 1. The generator minimises $\log(1 - \sigma(\ell)) = \log\sigma(-\ell) = -\operatorname{softplus}(\ell)$.
# 2. Its derivative with respect to the logit is $-\operatorname{softplus}'(\ell) = -\sigma(\ell) = -D(G(\mathbf{z}))$.
# 3. Early in training the fakes are bad and $D$ rejects them confidently: $\ell \to -\infty$,
#    $D(G(\mathbf{z})) \to 0$, and so the derivative $\to 0$. The generator gets almost no gradient
#    exactly when it most needs one: the loss **saturates** (饱和).
#
# {cite:t}`goodfellow2014gan` therefore train $G$ to *maximise* $\log D(G(\mathbf{z}))$ instead,
# the **non-saturating** loss (非饱和损失):
#
# $$
# L_G^{\text{NS}} = -\mathbb{E}_{\mathbf{z}}\big[\log D(G(\mathbf{z}))\big]
#   = \mathbb{E}_{\mathbf{z}}\big[\operatorname{softplus}(-\ell(G(\mathbf{z})))\big],
# \qquad \frac{\partial}{\partial\ell}\operatorname{softplus}(-\ell) = -\sigma(-\ell) = -\big(1 - D(G(\mathbf{z}))\big) .
# $$ (gan-non-saturating)
#
# Its derivative tends to $-1$ where the other one vanishes. The ratio of the two derivatives is
# $\sigma(\ell)/\sigma(-\ell) = e^{\ell} = D/(1 - D)$: when $D(G(\mathbf{z})) = 10^{-3}$, the
# minimax loss passes on a thousandth of the gradient. The library's losses, differentiated by
# autograd, against these formulas:

# %%
ell = torch.linspace(-12, 12, 97, dtype=torch.float64, requires_grad=True)
n_ell = ell.numel()
(grad_minimax,) = torch.autograd.grad(gan.generator_loss(ell, "minimax") * n_ell, ell)
(grad_ns,) = torch.autograd.grad(gan.generator_loss(ell, "non-saturating") * n_ell, ell)
ell = ell.detach()
check(
    "minimax generator loss: mean of log(1 − σ(ℓ)) = −softplus(ℓ)",
    gan.generator_loss(ell, "minimax"),
    torch.log1p(-torch.sigmoid(ell)).mean(),
    atol=1e-12,
)
check(
    "non-saturating loss: mean of −log σ(ℓ), eq. (gan-non-saturating)",
    gan.generator_loss(ell, "non-saturating"),
    -torch.log(torch.sigmoid(ell)).mean(),
    atol=1e-12,
)
check(
    "d/dℓ of the minimax loss = −σ(ℓ) (autograd)",
    grad_minimax,
    -torch.sigmoid(ell),
    atol=1e-14,
)
check(
    "d/dℓ of the non-saturating loss = −σ(−ℓ) (autograd)",
    grad_ns,
    -torch.sigmoid(-ell),
    atol=1e-14,
)
check(
    "their ratio is e^ℓ = D/(1 − D)", grad_minimax / grad_ns, torch.exp(ell), rtol=1e-12
)

fig, ax = plt.subplots(figsize=(6, 3.6))
D_axis = torch.sigmoid(ell)
ax.loglog(D_axis, grad_minimax.abs(), label="minimax: |−σ(ℓ)| = D")
ax.loglog(D_axis, grad_ns.abs(), label="non-saturating: |−σ(−ℓ)| = 1 − D")
ax.set(
    xlabel="D(G(z))  (how real the discriminator thinks a fake is)",
    ylabel="|∂ loss / ∂ℓ|",
)
ax.legend()
plt.show()

# %% [markdown]
# *Figure: the size of the gradient that a generated sample passes back through its logit, against
# the discriminator's output on it (log–log axes).* Left is early training, where $D$ rejects the
# fakes: the minimax loss's gradient falls in proportion to $D(G(\mathbf{z}))$, the
# non-saturating one stays near 1. The two cross at $D = 1/2$.
#
# **Same fixed point.** The two losses disagree in size per sample, but they share their ideal
# solution. At $p_g = p_{\text{data}}$ with $D^* = 1/2$ (logit 0) both derivatives are $-1/2$ for
# every sample, so the gradients with respect to $G$'s weights are identical there. More
# strongly, evaluate the non-saturating objective against the optimal discriminator:
#
# 1. By {eq}`optimal-discriminator`, $-\log D^* = \log\frac{p_{\text{data}} + p_g}{p_{\text{data}}} = \log\frac{2m}{p_{\text{data}}}$.
# 2. Multiply and divide by $p_g$ inside the logarithm: $\log\frac{2m}{p_{\text{data}}} = \log\frac{p_g}{p_{\text{data}}} - \log\frac{p_g}{m} + \log 2$.
# 3. Take the expectation over $\mathbf{x} \sim p_g$ (step 1 of the previous derivation):
#
# $$
# \mathbb{E}_{\mathbf{x} \sim p_g}\big[-\log D^*(\mathbf{x})\big]
#   = \operatorname{KL}(p_g \,\|\, p_{\text{data}}) - \operatorname{KL}(p_g \,\|\, m) + \log 2 .
# $$ (gan-ns-value)
#
# 4. The KL divergence is convex in its second argument, so
#    $\operatorname{KL}(p_g \,\|\, m) \le \tfrac12\operatorname{KL}(p_g \,\|\, p_{\text{data}}) + \tfrac12\operatorname{KL}(p_g \,\|\, p_g) = \tfrac12\operatorname{KL}(p_g \,\|\, p_{\text{data}})$.
# 5. Hence {eq}`gan-ns-value` is at least $\log 2 + \tfrac12\operatorname{KL}(p_g \,\|\, p_{\text{data}}) \ge \log 2$,
#    with equality only at $p_g = p_{\text{data}}$: the same minimiser as $C(G)$.
#
# Same fixed point, then. A check by quadrature on the shifted densities, of the identity and of
# the lower bound of step 5:

# %%
ns_value, ns_formula = [], []
for mu in shifts:
    lpg_mu = log_p_data(xg - mu)
    ns_value.append(integrate(lpg_mu.exp() * -F.logsigmoid(lpd - lpg_mu)))
    log_m = torch.logaddexp(lpd, lpg_mu) - math.log(2)
    ns_formula.append(kl_quad(lpg_mu, lpd) - kl_quad(lpg_mu, log_m) + math.log(2))
ns_value, ns_formula = np.array(ns_value), np.array(ns_formula)
near = np.abs(shifts) <= 3  # where both sides are finite in float64 on the grid
check(
    "E_pg[−log D*] = KL(p_g‖p_data) − KL(p_g‖m) + log 2, eq. (gan-ns-value), |μ| ≤ 3",
    ns_value[near],
    ns_formula[near],
    atol=1e-8,
)
kl_reverse = np.array([kl_quad(log_p_data(xg - mu), lpd) for mu in shifts[near]])
check_le(
    "... ≥ log 2 + ½ KL(p_g ‖ p_data), step 5, for |μ| ≤ 3",
    math.log(2) + 0.5 * kl_reverse,
    ns_value[near],
    atol=1e-10,
)
check(
    "... smallest at μ = 0 (p_g = p_data) of all 81 shifts: the same minimiser as C(G)",
    shifts[np.nanargmin(ns_value)],
    0.0,
)

# %% [markdown]
# **What a generator step follows.** {eq}`gan-ns-value` is the *value* of the non-saturating
# objective when the discriminator is optimal for every $p_g$. A training step does something
# else: it holds the current $D$ fixed and differentiates the generator's loss with respect to
# the generator's parameters $\theta$ alone. Let $D$ be optimal for the current parameters
# $\theta_0$, $D^* = p_{\text{data}}/(p_{\text{data}} + p_{\theta_0})$; write $p_\theta$ for the
# generator's density, $m_\theta = \tfrac12(p_{\text{data}} + p_\theta)$, and $\nabla$ for the
# gradient with respect to $\theta$ at $\theta = \theta_0$ {cite}`arjovsky2017towards`.
#
# 1. With $D^*$ fixed, the loss is
#    $J(\theta) = \mathbb{E}_{\mathbf{x} \sim p_\theta}[-\log D^*(\mathbf{x})] = \int p_\theta \log\frac{p_{\text{data}} + p_{\theta_0}}{p_{\text{data}}}\,d\mathbf{x}$
#    (step 1 of the optimal discriminator, then step 1 above), and only $p_\theta$ depends on
#    $\theta$: $\nabla J = \int \nabla p_\theta \log\frac{2 m_{\theta_0}}{p_{\text{data}}}\,d\mathbf{x}$.
# 2. The densities integrate to 1 for every $\theta$, so $\int \nabla p_\theta\,d\mathbf{x} = \nabla 1 = 0$,
#    and the $\log 2$ of $\log\frac{2m}{p_{\text{data}}} = \log 2 + \log\frac{m}{p_{\text{data}}}$ drops out:
#    $\nabla J = \int \nabla p_\theta \log\frac{m_{\theta_0}}{p_{\text{data}}}\,d\mathbf{x}$.
# 3. The product rule on $\operatorname{KL}(p_\theta \,\|\, p_{\text{data}}) = \int p_\theta \log\frac{p_\theta}{p_{\text{data}}}$
#    gives $\int \nabla p_\theta \log\frac{p_\theta}{p_{\text{data}}} + \int p_\theta \frac{\nabla p_\theta}{p_\theta}$,
#    and the last integral is $\int \nabla p_\theta = 0$ (step 2).
# 4. By step 5 of the JSD derivation,
#    $2\,\operatorname{JSD}(p_\theta \,\|\, p_{\text{data}}) = \int p_\theta \log\frac{p_\theta}{m_\theta} + \int p_{\text{data}} \log\frac{p_{\text{data}}}{m_\theta}$,
#    and $\nabla m_\theta = \tfrac12 \nabla p_\theta$. The product rule gives
#    $\int \nabla p_\theta \log\frac{p_\theta}{m_\theta} + \int \nabla p_\theta - \int \frac{p_\theta + p_{\text{data}}}{2 m_\theta} \nabla p_\theta$;
#    the fraction in the last integral is 1, so the last two integrals cancel.
# 5. Subtract 4 from 3: $\nabla\big[\operatorname{KL} - 2\,\operatorname{JSD}\big] = \int \nabla p_\theta \big[\log\frac{p_\theta}{p_{\text{data}}} - \log\frac{p_\theta}{m_\theta}\big] = \int \nabla p_\theta \log\frac{m_\theta}{p_{\text{data}}}$,
#    which at $\theta = \theta_0$ is $\nabla J$ of step 2. Hence (Theorem 2.5 of
#    {cite:t}`arjovsky2017towards`)
#
# $$
# \nabla_\theta\, \mathbb{E}_{\mathbf{z}}\big[-\log D^*(G_\theta(\mathbf{z}))\big]\Big|_{\theta_0}
#   = \nabla_\theta \big[\operatorname{KL}(p_\theta \,\|\, p_{\text{data}})
#     - 2\,\operatorname{JSD}(p_\theta \,\|\, p_{\text{data}})\big]\Big|_{\theta_0} .
# $$ (gan-ns-gradient)
#
# This is not the gradient of {eq}`gan-ns-value`. There $D^*$ moves with $\theta$, which adds
# the term $\mathbb{E}_{p_\theta}\big[\nabla(-\log D^*_\theta)\big] = \int p_\theta \frac{\nabla p_\theta}{p_{\text{data}} + p_\theta} = \int (1 - D^*)\,\nabla p_\theta\,d\mathbf{x}$,
# in general not zero. For the minimax loss the corresponding term vanishes: $D^*$ maximises
# the integrand of $V$ at every $\mathbf{x}$, so a small change of $D$ changes $V$ only to
# second order (the envelope theorem), and a minimax generator step against $D^*$ follows
# $\nabla C(G) = 2\nabla\operatorname{JSD}$ exactly. The non-saturating loss is not the
# objective that $D^*$ optimises, and has no such luck.
#
# What {eq}`gan-ns-gradient` says about the dynamics. Near $p_{\text{data}}$, to second order
# in the difference, $\operatorname{KL}(p_g \,\|\, p_{\text{data}}) \approx \tfrac12\chi^2$ and
# $2\,\operatorname{JSD} \approx \tfrac14\chi^2$ (steps 1 and 2 of the parabola above), so
# $\operatorname{KL} - 2\,\operatorname{JSD} \approx \tfrac12\operatorname{KL}$: $p_g = p_{\text{data}}$ is
# still where the gradient vanishes, a minimum. Away from it, the reverse KL
# $\operatorname{KL}(p_g \,\|\, p_{\text{data}})$ punishes generated samples where there is no data
# far more than data where there are no samples (a first hint at mode dropping)
# {cite}`goodfellow2016nips`, and the JSD enters with a minus sign, a term that on its own would
# push $p_g$ *away* from the data. A check by finite differences, with quadrature, on the
# Gaussian family $p_\theta = \mathcal{N}(\mu, s^2)$, $\theta = (\mu, \log s)$, at
# $\theta_0 = (0.5, \log 1.2)$ against the two-bump data, $D^*$ held fixed at its value for
# $\theta_0$:


# %%
def log_p_theta(theta):
    """The Gaussian generator family N(μ, s²), θ = (μ, log s), on the grid."""
    return log_normal(xg, theta[0], math.exp(theta[1]))


def finite_difference(objective, theta, h=1e-4):
    """Central differences of objective(θ) in each coordinate of θ."""
    grad = []
    for i in range(len(theta)):
        up, down = list(theta), list(theta)
        up[i] += h
        down[i] -= h
        grad.append((objective(up) - objective(down)) / (2 * h))
    return np.array(grad)


theta0 = (0.5, math.log(1.2))
lpg0 = log_p_theta(theta0)
minus_log_D_fixed = -F.logsigmoid(lpd - lpg0)  # −log D*, D* optimal for θ0, held fixed
log_one_minus_D_fixed = F.logsigmoid(lpg0 - lpd)  # log(1 − D*), held fixed
grad_ns_fixed_D = finite_difference(
    lambda th: integrate(log_p_theta(th).exp() * minus_log_D_fixed), theta0
)
grad_kl_minus_2jsd = finite_difference(
    lambda th: kl_quad(log_p_theta(th), lpd) - 2 * jsd_quad(log_p_theta(th), lpd),
    theta0,
)
grad_ns_value = finite_difference(  # eq. (gan-ns-value): D* re-optimised for every θ
    lambda th: integrate(log_p_theta(th).exp() * -F.logsigmoid(lpd - log_p_theta(th))),
    theta0,
)
check(
    "NS step against a fixed D*: ∇ of KL(p_θ‖p_data) − 2 JSD, eq. (gan-ns-gradient)",
    grad_ns_fixed_D,
    grad_kl_minus_2jsd,
    atol=1e-6,
)
mu0, s0 = theta0[0], math.exp(theta0[1])
score = [(xg - mu0) / s0**2, ((xg - mu0) / s0) ** 2 - 1]  # ∇_θ log p_θ at θ0
one_minus_D = torch.sigmoid(lpg0 - lpd)
check(
    "∇ of eq. (gan-ns-value) exceeds it by ∫(1 − D*)∇p_θ = E_p_θ[(1 − D*)∇ log p_θ]",
    grad_ns_value - grad_ns_fixed_D,
    [integrate(lpg0.exp() * one_minus_D * sc) for sc in score],
    atol=1e-6,
)
check(
    "minimax step against a fixed D*: ∇ of C(G) = −log 4 + 2 JSD (envelope theorem)",
    finite_difference(
        lambda th: integrate(log_p_theta(th).exp() * log_one_minus_D_fixed), theta0
    ),
    finite_difference(lambda th: 2 * jsd_quad(log_p_theta(th), lpd), theta0),
    atol=1e-6,
)
lp_near = log_p_data(xg - 0.03)  # the data shifted by 0.03
kl_near = kl_quad(lp_near, lpd)
check(
    "near p_data, KL − 2 JSD ≈ ½ KL (second order), at a shift of 0.03",
    (kl_near - 2 * jsd_quad(lp_near, lpd)) / kl_near,
    0.5,
    atol=1e-3,
)
print("gradients in (μ, log s) at θ0:")
print(
    f"  NS step against fixed D*, eq. (gan-ns-gradient): {np.round(grad_ns_fixed_D, 4)}"
)
print(
    f"  gradient of the value, eq. (gan-ns-value):       {np.round(grad_ns_value, 4)}"
)

# %% [markdown]
# **Different dynamics, measured.** Does saturation happen in a real run? We train a GAN on the
# ring of eight Gaussians (described with the training section below) twice from the same
# initial weights, once with the minimax generator loss and once with the non-saturating one,
# in a setting where the discriminator gets ahead early (its learning rate is 20 times the
# generator's). Every five steps, a callback draws a fixed batch of noise, and measures the mean
# of $D(G(\mathbf{z}))$ and the norm of the gradient that each loss would send to the
# generator's weights, $\lVert\nabla_\theta L_G\rVert$, with the current $D$. At every step it
# also records what Adam did to the generator's weights (we come back to that below).

# %%
ring_data = data.ring(n=8000, seed=0)
ring_centres = data.ring_modes()
BETA1, BETA2 = gan.GANConfig().beta1, gan.GANConfig().beta2  # Adam's β's in train_gan


def measure_saturation(loss, steps=250):
    """Train on the ring with `loss`; record D(G(z)), gradients and Adam's steps.

    Every 5 steps: mean D(G(z)) on a fixed batch and both losses' gradient norms there.
    Every step: norms of the gradient Adam used, of √v̂ and of the weights' change, and
    the error of Adam's step recomputed by hand from that gradient.
    """
    torch.manual_seed(shifted(0))  # a training seed: the seed shift moves it
    G_net = gan.MLPGenerator(z_dim=8, sample_shape=(2,), hidden=128, num_layers=3)
    D_net = gan.MLPDiscriminator(sample_shape=(2,), hidden=128, num_layers=3)
    z_fixed = torch.randn(512, 8, generator=torch.Generator().manual_seed(5))
    record = {"step": [], "D_fake": [], "minimax": [], "non-saturating": []}
    adam = {"grad": [], "sqrt_v_hat": [], "update": [], "by_hand_error": []}
    params = list(G_net.parameters())
    before = [p.detach().clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    config = TrainConfig(
        steps=steps,
        batch_size=128,
        lr=1e-4,
        warmup_steps=50,
        ema_decay=0.99,
        grad_clip=10.0,
        seed=shifted(0),
    )

    def callback(step, generator_net, ema):
        # Adam by hand: p.grad holds the (clipped) gradient of the step just taken
        lr = config.lr * min(1.0, step / config.warmup_steps)  # the linear warm-up
        sums = dict.fromkeys(adam, 0.0)
        for i, p in enumerate(params):
            m[i] = BETA1 * m[i] + (1 - BETA1) * p.grad
            v[i] = BETA2 * v[i] + (1 - BETA2) * p.grad**2
            v_hat = v[i] / (1 - BETA2**step)
            by_hand = -lr * m[i] / (1 - BETA1**step) / (v_hat.sqrt() + 1e-8)
            update = p.detach() - before[i]
            before[i] = p.detach().clone()
            sums["grad"] += p.grad.pow(2).sum().item()
            sums["sqrt_v_hat"] += v_hat.sum().item()
            sums["update"] += update.pow(2).sum().item()
            sums["by_hand_error"] += (by_hand - update).pow(2).sum().item()
        for key, total in sums.items():
            adam[key].append(math.sqrt(total))
        adam["by_hand_error"][-1] /= adam["update"][-1]  # relative to the step
        if step % 5:
            return
        logits = D_net(generator_net(z_fixed))
        record["step"].append(step)
        record["D_fake"].append(torch.sigmoid(logits).mean().item())
        for name in ("minimax", "non-saturating"):
            grads = torch.autograd.grad(
                gan.generator_loss(logits, name), params, retain_graph=True
            )
            record[name].append(math.sqrt(sum(gr.pow(2).sum().item() for gr in grads)))

    gan.train_gan(
        G_net,
        D_net,
        ring_data,
        config,
        gan.GANConfig(loss=loss, d_lr=2e-3),
        progress=False,
        callback=callback,
    )
    return {k: np.array(v) for k, v in (record | adam).items()}


saturation = {loss: measure_saturation(loss) for loss in ("minimax", "non-saturating")}
mm, ns = saturation["minimax"], saturation["non-saturating"]
worst = mm["D_fake"].argmin()
worst_step = int(mm["step"][worst])
ratio = mm["minimax"][worst] / mm["non-saturating"][worst]
print(
    f"minimax run: smallest mean D(G(z)) = {mm['D_fake'][worst]:.1e} at step "
    f"{worst_step};\n  there the gradient norm of the minimax loss is "
    f"{mm['minimax'][worst]:.1e},\n  of the non-saturating one "
    f"{mm['non-saturating'][worst]:.1e}"
)
saturated_steps = {
    loss: 5 * int((rec["D_fake"] < 0.01).sum()) for loss, rec in saturation.items()
}
for loss, n_steps in saturated_steps.items():
    print(f"{loss:>15} run: mean D(G(z)) < 0.01 for {n_steps} of 250 steps")
# measured under seed shifts 0/1/2: 2.8e-4 / 5.0e-5 / 1.2e-4
check_outcome(
    "the discriminator wins early: smallest mean D(G(z)) in the minimax run",
    mm["D_fake"][worst],
    at_most=2e-3,
)
# measured under seed shifts 0/1/2: 6.5e-4 / 8.2e-5 / 3.0e-4
check_outcome(
    "there the minimax gradient / the non-saturating one (at the same weights)",
    ratio,
    at_most=5e-3,
)
# measured under seed shifts 0/1/2: 95 / 190 / 150 (minimax 125 / 215 / 170 steps)
check_outcome(
    "steps with mean D(G(z)) < 0.01: minimax run minus non-saturating run",
    saturated_steps["minimax"] - saturated_steps["non-saturating"],
    at_least=50,
)
glue("ch3_sat_worst_D", float(mm["D_fake"][worst]))
glue("ch3_sat_worst_step", int(worst_step))
glue("ch3_sat_grad_mm", float(mm["minimax"][worst]))
glue("ch3_sat_grad_ns", float(mm["non-saturating"][worst]))
glue("ch3_sat_steps_mm", int(saturated_steps["minimax"]))
glue("ch3_sat_steps_ns", int(saturated_steps["non-saturating"]))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for loss, rec in saturation.items():
    axes[0].semilogy(rec["step"], rec["D_fake"], label=f"trained with {loss}")
    axes[1].semilogy(rec["step"], rec[loss], label=f"{loss} run, its own loss")
axes[1].semilogy(
    mm["step"],
    mm["non-saturating"],
    "k:",
    lw=1,
    label="minimax run, non-saturating loss",
)
axes[0].set(
    xlabel="training step", ylabel="mean D(G(z))", title="how real the fakes look to D"
)
axes[1].set(
    xlabel="training step", ylabel="‖∇_θ L_G‖", title="gradient reaching the generator"
)
axes[0].legend()
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left, the discriminator's mean output on a fixed batch of fakes during the first 250
# steps, for a generator trained with each loss; right, the norm of the gradient that reaches
# the generator's weights.* The discriminator quickly learns to reject the initial fakes. In the
# minimax run the mean of $D(G(\mathbf{z}))$ falls to {glue:text}`ch3_sat_worst_D:.1e` (step
# {glue:text}`ch3_sat_worst_step`), and the generator's gradient collapses by orders of
# magnitude: there its norm is {glue:text}`ch3_sat_grad_mm:.1e`, where the non-saturating loss
# would have sent {glue:text}`ch3_sat_grad_ns:.1e` at the same weights (the dotted line). The
# non-saturating run recovers sooner: its mean $D(G(\mathbf{z}))$ is below $0.01$ for
# {glue:text}`ch3_sat_steps_ns` of the 250 steps, the minimax run's for
# {glue:text}`ch3_sat_steps_mm`.
#
# **What Adam does with a falling gradient.** Adam's step for each weight is
# $-\eta\,\hat m_t/(\sqrt{\hat v_t} + \epsilon)$, with $\hat m_t$ and $\hat v_t$ bias-corrected
# exponential averages of the gradient $g_t$ and of its square $g_t^2$, with decay rates
# $\beta_1 = 0.5$ and $\beta_2 = 0.999$ here. Dividing by $\sqrt{\hat v_t}$ makes Adam blind to a
# loss's scale when that scale is the same from the first step (exercise 4), so one might expect
# a uniformly tiny gradient to move the weights as fast as a large one. That is not what
# happens in this run, because $\hat v_t$ remembers:
#
# 1. $v_t = (1 - \beta_2)\sum_{s \le t} \beta_2^{t - s} g_s^2$, and the bias correction divides it by
#    $1 - \beta_2^t = (1 - \beta_2)\sum_{s \le t} \beta_2^{t - s}$: $\hat v_t$ is a weighted mean of
#    $g_1^2, \dots, g_t^2$ with weights proportional to $\beta_2^{t - s}$.
# 2. Its memory, about $1/(1 - \beta_2) = 1000$ steps, is longer than this run: for $t \le 250$ the
#    weights are within a factor $\beta_2^{249} \approx 0.78$ of each other, so $\hat v_t$ is close
#    to the plain mean of *all* squared gradients so far.
# 3. That mean keeps the large gradients of the first steps, before $D$ won. When the gradient
#    falls, $\hat m_t$ (memory about $1/(1 - \beta_1) = 2$ steps) falls with it and
#    $\sqrt{\hat v_t}$ does not: each step shrinks by about the ratio of the current gradient to
#    the root mean square of the gradients so far.
#
# Measured in the minimax run (with Adam's step recomputed by hand from the gradients it used,
# which reproduces the weights' actual changes): at step {glue:text}`ch3_sat_worst_step` the
# gradient's norm is {glue:text}`ch3_adam_g_over_v:.2f` times that of $\sqrt{\hat v_t}$, and over
# the steps where its mean $D(G(\mathbf{z}))$ is below $0.01$ its weights moved
# {glue:text}`ch3_adam_update_ratio:.1f` times less per step than those of the non-saturating run.
# The weights still move, and the step shrinks less than the gradient does, because $\hat v_t$
# averages in the small gradients as they come and so slowly dilutes the early ones; but they
# move slowly. Only a gradient that stayed small for well over a
# thousand steps would have $\hat v_t$ forget the early ones. Saturation also costs *direction*:
# each sample's weight in the minimax gradient is $D(G(\mathbf{z}))$, so the few fakes that $D$
# is unsure about dominate, and the confidently rejected ones, the ones that most need to move,
# count for almost nothing. With plain SGD the step would shrink by the full factor.

# %%
check(
    "β₂^249 ≈ 0.78: the oldest of 250 squared gradients keeps 78% of the newest's",
    BETA2**249,
    0.78,
    atol=5e-3,
)
check_le(
    "Adam recomputed by hand = the weights' change, every step of both runs (relative)",
    max(mm["by_hand_error"].max(), ns["by_hand_error"].max()),
    1e-2,
)
saturated = mm["step"][mm["D_fake"] < 0.01] - 1  # indices of saturated snapshot steps
g_over_v = mm["grad"][worst_step - 1] / mm["sqrt_v_hat"][worst_step - 1]
update_ratio = ns["update"][saturated].mean() / mm["update"][saturated].mean()
print(
    f"at step {worst_step}: ‖g‖ = {mm['grad'][worst_step - 1]:.1e}, ‖√v̂‖ = "
    f"{mm['sqrt_v_hat'][worst_step - 1]:.1e}, ratio {g_over_v:.2f}"
)
print(
    f"mean ‖Δθ‖ per step while saturated: minimax run "
    f"{mm['update'][saturated].mean():.1e}, non-saturating run "
    f"{ns['update'][saturated].mean():.1e}"
)
# measured under seed shifts 0/1/2: 0.29 / 0.034 / 0.24 (about 1 if v̂ forgot the past)
check_outcome(
    "Adam remembers: at the saturated step, ‖g_t‖ / ‖√v̂_t‖ in the minimax run",
    g_over_v,
    at_most=0.5,
)
# measured under seed shifts 0/1/2: 2.8 / 17 / 4.4
check_outcome(
    "while saturated, the weights move slower: mean ‖Δθ‖ non-saturating / minimax",
    update_ratio,
    at_least=1.5,
)
glue("ch3_adam_g_over_v", float(g_over_v))
glue("ch3_adam_update_ratio", float(update_ratio))

# %% [markdown]
# ## Two other losses: hinge and WGAN-GP
#
# The non-saturating loss {eq}`gan-non-saturating` is still among the most used: StyleGAN
# {cite}`karras2019stylegan` (for its FFHQ faces) and its successors StyleGAN2 and StyleGAN3
# {cite}`karras2020stylegan2,karras2021alias` train with it, adding to the discriminator's loss
# the R1 penalty $\tfrac{\gamma}{2}\,\mathbb{E}_{p_{\text{data}}}\big[\lVert\nabla_{\mathbf{x}}\ell(\mathbf{x})\rVert^2\big]$
# on the gradient of its logit at real data {cite}`mescheder2018training`. Two other losses are
# common too, both in the library:
#
# **Hinge loss** (铰链损失) {cite}`lim2017geometric,miyato2018spectral`. The discriminator stops
# pushing a logit once it is on the right side of a margin of 1; the generator raises the
# logits of its samples:
#
# $$
# L_D = \mathbb{E}_{\mathbf{x}}\big[\max(0, 1 - \ell(\mathbf{x}))\big] + \mathbb{E}_{\mathbf{z}}\big[\max(0, 1 + \ell(G(\mathbf{z})))\big],
# \qquad L_G = -\mathbb{E}_{\mathbf{z}}\big[\ell(G(\mathbf{z}))\big] .
# $$ (gan-hinge)
#
# **WGAN-GP** {cite}`arjovsky2017wasserstein,gulrajani2017improved`. By the
# Kantorovich–Rubinstein duality, $W_1(p_{\text{data}}, p_g) = \sup_{\lVert f\rVert_L \le 1}\mathbb{E}_{p_{\text{data}}}[f] - \mathbb{E}_{p_g}[f]$,
# the supremum over 1-Lipschitz functions $f$. The discriminator becomes a **critic** $f = \ell$
# (no sigmoid) that maximises this difference, and the Lipschitz constraint is encouraged by a
# penalty on the critic's gradient norm at random points $\hat{\mathbf{x}} = \epsilon\mathbf{x} + (1 - \epsilon)G(\mathbf{z})$,
# $\epsilon \sim U[0, 1]$, between real and generated samples:
#
# $$
# L_D = \mathbb{E}_{\mathbf{z}}\big[f(G(\mathbf{z}))\big] - \mathbb{E}_{\mathbf{x}}\big[f(\mathbf{x})\big]
#   + \lambda\,\mathbb{E}_{\hat{\mathbf{x}}}\Big[\big(\lVert\nabla_{\hat{\mathbf{x}}} f(\hat{\mathbf{x}})\rVert_2 - 1\big)^2\Big],
# \qquad L_G = -\mathbb{E}_{\mathbf{z}}\big[f(G(\mathbf{z}))\big],
# $$ (wgan-gp)
#
# with $\lambda = 10$ in the paper. The library's losses at points we can compute by hand: logits
# $(2, 0.5, -1)$ on real samples and $(-2, 0, 1.5)$ on fakes give a hinge loss for $D$ of
# $(0 + 0.5 + 2)/3 + (0 + 1 + 2.5)/3 = 2$ and a Wasserstein critic loss of $-0.5/3 - 1.5/3 = -2/3$;
# the penalty of a linear critic $f(\mathbf{x}) = \mathbf{w}\cdot\mathbf{x}$ is $(\lVert\mathbf{w}\rVert - 1)^2$
# wherever it is evaluated; and for $f(\mathbf{x}) = \tfrac12\lVert\mathbf{x}\rVert^2$, whose gradient
# is $\hat{\mathbf{x}}$ itself, it is the mean of $(\lVert\hat{\mathbf{x}}\rVert - 1)^2$ at the same $\epsilon$'s.

# %%
real_l = torch.tensor([2.0, 0.5, -1.0], dtype=torch.float64)
fake_l = torch.tensor([-2.0, 0.0, 1.5], dtype=torch.float64)
check(
    "hinge loss of D at the hand-computed point = 2, eq. (gan-hinge)",
    gan.discriminator_loss(real_l, fake_l, "hinge"),
    2.0,
)
check(
    "hinge loss of G = −mean fake logit = 1/6",
    gan.generator_loss(fake_l, "hinge"),
    0.5 / 3,
)
check(
    "WGAN critic loss = mean f(fake) − mean f(real) = −2/3, eq. (wgan-gp)",
    gan.discriminator_loss(real_l, fake_l, "wgan-gp"),
    -2 / 3,
)

g = torch.Generator().manual_seed(0)
x_real, x_fake = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g) + 3
for norm in (1.0, 3.0):
    linear = torch.nn.Linear(2, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[0.6, 0.8]]) * norm)  # ‖w‖ = norm
    critic = torch.nn.Sequential(linear, torch.nn.Flatten(0))  # (B, 2) → (B,)
    penalty = gan.gradient_penalty(critic, x_real, x_fake)
    check(
        f"gradient penalty of a linear critic with ‖w‖ = {norm:g} is (‖w‖ − 1)²",
        penalty,
        (norm - 1) ** 2,
        atol=1e-5,
    )
penalty = gan.gradient_penalty(
    lambda x: 0.5 * x.pow(2).sum(1),
    x_real,
    x_fake,
    generator=torch.Generator().manual_seed(3),
)
eps_u = torch.rand(64, generator=torch.Generator().manual_seed(3))[
    :, None
]  # the same ε's
x_hat = eps_u * x_real + (1 - eps_u) * x_fake
check(
    "penalty of f = ½‖x‖² is mean (‖x̂‖ − 1)²",
    penalty,
    (x_hat.norm(dim=1) - 1).pow(2).mean(),
    atol=1e-5,
)

# %% [markdown]
# For the hinge loss the optimal discriminator's logit is $\ell^* = \operatorname{sign}(p_{\text{data}} - p_g)$
# (exercise 3): it reports *where* the generator has too much or too little mass, not a density
# ratio. The discriminator's loss there is $2 - \int |p_{\text{data}} - p_g|\,d\mathbf{x} = 2(1 - \operatorname{TV})$,
# with $\operatorname{TV}(p_{\text{data}}, p_g) = \tfrac12\int |p_{\text{data}} - p_g|\,d\mathbf{x} \in [0, 1]$
# the total variation distance: against an optimal discriminator the hinge game measures TV, as
# the minimax game measures the JSD. The generator's step says the same. Hold $\ell^*$ fixed at
# its value for the current parameters $\theta_0$, as a training step does:
#
# 1. The generator's loss is $-\mathbb{E}_{p_\theta}[\ell^*] = -\int p_\theta \operatorname{sign}(p_{\text{data}} - p_{\theta_0})\,d\mathbf{x}$,
#    with gradient $-\int \nabla p_\theta \operatorname{sign}(p_{\text{data}} - p_{\theta_0})\,d\mathbf{x}$.
# 2. The derivative of $|u|$ is $\operatorname{sign}(u)$ for $u \ne 0$, so, where $p_\theta \ne p_{\text{data}}$,
#    $\nabla\operatorname{TV}(p_\theta, p_{\text{data}}) = \tfrac12\int \nabla p_\theta \operatorname{sign}(p_\theta - p_{\text{data}})\,d\mathbf{x}$.
# 3. $\operatorname{sign}(p_\theta - p_{\text{data}}) = -\operatorname{sign}(p_{\text{data}} - p_\theta)$, so at
#    $\theta_0$ the gradient of step 1 is $2\nabla\operatorname{TV}$: the hinge generator descends
#    $2\operatorname{TV}$.
#
# And TV saturates just as the JSD does. When the supports are disjoint, $\operatorname{TV} = 1$
# whatever the distance between them (the loss of $D$ is $0$), and $\ell^* = -1$ on the whole of
# the generator's support: a constant, with no gradient. The hinge loss is no cure for saturation
# in the ideal game. What passes a gradient to a distant generator in practice is that a real
# discriminator is a smooth network, not the step function $\ell^*$ (with spectral
# normalisation {cite}`miyato2018spectral`, one with a bounded Lipschitz constant); of the
# divergences here, only $W_1$ keeps growing with the distance. Checks by quadrature: for two
# Gaussians of unit variance $\delta$ apart, $\operatorname{TV} = 2\Phi(\delta/2) - 1$ ($\Phi$ the
# standard normal CDF; the densities cross at $\delta/2$); for uniform densities on $[-1, 1]$ and
# $[\mu - 1, \mu + 1]$, $\operatorname{TV} = \min(1, \mu/2)$, so the optimal loss $2 - \mu$ reaches
# $0$ at $\mu = 2$ and stays there.

# %%
std_normal_cdf = lambda u: 0.5 * (1 + math.erf(u / math.sqrt(2)))  # noqa: E731


def hinge_at_optimum(p_d, p_g):
    """The hinge loss of D, eq. (gan-hinge), at the logit ℓ* = sign(p_data − p_g)."""
    ell_star = torch.sign(p_d - p_g)
    return integrate(p_d * torch.relu(1 - ell_star) + p_g * torch.relu(1 + ell_star))


deltas = [0.5, 1.0, 2.0, 4.0]
p_unit = log_normal(xg, 0.0, 1.0).exp()
check(
    "hinge loss at ℓ* = 2(1 − TV), two unit Gaussians δ apart, TV = 2Φ(δ/2) − 1",
    [hinge_at_optimum(p_unit, log_normal(xg, d, 1.0).exp()) for d in deltas],
    [2 * (1 - (2 * std_normal_cdf(d / 2) - 1)) for d in deltas],
    atol=1e-7,
)
uniform_shifts = np.linspace(0, 4, 9)
box = lambda lo, hi: ((xg >= lo) & (xg <= hi)).double() / (hi - lo)  # noqa: E731
hinge_uniform = [
    hinge_at_optimum(box(-1, 1), box(m - 1, m + 1)) for m in uniform_shifts
]
check(
    "uniforms μ apart: hinge loss at ℓ* = 2(1 − min(1, μ/2)), flat at 0 for μ ≥ 2",
    hinge_uniform,
    2 * (1 - np.minimum(1, uniform_shifts / 2)),
    atol=1e-3,  # the boxes' edges on a grid of spacing 5e-4
)
theta_h = 0.7  # p_θ = N(θ, 1) against p_data = N(0, 1); ℓ* held fixed at θ_h
ell_fixed = torch.sign(p_unit - log_normal(xg, theta_h, 1.0).exp())
check(
    "hinge G step against a fixed ℓ*: ∇ of 2 TV = 2 φ(θ/2), steps 1–3",
    finite_difference(
        lambda th: integrate(log_normal(xg, th[0], 1.0).exp() * -ell_fixed), [theta_h]
    ),
    [2 * math.exp(-((theta_h / 2) ** 2) / 2) / math.sqrt(2 * math.pi)],
    atol=2e-4,  # ℓ* jumps at θ/2, resolved to the grid spacing
)

# %% [markdown]
# `ring-gan`, the zoo's GAN on the ring, uses the hinge loss.
#
# ## Training on a ring of eight Gaussians
#
# The standard small test of a GAN {cite}`metz2017unrolled,srivastava2017veegan` is a mixture of
# eight Gaussians with means on a circle of radius 2 and a standard deviation of 0.05: easy to
# plot, and with modes that a generator can visibly miss. `data.ring` draws it. Both networks are
# MLPs with three hidden layers of 128 units; the generator maps 8-dimensional noise to a
# point. We train 1,000 steps on minibatches of 128 with the non-saturating loss and Adam
# ($\beta_1 = 0.5$), and record, every 100 steps, 1,000 samples of the generator as it is at that
# step (not its EMA average) together with three measures of them:
#
# - **modes hit**: the modes that at least 2% of the samples sit near, within $3\sigma = 0.15$ of
#   the mode's centre (`metrics.mode_coverage`);
# - **high-quality fraction**: the fraction of samples within $3\sigma$ of some centre;
# - the **effective number of modes** $\exp(H)$, where $H = -\sum_k q_k \log q_k$ is the entropy of
#   the histogram $q_k$ of the samples' nearest centres: 8 when the samples spread evenly over the
#   eight modes, 1 when they all sit nearest one.
#
# The library's `metrics.mode_coverage` returns all three (with `min_fraction=0.02` for the 2%
# rule); the effective number of modes is built by hand first and compared with it.


# %%
def effective_modes(samples):
    """exp(entropy) of the samples' nearest-centre histogram: 1 (one mode) to 8."""
    nearest = torch.cdist(samples.double(), ring_centres.double()).argmin(dim=1)
    q = torch.bincount(nearest, minlength=len(ring_centres)).double() / len(nearest)
    q = q[q > 0]
    return math.exp(-(q * q.log()).sum().item())


def train_ring(seed, g_lr, d_lr, pack=1, steps=1000, every=100, n_samples=1000):
    """Train a GAN on the ring; every `every` steps, record samples and 3 measures."""
    torch.manual_seed(shifted(seed))  # a training seed: the seed shift moves it
    G_net = gan.MLPGenerator(z_dim=8, sample_shape=(2,), hidden=128, num_layers=3)
    D_net = gan.MLPDiscriminator(sample_shape=(2,), hidden=128, num_layers=3, pack=pack)
    history = {
        "step": [],
        "samples": [],
        "modes_hit": [],
        "effective": [],
        "quality": [],
    }

    def callback(step, generator_net, ema):
        if step % every:
            return
        with torch.no_grad():
            samples = gan.sample(
                generator_net, n_samples, generator=torch.Generator().manual_seed(7)
            )
        coverage = metrics.mode_coverage(
            samples, ring_centres, std=0.05, min_fraction=0.02
        )
        history["step"].append(step)
        history["samples"].append(samples)
        history["modes_hit"].append(coverage["modes_hit"])
        history["effective"].append(coverage["effective_modes"])
        history["quality"].append(coverage["high_quality_fraction"])

    config = TrainConfig(
        steps=steps,
        batch_size=128,
        lr=g_lr,
        warmup_steps=50,
        ema_decay=0.99,
        grad_clip=10.0,
        seed=shifted(seed),
    )
    result = gan.train_gan(
        G_net,
        D_net,
        ring_data,
        config,
        gan.GANConfig(loss="non-saturating", d_lr=d_lr),
        progress=False,
        callback=callback,
    )
    return result, history


def ring_axes(ax, samples, title):
    ax.scatter(ring_data[:2000, 0], ring_data[:2000, 1], s=2, c="0.75")
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c="C3")
    ax.set(
        xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xticks=[], yticks=[], title=title
    )


t0 = time.perf_counter()
balanced_result, balanced_0 = train_ring(seed=0, g_lr=1e-3, d_lr=1e-3)
print(f"1,000 steps in {time.perf_counter() - t0:.1f} s")
ring_gan = zoo.load("ring-gan")
with torch.no_grad():
    zoo_samples = gan.sample(
        ring_gan.model, 2000, generator=torch.Generator().manual_seed(0)
    )
zoo_coverage = metrics.mode_coverage(
    zoo_samples, ring_centres, std=0.05, min_fraction=0.02
)
zoo_hit = zoo_coverage["modes_hit"]  # the same 2% rule
check(
    "effective number of modes by hand = metrics.mode_coverage",
    effective_modes(zoo_samples),
    zoo_coverage["effective_modes"],
    rtol=1e-12,
)

shown = [
    0,
    1,
    2,
    4,
    6,
    9,
]  # indices of the recorded steps 100, 200, 300, 500, 700, 1000
h = balanced_0
fig, axes = plt.subplots(1, 7, figsize=(15, 2.9))
for ax, i in zip(axes, shown):
    title = (
        f"step {h['step'][i]}\n{h['modes_hit'][i]} modes hit, {h['quality'][i]:.0%} HQ"
    )
    ring_axes(ax, h["samples"][i], title)
zoo_hq = zoo_coverage["high_quality_fraction"]
ring_axes(
    axes[6],
    zoo_samples[:1000],
    f"ring-gan (5,000 steps)\n{zoo_hit} modes hit, {zoo_hq:.0%} HQ",
)
plt.tight_layout()
plt.show()
print("step  modes hit  effective modes  high-quality fraction")
for i in range(len(h["step"])):
    print(
        f"{h['step'][i]:>4}  {h['modes_hit'][i]:>9}  {h['effective'][i]:>15.2f}"
        f"  {h['quality'][i]:>21.2f}"
    )
print(
    f"ring-gan: {zoo_hit} modes hit, high-quality fraction {zoo_hq:.2f}, "
    f"effective modes {zoo_coverage['effective_modes']:.2f}"
)
# measured under seed shifts 0/1/2: 7.45 / 7.63 / 7.58
check_outcome(
    "spread comes early: effective modes of the balanced run at step 200",
    h["effective"][1],
    at_least=6.5,
)
# measured under seed shifts 0/1/2: 0.27 / 0.30 / 0.15
check_outcome(
    "sharpness late: its high-quality fraction, step 1000 minus step 200",
    h["quality"][-1] - h["quality"][1],
    at_least=0.05,
)
# measured under seed shifts 0/1/2: 7 / 5 / 6 modes hit, 7.37 / 6.70 / 7.08 effective
# modes, high-quality fraction 0.755 / 0.730 / 0.730
check_outcome("ring-gan: modes hit (2% rule)", zoo_hit, at_least=4)
check_outcome(
    "ring-gan: effective modes", zoo_coverage["effective_modes"], at_least=6.0
)
check_outcome("ring-gan: high-quality fraction", zoo_hq, at_least=0.6)
glue("ch3_ring_gan_hit", int(zoo_hit))
glue("ch3_ring_gan_off", float(1 - zoo_hq))
glue("ch3_balanced_eff_200", float(h["effective"][1]))
glue("ch3_balanced_hq_200", float(h["quality"][1]))
glue("ch3_balanced_hq_1000", float(h["quality"][-1]))

# %% [markdown]
# *Figure: 1,000 generated points (red) over the data (grey) at six points of training, with the
# modes hit and the high-quality (HQ) fraction in each title; last panel, 1,000 points from the zoo's
# `ring-gan` (hinge loss, 5,000 steps on batches of 256, sampled with its EMA generator).* The
# generator first scatters its samples over the plane, then gathers them onto the ring, then
# slowly pulls them onto the eight modes: the spread comes early, sharpness late. At step 200
# the effective number of modes is already {glue:text}`ch3_balanced_eff_200:.1f` (it counts
# which centre each sample is nearest, however far from it), while the high-quality fraction is
# {glue:text}`ch3_balanced_hq_200:.2f`; by step 1000 that has risen to
# {glue:text}`ch3_balanced_hq_1000:.2f`. Even the longer-trained `ring-gan`, which hits
# {glue:text}`ch3_ring_gan_hit` of the 8 modes by the 2% rule, leaves a fraction
# {glue:text}`ch3_ring_gan_off:.2f` of its samples between the modes: a continuous map from a
# connected noise space cannot reach eight separate islands without drawing a few points along
# the way.
#
# ## Training on digits
#
# The same recipe draws digits. The zoo's `digits-gan` is a pair of MLPs (two hidden layers of
# 256 units; the generator ends in $\tanh$ to produce pixels in $[-1, 1]$) trained for 5,000 steps
# with the non-saturating loss on the 8×8 digits. We judge 2,000 samples with the book's digits
# classifier (the same measure as chapter 6): its mean top-class probability (confidence, a
# stand-in for quality) and the share of samples it assigns to each class (diversity), with the
# real test digits as a reference.

# %%
digits_gan = zoo.load("digits-gan")
with torch.no_grad():
    digit_samples = gan.sample(
        digits_gan.model, 2000, generator=torch.Generator().manual_seed(0)
    )
test_digits = data.digits("test").images
fake_scores = metrics.classifier_scores(digit_samples)
real_scores = metrics.classifier_scores(test_digits)
print(
    f"digits-gan: trained in {digits_gan.record['train_seconds']:.0f} s "
    "(once, then cached)"
)
top_fake, top_real = fake_scores["mean_top_prob"], real_scores["mean_top_prob"]
shares = fake_scores["class_histogram"]
print(f"mean top-class probability: GAN {top_fake:.3f}, test digits {top_real:.3f}")
print("GAN's class shares, 0–9:", " ".join(f"{x:.3f}" for x in shares))
# measured under seed shifts 0/1/2: 0.951 / 0.952 / 0.951
check_outcome(
    "the classifier is confident on the GAN's digits: mean top probability",
    top_fake,
    at_least=0.9,
)
# measured under seed shifts 0/1/2: 0.044 / 0.042 / 0.043
check_outcome(
    "... less than on real digits: test digits' mean top probability minus the GAN's",
    top_real - top_fake,
    at_least=0.02,
)
# measured under seed shifts 0/1/2: 0.056 / 0.035 / 0.072
check_outcome(
    "no digit is dropped: the smallest class share of the GAN's samples",
    shares.min(),
    at_least=0.02,
)
glue("ch3_digits_top_fake", float(top_fake))
glue("ch3_digits_top_real", float(top_real))
glue("ch3_digits_share_min", float(shares.min()))
glue("ch3_digits_share_max", float(shares.max()))

fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
viz.show_images(digit_samples[:64], nrow=8, ax=axes[0], title="digits-gan samples")
viz.show_images(test_digits[:64], nrow=8, ax=axes[1], title="real test digits")
plt.show()

# %% [markdown]
# *Figure: left, 64 samples of `digits-gan`, each one generator pass from fresh noise; right, 64
# real test digits.* The samples are recognisable digits of every class, drawn in one network
# evaluation each (a diffusion model of chapter 6 needs hundreds); some strokes are broken or
# blotchy, and the classifier is less sure of them than of real digits (mean top-class
# probability {glue:text}`ch3_digits_top_fake:.3f` against {glue:text}`ch3_digits_top_real:.3f`).
# Every class is drawn, though not equally often: the classifier assigns between
# {glue:text}`ch3_digits_share_min:.3f` and {glue:text}`ch3_digits_share_max:.3f` of the samples
# to each digit, against a tenth each for balanced data.
#
# ## Mode collapse
#
# A GAN suffers **mode collapse** when its generator produces only a few kinds of samples: a few
# digits, a few of the eight Gaussians, in the extreme a single point. Goodfellow's explanation
# {cite}`goodfellow2016nips` starts from the order of the two optimisations.
#
# 1. The game is $\min_G \max_D V$: for each $G$, the discriminator is the best one against it,
#    and {eq}`gan-jsd` says the generator then matches the whole data distribution.
# 2. Reverse the order, $\max_D \min_G V$, and the inner problem is: *given a fixed* $D$, find the
#    best $G$. The generator's loss is an average over $\mathbf{z}$ of a function of the single point
#    $G(\mathbf{z})$, e.g. $-\log D(G(\mathbf{z}))$ with {eq}`gan-non-saturating`.
# 3. That average is smallest when every $G(\mathbf{z})$ is the point $\mathbf{x}^*$ that $D$ rates
#    most real, $\mathbf{x}^* = \arg\max_{\mathbf{x}} D(\mathbf{x})$. So the best response to a fixed
#    discriminator is a generator that maps *all* noise to one point: total collapse.
# 4. Alternating gradient steps do not say which order they solve. If the discriminator learns
#    slowly compared with the generator, each stretch of generator steps is close to a best
#    response to a nearly fixed $D$, the max–min order: the generator rushes to whatever region
#    $D$ currently likes; $D$ slowly learns to reject it; the generator moves on to another. The
#    mode the samples sit on *wanders*, and coverage of the whole distribution never comes.
#
# We test this prediction. Three settings, each trained from three training seeds (0, 1 and 2,
# moved by the book-wide seed shift) with the network sizes of the ring section: **(a) balanced**, both learning rates $10^{-3}$; **(b) fast
# generator, slow discriminator**, $2 \times 10^{-3}$ for $G$ and $10^{-4}$ for $D$; and **(c)**
# the same imbalance with a **PacGAN** discriminator {cite}`lin2018pacgan` that judges packs of
# $m = 4$ samples at once, concatenated into one input, and outputs one logit per pack (real packs
# hold four real samples, fake packs four generated ones). A generator whose samples all look alike
# produces packs of near-identical points, which real packs never are, so the packed
# discriminator can detect a lack of diversity that a one-sample discriminator cannot see.

# %%
settings = {
    "(a) balanced: lr 1e-3 for G and D": dict(g_lr=1e-3, d_lr=1e-3),
    "(b) fast G (2e-3), slow D (1e-4)": dict(g_lr=2e-3, d_lr=1e-4),
    "(c) as (b), PacGAN with pack 4": dict(g_lr=2e-3, d_lr=1e-4, pack=4),
}
seeds = (0, 1, 2)
runs = {}
t0 = time.perf_counter()
for name, kwargs in settings.items():
    for seed in seeds:
        if name.startswith("(a)") and seed == 0:
            runs[name, seed] = balanced_0  # trained above
        else:
            runs[name, seed] = train_ring(seed=seed, **kwargs)[1]
print(f"eight more runs in {time.perf_counter() - t0:.0f} s")
print(
    "effective modes at steps 100, 200, …, 1000; modes hit and HQ fraction at the end"
)
for name in settings:
    print(name)
    for seed in seeds:
        h = runs[name, seed]
        print(
            f"  seed {shifted(seed):>4}: {' '.join(f'{e:.1f}' for e in h['effective'])}"
            f"; {h['modes_hit'][-1]} hit, HQ {h['quality'][-1]:.2f}"
        )

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4), sharey=True)
for ax, name in zip(axes, settings):
    for seed in seeds:
        h = runs[name, seed]
        label = f"seed {shifted(seed)}"
        ax.plot(h["step"], h["effective"], marker="o", ms=3, label=label)
    ax.set(title=name, xlabel="training step", ylim=(0.5, 8.5))
axes[0].set_ylabel("effective number of modes")
axes[0].legend()
plt.tight_layout()
plt.show()

collapsed = runs["(b) fast G (2e-3), slow D (1e-4)", 0]
fig, axes = plt.subplots(1, 6, figsize=(15, 2.6))
for ax, i in zip(axes, (0, 1, 3, 5, 7, 9)):
    ring_axes(ax, collapsed["samples"][i], f"step {collapsed['step'][i]}")
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figures: top, the effective number of modes over training, one line per seed, for the three
# settings; bottom, 1,000 samples of the collapsed run (b), first seed, at six points of
# training.* With balanced learning rates the generator spreads its samples over the eight
# modes within the first 200 steps and keeps them spread (from step 200 on, the fewest
# effective modes at any snapshot of any balanced run is {glue:text}`ch3_a_min_eff:.1f`). With a fast generator and a slow discriminator, every seed
# collapses: at {glue:text}`ch3_b_single_share:.0%` of the snapshots the samples sit nearest
# essentially a single mode (fewer than 2 effective modes), in a narrow streak beside it that
# often overshoots it, and the bottom row shows that the mode changes over training, as step 4
# of the argument predicts. The packed discriminator, in the same imbalanced setting, restores
# the coverage for every seed. Let us assert only what holds with a margin, measured over
# training seeds, in all three seeds:

# %%
A, B, C = settings  # the three settings' names
final = {key: h["effective"][-1] for key, h in runs.items()}
final_a, final_b, final_c = ([final[name, s] for s in seeds] for name in (A, B, C))
print(
    f"effective modes at step 1000: (a) {np.round(final_a, 2)},\n"
    f"  (b) {np.round(final_b, 2)}, (c) {np.round(final_c, 2)}"
)
snapshots_b = np.concatenate([runs[B, s]["effective"] for s in seeds])
single_share = float((snapshots_b < 2).mean())
min_eff_a = min(min(runs[A, s]["effective"][1:]) for s in seeds)  # steps 200 to 1000
# measured under seed shifts 0/1/2: 1.98 / 1.32 / 1.56
check_outcome(
    "(b) fast G / slow D collapses: most effective modes at the end, over seeds",
    max(final_b),
    at_most=3.0,
)
# measured under seed shifts 0/1/2: 7.64 / 7.54 / 7.51
check_outcome(
    "(a) balanced covers: fewest effective modes at the end, over seeds",
    min(final_a),
    at_least=6.5,
)
# measured under seed shifts 0/1/2: 5.67 / 6.22 / 5.95
check_outcome(
    "(a) vs (b): fewest at the end in (a) minus most in (b), beyond the seed spread",
    min(final_a) - max(final_b),
    at_least=4.0,
)
# measured under seed shifts 0/1/2: 7.44 / 7.64 / 7.74
check_outcome(
    "(c) PacGAN restores coverage: fewest effective modes at the end, over seeds",
    min(final_c),
    at_least=6.5,
)
# measured under seed shifts 0/1/2: 1.0 / 0.93 / 1.0
check_outcome(
    "(b) snapshots with < 2 effective modes (share, over seeds and steps)",
    single_share,
    at_least=0.8,
)
# measured under seed shifts 0/1/2: 7.45 / 7.1 / 7.3
check_outcome(
    "(a) fewest effective modes at any snapshot from step 200 on, any seed",
    min_eff_a,
    at_least=6.5,
)
glue("ch3_b_single_share", float(single_share))
glue("ch3_a_min_eff", float(min_eff_a))
wander = [
    len(
        {
            int(torch.cdist(s, ring_centres).argmin(1).mode().values)
            for s in runs[B, seed]["samples"]
        }
    )
    for seed in seeds
]
print("distinct modes holding the most samples over the 10 snapshots, (b):", wander)
# measured under seed shifts 0/1/2: 4 / 5 / 6
check_outcome(
    "in every collapsed run the occupied mode moves: fewest distinct modes",
    min(wander),
    at_least=3,
)
quality_c = [runs[C, s]["quality"][-1] for s in seeds]
quality_a = [runs[A, s]["quality"][-1] for s in seeds]
print(
    f"final high-quality fraction: PacGAN {np.round(quality_c, 2)}, "
    f"balanced {np.round(quality_a, 2)}"
)
# measured under seed shifts 0/1/2: 0.085 / 0.21 / 0.13
check_outcome(
    "PacGAN is less sharp: lowest final HQ fraction of (a) minus highest of (c)",
    min(quality_a) - max(quality_c),
    at_least=0.03,
)
# measured under seed shifts 0/1/2: 0.047 / 0.050 / 0.040
check_outcome(
    "most PacGAN samples lie beyond 3σ: highest final HQ fraction of (c)",
    max(quality_c),
    at_most=0.2,
)
glue("ch3_c_hq_max", float(max(quality_c)))

# %% [markdown]
# The last line printed is the fine print. PacGAN gives back coverage, not sharpness: after
# 1,000 steps its high-quality fraction is low (at most {glue:text}`ch3_c_hq_max:.2f` over the
# seeds), lower than that of the balanced runs for every seed: most of its samples lie further
# than $3\sigma$ from every centre. Packing changes what the
# discriminator can see (the joint distribution of $m$ samples, in which a collapsed generator
# is far from the data {cite}`lin2018pacgan`); it does not give a generator that lags behind a
# slow discriminator more signal to sharpen its modes. Other remedies attack collapse elsewhere:
# unrolling the discriminator's updates so that the generator anticipates its response
# {cite}`metz2017unrolled`, minibatch features that let $D$ compare samples within a batch
# {cite}`salimans2016improved`, an inverse (reconstructor) network that maps data back to noise
# {cite}`srivastava2017veegan`, two time-scale learning rates {cite}`heusel2017gans` (which, as
# setting (a) suggests, is largely a matter of not letting $G$ outrun $D$), and the Wasserstein
# critic of {eq}`wgan-gp`.
#
# ## Summary
#
# - A GAN plays $\min_G\max_D V(D, G)$, {eq}`gan-minimax`; $D$ is a binary classifier of real
#   against generated samples, written on logits.
# - For a fixed $G$, the best discriminator is $D^* = p_{\text{data}}/(p_{\text{data}} + p_g)$,
#   {eq}`optimal-discriminator`: its logit is the log density ratio. We found it by quadrature and
#   by training a network.
# - Against $D^*$, the generator minimises $-\log 4 + 2\,\mathrm{JSD}(p_{\text{data}}\,\|\,p_g)$,
#   {eq}`gan-jsd`, whose unique minimum is $p_g = p_{\text{data}}$. This is a statement about
#   optimal players in function space, not about alternating gradient steps. JSD saturates at
#   $\log 2$ for non-overlapping distributions, where $W_1$ keeps growing.
# - The minimax generator loss has derivative $-D(G(\mathbf{z}))$ on the logit and saturates when
#   $D$ wins; the non-saturating loss {eq}`gan-non-saturating` has $-(1 - D(G(\mathbf{z})))$. Both
#   have the same fixed point ({eq}`gan-ns-value` is also minimised at $p_g = p_{\text{data}}$), but
#   the dynamics differ, as the measured gradients show. With $D$ held at $D^*$, a minimax step
#   follows the gradient of $2\,\mathrm{JSD}$, a non-saturating step that of
#   $\operatorname{KL}(p_g\,\|\,p_{\text{data}}) - 2\,\mathrm{JSD}$, {eq}`gan-ns-gradient`.
# - The non-saturating loss (with an R1 penalty, in the StyleGAN family), the hinge loss
#   {eq}`gan-hinge` and WGAN-GP {eq}`wgan-gp` are the common choices. Against an optimal
#   discriminator the hinge loss measures $2(1 - \operatorname{TV})$, which saturates on disjoint
#   supports as the JSD does.
# - On the ring, a GAN spreads over the modes early and sharpens them slowly; `digits-gan`
#   draws every digit class in one network pass.
# - Mode collapse follows from the max–min reading of the game: a generator best-responding to a
#   nearly fixed discriminator maps all noise to the point $D$ likes best. With a fast generator
#   and a slow discriminator we saw it in every seed, with the occupied mode wandering; PacGAN's
#   packed discriminator restored coverage but not sharpness.
#
# Chapter 4 ({doc}`04_forward_process`) starts the other family of this book, diffusion
# models, whose training is a plain regression with no adversary, no saturation and no
# collapse, at the price of many network evaluations per sample; chapter 9
# ({doc}`09_evaluating_generators`) compares the two on the same data.

# %%
print(f"whole chapter: {time.perf_counter() - chapter_start:.0f} s")

# %% [markdown]
# ## Exercises
#
# **1. The optimal logit of two Gaussians.** Let $p_{\text{data}} = \mathcal{N}(\mu_1, \sigma^2)$
# and $p_g = \mathcal{N}(\mu_2, \sigma^2)$. Show that $\ell^*(x)$ is linear in $x$, so that logistic
# regression on $x$ is the optimal discriminator, and check it on a grid. What changes when the
# variances differ?
#
# ````{dropdown} Solution
# By {eq}`optimal-discriminator`, $\ell^*(x) = \log p_{\text{data}}(x) - \log p_g(x) = \frac{(x - \mu_2)^2 - (x - \mu_1)^2}{2\sigma^2} = \frac{\mu_1 - \mu_2}{\sigma^2}\,x + \frac{\mu_2^2 - \mu_1^2}{2\sigma^2}$:
# the $x^2$ terms cancel. With different variances they do not, and $\ell^*$ is quadratic.
#
# ```python
# x = torch.linspace(-5, 5, 11, dtype=torch.float64)
# mu1, mu2, s = 1.0, -0.5, 0.8
# exact = log_normal(x, mu1, s) - log_normal(x, mu2, s)
# linear = (mu1 - mu2) / s**2 * x + (mu2**2 - mu1**2) / (2 * s**2)
# check("optimal logit is linear", exact, linear, atol=1e-12)
# ```
# ````
#
# **2. The bounds of the JSD.** Show that $0 \le \mathrm{JSD}(p \,\|\, q) \le \log 2$, and that the
# upper bound is reached exactly when $p$ and $q$ have disjoint supports. What is $C(G)$ then?
#
# ````{dropdown} Solution
# Non-negativity is that of the KL divergence. For the upper bound, $m \ge p/2$, so
# $\log(p/m) \le \log 2$ wherever $p > 0$, and $\operatorname{KL}(p\,\|\,m) \le \log 2$; likewise
# for $q$; average the two. Equality needs $m = p/2$ wherever $p > 0$, that is $q = 0$ there,
# and the same with $p$ and $q$ swapped: disjoint supports. Then $C(G) = -\log 4 + 2\log 2 = 0$,
# whatever the distance between the supports: the plateau of the figure of {eq}`gan-jsd`.
# ````
#
# **3. The hinge discriminator.** For fixed $G$, minimise the hinge loss of {eq}`gan-hinge` over
# all functions $\ell$. Show that the minimiser is $\ell^*(\mathbf{x}) = \operatorname{sign}(p_{\text{data}}(\mathbf{x}) - p_g(\mathbf{x}))$
# and that the minimum is $2 - \int |p_{\text{data}} - p_g|\,d\mathbf{x}$, that is $2(1 - \mathrm{TV})$, with TV the total variation distance.
#
# ````{dropdown} Solution
# As for {eq}`optimal-discriminator`, minimise pointwise $h(\ell) = a\max(0, 1 - \ell) + b\max(0, 1 + \ell)$
# with $a = p_{\text{data}}(\mathbf{x})$, $b = p_g(\mathbf{x})$. For $\ell > 1$, $h = b(1 + \ell)$ grows with
# $\ell$; for $\ell < -1$, $h = a(1 - \ell)$ grows as $\ell$ falls; on $[-1, 1]$, $h = (a + b) + (b - a)\ell$
# is linear, smallest at $\ell = 1$ if $a > b$ and at $\ell = -1$ if $a < b$. The minimum is
# $2\min(a, b) = a + b - |a - b|$; integrate over $\mathbf{x}$ to get $2 - \int|p_{\text{data}} - p_g|$.
# A numerical check on the densities of this chapter:
#
# ```python
# ells = torch.linspace(-3, 3, 6001, dtype=torch.float64)
# a, b = lpd.exp()[::400, None], lpg.exp()[::400, None]
# h = a * torch.relu(1 - ells) + b * torch.relu(1 + ells)
# check(
#     "pointwise minimum of the hinge loss is 2 min(a, b)",
#     h.min(1).values,
#     2 * torch.minimum(a, b)[:, 0],
#     atol=1e-9,
# )
# ```
# ````
#
# **4. Adam does not see the scale.** Show that multiplying a loss by a constant $c > 0$ leaves
# Adam's updates unchanged (ignoring its $\epsilon$), and explain what that means for the
# saturation experiment above.
#
# ````{dropdown} Solution
# Adam's step is $-\eta\,\hat m_t/(\sqrt{\hat v_t} + \epsilon)$, with $\hat m_t$ a running mean of
# the gradients and $\hat v_t$ of their squares. Scaling the loss by $c$ scales every gradient by
# $c$, hence $\hat m_t$ by $c$ and $\sqrt{\hat v_t}$ by $c$, and the ratio is unchanged. So a
# loss whose gradient is 1,000 times smaller at every step, from the first, moves the weights at
# the same speed.
#
# In the saturation experiment the scale is not constant: the minimax gradient falls after the
# first few dozen steps, within a run of 250 steps, shorter than $\hat v_t$'s memory of about
# $1/(1 - \beta_2) = 1000$ steps. The invariance does not apply there: $\sqrt{\hat v_t}$ stays
# near the root mean square of the earlier, larger gradients, and the steps shrink (as measured
# after the saturation figure). Only after well over a thousand steps of small gradients would
# $\hat v_t$ forget the early ones. What Adam cannot undo at all is a change of *direction*: the
# minimax loss weights each generated sample by $D(G(\mathbf{z}))$, so the confidently rejected
# samples (the worst ones) barely contribute, whereas the non-saturating loss weights them by
# $1 - D(G(\mathbf{z})) \approx 1$.
# ````
#
# **5. More seeds, other remedies.** Repeat the mode-collapse experiment with `pack=2`, and
# with the balanced learning rates but `d_lr=3e-4`. Where between (a) and (b) does collapse start,
# and does pack 2 suffice?
#
# ````{dropdown} Solution
# ```python
# for kwargs in (dict(g_lr=2e-3, d_lr=1e-4, pack=2), dict(g_lr=1e-3, d_lr=3e-4)):
#     for seed in seeds:
#         h = train_ring(seed=seed, **kwargs)[1]
#         print(kwargs, seed, [round(e, 1) for e in h["effective"]])
# ```
#
# There is no single threshold: the outcome depends on the ratio of the learning rates, on the
# seed and on the number of steps, which is why the chapter reports three seeds and asserts only
# the two extremes. Expect the effective number of modes to fall as the discriminator's share of
# the learning shrinks, and smaller packs to help less than pack 4; measure before you believe
# either.
# ````
