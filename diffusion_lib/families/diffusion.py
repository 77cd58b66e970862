"""The diffusion family: a denoising network (U-Net or MLP) with its GaussianDiffusion, trained
with L_simple (chapters 5–6) and sampled by DDPM, DDIM or DPM-Solver++ (chapters 6–7); a
class-conditional one may learn a null label as well (conditioning dropout) and be sampled with
classifier-free guidance (chapter 11)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import nn

from .. import editing, guidance, samplers, zoo
from ..diffusion import MODEL_VAR_TYPES, GaussianDiffusion, check_prediction_type
from ..family import (
    Family,
    Trained,
    as_arrays,
    bind_labels,
    check_counts,
    register_family,
    sample_in_batches,
)
from ..nets import DENOISERS
from ..sampling import (
    GUIDANCE_OPTION,
    LABEL_OPTION,
    SAMPLER_OPTIONS,
    SAMPLERS,
    describe_sampler,
    sampler_options,
)
from ..schedules import get_beta_schedule

__all__ = [
    "DiffusionSpec",
    "DiffusionFamily",
    "NETWORKS",
    "ReferenceSamples",
    "reference_samples",
    "drop_labels",
]

# The denoising networks a spec's ``network["type"]`` may name (shared with the flow family).
NETWORKS = DENOISERS


@dataclass(frozen=True)
class DiffusionSpec:
    """A diffusion model: its network and its process.

    Attributes:
        network: ``{"type": "unet" | "mlp", **constructor kwargs}`` (see :data:`NETWORKS`); a
            ``num_classes`` makes it class-conditional, trained on the data's labels.
        schedule, num_timesteps: the β schedule (:func:`~diffusion_lib.schedules.get_beta_schedule`).
        model_var_type: the reverse variance (:class:`~diffusion_lib.diffusion.GaussianDiffusion`).
        prediction_type: what the network predicts, ``"epsilon"``, ``"x0"`` or ``"v"``; the
            loss, the samplers and the likelihood read its output accordingly.
        label_dropout: the probability, in [0, 1), that a training label is replaced by the
            network's null label (conditioning dropout, Ho & Salimans 2022; chapter 11), so that
            one network learns ε(x_t, t, y) and ε(x_t, t, ∅) for classifier-free guidance. Above
            0 it needs a class-conditional network with ``"null_label": True``.
    """

    network: dict
    schedule: str = "linear"
    num_timesteps: int = 1000
    model_var_type: str = "fixed_small"
    prediction_type: str = "epsilon"
    label_dropout: float = 0.0


class ReferenceSamples(NamedTuple):
    """DDPM samples of a zoo model with every step, and the noise they started from."""

    x_T: torch.Tensor
    x0: torch.Tensor
    seconds_per_sample: float


class DiffusionFamily(Family):
    """Diffusion models (chapters 5–7). The cache holds the EMA denoiser."""

    name = "diffusion"
    spec_type = DiffusionSpec
    sample_options = (
        *SAMPLER_OPTIONS,
        LABEL_OPTION,
        GUIDANCE_OPTION,
    )
    sample_arrays = {
        "images": "float32 (N, C, H, W) in [0, 1], for image models",
        "points": "float32 (N, D) in data units, for models of points",
        "labels": "int64 (N,), the classes in turn (or --label), for class-conditional models",
    }
    outputs = {
        "ddpm_samples": "ancestral samples with all T steps, and the noise x_T they started from "
        "(kwargs: n, seed, batch_size)",
        "ddim_samples": "deterministic DDIM samples (η = 0, x̂_0 clipped for images), the classes in "
        "turn for a class-conditional model, optionally with classifier-free guidance and a zoo "
        "classifier's guidance (kwargs: n, seed, steps, spacing, guidance_scale, classifier, "
        "classifier_scale, batch_size); chapter 11",
    }

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        kind = spec.network.get("type") if isinstance(spec.network, dict) else None
        if kind not in NETWORKS:
            raise ValueError(
                f"network type must be one of {', '.join(map(repr, NETWORKS))} for a diffusion model, "
                f"got {kind!r}"
            )
        if spec.model_var_type not in MODEL_VAR_TYPES:
            raise ValueError(
                f"model_var_type must be one of {', '.join(MODEL_VAR_TYPES)}, got {spec.model_var_type!r}"
            )
        check_prediction_type(spec.prediction_type)
        dropout = spec.label_dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"label_dropout must be a number in [0, 1), got {dropout!r}")
        if dropout > 0 and (
            spec.network.get("num_classes") is None or spec.network.get("null_label") is not True
        ):
            raise ValueError(
                f"label_dropout {dropout!r} needs a class-conditional network with a null label "
                f"(num_classes and null_label=True), got num_classes={spec.network.get('num_classes')!r}, "
                f"null_label={spec.network.get('null_label')!r}"
            )

    def build(self, entry) -> nn.Module:
        spec = dict(entry.spec.network)
        kind = spec.pop("type")
        torch.manual_seed(entry.init_seed)
        return NETWORKS[kind](**spec)

    def process(self, entry) -> GaussianDiffusion:
        spec = entry.spec
        return GaussianDiffusion(
            get_beta_schedule(spec.schedule, spec.num_timesteps), model_var_type=spec.model_var_type
        )

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        diffusion = self.process(entry)
        prediction_type = entry.spec.prediction_type
        num_classes = entry.spec.network.get("num_classes")
        dropout = entry.spec.label_dropout

        def diffusion_loss(model, batch, generator):
            net = model
            if num_classes is not None:
                y = batch[1]
                if dropout > 0:  # no draw at 0, so models without a null label train as before
                    y = drop_labels(y, dropout, num_classes, generator)
                net = bind_labels(model, y)
            return diffusion.training_losses(
                net, batch[0], generator=generator, prediction_type=prediction_type
            )["loss"].mean()

        return self.train_network(
            entry, diffusion_loss, data, checkpoint=checkpoint, progress=progress, device=device
        )

    # ------------------------------------------------------------ sampling
    def sampling_options(self, entry, given: dict) -> dict:
        label, scale = _label_options(entry, given.get("label"), given.get("guidance"))
        options = sampler_options(given, entry.spec.num_timesteps)
        return {**options, "label": label, "guidance": scale}

    def sample(self, loaded, n, *, batch_size, generator, options) -> dict:
        entry = loaded.entry
        run = SAMPLERS[options["sampler"]].run

        def draw(net, size):
            return run(
                net,
                loaded.diffusion,
                (size, *entry.sample_shape),
                generator=generator,
                clip_denoised=len(entry.sample_shape) > 1,  # images live in [-1, 1]; points do not
                prediction_type=entry.spec.prediction_type,
                steps=options["steps"],
                eta=options["eta"],
                spacing=options["spacing"],
            )

        num_classes = entry.spec.network.get("num_classes")
        scale = options.get("guidance")
        bind = bind_labels
        if scale is not None and scale != 1.0:  # s = 1 is the conditional network itself

            def bind(model, y):
                return guidance.classifier_free(model, y, scale, null_label=num_classes)

        return sample_in_batches(
            loaded.model, n, batch_size, num_classes, draw, label=options.get("label"), bind=bind
        )

    # ------------------------------------------------------------ editing (chapter 14)
    edit_methods = editing.INPAINT_METHODS[::-1]  # RePaint first: the default

    def editing_options(self, entry, given: dict) -> dict:
        """RePaint by default, r = 10 resamplings of stretches j = 10 steps long over 250 levels
        (Lugmayr et al.'s settings); the replacement method takes r = 1. Unconditional image
        models only: a class-conditional one would need a label to complete towards."""
        if len(entry.sample_shape) != 3:
            raise ValueError(
                f"edit needs an image model; {entry.name!r} makes points of {entry.sample_shape}"
            )
        if entry.spec.network.get("num_classes") is not None:
            raise ValueError(f"edit needs an unconditional model; {entry.name!r} is class-conditional")
        method = given.get("method") or self.edit_methods[0]
        if method not in self.edit_methods:
            raise ValueError(f"--method must be one of {', '.join(self.edit_methods)}, got {method!r}")
        default_r = 10 if method == "repaint" else 1
        options = {
            "method": method,
            "resample": default_r if given.get("resample") is None else given["resample"],
            "jump": 10 if given.get("jump") is None else given["jump"],
            "steps": min(250, entry.spec.num_timesteps) if given.get("steps") is None else given["steps"],
        }
        if method == "replacement" and options["resample"] != 1:
            raise ValueError(
                f"--resample applies to repaint; the replacement method takes 1, got {options['resample']}"
            )
        T = entry.spec.num_timesteps
        if not 1 <= options["steps"] <= T:
            raise ValueError(f"--steps must be an int in [1, {T}] for {entry.name!r}, got {options['steps']}")
        editing.repaint_path(options["steps"], options["resample"], options["jump"])  # r, j >= 1
        return options

    def edit(self, loaded, images, mask, *, options, generator, batch_size) -> dict:
        x = torch.as_tensor(images, dtype=torch.float32) * 2.0 - 1.0
        mask = torch.as_tensor(mask, dtype=torch.float32)
        per_example = mask.ndim == 4 and mask.shape[0] == len(x) and len(x) > 1
        batches = []
        for first in range(0, len(x), batch_size):
            known = x[first : first + batch_size]
            part = mask[first : first + batch_size] if per_example else mask
            if bool((part == 1).all()):  # a mask per image that keeps these ones whole: nothing to do
                batches.append(known)
                continue
            batches.append(
                editing.inpaint(
                    loaded.model.eval(), loaded.diffusion, known, part,
                    method=options["method"], resample=options["resample"], jump=options["jump"],
                    steps=options["steps"], generator=generator,
                    prediction_type=loaded.entry.spec.prediction_type, progress=True,
                )
            )  # fmt: skip
        return as_arrays(torch.cat(batches))

    def describe_edit(self, options) -> str:
        """How ``edit`` filled in, for the command's summary line."""
        what = f"{options['method']} ({options['steps']} steps"
        if options["method"] == "repaint":
            what += f", r = {options['resample']}, j = {options['jump']}"
        return what + ")"

    def describe(self, entry, options) -> str:
        what = describe_sampler(options, entry.spec.num_timesteps)
        if options.get("label") is not None:
            what += f", label {options['label']}"
        if options.get("guidance") is not None:
            what += f", guidance scale {options['guidance']:g}"
        return what

    # ------------------------------------------------------------ outputs
    def output_models(self, name: str, kwargs: dict) -> tuple:
        classifier = kwargs.get("classifier") if name == "ddim_samples" else None
        return (classifier,) if isinstance(classifier, str) else ()

    def output(self, loaded, name, *, progress=True, **kwargs) -> dict:
        if name == "ddim_samples":
            return _ddim_samples(loaded, progress=progress, **kwargs)
        if name != "ddpm_samples":
            return super().output(loaded, name, progress=progress, **kwargs)
        n, seed, batch_size = _check_sample_kwargs(**kwargs)
        shape = (n, *loaded.entry.sample_shape)
        x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        noise = torch.Generator().manual_seed(seed + 1)
        clip = len(loaded.entry.sample_shape) > 1
        batches = [
            samplers.ddpm(loaded.model, loaded.diffusion, x_T[k : k + batch_size].shape,
                          x_T=x_T[k : k + batch_size], generator=noise, clip_denoised=clip,
                          progress=progress, prediction_type=loaded.entry.spec.prediction_type)
            for k in range(0, n, batch_size)
        ]  # fmt: skip
        return {"x_T": x_T, "x0": torch.cat(batches)}


register_family(DiffusionFamily())


def drop_labels(
    y: torch.Tensor, probability: float, null_label: int, generator: torch.Generator
) -> torch.Tensor:
    """Conditioning dropout: each label replaced by ``null_label`` with ``probability``.

    Derived in chapter 11 (Ho & Salimans, 2022, Algorithm 1: "randomly
    discard conditioning to train unconditionally"). One uniform number per label is drawn from
    ``generator`` (on its device, then moved to y's), so a training run stays reproducible on
    every device.

    Args:
        y: integer labels (B,).
        probability: the dropout rate p in [0, 1).
        null_label: the label that means "no label" (the network's ``num_classes``).
        generator: the training run's generator.

    Returns:
        A new tensor like y, with about a fraction p of its entries set to ``null_label``.

    Raises:
        ValueError: probability outside [0, 1).
    """
    if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 <= probability < 1:
        raise ValueError(f"probability must be a number in [0, 1), got {probability!r}")
    dropped = torch.rand(y.shape, generator=generator, device=generator.device) < probability
    return torch.where(dropped.to(y.device), torch.full_like(y, null_label), y)


def _label_options(entry, label, scale) -> tuple:
    """``--label`` and ``--guidance`` checked against the model: (label or None, scale or None).

    A guidance scale is returned for a model with a null label (1.0 by default), None otherwise.
    """
    network = entry.spec.network
    num_classes = network.get("num_classes")
    if num_classes is None:
        for option, value in (("--label", label), ("--guidance", scale)):
            if value is not None:
                raise ValueError(
                    f"{option} applies to class-conditional models; {entry.name!r} is unconditional"
                )
        return None, None
    if label is not None and not 0 <= label < num_classes:
        raise ValueError(
            f"--label must be an int in [0, {num_classes - 1}] for {entry.name!r} ({num_classes} classes), "
            f"got {label}"
        )
    if network.get("null_label") is not True:
        if scale is not None:
            raise ValueError(
                f"--guidance needs a model with a null label (trained with label_dropout); {entry.name!r} "
                "has none"
            )
        return label, None
    if scale is not None and not math.isfinite(scale):
        raise ValueError(f"--guidance must be a finite number >= 0, got {scale}")
    return label, 1.0 if scale is None else float(scale)


def _check_sample_kwargs(*, n: int, seed: int = 0, batch_size: int = 500) -> tuple[int, int, int]:
    """The kwargs of the ``"ddpm_samples"`` output, checked: n, batch_size ints >= 1, seed >= 0."""
    check_counts(n=n, seed=seed, batch_size=batch_size)
    return n, seed, batch_size


def _ddim_samples(
    loaded,
    *,
    n: int,
    seed: int = 0,
    steps: int = 50,
    spacing: str = "linspace",
    guidance_scale: Optional[float] = None,
    classifier: Optional[str] = None,
    classifier_scale: Optional[float] = None,
    batch_size: int = 1000,
    progress: bool = True,
) -> dict:
    """The ``"ddim_samples"`` output: ``n`` deterministic DDIM samples from ``randn`` seeded ``seed``.

    Chapter 11 sweeps the guidance scale with these (derived there, eqs. (guid-cfg) and
    (guid-classifier)). x_T is ``randn((n, *sample_shape))`` from a generator seeded with
    ``seed``; a class-conditional model gets the labels 0, 1, …, cycling. ``guidance_scale`` is
    the classifier-free scale s of a model with a null label (None: the conditional network,
    s = 1; 0: the unconditional one); ``classifier``, the name of a zoo classifier of noisy inputs
    ``classifier(x_t, t)`` -> logits, adds classifier guidance with scale ``classifier_scale`` on
    top of that network (with guidance_scale 0: Dhariwal & Nichol's guided unconditional model).
    Samples are drawn ``batch_size`` at a time; a sample depends only on its own x_T and label,
    not on the batch. The classifier's cache key is part of the output's (see
    :meth:`DiffusionFamily.output_models`).

    Returns:
        ``{"x_T", "x0"}`` (images in [-1, 1]), and ``"labels"`` for a class-conditional model.

    Raises:
        ValueError: n, batch_size not ints >= 1; seed not an int >= 0; steps not an int in
            [1, T]; an unknown spacing; guidance_scale for a model without a null label, or not
            a finite number >= 0; a classifier without a scale or a scale without a classifier,
            or a classifier_scale that is not a finite number >= 0; a classifier for an
            unconditional or non-ε model, an unknown one, one whose inputs are not
            ``sample_shape``, or (at the first step) one that does not return logits (B, C).
    """
    entry = loaded.entry
    n, seed, batch_size = _check_sample_kwargs(n=n, seed=seed, batch_size=batch_size)
    T = entry.spec.num_timesteps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an int in [1, {T}] (the model's training steps), got {steps!r}")
    if spacing not in samplers.SPACINGS:
        raise ValueError(f"spacing must be one of {', '.join(samplers.SPACINGS)}, got {spacing!r}")
    num_classes = entry.spec.network.get("num_classes")
    if guidance_scale is not None:
        number = isinstance(guidance_scale, (int, float)) and not isinstance(guidance_scale, bool)
        if not number or not math.isfinite(guidance_scale) or guidance_scale < 0:
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale!r}")
        if num_classes is None or entry.spec.network.get("null_label") is not True:
            raise ValueError(
                f"guidance_scale needs a class-conditional model with a null label (trained with "
                f"label_dropout); {entry.name!r} has none"
            )
    if (classifier is None) != (classifier_scale is None):
        raise ValueError(
            "classifier and classifier_scale go together, got "
            f"classifier={classifier!r}, classifier_scale={classifier_scale!r}"
        )
    judge = None
    if classifier is not None:
        if num_classes is None:
            raise ValueError(f"classifier guidance needs a class-conditional model; {entry.name!r} is not")
        if entry.spec.prediction_type != "epsilon":
            raise ValueError(
                f"classifier guidance needs an ε-prediction model; {entry.name!r} predicts "
                f"{entry.spec.prediction_type!r}"
            )
        if not isinstance(classifier, str):
            raise ValueError(f"classifier must be the name of a zoo classifier, got {classifier!r}")
        number = isinstance(classifier_scale, (int, float)) and not isinstance(classifier_scale, bool)
        if not number or not math.isfinite(classifier_scale) or classifier_scale < 0:
            raise ValueError(f"classifier_scale must be a finite number >= 0, got {classifier_scale!r}")
        if tuple(zoo.entry(classifier).sample_shape) != tuple(entry.sample_shape):
            raise ValueError(
                f"classifier {classifier!r} takes inputs of shape {zoo.entry(classifier).sample_shape}, "
                f"not {entry.name!r}'s {entry.sample_shape}"
            )
        judge = zoo.load(classifier, progress=progress).model.eval()
    shape = (n, *entry.sample_shape)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(n) % num_classes if num_classes else None
    model = loaded.model.eval()
    batches = []
    for first in range(0, n, batch_size):
        x = x_T[first : first + batch_size]
        net = model
        if labels is not None:
            y = labels[first : first + batch_size]
            if guidance_scale is None:
                net = bind_labels(model, y)
            else:
                net = guidance.classifier_free(model, y, float(guidance_scale), num_classes)
            if judge is not None:
                net = guidance.classifier_guided(net, judge, loaded.diffusion, y, classifier_scale)
        batches.append(
            samplers.ddim(net, loaded.diffusion, x.shape, steps=steps, spacing=spacing, x_T=x,
                          clip_denoised=len(entry.sample_shape) > 1, progress=progress,
                          prediction_type=entry.spec.prediction_type)
        )  # fmt: skip
    out = {"x_T": x_T, "x0": torch.cat(batches)}
    if labels is not None:
        out["labels"] = labels
    return out


def reference_samples(
    name: str, n: int, *, seed: int = 0, batch_size: int = 500, progress: bool = True
) -> ReferenceSamples:
    """``n`` ancestral samples (all T steps) of a zoo diffusion model, computed once and cached.

    The reference against which chapter 7 measures the fast samplers, which then start from the
    same ``x_T`` (common random numbers). x_T is ``randn((n, *sample_shape))`` from a generator
    seeded with ``seed``; the steps' noise comes from a second generator seeded ``seed + 1``,
    batch after batch. Cached beside the model (:func:`diffusion_lib.zoo.outputs`, output
    ``"ddpm_samples"``), so retraining the model makes new samples. Images are clipped to
    [-1, 1] at each step; 2-D points are not.

    Raises:
        ValueError: n or batch_size not an int >= 1, seed not an int >= 0, or a model that is not
            a diffusion model.
    """
    _check_sample_kwargs(n=n, seed=seed, batch_size=batch_size)
    family = zoo.entry(name).family
    if family != DiffusionFamily.name:
        raise ValueError(f"model {name!r} is a {family}; reference samples need a diffusion model")
    out = zoo.outputs(name, "ddpm_samples", progress=progress, n=n, seed=seed, batch_size=batch_size)
    return ReferenceSamples(out.tensors["x_T"], out.tensors["x0"], out.seconds / n)
