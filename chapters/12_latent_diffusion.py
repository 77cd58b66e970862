# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Chapter 12: A miniature Stable Diffusion
#
# Stable Diffusion {cite}`rombach2022ldm` is three small ideas put together. An **autoencoder**
# compresses each image into a latent that is many times smaller, and the diffusion model works
# there instead of on pixels. The denoiser reads the text through **cross-attention** to the
# token states of a frozen text encoder (CLIP's, chapter 10). And it is sampled with
# **classifier-free guidance** (chapter 11), which it learns by seeing empty captions now and
# then. This chapter builds each piece on the captioned scenes of chapter 10 and measures what
# it buys, on a model that trains on a laptop CPU in a few minutes.
#
# **What you will learn.**
#
# - The KL-regularised autoencoder as a VAE whose KL weight is tiny; what that weight does to
#   the latents (decoding samples of $\mathcal{N}(\mathbf{0}, \mathbf{I})$ gives garbage), and
#   how much better it reconstructs than PCA with as many numbers.
# - The **scale factor** (Stable Diffusion's 0.18215) derived as one over the standard
#   deviation of the latents, and what the noise schedule does to latents without it; why
#   latent models use a different schedule's last step.
# - Cross-attention derived step by step — queries from the image, keys and values from the
#   text — checked against the library, and its attention maps over the words of a prompt.
# - Text-to-image with classifier-free guidance: prompt following judged by a classifier of
#   the four attributes, for prompts seen in training and for held-out combinations.
# - What the latent space saves: FLOPs and wall time per image against a pixel-space model of
#   the same family.
#
# **What it assumes.** The ELBO and the Gaussian KL of chapter 2 ({eq}`prob-elbo-recon-kl`,
# {eq}`prob-kl-gauss-diag`), DDIM (chapter 7), CLIP's text encoder (chapter 10) and
# classifier-free guidance (chapter 11).

# %% [markdown]
# ## Setup
#
# The first cell installs the book's library when it is missing (on Colab). This chapter
# trains four zoo models on first use and caches them: `scenes-vae` (the autoencoder),
# `scenes-ldm` (the latent denoiser; it reads `scenes-clip`, chapter 10's CLIP), its
# pixel-space twin `scenes-pixel-dm`, and `scenes-judge`, a classifier of a scene's four
# attributes that judges whether an image follows its prompt.

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
import torch
from sklearn.decomposition import PCA
from torch.utils.flop_counter import FlopCounterMode

from diffusion_lib import check, check_outcome, data, guidance, metrics, zoo
from diffusion_lib.checks import glue
from diffusion_lib.families import latent_diffusion as ldm
from diffusion_lib.families.classifier import head_accuracy
from diffusion_lib.nets.unet import Context, CrossAttention
from diffusion_lib.vae import DiagonalGaussian, scale_factor, vae_loss
from diffusion_lib.viz import image_grid

torch.manual_seed(0)
chapter_start = time.perf_counter()
ATTRIBUTES = tuple(data.SCENE_ATTRIBUTES)  # digit, colour, position, size

# %%
# A few minutes each on 2 cores the first time; then read from the cache.
autoencoder = zoo.load("scenes-vae").model
clip_model = zoo.load("scenes-clip").model
judge_model = zoo.load("scenes-judge")
judge, heads = judge_model.model, judge_model.entry.spec.heads
latent_model = zoo.load("scenes-ldm")
pixel_model = zoo.load("scenes-pixel-dm")

# %% [markdown]
# (ldm-autoencoder-section)=
# ## The autoencoder
#
# Stable Diffusion's autoencoder turns a 512 × 512 × 3 image into a 64 × 64 × 4 latent: a
# downsampling factor $f = 8$, 48 times fewer numbers. Ours turns a 32 × 32 × 3 scene into a
# 4 × 8 × 8 latent ($f = 4$): 3,072 numbers become 256. The encoder outputs, for each image
# $\mathbf{x}$, a diagonal Gaussian $q_\phi(\mathbf{z} \mid \mathbf{x}) =
# \mathcal{N}(\boldsymbol{\mu}_\phi(\mathbf{x}), \operatorname{diag}\boldsymbol{\sigma}_\phi^2(\mathbf{x}))$;
# the decoder maps a latent back to an image $D_\theta(\mathbf{z})$.
#
# **Its loss is chapter 2's ELBO.** Take the prior $p(\mathbf{z}) = \mathcal{N}(\mathbf{0}, \mathbf{I})$
# and a Gaussian decoder $p_\theta(\mathbf{x} \mid \mathbf{z}) = \mathcal{N}(D_\theta(\mathbf{z}), s^2\mathbf{I})$
# over the $d = 3{,}072$ pixels. Its log-density is
# $-\lVert\mathbf{x} - D_\theta(\mathbf{z})\rVert^2/(2s^2) - \tfrac{d}{2}\log(2\pi s^2)$, so the
# ELBO {eq}`prob-elbo-recon-kl` becomes
#
# $$
# \operatorname{ELBO}(\mathbf{x}) = -\frac{1}{2s^2}\,\mathbb{E}_{q_\phi(\mathbf{z} \mid \mathbf{x})}
# \big\lVert\mathbf{x} - D_\theta(\mathbf{z})\big\rVert^2
# - D_{\mathrm{KL}}\big(q_\phi(\mathbf{z} \mid \mathbf{x}) \,\Vert\, \mathcal{N}(\mathbf{0}, \mathbf{I})\big)
# - \frac{d}{2}\log(2\pi s^2) .
# $$ (ldm-elbo)
#
# Multiplying the negative ELBO by the constant $2s^2$ and dropping the last term, which does
# not depend on the networks, leaves the loss the autoencoder minimises,
#
# $$
# \mathcal{L}(\mathbf{x}) = \mathbb{E}_{q_\phi(\mathbf{z} \mid \mathbf{x})}
# \big\lVert\mathbf{x} - D_\theta(\mathbf{z})\big\rVert^2
# + \beta\, D_{\mathrm{KL}}\big(q_\phi(\mathbf{z} \mid \mathbf{x}) \,\Vert\, \mathcal{N}(\mathbf{0}, \mathbf{I})\big),
# \qquad \beta = 2s^2 ,
# $$ (ldm-vae-loss)
#
# where the KL of a diagonal Gaussian to the standard normal is {eq}`prob-kl-gauss-diag` with
# $\boldsymbol{\mu}_2 = \mathbf{0}$, $\boldsymbol{\Sigma}_2 = \mathbf{I}$:
#
# $$
# D_{\mathrm{KL}} = \tfrac12 \textstyle\sum_j \big(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\big) .
# $$ (ldm-kl)
#
# The expectation is estimated with one reparameterised sample
# $\mathbf{z} = \boldsymbol{\mu} + \boldsymbol{\sigma} \odot \boldsymbol{\epsilon}$ (chapter 2).
# We check the library's loss against these formulas on a batch of scenes, and the closed-form
# KL against a Monte Carlo estimate of $\mathbb{E}_q[\log q - \log p]$:

