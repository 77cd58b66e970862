# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Chapter 1: What is AIGC?
#
# **AIGC** (AI-generated content, 人工智能生成内容) is content (images, text, sound, video, program
# code) produced by a machine-learning model rather than written, drawn or recorded by a person.
# The models behind it are **generative models** (生成模型): models that have learned a probability
# distribution over data well enough to draw new samples from it. This chapter is a map of the
# field and of the book. It says what changed when machine learning moved from recognising data to
# producing it, where generated content is used and why it matters, how the main families of
# generative models are related, and how they arrived, in a timeline. Then it generates its first
# images with a diffusion model from the book's library, and explains how to read and run the
# rest of the book.
#
# **What you will learn.**
#
# - The difference between a model that *perceives* (a classifier, $p(y \mid \mathbf{x})$) and one
#   that *generates* ($p(\mathbf{x})$ or $p(\mathbf{x} \mid \text{text})$), measured in bits on the
#   book's $8 \times 8$ digits.
# - Where AIGC is used (images, text, audio, video, code) and three reasons it matters:
#   productivity, creativity and the road to more general AI, each with a measured example.
# - A concept map of generative models: GANs, VAEs, autoregressive models, flows, diffusion models,
#   CLIP, and how they combine into DALL·E 2 and Stable Diffusion; each node points to its chapter.
# - A timeline of the milestones from 2013 to 2022, drawn from a small table.
# - How to sample 64 digits from a trained diffusion model in three calls, and which chapter
#   explains each line.
# - How to read the book and run it: Jupyter, Colab, `make book`, `make test`.
#
# **What it assumes.** Nothing beyond curiosity and some Python. The mathematics starts in
# {doc}`02_probability_toolkit`.

# %% [markdown]
# ## Setup
#
# The first cell installs the book's library when it is missing (on Colab); elsewhere it does
# nothing. The chapter samples from a trained model of the book's **model zoo**. If the model is
# not cached yet, the first call trains it (about five minutes on two CPU cores, with a progress
# bar); afterwards it loads in a fraction of a second, and the chapter runs in under a minute.

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
import time

import matplotlib.pyplot as plt
import torch

