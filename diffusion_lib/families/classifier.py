"""The classifier family: a network trained with cross-entropy on labelled data; the digits
classifier is the feature network of the metrics (chapters 6 and 9). With a noise process it
is a noise-aware classifier p_φ(y | x_t, t), trained on noisy inputs for classifier guidance
(chapter 11). It cannot be sampled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from ..diffusion import GaussianDiffusion
from ..family import Family, Trained, register_family
from ..nets.classifier import DigitsClassifier
from ..nets.clip import ImageEncoder
from ..nets.unet import EncoderClassifier
from ..schedules import get_beta_schedule

__all__ = [
    "ClassifierSpec",
    "ClassifierFamily",
    "NETWORKS",
    "TIMED_NETWORKS",
    "cross_entropy_loss",
    "noisy_cross_entropy_loss",
    "multi_head_loss",
    "split_logits",
    "predict_heads",
    "head_accuracy",
]

# The classifiers a spec's ``network["type"]`` may name.
NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "digits_classifier": DigitsClassifier,
    "unet_encoder": EncoderClassifier,
    # CLIP's image encoder of the 32×32 scenes, its embedding read as logits: the attribute judge
    # of the text-to-image chapters (12–13), with ``heads``.
    "scene_encoder": ImageEncoder,
}
# Each network's keyword argument that sets its number of logits.
OUTPUT_KEYS = {
    "digits_classifier": "num_classes",
    "unet_encoder": "num_classes",
    "scene_encoder": "embed_dim",
}
# The ones called as ``model(x_t, t)``: a spec with one of them needs ``noise``, and the others
# (``model(x)``) refuse it.
TIMED_NETWORKS = ("unet_encoder",)
# The keys of ``ClassifierSpec.noise``: the β schedule of the diffusion model to be guided.
NOISE_KEYS = ("schedule", "num_timesteps")


@dataclass(frozen=True)
class ClassifierSpec:
    """A classifier.

    Attributes:
        network: ``{"type": ..., **constructor kwargs}`` (see :data:`NETWORKS`).
        noise: None for a classifier of clean inputs, ``model(x)``; or the forward process of
            the diffusion model it will guide, ``{"schedule": "linear", "num_timesteps": 1000}``
            (:func:`~diffusion_lib.schedules.get_beta_schedule`): a noise-aware classifier,
            ``model(x_t, t)``, trained on x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with t uniform on
            [0, T − 1] (chapter 11). Its network must be one of :data:`TIMED_NETWORKS`.
        heads: None for one label per input; or the labels' names and numbers of classes in
            order, e.g. ``{"digit": 10, "colour": 6}``: the network's logits are the heads' logits
            side by side (its number of logits is their sum), the data is ``[inputs, labels of
            the first head, labels of the second, …]`` and the loss the mean of the heads'
            cross-entropies (:func:`multi_head_loss`); :func:`split_logits` reads the heads.
    """

    network: dict = field(default_factory=lambda: {"type": "digits_classifier"})
    noise: Optional[dict] = None
    heads: Optional[dict] = None


def cross_entropy_loss(model: nn.Module, batch: list, generator: torch.Generator) -> torch.Tensor:
    """The mean cross-entropy of the logits ``model(batch[0])`` against the labels ``batch[1]``."""
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def noisy_cross_entropy_loss(diffusion: GaussianDiffusion):
    """The loss of a noise-aware classifier: ``loss(model, batch, generator)``, the mean
    cross-entropy of ``model(x_t, t)`` against the labels ``batch[1]``, with t uniform on
    [0, T − 1] and x_t drawn from q(x_t | x_0 = batch[0]), both from ``generator``.

    Derived in chapter 11 (Dhariwal & Nichol, 2021, section 4: "we train a classifier
    p_φ(y | x_t, t) on noisy images x_t").

    Args:
        diffusion: the forward process of the diffusion model to be guided.
    """

    def loss(model: nn.Module, batch: list, generator: torch.Generator) -> torch.Tensor:
        x0, labels = batch[0], batch[1]
        t = diffusion.sample_timesteps(x0.shape[0], generator=generator, device=x0.device)
        x_t = diffusion.q_sample(x0, t, generator=generator)
        return nn.functional.cross_entropy(model(x_t, t), labels)

    return loss


def split_logits(logits: torch.Tensor, heads: dict) -> dict:
    """The logits (N, Σ classes) of a multi-head classifier split by head: name → (N, classes).

    Raises:
        ValueError: logits that are not (N, sum of the heads' classes).
    """
    total = sum(heads.values())
    if not torch.is_tensor(logits) or logits.ndim != 2 or logits.shape[1] != total:
        found = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise ValueError(f"logits must have shape (N, {total}) for the heads {heads}, got {found}")
    return dict(zip(heads, logits.split(list(heads.values()), dim=1)))


@torch.no_grad()
def predict_heads(model: nn.Module, inputs: torch.Tensor, heads: dict, batch_size: int = 1000) -> dict:
    """Each head's predicted class for every input of a multi-head classifier: name → int64 (N,),
    the argmax of the head's logits; the inputs go through ``model`` ``batch_size`` at a time.

    Chapter 12 judges prompt following with it (the zoo's ``scenes-judge``).

    Raises:
        ValueError: logits that do not fit the heads (:func:`split_logits`).
    """
    if isinstance(model, nn.Module):
        model.eval()
    logits = torch.cat([model(inputs[k : k + batch_size]) for k in range(0, len(inputs), batch_size)])
    return {name: part.argmax(dim=1) for name, part in split_logits(logits, heads).items()}


def head_accuracy(model: nn.Module, inputs: torch.Tensor, heads: dict, truth: dict) -> dict:
    """The share of ``inputs`` whose predicted class (:func:`predict_heads`) is ``truth``'s, for
    each head, and under ``"all"`` the share with every head right: name → float.

    Chapter 12 measures prompt following with it: ``truth`` holds the attributes each prompt asked
    for (name → int64 (N,)).

    Raises:
        ValueError: ``truth`` without exactly the heads' names, or a truth that is not N labels;
            logits that do not fit the heads.
    """
    if set(truth) != set(heads):
        raise ValueError(f"truth must have the heads {sorted(heads)}, got {sorted(truth)}")
    for name, labels in truth.items():
        if not torch.is_tensor(labels) or tuple(labels.shape) != (len(inputs),):
            found = tuple(labels.shape) if torch.is_tensor(labels) else type(labels).__name__
            raise ValueError(f"truth[{name!r}] must be a tensor of {len(inputs)} labels, got {found}")
    predicted = predict_heads(model, inputs, heads)
    right = {name: predicted[name] == truth[name].to(predicted[name].device) for name in heads}
    out = {name: float(r.double().mean()) for name, r in right.items()}
    out["all"] = float(torch.stack(list(right.values())).all(dim=0).double().mean())
    return out


def multi_head_loss(heads: dict):
    """``loss(model, batch, generator)`` of a batch ``[inputs, labels_1, …, labels_k]``: the mean
    over the k heads of the cross-entropy of each head's logits (:func:`split_logits`) against
    its labels."""

    def loss(model: nn.Module, batch: list, generator: torch.Generator) -> torch.Tensor:
        parts = split_logits(model(batch[0]), heads)
        losses = [nn.functional.cross_entropy(part, y) for part, y in zip(parts.values(), batch[1:])]
        return torch.stack(losses).mean()

    return loss


class ClassifierFamily(Family):
    """Classifiers of labelled data: ``[inputs, labels]``. The cache holds the EMA network."""

    name = "classifier"
    spec_type = ClassifierSpec
    outputs = {
        "logits": "the logits of a named dataset's inputs (kwargs: data, and the dataset's; a noise-aware "
        "classifier also takes t, the timestep (default 0), and seed, the noise's (default 0))"
    }

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        kind = spec.network.get("type") if isinstance(spec.network, dict) else None
        if kind not in NETWORKS:
            raise ValueError(
                f"network type must be one of {', '.join(map(repr, NETWORKS))} for a classifier, got {kind!r}"
            )
        if spec.heads is not None:
            heads = spec.heads
            if (
                not isinstance(heads, dict)
                or not heads
                or not all(isinstance(k, str) for k in heads)
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 2 for v in heads.values())
            ):
                raise ValueError(f"heads must be None or a dict of names to class counts >= 2, got {heads!r}")
            outputs = spec.network.get(OUTPUT_KEYS[kind])
            if outputs != sum(heads.values()):
                raise ValueError(
                    f"network {OUTPUT_KEYS[kind]} must be the heads' total, {sum(heads.values())}, "
                    f"got {outputs!r}"
                )
            if spec.noise is not None:
                raise ValueError("heads apply to classifiers of clean inputs, not with noise")
        if spec.noise is None:
            if kind in TIMED_NETWORKS:
                raise ValueError(
                    f"network type {kind!r} is called as model(x_t, t) and needs noise, got None"
                )
            return
        if kind not in TIMED_NETWORKS:
            raise ValueError(
                f"noise needs a network called as model(x_t, t) ({', '.join(map(repr, TIMED_NETWORKS))}), "
                f"got network type {kind!r}"
            )
        if not isinstance(spec.noise, dict) or sorted(spec.noise) != sorted(NOISE_KEYS):
            raise ValueError(
                f"noise must be None or a dict with the keys {', '.join(NOISE_KEYS)}, got {spec.noise!r}"
            )
        get_beta_schedule(spec.noise["schedule"], spec.noise["num_timesteps"])  # its own errors

    def build(self, entry) -> nn.Module:
        spec = dict(entry.spec.network)
        kind = spec.pop("type")
        torch.manual_seed(entry.init_seed)
        return NETWORKS[kind](**spec)

    def process(self, entry) -> Optional[GaussianDiffusion]:
        """A noise-aware classifier's forward process (``ZooModel.diffusion``); None otherwise."""
        noise = entry.spec.noise
        if noise is None:
            return None
        return GaussianDiffusion(get_beta_schedule(noise["schedule"], noise["num_timesteps"]))

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        if len(data) < 2:
            raise ValueError(
                f"a classifier trains on [inputs, labels]; {entry.name!r} got {len(data)} tensor(s)"
            )
        heads = entry.spec.heads
        if heads is not None and len(data) != 1 + len(heads):
            raise ValueError(
                f"a classifier with the heads {', '.join(heads)} trains on [inputs, one label tensor per "
                f"head]; {entry.name!r} got {len(data)} tensors"
            )
        diffusion = self.process(entry)
        if heads is not None:
            loss = multi_head_loss(heads)
        else:
            loss = cross_entropy_loss if diffusion is None else noisy_cross_entropy_loss(diffusion)
        return self.train_network(entry, loss, data, checkpoint=checkpoint, progress=progress, device=device)

    def output(self, loaded, name, *, progress=True, **kwargs) -> dict:
        if name != "logits":
            return super().output(loaded, name, progress=progress, **kwargs)
        from ..data import training_tensors

        kwargs = dict(kwargs)
        data = kwargs.pop("data", None)
        if not isinstance(data, str):
            raise ValueError(f"data must name a dataset for the output 'logits', got {data!r}")
        diffusion = loaded.diffusion
        if diffusion is None:
            inputs = training_tensors(data, **kwargs)[0]
            with torch.no_grad():
                return {"logits": loaded.model(inputs)}
        t, seed = kwargs.pop("t", 0), kwargs.pop("seed", 0)
        last = diffusion.num_timesteps - 1
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= last:
            raise ValueError(f"t must be an int in [0, {last}], got {t!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        inputs = training_tensors(data, **kwargs)[0]
        steps = torch.full((inputs.shape[0],), t, dtype=torch.long)
        x_t = diffusion.q_sample(inputs, steps, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return {"logits": loaded.model(x_t, steps)}


register_family(ClassifierFamily())