# %%
vae_spec = zoo.entry("scenes-vae").spec
x = data.scenes(8, seed=31).images
posterior = autoencoder.encode(x)
z = posterior.sample(torch.Generator().manual_seed(0))
with torch.no_grad():
    loss = vae_loss(x, autoencoder.decode(z), posterior, vae_spec.kl_weight)
    mu, logvar = posterior.mean, posterior.logvar.clamp(-30, 20)
    kl_by_hand = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)
    rec_by_hand = (x - autoencoder.decode(z)).pow(2).flatten(1).sum(1).mean()
check(
    "the latent holds 256 numbers for the 3,072 of a scene, 12 times fewer",
    [
        math.prod(autoencoder.latent_shape),
        x[0].numel() / math.prod(autoencoder.latent_shape),
    ],
    [256, 12],
    atol=0,
)
check("eq. (ldm-kl): the library's KL", posterior.kl(), kl_by_hand, rtol=1e-6)
check(
    "eq. (ldm-vae-loss): squared error plus beta times the KL",
    loss.loss,
    rec_by_hand + vae_spec.kl_weight * kl_by_hand.mean(),
    rtol=1e-5,
)
# Monte Carlo on one image: E_q[log q(z|x) - log N(z; 0, I)] over 20,000 draws.
one = DiagonalGaussian(mu[:1].double(), logvar[:1].double())
eps = torch.randn(20_000, *mu.shape[1:], generator=torch.Generator().manual_seed(1))
zs = one.mean + one.std * eps.double()
log_q = torch.distributions.Normal(one.mean, one.std).log_prob(zs).flatten(1).sum(1)
log_p = torch.distributions.Normal(0.0, 1.0).log_prob(zs).flatten(1).sum(1)
mc = (log_q - log_p).mean()
se = (log_q - log_p).std() / math.sqrt(len(zs))
check(
    "eq. (ldm-kl) against Monte Carlo (4 standard errors)",
    mc,
    one.kl()[0],
    atol=4 * se.item(),
)
print(f"KL of one image: {one.kl()[0]:.1f} nats; Monte Carlo {mc:.1f} ± {se:.1f}")

# %% [markdown]
# **The KL weight is tiny.** `scenes-vae` uses $\beta = 10^{-6}$, the order Rombach et al.
# use. By {eq}`ldm-vae-loss` that is a decoder that claims a pixel noise of
# $s = \sqrt{\beta/2} \approx 7 \times 10^{-4}$ (pixels span $[-1, 1]$): a model so sure of its
# reconstructions that the KL costs almost nothing beside them. The autoencoder is a
# compressor with a little regularisation, not a generative model. It shows in the latents:
# each posterior is nearly a point, small beside the spread of the means across images, and
# the means do not fill $\mathcal{N}(\mathbf{0}, \mathbf{I})$:

# %%
fit = data.scenes(4000, seed=32).images
with torch.no_grad():
    q_fit = autoencoder.encode(fit)
check(
    "the KL weight 1e-6 is a decoder noise s = sqrt(beta / 2) of about 7e-4",
    [vae_spec.kl_weight, math.sqrt(vae_spec.kl_weight / 2)],
    [1e-6, 7.07e-4],
    rtol=1e-3,
)
posterior_std = q_fit.std.mean().item()
spread = q_fit.mean.std().item()
glue("ch12_posterior_std", posterior_std)
glue("ch12_mean_spread", spread)
glue("ch12_std_ratio", spread / posterior_std)
print(f"mean posterior std {posterior_std:.4f}; std of the means {spread:.3f}")
check_outcome(
    "the posterior std is small beside the means' spread",
    spread / posterior_std,
    at_least=10,
)

# %% [markdown]
# The posterior's standard deviation averages {glue:text}`ch12_posterior_std:.4f`, while the
# means spread with a standard deviation of {glue:text}`ch12_mean_spread:.2f` —
# {glue:text}`ch12_std_ratio:.0f` times more. Decoding latents drawn from the prior
# $\mathcal{N}(\mathbf{0}, \mathbf{I})$, as a VAE would sample, gives no scenes: the prior is
# not where the encoder puts images. A classifier is no judge of that (it reads some digit into
# anything, and confidently), so we measure how far each decoded image lies from the nearest of
# the 4,000 training scenes, beside the same distance for reconstructions of 64 held-out
# scenes (64 prior samples; the figure shows 16 of each):

# %%
prior_draws = torch.randn(
    64, *autoencoder.latent_shape, generator=torch.Generator().manual_seed(2)
)
unseen = data.scenes(64, seed=36, split="heldout").images
with torch.no_grad():
    from_prior = autoencoder.decode(prior_draws / spread).clamp(-1, 1)
    reconstructed = autoencoder.decode(autoencoder.encode(unseen).mean).clamp(-1, 1)


def nearest_distance(images: torch.Tensor) -> float:
    """Mean distance from each image to its nearest training scene (in ``fit``)."""
    return torch.cdist(images.flatten(1), fit.flatten(1)).min(1).values.mean().item()


distance_prior = nearest_distance(from_prior)
distance_real = nearest_distance(reconstructed)
glue("ch12_nn_prior", distance_prior)
glue("ch12_nn_real", distance_real)
fig, axes = plt.subplots(1, 2, figsize=(9, 2.6))
for ax, images, title in (
    (axes[0], reconstructed, "reconstructions of held-out scenes"),
    (axes[1], from_prior, "decoded prior samples"),
):
    ax.imshow(image_grid(images[:16], nrow=8))
    ax.set_title(title)
    ax.axis("off")
