# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Chapter 10: CLIP
#
# A text-to-image model needs two things a diffusion model of the digits does not have: a way to
# read a sentence, and a way to tell whether an image agrees with it. **CLIP** (Contrastive
# Language–Image Pre-training) {cite}`radford2021clip` provides both at once. It trains two
# encoders, one for images and one for text, so that an image and its caption land close
# together on a sphere and an image and someone else's caption land far apart. Nothing in the
# training says what a "3" or "red" is; the captions say it, and the encoders learn to agree.
# The result classifies images it was never trained to classify (**zero-shot**), retrieves
# images from text and text from images, and — in the next chapters — conditions and judges
# text-to-image models.
#
# CLIP itself was trained on 400 million image–text pairs from the web. We train ours from
# nothing in a few minutes on a CPU, on **captioned scenes** generated in code: a coloured
# handwritten digit on a black canvas, "a small red 3 in the top left". A closed world has an
# advantage besides cost: we know exactly what every caption means, so we can measure what the
# model learned — including whether it generalises to combinations of attributes it never saw,
# and whether it knows *which* object is red, a test the real CLIP is known to fail
# {cite}`yuksekgonul2023bags`.
#
# **What you will learn.**
#
# - The captioned scenes: a caption grammar, and a held-out set of attribute combinations that
#   training never shows, so that compositional generalisation is measurable.
# - A word-level tokenizer, and why a byte-pair encoding {cite}`sennrich2016bpe` is not needed
#   here; a small Transformer text encoder {cite}`vaswani2017attention` and a small CNN image
#   encoder.
# - The symmetric **InfoNCE** loss {cite}`vandenoord2018cpc` derived, checked against a hand
#   computation, and its link to mutual information: $\log N$ minus the loss is a lower bound
#   that can never exceed $\log N$ {cite}`poole2019variational`; the learned temperature, and why
#   CLIP clamps it.
# - Zero-shot classification by captions, retrieval in both directions, a linear probe, the
#   **binding** test on two-object scenes, and the **modality gap** {cite}`liang2022mind`.
#
# **What it assumes.** Chapter 2's entropy and KL divergence, cross-entropy and softmax, and a
# first acquaintance with attention (the U-Net of chapter 6 uses it). The zoo trains the chapter's
# model, `scenes-clip`, on first use.

# %% [markdown]
# ## Setup
#
# The first cell installs the book's library when it is missing (on Colab). The model,
# `scenes-clip`, comes from the zoo: trained on first use (a few minutes on two CPU cores) and
# cached. Every number in the text comes from the run you are reading.

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
import textwrap
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from diffusion_lib import check, check_le, check_outcome, clip, data, zoo
from diffusion_lib.checks import glue
from diffusion_lib.families.clip import build_clip, clip_loss, scene_caption_data
from diffusion_lib.seeds import shifted
from diffusion_lib.train import TrainConfig, train

torch.manual_seed(0)
chapter_start = time.perf_counter()

# %%
# A few minutes on 2 cores the first time; then read from the cache.
loaded = zoo.load("scenes-clip")
model = loaded.model.eval()
tokenizer = model.tokenizer

# %% [markdown]
# (clip-scenes-section)=
# ## Captioned scenes
#
# A scene is a 32×32 colour image holding one digit glyph — one of scikit-learn's 8×8
# handwritten digits, enlarged and tinted — with four attributes: the **digit** (10 values), the
# **colour** (6), the **position** (4 quadrants) and the **size** (2). Its caption follows a
# one-line grammar, "a {size} {colour} {digit} in the {position}". Two-object scenes put two
# small digits side by side or one above the other, and caption their relation: "a red 3 left
# of a blue 7". `data.scenes` draws them; everything is generated in code, so nothing is
# downloaded.

# %%
for name, values in data.SCENE_ATTRIBUTES.items():
    print(f"{name:>9}: {', '.join(values)}")
