# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Chapter 6: Training a DDPM
#
# Chapters 4 and 5 derived everything a denoising diffusion probabilistic model (DDPM, 去噪扩散概率模型)
# needs on paper: the forward process, the reverse process, the bound and the simple loss
# $L_{\text{simple}}$. This chapter builds the missing piece, the network
# $\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)$, trains it on the handwritten digits, samples from
# it, and measures what came out: its likelihood in bits per dimension and the quality of its
# samples. At the end the same code generates a two-dimensional distribution, where we can watch
# every point of the distribution move.
#
# **What you will learn.**
#
# - Why the denoiser must be told the timestep: for data with unit variance the noisy input
#   $\mathbf{x}_t$ has *the same distribution at every $t$*, yet the best noise prediction
#   depends on $t$. We compute how much a network that ignores $t$ must lose.
# - The sinusoidal timestep embedding (正弦时间步嵌入) {cite}`vaswani2017attention,ho2020ddpm`:
#   its frequencies, why it uses sin/cos *pairs* (a shift in time is a rotation of each pair), and
#   how the U-Net {cite}`ronneberger2015unet` adds it inside every residual block, as in
#   improved-diffusion {cite}`nichol2021improved`.
# - A broken design that circulates in popular write-ups (concatenating the embedding to a
#   one-channel image), the error it really raises, and two fixes.
# - Algorithms 1 and 2 of {cite:t}`ho2020ddpm`, each next to the lines of code that implement
#   them and checked against the library; a short training run by hand; the exponential moving
#   average (EMA) of the weights, and what the common warm-up of its decay really averages.
# - A trained model from the book's model zoo: its loss curve, 500 samples, the reverse process as
#   an animation, its bits/dim on held-out digits, and sample-quality metrics (classifier
#   confidence, class histogram, Fréchet distances, precision and recall) next to the values that
#   real data reach.
# - The same model family on a 2-D ring of Gaussians, with mode coverage; and how to move to MNIST
#   and a GPU.
#
# **What it assumes.** Chapter 4 ({doc}`04_forward_process`): the forward process and its closed
# form $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol{\epsilon}$,
# eq. {eq}`fwd-reparam`. Chapter 5 ({doc}`05_reverse_process_vlb`): the model mean
# {eq}`rev-mu-eps`, the ancestral step {eq}`rev-ancestral-step`, the loss {eq}`rev-l-simple` and
# bits per dimension {eq}`rev-bpd`. Some familiarity with PyTorch modules and convolutions. As
# before, $t$ in the prose is the paper's step $1, \dots, T$, and the library's index is $t - 1$.

# %% [markdown]
# ## Setup
#
# The first cell installs the book's library when it is missing (on Colab); elsewhere it does
# nothing. Three trained models come from the library's **model zoo** (`diffusion_lib.zoo`): the
# digits model, a digits classifier for the metrics, and a model of a 2-D ring. The first time they
# are requested they are trained on this machine and cached (a few minutes on two CPU cores in
# all, with a progress bar); afterwards they load in a fraction of a second and the whole chapter
# runs in about a minute (its last cell prints the time).
#
# Every claim below about what a *trained* model does (a loss level, a likelihood, the quality of
# samples, modes covered) is a `check_outcome`: a range measured over several training runs, not
# one run's value, since another seed, processor or torch build trains another network. The book
# can be executed with every model trained from other seeds (the environment variable
# `DIFFUSION_LIB_SEED_SHIFT`, see the README; the chapter's own training run follows it too), and
# the ranges hold for the three runs of seeds that `benchmarks/robustness.py` executes. The
# numbers in the text about trained models come from the run you are reading.

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
import copy
import math
import os
import textwrap
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from torch import nn
from torch.nn import functional as F

from diffusion_lib import (
    GaussianDiffusion,
    check,
    check_le,
    check_outcome,
    data,
    get_beta_schedule,
    metrics,
    samplers,
    viz,
    zoo,
)
from diffusion_lib.checks import glue
from diffusion_lib.families.diffusion import reference_samples
from diffusion_lib.nets import UNet, timestep_embedding
from diffusion_lib.nets.unet import ResBlock, SelfAttention
from diffusion_lib.seeds import shifted
from diffusion_lib.train import TrainConfig, train

torch.manual_seed(0)
rng = np.random.default_rng(0)
chapter_start = time.perf_counter()

T = 1000
diff = GaussianDiffusion(
    get_beta_schedule("linear", T), model_var_type="fixed_small"
)  # Ho et al.'s process
abar = diff.alphas_cumprod  # float64, index i = t − 1
train_set, test_set = data.digits("train"), data.digits("test")
print(diff)
print(
    f"{len(train_set.images)} training and {len(test_set.images)} test digits, "
    f"shape {tuple(train_set.images.shape[1:])}"
)

# %% [markdown]
# ## Why the denoiser needs the timestep
#
# The network of chapter 5 takes two inputs, $\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)$. Is the
# second one necessary? Could a network not read the noise level off the noisy image? Sometimes it
# partly can, but not in general, and a simple example shows why.
#
# Take data with zero mean and **unit variance**, here a standard normal in one dimension,
# $x_0 \sim \mathcal{N}(0, 1)$. The forward process is variance preserving (chapter 4): it shrinks
# the signal exactly as much as it adds noise, so
# $\operatorname{Var}(x_t) = \bar\alpha_t \cdot 1 + (1 - \bar\alpha_t) = 1$ and
# $x_t \sim \mathcal{N}(0, 1)$ **at every step**. The noisy input carries no information at all
# about $t$. Yet the best prediction of the noise does depend on $t$. Eq. {eq}`rev-eps-gauss` with
# $\mathbf{m} = 0$ and $\boldsymbol{\Sigma} = 1$ gives
#
# $$
# \epsilon^*(x_t, t) = \mathbb{E}[\epsilon \mid x_t] = \sqrt{1 - \bar\alpha_t}\; x_t ,
# \qquad
# \mathbb{E}\big[(\epsilon - \epsilon^*(x_t, t))^2\big] = \bar\alpha_t .
# $$ (train-eps-unit)
#
# (The second formula is the conditional variance: $1 - \operatorname{Cov}(\epsilon, x_t)^2/\operatorname{Var}(x_t) = 1 - (1 - \bar\alpha_t)$.)
# The same input $x_t = 1$ calls for $\epsilon^* = 0.01$ at $t = 1$, where $x_t$ is almost all
# signal, and for $\epsilon^* \approx 1$ at $t = T$, where it is all noise. First a Monte Carlo
# check of {eq}`train-eps-unit`: the least-squares slope of $\epsilon$ on $x_t$ must be
# $\sqrt{1 - \bar\alpha_t}$, and the input's variance must be 1.

# %%
n_mc = 200_000
slopes, slope_se, input_var = [], [], []
t_show = [1, 10, 100, 300, 1000]
for t in t_show:
    ab = abar[t - 1].item()
    x0_mc, eps_mc = rng.standard_normal(n_mc), rng.standard_normal(n_mc)
    xt_mc = math.sqrt(ab) * x0_mc + math.sqrt(1 - ab) * eps_mc  # eq. (fwd-reparam)
    slope = (xt_mc * eps_mc).sum() / (xt_mc**2).sum()  # least squares ε ≈ slope · x_t
    slopes.append(slope)
    slope_se.append(np.std(eps_mc - slope * xt_mc) / np.sqrt((xt_mc**2).sum()))
    input_var.append(xt_mc.var())
    print(
        f"t = {t:4d}: Var(x_t) = {xt_mc.var():.3f}, slope of E[ε | x_t] = {slope:.4f}, "
        f"√(1−ᾱ_t) = {math.sqrt(1 - ab):.4f}"
    )
check(
    "unit-variance data: Var(x_t) = 1 at every t (Monte Carlo, 200,000 draws)",
    input_var,
    1.0,
    atol=0.01,
)
check(
    "E[ε | x_t] = √(1−ᾱ_t) x_t, eq. (train-eps-unit), within 5 standard errors",
    slopes,
    np.sqrt(1 - abar[np.array(t_show) - 1].numpy()),
    atol=5 * max(slope_se),
)
_ = check(
    "the text's figures: for x_t = 1, ε* = √(1−ᾱ_t) is 0.01 at t = 1 and ≈ 1 at t = T",
    [math.sqrt(1 - abar[0].item()), math.sqrt(1 - abar[T - 1].item())],
    [0.01, 1.0],
    atol=5e-4,
)

# %% [markdown]
# **What a network without $t$ loses.** A network that sees only $x_t$ must use one function
# $g(x_t)$ for all steps. With $t$ drawn uniformly, as in {eq}`rev-l-simple`, the best such function
# is $g(x) = \mathbb{E}[\epsilon \mid x_t = x] = c\,x$ with $c = \frac{1}{T}\sum_t \sqrt{1 - \bar\alpha_t}$
# (average {eq}`train-eps-unit` over $t$, which is independent of $x_t$ here). Expanding the
# square, its loss and the loss of the $t$-aware optimum are
#
# $$
# L_{\text{blind}} = \frac1T \sum_{t=1}^{T} \mathbb{E}\big[(\epsilon - c\,x_t)^2\big] = 1 - c^2 ,
# \qquad
# L_{\text{aware}} = \frac1T \sum_{t=1}^{T} \bar\alpha_t .
# $$ (train-blind)
#
# (For the first: $\mathbb{E}[(\epsilon - c x_t)^2] = 1 - 2c\sqrt{1-\bar\alpha_t} + c^2$, and the
# middle term averages to $-2c^2$.) We evaluate both and confirm them by simulation.

# %%
sq = torch.sqrt(1 - abar).numpy()
c_blind = sq.mean()
L_blind, L_aware = 1 - c_blind**2, abar.mean().item()
t_mc = rng.integers(0, T, n_mc)  # t ~ U{1..T} (indices)
x0_mc, eps_mc = rng.standard_normal(n_mc), rng.standard_normal(n_mc)
xt_mc = np.sqrt(abar.numpy()[t_mc]) * x0_mc + sq[t_mc] * eps_mc
err_blind, err_aware = (eps_mc - c_blind * xt_mc) ** 2, (eps_mc - sq[t_mc] * xt_mc) ** 2
print(
    f"L_blind = {L_blind:.4f} (simulated {err_blind.mean():.4f}),  "
    f"L_aware = {L_aware:.4f} (simulated {err_aware.mean():.4f})\n"
    f"ignoring t costs {L_blind / L_aware - 1:.1%} more loss"
)
check(
    "L_blind = 1 − c², eq. (train-blind), by simulation (5 s.e.)",
    err_blind.mean(),
    L_blind,
    atol=5 * err_blind.std() / np.sqrt(n_mc),
)
check(
    "L_aware = mean of ᾱ_t, eq. (train-blind), by simulation (5 s.e.)",
    err_aware.mean(),
    L_aware,
    atol=5 * err_aware.std() / np.sqrt(n_mc),
)
check_le("the t-aware optimum beats every t-blind predictor", L_aware, L_blind)
_ = check(
    "the summary's figure: ignoring t costs about 27% more loss, L_blind / L_aware − 1",
    L_blind / L_aware - 1,
    0.27,
    atol=0.005,
)

# %%
t_axis = np.arange(1, T + 1)
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(t_axis, abar.numpy(), label=r"knows $t$: $\bar\alpha_t$")
ax.plot(
    t_axis,
    1 - 2 * c_blind * sq + c_blind**2,
    "--",
    label=r"ignores $t$: $1 - 2c\sqrt{1-\bar\alpha_t} + c^2$",
)
ax.set(
    yscale="log",
    xlabel="step t",
    ylabel=r"expected $(\epsilon - \hat\epsilon)^2$ at step t",
    title="Best noise prediction with and without the timestep (unit-variance data)",
)
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()
blind_over_aware = (1 - 2 * c_blind * sq + c_blind**2) / abar.numpy()
print(
    f"blind error / optimum: {blind_over_aware[0]:.2f} at t = 1, "
    f"{blind_over_aware[-1]:.0f} at t = T"
)
_ = check(
    "the text's figure: at t = T the blind error is about 930 times the optimum",
    blind_over_aware[-1],
    930,
    atol=5,
)

# %% [markdown]
# *Figure: the error of the best noise predictor at each step, when it knows $t$ (solid) and when
# it does not (dashed), for unit-variance Gaussian data (log scale).* The blind predictor
# over-predicts noise at the first steps, where the input is nearly clean, and under-predicts it at
# the last steps, where the input is nearly pure noise; there its error is about 930 times the
# optimum (printed above). For images the situation is less extreme: a $64$-pixel digit at small $t$ looks
# different from one at large $t$, and a network can estimate the noise level from the image, but
# only approximately, and the sampler then compounds its errors over 1,000 steps. Every DDPM
# therefore gives the network $t$ explicitly. The question is how.

# %% [markdown]
# ## The sinusoidal timestep embedding
#
# Feeding the integer $t \in \{1, \dots, 1000\}$ as one more number is a poor choice: a network
# is a smooth function of its inputs, and one scalar that ranges over three orders of magnitude
# is hard to turn into the very different behaviour needed at $t = 5$ and at $t = 50$. The
# Transformer's positional encoding {cite}`vaswani2017attention`, used for this purpose by
# {cite:t}`ho2020ddpm`, maps $t$ to a vector of sines and cosines at geometrically spaced
# frequencies. With an embedding size $d = 2h$,
#
# $$
# \mathbf{e}(t) = \big(\cos(t\,\omega_0), \dots, \cos(t\,\omega_{h-1}),\ \sin(t\,\omega_0), \dots, \sin(t\,\omega_{h-1})\big),
# \qquad
# \omega_k = 10000^{-k/h}, \quad k = 0, \dots, h - 1 .
# $$ (train-time-embedding)
#
# The frequencies fall geometrically from $\omega_0 = 1$ radian per step to nearly $10^{-4}$. The
# fast pairs separate neighbouring steps (at $\omega_0 = 1$, steps $t$ and $t + 1$ differ by a
# whole radian); the slow ones change little over all $T = 1000$ steps (for $d = 32$ the slowest
# turns by about 0.18 radians) and tell coarse times apart without ever wrapping around. This
# is the layout of improved-diffusion, all cosines first and then all sines; the Transformer
# interleaves them, which is the same vector with its entries permuted. Because the network
# sees $t$ only through $\mathbf{e}(t)$, the code's index $t - 1$ may be used instead of $t$ as long as
# training and sampling agree; the library, like improved-diffusion, feeds the index.
#
# Built by hand in three lines, in float64, and compared with the library's float32 version:


# %%
def sinusoidal_by_hand(t, dim, max_period=10_000.0):  # P = max_period
    """Eq. (train-time-embedding): [cos tω_k]_k ++ [sin tω_k]_k, ω_k = P^(−k/h)."""
    h = dim // 2
    omega = max_period ** (-torch.arange(h, dtype=torch.float64) / h)
    angles = t.double()[:, None] * omega[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


t_all = torch.arange(T)  # every index the model sees, 0..999
emb_dim = 32  # the digits model embeds t in 32 dimensions
E = sinusoidal_by_hand(t_all, emb_dim)  # (1000, 32)
check(
    "timestep_embedding equals eq. (train-time-embedding) by hand (float32 vs float64)",
    timestep_embedding(t_all, emb_dim),
    E.float(),
    atol=1e-4,
)
omega_slowest = 10_000.0 ** (-(emb_dim // 2 - 1) / (emb_dim // 2))
check(
    "the text's figure: over T = 1000 steps the slowest pair (d = 32) turns 0.18 rad",
    T * omega_slowest,
    0.18,
    atol=0.005,
)
_ = check(
    "the text's figure: float32 stores an angle of 999 rad with a spacing of 6e-5",
    np.spacing(np.float32(999.0)),
    6e-5,
    atol=5e-6,
)

# %% [markdown]
# The tolerance $10^{-4}$ is float32's: an angle of 999 radians is stored with a spacing of
# $6 \times 10^{-5}$, and the sine of a rounded angle is off by as much.
#
# **Why pairs: a shift in time is a rotation.** By the angle-addition formulas, moving from $t$ to
# $t + \Delta$ turns each pair $(\cos t\omega_k, \sin t\omega_k)$ by the angle $\Delta\omega_k$:
#
# $$
# \begin{pmatrix} \cos((t+\Delta)\omega_k) \\ \sin((t+\Delta)\omega_k) \end{pmatrix}
# =
# \begin{pmatrix} \cos\Delta\omega_k & -\sin\Delta\omega_k \\ \sin\Delta\omega_k & \cos\Delta\omega_k \end{pmatrix}
# \begin{pmatrix} \cos t\omega_k \\ \sin t\omega_k \end{pmatrix} .
# $$ (train-time-shift)
#
# Stacking the $h$ rotations gives one matrix $\mathbf{M}(\Delta)$ with
# $\mathbf{e}(t + \Delta) = \mathbf{M}(\Delta)\,\mathbf{e}(t)$ for **every** $t$: moving by a fixed time
# offset is the same linear map wherever one starts, so a linear layer can express "a little
# earlier" or "a little later" without knowing $t$. With sines alone this would be impossible,
# since $\sin((t+\Delta)\omega)$ is not a function of $\sin(t\omega)$ alone. A consequence: the
# inner product of two embeddings depends only on the time difference,
#
# $$
# \mathbf{e}(t)^\top \mathbf{e}(t') = \sum_{k=0}^{h-1} \big(\cos t\omega_k \cos t'\omega_k + \sin t\omega_k \sin t'\omega_k\big)
# = \sum_{k=0}^{h-1} \cos\big((t - t')\,\omega_k\big),
# $$ (train-time-dot)
#
# and every embedding has the same length, $\lVert\mathbf{e}(t)\rVert^2 = h$ (the case $t = t'$). We
# check these statements for all 1,000 steps, and one consequence for the library's embedding:
# the closest pairs of codes are neighbouring steps, so no wrap-around of the slow pairs brings
# distant steps closer together.


# %%
def shift_matrix(delta, dim, max_period=10_000.0):
    """M(Δ) of eq. (train-time-shift): a rotation by Δω_k in every (cos, sin) pair."""
    h = dim // 2
    omega = max_period ** (-torch.arange(h, dtype=torch.float64) / h)
    C, S = torch.diag(torch.cos(delta * omega)), torch.diag(torch.sin(delta * omega))
    return torch.cat([torch.cat([C, -S], 1), torch.cat([S, C], 1)], 0)


for delta in (1, 10, 250):
    check(
        f"e(t + {delta}) = M({delta}) e(t) for every t, eq. (train-time-shift)",
        E[delta:],
        E[:-delta] @ shift_matrix(delta, emb_dim).T,
        atol=1e-12,
    )
gram = E @ E.T  # e(t)ᵀe(t') for all pairs
h_ = emb_dim // 2
omega = 10_000.0 ** (-torch.arange(h_, dtype=torch.float64) / h_)
lag = (t_all[:, None] - t_all[None, :]).double()
check(
    "e(t)ᵀe(t') = Σ_k cos((t − t')ω_k), a function of t − t', eq. (train-time-dot)",
    gram,
    torch.cos(lag[..., None] * omega).sum(-1),
    atol=1e-9,
)
E_lib = timestep_embedding(t_all, emb_dim).double()
sq_norms = (E_lib**2).sum(1)
dist2 = sq_norms[:, None] + sq_norms[None, :] - 2 * E_lib @ E_lib.T  # ‖e(t) − e(t')‖²
lag_abs = lag.abs()
print(
    f"squared distance of codes: neighbours {dist2[lag_abs == 1].max():.3f}, "
    f"any two steps further apart at least {dist2[lag_abs >= 2].min():.3f}"
)
_ = check_le(
    "the library's codes: neighbouring steps are the closest pairs (no wrap-around)",
    dist2[lag_abs == 1].max(),
    dist2[lag_abs >= 2].min(),
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
im = axes[0].imshow(
    E.numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest"
)
axes[0].set(
    xlabel=f"embedding dimension (0–{h_ - 1}: cos, {h_}–{emb_dim - 1}: sin)",
    ylabel="timestep index t",
    title=f"Sinusoidal embedding e(t), d = {emb_dim}",
)
fig.colorbar(im, ax=axes[0], fraction=0.046)
im = axes[1].imshow(gram.numpy() / h_, cmap="viridis", interpolation="nearest")
axes[1].set(
    xlabel="timestep index t'",
    ylabel="timestep index t",
    title="Similarity e(t)ᵀe(t') / h",
)
fig.colorbar(im, ax=axes[1], fraction=0.046)
fig.tight_layout()
plt.show()
near = (gram.numpy() / h_)[500, [499, 490, 450, 400, 0]]
print(
    "similarity of t = 500 to t = 499, 490, 450, 400, 0: "
    + ", ".join(f"{v:.2f}" for v in near)
)

# %% [markdown]
# *Figure: left, the embedding of every timestep index (rows) in each of its 32 dimensions
# (columns); right, the cosine similarity of every pair of embeddings.* On the left, the first
# columns of each half oscillate fast (they look like noise at this resolution) and the last ones
# change slowly across all 1,000 steps: the slowest cosines stay close to 1 and the slowest sines
# rise slowly from 0. On the right, the
# similarity is constant along every diagonal, as {eq}`train-time-dot` requires. It is highest
# near the main diagonal and lower far from it, though not monotonically (the fast pairs make it
# ripple, as the printed values show): nearby steps get similar codes, distant steps dissimilar
# ones.

# %% [markdown]
# ## How the embedding enters the network
#
# The library's `UNet` follows {cite:t}`ho2020ddpm` and improved-diffusion
# {cite}`nichol2021improved`, cut down for $8 \times 8$ images. A U-Net
# {cite}`ronneberger2015unet` processes the image at full resolution, halves it, and comes back
# up, with skip connections that hand each level's features to the matching level on the way up.
# The timestep reaches it in two stages:
#
# 1. Once per call, the sinusoidal embedding {eq}`train-time-embedding` (size $d$, the base channel
#    count) goes through a small MLP, $\mathbf{v} = W_2\,\mathrm{SiLU}(W_1 \mathbf{e}(t) + \mathbf{b}_1) + \mathbf{b}_2$, of size $4d$.
# 2. **Every residual block** projects $\mathbf{v}$ to its own channel count and adds it, as a
#    per-channel bias broadcast over all pixels, between its two convolutions:
#
# $$
# \mathbf{h} = \mathrm{Conv}_1\big(\mathrm{SiLU}(\mathrm{GN}_1(\mathbf{x}))\big) + A\,\mathrm{SiLU}(\mathbf{v}) + \mathbf{a},
# \qquad
# \mathrm{out} = \mathrm{skip}(\mathbf{x}) + \mathrm{Conv}_2\big(\mathrm{SiLU}(\mathrm{GN}_2(\mathbf{h}))\big),
# $$ (train-resblock)
#
# where GN is group normalisation and the added term $A\,\mathrm{SiLU}(\mathbf{v}) + \mathbf{a}$ is one number
# per channel. So every block, at every resolution, can shift its features according to the noise
# level. The second convolution starts at zero, so each block is the identity at initialisation,
# which keeps a deep stack stable early in training. Self-attention at $4 \times 4$ lets distant
# pixels communicate. For **class-conditional** models (chapter 11) a learned embedding of the label
# is simply added to $\mathbf{v}$, so it reaches every block by the same route: `UNet(num_classes=10)`
# and `model(x_t, t, y)`.
#
# Here is the network of the book's digits model (the zoo entry `"digits-ddpm"`), level by level,
# with the shape of what each stage outputs for one image:

# %%
digits_entry = zoo.entry("digits-ddpm")
net_kwargs = {k: v for k, v in digits_entry.spec.network.items() if k != "type"}
torch.manual_seed(shifted(0))  # an initialisation seed: the network takes a step below
unet = UNet(**net_kwargs).eval()
print(
    textwrap.fill(
        "UNet(" + ", ".join(f"{k}={v}" for k, v in net_kwargs.items()) + ")",
        width=88,
        subsequent_indent="     ",
    )
    + "\n"
)


def describe(module):
    if isinstance(module, ResBlock):
        return f"ResBlock {module.conv1.in_channels}→{module.conv1.out_channels}"
    if isinstance(module, SelfAttention):
        return "Attention"
    if isinstance(module, nn.Upsample):
        return "Upsample ×2"
    if isinstance(module, nn.Conv2d):
        return f"Conv {module.in_channels}→{module.out_channels}" + (
            " stride 2" if module.stride == (2, 2) else ""
        )
    return type(module).__name__


stages = (
    [("time MLP", unet.time_mlp), ("input conv", unet.conv_in)]
    + [(f"down {i}", blocks) for i, blocks in enumerate(unet.down)]
    + [("middle", unet.middle)]
    + [(f"up {i}", blocks) for i, blocks in enumerate(unet.up)]
    + [("output", unet.out)]
)
shapes = {}
hooks = [
    (
        blocks[-1] if isinstance(blocks, (nn.ModuleList, nn.Sequential)) else blocks
    ).register_forward_hook(
        lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
    )
    for name, blocks in stages
]
with torch.no_grad():
    unet(torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long))
for hook in hooks:
    hook.remove()
n_params = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
print(f"{'stage':<11} {'layers':<53} {'output':>11} {'parameters':>10}")
for name, blocks in stages:
    parts = (
        [describe(b) for b in blocks]
        if isinstance(blocks, nn.ModuleList)
        else [describe(blocks)]
    )
    if name in ("time MLP", "output"):
        parts = [describe(b) for b in blocks if not isinstance(b, nn.SiLU)]
    layers, shape = " + ".join(parts), str(shapes[name])
    print(f"{name:<11} {layers:<53} {shape:>11} {n_params(blocks):>10,}")
total = n_params(unet)
time_params = n_params(unet.time_mlp) + sum(
    n_params(m.emb) for m in unet.modules() if isinstance(m, ResBlock)
)
n_blocks = sum(isinstance(m, ResBlock) for m in unet.modules())
print(
    f"\ntotal: {total:,} parameters; {n_blocks} residual blocks each add the time "
    "embedding;\n"
    f"the time pathway (MLP + per-block projections) holds {time_params:,} "
    f"({time_params / total:.1%})"
)
check(
    "the text's figure: roughly a tenth of the parameters serve the timestep",
    time_params / total,
    0.1,
    atol=0.01,
)
check("the summary's figure: 0.7 million parameters", total / 1e6, 0.7, atol=0.05)
check(
    "the U-Net predicts ε with the shape of x_t",
    torch.tensor(unet(torch.zeros(3, 1, 8, 8), torch.tensor([0, 1, 999])).shape),
    torch.tensor([3, 1, 8, 8]),
)

# %% [markdown]
# The printout is the whole network: an input convolution to 32 channels, two residual blocks
# at $8 \times 8$ and $4 \times 4$ with a strided convolution between them, a middle of two residual
# blocks around attention, and an up path that concatenates the saved skip features to its input
# (hence input channel counts such as $128 = 64 + 64$) and upsamples back to $8 \times 8$. The output
# convolution returns one channel, the predicted noise. Roughly a tenth of the parameters serve
# the timestep.

# %% [markdown]
# (broken-time-embedding)=
# ## A broken design, and two fixes
#
# A design that circulates in blog posts and tutorials feeds the timestep as extra *input
# channels*: compute the embedding, concatenate it to the image, and keep the first convolution of
# an ordinary image network, `nn.Conv2d(1, ...)` for a grey-scale image. Run as written, it fails,
# and how it fails is instructive.

# %%
B, d = 4, emb_dim
x_img = torch.randn(B, 1, 8, 8)  # a batch of noisy 8×8 grey images
t_batch = torch.tensor([0, 250, 500, 999])
e_vec = timestep_embedding(t_batch, d)  # (B, d): a vector per image
first_conv = nn.Conv2d(1, 64, kernel_size=3, padding=1)  # "the image has one channel"

errors = []
try:  # attempt 1: concatenate the vector
    first_conv(torch.cat([x_img, e_vec], dim=1))
except RuntimeError as err:
    errors.append(err)
    print("attempt 1, torch.cat([x, e], dim=1):")
    print(
        textwrap.fill(
            f"RuntimeError: {err}", 88, initial_indent="  ", subsequent_indent="    "
        )
    )
e_map = e_vec[:, :, None, None].expand(
    B, d, 8, 8
)  # attempt 2: broadcast e to (B, d, 8, 8)
x_cat = torch.cat([x_img, e_map], dim=1)
print(f"attempt 2: the concatenation now works, shape {tuple(x_cat.shape)}")
try:
    first_conv(x_cat)
except RuntimeError as err:
    errors.append(err)
    print("  but Conv2d(1, 64) rejects it:")
    print(
        textwrap.fill(
            f"RuntimeError: {err}", 88, initial_indent="  ", subsequent_indent="    "
        )
    )
check(
    "both versions of the broken design raise a RuntimeError", float(len(errors)), 2.0
)

# %% [markdown]
# Two mistakes are stacked here. First, `e_vec` is a vector per image, of shape $(B, d)$, not an
# image-shaped tensor $(B, C, H, W)$, so it cannot be concatenated to the image along the channel
# axis at all. Second, once it is broadcast to a $(B, d, 8, 8)$ map (each channel constant over the
# pixels), the concatenation has $1 + d$ channels, while `Conv2d(1, ...)` expects exactly one.
# (When a write-up shows such code "working", check what its first layer actually receives.)
#
# **Fix 1: a first convolution with $1 + d$ input channels.** This runs and is a legitimate,
# if weak, design: the timestep enters only at the first layer, as $d$ constant feature maps.
#
# **Fix 2, the standard one: add the embedding inside every block**, {eq}`train-resblock`, as the
# library's U-Net does, so every layer at every resolution can adapt to the noise level.

# %%
fixed_conv = nn.Conv2d(
    1 + d, 64, kernel_size=3, padding=1
)  # fix 1: one input channel per map
h_fixed = fixed_conv(x_cat)
print(
    f"fix 1: Conv2d(1 + {d}, 64) on the (B, 1 + d, 8, 8) input gives "
    f"{tuple(h_fixed.shape)}"
)
eps_hat = unet(x_img, t_batch)  # fix 2: the embedding added in every block
print(
    f"fix 2: UNet(x_t, t) gives {tuple(eps_hat.shape)}, "
    "the shape of the noise it predicts"
)
check(
    "fix 1 runs and keeps the 8×8 resolution",
    torch.tensor(h_fixed.shape),
    torch.tensor([B, 64, 8, 8]),
)
_ = check(
    "fix 2 runs and returns ε with the shape of x_t",
    torch.tensor(eps_hat.shape),
    torch.tensor(x_img.shape),
)

# %% [markdown]
# ## Algorithm 1: training
#
# Training is $L_{\text{simple}}$, eq. {eq}`rev-l-simple`, minimised by stochastic gradient descent.
# {cite:t}`ho2020ddpm` state it as their Algorithm 1:
#
# ```{admonition} Algorithm 1: Training (Ho et al., 2020)
# :class: note
#
# 1. **repeat**
# 2. $\quad\mathbf{x}_0 \sim q(\mathbf{x}_0)$
# 3. $\quad t \sim \mathrm{Uniform}(\{1, \dots, T\})$
# 4. $\quad\boldsymbol{\epsilon} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$
# 5. $\quad$Take gradient descent step on
#    $\nabla_\theta \big\lVert \boldsymbol{\epsilon} - \boldsymbol{\epsilon}_\theta\big(\sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol{\epsilon},\ t\big) \big\rVert^2$
# 6. **until** converged
# ```
#
# In code, one step for a minibatch of digits (line 2), each with its own $t$ (line 3, drawn as the
# index $t - 1 \in \{0, \dots, 999\}$) and its own noise (line 4), the noisy input built by
# eq. {eq}`fwd-reparam`, and the squared error averaged over the minibatch and the pixels (line 5;
# averaging instead of summing only rescales the gradient):


# %%
def training_loss_by_hand(model, x0, generator):
    """Lines 2–5 of Algorithm 1 for a minibatch x0 (B, 1, 8, 8)."""
    t = torch.randint(0, T, (x0.shape[0],), generator=generator)  # line 3 (index t − 1)
    eps = torch.randn(x0.shape, generator=generator)  # line 4
    ab = abar[t].float().view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps  # eq. (fwd-reparam)
    loss = ((eps - model(x_t, t)) ** 2).mean()  # line 5
    return loss, t, eps


x0_batch = train_set.images[:64]  # line 2: 64 digits
loss_hand, t_used, eps_used = training_loss_by_hand(
    unet, x0_batch, torch.Generator().manual_seed(1)
)
loss_lib = diff.training_losses(unet, x0_batch, t_used, eps_used)["loss"].mean()
check(
    "Algorithm 1's loss by hand equals diff.training_losses with the same t and ε",
    loss_hand,
    loss_lib,
    atol=1e-6,
)
check(
    "at initialisation ε̂ = 0 (zero output layer), so the loss is the mean of ε²",
    loss_hand,
    (eps_used**2).mean(),
    atol=1e-7,
)
optimizer = torch.optim.Adam(unet.parameters(), lr=1e-3)
optimizer.zero_grad()
loss_hand.backward()  # line 5: the gradient step
optimizer.step()
print(f"one gradient step on a fresh network: loss {loss_hand.item():.3f}")

# %% [markdown]
# At initialisation the loss is close to 1, the variance of $\boldsymbol{\epsilon}$: the zero-initialised
# output layer predicts $\hat{\boldsymbol{\epsilon}} = \mathbf{0}$. Repeating this step is all there
# is to training. The library's `train` wraps the loop with what practice adds: AdamW, a linear
# learning-rate warm-up, gradient-norm clipping, a fixed seed, and the **exponential moving
# average** of the weights,
#
# $$
# \theta_{\text{EMA}} \leftarrow \gamma\,\theta_{\text{EMA}} + (1 - \gamma)\,\theta \qquad \text{after every step},
# $$ (train-ema)
#
# which averages the weights of roughly the last $1/(1-\gamma)$ steps (exercise 2). Stochastic
# gradient descent keeps the weights jittering around a good region; their average sits closer to
# its centre, and {cite:t}`ho2020ddpm` sample with the EMA weights (decay $0.9999$ in their much
# longer runs; their code copies the weights at the first update and keeps the decay constant
# afterwards). `train` returns both networks: `TrainResult(model, ema, losses)`.
#
# ### What the warm-up of the decay averages
#
# With a constant $\gamma$ close to 1, a short run would keep much of the random initial network
# in the average (exercise 2). The library's `train` therefore warms the decay up: update
# $s = 0, 1, 2, \dots$ uses
#
# $$
# \gamma_s = \min\Big(\gamma,\ \frac{1 + s}{10 + s}\Big),
# $$ (train-ema-warmup)
#
# the rule of TensorFlow's `tf.train.ExponentialMovingAverage` when it is given the step count
# (its `num_updates`), which the EMA classes of Song et al.'s code {cite}`song2021sde` and of
# latent diffusion {cite}`rombach2022ldm` also use (with the count advanced by one). The decay
# starts at $0.1$ and rises towards 1, so it is tempting to read the warm-up as "an average over
# all the steps so far". It is not one, and the weights can be worked out exactly.
#
# Write $\theta_m$ for the weights after $m$ optimiser steps ($\theta_0$ is the random
# initialisation). The EMA starts at $\theta_0$, and its update $s$ folds in $\theta_{s+1}$ with
# decay $\gamma_s = (1 + s)/(10 + s)$, as long as this is below $\gamma$. Unrolling $n$ updates as
# in exercise 2:
#
# $$
# \theta_{\text{EMA}} = \sum_{m=0}^{n} w_m\,\theta_m ,
# \qquad
# w_0 = \prod_{s=0}^{n-1} \gamma_s ,
# \qquad
# w_m = (1 - \gamma_{m-1}) \prod_{s=m}^{n-1} \gamma_s \quad (m \geq 1).
# $$
#
# The product telescopes, since its numerators and its denominators are runs of consecutive
# integers:
#
# $$
# \prod_{s=m}^{n-1} \frac{1 + s}{10 + s}
# = \frac{(m+1)(m+2)\cdots n}{(m+10)(m+11)\cdots(n+9)}
# = \frac{n!\,(m+9)!}{m!\,(n+9)!} .
# $$
#
# With $1 - \gamma_{m-1} = 9/(m + 9)$, the weight of $\theta_m$ is
#
# $$
# w_m = \frac{9\,(m+8)!\;n!}{m!\,(n+9)!} = \binom{m+8}{8} \Big/ \binom{n+9}{9} ,
# \qquad m = 0, 1, \dots, n ,
# $$ (train-ema-weights)
#
# where $m = 0$ fits the same formula, $w_0 = 9!\,n!/(n+9)! = 1/\binom{n+9}{9}$. The weights sum to 1
# by the hockey-stick identity $\sum_{m=0}^{n} \binom{m+8}{8} = \binom{n+9}{9}$. They grow like the
# eighth power of $m$: for large $n$, $w_m \approx 9\,m^8/n^9$, the density $9x^8$ of the fraction
# $x = m/n$ of the run.
#
# **The mean age.** The weights $\theta_m$ are $n - m$ steps old when the EMA has made $n$ updates.
# Since $m\binom{m+8}{8} = 9\binom{m+8}{9}$, and by the same identity
# $\sum_{m=0}^{n}\binom{m+8}{9} = \binom{n+9}{10}$,
#
# $$
# \sum_{m=0}^{n} m\,w_m = 9\binom{n+9}{10} \Big/ \binom{n+9}{9} = 9 \cdot \frac{n}{10} ,
# \qquad
# \text{mean age} = n - \frac{9n}{10} = \frac{n}{10} .
# $$ (train-ema-age)
#
# An average over all the steps so far weighs them equally, and its mean age is $n/2$. The
# warm-up EMA puts half of its weight on the last $1 - 2^{-1/9} \approx 7.4\,\%$ of the steps
# (where $x^9 = 1/2$) and only $2^{-9} \approx 0.2\,\%$ on the whole first half of the run: it is an
# average over roughly the last tenth of the run so far, and it forgets the initialisation at
# once. Only when $(1 + s)/(10 + s)$ reaches $\gamma$, at $s \geq (10\gamma - 1)/(1 - \gamma)$ (8,990
# updates for $\gamma = 0.999$), does the constant decay take over, and the mean age then tends to
# $\gamma/(1 - \gamma)$ steps. The next cell runs the library's `train` on a "network" whose
# weights after step $m$ are the $m$-th unit vector, so that its EMA network *is* the vector of
# weights $w_m$, and compares it with {eq}`train-ema-weights` and {eq}`train-ema-age`.


# %%
def ema_weights_of_train(n, ema_decay):
    """The weights w_0..w_n of θ_0..θ_n in the EMA that `train` keeps after n steps.

    θ_m is the m-th unit vector: the loss sets the weights to it before step m − 1's
    update (its gradient is zero, so AdamW leaves them there), and the EMA folds it in.
    """
    net = nn.Module()
    net.theta = nn.Parameter(torch.zeros(n + 1, dtype=torch.float64))
    net.theta.data[0] = 1.0  # θ_0, where the EMA starts
    step = [0]

    def set_next_weights(model, batch, generator):
        step[0] += 1
        with torch.no_grad():
            model.theta.zero_()
            model.theta[step[0]] = 1.0  # θ_m = e_m with m = s + 1
        return (model.theta * 0.0).sum()

    config = TrainConfig(steps=n, batch_size=1, ema_decay=ema_decay, warmup_steps=0)
    result = train(net, set_next_weights, [torch.zeros(1)], config, progress=False)
    return result.ema.theta.detach().numpy()


for n, label in (
    (150, "the short run below"),
    (digits_entry.train.steps, "the zoo model"),
):
    w = ema_weights_of_train(n, ema_decay=0.999)
    m_ = np.arange(n + 1)
    closed = np.array([math.comb(k + 8, 8) for k in m_]) / math.comb(n + 9, 9)
    age = (w * (n - m_)).sum()
    half = n - m_[np.searchsorted(np.cumsum(w), 0.5)]  # the newest steps holding half
    print(
        f"n = {n} ({label}): last decay {n / (n + 9):.4f}\n"
        f"    mean age {age:.2f} steps (n/10 = {n / 10:g}; uniform: {n / 2:g});\n"
        f"    half the weight on the last {half} steps; the first half of the run "
        f"{w[: n // 2].sum():.2%}; θ_0 {w[0]:.1e}"
    )
    check(
        f"n = {n}: train's EMA weights, C(m+8, 8) / C(n+9, 9), eq. (train-ema-weights)",
        w,
        closed,
        atol=1e-12,
    )
    check(
        f"n = {n}: the EMA's mean age is n/10, eq. (train-ema-age)",
        age,
        n / 10,
        atol=1e-9,
    )
_ = check(
    "the text's figures: 1 − 2^(−1/9) ≈ 7.4 % and 2^(−9) ≈ 0.2 %",
    [1 - 2 ** (-1 / 9), 2.0**-9],
    [0.074, 0.002],
    atol=5e-4,
)

# %% [markdown]
# The printout confirms the algebra and shows what it means for this chapter's runs. For the zoo
# model's 1,800 steps with $\gamma = 0.999$ the cap is never reached: the last decay is about
# $0.995$ and the EMA network is an average with a mean age of 180 steps, half of its weight on the
# last 133. For the short run below it is 15 steps. In both, the weight left on the random
# initialisation is negligible, which a constant decay of $0.999$ would not achieve (exercise 2).

# %% [markdown]
# ## Algorithm 2: sampling
#
# Sampling runs the reverse chain {eq}`rev-ancestral-step` from pure noise, {cite:t}`ho2020ddpm`'s
# Algorithm 2:
#
# ```{admonition} Algorithm 2: Sampling (Ho et al., 2020)
# :class: note
#
# 1. $\mathbf{x}_T \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$
# 2. **for** $t = T, \dots, 1$ **do**
# 3. $\quad\mathbf{z} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$ if $t > 1$, else $\mathbf{z} = \mathbf{0}$
# 4. $\quad\mathbf{x}_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(\mathbf{x}_t - \frac{1 - \alpha_t}{\sqrt{1 - \bar\alpha_t}}\,\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)\Big) + \sigma_t \mathbf{z}$
# 5. **end for**
# 6. **return** $\mathbf{x}_0$
# ```
#
# One step in code (lines 3 and 4), with $\sigma_t^2 = \tilde\beta_t$ (the library's `"fixed_small"`),
# checked against the library's `p_sample` with the same noise. The paper's algorithm does not clip
# anything, so we compare with `clip_denoised=False`.


# %%
def sampling_step_by_hand(model, x_t, t, z):
    """Lines 3–4 of Algorithm 2; t is the index (B,), z the noise (unused at t = 0)."""
    shape = (-1,) + (1,) * (x_t.ndim - 1)  # broadcast over pixels
    a, ab = diff.alphas[t].to(x_t.dtype).view(shape), abar[t].to(x_t.dtype).view(shape)
    sigma = diff.posterior_variance[t].sqrt().to(x_t.dtype).view(shape)  # σ_t = √β̃_t
    z = torch.where(t.view(shape) > 0, z, torch.zeros_like(z))  # line 3: z = 0 at t = 1
    with torch.no_grad():
        eps = model(x_t, t)
    return (x_t - (1 - a) / (1 - ab).sqrt() * eps) / a.sqrt() + sigma * z  # line 4


gen = torch.Generator().manual_seed(2)
x_t = torch.randn(8, 1, 8, 8, generator=gen)
t_step = torch.tensor([999, 700, 400, 100, 10, 2, 1, 0])  # index 0 is t = 1
z = torch.randn(8, 1, 8, 8, generator=gen)
with torch.no_grad():
    step_lib = diff.p_sample(unet, x_t, t_step, noise=z, clip_denoised=False)["sample"]
_ = check(
    "Algorithm 2's step by hand equals diff.p_sample with the same noise (float32)",
    sampling_step_by_hand(unet, x_t, t_step, z),
    step_lib,
    atol=1e-5,
)

# %% [markdown]
# Two remarks. The library computes the same mean another way, through the predicted clean image
# $\hat{\mathbf{x}}_0$ and the posterior mean (chapter 5), which is why the two agree to float32
# rounding rather than bit for bit. And by default (`clip_denoised=True`) it clamps
# $\hat{\mathbf{x}}_0$ to $[-1, 1]$ before forming the mean, as improved-diffusion does: a small
# departure from Algorithm 2 that keeps samples of image data inside the data range. It is the
# right thing for images, and the wrong thing for data outside $[-1, 1]$ (the ring below).
# `samplers.ddpm` runs the whole loop; we check it against a hand-written loop on the ring, where
# a thousand network calls are cheap.

# %% [markdown]
# ## A short training run by hand
#
# Before loading the book's trained model, a run small enough to watch: a smaller U-Net (16 base
# channels, no attention), 150 steps of minibatches of 64 digits. The loss function is the
# library's `training_losses`, driven by `train`'s seeded generator.

# %%
torch.manual_seed(shifted(0))  # initialisation and training seeds follow the seed shift
small = UNet(
    base_channels=16, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=()
)
small_config = TrainConfig(
    steps=150, batch_size=64, lr=2e-3, warmup_steps=20, ema_decay=0.99, seed=shifted(0)
)


def loss_fn(model, batch, generator):
    return diff.training_losses(model, batch[0], generator=generator)["loss"].mean()


t0 = time.perf_counter()
run = train(small, loss_fn, [train_set.images], small_config, progress=False)
loss_first, loss_last = np.mean(run.losses[:10]), np.mean(run.losses[-30:])
print(
    f"{n_params(small):,} parameters, {small_config.steps} steps in "
    f"{time.perf_counter() - t0:.1f} s; loss {loss_first:.3f} (first 10 steps) "
    f"→ {loss_last:.3f} (last 30)"
)
glue("ch6_small_first", loss_first)
glue("ch6_small_last", loss_last)
# Measured under seed shifts 0/1/2: 0.150 / 0.146 / 0.162 (no learning: about 1).
_ = check_outcome(
    "the short run's loss falls: mean of the last 30 steps / mean of the first 10",
    loss_last / loss_first,
    at_most=0.3,
)


# %%
def held_out_loss(model, images, seed=0, draws=2):
    """L_simple on fixed images with fixed (t, ε) draws, to compare models fairly."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        losses = [
            diff.training_losses(model, images, generator=gen)["loss"]
            for _ in range(draws)
        ]
    return torch.cat(losses).mean().item()


# Raw against EMA weights on the same (t, ε) draws, for three independent sets of draws.
draw_seeds = (0, 1, 2)
loss_raw = np.array([held_out_loss(run.model, test_set.images, s) for s in draw_seeds])
loss_ema = np.array([held_out_loss(run.ema, test_set.images, s) for s in draw_seeds])
print(
    f"held-out L_simple on the {len(test_set.images)} test digits, three sets of draws:"
)
print("  raw weights " + ", ".join(f"{v:.4f}" for v in loss_raw))
print("  EMA weights " + ", ".join(f"{v:.4f}" for v in loss_ema))
ema_gain = loss_raw - loss_ema  # paired: the same draws for both networks
print(
    f"  raw − EMA: {ema_gain.mean():.4f} (from {ema_gain.min():.4f} to "
    f"{ema_gain.max():.4f} over the draws;\n  the raw loss itself varies by "
    f"{np.ptp(loss_raw):.4f})"
)
glue("ch6_ema_gain", ema_gain.mean())
# Measured under seed shifts 0/1/2: 0.0076 / 0.0048 / 0.0038.
_ = check_outcome(
    "short run: the EMA beats the raw weights on every set of draws: smallest gain",
    ema_gain.min(),
    at_least=0.001,
)

fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(np.arange(1, len(run.losses) + 1), run.losses, lw=1)
ax.set(
    yscale="log",
    xlabel="training step",
    ylabel=r"minibatch $L_{\mathrm{simple}}$",
    title="A short training run (small U-Net, 150 steps)",
)
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: the minibatch loss of the short run (log scale).* The loss drops from
# {glue:text}`ch6_small_first:.2f` in the first ten steps (about 1, the loss of predicting zero
# noise) to {glue:text}`ch6_small_last:.2f` in the last thirty, within 150 steps and a few seconds
# of CPU time. It keeps falling, slowly, for thousands of steps; samples become recognisable digits
# only much later, which is why the book's model comes from the zoo. The held-out loss of the EMA
# weights is printed next to that of the raw weights, on the same three sets of draws of $t$ and
# $\boldsymbol{\epsilon}$: even in a run this short, where the EMA is an average with a mean age
# of 15 steps, the averaged weights do better on every set (by {glue:text}`ch6_ema_gain:.4f` on
# average), and under every training seed tried. In long runs the benefit shows most in the
# samples.

# %% [markdown]
# ## The trained model
#
# `zoo.load("digits-ddpm")` returns the book's digits model: the U-Net printed above, trained with
# `train` and the loss of Algorithm 1 on the 1,437 training digits. The first call trains it (a few
# minutes on two CPU cores; the progress bar appears below, the time is printed) and caches it in
# `$DIFFUSION_LIB_HOME` (default `~/.cache/diffusion_lib`); later calls load the cached weights.
# `m.model` is the **EMA** network, already in evaluation mode; `m.diffusion` is its process and
# `m.record` its training record.

# %%
m = zoo.load("digits-ddpm")
model, cfg = m.model, m.entry.train
print(
    f"{m.name}: {n_params(model):,} parameters, {cfg.steps} steps of batch "
    f"{cfg.batch_size}, lr {cfg.lr},\n  EMA decay {cfg.ema_decay}; "
    f"trained in {m.record['train_seconds']:.0f} s"
)
check(
    "the zoo model's process is the chapter's (linear schedule, T = 1000)",
    m.diffusion.betas,
    diff.betas,
    atol=0.0,
)

# %%
losses = np.array(m.record["losses"])
window = 50
smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(
    np.arange(1, len(losses) + 1), losses, lw=0.5, alpha=0.35, label="minibatch loss"
)
ax.plot(
    np.arange(window, len(losses) + 1),
    smooth,
    lw=2,
    label=f"moving average over {window} steps",
)
ax.set(
    yscale="log",
    xlabel="training step",
    ylabel=r"$L_{\mathrm{simple}}$ (mean over pixels)",
    title=f"Training loss of {m.name}",
)
ax.grid(alpha=0.3, which="both")
ax.legend()
fig.tight_layout()
plt.show()
n_test = len(test_set.images)
loss_train_set = np.mean(
    [held_out_loss(model, train_set.images[:n_test], s) for s in draw_seeds]
)
loss_test_set = np.mean([held_out_loss(model, test_set.images, s) for s in draw_seeds])
print(
    f"last {window} steps: {losses[-window:].mean():.4f};  EMA model with fixed "
    f"(t, ε), 3 sets of draws:\n  {loss_train_set:.4f} on {n_test} training digits, "
    f"{loss_test_set:.4f} on the test digits "
    f"(ratio {loss_test_set / loss_train_set:.3f})"
)
# Measured under seed shifts 0/1/2: 1.062 / 1.059 / 1.059.
_ = check_outcome(
    "no memorisation: held-out loss on test digits / on as many training digits",
    loss_test_set / loss_train_set,
    at_least=0.9,
    at_most=1.25,
)

# %% [markdown]
# *Figure: the training loss of the zoo model at every step (faint) and its moving average (bold),
# log scale.* Most of the decrease happens in the first few hundred steps; afterwards the loss
# creeps down slowly while the minibatch values scatter widely, because each minibatch draws
# different timesteps and the loss at small $t$ (a faint noise on a nearly clean image, hard to
# predict) is many times the loss at large $t$. The loss of the EMA network on the test digits is
# printed next to its loss on as many training digits, with the same draws of $t$ and
# $\boldsymbol{\epsilon}$: the two are close (their ratio is printed, and checked over several
# training seeds), so the network has not memorised its training set.
#
# Before sampling, two checks on the trained network. Its output must follow
# {eq}`train-resblock`: we recompute one residual block by hand from its layers. And it must use
# $t$: fed pure noise at $t = T$, where {eq}`train-eps-unit` says the best prediction is the input
# itself ($\sqrt{1 - \bar\alpha_T} \approx 1$), it should return nearly its input.

# %%
x_noise = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(3))
t_last = torch.full((16,), T - 1)
with torch.no_grad():
    v = model.time_mlp(
        timestep_embedding(t_last, model.base_channels)
    )  # stage 1: MLP(e(t))
    check("UNet.embed(t) = MLP(e(t)), stage 1", model.embed(t_last, None), v, atol=1e-6)
    block, h_in = model.down[0][0], model.conv_in(x_noise)
    h_mid = (
        block.conv1(F.silu(block.norm1(h_in))) + block.emb(F.silu(v))[:, :, None, None]
    )
    out_hand = block.skip(h_in) + block.conv2(
        F.silu(block.norm2(h_mid))
    )  # eq. (train-resblock)
    check(
        "the trained U-Net's first residual block equals eq. (train-resblock) by hand",
        block(h_in, v),
        out_hand,
        atol=1e-5,
    )
    mse_T = F.mse_loss(model(x_noise, t_last), x_noise).item()
print(
    f"at t = T the trained network's ε_θ(x_T, T) differs from x_T by a mean squared\n"
    f"  error of {mse_T:.4f}"
)
# Measured under seed shifts 0/1/2: 0.00070 / 0.00072 / 0.00066 (untrained: about 1).
_ = check_outcome("ε_θ(x_T, T) ≈ x_T: mean squared error", mse_T, at_most=0.005)

# %% [markdown]
# ## Samples and the reverse process
#
# Sampling is Algorithm 2, `samplers.ddpm`, with the default clipping of $\hat{\mathbf{x}}_0$:
# 1,000 network calls per batch, the most expensive step of the chapter. We draw 16 digits from a
# fixed generator and keep their trajectory $\mathbf{x}_T, \dots, \mathbf{x}_0$ for the animation.
# For the grid and the metrics we use 500 samples of the same model and sampler that the zoo
# computes once and caches beside the model (`reference_samples` of the diffusion family, a few minutes on first use;
# chapter 7 uses the same samples as its reference).

# %%
N_SHOW = 16
t0 = time.perf_counter()
few, trajectory = samplers.ddpm(
    model,
    m.diffusion,
    (N_SHOW, 1, 8, 8),
    generator=torch.Generator().manual_seed(0),
    progress=False,
    return_trajectory=True,
)
print(
    f"{N_SHOW} samples in {time.perf_counter() - t0:.1f} s, "
    f"{len(trajectory)} states each"
)
check(
    "the trajectory runs x_T, ..., x_0 and ends at the returned samples",
    trajectory[-1],
    few,
    atol=0.0,
)
reference = reference_samples("digits-ddpm", 500, seed=0)
samples = reference.x0  # Algorithm 2 with clipping, from the zoo's cache
print(
    f"{len(samples)} cached samples, range [{samples.min():.2f}, {samples.max():.2f}] "
    f"(sampled at {reference.seconds_per_sample:.2f} s per image on first use)"
)

fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
viz.show_images(samples[:100], nrow=10, ax=axes[0], title=f"100 samples of {m.name}")
viz.show_images(
    test_set.images[:100], nrow=10, ax=axes[1], title="100 test digits (real)"
)
for ax in axes:
    ax.set(xlabel="10 images per row")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left, the first 100 of the 500 samples; right, 100 real test digits.* Most samples are
# clearly legible digits in the style of the data set, with the same thick strokes and the same
# placement; a minority are malformed or ambiguous, which the metrics below quantify. Below, the
# reverse process: the 16 samples drawn above every 50 steps from $\mathbf{x}_T$ (pure noise) to
# $\mathbf{x}_0$, as an animation, then six of them as a still figure.

# %%
frame_index = list(range(0, T + 1, 50))  # trajectory[k] is x_(T−k)
frames = [trajectory[k] for k in frame_index]
display(
    viz.animation_html(
        frames, titles=[f"t = {T - k}" for k in frame_index], fps=4, nrow=4
    )
)

# %%
t_cols = [1000, 800, 600, 500, 400, 300, 200, 100, 50, 0]
strip = torch.cat([trajectory[T - t][:6] for t in t_cols])  # 6 samples × 10 times
strip = strip.view(len(t_cols), 6, 1, 8, 8).transpose(0, 1).reshape(-1, 1, 8, 8)
fig, ax = plt.subplots(figsize=(9, 5.6))
viz.show_images(
    strip.clamp(-1, 1),
    nrow=len(t_cols),
    ax=ax,
    title="The reverse process of six samples",
)
ax.set(
    xlabel="t = " + ",  ".join(str(t) for t in t_cols) + "   (left to right)",
    ylabel="sample",
)
fig.tight_layout()
plt.show()
_ = check(
    "the text's figures: √ᾱ_t at t = 800 and 500, and √(1 − ᾱ_500)",
    [abar[799].sqrt(), abar[499].sqrt(), (1 - abar[499]).sqrt()],
    [0.04, 0.28, 0.96],
    atol=5e-3,
)

# %% [markdown]
# *Figure: six samples (rows) at ten points of the reverse process (columns, $t$ from 1000 down to
# 0; values clipped to $[-1, 1]$ for display).* For the first few hundred steps nothing visible
# happens: the noise dominates and the signal, whose scale is $\sqrt{\bar\alpha_t}$, is small next
# to it ($\sqrt{\bar\alpha_{800}} \approx 0.04$; at $t = 500$ the signal's scale is $0.28$ against
# a noise of standard deviation $0.96$). The digit's coarse shape appears around $t \approx 300$ to
# $200$, and the last hundred steps only remove the remaining fine noise. This coarse-to-fine order
# comes from the forward process: fine details drown in the noise first, so the reverse process
# restores them last.

# %% [markdown]
# ## Bits per dimension on held-out digits
#
# The bound {eq}`rev-bpd` of chapter 5 measures the model as a likelihood model, on data it has not
# seen. As there, the digits are first rounded to the 256-level grid of an 8-bit image so that the
# discretised decoder {eq}`rev-decoder` assigns them probabilities, and `diff.bits_per_dim` draws one
# $\mathbf{x}_t$ per step, $T = 1000$ network calls on a batch of 64 test digits.

# %%
x_bpd = data.quantise(test_set.images[:64])  # the 256-level grid of chapter 5
t0 = time.perf_counter()
bpd = m.diffusion.bits_per_dim(model, x_bpd, generator=torch.Generator().manual_seed(0))
total, prior, L0 = (
    bpd["total"].mean().item(),
    bpd["prior"].mean().item(),
    bpd["terms"][:, 0].mean().item(),
)
kl_sum = bpd["terms"][:, 1:].sum(1).mean().item()
total_se = bpd["total"].std().item() / math.sqrt(len(x_bpd))
print(
    f"({time.perf_counter() - t0:.1f} s)  bits/dim on 64 test digits: "
    f"total {total:.3f} ± {total_se:.3f} (s.e.)\n  prior L_T {prior:.1e},  "
    f"decoder L_0 {L0:.3f},  Σ KL terms {kl_sum:.3f}"
)

# Three references on the same 64 digits. (1) A code that knows only which 17 grey
# levels the digits use (0..16, scaled to [-1, 1]): log₂ 17 bits per pixel.
level_of = lambda x: torch.round((x + 1) * 8).long()  # noqa: E731  (level 0..16)
all_images = torch.cat([train_set.images, test_set.images])
check(
    "the digits use exactly 17 grey levels, the multiples of 1/8 in [-1, 1]",
    [
        len(torch.unique(all_images)),
        (level_of(all_images) / 8 - 1 - all_images).abs().max(),
    ],
    [17.0, 0.0],
    atol=1e-6,
)
# (2) An independent histogram of the 17 levels for each pixel, fitted to the training
# digits (add-½ smoothing): a code that knows nothing of strokes or shapes.
counts = torch.stack(
    [
        torch.bincount(col, minlength=17)
        for col in level_of(train_set.images).flatten(1).T
    ]
)
hist = (counts + 0.5) / (counts + 0.5).sum(1, keepdim=True)  # (64 pixels, 17 levels)
hist_bpd = -hist.log2().gather(1, level_of(x_bpd).flatten(1).T).mean().item()
# (3) The Gaussian of chapter 5, eq. (rev-eps-gauss), fitted to the training digits:
# the best linear denoiser, with the same draws of x_t as the network.
flat = data.quantise(train_set.images).double().flatten(1)
mean_fit = flat.mean(0)
evals, U = torch.linalg.eigh(torch.cov(flat.T))
evals = evals.clamp(min=0.0)


def eps_gauss(x_t, t):
    """Eq. (rev-eps-gauss) for the Gaussian fitted to the training digits."""
    ab = abar[t].view(-1, 1)
    centred = x_t.double().flatten(1) - torch.sqrt(ab) * mean_fit
    coeff = torch.sqrt(1 - ab) / (ab * evals + 1 - ab)  # (B, D) in the eigenbasis
    return (((centred @ U) * coeff) @ U.T).view_as(x_t).to(x_t.dtype)


gauss_bpd = (
    m.diffusion.bits_per_dim(
        eps_gauss, x_bpd, generator=torch.Generator().manual_seed(0)
    )["total"]
    .mean()
    .item()
)
print(
    f"references on the same digits: log₂ 17 = {math.log2(17):.3f};  a histogram per "
    f"pixel {hist_bpd:.3f};\n  the Gaussian of chapter 5 {gauss_bpd:.3f} bits/dim"
)
glue("ch6_bpd_total", total)
glue("ch6_bpd_se", total_se)
glue("ch6_bpd_L0", L0)
glue("ch6_bpd_kl", kl_sum)
glue("ch6_bpd_hist", hist_bpd)
glue("ch6_bpd_gauss", gauss_bpd)
sigma_1 = m.diffusion.posterior_variance[1].sqrt().item()  # the decoder's σ_1 = √β̃_2
# L_0 by hand for one fresh draw of x_1: the decoder, eq. (rev-decoder), at the mean of
# Algorithm 2's last step, against the library's vlb_terms at t = 1 (index 0).
t_first = torch.zeros(len(x_bpd), dtype=torch.long)
x_1 = m.diffusion.q_sample(
    x_bpd, t_first, torch.randn(x_bpd.shape, generator=torch.Generator().manual_seed(1))
)
with torch.no_grad():
    eps_1 = model(x_1, t_first)
    L0_lib = m.diffusion.vlb_terms(model, x_bpd, x_1, t_first)["output"]
a_1 = m.diffusion.alphas[0].item()  # = ᾱ_1
mu_1 = ((x_1 - (1 - a_1) / math.sqrt(1 - a_1) * eps_1) / math.sqrt(a_1)).double()
Phi_t = lambda u: 0.5 * (1 + torch.erf(u / math.sqrt(2)))  # noqa: E731
x_d = x_bpd.double()
# the bin of each pixel value, the two edge bins open to ±∞
upper = torch.where(x_d > 0.999, torch.inf, x_d + 1 / 255)
lower = torch.where(x_d < -0.999, -torch.inf, x_d - 1 / 255)
p_bin = Phi_t((upper - mu_1) / sigma_1) - Phi_t((lower - mu_1) / sigma_1)
L0_hand = -torch.log2(p_bin).flatten(1).mean(1)
check(
    "L_0 by hand (Algorithm 2's mean at t = 1, eq. (rev-decoder)) equals the library's",
    L0_hand,
    L0_lib,
    atol=1e-4,
)
Phi = lambda u: 0.5 * (1 + math.erf(u / math.sqrt(2)))  # noqa: E731
edge = (x_bpd.abs() > 0.999).double()  # pixels in the two edge bins
perfect_L0 = (
    (
        edge * -math.log2(Phi(1 / (255 * sigma_1)))
        + (1 - edge) * -math.log2(2 * Phi(1 / (255 * sigma_1)) - 1)
    )
    .mean()
    .item()
)
print(
    f"a decoder whose mean were exactly x_0 would still cost {perfect_L0:.3f} "
    "bits/dim\n"
    f"  (σ_1 = {sigma_1:.4f}, half a bin = {1 / 255:.4f}; "
    f"{edge.mean():.0%} of the pixels in edge bins)"
)
p_interior, p_edge = 2 * Phi(1 / (255 * sigma_1)) - 1, Phi(1 / (255 * sigma_1))
check(
    "the text's figures: σ_1 = √β̃_2 ≈ 0.0074, a bin 2/255 ≈ 0.0078 wide",
    [sigma_1, 2 / 255],
    [0.0074, 0.0078],
    atol=5e-5,
)
check(
    "the text's figures: a perfect mean puts 40% (1.3 bits) into an interior bin, 70% "
    "(0.5 bits) into an edge bin",
    [p_interior, -math.log2(p_interior), p_edge, -math.log2(p_edge)],
    [0.40, 1.3, 0.70, 0.5],
    atol=0.011,
)
glue("ch6_perfect_L0", perfect_L0)
glue("ch6_perfect_share", perfect_L0 / L0)
# Measured under seed shifts 0/1/2: 1.69 / 1.64 / 1.68 bits/dim.
check_outcome(
    "the network's bound beats the Gaussian's (same digits and draws): difference",
    gauss_bpd - total,
    at_least=1.0,
)
# Measured under seed shifts 0/1/2: 0.66 / 0.70 / 0.66 bits/dim.
check_outcome(
    "the network's bound is above log₂ 17, the code that knows only the 17 levels",
    total - math.log2(17),
    at_least=0.3,
)
# Measured under seed shifts 0/1/2: 0.51 / 0.51 / 0.51.
_ = check_outcome(
    "about half of L_0 is the fixed width: a perfect mean's cost / the model's L_0",
    perfect_L0 / L0,
    at_least=0.4,
    at_most=0.6,
)

# %%
terms = bpd["terms"].mean(0).numpy()
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].plot(np.arange(2, T + 1), terms[1:], lw=1)
axes[0].set(
    xscale="log",
    yscale="log",
    xlabel="step t",
    ylabel=r"$L_{t-1}$ (bits/dim)",
    title=f"VLB terms of {m.name} (64 test digits)",
)
axes[1].plot(np.arange(2, T + 1), np.cumsum(terms[1:]), lw=1.5)
axes[1].set(
    xscale="log",
    xlabel="step t",
    ylabel=r"$\sum_{s \leq t} L_{s-1}$ (bits/dim)",
    title="Cumulative KL terms",
)
for ax in axes:
    ax.grid(alpha=0.3, which="both")
fig.tight_layout()
plt.show()
kl_share_100 = terms[1:100].sum() / terms[1:].sum()
print(f"share of Σ KL in the first 100 steps: {kl_share_100:.0%}")
glue("ch6_kl_share_100", kl_share_100)
# Measured under seed shifts 0/1/2: 0.66 / 0.66 / 0.66.
check_outcome(
    "about two thirds of the bound lies in the KL terms: Σ KL / total",
    kl_sum / total,
    at_least=0.6,
    at_most=0.72,
)
# Measured under seed shifts 0/1/2: 0.88 / 0.88 / 0.88.
_ = check_outcome(
    "the KL terms sit mostly at the first steps: share of Σ KL in t ≤ 100",
    kl_share_100,
    at_least=0.75,
)

# %% [markdown]
# *Figure: left, the KL terms $L_{t-1}$ of the bound for the trained model, averaged over 64 test
# digits, against $t$ (log-log); right, their running sum.* The model codes these 64 held-out
# digits in {glue:text}`ch6_bpd_total:.2f` bits per dimension (± {glue:text}`ch6_bpd_se:.2f`).
# What should that be compared with? Not with the 8 bits of raw 8-bit storage: these digits use
# only 17 of the 256 grey levels, so a code that knows nothing but which 17 costs
# $\log_2 17 \approx 4.09$ bits per pixel, and an independent histogram of the levels for each
# pixel, fitted to the training digits, codes the same 64 digits in
# {glue:text}`ch6_bpd_hist:.2f` bits/dim. The DDPM's bound is above both. It is below the bound
# of the best *linear* denoiser with the same draws, the Gaussian of chapter 5
# ({glue:text}`ch6_bpd_gauss:.2f` bits/dim), so the network has learned more than the digits'
# mean and covariance; but as a likelihood model of 17-level images it is poor, and the printout
# says where the bits go:
#
# - **The decoder $L_0$, {glue:text}`ch6_bpd_L0:.2f` bits/dim.** The decoder's Gaussian has a
#   fixed $\sigma_1 = \sqrt{\tilde\beta_2} \approx 0.0074$, about the width $2/255 \approx 0.0078$
#   of a whole bin of the 256-level grid; even a mean exactly on $\mathbf{x}_0$ puts only about
#   40 % of the probability into the right bin of an interior pixel (1.3 bits) and 70 % into an
#   edge bin (0.5 bits). On these digits such a perfect mean would cost
#   {glue:text}`ch6_perfect_L0:.2f` bits/dim, {glue:text}`ch6_perfect_share:.0%` of the model's
#   $L_0$: that part is the price of the fixed width, and the rest is the error of the mean at
#   $t = 1$, where the network must find a noise of standard deviation 0.01 on an almost clean
#   image, the step that $L_{\text{simple}}$ weighs least.
# - **The KL terms, {glue:text}`ch6_bpd_kl:.2f` bits/dim**, sit mostly at the first steps
#   ({glue:text}`ch6_kl_share_100:.0%` of them at $t \leq 100$) and falling steeply with $t$: the
#   low-noise steps that $L_{\text{simple}}$ deliberately down-weights (chapter 5). The prior
#   $L_T$ is negligible.
#
# This is the trade-off {cite:t}`ho2020ddpm` reported: $L_{\text{simple}}$ buys sample quality at
# the expense of likelihood. Learned variances and the hybrid loss of {cite:t}`nichol2021improved`
# attack exactly these two terms. The estimate is an average over 64 digits with one draw of
# $\mathbf{x}_t$ per step; exercise 5 looks at its precision.

# %% [markdown]
# ## How good are the samples?
#
# Likelihood is one measure; for samples one compares them with real data through a classifier,
# since pixels alone say little about shape. The metrics of `diffusion_lib.metrics` use a small
# convolutional classifier trained on the digits (the zoo's `"digits-classifier"`, under a minute
# to train on first use) in the role that Inception-v3 plays for natural images {cite}`heusel2017gans`;
# chapter 9 derives and compares them. Each number is shown next to the values that sets of
# **real** digits reach, the best a generator could hope for:
#
# - the mean top-class probability (how confidently each image is read as *some* digit) and the
#   class histogram (whether all ten digits are generated, in the right proportions);
# - the Fréchet distance between Gaussians fitted to two sets {cite}`heusel2017gans`, on the raw
#   pixels and on the classifier's 64 penultimate-layer features (the digits' "FID"), for samples
#   against the test digits and, as the floor, for as many training digits against the test
#   digits (two sets of real digits differ too, and the estimate is biased upwards for small
#   sets);
# - precision (the fraction of samples that fall within the real data's manifold) and recall (the
#   fraction of real data covered by the samples' manifold) {cite}`kynkaanniemi2019improved`,
#   in the classifier's feature space.
#
# With a few hundred samples these numbers carry considerable sampling noise. The next cell
# measures it twice: on three disjoint sets of 160 of the 500 samples, and on eight disjoint sets
# of 160 real training digits, whose mean and standard deviation say how much equally good sets
# differ. A claim that the samples are worse (or better) than real digits is made only where
# the difference exceeds that spread. The benchmark in `benchmarks/` measures 1,000 samples and
# the README reports those figures.

# %%
classifier = zoo.load("digits-classifier").model
# Three disjoint sets of 160 of the 500 samples, so that the noise of sampling shows,
# and eight disjoint sets of 160 real training digits: how much equally good sets
# differ.
N_SET = 160
sample_sets = [samples[k * N_SET : (k + 1) * N_SET] for k in range(3)]
perm = torch.randperm(len(train_set.images), generator=torch.Generator().manual_seed(0))
chunks = [perm[k * N_SET : (k + 1) * N_SET] for k in range(len(perm) // N_SET)]
with torch.no_grad():
    f_test, f_train = (
        classifier.features(x) for x in (test_set.images, train_set.images)
    )
    f_sets = [classifier.features(x) for x in sample_sets]


def quality_of(images, feats):
    """The numbers of the table for one set of images, each against the test digits."""
    pr = metrics.precision_recall(f_test, feats)
    return {
        "Fréchet distance, pixels": metrics.fid_pixels(images, test_set.images),
        "Fréchet distance, features": metrics.frechet_distance(feats, f_test),
        "precision (features)": pr["precision"],
        "recall (features)": pr["recall"],
    }


scores = [metrics.classifier_scores(x, classifier) for x in sample_sets]
score_real = metrics.classifier_scores(test_set.images, classifier)
fake_q = [quality_of(x, f) for x, f in zip(sample_sets, f_sets)]
real_q = [quality_of(train_set.images[c], f_train[c]) for c in chunks]
check(
    "metrics.fid_features is the Fréchet distance of the classifier's features",
    metrics.fid_features(sample_sets[0], test_set.images, classifier),
    fake_q[0]["Fréchet distance, features"],
    atol=1e-6,
)
top_fake = np.array([s["mean_top_prob"] for s in scores])
print(f"{'':27} {f'samples, 3 sets of {N_SET}':>26} {'real digits':>16}")
print(
    f"{'mean top-class probability':27} {'  '.join(f'{v:6.3f}' for v in top_fake):>26} "
    f"{score_real['mean_top_prob']:>16.3f}"
)
for name in fake_q[0]:
    fake = "  ".join(f"{q[name]:6.3f}" for q in fake_q)
    real = np.array([q[name] for q in real_q])
    print(f"{name:27} {fake:>26} {real.mean():>9.3f} ± {real.std():.3f}")
print(
    f"(real digits: the {len(test_set.images)} test digits for the classifier score; "
    f"otherwise\n {len(chunks)} disjoint sets of {N_SET} training digits against the "
    "test digits, mean ± s.d.)"
)
floor_pix = np.array([q["Fréchet distance, pixels"] for q in real_q])
floor_feat = np.array([q["Fréchet distance, features"] for q in real_q])
whole_pix = metrics.fid_pixels(train_set.images, test_set.images)
whole_feat = metrics.frechet_distance(f_train, f_test)
print(
    f"whole training split against the test digits: pixels {whole_pix:.3f}, "
    f"features {whole_feat:.3f}"
)

# Copies of training digits would be closer to the training set than new digits are.
nn_sample = torch.cdist(samples.flatten(1), train_set.images.flatten(1)).min(1).values
nn_test = (
    torch.cdist(test_set.images.flatten(1), train_set.images.flatten(1)).min(1).values
)
print(
    f"distance to the nearest training digit (median): samples "
    f"{nn_sample.median():.2f}, test digits {nn_test.median():.2f}"
)
# Each set of samples against the real sets: how many of their standard deviations
# away from their mean (positive: larger than real sets give).
z = {
    name: (np.array([q[name] for q in fake_q]) - real.mean()) / real.std()
    for name, real in ((k, np.array([q[k] for q in real_q])) for k in fake_q[0])
}
print("in real sets' standard deviations from their mean, the three sets of samples:")
for name, values in z.items():
    print(f"  {name:27} " + "  ".join(f"{v:+6.2f}" for v in values))
confidence = top_fake.min() / score_real["mean_top_prob"]
glue("ch6_top_fake_min", top_fake.min())
glue("ch6_top_fake_max", top_fake.max())
glue("ch6_top_real", score_real["mean_top_prob"])
glue("ch6_floor_drop_feat", floor_feat.mean() / whole_feat)
glue("ch6_floor_drop_pix", floor_pix.mean() / whole_pix)
# The bounds: margins beyond what training seeds (shifts 0/1/2) gave; a collapsed or
# untrained model lies far outside each of them.
# Measured under seed shifts 0/1/2: 0.993 / 0.990 / 0.984.
check_outcome(
    "confidence: samples / test digits, lowest of the 3 sets", confidence, at_least=0.97
)
# Measured under seed shifts 0/1/2 (highest set): 1.08 / 1.01 / 0.98.
check_outcome(
    "FD features within the real sets' spread: highest set, in s.d.",
    z["Fréchet distance, features"].max(),
    at_most=2.0,
)
# Measured under seed shifts 0/1/2 (highest set): 1.23 / 1.15 / 1.02.
check_outcome(
    "FD pixels within the real sets' spread: highest set, in s.d.",
    z["Fréchet distance, pixels"].max(),
    at_most=2.0,
)
# Measured under shifts 0/1/2, lowest set: −3.11 / −1.93 / −4.45; highest: −0.89 /
# +0.13 / −0.65. (The real sets' s.d. is only about 0.02 in precision.)
check_outcome(
    "precision at or below the real sets': lowest set, in s.d. from their mean",
    z["precision (features)"].min(),
    at_least=-6.5,
)
check_outcome(
    "precision at or below the real sets': highest set, in s.d. from their mean",
    z["precision (features)"].max(),
    at_most=2.0,
)
# Measured under seed shifts 0/1/2 (lowest set): −1.15 / +0.26 / −0.95.
check_outcome(
    "recall within the real sets' spread: lowest set, in s.d.",
    z["recall (features)"].min(),
    at_least=-2.5,
)
# Measured under seed shifts 0/1/2: 1.021 / 1.021 / 1.023 (copies: near 0).
check_outcome(
    "not copies: median distance to the training set, samples / test digits",
    nn_sample.median() / nn_test.median(),
    at_least=0.85,
)
# Measured under seed shifts 0/1/2: 4.45 / 4.92 / 4.65.
check_outcome(
    "the feature floor falls with set size: 160 digits / whole training split",
    floor_feat.mean() / whole_feat,
    at_least=2.5,
)
_ = check(
    "the pixel floor (no trained model involved): 160 digits / whole split, about 2.7",
    floor_pix.mean() / whole_pix,
    2.7,
    atol=0.05,
)

# %%
fig, ax = plt.subplots(figsize=(7, 3.6))
width = 0.4
ax.bar(
    np.arange(10) - width / 2,
    scores[0]["class_histogram"],
    width,
    label=f"{N_SET} samples",
)
ax.bar(
    np.arange(10) + width / 2, score_real["class_histogram"], width, label="test digits"
)
ax.axhline(0.1, color="k", lw=0.8, ls=":", label="uniform")
ax.set(
    xticks=range(10),
    xlabel="predicted class",
    ylabel="fraction of images",
    ylim=(0, 0.19),
    title="Which digits does the model generate?",
)
ax.legend(loc="upper center", ncol=3)
fig.tight_layout()
plt.show()
hists = np.array([s["class_histogram"] for s in scores])  # (3 draws, 10 classes)
deviation = np.abs(hists - score_real["class_histogram"]).max(1)
tv = 0.5 * np.abs(hists - score_real["class_histogram"]).sum(1)
classes = (hists > 0).sum(1)
print(
    f"three sets of {N_SET} samples against the test digits: classes generated "
    + ", ".join(str(c) for c in classes)
    + ";\n  largest deviation of a class share "
    + ", ".join(f"{v:.3f}" for v in deviation)
    + ";\n  total variation "
    + ", ".join(f"{v:.3f}" for v in tv)
)
check(
    "the text's figure: the s.d. of a 10% share over 160 draws is 2.4 points",
    math.sqrt(0.1 * 0.9 / N_SET),
    0.024,
    atol=5e-4,
)
# Measured under seed shifts 0/1/2: 10 / 10 / 10 classes; 0.056 / 0.066 / 0.075
# for the largest deviation (a share's s.d. is 0.024 for 160 samples).
check_outcome(
    "every digit is generated: fewest classes over the 3 sets",
    classes.min(),
    at_least=10,
)
_ = check_outcome(
    "class shares: largest deviation from the test digits' over the 3 sets",
    deviation.max(),
    at_most=0.10,
)

# %% [markdown]
# *Figure: the fraction of samples (blue) and of test digits (orange) that the classifier assigns
# to each class; the dotted line is the uniform 10 %.*
#
# What the numbers say, honestly:
#
# - **All ten digits are generated** in each of the three sets, in proportions within a few
#   percentage points of the test set's (the largest deviations are printed); with 160 samples a
#   class holds about 16 images, so deviations of $\pm 5$ points are ordinary sampling noise (the
#   standard deviation of a 10 % share over 160 draws is 2.4 points).
# - **The classifier reads the samples almost as confidently as real digits**: mean top-class
#   probability from {glue:text}`ch6_top_fake_min:.3f` to {glue:text}`ch6_top_fake_max:.3f` over
#   the three sets, against {glue:text}`ch6_top_real:.3f` for the test digits.
# - **The Fréchet distances lie within the spread of real sets.** Both in the classifier's feature
#   space and on raw pixels, every set of samples is within two standard deviations of the real
#   sets' mean (the printout gives each in units of that spread). Equal distances do not make the
#   samples as good as real digits, only indistinguishable by these statistics at this sample
#   size: the Fréchet distance compares just means and covariances. Note also how strongly these
#   distances depend on the set sizes: with the whole training split instead of 160 digits, the
#   real-vs-real floor falls {glue:text}`ch6_floor_drop_feat:.1f`-fold in feature space and
#   {glue:text}`ch6_floor_drop_pix:.1f`-fold on pixels. Only distances computed with equal set
#   sizes are comparable.
# - **Recall lies within the spread of real sets; precision is at or below it**: in some sets a
#   few more samples than usual fall outside the manifold of real digits (the malformed ones),
#   while the samples cover the real digits as well as other real digits do.
# - **The grid shows what the averages hide: a few malformed samples.** A few percent of
#   failures barely move averages over 160 images, and these metrics see the digits through a
#   classifier trained on the same data set. The benchmark's 1,000 samples narrow the noise;
#   chapter 9 compares the metrics' sensitivities, and chapter 3's GAN on the same data.
#
# The nearest-neighbour distances printed above add one more check: the samples are about as far
# from their nearest training digit as new real digits are, so the model has not simply memorised
# its 1,437 training images.

# %% [markdown]
# ## The same on a ring: watching a distribution move
#
# Images are hard to look at as a *distribution*. In two dimensions we can see every sample at
# once. The zoo's `"ring-ddpm"` is the same DDPM (linear schedule, $T = 1000$, $L_{\text{simple}}$)
# with the U-Net replaced by a small MLP, `MLPDenoiser`, that adds the MLP of the sinusoidal
# embedding to its first hidden layer; it is trained on `data.ring()`, 8,000 points from a ring of
# eight Gaussians with radius 2 and standard deviation 0.05, the data of the GAN chapter.
#
# These points lie **outside** $[-1, 1]$, so we must sample with `clip_denoised=False`: clipping
# $\hat{\mathbf{x}}_0$ to the image range would pull every prediction into the square $[-1, 1]^2$.
# First the check promised above, Algorithm 2 as a loop by hand against `samplers.ddpm` with the
# same generator. We run both in float64: the reverse process amplifies tiny differences near the
# boundaries between modes, and float32 rounding in the two (algebraically equal) forms of the
# mean would grow to a few $10^{-4}$ over 1,000 steps.

# %%
r = zoo.load("ring-ddpm")
ring_data, centres = data.ring(), data.ring_modes()


def ddpm_by_hand(model, shape, generator, dtype=torch.float64):
    """Algorithm 2, lines 1–6, drawing the noise in the same order as samplers.ddpm."""
    x = torch.randn(shape, generator=generator, dtype=dtype)  # line 1
    for i in reversed(range(T)):  # line 2, t = i + 1
        z = torch.randn(shape, generator=generator, dtype=dtype)  # line 3
        x = sampling_step_by_hand(
            model, x, torch.full((shape[0],), i), z
        )  # line 4 (z = 0 at i = 0)
    return x  # line 6


ring64 = copy.deepcopy(
    r.model
).double()  # float64, so that 1,000 steps add no visible rounding
x_hand = ddpm_by_hand(ring64, (256, 2), torch.Generator().manual_seed(5))
x_lib = samplers.ddpm(
    ring64,
    r.diffusion,
    (256, 2),
    generator=torch.Generator().manual_seed(5),
    clip_denoised=False,
    progress=False,
    dtype=torch.float64,
)
_ = check(
    "Algorithm 2 by hand equals samplers.ddpm (256 ring points, 1,000 steps, float64)",
    x_hand,
    x_lib,
    atol=1e-9,
)

# %%
ring_samples, ring_traj = samplers.ddpm(
    r.model,
    r.diffusion,
    (2000, 2),
    generator=torch.Generator().manual_seed(0),
    clip_denoised=False,
    progress=False,
    return_trajectory=True,
)
ring_clipped = samplers.ddpm(  # clipped; 500 points suffice
    r.model,
    r.diffusion,
    (500, 2),
    generator=torch.Generator().manual_seed(0),
    clip_denoised=True,
    progress=False,
)
t_panels = [1000, 500, 300, 200, 100, 50, 20, 0]
fig, axes = plt.subplots(
    2, 5, figsize=(14, 6.4), sharex=True, sharey=True, layout="constrained"
)
for ax, t in zip(axes.flat, t_panels):
    pts = ring_traj[T - t].numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4)
    ax.set_title(f"t = {t}")
axes.flat[8].scatter(ring_clipped[:, 0], ring_clipped[:, 1], s=2, alpha=0.4, color="C3")
axes.flat[8].set_title("t = 0 with clip_denoised=True")
axes.flat[9].scatter(
    ring_data[:2000, 0], ring_data[:2000, 1], s=2, alpha=0.4, color="k"
)
axes.flat[9].set_title("training data")
for ax in axes.flat:
    ax.scatter(centres[:, 0], centres[:, 1], marker="+", color="r", s=60, lw=1)
    ax.set(xlim=(-3.2, 3.2), ylim=(-3.2, 3.2), aspect="equal")
for ax in axes[1]:
    ax.set_xlabel("$x_1$")
for ax in axes[:, 0]:
    ax.set_ylabel("$x_2$")
fig.suptitle(
    "The reverse process of ring-ddpm: 2,000 points from N(0, I) to the ring "
    "(+: the eight centres)"
)
plt.show()

# %% [markdown]
# *Figure: 2,000 samples of the reverse process at eight steps (first row and first three panels of
# the second), the final samples when $\hat{\mathbf{x}}_0$ is clipped to $[-1, 1]$ (red, 500 points),
# and the training data (black); red crosses mark the centres of the eight Gaussians.* At
# $t = 1000$ the
# points are a standard normal cloud. Until about $t = 300$ the cloud mostly widens, since the
# data's scale is 2 and the signal factor $\sqrt{\bar\alpha_t}$ grows as $t$ falls; around
# $t = 200$ a hole opens in the middle, by $t = 100$ the ring has split into eight clusters, and the
# last steps shrink each cluster to the width of the data. The coarse structure (the radius) is
# decided first and the fine structure (which mode) later, the same coarse-to-fine order as for
# the digits. With clipping, every prediction $\hat{\mathbf{x}}_0$ is pulled into the square
# $[-1, 1]^2$ and the samples end on its edges.

# %%
cov = metrics.mode_coverage(ring_samples, centres, std=0.05)
cov_clip = metrics.mode_coverage(ring_clipped, centres, std=0.05)
cov_data = metrics.mode_coverage(ring_data[:2000], centres, std=0.05)
hq, hq_data = cov["high_quality_fraction"], cov_data["high_quality_fraction"]
n_ring = len(ring_samples)
print(
    f"modes hit: {cov['modes_hit']} of 8; high-quality fraction "
    "(within 3σ of a centre): "
    f"{hq:.3f}\n  (training data {hq_data:.3f})"
)
print(f"samples per mode: {cov['per_mode_counts'].tolist()}  (2,000 / 8 = 250)")
print(
    f"with clip_denoised=True: {cov_clip['modes_hit']} modes hit, "
    f"high-quality fraction {cov_clip['high_quality_fraction']:.3f}"
)
# The gap to the data against the sampling noise of two fractions over 2,000 points.
gap_se = math.sqrt((hq * (1 - hq) + hq_data * (1 - hq_data)) / n_ring)
print(f"data − samples: {hq_data - hq:.3f} (standard error {gap_se:.3f})")
glue("ch6_ring_hq", hq)
glue("ch6_ring_hq_data", hq_data)
# Measured under seed shifts 0/1/2: 8 / 8 / 8.
check_outcome("ring-ddpm hits all 8 modes", cov["modes_hit"], at_least=8)
# Measured under seed shifts 0/1/2: 0.949 / 0.959 / 0.938.
check_outcome("ring-ddpm: fraction of samples within 3σ of a centre", hq, at_least=0.9)
# Measured under seed shifts 0/1/2: 0.91 / 0.93 / 0.93.
check_outcome(
    "ring-ddpm: fewest high-quality samples at a mode / an even share",
    cov["per_mode_counts"].min() / (cov["per_mode_counts"].sum() / 8),
    at_least=0.7,
)
# Measured under seed shifts 0/1/2: 7.1 / 5.8 / 8.4.
check_outcome(
    "ring-ddpm: (data − samples) high-quality fraction, in standard errors",
    (hq_data - hq) / gap_se,
    at_least=3.0,
)
# Clipping ends every sample in the square [-1, 1]², whose nearest points to the centres
# (radius 2) are 2 − √2 away from them: no sample can come within 3σ = 0.15 of a centre.
dist_clip = torch.cdist(ring_clipped.double(), centres.double()).min(1).values
print(
    f"clipped samples: nearest distance to a centre {dist_clip.min():.3f}\n"
    f"  (at least 2 − √2 = {2 - math.sqrt(2):.3f} anywhere in the square)"
)
_ = check_le(
    "with clip_denoised=True every sample lies in the square [-1, 1]²",
    ring_clipped.abs().max(),
    1.0,
    atol=1e-6,
)

# %% [markdown]
# All eight modes are hit, each by roughly its share of the 2,000 samples (the counts are printed
# above; exact balance would be 250 each), and {glue:text}`ch6_ring_hq:.1%` of the samples lie
# within three standard deviations of a centre, against {glue:text}`ch6_ring_hq_data:.1%` of the
# training data, a gap far beyond the sampling noise of 2,000 points (printed); the rest are
# stragglers on the circle between two modes. Chapter 3's GAN, trained on the same ring, is the comparison to keep
# in mind: a GAN can drop modes, while a diffusion model's loss penalises every region of the data
# at every noise level. How long the network is trained matters, though: exercise 6 shows the same
# model after half the training steps, when it has learned the circle but not yet the gaps between
# the modes.

# %% [markdown]
# ## On a GPU, and on MNIST
#
# Everything above runs on a CPU because the digits are $8 \times 8$. On a GPU (Colab's free tier is
# enough) the same code trains on **MNIST** ($28 \times 28$, 60,000 images). Two changes are needed.
#
# **Data.** The book downloads nothing. Fetch the four MNIST files yourself into a folder, for
# example with torchvision (`torchvision.datasets.MNIST("data", download=True)` writes them to
# `data/MNIST/raw`), or from any mirror of the original IDX files
# (`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`,
# `t10k-labels-idx1-ubyte.gz`); then `data.mnist(folder)` reads them, scaled to $[-1, 1]$ like the
# digits. Set `MNIST_DIR` to that folder.
#
# **Device.** Give `train` the device (`train(..., device=device)` moves the network and the
# data there) and let the sampler draw its noise there (`samplers.ddpm(..., device=device)` with a
# generator on that device). The library's diffusion buffers follow the inputs' device (a copy of
# each is kept there). `train`'s own generator stays on the CPU: it draws the minibatch indices,
# and `training_losses(generator=...)` draws $t$ and $\boldsymbol{\epsilon}$ where the generator
# is and moves them to the data, so the same seed gives the same draws on every device.
#
# The next cell does all this when a GPU and the files are present, and otherwise only says what it
# would do. Here it does nothing expensive.

# %%
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
MNIST_DIR = Path(os.environ.get("MNIST_DIR", "mnist"))
MNIST_STEPS = int(
    os.environ.get("MNIST_STEPS", "20000")
)  # tens of minutes on a Colab GPU
print(
    f"device: {device};  MNIST folder {str(MNIST_DIR)!r} "
    f"{'found' if MNIST_DIR.is_dir() else 'not found'}"
)
mnist_kwargs = dict(
    in_channels=1,
    image_size=28,
    base_channels=64,
    channel_mults=(1, 2, 2),
    num_res_blocks=2,
    attention_resolutions=(7,),
    dropout=0.1,
)
check(
    "the text's figure: the MNIST U-Net has about 6.5 million parameters",
    n_params(UNet(**mnist_kwargs)) / 1e6,
    6.5,
    atol=0.05,
)

if torch.cuda.is_available():
    # The digits model on the GPU: same weights, same sampler, 1,000 samples in seconds.
    gpu_model = UNet(**net_kwargs).to(device).eval()
    gpu_model.load_state_dict(model.state_dict())
    gpu_samples = samplers.ddpm(
        gpu_model,
        m.diffusion,
        (1000, 1, 8, 8),
        device=device,
        generator=torch.Generator(device=device).manual_seed(0),
        progress=False,
    )
    print(
        f"1,000 digits sampled on {torch.cuda.get_device_name()}, mean top-class "
        "probability "
        f"{metrics.classifier_scores(gpu_samples, classifier)['mean_top_prob']:.3f}"
    )

if MNIST_DIR.is_dir() and torch.cuda.is_available():
    mnist_train = data.mnist(MNIST_DIR, "train")  # (60000, 1, 28, 28) in [-1, 1]
    torch.manual_seed(shifted(0))  # initialisation and training seeds follow the shift
    mnist_net = UNet(**mnist_kwargs)

    def mnist_loss(model, batch, generator):
        return diff.training_losses(model, batch[0], generator=generator)["loss"].mean()

    mnist_run = train(
        mnist_net,
        mnist_loss,
        [mnist_train.images],
        TrainConfig(
            steps=MNIST_STEPS,
            batch_size=128,
            lr=2e-4,
            warmup_steps=500,
            ema_decay=0.9995,
            seed=shifted(0),
        ),
        device=device,
    )
    mnist_samples = samplers.ddpm(
        mnist_run.ema,
        diff,
        (64, 1, 28, 28),
        device=device,
        generator=torch.Generator(device=device).manual_seed(0),
    )
    viz.show_images(mnist_samples.cpu(), nrow=8, title="DDPM samples, MNIST")
    plt.show()
elif not MNIST_DIR.is_dir():
    print(
        "MNIST skipped: put the four IDX files in a folder and set MNIST_DIR to it\n"
        "  (nothing is downloaded here)"
    )
else:
    print(
        "MNIST skipped: no GPU here\n"
        "  (on a CPU, try data.mnist(folder, size=14) and a smaller UNet)"
    )

# %% [markdown]
# On MNIST the same recipe needs a bigger network (about 6.5 million parameters with the settings
# above), a smaller learning rate and tens of thousands of steps; {cite:t}`ho2020ddpm` trained their
# CIFAR-10 model (35.7 million parameters) for 800,000 steps. Nothing in the algorithm changes.

# %% [markdown]
# ```{admonition} Common mistakes
# :class: warning
#
# 1. **Feeding the timestep wrongly.** Concatenating a $(B, d)$ embedding to a $(B, 1, H, W)$ image,
#    or a broadcast $(B, d, H, W)$ map to a network whose first layer is `Conv2d(1, ...)`, fails with
#    the errors shown above; the embedding must either get its own $d$ input channels or, better,
#    be added inside every block, {eq}`train-resblock`. Two quieter variants train without an error
#    and still go wrong: feeding the raw integer $t$ (or $t/T$) as one number instead of an
#    embedding, and using the paper's $t \in \{1, \dots, T\}$ at training time but the index
#    $t - 1$ at sampling time (or the reverse), which shifts every step by one.
# 2. **Forgetting the EMA.** The raw weights of the last step are a noisy draw around a good
#    solution; keep an exponential moving average, {eq}`train-ema`, for sampling and evaluation.
# 3. **Sampling with the training network instead of the EMA network.** `train` returns both;
#    `TrainResult.model` is the one that was just updated, `TrainResult.ema` is the one to sample
#    with (the zoo's `m.model` is already the EMA network). Call `.eval()` as well, so that dropout
#    is off.
# 4. **Clipping data that do not live in $[-1, 1]$.** `clip_denoised=True` (the default of the
#    library's samplers, and of improved-diffusion) clamps $\hat{\mathbf{x}}_0$ to the image range.
#    For the ring, whose points reach radius 2, it destroys the samples (0 modes instead of 8
#    above). Clip only when the data are scaled to $[-1, 1]$.
# 5. **Adding noise at the last step.** Algorithm 2 sets $\mathbf{z} = \mathbf{0}$ at $t = 1$: the
#    final output is the mean $\boldsymbol{\mu}_\theta(\mathbf{x}_1, 1)$. Adding $\sigma_1\mathbf{z}$
#    there leaves noise on every sample (with the library's $\sigma_1 = \sqrt{\tilde\beta_2}$, about one
#    grey level of an 8-bit image, printed below; with $\sigma_1^2 = \beta_1$ or with fewer,
#    larger steps it is more) and worsens every metric a little.
# ```

# %%
print(
    f"σ_1 = √β̃_2 = {diff.posterior_variance[1].sqrt():.4f};  "
    f"one 8-bit grey level = 2/255 = {2 / 255:.4f}"
)
print(f"whole chapter: {time.perf_counter() - chapter_start:.0f} s")

# %% [markdown]
# ## Summary
#
# - The denoiser must be told $t$: for unit-variance data the noisy input has the same
#   distribution at every step while the best noise prediction, $\sqrt{1-\bar\alpha_t}\,x_t$, does
#   not, {eq}`train-eps-unit`; a $t$-blind predictor has about 27 % more loss,
#   {eq}`train-blind`, and far more at large $t$.
# - The sinusoidal embedding {eq}`train-time-embedding` codes $t$ by sin/cos pairs at geometric
#   frequencies; a shift in time is a rotation of each pair, {eq}`train-time-shift`, so inner
#   products depend only on time differences, {eq}`train-time-dot`. The library's
#   `timestep_embedding` is that formula.
# - The U-Net passes the embedding through an MLP and adds a projection of it inside every residual
#   block, {eq}`train-resblock`. Concatenating it to the image in front of a `Conv2d(1, ...)` fails;
#   giving it $d$ input channels works, adding it in every block is the standard design.
# - Training is Algorithm 1: draw $\mathbf{x}_0$, $t$, $\boldsymbol{\epsilon}$, regress
#   $\boldsymbol{\epsilon}$ from $\mathbf{x}_t$ (eq. {eq}`rev-l-simple`); sample with an EMA of the weights,
#   {eq}`train-ema`. The library's warm-up of the decay, $\min(\gamma, (1 + s)/(10 + s))$, is not an
#   average over all steps so far: its weights grow like the eighth power of the step and its mean
#   age is a tenth of the run, {eq}`train-ema-age`. Sampling is Algorithm 2, the ancestral step
#   {eq}`rev-ancestral-step` with no noise at the last step. Both were checked line by line
#   against the library.
# - The zoo model (0.7 million parameters, 1,800 steps, a few minutes on a CPU) codes held-out
#   digits in {glue:text}`ch6_bpd_total:.2f` bits/dim: better than the best linear denoiser, but
#   worse than the $\log_2 17 \approx 4.09$ bits/dim of a code that merely knows the 17 grey
#   levels of these digits. About two thirds of it lies in the KL terms of the first steps and a
#   third in the decoder, about half of which is the price of its fixed width. Its samples cover
#   all ten digits; their classifier confidence, Fréchet distances and recall are within the
#   range of sets of real digits, their precision at or below it, and a few samples are visibly
#   malformed.
# - On the ring, the reverse process visibly expands the noise cloud, splits it into the eight
#   modes and sharpens them; all eight modes are covered, and clipping $\hat{\mathbf{x}}_0$ to
#   $[-1, 1]$, harmless for images, destroys these samples.
#
# Sampling took 1,000 network calls per batch. Chapter 7 derives samplers that need only tens.

# %% [markdown]
# ## Exercises
#
# **1. The longest period of the embedding.** With `max_period` $= 10000$ and $d = 32$, how far does
# the slowest pair turn over $T = 1000$ steps? Now set `max_period` $= 10$. Using
# {eq}`train-time-dot`, compute the similarity $\mathbf{e}(t)^\top\mathbf{e}(t')/h$ as a function of the
# lag $t - t'$ for lags 1, 2, 5, 10, 50, 100 and 500, for both values, and explain why the network
# would find the second embedding harder to use.
#
# ````{dropdown} Solution
# The slowest frequency is $\omega_{h-1} = 10000^{-15/16} \approx 1.78 \times 10^{-4}$, so over 1,000
# steps it turns by $0.18$ radians: no wrap-around, and the slow pairs order the steps coarsely.
# With `max_period` $= 10$ the slowest frequency is $10^{-15/16} \approx 0.115$, a period of about 54
# steps, so every pair wraps around many times.
#
# ```python
# for period in (10_000.0, 10.0):
#     omega_ = period ** (-torch.arange(16, dtype=torch.float64) / 16)
#     lags = torch.tensor([1.0, 2, 5, 10, 50, 100, 500])
#     print(period, torch.cos(lags[:, None] * omega_).mean(1))       # eq. (train-time-dot) / h
# ```
#
# With 10,000 the similarity falls gradually (0.96, 0.86, 0.74, 0.63 for lags 1 to 10) and stays
# positive up to a lag of about 470; beyond it dips only a little below zero (to about $-0.19$,
# near a lag of 860). With 10 it falls to about zero by a lag of 5 and then oscillates around zero,
# between about $-0.5$ and $0.5$, without trend: steps 5 apart get codes as unrelated as steps
# 500 apart. The network then has no
# built-in notion that neighbouring steps call for nearly the same denoiser, nor a coordinate that
# orders early and late steps, and must learn the role of every step separately from the data.
# ````
#
# **2. How long does the EMA remember?** With the update {eq}`train-ema` and a constant $\gamma$,
# show that after $N$ steps $\theta_{\text{EMA}} = \gamma^N\theta_0 + \sum_{k=1}^{N}(1-\gamma)\gamma^{N-k}\theta_k$.
# For the zoo model ($\gamma = 0.999$, 1,800 steps), how much weight is left on the random
# initialisation $\theta_0$? The library's `train` uses $\gamma_s = \min(\gamma, (1 + s)/(10 + s))$
# at step $s$; compute the weight on $\theta_0$ with that rule.
#
# ````{dropdown} Solution
# Unroll the recursion: each update multiplies everything already in the average by $\gamma$ and
# adds $(1-\gamma)\theta_k$. With a constant $\gamma = 0.999$, $\gamma^{1800} \approx 0.165$: one sixth
# of the "average" would still be the random initial network, which is why a short run with a
# large constant decay samples badly. With the warm-up rule the first update has
# $\gamma_0 = 0.1$, and the weight left on $\theta_0$ is $\prod_s \gamma_s$:
#
# ```python
# g = [min(0.999, (1 + s) / (10 + s)) for s in range(1800)]
# print(math.prod(g))          # about 2e-24: the initialisation is forgotten at once
# ```
#
# This is $w_0 = 1/\binom{1809}{9}$, eq. {eq}`train-ema-weights` with $m = 0$ and $n = 1800$. The
# warm-up does *not* make the EMA an average over all steps so far: its weights grow like the
# eighth power of the step, and its mean age is a tenth of the steps taken, eq. {eq}`train-ema-age`
# (180 steps here, against 900 for an equally weighted average). Only after 8,990 updates, when
# $(1 + s)/(10 + s)$ reaches $\gamma = 0.999$, does it turn into the constant-decay average of
# eq. {eq}`train-ema`, whose mean age tends to $\gamma/(1 - \gamma) = 999$ steps.
# ````
#
# **3. Conditioning on the class.** Build `UNet(**net_kwargs, num_classes=10)`, write the loss of
# Algorithm 1 for labelled minibatches `(images, labels)`, and say where the label enters the
# network. (Training it is the job of chapter 11.)
#
# ````{dropdown} Solution
# ```python
# cond = UNet(**net_kwargs, num_classes=10)
#
# def cond_loss(model, batch, generator):
#     x0, y = batch
#     t = diff.sample_timesteps(x0.shape[0], generator=generator)
#     noise = torch.randn(x0.shape, generator=generator)
#     x_t = diff.q_sample(x0, t, noise)
#     return ((noise - model(x_t, t, y)) ** 2).mean()
#
# # train(cond, cond_loss, [train_set.images, train_set.labels], TrainConfig(steps=1800))
# ```
#
# `UNet.embed` adds a learned vector per class (an `nn.Embedding(10, 4d)`) to the output of the time
# MLP, so the label reaches every residual block through the same per-channel shift as $t$,
# {eq}`train-resblock`. Sampling passes the desired labels, `model(x_t, t, y)`, at every step.
# ````
#
# **4. The other variance.** Sample 160 digits from the zoo model with
# $\sigma_t^2 = \beta_t$ instead of $\tilde\beta_t$ (a `GaussianDiffusion` with
# `model_var_type="fixed_large"` and the same betas, used with the same network) and compare the
# classifier score and the feature Fréchet distance with the table above. Which way do you expect
# them to move, and why?
#
# ````{dropdown} Solution
# ```python
# diff_large = GaussianDiffusion(diff.betas, model_var_type="fixed_large")
# x_large = samplers.ddpm(model, diff_large, (160, 1, 8, 8), generator=torch.Generator().manual_seed(0),
#                         progress=False)
# print(metrics.classifier_scores(x_large, classifier)["mean_top_prob"],
#       metrics.fid_features(x_large, test_set.images, classifier))
# ```
#
# $\beta_t > \tilde\beta_t$, most of all at small $t$ (by a factor of about 2 there, chapter 5), so each
# step injects more noise, which the following steps must remove. {cite:t}`ho2020ddpm` report similar
# sample quality for the two choices; on the digits the differences are of the order of the
# sampling noise of 160 samples, so compare with a few seeds before concluding anything.
# ````
#
# **5. How precise is the bits/dim figure?** `bits_per_dim` uses one draw of $\mathbf{x}_t$ per step
# and per image. Run it twice on the same 64 digits with different generators; compare the change
# of the mean with the standard error printed above. Which source of randomness dominates the
# standard error: the digits or the draws?
#
# ````{dropdown} Solution
# ```python
# again = m.diffusion.bits_per_dim(model, x_bpd, generator=torch.Generator().manual_seed(1))
# print(bpd["total"].mean() - again["total"].mean(), (bpd["total"] - again["total"]).std() / 8)
# ```
#
# The per-image difference between two runs isolates the noise of the draws, while the spread of
# `bpd["total"]` across images also contains how much the digits differ from each other. The two
# means differ by about 0.05 bits/dim, and the per-image differences give a standard error of
# about 0.05 for that difference, so about 0.03 for one run: the draws contribute roughly a
# quarter of the variance behind the printed standard error of about 0.07, the choice of digits the
# rest. Quote such a figure with its uncertainty, for example "4.7 ± 0.1 bits/dim on 64 digits",
# not to three decimals.
# ````
#
# **6. Watching a model learn the ring.** Load the ring model trained for half as many steps,
# `zoo.load("ring-ddpm", steps=3000)` (it trains in about a minute and is cached under its own key),
# sample 2,000 points without clipping, and compare the scatter plot and `metrics.mode_coverage` with
# the figure above. What has the network learned first?
#
# ````{dropdown} Solution
# ```python
# half = zoo.load("ring-ddpm", steps=3000)
# pts = samplers.ddpm(half.model, half.diffusion, (2000, 2), generator=torch.Generator().manual_seed(0),
#                     clip_denoised=False, progress=False)
# print(metrics.mode_coverage(pts, centres, std=0.05))
# plt.scatter(pts[:, 0], pts[:, 1], s=2); plt.gca().set_aspect("equal"); plt.show()
# ```
#
# The samples lie on a thin circle of radius 2, spread around it: all eight modes are still "hit",
# but far fewer points are within $3\sigma$ of a centre than for the fully trained model (between a
# fifth and a half of them in the book's runs with three training seeds, against about 95 %). The
# network has learned the coarse structure (the radius), which already matters at high noise
# levels, before the fine structure (the gaps between modes), which only matters at low noise.
# Mode counts alone would have called this model perfect; the high-quality fraction does not.
# ````

# %% tags=["remove-cell"]
# The figures quoted in the solutions above, checked (this cell is hidden in the book).
sim = {}
for period in (10_000.0, 10.0):
    omega_ = period ** (-torch.arange(16, dtype=torch.float64) / 16)
    sim[period] = torch.cos(torch.arange(1000.0)[:, None] * omega_).mean(
        1
    )  # lags 0..999
check(
    "exercise 1: ω_15 = 1.78e-4 (0.18 rad over T); with max_period 10, ω_15 = 0.115",
    [10_000.0 ** (-15 / 16), T * 10_000.0 ** (-15 / 16), 10.0 ** (-15 / 16)],
    [1.78e-4, 0.18, 0.115],
    rtol=0.015,
)
check(
    "exercise 1: with max_period 10, a period of about 54 steps",
    2 * math.pi / 10.0 ** (-15 / 16),
    54,
    atol=0.5,
)
check(
    "exercise 1 (max_period 10⁴): similarities 0.96, 0.86, 0.74, 0.63 at lags 1–10",
    sim[10_000.0][[1, 2, 5, 10]],
    [0.96, 0.86, 0.74, 0.63],
    atol=0.005,
)
check(
    "exercise 1: positive up to a lag of about 470, lowest (−0.19) near lag 860",
    [int((sim[10_000.0] < 0).nonzero()[0]), sim[10_000.0].argmin()],
    [470, 860],
    atol=10,
)
check("exercise 1: the lowest similarity", sim[10_000.0].min(), -0.19, atol=0.005)
check(
    "exercise 1 (max_period 10): about zero at lag 5, then between about −0.5 and 0.5",
    [sim[10.0][5], sim[10.0][5:].min(), sim[10.0][5:].max()],
    [0.0, -0.5, 0.5],
    atol=0.025,
)
g_rule = [min(0.999, (1 + s) / (10 + s)) for s in range(1800)]
check(
    "exercise 2: 0.999^1800 ≈ 0.165, and the warm-up leaves 1/C(1809, 9) ≈ 1.8e-24",
    [0.999**1800, math.prod(g_rule) * 1e24, 1e24 / math.comb(1809, 9)],
    [0.165, 1.8, 1.8],
    atol=0.05,
)
check(
    "exercise 2: the cap 0.999 is reached at update (10γ − 1)/(1 − γ) = 8,990",
    [
        (10 * 0.999 - 1) / (1 - 0.999),
        min(s for s in range(20_000) if (1 + s) / (10 + s) >= 0.999),
    ],
    [8990, 8990],
    atol=1e-6,
)
_ = check(
    "exercise 4: β_t / β̃_t is about 2 at the smallest t (t = 2)",
    diff.betas[1] / diff.posterior_variance[1],
    2.0,
    atol=0.25,
)