fig.suptitle(
    "The decoder of scenes-vae: latents of images (left) and of N(0, I) (right)"
)
plt.show()
print(
    f"distance to the nearest training scene: reconstructions {distance_real:.1f}, "
    f"prior samples {distance_prior:.1f}"
)
check_outcome(
    "decoded prior samples lie farther from every scene, ratio",
    distance_prior / distance_real,
    at_least=1.1,
)

# %% [markdown]
# The prior samples were divided by the means' spread first, so that they have the scale of
# real latents; even so they are coloured scribbles, on average
# {glue:text}`ch12_nn_prior:.1f` from the nearest training scene against
# {glue:text}`ch12_nn_real:.1f` for reconstructions of scenes the autoencoder never saw
# (Euclidean distance over the 3,072 pixel values). This is why latent
# diffusion needs a second generative model: the diffusion model learns the distribution of
# the latents, which the autoencoder's prior does not describe.
#
# **Against PCA.** With the same 256 numbers per image, the best *linear* code is PCA. We fit
# it on 4,000 training scenes and compare reconstructions of held-out scenes (attribute
# combinations and handwriting the autoencoder never saw) by PSNR,
# $10\log_{10}(2^2/\mathrm{MSE})$ for images in $[-1, 1]$ (`metrics.psnr`), and by the
# attributes the judge still reads off them:

# %%
test = data.scenes(2000, seed=33, split="heldout")
pca = PCA(n_components=256, random_state=0).fit(fit.flatten(1).numpy())
with torch.no_grad():
    vae_rec = autoencoder.decode(autoencoder.encode(test.images).mean).clamp(-1, 1)
codes = pca.transform(test.images.flatten(1).numpy())
pca_rec = torch.from_numpy(pca.inverse_transform(codes)).float()
pca_rec = pca_rec.reshape(test.images.shape).clamp(-1, 1)
psnr_vae = metrics.psnr(test.images, vae_rec).mean().item()
psnr_pca = metrics.psnr(test.images, pca_rec).mean().item()
glue("ch12_psnr_vae", psnr_vae)
glue("ch12_psnr_pca", psnr_pca)


def attribute_accuracy(images: torch.Tensor, truth: dict) -> dict:
    """The share of images whose judged attribute is ``truth``'s, per attribute."""
    shares = head_accuracy(judge, images, heads, truth)
    return {a: shares[a] for a in ATTRIBUTES}


acc_real = attribute_accuracy(test.images, test.attributes)
acc_vae = attribute_accuracy(vae_rec, test.attributes)
acc_pca = attribute_accuracy(pca_rec, test.attributes)
print(f"PSNR: VAE {psnr_vae:.2f} dB, PCA {psnr_pca:.2f} dB")
print(f"{'judge accuracy':<16}" + "".join(f"{a:>10}" for a in ATTRIBUTES))
for name, acc in (("originals", acc_real), ("VAE", acc_vae), ("PCA", acc_pca)):
    print(f"{name:<16}" + "".join(f"{acc[a]:>10.3f}" for a in ATTRIBUTES))
glue("ch12_digit_real", acc_real["digit"])
glue("ch12_digit_vae", acc_vae["digit"])
glue("ch12_digit_pca", acc_pca["digit"])
check_outcome(
    "the VAE's PSNR gain over PCA, dB (target >= 2)", psnr_vae - psnr_pca, at_least=4.0
)
check_outcome(
    "the judge's digit accuracy lost on VAE reconstructions (target <= 0.02)",
    acc_real["digit"] - acc_vae["digit"],
    at_most=0.04,
)
fig, ax = plt.subplots(figsize=(9, 3.6))
rows = torch.cat([test.images[:10], vae_rec[:10], pca_rec[:10]])
ax.imshow(image_grid(rows, nrow=10))
ax.set_yticks([17, 50, 83], ["original", "VAE", "PCA"])
ax.set_xticks([])
ax.set_title("Held-out scenes and their reconstructions from 256 numbers")
plt.show()

# %% [markdown]
# The autoencoder reconstructs held-out scenes at {glue:text}`ch12_psnr_vae:.1f` dB against
# PCA's {glue:text}`ch12_psnr_pca:.1f` dB, and the judge reads the digit of
# {glue:text}`ch12_digit_vae:.1%` of its reconstructions (of the originals:
# {glue:text}`ch12_digit_real:.1%`; of PCA's: {glue:text}`ch12_digit_pca:.1%`). The
# nonlinear code keeps the thin strokes that a linear one blurs.
#
# (ldm-scale-section)=
# ## The scale factor
#
# The diffusion model of chapter 4 was designed for data of unit variance: its forward process
# $\mathbf{z}_t = \sqrt{\bar\alpha_t}\,\mathbf{z}_0 + \sqrt{1 - \bar\alpha_t}\,\boldsymbol{\epsilon}$
# keeps the variance at 1 and ends at $\mathcal{N}(\mathbf{0}, \mathbf{I})$ only if
# $\operatorname{Var}(\mathbf{z}_0) = 1$. The latents of an autoencoder have whatever spread
# training gave them. Latent diffusion therefore multiplies them by a constant $c$ before
# diffusion and divides by it before decoding. With $\tilde{\mathbf{z}} = c\,\mathbf{z}$,
#
# $$
# \operatorname{Var}(\tilde{\mathbf{z}}) = c^2 \operatorname{Var}(\mathbf{z}) = 1
# \quad\Longleftrightarrow\quad
# c = \frac{1}{\operatorname{std}(\mathbf{z})} ,
# $$ (ldm-scale)
#
# the standard deviation taken over every number of a batch of latents. Stable Diffusion's
# 0.18215 is this $c$ for its autoencoder, whose latents have a standard deviation of
# $1/0.18215 \approx 5.49$. `scenes-ldm` computes $c$ from the latents it trains on and keeps
# it in its record. We check that it gives unit variance on held-out scenes:

# %%
c = latent_model.record["scale_factor"]
with torch.no_grad():
    held_latents = ldm.encode_images(autoencoder, test.images)
scaled_std = (held_latents * c).std().item()
glue("ch12_scale", c)
glue("ch12_scaled_std", scaled_std)
check(
    "eq. (ldm-scale) on the latents of the fitting scenes",
    scale_factor(q_fit.mean),
    1 / q_fit.mean.std().item(),
    rtol=1e-5,
)
print(f"scale factor c = {c:.4f}; held-out latents times c: std {scaled_std:.3f}")
check_outcome(
    "held-out latents times c have unit std (1 ± 0.05), low", scaled_std, at_least=0.95
)
check_outcome("... high", scaled_std, at_most=1.05)