print(f"relations: {', '.join(data.SCENE_RELATIONS)}")
demo = data.scenes(12, seed=1)
demo2 = data.scenes(4, seed=1, objects=2)
fig, axes = plt.subplots(2, 8, figsize=(10, 3.4))
for ax, image, caption in zip(
    axes.flat, torch.cat([demo.images, demo2.images]), demo.captions + demo2.captions
):
    ax.imshow(((image.permute(1, 2, 0) + 1) / 2).numpy())
    ax.set_title(caption.replace(" in the ", "\n").replace(" of ", " of\n"), fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Captioned scenes: twelve with one object, four with two", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# The grammar has $10 \cdot 6 \cdot 4 \cdot 2 = 480$ one-object captions. A fixed fifth of these
# attribute combinations is **held out**: the "train" split never shows them, and the "heldout"
# split shows only them, drawn with glyphs from the digits' test split (handwriting the model
# never saw). A model that read "red" and "3" and "top left" as separate ideas should still
# caption a red 3 in the top left if it only ever saw red 3s elsewhere and other digits in the
# top left. We check that the split does what it says on a large sample:

# %%
captions_all, attributes_all = data.scene_captions()
held = data.heldout_combinations()
glue("ch10_n_captions", len(captions_all))
glue("ch10_n_heldout", int(held.sum()))
check("the grammar has 10·6·4·2 one-object captions", len(captions_all), 480, atol=0)
train_sample = data.scenes(20_000, seed=2, split="train")
seen = set(train_sample.captions)
heldout_captions = {c for c, h in zip(captions_all, held.tolist()) if h}
check(
    "no held-out combination appears among 20,000 training scenes",
    len(seen & heldout_captions),
    0,
    atol=0,
)
print(
    f"{len(heldout_captions)} held-out combinations; the training sample shows "
    f"{len(seen)} of the other {len(captions_all) - len(heldout_captions)}"
)

# %% [markdown]
# (clip-tokenizer-section)=
# ## Reading the captions
#
# A text encoder reads integers, not letters. CLIP's tokenizer is a **byte-pair encoding**
# {cite}`sennrich2016bpe`: it starts from bytes and merges the most frequent pairs into a
# vocabulary of 49,152 pieces, so that any string, including words it has never seen, splits
# into known pieces. Our caption language is closed — every caption is built from the
# {glue:text}`ch10_vocab_words` words of the grammar — so a **word-level** tokenizer is exact
# and simpler: one integer per word, plus three specials, `<pad>`, `<bos>` (begin) and `<eos>`
# (end). A word outside the vocabulary is an error, not a guess:

# %%
glue("ch10_vocab_words", len(data.SCENE_WORDS))
print(textwrap.fill("vocabulary: " + " ".join(data.SCENE_WORDS), width=80))
tokens = tokenizer.encode(["a small red 3 in the top left"])
print("tokens:", tokens[0].tolist())
print("decoded:", tokenizer.decode(tokens)[0])
try:
    tokenizer.encode(["a purple 3 in the top left"])
except ValueError as err:
    print("ValueError:", str(err)[:60], "…")
every_caption = captions_all + data.scene_captions(objects=2)[0]
round_trip = tokenizer.decode(tokenizer.encode(every_caption))
check(
    "every caption of both grammars survives encode → decode",
    sum(a == b for a, b in zip(round_trip, every_caption)),
    len(every_caption),
    atol=0,
)

# %% [markdown]
# ## Two encoders
#
# The **image encoder** $f$ is a small convolutional network. It sees the three colour channels
# and a fourth, the *ink* (the largest colour channel at each pixel, so that a digit's strokes
# look alike in every colour); a stride-2 convolution and two max-pooled ones take the 32×32
# scene to 4×4 feature maps, which are flattened (keeping where things are, which captions
# name) and projected to $D$ numbers. The
# **text encoder** $g$ is a small Transformer {cite}`vaswani2017attention`: each token becomes a
# learned vector plus a learned vector for its position, a few self-attention layers mix them
# (with the padding masked out), and the vector at the `<eos>` token, which has attended to the
# whole caption, is projected to the same $D$ numbers. Both outputs are divided by their length,
# so every image and every caption is a point on the unit sphere in $\mathbb{R}^D$:
#
# $$
# \mathbf{u} = \frac{f(\mathbf{x})}{\lVert f(\mathbf{x})\rVert}, \qquad
# \mathbf{v} = \frac{g(\mathbf{c})}{\lVert g(\mathbf{c})\rVert}, \qquad
# \cos(\mathbf{x}, \mathbf{c}) = \mathbf{u}^\top\mathbf{v}.
# $$ (clip-embed)
#
# The positions matter: "a red 3 left of a blue 7" and "a blue 3 left of a red 7" contain the
# same words, and only the order tells them apart.

# %%
n_image = sum(p.numel() for p in model.image_encoder.parameters())
n_text = sum(p.numel() for p in model.text_encoder.parameters())
print(f"image encoder: {n_image:,} parameters; text encoder: {n_text:,}")
with torch.no_grad():
    u = model.encode_image(demo.images)
    v = model.encode_text(demo.captions)
print(f"embedding dimension D = {u.shape[1]}")
check("image embeddings have unit length", u.norm(dim=1), 1.0, atol=1e-5)
check("text embeddings have unit length", v.norm(dim=1), 1.0, atol=1e-5)

# %% [markdown]
# (clip-infonce-section)=
# ## The contrastive loss
#
# Take a batch of $N$ pairs $(\mathbf{x}_i, \mathbf{c}_i)$ and embed them,
# $\mathbf{u}_i, \mathbf{v}_i$. The $N \times N$ matrix of scaled cosine similarities
#
# $$
# \ell_{ij} = \frac{\mathbf{u}_i^\top \mathbf{v}_j}{\tau}
# $$ (clip-logits)
#
# holds the matching pairs on its diagonal and $N^2 - N$ mismatched pairs elsewhere; $\tau > 0$ is
# a **temperature**. The loss asks each row to pick out its diagonal entry, and so does each
# column:
#
# 1. Read row $i$ as the logits of a classifier over the $N$ captions: the probability that image
#    $i$ goes with caption $j$ is the softmax $p_{ij} = e^{\ell_{ij}} / \sum_k e^{\ell_{ik}}$.
# 2. The right answer is $j = i$, so the cross-entropy of row $i$ is $-\log p_{ii}$; averaging
#    over rows gives the image-to-text loss
#    $L_{I\to T} = -\frac1N\sum_i \log \frac{e^{\ell_{ii}}}{\sum_k e^{\ell_{ik}}}$.
# 3. Columns likewise classify images for a caption:
#    $L_{T\to I} = -\frac1N\sum_j \log \frac{e^{\ell_{jj}}}{\sum_k e^{\ell_{kj}}}$.
# 4. CLIP averages the two:
#
# $$
# L = \tfrac12\left(L_{I\to T} + L_{T\to I}\right).
# $$ (clip-infonce)
#
# This is the **InfoNCE** loss of {cite:t}`vandenoord2018cpc`, made symmetric. Each row is a
# softmax over one positive and $N - 1$ negatives, the other captions of the batch. Two values
# anchor it: when every logit is equal (untrained encoders, roughly) each row is a uniform guess
# and $L = \log N$; and $L \to 0$ only if each diagonal entry beats its row and column by a
# growing margin. We compute {eq}`clip-infonce` with explicit loops and compare with the
# library's `clip.info_nce`, which does it with one matrix product and `cross_entropy`:

# %%
gen = torch.Generator().manual_seed(3)
u_toy = F.normalize(torch.randn(6, 8, generator=gen, dtype=torch.float64), dim=1)
v_toy = F.normalize(torch.randn(6, 8, generator=gen, dtype=torch.float64), dim=1)
tau = 0.1
logits = [[float(u_toy[i] @ v_toy[j]) / tau for j in range(6)] for i in range(6)]
rows = [
    -(logits[i][i] - math.log(sum(math.exp(x) for x in logits[i]))) for i in range(6)
]
cols = [
    -(logits[j][j] - math.log(sum(math.exp(logits[k][j]) for k in range(6))))
    for j in range(6)
]
by_hand = 0.5 * (sum(rows) / 6 + sum(cols) / 6)
library = clip.info_nce(u_toy, v_toy, 1 / tau)
check(
    "InfoNCE, eq. (clip-infonce): loops = clip.info_nce",
    library.loss,
    by_hand,
    atol=1e-12,
)
check(
    "its image→text half is the mean over rows",
    library.image_to_text,
    sum(rows) / 6,
    atol=1e-12,
)
same = F.normalize(torch.ones(6, 8, dtype=torch.float64), dim=1)
check(
    "equal logits: the loss is log N",
    clip.info_nce(same, same, 1 / tau).loss,
    math.log(6),
    atol=1e-12,
)

# %% [markdown]
# ### A bound on mutual information
#
# Why should guessing the partner in a batch teach anything useful? Because the loss bounds the
# **mutual information** $I(X; C)$ between images and captions (chapter 2's KL divergence between
# the joint and the product of the marginals) {cite}`vandenoord2018cpc,poole2019variational`.
# Take one direction, and suppose the logits are any function $\ell(\mathbf{x}, \mathbf{c})$
# (the *critic*). Then
#
# $$
# I(X; C) \;\ge\; \log N - L_{I\to T}(\ell).
# $$ (clip-mi-bound)
#
# The argument, in three steps:
#
# 1. The best critic is the log density ratio $\ell^*(\mathbf{x}, \mathbf{c}) = \log
#    p(\mathbf{c} \mid \mathbf{x}) / p(\mathbf{c})$ plus anything that depends on $\mathbf{x}$
#    only: it makes each row's softmax the exact posterior of "which of the $N$ captions is the
#    partner", given that one was drawn from $p(\mathbf{c} \mid \mathbf{x})$ and $N - 1$ from
#    $p(\mathbf{c})$. A cross-entropy is smallest at the true posterior, so every other critic
#    has a larger loss.
# 2. For that critic, $-\log p_{ii} = -\ell^*_{ii} + \log\sum_k e^{\ell^*_{ik}} = \log\big(1 +
#    \sum_{k \ne i} e^{\ell^*_{ik} - \ell^*_{ii}}\big)$. The mismatched captions are drawn from
#    $p(\mathbf{c})$, independently of $\mathbf{x}_i$, and
#    $\mathbb{E}_{p(\mathbf{c})}[p(\mathbf{c} \mid \mathbf{x})/p(\mathbf{c})] = 1$, so for large
#    $N$ the sum is close to $(N - 1)\,p(\mathbf{c}_i)/p(\mathbf{c}_i \mid \mathbf{x}_i)$ and
#    the expected loss close to $\log(N - 1) - I(X; C)$: nearly tight when $N$ is large compared
#    with $e^{I}$. For every $N$, Poole et al. prove exactly that this loss is at least
#    $\log N - I(X; C)$.
# 3. Rearranged: $\log N - L \le I$, for the best critic and hence for every critic.
#
# Two consequences follow. The bound is **capped at $\log N$**, because $L \ge 0$: a batch of 256
# pairs can certify at most $\log 256 \approx 5.5$ nats however much information the data carry.
# That is one reason contrastive learning likes large batches (CLIP used 32,768). And the loss is
# **not** the information itself: two encoders can share a great deal of information yet have
# a loss far from $\log N - I$.
#
# A case where $I$ is known makes both visible: $\mathbf{x} \sim \mathcal{N}(\mathbf{0}, \mathbf{I}_d)$
# and $\mathbf{c} = \rho\,\mathbf{x} + \sqrt{1 - \rho^2}\,\boldsymbol{\epsilon}$, for which
# $I = -\tfrac d2 \log(1 - \rho^2)$ and the best critic is $\log\mathcal{N}(\mathbf{c}; \rho\mathbf{x},
# (1-\rho^2)\mathbf{I}) - \log\mathcal{N}(\mathbf{c}; \mathbf{0}, \mathbf{I})$. We evaluate the
# bound with that critic for growing batches, once where $I$ is small and once where it exceeds
# $\log N$:


# %%
def infonce_bound(d: int, rho: float, n: int, repeats: int, seed: int) -> torch.Tensor:
    """log N − L_{I→T} with the optimal critic, for `repeats` batches of n pairs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(repeats, n, d, generator=g, dtype=torch.float64)
    c = rho * x + math.sqrt(1 - rho**2) * torch.randn(
        x.shape, generator=g, dtype=torch.float64
    )
    # ℓ*(x_i, c_j) = log N(c_j; ρ x_i, 1−ρ²) − log N(c_j; 0, 1), summed over d
    sq = ((c[:, None, :, :] - rho * x[:, :, None, :]) ** 2).sum(-1)
    crit = -sq / (2 * (1 - rho**2)) + (c[:, None] ** 2).sum(-1) / 2
    crit = crit - d / 2 * math.log(1 - rho**2)
    target = torch.arange(n).expand(repeats, n)
    loss = F.cross_entropy(crit.transpose(1, 2), target, reduction="none").mean(1)
    return math.log(n) - loss


mi_rows = {}
for d, rho in ((2, 0.9), (10, 0.95)):
    true_mi = -d / 2 * math.log(1 - rho**2)
    for n in (4, 16, 64, 256):
        bounds = infonce_bound(d, rho, n, repeats=40, seed=n + d)
        mi_rows[(d, n)] = (true_mi, bounds.mean().item(), bounds.std().item() / 40**0.5)
print(f"{'d':>3}{'I (nats)':>10}{'N':>6}{'log N':>8}{'log N − L':>12}{'± s.e.':>8}")
for (d, n), (true_mi, mean, se) in mi_rows.items():
    print(f"{d:>3}{true_mi:>10.2f}{n:>6}{math.log(n):>8.2f}{mean:>12.2f}{se:>8.2f}")
for (d, n), (true_mi, mean, se) in mi_rows.items():
    check_le(f"d = {d}, N = {n}: log N − L ≤ I (+3 s.e.)", mean, true_mi, atol=3 * se)
check_le(
    "log N − L never exceeds log N (every batch)",
    infonce_bound(10, 0.95, 64, repeats=40, seed=9).max(),
    math.log(64),
)
glue("ch10_mi_small", mi_rows[(2, 256)][0])
glue("ch10_mi_large", mi_rows[(10, 256)][0])
glue("ch10_mi_large_est", mi_rows[(10, 256)][1])

# %% [markdown]
# With $I = $ {glue:text}`ch10_mi_small:.2f` nats the bound approaches the truth as $N$ grows.
# With $I = $ {glue:text}`ch10_mi_large:.1f` nats it stays under $\log N$ — at $N = 256$ it
# certifies only {glue:text}`ch10_mi_large_est:.2f` — even with the best possible critic.

# %% [markdown]
# ### The temperature, and why it is clamped
#
# The temperature $\tau$ in {eq}`clip-logits` sets how peaked each row's softmax can be: cosines
# lie in $[-1, 1]$, so with $\tau = 1$ the largest possible gap between two logits is 2 and the
# loss cannot fall below $\log(1 + (N-1)e^{-2})$, however good the embeddings. CLIP therefore
# *learns* $\tau$, through its logarithm, $\tau = e^{-s}$, starting at $\tau = 0.07$. Once the
# pairs of a batch are separated — each diagonal cosine above the rest of its row and column —
# the loss keeps falling as $\tau$ shrinks, towards 0, without the embeddings improving at all:
# nothing stops $s$ from growing, and the logits, their gradients and the training with them
# blow up. CLIP clamps the scale $1/\tau$ at 100 {cite}`radford2021clip`. We see the loss of a
# batch of trained embeddings as a function of the scale, and the clamp:

# %%
batch = data.scenes(256, seed=4, split="heldout")
with torch.no_grad():
    u_b = model.encode_image(batch.images)
    v_b = model.encode_text(batch.captions)
scales = [1, 3, 10, 30, 100, 300, 1000]
scale_losses = [clip.info_nce(u_b, v_b, s).loss.item() for s in scales]
for s, loss in zip(scales, scale_losses):
    print(f"scale 1/τ = {s:>5}: loss {loss:.3f}")
print(f"the trained model's scale: {model.logit_scale.item():.1f}")
check_le("the learned scale respects the clamp at 100", model.logit_scale.item(), 100.0)
check(
    "at scale 1 the loss is at least log(1 + (N−1)e^(−2))",
    scale_losses[0] >= math.log(1 + 255 * math.exp(-2)),
    True,
)
separated = torch.eye(6, 8, dtype=torch.float64)  # six pairs, each its own direction
toy_losses = [clip.info_nce(separated, separated, s).loss.item() for s in scales]
check(
    "separated pairs: L = log(1 + (N−1)e^(−scale)) (exercise 1), falling with it",
    toy_losses,
    [math.log1p(5 * math.exp(-s)) for s in scales],
    atol=1e-12,
)
best_scale = scales[int(np.argmin(scale_losses))]
glue("ch10_best_scale", best_scale)
glue("ch10_distinct", len(set(batch.captions)))
glue("ch10_learned_scale", model.logit_scale.item())

# %% [markdown]
# For six perfectly separated pairs (each image embedding equal to its caption's, all
# orthogonal) the loss falls with every increase of the scale, towards 0: this is the runaway
# that the clamp stops. Our trained embeddings are not like that: this batch of 256 one-object
# held-out scenes has only {glue:text}`ch10_distinct` distinct captions, so no scale can
# separate every pair, and an over-sharp softmax pays for every near tie. On this
# batch the loss is lowest near scale {glue:text}`ch10_best_scale`; training ended at
# {glue:text}`ch10_learned_scale:.1f`, below the clamp.

# %% [markdown]
# ## Training
#
# `scenes-clip` was trained by the book's one training loop (AdamW, warm-up, an exponential
# moving average of the weights; chapter 6) on batches of pairs from the "train" split, a mix of
# one- and two-object scenes, minimising {eq}`clip-infonce`. The loss starts at $\log N$, as it
# should for encoders that cannot yet tell captions apart:

# %%
losses = np.asarray(loaded.record["losses"])
batch_size = loaded.entry.train.batch_size
glue("ch10_train_minutes", loaded.record["train_seconds"] / 60)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.6, label="training loss")
ax.axhline(
    math.log(batch_size), color="k", ls="--", lw=0.8, label=f"log N, N = {batch_size}"
)
ax.set_xlabel("training step")
ax.set_ylabel("InfoNCE loss (nats)")
ax.set_yscale("log")
ax.set_title("scenes-clip: the symmetric InfoNCE loss during training", fontsize=10)
ax.legend()
plt.tight_layout()
plt.show()
check(
    "the first steps' loss is about log N (untrained encoders guess uniformly)",
    losses[:5].mean(),
    math.log(batch_size),
    atol=0.5,
)

# %% [markdown]
# Training took {glue:text}`ch10_train_minutes:.1f` minutes on this machine.
#
# (clip-zero-shot-section)=
# ## Zero-shot classification
#
# CLIP classifies without a classifier: write one caption per class, embed them, and give each
# image the class of the caption with the highest cosine {eq}`clip-embed`. Ours can do more
# than classify the digit. Each held-out image is compared with **all 480 captions** of the
# grammar, and counts as right only if the best caption is exactly its own: digit, colour,
# position and size at once. These images show only combinations the model never saw in
# training, drawn in handwriting it never saw.

# %%
test = data.scenes(2000, seed=5, split="heldout")
with torch.no_grad():
    text_bank = model.encode_text(captions_all)  # (480, D)
    u_test = model.encode_image(test.images)
best = clip.zero_shot(model, test.images, captions_all)
truth = torch.tensor([captions_all.index(c) for c in test.captions])
zero_shot_acc = (best == truth).float().mean().item()
per_attribute = {
    name: (attributes_all[name][best] == test.attributes[name]).float().mean().item()
    for name in data.SCENE_ATTRIBUTES
}
print(
    f"full caption right: {zero_shot_acc:.3f} of {len(test.captions)} held-out scenes"
)
for name, acc in per_attribute.items():
    print(f"  {name:>8} right: {acc:.3f}")
glue("ch10_zero_shot", zero_shot_acc)
check(
    "clip.zero_shot = argmax of the cosine matrix",
    best,
    (u_test @ text_bank.T).argmax(1),
    atol=0,
)
check_outcome(
    "full-caption zero-shot accuracy on held-out combinations",
    zero_shot_acc,
    at_least=0.9,
)

# %% [markdown]
# {glue:text}`ch10_zero_shot:.1%` of held-out scenes get their exact caption among 480. The
# per-attribute rows show where the errors are: mostly the digit, the one attribute that needs
# reading handwriting; colour, position and size are nearly free.
#
# **Prompt ensembling.** To classify only the digit, CLIP's authors averaged the text
# embeddings of many captions per class ("a photo of a 3", "a drawing of a 3", …). Here the
# natural ensemble for digit $k$ is the mean of the 48 caption embeddings that mention $k$:

# %%
digit_protos = F.normalize(
    torch.stack([text_bank[attributes_all["digit"] == k].mean(0) for k in range(10)]),
    dim=1,
)
digit_pred = (u_test @ digit_protos.T).argmax(1)
digit_acc = (digit_pred == test.attributes["digit"]).float().mean().item()
glue("ch10_digit_ensemble", digit_acc)
glue("ch10_zero_shot_digit", per_attribute["digit"])
print(f"digit accuracy, 10 averaged prompts: {digit_acc:.3f}")
print(f"digit accuracy, read off the best full caption: {per_attribute['digit']:.3f}")

# %% [markdown]
# Here the ensemble reads the digit right for {glue:text}`ch10_digit_ensemble:.1%` of the images,
# and the best full caption for {glue:text}`ch10_zero_shot_digit:.1%`. The ensemble averages
# captions of every colour, position and size, most of which describe another picture; the full
# caption can match the whole image. Prompt ensembling helps where the prompts are paraphrases
# of one description, as in CLIP's paper, not alternatives to it.

# %% [markdown]
# ## Retrieval
#
# The same similarity matrix, read by rows, retrieves captions for an image; read by columns,
# images for a caption. On 1,000 held-out scenes with 1,000 different captions, **recall at
# $k$** is the share of queries whose partner is among the $k$ most similar candidates. We use
# two-object scenes, whose captions are many enough to be all different:

# %%
pairs = data.scenes(3000, seed=6, split="heldout", objects=2)
first = {}
for i, c in enumerate(pairs.captions):
    first.setdefault(c, i)
keep = torch.tensor(sorted(first.values())[:1000])
retrieval_captions = [pairs.captions[i] for i in keep]
check(
    "1,000 distinct captions",
    len(set(retrieval_captions)),
    1000,
    atol=0,
)
with torch.no_grad():
    sim = clip.similarity(
        model.encode_image(pairs.images[keep]), model.encode_text(retrieval_captions)
    )
recall = {
    (direction, k): clip.recall_at_k(m, k)
    for direction, m in (("image→text", sim), ("text→image", sim.T))
    for k in (1, 5)
}
for (direction, k), r in recall.items():
    print(f"{direction} R@{k}: {r:.3f}")
glue("ch10_i2t_r1", recall[("image→text", 1)])
glue("ch10_t2i_r1", recall[("text→image", 1)])
check_outcome(
    "image→text R@1 on 1,000 held-out scenes", recall[("image→text", 1)], at_least=0.9
)

# %% [markdown]
# ## A linear probe
#
# A second way to judge an image encoder, used throughout the CLIP paper, is the **linear probe**
# {cite}`alain2016probes`: freeze the encoder, fit a logistic regression on its features, and
# test it. We probe for the digit, training on 2,000 "train" scenes and testing on the 2,000
# held-out ones above, and compare with the same regression on the raw 3,072 pixels:

# %%
probe_train = data.scenes(2000, seed=7, split="train")
with torch.no_grad():
    u_probe = model.encode_image(probe_train.images)
probe = LogisticRegression(max_iter=2000).fit(
    u_probe.numpy(), probe_train.attributes["digit"].numpy()
)
probe_acc = probe.score(u_test.numpy(), test.attributes["digit"].numpy())
with warnings.catch_warnings():
    # Stopped at 300 iterations to keep the chapter fast; sklearn would warn that the
    # pixel model has not converged.
    warnings.simplefilter("ignore", ConvergenceWarning)
    pixels = LogisticRegression(max_iter=300).fit(
        probe_train.images.flatten(1).numpy(), probe_train.attributes["digit"].numpy()
    )
pixel_acc = pixels.score(
    test.images.flatten(1).numpy(), test.attributes["digit"].numpy()
)
glue("ch10_probe", probe_acc)
glue("ch10_probe_pixels", pixel_acc)
print(f"linear probe on CLIP image features: {probe_acc:.3f}")
print(f"the same on raw pixels:              {pixel_acc:.3f}")
check_outcome(
    "linear probe: CLIP features over raw pixels", probe_acc - pixel_acc, at_least=0.3
)

# %% [markdown]
# The contrastive features make the digit linearly readable at {glue:text}`ch10_probe:.1%`,
# where the pixels manage {glue:text}`ch10_probe_pixels:.1%`: a glyph that moves between
# quadrants and changes colour and size lands on entirely different pixels, and the encoder has
# learned to ignore exactly that.
#
# (clip-binding-section)=
# ## Binding: which object is red?
#
# Real CLIP is known to read captions like a **bag of words** {cite}`yuksekgonul2023bags`: it
# scores "the horse is eating the grass" and "the grass is eating the horse" almost alike. The
# two-object scenes test this directly. For each scene we compare its caption with the
# **colour-swapped** one — "a red 3 left of a blue 7" against "a blue 3 left of a red 7" — which
# has exactly the same words. First, a fact that needs no training: any text encoder that pools
# word embeddings without positions gives the two captions *identical* embeddings, so it can
# never do better than a coin flip. We check it with the model's own word embeddings:


# %%
def swap_colours(caption: str) -> str:
    """The caption with its two colours exchanged (a two-object caption)."""
    att = data.parse_scene_caption(caption)
    return data.scene_caption(
        digit=att["digit"], colour=att["colour"][::-1], relation=att["relation"]
    )


binding = data.scenes(1000, seed=8, split="heldout", objects=2)
swapped = [swap_colours(c) for c in binding.captions]
print(binding.captions[0], "↔", swapped[0])
word_table = model.text_encoder.token_embedding.weight.detach()


def bag_of_words(captions: list) -> torch.Tensor:
    """Mean of the word embeddings, ignoring order: a text encoder without positions."""
    ids = tokenizer.encode(captions)
    mask = (ids != 0).double()[..., None]
    return (word_table.double()[ids] * mask).sum(1) / mask.sum(1)


check(
    "a bag of words cannot tell a caption from its colour swap",
    bag_of_words(binding.captions),
    bag_of_words(swapped),
    atol=1e-12,
)
with torch.no_grad():
    u_bind = model.encode_image(binding.images)
    right = (u_bind * model.encode_text(binding.captions)).sum(1)
    wrong = (u_bind * model.encode_text(swapped)).sum(1)
binding_acc = (right > wrong).float().mean().item()
glue("ch10_binding", binding_acc)
print(f"true caption preferred to its colour swap: {binding_acc:.3f}")
check_outcome(
    "binding: true caption beats the colour-swapped one (held-out scenes)",
    binding_acc,
    at_least=0.9,
)

# %% [markdown]
# Our model prefers the true caption for {glue:text}`ch10_binding:.1%` of held-out two-object
# scenes. It can, because its text encoder attends over positions and because its training data
# made binding *necessary*: within a batch, the swapped caption of one scene is often the true
# caption of another, so a bag of words cannot bring the loss down. Web captions rarely force this
# distinction — few of them have a hard negative in the same batch — which is one explanation of
# real CLIP's behaviour {cite}`yuksekgonul2023bags`.
#
# (clip-gap-section)=
# ## The modality gap
#
# Matching images and captions end up close, but not on top of each other: the image embeddings
# and the text embeddings occupy two separate regions of the sphere, the **modality gap**
# {cite}`liang2022mind`. Projecting 500 matching pairs onto their two principal directions shows
# it:

# %%
gap_set = data.scenes(500, seed=9, split="heldout")
with torch.no_grad():
    u_g = model.encode_image(gap_set.images)
    v_g = model.encode_text(gap_set.captions)
both = torch.cat([u_g, v_g]).double()
centred = both - both.mean(0)
_, _, components = torch.linalg.svd(centred, full_matrices=False)
xy = (centred @ components[:2].T).numpy()
gap = (u_g.mean(0) - v_g.mean(0)).norm().item()
pair_cos = (u_g * v_g).sum(1).mean().item()
glue("ch10_gap", gap)
glue("ch10_pair_cos", pair_cos)
fig, ax = plt.subplots(figsize=(5, 4))
for i in range(0, 500, 25):
    ax.plot([xy[i, 0], xy[500 + i, 0]], [xy[i, 1], xy[500 + i, 1]], c="0.7", lw=0.6)
ax.scatter(xy[:500, 0], xy[:500, 1], s=6, label="images")
ax.scatter(xy[500:, 0], xy[500:, 1], s=6, marker="^", label="captions")
ax.set_xlabel("first principal direction")
ax.set_ylabel("second principal direction")
ax.set_title("The modality gap: 500 pairs, lines join 20 of them", fontsize=10)
ax.legend()
plt.tight_layout()
plt.show()
print(
    f"distance between the two means: {gap:.2f}; mean cosine of a pair: {pair_cos:.2f}"
)
half = (u_g[:250].mean(0) - u_g[250:].mean(0)).norm().item()
print(f"for comparison, between the means of two halves of the images: {half:.2f}")
check_outcome("the modality gap (distance between the means)", gap, at_least=0.08)

# %% [markdown]
# The means of the two clouds sit {glue:text}`ch10_gap:.2f` apart (the means of two halves of
# the *same* modality would sit near 0), and a matching pair's cosine averages
# {glue:text}`ch10_pair_cos:.2f`: close, not equal. The gap is much smaller than the 0.82 that
# Liang et al. measured between the means for OpenAI's CLIP on MSCOCO, but it is there. The loss
# cannot see the gap: adding one vector $\mathbf{g}$ to every text
# embedding before the dot product changes $\mathbf{u}_i^\top\mathbf{v}_j$ by
# $\mathbf{u}_i^\top\mathbf{g}$, the same for every caption $j$, so each row's softmax — and each
# image's ranking of captions — is unchanged. Liang et al. trace the gap to the cone in which
# randomly initialised networks put their outputs, and to the temperature, which keeps the
# contrastive loss from pulling the cones together. It matters when one modality's embedding is
# used in place of the other's, which is exactly what chapter 13's DALL·E 2 must do; its
# *prior* exists to bridge the gap.

# %%
u64, v64 = u_g.double(), v_g.double()
g = v64.mean(0) - u64.mean(0)
change = u64 @ (v64 - g).T - u64 @ v64.T  # (500 images, 500 captions)
check(
    "shifting the captions by g changes image i's cosines by −u_i·g, for every j",
    change,
    (-(u64 @ g))[:, None].expand_as(change),
    atol=1e-12,
)

# %% [markdown]
# ## Batch size
#
# The bound {eq}`clip-mi-bound` suggests that the number of negatives matters. A small sweep:
# the zoo model's networks, trained from the same initial weights for the same
# {glue:text}`ch10_sweep_steps` steps with batches of 16, 64 and 256 pairs, then scored on one
# fixed batch of 256 held-out two-object scenes by the loss {eq}`clip-infonce` at $N = 256$
# (the same $N$ for every run, so the losses compare), and by the bound $\log 256 - L$. (The zoo model trained for
# {glue:text}`ch10_train_steps` steps; these runs take seconds each.) The larger batch sees more
# pairs per step *and* more negatives per pair; the sweep cannot tell the two apart.

# %%
sweep_data = scene_caption_data(n1=4000, n2=4000, seed=1)
probe_batch = data.scenes(256, seed=4, split="heldout", objects=2)
glue("ch10_train_steps", loaded.entry.train.steps)
# By 100 steps the losses of batches 16 and 256 part by 2.85-3.02 nats (training-seed
# shifts 0, 1, 2; 2.95-3.20 after 150 steps, for 1.5 times the time).
SWEEP_STEPS = 100
glue("ch10_sweep_steps", SWEEP_STEPS)
sweep = {}
for n_batch in (16, 64, 256):
    # The same initial weights for every batch size; another training seed moves them
    # (and the batches' order) with the book's seed shift, as for the zoo's models.
    torch.manual_seed(shifted(0))
    small = build_clip(loaded.entry.spec, tokenizer)
    config = TrainConfig(
        steps=SWEEP_STEPS, batch_size=n_batch, lr=3e-3, warmup_steps=20, seed=shifted(0)
    )
    result = train(small, clip_loss, sweep_data, config, progress=False)
    trained = result.ema.eval()
    with torch.no_grad():
        held_out = clip.info_nce(
            trained.encode_image(probe_batch.images),
            trained.encode_text(probe_batch.captions),
            trained.logit_scale,
        ).loss.item()
    sweep[n_batch] = held_out
    print(
        f"batch {n_batch:>3}: held-out loss at N = 256 {held_out:.2f}; "
        f"bound log 256 − L = {math.log(256) - held_out:.2f} nats"
    )
glue("ch10_sweep_16", sweep[16])
glue("ch10_sweep_256", sweep[256])
check_outcome(
    "batch 16 against 256: held-out loss gap", sweep[16] - sweep[256],
    at_least=2.0,
)  # fmt: skip

# %% [markdown]
# After the same {glue:text}`ch10_sweep_steps` steps, the held-out loss is
# {glue:text}`ch10_sweep_16:.2f` nats with batches of 16 and {glue:text}`ch10_sweep_256:.2f`
# with batches of 256. One run per batch size cannot resolve small differences, so read only the
# large step. CLIP itself trained with batches of 32,768
# {cite}`radford2021clip`.

# %% [markdown]
# ## Summary
#
# - CLIP embeds images and captions on one sphere {eq}`clip-embed` with two encoders trained
#   together by the symmetric **InfoNCE** loss {eq}`clip-infonce`: each row and each column of
#   the batch's similarity matrix is a softmax classifier whose right answer is the diagonal.
# - $\log N - L$ is a lower bound on the mutual information {eq}`clip-mi-bound`, capped at
#   $\log N$: large batches raise the ceiling. The temperature is learned and clamped (scale
#   ≤ 100), because separated pairs otherwise drive it to zero.
# - On captioned scenes with held-out attribute combinations, a CLIP trained in
#   {glue:text}`ch10_train_minutes:.1f` minutes on a CPU gives the exact caption among 480 to
#   {glue:text}`ch10_zero_shot:.1%` of held-out images, retrieves captions at R@1 =
#   {glue:text}`ch10_i2t_r1:.1%`, and makes the digit linearly readable.
# - Binding needs word order and hard negatives: a bag of words scores a caption and its colour
#   swap identically; our Transformer prefers the right one {glue:text}`ch10_binding:.1%` of the
#   time.
# - Image and text embeddings keep apart (the **modality gap**); the loss is blind to it.
#
# ## Exercises
#
# **1. The symmetric loss at equal logits.** Show that {eq}`clip-infonce` equals $\log N$ when all
# logits are equal, and that $L \ge 0$ always. What is $L$ when each diagonal logit exceeds every
# other entry of its row and column by $\Delta$?
#
# ````{dropdown} Solution
# With equal logits each softmax is uniform, $p_{ii} = 1/N$, so both halves are $\log N$. Each
# $p_{ii} \le 1$, so each term $-\log p_{ii} \ge 0$. With a margin of exactly $\Delta$ against all
# $N - 1$ others, $p_{ii} = 1/(1 + (N-1)e^{-\Delta})$ and $L = \log(1 + (N-1)e^{-\Delta})$,
# which tends to 0 only as $\Delta \to \infty$ — through the scale $1/\tau$ as much as through the
# embeddings, which is why the scale needs a clamp. The cell below checks the formula.
# ````
#
# **2. Zero-shot with fewer captions.** Classify the held-out scenes' *colour* by six captions
# "a small {colour} 0 in the top left" (one fixed digit, position and size). How does the
# accuracy compare with the full-caption answer's colour? Why?
#
# ````{dropdown} Solution
# ```python
# caps = [data.scene_caption(digit=0, colour=c, position=0, size=0) for c in range(6)]
# pred = clip.zero_shot(model, test.images, caps)
# print((pred == test.attributes["colour"]).float().mean())
# ```
# Lower: {glue:text}`ch10_ex2_colour:.1%` against {glue:text}`ch10_ex2_full:.1%` for the colour
# of the best full caption (by how much varies widely from one training run to another, far more
# than the full caption's accuracy does). A single template describes most images wrongly in every other
# attribute (another digit, place and size), so all six cosines are low and the colour must win
# against the mismatch of the rest; among all 480 captions, one matches the whole image.
# ````
#
# **3. Text-to-image retrieval for free.** Why is text→image R@1 computed from the same matrix
# as image→text, only transposed, and why can the two differ?
#
# ````{dropdown} Solution
# Both read the same cosines $\mathbf{u}_i^\top\mathbf{v}_j$: image→text ranks row $i$, text→image
# ranks column $j$. A row's maximum and a column's maximum are different events: an image whose
# caption is its best match can still lose, in the caption's column, to another image that fits
# the caption better (two similar scenes). The two recalls agree only on average over the
# batch's symmetric structure, not query by query.
# ````
#
# **4. The bound with a bad critic.** Repeat the mutual-information experiment with the critic
# $\ell = \mathbf{x}^\top\mathbf{c}$ (no scaling). Is $\log N - L$ still below $I$? Is it
# tighter or looser than with the best critic?
#
# ````{dropdown} Solution
# Still below $I$ — {eq}`clip-mi-bound` holds for every critic — and looser, since the best critic
# minimises the loss. For $d = 2$, $\rho = 0.9$, $N = 256$ the estimate drops (the cell below
# computes both). A learned critic — CLIP's cosine with a learned scale — sits between the two.
# ````

# %% [markdown]
# The figures the solutions quote, computed (run this cell after trying the exercises):

# %%
n_e, delta_e = 8, 2.5
logits_e = torch.full((n_e, n_e), -delta_e, dtype=torch.float64)
logits_e.fill_diagonal_(0.0)
target_e = torch.arange(n_e)
loss_e = 0.5 * (
    F.cross_entropy(logits_e, target_e) + F.cross_entropy(logits_e.T, target_e)
)
check(
    "exercise 1: L = log(1 + (N−1)e^(−Δ)) for a margin Δ",
    loss_e,
    math.log(1 + (n_e - 1) * math.exp(-delta_e)),
    atol=1e-12,
)
caps_e = [data.scene_caption(digit=0, colour=c, position=0, size=0) for c in range(6)]
colour_acc = (
    (clip.zero_shot(model, test.images, caps_e) == test.attributes["colour"])
    .float()
    .mean()
    .item()
)
print(f"exercise 2: colour from six captions {colour_acc:.3f}")
glue("ch10_ex2_colour", colour_acc)
glue("ch10_ex2_full", per_attribute["colour"])
check_outcome(
    "exercise 2: colour accuracy lost by six fixed templates",
    per_attribute["colour"] - colour_acc,
    at_least=0.01,
)
g_e = torch.Generator().manual_seed(11)
x_e = torch.randn(40, 256, 2, generator=g_e, dtype=torch.float64)
c_e = 0.9 * x_e + math.sqrt(1 - 0.81) * torch.randn(
    x_e.shape, generator=g_e, dtype=torch.float64
)
crit_e = x_e @ c_e.transpose(1, 2)
bad = math.log(256) - F.cross_entropy(
    crit_e.transpose(1, 2), torch.arange(256).expand(40, 256)
)
check_le(
    "exercise 4: a dot-product critic gives a looser bound", bad, mi_rows[(2, 256)][1]
)
print(f"chapter run time: {time.perf_counter() - chapter_start:.0f} s")