from diffusion_lib import (
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

torch.manual_seed(0)
chapter_start = time.perf_counter()

# %% [markdown]
# ## From perception to generation
#
# For most of its history, machine learning was about **perception**: given an input $\mathbf{x}$,
# say what it is. A classifier of handwritten digits learns $p(y \mid \mathbf{x})$, the probability
# of each label $y \in \{0, \dots, 9\}$ given an image; speech recognition, object detection and
# spam filters are of the same kind. Such models are called **discriminative** (判别式): they
# only need to find the features that separate the classes, and they may ignore everything else
# about the input.
#
# A **generative** model (生成式模型) learns the distribution of the data itself, $p(\mathbf{x})$,
# or a conditional one such as $p(\mathbf{x} \mid y)$ or $p(\mathbf{x} \mid \text{a caption})$, and
# can *draw samples* from it: new images that look like the training images without being copies
# of them. The two are linked by Bayes' rule,
#
# $$
# p(y \mid \mathbf{x}) = \frac{p(\mathbf{x} \mid y)\, p(y)}{\sum_{y'} p(\mathbf{x} \mid y')\, p(y')} ,
# $$ (aigc-bayes)
#
# so a class-conditional generative model can also classify, while a classifier cannot generate.
# Generation is the harder task because the output is much larger than the input of a decision. On
# the book's data set, scikit-learn's $8 \times 8$ handwritten digits, a classifier's answer is one
# of 10 labels, at most $\log_2 10 \approx 3.3$ bits. An image has 64 pixels with 17 grey levels
# each, so there are $17^{64} \approx 10^{79}$ possible images, about as many as atoms in the
# observable universe, and a generator must put its probability on the tiny fraction of them that
# look like digits. Describing one image takes up to $64\log_2 17 \approx 262$ bits. The next cell
# confirms these numbers on the data.

# %%
digits_all = data.digits("all")
levels = torch.unique(digits_all.images)
n_pixels = digits_all.images[0].numel()
print(
    f"{len(digits_all.images)} images of shape {tuple(digits_all.images.shape[1:])}, "
    f"{len(levels)} grey levels:\n{[round(v, 3) for v in levels[:4].tolist()]} ... "
    f"{levels[-1].item():.0f}"
)
check(
    "the digits have 17 grey levels, multiples of 1/8 in [-1, 1]",
    levels,
    -1 + torch.arange(17) / 8,
    atol=1e-6,
)
bits_label, bits_image = math.log2(10), n_pixels * math.log2(len(levels))
log10_images = n_pixels * math.log10(len(levels))  # 17^64 = 10^(64 log10 17)
print(
    f"a label carries at most {bits_label:.2f} bits; "
    f"an image up to {bits_image:.1f} bits\n"
    f"({len(levels)}^{n_pixels} = 10^{log10_images:.1f} possible images)"
)
check("a label: log2 10 ≈ 3.3 bits", bits_label, 3.3, atol=0.05)
_ = check(
    "64 pixels; 17^64 ≈ 10^79 possible images; 64 log2 17 ≈ 262 bits per image",
    [n_pixels, log10_images, bits_image],
    [64, 79, 262],
    atol=0.5,
)

# %% [markdown]
# The deep-learning era began with perception (image classification, {cite:t}`krizhevsky2012imagenet`),
# and the same tools (large networks, large data sets, gradient descent) were soon turned to
# generation. Three ideas made generation work at scale: **adversarial training**, in which a
# generator learns to fool a discriminator {cite}`goodfellow2014gan`; **likelihood-based models**
# that maximise (a bound on) $\log p(\mathbf{x})$, such as variational autoencoders
# {cite}`kingma2014vae`, autoregressive models {cite}`vandenoord2016pixelrnn,vaswani2017attention`
# and normalizing flows {cite}`dinh2017realnvp`; and **diffusion models**, which learn to reverse
# a process that gradually turns data into noise {cite}`sohl2015deep,ho2020ddpm`. A fourth idea,
# **contrastive learning** of images together with their captions {cite}`radford2021clip`,
# connected generation to language, and the combination is what the public calls AIGC:
# type a sentence, get a picture.

# %% [markdown]
# ## Where AIGC is used
#
# | Modality | What is generated | Examples | In this book |
# |---|---|---|---|
# | Images | pictures from a text prompt; edits, inpainting, super-resolution | DALL·E 2 {cite}`ramesh2022dalle2`, Imagen {cite}`saharia2022imagen`, Stable Diffusion {cite}`rombach2022ldm`, SDEdit {cite}`meng2022sdedit` | chapters 4–7 ({doc}`04_forward_process`), and 11–14 |
# | Text | answers, summaries, translations, dialogue | GPT-3 {cite}`brown2020gpt3`, InstructGPT, whose training recipe ChatGPT follows {cite}`ouyang2022instructgpt` | autoregressive models, in this chapter only |
# | Audio | speech, music, sound effects | WaveNet {cite}`vandenoord2016wavenet`, DiffWave {cite}`kong2021diffwave` | chapter 15 |
# | Video | short clips from a prompt, frame interpolation | Video Diffusion Models {cite}`ho2022video` | chapter 15 |
# | Code | completions, whole functions from a description | Codex, the model behind GitHub Copilot {cite}`chen2021codex` | not covered |
#
# The same model families serve all five rows. Text and code are generated **autoregressively**,
# one token at a time, each drawn from $p(\text{next token} \mid \text{tokens so far})$. Many of
# today's image, audio and video generators are **diffusion models**, the subject of most of this
# book, which start from random noise and remove it in many small steps. Text-to-image systems
# join the two worlds: a text encoder (often CLIP's) turns the prompt into vectors that condition
# the image generator.

# %% [markdown]
# ## Why it matters
#
# **Productivity.** Generated drafts replace the slowest part of many tasks: the first version.
# In a preregistered experiment with 453 college-educated professionals doing occupation-specific
# writing tasks, those given ChatGPT took 40% less time and produced work graded 18% higher by
# independent evaluators {cite}`noy2023experimental`. In a controlled experiment with GitHub
# Copilot, developers asked to implement an HTTP server in JavaScript finished 55.8% faster than a
# control group {cite}`peng2023copilot`. Both studies measure short, well-defined tasks; the
# effects on long projects are still being measured.
#
# **Creativity.** Generative models turn rough intent into finished artefacts and make
# exploration cheap. With SDEdit {cite}`meng2022sdedit` a few coloured strokes become a realistic
# scene: noise is added to the sketch and a diffusion model removes it again, keeping the layout
# and inventing the detail (chapter 14 builds this). Text-to-image models produce many
# variations of a prompt in seconds, and inpainting edits one region of a photograph while leaving
# the rest intact {cite}`rombach2022ldm`. The person decides what to keep; the model supplies the
# options.
#
# **The road to more general AI.** A generative model must capture everything about its data,
# not just the features that separate classes, and that turns out to make it broadly useful.
# GPT-3, trained only to predict the next token, translates, answers questions and does simple
# arithmetic when shown a few examples in its prompt, without any further training
# {cite}`brown2020gpt3`. CLIP, trained to match images with their captions, classifies ImageNet
# zero-shot as accurately as the original ResNet-50, without using any of the 1.28 million
# labelled training images that ResNet-50 was trained on {cite}`radford2021clip`. One model
# pretrained on broad data and adapted to many tasks is what {cite:t}`bommasani2021opportunities`
# call a *foundation model*. Generated content also raises hard questions (deepfakes, copyright,
# bias, the cost of compute), taken up in chapter 16.

# %% [markdown]
# ## A map of generative models
#
# The diagram shows the model families of the book and how the big text-to-image systems are
# assembled from them. Every arrow is an idea that flowed from one to the other; each node names
# the chapter that builds it, and in the HTML book the nodes of the chapters already written are
# links.
#
# ```mermaid
# flowchart TB
#     VAE["VAE (2013)<br/>the ELBO: ch. 2"]
#     FLOW["Normalizing flows (2014)<br/>change of variables: ch. 2"]
#     AR["Autoregressive models<br/>PixelRNN, Transformer, GPT"]
#     GAN["GANs (2014)<br/>ch. 3"]
#     DIFF["Diffusion models (2015, 2020)<br/>ch. 4–7"]
#     SDE["Scores and SDEs<br/>ch. 8"]
#     CLIP["CLIP (2021)<br/>ch. 10"]
#     GUIDE["Guidance<br/>ch. 11"]
#     DALLE["DALL·E (2021)<br/>autoregressive"]
#     SD["Stable Diffusion<br/>latent diffusion: ch. 12"]
#     DALLE2["DALL·E 2 (unCLIP)<br/>ch. 13"]
#     GAN -->|"the bar to beat, FID"| DIFF
#     VAE -->|"ELBO"| DIFF
#     FLOW -->|"exact likelihood"| SDE
#     DIFF ---|"one model, two views"| SDE
#     VAE -->|"autoencoder for the latent space"| SD
#     AR -->|"image tokens"| DALLE
#     CLIP -->|"reranking"| DALLE
#     DIFF --> GUIDE
#     DIFF -->|"denoiser"| SD
#     DIFF -->|"decoder and prior"| DALLE2
#     GUIDE --> SD
#     GUIDE --> DALLE2
#     CLIP -->|"text encoder"| SD
#     CLIP -->|"image embeddings"| DALLE2
#     click VAE "02_probability_toolkit.html" "Chapter 2: the probability toolkit"
#     click FLOW "02_probability_toolkit.html" "Chapter 2: the probability toolkit"
#     click GAN "03_gans.html" "Chapter 3: GANs"
#     click DIFF "04_forward_process.html" "Chapter 4: the forward process"
# ```
#
# | Node | What it is | Chapter |
# |---|---|---|
# | VAE | a latent-variable model trained with the evidence lower bound {cite}`kingma2014vae` | {doc}`02_probability_toolkit` (the ELBO); the KL-VAE of chapter 12 |
# | Normalizing flows | invertible networks with exact likelihoods by the change-of-variables formula {cite}`dinh2015nice,dinh2017realnvp` | {doc}`02_probability_toolkit`; {doc}`08_score_and_sde` |
# | Autoregressive models | one variable at a time, $p(\mathbf{x}) = \prod_i p(x_i \mid x_{<i})$ {cite}`vandenoord2016pixelrnn,vaswani2017attention` | this chapter |
# | GANs | a generator trained against a discriminator {cite}`goodfellow2014gan` | {doc}`03_gans` |
# | Diffusion models | learn to reverse a gradual noising process {cite}`sohl2015deep,ho2020ddpm` | {doc}`04_forward_process`, {doc}`05_reverse_process_vlb`, {doc}`06_training_ddpm`, {doc}`07_fast_sampling` |
# | Scores and SDEs | the same models as gradients of log-densities and stochastic differential equations {cite}`song2019generative,song2021sde` | {doc}`08_score_and_sde` |
# | CLIP | image and text encoders trained contrastively {cite}`radford2021clip` | chapter 10 |
# | Guidance | trading diversity for fidelity with a classifier or without one {cite}`dhariwal2021beat,ho2022classifierfree` | chapter 11 |
# | DALL·E | a Transformer over text and image tokens, samples reranked by CLIP {cite}`ramesh2021dalle` | this chapter |
# | Stable Diffusion | diffusion in the latent space of an autoencoder, conditioned on text {cite}`rombach2022ldm` | chapter 12 |
# | DALL·E 2 | a prior from CLIP text to CLIP image embeddings and a diffusion decoder {cite}`ramesh2022dalle2` | chapter 13 |
#
# GANs matter to diffusion models in two ways: for years they set the standard of sample quality
# that likelihood-based models failed to reach, until guided diffusion beat them on ImageNet
# {cite}`dhariwal2021beat`; and the Fréchet distance used to compare both was introduced for GANs
# {cite}`heusel2017gans`.

# %% [markdown]
# ## A timeline
#
# The milestones, one row each: the model, its family, the year of its first public version and
# its arXiv identifier, whose first four digits encode the year and month of submission. The
# figure is drawn from this table. Papers often appear at a conference in the year after their
# arXiv version (the latent diffusion paper, for example, was posted in December 2021 and
# published at CVPR 2022); the timeline uses the arXiv date. The sources are
# {cite}`kingma2014vae,goodfellow2014gan,dinh2015nice,sohl2015deep,vandenoord2016pixelrnn,dinh2017realnvp,vandenoord2016wavenet,vaswani2017attention,karras2019stylegan,song2019generative,brown2020gpt3,ho2020ddpm,song2021ddim,song2021sde,ramesh2021dalle,radford2021clip,nichol2021improved,dhariwal2021beat,chen2021codex,nichol2022glide,rombach2022ldm,ramesh2022dalle2,saharia2022imagen,ho2022classifierfree,lu2022dpmsolverpp`.

# %%
# (name, family, year of the first arXiv version, arXiv id, citation key)
MILESTONES = [
    ("VAE", "VAEs and flows", 2013, "1312.6114", "kingma2014vae"),
    ("GAN", "GANs", 2014, "1406.2661", "goodfellow2014gan"),
    ("NICE (flow)", "VAEs and flows", 2014, "1410.8516", "dinh2015nice"),
    ("Diffusion (Sohl-Dickstein)", "Diffusion", 2015, "1503.03585", "sohl2015deep"),
    ("PixelRNN", "Autoregressive", 2016, "1601.06759", "vandenoord2016pixelrnn"),
    ("RealNVP", "VAEs and flows", 2016, "1605.08803", "dinh2017realnvp"),
    ("WaveNet", "Autoregressive", 2016, "1609.03499", "vandenoord2016wavenet"),
    ("Transformer", "Autoregressive", 2017, "1706.03762", "vaswani2017attention"),
    ("StyleGAN", "GANs", 2018, "1812.04948", "karras2019stylegan"),
    ("Score matching (NCSN)", "Diffusion", 2019, "1907.05600", "song2019generative"),
    ("GPT-3", "Autoregressive", 2020, "2005.14165", "brown2020gpt3"),
    ("DDPM", "Diffusion", 2020, "2006.11239", "ho2020ddpm"),
    ("DDIM", "Diffusion", 2020, "2010.02502", "song2021ddim"),
    ("Score SDE", "Diffusion", 2020, "2011.13456", "song2021sde"),
    ("DALL·E", "Text-to-image", 2021, "2102.12092", "ramesh2021dalle"),
    ("Improved DDPM", "Diffusion", 2021, "2102.09672", "nichol2021improved"),
    ("CLIP", "Text-to-image", 2021, "2103.00020", "radford2021clip"),
    ("Guided diffusion", "Diffusion", 2021, "2105.05233", "dhariwal2021beat"),
    ("Codex", "Autoregressive", 2021, "2107.03374", "chen2021codex"),
    ("GLIDE", "Text-to-image", 2021, "2112.10741", "nichol2022glide"),
    ("Latent diffusion", "Text-to-image", 2021, "2112.10752", "rombach2022ldm"),
    ("DALL·E 2", "Text-to-image", 2022, "2204.06125", "ramesh2022dalle2"),
    ("Imagen", "Text-to-image", 2022, "2205.11487", "saharia2022imagen"),
    (
        "Classifier-free guidance",
        "Diffusion",
        2022,
        "2207.12598",
        "ho2022classifierfree",
    ),
    ("DPM-Solver++", "Diffusion", 2022, "2211.01095", "lu2022dpmsolverpp"),
]


def arxiv_date(arxiv_id):
    """The month of an arXiv identifier YYMM.NNNNN as a decimal year (mid-month)."""
    yymm = arxiv_id.split(".")[0]
    return 2000 + int(yymm[:2]) + (int(yymm[2:]) - 0.5) / 12


dates = [arxiv_date(a) for _, _, _, a, _ in MILESTONES]
check(
    "each milestone's year is the year encoded in its arXiv identifier",
    [math.floor(d) for d in dates],
    [year for _, _, year, _, _ in MILESTONES],
    atol=0,
)
check_le(
    "the table is in chronological order (no arXiv month before the previous one's)",
    dates[:-1],
    dates[1:],
)
years = {name: year for name, _, year, _, _ in MILESTONES}
_ = check(
    "the milestones span 2013–2022; Sohl-Dickstein et al. came 5 years before DDPM",
    [
        min(years.values()),
        max(years.values()),
        years["DDPM"] - years["Diffusion (Sohl-Dickstein)"],
    ],
    [2013, 2022, 5],
    atol=0,
)

# %%
FAMILY_COLOURS = {
    "GANs": "C3",
    "VAEs and flows": "C2",
    "Autoregressive": "C1",
    "Diffusion": "C0",
    "Text-to-image": "C4",
}
heights = [
    2.6,
    -2.2,
    1.6,
    -1.2,
    3.4,
    -3.0,
    0.8,
    -0.6,
    4.2,
    -3.8,
]  # stem heights, cycled to avoid overlaps
fig, ax = plt.subplots(figsize=(12, 6))
ax.axhline(0, color="k", lw=1)
for k, ((name, family, year, _, _), d) in enumerate(zip(MILESTONES, dates)):
    if k and dates[k - 1] == d:
        d += 0.05  # the same month as the previous milestone: move the stem aside
    h = heights[k % len(heights)]
    colour = FAMILY_COLOURS[family]
    ax.vlines(d, 0, h, color=colour, lw=1)
    ax.plot(d, 0, "o", color=colour, ms=6)
    ax.annotate(
        f"{name} ({year})",
        (d, h),
        xytext=(0, 4 if h > 0 else -4),
        textcoords="offset points",
        ha="center",
        va="bottom" if h > 0 else "top",
        fontsize=8.5,
        color=colour,
        fontweight="bold",
    )
for family, colour in FAMILY_COLOURS.items():
    ax.plot([], [], "o", color=colour, label=family)
ax.set(
    xlim=(2013, 2023.3),
    ylim=(-4.8, 5),
    xlabel="year of the first arXiv version",
    yticks=[],
)
ax.set_title("Milestones of generative AI, 2013–2022", pad=30)
ax.set_xticks(range(2013, 2024))
ax.spines[["left", "right", "top"]].set_visible(False)
ax.legend(
    loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=5, fontsize=9, frameon=False
)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure: milestones of generative modelling by the month of their first arXiv version, coloured
# by family; the vertical position only keeps the labels apart.* Two things stand out. The
# families are older than their fame: the diffusion model of {cite:t}`sohl2015deep` appeared in
# 2015, five years before DDPM {cite}`ho2020ddpm` made it competitive. And the pace: between the
# summer of 2020 and the end of 2022 diffusion models went from matching GANs on small images to
# faster samplers (DDIM, DPM-Solver++), guidance, and text-to-image systems used by millions.

# %% [markdown]
# ## A first taste
#
# Here is a complete diffusion model at work. The library's model zoo holds `digits-ddpm`, a small
# U-Net trained on the 1,437 training digits; the sampler starts from 64 images of pure Gaussian
# noise and removes the noise in 1,000 small steps. Three calls: load, sample, show.

# %%
m = zoo.load("digits-ddpm")
x = samplers.ddpm(
    m.model,
    m.diffusion,
    (64, 1, 8, 8),
    generator=torch.Generator().manual_seed(0),
    progress=False,
)
fig, ax = plt.subplots(figsize=(5, 5))
viz.show_images(x, nrow=8, ax=ax, title="64 digits generated by digits-ddpm")
plt.show()

# %% [markdown]
# *Figure: 64 samples of `digits-ddpm`, each generated from its own random noise by 1,000
# denoising steps.* Most are clearly digits, of nearly every class, and none is a copy of a
# training image, as the next cell measures. Each line above is explained in a later chapter:
#
# | Code | What it does | Explained in |
# |---|---|---|
# | `zoo.load("digits-ddpm")` | loads (or trains, the first time) a U-Net $\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)$ that predicts the noise in a noisy digit, trained with the loss $L_{\text{simple}}$ | {doc}`06_training_ddpm` (the network and its training), {doc}`05_reverse_process_vlb` (the loss) |
# | `m.diffusion` | the forward process: 1,000 steps of a linear noise schedule $\beta_t$, and $\bar\alpha_t = \prod_{s \le t}(1 - \beta_s)$ | {doc}`04_forward_process` |
# | `samplers.ddpm(...)` | ancestral sampling: start from $\mathbf{x}_T \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$, then draw $\mathbf{x}_{t-1} \sim p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$ for $t = T, \dots, 1$ | {doc}`05_reverse_process_vlb` (the reverse step), {doc}`06_training_ddpm` (Algorithm 2) |
# | `(64, 1, 8, 8)` | 64 images, one channel, $8 \times 8$ pixels, values in $[-1, 1]$ | {doc}`04_forward_process` (the data) |
# | 1,000 network calls | why sampling is slow, and samplers that need only tens of steps (DDIM, DPM-Solver++) | {doc}`07_fast_sampling` |
# | `viz.show_images` | tiles the images into one picture | |
#
# How good are these samples? A small classifier of the digits, also from the zoo, is the judge:
# it should recognise the samples with confidence, find (nearly) all ten classes, and the samples
# should be about as far from their nearest training digit as genuinely new digits (the test
# digits) are.
# Chapter 6 makes these measurements precise; {doc}`09_evaluating_generators` discusses them.

# %%
train, test = data.digits("train"), data.digits("test")
check(
    "digits-ddpm: 1,437 training digits; T = 1,000 steps of the linear schedule",
    [
        len(train.images),
        m.diffusion.num_timesteps,
        (m.diffusion.betas - get_beta_schedule("linear", 1000)).abs().max(),
    ],
    [1437, 1000, 0.0],
    atol=1e-12,
)
classifier = zoo.load("digits-classifier").model
scores = metrics.classifier_scores(x, classifier)
scores_test = metrics.classifier_scores(test.images, classifier)
counts = [round(f * len(x)) for f in scores["class_histogram"].tolist()]
n_classes = sum(c > 0 for c in counts)
print(
    f"mean top-class probability: samples {scores['mean_top_prob']:.3f}, "
    f"test digits {scores_test['mean_top_prob']:.3f}\nsamples per class: {counts}"
)
nearest_sample = torch.cdist(x.flatten(1), train.images.flatten(1)).min(1).values
nearest_test = (
    torch.cdist(test.images.flatten(1), train.images.flatten(1)).min(1).values
)
distance_ratio = (nearest_sample.median() / nearest_test.median()).item()
print(
    "distance to the nearest training digit (median): "
    f"samples {nearest_sample.median():.2f}, test digits {nearest_test.median():.2f}\n"
    f"smallest for a sample: {nearest_sample.min():.2f} "
    f"(for a test digit: {nearest_test.min():.2f})"
)
# Claims about the trained models (digits-ddpm, digits-classifier), with margins
# measured over training seeds: the values under DIFFUSION_LIB_SEED_SHIFT = 0, 1, 2
# are given above each claim.
# measured: 0.981, 0.982, 0.988 (on the test digits: 0.995, 0.994, 0.994)
check_outcome(
    "the classifier recognises the samples (mean top-class probability)",
    scores["mean_top_prob"],
    at_least=0.95,
)
# measured: 10, 10, 10 (a class has 6.4 samples on average, so one may be missing)
check_outcome("digit classes among the 64 samples", n_classes, at_least=9)
# measured: 1.050, 1.028, 1.081 (a copying model gives less, a noisy one far more)
check_outcome(
    "samples are as far from the training set as test digits (ratio of medians)",
    distance_ratio,
    at_least=0.8,
    at_most=1.3,
)
# measured: 1.253, 1.320, 1.342 (a copy is at 0; the closest test digit is at 1.02)
_ = check_outcome(
    "no sample copies a training digit (smallest distance to one)",
    nearest_sample.min(),
    at_least=0.5,
)
glue("ch1_top_prob", scores["mean_top_prob"])
glue("ch1_top_prob_test", scores_test["mean_top_prob"])
glue("ch1_n_classes", n_classes)
glue("ch1_distance_ratio", distance_ratio)
glue("ch1_min_distance", nearest_sample.min().item())
glue("ch1_min_distance_test", nearest_test.min().item())

# %% [markdown]
# On these 64 samples the classifier's mean top-class probability is
# {glue:text}`ch1_top_prob:.3f` (on the real test digits {glue:text}`ch1_top_prob_test:.3f`),
# {glue:text}`ch1_n_classes:d` of the ten classes appear, the median distance from a sample to
# its nearest training digit is {glue:text}`ch1_distance_ratio:.2f` times that of a test digit,
# and no sample comes closer to a training digit than {glue:text}`ch1_min_distance:.2f` (a copy
# would be at 0; the closest test digit is at {glue:text}`ch1_min_distance_test:.2f`). The model
# is one draw from its training: trained with another seed, on another processor or with another
# build of PyTorch, it gives other samples and other numbers. The claims above are therefore
# checked with margins measured over several training seeds, and they hold for each of them.

# %% [markdown]
# ## How to read and run this book
#
# **The parts.** Part I (this chapter and {doc}`02_probability_toolkit`) sets the stage. Part II
# builds GANs ({doc}`03_gans`). Part III is the core: the forward process
# ({doc}`04_forward_process`), the reverse process and its variational bound
# ({doc}`05_reverse_process_vlb`), training a DDPM ({doc}`06_training_ddpm`), fast sampling
# ({doc}`07_fast_sampling`), scores, SDEs and flows ({doc}`08_score_and_sde`) and the evaluation of
# generators ({doc}`09_evaluating_generators`). Part IV adds text: CLIP, guidance, latent
# diffusion and unCLIP, ending with miniature versions of Stable Diffusion and DALL·E 2
# (chapters 10–13). Part V applies the models to editing, audio and video, and looks
# ahead (chapters 14–16).
#
# **Reading paths.** For the mathematics of diffusion models: 2 → 4 → 5 → 6 → 7. For a working
# understanding of text-to-image systems: 1 → 6 → 7, then chapters 10–12 when they appear. Each
# chapter states what it assumes at the top.
#
# **What a chapter looks like.** Every chapter opens with what you will learn and what it assumes.
# Derivations go one step per line, each step justified in words, and the equations that are
# used again carry a label and a number. **Every identity a derivation produces is checked right
# after it**: a short cell computes both sides and calls `check(claim, actual, expected, atol=…)`,
# which prints one line such as `✓ posterior variance equals Bayes' rule (max |error| 3.1e-09 ≤ 1e-06)`
# and raises an error, stopping the notebook, when the two sides disagree. Things are first built
# by hand in a few lines and then imported from the tested library `diffusion_lib`, with a check
# that the two agree. Boxes headed *Common mistakes* collect the errors found in popular
# write-ups; the {doc}`../book/errata` page checks each of them in code. Each chapter ends with a
# summary and exercises whose solutions are folded away. The {doc}`../book/notation` page lists
# every symbol, the {doc}`../book/glossary` gives every technical term in English and Chinese,
# the {doc}`../book/faq` answers the questions readers ask most, and the
# {doc}`../book/bibliography` lists every work cited.
#
# **Running the chapters.** Everything runs on a laptop CPU, offline: the data ship with the code
# (the digits come with scikit-learn; the other data sets are generated), and the trained models
# are trained on first use and cached. A GPU is optional.
#
# - **In Jupyter.** The chapters are stored as plain Python files in Jupytext's *py:percent*
#   format (`chapters/01_what_is_aigc.py`). Start `jupyter lab` in the book's environment,
#   right-click a chapter and choose *Open With → Jupytext Notebook*; edits are saved back to the
#   `.py` file. Or run `make notebooks` to get ordinary `.ipynb` copies in `build/notebooks/`.
# - **In Colab.** Upload one of those `.ipynb` files to Colab and run it. Its first code cell
#   installs the book's library when it is missing and does nothing elsewhere. Choose a GPU
#   runtime if you like; the chapters do not need one.
# - **As a book.** From a clone of the repository, `make book` creates a virtual environment
#   `.venv` (installing PyTorch and the requirements on first use), executes every chapter and
#   writes the HTML book to `_build/html/index.html`. `make test` runs the linters, the library's
#   unit tests, every chapter as a test, and the book build with warnings treated as errors. The
#   repository's README explains how to choose a CPU-only or a CUDA build of PyTorch.
# - **The library alone.** `python -m diffusion_lib list` lists the zoo's models,
#   `python -m diffusion_lib sample digits-ddpm --n 64 --out samples.npz --grid samples.png`
#   samples from one without opening a notebook.

# %%
print(f"chapter 1 ran in {time.perf_counter() - chapter_start:.1f} s")

# %% [markdown]
# ## Summary
#
# - AIGC is content produced by generative models: models of $p(\mathbf{x})$ or
#   $p(\mathbf{x} \mid \text{condition})$ that can be sampled. Perception learns
#   $p(y \mid \mathbf{x})$; generation must describe everything about $\mathbf{x}$ (up to 262 bits
#   for an $8 \times 8$ digit against 3.3 bits for its label), and by Bayes' rule {eq}`aigc-bayes`
#   a conditional generator also classifies.
# - It is used for images, text, audio, video and code, and it matters for productivity (40% less
#   time on writing tasks, 55.8% faster on a coding task in controlled experiments), for
#   creativity (sketch-to-image, inpainting, cheap variations) and as a route to general-purpose
#   models (few-shot GPT-3, zero-shot CLIP).
# - The families (VAEs, flows, autoregressive models, GANs, diffusion models) and CLIP combine
#   into the text-to-image systems: Stable Diffusion is diffusion in an autoencoder's latent space
#   with a CLIP text encoder and guidance; DALL·E 2 is a CLIP-embedding prior plus a diffusion
#   decoder.
# - Three calls of `diffusion_lib` sample 64 new digits from a trained DDPM; a classifier
#   recognises them, and they are not copies of the training set.
# - Each chapter derives, then checks: read it in Jupyter or Colab, or build the whole book with
#   `make book`.

# %% [markdown]
# ## Exercises
#
# **1. Counting bits.** A colour image of $256 \times 256$ pixels with 8 bits per channel: how many
# bits does it take to store it raw, and how many possible images are there (as a power of 10)?
# Compare with the label of an ImageNet classifier (1,000 classes).
#
# ````{dropdown} Solution
# $256 \cdot 256 \cdot 3 = 196{,}608$ numbers of 8 bits, so $1{,}572{,}864$ bits raw, and
# $256^{196608} = 10^{196608 \log_{10} 256} \approx 10^{473{,}480}$ possible images. An ImageNet
# label carries at most $\log_2 1000 \approx 10$ bits. A good generative model needs far fewer
# bits than the raw size (it compresses), but its output is still five orders of magnitude larger
# than a classifier's.
#
# ```python
# n = 256 * 256 * 3
# print(8 * n, n * math.log10(256), math.log2(1000))   # 1572864  473479.9...  9.97
# ```
# ````
#
# **2. A generator that classifies.** Suppose you had class-conditional densities $p(\mathbf{x} \mid y)$
# for the ten digits and the class frequencies $p(y)$. Write down the classifier they imply. Why
# can a classifier $p(y \mid \mathbf{x})$ not be turned into a generator in the same way?
#
# ````{dropdown} Solution
# By {eq}`aigc-bayes`, $\hat y(\mathbf{x}) = \arg\max_y p(\mathbf{x} \mid y)\,p(y)$ (the
# denominator does not depend on $y$). Going the other way needs $p(\mathbf{x} \mid y) =
# p(y \mid \mathbf{x})\,p(\mathbf{x})/p(y)$, which requires $p(\mathbf{x})$, the distribution of
# the images themselves, which is exactly what a classifier never learns.
# ````
#
# **3. Place a system on the map.** Imagen {cite}`saharia2022imagen` generates images with a
# cascade of diffusion models conditioned on a frozen text encoder (T5, a language model trained
# on text only) and uses classifier-free guidance. Which nodes and arrows of the concept map does
# it use, and which does it not?
#
# ````{dropdown} Solution
# It uses *Diffusion models* (a base model and super-resolution models, in pixel space) and
# *Guidance*. It does not use CLIP for its text encoder, and it does not use a latent space, so
# neither the VAE → Stable Diffusion arrow nor the CLIP arrows apply; its text encoder is a
# Transformer trained on text alone (T5), not a contrastive image–text model.
# ````
#
# **4. Timing the first taste.** Time `samplers.ddpm` for 16, 64 and 256 images. Is the time
# proportional to the number of images? Estimate how long 10,000 digits would take, and read
# chapter 7 for a way to make it 50 times faster.
#
# ````{dropdown} Solution
# ```python
# for n in (16, 64, 256):
#     t0 = time.perf_counter()
#     g = torch.Generator().manual_seed(0)
#     samplers.ddpm(m.model, m.diffusion, (n, 1, 8, 8), generator=g, progress=False)
#     print(n, f"{time.perf_counter() - t0:.1f} s")
# ```
# On a small CPU the time grows much more slowly than the number of images for small batches,
# because each of the 1,000 steps has a fixed overhead (launching the network's layers), and
# roughly linearly for large ones. Extrapolate from the largest batch. With 20 steps of a
# deterministic sampler instead of 1,000 (chapter 7) the same network is called 50 times less
# often.
# ````
#
# **5. Add a milestone.** Add a row for DPM-Solver {cite}`lu2022dpmsolver` (arXiv 2206.00927) to
# `MILESTONES` and redraw the timeline. Which family is it, and does the check on the arXiv year
# still pass?
#
# ````{dropdown} Solution
# It is a diffusion sampler, family `"Diffusion"`, year 2022. Insert it after Imagen (2205) and
# before classifier-free guidance (2207) to keep the order:
# `("DPM-Solver", "Diffusion", 2022, "2206.00927", "lu2022dpmsolver")`. Both checks pass; with the
# row in the wrong place, the order check fails and names the offending entry.
# ````