# %% [markdown]
# Our autoencoder's latents happen to have a spread near 1 already, so $c =$
# {glue:text}`ch12_scale:.3f`; Stable Diffusion's needed $c \approx 0.18$. What goes wrong
# without it is easiest to see through the signal-to-noise ratio of chapter 4. Latents of
# standard deviation $\sigma$ give $\mathbf{z}_t$ the ratio
#
# $$
# \operatorname{SNR}_\sigma(t) = \frac{\bar\alpha_t\,\sigma^2}{1 - \bar\alpha_t}
# = \sigma^2 \operatorname{SNR}_1(t) ,
# $$ (ldm-snr)
#
# so unscaled latents with $\sigma = 5.49$ are $5.49^2 \approx 30$ times less noisy at every
# step than the schedule intends. The step at which noise and signal are equal moves late,
# and the steps before it, a large share of training and of sampling, see images that are
# hardly noisy at all. The figure decodes $\mathbf{z}_t$ of one scene for both spreads:

# %%
schedule = latent_model.diffusion
abar = schedule.alphas_cumprod.double()
snr_1 = abar / (1 - abar)
sd_std = 1 / 0.18215  # the spread of Stable Diffusion's unscaled latents
t_equal = {s: int((s**2 * snr_1 >= 1).sum()) for s in (1.0, sd_std)}
glue("ch12_t_equal_1", t_equal[1.0])
glue("ch12_t_equal_sd", t_equal[sd_std])
check(
    "eq. (ldm-snr) at t = 300, sigma = 5.49",
    sd_std**2 * snr_1[300],
    abar[300] * sd_std**2 / (1 - abar[300]),
    rtol=1e-12,
)
z0 = held_latents[:1] * c  # unit variance
steps = [0, 200, 400, 600, 800]
noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(4))
fig, axes = plt.subplots(2, len(steps), figsize=(9, 4))
for row, sigma in enumerate((1.0, sd_std)):
    for col, t in enumerate(steps):
        a = abar[t].item()
        z_t = math.sqrt(a) * sigma * z0 + math.sqrt(1 - a) * noise
        with torch.no_grad():
            shown = autoencoder.decode(z_t / (sigma * c)).clamp(-1, 1)
        axes[row, col].imshow(((shown[0].permute(1, 2, 0) + 1) / 2).numpy())
        axes[row, col].set_xticks([])
        axes[row, col].set_yticks([])
        if row == 0:
            axes[row, col].set_title(f"t = {t}")
    axes[row, 0].set_ylabel(f"std {sigma:.2f}")
fig.suptitle("z_t decoded: latents of unit spread (top) and of spread 5.49 (bottom)")
plt.show()
print(f"SNR = 1 at t = {t_equal[1.0]} (std 1) and t = {t_equal[sd_std]} (std 5.49)")

# %% [markdown]
# With unit-variance latents the signal and the noise are equal at step
# {glue:text}`ch12_t_equal_1`; with a spread of 5.49 only at step
# {glue:text}`ch12_t_equal_sd`, and at $t = 600$ the scene is still there. A denoiser trained
# on such latents spends most of its steps on an easy task; at sampling time it starts from
# $\mathcal{N}(\mathbf{0}, \mathbf{I})$, far smaller than its data, and its few noisy steps must
# do all the work. One division fixes it.
#
# (ldm-schedule-section)=
# ### The schedule's last step
#
# One more setting changes between pixels and latents: the noise schedule. Rombach et al.
# train their latent models with $\beta_t$ linear in $\sqrt{\beta_t}$ from 0.00085 to 0.012
# (`schedule="ldm"` in the library), not chapter 4's linear schedule from $10^{-4}$ to 0.02.
# The difference that matters is at the end. A sampler's estimate of the clean latent is
# chapter 5's
#
# $$
# \hat{\mathbf{z}}_0 = \frac{\mathbf{z}_t - \sqrt{1 - \bar\alpha_t}\,
# \hat{\boldsymbol{\epsilon}}}{\sqrt{\bar\alpha_t}}
# \quad\Longrightarrow\quad
# \delta\hat{\mathbf{z}}_0 = -\frac{\sqrt{1 - \bar\alpha_t}}{\sqrt{\bar\alpha_t}}\,
# \delta\hat{\boldsymbol{\epsilon}} ,
# $$ (ldm-x0-error)
#
# so an error $\delta\hat{\boldsymbol{\epsilon}}$ of the network reaches the estimate
# multiplied by $\sqrt{(1 - \bar\alpha_t)/\bar\alpha_t} = 1/\sqrt{\operatorname{SNR}(t)}$.
# In pixel space, chapters 6 and 7 clip $\hat{\mathbf{x}}_0$ to $[-1, 1]$ at every step, and a
# wild estimate at $t = T$ does no harm. Latents have no such box. The two schedules' factors
# at the first sampling step:

# %%
from diffusion_lib.schedules import alphas_cumprod_from_betas, get_beta_schedule

last_abar = {
    name: alphas_cumprod_from_betas(get_beta_schedule(name, 1000))[-1].item()
    for name in ("linear", "ldm")
}
amplify = {name: math.sqrt((1 - a) / a) for name, a in last_abar.items()}
check(
    "the ldm schedule's first and last beta",
    get_beta_schedule("ldm", 1000)[[0, -1]],
    torch.tensor([0.00085, 0.012], dtype=torch.float64),
    rtol=1e-12,
)
glue("ch12_amplify_linear", amplify["linear"])
glue("ch12_amplify_ldm", amplify["ldm"])
glue("ch12_sqrt_abar_T", math.sqrt(last_abar["ldm"]))
check(
    "eq. (ldm-x0-error): the factor is 1 / sqrt(SNR(T)) of the ldm schedule",
    amplify["ldm"],
    1 / math.sqrt(last_abar["ldm"] / (1 - last_abar["ldm"])),
    rtol=1e-12,
)
check(
    "scenes-ldm is trained with this schedule",
    schedule.alphas_cumprod[-1:].double(),
    torch.tensor([last_abar["ldm"]], dtype=torch.float64),
    rtol=1e-12,
)
for name in last_abar:
    print(
        f"{name:>7}: alpha_bar_T = {last_abar[name]:.2e}, "
        f"an error in eps reaches z0_hat x{amplify[name]:.1f}"
    )

# %% [markdown]
# The linear schedule multiplies the network's error at $t = T$ by
# {glue:text}`ch12_amplify_linear:.0f`, the latent one by
# {glue:text}`ch12_amplify_ldm:.1f`. While building this chapter, a `scenes-ldm` trained with
# the linear schedule sampled well with ancestral (stochastic) steps, whose fresh noise pulls a
# stray trajectory back, but deterministic DDIM and DPM-Solver++ sent many of its latents off to
# several times their spread, at any number of steps, and these decode to coloured noise.
# With the latent schedule none does; we count them below ({ref}`ldm-guidance-section`). The
# price is a last step that is not pure noise: $\sqrt{\bar\alpha_T} =$
# {glue:text}`ch12_sqrt_abar_T:.3f` of the latent
# is left, which the sampler's start $\mathcal{N}(\mathbf{0}, \mathbf{I})$ ignores — the flaw
# Lin et al. {cite}`lin2024common` measure in Stable Diffusion.
#
# (ldm-cross-attention-section)=
# ## Cross-attention: how the text gets in
#
# The denoiser is chapter 6's U-Net on $4 \times 8 \times 8$ latents, with one more kind of
# block after every self-attention: **cross-attention** to the caption. The caption is
# encoded once by the frozen text encoder of `scenes-clip` into its last hidden states, one
# vector $\mathbf{c}_j \in \mathbb{R}^{D}$ per token ($D = 64$), padding included; a mask
# $m_j$ says which tokens are real. At a feature map $\mathbf{h}$ with $C$ channels on $H
# \times W$ pixels, one head of width $d$ computes
#
# $$
# \begin{aligned}
# \mathbf{q}_i &= W_Q\, \operatorname{GroupNorm}(\mathbf{h})_i \in \mathbb{R}^{d}
# && \text{one query per pixel } i = 1, \dots, HW \\
# \mathbf{k}_j &= W_K\, \mathbf{c}_j, \quad \mathbf{v}_j = W_V\, \mathbf{c}_j \in \mathbb{R}^{d}
# && \text{one key and value per token } j = 1, \dots, L \\
# a_{ij} &= \frac{m_j \exp(\mathbf{q}_i^\top \mathbf{k}_j / \sqrt{d})}
# {\sum_{l} m_l \exp(\mathbf{q}_i^\top \mathbf{k}_l / \sqrt{d})}
# && \text{pixel } i\text{'s weights over the real tokens} \\
# \mathbf{h}'_i &= \mathbf{h}_i + W_O \textstyle\sum_j a_{ij}\, \mathbf{v}_j
# && \text{a residual update, } W_O \text{ zero at initialisation.}
# \end{aligned}
# $$ (ldm-cross-attention)
#
# Queries come from the image and keys and values from the text: each pixel asks which words
# concern it and takes a mixture of their values. This is eq. (3) of Rombach et al.
# {cite}`rombach2022ldm`, the attention of Vaswani et al. {cite}`vaswani2017attention`
# with its two inputs taken from two modalities. Multiple heads split the channels into groups
# of $d = C/\text{heads}$ and concatenate their outputs before $W_O$. The weights $a_{ij}$ form a
# matrix of $HW \times L$ per head — linear in the number of pixels, where self-attention's is
# quadratic. We compute {eq}`ldm-cross-attention` by hand at the trained model's first
# cross-attention layer, for two prompts of different lengths (so the mask matters), and check
# the library against it:

# %%
net = latent_model.model.eval()
crosses = [m for m in net.modules() if isinstance(m, CrossAttention)]
layer = crosses[0]
prompts_pair = ["a large red 7 in the bottom right", "a blue 2 left of a green 5"]
table = ldm.text_context(clip_model, clip_model.tokenizer.encode(prompts_pair))
h = torch.randn(
    2, layer.to_q.in_channels, 8, 8, generator=torch.Generator().manual_seed(5)
)
heads_n = layer.num_heads
C = h.shape[1]
d = C // heads_n
with torch.no_grad():
    q = layer.to_q(layer.norm(h)).flatten(2).transpose(1, 2)  # (B, HW, C)
    k, v = layer.to_kv(table.states).split(C, dim=-1)  # (B, L, C) each
    mixed = []
    for head in range(heads_n):
        part = slice(head * d, (head + 1) * d)
        scores = q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(d)
        scores = scores.masked_fill(~table.mask[:, None, :], float("-inf"))
        mixed.append(scores.softmax(-1) @ v[..., part])
    by_hand = h + layer.proj(torch.cat(mixed, -1).transpose(1, 2).reshape(h.shape))
    weights = layer.weights(h, table)
    library = layer(h, table)
check("eq. (ldm-cross-attention): the library's layer", library, by_hand, atol=1e-5)
check(
    "each pixel's weights over the tokens sum to 1",
    weights.sum(-1),
    torch.ones(weights.shape[:-1]),
    atol=1e-6,
)
check(
    "padding tokens get weight 0",
    weights.masked_select(~table.mask[:, None, None, :]),
    torch.zeros(1),
    atol=0,
)
check(
    "the text's width D and where scenes-ldm attends (4 x 4)",
    [layer.context_dim, *latent_model.entry.spec.network["attention_resolutions"]],
    [64, 4],
    atol=0,
)
print(f"{len(crosses)} cross-attention layers in scenes-ldm")
print(f"weights here: {tuple(weights.shape)} (batch, heads, pixels, tokens)")

# %% [markdown]
# **The whole caption, once per block.** Cross-attention gives each pixel its own mixture of
# words. `scenes-ldm` also adds one summary of the caption to the timestep embedding that every
# residual block receives, as Imagen {cite}`saharia2022imagen` does with its pooled text
# embedding: the state at the caption's `<eos>` token, which is what CLIP projects to the
# caption's embedding (chapter 10), through one linear map $W_P$ that starts at zero,
#
# $$
# \mathbf{e}(t, \mathbf{c}) = \operatorname{MLP}(\operatorname{sinusoidal}(t))
# + W_P\, \mathbf{c}_{\text{eos}} + \mathbf{b}_P .
# $$ (ldm-pooled)
#
# We check that the library pools at `<eos>` (its projection is the caption's CLIP
# embedding) and that the trained network's embedding is {eq}`ldm-pooled`:

# %%
from diffusion_lib.nets.embeddings import timestep_embedding
from diffusion_lib.nets.unet import pool_context

eos_tokens = clip_model.tokenizer.encode(prompts_pair)
with torch.no_grad():
    projected = clip_model.text_encoder.projection(pool_context(table))
    t_pair = torch.tensor([300, 300])
    embedding = net.time_mlp(timestep_embedding(t_pair, net.base_channels))
    embedding = embedding + net.context_emb(pool_context(table))
    inside = []
    hook = net.down[0][0].emb.register_forward_hook(
        lambda m, args, out: inside.append(args[0])
    )
    net(torch.zeros(2, 4, 8, 8), t_pair, context=table)
    hook.remove()
check(
    "the pooled state, projected, is CLIP's text embedding",
    projected,
    clip_model.text_encoder(eos_tokens),
    atol=1e-5,
)
check(
    "eq. (ldm-pooled): the embedding the first residual block receives",
    inside[0],
    torch.nn.functional.silu(embedding),
    atol=1e-5,
)

# %% [markdown]
# **Where the words look.** Take a training scene, noise its latent to step
# $t = 300$, and record the weights of the cross-attention layers while the denoiser reads its
# caption. `scenes-ldm` has them at $4 \times 4$ only, where each cell covers an $8 \times 8$
# square of pixels; the maps show, for each token, the share of every cell's attention it
# receives (averaged over heads and over the layers):

# %%
found = data.scenes(1, seed=34)
index, caption = 0, found.captions[0]
z_scene = ldm.encode_images(autoencoder, found.images[index : index + 1]) * c
t_map = torch.tensor([300])
noise_map = torch.randn(z_scene.shape, generator=torch.Generator().manual_seed(6))
z_noisy = schedule.q_sample(z_scene, t_map, noise=noise_map)
one_table = ldm.text_context(clip_model, clip_model.tokenizer.encode([caption]))
captured = []
hooks = [
    m.register_forward_hook(lambda mod, args, out: captured.append(mod.weights(*args)))
    for m in crosses
]
with torch.no_grad():
    net(z_noisy, t_map, context=one_table)
for hook in hooks:
    hook.remove()
side = int(
    math.sqrt(captured[0].shape[2])
)  # the cells per side of the attention layers
assert all(w.shape[2] == side**2 for w in captured), "one attention resolution"
maps = torch.stack([w.mean(1)[0] for w in captured]).mean(0)  # (cells, L tokens)
words = clip_model.tokenizer.vocabulary
ids = clip_model.tokenizer.encode([caption])[0].tolist()
tokens = [words[i] for i in ids if i != clip_model.tokenizer.pad_id]
fig, axes = plt.subplots(1, len(tokens) + 1, figsize=(12, 1.9))
axes[0].imshow(((found.images[index].permute(1, 2, 0) + 1) / 2).numpy())
axes[0].set_title("scene")
for ax, j, token in zip(axes[1:], range(len(tokens)), tokens):
    ax.imshow(
        maps[:, j].reshape(side, side).numpy(),
        cmap="magma",
        vmin=0,
        vmax=maps.max().item(),
    )
    ax.set_title(token)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(
    f"Cross-attention at {side} × {side}, t = 300: each token's share per cell"
)
plt.show()

# %% [markdown]
# (ldm-guidance-section)=
# ## Text to image, with classifier-free guidance
#
# `scenes-ldm` was trained on 20,000 one-object training scenes with $L_{\text{simple}}$ on the
# scaled latents, its caption replaced by the empty caption `<bos> <eos>` with probability
# 0.1 — chapter 11's conditioning dropout, with the empty caption as the null label, as in
# Stable Diffusion. Sampling then follows chapter 11's guided prediction
# {eq}`guid-cfg` with the caption's states as the condition and the empty caption's as the
# unconditional one. The library numbers the prompts and puts the empty one last, so that
# `guidance.classifier_free` treats prompts as labels; we check the guided prediction against
# the combination by hand:

# %%
ldm_entry = latent_model.entry
check(
    "scenes-ldm's training: 20,000 one-object scenes, captions dropped with p = 0.1",
    [
        ldm_entry.data.kwargs["n1"],
        ldm_entry.data.kwargs["n2"],
        ldm_entry.spec.caption_dropout,
    ],
    [20_000, 0, 0.1],
    atol=0,
)
prompt_table = ldm.text_context(
    clip_model, clip_model.tokenizer.encode(["a small green 4 in the top left", ""])
)
x_check = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(7))
t_check = torch.tensor([100, 500, 900])
as_labels = ldm.conditioned(net, prompt_table)
with torch.no_grad():
    guided = guidance.classifier_free(as_labels, 0, 3.0, null_label=1)(x_check, t_check)
    eps_c = net(
        x_check,
        t_check,
        context=Context(prompt_table.states[[0, 0, 0]], prompt_table.mask[[0, 0, 0]]),
    )
    eps_u = net(
        x_check,
        t_check,
        context=Context(prompt_table.states[[1, 1, 1]], prompt_table.mask[[1, 1, 1]]),
    )
check(
    "eq. (guid-cfg) over the prompt table, s = 3",
    guided,
    eps_u + 3.0 * (eps_c - eps_u),
    atol=1e-5,
)

# %% [markdown]
# Four prompts at four guidance scales, from the same starting noise (deterministic DDIM, 50
# steps). The scale $s = 0$ ignores the prompt; $s = 1$ is the conditional model;
# `scenes-ldm`'s default is $s =$ {glue:text}`ch12_own_scale:g`:

# %%
show_prompts = [
    "a large red 7 in the bottom right",
    "a small blue 2 in the top left",
    "a large yellow 5 in the top right",
    "a small cyan 9 in the bottom left",
]
show_scales = [0.0, 1.0, 3.0, 5.0]
glue("ch12_own_scale", latent_model.entry.spec.guidance_scale)
grids = {
    s: zoo.outputs(
        "scenes-ldm",
        "samples",
        prompts=show_prompts,
        n=3,
        guidance_scale=s,
        steps=50,
        seed=0,
    ).tensors["images"]
    for s in show_scales
}
fig, axes = plt.subplots(1, len(show_scales), figsize=(12, 4.2))
for ax, s in zip(axes, show_scales):
    ax.imshow(image_grid(grids[s], nrow=3))
    ax.set_title(f"s = {s:g}")
    ax.axis("off")
fig.suptitle("scenes-ldm, one prompt per row: " + "; ".join(show_prompts), fontsize=8)
plt.show()

# %% [markdown]
# **Prompt following, measured.** The judge, `scenes-judge`, is trained on real one-object
# scenes to read the four attributes. We draw prompts of two kinds: combinations of attributes
# that training showed, and the 20% of combinations held out of every training set of the
# book (chapter 10) — a test of composition. For each image and attribute, the judge's reading
# either matches the prompt or not. First, the judge itself, on real scenes of both kinds:

# %%
for split in data.SCENE_SPLITS:
    real_scenes = data.scenes(1000, seed=35, split=split)
    acc = attribute_accuracy(real_scenes.images, real_scenes.attributes)
    print(
        f"judge on real {split} scenes: "
        + ", ".join(f"{a} {acc[a]:.3f}" for a in ATTRIBUTES)
    )
    check_outcome(
        f"the judge on real {split} scenes, worst attribute",
        min(acc.values()),
        at_least={"train": 0.95, "heldout": 0.85}[split],
    )

# %%
# 96 prompts of each kind (every held-out combination, as many training ones), 2 images
# each: 192 images per split and scale (a share of 0.85 has a standard error of 0.026).
N_PROMPTS, PER_PROMPT = 96, 2
SWEEP = [1.0, 3.0, 5.0]


def pick(split: str) -> list:
    captions = data.scene_captions(1, split)[0]
    order = torch.randperm(len(captions), generator=torch.Generator().manual_seed(8))
    return [captions[i] for i in order[:N_PROMPTS].tolist()]


def follows(name: str, prompts: list, s: float) -> dict:
    """The judge's per-attribute accuracy on a model's images of ``prompts`` at s."""
    images = zoo.outputs(
        name,
        "samples",
        prompts=prompts,
        n=PER_PROMPT,
        guidance_scale=s,
        steps=50,
        seed=1,
    ).tensors["images"]
    parsed = [data.parse_scene_caption(p) for p in prompts for _ in range(PER_PROMPT)]
    truth = {a: torch.tensor([p[a] for p in parsed]) for a in ATTRIBUTES}
    return attribute_accuracy(images, truth)


split_prompts = {split: pick(split) for split in data.SCENE_SPLITS}
sweep = {
    (split, s): follows("scenes-ldm", split_prompts[split], s)
    for split in data.SCENE_SPLITS
    for s in SWEEP
}
print(f"{'prompts, scale':<20}" + "".join(f"{a:>10}" for a in ATTRIBUTES))
for (split, s), acc in sweep.items():
    print(
        f"{split + ', s = ' + format(s, 'g'):<20}"
        + "".join(f"{acc[a]:>10.3f}" for a in ATTRIBUTES)
    )
own = latent_model.entry.spec.guidance_scale
worst = {split: min(sweep[(split, own)].values()) for split in data.SCENE_SPLITS}
# Trajectories that ran off (the failure of the schedule section): a sample's latent
# spread, after scaling, more than twice the data's 1.
spreads = (
    torch.cat(
        [
            zoo.outputs(
                "scenes-ldm",
                "samples",
                prompts=split_prompts[split],
                n=PER_PROMPT,
                guidance_scale=s,
                steps=50,
                seed=1,
            ).tensors["latents"]
            for split in data.SCENE_SPLITS
            for s in SWEEP
        ]
    )
    .flatten(1)
    .std(1)
    * c
)
ran_off = (spreads > 2).double().mean().item()
glue("ch12_ran_off", ran_off)
print(f"samples whose scaled latent spread exceeds 2: {ran_off:.1%}")
check_outcome("deterministic DDIM keeps the latents in range", ran_off, at_most=0.02)
glue("ch12_worst_train", worst["train"])
glue("ch12_worst_heldout", worst["heldout"])
glue("ch12_worst_train_s1", min(sweep[("train", 1.0)].values()))
check_outcome(
    f"scenes-ldm at s = {own:g}, training combinations: worst attribute (target 0.9)",
    worst["train"],
    at_least=0.85,
)
check_outcome(
    "... held-out combinations: worst attribute (target 0.8)",
    worst["heldout"],
    at_least=0.7,
)

# %% [markdown]
# At its scale $s =$ {glue:text}`ch12_own_scale:g`, every attribute of a prompt is right in at least
# {glue:text}`ch12_worst_train:.0%` of the images for combinations seen in training and
# {glue:text}`ch12_worst_heldout:.0%` for held-out ones (the worst of the four attributes in
# each case; at $s = 1$, without guidance, the worst is {glue:text}`ch12_worst_train_s1:.0%`).
# The model composes attribute values it has seen separately into combinations it has not.
#
# (ldm-cost-section)=
# ## What the latent space saves
#
# `scenes-pixel-dm` is the same family and the same kind of U-Net, trained on the same
# captions for a similar time, but on the $3 \times 32 \times 32$ pixels themselves (no
# autoencoder; the scale factor is 1). We count the floating-point operations of one
# denoiser call per image with PyTorch's `FlopCounterMode`, add the decoder's for the latent
# model, and time the whole sampling — 50 guided DDIM steps, two denoiser calls each, and the
# decoding — for a batch of each model, one after the other on the same cores:


# %%
def flops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return float(counter.get_total_flops())


def per_image_cost(loaded, decoder) -> dict:
    net_ = loaded.model
    shape = (1, net_.in_channels, net_.image_size, net_.image_size)
    ctx = ldm.text_context(clip_model, clip_model.tokenizer.encode([caption]))
    call = flops(lambda: net_(torch.zeros(shape), torch.tensor([500]), context=ctx))
    dec = (
        0.0
        if decoder is None
        else flops(lambda: decoder.decode(torch.zeros(1, *decoder.latent_shape)))
    )
    start = time.perf_counter()
    ldm.generate(loaded, [caption], 32, steps=50, spacing="linspace", batch_size=32)
    return {"call": call, "decoder": dec, "seconds": (time.perf_counter() - start) / 32}


costs = {
    "scenes-ldm": per_image_cost(latent_model, autoencoder),
    "scenes-pixel-dm": per_image_cost(pixel_model, None),
}
for name, cost in costs.items():
    total = 100 * cost["call"] + cost["decoder"]
    print(
        f"{name:<16}{cost['call'] / 1e6:6.1f} MFLOP/call, decoder "
        f"{cost['decoder'] / 1e6:5.1f} MFLOP; per image {total / 1e9:5.2f} GFLOP, "
        f"{1000 * cost['seconds']:4.0f} ms"
    )
flop_ratio = (100 * costs["scenes-pixel-dm"]["call"]) / (
    100 * costs["scenes-ldm"]["call"] + costs["scenes-ldm"]["decoder"]
)
time_ratio = costs["scenes-pixel-dm"]["seconds"] / costs["scenes-ldm"]["seconds"]
# A quarter of the prompts for the pixel model: its sampling costs several times more.
pixel_worst = {
    split: min(
        follows(
            "scenes-pixel-dm",
            split_prompts[split][:24],
            pixel_model.entry.spec.guidance_scale,
        ).values()
    )
    for split in data.SCENE_SPLITS
}
glue("ch12_flop_ratio", flop_ratio)
glue("ch12_time_ratio", time_ratio)
glue("ch12_pixel_worst_train", pixel_worst["train"])
glue("ch12_pixel_worst_heldout", pixel_worst["heldout"])
print(
    f"pixel / latent: {flop_ratio:.1f}x the FLOPs, {time_ratio:.1f}x the time per image"
)
print(
    f"scenes-pixel-dm, worst attribute: train {pixel_worst['train']:.3f}, "
    f"held-out {pixel_worst['heldout']:.3f}"
)
check_outcome(
    "latent sampling takes fewer FLOPs per image, ratio (target 4x)",
    flop_ratio,
    at_least=3.0,
)

# %% [markdown]
# Per image, the pixel model costs {glue:text}`ch12_flop_ratio:.1f` times the FLOPs of the
# latent model with its decoder, and {glue:text}`ch12_time_ratio:.1f` times the wall time.
# At about the same training time, its worst attribute is right in
# {glue:text}`ch12_pixel_worst_train:.0%` (training combinations) and
# {glue:text}`ch12_pixel_worst_heldout:.0%` (held-out) of its images. The autoencoder is
# trained once and reused; every denoiser step after that works on 12 times fewer numbers.
#
# ## Summary
#
# - A KL autoencoder is a VAE {eq}`ldm-elbo` whose KL weight $\beta = 2s^2$ {eq}`ldm-vae-loss`
#   is tiny: its posteriors are nearly points, its latents do not follow
#   $\mathcal{N}(\mathbf{0}, \mathbf{I})$, and decoding prior samples gives no scenes. It
#   reconstructs far better than PCA with as many numbers.
# - The scale factor $c = 1/\operatorname{std}(\mathbf{z})$ {eq}`ldm-scale` gives the latents
#   the unit variance the noise schedule assumes; without it the schedule's SNR is off by
#   $1/c^2$ at every step {eq}`ldm-snr`.
# - Latents have no box to clip $\hat{\mathbf{z}}_0$ to, so the schedule's last step matters: an
#   error of the network reaches $\hat{\mathbf{z}}_0$ multiplied by $1/\sqrt{\operatorname{SNR}}$
#   {eq}`ldm-x0-error`, {glue:text}`ch12_amplify_linear:.0f` for the linear schedule and
#   {glue:text}`ch12_amplify_ldm:.1f` for latent diffusion's, with which deterministic
#   samplers stay on the data.
# - Cross-attention {eq}`ldm-cross-attention` lets every pixel read the caption's token states:
#   queries from the image, keys and values from the text, padding masked out; the pooled
#   `<eos>` state reaches every residual block through the timestep embedding
#   {eq}`ldm-pooled`.
# - Caption dropout with the empty caption as the null condition gives classifier-free
#   guidance, which lets the model follow prompts, including held-out combinations.
# - The latent model samples several times cheaper than a pixel model of the same family,
#   and at equal training time the pixel model has not yet learned to follow prompts.
#
# ## Exercises
#
# **1. The scale factor of Stable Diffusion.** Its autoencoder's latents have a standard
# deviation of about 5.49. What is $c$, and by what factor is the SNR of step $t$ too high if
# one forgets it?
#
# ````{dropdown} Solution
# $c = 1/5.49 \approx 0.182$ (the published 0.18215), and by {eq}`ldm-snr` the SNR is
# $5.49^2 \approx 30$ times too high at every step.
# ````
#
# **2. The cost of cross-attention.** For a feature map of $H W$ pixels, $L$ tokens and
# $C$ channels, count the multiply–adds of $QK^\top$ and of $AV$ in {eq}`ldm-cross-attention`,
# and compare with self-attention over the same pixels. Evaluate both for $8 \times 8$ pixels,
# $L = 10$ and $C = 64$.
#
# ````{dropdown} Solution
# Each is $HW \cdot L \cdot C$ for cross-attention (all heads together) and $(HW)^2 C$ for
# self-attention: here $64 \cdot 10 \cdot 64 = 40{,}960$ against $64^2 \cdot 64 = 262{,}144$
# each — 6.4 times fewer, the ratio $HW/L$.
# ````
#
# **3. The decoder's noise.** What pixel standard deviation $s$ does a KL weight of
# $\beta = 1$ correspond to, by {eq}`ldm-vae-loss`? Would you expect the latents of such an
# autoencoder to fill $\mathcal{N}(\mathbf{0}, \mathbf{I})$ better or worse than ours, and why
# would its reconstructions be blurrier?
#
# ````{dropdown} Solution
# $s = \sqrt{1/2} \approx 0.71$ — noise of about a third of the pixel range. Such a decoder
# explains most detail as noise, so the KL term dominates: the posteriors grow towards
# $\mathcal{N}(\mathbf{0}, \mathbf{I})$ and overlap, the latents fill the prior better (a
# proper VAE), and images that share a latent region are reconstructed as their average —
# blurred.
# ````

# %% [markdown]
# The figures the solutions quote, computed (run this cell after trying the exercises):

# %%
check("exercise 1: c for a latent std of 5.49", 1 / 5.49, 0.18215, atol=2e-4)
check("exercise 1: the SNR is 5.49^2 times too high", sd_std**2, 30.14, atol=0.01)
check("exercise 2: QK^T and AV of cross-attention", 64 * 10 * 64, 40_960, atol=0)
check(
    "exercise 2: the ratio to self-attention is HW / L",
    (64**2 * 64) / (64 * 10 * 64),
    6.4,
    atol=1e-12,
)
check("exercise 3: beta = 2 s^2 = 1", math.sqrt(1 / 2), 0.7071, atol=1e-4)
print(f"chapter run time: {time.perf_counter() - chapter_start:.0f} s")
